//! What a packet says about its session: the protocol, the local (IPv6 host or pool4) and remote
//! (IPv4) endpoints, and where the local port lies, so it can be rewritten with RFC 1624
//! checksum updates. For an ICMP error the session is the quoted packet's, seen backwards.

use super::table::Proto;
use super::tcp::Flags;
use crate::DropReason;
use crate::checksum;
use crate::wire::{self, Parse, proto};

/// A 16-bit field to rewrite and the checksums that cover it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field {
    /// Offset of the field in the packet.
    pub at: usize,
    /// Offset of the transport checksum covering it, if it lies within the packet.
    pub checksum: Option<usize>,
    /// A UDP checksum (zero is sent as all ones; over IPv4, zero means none).
    pub udp: bool,
    /// For a field inside a quoted packet: the ICMP checksum of the error, which covers the
    /// field and the quoted checksum.
    pub outer: Option<usize>,
}

impl Field {
    /// The same field in the translated packet, whose transport header starts at `to` instead
    /// of `from`.
    #[inline(always)]
    pub(crate) fn moved(self, from: usize, to: usize) -> Field {
        Field {
            at: self.at - from + to,
            checksum: self.checksum.map(|c| c - from + to),
            ..self
        }
    }
}

/// The session a packet belongs to, from its own side. Addresses travel as their bits (`u128`,
/// `u32`): an `Ipv6Addr` has byte alignment and, moved through memory, stalls store forwarding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flow<A> {
    pub proto: Proto,
    /// The IPv6 host (6→4) or the pool4 address (4→6).
    pub local: A,
    pub local_port: u16,
    pub remote: A,
    pub rport: u16,
    /// Offset of the transport header (of the outer packet, for an ICMP error).
    pub l4: usize,
    pub field: Field,
    pub flags: Flags,
    /// May open a session: a TCP SYN (checked later), any UDP datagram, an ICMP echo request.
    pub opens: bool,
    /// An ICMP error about the session's traffic: no state changes.
    pub error: bool,
    /// The destination port, which `refuse_ports` is checked against.
    pub dport: u16,
}

fn be16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |w| u16::from_be_bytes([w[0], w[1]]))
}

/// Where a transport header's ports (or ICMP echo identifier) and checksum lie.
#[derive(Debug, Clone, Copy)]
struct Ports {
    proto: Proto,
    sport: u16,
    dport: u16,
    /// Offsets of the source and destination fields (the identifier, twice, for echo).
    sat: usize,
    dat: usize,
    checksum: usize,
    udp: bool,
}

/// The ports of a transport header at `l4` with protocol `p`; ICMP (of the packet's family)
/// counts by its echo identifier, which stands for the port on both sides.
fn ports(pkt: &[u8], l4: usize, p: u8, v6: bool) -> Result<Ports, DropReason> {
    let icmp = if v6 { proto::ICMPV6 } else { proto::ICMP };
    let (proto, sat, dat, checksum, udp) = match p {
        proto::TCP => (Proto::Tcp, l4, l4 + 2, l4 + 16, false),
        proto::UDP => (Proto::Udp, l4, l4 + 2, l4 + 6, true),
        x if x == icmp => (Proto::Icmp, l4 + 4, l4 + 4, l4 + 2, false),
        _ => return Err(DropReason::NoPorts),
    };
    Ok(Ports {
        proto,
        sport: be16(pkt, sat),
        dport: be16(pkt, dat),
        sat,
        dat,
        checksum,
        udp,
    })
}

fn is_echo(ty: u8, v6: bool) -> Option<bool> {
    // Some(true) for a request, Some(false) for a reply.
    match (v6, ty) {
        (true, 128) | (false, 8) => Some(true),
        (true, 129) | (false, 0) => Some(false),
        _ => None,
    }
}

fn is_error(ty: u8, v6: bool) -> bool {
    if v6 {
        ty < 128
    } else {
        matches!(ty, 3 | 4 | 5 | 11 | 12)
    }
}

/// The flow of a TCP or UDP packet whose transport header starts at `l4` (protocol byte at
/// `proto_at`, packet `end` bytes long by its header), seen from its source `src`: the source
/// port is the local one. `None` for anything else.
#[inline(always)]
fn plain<A: Copy>(
    pkt: &[u8],
    proto_at: usize,
    l4: usize,
    end: usize,
    src: A,
    dst: A,
) -> Option<Flow<A>> {
    let p = *pkt.get(proto_at)?;
    let (proto, need, ck, udp) = match p {
        proto::TCP => (Proto::Tcp, 20, 16, false),
        proto::UDP => (Proto::Udp, 8, 6, true),
        _ => return None,
    };
    if end > pkt.len() || end < l4 + need {
        return None;
    }
    let sport = be16(pkt, l4);
    let dport = be16(pkt, l4 + 2);
    Some(Flow {
        proto,
        local: src,
        local_port: sport,
        remote: dst,
        rport: dport,
        l4,
        field: Field {
            at: l4,
            checksum: Some(l4 + ck),
            udp,
            outer: None,
        },
        flags: if proto == Proto::Tcp {
            Flags::of(&pkt[l4..])
        } else {
            Flags::default()
        },
        opens: true,
        error: false,
        dport,
    })
}

