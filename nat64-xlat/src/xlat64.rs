//! IPv6 → IPv4 (RFC 7915 §5): header, extension headers, ICMPv6, the packet quoted in ICMPv6
//! errors, fragments, and RFC 7757 §4.2.2 hairpinning back to IPv6.

use core::net::Ipv4Addr;
use core::ops::Range;

use crate::checksum;
use crate::config::Config;
use crate::eam::EamTable;
use crate::emit::{self, Hdr4, Patches};
use crate::fail::{Fail, MAX_ICMP4_ERROR};
use crate::icmp::{self, Rest};
use crate::ids::Ids;
use crate::outcome::{DropReason, Emitted};
use crate::rfc4884;
use crate::sink::{self, Head, Pieces, Plan, Sink, ToBuffer};
use crate::wire::{Ipv6, MIN_MTU6, Parse, field, proto, read16};
use crate::xlat46;

/// Where the result goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Done {
    /// IPv4, out of the IPv4 side.
    Out(Emitted),
    /// IPv6 again, back out of the IPv6 side.
    Hairpin(Emitted),
}

/// A parsed IPv6 packet that passed the checks of RFC 7915 §5.1, with its IPv4 addresses.
struct Prepared<'a> {
    ip: Ipv6<'a>,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    icmp_error: bool,
    /// Whether the sender may get an ICMPv6 error (not about an error, nor a non-first fragment).
    may_reply: bool,
    /// The IPv4 destination is in an EAM range: straight back to IPv6 (RFC 7757 §4.2.2).
    hairpin: bool,
}

#[inline(always)]
fn prepare<'a>(cfg: &Config<'_>, input: &'a [u8]) -> Result<Prepared<'a>, Fail> {
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

    // Addresses first: a packet we could never translate gets no ICMP error from us, or we would be
    // a router for any traffic and a reflector for spoofed sources.
    let dst = cfg
        .map_6to4(ip.dst)
        .ok_or(DropReason::UntranslatableDestination)?;
    let src = match cfg.map_6to4(ip.src) {
        Some(s) => s,
        // RFC 6791: an ICMPv6 error from an untranslatable router still gets through.
        None if icmp_error => cfg
            .rfc6791_source_v4(ip.src)
            .ok_or(DropReason::UntranslatableSource)?,
        None => return Err(DropReason::UntranslatableSource.into()),
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
        return Err(refuse(DropReason::SegmentsLeft, 4, 0, at));
    }
    if ip.proto == proto::ICMPV6 && ip.is_fragment() {
        return Err(DropReason::FragmentedIcmp.into());
    }

    let hairpin = cfg.hairpinning && EamTable::new(cfg.eam).covers_v4(dst);
    Ok(Prepared {
        ip,
        src,
        dst,
        icmp_error,
        may_reply,
        hairpin,
    })
}

/// Translates `input`, hairpinning it when its IPv4 destination falls in an EAM range.
pub(crate) fn translate(
    cfg: &Config<'_>,
    ids: &Ids,
    input: &[u8],
    out: &mut [u8],
) -> Result<Done, Fail> {
    let p = prepare(cfg, input)?;
    if p.hairpin {
        let half = out.len() / 2;
        let (lo, hi) = out.split_at_mut(half);
        let v4 = to_ipv4(cfg, ids, &p, hi)?;
        let pass = hi.get(..v4.len()).ok_or(DropReason::BufferTooSmall)?;
        return match xlat46::translate(cfg, pass, lo, true) {
            Ok(e) => Ok(Done::Hairpin(e)),
            Err(Fail::Reply { reason, .. } | Fail::Drop(reason)) => Err(Fail::Drop(reason)),
        };
    }
    match to_ipv4(cfg, ids, &p, out) {
        Err(Fail::Reply { reason, .. }) if !p.may_reply => Err(Fail::Drop(reason)),
        r => r.map(Done::Out),
    }
}

/// Translates the packet at `buf[at..at + len]` where it lies when the result is one plain IPv4
/// packet: the IPv4 header goes over the end of the IPv6 headers, the payload does not move.
/// `Ok(None)`: not that kind of packet (or an ICMP error is due); `buf` is untouched.
pub(crate) fn translate_in_place(
    cfg: &Config<'_>,
    ids: &Ids,
    buf: &mut [u8],
    at: usize,
    len: usize,
) -> Result<Option<Range<usize>>, DropReason> {
    let input = buf
        .get(at..at.saturating_add(len))
        .ok_or(DropReason::Truncated)?;
    let (h, patches, headers, plen) = match prepare(cfg, input) {
        Ok(p) if !p.icmp_error && !p.hairpin => match plan_ipv4(cfg, ids, &p, Pieces) {
            Ok((h, patches, None)) => {
                let headers = field::IPV6_LEN + p.ip.ext_len;
                (h, patches, headers, p.ip.payload.len())
            }
            Ok(_) | Err(Fail::Reply { .. }) => return Ok(None),
            Err(Fail::Drop(r)) => return Err(r),
        },
        Ok(_) | Err(Fail::Reply { .. }) => return Ok(None),
        Err(Fail::Drop(r)) => return Err(r),
    };
    let start = at + headers - field::IPV4_LEN;
    h.write(&mut buf[start..], plen, None)?;
    patches.apply(&mut buf[at + headers..at + headers + plen], 0);
    Ok(Some(start..at + headers + plen))
}

/// Writes the IPv4 packet(s). For a hairpinned packet the IPv4 link MTU does not apply.
#[inline(always)]
fn to_ipv4(cfg: &Config<'_>, ids: &Ids, p: &Prepared<'_>, out: &mut [u8]) -> Result<Emitted, Fail> {
    if p.icmp_error {
        return icmp_error_msg(cfg, ids, &p.ip, p.src, p.dst, out);
    }
    plan_ipv4(cfg, ids, p, ToBuffer(out))
}

