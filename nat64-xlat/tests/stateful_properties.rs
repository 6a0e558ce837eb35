//! Properties of the stateful translator over random sequences of operations: packets out from a
//! few hosts and ports to a few remotes (TCP, UDP, ICMP echo), replies and strays in, hairpins,
//! clock steps and expiry. Whatever the sequence:
//!
//! - no two live bindings share a (protocol, pool4 address, port), `binding` and `binding_of`
//!   invert each other, and every binding lies in its customer's block (RFC 7422);
//! - a translated outbound packet leaves from its source's binding (endpoint-independent
//!   mapping), a translated inbound packet reaches the owner of the binding it was sent to, and
//!   one sent on a session known to be live always does;
//! - every packet that comes out carries valid checksums;
//! - once every timeout has passed and `expire` has run, nothing is left: no binding, no session,
//!   no held SYN.

use core::net::{Ipv4Addr, Ipv6Addr};
use core::time::Duration;
use std::collections::{HashMap, HashSet};

use nat64_xlat::checksum::{add, fold, pseudo4, pseudo6, sum};
use nat64_xlat::stateful::{Filtering, Layout, Nat64, Proto, StatefulConfig};
use nat64_xlat::{Outcome, Translator};
use proptest::prelude::*;

#[path = "support/stateful_packets.rs"]
mod packets;
use packets::{ICMP4, ICMP6, TCP, UDP, pkt4, pkt6, translator, wkp};

const SPORTS: [u16; 4] = [40000, 40001, 53, 5000];
const REMOTES: [Ipv4Addr; 3] = [
    Ipv4Addr::new(8, 8, 8, 8),
    Ipv4Addr::new(9, 9, 9, 9),
    Ipv4Addr::new(1, 1, 1, 1),
];
const RPORTS: [u16; 3] = [53, 80, 443];
const PROTOS: [Proto; 3] = [Proto::Tcp, Proto::Udp, Proto::Icmp];
const UDP_TIMEOUT: u64 = 300;
const ICMP_TIMEOUT: u64 = 60;

/// Two hosts of block 0, one of block 1, one of block 40 (another pool4 address in every
/// layout below).
fn hosts() -> [Ipv6Addr; 4] {
    [
        "2001:db8:6::1".parse().unwrap(),
        "2001:db8:6::2".parse().unwrap(),
        "2001:db8:6:1::1".parse().unwrap(),
        "2001:db8:6:28::1".parse().unwrap(),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Udp,
    Syn,
    SynAck,
    Ack,
    Fin,
    Rst,
    Echo,
}

impl Kind {
    fn proto(self) -> Proto {
        match self {
            Kind::Udp => Proto::Udp,
            Kind::Echo => Proto::Icmp,
            _ => Proto::Tcp,
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Out {
        host: usize,
        sport: usize,
        remote: usize,
        rport: usize,
        kind: Kind,
    },
    /// From a remote to the binding of (host, sport) if there is one, else to a port of the
    /// host's block.
    In {
        host: usize,
        sport: usize,
        remote: usize,
        rport: usize,
        kind: Kind,
    },
    /// The answer to the `back`-th latest outbound packet translated (its kind, or `kind`).
    Reply {
        back: usize,
        kind: Option<Kind>,
    },
    /// From one host to another's binding through pool4.
    Hairpin {
        from: usize,
        sport: usize,
        to: usize,
        tport: usize,
        tcp: bool,
    },
    Step {
        millis: u64,
    },
    Expire,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        4 => Just(Kind::Udp),
        2 => Just(Kind::Syn),
        1 => Just(Kind::SynAck),
        2 => Just(Kind::Ack),
        1 => Just(Kind::Fin),
        1 => Just(Kind::Rst),
        2 => Just(Kind::Echo),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..4usize, 0..4usize, 0..3usize, 0..3usize, kind()).prop_map(
            |(host, sport, remote, rport, kind)| Op::Out { host, sport, remote, rport, kind }
        ),
        5 => (0..4usize, 0..4usize, 0..3usize, 0..3usize, kind()).prop_map(
            |(host, sport, remote, rport, kind)| Op::In { host, sport, remote, rport, kind }
        ),
        4 => (0..8usize, proptest::option::weighted(0.2, kind()))
            .prop_map(|(back, kind)| Op::Reply { back, kind }),
        1 => (0..4usize, 0..4usize, 0..4usize, 0..4usize, any::<bool>()).prop_map(
            |(from, sport, to, tport, tcp)| Op::Hairpin { from, sport, to, tport, tcp }
        ),
        3 => prop_oneof![0..3_000u64, 0..400_000u64].prop_map(|millis| Op::Step { millis }),
        2 => Just(Op::Expire),
    ]
}

/// The knobs of one case.
#[derive(Debug, Clone)]
struct Setup {
    eif: bool,
    /// 0: ports 1024-65535 in blocks of 2016; 1: blocks of 4 (exhaustion); 2: ports 0-65535 in
    /// blocks of 2048 (block 0 straddles 1024).
    layout: u8,
    max_sessions: u32,
    per_second: u32,
    capacity: u32,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        any::<bool>(),
        0..3u8,
        prop_oneof![Just(3u32), Just(2000)],
        prop_oneof![Just(0u32), Just(2)],
        prop_oneof![Just(8u32), Just(4096)],
    )
        .prop_map(|(eif, layout, max_sessions, per_second, capacity)| Setup {
            eif,
            layout,
            max_sessions,
            per_second,
            capacity,
        })
}

