//! What a packet says about its session: the protocol, the local (IPv6 host or pool4) and remote
//! (IPv4) endpoints, and where the local port lies, so it can be rewritten with RFC 1624
//! checksum updates. For an ICMP error the session is the quoted packet's, seen backwards.

use core::net::{Ipv4Addr, Ipv6Addr};

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

/// The session a packet belongs to, from its own side.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flow<A> {
    pub proto: Proto,
    /// The IPv6 host (6→4) or the pool4 address (4→6).
    pub local: A,
    pub local_port: u16,
    pub remote: A,
    pub rport: u16,
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
    b.get(at..at + 2).map_or(0, |w| u16::from_be_bytes([w[0], w[1]]))
}

/// The ports (or ICMP identifier) of a transport header at `l4`, as (source, destination), and
/// the offsets of the source and destination fields and the checksum. `None` for ICMP messages
/// that are not echo.
fn ports(
    pkt: &[u8],
    l4: usize,
    p: u8,
    v6: bool,
) -> Result<(Proto, u16, u16, usize, usize, usize, bool), DropReason> {
    let icmp = if v6 { proto::ICMPV6 } else { proto::ICMP };
    match p {
        proto::TCP => Ok((Proto::Tcp, be16(pkt, l4), be16(pkt, l4 + 2), l4, l4 + 2, l4 + 16, false)),
        proto::UDP => Ok((Proto::Udp, be16(pkt, l4), be16(pkt, l4 + 2), l4, l4 + 2, l4 + 6, true)),
        x if x == icmp => {
            // The identifier stands for the port on both sides.
            let id = be16(pkt, l4 + 4);
            Ok((Proto::Icmp, id, id, l4 + 4, l4 + 4, l4 + 2, false))
        }
        _ => Err(DropReason::NoPorts),
    }
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
    if v6 { ty < 128 } else { matches!(ty, 3 | 4 | 5 | 11 | 12) }
}

