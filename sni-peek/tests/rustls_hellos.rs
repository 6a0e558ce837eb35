//! Real ClientHellos, made by rustls (ring provider) on every run, parsed whole, split at every
//! offset, and re-framed into small records. `SNI_PEEK_WRITE_TESTDATA=1` also saves them as the
//! `testdata/rustls_*.bin` files the unit tests and benches load.

use std::sync::Arc;

use rustls::crypto::{ActiveKeyExchange, SharedSecret, SupportedKxGroup};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, NamedGroup, RootCertStore};
use sni_peek::{Detected, Limits, ProtocolVersion, Status, peek};

/// X25519MLKEM768's code point and share size: ring has no ML-KEM, so this group only makes a
/// share of the right size, so that rustls sends a post-quantum-sized hello.
const X25519MLKEM768: u16 = 0x11ec;
const PQ_SHARE_LEN: usize = 1216;

#[derive(Debug)]
struct PqSizedGroup;

#[derive(Debug)]
struct PqSizedShare(Vec<u8>);

impl SupportedKxGroup for PqSizedGroup {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        Ok(Box::new(PqSizedShare(
            (0..PQ_SHARE_LEN).map(|i| i as u8).collect(),
        )))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::from(X25519MLKEM768)
    }
}

impl ActiveKeyExchange for PqSizedShare {
    fn complete(self: Box<Self>, _peer: &[u8]) -> Result<SharedSecret, rustls::Error> {
        Err(rustls::Error::General("size-only key exchange".into()))
    }

    fn pub_key(&self) -> &[u8] {
        &self.0
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::from(X25519MLKEM768)
    }
}

struct Case {
    file: &'static str,
    server_name: &'static str,
    sni: bool,
    alpn: &'static [&'static [u8]],
    tls12_only: bool,
    pq: bool,
}

const CASES: &[Case] = &[
    Case {
        file: "rustls_tls13_alpn",
        server_name: "Rustls.Example",
        sni: true,
        alpn: &[b"h2", b"http/1.1"],
        tls12_only: false,
        pq: false,
    },
    Case {
        file: "rustls_no_sni",
        server_name: "hidden.example",
        sni: false,
        alpn: &[b"http/1.1"],
        tls12_only: false,
        pq: false,
    },
    Case {
        file: "rustls_tls12_only",
        server_name: "tls12.example",
        sni: true,
        alpn: &[],
        tls12_only: true,
        pq: false,
    },
    Case {
        file: "rustls_pq_sized",
        server_name: "pq.example",
        sni: true,
        alpn: &[b"h2", b"http/1.1"],
        tls12_only: false,
        pq: true,
    },
];

fn client_hello(case: &Case) -> Vec<u8> {
    let mut provider = rustls::crypto::ring::default_provider();
    if case.pq {
        static PQ: PqSizedGroup = PqSizedGroup;
        provider.kx_groups.insert(0, &PQ);
    }
    let versions: &[&rustls::SupportedProtocolVersion] = if case.tls12_only {
        &[&rustls::version::TLS12]
    } else {
        rustls::ALL_VERSIONS
    };
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = case.alpn.iter().map(|p| p.to_vec()).collect();
    config.enable_sni = case.sni;
    let name = ServerName::try_from(case.server_name).unwrap().to_owned();
    let mut conn = ClientConnection::new(Arc::new(config), name).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

/// Name, ALPN protocols and consumed length of a complete hello.
type Decision = (Option<String>, Vec<Vec<u8>>, usize);

fn decide(input: &[u8], limits: &Limits) -> Result<Status<Decision>, sni_peek::Error> {
    let mut scratch = vec![0; limits.scratch_len()];
    Ok(match peek(input, &mut scratch, limits)? {
        Status::Complete(Detected::Tls(h)) => Status::Complete((
            h.server_name().map(|n| n.to_string()),
            h.alpn().map(<[u8]>::to_vec).collect(),
            h.consumed(),
        )),
        Status::Complete(other) => panic!("not TLS: {other:?}"),
        Status::Partial(n) => Status::Partial(n),
    })
}

#[test]
fn rustls_hellos_parse_whole_split_and_reframed() {
    let write = std::env::var_os("SNI_PEEK_WRITE_TESTDATA").is_some();
    for case in CASES {
        let hello = client_hello(case);
        let expected_name = case.sni.then(|| case.server_name.to_ascii_lowercase());
        let expected_alpn: Vec<Vec<u8>> = case.alpn.iter().map(|p| p.to_vec()).collect();
        let whole = decide(&hello, &Limits::default()).unwrap();
        assert_eq!(
            whole,
            Status::Complete((expected_name.clone(), expected_alpn.clone(), hello.len())),
            "{}",
            case.file
        );
        if case.pq {
            assert!(
                hello.len() > 1400,
                "post-quantum-sized hello is {} bytes",
                hello.len()
            );
        }
        let mut scratch = vec![0; 20000];
        let outcome = peek(&hello, &mut scratch, &Limits::default()).unwrap();
        let Status::Complete(Detected::Tls(h)) = outcome else {
            panic!("{}: not a complete TLS hello: {outcome:?}", case.file);
        };
        let top = if case.tls12_only {
            ProtocolVersion::TLSV1_2
        } else {
            ProtocolVersion::TLSV1_3
        };
        assert_eq!(h.max_version(), top, "{}", case.file);
        assert_eq!(h.legacy_version(), ProtocolVersion::TLSV1_2);

        // Every prefix is Partial.
        for cut in 0..hello.len() {
            assert!(
                matches!(
                    decide(&hello[..cut], &Limits::default()),
                    Ok(Status::Partial(_))
                ),
                "{} cut at {cut}",
                case.file
            );
        }
        // Re-framed into 1-, 2- and 3-byte records: Partial for every prefix, the same answer whole.
        let many = Limits {
            max_records: usize::MAX,
            ..Limits::default()
        };
        for payload in [1, 2, 3] {
            let framed = sni_peek_reframe(&hello, payload);
            let (name, alpn, consumed) = decide(&framed, &many).unwrap().complete().unwrap();
            assert_eq!((name, alpn), (expected_name.clone(), expected_alpn.clone()));
            assert_eq!(consumed, framed.len());
            // Every 7th prefix keeps this quadratic check fast; the unit tests cover every offset.
            for cut in (0..framed.len()).step_by(7) {
                assert!(matches!(
                    decide(&framed[..cut], &many),
                    Ok(Status::Partial(_))
                ));
            }
        }
        if write {
            let path = format!("{}/testdata/{}.bin", env!("CARGO_MANIFEST_DIR"), case.file);
            std::fs::write(path, &hello).unwrap();
        }
    }
}

/// The same re-framing as `sni_peek::internal::reframe`, which is only built for the fuzz targets.
fn sni_peek_reframe(hello: &[u8], payload: usize) -> Vec<u8> {
    let message = &hello[5..];
    let mut out = Vec::new();
    for chunk in message.chunks(payload) {
        out.extend([22, hello[1], hello[2]]);
        out.extend((chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}