fn config(s: &Setup) -> StatefulConfig {
    let (ports, ppb) = match s.layout {
        0 => (1024..=65535, 2016),
        1 => (1024..=65535, 4),
        _ => (0..=65535, 2048),
    };
    let layout = Layout::new(
        &["100.64.0.16/29".parse().unwrap()],
        ports,
        &["2001:db8:6::/56".parse().unwrap()],
        64,
        ppb,
    )
    .unwrap();
    let mut c = StatefulConfig::new(layout);
    c.filtering = if s.eif {
        Filtering::EndpointIndependent
    } else {
        Filtering::AddressDependent
    };
    c.limits.max_sessions_per_block = s.max_sessions;
    c.limits.new_sessions_per_second = s.per_second;
    c.capacity = s.capacity;
    c
}

// Packets with correct checksums.

/// The transport part: `id` is the identifier of an echo; `v6` picks ICMPv6 or ICMPv4 and
/// `request` the echo's direction.
fn l4(kind: Kind, sport: u16, dport: u16, v6: bool, request: bool) -> (u8, Vec<u8>) {
    let tcp = |flags: u8| {
        let mut s = Vec::new();
        s.extend_from_slice(&sport.to_be_bytes());
        s.extend_from_slice(&dport.to_be_bytes());
        s.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        s.extend_from_slice(b"data");
        (TCP, s)
    };
    match kind {
        Kind::Udp => {
            let mut s = Vec::new();
            s.extend_from_slice(&sport.to_be_bytes());
            s.extend_from_slice(&dport.to_be_bytes());
            s.extend_from_slice(&13u16.to_be_bytes());
            s.extend_from_slice(&[0, 0, b'h', b'e', b'l', b'l', b'o']);
            (UDP, s)
        }
        Kind::Syn => tcp(0x02),
        Kind::SynAck => tcp(0x12),
        Kind::Ack => tcp(0x10),
        Kind::Fin => tcp(0x11),
        Kind::Rst => tcp(0x04),
        Kind::Echo => {
            let ty = match (v6, request) {
                (true, true) => 128,
                (true, false) => 129,
                (false, true) => 8,
                (false, false) => 0,
            };
            let mut s = vec![ty, 0, 0, 0];
            // The identifier: the host's going out, the pool4 port coming in.
            let id = if request { sport } else { dport };
            s.extend_from_slice(&id.to_be_bytes());
            s.extend_from_slice(&[0, 1, b'p', b'i', b'n', b'g']);
            (if v6 { ICMP6 } else { ICMP4 }, s)
        }
    }
}

