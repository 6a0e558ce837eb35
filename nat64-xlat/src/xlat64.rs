//! IPv6 → IPv4 (RFC 7915 §5): header, extension headers, ICMPv6, the packet quoted in ICMPv6
//! errors, fragments, and RFC 7757 §4.2.2 hairpinning back to IPv6.

use core::net::Ipv4Addr;

use crate::checksum;
use crate::eam::EamTable;
use crate::emit::{self, Hdr4, Patches};
use crate::icmp::{self, Rest};
use crate::outcome::{DropReason, Emitted};
use crate::rfc4884;
use crate::translator::{Fail, MAX_ICMP4_ERROR, Translator};
use crate::wire::{Ipv6, Parse, proto};
use crate::xlat46::{self, read16};

/// Where the result goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Done {
    /// IPv4, out of the IPv4 side.
    Out(Emitted),
    /// IPv6 again, back out of the IPv6 side.
    Hairpin(Emitted),
}

/// Translates `input`, hairpinning it when its IPv4 destination falls in an EAM range.
pub(crate) fn translate(t: &Translator<'_>, input: &[u8], out: &mut [u8]) -> Result<Done, Fail> {
    let cfg = t.cfg();
    let ip = Ipv6::parse(input, Parse::Strict)?;
    let first = ip.frag.is_none_or(|f| f.offset == 0);
    let icmp_error = ip.proto == proto::ICMPV6
        && first
        && ip.payload.first().is_some_and(|&ty| icmp::is_error_v6(ty));
    let may_reply = !icmp_error && first;
    let refuse = |reason, ty, code, rest| {
        if may_reply {
            Fail::Reply {
                reason,
                ty,
                code,
                rest,
            }
        } else {
            Fail::Drop(reason)
        }
    };

    if ip.hop_limit <= 1 {
        return Err(if ip.hop_limit == 0 {
            DropReason::Expired.into()
        } else {
            refuse(DropReason::Expired, 3, 0, 0)
        });
    }
    if ip.ext_after_frag {
        // RFC 7915 §5.1 says drop; like Jool we also tell the sender (the §5.4 default error).
        return Err(refuse(DropReason::ExtensionAfterFragment, 1, 1, 0));
    }
    if let Some(at) = ip.segments_left_at {
        return Err(refuse(DropReason::SegmentsLeft, 4, 0, u32::from(at)));
    }
    if ip.proto == proto::ICMPV6 && ip.is_fragment() {
        return Err(DropReason::FragmentedIcmp.into());
    }

    let dst = t
        .map_6to4(ip.dst)
        .ok_or(DropReason::UntranslatableDestination)?;
    let src = match t.map_6to4(ip.src) {
        Some(s) => s,
        // RFC 6791: an ICMPv6 error from an untranslatable router still gets through.
        None if icmp_error => t
            .rfc6791_v4(ip.src)
            .ok_or(DropReason::UntranslatableSource)?,
        None => return Err(DropReason::UntranslatableSource.into()),
    };

    if cfg.hairpinning && EamTable::new(cfg.eam).covers_v4(dst) {
        let half = out.len() / 2;
        let (lo, hi) = out.split_at_mut(half);
        let v4 = to_ipv4(t, &ip, src, dst, icmp_error, hi, true)?;
        let pass = hi.get(..v4.len).ok_or(DropReason::BufferTooSmall)?;
        return match xlat46::translate(t, pass, lo, true) {
            Ok(e) => Ok(Done::Hairpin(e)),
            Err(Fail::Reply { reason, .. } | Fail::Drop(reason)) => Err(Fail::Drop(reason)),
        };
    }

    match to_ipv4(t, &ip, src, dst, icmp_error, out, false) {
        Err(Fail::Reply {
            reason,
            ty,
            code,
            rest,
        }) if may_reply => Err(Fail::Reply {
            reason,
            ty,
            code,
            rest,
        }),
        Err(Fail::Reply { reason, .. }) => Err(Fail::Drop(reason)),
        r => r.map(Done::Out),
    }
}

