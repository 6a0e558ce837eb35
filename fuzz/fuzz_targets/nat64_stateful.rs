//! The stateful NAT64 on operation sequences: packets both ways, from arbitrary bytes and from
//! builders (TCP, UDP, echo, ICMP errors quoting what the translator sent, hairpins), mutated by
//! a byte here and there, clock steps, expiry and reconfiguration. Two translators run side by
//! side, one through the copying entry points and one through the in-place ones (falling back to
//! copying when told to), and must agree byte for byte. After every step: no panic, every
//! emitted packet well formed with valid checksums, and no two live bindings on one
//! (protocol, pool4 address, port), `binding` and `binding_of` inverse, each binding in its
//! customer's block. At the end, past every timeout, nothing is left.
#![no_main]

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use nat64_xlat::checksum::{add, fold, pseudo4, pseudo6, sum};
use nat64_xlat::stateful::{Filtering, Layout, Nat64, Proto, StatefulConfig, Timeouts};
use nat64_xlat::{InPlace, Outcome, Translator};

#[path = "../../nat64-xlat/tests/support/stateful_packets.rs"]
mod packets;
use packets::{ICMP4, ICMP6, TCP, UDP, pkt4, pkt6, translator, wkp};

const SPORTS: [u16; 5] = [40000, 40001, 53, 5000, 0];
const REMOTES: [Ipv4Addr; 3] = [
    Ipv4Addr::new(8, 8, 8, 8),
    Ipv4Addr::new(9, 9, 9, 9),
    Ipv4Addr::new(1, 1, 1, 1),
];
const RPORTS: [u16; 3] = [53, 80, 25];
const PROTOS: [Proto; 3] = [Proto::Tcp, Proto::Udp, Proto::Icmp];

fn hosts() -> [Ipv6Addr; 5] {
    [
        "2001:db8:6::1".parse().unwrap(),
        "2001:db8:6::2".parse().unwrap(),
        "2001:db8:6:1::1".parse().unwrap(),
        "2001:db8:6:28::1".parse().unwrap(),
        // Not a customer.
        "2001:db8:7::1".parse().unwrap(),
    ]
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Kind {
    Udp,
    Tcp(u8),
    Echo,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Raw6(Vec<u8>),
    Raw4(Vec<u8>),
    Out {
        host: u8,
        sport: u8,
        remote: u8,
        rport: u8,
        kind: Kind,
        hop: u8,
        body: u8,
        flip: Option<(u16, u8)>,
    },
    In {
        host: u8,
        sport: u8,
        remote: u8,
        rport: u8,
        kind: Kind,
        ttl: u8,
        body: u8,
        flip: Option<(u16, u8)>,
    },
    /// An ICMPv4 error about the last IPv4 packet sent, quoting `keep` bytes of it.
    Error4 {
        ty: u8,
        code: u8,
        keep: u16,
        flip: Option<(u16, u8)>,
    },
    /// An ICMPv6 error from a host about the last IPv6 packet sent to it.
    Error6 {
        ty: u8,
        code: u8,
        keep: u16,
        flip: Option<(u16, u8)>,
    },
    Hairpin {
        from: u8,
        sport: u8,
        to: u8,
        tport: u8,
        kind: Kind,
        hop: u8,
    },
    Step(u32),
    Expire,
    Reconfigure(u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    knobs: u8,
    start: u32,
    ops: Vec<Op>,
}

fn config(knobs: u8) -> StatefulConfig {
    // 1: blocks of 4 ports (exhaustion); 2: block 0 straddles 1024; 3: one port a block.
    let (ports, ppb) = match knobs & 3 {
        0 => (1024..=65535, 2016),
        1 => (1024..=65535, 4),
        2 => (0..=65535, 2048),
        _ => (1000..=1100, 1),
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
    c.filtering = if knobs & 4 == 0 {
        Filtering::EndpointIndependent
    } else {
        Filtering::AddressDependent
    };
    if knobs & 8 != 0 {
        c.limits.max_sessions_per_block = 3;
    }
    if knobs & 16 != 0 {
        c.limits.new_sessions_per_second = 2;
    }
    c.limits.refuse_ports = if knobs & 32 != 0 { vec![25] } else { vec![] };
    c.capacity = if knobs & 64 != 0 { 8 } else { 2048 };
    c.log_mappings = knobs & 128 != 0;
    c
}

fn l4(kind: Kind, sport: u16, dport: u16, v6: bool, request: bool, body: u8) -> (u8, Vec<u8>) {
    let data = vec![0xa5; usize::from(body % 64)];
    match kind {
        Kind::Udp => {
            let mut s = Vec::new();
            s.extend_from_slice(&sport.to_be_bytes());
            s.extend_from_slice(&dport.to_be_bytes());
            s.extend_from_slice(&(8 + data.len() as u16).to_be_bytes());
            s.extend_from_slice(&[0, 0]);
            s.extend_from_slice(&data);
            (UDP, s)
        }
        Kind::Tcp(flags) => {
            let mut s = Vec::new();
            s.extend_from_slice(&sport.to_be_bytes());
            s.extend_from_slice(&dport.to_be_bytes());
            s.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags & 0x1f, 0xff, 0xff]);
            s.extend_from_slice(&[0, 0, 0, 0]);
            s.extend_from_slice(&data);
            (TCP, s)
        }
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
            s.extend_from_slice(&[0, 1]);
            s.extend_from_slice(&data);
            (if v6 { ICMP6 } else { ICMP4 }, s)
        }
    }
}

