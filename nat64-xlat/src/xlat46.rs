//! IPv4 → IPv6 (RFC 7915 §4): header, ICMP, the packet quoted in ICMP errors, and fragmentation.

use core::net::Ipv6Addr;
use core::ops::Range;

use crate::checksum;
use crate::config::{Config, UdpZeroChecksum};
use crate::emit::{self, Frag6, Hdr6, Patches};
use crate::fail::{Fail, MAX_ICMP6_ERROR};
use crate::icmp::{self, Rest};
use crate::mapping::Role;
use crate::outcome::{DropReason, Emitted};
use crate::rfc4884;
use crate::sink::{self, Head, Head6, Pieces, Plan, Sink, ToBuffer};
use crate::wire::{Ipv4, MIN_MTU6, Parse, field, proto, read16};

/// Translates `input`. `hairpin` marks the second pass of a hairpinned packet (RFC 7757 §4.2.2): the
/// TTL was already decremented and the remote addresses map through RFC 6052 only.
#[inline(always)]
pub(crate) fn translate(
    cfg: &Config<'_>,
    input: &[u8],
    out: &mut [u8],
    hairpin: bool,
) -> Result<Emitted, Fail> {
    let ip = Ipv4::parse(input, Parse::Strict)?;
    match plan(cfg, &ip, hairpin, ToBuffer(&mut *out))? {
        Some(e) => Ok(e),
        None => icmp_error_msg(cfg, &ip, out, hairpin),
    }
}

/// Translates the packet at `buf[at..at + len]` where it lies when the result is one plain IPv6
/// packet: the IPv6 header goes into the headroom before the payload, which does not move.
/// `Ok(None)`: not that kind of packet, an ICMP error is due, or too little headroom; `buf` is
/// untouched.
pub(crate) fn translate_in_place(
    cfg: &Config<'_>,
    buf: &mut [u8],
    at: usize,
    len: usize,
) -> Result<Option<Range<usize>>, DropReason> {
    let input = buf
        .get(at..at.saturating_add(len))
        .ok_or(DropReason::Truncated)?;
    let ip = Ipv4::parse(input, Parse::Strict)?;
    let (head, patches) = match plan(cfg, &ip, false, Pieces) {
        Ok(Some((head, patches, None))) => (head, patches),
        Ok(_) | Err(Fail::Reply { .. }) => return Ok(None),
        Err(Fail::Drop(r)) => return Err(r),
    };
    let (ihl, plen) = (ip.header.len(), ip.payload.len());
    let hl = field::IPV6_LEN
        + if head.frag.is_some() {
            field::FRAG6_LEN
        } else {
            0
        };
    let Some(start) = (at + ihl).checked_sub(hl) else {
        return Ok(None);
    };
    head.write(&mut buf[start..], plen, None)?;
    patches.apply(&mut buf[at + ihl..at + ihl + plen], 0);
    Ok(Some(start..at + ihl + plen))
}

/// The checks of RFC 7915 §4.1 and the translated header of a plain packet, handed to `sink`;
/// `None` for an ICMP error, which [`icmp_error_msg`] handles.
#[inline(always)]
fn plan<S: Sink<Head6>>(
    cfg: &Config<'_>,
    ip: &Ipv4<'_>,
    hairpin: bool,
    sink: S,
) -> Result<Option<S::Out>, Fail> {
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

    // Addresses first: a packet we could never translate gets no ICMP error from us, or we would be
    // a router for any traffic and a reflector for spoofed sources. An ICMP error is mapped by
    // `icmp_error_msg` (with the RFC 6791 fallback); every refusal below only drops it.
    let (src, dst) = if icmp_error {
        (Ipv6Addr::UNSPECIFIED, Ipv6Addr::UNSPECIFIED)
    } else {
        (
            cfg.map_4to6(ip.src, Role::Remote, hairpin)
                .ok_or(DropReason::UntranslatableSource)?,
            cfg.map_4to6(ip.dst, Role::Local, hairpin)
                .ok_or(DropReason::UntranslatableDestination)?,
        )
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
        return Ok(None);
    }

    let payload = ip.payload;
    let mut patches = Patches::default();
    if ip.offset == 0 {
        match ip.proto {
            proto::TCP | proto::UDP => {
                let (from, to) = (checksum::addrs4(ip.src, ip.dst), checksum::addrs6(src, dst));
                if patches.readdress(ip.proto, payload, from, to)? == 0 && ip.proto == proto::UDP {
                    // RFC 7915 §4.5: only a whole datagram can be summed (see `UdpZeroChecksum`).
                    match (cfg.udp_zero_checksum, ip.is_fragment()) {
                        (UdpZeroChecksum::Compute, false) => {}
                        (UdpZeroChecksum::Icmp, _) => {
                            return Err(refuse(DropReason::UdpZeroChecksum, 3, 13, 0));
                        }
                        (UdpZeroChecksum::Drop | UdpZeroChecksum::Compute, _) => {
                            return Err(DropReason::UdpZeroChecksum.into());
                        }
                    }
                    let acc = checksum::add(
                        checksum::pseudo6(src, dst, proto::UDP, payload.len() as u32),
                        checksum::sum(payload),
                    );
                    let c = checksum::finish(acc);
                    patches.checksum(field::UDP_CHECKSUM, checksum::udp(c));
                }
            }
            proto::ICMP => {
                read16(payload, field::ICMP_CHECKSUM)?;
                let (ty, code) = (payload[field::ICMP_TYPE], payload[field::ICMP_CODE]);
                let m = icmp::map_4to6(ty, code).ok_or(DropReason::UntranslatableIcmp)?;
                let pseudo = checksum::pseudo6(src, dst, proto::ICMPV6, payload.len() as u32);
                patches.retype_icmp(payload, [ty, code], [m.ty, m.code], 0, pseudo);
            }
            _ => {}
        }
    }

    let h = hdr6(cfg, ip, src, dst, if hairpin { ip.ttl } else { ip.ttl - 1 });
    let already = ip.is_fragment();
    let whole = field::IPV6_LEN + if already { field::FRAG6_LEN } else { 0 } + payload.len();
    let mtu6 = usize::from(cfg.mtu6).max(MIN_MTU6);
    if ip.df && whole > mtu6 {
        // The MTU the sender should use: the IPv6 link less the header growth.
        let growth = field::IPV6_LEN - field::IPV4_LEN;
        return Err(refuse(DropReason::TooBig, 3, 4, (mtu6 - growth) as u32));
    }
    // Checked after the refusals above, which answer the sender even for such a fragment.
    if ip.mf && payload.len() % 8 != 0 {
        return Err(DropReason::UnalignedFragment.into());
    }
    let limit = if ip.df {
        mtu6
    } else {
        mtu6.min(usize::from(cfg.lowest_ipv6_mtu).max(MIN_MTU6))
    };
    let head = Head6 {
        h,
        frag: already.then_some(Frag6 {
            offset: ip.offset,
            more: ip.mf,
            id: u32::from(ip.id),
        }),
        id: u32::from(ip.id),
    };
    let split =
        (whole > limit).then_some(sink::piece_len(limit, field::IPV6_LEN + field::FRAG6_LEN));
    let plan = Plan {
        head: &head,
        patches: &patches,
        split,
    };
    Ok(Some(sink.plain(payload, plan)?))
}