/// Writes the IPv4 packet(s). `hairpin`: the result goes straight back to IPv6, so the IPv4 link MTU
/// does not apply.
fn to_ipv4(
    t: &Translator<'_>,
    ip: &Ipv6<'_>,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    icmp_error: bool,
    out: &mut [u8],
    hairpin: bool,
) -> Result<Emitted, Fail> {
    if icmp_error {
        return icmp_error_msg(t, ip, src, dst, out);
    }
    let cfg = t.cfg();
    let payload = ip.payload;
    let mut patches = Patches::default();
    if ip.frag.is_none_or(|f| f.offset == 0) {
        match ip.proto {
            proto::TCP => {
                let old = read16(payload, 16)?;
                let c = checksum::update(
                    old,
                    checksum::addrs6(ip.src, ip.dst),
                    checksum::addrs4(src, dst),
                );
                patches.word(16, c);
            }
            proto::UDP => {
                let old = read16(payload, 6)?;
                let c = checksum::update(
                    old,
                    checksum::addrs6(ip.src, ip.dst),
                    checksum::addrs4(src, dst),
                );
                patches.word(6, c);
            }
            proto::ICMPV6 => {
                let old = read16(payload, 2)?;
                let (ty, code) = (payload[0], payload[1]);
                let m = icmp::map_6to4(ty, code).ok_or(DropReason::UntranslatableIcmp)?;
                let c = checksum::update(
                    old,
                    checksum::add(
                        u32::from(u16::from_be_bytes([ty, code])),
                        checksum::pseudo6(ip.src, ip.dst, proto::ICMPV6, payload.len() as u32),
                    ),
                    u32::from(u16::from_be_bytes([m.ty, m.code])),
                );
                patches.byte(0, m.ty);
                patches.word(2, c);
            }
            _ => {}
        }
    }
    let total = 20 + payload.len();
    if total > 0xffff {
        return Err(DropReason::TooBig.into());
    }
    let mut h = Hdr4 {
        tos: cfg.traffic_class.unwrap_or(ip.traffic_class),
        id: 0,
        df: false,
        mf: false,
        offset: 0,
        ttl: ip.hop_limit - 1,
        proto: if ip.proto == proto::ICMPV6 {
            proto::ICMP
        } else {
            ip.proto
        },
        src,
        dst,
    };
    match ip.frag {
        Some(f) => {
            h.id = f.id as u16;
            h.mf = f.more;
            h.offset = f.offset;
        }
        None => {
            // RFC 7915 §5.1 (after RFC 8021): DF only above 1260 bytes; the ID is ours to pick.
            h.id = t.next_id();
            h.df = total > 1260;
        }
    }
    let mtu4 = usize::from(cfg.mtu4).max(68);
    let fits = hairpin || total <= mtu4;
    if !fits && (h.df || ip.frag.is_some()) {
        let mtu = (mtu4 + 20).max(1280) as u32;
        return Err(Fail::Reply {
            reason: DropReason::TooBig,
            ty: icmp::v6::PACKET_TOO_BIG,
            code: 0,
            rest: mtu,
        });
    }
    // Checked after the refusal above, which answers the sender even for such a fragment.
    if ip.frag.is_some_and(|f| f.more) && payload.len() % 8 != 0 {
        return Err(DropReason::UnalignedFragment.into());
    }
    if fits {
        emit::ipv4_header(out, &h, payload.len())?;
        emit::copy(out, 20, payload)?;
        patches.apply(&mut out[20..20 + payload.len()], 0);
        return Ok(Emitted {
            len: total,
            count: 1,
        });
    }
    // A small DF-clear packet over a narrow IPv4 link: fragment it here.
    let chunk = (mtu4 - 20) / 8 * 8;
    let (mut at, mut start, mut count) = (0, 0, 0);
    while start < payload.len() {
        let end = (start + chunk).min(payload.len());
        let mut fh = h;
        fh.offset = (start / 8) as u16;
        fh.mf = end < payload.len();
        let o = out.get_mut(at..).ok_or(DropReason::BufferTooSmall)?;
        emit::ipv4_header(o, &fh, end - start)?;
        emit::copy(o, 20, &payload[start..end])?;
        patches.apply(&mut o[20..20 + end - start], start);
        at += 20 + end - start;
        count += 1;
        start = end;
    }
    Ok(Emitted { len: at, count })
}

