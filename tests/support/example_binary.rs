//! A cargo example, run as a program by the tests. It is built here, by the cargo and profile that
//! run the tests: `cargo test` does not build examples for a single `--test` target, and builds an
//! example with `test = true` only as its test harness. So no test runs a missing or stale binary.
//! The crates' tests share this one file through `#[path]`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, PoisonError};

/// The example `name` of the package in `manifest_dir`, built (once per test binary) if it is not
/// fresh; a no-op for cargo when it is.
pub(crate) fn example_binary(manifest_dir: &str, name: &str) -> PathBuf {
    // Held while building, so concurrent tests wait for one build instead of starting their own.
    static BUILT: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(bin) = built.get(name) {
        return bin.clone();
    }
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args(["build", "--quiet", "--example", name])
        .current_dir(manifest_dir);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cargo.arg("--release");
    }
    let status = cargo.status().expect("cargo runs");
    assert!(status.success(), "cargo build --example {name} failed");
    let bin = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "{} was not built", bin.display());
    built.insert(name.into(), bin.clone());
    bin
}