fn proto_of(k: Kind) -> Proto {
    match k {
        Kind::Udp => Proto::Udp,
        Kind::Tcp(_) => Proto::Tcp,
        Kind::Echo => Proto::Icmp,
    }
}

fn flip(p: &mut [u8], f: Option<(u16, u8)>) {
    if let Some((at, x)) = f
        && !p.is_empty()
    {
        let n = p.len();
        p[usize::from(at) % n] ^= x;
    }
}

/// Well-formedness of an emitted packet (hairpinned IPv6, translated either way, ICMP errors):
/// lengths, and the IPv4 header checksum.
fn check_packet(p: &[u8]) {
    match p[0] >> 4 {
        4 => {
            let ihl = usize::from(p[0] & 15) * 4;
            assert!(ihl >= 20 && p.len() >= ihl);
            assert_eq!(fold(sum(&p[..ihl])), 0xffff, "IPv4 header checksum");
            assert_eq!(usize::from(u16::from_be_bytes([p[2], p[3]])), p.len());
        }
        6 => {
            assert_eq!(40 + usize::from(u16::from_be_bytes([p[4], p[5]])), p.len());
        }
        v => panic!("emitted IP version {v}"),
    }
}

/// A transport checksum that was right on the way in is right on the way out (an IPv6 `p`
/// without extension headers).
fn l4_ok(p: &[u8]) -> bool {
    if p[0] >> 4 == 4 {
        let ihl = usize::from(p[0] & 15) * 4;
        let frag = u16::from_be_bytes([p[6], p[7]]) & 0x3fff != 0;
        if frag {
            return true;
        }
        let seg = &p[ihl..];
        let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
        let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
        let acc = match p[9] {
            ICMP4 => sum(seg),
            UDP if seg.len() >= 8 && seg[6..8] == [0, 0] => return true,
            pr @ (TCP | UDP) => add(pseudo4(src, dst, pr, seg.len() as u32), sum(seg)),
            _ => return true,
        };
        fold(acc) == 0xffff
    } else {
        let next = p[6];
        if !matches!(next, TCP | UDP | ICMP6) {
            return true;
        }
        let src = Ipv6Addr::from(<[u8; 16]>::try_from(&p[8..24]).unwrap());
        let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&p[24..40]).unwrap());
        let seg = &p[40..];
        fold(add(pseudo6(src, dst, next, seg.len() as u32), sum(seg))) == 0xffff
    }
}

/// Masks what may differ between two runs of one translation: the IPv4 Identification (and so
/// the header checksum).
fn masked(p: &[u8]) -> Vec<u8> {
    let mut v = p.to_vec();
    if v.first().is_some_and(|b| b >> 4 == 4) && v.len() >= 20 {
        v[4..6].fill(0);
        v[10..12].fill(0);
    }
    v
}

struct Side {
    nat: Nat64,
    x: Translator<'static>,
    buf: Vec<u8>,
}