/// RFC 7915 §5.2 and §5.3: an ICMPv6 error becomes an ICMPv4 error with its quoted packet translated.
fn icmp_error_msg(
    t: &Translator<'_>,
    ip: &Ipv6<'_>,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    out: &mut [u8],
) -> Result<Emitted, Fail> {
    let cfg = t.cfg();
    let msg = ip.payload;
    if msg.len() < 8 {
        return Err(DropReason::Truncated.into());
    }
    let m = icmp::map_6to4(msg[0], msg[1]).ok_or(DropReason::UntranslatableIcmp)?;
    let word = u32::from_be_bytes([msg[4], msg[5], msg[6], msg[7]]);
    let words = if matches!(msg[0], icmp::v6::DEST_UNREACH | icmp::v6::TIME_EXCEEDED) {
        msg[4]
    } else {
        0
    };
    let (quote, ext) = rfc4884::split(&msg[8..], words, 8);
    let inner = Ipv6::parse(quote, Parse::Lax).map_err(|_| DropReason::InnerPacket)?;
    let rest = match m.rest {
        Rest::Mtu => u32::from(icmp::mtu_6to4(word, cfg.mtu4, cfg.mtu6)),
        Rest::Pointer => {
            u32::from(icmp::pointer_6to4(word).ok_or(DropReason::UntranslatablePointer)?) << 24
        }
        Rest::FixedPointer(p) => u32::from(p) << 24,
        Rest::Unused | Rest::Copy => 0,
    };

    let body = out.get_mut(28..).ok_or(DropReason::BufferTooSmall)?;
    let ilen = inner_packet(t, &inner, body)?;
    let carries_len = matches!(
        m.ty,
        icmp::v4::DEST_UNREACH | icmp::v4::TIME_EXCEEDED | icmp::v4::PARAM_PROBLEM
    );
    let ext = if carries_len { ext } else { &[] };
    let l = rfc4884::layout(ilen, ext.len(), MAX_ICMP4_ERROR - 28, 4);
    body.get_mut(l.keep..l.area)
        .ok_or(DropReason::BufferTooSmall)?
        .fill(0);
    if l.ext {
        emit::copy(body, l.area, ext)?;
    }
    let icmp_len = 8 + l.area + if l.ext { ext.len() } else { 0 };
    let h = Hdr4 {
        tos: cfg.traffic_class.unwrap_or(ip.traffic_class),
        // An atomic fragment's ID is kept, as for any other packet (RFC 7915 §5.1).
        id: ip.frag.map_or_else(|| t.next_id(), |f| f.id as u16),
        df: ip.frag.is_none() && 20 + icmp_len > 1260,
        mf: false,
        offset: 0,
        ttl: ip.hop_limit - 1,
        proto: proto::ICMP,
        src,
        dst,
    };
    emit::ipv4_header(out, &h, icmp_len)?;
    let msg4 = &mut out[20..20 + icmp_len];
    msg4[0] = m.ty;
    msg4[1] = m.code;
    msg4[2..4].fill(0);
    msg4[4..8].copy_from_slice(&rest.to_be_bytes());
    if l.ext {
        msg4[5] = (l.area / 4) as u8;
    }
    let c = checksum::finish(checksum::sum(msg4));
    msg4[2..4].copy_from_slice(&c.to_be_bytes());
    Ok(Emitted {
        len: 20 + icmp_len,
        count: 1,
    })
}

/// RFC 7915 §5.3: the IPv6 packet inside an ICMPv6 error, as an IPv4 packet (TTL kept, length from
/// its own header, addresses in swapped roles, truncation tolerated). Returns the bytes written.
fn inner_packet(t: &Translator<'_>, inner: &Ipv6<'_>, out: &mut [u8]) -> Result<usize, Fail> {
    let first = inner.frag.is_none_or(|f| f.offset == 0);
    let data = inner.payload;
    if inner.proto == proto::ICMPV6
        && first
        && data.first().is_some_and(|&ty| icmp::is_error_v6(ty))
    {
        return Err(DropReason::NestedIcmpError.into());
    }
    let src = t.map_6to4(inner.src).ok_or(DropReason::InnerPacket)?;
    let dst = t.map_6to4(inner.dst).ok_or(DropReason::InnerPacket)?;
    let claimed = inner.claimed_payload_len();
    let mut patches = Patches::default();
    if first {
        match inner.proto {
            proto::TCP | proto::UDP => {
                let at = if inner.proto == proto::TCP { 16 } else { 6 };
                if let Ok(old) = read16(data, at) {
                    let c = checksum::update(
                        old,
                        checksum::addrs6(inner.src, inner.dst),
                        checksum::addrs4(src, dst),
                    );
                    patches.word(at, c);
                }
            }
            proto::ICMPV6 => {
                if let (Some(&ty), Some(&code)) = (data.first(), data.get(1)) {
                    let m = icmp::map_6to4(ty, code).ok_or(DropReason::InnerPacket)?;
                    patches.byte(0, m.ty);
                    if let Ok(old) = read16(data, 2) {
                        let c = checksum::update(
                            old,
                            checksum::add(
                                u32::from(u16::from_be_bytes([ty, code])),
                                checksum::pseudo6(
                                    inner.src,
                                    inner.dst,
                                    proto::ICMPV6,
                                    claimed as u32,
                                ),
                            ),
                            u32::from(u16::from_be_bytes([m.ty, m.code])),
                        );
                        patches.word(2, c);
                    }
                }
            }
            _ => {}
        }
    }
    let total = 20 + claimed;
    let mut h = Hdr4 {
        tos: t.cfg().traffic_class.unwrap_or(inner.traffic_class),
        id: 0,
        df: false,
        mf: false,
        offset: 0,
        ttl: inner.hop_limit,
        proto: if inner.proto == proto::ICMPV6 {
            proto::ICMP
        } else {
            inner.proto
        },
        src,
        dst,
    };
    match inner.frag {
        Some(f) => {
            h.id = f.id as u16;
            h.mf = f.more;
            h.offset = f.offset;
        }
        None => h.df = total > 1260,
    }
    emit::ipv4_header(out, &h, claimed)?;
    emit::copy(out, 20, data)?;
    patches.apply(&mut out[20..20 + data.len()], 0);
    Ok(20 + data.len())
}