/// The flow of an IPv6 packet from the IPv6 side (6→4).
pub(crate) fn flow6(pkt: &[u8]) -> Result<Flow<Ipv6Addr>, DropReason> {
    let ip = wire::Ipv6::parse(pkt, Parse::Strict)?;
    if ip.is_fragment() {
        return Err(DropReason::Fragmented);
    }
    let l4 = 40 + ip.ext_len;
    if ip.proto == proto::ICMPV6 {
        let ty = *ip.payload.first().ok_or(DropReason::Truncated)?;
        if is_error(ty, true) {
            // The quote is a packet from the remote end to the host: its destination is ours.
            let q = l4 + 8;
            let inner = wire::Ipv6::parse(pkt.get(q..).ok_or(DropReason::Truncated)?, Parse::Lax)
                .map_err(|_| DropReason::InnerPacket)?;
            if inner.is_fragment() && inner.frag.is_some_and(|f| f.offset != 0) {
                return Err(DropReason::InnerPacket);
            }
            let il4 = q + 40 + inner.ext_len;
            let (p, sport, dport, _, dat, ck, udp) = ports(pkt, il4, inner.proto, true)?;
            if p == Proto::Icmp && is_echo(*pkt.get(il4).ok_or(DropReason::Truncated)?, true).is_none() {
                return Err(DropReason::NestedIcmpError);
            }
            if pkt.len() < dat + 2 {
                return Err(DropReason::InnerPacket);
            }
            return Ok(Flow {
                proto: p,
                local: inner.dst,
                local_port: dport,
                remote: inner.src,
                rport: if p == Proto::Icmp { 0 } else { sport },
                field: Field {
                    at: dat,
                    checksum: (pkt.len() >= ck + 2).then_some(ck),
                    udp,
                    outer: Some(l4 + 2),
                },
                flags: Flags::default(),
                opens: false,
                error: true,
                dport,
            });
        }
        let request = is_echo(ty, true).ok_or(DropReason::UntranslatableIcmp)?;
        if ip.payload.len() < 8 {
            return Err(DropReason::Truncated);
        }
        let id = be16(pkt, l4 + 4);
        return Ok(Flow {
            proto: Proto::Icmp,
            local: ip.src,
            local_port: id,
            remote: ip.dst,
            rport: 0,
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
    let (p, sport, dport, sat, _, ck, udp) = ports(pkt, l4, ip.proto, true)?;
    let need = if p == Proto::Tcp { 20 } else { 8 };
    if ip.payload.len() < need {
        return Err(DropReason::Truncated);
    }
    Ok(Flow {
        proto: p,
        local: ip.src,
        local_port: sport,
        remote: ip.dst,
        rport: dport,
        field: Field {
            at: sat,
            checksum: Some(ck),
            udp,
            outer: None,
        },
        flags: Flags::of(&pkt[l4..]),
        opens: true,
        error: false,
        dport,
    })
}

/// The flow of an IPv4 packet from the IPv4 side (4→6); `local` is the pool4 address.
pub(crate) fn flow4(pkt: &[u8]) -> Result<Flow<Ipv4Addr>, DropReason> {
    let ip = wire::Ipv4::parse(pkt, Parse::Strict)?;
    if ip.is_fragment() {
        return Err(DropReason::Fragmented);
    }
    let l4 = ip.header.len();
    if ip.proto == proto::ICMP {
        let ty = *ip.payload.first().ok_or(DropReason::Truncated)?;
        if is_error(ty, false) {
            // The quote is a packet from the pool4 address to the remote end: its source is ours.
            let q = l4 + 8;
            let inner = wire::Ipv4::parse(pkt.get(q..).ok_or(DropReason::Truncated)?, Parse::Lax)
                .map_err(|_| DropReason::InnerPacket)?;
            if inner.offset != 0 {
                return Err(DropReason::InnerPacket);
            }
            let il4 = q + inner.header.len();
            let (p, sport, dport, sat, _, ck, udp) = ports(pkt, il4, inner.proto, false)?;
            if p == Proto::Icmp && is_echo(*pkt.get(il4).ok_or(DropReason::Truncated)?, false).is_none() {
                return Err(DropReason::NestedIcmpError);
            }
            if pkt.len() < sat + 2 {
                return Err(DropReason::InnerPacket);
            }
            return Ok(Flow {
                proto: p,
                local: inner.src,
                local_port: sport,
                remote: inner.dst,
                rport: if p == Proto::Icmp { 0 } else { dport },
                field: Field {
                    at: sat,
                    checksum: (pkt.len() >= ck + 2).then_some(ck),
                    udp,
                    outer: Some(l4 + 2),
                },
                flags: Flags::default(),
                opens: false,
                error: true,
                dport,
            });
        }
        let request = is_echo(ty, false).ok_or(DropReason::UntranslatableIcmp)?;
        if ip.payload.len() < 8 {
            return Err(DropReason::Truncated);
        }
        let id = be16(pkt, l4 + 4);
        return Ok(Flow {
            proto: Proto::Icmp,
            local: ip.dst,
            local_port: id,
            remote: ip.src,
            rport: 0,
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
    let (p, sport, dport, _, dat, ck, udp) = ports(pkt, l4, ip.proto, false)?;
    let need = if p == Proto::Tcp { 20 } else { 8 };
    if ip.payload.len() < need {
        return Err(DropReason::Truncated);
    }
    Ok(Flow {
        proto: p,
        local: ip.dst,
        local_port: dport,
        remote: ip.src,
        rport: sport,
        field: Field {
            at: dat,
            checksum: Some(ck),
            udp,
            outer: None,
        },
        flags: Flags::of(&pkt[l4..]),
        opens: true,
        error: false,
        dport,
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
pub(crate) fn hairpin6(
    pkt: &mut [u8],
    sport_field: Field,
    src: (Ipv6Addr, u16),
    dst: (Ipv6Addr, u16),
) {
    let Some(ck) = sport_field.checksum else {
        return;
    };
    let mut old = [0u8; 36];
    old[..32].copy_from_slice(&pkt[8..40]);
    old[32..36].copy_from_slice(&pkt[sport_field.at..sport_field.at + 4]);
    let mut new = [0u8; 36];
    new[..16].copy_from_slice(&src.0.octets());
    new[16..32].copy_from_slice(&dst.0.octets());
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

/// Puts a port back into the packet quoted by an ICMP error the translator generated about a
/// packet whose port we had rewritten, so its sender recognises its own packet. `v6`: the error
/// is ICMPv6 (quoting an IPv6 packet); `source`: the port is the quoted packet's source.
pub(crate) fn unquote(reply: &mut [u8], v6: bool, source: bool, port: u16) {
    let outer_l4 = if v6 {
        40
    } else {
        usize::from(reply.first().map_or(5, |b| b & 0x0f)) * 4
    };
    let q = outer_l4 + 8;
    let Some(quote) = reply.get(q..) else { return };
    let (il4, p) = if v6 {
        match wire::Ipv6::parse(quote, Parse::Lax) {
            Ok(i) if !i.is_fragment() || i.frag.is_some_and(|f| f.offset == 0) => {
                (q + 40 + i.ext_len, i.proto)
            }
            _ => return,
        }
    } else {
        match wire::Ipv4::parse(quote, Parse::Lax) {
            Ok(i) if i.offset == 0 => (q + i.header.len(), i.proto),
            _ => return,
        }
    };
    let Ok((_, _, _, sat, dat, ck, udp)) = ports(reply, il4, p, v6) else {
        return;
    };
    let at = if source { sat } else { dat };
    if reply.len() < at + 2 {
        return;
    }
    let f = Field {
        at,
        checksum: (reply.len() >= ck + 2).then_some(ck),
        udp,
        outer: Some(outer_l4 + 2),
    };
    rewrite(reply, f, port, !v6);
}
