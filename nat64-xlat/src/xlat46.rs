//! IPv4 → IPv6 (RFC 7915 §4): header, ICMP, the packet quoted in ICMP errors, and fragmentation.

use crate::checksum;
use crate::emit::{self, Frag6, Hdr6, Patches};
use crate::icmp::{self, Rest};
use crate::outcome::{DropReason, Emitted};
use crate::rfc4884;
use crate::translator::{Fail, MAX_ICMP6_ERROR, Role, Translator};
use crate::wire::{Ipv4, Parse, proto};

/// Translates `input`. `hairpin` marks the second pass of a hairpinned packet (RFC 7757 §4.2.2): the
/// TTL was already decremented and the remote addresses map through RFC 6052 only.
pub(crate) fn translate(
    t: &Translator<'_>,
    input: &[u8],
    out: &mut [u8],
    hairpin: bool,
) -> Result<Emitted, Fail> {
    let cfg = t.cfg();
    let ip = Ipv4::parse(input, Parse::Strict)?;
    let icmp_error = ip.proto == proto::ICMP
        && ip.offset == 0
        && ip.payload.first().is_some_and(|&ty| icmp::is_error_v4(ty));
    // RFC 1812 §4.3.2.7: never an ICMP error about an ICMP error or a non-first fragment.
    let may_reply = !icmp_error && ip.offset == 0 && !hairpin;
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

    if !hairpin && ip.ttl <= 1 {
        return Err(if ip.ttl == 0 {
            DropReason::Expired.into()
        } else {
            refuse(DropReason::Expired, 11, 0, 0)
        });
    }
    if ip.has_unexpired_source_route() {
        return Err(refuse(DropReason::SourceRoute, 3, 5, 0));
    }
    if usize::from(ip.offset) * 8 + ip.payload.len() > 0xffff {
        return Err(DropReason::Malformed.into());
    }
    if ip.proto == proto::ICMP && ip.is_fragment() {
        return Err(DropReason::FragmentedIcmp.into());
    }
    if icmp_error {
        return icmp_error_msg(t, &ip, out, hairpin);
    }

    let src = t
        .map_4to6(ip.src, Role::Remote, hairpin)
        .ok_or(DropReason::UntranslatableSource)?;
    let dst = t
        .map_4to6(ip.dst, Role::Local, hairpin)
        .ok_or(DropReason::UntranslatableDestination)?;
    let payload = ip.payload;
    let mut patches = Patches::default();
    if ip.offset == 0 {
        match ip.proto {
            proto::TCP => {
                let old = read16(payload, 16)?;
                let c = checksum::update(
                    old,
                    checksum::addrs4(ip.src, ip.dst),
                    checksum::addrs6(src, dst),
                );
                patches.word(16, c);
            }
            proto::UDP => {
                let old = read16(payload, 6)?;
                if old == 0 {
                    if ip.is_fragment() || cfg.udp_zero_checksum == crate::UdpZeroChecksum::Drop {
                        return Err(refuse(DropReason::UdpZeroChecksum, 3, 13, 0));
                    }
                    let acc = checksum::add(
                        checksum::pseudo6(src, dst, proto::UDP, payload.len() as u32),
                        checksum::sum(payload),
                    );
                    let c = checksum::finish(acc);
                    patches.word(6, if c == 0 { 0xffff } else { c });
                } else {
                    let c = checksum::update(
                        old,
                        checksum::addrs4(ip.src, ip.dst),
                        checksum::addrs6(src, dst),
                    );
                    patches.word(6, c);
                }
            }
            proto::ICMP => {
                let old = read16(payload, 2)?;
                let (ty, code) = (payload[0], payload[1]);
                let m = icmp::map_4to6(ty, code).ok_or(DropReason::UntranslatableIcmp)?;
                let c = checksum::update(
                    old,
                    u32::from(u16::from_be_bytes([ty, code])),
                    checksum::add(
                        u32::from(u16::from_be_bytes([m.ty, m.code])),
                        checksum::pseudo6(src, dst, proto::ICMPV6, payload.len() as u32),
                    ),
                );
                patches.byte(0, m.ty);
                patches.word(2, c);
            }
            _ => {}
        }
    }

    let h = Hdr6 {
        traffic_class: cfg.traffic_class.unwrap_or(ip.tos),
        next: if ip.proto == proto::ICMP {
            proto::ICMPV6
        } else {
            ip.proto
        },
        hop_limit: if hairpin { ip.ttl } else { ip.ttl - 1 },
        src,
        dst,
    };
    let already = ip.is_fragment();
    let whole = 40 + if already { 8 } else { 0 } + payload.len();
    let mtu6 = usize::from(cfg.mtu6).max(1280);
    if ip.df && whole > mtu6 {
        // The MTU the sender should use: the IPv6 link less the header growth.
        return Err(refuse(DropReason::TooBig, 3, 4, (mtu6 - 20) as u32));
    }
    // Checked after the refusals above, which answer the sender even for such a fragment.
    if ip.mf && payload.len() % 8 != 0 {
        return Err(DropReason::UnalignedFragment.into());
    }
    let limit = if ip.df {
        mtu6
    } else {
        mtu6.min(usize::from(cfg.lowest_ipv6_mtu).max(1280))
    };
    if whole <= limit {
        let frag = already.then_some(Frag6 {
            offset: ip.offset,
            more: ip.mf,
            id: u32::from(ip.id),
        });
        let hl = emit::ipv6_header(out, &h, frag, payload.len())?;
        write_payload(out, hl, payload, &patches, 0)?;
        return Ok(Emitted {
            len: hl + payload.len(),
            count: 1,
        });
    }
    // DF clear and too big for IPv6: fragment (RFC 7915 §4 / §4.1), every piece but the last a
    // multiple of 8 bytes.
    let chunk = (limit - 48) / 8 * 8;
    let (mut at, mut start, mut count) = (0, 0, 0);
    while start < payload.len() {
        let end = (start + chunk).min(payload.len());
        let last = end == payload.len();
        let frag = Frag6 {
            offset: ip.offset + (start / 8) as u16,
            more: !last || ip.mf,
            id: u32::from(ip.id),
        };
        let o = out.get_mut(at..).ok_or(DropReason::BufferTooSmall)?;
        let hl = emit::ipv6_header(o, &h, Some(frag), end - start)?;
        write_payload(o, hl, &payload[start..end], &patches, start)?;
        at += hl + end - start;
        count += 1;
        start = end;
    }
    Ok(Emitted { len: at, count })
}