/// The IPv6 header for `ip` (RFC 7915 §4.1), the packet itself or the one quoted in an error:
/// ICMP becomes ICMPv6, any other protocol keeps its number.
#[inline(always)]
fn hdr6(cfg: &Config<'_>, ip: &Ipv4<'_>, src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8) -> Hdr6 {
    Hdr6 {
        traffic_class: cfg.traffic_class.unwrap_or(ip.tos),
        next: if ip.proto == proto::ICMP {
            proto::ICMPV6
        } else {
            ip.proto
        },
        hop_limit,
        src: src.to_bits(),
        dst: dst.to_bits(),
    }
}

/// RFC 7915 §4.2 and §4.3: an ICMPv4 error becomes an ICMPv6 error with its quoted packet translated.
fn icmp_error_msg(
    cfg: &Config<'_>,
    ip: &Ipv4<'_>,
    out: &mut [u8],
    hairpin: bool,
) -> Result<Emitted, Fail> {
    let msg = ip.payload;
    if msg.len() < field::ICMP_LEN {
        return Err(DropReason::Truncated.into());
    }
    // The checksum is recomputed below: check the incoming one first, so a corrupt error does not
    // come out with a correct checksum.
    if checksum::fold(checksum::sum(msg)) != 0xffff {
        return Err(DropReason::IcmpErrorChecksum.into());
    }
    let m = icmp::map_4to6(msg[0], msg[1]).ok_or(DropReason::UntranslatableIcmp)?;
    let src = cfg
        .error_source_4to6(ip.src, hairpin)
        .ok_or(DropReason::UntranslatableSource)?;
    let dst = cfg
        .map_4to6(ip.dst, Role::Local, hairpin)
        .ok_or(DropReason::UntranslatableDestination)?;
    let (quote, ext) = rfc4884::split(&msg[field::ICMP_LEN..], msg[field::ICMP_REST + 1], 4);
    let inner = Ipv4::parse(quote, Parse::Lax).map_err(|_| DropReason::InnerPacket)?;
    let rest = match m.rest {
        Rest::Mtu => icmp::mtu_4to6(
            u16::from_be_bytes([msg[field::ICMP_REST + 2], msg[field::ICMP_REST + 3]]),
            inner.total_len,
            cfg.mtu6,
            cfg.mtu4,
        ),
        Rest::Pointer => u32::from(
            icmp::pointer_4to6(msg[field::ICMP_REST]).ok_or(DropReason::UntranslatablePointer)?,
        ),
        Rest::FixedPointer(p) => u32::from(p),
        Rest::Unused | Rest::Copy => 0,
    };

    let head = field::IPV6_LEN + field::ICMP_LEN;
    let body = out.get_mut(head..).ok_or(DropReason::BufferTooSmall)?;
    let ilen = inner_packet(cfg, &inner, body, hairpin)?;
    let carries_len = matches!(m.ty, icmp::v6::DEST_UNREACH | icmp::v6::TIME_EXCEEDED);
    let ext = if carries_len { ext } else { &[] };
    let l = rfc4884::layout(ilen, ext.len(), MAX_ICMP6_ERROR - head, 8);
    body.get_mut(l.keep..l.area)
        .ok_or(DropReason::BufferTooSmall)?
        .fill(0);
    if l.ext {
        emit::copy(body, l.area, ext)?;
    }
    let icmp_len = field::ICMP_LEN + l.area + if l.ext { ext.len() } else { 0 };

    let h = hdr6(cfg, ip, src, dst, if hairpin { ip.ttl } else { ip.ttl - 1 });
    emit::ipv6_header(out, &h, None, icmp_len)?;
    // RFC 4884: the quote's length in 64-bit words, in the first byte after the checksum.
    let rest = if l.ext {
        rest & 0x00ff_ffff | ((l.area / 8) as u32) << 24
    } else {
        rest
    };
    let pseudo = checksum::pseudo6(src, dst, proto::ICMPV6, icmp_len as u32);
    let msg6 = &mut out[field::IPV6_LEN..field::IPV6_LEN + icmp_len];
    emit::icmp_header(msg6, m.ty, m.code, rest, pseudo);
    Ok(Emitted::new(field::IPV6_LEN + icmp_len, 1))
}

/// RFC 7915 §4.3: the IPv4 packet inside an ICMPv4 error, as an IPv6 packet. Its TTL is kept, its
/// payload length comes from its own header, its addresses swap roles, and a truncated tail is fine.
/// Returns the bytes written.
fn inner_packet(
    cfg: &Config<'_>,
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
    let src = cfg
        .map_4to6(inner.src, Role::Local, hairpin)
        .ok_or(DropReason::InnerPacket)?;
    let dst = cfg
        .map_4to6(inner.dst, Role::Remote, hairpin)
        .ok_or(DropReason::InnerPacket)?;
    let claimed = usize::from(inner.claimed_payload_len());
    let data = inner.payload;
    let mut patches = Patches::default();
    if first {
        let addrs = (
            checksum::addrs4(inner.src, inner.dst),
            checksum::addrs6(src, dst),
        );
        let pseudo = || {
            (
                0,
                checksum::pseudo6(src, dst, proto::ICMPV6, claimed as u32),
            )
        };
        patches.quote(
            inner.proto,
            proto::ICMP,
            data,
            addrs,
            icmp::map_4to6,
            pseudo,
        )?;
    }
    let h = hdr6(cfg, inner, src, dst, inner.ttl);
    let frag = inner.is_fragment().then_some(Frag6 {
        offset: inner.offset,
        more: inner.mf,
        id: u32::from(inner.id),
    });
    let hl = emit::ipv6_header(out, &h, frag, claimed)?;
    sink::copy_patched(out, hl, data, &patches, 0)?;
    Ok(hl + data.len())
}

#[cfg(test)]
mod tests {
    use std::vec::Vec;

    use super::*;
    use crate::config::Config;
    use crate::eam::EamTable;
    use crate::outcome::Outcome;
    use crate::testpkt::{
        self, V4, V4_HOST, V6_HOST_AS_V4, a6, config, v4_host_as_v6, v6_host, verify,
    };
    use crate::translator::Translator;
    use core::net::Ipv4Addr;

    fn run(cfg: Config<'_>, input: &[u8]) -> (Outcome, Vec<u8>) {
        let t = Translator::new(cfg);
        let mut out = std::vec![0u8; Translator::out_len(input.len())];
        let o = t.translate_4to6(input, &mut out);
        (o, out)
    }

