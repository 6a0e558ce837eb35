//! The gateway's whole per-packet step (what a worker does between reading the device and
//! writing it), on arbitrary offload headers and packets: echo to its own addresses, the
//! offload checks, in-place translation, the copying path. Whatever it writes must be well
//! formed for the kernel, and a packet without offloads must come out exactly as the translator
//! alone makes it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sixgate::gateway::Settings;
use sixgate::gateway::internal;
use sixgate::nat64_xlat::{Eam, Pool6, UdpZeroChecksum};

fuzz_target!(|data: &[u8]| {
    let [knobs, read @ ..] = data else { return };
    let mut s = Settings::new(Some(
        Pool6::new(
            if knobs & 1 == 0 {
                "64:ff9b::/96"
            } else {
                "2001:db8:100::/40"
            }
            .parse()
            .unwrap(),
        )
        .unwrap(),
    ));
    s.eam = vec![
        Eam::new(
            "192.0.2.0/28".parse().unwrap(),
            "2001:db8:6::/124".parse().unwrap(),
        )
        .unwrap(),
    ];
    if knobs & 2 != 0 {
        s.own_v4 = Some("192.0.2.1".parse().unwrap());
        s.own_v6 = Some("2001:db8:64::1".parse().unwrap());
    }
    if knobs & 4 != 0 {
        s.non_global = Vec::new();
    }
    if knobs & 8 != 0 {
        s.mtu = 1280;
    }
    s.udp_zero_checksum = match knobs >> 6 {
        0 => UdpZeroChecksum::Drop,
        1 => UdpZeroChecksum::Icmp,
        _ => UdpZeroChecksum::Compute,
    };
    let written = internal::process(&s, read);
    for w in &written {
        assert!(w.len() > 10, "an offload header alone");
        let (flags, gso, start, offset) = (
            w[0],
            w[1],
            u16::from_le_bytes([w[6], w[7]]),
            u16::from_le_bytes([w[8], w[9]]),
        );
        let p = &w[10..];
        let len = match p[0] >> 4 {
            4 => usize::from(u16::from_be_bytes([p[2], p[3]])),
            6 => 40 + usize::from(u16::from_be_bytes([p[4], p[5]])),
            v => panic!("wrote IP version {v}"),
        };
        assert_eq!(len, p.len(), "length field disagrees with the write");
        assert!(matches!(gso & 0x7f, 0 | 1 | 4), "GSO type {gso}");
        if gso & 0x7f != 0 {
            assert_eq!(gso & 0x7f, if p[0] >> 4 == 4 { 1 } else { 4 });
            assert_eq!(flags & 1, 1, "GSO without a partial checksum");
        }
        if flags & 1 != 0 {
            assert!(matches!(offset, 6 | 16));
            assert!(usize::from(start) + usize::from(offset) + 2 <= p.len());
        }
    }
    // Without offloads the gateway adds nothing to the translation (its echo answers aside).
    if read.len() > 10 && read[..10] == [0; 10] && !internal::is_echo_to_gateway(&s, &read[10..]) {
        let reference = internal::reference(&s, &read[10..]);
        let ours: Vec<&[u8]> = written.iter().map(|w| &w[10..]).collect();
        let theirs: Vec<&[u8]> = reference.iter().map(Vec::as_slice).collect();
        assert_eq!(ours, theirs);
    }
});
