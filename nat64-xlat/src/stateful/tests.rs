//! The stateful translator driven through its public API with real packets, section by section
//! of RFC 6146 (with RFC 4787, RFC 6888, RFC 7422 and RFC 7857 where they add to it). Every
//! packet that comes out is checked with [`crate::testpkt::verify`]: IPv4 header and transport
//! checksums recomputed from scratch.
//!
//! The address plan: pool6 is the Well-Known Prefix 64:ff9b::/96, so remote and pool4 addresses
//! must be global (RFC 6052 §3.1 refuses the documentation ranges under it): remotes are public
//! resolvers' addresses, pool4 is 100.64.0.16/29. Customers are 2001:db8:6::/56 cut into /64
//! blocks of 2016 ports: block n is 2001:db8:6:n::/64 on 100.64.0.(16 + n / 32), ports
//! 1024 + 2016 (n mod 32) onwards.

use core::net::{Ipv4Addr, Ipv6Addr};
use core::time::Duration;
use std::string::ToString;
use std::vec;
use std::vec::Vec;

use super::{
    Filtering, HELD_SYNS, Layout, MappingEvent, Nat64, Proto, ReconfigureError, StatefulConfig,
    TcpState, Timeouts,
};
use crate::testpkt::{V4, V6, ext8, frag6, verify};
use crate::{Config, DropReason, InPlace, Outcome, Pool6, Translator, checksum};

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP4: u8 = 1;
const ICMP6: u8 = 58;

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

const R1: Ipv4Addr = Ipv4Addr::new(8, 8, 8, 8);
const R2: Ipv4Addr = Ipv4Addr::new(9, 9, 9, 9);
const R3: Ipv4Addr = Ipv4Addr::new(1, 1, 1, 1);
/// A router on the IPv4 side that reports errors.
const ROUTER: Ipv4Addr = Ipv4Addr::new(8, 8, 4, 4);
const OWN4: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 1);
const START: u64 = 1000;

fn own6() -> Ipv6Addr {
    "2001:db8:64::1".parse().unwrap()
}

/// Host `iid` of customer block `block` (2001:db8:6:block::iid).
fn host(block: u16, iid: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 6, block, 0, 0, 0, iid)
}

/// An IPv4 address under the Well-Known Prefix.
fn wkp(a: Ipv4Addr) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o[..4].copy_from_slice(&[0, 0x64, 0xff, 0x9b]);
    o[12..].copy_from_slice(&a.octets());
    Ipv6Addr::from(o)
}

fn layout_with(ports: core::ops::RangeInclusive<u16>, ppb: u16) -> Layout {
    Layout::new(
        &["100.64.0.16/29".parse().unwrap()],
        ports,
        &["2001:db8:6::/56".parse().unwrap()],
        64,
        ppb,
    )
    .unwrap()
}

fn cfg() -> StatefulConfig {
    let mut c = StatefulConfig::new(layout_with(1024..=65535, 2016));
    c.capacity = 4096;
    c.hash_key = 0x5eed;
    c
}

fn translator() -> Translator<'static> {
    let mut c = Config::new(Some(Pool6::new("64:ff9b::/96".parse().unwrap()).unwrap()));
    c.own_v4 = Some(OWN4);
    c.own_v6 = Some(own6());
    Translator::new(c)
}

// Transport segments, checksums filled in by the IP builders.

fn udp(sport: u16, dport: u16, body: &[u8]) -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&(8 + body.len() as u16).to_be_bytes());
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(body);
    s
}

fn tcp(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&0x0102_0304u32.to_be_bytes());
    s.extend_from_slice(&(if flags & ACK != 0 { 0x0a0b_0c0du32 } else { 0 }).to_be_bytes());
    s.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    s
}

fn echo(ty: u8, id: u16, seq: u16) -> Vec<u8> {
    let mut s = vec![ty, 0, 0, 0];
    s.extend_from_slice(&id.to_be_bytes());
    s.extend_from_slice(&seq.to_be_bytes());
    s.extend_from_slice(b"ping");
    s
}

/// An IPv6 packet from `src` to the remote IPv4 `dst` (under the WKP).
fn six(src: Ipv6Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut h = V6::new(proto);
    h.src = src;
    h.dst = wkp(dst);
    h.build(l4, true)
}

/// An IPv4 packet from `src` to `dst`.
fn four(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut h = V4::new(proto);
    h.src = src;
    h.dst = dst;
    h.build(l4, true)
}

fn be16(p: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([p[at], p[at + 1]])
}

/// (source, source port, destination, destination port) of an IPv4 packet; for ICMP echo both
/// ports are the identifier.
fn ends4(p: &[u8]) -> (Ipv4Addr, u16, Ipv4Addr, u16) {
    let l4 = usize::from(p[0] & 15) * 4;
    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    if p[9] == ICMP4 {
        return (src, be16(p, l4 + 4), dst, be16(p, l4 + 4));
    }
    (src, be16(p, l4), dst, be16(p, l4 + 2))
}

/// The same for an IPv6 packet without extension headers.
fn ends6(p: &[u8]) -> (Ipv6Addr, u16, Ipv6Addr, u16) {
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&p[8..24]).unwrap());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&p[24..40]).unwrap());
    if p[6] == ICMP6 {
        return (src, be16(p, 44), dst, be16(p, 44));
    }
    (src, be16(p, 40), dst, be16(p, 42))
}

/// The bytes an outcome wrote (one packet), empty when nothing was.
fn written(o: &Outcome, out: &[u8]) -> Vec<u8> {
    match o {
        Outcome::Translated(e) | Outcome::Hairpinned(e) | Outcome::IcmpError { reply: e, .. } => {
            assert_eq!(e.count(), 1, "{o:?}");
            out[..e.len()].to_vec()
        }
        _ => Vec::new(),
    }
}

/// A translator, its state and a clock.
struct Rig {
    nat: Nat64,
    x: Translator<'static>,
    now: Duration,
    buf: Vec<u8>,
}

impl Rig {
    fn new(cfg: StatefulConfig) -> Self {
        let mut r = Self::cold(cfg);
        // A gateway turns the wheel from the start, before traffic.
        r.expire();
        r
    }

    /// Without the first `expire` call.
    fn cold(cfg: StatefulConfig) -> Self {
        Rig {
            nat: Nat64::new(cfg),
            x: translator(),
            now: Duration::from_secs(START),
            buf: vec![0; Translator::out_len(2000)],
        }
    }

    fn out(&mut self, p: &[u8]) -> (Outcome, Vec<u8>) {
        let o = self.nat.translate_6to4(&self.x, self.now, p, &mut self.buf);
        let w = written(&o, &self.buf);
        if !w.is_empty() {
            verify(&w).unwrap_or_else(|e| panic!("{e}: {o:?} {w:02x?}"));
        }
        (o, w)
    }

    fn inb(&mut self, p: &[u8]) -> (Outcome, Vec<u8>) {
        let o = self.nat.translate_4to6(&self.x, self.now, p, &mut self.buf);
        let w = written(&o, &self.buf);
        if !w.is_empty() {
            verify(&w).unwrap_or_else(|e| panic!("{e}: {o:?} {w:02x?}"));
        }
        (o, w)
    }

    /// One `expire` at the current time: sessions removed and the packets emitted.
    fn expire(&mut self) -> (u32, Vec<Vec<u8>>) {
        let mut sent = Vec::new();
        let mut out = [0u8; 576];
        let n = self
            .nat
            .expire(&self.x, self.now, &mut out, |p| sent.push(p.to_vec()));
        for p in &sent {
            verify(p).unwrap();
        }
        (n, sent)
    }

    /// `secs` seconds, one `expire` each.
    fn run(&mut self, secs: u64) -> (u32, Vec<Vec<u8>>) {
        let (mut n, mut sent) = (0, Vec::new());
        for _ in 0..secs {
            self.now += Duration::from_secs(1);
            let (k, s) = self.expire();
            n += k;
            sent.extend(s);
        }
        (n, sent)
    }

    /// Outbound, which must be translated; the IPv4 packet.
    fn out_ok(&mut self, p: &[u8]) -> Vec<u8> {
        let (o, w) = self.out(p);
        assert!(matches!(o, Outcome::Translated(_)), "{o:?}");
        assert_eq!(w[0] >> 4, 4);
        w
    }

    /// Inbound, which must be translated; the IPv6 packet.
    fn inb_ok(&mut self, p: &[u8]) -> Vec<u8> {
        let (o, w) = self.inb(p);
        assert!(matches!(o, Outcome::Translated(_)), "{o:?}");
        assert_eq!(w[0] >> 4, 6);
        w
    }

    fn state(&self, h: Ipv6Addr, port: u16, r: Ipv4Addr, rport: u16) -> Option<TcpState> {
        self.nat.tcp_state(h, port, r, rport)
    }
}

/// The refusal an outbound packet got: its reason, and the ICMPv6 error's type and code, after
/// checking that the error goes from the translator to the sender and quotes the packet.
fn refusal(o: &Outcome, w: &[u8], sent: &[u8]) -> (DropReason, u8, u8) {
    let Outcome::IcmpError { reason, .. } = o else {
        panic!("not refused: {o:?}")
    };
    assert_eq!(w[6], ICMP6);
    assert_eq!(&w[8..24], &own6().octets());
    assert_eq!(&w[24..40], &sent[8..24]);
    assert_eq!(&w[48..], &sent[..w.len() - 48]);
    (*reason, w[40], w[41])
}

// RFC 6146 §3.5.1, RFC 4787 REQ-1: endpoint-independent mapping.

#[test]
fn one_binding_for_every_remote() {
    let mut r = Rig::new(cfg());
    let h = host(1, 5);
    let p1 = r.out_ok(&six(h, R1, UDP, &udp(40000, 53, b"query one")));
    let (s1, sp1, d1, dp1) = ends4(&p1);
    assert_eq!((d1, dp1), (R1, 53));
    let p2 = r.out_ok(&six(h, R2, UDP, &udp(40000, 5353, b"query two")));
    let (s2, sp2, d2, dp2) = ends4(&p2);
    assert_eq!((d2, dp2), (R2, 5353));
    assert_eq!(
        (s1, sp1),
        (s2, sp2),
        "EIM: one pool4 endpoint whatever the remote"
    );
    // Block 1's address and ports, as RFC 7422's function says.
    let b = r.nat.layout().block(1).unwrap();
    assert_eq!(s1, b.addr);
    assert_eq!(s1, Ipv4Addr::new(100, 64, 0, 16));
    assert!(b.ports.contains(&sp1), "{sp1} not in {:?}", b.ports);
    assert_eq!(r.nat.layout().owner(s1, sp1), Some(b));
    assert_eq!(r.nat.binding(Proto::Udp, h, 40000), Some((s1, sp1)));
    assert_eq!(r.nat.binding_of(Proto::Udp, s1, sp1), Some((h, 40000)));
    // The payload is untouched.
    assert_eq!(&p1[28..], b"query one");
    let st = r.nat.stats();
    assert_eq!(st.sessions, [0, 2, 0]);
    assert_eq!(st.bindings, 1);
    assert_eq!(st.opened, 2);
    // Another source port, and another host of the same /64: more bindings of the same block.
    let p3 = r.out_ok(&six(h, R1, UDP, &udp(40002, 53, b"x")));
    let p4 = r.out_ok(&six(host(1, 6), R1, UDP, &udp(40000, 53, b"x")));
    let (a3, sp3, ..) = ends4(&p3);
    let (a4, sp4, ..) = ends4(&p4);
    assert_eq!((a3, a4), (s1, s1));
    assert!(b_ports(&r, 1).contains(&sp3) && b_ports(&r, 1).contains(&sp4));
    assert!(sp3 != sp1 && sp4 != sp1 && sp3 != sp4);
    // TCP and ICMP have their own BIBs.
    r.out_ok(&six(h, R1, TCP, &tcp(40000, 80, SYN)));
    r.out_ok(&six(h, R1, ICMP6, &echo(128, 40000, 1)));
    assert!(r.nat.binding(Proto::Tcp, h, 40000).is_some());
    assert!(r.nat.binding(Proto::Icmp, h, 40000).is_some());
    assert_eq!(r.nat.stats().bindings, 5);
    assert_eq!(r.nat.stats().sessions, [1, 4, 1]);
    // Another block: another address range.
    let p5 = r.out_ok(&six(host(40, 1), R1, UDP, &udp(40000, 53, b"x")));
    let (a5, sp5, ..) = ends4(&p5);
    assert_eq!(a5, Ipv4Addr::new(100, 64, 0, 17));
    assert!(b_ports(&r, 40).contains(&sp5));
}

