//! A valid IPv4 datagram built from fuzzer-chosen fields goes IPv4 → IPv6 → IPv4 and must come back
//! whole: same addresses, TOS, protocol and payload (transport checksum included), TTL down by two.
#![no_main]

use arbitrary::Arbitrary;
use core::net::Ipv4Addr;
use libfuzzer_sys::fuzz_target;
use nat64_xlat::checksum::{add, finish, fold, pseudo4, sum};
use nat64_xlat::{Config, Outcome, Pool6, Translator};

#[derive(Debug, Arbitrary)]
struct Datagram {
    prefix: u8,
    src: u32,
    dst: u32,
    tos: u8,
    ttl: u8,
    id: u16,
    proto: u8,
    payload: Vec<u8>,
}

const PREFIXES: [&str; 6] = [
    "2001:db8::/32",
    "2001:db8:100::/40",
    "2001:db8:122::/48",
    "2001:db8:122:300::/56",
    "2001:db8:122:344::/64",
    "2001:db8:122:344::/96",
];

fuzz_target!(|d: Datagram| {
    let ttl = d.ttl.max(3);
    // TCP, UDP, ICMP echo request/reply, or an opaque protocol.
    let (proto, at) = match d.proto % 5 {
        0 => (6u8, 16usize),
        1 => (17, 6),
        2 | 3 => (1, 2),
        _ => (253, usize::MAX),
    };
    let mut payload = d.payload;
    payload.truncate(1400);
    let min = if at == usize::MAX { 0 } else { at + 2 };
    if payload.len() < min.max(8) {
        payload.resize(min.max(8), 0);
    }
    if proto == 1 {
        payload[0] = if d.proto % 5 == 2 { 8 } else { 0 };
        payload[1] = 0;
    }
    if proto == 17 {
        let l = payload.len() as u16;
        payload[4..6].copy_from_slice(&l.to_be_bytes());
    }
    let (src, dst) = (Ipv4Addr::from_bits(d.src), Ipv4Addr::from_bits(d.dst));
    // 0/8, 127/8, 169.254/16, 224/4 and 240/4 are never translated, so they cannot round-trip.
    if [src, dst]
        .iter()
        .any(|a| matches!(a.octets(), [0 | 127 | 224.., ..] | [169, 254, ..]))
    {
        return;
    }
    if at != usize::MAX {
        payload[at..at + 2].fill(0);
        let acc = if proto == 1 {
            sum(&payload)
        } else {
            add(
                pseudo4(src, dst, proto, payload.len() as u32),
                sum(&payload),
            )
        };
        let mut c = finish(acc);
        if proto == 17 && c == 0 {
            c = 0xffff;
        }
        payload[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    let mut p = vec![0x45, d.tos];
    p.extend_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&d.id.to_be_bytes());
    p.extend_from_slice(&[0x40, 0, ttl, proto, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&payload);
    let c = finish(sum(&p[..20]));
    p[10..12].copy_from_slice(&c.to_be_bytes());

    let prefix = PREFIXES[usize::from(d.prefix) % PREFIXES.len()];
    let t = Translator::new(Config::new(Some(
        Pool6::new(prefix.parse().unwrap()).unwrap(),
    )));
    let mut mid = vec![0u8; Translator::out_len(p.len())];
    let Outcome::Translated(e) = t.translate_4to6(&p, &mut mid) else {
        panic!("4to6 refused a valid datagram")
    };
    let v6 = e.packets(&mid).next().unwrap().to_vec();
    let mut back = vec![0u8; Translator::out_len(v6.len())];
    let Outcome::Translated(e) = t.translate_6to4(&v6, &mut back) else {
        panic!("6to4 refused its own output")
    };
    let v4 = e.packets(&back).next().unwrap();
    assert_eq!(v4.len(), p.len());
    assert_eq!(&v4[..4], &p[..4]);
    assert_eq!(v4[8], ttl - 2);
    assert_eq!(v4[9], proto);
    assert_eq!(fold(sum(&v4[..20])), 0xffff);
    if at == usize::MAX {
        assert_eq!(&v4[12..], &p[12..]);
        return;
    }
    // The transport checksum comes back identical, except that one's complement has two zeros:
    // 0xffff (all-zero ICMP data) may return as 0x0000, which verifies the same.
    let c = 20 + at;
    assert_eq!(&v4[12..c], &p[12..c]);
    assert_eq!(&v4[c + 2..], &p[c + 2..]);
    let (got, want) = ([v4[c], v4[c + 1]], [p[c], p[c + 1]]);
    assert!(
        got == want || (want == [0xff, 0xff] && got == [0, 0]),
        "checksum {got:?} != {want:?}"
    );
});