/// Every checksum of an emitted packet, recomputed.
fn verify(p: &[u8]) -> Result<(), String> {
    match p.first().map(|b| b >> 4) {
        Some(4) => {
            let ihl = usize::from(p[0] & 15) * 4;
            if fold(sum(&p[..ihl])) != 0xffff {
                return Err("IPv4 header checksum".into());
            }
            if usize::from(u16::from_be_bytes([p[2], p[3]])) != p.len() {
                return Err("IPv4 total length".into());
            }
            let seg = &p[ihl..];
            let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
            let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
            let acc = match p[9] {
                ICMP4 => sum(seg),
                pr @ (TCP | UDP) => add(pseudo4(src, dst, pr, seg.len() as u32), sum(seg)),
                _ => return Ok(()),
            };
            (fold(acc) == 0xffff)
                .then_some(())
                .ok_or_else(|| "IPv4 transport checksum".into())
        }
        Some(6) => {
            if 40 + usize::from(u16::from_be_bytes([p[4], p[5]])) != p.len() {
                return Err("IPv6 payload length".into());
            }
            let src = Ipv6Addr::from(<[u8; 16]>::try_from(&p[8..24]).unwrap());
            let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&p[24..40]).unwrap());
            let seg = &p[40..];
            let acc = add(pseudo6(src, dst, p[6], seg.len() as u32), sum(seg));
            (fold(acc) == 0xffff)
                .then_some(())
                .ok_or_else(|| "IPv6 transport checksum".into())
        }
        _ => Err("not IP".into()),
    }
}

fn be16(p: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([p[at], p[at + 1]])
}

/// Source address and port (identifier for echo) of an IPv4 packet.
fn src4(p: &[u8]) -> (Ipv4Addr, u16) {
    let l4 = usize::from(p[0] & 15) * 4;
    let port = if p[9] == ICMP4 {
        be16(p, l4 + 4)
    } else {
        be16(p, l4)
    };
    (Ipv4Addr::new(p[12], p[13], p[14], p[15]), port)
}

/// Destination address and port (identifier for echo) of an IPv6 packet.
fn dst6(p: &[u8]) -> (Ipv6Addr, u16) {
    let port = if p[6] == ICMP6 {
        be16(p, 44)
    } else {
        be16(p, 42)
    };
    (
        Ipv6Addr::from(<[u8; 16]>::try_from(&p[24..40]).unwrap()),
        port,
    )
}

fn src6(p: &[u8]) -> (Ipv6Addr, u16) {
    let port = if p[6] == ICMP6 {
        be16(p, 44)
    } else {
        be16(p, 40)
    };
    (
        Ipv6Addr::from(<[u8; 16]>::try_from(&p[8..24]).unwrap()),
        port,
    )
}

struct World {
    nat: Nat64,
    x: Translator<'static>,
    now: Duration,
    buf: Vec<u8>,
    /// Last second an outbound packet of a UDP or ICMP session was translated: the session
    /// lives at least its timeout from then.
    last_out: HashMap<(u8, usize, usize, usize, usize), u64>,
    /// The outbound packets translated, latest last: (host, sport, remote, rport, kind).
    history: Vec<(usize, usize, usize, usize, Kind)>,
}

impl World {
    fn secs(&self) -> u64 {
        self.now.as_secs()
    }

    fn emitted(&self, o: &Outcome) -> Result<Vec<u8>, TestCaseError> {
        let e = match o {
            Outcome::Translated(e)
            | Outcome::Hairpinned(e)
            | Outcome::IcmpError { reply: e, .. } => e,
            _ => return Ok(Vec::new()),
        };
        prop_assert_eq!(e.count(), 1);
        let p = self.buf[..e.len()].to_vec();
        verify(&p).map_err(|m| TestCaseError::fail(format!("{m}: {o:?} {p:02x?}")))?;
        Ok(p)
    }

    /// Whether a UDP or ICMP session is known to be live.
    fn live(&self, kind: Kind, host: usize, sport: usize, remote: usize, rport: usize) -> bool {
        let (key, timeout) = match kind {
            Kind::Udp => ((1, host, sport, remote, rport), UDP_TIMEOUT),
            Kind::Echo => ((2, host, sport, remote, 0), ICMP_TIMEOUT),
            _ => return false,
        };
        self.last_out
            .get(&key)
            .is_some_and(|&t| self.secs() < t + timeout)
    }

