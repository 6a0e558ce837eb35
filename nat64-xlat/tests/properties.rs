//! Properties over generated packets: IPv4 → IPv6 → IPv4 and IPv6 → IPv4 → IPv6 give the original
//! back (modulo the fields RFC 7915 regenerates), and every emitted packet carries correct checksums
//! whenever the input's were correct.

use core::net::{Ipv4Addr, Ipv6Addr};

use nat64_xlat::checksum::{add, finish, fold, pseudo4, pseudo6, sum};
use nat64_xlat::{Config, InPlace, Outcome, Pool6, Translator};
use proptest::prelude::*;

const PREFIXES: [&str; 6] = [
    "2001:db8::/32",
    "2001:db8:100::/40",
    "2001:db8:122::/48",
    "2001:db8:122:300::/56",
    "2001:db8:122:344::/64",
    "2001:db8:122:344::/96",
];

fn translator(prefix: usize) -> Translator<'static> {
    Translator::new(Config::new(Some(
        Pool6::new(PREFIXES[prefix].parse().unwrap()).unwrap(),
    )))
}

/// An IPv4 address (as bits) that every prefix translates: not 0/8, 127/8, 169.254/16, 224/4 or
/// 240/4 (169.254/16 is moved to 169.255/16).
fn unicast() -> impl Strategy<Value = u32> {
    (1u32..223, 0u32..1 << 24).prop_map(|(hi, lo)| {
        let a = (if hi >= 127 { hi + 1 } else { hi }) << 24 | lo;
        if a >> 16 == 0xa9fe { a | 1 << 16 } else { a }
    })
}

#[derive(Debug, Clone)]
struct L4 {
    proto: u8,
    bytes: Vec<u8>,
}

/// TCP (20-byte header), UDP, or ICMP echo request/reply with a random body.
fn l4() -> impl Strategy<Value = L4> {
    let body = proptest::collection::vec(any::<u8>(), 0..1300);
    (0u8..4, any::<[u8; 20]>(), body).prop_map(|(kind, hdr, body)| {
        let (proto, mut bytes) = match kind {
            0 => {
                let mut h = hdr.to_vec();
                h[12] = 0x50;
                (6, h)
            }
            1 => (17, hdr[..8].to_vec()),
            2 => (1, [&[8u8, 0][..], &hdr[2..8]].concat()),
            _ => (1, [&[0u8, 0][..], &hdr[2..8]].concat()),
        };
        bytes.extend_from_slice(&body);
        if proto == 17 {
            let len = bytes.len() as u16;
            bytes[4..6].copy_from_slice(&len.to_be_bytes());
        }
        L4 { proto, bytes }
    })
}

fn csum_at(proto: u8) -> usize {
    match proto {
        6 => 16,
        17 => 6,
        _ => 2,
    }
}

fn set_l4_checksum(seg: &mut [u8], proto: u8, pseudo: u32) {
    let at = csum_at(proto);
    seg[at..at + 2].fill(0);
    let acc = if proto == 1 {
        sum(seg)
    } else {
        add(pseudo, sum(seg))
    };
    let mut c = finish(acc);
    if proto == 17 && c == 0 {
        c = 0xffff;
    }
    seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, tos: u8, ttl: u8, id: u16, df: bool, l4: &L4) -> Vec<u8> {
    let total = (20 + l4.bytes.len()) as u16;
    let mut p = vec![0x45, tos];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[if df { 0x40 } else { 0 }, 0, ttl, l4.proto, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&l4.bytes);
    let c = finish(sum(&p[..20]));
    p[10..12].copy_from_slice(&c.to_be_bytes());
    set_l4_checksum(
        &mut p[20..],
        l4.proto,
        pseudo4(src, dst, l4.proto, l4.bytes.len() as u32),
    );
    p
}

fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, tc: u8, hop: u8, l4: &L4) -> Vec<u8> {
    let proto = if l4.proto == 1 { 58 } else { l4.proto };
    let mut bytes = l4.bytes.clone();
    if proto == 58 {
        bytes[0] = if bytes[0] == 8 { 128 } else { 129 };
    }
    let mut p = vec![0x60 | (tc >> 4), tc << 4, 0, 0];
    p.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    p.extend_from_slice(&[proto, hop]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&bytes);
    set_l4_checksum(
        &mut p[40..],
        proto,
        pseudo6(src, dst, proto, bytes.len() as u32),
    );
    p
}