/// The flow of an IPv6 packet from the IPv6 side (6→4).
// Always: returned out of line, the flow comes back through memory and stalls store forwarding.
#[inline(always)]
pub(crate) fn flow6(pkt: &[u8]) -> Result<Flow<u128>, DropReason> {
    // The common packet first: TCP or UDP right after the fixed header. The translator parses
    // the packet again and refuses what is wrong with it; this is only the session's key.
    if pkt.len() >= 40 && pkt[0] >> 4 == 6 {
        let a = |at: usize| {
            u128::from_be_bytes(<[u8; 16]>::try_from(&pkt[at..at + 16]).unwrap_or_default())
        };
        let end = usize::from(u16::from_be_bytes([pkt[4], pkt[5]])) + 40;
        if let Some(f) = plain(pkt, 6, 40, end, a(8), a(24)) {
            return Ok(f);
        }
    }
    let ip = wire::Ipv6::parse(pkt, Parse::Strict)?;
    if ip.is_fragment() {
        return Err(DropReason::Fragmented);
    }
    let quoted = |q: &[u8]| {
        let i = wire::Ipv6::parse(q, Parse::Lax).ok()?;
        i.frag.is_none_or(|f| f.offset == 0).then(|| Hdr {
            l4: 40 + i.ext_len,
            proto: i.proto,
            src: i.src.to_bits(),
            dst: i.dst.to_bits(),
            payload: i.payload.len(),
        })
    };
    let outer = Hdr {
        l4: 40 + ip.ext_len,
        proto: ip.proto,
        src: ip.src.to_bits(),
        dst: ip.dst.to_bits(),
        payload: ip.payload.len(),
    };
    walk(pkt, outer, true, quoted)
}

/// The flow of an IPv4 packet from the IPv4 side (4→6); `local` is the pool4 address.
#[inline(always)]
pub(crate) fn flow4(pkt: &[u8]) -> Result<Flow<u32>, DropReason> {
    // As in flow6: a 20-byte header, not a fragment, TCP or UDP. Its checksum is checked here,
    // not only by the translator afterwards: a corrupt header must not move the session.
    if pkt.len() >= 20
        && pkt[0] == 0x45
        && u16::from_be_bytes([pkt[6], pkt[7]]) & 0x3fff == 0
        && checksum::fold(checksum::sum(&pkt[..20])) == 0xffff
    {
        let end = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
        let a = |at: usize| u32::from_be_bytes([pkt[at], pkt[at + 1], pkt[at + 2], pkt[at + 3]]);
        if let Some(f) = plain(pkt, 9, 20, end, a(12), a(16)) {
            // Seen from the IPv4 side the local end is the destination.
            return Ok(Flow {
                local: f.remote,
                remote: f.local,
                local_port: f.dport,
                rport: f.local_port,
                field: Field {
                    at: f.field.at + 2,
                    ..f.field
                },
                ..f
            });
        }
    }
    let ip = wire::Ipv4::parse(pkt, Parse::Strict)?;
    if ip.is_fragment() {
        return Err(DropReason::Fragmented);
    }
    let quoted = |q: &[u8]| {
        let i = wire::Ipv4::parse(q, Parse::Lax).ok()?;
        (i.offset == 0).then(|| Hdr {
            l4: i.header.len(),
            proto: i.proto,
            src: i.src.to_bits(),
            dst: i.dst.to_bits(),
            payload: i.payload.len(),
        })
    };
    let outer = Hdr {
        l4: ip.header.len(),
        proto: ip.proto,
        src: ip.src.to_bits(),
        dst: ip.dst.to_bits(),
        payload: ip.payload.len(),
    };
    walk(pkt, outer, false, quoted)
}

/// What [`walk`] needs of an IP header: where the transport header starts, its protocol, the
/// addresses as bits, and the bytes after the headers.
#[derive(Debug, Clone, Copy)]
struct Hdr<A> {
    l4: usize,
    proto: u8,
    src: A,
    dst: A,
    payload: usize,
}