    fn expire(&mut self) -> Result<(), TestCaseError> {
        let mut sent = Vec::new();
        let mut out = [0u8; 576];
        self.nat
            .expire(&self.x, self.now, &mut out, |p| sent.push(p.to_vec()));
        for p in sent {
            verify(&p).map_err(TestCaseError::fail)?;
            // Port Unreachable for a held SYN, from the translator.
            prop_assert_eq!((p[9], p[20], p[21]), (ICMP4, 3, 3));
        }
        Ok(())
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let hosts = hosts();
        match *op {
            Op::Out {
                host,
                sport,
                remote,
                rport,
                kind,
            } => {
                let (h, sp, r, rp) = (hosts[host], SPORTS[sport], REMOTES[remote], RPORTS[rport]);
                let proto = kind.proto();
                let before = self.nat.binding(proto, h, sp);
                let tcp_before = (proto == Proto::Tcp)
                    .then(|| self.nat.tcp_state(h, sp, r, rp))
                    .flatten();
                let live = self.live(kind, host, sport, remote, rport);
                let (pr, seg) = l4(kind, sp, rp, true, true);
                let pkt = pkt6(h, wkp(r), pr, 64, seg);
                let o = self
                    .nat
                    .translate_6to4(&self.x, self.now, &pkt, &mut self.buf);
                let p = self.emitted(&o)?;
                if let Outcome::Translated(_) = o {
                    let after = self.nat.binding(proto, h, sp);
                    prop_assert!(after.is_some());
                    prop_assert_eq!(Some(src4(&p)), after, "left from another endpoint");
                    if before.is_some() {
                        prop_assert_eq!(before, after, "EIM: the binding changed");
                    }
                    prop_assert_eq!(&p[16..20], &r.octets());
                    self.history.push((host, sport, remote, rport, kind));
                    if proto != Proto::Tcp {
                        let key = (
                            proto as u8,
                            host,
                            sport,
                            remote,
                            if proto == Proto::Icmp { 0 } else { rport },
                        );
                        self.last_out.insert(key, self.secs());
                    }
                } else {
                    // A live session is never refused.
                    prop_assert!(!live && tcp_before.is_none(), "live session refused: {o:?}");
                    prop_assert!(!matches!(o, Outcome::Hairpinned(_)));
                }
            }
            Op::Reply { back, kind } => {
                let Some(&(host, sport, remote, rport, sent)) = self
                    .history
                    .iter()
                    .rev()
                    .nth(back % self.history.len().max(1))
                else {
                    return Ok(());
                };
                let kind = kind.unwrap_or(match sent {
                    Kind::Syn => Kind::SynAck,
                    Kind::SynAck | Kind::Fin | Kind::Rst => Kind::Ack,
                    k => k,
                });
                return self.step(&Op::In {
                    host,
                    sport,
                    remote,
                    rport,
                    kind,
                });
            }
            Op::In {
                host,
                sport,
                remote,
                rport,
                kind,
            } => {
                let (h, sp, r, rp) = (hosts[host], SPORTS[sport], REMOTES[remote], RPORTS[rport]);
                let proto = kind.proto();
                let (a, p) = match self.nat.binding(proto, h, sp) {
                    Some(b) => b,
                    None => {
                        let n = self.nat.layout().block_of(h).unwrap();
                        let b = self.nat.layout().block(n).unwrap();
                        let span = u32::from(*b.ports.end() - *b.ports.start()) + 1;
                        (
                            b.addr,
                            *b.ports.start() + (u32::from(SPORTS[sport]) % span) as u16,
                        )
                    }
                };
                let owner = self.nat.binding_of(proto, a, p);
                let must = self.live(kind, host, sport, remote, rport)
                    || (proto == Proto::Tcp && self.nat.tcp_state(h, sp, r, rp).is_some());
                let (pr, seg) = l4(kind, rp, p, false, false);
                let pkt = pkt4(r, a, pr, 64, seg);
                let o = self
                    .nat
                    .translate_4to6(&self.x, self.now, &pkt, &mut self.buf);
                let q = self.emitted(&o)?;
                match (o, owner) {
                    (Outcome::Translated(_), Some(owner)) => {
                        prop_assert_eq!(dst6(&q), owner, "reached another host");
                        prop_assert_eq!(src6(&q).0, wkp(r));
                    }
                    (Outcome::Translated(_), None) => {
                        prop_assert!(false, "translated to nobody's port {}:{}", a, p)
                    }
                    (o, _) => prop_assert!(!must, "a live session's reply refused: {o:?}"),
                }
            }
            Op::Hairpin {
                from,
                sport,
                to,
                tport,
                tcp,
            } => {
                let proto = if tcp { Proto::Tcp } else { Proto::Udp };
                let (hf, sp, ht, tp) = (hosts[from], SPORTS[sport], hosts[to], SPORTS[tport]);
                let Some((a, p)) = self.nat.binding(proto, ht, tp) else {
                    return Ok(());
                };
                let kind = if tcp { Kind::Syn } else { Kind::Udp };
                let (pr, seg) = l4(kind, sp, p, true, true);
                let pkt = pkt6(hf, wkp(a), pr, 64, seg);
                let o = self
                    .nat
                    .translate_6to4(&self.x, self.now, &pkt, &mut self.buf);
                let q = self.emitted(&o)?;
                if let Outcome::Hairpinned(_) = o {
                    prop_assert_eq!(dst6(&q), (ht, tp));
                    let (fa, fp) = self.nat.binding(proto, hf, sp).unwrap();
                    prop_assert_eq!(src6(&q), (wkp(fa), fp));
                } else {
                    prop_assert!(!matches!(o, Outcome::Translated(_)), "{o:?}");
                }
            }
            Op::Step { millis } => self.now += Duration::from_millis(millis),
            Op::Expire => self.expire()?,
        }
        self.check()
    }

