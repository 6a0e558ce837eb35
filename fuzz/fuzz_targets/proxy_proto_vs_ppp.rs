//! Differential against the `ppp` crate on v2 input both accept: the same length, command,
//! addresses and TLV bytes.
//!
//! Intended divergences, where only one side accepts and nothing is compared:
//! - we verify a CRC32C TLV and refuse a mismatch (the specification's MUST); ppp does not;
//! - we check TLV contents (structure, SSL sub-TLVs, UTF-8 AUTHORITY, UNIQUE_ID ≤ 128); ppp
//!   parses TLVs lazily and so accepts a header whose TLV region is malformed;
//! - we accept LOCAL with any family byte or a short block (the specification says to ignore
//!   it); ppp refuses some of those;
//! - we refuse family/transport bytes other than 00 11 12 21 22 31 32 for PROXY; ppp accepts
//!   some (e.g. 0x01);
//! - we cap headers at 4 KiB by default (here raised to the format's limit, 65 551).
//!
//! Intended divergence where both accept: with the UNSPEC family (`0x00`) we read everything
//! after the preamble as TLVs, as HAProxy does (its LOCAL health checks send UNSPEC + CRC32C);
//! ppp takes it all as an opaque address block. TLVs are compared for the other families.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ppp::v2 as peer;
use proxy_proto::{Addresses, Command, Parser, Status};

fuzz_target!(|data: &[u8]| {
    let ours = Parser::new().max_v2_len(65_551).parse_v2(data);
    let theirs = peer::Header::try_from(data);
    let (Ok(Status::Complete(ours)), Ok(theirs)) = (ours, theirs) else { return };
    assert_eq!(ours.len(), theirs.len(), "header length");
    let command = match theirs.command {
        peer::Command::Local => Command::Local,
        peer::Command::Proxy => Command::Proxy,
    };
    assert_eq!(ours.command(), command);
    // For LOCAL we may have skipped a short block that ppp read, or the reverse: compare PROXY.
    if command == Command::Local {
        return;
    }
    match (ours.addresses(), theirs.addresses) {
        (Addresses::Unspec, peer::Addresses::Unspecified) => {}
        (Addresses::Ipv4 { src, dst }, peer::Addresses::IPv4(t)) => {
            assert_eq!((*src.ip(), src.port(), *dst.ip(), dst.port()), (t.source_address, t.source_port, t.destination_address, t.destination_port));
        }
        (Addresses::Ipv6 { src, dst }, peer::Addresses::IPv6(t)) => {
            assert_eq!((*src.ip(), src.port(), *dst.ip(), dst.port()), (t.source_address, t.source_port, t.destination_address, t.destination_port));
        }
        (Addresses::Unix { src, dst }, peer::Addresses::Unix(t)) => {
            assert!(t.source.starts_with(src) && t.destination.starts_with(dst));
        }
        (a, b) => panic!("addresses differ: {a:?} vs {b:?}"),
    }
    if ours.addresses() == Addresses::Unspec {
        return;
    }
    assert_eq!(ours.tlv_bytes(), theirs.tlv_bytes(), "TLV region");
    let theirs_tlvs: Vec<_> = theirs.tlvs().map_while(Result::ok).map(|t| (t.kind, t.value.to_vec())).collect();
    let ours_tlvs: Vec<_> = ours.tlvs().map(|t| (t.kind.0, t.value.to_vec())).collect();
    assert_eq!(ours_tlvs, theirs_tlvs, "TLVs");
});