    fn packets(o: Outcome, out: &[u8]) -> Vec<Vec<u8>> {
        let e = match o {
            Outcome::Translated(e)
            | Outcome::Hairpinned(e)
            | Outcome::IcmpError { reply: e, .. } => e,
            Outcome::Dropped(r) => panic!("dropped: {r}"),
        };
        let v: Vec<Vec<u8>> = e.packets(out).map(<[u8]>::to_vec).collect();
        assert_eq!(v.len(), e.count());
        v
    }

    fn translated(cfg: Config<'_>, input: &[u8]) -> Vec<u8> {
        let (o, out) = run(cfg, input);
        assert!(matches!(o, Outcome::Translated(_)), "{o:?}");
        let mut p = packets(o, &out);
        assert_eq!(p.len(), 1);
        p.remove(0)
    }

    fn udp(data: &[u8]) -> Vec<u8> {
        let mut u = std::vec![0x04, 0xd2, 0x16, 0x2e, 0, 0, 0, 0];
        u[4..6].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
        u.extend_from_slice(data);
        u
    }

    fn tcp_syn() -> Vec<u8> {
        let mut t = std::vec![0u8; 20];
        t[..4].copy_from_slice(&[0xc0, 0x01, 0x00, 0x50]);
        t[4..8].copy_from_slice(&7u32.to_be_bytes());
        t[12] = 0x50;
        t[13] = 0x02;
        t[14..16].copy_from_slice(&64240u16.to_be_bytes());
        t
    }

    // RFC 7915 §4.1: every field of the IPv6 header.
    #[test]
    fn header_fields() {
        let mut h = V4::new(17);
        h.tos = 0xb8;
        let input = h.build(&udp(b"hello"), true);
        let out = translated(config(), &input);
        assert_eq!(out[0], 0x6b, "version 6, traffic class copied from TOS");
        assert_eq!(out[1], 0x80, "flow label zero");
        assert_eq!(&out[2..4], &[0, 0]);
        assert_eq!(
            u16::from_be_bytes([out[4], out[5]]),
            13,
            "payload length = total - IHL"
        );
        assert_eq!(out[6], 17);
        assert_eq!(out[7], 63, "hop limit = TTL - 1");
        assert_eq!(&out[8..24], &v4_host_as_v6().octets());
        assert_eq!(&out[24..40], &v6_host().octets());
        verify(&out).unwrap();
    }

    #[test]
    fn traffic_class_can_be_forced() {
        let mut h = V4::new(17);
        h.tos = 0xb8;
        let mut cfg = config();
        cfg.traffic_class = Some(0);
        let out = translated(cfg, &h.build(&udp(b"x"), true));
        assert_eq!(&out[..2], &[0x60, 0x00]);
    }

    // RFC 6052 §4.1: 64:ff9b::/96 sums to zero, so with it the transport checksum does not change.
    #[test]
    fn well_known_prefix_is_checksum_neutral() {
        let mut cfg = config();
        cfg.pool6 = Some(crate::Pool6::new(crate::WELL_KNOWN_PREFIX).unwrap());
        cfg.eam = &[];
        let mut h = V4::new(6);
        h.src = Ipv4Addr::new(8, 8, 4, 4);
        h.dst = Ipv4Addr::new(1, 1, 1, 1);
        let input = h.build(&tcp_syn(), true);
        let out = translated(cfg, &input);
        verify(&out).unwrap();
        assert_eq!(&out[40 + 16..40 + 18], &input[20 + 16..20 + 18]);
    }

    // RFC 7915 §4.1 + RFC 1624: TCP checksum updated, not recomputed; a wrong one stays wrong by
    // the same amount.
    #[test]
    fn tcp_checksum_incremental() {
        let input = V4::new(6).build(&tcp_syn(), true);
        let out = translated(config(), &input);
        verify(&out).unwrap();
        let mut bad = input.clone();
        bad[36] ^= 0x01;
        let out_bad = translated(config(), &bad);
        assert!(verify(&out_bad).is_err());
        assert_eq!(out_bad[56] ^ out[56], 0x01);
        assert_eq!(out_bad[57], out[57]);
    }

    // RFC 7915 §4.1: options are not translated; an unexpired source route is refused with 3/5.
    #[test]
    fn ipv4_options() {
        let mut h = V4::new(17);
        h.options = std::vec![7, 7, 4, 0, 0, 0, 0, 0]; // record route
        let out = translated(config(), &h.build(&udp(b"opt"), true));
        assert_eq!(u16::from_be_bytes([out[4], out[5]]), 11);
        verify(&out).unwrap();

        h.options = std::vec![0x83, 7, 4, 1, 2, 3, 4, 0]; // LSRR, one hop left
        let (o, out) = run(config(), &h.build(&udp(b"opt"), true));
        let Outcome::IcmpError {
            reason: DropReason::SourceRoute,
            ..
        } = o
        else {
            panic!("{o:?}")
        };
        let r = &packets(o, &out)[0];
        assert_eq!((r[20], r[21]), (3, 5));
        verify(r).unwrap();

        h.options = std::vec![0x89, 7, 8, 1, 2, 3, 4, 0]; // SSRR, used up
        translated(config(), &h.build(&udp(b"opt"), true));
    }

    // RFC 7915 §4.1 / §4.4: TTL 1 is answered with Time Exceeded from the translator's address.
    #[test]
    fn ttl_expiry() {
        let mut h = V4::new(17);
        h.ttl = 1;
        let input = h.build(&udp(b"ttl"), true);
        let (o, out) = run(config(), &input);
        let Outcome::IcmpError {
            reason: DropReason::Expired,
            ..
        } = o
        else {
            panic!("{o:?}")
        };
        let r = &packets(o, &out)[0];
        assert_eq!(&r[12..16], &testpkt::OWN_V4.octets());
        assert_eq!(&r[16..20], &V4_HOST.octets());
        assert_eq!(r[8], 64);
        assert_eq!((r[20], r[21]), (11, 0));
        assert_eq!(&r[28..], &input[..], "the whole small packet is quoted");
        verify(r).unwrap();

        h.ttl = 0;
        assert_eq!(
            run(config(), &h.build(&udp(b"ttl"), true)).0,
            Outcome::Dropped(DropReason::Expired)
        );

        // RFC 1812 §4.3.2.7: nothing back about a datagram to a group or broadcast address (which
        // are never translated in the first place).
        h.ttl = 1;
        for dst in [Ipv4Addr::new(224, 0, 0, 251), Ipv4Addr::BROADCAST] {
            h.dst = dst;
            let o = run(config(), &h.build(&udp(b"ttl"), true)).0;
            assert_eq!(o, Outcome::Dropped(DropReason::UntranslatableDestination));
        }
        h.dst = V6_HOST_AS_V4;

        // Without an own address there is nobody to send the error from.
        let mut cfg = config();
        cfg.own_v4 = None;
        h.ttl = 1;
        assert_eq!(
            run(cfg, &h.build(&udp(b"ttl"), true)).0,
            Outcome::Dropped(DropReason::Expired)
        );
    }