fn b_ports(r: &Rig, block: u32) -> core::ops::RangeInclusive<u16> {
    r.nat.layout().block(block).unwrap().ports
}

// RFC 6146 §3.5.1, RFC 4787 REQ-8: filtering of inbound UDP.

#[test]
fn endpoint_independent_filtering_lets_any_remote_in() {
    let mut r = Rig::new(cfg());
    let h = host(3, 9);
    let (a, p, ..) = ends4(&r.out_ok(&six(h, R1, UDP, &udp(40000, 53, b"q"))));
    // The remote it talked to, from its port and from another.
    for (src, sport) in [(R1, 53), (R1, 5353), (R3, 9999)] {
        let v6 = r.inb_ok(&four(src, a, UDP, &udp(sport, p, b"answer")));
        assert_eq!(ends6(&v6), (wkp(src), sport, h, 40000));
        assert_eq!(&v6[48..], b"answer");
    }
    assert_eq!(r.nat.stats().sessions, [0, 3, 0]);
    // A port nobody holds.
    let (o, _) = r.inb(&four(R3, a, UDP, &udp(9999, p + 1, b"x")));
    assert_eq!(o, Outcome::Dropped(DropReason::NoSession));
}

#[test]
fn address_dependent_filtering_lets_only_known_addresses_in() {
    let mut c = cfg();
    c.filtering = Filtering::AddressDependent;
    let mut r = Rig::new(c);
    let h = host(3, 9);
    let (a, p, ..) = ends4(&r.out_ok(&six(h, R1, UDP, &udp(40000, 53, b"q"))));
    let v6 = r.inb_ok(&four(R1, a, UDP, &udp(53, p, b"answer")));
    assert_eq!(ends6(&v6), (wkp(R1), 53, h, 40000));
    // Any port of a known address.
    let v6 = r.inb_ok(&four(R1, a, UDP, &udp(5353, p, b"answer")));
    assert_eq!(ends6(&v6), (wkp(R1), 5353, h, 40000));
    // Not an address the host sent to.
    let (o, w) = r.inb(&four(R3, a, UDP, &udp(53, p, b"x")));
    assert_eq!(o, Outcome::Dropped(DropReason::NoSession));
    assert!(w.is_empty());
    assert_eq!(r.nat.stats().sessions, [0, 2, 0]);
    // Until it does.
    r.out_ok(&six(h, R3, UDP, &udp(40000, 123, b"q")));
    r.inb_ok(&four(R3, a, UDP, &udp(53, p, b"x")));
}

// RFC 6146 §3.5.2: TCP, every state by packets.

struct Conn {
    h: Ipv6Addr,
    hp: u16,
    a: Ipv4Addr,
    p: u16,
    r: Ipv4Addr,
    rp: u16,
}

impl Conn {
    fn out(&self, rig: &mut Rig, flags: u8) -> Vec<u8> {
        let v4 = rig.out_ok(&six(self.h, self.r, TCP, &tcp(self.hp, self.rp, flags)));
        assert_eq!(ends4(&v4), (self.a, self.p, self.r, self.rp));
        assert_eq!(v4[20 + 13], flags);
        v4
    }

    fn inb(&self, rig: &mut Rig, flags: u8) -> Vec<u8> {
        let v6 = rig.inb_ok(&four(self.r, self.a, TCP, &tcp(self.rp, self.p, flags)));
        assert_eq!(ends6(&v6), (wkp(self.r), self.rp, self.h, self.hp));
        v6
    }

    fn state(&self, rig: &Rig) -> Option<TcpState> {
        rig.state(self.h, self.hp, self.r, self.rp)
    }
}

/// A V6 SYN and the V4 SYN+ACK: an established connection.
fn open(rig: &mut Rig, h: Ipv6Addr, hp: u16, r: Ipv4Addr, rp: u16) -> Conn {
    let v4 = rig.out_ok(&six(h, r, TCP, &tcp(hp, rp, SYN)));
    let (a, p, ..) = ends4(&v4);
    let c = Conn { h, hp, a, p, r, rp };
    assert_eq!(c.state(rig), Some(TcpState::V6Init));
    c.inb(rig, SYN | ACK);
    assert_eq!(c.state(rig), Some(TcpState::Established));
    c.out(rig, ACK);
    assert_eq!(c.state(rig), Some(TcpState::Established));
    c
}

#[test]
fn tcp_v6_init_times_out_after_the_transitory_timeout() {
    let mut r = Rig::new(cfg());
    let h = host(1, 1);
    r.out_ok(&six(h, R1, TCP, &tcp(50000, 80, SYN)));
    assert_eq!(r.state(h, 50000, R1, 80), Some(TcpState::V6Init));
    // A retransmitted SYN, an ACK from the IPv4 side: still V6 INIT.
    r.run(100);
    r.out_ok(&six(h, R1, TCP, &tcp(50000, 80, SYN)));
    let (a, p) = r.nat.binding(Proto::Tcp, h, 50000).unwrap();
    r.inb_ok(&four(R1, a, TCP, &tcp(80, p, ACK)));
    assert_eq!(r.state(h, 50000, R1, 80), Some(TcpState::V6Init));
    // A non-SYN from the IPv6 side opens nothing.
    let (o, _) = r.out(&six(h, R2, TCP, &tcp(50000, 80, ACK)));
    assert_eq!(o, Outcome::Dropped(DropReason::NoSession));
    // 4 minutes from the retransmitted SYN.
    assert_eq!(r.run(239).0, 0);
    assert_eq!(r.state(h, 50000, R1, 80), Some(TcpState::V6Init));
    assert_eq!(r.run(1).0, 1);
    assert_eq!(r.state(h, 50000, R1, 80), None);
    assert_eq!(r.nat.binding(Proto::Tcp, h, 50000), None);
    assert_eq!(r.nat.binding_of(Proto::Tcp, a, p), None);
}

#[test]
fn tcp_close_by_fins_from_the_ipv6_side_first() {
    let mut r = Rig::new(cfg());
    let c = open(&mut r, host(1, 1), 50000, R1, 443);
    c.out(&mut r, FIN | ACK);
    assert_eq!(c.state(&r), Some(TcpState::V6FinRcv));
    // Half closed: the other side may talk for hours.
    c.inb(&mut r, ACK);
    assert_eq!(c.state(&r), Some(TcpState::V6FinRcv));
    r.run(3600);
    assert_eq!(c.state(&r), Some(TcpState::V6FinRcv));
    c.inb(&mut r, FIN | ACK);
    assert_eq!(c.state(&r), Some(TcpState::BothFinRcv));
    c.out(&mut r, ACK);
    assert_eq!(c.state(&r), Some(TcpState::BothFinRcv));
    // Only the timer ends it: 4 minutes after the second FIN, the last ACK did not extend it.
    assert_eq!(r.run(239).0, 0);
    assert_eq!(c.state(&r), Some(TcpState::BothFinRcv));
    assert_eq!(r.run(1).0, 1);
    assert_eq!(c.state(&r), None);
    assert_eq!(r.nat.binding(Proto::Tcp, c.h, c.hp), None);
    assert_eq!(r.nat.stats().sessions, [0, 0, 0]);
}

#[test]
fn tcp_close_by_fins_from_the_ipv4_side_first() {
    let mut r = Rig::new(cfg());
    let c = open(&mut r, host(1, 1), 50000, R1, 443);
    c.inb(&mut r, FIN | ACK);
    assert_eq!(c.state(&r), Some(TcpState::V4FinRcv));
    c.out(&mut r, ACK);
    assert_eq!(c.state(&r), Some(TcpState::V4FinRcv));
    c.out(&mut r, FIN | ACK);
    assert_eq!(c.state(&r), Some(TcpState::BothFinRcv));
    assert_eq!(r.run(240).0, 1);
    assert_eq!(c.state(&r), None);
}

#[test]
fn tcp_rst_keeps_the_session_four_minutes() {
    // RFC 7857 §2: the RST is translated and the session kept TCP_TRANS, from either side.
    for from_v6 in [false, true] {
        let mut r = Rig::new(cfg());
        let c = open(&mut r, host(1, 1), 50000, R1, 443);
        r.run(1000);
        if from_v6 {
            c.out(&mut r, RST);
        } else {
            c.inb(&mut r, RST);
        }
        assert_eq!(c.state(&r), Some(TcpState::Trans));
        // More RSTs do not extend it.
        r.run(100);
        c.inb(&mut r, RST | ACK);
        assert_eq!(c.state(&r), Some(TcpState::Trans));
        assert_eq!(r.run(139).0, 0);
        assert_eq!(c.state(&r), Some(TcpState::Trans));
        assert_eq!(r.run(1).0, 1);
        assert_eq!(c.state(&r), None);
        assert_eq!(r.nat.binding(Proto::Tcp, c.h, c.hp), None);
    }
}

#[test]
fn tcp_traffic_after_rst_brings_the_session_back() {
    let mut r = Rig::new(cfg());
    let c = open(&mut r, host(1, 1), 50000, R1, 443);
    c.inb(&mut r, RST);
    assert_eq!(c.state(&r), Some(TcpState::Trans));
    r.run(200);
    c.out(&mut r, ACK);
    assert_eq!(c.state(&r), Some(TcpState::Established));
    // With the established lifetime again.
    r.run(3600);
    assert_eq!(c.state(&r), Some(TcpState::Established));
}