impl Side {
    fn emitted(&self, o: &Outcome) -> Vec<u8> {
        match o {
            Outcome::Translated(e)
            | Outcome::Hairpinned(e)
            | Outcome::IcmpError { reply: e, .. } => {
                let out = &self.buf[..e.len()];
                for p in e.packets(out) {
                    check_packet(p);
                }
                out.to_vec()
            }
            _ => Vec::new(),
        }
    }

    /// The mapping invariant over every endpoint the builders use.
    fn check(&self) {
        let mut seen = HashSet::new();
        let mut live = 0;
        for proto in PROTOS {
            for h in hosts() {
                for sp in SPORTS {
                    let Some((a, p)) = self.nat.binding(proto, h, sp) else {
                        continue;
                    };
                    live += 1;
                    assert!(
                        seen.insert((proto as u8, a, p)),
                        "two bindings on {proto:?} {a}:{p}"
                    );
                    assert_eq!(self.nat.binding_of(proto, a, p), Some((h, sp)));
                    let n = self
                        .nat
                        .layout()
                        .block_of(h)
                        .expect("a binding for a non-customer");
                    let b = self.nat.layout().block(n).unwrap();
                    assert_eq!(a, b.addr);
                    assert!(b.ports.contains(&p));
                }
            }
        }
        let st = self.nat.stats();
        assert!(st.bindings >= live);
        assert!(st.sessions.iter().sum::<u32>() <= self.nat.capacity());
        assert!(st.bindings <= self.nat.capacity());
    }
}

struct World {
    copy: Side,
    place: Side,
    now: Duration,
    knobs: u8,
    /// The last IPv4 packet the translator sent out, and the last IPv6 one it sent in.
    last4: Vec<u8>,
    last6: Vec<u8>,
}

