//! The `decode` example's one-line output and exit statuses.

#[path = "../../tests/support/example_binary.rs"]
mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::example_binary;

fn decode(input: &[u8]) -> (Option<i32>, String) {
    let bin = example_binary(env!("CARGO_MANIFEST_DIR"), "decode");
    let mut child = Command::new(&bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8(out.stdout).unwrap())
}

#[test]
fn complete_partial_and_invalid() {
    let (code, line) = decode(b"PROXY TCP6 2001:db8::1 2001:db8::80 56324 443\r\nGET /");
    assert_eq!(code, Some(0));
    assert_eq!(
        line,
        "version=1 command=proxy family=inet6 transport=stream src=[2001:db8::1]:56324 dst=[2001:db8::80]:443 consumed=47\n"
    );
    let (code, line) = decode(include_bytes!("../testdata/haproxy-v2-local-check.bin"));
    assert_eq!(code, Some(0));
    assert!(
        line.starts_with("version=2 command=local family=unspec consumed=23 tlv=0x03:"),
        "{line}"
    );
    assert_eq!(
        decode(b"PROXY UNKNOWN\r\n"),
        (
            Some(0),
            "version=1 command=proxy family=unspec consumed=15\n".into()
        )
    );
    assert_eq!(
        decode(b"PROXY TCP4 192.0.2.1"),
        (Some(2), "partial needed=unknown\n".into())
    );
    assert_eq!(
        decode(b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c"),
        (Some(2), "partial needed=12\n".into())
    );
    let (code, line) = decode(b"PROXY TCP4 192.0.2.1 192.0.2.2 +1 2\r\n");
    assert_eq!(code, Some(1));
    assert!(line.starts_with("error=v1: "), "{line}");
    assert_eq!(
        decode(b"GET / HTTP/1.1\r\n").1,
        "error=not-proxy: not a PROXY protocol header\n"
    );
}