#[test]
fn tcp_fin_then_rst_keeps_the_session_four_minutes() {
    // The notes' pitfall "FIN then RST" (Jool #212): RFC 7857 §2's four minutes after an RST
    // hold in the half-closed states too, not 2 h 4 min more.
    for fin_from_v6 in [false, true] {
        let mut r = Rig::new(cfg());
        let c = open(&mut r, host(1, 1), 50000, R1, 443);
        if fin_from_v6 {
            c.out(&mut r, FIN | ACK);
            c.inb(&mut r, RST);
        } else {
            c.inb(&mut r, FIN | ACK);
            c.out(&mut r, RST);
        }
        assert_eq!(
            c.state(&r),
            Some(TcpState::Trans),
            "FIN from v6: {fin_from_v6}"
        );
        assert_eq!(r.run(240).0, 1);
        assert_eq!(c.state(&r), None);
    }
}

#[test]
fn tcp_established_idle_becomes_transitory_then_goes() {
    let mut r = Rig::new(cfg());
    let c = open(&mut r, host(1, 1), 50000, R1, 443);
    // TCP_EST = 2 h 4 min from the last packet.
    assert_eq!(r.run(7439).0, 0);
    assert_eq!(c.state(&r), Some(TcpState::Established));
    assert_eq!(r.run(1).0, 0);
    assert_eq!(c.state(&r), Some(TcpState::Trans));
    assert!(r.nat.binding(Proto::Tcp, c.h, c.hp).is_some());
    assert_eq!(r.run(239).0, 0);
    assert_eq!(c.state(&r), Some(TcpState::Trans));
    assert_eq!(r.run(1).0, 1);
    assert_eq!(c.state(&r), None);
    assert_eq!(r.nat.binding(Proto::Tcp, c.h, c.hp), None);
    let st = r.nat.stats();
    assert_eq!((st.sessions, st.bindings, st.expired), ([0, 0, 0], 0, 1));
}

#[test]
fn tcp_v4_syn_on_a_binding_opens_v4_init() {
    let mut r = Rig::new(cfg());
    let c = open(&mut r, host(1, 1), 50000, R1, 443);
    // EIF: another remote may open a connection to the mapped port.
    let other = Conn {
        r: R2,
        rp: 7000,
        ..c
    };
    other.inb(&mut r, SYN);
    assert_eq!(other.state(&r), Some(TcpState::V4Init));
    other.inb(&mut r, SYN);
    assert_eq!(other.state(&r), Some(TcpState::V4Init));
    other.out(&mut r, SYN | ACK);
    assert_eq!(other.state(&r), Some(TcpState::Established));
    // A third one nobody answers goes after 4 minutes; the others stay.
    let third = Conn {
        r: R3,
        rp: 7001,
        ..other
    };
    third.inb(&mut r, SYN);
    assert_eq!(third.state(&r), Some(TcpState::V4Init));
    assert_eq!(r.run(240).0, 1);
    assert_eq!(third.state(&r), None);
    assert_eq!(other.state(&r), Some(TcpState::Established));
    // A non-SYN opens nothing.
    let fourth = Conn {
        r: R3,
        rp: 7002,
        ..other
    };
    let (o, _) = r.inb(&four(
        fourth.r,
        fourth.a,
        TCP,
        &tcp(fourth.rp, fourth.p, ACK),
    ));
    assert_eq!(o, Outcome::Dropped(DropReason::NoSession));
}

// RFC 6146 §3.5.2.2: unsolicited inbound SYNs.

#[test]
fn unsolicited_syn_is_held_six_seconds_then_refused_with_port_unreachable() {
    let mut r = Rig::new(cfg());
    let b = r.nat.layout().block(1).unwrap();
    let syn = four(R1, b.addr, TCP, &tcp(5555, *b.ports.start() + 10, SYN));
    let (o, w) = r.inb(&syn);
    assert_eq!(o, Outcome::Dropped(DropReason::SynHeld));
    assert!(w.is_empty());
    assert_eq!(r.nat.stats().held_syns, 1);
    // A retransmission is not held twice.
    let (o, _) = r.inb(&syn);
    assert_eq!(o, Outcome::Dropped(DropReason::SynHeld));
    assert_eq!(r.nat.stats().held_syns, 1);
    let (_, sent) = r.run(5);
    assert!(sent.is_empty());
    let (_, sent) = r.run(1);
    assert_eq!(sent.len(), 1);
    let e = &sent[0];
    assert_eq!(ends4(e).0, OWN4);
    assert_eq!(&e[16..20], &R1.octets());
    assert_eq!((e[9], e[20], e[21]), (ICMP4, 3, 3));
    assert_eq!(&e[28..], &syn[..]);
    assert_eq!(r.nat.stats().held_syns, 0);
    assert!(r.run(30).1.is_empty());
    // A port no block owns is not held.
    let (o, _) = r.inb(&four(R1, b.addr, TCP, &tcp(5555, 80, SYN)));
    assert_eq!(o, Outcome::Dropped(DropReason::NoSession));
    // Nor a non-SYN.
    let (o, _) = r.inb(&four(R1, b.addr, TCP, &tcp(5555, 3050, ACK)));
    assert_eq!(o, Outcome::Dropped(DropReason::NoSession));
    assert_eq!(r.nat.stats().held_syns, 0);
}

#[test]
fn held_syns_are_bounded() {
    let mut r = Rig::new(cfg());
    let b = r.nat.layout().block(1).unwrap();
    for k in 0..HELD_SYNS as u16 {
        let (o, _) = r.inb(&four(R1, b.addr, TCP, &tcp(6000 + k, 3050, SYN)));
        assert_eq!(o, Outcome::Dropped(DropReason::SynHeld));
    }
    let (o, _) = r.inb(&four(R1, b.addr, TCP, &tcp(7000, 3050, SYN)));
    assert_eq!(o, Outcome::Dropped(DropReason::NoSession));
    assert_eq!(r.nat.stats().held_syns, HELD_SYNS as u32);
    assert_eq!(r.run(6).1.len(), HELD_SYNS);
    assert_eq!(r.nat.stats().held_syns, 0);
}

#[test]
fn simultaneous_open_through_a_held_syn() {
    // Address-dependent filtering: the binding exists, the remote is unknown, its SYN is held;
    // the host's own SYN to it makes the connection established.
    let mut c = cfg();
    c.filtering = Filtering::AddressDependent;
    let mut r = Rig::new(c);
    let first = open(&mut r, host(1, 1), 50000, R1, 443);
    let peer = Conn {
        r: R2,
        rp: 6000,
        ..first
    };
    let (o, _) = r.inb(&four(R2, peer.a, TCP, &tcp(6000, peer.p, SYN)));
    assert_eq!(o, Outcome::Dropped(DropReason::SynHeld));
    assert_eq!(peer.state(&r), None);
    r.run(3);
    peer.out(&mut r, SYN);
    assert_eq!(peer.state(&r), Some(TcpState::Established));
    assert_eq!(r.nat.stats().held_syns, 0);
    // No Port Unreachable for the held SYN.
    assert!(r.run(10).1.is_empty());
    peer.inb(&mut r, SYN | ACK);
    assert_eq!(peer.state(&r), Some(TcpState::Established));
}

#[test]
fn a_held_syn_is_forgotten_when_its_retransmission_opens_the_session() {
    // The held SYN's 4-tuple gets a session through the filter (the host talked to that address
    // meanwhile): its retransmission reaches the host, and the held copy must not be answered
    // with Port Unreachable 6 s later, which would abort the connection being set up.
    let mut c = cfg();
    c.filtering = Filtering::AddressDependent;
    let mut r = Rig::new(c);
    let first = open(&mut r, host(1, 1), 50000, R1, 443);
    let peer = Conn {
        r: R2,
        rp: 6000,
        ..first
    };
    let syn = four(R2, peer.a, TCP, &tcp(6000, peer.p, SYN));
    assert_eq!(r.inb(&syn).0, Outcome::Dropped(DropReason::SynHeld));
    // The host talks to R2 on another port; R2 retransmits.
    r.out_ok(&six(peer.h, R2, TCP, &tcp(peer.hp, 6001, SYN)));
    peer.inb(&mut r, SYN);
    assert_eq!(peer.state(&r), Some(TcpState::V4Init));
    let (_, sent) = r.run(10);
    assert!(
        sent.is_empty(),
        "Port Unreachable for a SYN that got through: {sent:02x?}"
    );
    assert_eq!(r.nat.stats().held_syns, 0);
}

// RFC 6146 §3.5.1, §3.5.4: UDP and ICMP query sessions and their timers.

#[test]
fn udp_session_lasts_five_minutes_from_the_last_packet_then_frees_its_port() {
    let mut r = Rig::new(cfg());
    let h = host(1, 1);
    let (a, p, ..) = ends4(&r.out_ok(&six(h, R1, UDP, &udp(40000, 53, b"q"))));
    r.run(200);
    // An inbound packet refreshes it too.
    r.inb_ok(&four(R1, a, UDP, &udp(53, p, b"a")));
    assert_eq!(r.run(299).0, 0);
    assert_eq!(r.nat.binding(Proto::Udp, h, 40000), Some((a, p)));
    assert_eq!(r.run(1).0, 1);
    assert_eq!(r.nat.binding(Proto::Udp, h, 40000), None);
    assert_eq!(r.nat.binding_of(Proto::Udp, a, p), None);
    let st = r.nat.stats();
    assert_eq!(
        (st.sessions, st.bindings, st.expired, st.opened),
        ([0, 0, 0], 0, 1, 1)
    );
    // The port is free: nothing gets in.
    let (o, _) = r.inb(&four(R1, a, UDP, &udp(53, p, b"late")));
    assert_eq!(o, Outcome::Dropped(DropReason::NoSession));
    // A new binding of the same source takes another port first (RFC 6888 REQ-8).
    let (a2, p2, ..) = ends4(&r.out_ok(&six(h, R1, UDP, &udp(40000, 53, b"q"))));
    assert_eq!(a2, a);
    assert_ne!(p2, p);
}

#[test]
fn icmp_echo_sessions_use_the_identifier_as_port_for_sixty_seconds() {
    let mut r = Rig::new(cfg());
    let h = host(2, 1);
    let v4 = r.out_ok(&six(h, R1, ICMP6, &echo(128, 0x4242, 1)));
    assert_eq!((v4[9], v4[20]), (ICMP4, 8));
    let (a, id, d, _) = ends4(&v4);
    assert_eq!(d, R1);
    assert!(b_ports(&r, 2).contains(&id));
    assert_eq!(r.nat.binding(Proto::Icmp, h, 0x4242), Some((a, id)));
    assert_eq!(r.nat.binding_of(Proto::Icmp, a, id), Some((h, 0x4242)));
    assert_eq!(&v4[28..], b"ping");
    // The same identifier to another remote: the same mapping.
    assert_eq!(
        ends4(&r.out_ok(&six(h, R2, ICMP6, &echo(128, 0x4242, 2)))).1,
        id
    );
    // The reply comes back with the host's identifier.
    r.run(30);
    let v6 = r.inb_ok(&four(R1, a, ICMP4, &echo(0, id, 1)));
    assert_eq!((v6[6], v6[40]), (ICMP6, 129));
    assert_eq!(ends6(&v6), (wkp(R1), 0x4242, h, 0x4242));
    // A reply from a remote never pinged, or with another identifier: dropped.
    assert_eq!(
        r.inb(&four(R3, a, ICMP4, &echo(0, id, 1))).0,
        Outcome::Dropped(DropReason::NoSession)
    );
    assert_eq!(
        r.inb(&four(R1, a, ICMP4, &echo(0, id ^ 1, 1))).0,
        Outcome::Dropped(DropReason::NoSession)
    );
    // R2's session was made at START, R1's refreshed at START + 30.
    assert_eq!(r.run(30).0, 1);
    assert_eq!(r.run(29).0, 0);
    assert!(r.nat.binding(Proto::Icmp, h, 0x4242).is_some());
    assert_eq!(r.run(1).0, 1);
    assert_eq!(r.nat.binding(Proto::Icmp, h, 0x4242), None);
    assert_eq!(r.nat.stats().sessions, [0, 0, 0]);
}

