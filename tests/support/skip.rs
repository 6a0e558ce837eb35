//! A test that cannot run its subject (a peer program, root, `../shared`) says so where it is seen,
//! and fails instead under `SIXGATE_REQUIRE_PEERS=1`. The crates' and the root package's tests
//! share this one file through `#[path]`.
//!
//! libtest keeps what a passing test prints with `eprintln!` to itself, so the line goes to the
//! process's stderr handle, which libtest does not capture: it shows in `cargo test` output. It
//! is also appended to [`SKIPPED_FILE`] (`target/tmp/skipped-tests.txt`), for a summary after the
//! run; nothing empties that file, so a CI run deletes it first.

use std::fs::OpenOptions;
use std::io::Write;

/// Every skip, one line each: `<test binary>::<test>: <reason>`.
const SKIPPED_FILE: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/skipped-tests.txt");

/// Says why the calling test cannot run its subject; the test then returns. Panics instead under
/// `SIXGATE_REQUIRE_PEERS=1` (CI installs every peer first).
pub(crate) fn skip(why: &str) {
    // libtest names each test's thread after the test.
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    let line = format!("{}::{test}: {why}", env!("CARGO_CRATE_NAME"));
    if std::env::var("SIXGATE_REQUIRE_PEERS").is_ok_and(|v| v == "1") {
        panic!("cannot run {line}, and SIXGATE_REQUIRE_PEERS=1 requires it");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {line} (SIXGATE_REQUIRE_PEERS=1 makes this a failure)"
    );
    if let Ok(mut file) = OpenOptions::new()
        .create(true)
        .append(true)
        .open(SKIPPED_FILE)
    {
        // One write, so lines from test binaries running at once do not interleave.
        let _ = file.write_all(format!("{line}\n").as_bytes());
    }
}