fn write_payload(
    out: &mut [u8],
    at: usize,
    data: &[u8],
    patches: &Patches,
    start: usize,
) -> Result<(), DropReason> {
    emit::copy(out, at, data)?;
    patches.apply(&mut out[at..at + data.len()], start);
    Ok(())
}

pub(crate) fn read16(b: &[u8], at: usize) -> Result<u16, DropReason> {
    match b.get(at..at + 2) {
        Some(&[hi, lo]) => Ok(u16::from_be_bytes([hi, lo])),
        _ => Err(DropReason::Truncated),
    }
}

/// RFC 7915 §4.2 and §4.3: an ICMPv4 error becomes an ICMPv6 error with its quoted packet translated.
fn icmp_error_msg(
    t: &Translator<'_>,
    ip: &Ipv4<'_>,
    out: &mut [u8],
    hairpin: bool,
) -> Result<Emitted, Fail> {
    let cfg = t.cfg();
    let msg = ip.payload;
    if msg.len() < 8 {
        return Err(DropReason::Truncated.into());
    }
    let m = icmp::map_4to6(msg[0], msg[1]).ok_or(DropReason::UntranslatableIcmp)?;
    let src = t
        .map_4to6(ip.src, Role::Remote, hairpin)
        .or_else(|| t.rfc6791_v6(ip.src))
        .ok_or(DropReason::UntranslatableSource)?;
    let dst = t
        .map_4to6(ip.dst, Role::Local, hairpin)
        .ok_or(DropReason::UntranslatableDestination)?;
    let (quote, ext) = rfc4884::split(&msg[8..], msg[5], 4);
    let inner = Ipv4::parse(quote, Parse::Lax).map_err(|_| DropReason::InnerPacket)?;
    let rest = match m.rest {
        Rest::Mtu => icmp::mtu_4to6(
            u16::from_be_bytes([msg[6], msg[7]]),
            inner.total_len,
            cfg.mtu6,
            cfg.mtu4,
        ),
        Rest::Pointer => {
            u32::from(icmp::pointer_4to6(msg[4]).ok_or(DropReason::UntranslatablePointer)?)
        }
        Rest::FixedPointer(p) => u32::from(p),
        Rest::Unused | Rest::Copy => 0,
    };

    let body = out.get_mut(48..).ok_or(DropReason::BufferTooSmall)?;
    let ilen = inner_packet(t, &inner, body, hairpin)?;
    let carries_len = matches!(m.ty, icmp::v6::DEST_UNREACH | icmp::v6::TIME_EXCEEDED);
    let ext = if carries_len { ext } else { &[] };
    let l = rfc4884::layout(ilen, ext.len(), MAX_ICMP6_ERROR - 48, 8);
    body.get_mut(l.keep..l.area)
        .ok_or(DropReason::BufferTooSmall)?
        .fill(0);
    if l.ext {
        emit::copy(body, l.area, ext)?;
    }
    let icmp_len = 8 + l.area + if l.ext { ext.len() } else { 0 };

    let h = Hdr6 {
        traffic_class: cfg.traffic_class.unwrap_or(ip.tos),
        next: proto::ICMPV6,
        hop_limit: if hairpin { ip.ttl } else { ip.ttl - 1 },
        src,
        dst,
    };
    emit::ipv6_header(out, &h, None, icmp_len)?;
    let msg6 = &mut out[40..40 + icmp_len];
    msg6[0] = m.ty;
    msg6[1] = m.code;
    msg6[2..4].fill(0);
    msg6[4..8].copy_from_slice(&rest.to_be_bytes());
    if l.ext {
        msg6[4] = (l.area / 8) as u8;
    }
    let acc = checksum::add(
        checksum::pseudo6(src, dst, proto::ICMPV6, icmp_len as u32),
        checksum::sum(msg6),
    );
    msg6[2..4].copy_from_slice(&checksum::finish(acc).to_be_bytes());
    Ok(Emitted {
        len: 40 + icmp_len,
        count: 1,
    })
}