#[test]
fn the_first_expire_after_traffic_still_expires() {
    // A caller whose first expire() call comes after packets (or after a pause of its timer):
    // sessions made before it must still go once their time has passed.
    let mut r = Rig::cold(cfg());
    let h = host(1, 1);
    r.out_ok(&six(h, R1, UDP, &udp(40000, 53, b"q")));
    r.out_ok(&six(h, R1, ICMP6, &echo(128, 7, 1)));
    r.now += Duration::from_secs(10_000);
    assert_eq!(r.expire().0, 2);
    assert_eq!(r.nat.binding(Proto::Udp, h, 40000), None);
    assert_eq!(r.nat.stats().sessions, [0, 0, 0]);
}

#[test]
fn long_jumps_of_the_clock_expire_everything_due_and_nothing_else() {
    let mut r = Rig::new(cfg());
    let h = host(1, 1);
    let c = open(&mut r, h, 50000, R1, 443);
    r.out_ok(&six(h, R1, UDP, &udp(40000, 53, b"q")));
    r.now += Duration::from_secs(1000);
    assert_eq!(r.expire().0, 1);
    assert_eq!(c.state(&r), Some(TcpState::Established));
    r.now += Duration::from_secs(7000);
    assert_eq!(r.expire().0, 0);
    assert_eq!(c.state(&r), Some(TcpState::Trans));
    r.now += Duration::from_secs(300);
    assert_eq!(r.expire().0, 1);
    assert_eq!(c.state(&r), None);
}

// RFC 6146 §3.8: hairpinning.

#[test]
fn udp_hairpin_between_two_customers() {
    let mut r = Rig::new(cfg());
    let (a, b) = (host(1, 5), host(40, 7));
    let (ab, pb, ..) = ends4(&r.out_ok(&six(b, R1, UDP, &udp(5353, 53, b"q"))));
    // A sends to B's pool4 address and port.
    let sent = six(a, ab, UDP, &udp(40000, pb, b"hello b"));
    let (o, w) = r.out(&sent);
    assert!(matches!(o, Outcome::Hairpinned(_)), "{o:?}");
    let (aa, pa) = r.nat.binding(Proto::Udp, a, 40000).unwrap();
    assert_eq!(ends6(&w), (wkp(aa), pa, b, 5353));
    assert_eq!(w[7], 63);
    assert_eq!(&w[48..], b"hello b");
    assert_ne!(aa, ab);
    // B answers A's pool4 address and port.
    let (o, w) = r.out(&six(b, aa, UDP, &udp(5353, pa, b"hello a")));
    assert!(matches!(o, Outcome::Hairpinned(_)), "{o:?}");
    assert_eq!(ends6(&w), (wkp(ab), pb, a, 40000));
    assert_eq!(r.nat.stats().sessions, [0, 3, 0]);
    // Nothing is bound to that port: dropped.
    let (o, _) = r.out(&six(a, ab, UDP, &udp(40000, pb + 1, b"x")));
    assert_eq!(o, Outcome::Dropped(DropReason::NoSession));
}

#[test]
fn tcp_hairpin_between_two_customers_of_one_address() {
    let mut r = Rig::new(cfg());
    let (a, b) = (host(1, 5), host(2, 7));
    let (ab, pb, ..) = ends4(&r.out_ok(&six(b, R1, TCP, &tcp(6000, 443, SYN))));
    let (o, w) = r.out(&six(a, ab, TCP, &tcp(41000, pb, SYN)));
    assert!(matches!(o, Outcome::Hairpinned(_)), "{o:?}");
    let (aa, pa) = r.nat.binding(Proto::Tcp, a, 41000).unwrap();
    assert_eq!(aa, ab);
    assert_eq!(ends6(&w), (wkp(aa), pa, b, 6000));
    assert_eq!(r.state(a, 41000, ab, pb), Some(TcpState::V6Init));
    assert_eq!(r.state(b, 6000, aa, pa), Some(TcpState::V4Init));
    let (o, w) = r.out(&six(b, aa, TCP, &tcp(6000, pa, SYN | ACK)));
    assert!(matches!(o, Outcome::Hairpinned(_)), "{o:?}");
    assert_eq!(ends6(&w), (wkp(ab), pb, a, 41000));
    assert_eq!(r.state(a, 41000, ab, pb), Some(TcpState::Established));
    assert_eq!(r.state(b, 6000, aa, pa), Some(TcpState::Established));
}

#[test]
fn icmp_is_not_hairpinned() {
    let mut r = Rig::new(cfg());
    let (a, b) = (host(1, 5), host(40, 7));
    let (ab, idb, ..) = ends4(&r.out_ok(&six(b, R1, ICMP6, &echo(128, 9, 1))));
    let (o, w) = r.out(&six(a, ab, ICMP6, &echo(128, idb, 1)));
    assert_eq!(o, Outcome::Dropped(DropReason::NoSession));
    assert!(w.is_empty());
    assert_eq!(r.nat.binding(Proto::Icmp, a, idb), None);
}

#[test]
fn a_hairpinned_packet_at_its_last_hop_gets_time_exceeded() {
    let mut r = Rig::new(cfg());
    let (a, b) = (host(1, 5), host(40, 7));
    let (ab, pb, ..) = ends4(&r.out_ok(&six(b, R1, UDP, &udp(5353, 53, b"q"))));
    let mut h = V6::new(UDP);
    h.src = a;
    h.dst = wkp(ab);
    h.hop_limit = 1;
    let sent = h.build(&udp(40000, pb, b"x"), true);
    let (o, w) = r.out(&sent);
    assert_eq!(refusal(&o, &w, &sent), (DropReason::Expired, 3, 0));
}

// RFC 6146 §3.5.3 and §3.6: ICMP errors matched through the quoted packet.