#[inline(always)]
fn plan_ipv4<S: Sink<Hdr4>>(
    cfg: &Config<'_>,
    ids: &Ids,
    p: &Prepared<'_>,
    sink: S,
) -> Result<S::Out, Fail> {
    let (ip, src, dst) = (&p.ip, p.src, p.dst);
    let payload = ip.payload;
    let mut patches = Patches::default();
    if ip.frag.is_none_or(|f| f.offset == 0) {
        match ip.proto {
            proto::TCP | proto::UDP => {
                // Zero (only legal over IPv6 for RFC 6935 tunnels) stays zero: "no checksum" in IPv4.
                let (from, to) = (checksum::addrs6(ip.src, ip.dst), checksum::addrs4(src, dst));
                patches.readdress(ip.proto, payload, from, to)?;
            }
            proto::ICMPV6 => {
                read16(payload, field::ICMP_CHECKSUM)?;
                let (ty, code) = (payload[field::ICMP_TYPE], payload[field::ICMP_CODE]);
                let m = icmp::map_6to4(ty, code).ok_or(DropReason::UntranslatableIcmp)?;
                let pseudo = checksum::pseudo6(ip.src, ip.dst, proto::ICMPV6, payload.len() as u32);
                patches.retype_icmp(payload, [ty, code], [m.ty, m.code], pseudo, 0);
            }
            _ => {}
        }
    }
    let total = field::IPV4_LEN + payload.len();
    if total > 0xffff {
        return Err(DropReason::TooBig.into());
    }
    let mut h = hdr4(cfg, ip, src, dst, ip.hop_limit - 1, total);
    if ip.frag.is_none() {
        // The ID is ours to pick.
        h.id = ids.next(cfg.id_key, src, dst);
    }
    let mtu4 = usize::from(cfg.mtu4).max(68);
    let fits = p.hairpin || total <= mtu4;
    if !fits && (h.df || ip.frag.is_some()) {
        let growth = field::IPV6_LEN - field::IPV4_LEN;
        let mtu = (mtu4 + growth).max(MIN_MTU6) as u32;
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
    let split = (!fits).then_some(sink::piece_len(mtu4, field::IPV4_LEN));
    let plan = Plan {
        head: &h,
        patches: &patches,
        split,
    };
    Ok(sink.plain(ip.payload, plan)?)
}

/// The IPv4 header for `ip` (RFC 7915 §5.1), the packet itself or the one quoted in an error,
/// `total` bytes long: ICMPv6 becomes ICMP, any other protocol keeps its number; a fragment keeps
/// its ID, offset and M flag, an unfragmented packet gets DF only above 1260 bytes (RFC 8021) and
/// ID 0, for the caller to pick.
#[inline(always)]
fn hdr4(
    cfg: &Config<'_>,
    ip: &Ipv6<'_>,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    total: usize,
) -> Hdr4 {
    let mut h = Hdr4 {
        tos: cfg.traffic_class.unwrap_or(ip.traffic_class),
        id: 0,
        df: false,
        mf: false,
        offset: 0,
        ttl,
        proto: if ip.proto == proto::ICMPV6 {
            proto::ICMP
        } else {
            ip.proto
        },
        src: src.to_bits(),
        dst: dst.to_bits(),
    };
    match ip.frag {
        Some(f) => {
            h.id = f.id as u16;
            h.mf = f.more;
            h.offset = f.offset;
        }
        None => h.df = total > 1260,
    }
    h
}

/// RFC 7915 §5.2 and §5.3: an ICMPv6 error becomes an ICMPv4 error with its quoted packet translated.
fn icmp_error_msg(
    cfg: &Config<'_>,
    ids: &Ids,
    ip: &Ipv6<'_>,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    out: &mut [u8],
) -> Result<Emitted, Fail> {
    let msg = ip.payload;
    if msg.len() < field::ICMP_LEN {
        return Err(DropReason::Truncated.into());
    }
    // The checksum is recomputed below: check the incoming one first, so a corrupt error does not
    // come out with a correct checksum.
    let acc = checksum::add(
        checksum::pseudo6(ip.src, ip.dst, proto::ICMPV6, msg.len() as u32),
        checksum::sum(msg),
    );
    if checksum::fold(acc) != 0xffff {
        return Err(DropReason::IcmpErrorChecksum.into());
    }
    let m = icmp::map_6to4(msg[0], msg[1]).ok_or(DropReason::UntranslatableIcmp)?;
    let r = field::ICMP_REST;
    let word = u32::from_be_bytes([msg[r], msg[r + 1], msg[r + 2], msg[r + 3]]);
    let words = if matches!(msg[0], icmp::v6::DEST_UNREACH | icmp::v6::TIME_EXCEEDED) {
        msg[field::ICMP_REST]
    } else {
        0
    };
    let (quote, ext) = rfc4884::split(&msg[field::ICMP_LEN..], words, 8);
    let inner = Ipv6::parse(quote, Parse::Lax).map_err(|_| DropReason::InnerPacket)?;
    let rest = match m.rest {
        Rest::Mtu => u32::from(icmp::mtu_6to4(
            word,
            cfg.mtu4,
            cfg.mtu6,
            inner.frag.is_some(),
        )),
        Rest::Pointer => {
            u32::from(icmp::pointer_6to4(word).ok_or(DropReason::UntranslatablePointer)?) << 24
        }
        Rest::FixedPointer(p) => u32::from(p) << 24,
        Rest::Unused | Rest::Copy => 0,
    };

    let head = field::IPV4_LEN + field::ICMP_LEN;
    let body = out.get_mut(head..).ok_or(DropReason::BufferTooSmall)?;
    let ilen = inner_packet(cfg, &inner, body)?;
    let carries_len = matches!(
        m.ty,
        icmp::v4::DEST_UNREACH | icmp::v4::TIME_EXCEEDED | icmp::v4::PARAM_PROBLEM
    );
    let ext = if carries_len { ext } else { &[] };
    let l = rfc4884::layout(ilen, ext.len(), MAX_ICMP4_ERROR - head, 4);
    body.get_mut(l.keep..l.area)
        .ok_or(DropReason::BufferTooSmall)?
        .fill(0);
    if l.ext {
        emit::copy(body, l.area, ext)?;
    }
    let icmp_len = field::ICMP_LEN + l.area + if l.ext { ext.len() } else { 0 };
    let mut h = hdr4(
        cfg,
        ip,
        src,
        dst,
        ip.hop_limit - 1,
        field::IPV4_LEN + icmp_len,
    );
    if ip.frag.is_none() {
        // An atomic fragment's ID is kept, as for any other packet (RFC 7915 §5.1).
        h.id = ids.next(cfg.id_key, src, dst);
    }
    emit::ipv4_header(out, &h, icmp_len)?;
    // RFC 4884: the quote's length in 32-bit words, in the second byte after the checksum.
    let rest = if l.ext {
        rest & 0xff00_ffff | ((l.area / 4) as u32) << 16
    } else {
        rest
    };
    let msg4 = &mut out[field::IPV4_LEN..field::IPV4_LEN + icmp_len];
    emit::icmp_header(msg4, m.ty, m.code, rest, 0);
    Ok(Emitted::new(field::IPV4_LEN + icmp_len, 1))
}

/// RFC 7915 §5.3: the IPv6 packet inside an ICMPv6 error, as an IPv4 packet (TTL kept, length from
/// its own header, addresses in swapped roles, truncation tolerated). Returns the bytes written.
fn inner_packet(cfg: &Config<'_>, inner: &Ipv6<'_>, out: &mut [u8]) -> Result<usize, Fail> {
    let first = inner.frag.is_none_or(|f| f.offset == 0);
    let data = inner.payload;
    if inner.proto == proto::ICMPV6
        && first
        && data.first().is_some_and(|&ty| icmp::is_error_v6(ty))
    {
        return Err(DropReason::NestedIcmpError.into());
    }
    let src = cfg.map_6to4(inner.src).ok_or(DropReason::InnerPacket)?;
    let dst = cfg.map_6to4(inner.dst).ok_or(DropReason::InnerPacket)?;
    let claimed = inner.claimed_payload_len();
    let mut patches = Patches::default();
    if first {
        let addrs = (
            checksum::addrs6(inner.src, inner.dst),
            checksum::addrs4(src, dst),
        );
        let pseudo = || {
            let sum = checksum::pseudo6(inner.src, inner.dst, proto::ICMPV6, claimed as u32);
            (sum, 0)
        };
        patches.quote(
            inner.proto,
            proto::ICMPV6,
            data,
            addrs,
            icmp::map_6to4,
            pseudo,
        )?;
    }
    let total = field::IPV4_LEN + claimed;
    let h = hdr4(cfg, inner, src, dst, inner.hop_limit, total);
    let hl = emit::ipv4_header(out, &h, claimed)?;
    sink::copy_patched(out, hl, data, &patches, 0)?;
    Ok(hl + data.len())
}

#[cfg(test)]
mod tests {
    use std::vec::Vec;

    use super::*;
    use crate::config::Config;
    use crate::outcome::Outcome;
    use crate::testpkt::{
        V4_HOST, V6, V6_HOST_AS_V4, a6, config, ext8, frag6, v4_host_as_v6, v6_host, verify,
    };
    use crate::translator::Translator;

    fn run(cfg: Config<'_>, input: &[u8]) -> (Outcome, Vec<u8>) {
        let t = Translator::new(cfg);
        let mut out = std::vec![0u8; Translator::out_len(input.len())];
        let o = t.translate_6to4(input, &mut out);
        (o, out)
    }

    fn packets(o: Outcome, out: &[u8]) -> Vec<Vec<u8>> {
        let e = match o {
            Outcome::Translated(e)
            | Outcome::Hairpinned(e)
            | Outcome::IcmpError { reply: e, .. } => e,
            Outcome::Dropped(r) => panic!("dropped: {r}"),
        };
        e.packets(out).map(<[u8]>::to_vec).collect()
    }

    fn translated(cfg: Config<'_>, input: &[u8]) -> Vec<u8> {
        let (o, out) = run(cfg, input);
        assert!(matches!(o, Outcome::Translated(_)), "{o:?}");
        packets(o, &out).remove(0)
    }

    fn refused(cfg: Config<'_>, input: &[u8], want: DropReason) -> Vec<u8> {
        let (o, out) = run(cfg, input);
        match o {
            Outcome::IcmpError { reason, .. } if reason == want => {}
            _ => panic!("expected an ICMP error for {want}, got {o:?}"),
        }
        let r = packets(o, &out).remove(0);
        verify(&r).unwrap();
        assert_eq!(
            &r[8..24],
            &a6("2001:db8:1c0:2:1::").octets(),
            "from the translator"
        );
        assert_eq!(&r[24..40], &v6_host().octets(), "to the sender");
        assert_eq!(r[7], 64);
        r
    }

    fn udp(data: &[u8]) -> Vec<u8> {
        let mut u = std::vec![0x04, 0xd2, 0x16, 0x2e, 0, 0, 0, 0];
        u[4..6].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
        u.extend_from_slice(data);
        u
    }

    // RFC 7915 §5.1: every field of the IPv4 header; DF only above 1260 bytes.
    #[test]
    fn header_fields_and_df_rule() {
        let mut h = V6::new(17);
        h.traffic_class = 0xb8;
        let out = translated(config(), &h.build(&udp(b"hello"), true));
        assert_eq!(out[0], 0x45);
        assert_eq!(out[1], 0xb8, "TOS copied from traffic class");
        assert_eq!(usize::from(u16::from_be_bytes([out[2], out[3]])), out.len());
        assert_eq!(
            out[6] & 0xe0,
            0,
            "DF clear at or below 1260 bytes, MF clear"
        );
        assert_eq!(out[8], 63, "TTL = hop limit - 1");
        assert_eq!(out[9], 17);
        assert_eq!(&out[12..16], &V6_HOST_AS_V4.octets());
        assert_eq!(&out[16..20], &V4_HOST.octets());
        verify(&out).unwrap();

        let at_1260 = translated(config(), &h.build(&udp(&[0u8; 1232]), true));
        assert_eq!(at_1260.len(), 1260);
        assert_eq!(at_1260[6] & 0x40, 0);
        let at_1261 = translated(config(), &h.build(&udp(&[0u8; 1233]), true));
        assert_eq!(at_1261[6] & 0x40, 0x40, "DF set above 1260 bytes");
    }

    #[test]
    fn identification_varies_without_fragment_header() {
        let t = Translator::new(config());
        let input = V6::new(17).build(&udp(b"id"), true);
        let mut a = [0u8; 4096];
        let mut b = [0u8; 4096];
        t.translate_6to4(&input, &mut a);
        t.translate_6to4(&input, &mut b);
        assert_ne!(&a[4..6], &b[4..6]);
    }

    // RFC 7739: the ID depends on the flow and the key, not on the counter alone, so one flow's
    // IDs do not reveal another's.
    #[test]
    fn identification_keyed_per_flow() {
        let id = |key: u64, dst: core::net::Ipv6Addr| {
            let mut cfg = config();
            cfg.id_key = key;
            let t = Translator::new(cfg);
            let mut h = V6::new(17);
            h.dst = dst;
            let mut out = [0u8; 4096];
            t.translate_6to4(&h.build(&udp(b"id"), true), &mut out);
            u16::from_be_bytes([out[4], out[5]])
        };
        let other = a6("2001:db8:1c6:3364:3::"); // 198.51.100.3
        // Each on a fresh translator, so the counter is the same for all.
        assert_ne!(id(0, v4_host_as_v6()), id(0, other));
        assert_ne!(id(1, v4_host_as_v6()), id(2, v4_host_as_v6()));
        assert_ne!(id(1 << 40, other), id(0, other));
    }

    // RFC 7915 §5.1: Hop-by-Hop, Destination Options and Routing (Segments Left 0) are skipped.
    #[test]
    fn extension_headers_skipped() {
        let mut h = V6::new(17);
        h.exts = std::vec![ext8(0, 0), ext8(60, 0), ext8(43, 0)];
        let out = translated(config(), &h.build(&udp(b"ext"), true));
        assert_eq!(out.len(), 20 + 11);
        assert_eq!(out[9], 17);
        verify(&out).unwrap();
    }

    #[test]
    fn segments_left_refused_with_pointer() {
        let mut h = V6::new(17);
        h.exts = std::vec![ext8(0, 0), ext8(43, 2)];
        let r = refused(
            config(),
            &h.build(&udp(b"rt"), true),
            DropReason::SegmentsLeft,
        );
        assert_eq!((r[40], r[41]), (4, 0));
        assert_eq!(u32::from_be_bytes([r[44], r[45], r[46], r[47]]), 40 + 8 + 3);
    }

    // The pointer is 32 bits (RFC 4443 §3.4): a Routing header past offset 65532 still gets its
    // own offset, not one cut to 16 bits.
    #[test]
    fn segments_left_pointer_past_64k() {
        let mut big = std::vec![0u8; 2048];
        big[1] = 255;
        let mut last = std::vec![0u8; 2008];
        last[1] = 250;
        let mut h = V6::new(17);
        h.exts = core::iter::repeat_n((60, big), 31)
            .chain([(60, last), ext8(43, 1)])
            .collect();
        let input = h.build(&udp(b"far"), true);
        assert_eq!(input.len(), 40 + 65496 + 8 + 11);
        let r = refused(config(), &input, DropReason::SegmentsLeft);
        assert_eq!((r[40], r[41]), (4, 0));
        assert_eq!(
            u32::from_be_bytes([r[44], r[45], r[46], r[47]]),
            40 + 65496 + 3
        );
    }

    #[test]
    fn extension_after_fragment_refused() {
        let mut h = V6::new(17);
        h.exts = std::vec![frag6(0, false, 1), ext8(60, 0)];
        let r = refused(
            config(),
            &h.build(&udp(b"x"), true),
            DropReason::ExtensionAfterFragment,
        );
        assert_eq!((r[40], r[41]), (1, 1));
    }

    // RFC 7915 §5.1.1: the Fragment header's fields go to the IPv4 header.
    #[test]
    fn fragments() {
        let mut h = V6::new(17);
        h.exts = std::vec![frag6(0, true, 0x0102_0304)];
        let out = translated(config(), &h.build(&udp(b"sixteen bytes!!!"), true));
        assert_eq!(
            &out[4..8],
            &[0x03, 0x04, 0x20, 0x00],
            "ID low 16 bits, MF, offset 0, DF clear"
        );
        assert_eq!(out.len(), 20 + 24);

        // Non-first fragment: offset kept, payload (even what looks like a header) untouched.
        h.exts = std::vec![frag6(100, false, 7)];
        let data = [0x3au8; 21];
        let out = translated(config(), &h.build(&data, false));
        assert_eq!(&out[4..8], &[0, 7, 0, 100]);
        assert_eq!(&out[20..], &data);

        // Atomic fragment (RFC 6946): accepted, ID kept, DF clear.
        h.exts = std::vec![frag6(0, false, 0xabcd)];
        let out = translated(config(), &h.build(&udp(&[0u8; 1300]), true));
        assert_eq!(&out[4..8], &[0xab, 0xcd, 0, 0]);
        verify(&out).unwrap();

        // Non-last fragment not a multiple of 8: dropped.
        h.exts = std::vec![frag6(0, true, 1)];
        assert_eq!(
            run(config(), &h.build(&udp(b"odd!"), true)).0,
            Outcome::Dropped(DropReason::UnalignedFragment)
        );
    }

    #[test]
    fn hop_limit_expiry() {
        let mut h = V6::new(17);
        h.hop_limit = 1;
        let input = h.build(&udp(b"hl"), true);
        let r = refused(config(), &input, DropReason::Expired);
        assert_eq!((r[40], r[41]), (3, 0));
        assert_eq!(&r[48..], &input[..]);
        h.hop_limit = 0;
        assert_eq!(
            run(config(), &h.build(&udp(b"hl"), true)).0,
            Outcome::Dropped(DropReason::Expired)
        );
        // A multicast source has no IPv4 mapping, so nothing goes back to it (RFC 4443 §2.4 (e)).
        h.hop_limit = 1;
        h.src = a6("ff02::1");
        let o = run(config(), &h.build(&udp(b"hl"), true)).0;
        assert_eq!(o, Outcome::Dropped(DropReason::UntranslatableSource));
    }

    // IPv6 addresses that embed 0/8, 127/8, 169.254/16, 224/4 or 240/4 are not translated,
    // whatever the prefix.
    #[test]
    fn never_translated_ranges() {
        let pool = config().pool6.unwrap();
        for a in [
            Ipv4Addr::new(0, 0, 0, 0),
            Ipv4Addr::new(127, 0, 0, 1),
            Ipv4Addr::new(169, 254, 0, 0),
            Ipv4Addr::new(169, 254, 255, 255),
            Ipv4Addr::new(224, 0, 0, 1),
            Ipv4Addr::new(240, 0, 0, 1),
            Ipv4Addr::BROADCAST,
        ] {
            let v6 = pool.embed(a, &[]).unwrap();
            let mut h = V6::new(17);
            h.src = v6;
            let o = run(config(), &h.build(&udp(b"x"), true)).0;
            assert_eq!(o, Outcome::Dropped(DropReason::UntranslatableSource), "{a}");
            h.src = v6_host();
            h.dst = v6;
            let o = run(config(), &h.build(&udp(b"x"), true)).0;
            assert_eq!(
                o,
                Outcome::Dropped(DropReason::UntranslatableDestination),
                "{a}"
            );
            // An ICMPv6 error from such a router gets the RFC 6791 source, not the embedded one.
            let out = translated(config(), &icmp6_error(3, 0, 0, v6, b"x"));
            assert_eq!(&out[12..16], &[203, 0, 113, 8], "{a}");
        }
    }

    // The addresses are mapped before any refusal: a packet the translator could never translate
    // gets no ICMPv6 error, or the translator would route (and reflect) any IPv6 traffic.
    #[test]
    fn no_error_about_an_untranslatable_packet() {
        type Exts = Vec<(u8, Vec<u8>)>;
        let cases: [(u8, Exts); 3] = [
            (1, Vec::new()),
            (64, std::vec![ext8(43, 2)]),
            (64, std::vec![frag6(0, false, 1), ext8(60, 0)]),
        ];
        for (hop_limit, exts) in cases {
            let mut h = V6::new(17);
            h.hop_limit = hop_limit;
            h.exts = exts;
            h.src = a6("2001:db8:ffff::1");
            let o = run(config(), &h.build(&udp(b"x"), true)).0;
            assert_eq!(o, Outcome::Dropped(DropReason::UntranslatableSource));
            h.src = v6_host();
            h.dst = a6("2a00::1");
            let o = run(config(), &h.build(&udp(b"x"), true)).0;
            assert_eq!(o, Outcome::Dropped(DropReason::UntranslatableDestination));
        }
    }

    // RFC 7915 §5.2: echo; MLD and ND are dropped.
    #[test]
    fn icmpv6_informational() {
        for (ty, ty4) in [(128u8, 8u8), (129, 0)] {
            let echo = [ty, 0, 0, 0, 0, 9, 0, 1, b'p', b'o', b'n', b'g'];
            let out = translated(config(), &V6::new(58).build(&echo, true));
            assert_eq!(out[9], 1);
            assert_eq!(out[20], ty4);
            verify(&out).unwrap();
        }
        for ty in [130u8, 133, 135, 136, 200] {
            let m = [ty, 0, 0, 0, 0, 0, 0, 0];
            assert_eq!(
                run(config(), &V6::new(58).build(&m, true)).0,
                Outcome::Dropped(DropReason::UntranslatableIcmp),
                "type {ty}"
            );
        }
    }

    /// An ICMPv6 error from `from` about a UDP packet the IPv4 host's IPv6 form sent to the IPv6 host.
    fn icmp6_error(ty: u8, code: u8, rest: u32, from: core::net::Ipv6Addr, data: &[u8]) -> Vec<u8> {
        let mut orig = V6::new(17);
        orig.src = v6_host();
        orig.dst = v4_host_as_v6();
        orig.hop_limit = 9;
        let inner = orig.build(&udp(data), true);
        let mut msg = std::vec![ty, code, 0, 0];
        msg.extend_from_slice(&rest.to_be_bytes());
        msg.extend_from_slice(&inner);
        let mut outer = V6::new(58);
        outer.src = from;
        outer.dst = v6_host();
        outer.build(&msg, true)
    }

    // The outgoing checksum is recomputed, so a corrupt ICMPv6 error (pseudo-header included)
    // must be caught here or it would come out with a valid checksum.
    #[test]
    fn icmpv6_error_with_wrong_checksum_dropped() {
        let good = icmp6_error(2, 0, 1280, v4_host_as_v6(), b"x");
        let mut zero = good.clone();
        zero[42..44].fill(0);
        let mut flipped = good.clone();
        flipped[47] ^= 1;
        // The same message from another source: wrong only through the pseudo-header.
        let mut moved = good;
        moved[23] ^= 1;
        for input in [zero, flipped, moved] {
            let o = run(config(), &input).0;
            assert_eq!(o, Outcome::Dropped(DropReason::IcmpErrorChecksum));
        }
    }

    // Only the first fragment is answered with Packet Too Big; later ones are dropped silently
    // (RFC 4443 §2.4 (e) asks nothing for them, and the sender learns from the first).
    #[test]
    fn later_fragment_over_mtu4_dropped_silently() {
        let mut cfg = config();
        cfg.mtu4 = 1280;
        let mut h = V6::new(17);
        h.exts = std::vec![frag6(0, true, 7)];
        let r = refused(cfg, &h.build(&[0u8; 1400], false), DropReason::TooBig);
        assert_eq!((r[40], r[41]), (2, 0));
        assert_eq!(u32::from_be_bytes([r[44], r[45], r[46], r[47]]), 1300);
        h.exts = std::vec![frag6(175, false, 7)];
        let o = run(cfg, &h.build(&[0u8; 1400], false)).0;
        assert_eq!(o, Outcome::Dropped(DropReason::TooBig));
    }

    // An ICMPv6 error that would expire, one inside another, and a fragmented ICMPv6 message are
    // all dropped without an answer.
    #[test]
    fn icmpv6_errors_that_are_dropped() {
        let mut expiring = icmp6_error(1, 4, 0, v4_host_as_v6(), b"x");
        expiring[7] = 1;
        assert_eq!(
            run(config(), &expiring).0,
            Outcome::Dropped(DropReason::Expired)
        );

        let inner = icmp6_error(1, 4, 0, v6_host(), b"x");
        let mut msg = std::vec![1, 4, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(&inner);
        let mut outer = V6::new(58);
        outer.src = v4_host_as_v6();
        outer.dst = v6_host();
        let nested = outer.build(&msg, true);
        assert_eq!(
            run(config(), &nested).0,
            Outcome::Dropped(DropReason::NestedIcmpError)
        );

        let mut echo = std::vec![128, 0, 0, 0, 0, 1, 0, 1];
        echo.extend_from_slice(&[0u8; 16]);
        for frag in [frag6(0, true, 9), frag6(3, false, 9)] {
            let mut h = V6::new(58);
            h.exts = std::vec![frag];
            let o = run(config(), &h.build(&echo, true)).0;
            assert_eq!(o, Outcome::Dropped(DropReason::FragmentedIcmp));
        }
    }

    // RFC 7915 §5.3: a quote cut short is translated as far as it goes; its length fields still
    // come from its own header.
    #[test]
    fn truncated_quote_translated() {
        let full = icmp6_error(1, 4, 0, v4_host_as_v6(), &[9u8; 200]);
        let cut = &full[..40 + 8 + 40 + 30];
        let mut input = cut.to_vec();
        input[4..6].copy_from_slice(&(8u16 + 40 + 30).to_be_bytes());
        input[42..44].fill(0);
        let acc = checksum::add(
            checksum::pseudo6(v4_host_as_v6(), v6_host(), 58, (input.len() - 40) as u32),
            checksum::sum(&input[40..]),
        );
        input[42..44].copy_from_slice(&checksum::finish(acc).to_be_bytes());
        let out = translated(config(), &input);
        verify(&out).unwrap();
        let q = &out[28..];
        assert_eq!(q.len(), 20 + 30, "the quote as far as it went");
        assert_eq!(
            u16::from_be_bytes([q[2], q[3]]),
            20 + 8 + 200,
            "its own length"
        );
    }

    // A wrong checksum in the quoted packet does not cause a drop.
    #[test]
    fn wrong_inner_checksum_is_fine() {
        let mut input = icmp6_error(1, 4, 0, v4_host_as_v6(), b"quoted");
        // The quoted UDP checksum, then the outer ICMPv6 checksum made right again.
        input[48 + 40 + 6] ^= 0x33;
        input[42..44].fill(0);
        let acc = checksum::add(
            checksum::pseudo6(v4_host_as_v6(), v6_host(), 58, (input.len() - 40) as u32),
            checksum::sum(&input[40..]),
        );
        input[42..44].copy_from_slice(&checksum::finish(acc).to_be_bytes());
        let out = translated(config(), &input);
        verify(&out).unwrap();
    }

    // RFC 1624: wrong TCP, UDP and ICMPv6 echo checksums come out wrong by the same amount.
    #[test]
    fn wrong_checksums_stay_wrong() {
        let mut tcp = std::vec![0u8; 20];
        tcp[12] = 0x50;
        let mut echo = std::vec![128, 0, 0, 0, 0x12, 0x34, 0, 1];
        echo.extend_from_slice(b"ping");
        for (proto, seg) in [(6, tcp), (17, udp(b"data")), (58, echo)] {
            let mut input = V6::new(proto).build(&seg, true);
            assert_eq!(crate::testpkt::l4_sum(&input), 0xffff);
            let last = input.len() - 1;
            input[last] ^= 0x40;
            let out = translated(config(), &input);
            let (bad_in, bad_out) = (crate::testpkt::l4_sum(&input), crate::testpkt::l4_sum(&out));
            assert_ne!(bad_out, 0xffff, "protocol {proto}");
            assert_eq!(bad_out, bad_in, "protocol {proto}");
        }
    }

    // RFC 7915 §5.3: quoted packet translated, TTL kept, addresses in their roles.
    #[test]
    fn icmpv6_error_inner_packet() {
        let input = icmp6_error(1, 4, 0, v4_host_as_v6(), b"quoted");
        let out = translated(config(), &input);
        verify(&out).unwrap();
        assert_eq!((out[20], out[21]), (3, 3));
        let q = &out[28..];
        assert_eq!(q[8], 9, "inner TTL is the inner hop limit");
        assert_eq!(&q[12..16], &V6_HOST_AS_V4.octets());
        assert_eq!(&q[16..20], &V4_HOST.octets());
        verify(q).unwrap();
    }

    // A Packet Too Big below the IPv6 minimum MTU (0 here) becomes Fragmentation Needed with 1260,
    // never with MTU 0.
    #[test]
    fn packet_too_big_below_1280() {
        for mtu in [0, 68, 1279] {
            let out = translated(config(), &icmp6_error(2, 0, mtu, v4_host_as_v6(), b"x"));
            assert_eq!((out[20], out[21]), (3, 4));
            assert_eq!(u16::from_be_bytes([out[26], out[27]]), 1260, "{mtu}");
        }
    }

    #[test]
    fn icmpv6_error_mappings() {
        let out = translated(config(), &icmp6_error(2, 0, 1280, v4_host_as_v6(), b"x"));
        assert_eq!(
            (out[20], out[21], u16::from_be_bytes([out[26], out[27]])),
            (3, 4, 1260)
        );
        let out = translated(config(), &icmp6_error(4, 0, 7, v4_host_as_v6(), b"x"));
        assert_eq!(
            (out[20], out[21], out[24]),
            (12, 0, 8),
            "hop limit pointer -> TTL"
        );
        let out = translated(config(), &icmp6_error(4, 1, 40, v4_host_as_v6(), b"x"));
        assert_eq!((out[20], out[21]), (3, 2));
        verify(&out).unwrap();
        assert_eq!(
            run(config(), &icmp6_error(4, 0, 2, v4_host_as_v6(), b"x")).0,
            Outcome::Dropped(DropReason::UntranslatablePointer)
        );
        assert_eq!(
            run(config(), &icmp6_error(4, 2, 0, v4_host_as_v6(), b"x")).0,
            Outcome::Dropped(DropReason::UntranslatableIcmp)
        );
    }

    // RFC 7915 §5.2, end to end: every ICMPv6 type and code either becomes the table's ICMPv4
    // type and code, or is dropped as untranslatable.
    #[test]
    fn every_icmpv6_type_and_code() {
        for ty in 0..=255u8 {
            for code in 0..=8u8 {
                let input = if icmp::is_error_v6(ty) {
                    icmp6_error(
                        ty,
                        code,
                        if ty == 4 { 7 } else { 1280 },
                        v4_host_as_v6(),
                        b"x",
                    )
                } else {
                    V6::new(58).build(&[ty, code, 0, 0, 0, 1, 0, 2, 9, 9], true)
                };
                let (o, out) = run(config(), &input);
                match icmp::map_6to4(ty, code) {
                    None => assert_eq!(
                        o,
                        Outcome::Dropped(DropReason::UntranslatableIcmp),
                        "{ty}/{code}"
                    ),
                    Some(m) => {
                        let p = &packets(o, &out)[0];
                        assert_eq!((p[20], p[21]), (m.ty, m.code), "{ty}/{code}");
                        verify(p).unwrap();
                    }
                }
            }
        }
    }

    // RFC 4884 within 576 bytes: an extension that cannot fit beside a 128-byte quote is dropped and
    // the length attribute zeroed.
    #[test]
    fn rfc4884_oversized_extension_dropped() {
        let mut input = icmp6_error(3, 0, 0, v4_host_as_v6(), &[1u8; 80]);
        input[44] = 16;
        input.extend_from_slice(&[0xee; 440]);
        let plen = (input.len() - 40) as u16;
        input[4..6].copy_from_slice(&plen.to_be_bytes());
        crate::testpkt::fix_l4_checksum(
            &mut input[40..],
            58,
            checksum::pseudo6(v4_host_as_v6(), v6_host(), 58, u32::from(plen)),
        );
        let out = translated(config(), &input);
        verify(&out).unwrap();
        assert_eq!(out[25], 0, "no length attribute without the extension");
        assert_eq!(out.len(), 28 + 108);
    }

    // RFC 7915 §5.2: the MTU shrinks by 28, not 20, when the packet in error had a Fragment header.
    #[test]
    fn packet_too_big_about_a_fragment() {
        let mut orig = V6::new(17);
        orig.exts = std::vec![frag6(0, true, 5)];
        let inner = orig.build(&udp(b"sixteen bytes!!!"), true);
        let mut msg = std::vec![2, 0, 0, 0];
        msg.extend_from_slice(&1400u32.to_be_bytes());
        msg.extend_from_slice(&inner);
        let mut outer = V6::new(58);
        outer.src = v4_host_as_v6();
        outer.dst = v6_host();
        let out = translated(config(), &outer.build(&msg, true));
        assert_eq!(u16::from_be_bytes([out[26], out[27]]), 1372);
        assert_eq!(
            &out[28 + 4..28 + 8],
            &[0, 5, 0x20, 0],
            "inner ID and MF from the Fragment header"
        );
    }

    // RFC 6791: an untranslatable error source takes an address from the pool, or the own address.
    #[test]
    fn rfc6791_source() {
        let input = icmp6_error(3, 0, 0, a6("4000::1"), b"x");
        let out = translated(config(), &input);
        assert_eq!(&out[12..16], &[203, 0, 113, 8]);
        let mut cfg = config();
        cfg.rfc6791_v4 = None;
        assert_eq!(&translated(cfg, &input)[12..16], &[198, 51, 100, 1]);
        // Not an error: no pool, just a drop.
        let mut h = V6::new(17);
        h.src = a6("4000::1");
        assert_eq!(
            run(config(), &h.build(&udp(b"x"), true)).0,
            Outcome::Dropped(DropReason::UntranslatableSource)
        );
    }

    #[test]
    fn icmpv6_error_capped_at_576() {
        let out = translated(
            config(),
            &icmp6_error(1, 0, 0, v4_host_as_v6(), &[5u8; 900]),
        );
        assert_eq!(out.len(), 576);
        verify(&out).unwrap();
    }

    // RFC 4884: 64-bit words become 32-bit words; a quote that shrank is padded back to 128.
    #[test]
    fn rfc4884_rescaled() {
        let mut input = icmp6_error(1, 0, 0, v4_host_as_v6(), &[1u8; 80]);
        // Inner is 40 + 88 = 128 bytes: length 16 words of 8, then an 8-byte extension.
        input[44] = 16;
        input.extend_from_slice(&[0xee; 8]);
        let plen = (input.len() - 40) as u16;
        input[4..6].copy_from_slice(&plen.to_be_bytes());
        crate::testpkt::fix_l4_checksum(
            &mut input[40..],
            58,
            checksum::pseudo6(v4_host_as_v6(), v6_host(), 58, u32::from(plen)),
        );
        let out = translated(config(), &input);
        verify(&out).unwrap();
        assert_eq!(out[25], 32, "128 bytes in 32-bit words");
        assert_eq!(out.len(), 28 + 128 + 8);
        assert_eq!(&out[28 + 108..28 + 128], &[0u8; 20], "padding");
        assert_eq!(&out[28 + 128..], &[0xee; 8]);
    }

    // Too big for the IPv4 link: Packet Too Big (never below 1280), or fragmentation when small.
    #[test]
    fn ipv4_link_mtu() {
        let mut cfg = config();
        cfg.mtu4 = 1400;
        let big = V6::new(17).build(&udp(&[0u8; 1400]), true);
        let r = refused(cfg, &big, DropReason::TooBig);
        assert_eq!((r[40], r[41]), (2, 0));
        assert_eq!(u32::from_be_bytes([r[44], r[45], r[46], r[47]]), 1420);
        assert_eq!(r.len(), 1280);

        let mut cfg = config();
        cfg.mtu4 = 576;
        let small = V6::new(17).build(&udp(&[9u8; 1000]), true);
        let (o, out) = run(cfg, &small);
        let frags = packets(o, &out);
        assert_eq!(frags.len(), 2);
        assert_eq!(frags[0].len(), 572);
        assert_eq!(frags[0][6] & 0x20, 0x20);
        assert_eq!(frags[1][6] & 0x20, 0);
        assert_eq!(u16::from_be_bytes([frags[1][6], frags[1][7]]) & 0x1fff, 69);
        assert_eq!(frags[0][4..6], frags[1][4..6]);
    }

    // RFC 7757 §4.2.2: an IPv6 packet for an address inside an EAM IPv4 range comes back as IPv6.
    #[test]
    fn hairpinning() {
        let mut h = V6::new(17);
        h.src = a6("2001:db8:3::8"); // EAM: 1.0.0.8
        h.dst = a6("2001:db8:101:0:9::"); // pool6: 1.0.0.9, inside the EAM range
        let input = h.build(&udp(b"hairpin"), true);
        let (o, out) = run(config(), &input);
        assert!(matches!(o, Outcome::Hairpinned(_)), "{o:?}");
        let p = packets(o, &out).remove(0);
        assert_eq!(p[0] >> 4, 6);
        assert_eq!(p[7], 63, "hop limit decremented once");
        assert_eq!(
            &p[8..24],
            &a6("2001:db8:101:0:8::").octets(),
            "source via pool6"
        );
        assert_eq!(
            &p[24..40],
            &a6("2001:db8:3::9").octets(),
            "destination via the EAM"
        );
        verify(&p).unwrap();
        let mut cfg = config();
        cfg.hairpinning = false;
        assert!(matches!(run(cfg, &input).0, Outcome::Translated(_)));
    }

    // Hairpinning an ICMPv6 error: RFC 6791 source on the way to IPv4, then each address back by
    // its role (outer source and quoted destination through pool6, the rest through the EAM).
    #[test]
    fn hairpinned_icmp_error() {
        let host = a6("2001:db8:3::8"); // EAM 1.0.0.8
        let peer = a6("2001:db8:101:0:9::"); // pool6 1.0.0.9, inside the EAM range
        let mut orig = V6::new(17);
        orig.src = host;
        orig.dst = peer;
        let inner = orig.build(&udp(b"pinned"), true);
        let mut msg = std::vec![1, 4, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(&inner);
        let mut outer = V6::new(58);
        outer.src = a6("4000::1");
        outer.dst = host;
        let (o, out) = run(config(), &outer.build(&msg, true));
        assert!(matches!(o, Outcome::Hairpinned(_)), "{o:?}");
        let p = packets(o, &out).remove(0);
        verify(&p).unwrap();
        assert_eq!(
            &p[8..24],
            &a6("2001:db8:1cb:71:8::").octets(),
            "203.0.113.8 via pool6"
        );
        assert_eq!(&p[24..40], &host.octets());
        assert_eq!((p[40], p[41]), (1, 4));
        assert_eq!(&p[48 + 8..48 + 24], &host.octets());
        assert_eq!(&p[48 + 24..48 + 40], &peer.octets());
    }

    #[test]
    fn unknown_upper_layer_copied_verbatim() {
        let data = [1u8, 2, 3, 4, 5, 6, 7, 8, 9];
        let out = translated(config(), &V6::new(59).build(&[], false));
        assert_eq!((out.len(), out[9]), (20, 59));
        let out = translated(config(), &V6::new(33).build(&data, false));
        assert_eq!(&out[20..], &data);
    }

    // In place: the IPv4 header goes over the end of the IPv6 headers, the payload does not move.
    #[test]
    fn in_place() {
        let mut h = V6::new(17);
        h.exts = std::vec![ext8(0, 0), frag6(0, false, 0x77)];
        let mut input = h.build(&udp(b"in place"), true);
        let copy = translated(config(), &input);
        let t = Translator::new(config());
        let len = input.len();
        let r = t.translate_6to4_in_place(&mut input, 0, len);
        assert_eq!(r, crate::InPlace::Translated(36..len));
        assert_eq!(
            &input[36..],
            &copy[..],
            "ID from the Fragment header, so byte for byte"
        );
        // An ICMPv6 error needs the out buffer.
        let mut err = icmp6_error(1, 4, 0, v4_host_as_v6(), b"x");
        let before = err.clone();
        let len = err.len();
        assert_eq!(
            t.translate_6to4_in_place(&mut err, 0, len),
            crate::InPlace::NeedsOutBuffer
        );
        assert_eq!(err, before);
    }

    #[test]
    fn garbage_is_dropped_cleanly() {
        let mut h = V6::new(6);
        h.exts = std::vec![ext8(0, 0), frag6(0, false, 3)];
        let good = h.build(&[0u8; 20], true);
        for n in 0..good.len() {
            let (o, _) = run(config(), &good[..n]);
            assert!(matches!(o, Outcome::Dropped(_)), "prefix {n}: {o:?}");
        }
        let mut bad = good;
        bad[0] = 0x45;
        assert_eq!(
            run(config(), &bad).0,
            Outcome::Dropped(DropReason::Malformed)
        );
    }

    #[test]
    fn small_buffer_is_reported() {
        let input = V6::new(17).build(&udp(&[0u8; 200]), true);
        let t = Translator::new(config());
        for n in [0, 19, 20, 227] {
            let mut out = std::vec![0u8; n];
            assert_eq!(
                t.translate_6to4(&input, &mut out),
                Outcome::Dropped(DropReason::BufferTooSmall),
                "{n}"
            );
        }
    }
}