    /// The mapping invariant over every endpoint the case uses.
    fn check(&self) -> Result<(), TestCaseError> {
        let mut seen = HashSet::new();
        let mut live = 0;
        for proto in PROTOS {
            for h in hosts() {
                for sp in SPORTS {
                    let Some((a, p)) = self.nat.binding(proto, h, sp) else {
                        continue;
                    };
                    live += 1;
                    prop_assert!(
                        seen.insert((proto as u8, a, p)),
                        "two bindings on {:?} {}:{}",
                        proto,
                        a,
                        p
                    );
                    prop_assert_eq!(self.nat.binding_of(proto, a, p), Some((h, sp)));
                    let n = self.nat.layout().block_of(h).unwrap();
                    let b = self.nat.layout().block(n).unwrap();
                    prop_assert_eq!(a, b.addr);
                    prop_assert!(b.ports.contains(&p), "{} outside {:?}", p, b.ports);
                    if proto != Proto::Icmp && sp >= 1024 {
                        prop_assert!(p >= 1024, "{} got {}", sp, p);
                    }
                }
            }
        }
        let st = self.nat.stats();
        prop_assert_eq!(st.bindings, live);
        prop_assert!(st.sessions.iter().sum::<u32>() <= self.nat.capacity());
        prop_assert!(st.held_syns as usize <= nat64_xlat::stateful::HELD_SYNS);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn mappings_stay_one_to_one_and_expire(
        s in setup(),
        ops in proptest::collection::vec(op(), 1..120),
        start in 0u64..1_000_000,
    ) {
        let mut w = World {
            nat: Nat64::new(config(&s)),
            x: translator(),
            now: Duration::from_secs(start),
            buf: vec![0; Translator::out_len(1500)],
            last_out: HashMap::new(),
            history: Vec::new(),
        };
        for op in &ops {
            w.step(op)?;
        }
        // Past every timeout (an established TCP session first turns transitory): nothing left.
        for secs in [7441, 241, 241] {
            w.now += Duration::from_secs(secs);
            w.expire()?;
        }
        w.check()?;
        let st = w.nat.stats();
        prop_assert_eq!(st.sessions, [0, 0, 0]);
        prop_assert_eq!(st.bindings, 0);
        prop_assert_eq!(st.held_syns, 0);
        prop_assert_eq!(st.opened, st.expired);
    }
}