/// An ICMPv4 error from `ROUTER` to the pool4 address quoting `quoted`.
fn icmp4_error(ty: u8, code: u8, quoted: &[u8]) -> Vec<u8> {
    let dst = ends4(quoted).0;
    let mut m = vec![ty, code, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(quoted);
    four(ROUTER, dst, ICMP4, &m)
}

#[test]
fn icmpv4_error_reaches_the_host_with_its_own_port() {
    let mut r = Rig::new(cfg());
    let h = host(1, 5);
    let sent = six(h, R1, UDP, &udp(40000, 53, b"query"));
    let v4 = r.out_ok(&sent);
    let (a, p, ..) = ends4(&v4);
    assert_ne!(p, 40000);
    let v6 = r.inb_ok(&icmp4_error(3, 3, &v4));
    assert_eq!((v6[6], v6[40], v6[41]), (ICMP6, 1, 4));
    assert_eq!(&v6[8..24], &wkp(ROUTER).octets());
    assert_eq!(&v6[24..40], &h.octets());
    let inner = &v6[48..];
    assert_eq!(ends6(inner), (h, 40000, wkp(R1), 53));
    // The whole datagram was quoted: it comes back as the host sent it, checksum and all.
    verify(inner).unwrap();
    assert_eq!(&inner[40..], &sent[40..]);
    // The error changed nothing: the session is as it was.
    assert_eq!(r.nat.stats().sessions, [0, 1, 0]);
    assert_eq!(r.nat.binding(Proto::Udp, h, 40000), Some((a, p)));
}

#[test]
fn icmpv4_error_quoting_eight_bytes_of_tcp_and_an_echo_request() {
    let mut r = Rig::new(cfg());
    let h = host(1, 5);
    // RFC 792's minimum quote: the IP header and 8 bytes; the length field still says 40.
    let v4 = r.out_ok(&six(h, R1, TCP, &tcp(50000, 443, SYN)));
    let v6 = r.inb_ok(&icmp4_error(3, 1, &v4[..28]));
    assert_eq!((v6[40], v6[41]), (1, 0));
    assert_eq!(&v6[24..40], &h.octets());
    let inner = &v6[48..];
    assert_eq!(ends6(inner), (h, 50000, wkp(R1), 443));
    // Time exceeded about an echo request: the host's identifier comes back.
    let v4 = r.out_ok(&six(h, R1, ICMP6, &echo(128, 0x77, 3)));
    let v6 = r.inb_ok(&icmp4_error(11, 0, &v4));
    assert_eq!((v6[40], v6[41]), (3, 0));
    let inner = &v6[48..];
    verify(inner).unwrap();
    assert_eq!(ends6(inner), (h, 0x77, wkp(R1), 0x77));
}

#[test]
fn icmpv4_error_matching_nothing_is_dropped() {
    let mut r = Rig::new(cfg());
    let h = host(1, 5);
    let v4 = r.out_ok(&six(h, R1, UDP, &udp(40000, 53, b"q")));
    let (a, p, ..) = ends4(&v4);
    // Another remote, another port, a port nobody holds, an address outside pool4.
    let other_remote = four(a, R2, UDP, &udp(p, 53, b"q"));
    let other_rport = four(a, R1, UDP, &udp(p, 54, b"q"));
    let free_port = four(a, R1, UDP, &udp(p + 2, 53, b"q"));
    let outside = four(R3, R1, UDP, &udp(p, 53, b"q"));
    for q in [other_remote, other_rport, free_port, outside] {
        let (o, w) = r.inb(&icmp4_error(3, 3, &q));
        assert_eq!(o, Outcome::Dropped(DropReason::UnmatchedIcmpError));
        assert!(w.is_empty());
    }
}

#[test]
fn icmpv6_error_from_the_customer_goes_out_with_the_pool4_port() {
    let mut r = Rig::new(cfg());
    let h = host(1, 5);
    let (a, p, ..) = ends4(&r.out_ok(&six(h, R1, UDP, &udp(40000, 53, b"q"))));
    // R2 (EIF) sends to the binding; the host answers Port Unreachable.
    let from_r2 = four(R2, a, UDP, &udp(7777, p, b"knock"));
    let got = r.inb_ok(&from_r2);
    let mut e = V6::new(ICMP6);
    e.src = h;
    e.dst = wkp(R2);
    let mut m = vec![1, 4, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&got);
    let err = e.build(&m, true);
    let v4 = r.out_ok(&err);
    assert_eq!((v4[9], v4[20], v4[21]), (ICMP4, 3, 3));
    assert_eq!(ends4(&v4).0, a);
    assert_eq!(&v4[16..20], &R2.octets());
    let inner = &v4[28..];
    assert_eq!(ends4(inner), (R2, 7777, a, p));
    // The datagram R2 sent, as it sent it (its TTL aside).
    verify(inner).unwrap();
    assert_eq!(&inner[20..], &from_r2[20..]);
    // Quoting a packet of no session: dropped.
    let mut e = V6::new(ICMP6);
    e.src = h;
    e.dst = wkp(R3);
    let mut q = V6::new(UDP);
    q.src = wkp(R3);
    q.dst = h;
    let mut m = vec![1, 4, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&q.build(&udp(53, 40000, b"x"), true));
    let (o, w) = r.out(&e.build(&m, true));
    assert_eq!(o, Outcome::Dropped(DropReason::UnmatchedIcmpError));
    assert!(w.is_empty());
}

#[test]
fn errors_the_translator_makes_quote_the_packet_as_it_was_sent() {
    let mut r = Rig::new(cfg());
    let h = host(1, 5);
    // Hop limit 1 going out: Time Exceeded to the host, quoting its packet (its port, not ours).
    let mut b = V6::new(UDP);
    b.src = h;
    b.dst = wkp(R1);
    b.hop_limit = 1;
    let sent = b.build(&udp(40000, 53, b"q"), true);
    let (o, w) = r.out(&sent);
    assert_eq!(refusal(&o, &w, &sent), (DropReason::Expired, 3, 0));
    // A packet refused for its hop limit makes no session.
    assert_eq!(r.nat.binding(Proto::Udp, h, 40000), None);
    r.out_ok(&six(h, R1, UDP, &udp(40000, 53, b"q")));
    // TTL 1 coming in: Time Exceeded to the remote, quoting its packet (our port, not the
    // host's).
    let (a, p) = r.nat.binding(Proto::Udp, h, 40000).unwrap();
    let mut b = V4::new(UDP);
    b.src = R1;
    b.dst = a;
    b.ttl = 1;
    let sent = b.build(&udp(53, p, b"a"), true);
    let (o, w) = r.inb(&sent);
    let Outcome::IcmpError { reason, .. } = o else {
        panic!("{o:?}")
    };
    assert_eq!(reason, DropReason::Expired);
    assert_eq!((w[9], w[20], w[21]), (ICMP4, 11, 0));
    assert_eq!(&w[16..20], &R1.octets());
    assert_eq!(&w[28..], &sent[..]);
}

// RFC 6146 §3.5.1.1, RFC 4787 REQ-3/REQ-4: port ranges and parity.

#[test]
fn well_known_source_ports_get_well_known_ports_and_parity_is_kept() {
    // Ports 0-65535 in blocks of 2048: block 0 holds 0-2047, across the 1024 line.
    let mut c = StatefulConfig::new(layout_with(0..=65535, 2048));
    c.capacity = 4096;
    let mut r = Rig::new(c);
    let h = host(0, 1);
    for sport in [53u16, 123, 1023, 0] {
        let (_, p, ..) = ends4(&r.out_ok(&six(h, R1, UDP, &udp(sport, 53, b"q"))));
        assert!(p < 1024, "source port {sport} got {p}");
        assert_eq!(p & 1, sport & 1, "parity of {sport}: {p}");
    }
    for sport in [1024u16, 40000, 40001, 65535, 50000, 50001] {
        let (_, p, ..) = ends4(&r.out_ok(&six(h, R1, UDP, &udp(sport, 53, b"q"))));
        assert!((1024..2048).contains(&p), "source port {sport} got {p}");
        assert_eq!(p & 1, sport & 1, "parity of {sport}: {p}");
    }
    // A block wholly above 1023 has no well-known port: a well-known source takes one above
    // (RFC 6146 §3.5.1.1 allows another range), so ntpd on port 123 still gets out.
    let (_, p, ..) = ends4(&r.out_ok(&six(host(1, 1), R1, UDP, &udp(123, 123, b"ntp"))));
    assert!((2048..4096).contains(&p), "got {p}");
    assert_eq!(p & 1, 1, "parity of 123: {p}");
}

// RFC 6888 REQ-4, REQ-5, REQ-11 and RFC 7422: customers, per-block limits.

#[test]
fn a_source_outside_the_customers_gets_1_5() {
    let mut r = Rig::new(cfg());
    for src in ["2001:db8:7::1", "2001:db8:5:ffff::1", "2001:db8:6:100::1"] {
        let sent = six(src.parse().unwrap(), R1, UDP, &udp(40000, 53, b"q"));
        let (o, w) = r.out(&sent);
        assert_eq!(refusal(&o, &w, &sent), (DropReason::NotCustomer, 1, 5));
    }
    assert_eq!(r.nat.stats().bindings, 0);
}

#[test]
fn refused_ports_get_1_1() {
    let mut c = cfg();
    c.limits.refuse_ports = vec![25];
    let mut r = Rig::new(c);
    let h = host(1, 1);
    for sent in [
        six(h, R1, TCP, &tcp(50000, 25, SYN)),
        six(h, R1, UDP, &udp(50000, 25, b"q")),
    ] {
        let (o, w) = r.out(&sent);
        assert_eq!(refusal(&o, &w, &sent), (DropReason::PortRefused, 1, 1));
    }
    assert_eq!(r.nat.stats().bindings, 0);
    r.out_ok(&six(h, R1, TCP, &tcp(50000, 587, SYN)));
    // An established binding does not make port 25 reachable either.
    let sent = six(h, R1, TCP, &tcp(50000, 25, SYN));
    let (o, w) = r.out(&sent);
    assert_eq!(refusal(&o, &w, &sent), (DropReason::PortRefused, 1, 1));
    // Inbound from port 25 is a reply, not a destination: fine.
    let (a, p) = r.nat.binding(Proto::Tcp, h, 50000).unwrap();
    r.inb_ok(&four(R2, a, TCP, &tcp(25, p, SYN)));
}

#[test]
fn the_session_limit_refuses_one_block_only() {
    let mut c = cfg();
    c.limits.max_sessions_per_block = 2;
    let mut r = Rig::new(c);
    let (a, b) = (host(1, 1), host(2, 1));
    r.out_ok(&six(a, R1, UDP, &udp(40000, 53, b"q")));
    r.run(10);
    r.out_ok(&six(a, R2, TCP, &tcp(50000, 80, SYN)));
    let sent = six(a, R3, UDP, &udp(40000, 53, b"q"));
    let (o, w) = r.out(&sent);
    assert_eq!(refusal(&o, &w, &sent), (DropReason::SessionLimit, 1, 1));
    // Another host of the same block: the same block, the same limit.
    let sent = six(host(1, 2), R3, UDP, &udp(40000, 53, b"q"));
    let (o, w) = r.out(&sent);
    assert_eq!(refusal(&o, &w, &sent), (DropReason::SessionLimit, 1, 1));
    // Another block is not affected.
    r.out_ok(&six(b, R3, UDP, &udp(40000, 53, b"q")));
    r.out_ok(&six(b, R2, UDP, &udp(40000, 53, b"q")));
    // Nothing was evicted: the live sessions still work both ways.
    let (aa, ap) = r.nat.binding(Proto::Udp, a, 40000).unwrap();
    r.inb_ok(&four(R1, aa, UDP, &udp(53, ap, b"a")));
    // Inbound sessions count too, and are dropped without an error.
    let (o, w) = r.inb(&four(R3, aa, UDP, &udp(53, ap, b"a")));
    assert_eq!(o, Outcome::Dropped(DropReason::SessionLimit));
    assert!(w.is_empty());
    // When the UDP session goes, there is room again.
    r.run(290);
    r.out_ok(&six(a, R3, UDP, &udp(40000, 53, b"q")));
}

#[test]
fn the_rate_limit_counts_per_block_and_second() {
    let mut c = cfg();
    c.limits.new_sessions_per_second = 2;
    let mut r = Rig::new(c);
    let (a, b) = (host(1, 1), host(2, 1));
    r.out_ok(&six(a, R1, UDP, &udp(40000, 53, b"q")));
    r.out_ok(&six(a, R2, UDP, &udp(40000, 53, b"q")));
    // Packets of live sessions are not new sessions.
    r.out_ok(&six(a, R1, UDP, &udp(40000, 53, b"q")));
    let sent = six(a, R3, UDP, &udp(40000, 53, b"q"));
    let (o, w) = r.out(&sent);
    assert_eq!(refusal(&o, &w, &sent), (DropReason::SessionRate, 1, 1));
    r.out_ok(&six(b, R3, UDP, &udp(40000, 53, b"q")));
    r.now += Duration::from_millis(999);
    assert!(matches!(r.out(&sent).0, Outcome::IcmpError { .. }));
    r.now += Duration::from_millis(1);
    r.out_ok(&sent);
}

#[test]
fn block_exhaustion_refuses_and_evicts_nothing() {
    // Four ports a block: block 1 holds 1028-1031.
    let mut c = StatefulConfig::new(layout_with(1024..=65535, 4));
    c.capacity = 4096;
    let mut r = Rig::new(c);
    let (h, h2) = (host(1, 1), host(1, 2));
    let mut got = Vec::new();
    for sport in 40000..40004u16 {
        let (_, p, ..) = ends4(&r.out_ok(&six(h, R1, UDP, &udp(sport, 53, b"q"))));
        got.push(p);
    }
    got.sort();
    assert_eq!(got, [1028, 1029, 1030, 1031]);
    for (src, sport) in [(h, 40004), (h2, 40000)] {
        let sent = six(src, R1, UDP, &udp(sport, 53, b"q"));
        let (o, w) = r.out(&sent);
        assert_eq!(refusal(&o, &w, &sent), (DropReason::BlockExhausted, 1, 1));
    }
    // The four bindings are all there and working.
    for sport in 40000..40004u16 {
        let (a, p) = r.nat.binding(Proto::Udp, h, sport).unwrap();
        let v6 = r.inb_ok(&four(R1, a, UDP, &udp(53, p, b"a")));
        assert_eq!(ends6(&v6).3, sport);
    }
    // Other protocols and blocks have their own ports.
    r.out_ok(&six(h, R1, TCP, &tcp(40004, 80, SYN)));
    r.out_ok(&six(host(2, 1), R1, UDP, &udp(40004, 53, b"q")));
    // Once the sessions expire, the ports are free again.
    r.run(300);
    assert_eq!(r.nat.binding(Proto::Udp, h, 40000), None);
    r.out_ok(&six(h2, R1, UDP, &udp(40000, 53, b"q")));
}

// The in-place entry points give the copying ones' bytes.

#[test]
fn in_place_is_byte_identical_to_copying() {
    let (mut copy, mut place) = (Rig::new(cfg()), Rig::new(cfg()));
    let (h, hb) = (host(1, 5), host(40, 2));
    let mut pkts6 = vec![
        six(h, R1, UDP, &udp(40000, 53, b"query")),
        six(h, R1, TCP, &tcp(50000, 443, SYN)),
        six(h, R1, ICMP6, &echo(128, 0x99, 1)),
        six(hb, R2, UDP, &udp(5353, 53, b"b's query")),
        six(h, R1, TCP, &tcp(50000, 443, ACK)),
    ];
    let in_place = core::cell::Cell::new(0);
    let step = |copy: &mut Rig, place: &mut Rig, p: &[u8], v6: bool| {
        let (o, want) = if v6 { copy.out(p) } else { copy.inb(p) };
        let head = if v6 { 0 } else { 20 };
        let mut buf = vec![0u8; head + p.len()];
        buf[head..].copy_from_slice(p);
        let got = if v6 {
            place
                .nat
                .translate_6to4_in_place(&place.x, place.now, &mut buf, head, p.len())
        } else {
            place
                .nat
                .translate_4to6_in_place(&place.x, place.now, &mut buf, head, p.len())
        };
        match got {
            InPlace::Translated(range) => {
                assert!(matches!(o, Outcome::Translated(_)), "{o:?}");
                assert_eq!(&buf[range], &want[..]);
                in_place.set(in_place.get() + 1);
            }
            InPlace::Hairpinned(range) => {
                assert!(matches!(o, Outcome::Hairpinned(_)), "{o:?}");
                assert_eq!(&buf[range], &want[..]);
                in_place.set(in_place.get() + 1);
            }
            InPlace::Dropped(reason) => assert_eq!(o, Outcome::Dropped(reason)),
            InPlace::NeedsOutBuffer => {
                assert_eq!(&buf[head..], p, "NeedsOutBuffer touched the buffer");
                let (o2, w2) = if v6 { place.out(p) } else { place.inb(p) };
                assert_eq!((o2, w2), (o, want));
            }
            other => panic!("{other:?}"),
        }
    };
    for p in pkts6.drain(..) {
        step(&mut copy, &mut place, &p, true);
    }
    let (a, p) = copy.nat.binding(Proto::Udp, h, 40000).unwrap();
    let (at, pt) = copy.nat.binding(Proto::Tcp, h, 50000).unwrap();
    let (ai, id) = copy.nat.binding(Proto::Icmp, h, 0x99).unwrap();
    let (ab, pb) = copy.nat.binding(Proto::Udp, hb, 5353).unwrap();
    let v4_udp = four(R1, a, UDP, &udp(53, p, b"answer"));
    let pkts4 = vec![
        v4_udp.clone(),
        four(R1, at, TCP, &tcp(443, pt, SYN | ACK)),
        four(R1, ai, ICMP4, &echo(0, id, 1)),
        four(R3, a, UDP, &udp(99, p, b"eif")),
        // Refused, dropped, and errors: the copying path's business.
        four(R1, a, UDP, &udp(53, p + 1, b"nobody")),
        four(R3, at, TCP, &tcp(1, pt + 1, SYN)),
        icmp4_error(3, 3, &copy.out(&six(h, R1, UDP, &udp(40000, 53, b"q"))).1),
    ];
    // The last outbound one went through `copy` only: give `place` the same.
    place.out(&six(h, R1, UDP, &udp(40000, 53, b"q")));
    for p in &pkts4 {
        step(&mut copy, &mut place, p, false);
    }
    let more6 = vec![
        // Hairpinned, a well-known source port (a port above 1023: the block has none below),
        // outside the customers, an error from the customer, hop limit 1.
        six(h, ab, UDP, &udp(40000, pb, b"hairpin")),
        six(h, R1, UDP, &udp(1, 25, b"q")),
        six("2001:db8:7::1".parse().unwrap(), R1, UDP, &udp(1, 53, b"q")),
        {
            let got = copy.inb(&v4_udp).1;
            place.inb(&v4_udp);
            let mut e = V6::new(ICMP6);
            e.src = h;
            e.dst = wkp(R1);
            let mut m = vec![1, 4, 0, 0, 0, 0, 0, 0];
            m.extend_from_slice(&got);
            e.build(&m, true)
        },
        {
            let mut b = V6::new(UDP);
            b.src = h;
            b.dst = wkp(R1);
            b.hop_limit = 1;
            b.build(&udp(40000, 53, b"q"), true)
        },
    ];
    for p in &more6 {
        step(&mut copy, &mut place, p, true);
    }
    // Outbound: UDP (twice), TCP (twice), echo, the well-known source; inbound: UDP (twice), TCP,
    // echo; the hairpin.
    assert_eq!(in_place.get(), 11);
    assert_eq!(copy.nat.stats(), place.nat.stats());
    assert_eq!(
        copy.nat.binding(Proto::Udp, h, 40000),
        place.nat.binding(Proto::Udp, h, 40000)
    );
}

#[test]
fn fragments_are_dropped() {
    let mut r = Rig::new(cfg());
    let h = host(1, 1);
    let mut b = V6::new(UDP);
    b.src = h;
    b.dst = wkp(R1);
    b.exts = vec![frag6(0, true, 7)];
    let (o, _) = r.out(&b.build(&udp(40000, 53, &[0; 64]), true));
    assert_eq!(o, Outcome::Dropped(DropReason::Fragmented));
    let (a, p, ..) = ends4(&r.out_ok(&six(h, R1, UDP, &udp(40000, 53, b"q"))));
    let mut b = V4::new(UDP);
    b.src = R1;
    b.dst = a;
    b.df = false;
    b.mf = true;
    let (o, _) = r.inb(&b.build(&udp(53, p, &[0; 64]), true));
    assert_eq!(o, Outcome::Dropped(DropReason::Fragmented));
}

// Transport checksums of everything translated, recomputed from scratch, across protocols and
// payload sizes (odd lengths included).

#[test]
fn translated_checksums_are_valid() {
    let mut r = Rig::new(cfg());
    for (k, len) in [0usize, 1, 2, 7, 8, 33, 100, 1000].into_iter().enumerate() {
        let h = host(k as u16 + 1, 3);
        let body: Vec<u8> = (0..len).map(|i| (i * 37 + k) as u8).collect();
        for (proto, l4) in [
            (UDP, udp(40000 + k as u16, 53, &body)),
            (TCP, [tcp(40000, 80, SYN | ACK), body.clone()].concat()),
            (ICMP6, [echo(128, 40000, 1), body.clone()].concat()),
        ] {
            let sent = six(h, R1, proto, &l4);
            let v4 = r.out_ok(&sent);
            // The header checksums came out right: recompute and compare with the emitted ones
            // too (verify() above checked the sums).
            let l4_out = &v4[20..];
            let mut z = l4_out.to_vec();
            let at = match proto {
                UDP => 6,
                TCP => 16,
                _ => 2,
            };
            z[at..at + 2].fill(0);
            let acc = if proto == ICMP6 {
                checksum::sum(&z)
            } else {
                checksum::add(
                    checksum::pseudo4(ends4(&v4).0, R1, proto, z.len() as u32),
                    checksum::sum(&z),
                )
            };
            let mut want = checksum::finish(acc);
            if proto == UDP && want == 0 {
                want = 0xffff;
            }
            assert_eq!(be16(l4_out, at), want, "proto {proto} len {len}");
        }
    }
}

// RFC 6888 REQ-12 style log, per block.

#[test]
fn mapping_log_events() {
    let mut c = cfg();
    c.log_mappings = true;
    let mut r = Rig::new(c);
    let at = Duration::from_secs(START);
    r.out_ok(&six(host(1, 1), R1, UDP, &udp(40000, 53, b"q")));
    r.out_ok(&six(host(1, 2), R1, UDP, &udp(40000, 53, b"q")));
    r.out_ok(&six(host(1, 1), R1, TCP, &tcp(40000, 80, SYN)));
    r.out_ok(&six(host(7, 1), R1, ICMP6, &echo(128, 1, 1)));
    let ev: Vec<_> = r.nat.events().collect();
    assert_eq!(
        ev,
        [
            MappingEvent::Used { block: 1, at },
            MappingEvent::Used { block: 7, at }
        ]
    );
    assert_eq!(r.nat.events().count(), 0);
    // ICMP goes after 60 s, UDP after 300 s, the TCP SYN after 240 s: block 1 is freed when the
    // last of its bindings goes.
    r.run(300);
    let ev: Vec<_> = r.nat.events().collect();
    assert_eq!(
        ev,
        [
            MappingEvent::Freed {
                block: 7,
                at: at + Duration::from_secs(60)
            },
            MappingEvent::Freed {
                block: 1,
                at: at + Duration::from_secs(300)
            },
        ]
    );
    // Off: nothing queued.
    let mut c = cfg();
    c.log_mappings = false;
    let mut r = Rig::new(c);
    r.out_ok(&six(host(1, 1), R1, UDP, &udp(40000, 53, b"q")));
    assert_eq!(r.nat.events().count(), 0);
}

#[test]
fn mapping_log_loses_the_oldest_when_nobody_reads_it() {
    let mut c = cfg();
    c.log_mappings = true;
    let mut r = Rig::new(c);
    // 513 uses and frees: 1026 events, two more than the queue holds.
    for k in 0..513u32 {
        let h = host((k % 256) as u16, 1);
        r.out_ok(&six(h, R1, ICMP6, &echo(128, 1, 1)));
        r.now += Duration::from_secs(61);
        assert_eq!(r.expire().0, 1);
    }
    let st = r.nat.stats();
    assert_eq!(st.events_lost, 2);
    let ev: Vec<_> = r.nat.events().collect();
    assert_eq!(ev.len(), 1024);
    assert!(matches!(ev[0], MappingEvent::Used { block: 1, .. }));
}

// Reconfiguration and sizes.

#[test]
fn reconfigure_keeps_the_layout_and_applies_the_rest() {
    let mut r = Rig::new(cfg());
    let h = host(1, 1);
    r.out_ok(&six(h, R1, UDP, &udp(40000, 53, b"q")));
    let mut other = cfg();
    other.layout = layout_with(1024..=65535, 1008);
    assert_eq!(r.nat.reconfigure(&other), Err(ReconfigureError::Layout));
    let mut other = cfg();
    other.capacity = 8192;
    assert_eq!(r.nat.reconfigure(&other), Err(ReconfigureError::Capacity));
    // The refused ones changed nothing.
    assert_eq!(r.nat.timeouts(), &Timeouts::RFC6146);
    assert!(r.nat.binding(Proto::Udp, h, 40000).is_some());
    let mut new = cfg();
    new.timeouts.udp = Duration::from_secs(120);
    new.timeouts.icmp = Duration::from_secs(10);
    new.filtering = Filtering::AddressDependent;
    new.limits.refuse_ports = vec![25];
    assert_eq!(r.nat.reconfigure(&new), Ok(()));
    assert_eq!(r.nat.timeouts().udp, Duration::from_secs(120));
    assert_eq!(new.timeouts.check(), Ok(()));
    // The new limits and filtering hold at once.
    let (a, p) = r.nat.binding(Proto::Udp, h, 40000).unwrap();
    assert_eq!(
        r.inb(&four(R3, a, UDP, &udp(1, p, b"x"))).0,
        Outcome::Dropped(DropReason::NoSession)
    );
    assert!(matches!(
        r.out(&six(h, R1, TCP, &tcp(1, 25, SYN))).0,
        Outcome::IcmpError {
            reason: DropReason::PortRefused,
            ..
        }
    ));
    // The new timers hold for new sessions.
    let h2 = host(2, 1);
    r.out_ok(&six(h2, R1, UDP, &udp(40000, 53, b"q")));
    r.out_ok(&six(h2, R1, ICMP6, &echo(128, 5, 1)));
    assert_eq!(r.run(10).0, 1);
    assert_eq!(r.run(109).0, 0);
    assert_eq!(r.run(1).0, 1);
    assert!(r.nat.binding(Proto::Udp, h2, 40000).is_none());
}

// A session placed on the wheel under the old timeouts must not outlive a shorter one: the wheel's
// horizon is the shortest timeout, and shrinking it puts every session back in a nearer slot.
#[test]
fn a_shorter_timeout_holds_for_sessions_refreshed_after_the_change() {
    // Live timeout change (the notes' pitfall, Jool #125): a session refreshed after UDP's
    // timeout went from 5 to 2 minutes must go 2 minutes after that refresh.
    let mut r = Rig::new(cfg());
    let h = host(1, 1);
    r.out_ok(&six(h, R1, UDP, &udp(40000, 53, b"q")));
    let mut new = cfg();
    new.timeouts.udp = Duration::from_secs(120);
    r.nat.reconfigure(&new).unwrap();
    r.run(10);
    r.out_ok(&six(h, R1, UDP, &udp(40000, 53, b"q")));
    assert_eq!(r.run(119).0, 0);
    assert_eq!(r.run(1).0, 1, "still there 120 s after its last packet");
}

#[test]
fn sizes() {
    assert_eq!(Nat64::bytes_per_session(), 24 + 36 + 12);
    let small = Nat64::new(cfg());
    let mut c = cfg();
    c.capacity = 8192;
    let big = Nat64::new(c);
    assert!(small.memory() >= 4096 * Nat64::bytes_per_session());
    // Only the tables grow with the capacity: exactly the entries and their buckets.
    assert_eq!(
        big.memory() - small.memory(),
        4096 * Nat64::bytes_per_session()
    );
    assert_eq!(small.capacity(), 4096);
    // The block state: three bitmaps of 2016 bits and the counters, per block.
    let mut c = cfg();
    c.capacity = 4096;
    let mut l = cfg();
    l.layout = layout_with(1024..=65535, 1008);
    let halved = Nat64::new(l);
    assert!(halved.memory() < small.memory());
    // The default capacity is two sessions per port of every block.
    let c = StatefulConfig::new(layout_with(1024..=65535, 2016));
    assert_eq!(c.capacity, 2 * 256 * 2016);
}

// RFC 7422 layouts beyond layout.rs's worked examples.

#[test]
fn layout_leftover_ports_and_addresses_belong_to_nobody() {
    // 1000 ports a block: 64 blocks an address, and 65024-65535 left over.
    let l = layout_with(1024..=65535, 1000);
    assert_eq!(l.blocks_per_address(), 64);
    let a: Ipv4Addr = "100.64.0.16".parse().unwrap();
    assert_eq!(l.owner(a, 65023).unwrap().index, 63);
    assert_eq!(l.owner(a, 65024), None);
    assert_eq!(l.owner(a, 65535), None);
    // 256 blocks on 4 of the 8 addresses: the other four are spare.
    assert_eq!(
        l.owner("100.64.0.19".parse().unwrap(), 1024).unwrap().index,
        192
    );
    assert_eq!(l.owner("100.64.0.20".parse().unwrap(), 1024), None);
    // Every block inverts, at both ends of its range.
    for n in 0..l.blocks() {
        let b = l.block(n).unwrap();
        assert_eq!(l.owner(b.addr, *b.ports.start()).unwrap().index, n);
        assert_eq!(l.owner(b.addr, *b.ports.end()).unwrap().index, n);
        assert_eq!(l.block_of(b.prefix.addr()), Some(n));
        let last = Ipv6Addr::from_bits(b.prefix.addr().to_bits() | u128::from(u64::MAX));
        assert_eq!(l.block_of(last), Some(n));
    }
}

#[test]
fn layout_whole_port_range_and_single_port_blocks() {
    // Ports 0-65535 one each: 65536 blocks an address.
    let l = Layout::new(
        &["100.64.0.16/31".parse().unwrap()],
        0..=65535,
        &[
            "2001:db8:6::/48".parse().unwrap(),
            "2001:db8:9::/63".parse().unwrap(),
        ],
        64,
        1,
    )
    .unwrap();
    assert_eq!(l.blocks_per_address(), 65536);
    assert_eq!(l.blocks(), 65536 + 2);
    let b = l.block(65535).unwrap();
    assert_eq!(b.ports, 65535..=65535);
    assert_eq!(b.prefix.to_string(), "2001:db8:6:ffff::/64");
    let b = l.block(65537).unwrap();
    assert_eq!(b.addr, "100.64.0.17".parse::<Ipv4Addr>().unwrap());
    assert_eq!(b.ports, 1..=1);
    assert_eq!(b.prefix.to_string(), "2001:db8:9:1::/64");
    assert_eq!(l.owner("100.64.0.17".parse().unwrap(), 2), None);
    assert_eq!(l.block_of("2001:db8:9:1::1".parse().unwrap()), Some(65537));
    assert_eq!(l.block_of("2001:db8:9:2::1".parse().unwrap()), None);
}

#[test]
fn the_module_example_works_under_the_well_known_prefix() {
    // The documentation ranges are non-global: the Well-Known Prefix refuses them (RFC 6052
    // §3.1), so a remote in 192.0.2.0/24 cannot be reached through 64:ff9b::/96.
    let mut r = Rig::new(cfg());
    let (o, _) = r.out(&six(
        host(1, 1),
        Ipv4Addr::new(192, 0, 2, 1),
        UDP,
        &udp(1, 53, b"q"),
    ));
    assert_eq!(o, Outcome::Dropped(DropReason::UntranslatableDestination));
    assert_eq!(r.nat.stats().bindings, 0);
}

// The fast path of `flow::flow4` once took the session key without checking the IPv4 header
// checksum, so a corrupt packet moved the state machine before the translator dropped it.
#[test]
fn packets_the_translator_refuses_change_no_state() {
    // A corrupt IPv4 header is dropped by the translator (Ipv4HeaderChecksum); it must not move
    // a TCP session, open an inbound session, or get a SYN held and answered.
    let mut r = Rig::new(cfg());
    let c = open(&mut r, host(1, 1), 50000, R1, 443);
    let corrupt = |mut p: Vec<u8>| {
        p[10] ^= 0x55;
        p
    };
    let (o, _) = r.inb(&corrupt(four(R1, c.a, TCP, &tcp(443, c.p, RST))));
    assert_eq!(o, Outcome::Dropped(DropReason::Ipv4HeaderChecksum));
    assert_eq!(c.state(&r), Some(TcpState::Established));
    let (o, _) = r.inb(&corrupt(four(R2, c.a, TCP, &tcp(7, c.p, SYN))));
    assert_eq!(o, Outcome::Dropped(DropReason::Ipv4HeaderChecksum));
    assert_eq!(r.state(c.h, c.hp, R2, 7), None);
    let (o, _) = r.inb(&corrupt(four(R2, c.a, TCP, &tcp(7, c.p + 2, SYN))));
    assert_eq!(o, Outcome::Dropped(DropReason::Ipv4HeaderChecksum));
    assert_eq!(r.nat.stats().held_syns, 0);
    assert!(r.run(10).1.is_empty());
    assert_eq!(r.nat.stats().sessions, [1, 0, 0]);
    // A truncated IPv6 packet (payload length past its end) opens nothing either.
    let mut short = six(host(1, 1), R1, UDP, &udp(40000, 53, b"query"));
    short.truncate(short.len() - 2);
    let (o, _) = r.out(&short);
    assert_eq!(o, Outcome::Dropped(DropReason::Truncated));
    assert_eq!(r.nat.binding(Proto::Udp, host(1, 1), 40000), None);
}

#[test]
fn a_full_table_refuses_new_sessions_and_keeps_the_old() {
    let mut c = cfg();
    c.capacity = 4;
    let mut r = Rig::new(c);
    let h = host(1, 1);
    for k in 0..4 {
        r.out_ok(&six(h, R1, UDP, &udp(40000 + k, 53, b"q")));
    }
    // A new binding, and a new session on a binding: both refused with 1/1.
    for sent in [
        six(h, R1, UDP, &udp(40010, 53, b"q")),
        six(h, R2, UDP, &udp(40000, 53, b"q")),
    ] {
        let (o, w) = r.out(&sent);
        assert_eq!(refusal(&o, &w, &sent), (DropReason::TableFull, 1, 1));
    }
    // Inbound: dropped without an error; the live sessions work.
    let (a, p) = r.nat.binding(Proto::Udp, h, 40000).unwrap();
    let (o, w) = r.inb(&four(R3, a, UDP, &udp(1, p, b"x")));
    assert_eq!(o, Outcome::Dropped(DropReason::TableFull));
    assert!(w.is_empty());
    r.inb_ok(&four(R1, a, UDP, &udp(53, p, b"a")));
    let st = r.nat.stats();
    assert_eq!((st.sessions, st.bindings), ([0, 4, 0], 4));
    // Room again once they go.
    r.run(300);
    r.out_ok(&six(h, R2, UDP, &udp(40010, 53, b"q")));
}

// Times are counted from the first call, so a caller may pass Unix time past 2038.
#[test]
fn the_clock_may_be_unix_time_past_2038() {
    let mut r = Rig::cold(cfg());
    r.now = Duration::from_secs(1 << 31);
    r.expire();
    let h = host(1, 1);
    r.out_ok(&six(h, R1, UDP, &udp(40000, 53, b"q")));
    assert_eq!(r.run(300).0, 1);
    assert_eq!(r.nat.binding(Proto::Udp, h, 40000), None);
}

#[test]
fn a_datagram_cut_into_ipv6_fragments_carries_the_hosts_port() {
    // 3000 bytes of UDP without DF coming in: the translator cuts it at 1280 bytes (RFC 7915 §4),
    // and the port and checksum are set in the first fragment for the whole datagram.
    let mut r = Rig::new(cfg());
    let h = host(1, 5);
    let (a, p, ..) = ends4(&r.out_ok(&six(h, R1, UDP, &udp(40000, 53, b"q"))));
    let body: Vec<u8> = (0..3000u32).map(|i| (i * 7 + 3) as u8).collect();
    let mut b = V4::new(UDP);
    b.src = R1;
    b.dst = a;
    b.df = false;
    let sent = b.build(&udp(53, p, &body), true);
    let o = r.nat.translate_4to6(&r.x, r.now, &sent, &mut r.buf);
    let Outcome::Translated(e) = o else {
        panic!("{o:?}")
    };
    assert!(e.count() >= 3, "{e:?}");
    let mut data = Vec::new();
    let mut id = None;
    for f in e.packets(&r.buf) {
        assert!(f.len() <= 1280);
        assert_eq!(f[6], 44, "a Fragment header");
        assert_eq!(&f[24..40], &h.octets());
        assert_eq!(f[40], UDP);
        let off = usize::from(be16(f, 42) & !7);
        assert_eq!(off, data.len());
        assert!(id.is_none_or(|i| i == &f[44..48]));
        id = Some(&f[44..48]);
        data.extend_from_slice(&f[48..]);
    }
    assert_eq!(data.len(), 8 + body.len());
    assert_eq!((be16(&data, 0), be16(&data, 2)), (53, 40000));
    assert_eq!(&data[8..], &body[..]);
    let acc = checksum::add(
        checksum::pseudo6(wkp(R1), h, UDP, data.len() as u32),
        checksum::sum(&data),
    );
    assert_eq!(
        checksum::fold(acc),
        0xffff,
        "UDP checksum over the reassembled datagram"
    );
}

#[test]
fn the_same_tcp_segment_twice_changes_nothing_the_second_time() {
    // The in-place entry points decide, and when the translator answers NeedsOutBuffer the
    // copying ones decide again: every transition must be idempotent, for every flag mix.
    use super::tcp::{Flags, Lifetime, Side, State, step};
    for s in 1..=7 {
        let state = State::from_u8(s).unwrap();
        for side in [Side::V4, Side::V6] {
            for bits in 0..8u8 {
                let f = Flags {
                    fin: bits & 1 != 0,
                    syn: bits & 2 != 0,
                    rst: bits & 4 != 0,
                };
                let (once, life) = step(state, side, f);
                let (twice, again) = step(once, side, f);
                assert_eq!(twice, once, "{state:?} {side:?} {f:?}");
                assert!(
                    again == Lifetime::Keep || again == life,
                    "{state:?} {side:?} {f:?}"
                );
            }
        }
    }
}

#[test]
fn a_fin_that_revives_a_transitory_session_is_not_lost() {
    // Idle past TCP_EST, then both sides close: 4 minutes after the second FIN, not 2 h 4 min.
    let mut r = Rig::new(cfg());
    let c = open(&mut r, host(1, 1), 50000, R1, 443);
    r.run(7440);
    assert_eq!(c.state(&r), Some(TcpState::Trans));
    c.inb(&mut r, FIN | ACK);
    assert_eq!(c.state(&r), Some(TcpState::V4FinRcv));
    c.out(&mut r, FIN | ACK);
    assert_eq!(c.state(&r), Some(TcpState::BothFinRcv));
    assert_eq!(r.run(240).0, 1);
}

#[test]
fn in_place_retry_through_the_copying_path_moves_tcp_once() {
    // A segment the translator cannot translate in place (TTL 1: it needs an ICMP error) goes
    // through decide twice on the in-place side; the state must end as on the copying side.
    for (flags, ttl) in [(FIN | ACK, 1), (SYN | FIN | RST | ACK, 1), (SYN | FIN, 1)] {
        let (mut copy, mut place) = (Rig::new(cfg()), Rig::new(cfg()));
        let mut conns = Vec::new();
        for r in [&mut copy, &mut place] {
            let c = open(r, host(1, 1), 50000, R1, 443);
            r.run(7440);
            assert_eq!(c.state(r), Some(TcpState::Trans));
            conns.push(c);
        }
        let c = &conns[0];
        let mut b = V4::new(TCP);
        b.src = R1;
        b.dst = c.a;
        b.ttl = ttl;
        let seg = b.build(&tcp(443, c.p, flags), true);
        let (o, w) = copy.inb(&seg);
        let mut buf = [vec![0; 20], seg.clone()].concat();
        let got = place
            .nat
            .translate_4to6_in_place(&place.x, place.now, &mut buf, 20, seg.len());
        assert_eq!(got, InPlace::NeedsOutBuffer);
        assert_eq!(place.inb(&seg), (o, w));
        assert_eq!(c.state(&place), c.state(&copy), "flags {flags:#x}");
        assert_eq!(place.nat.stats(), copy.nat.stats());
        assert_eq!(place.run(8000).0, copy.run(8000).0);
    }
}

#[test]
fn in_place_with_extension_headers_and_ipv4_options() {
    // The port lies further in than the translated packet's: after IPv6 extension headers, or
    // IPv4 options, both of which translation drops.
    let (mut copy, mut place) = (Rig::new(cfg()), Rig::new(cfg()));
    let h = host(1, 5);
    let mut outs = Vec::new();
    for (proto, l4) in [
        (UDP, udp(40000, 53, b"query")),
        (TCP, tcp(50000, 443, SYN)),
        (ICMP6, echo(128, 0x99, 1)),
    ] {
        let mut b = V6::new(proto);
        b.src = h;
        b.dst = wkp(R1);
        b.exts = vec![ext8(0, 0), ext8(60, 0)];
        outs.push(b.build(&l4, true));
    }
    let mut ranges = Vec::new();
    for p in &outs {
        let want = copy.out_ok(p);
        let mut buf = p.clone();
        let got = place
            .nat
            .translate_6to4_in_place(&place.x, place.now, &mut buf, 0, p.len());
        let InPlace::Translated(range) = got else {
            panic!("{got:?}")
        };
        verify(&buf[range.clone()]).unwrap();
        assert_eq!(&buf[range.clone()], &want[..]);
        ranges.push(ends4(&want));
    }
    for ((a, port, ..), (proto, l4)) in ranges.into_iter().zip([
        (UDP, udp(53, 0, b"answer")),
        (TCP, tcp(443, 0, SYN | ACK)),
        (ICMP4, echo(0, 0, 1)),
    ]) {
        let mut l4 = l4;
        if proto == ICMP4 {
            l4[4..6].copy_from_slice(&port.to_be_bytes());
        } else {
            l4[2..4].copy_from_slice(&port.to_be_bytes());
        }
        let mut b = V4::new(proto);
        b.src = R1;
        b.dst = a;
        // Record Route, expired (pointer past its end), and padding.
        b.options = vec![7, 7, 8, 0, 0, 0, 0, 0];
        let p = b.build(&l4, true);
        let want = copy.inb_ok(&p);
        let head = 40;
        let mut buf = [vec![0; head], p.clone()].concat();
        let got = place
            .nat
            .translate_4to6_in_place(&place.x, place.now, &mut buf, head, p.len());
        let InPlace::Translated(range) = got else {
            panic!("{got:?}")
        };
        verify(&buf[range.clone()]).unwrap();
        assert_eq!(&buf[range.clone()], &want[..]);
        assert_eq!(ends6(&want).2, h);
    }
}

// A host sending to its own binding through pool4 touches one session from both sides; with hop
// limit 1 nothing is decided (Time Exceeded before any lookup), so the in-place entry and its
// retry through the copying one agree.
#[test]
fn in_place_retry_of_a_self_hairpin_moves_tcp_once() {
    let (mut copy, mut place) = (Rig::new(cfg()), Rig::new(cfg()));
    let h = host(40, 1);
    for r in [&mut copy, &mut place] {
        r.out_ok(&six(h, R2, TCP, &tcp(5000, 80, SYN)));
    }
    let (a, p) = copy.nat.binding(Proto::Tcp, h, 5000).unwrap();
    let mut b = V6::new(TCP);
    b.src = h;
    b.dst = wkp(a);
    b.hop_limit = 1;
    let seg = b.build(&tcp(5000, p, SYN | FIN), true);
    let (o, _) = copy.out(&seg);
    let mut buf = seg.clone();
    let got = place
        .nat
        .translate_6to4_in_place(&place.x, place.now, &mut buf, 0, seg.len());
    assert_eq!(got, InPlace::NeedsOutBuffer);
    assert_eq!(place.out(&seg).0, o);
    assert_eq!(
        place.state(h, 5000, a, p),
        copy.state(h, 5000, a, p),
        "the retry moved the session again"
    );
}

// One IPv4 host cannot lengthen a binding's hash chain without bound: past 64 sessions of its own
// towards one binding (endpoint-independent filtering lets it open them from any port), further
// ones are refused, while the IPv6 host's own sessions and other remotes are not.
#[test]
fn one_remote_opens_at_most_64_sessions_towards_a_binding() {
    let mut c = cfg();
    c.limits.max_sessions_per_block = 1000;
    let mut r = Rig::new(c);
    let h = host(1, 1);
    r.out_ok(&six(h, R1, UDP, &udp(40000, 53, b"q")));
    let (a, p) = r.nat.binding(Proto::Udp, h, 40000).unwrap();
    // R1:53 already has its session (opened from IPv6); 63 more ports of R1 get theirs.
    for sport in 1000..1063u16 {
        r.inb_ok(&four(R1, a, UDP, &udp(sport, p, b"x")));
    }
    let (o, _) = r.inb(&four(R1, a, UDP, &udp(2000, p, b"x")));
    assert_eq!(o, Outcome::Dropped(DropReason::SessionLimit));
    // Sessions that exist still work; another remote still gets in.
    r.inb_ok(&four(R1, a, UDP, &udp(1000, p, b"x")));
    r.inb_ok(&four(R2, a, UDP, &udp(2000, p, b"x")));
    // The IPv6 host may talk to more of R1's ports itself.
    r.out_ok(&six(h, R1, UDP, &udp(40000, 3000, b"q")));
}

// The IPv6 host's own sessions from one source port to one remote address are capped too (512):
// a port scan from a fixed port must not grow the chain every lookup on it walks.
#[test]
fn one_source_port_scanning_one_remote_is_capped() {
    let mut c = cfg();
    c.limits.max_sessions_per_block = 10_000;
    c.capacity = 8192;
    let mut r = Rig::new(c);
    let h = host(1, 1);
    for dport in 1..=512u16 {
        r.out_ok(&six(h, R1, UDP, &udp(40000, dport, b"q")));
    }
    let sent = six(h, R1, UDP, &udp(40000, 600, b"q"));
    let (o, w) = r.out(&sent);
    assert_eq!(refusal(&o, &w, &sent), (DropReason::SessionLimit, 1, 1));
    // Another remote, or another source port, is not held back.
    r.out_ok(&six(h, R2, UDP, &udp(40000, 600, b"q")));
    r.out_ok(&six(h, R1, UDP, &udp(40001, 600, b"q")));
}

// Without own_v6/own_v4 the refusals RFC 6146 owes still go out: from the address the refused
// packet was sent to.
#[test]
fn refusals_without_own_addresses_come_from_the_destination() {
    let mut sc = cfg();
    sc.limits.refuse_ports = vec![25];
    let mut r = Rig::new(sc);
    let mut c = *r.x.config();
    c.own_v4 = None;
    c.own_v6 = None;
    r.x = Translator::new(c);
    let h = host(1, 1);
    let sent = six(h, R1, UDP, &udp(40000, 25, b"mail"));
    let (o, w) = r.out(&sent);
    assert!(
        matches!(
            o,
            Outcome::IcmpError {
                reason: DropReason::PortRefused,
                ..
            }
        ),
        "{o:?}"
    );
    assert_eq!((w[6], w[40], w[41]), (58, 1, 1));
    assert_eq!(&w[8..24], &wkp(R1).octets());
    assert_eq!(&w[24..40], &h.octets());
    // A held SYN's Port Unreachable comes from the pool4 address it was sent to.
    let (a, _) = {
        r.out_ok(&six(h, R1, UDP, &udp(40000, 53, b"q")));
        r.nat.binding(Proto::Udp, h, 40000).unwrap()
    };
    let syn = four(R2, a, TCP, &tcp(7000, 2000, SYN));
    let (o, _) = r.inb(&syn);
    assert_eq!(o, Outcome::Dropped(DropReason::SynHeld));
    let (_, errors) = r.run(7);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(&errors[0][12..16], &a.octets());
}