    // Whatever the prefix or EAM: 0/8, 127/8, 169.254/16 (link-local, RFC 3927 §2.7), 224/4
    // (multicast would become unicast IPv6) and 240/4 (with 255.255.255.255) are never translated,
    // as sources nor as destinations.
    #[test]
    fn never_translated_ranges() {
        static ALL: [crate::Eam; 1] = [testpkt::eam(
            crate::prefix::v4(0, 0, 0, 0, 0),
            match crate::prefix::Ipv6Prefix::new(
                core::net::Ipv6Addr::new(0x2001, 0xdb8, 9, 0, 0, 0, 0, 0),
                96,
            ) {
                Ok(p) => p,
                Err(_) => panic!("bad prefix"),
            },
        )];
        let mut eam_only = config();
        eam_only.pool6 = None;
        eam_only.eam = &ALL;
        let bad = [
            Ipv4Addr::new(0, 0, 0, 0),
            Ipv4Addr::new(0, 1, 2, 3),
            Ipv4Addr::new(127, 0, 0, 1),
            Ipv4Addr::new(169, 254, 0, 0),
            Ipv4Addr::new(169, 254, 255, 255),
            Ipv4Addr::new(224, 0, 0, 1),
            Ipv4Addr::new(239, 255, 255, 250),
            Ipv4Addr::new(240, 0, 0, 1),
            Ipv4Addr::BROADCAST,
        ];
        for cfg in [config(), eam_only] {
            for a in bad {
                let mut h = V4::new(17);
                h.src = a;
                let o = run(cfg, &h.build(&udp(b"x"), true)).0;
                assert_eq!(o, Outcome::Dropped(DropReason::UntranslatableSource), "{a}");
                h.src = V4_HOST;
                h.dst = a;
                let o = run(cfg, &h.build(&udp(b"x"), true)).0;
                assert_eq!(
                    o,
                    Outcome::Dropped(DropReason::UntranslatableDestination),
                    "{a}"
                );
            }
            // A router reporting an error from 0/8 or 127/8 is still heard under its own mapping
            // (as by Jool); a multicast or reserved source gets the RFC 6791 fallback.
            let (quoted, _) = icmp4_error(3, 3, [0; 4], V4_HOST, b"q");
            let mut e = V4::new(1);
            e.dst = V6_HOST_AS_V4;
            for (a, embedded) in [
                (Ipv4Addr::new(127, 0, 0, 1), true),
                (Ipv4Addr::new(0, 0, 0, 0), true),
                (Ipv4Addr::new(224, 0, 0, 1), false),
            ] {
                e.src = a;
                let (o, out) = run(cfg, &e.build(&quoted[20..], true));
                let want = if embedded {
                    cfg.pool6
                        .map_or_else(|| EamTable::new(cfg.eam).to_v6(a), |p| p.embed(a, &[]))
                } else {
                    cfg.own_v6
                };
                let src = &packets(o, &out)[0][8..24];
                assert_eq!(src, &want.unwrap().octets(), "{a}");
            }
            // A link-local router is not heard at all, RFC 6791 pool or not: RFC 3927 §2.7 forbids
            // forwarding its packets, under whatever source.
            let mut pooled = cfg;
            pooled.rfc6791_v6 = Some("2001:db8:ee::/120".parse().unwrap());
            e.src = Ipv4Addr::new(169, 254, 7, 7);
            for c in [cfg, pooled] {
                let o = run(c, &e.build(&quoted[20..], true)).0;
                assert_eq!(o, Outcome::Dropped(DropReason::UntranslatableSource));
            }
            // Nor an error about a packet to a link-local host: its quote cannot be translated.
            let mut orig = V4::new(17);
            (orig.src, orig.dst) = (V6_HOST_AS_V4, Ipv4Addr::new(169, 254, 7, 7));
            let msg = [&[3, 3, 0, 0, 0, 0, 0, 0][..], &orig.build(&udp(b"q"), true)].concat();
            e.src = V4_HOST;
            let o = run(cfg, &e.build(&msg, true)).0;
            assert_eq!(o, Outcome::Dropped(DropReason::InnerPacket));
            // Their neighbours are ordinary addresses.
            for a in [
                Ipv4Addr::new(1, 0, 0, 0),
                Ipv4Addr::new(126, 255, 255, 255),
                Ipv4Addr::new(169, 253, 255, 255),
                Ipv4Addr::new(169, 255, 0, 0),
            ] {
                let mut h = V4::new(17);
                h.src = a;
                assert!(matches!(
                    run(cfg, &h.build(&udp(b"x"), true)).0,
                    Outcome::Translated(_)
                ));
            }
        }
    }

    // The addresses are mapped before any refusal: a packet the translator could never translate
    // gets no ICMPv4 error, or the translator would route (and reflect) any IPv4 traffic.
    #[test]
    fn no_error_about_an_untranslatable_packet() {
        let mut cfg = config();
        cfg.pool6 = Some(crate::Pool6::new(crate::WELL_KNOWN_PREFIX).unwrap());
        cfg.eam = &[];
        let mut h = V4::new(17);
        h.src = Ipv4Addr::new(192, 168, 1, 1);
        h.dst = Ipv4Addr::new(192, 168, 1, 2);
        h.ttl = 1;
        let o = run(cfg, &h.build(&udp(b"ttl"), true)).0;
        assert_eq!(o, Outcome::Dropped(DropReason::UntranslatableSource));
        h.ttl = 64;
        h.src = Ipv4Addr::new(8, 8, 8, 8);
        h.options = std::vec![0x83, 7, 4, 1, 2, 3, 4, 0]; // LSRR, one hop left
        let o = run(cfg, &h.build(&udp(b"sr"), true)).0;
        assert_eq!(o, Outcome::Dropped(DropReason::UntranslatableDestination));
        h.options.clear();
        h.df = true;
        let o = run(cfg, &h.build(&udp(&[0; 1480]), true)).0;
        assert_eq!(o, Outcome::Dropped(DropReason::UntranslatableDestination));
    }

    // RFC 7915 §4.1: the Fragment header only for packets that are already fragments.
    #[test]
    fn fragment_header_only_for_fragments() {
        let mut h = V4::new(17);
        h.df = false;
        let out = translated(config(), &h.build(&udp(b"small"), true));
        assert_eq!(
            out[6], 17,
            "DF clear alone adds no Fragment header (RFC 8021)"
        );

        h.mf = true;
        h.id = 0xbeef;
        let out = translated(config(), &h.build(&udp(b"sixteen bytes!!!"), true));
        assert_eq!(out[6], 44);
        assert_eq!(
            &out[40..48],
            &[17, 0, 0, 1, 0, 0, 0xbe, 0xef],
            "offset 0, M=1, ID zero-extended"
        );

        // A later fragment: offset kept, payload untouched.
        h.mf = false;
        h.offset = 3;
        let data = [0xaau8; 13];
        let input = h.build(&data, false);
        let out = translated(config(), &input);
        assert_eq!(&out[42..44], &[0, 24]);
        assert_eq!(&out[48..], &data);
    }