/// Every checksum of an unfragmented packet, from scratch.
fn checksums_ok(p: &[u8]) -> Result<(), String> {
    match p[0] >> 4 {
        4 => {
            if fold(sum(&p[..20])) != 0xffff {
                return Err("IPv4 header checksum".into());
            }
            let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
            let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
            let seg = &p[20..];
            let acc = if p[9] == 1 {
                sum(seg)
            } else {
                add(pseudo4(src, dst, p[9], seg.len() as u32), sum(seg))
            };
            if fold(acc) != 0xffff {
                Err(format!("IPv4 L4 checksum, protocol {}", p[9]))
            } else {
                Ok(())
            }
        }
        6 => {
            let src = Ipv6Addr::from(<[u8; 16]>::try_from(&p[8..24]).unwrap());
            let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&p[24..40]).unwrap());
            let seg = &p[40..];
            let acc = add(pseudo6(src, dst, p[6], seg.len() as u32), sum(seg));
            if fold(acc) != 0xffff {
                Err(format!("IPv6 L4 checksum, next header {}", p[6]))
            } else {
                Ok(())
            }
        }
        v => Err(format!("version {v}")),
    }
}

fn one(o: Outcome, out: &[u8]) -> Result<Vec<u8>, TestCaseError> {
    match o {
        Outcome::Translated(e) if e.count() == 1 => Ok(e.packets(out).next().unwrap().to_vec()),
        other => Err(TestCaseError::fail(format!(
            "not one translated packet: {other:?}"
        ))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    // RFC 7915 §4 then §5: the original comes back with TTL - 2; ID and DF are regenerated.
    #[test]
    fn v4_v6_v4_round_trip(
        prefix in 0usize..6, src in unicast(), dst in unicast(), tos in any::<u8>(),
        ttl in 3u8.., id in any::<u16>(), l4 in l4(),
    ) {
        let t = translator(prefix);
        let input = ipv4(Ipv4Addr::from_bits(src), Ipv4Addr::from_bits(dst), tos, ttl, id, true, &l4);
        let mut mid = vec![0u8; Translator::out_len(input.len())];
        let v6 = one(t.translate_4to6(&input, &mut mid), &mid)?;
        checksums_ok(&v6).map_err(TestCaseError::fail)?;
        let mut back = vec![0u8; Translator::out_len(v6.len())];
        let v4 = one(t.translate_6to4(&v6, &mut back), &back)?;
        checksums_ok(&v4).map_err(TestCaseError::fail)?;
        prop_assert_eq!(v4.len(), input.len());
        prop_assert_eq!(&v4[..4], &input[..4]);
        prop_assert_eq!(v4[6] & 0x40 != 0, input.len() > 1260, "DF by the 1260-byte rule");
        prop_assert_eq!(v4[8], ttl - 2);
        prop_assert_eq!(&v4[9..10], &input[9..10]);
        prop_assert_eq!(&v4[12..], &input[12..], "addresses and payload, checksum included");
    }

    // RFC 7915 §5 then §4: the original comes back with hop limit - 2.
    #[test]
    fn v6_v4_v6_round_trip(
        prefix in 0usize..6, src in unicast(), dst in unicast(), tc in any::<u8>(),
        hop in 3u8.., l4 in l4(),
    ) {
        let t = translator(prefix);
        let pool = Pool6::new(PREFIXES[prefix].parse().unwrap()).unwrap();
        let s6 = pool.embed(Ipv4Addr::from_bits(src), &[]).unwrap();
        let d6 = pool.embed(Ipv4Addr::from_bits(dst), &[]).unwrap();
        let input = ipv6(s6, d6, tc, hop, &l4);
        let mut mid = vec![0u8; Translator::out_len(input.len())];
        let v4 = one(t.translate_6to4(&input, &mut mid), &mid)?;
        checksums_ok(&v4).map_err(TestCaseError::fail)?;
        let mut back = vec![0u8; Translator::out_len(v4.len())];
        let v6 = one(t.translate_4to6(&v4, &mut back), &back)?;
        checksums_ok(&v6).map_err(TestCaseError::fail)?;
        prop_assert_eq!(&v6[..7], &input[..7]);
        prop_assert_eq!(v6[7], hop - 2);
        prop_assert_eq!(&v6[8..], &input[8..]);
    }

    // DF clear and bigger than lowest-ipv6-mtu: fragments that reassemble to the translation.
    #[test]
    fn fragments_reassemble(src in unicast(), dst in unicast(), l4 in l4(), pad in 1300usize..3000) {
        let t = translator(5);
        let mut l4 = l4;
        l4.bytes.resize(l4.bytes.len() + pad, 0x5a);
        if l4.proto == 17 {
            let len = l4.bytes.len() as u16;
            l4.bytes[4..6].copy_from_slice(&len.to_be_bytes());
        }
        prop_assume!(l4.proto != 1);
        let input = ipv4(Ipv4Addr::from_bits(src), Ipv4Addr::from_bits(dst), 0, 64, 4321, false, &l4);
        let mut out = vec![0u8; Translator::out_len(input.len())];
        let Outcome::Translated(e) = t.translate_4to6(&input, &mut out) else {
            return Err(TestCaseError::fail("not translated"));
        };
        let mut data = Vec::new();
        let mut first = None;
        for f in e.packets(&out) {
            prop_assert!(f.len() <= 1280);
            prop_assert_eq!(f[6], 44);
            let off = u16::from_be_bytes([f[42], f[43]]);
            prop_assert_eq!(usize::from(off >> 3) * 8, data.len());
            prop_assert_eq!(&f[44..48], &[0, 0, 0x10, 0xe1]);
            first.get_or_insert_with(|| f[..40].to_vec());
            data.extend_from_slice(&f[48..]);
        }
        let mut whole = first.unwrap();
        whole[4..6].copy_from_slice(&(data.len() as u16).to_be_bytes());
        whole[6] = l4.proto;
        whole.extend_from_slice(&data);
        checksums_ok(&whole).map_err(TestCaseError::fail)?;
    }

    // RFC 7915 §4.3 then §5.3: an ICMPv4 error about a packet from the IPv6 side survives both
    // translations, quoted packet included (its ID and DF are regenerated).
    #[test]
    fn icmp_error_round_trip(
        prefix in 0usize..6, a in unicast(), b in unicast(), router in unicast(),
        kind in 0usize..4, ttl in 1u8.., l4 in l4(), cut in 28usize..600,
    ) {
        let (ty, code) = [(3u8, 1u8), (3, 3), (11, 0), (11, 1)][kind];
        let t = translator(prefix);
        let quoted = ipv4(Ipv4Addr::from_bits(a), Ipv4Addr::from_bits(b), 0, ttl, 0, false, &l4);
        let quoted = &quoted[..cut.min(quoted.len())];
        let mut msg = vec![ty, code, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(quoted);
        let err = L4 { proto: 1, bytes: msg };
        let input = ipv4(Ipv4Addr::from_bits(router), Ipv4Addr::from_bits(a), 0, 64, 9, false, &err);
        let mut mid = vec![0u8; Translator::out_len(input.len())];
        let v6 = one(t.translate_4to6(&input, &mut mid), &mid)?;
        checksums_ok(&v6).map_err(TestCaseError::fail)?;
        prop_assert!(v6.len() <= 1280);
        let mut back = vec![0u8; Translator::out_len(v6.len())];
        let v4 = one(t.translate_6to4(&v6, &mut back), &back)?;
        checksums_ok(&v4).map_err(TestCaseError::fail)?;
        prop_assert!(v4.len() <= 576);
        prop_assert_eq!(&v4[20..22], &[ty, code]);
        let q = &v4[28..];
        let n = q.len().min(quoted.len());
        prop_assert_eq!(&q[..4], &quoted[..4]);
        prop_assert_eq!(&q[8..10], &quoted[8..10], "inner TTL untouched");
        prop_assert_eq!(&q[12..n], &quoted[12..n]);
        prop_assert_eq!(fold(sum(&q[..20])), 0xffff, "inner header checksum");
    }
}

/// The copying translation of `input`, when it is exactly one translated packet.
fn copied(t: &Translator<'_>, input: &[u8], v4: bool) -> (Outcome, Option<Vec<u8>>) {
    let mut out = vec![0u8; Translator::out_len(input.len())];
    let o = if v4 {
        t.translate_4to6(input, &mut out)
    } else {
        t.translate_6to4(input, &mut out)
    };
    let one = match o {
        Outcome::Translated(e) if e.count() == 1 => Some(e.packets(&out).next().unwrap().to_vec()),
        _ => None,
    };
    (o, one)
}

/// In-place and copying translation agree: same bytes (IPv4 ID and header checksum aside, as the
/// ID counter moved on), same drops, and an untouched buffer whenever nothing was translated.
fn in_place_agrees(
    t: &Translator<'_>,
    input: &[u8],
    v4: bool,
    headroom: usize,
) -> Result<(), TestCaseError> {
    let (o, one) = copied(t, input, v4);
    let mut buf = vec![0xa5u8; headroom + input.len() + 8];
    buf[headroom..headroom + input.len()].copy_from_slice(input);
    let before = buf.clone();
    let r = if v4 {
        t.translate_4to6_in_place(&mut buf, headroom, input.len())
    } else {
        t.translate_6to4_in_place(&mut buf, headroom, input.len())
    };
    match r {
        InPlace::Translated(range) => {
            let want = one.ok_or_else(|| {
                TestCaseError::fail(format!("in place translated, copy gave {o:?}"))
            })?;
            let got = &buf[range];
            prop_assert_eq!(got.len(), want.len());
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                let regenerated = !v4 && matches!(i, 4 | 5 | 10 | 11);
                prop_assert!(regenerated || g == w, "byte {} differs", i);
            }
            checksums_ok(got).map_err(TestCaseError::fail)?;
        }
        InPlace::Dropped(reason) => {
            prop_assert_eq!(o, Outcome::Dropped(reason));
            prop_assert!(buf == before);
        }
        InPlace::NeedsOutBuffer => {
            prop_assert!(buf == before);
            // The IPv6 header needs 20 bytes more than the IPv4 one, 28 with a Fragment header;
            // IPv4 always fits over the IPv6 headers. With that room, a single plain packet must
            // be translated in place.
            let fragment = v4 && u16::from_be_bytes([input[6], input[7]]) & 0x3fff != 0;
            let room = !v4 || headroom >= if fragment { 28 } else { 20 };
            prop_assert!(
                one.is_none() || !room,
                "refused in place with {} bytes of headroom",
                headroom
            );
        }
        other => return Err(TestCaseError::fail(format!("in place: {other:?}"))),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn in_place_4to6_agrees_with_copy(
        prefix in 0usize..6, src in unicast(), dst in unicast(), ttl in 0u8..4,
        df in any::<bool>(), l4 in l4(), headroom in 0usize..40,
    ) {
        let t = translator(prefix);
        let input = ipv4(Ipv4Addr::from_bits(src), Ipv4Addr::from_bits(dst), 0, ttl.max(1) + ttl / 3 * 60, 7, df, &l4);
        in_place_agrees(&t, &input, true, headroom)?;
    }

    #[test]
    fn in_place_6to4_agrees_with_copy(
        prefix in 0usize..6, src in unicast(), dst in unicast(), hop in 0u8..4, l4 in l4(),
        headroom in 0usize..8,
    ) {
        let t = translator(prefix);
        let pool = Pool6::new(PREFIXES[prefix].parse().unwrap()).unwrap();
        let s6 = pool.embed(Ipv4Addr::from_bits(src), &[]).unwrap();
        let d6 = pool.embed(Ipv4Addr::from_bits(dst), &[]).unwrap();
        let input = ipv6(s6, d6, 0, hop + hop / 3 * 60, &l4);
        in_place_agrees(&t, &input, false, headroom)?;
    }
}
