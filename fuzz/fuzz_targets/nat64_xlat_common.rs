//! Shared by the nat64_xlat byte-level targets: the first two input bytes pick the configuration and
//! the output buffer size, the rest is the packet.

use core::net::{Ipv4Addr, Ipv6Addr};

use nat64_xlat::{Config, Eam, InPlace, Outcome, Pool6, Translator, UdpZeroChecksum};

// Each target uses one of the variants.
#[allow(dead_code)]
pub enum Direction {
    FourToSix,
    SixToFour,
}

const CANARY: u8 = 0xa5;

pub fn check(data: &[u8], dir: Direction) {
    let [knobs, size, packet @ ..] = data else {
        return;
    };
    let eams = [
        Eam::new(
            "1.0.0.0/24".parse().unwrap(),
            "2001:db8:3::/120".parse().unwrap(),
        )
        .unwrap(),
        Eam::new(
            "10.0.0.0/16".parse().unwrap(),
            "2001:db8:2::/112".parse().unwrap(),
        )
        .unwrap(),
    ];
    let prefixes = [
        "2001:db8:100::/40",
        "64:ff9b::/96",
        "2001:db8::/32",
        "64:ff9b:1::/48",
    ];
    let mut cfg = Config::new(Some(
        Pool6::new(prefixes[usize::from(knobs & 3)].parse().unwrap()).unwrap(),
    ));
    cfg.eam = &eams;
    if knobs & 4 != 0 {
        cfg.own_v4 = Some(Ipv4Addr::new(198, 51, 100, 1));
        cfg.own_v6 = Some("2001:db8:1c0:2:1::".parse::<Ipv6Addr>().unwrap());
        cfg.rfc6791_v4 = Some("203.0.113.0/28".parse().unwrap());
    }
    if knobs & 8 != 0 {
        // With bit 6 also set, an IPv4 link below 576 (down to the 68-byte minimum).
        cfg.mtu4 = if knobs & 64 != 0 {
            68 + u16::from(*size)
        } else {
            576
        };
        cfg.mtu6 = 1280;
        cfg.lowest_ipv6_mtu = 1402;
    }
    // Zero UDP checksums: bit 4 clear keeps the default `Drop`; set, bit 1 of the size byte picks
    // `Icmp` (set) or `Compute`.
    cfg.udp_zero_checksum = match (knobs & 16 != 0, size & 2 != 0) {
        (false, _) => UdpZeroChecksum::Drop,
        (true, false) => UdpZeroChecksum::Compute,
        (true, true) => UdpZeroChecksum::Icmp,
    };
    cfg.hairpinning = knobs & 32 == 0;
    if knobs & 64 != 0 {
        cfg.rfc6791_v6 = Some("2001:db8:ee::/120".parse().unwrap());
        cfg.traffic_class = Some(*knobs);
    }
    if knobs & 128 != 0 {
        // EAM-only: no RFC 6052 prefix.
        cfg.pool6 = None;
    }
    let t = Translator::new(cfg);

    // Sometimes a generous buffer, sometimes a tight one.
    let full = Translator::out_len(packet.len());
    let len = if size & 1 == 0 {
        full
    } else {
        (usize::from(*size) * 16).min(full)
    };
    // Safe Rust cannot write past the slice it is given; what is checked is that a short buffer is
    // reported, never a panic.
    let mut buf = vec![CANARY; len];
    let outcome = match dir {
        Direction::FourToSix => t.translate_4to6(packet, &mut buf),
        Direction::SixToFour => t.translate_6to4(packet, &mut buf),
    };
    if len == full {
        assert_ne!(
            outcome,
            Outcome::Dropped(nat64_xlat::DropReason::BufferTooSmall),
            "out_len is not enough"
        );
    }
    if len == full {
        in_place_agrees(&t, packet, &dir, outcome, &buf[..len]);
    }
    let emitted = match outcome {
        Outcome::Translated(e) | Outcome::Hairpinned(e) | Outcome::IcmpError { reply: e, .. } => e,
        Outcome::Dropped(_) => return,
        other => panic!("unknown outcome {other:?}"),
    };
    assert!(emitted.len() <= len && emitted.count() >= 1);
    let want_version = match (dir, outcome) {
        (Direction::FourToSix, Outcome::Translated(_)) => 6,
        (Direction::FourToSix, _) => 4,
        (Direction::SixToFour, Outcome::Translated(_)) => 4,
        (Direction::SixToFour, _) => 6,
    };
    let mut n = 0;
    for p in emitted.packets(&buf[..len]) {
        n += 1;
        assert_eq!(p[0] >> 4, want_version);
        if want_version == 4 {
            assert_eq!(usize::from(u16::from_be_bytes([p[2], p[3]])), p.len());
            assert_eq!(
                nat64_xlat::checksum::fold(nat64_xlat::checksum::sum(&p[..20])),
                0xffff
            );
        } else {
            assert_eq!(40 + usize::from(u16::from_be_bytes([p[4], p[5]])), p.len());
        }
        if !matches!(outcome, Outcome::Translated(_)) {
            assert!(
                p.len() <= if want_version == 4 { 576 } else { 1280 }
                    || matches!(outcome, Outcome::Hairpinned(_))
            );
        }
    }
    assert_eq!(n, emitted.count());
}

/// In-place translation of the same packet (with 28 bytes of headroom) must agree with the copy:
/// same bytes (the IPv4 ID and header checksum aside: the ID counter moved on), same drop reason,
/// and an untouched buffer whenever it does not translate.
fn in_place_agrees(t: &Translator<'_>, packet: &[u8], dir: &Direction, copy: Outcome, out: &[u8]) {
    let mut buf = vec![CANARY; 28 + packet.len() + 16];
    buf[28..28 + packet.len()].copy_from_slice(packet);
    let before = buf.clone();
    let r = match dir {
        Direction::FourToSix => t.translate_4to6_in_place(&mut buf, 28, packet.len()),
        Direction::SixToFour => t.translate_6to4_in_place(&mut buf, 28, packet.len()),
    };
    match r {
        InPlace::Translated(range) => {
            let Outcome::Translated(e) = copy else {
                panic!("in place translated, copy gave {copy:?}")
            };
            assert_eq!(e.count(), 1);
            let want = e.packets(out).next().unwrap();
            let got = &buf[range];
            assert_eq!(got.len(), want.len());
            for (i, (g, w)) in got.iter().zip(want).enumerate() {
                let regenerated =
                    matches!(dir, Direction::SixToFour) && matches!(i, 4 | 5 | 10 | 11);
                assert!(regenerated || g == w, "byte {i} differs");
            }
        }
        InPlace::Dropped(reason) => {
            assert_eq!(copy, Outcome::Dropped(reason));
            assert!(buf == before);
        }
        InPlace::NeedsOutBuffer => {
            assert!(buf == before);
            // 28 bytes of headroom are always enough: a plain single packet must go in place.
            if let Outcome::Translated(e) = copy {
                let p = e.packets(out).next().unwrap();
                assert!(
                    e.count() > 1 || is_icmp_error(p),
                    "a plain single packet was refused in place"
                );
            }
        }
        other => panic!("in place: {other:?} for a range inside the buffer"),
    }
}

/// Whether an emitted packet is an ICMP error (translated from one; never done in place).
fn is_icmp_error(p: &[u8]) -> bool {
    match p[0] >> 4 {
        4 => {
            let ihl = usize::from(p[0] & 15) * 4;
            p[9] == 1 && p.get(ihl).is_some_and(|&ty| ty != 0 && ty != 8)
        }
        _ => p[6] == 58 && p.get(40).is_some_and(|&ty| ty < 128),
    }
}
