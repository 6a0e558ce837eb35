//! Headers captured from HAProxy 2.6 by the interop tests (`SIXGATE_CAPTURE_DIR`), kept so that
//! what a real sender writes is tested on every machine, with or without HAProxy installed.

use proxy_proto::{Command, Status, TlvType, Version, parse};

static V1_TCP4: &[u8] = include_bytes!("../testdata/haproxy-v1-tcp4.bin");
static V1_TCP6: &[u8] = include_bytes!("../testdata/haproxy-v1-tcp6.bin");
static V2_TCP4: &[u8] = include_bytes!("../testdata/haproxy-v2-tcp4.bin");
static V2_TLS: &[u8] = include_bytes!("../testdata/haproxy-v2-tls.bin");
static V2_LOCAL_CHECK: &[u8] = include_bytes!("../testdata/haproxy-v2-local-check.bin");

fn whole(bytes: &[u8]) -> proxy_proto::Header<'_> {
    let Ok(Status::Complete(h)) = parse(bytes) else {
        panic!("{bytes:02x?}")
    };
    assert_eq!(h.len(), bytes.len());
    h
}

#[test]
fn plain_headers() {
    assert_eq!(whole(V1_TCP4).version(), Version::V1);
    assert!(whole(V1_TCP6).source().is_some_and(|s| s.is_ipv6()));
    assert_eq!(whole(V2_TCP4).command(), Command::Proxy);
}

#[test]
fn tls_frontend_with_every_option() {
    let h = whole(V2_TLS);
    let kinds: Vec<_> = h.tlvs().map(|t| t.kind).collect();
    assert_eq!(
        kinds,
        [
            TlvType::CRC32C,
            TlvType::ALPN,
            TlvType::AUTHORITY,
            TlvType::UNIQUE_ID,
            TlvType::SSL
        ]
    );
    assert_eq!(
        (h.alpn(), h.authority()),
        (Some(&b"h2"[..]), Some("www.example.com"))
    );
    let ssl = h.ssl().unwrap();
    assert_eq!(
        (ssl.client().0, ssl.verify(), ssl.version(), ssl.cn()),
        (0x07, 0, Some("TLSv1.3"), Some("client.example"))
    );
    assert_eq!(
        (ssl.cipher(), ssl.sig_alg(), ssl.key_alg()),
        (
            Some("TLS_AES_256_GCM_SHA384"),
            Some("RSA-SHA256"),
            Some("RSA2048")
        )
    );
    // The CRC covers every byte: flip any one and the header is refused — except the CRC TLV's
    // own type byte (28), which turns it into an unknown TLV and so removes the check.
    for i in (0..V2_TLS.len()).filter(|&i| i != 28) {
        let mut bad = V2_TLS.to_vec();
        bad[i] ^= 0x20;
        assert!(parse(&bad).is_err(), "byte {i} flipped still parses");
    }
}

#[test]
fn health_check_is_local_with_a_crc() {
    let h = whole(V2_LOCAL_CHECK);
    assert_eq!(
        (h.command(), h.source(), h.tlvs().count()),
        (Command::Local, None, 1)
    );
    assert!(h.crc32c().is_some());
}