/// The flow of a packet either way once its header is parsed (`outer`): TCP, UDP, ICMP echo,
/// or an ICMP error whose quote (`quoted` parses it) is the session's traffic seen backwards.
/// `v6`: the packet came from the IPv6 side, where the host is the source; on the IPv4 side
/// the pool4 address is the destination.
fn walk<A: Copy>(
    pkt: &[u8],
    outer: Hdr<A>,
    v6: bool,
    quoted: impl Fn(&[u8]) -> Option<Hdr<A>>,
) -> Result<Flow<A>, DropReason> {
    let l4 = outer.l4;
    let icmp = if v6 { proto::ICMPV6 } else { proto::ICMP };
    // Whether our end is a header's source: the packet's own from the IPv6 side, a quote's
    // (which travelled the other way) from the IPv4 side.
    let ends = |h: &Hdr<A>, quote: bool| {
        if v6 != quote {
            (h.src, h.dst)
        } else {
            (h.dst, h.src)
        }
    };
    let pick = |p: &Ports, quote: bool| {
        if v6 != quote {
            (p.sport, p.dport, p.sat)
        } else {
            (p.dport, p.sport, p.dat)
        }
    };
    if outer.proto == icmp {
        let ty = *pkt.get(l4).ok_or(DropReason::Truncated)?;
        if is_error(ty, v6) {
            let q = l4 + 8;
            let inner = quoted(pkt.get(q..).ok_or(DropReason::Truncated)?)
                .ok_or(DropReason::InnerPacket)?;
            let il4 = q + inner.l4;
            let ps = ports(pkt, il4, inner.proto, v6)?;
            if ps.proto == Proto::Icmp
                && is_echo(*pkt.get(il4).ok_or(DropReason::Truncated)?, v6).is_none()
            {
                return Err(DropReason::NestedIcmpError);
            }
            let (local, remote) = ends(&inner, true);
            let (local_port, rport, at) = pick(&ps, true);
            if pkt.len() < at + 2 {
                return Err(DropReason::InnerPacket);
            }
            return Ok(Flow {
                proto: ps.proto,
                local,
                local_port,
                remote,
                rport: if ps.proto == Proto::Icmp { 0 } else { rport },
                l4,
                field: Field {
                    at,
                    checksum: (pkt.len() >= ps.checksum + 2).then_some(ps.checksum),
                    udp: ps.udp,
                    outer: Some(l4 + 2),
                },
                flags: Flags::default(),
                opens: false,
                error: true,
                dport: ps.dport,
            });
        }
        let request = is_echo(ty, v6).ok_or(DropReason::UntranslatableIcmp)?;
        if outer.payload < 8 {
            return Err(DropReason::Truncated);
        }
        let (local, remote) = ends(&outer, false);
        return Ok(Flow {
            proto: Proto::Icmp,
            local,
            local_port: be16(pkt, l4 + 4),
            remote,
            rport: 0,
            l4,
            field: Field {
                at: l4 + 4,
                checksum: Some(l4 + 2),
                udp: false,
                outer: None,
            },
            flags: Flags::default(),
            opens: request,
            error: false,
            dport: 0,
        });
    }
    let ps = ports(pkt, l4, outer.proto, v6)?;
    let need = if ps.proto == Proto::Tcp { 20 } else { 8 };
    if outer.payload < need {
        return Err(DropReason::Truncated);
    }
    let (local, remote) = ends(&outer, false);
    let (local_port, rport, at) = pick(&ps, false);
    Ok(Flow {
        proto: ps.proto,
        local,
        local_port,
        remote,
        rport,
        l4,
        field: Field {
            at,
            checksum: Some(ps.checksum),
            udp: ps.udp,
            outer: None,
        },
        flags: Flags::of(&pkt[l4..]),
        opens: true,
        error: false,
        dport: ps.dport,
    })
}

/// Writes `new` into `f` and updates the checksums that cover it (RFC 1624), so a checksum
/// that was wrong stays exactly as wrong. A UDP checksum of zero over IPv4 means "none" and
/// stays zero.
pub(crate) fn rewrite(pkt: &mut [u8], f: Field, new: u16, v4: bool) {
    let old = be16(pkt, f.at);
    if old == new {
        return;
    }
    pkt[f.at..f.at + 2].copy_from_slice(&new.to_be_bytes());
    let mut ck_change = None;
    if let Some(c) = f.checksum {
        let was = be16(pkt, c);
        if !(f.udp && v4 && was == 0) {
            let mut now = checksum::update(was, u32::from(old), u32::from(new));
            if f.udp {
                now = checksum::udp(now);
            }
            pkt[c..c + 2].copy_from_slice(&now.to_be_bytes());
            ck_change = Some((was, now));
        }
    }
    if let Some(o) = f.outer {
        let mut removed = u32::from(old);
        let mut added = u32::from(new);
        if let Some((was, now)) = ck_change {
            removed += u32::from(was);
            added += u32::from(now);
        }
        let c = checksum::update(be16(pkt, o), removed, added);
        pkt[o..o + 2].copy_from_slice(&c.to_be_bytes());
    }
}