    #[test]
    fn unaligned_non_last_fragment_dropped() {
        let mut h = V4::new(17);
        h.df = false;
        h.mf = true;
        let (o, _) = run(config(), &h.build(&udp(b"odd length!"), true));
        assert_eq!(o, Outcome::Dropped(DropReason::UnalignedFragment));
    }

    // RFC 7915 §4 / §4.1: DF clear and bigger than lowest-ipv6-mtu: fragments of multiples of 8.
    #[test]
    fn fragments_at_lowest_ipv6_mtu() {
        let mut h = V4::new(17);
        h.df = false;
        h.id = 77;
        let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let input = h.build(&udp(&data), true);
        let (o, out) = run(config(), &input);
        let frags = packets(o, &out);
        assert_eq!(frags.len(), 3);
        let mut reassembled = Vec::new();
        for (i, f) in frags.iter().enumerate() {
            assert!(f.len() <= 1280);
            let off = u16::from_be_bytes([f[42], f[43]]);
            assert_eq!(usize::from(off >> 3) * 8, reassembled.len());
            assert_eq!(off & 1 == 1, i < 2, "M set on all but the last");
            assert_eq!(&f[44..48], &[0, 0, 0, 77]);
            if i < 2 {
                assert_eq!((f.len() - 48) % 8, 0);
            }
            reassembled.extend_from_slice(&f[48..]);
        }
        let mut whole = frags[0][..40].to_vec();
        whole[6] = 17;
        whole[4..6].copy_from_slice(&(reassembled.len() as u16).to_be_bytes());
        whole.extend_from_slice(&reassembled);
        verify(&whole).unwrap();
        assert_eq!(&reassembled[8..], &data[..]);

        let mut cfg = config();
        cfg.lowest_ipv6_mtu = 1500;
        let (o, out) = run(cfg, &input);
        assert_eq!(packets(o, &out)[0].len(), 1496);
    }

    // DF set and too big for the IPv6 link: Fragmentation Needed with the IPv6 MTU less 20.
    #[test]
    fn df_too_big() {
        let mut cfg = config();
        cfg.mtu6 = 1280;
        let input = V4::new(17).build(&udp(&[0u8; 1300]), true);
        let (o, out) = run(cfg, &input);
        let Outcome::IcmpError {
            reason: DropReason::TooBig,
            ..
        } = o
        else {
            panic!("{o:?}")
        };
        let r = &packets(o, &out)[0];
        assert_eq!(r.len(), 576, "quote cut to fit 576");
        assert_eq!((r[20], r[21]), (3, 4));
        assert_eq!(u16::from_be_bytes([r[26], r[27]]), 1260);
        verify(r).unwrap();
        // DF set and fitting: one packet, never fragmented even above lowest-ipv6-mtu.
        let fits = V4::new(17).build(&udp(&[0u8; 1400]), true);
        assert_eq!(translated(config(), &fits).len(), 1448);
    }

    // RFC 7915 §4.5: UDP checksum zero, under each policy, copied and in place. Only `Icmp` answers
    // (3/13, §4.4); only `Compute` translates, and only a whole datagram.
    #[test]
    fn udp_zero_checksum_policy() {
        let mut h = V4::new(17);
        let zero = |h: &V4, data: &[u8]| {
            let mut p = h.build(&udp(data), false);
            p[26..28].fill(0);
            p
        };
        let whole = zero(&h, b"zero");
        h.df = false;
        h.mf = true;
        let first_fragment = zero(&h, b"sixteen bytes!!!");
        // The answer under `Icmp`: 3/13 from the translator, quoting the whole datagram.
        let reply = |input: &[u8]| {
            let mut r = V4::new(1);
            (r.id, r.df, r.src, r.dst) = (0, false, testpkt::OWN_V4, V4_HOST);
            r.build(&[&[3, 13, 0, 0, 0, 0, 0, 0][..], input].concat(), true)
        };
        let policy = |p| {
            let mut cfg = config();
            cfg.udp_zero_checksum = p;
            cfg
        };
        let dropped = Outcome::Dropped(DropReason::UdpZeroChecksum);

        assert_eq!(Config::new(None).udp_zero_checksum, UdpZeroChecksum::Drop);
        assert_eq!(run(config(), &whole).0, dropped, "silent by default");
        for input in [&whole, &first_fragment] {
            assert_eq!(run(policy(UdpZeroChecksum::Drop), input).0, dropped);
            let (o, out) = run(policy(UdpZeroChecksum::Icmp), input);
            let Outcome::IcmpError {
                reason: DropReason::UdpZeroChecksum,
                ..
            } = o
            else {
                panic!("{o:?}")
            };
            assert_eq!(packets(o, &out), [reply(input)]);
        }
        // Without an own address the error cannot be sent: a plain drop.
        let mut no_own = policy(UdpZeroChecksum::Icmp);
        no_own.own_v4 = None;
        assert_eq!(run(no_own, &whole).0, dropped);

        // `Compute`: the same bytes as the same datagram with its checksum right all along.
        let out = translated(policy(UdpZeroChecksum::Compute), &whole);
        let mut right = h.clone();
        (right.df, right.mf) = (true, false);
        assert_eq!(out, translated(config(), &right.build(&udp(b"zero"), true)));
        assert_ne!(&out[46..48], &[0, 0]);
        verify(&out).unwrap();
        // A first fragment cannot be summed (§4.5: SHOULD drop), and it is not answered either.
        let compute = policy(UdpZeroChecksum::Compute);
        assert_eq!(run(compute, &first_fragment).0, dropped);
        // A later fragment has no UDP header: its bytes pass as they are.
        h.offset = 2;
        let later = h.build(&[0u8; 16], false);
        for p in [UdpZeroChecksum::Drop, UdpZeroChecksum::Icmp] {
            assert_eq!(translated(policy(p), &later)[48..], [0u8; 16]);
        }

        // In place, the same verdicts: a silent drop is final, a due error needs the out buffer.
        let in_place = |cfg, input: &[u8]| {
            let t = Translator::new(cfg);
            let mut buf = [&[0u8; 28][..], input].concat();
            let before = buf.clone();
            let r = t.translate_4to6_in_place(&mut buf, 28, input.len());
            if !matches!(r, crate::InPlace::Translated(_)) {
                assert_eq!(buf, before, "{r:?} touched the buffer");
            }
            (r, buf)
        };
        let gone = crate::InPlace::Dropped(DropReason::UdpZeroChecksum);
        for input in [&whole, &first_fragment] {
            assert_eq!(in_place(policy(UdpZeroChecksum::Drop), input).0, gone);
            assert_eq!(
                in_place(policy(UdpZeroChecksum::Icmp), input).0,
                crate::InPlace::NeedsOutBuffer
            );
        }
        assert_eq!(in_place(compute, &first_fragment).0, gone);
        let (r, buf) = in_place(compute, &whole);
        assert_eq!(r, crate::InPlace::Translated(8..buf.len()));
        assert_eq!(buf[8..], out[..]);
    }

