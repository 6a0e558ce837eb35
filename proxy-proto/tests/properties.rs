//! Properties over generated input: emit→parse is the identity; no input panics or over-reads.

mod common;

use core::net::{IpAddr, SocketAddr};

use proptest::prelude::*;
use proxy_proto::{
    Addresses, Builder, Command, Parser, SslBuilder, Status, TlvType, Transport, Version, parse,
};

fn socket() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::new(IpAddr::from(ip), p)),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::new(IpAddr::from(ip), p)),
        // Special shapes: zero runs, v4-mapped.
        (0u16..3, any::<u16>()).prop_map(|(g, p)| SocketAddr::new(
            IpAddr::from([0, 0, 0, 0, 0, 0xFFFF * (g % 2), g, 1]),
            p
        )),
    ]
}

/// client flags, verify, sub-TLVs
type Ssl = (u8, u32, Vec<(u8, String)>);

#[derive(Debug, Clone)]
struct Tlvs {
    alpn: Option<Vec<u8>>,
    authority: Option<String>,
    unique_id: Option<Vec<u8>>,
    custom: Vec<(u8, Vec<u8>)>,
    ssl: Option<Ssl>,
    crc: bool,
}

fn tlvs() -> impl Strategy<Value = Tlvs> {
    (
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..12)),
        proptest::option::of("[a-z0-9.-]{0,40}"),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..=128)),
        proptest::collection::vec(
            (0xE0u8..=0xF7, proptest::collection::vec(any::<u8>(), 0..20)),
            0..4,
        ),
        proptest::option::of((
            0u8..8,
            any::<u32>(),
            proptest::collection::vec((0x21u8..=0x27, "[ -~]{0,20}"), 0..6),
        )),
        any::<bool>(),
    )
        .prop_map(|(alpn, authority, unique_id, custom, ssl, crc)| Tlvs {
            alpn,
            authority,
            unique_id,
            custom,
            ssl,
            crc,
        })
}