/// Rewrites the IPv6 addresses and ports of a TCP or UDP packet going straight back to the IPv6
/// side (hairpinning, RFC 6146 §3.8), with one checksum update for all of it, and takes one off
/// the hop limit.
pub(crate) fn hairpin6(pkt: &mut [u8], sport_field: Field, src: (u128, u16), dst: (u128, u16)) {
    let Some(ck) = sport_field.checksum else {
        return;
    };
    let mut old = [0u8; 36];
    old[..32].copy_from_slice(&pkt[8..40]);
    old[32..36].copy_from_slice(&pkt[sport_field.at..sport_field.at + 4]);
    let mut new = [0u8; 36];
    new[..16].copy_from_slice(&src.0.to_be_bytes());
    new[16..32].copy_from_slice(&dst.0.to_be_bytes());
    new[32..34].copy_from_slice(&src.1.to_be_bytes());
    new[34..36].copy_from_slice(&dst.1.to_be_bytes());
    pkt[8..40].copy_from_slice(&new[..32]);
    pkt[sport_field.at..sport_field.at + 4].copy_from_slice(&new[32..]);
    let mut c = checksum::update(be16(pkt, ck), checksum::sum(&old), checksum::sum(&new));
    if sport_field.udp {
        c = checksum::udp(c);
    }
    pkt[ck..ck + 2].copy_from_slice(&c.to_be_bytes());
    pkt[7] -= 1;
}

/// The transport header of an IPv4 or IPv6 packet: its offset and protocol, `None` for a
/// fragment other than the first.
#[inline(always)]
fn l4_of(pkt: &[u8]) -> Option<(usize, u8)> {
    match pkt.first()? >> 4 {
        4 => {
            let off = u16::from_be_bytes([*pkt.get(6)?, *pkt.get(7)?]) & 0x1fff;
            let proto = *pkt.get(9)?;
            (off == 0).then(|| (usize::from(pkt[0] & 0x0f) * 4, proto))
        }
        6 => match *pkt.get(6)? {
            // What a translator writes: the transport header, or one Fragment header before it.
            p @ (proto::TCP | proto::UDP | proto::ICMPV6) => Some((40, p)),
            _ => {
                let ip = wire::Ipv6::parse(pkt, Parse::Lax).ok()?;
                (ip.frag.is_none_or(|f| f.offset == 0)).then_some((40 + ip.ext_len, ip.proto))
            }
        },
        _ => None,
    }
}

/// Writes the session's IPv6-side port into a packet the translator made for it (RFC 1624
/// checksum updates): `source` picks the source or destination port, and for an ICMP error
/// (`error`) the port is the quoted packet's. Anything that is not where it should be (a later
/// fragment, a quote cut short) is left alone.
#[inline(always)]
pub(crate) fn set_port(pkt: &mut [u8], error: bool, source: bool, port: u16) {
    let v6 = pkt.first().is_some_and(|b| b >> 4 == 6);
    let Some((mut l4, mut p)) = l4_of(pkt) else {
        return;
    };
    let mut outer = None;
    if error {
        outer = Some(l4 + 2);
        let q = l4 + 8;
        let Some((il4, ip)) = pkt.get(q..).and_then(l4_of) else {
            return;
        };
        (l4, p) = (q + il4, ip);
    }
    let Ok(Ports {
        sat,
        dat,
        checksum,
        udp,
        ..
    }) = ports(pkt, l4, p, v6)
    else {
        return;
    };
    let at = if source { sat } else { dat };
    if pkt.len() < at + 2 {
        return;
    }
    let f = Field {
        at,
        checksum: (pkt.len() >= checksum + 2).then_some(checksum),
        udp,
        outer,
    };
    rewrite(pkt, f, port, !v6);
}

/// [`set_port`] on each of the back-to-back packets in `out` (an IPv4 datagram cut into IPv6
/// fragments carries its ports in the first).
pub(crate) fn set_ports(out: &mut [u8], error: bool, source: bool, port: u16) {
    let mut at = 0;
    while at < out.len() {
        let len = match out[at] >> 4 {
            4 => usize::from(be16(out, at + 2)),
            _ => 40 + usize::from(be16(out, at + 4)),
        };
        if len == 0 || at + len > out.len() {
            return;
        }
        set_port(&mut out[at..at + len], error, source, port);
        at += len;
    }
}