    // RFC 7915 §4.2: Echo Request/Reply change type; the checksum gains the pseudo-header.
    #[test]
    fn icmp_echo() {
        for (ty, ty6) in [(8u8, 128u8), (0, 129)] {
            let echo = [ty, 0, 0, 0, 0x12, 0x34, 0, 1, b'p', b'i', b'n', b'g'];
            let out = translated(config(), &V4::new(1).build(&echo, true));
            assert_eq!(out[6], 58);
            assert_eq!(out[40], ty6);
            assert_eq!(&out[44..], &echo[4..]);
            verify(&out).unwrap();
        }
        // Timestamp (13) has no ICMPv6 counterpart.
        let ts = [13u8, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            run(config(), &V4::new(1).build(&ts, true)).0,
            Outcome::Dropped(DropReason::UntranslatableIcmp)
        );
        // A fragmented ICMP message is dropped.
        let mut h = V4::new(1);
        h.mf = true;
        let echo = [8u8, 0, 0, 0, 0, 1, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(
            run(config(), &h.build(&echo, true)).0,
            Outcome::Dropped(DropReason::FragmentedIcmp)
        );
    }

    /// An ICMPv4 error from `from` about a UDP packet the IPv6 host sent to 198.51.100.2.
    fn icmp4_error(
        ty: u8,
        code: u8,
        rest: [u8; 4],
        from: Ipv4Addr,
        quote_data: &[u8],
    ) -> (Vec<u8>, Vec<u8>) {
        let mut orig = V4::new(17);
        orig.src = V6_HOST_AS_V4;
        orig.dst = V4_HOST;
        orig.ttl = 5;
        let inner = orig.build(&udp(quote_data), true);
        let mut msg = std::vec![ty, code, 0, 0];
        msg.extend_from_slice(&rest);
        msg.extend_from_slice(&inner);
        let mut outer = V4::new(1);
        outer.src = from;
        outer.dst = V6_HOST_AS_V4;
        (outer.build(&msg, true), inner)
    }

    // The outgoing checksum is recomputed, so a corrupt ICMPv4 error must be caught here or it
    // would come out with a valid checksum.
    #[test]
    fn icmp_error_with_wrong_checksum_dropped() {
        let (mut input, _) = icmp4_error(3, 3, [0; 4], Ipv4Addr::new(203, 0, 113, 1), b"x");
        input[23] ^= 1;
        let o = run(config(), &input).0;
        assert_eq!(o, Outcome::Dropped(DropReason::IcmpErrorChecksum));
    }

    // RFC 7915 §4.3: the quoted packet is translated with addresses in their roles, TTL kept.
    #[test]
    fn icmp_error_inner_packet() {
        let router = Ipv4Addr::new(203, 0, 113, 1);
        let (input, inner) = icmp4_error(3, 3, [0; 4], router, b"payload");
        let out = translated(config(), &input);
        verify(&out).unwrap();
        assert_eq!(&out[8..24], &a6("2001:db8:1cb:71:1::").octets());
        assert_eq!((out[40], out[41]), (1, 4), "port unreachable");
        let q = &out[48..];
        assert_eq!(q[0] >> 4, 6);
        assert_eq!(q[7], 5, "inner hop limit is the inner TTL, untouched");
        assert_eq!(
            &q[8..24],
            &v6_host().octets(),
            "inner source: the IPv6 host"
        );
        assert_eq!(&q[24..40], &v4_host_as_v6().octets());
        assert_eq!(u16::from_be_bytes([q[4], q[5]]), (inner.len() - 20) as u16);
        verify(q).unwrap();
        assert_eq!(&q[40..46], &inner[20..26], "ports and length kept");
        assert_eq!(&q[48..], &inner[28..], "data kept");
    }

    #[test]
    fn icmp_error_truncated_inner_is_fine() {
        let (mut input, _) = icmp4_error(11, 0, [0; 4], V4_HOST, &[7u8; 100]);
        // Cut the quote to the inner header plus 8 bytes, as routers do (RFC 792).
        input.truncate(20 + 8 + 28);
        input[2..4].copy_from_slice(&56u16.to_be_bytes());
        input[10..12].fill(0);
        let c = checksum::finish(checksum::sum(&input[..20]));
        input[10..12].copy_from_slice(&c.to_be_bytes());
        crate::testpkt::fix_l4_checksum(&mut input[20..], 1, 0);
        let out = translated(config(), &input);
        assert_eq!((out[40], out[41]), (3, 0));
        assert_eq!(out.len(), 40 + 8 + 48);
        assert_eq!(
            u16::from_be_bytes([out[52], out[53]]),
            108,
            "inner length from its own header"
        );
        verify(&out).unwrap();
    }

    #[test]
    fn icmp_error_mtu_and_pointers() {
        let (input, _) = icmp4_error(3, 4, [0, 0, 0x04, 0xb0], V4_HOST, b"x");
        let out = translated(config(), &input);
        assert_eq!((out[40], out[41]), (2, 0));
        assert_eq!(
            u32::from_be_bytes([out[44], out[45], out[46], out[47]]),
            1280,
            "1280 floor"
        );
        let (input, _) = icmp4_error(3, 4, [0, 0, 0x05, 0xdc], V4_HOST, b"x");
        assert_eq!(
            u32::from_be_bytes(translated(config(), &input)[44..48].try_into().unwrap()),
            1500
        );

        let (input, _) = icmp4_error(3, 2, [0; 4], V4_HOST, b"x");
        let out = translated(config(), &input);
        assert_eq!(
            (out[40], out[41], out[47]),
            (4, 1, 6),
            "protocol unreachable -> next header"
        );

        let (input, _) = icmp4_error(12, 0, [9, 0, 0, 0], V4_HOST, b"x");
        let out = translated(config(), &input);
        assert_eq!(
            (out[40], out[41], out[47]),
            (4, 0, 6),
            "pointer 9 (protocol) -> 6"
        );
        verify(&out).unwrap();
        let (input, _) = icmp4_error(12, 0, [4, 0, 0, 0], V4_HOST, b"x");
        assert_eq!(
            run(config(), &input).0,
            Outcome::Dropped(DropReason::UntranslatablePointer)
        );
        let (input, _) = icmp4_error(12, 1, [0; 4], V4_HOST, b"x");
        assert_eq!(
            run(config(), &input).0,
            Outcome::Dropped(DropReason::UntranslatableIcmp)
        );
    }

    // RFC 7915 §4.2, end to end: every ICMPv4 type and code either becomes the table's ICMPv6
    // type and code, or is dropped as untranslatable.
    #[test]
    fn every_icmpv4_type_and_code() {
        for ty in 0..=255u8 {
            for code in 0..=16u8 {
                let input = if icmp::is_error_v4(ty) {
                    icmp4_error(ty, code, [0, 0, 0x05, 0xdc], V4_HOST, b"x").0
                } else {
                    V4::new(1).build(&[ty, code, 0, 0, 0, 1, 0, 2, 9, 9], true)
                };
                let (o, out) = run(config(), &input);
                match icmp::map_4to6(ty, code) {
                    None => assert_eq!(
                        o,
                        Outcome::Dropped(DropReason::UntranslatableIcmp),
                        "{ty}/{code}"
                    ),
                    Some(m) => {
                        let p = &packets(o, &out)[0];
                        assert_eq!((p[40], p[41]), (m.ty, m.code), "{ty}/{code}");
                        verify(p).unwrap();
                    }
                }
            }
        }
    }

    // RFC 7915 §4.2: a router that reports MTU 0 gets the RFC 1191 plateau below the packet size.
    #[test]
    fn mtu_zero_uses_plateau() {
        let (input, inner) = icmp4_error(3, 4, [0; 4], V4_HOST, &[0u8; 1472]);
        assert_eq!(inner.len(), 1500);
        let mut cfg = config();
        cfg.mtu6 = 9000;
        cfg.mtu4 = 9000;
        let out = translated(cfg, &input);
        assert_eq!(
            u32::from_be_bytes([out[44], out[45], out[46], out[47]]),
            1492 + 20
        );
        // Still bounded by the IPv6 link.
        let out = translated(config(), &input);
        assert_eq!(
            u32::from_be_bytes([out[44], out[45], out[46], out[47]]),
            1500
        );
    }

    // RFC 6791 for ICMPv4 errors: an untranslatable router address becomes the pool address, or the
    // translator's own when there is no pool.
    #[test]
    fn untranslatable_error_source() {
        let mut cfg = config();
        cfg.pool6 = Some(crate::Pool6::new(crate::WELL_KNOWN_PREFIX).unwrap());
        let mut orig = V4::new(17);
        orig.src = Ipv4Addr::new(10, 0, 0, 7); // EAM: the IPv6 host 2001:db8:2::7
        orig.dst = Ipv4Addr::new(8, 8, 8, 8);
        let inner = orig.build(&udp(b"q"), true);
        let mut msg = std::vec![11, 0, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(&inner);
        let mut outer = V4::new(1);
        outer.src = Ipv4Addr::new(172, 16, 0, 1); // private: the WKP cannot carry it
        outer.dst = Ipv4Addr::new(10, 0, 0, 7);
        let input = outer.build(&msg, true);
        let out = translated(cfg, &input);
        assert_eq!(&out[8..24], &a6("2001:db8:1c0:2:1::").octets());
        cfg.rfc6791_v6 = Some("2::2".parse().unwrap());
        assert_eq!(&translated(cfg, &input)[8..24], &a6("2::2").octets());
        cfg.own_v6 = None;
        cfg.rfc6791_v6 = None;
        assert_eq!(
            run(cfg, &input).0,
            Outcome::Dropped(DropReason::UntranslatableSource)
        );
    }

    // A DF-clear IPv4 fragment too big for IPv6 is cut again; every piece keeps M=1 because more of
    // the original datagram follows.
    #[test]
    fn fragment_split_again() {
        let mut h = V4::new(17);
        h.df = false;
        h.mf = true;
        h.offset = 10;
        let data = [0x11u8; 2000];
        let (o, out) = run(config(), &h.build(&data, false));
        let frags = packets(o, &out);
        assert_eq!(frags.len(), 2);
        assert_eq!(
            u16::from_be_bytes([frags[0][42], frags[0][43]]),
            (10 << 3) | 1
        );
        assert_eq!(
            u16::from_be_bytes([frags[1][42], frags[1][43]]),
            ((10 + 1232 / 8) << 3) | 1
        );
        assert_eq!(frags[0].len() + frags[1].len(), 2000 + 2 * 48);
    }

    #[test]
    fn never_an_error_about_an_error() {
        let (mut input, _) = icmp4_error(3, 3, [0; 4], V4_HOST, b"x");
        input[8] = 1;
        input[10..12].fill(0);
        let c = checksum::finish(checksum::sum(&input[..20]));
        input[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(
            run(config(), &input).0,
            Outcome::Dropped(DropReason::Expired)
        );
    }

    #[test]
    fn nested_icmp_error_dropped() {
        let (err, _) = icmp4_error(3, 3, [0; 4], V4_HOST, b"x");
        let mut inner = err.clone();
        // Make the quoted error come from the IPv6 host so its addresses map.
        inner[12..16].copy_from_slice(&V6_HOST_AS_V4.octets());
        inner[16..20].copy_from_slice(&V4_HOST.octets());
        let mut msg = std::vec![3, 1, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(&inner);
        let outer = V4::new(1).build(&msg, true);
        assert_eq!(
            run(config(), &outer).0,
            Outcome::Dropped(DropReason::NestedIcmpError)
        );
    }

    // RFC 1812 §4.3.2.7 through the other refusals: an ICMP error with an unexpired source route,
    // or a non-first fragment too big for IPv6 with DF set, is dropped without an answer.
    #[test]
    fn never_an_error_about_an_error_or_a_later_fragment() {
        let (input, _) = icmp4_error(3, 3, [0; 4], Ipv4Addr::new(203, 0, 113, 1), b"x");
        let mut h = V4::new(1);
        h.src = Ipv4Addr::new(203, 0, 113, 1);
        h.options = std::vec![0x83, 7, 4, 1, 2, 3, 4, 0]; // LSRR, one hop left
        let routed = h.build(&input[20..], true);
        assert_eq!(
            run(config(), &routed).0,
            Outcome::Dropped(DropReason::SourceRoute)
        );

        let mut h = V4::new(17);
        h.offset = 100;
        h.df = true;
        let later = h.build(&[0u8; 1480], false);
        assert_eq!(
            run(config(), &later).0,
            Outcome::Dropped(DropReason::TooBig)
        );
        // A large ICMP error with DF is not "too big": its translation is cut to 1280.
        let (big, _) = icmp4_error(3, 3, [0; 4], V4_HOST, &[7u8; 1440]);
        assert!(matches!(run(config(), &big).0, Outcome::Translated(_)));
    }

    // The quoted packet's own IPv4 header checksum is not ours to judge (routers may have changed
    // the packet on the way): a wrong one does not cause a drop.
    #[test]
    fn wrong_inner_header_checksum_is_fine() {
        let (mut input, _) = icmp4_error(3, 3, [0; 4], V4_HOST, b"inner");
        input[28 + 10] ^= 0x5a;
        input[22..24].fill(0);
        let c = checksum::finish(checksum::sum(&input[20..]));
        input[22..24].copy_from_slice(&c.to_be_bytes());
        let out = translated(config(), &input);
        verify(&out).unwrap();
    }

    // RFC 1624: a wrong UDP or ICMP echo checksum comes out wrong by the same amount (TCP: above).
    #[test]
    fn wrong_checksums_stay_wrong() {
        let mut echo = std::vec![8, 0, 0, 0, 0x12, 0x34, 0, 1];
        echo.extend_from_slice(b"ping");
        for (proto, seg) in [(17, udp(b"data")), (1, echo)] {
            let mut input = V4::new(proto).build(&seg, true);
            assert_eq!(testpkt::l4_sum(&input), 0xffff);
            let last = input.len() - 1;
            input[last] ^= 0x40;
            let out = translated(config(), &input);
            assert_ne!(testpkt::l4_sum(&out), 0xffff, "protocol {proto}");
            assert_eq!(
                testpkt::l4_sum(&out),
                testpkt::l4_sum(&input),
                "protocol {proto}"
            );
        }
    }

    // RFC 7915 §4.1: a protocol the translator does not know is copied byte for byte.
    #[test]
    fn unknown_transport_copied_verbatim() {
        let data: Vec<u8> = (0..=255).collect();
        for proto in [253, 59, 132] {
            let input = V4::new(proto).build(&data, false);
            let out = translated(config(), &input);
            assert_eq!(out[6], proto);
            assert_eq!(&out[40..], &data[..]);
        }
    }

    // Translated ICMPv6 errors never exceed 1280 bytes.
    #[test]
    fn icmp_error_capped_at_1280() {
        let (input, _) = icmp4_error(3, 1, [0; 4], V4_HOST, &[1u8; 1400]);
        let out = translated(config(), &input);
        assert_eq!(out.len(), 1280);
        verify(&out).unwrap();
    }

    // RFC 4884: the length attribute moves from 32-bit words to 64-bit words; the quote is padded.
    #[test]
    fn rfc4884_extension_rescaled() {
        let (input, inner) = icmp4_error(3, 1, [0; 4], V4_HOST, &[3u8; 80]);
        assert_eq!(inner.len(), 108);
        // Quote padded to 128 bytes (length 32 words), then a 16-byte extension.
        let mut msg = std::vec![3u8, 1, 0, 0, 0, 32, 0, 0];
        msg.extend_from_slice(&inner);
        msg.resize(8 + 128, 0);
        let ext: Vec<u8> = (0..16).collect();
        msg.extend_from_slice(&ext);
        let mut outer = V4::new(1);
        outer.src = Ipv4Addr::from_bits(input[12..16].try_into().map(u32::from_be_bytes).unwrap());
        let input = outer.build(&msg, true);
        let out = translated(config(), &input);
        verify(&out).unwrap();
        assert_eq!(out[44], 16, "108 + 20 = 128 bytes of quote: 16 words of 8");
        assert_eq!(&out[out.len() - 16..], &ext[..]);
        assert_eq!(out.len(), 48 + 128 + 16);
    }

    #[test]
    fn untranslatable_addresses() {
        // No pool6, no EAM: nothing maps.
        let mut cfg = config();
        cfg.pool6 = None;
        assert_eq!(
            run(cfg, &V4::new(17).build(&udp(b"x"), true)).0,
            Outcome::Dropped(DropReason::UntranslatableSource)
        );
        // The Well-Known Prefix refuses private IPv4 addresses (RFC 6052 §3.1).
        let mut cfg = config();
        cfg.pool6 = Some(crate::Pool6::new(crate::WELL_KNOWN_PREFIX).unwrap());
        let mut h = V4::new(17);
        h.src = Ipv4Addr::new(192, 168, 1, 1);
        h.dst = Ipv4Addr::new(10, 0, 0, 5); // EAM-mapped
        assert_eq!(
            run(cfg, &h.build(&udp(b"x"), true)).0,
            Outcome::Dropped(DropReason::UntranslatableSource)
        );
        h.src = Ipv4Addr::new(8, 8, 8, 8);
        let out = translated(cfg, &h.build(&udp(b"x"), true));
        assert_eq!(&out[8..24], &a6("64:ff9b::808:808").octets());
        assert_eq!(
            &out[24..40],
            &a6("2001:db8:2::5").octets(),
            "EAM consulted before pool6"
        );
    }

    // In place: the IPv6 header lands in the 20 bytes of headroom, the payload does not move.
    #[test]
    fn in_place() {
        let input = V4::new(6).build(&tcp_syn(), true);
        let copy = translated(config(), &input);
        let t = Translator::new(config());
        let mut buf = std::vec![0u8; 20 + input.len()];
        buf[20..].copy_from_slice(&input);
        let r = t.translate_4to6_in_place(&mut buf, 20, input.len());
        assert_eq!(r, crate::InPlace::Translated(0..buf.len()));
        assert_eq!(buf, copy);
        // 19 bytes of headroom are not enough; nothing is touched.
        let mut short = std::vec![0u8; 19 + input.len()];
        short[19..].copy_from_slice(&input);
        let before = short.clone();
        assert_eq!(
            t.translate_4to6_in_place(&mut short, 19, input.len()),
            crate::InPlace::NeedsOutBuffer
        );
        assert_eq!(short, before);
        // A range outside the buffer is refused.
        assert_eq!(
            t.translate_4to6_in_place(&mut short, 19, input.len() + 1),
            crate::InPlace::RangeOutOfBounds
        );
    }

    #[test]
    fn garbage_is_dropped_cleanly() {
        let good = V4::new(17).build(&udp(b"x"), true);
        for n in 0..good.len() {
            let (o, _) = run(config(), &good[..n]);
            assert!(matches!(o, Outcome::Dropped(_)), "prefix {n}: {o:?}");
        }
        let mut bad = good.clone();
        bad[0] = 0x44;
        assert_eq!(
            run(config(), &bad).0,
            Outcome::Dropped(DropReason::Malformed)
        );
        let mut bad = good.clone();
        bad[10] ^= 0xff;
        assert_eq!(
            run(config(), &bad).0,
            Outcome::Dropped(DropReason::Ipv4HeaderChecksum)
        );
        let mut bad = good;
        bad[0] = 0x65;
        assert_eq!(
            run(config(), &bad).0,
            Outcome::Dropped(DropReason::Malformed)
        );
    }

    #[test]
    fn small_buffer_is_reported() {
        let input = V4::new(17).build(&udp(&[0u8; 200]), true);
        let t = Translator::new(config());
        for n in [0, 10, 40, 47, 100, 247] {
            let mut out = std::vec![0u8; n];
            assert_eq!(
                t.translate_4to6(&input, &mut out),
                Outcome::Dropped(DropReason::BufferTooSmall),
                "{n}"
            );
        }
    }
}
