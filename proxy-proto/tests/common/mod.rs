//! Valid headers the integration tests share.
#![allow(dead_code, unreachable_pub)] // each test binary uses part of it

use proxy_proto::{Addresses, Builder, Command, SslBuilder, Transport};

/// Whole valid headers: the specification's examples, every family, and HAProxy-shaped ones.
pub fn valid_headers() -> Vec<(&'static str, Vec<u8>)> {
    let ff = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    let sa = |s: &str| s.parse().unwrap();
    let build = |b: Builder<'_>| {
        let mut buf = vec![0; b.len().unwrap()];
        b.write(&mut buf).unwrap();
        buf
    };
    let mut out = vec![
        (
            "v1 tcp4",
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n".to_vec(),
        ),
        (
            "v1 tcp4 worst",
            b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n".to_vec(),
        ),
        (
            "v1 tcp6 worst",
            format!("PROXY TCP6 {ff} {ff} 65535 65535\r\n").into_bytes(),
        ),
        (
            "v1 tcp6 mapped",
            b"PROXY TCP6 ::ffff:192.0.2.1 ::1 0 1\r\n".to_vec(),
        ),
        ("v1 unknown", b"PROXY UNKNOWN\r\n".to_vec()),
        (
            "v1 unknown long",
            format!("PROXY UNKNOWN {ff} {ff} 65535 65535\r\n").into_bytes(),
        ),
        (
            "v2 tcp4",
            build(Builder::v2_proxy(
                sa("192.0.2.1:56324"),
                sa("198.51.100.7:443"),
            )),
        ),
        (
            "v2 udp6",
            build(
                Builder::v2_proxy(sa("[2001:db8::1]:53"), sa("[2001:db8::2]:53"))
                    .transport(Transport::Dgram),
            ),
        ),
        (
            "v2 unix",
            build(Builder::v2(
                Command::Proxy,
                Addresses::Unix {
                    src: b"/run/c.sock",
                    dst: b"/run/s.sock",
                },
            )),
        ),
        (
            "v2 unspec",
            build(Builder::v2(Command::Proxy, Addresses::Unspec)),
        ),
        ("v2 local", build(Builder::v2_local())),
        ("v2 local crc", build(Builder::v2_local().crc32c())),
    ];
    out.push(("v2 haproxy tls", haproxy_tls_header()));
    out
}

/// What HAProxy 2.6 sends with `send-proxy-v2 proxy-v2-options crc32c,ssl,cert-cn,authority`
/// for a TLS 1.3 client: 141 bytes with the CRC first.
pub fn haproxy_tls_header() -> Vec<u8> {
    let ssl = SslBuilder::new(0x01, 0)
        .version("TLSv1.3")
        .cipher("TLS_AES_256_GCM_SHA384")
        .sig_alg("RSA-SHA256")
        .key_alg("RSA2048");
    let b = Builder::v2_proxy(
        "127.0.0.1:41234".parse().unwrap(),
        "127.0.0.1:8443".parse().unwrap(),
    )
    .crc32c()
    .alpn(b"http/1.1")
    .authority("www.example.com")
    .ssl(ssl)
    .noop(&[0; 5]);
    let mut buf = vec![0; b.len().unwrap()];
    b.write(&mut buf).unwrap();
    buf
}