impl World {
    /// One packet both ways: copying on one side, in place (or copying when told to) on the
    /// other; both must agree. Returns the outcome and what was written.
    fn run(&mut self, pkt: &[u8], v6: bool) -> (Outcome, Vec<u8>) {
        let now = self.now;
        let c = &mut self.copy;
        let o = if v6 {
            c.nat.translate_6to4(&c.x, now, pkt, &mut c.buf)
        } else {
            c.nat.translate_4to6(&c.x, now, pkt, &mut c.buf)
        };
        let want = c.emitted(&o);
        let head = if v6 { 0 } else { 28 };
        let mut buf = vec![0u8; head + pkt.len()];
        buf[head..].copy_from_slice(pkt);
        let p = &mut self.place;
        let r = if v6 {
            p.nat
                .translate_6to4_in_place(&p.x, now, &mut buf, head, pkt.len())
        } else {
            p.nat
                .translate_4to6_in_place(&p.x, now, &mut buf, head, pkt.len())
        };
        let hairpin = matches!(r, InPlace::Hairpinned(_));
        match r {
            InPlace::Translated(range) | InPlace::Hairpinned(range) => {
                assert!(
                    matches!(o, Outcome::Translated(_)) && !hairpin
                        || matches!(o, Outcome::Hairpinned(_)) && hairpin,
                    "{o:?} vs {range:?}"
                );
                assert_eq!(masked(&buf[range.clone()]), masked(&want));
                check_packet(&buf[range]);
            }
            InPlace::Dropped(reason) => assert_eq!(o, Outcome::Dropped(reason)),
            InPlace::NeedsOutBuffer => {
                assert_eq!(&buf[head..], pkt, "NeedsOutBuffer touched the buffer");
                let o2 = if v6 {
                    p.nat.translate_6to4(&p.x, now, pkt, &mut p.buf)
                } else {
                    p.nat.translate_4to6(&p.x, now, pkt, &mut p.buf)
                };
                let got = p.emitted(&o2);
                assert_eq!(o2, o);
                assert_eq!(masked(&got), masked(&want));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(self.copy.nat.stats(), self.place.nat.stats());
        (o, want)
    }

    fn expire(&mut self) {
        let mut sent = [Vec::new(), Vec::new()];
        for (side, sent) in [&mut self.copy, &mut self.place].into_iter().zip(&mut sent) {
            let mut out = [0u8; 576];
            side.nat
                .expire(&side.x, self.now, &mut out, |p| sent.push(p.to_vec()));
        }
        assert_eq!(sent[0], sent[1]);
        for p in &sent[0] {
            check_packet(p);
            assert!(l4_ok(p));
        }
        let (a, b): (Vec<_>, Vec<_>) = (
            self.copy.nat.events().collect(),
            self.place.nat.events().collect(),
        );
        assert_eq!(a, b);
        assert_eq!(self.copy.nat.stats(), self.place.nat.stats());
    }

    fn step(&mut self, op: Op) {
        let hosts = hosts();
        let pick = |i: u8, n: usize| usize::from(i) % n;
        match op {
            Op::Raw6(b) => {
                self.run(&b, true);
            }
            Op::Raw4(b) => {
                self.run(&b, false);
            }
            Op::Out {
                host,
                sport,
                remote,
                rport,
                kind,
                hop,
                body,
                flip: f,
            } => {
                let h = hosts[pick(host, hosts.len())];
                let sp = SPORTS[pick(sport, SPORTS.len())];
                let r = REMOTES[pick(remote, REMOTES.len())];
                let (pr, seg) = l4(
                    kind,
                    sp,
                    RPORTS[pick(rport, RPORTS.len())],
                    true,
                    true,
                    body,
                );
                let mut pkt = pkt6(h, wkp(r), pr, hop, seg);
                flip(&mut pkt, f);
                let (o, w) = self.run(&pkt, true);
                if let Outcome::Translated(_) = o {
                    if f.is_none() {
                        assert!(l4_ok(&w));
                        // Endpoint-independent mapping: it left from its binding.
                        let l = usize::from(w[0] & 15) * 4;
                        let port = if w[9] == ICMP4 {
                            u16::from_be_bytes([w[l + 4], w[l + 5]])
                        } else {
                            u16::from_be_bytes([w[l], w[l + 1]])
                        };
                        let src = Ipv4Addr::new(w[12], w[13], w[14], w[15]);
                        assert_eq!(
                            self.copy.nat.binding(proto_of(kind), h, sp),
                            Some((src, port))
                        );
                    }
                    self.last4 = w;
                }
            }
            Op::In {
                host,
                sport,
                remote,
                rport,
                kind,
                ttl,
                body,
                flip: f,
            } => {
                let h = hosts[pick(host, hosts.len())];
                let sp = SPORTS[pick(sport, SPORTS.len())];
                let proto = proto_of(kind);
                let Some((a, p)) = self.copy.nat.binding(proto, h, sp).or_else(|| {
                    let l = self.copy.nat.layout();
                    let b = l.block(l.block_of(h)?)?;
                    Some((b.addr, *b.ports.start()))
                }) else {
                    return;
                };
                let owner = self.copy.nat.binding_of(proto, a, p);
                let r = REMOTES[pick(remote, REMOTES.len())];
                let (pr, seg) = l4(
                    kind,
                    RPORTS[pick(rport, RPORTS.len())],
                    p,
                    false,
                    false,
                    body,
                );
                let mut pkt = pkt4(r, a, pr, ttl, seg);
                flip(&mut pkt, f);
                let (o, w) = self.run(&pkt, false);
                if let Outcome::Translated(_) = o {
                    if f.is_none() {
                        assert!(l4_ok(&w));
                        let owner = owner.expect("translated to a port nobody holds");
                        let port = if w[6] == ICMP6 {
                            u16::from_be_bytes([w[44], w[45]])
                        } else {
                            u16::from_be_bytes([w[42], w[43]])
                        };
                        let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&w[24..40]).unwrap());
                        assert_eq!((dst, port), owner, "reached another host");
                    }
                    self.last6 = w;
                }
            }
            Op::Error4 {
                ty,
                code,
                keep,
                flip: f,
            } => {
                if self.last4.len() < 20 {
                    return;
                }
                let q = &self.last4[..usize::from(keep).clamp(20, self.last4.len())];
                let dst = Ipv4Addr::new(q[12], q[13], q[14], q[15]);
                let mut m = vec![ty % 13, code % 16, 0, 0, 0, 0, 0x05, 0xdc];
                m.extend_from_slice(q);
                let mut pkt = pkt4(Ipv4Addr::new(8, 8, 4, 4), dst, ICMP4, 64, m);
                flip(&mut pkt, f);
                self.run(&pkt, false);
            }
            Op::Error6 {
                ty,
                code,
                keep,
                flip: f,
            } => {
                if self.last6.len() < 40 {
                    return;
                }
                let q = &self.last6[..usize::from(keep).clamp(40, self.last6.len())];
                let src = Ipv6Addr::from(<[u8; 16]>::try_from(&q[24..40]).unwrap());
                let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&q[8..24]).unwrap());
                let mut m = vec![ty % 5, code % 8, 0, 0, 0, 0, 0x05, 0x00];
                m.extend_from_slice(q);
                let mut pkt = pkt6(src, dst, ICMP6, 64, m);
                flip(&mut pkt, f);
                self.run(&pkt, true);
            }
            Op::Hairpin {
                from,
                sport,
                to,
                tport,
                kind,
                hop,
            } => {
                let (hf, ht) = (hosts[pick(from, hosts.len())], hosts[pick(to, hosts.len())]);
                let (sp, tp) = (
                    SPORTS[pick(sport, SPORTS.len())],
                    SPORTS[pick(tport, SPORTS.len())],
                );
                let proto = proto_of(kind);
                let Some((a, p)) = self.copy.nat.binding(proto, ht, tp) else {
                    return;
                };
                let (pr, seg) = l4(kind, sp, p, true, true, 3);
                let pkt = pkt6(hf, wkp(a), pr, hop, seg);
                let (o, w) = self.run(&pkt, true);
                match o {
                    Outcome::Hairpinned(_) => {
                        assert!(l4_ok(&w));
                        assert_eq!(&w[24..40], &ht.octets());
                        assert_eq!(u16::from_be_bytes([w[42], w[43]]), tp);
                        let (fa, fp) = self.copy.nat.binding(proto, hf, sp).unwrap();
                        assert_eq!(&w[8..24], &wkp(fa).octets());
                        assert_eq!(u16::from_be_bytes([w[40], w[41]]), fp);
                    }
                    Outcome::Translated(_) => panic!("a packet to pool4 left for IPv4"),
                    _ => {}
                }
            }
            Op::Step(ms) => self.now += Duration::from_millis(u64::from(ms % 1_000_000)),
            Op::Expire => self.expire(),
            Op::Reconfigure(k) => {
                let mut c = config(self.knobs);
                let mut t = Timeouts::RFC6146;
                if k & 1 != 0 {
                    t.udp = Duration::from_secs(120);
                }
                if k & 2 != 0 {
                    t.icmp = Duration::from_secs(5);
                }
                if k & 4 != 0 {
                    t.tcp_transitory = Duration::from_secs(30);
                }
                c.timeouts = t;
                c.filtering = if k & 8 != 0 {
                    Filtering::AddressDependent
                } else {
                    Filtering::EndpointIndependent
                };
                c.limits.max_sessions_per_block = if k & 16 != 0 { 2 } else { 2000 };
                let a = self.copy.nat.reconfigure(&c);
                let b = self.place.nat.reconfigure(&c);
                assert_eq!(a, Ok(()));
                assert_eq!(b, Ok(()));
            }
        }
        self.copy.check();
        self.place.check();
    }
}

fuzz_target!(|input: Input| {
    let side = || Side {
        nat: Nat64::new(config(input.knobs)),
        x: translator(),
        buf: vec![0; Translator::out_len(65535 + 40)],
    };
    let mut w = World {
        copy: side(),
        place: side(),
        // Below 2^30 s: the translator's clock stops at 2^31 - 1 s (a known limit, tested in
        // the unit tests).
        now: Duration::from_secs(u64::from(input.start >> 2)),
        knobs: input.knobs,
        last4: Vec::new(),
        last6: Vec::new(),
    };
    for op in input.ops.into_iter().take(256) {
        w.step(op);
    }
    // Past every timeout (an established TCP session first turns transitory), twice the
    // longest the rig can configure: nothing left.
    for secs in [7441, 241, 241] {
        w.now += Duration::from_secs(secs);
        w.expire();
    }
    for side in [&w.copy, &w.place] {
        let st = side.nat.stats();
        assert_eq!(st.sessions, [0, 0, 0], "{st:?}");
        assert_eq!(st.bindings, 0);
        assert_eq!(st.held_syns, 0);
        assert_eq!(st.opened, st.expired);
    }
});
