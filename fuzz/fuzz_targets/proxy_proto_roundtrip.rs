//! Emit → parse round trip from arbitrary header descriptions: whatever the builder accepts
//! parses back to the same addresses and TLVs, at exactly the length it announced.
#![no_main]

use core::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use proxy_proto::{Addresses, Builder, Command, Parser, SslBuilder, Status, TlvType, Transport};

#[derive(Debug, Arbitrary)]
enum Addrs {
    Unspec,
    V4([u8; 4], u16, [u8; 4], u16),
    V6([u8; 16], u16, [u8; 16], u16),
    Unix(Vec<u8>, Vec<u8>),
}

#[derive(Debug, Arbitrary)]
struct Input {
    v1: bool,
    local: bool,
    dgram: bool,
    addrs: Addrs,
    tlvs: Vec<(u8, Vec<u8>)>,
    ssl: Option<(u8, u32, Vec<(u8, Vec<u8>)>)>,
    crc: bool,
}

fuzz_target!(|input: Input| {
    let addresses = match &input.addrs {
        Addrs::Unspec => Addresses::Unspec,
        Addrs::V4(s, sp, d, dp) => Addresses::Ipv4 {
            src: SocketAddrV4::new(Ipv4Addr::from(*s), *sp),
            dst: SocketAddrV4::new(Ipv4Addr::from(*d), *dp),
        },
        Addrs::V6(s, sp, d, dp) => Addresses::Ipv6 {
            src: SocketAddrV6::new(Ipv6Addr::from(*s), *sp, 0, 0),
            dst: SocketAddrV6::new(Ipv6Addr::from(*d), *dp, 0, 0),
        },
        // Paths end at NUL on the wire, so only NUL-free paths can come back equal.
        Addrs::Unix(s, d) => {
            if s.contains(&0) || d.contains(&0) {
                return;
            }
            Addresses::Unix { src: s, dst: d }
        }
    };
    let mut b = if input.v1 {
        Builder::v1(addresses)
    } else {
        let command = if input.local { Command::Local } else { Command::Proxy };
        Builder::v2(command, addresses)
    };
    if input.dgram {
        b = b.transport(Transport::Dgram);
    }
    for (kind, value) in &input.tlvs {
        b = b.tlv(TlvType(*kind), value);
    }
    if let Some((client, verify, subs)) = &input.ssl {
        let ssl = subs.iter().fold(SslBuilder::new(*client, *verify), |s, (k, v)| s.sub(TlvType(*k), v));
        b = b.ssl(ssl);
    }
    if input.crc {
        b = b.crc32c();
    }
    let Ok(len) = b.len() else { return };
    let mut buf = vec![0u8; len];
    assert_eq!(b.write(&mut buf), Ok(len));
    let parser = Parser::new().max_v2_len(65_551);
    match parser.parse(&buf) {
        Ok(Status::Complete(h)) => {
            assert_eq!(h.len(), len);
            assert_eq!(h.addresses(), addresses);
            let got: Vec<_> = h.tlvs().filter(|t| t.kind != TlvType::CRC32C).map(|t| (t.kind.0, t.value.to_vec())).collect();
            let mut want: Vec<_> = input.tlvs.iter().map(|(k, v)| (*k, v.clone())).collect();
            if let Some(ssl) = h.ssl() {
                let subs: Vec<_> = ssl.sub_tlvs().map(|t| (t.kind.0, t.value.to_vec())).collect();
                let (_, _, sent) = input.ssl.as_ref().unwrap();
                assert_eq!(&subs, sent);
                want.push((0x20, h.tlv(TlvType::SSL).unwrap().to_vec()));
            }
            assert_eq!(got, want);
        }
        // The builder writes any TLV bytes it is given; the parser checks their contents (UTF-8
        // AUTHORITY, a 5-byte SSL head, well-formed SSL sub-TLVs, UNIQUE_ID ≤ 128…). Only such
        // content errors are allowed here, never a structural one.
        Err(proxy_proto::Error::Tlv { .. }) => {}
        other => panic!("builder output did not parse: {other:?}"),
    }
});
