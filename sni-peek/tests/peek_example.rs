//! The `peek` example, run as built: one line per input, in the documented format, and the
//! documented exit statuses (0 decided, 1 error, 2 partial, 3 unknown).

#[path = "../../tests/support/example_binary.rs"]
mod support;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use support::example_binary;

fn example() -> PathBuf {
    example_binary(env!("CARGO_MANIFEST_DIR"), "peek")
}

fn run(cmd: &mut Command, stdin: &[u8]) -> (Option<i32>, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", example().display()));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let Output { status, stdout, .. } = child.wait_with_output().unwrap();
    (status.code(), String::from_utf8(stdout).unwrap())
}

fn on_stdin(input: &[u8]) -> (Option<i32>, String) {
    run(&mut Command::new(example()), input)
}

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn on_file(name: &str) -> (Option<i32>, String) {
    run(Command::new(example()).arg(testdata(name)), b"")
}

#[test]
fn tls_lines_from_testdata_files() {
    assert_eq!(
        on_file("chrome_like.bin"),
        (
            Some(0),
            "tls sni=chrome.example alpn=h2,http/1.1 ech=yes consumed=572\n".into()
        )
    );
    // Made by rustls and rewritten with it: the hello is the whole file.
    let len = std::fs::metadata(testdata("rustls_no_sni.bin"))
        .unwrap()
        .len();
    assert_eq!(
        on_file("rustls_no_sni.bin"),
        (
            Some(0),
            format!("tls sni=- alpn=http/1.1 ech=no consumed={len}\n")
        )
    );
    assert_eq!(
        on_file("openssl_tls12.bin"),
        (
            Some(0),
            "tls sni=tls12.openssl.example alpn=- ech=no consumed=219\n".into()
        )
    );
}

#[test]
fn http_and_h2_lines_from_stdin() {
    assert_eq!(
        on_stdin(b"GET / HTTP/1.1\r\nHost: A.com:8080\r\n\r\n"),
        (Some(0), "http host=a.com port=8080 consumed=36\n".into())
    );
    assert_eq!(
        on_stdin(b"GET / HTTP/1.0\r\n\r\n"),
        (Some(0), "http host=- consumed=18\n".into())
    );
    let mut h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    h2.extend([0, 0, 0, 4, 0, 0, 0, 0, 0]); // empty SETTINGS
    let mut block = vec![0x82, 0x87, 0x84, 0x41, 10]; // GET https / :authority (10 bytes)
    block.extend_from_slice(b"h2.example");
    h2.extend([0, 0, block.len() as u8, 1, 4, 0, 0, 0, 1]); // HEADERS, END_HEADERS, stream 1
    h2.extend(block);
    assert_eq!(on_stdin(&h2), (Some(0), "h2 host=h2.example\n".into()));
}

#[test]
fn partial_unknown_and_error_statuses() {
    let hello =
        std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/curl.bin")).unwrap();
    assert_eq!(
        on_stdin(&hello[..100]),
        (Some(2), format!("partial needed={}\n", hello.len() - 100))
    );
    assert_eq!(
        on_stdin(b"GET / HTTP/1.1\r\nHo"),
        (Some(2), "partial needed=unknown\n".into())
    );
    assert_eq!(on_stdin(b"\x00\x01"), (Some(3), "unknown\n".into()));
    assert_eq!(
        on_stdin(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        (
            Some(1),
            "error=duplicate_host: more than one Host header\n".into()
        )
    );
    // A file that cannot be read: status 1, nothing on stdout.
    let (code, out) = run(Command::new(example()).arg("no/such/file.bin"), b"");
    assert_eq!((code, out.as_str()), (Some(1), ""));
}