proptest! {
    #[test]
    fn v1_round_trip(src in socket(), dst in socket(), unknown in any::<bool>()) {
        let addresses = if unknown { Addresses::Unspec } else { Addresses::from_pair(src, dst) };
        let b = Builder::v1(addresses);
        let mut buf = [0u8; 107];
        let n = b.write(&mut buf).unwrap();
        prop_assert!(n <= 107);
        let h = parse(&buf[..n]).unwrap().complete().unwrap();
        prop_assert_eq!((h.version(), h.len(), h.addresses()), (Version::V1, n, addresses));
    }

    #[test]
    fn v2_round_trip(src in socket(), dst in socket(), local in any::<bool>(), dgram in any::<bool>(), t in tlvs()) {
        let command = if local { Command::Local } else { Command::Proxy };
        let addresses = Addresses::from_pair(src, dst);
        let mut b = Builder::v2(command, addresses);
        if dgram { b = b.transport(Transport::Dgram); }
        if let Some(a) = &t.alpn { b = b.alpn(a); }
        if let Some(a) = &t.authority { b = b.authority(a); }
        if let Some(u) = &t.unique_id { b = b.unique_id(u); }
        for (k, v) in &t.custom { b = b.tlv(TlvType(*k), v); }
        if let Some((client, verify, subs)) = &t.ssl {
            let s = subs.iter().fold(SslBuilder::new(*client, *verify), |s, (k, v)| s.sub(TlvType(*k), v.as_bytes()));
            b = b.ssl(s);
        }
        if t.crc { b = b.crc32c(); }
        let mut buf = vec![0u8; b.len().unwrap()];
        b.write(&mut buf).unwrap();
        let h = Parser::new().max_v2_len(65_551).parse(&buf).unwrap().complete().unwrap();
        prop_assert_eq!(h.len(), buf.len());
        prop_assert_eq!((h.command(), h.addresses()), (command, addresses));
        prop_assert_eq!(h.transport(), if dgram { Transport::Dgram } else { Transport::Stream });
        prop_assert_eq!(h.alpn(), t.alpn.as_deref());
        prop_assert_eq!(h.authority(), t.authority.as_deref());
        prop_assert_eq!(h.unique_id(), t.unique_id.as_deref());
        prop_assert_eq!(h.crc32c().is_some(), t.crc);
        for (k, v) in &t.custom {
            prop_assert!(h.tlvs().any(|tlv| tlv.kind == TlvType(*k) && tlv.value == v.as_slice()));
        }
        if let Some((client, verify, subs)) = &t.ssl {
            let s = h.ssl().unwrap();
            prop_assert_eq!((s.client().0, s.verify()), (*client, *verify));
            let got: Vec<_> = s.sub_tlvs().map(|t| (t.kind.0, t.value.to_vec())).collect();
            let want: Vec<_> = subs.iter().map(|(k, v)| (*k, v.as_bytes().to_vec())).collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn no_input_panics_or_over_reads(bytes in proptest::collection::vec(any::<u8>(), 0..300), lenient in any::<bool>()) {
        let parser = Parser::new().lenient_v1(lenient);
        if let Ok(Status::Complete(h)) = parser.parse(&bytes) {
            prop_assert!(h.len() <= bytes.len());
            prop_assert!(h.tlvs().count() <= bytes.len());
        }
    }

    #[test]
    fn near_headers_never_panic_or_over_read(bytes in near_header(), lenient in any::<bool>()) {
        let parser = Parser::new().lenient_v1(lenient).max_v2_len(65_551);
        if let Ok(Status::Complete(h)) = parser.parse(&bytes) {
            prop_assert!(h.len() <= bytes.len());
            // Exactly its own bytes give the same header.
            let again = parser.parse(&bytes[..h.len()]).unwrap().complete().unwrap();
            prop_assert_eq!(again, h);
            let walked: usize = h.tlvs().map(|t| 3 + t.value.len()).sum();
            prop_assert_eq!(walked, h.tlv_bytes().len());
        }
    }

    #[test]
    fn mutated_valid_headers_never_panic(which in 0usize..13, at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let headers = common::valid_headers();
        let mut bytes = headers[which % headers.len()].1.clone();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let end = cut.index(bytes.len() + 1);
        if let Ok(Status::Complete(h)) = parse(&bytes[..end]) {
            prop_assert!(h.len() <= end);
            // A cut header that parses must be the same header, cut after its end.
            prop_assert_eq!(parse(&bytes).unwrap().complete().map(|w| w.len()), Some(h.len()));
        }
    }

    #[test]
    fn v1_prefix_answers_agree_with_the_whole(line in v1_line(), cut in any::<prop::sample::Index>()) {
        let whole = parse(line.as_bytes());
        let end = cut.index(line.len());
        let prefix = parse(&line.as_bytes()[..end]);
        // If the whole is valid every prefix is Partial; if a prefix is already an error the
        // whole is too.
        if whole.is_ok() { prop_assert!(matches!(prefix, Ok(Status::Partial(_))), "{:?}", prefix); }
        if prefix.is_err() { prop_assert!(whole.is_err()); }
    }
}

/// Input that gets past the first byte: "PROXY " and anything, or a v2 preamble with a
/// consistent length and a body of anything (so address blocks and TLVs are really parsed).
fn near_header() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..120).prop_map(|tail| [
            b"PROXY ".as_slice(),
            &tail
        ]
        .concat()),
        (
            0u8..2,
            prop::sample::select(vec![0x00u8, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32, 0x13]),
            proptest::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|(command, family, body)| {
                let mut h = proxy_proto::V2_SIGNATURE.to_vec();
                h.extend_from_slice(&[0x20 | command, family]);
                h.extend_from_slice(&(body.len() as u16).to_be_bytes());
                h.extend_from_slice(&body);
                h
            }),
    ]
}

/// Lines that are often almost valid.
fn v1_line() -> impl Strategy<Value = String> {
    let ip = prop_oneof![
        "[0-9]{1,3}(\\.[0-9]{1,3}){3}",
        "[0-9a-f:]{2,20}",
        "::ffff:1\\.2\\.3\\.4"
    ];
    let port = "[+0-9]{1,6}";
    (
        prop_oneof!["TCP4", "TCP6", "UNKNOWN", "TCP"],
        ip.clone(),
        ip,
        port,
        port,
        prop_oneof![" ", "  "],
    )
        .prop_map(|(proto, a, b, p, q, sep)| format!("PROXY {proto} {a}{sep}{b} {p} {q}\r\n"))
}