/// RFC 7915 §4.3: the IPv4 packet inside an ICMPv4 error, as an IPv6 packet. Its TTL is kept, its
/// payload length comes from its own header, its addresses swap roles, and a truncated tail is fine.
/// Returns the bytes written.
fn inner_packet(
    t: &Translator<'_>,
    inner: &Ipv4<'_>,
    out: &mut [u8],
    hairpin: bool,
) -> Result<usize, Fail> {
    let first = inner.offset == 0;
    if inner.proto == proto::ICMP
        && first
        && inner
            .payload
            .first()
            .is_some_and(|&ty| icmp::is_error_v4(ty))
    {
        return Err(DropReason::NestedIcmpError.into());
    }
    let src = t
        .map_4to6(inner.src, Role::Local, hairpin)
        .ok_or(DropReason::InnerPacket)?;
    let dst = t
        .map_4to6(inner.dst, Role::Remote, hairpin)
        .ok_or(DropReason::InnerPacket)?;
    let claimed = usize::from(inner.claimed_payload_len());
    let data = inner.payload;
    let mut patches = Patches::default();
    if first {
        match inner.proto {
            proto::TCP => {
                if let Ok(old) = read16(data, 16) {
                    let c = checksum::update(
                        old,
                        checksum::addrs4(inner.src, inner.dst),
                        checksum::addrs6(src, dst),
                    );
                    patches.word(16, c);
                }
            }
            proto::UDP => {
                // A zero checksum stays zero: the quote only has to identify the flow.
                if let Ok(old @ 1..) = read16(data, 6) {
                    let c = checksum::update(
                        old,
                        checksum::addrs4(inner.src, inner.dst),
                        checksum::addrs6(src, dst),
                    );
                    patches.word(6, c);
                }
            }
            proto::ICMP => {
                if let (Some(&ty), Some(&code)) = (data.first(), data.get(1)) {
                    let m = icmp::map_4to6(ty, code).ok_or(DropReason::InnerPacket)?;
                    patches.byte(0, m.ty);
                    if let Ok(old) = read16(data, 2) {
                        let c = checksum::update(
                            old,
                            u32::from(u16::from_be_bytes([ty, code])),
                            checksum::add(
                                u32::from(u16::from_be_bytes([m.ty, m.code])),
                                checksum::pseudo6(src, dst, proto::ICMPV6, claimed as u32),
                            ),
                        );
                        patches.word(2, c);
                    }
                }
            }
            _ => {}
        }
    }
    let h = Hdr6 {
        traffic_class: t.cfg().traffic_class.unwrap_or(inner.tos),
        next: if inner.proto == proto::ICMP {
            proto::ICMPV6
        } else {
            inner.proto
        },
        hop_limit: inner.ttl,
        src,
        dst,
    };
    let frag = inner.is_fragment().then_some(Frag6 {
        offset: inner.offset,
        more: inner.mf,
        id: u32::from(inner.id),
    });
    let hl = emit::ipv6_header(out, &h, frag, claimed)?;
    write_payload(out, hl, data, &patches, 0)?;
    Ok(hl + data.len())
}
