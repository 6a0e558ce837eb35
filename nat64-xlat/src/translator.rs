//! The translator: configuration plus the IPv4 identification counter, and the entry points that
//! turn an internal result into an [`Outcome`] (including the ICMP errors it generates itself).

use core::net::{Ipv4Addr, Ipv6Addr};
use core::sync::atomic::{AtomicU16, Ordering};

use crate::checksum;
use crate::config::Config;
use crate::eam::EamTable;
use crate::emit::{self, Hdr4, Hdr6};
use crate::outcome::{DropReason, Emitted, InPlace, Outcome};
use crate::wire::{self, Parse, proto};
use crate::{xlat46, xlat64};

/// Largest IP packet: an IPv6 header and a 65535-byte payload (an IPv4 datagram is smaller).
const MAX_IP_PACKET: usize = 40 + 65535;
/// Largest ICMPv4 error the translator emits (RFC 1812 §4.3.2.3).
pub(crate) const MAX_ICMP4_ERROR: usize = 576;
/// Largest ICMPv6 error the translator emits (RFC 4443 §2.4 (c)).
pub(crate) const MAX_ICMP6_ERROR: usize = 1280;

/// IPv4 addresses no prefix or EAM may translate, whatever the configuration: "this network"
/// 0.0.0.0/8, loopback 127.0.0.0/8, link-local 169.254.0.0/16 (RFC 3927 §2.7: a router must not
/// forward a packet from or to it), multicast 224.0.0.0/4 (a group would become a unicast IPv6
/// address) and reserved 240.0.0.0/4, which holds the limited broadcast 255.255.255.255.
#[inline(always)]
pub(crate) const fn never_translated(a: Ipv4Addr) -> bool {
    let first = a.octets()[0];
    first == 0 || first == 127 || first >= 224 || a.is_link_local()
}

/// Why a translation stopped: a silent drop, or a drop answered by an ICMP error to the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fail {
    Drop(DropReason),
    /// Answer with this ICMP type/code; `rest` is bytes 4-7 of the ICMP header.
    Reply {
        reason: DropReason,
        ty: u8,
        code: u8,
        rest: u32,
    },
}

impl From<DropReason> for Fail {
    fn from(r: DropReason) -> Self {
        Fail::Drop(r)
    }
}

/// Which end of the conversation an address belongs to, for the hairpinning rules of RFC 7757 §4.2.2:
/// in the second pass of a hairpinned packet, the "remote" addresses (outer source, quoted
/// destination) are mapped with RFC 6052 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Local,
    Remote,
}

/// A stateless IPv4/IPv6 translator (SIIT, RFC 7915).
///
/// `&self` is enough to translate, so one translator can serve several threads; the only mutable
/// state is the counter that numbers IPv4 packets made from unfragmented IPv6 ones.
#[derive(Debug)]
pub struct Translator<'a> {
    cfg: Config<'a>,
    next_id: AtomicU16,
}

impl<'a> Translator<'a> {
    /// A translator with this configuration.
    pub const fn new(cfg: Config<'a>) -> Self {
        Self {
            cfg,
            next_id: AtomicU16::new(0),
        }
    }

    /// The configuration.
    pub const fn config(&self) -> &Config<'a> {
        &self.cfg
    }

    /// Translates an IPv4 packet that arrived on the IPv4 side. The result (IPv6 packets, or an
    /// ICMPv4 error for the sender) is written at the start of `out`. An `out` of
    /// [`Translator::out_len`]`(input.len())` bytes is always enough.
    #[inline]
    pub fn translate_4to6(&self, input: &[u8], out: &mut [u8]) -> Outcome {
        match xlat46::translate(self, input, out, false) {
            Ok(e) => Outcome::Translated(e),
            Err(f) => self.fail4(input, out, f),
        }
    }

    /// Translates an IPv6 packet that arrived on the IPv6 side. The result (IPv4 packets, a
    /// hairpinned IPv6 packet, or an ICMPv6 error for the sender) is written at the start of `out`.
    /// Hairpinning uses the second half of `out` as scratch space; an `out` of
    /// [`Translator::out_len`]`(input.len())` bytes is always enough.
    #[inline]
    pub fn translate_6to4(&self, input: &[u8], out: &mut [u8]) -> Outcome {
        match xlat64::translate(self, input, out) {
            Ok(xlat64::Done::Out(e)) => Outcome::Translated(e),
            Ok(xlat64::Done::Hairpin(e)) => Outcome::Hairpinned(e),
            Err(f) => self.fail6(input, out, f),
        }
    }

    /// Translates the IPv4 packet at `buf[at..at + len]` where it lies, when the result is one
    /// plain packet (TCP, UDP, ICMP echo or another protocol, no fragmenting, no ICMP error): the
    /// IPv6 header is written into the headroom before the payload (20 bytes more than the IPv4
    /// header, 28 for a fragment) and the payload does not move, so the cost does not depend on its
    /// size. Any other packet gives [`InPlace::NeedsOutBuffer`] with `buf` untouched: call
    /// [`Translator::translate_4to6`] for it.
    #[inline]
    pub fn translate_4to6_in_place(&self, buf: &mut [u8], at: usize, len: usize) -> InPlace {
        if buf.get(at..at.saturating_add(len)).is_none() {
            return InPlace::RangeOutOfBounds;
        }
        match xlat46::translate_in_place(self, buf, at, len) {
            Ok(Some(r)) => InPlace::Translated(r),
            Ok(None) => InPlace::NeedsOutBuffer,
            Err(r) => InPlace::Dropped(r),
        }
    }

    /// Translates the IPv6 packet at `buf[at..at + len]` where it lies, when the result is one
    /// plain packet (as for [`Translator::translate_4to6_in_place`]; hairpinned packets excluded):
    /// the IPv4 header is written over the end of the IPv6 headers, which are always longer.
    /// Otherwise [`InPlace::NeedsOutBuffer`] with `buf` untouched: call
    /// [`Translator::translate_6to4`].
    #[inline]
    pub fn translate_6to4_in_place(&self, buf: &mut [u8], at: usize, len: usize) -> InPlace {
        if buf.get(at..at.saturating_add(len)).is_none() {
            return InPlace::RangeOutOfBounds;
        }
        match xlat64::translate_in_place(self, buf, at, len) {
            Ok(Some(r)) => InPlace::Translated(r),
            Ok(None) => InPlace::NeedsOutBuffer,
            Err(r) => InPlace::Dropped(r),
        }
    }

    /// An output buffer size that holds any result for an input of `input_len` bytes: the worst case
    /// is a hairpinned packet (twice, for the scratch half) or an IPv4 datagram cut into
    /// 1280-byte IPv6 fragments (48 bytes of headers per 1232 bytes of data). Bytes past the
    /// largest IP packet (an IPv6 header and 65535 bytes of payload) are never read, so any larger
    /// `input_len` gives the same size.
    pub const fn out_len(input_len: usize) -> usize {
        let input_len = if input_len < MAX_IP_PACKET {
            input_len
        } else {
            MAX_IP_PACKET
        };
        let frags = input_len / 1232 + 1;
        let need = input_len + 48 * frags + 64;
        2 * if need > MAX_ICMP6_ERROR {
            need
        } else {
            MAX_ICMP6_ERROR
        }
    }

    /// This translator with `eam` as its only explicit mappings and no hairpinning: how the
    /// stateful translator maps a session's IPv6 host to its pool4 address, one packet at a time.
    /// The identification counter goes along; [`Translator::resume_ids`] brings it back.
    #[cfg(feature = "alloc")]
    pub(crate) fn with_eam<'b>(&'b self, eam: &'b [crate::Eam]) -> Translator<'b> {
        let mut cfg = self.cfg;
        cfg.eam = eam;
        cfg.hairpinning = false;
        self.carrying_ids(cfg)
    }

    /// This translator with `own_v4`/`own_v6` set where they are not: a stateful NAT64 owes its
    /// hosts the ICMP errors of RFC 6146 even when the operator gave no address of its own, and
    /// sends them from the address the refused packet was sent to.
    #[cfg(feature = "alloc")]
    pub(crate) fn or_own(&self, v4: Option<Ipv4Addr>, v6: Option<Ipv6Addr>) -> Translator<'a> {
        let mut cfg = self.cfg;
        cfg.own_v4 = cfg.own_v4.or(v4);
        cfg.own_v6 = cfg.own_v6.or(v6);
        self.carrying_ids(cfg)
    }

    /// A translator with `cfg` and this one's identification counter.
    #[cfg(feature = "alloc")]
    fn carrying_ids<'b>(&self, cfg: Config<'b>) -> Translator<'b> {
        Translator {
            cfg,
            next_id: AtomicU16::new(self.next_id.load(Ordering::Relaxed)),
        }
    }

    /// Takes the identification counter back from a [`Translator::with_eam`] view.
    #[cfg(feature = "alloc")]
    pub(crate) fn resume_ids(&self, view: &Translator<'_>) {
        self.next_id
            .store(view.next_id.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// The IPv4 Identification for a packet made from an unfragmented IPv6 one: a shared counter
    /// plus a per-flow offset keyed by [`Config::id_key`] (the hash-based generator of RFC 7739
    /// §5.3), so a host that sees its own IDs cannot predict another flow's.
    #[inline]
    pub(crate) fn next_id(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u16 {
        let k = self.cfg.id_key;
        let h = (src.to_bits() ^ k as u32)
            .wrapping_mul(0x9e37_79b1)
            .wrapping_add(dst.to_bits() ^ (k >> 32) as u32)
            .wrapping_mul(0x85eb_ca6b);
        self.next_count().wrapping_add((h >> 16) as u16)
    }

    #[inline]
    fn next_count(&self) -> u16 {
        // A plain load and store, not an atomic add: two threads may now and then draw the same ID,
        // which only matters if both datagrams also get fragmented on the IPv4 side at once; the
        // locked add would cost more than the rest of the header translation.
        let id = self.next_id.load(Ordering::Relaxed);
        self.next_id.store(id.wrapping_add(1), Ordering::Relaxed);
        id
    }

    /// IPv4 → IPv6 address: EAM first (RFC 7757), then RFC 6052. `Remote` skips the EAM in the
    /// second pass of a hairpinned packet.
    // Always: an out-of-line Option<Ipv6Addr> (align 1) comes back through memory and stalls
    // store forwarding on every packet.
    #[inline(always)]
    pub(crate) fn map_4to6(&self, a: Ipv4Addr, role: Role, hairpin: bool) -> Option<Ipv6Addr> {
        if never_translated(a) {
            return None;
        }
        self.map_4to6_any(a, role, hairpin)
    }

    /// The IPv6 source of a translated ICMPv4 error. A router that reports from "this network"
    /// (0/8) or loopback (127/8) still identifies only itself, and its error is about a flow we
    /// translate, so it is mapped like any address (Jool does the same). A multicast or reserved
    /// source is not mapped, nor is any source without a mapping: those take the RFC 6791 source
    /// instead. A link-local source (169.254/16) refuses the whole error, pool or not: RFC 3927
    /// §2.7 forbids forwarding a packet from a link-local address, and putting a pool address in
    /// its place would still forward it off its link. (Jool maps it like 0/8.)
    #[inline(always)]
    pub(crate) fn error_source_4to6(&self, a: Ipv4Addr, hairpin: bool) -> Option<Ipv6Addr> {
        if a.is_link_local() {
            return None;
        }
        if a.octets()[0] < 224 {
            if let Some(v6) = self.map_4to6_any(a, Role::Remote, hairpin) {
                return Some(v6);
            }
        }
        self.rfc6791_v6(a)
    }

    #[inline(always)]
    fn map_4to6_any(&self, a: Ipv4Addr, role: Role, hairpin: bool) -> Option<Ipv6Addr> {
        let eam = !(hairpin && role == Role::Remote);
        if eam {
            if let Some(v6) = EamTable::new(self.cfg.eam).to_v6(a) {
                return Some(v6);
            }
        }
        self.cfg.pool6?.embed(a, self.cfg.non_global)
    }

    /// IPv6 → IPv4 address: EAM first (RFC 7757), then RFC 6052.
    // Always: an out-of-line Option<Ipv6Addr> (align 1) comes back through memory and stalls
    // store forwarding on every packet.
    #[inline(always)]
    pub(crate) fn map_6to4(&self, a: Ipv6Addr) -> Option<Ipv4Addr> {
        EamTable::new(self.cfg.eam)
            .to_v4(a)
            .or_else(|| self.cfg.pool6?.extract(a, self.cfg.non_global))
            .filter(|&v4| !never_translated(v4))
    }

    /// RFC 6791: the IPv4 source for an ICMPv6 error whose source has no mapping. The address is
    /// picked from the pool by the untranslatable source, so one router keeps one address.
    pub(crate) fn rfc6791_v4(&self, untranslatable: Ipv6Addr) -> Option<Ipv4Addr> {
        match self.cfg.rfc6791_v4 {
            Some(p) => {
                let h = checksum::fold(checksum::sum(&untranslatable.octets()));
                let pick = u32::from(h) % p.size().max(1);
                Some(Ipv4Addr::from_bits(p.addr().to_bits() | pick))
            }
            None => self.cfg.own_v4,
        }
    }

    /// The same for ICMPv4 errors (a Jool extension; RFC 6791 only defines the IPv4 pool).
    pub(crate) fn rfc6791_v6(&self, untranslatable: Ipv4Addr) -> Option<Ipv6Addr> {
        match self.cfg.rfc6791_v6 {
            Some(p) => {
                let span = 128 - u32::from(p.prefix_len());
                let bits = u128::from(untranslatable.to_bits());
                let pick = if span == 0 {
                    0
                } else {
                    bits & (u128::MAX >> (128 - span.min(32)))
                };
                Some(Ipv6Addr::from_bits(p.addr().to_bits() | pick))
            }
            None => self.cfg.own_v6,
        }
    }

    pub(crate) fn fail4(&self, input: &[u8], out: &mut [u8], f: Fail) -> Outcome {
        match f {
            Fail::Drop(r) => Outcome::Dropped(r),
            Fail::Reply {
                reason,
                ty,
                code,
                rest,
            } => match self.reply4(input, out, ty, code, rest) {
                Ok(e) => Outcome::IcmpError { reason, reply: e },
                Err(_) => Outcome::Dropped(reason),
            },
        }
    }

    pub(crate) fn fail6(&self, input: &[u8], out: &mut [u8], f: Fail) -> Outcome {
        match f {
            Fail::Drop(r) => Outcome::Dropped(r),
            Fail::Reply {
                reason,
                ty,
                code,
                rest,
            } => match self.reply6(input, out, ty, code, rest) {
                Ok(e) => Outcome::IcmpError { reason, reply: e },
                Err(_) => Outcome::Dropped(reason),
            },
        }
    }

    /// An ICMPv4 error from the translator to the sender of `input`, quoting as much as fits in 576.
    /// Fails (and the caller just drops) without an own address to send it from.
    fn reply4(
        &self,
        input: &[u8],
        out: &mut [u8],
        ty: u8,
        code: u8,
        rest: u32,
    ) -> Result<Emitted, DropReason> {
        let own = self.cfg.own_v4.ok_or(DropReason::UntranslatableSource)?;
        let ip = wire::Ipv4::parse(input, Parse::Lax)?;
        // RFC 1812 §4.3.2.7: no error about a datagram to or from a group or broadcast address.
        let group = |a: Ipv4Addr| a.is_multicast() || a.is_broadcast() || a.is_unspecified();
        if group(ip.src) || group(ip.dst) {
            return Err(DropReason::Malformed);
        }
        let quote = &input[..usize::from(ip.total_len)
            .min(input.len())
            .min(MAX_ICMP4_ERROR - 28)];
        let h = Hdr4 {
            tos: 0,
            id: 0,
            df: false,
            mf: false,
            offset: 0,
            ttl: 64,
            proto: proto::ICMP,
            src: own.to_bits(),
            dst: ip.src.to_bits(),
        };
        let icmp_len = 8 + quote.len();
        emit::ipv4_header(out, &h, icmp_len)?;
        let msg = out
            .get_mut(20..20 + icmp_len)
            .ok_or(DropReason::BufferTooSmall)?;
        msg[0] = ty;
        msg[1] = code;
        msg[2..4].fill(0);
        msg[4..8].copy_from_slice(&rest.to_be_bytes());
        msg[8..].copy_from_slice(quote);
        let c = checksum::finish(checksum::sum(msg));
        msg[2..4].copy_from_slice(&c.to_be_bytes());
        Ok(Emitted::new(20 + icmp_len, 1))
    }

    /// An ICMPv6 error from the translator to the sender of `input`, quoting as much as fits in 1280.
    fn reply6(
        &self,
        input: &[u8],
        out: &mut [u8],
        ty: u8,
        code: u8,
        rest: u32,
    ) -> Result<Emitted, DropReason> {
        let own = self.cfg.own_v6.ok_or(DropReason::UntranslatableSource)?;
        let ip = wire::Ipv6::parse(input, Parse::Lax)?;
        // RFC 4443 §2.4 (e): no error to an unspecified or multicast source, nor about a packet to a
        // multicast group (its Packet Too Big exception is not taken).
        if ip.src.is_unspecified() || ip.src.is_multicast() || ip.dst.is_multicast() {
            return Err(DropReason::Malformed);
        }
        let end = (40 + usize::from(ip.payload_len)).min(input.len());
        let quote = &input[..end.min(MAX_ICMP6_ERROR - 48)];
        let h = Hdr6 {
            traffic_class: 0,
            next: proto::ICMPV6,
            hop_limit: 64,
            src: own.to_bits(),
            dst: ip.src.to_bits(),
        };
        let icmp_len = 8 + quote.len();
        emit::ipv6_header(out, &h, None, icmp_len)?;
        let msg = out
            .get_mut(40..40 + icmp_len)
            .ok_or(DropReason::BufferTooSmall)?;
        msg[0] = ty;
        msg[1] = code;
        msg[2..4].fill(0);
        msg[4..8].copy_from_slice(&rest.to_be_bytes());
        msg[8..].copy_from_slice(quote);
        let acc = checksum::add(
            checksum::pseudo6(own, ip.src, proto::ICMPV6, icmp_len as u32),
            checksum::sum(msg),
        );
        msg[2..4].copy_from_slice(&checksum::finish(acc).to_be_bytes());
        Ok(Emitted::new(40 + icmp_len, 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rfc6052::{Pool6, WELL_KNOWN_PREFIX};

    // Reference translations in testdata/, computed with an independent script from the RFC
    // arithmetic (RFC 791/768/792/4443/8200 headers and checksums, RFC 7915 field rules), not by
    // this crate.
    static UDP_WKP_V4: &[u8] = include_bytes!("../testdata/udp-wkp.v4.bin");
    static UDP_WKP_V6: &[u8] = include_bytes!("../testdata/udp-wkp.v6.bin");
    static ECHO_40_V4: &[u8] = include_bytes!("../testdata/echo-40.v4.bin");
    static ECHO_40_V6: &[u8] = include_bytes!("../testdata/echo-40.v6.bin");
    static TCP_ATOMIC_V6: &[u8] = include_bytes!("../testdata/tcp-atomic.v6.bin");
    static TCP_ATOMIC_V4: &[u8] = include_bytes!("../testdata/tcp-atomic.v4.bin");

    fn one(o: Outcome, out: &[u8]) -> &[u8] {
        let Outcome::Translated(e) = o else {
            panic!("{o:?}")
        };
        assert_eq!(e.count(), 1);
        &out[..e.len()]
    }

    fn pool40() -> Translator<'static> {
        Translator::new(Config::new(Some(
            Pool6::new("2001:db8:100::/40".parse().unwrap()).unwrap(),
        )))
    }

    #[test]
    fn udp_through_the_well_known_prefix() {
        let t = Translator::new(Config::new(Some(Pool6::new(WELL_KNOWN_PREFIX).unwrap())));
        let mut out = [0u8; 4096];
        assert_eq!(
            one(t.translate_4to6(UDP_WKP_V4, &mut out), &out),
            UDP_WKP_V6
        );
    }

    #[test]
    fn echo_request_through_a_40_bit_prefix() {
        let mut out = [0u8; 4096];
        assert_eq!(
            one(pool40().translate_4to6(ECHO_40_V4, &mut out), &out),
            ECHO_40_V6
        );
    }

    #[test]
    fn tcp_syn_in_an_atomic_fragment() {
        let mut out = [0u8; 4096];
        assert_eq!(
            one(pool40().translate_6to4(TCP_ATOMIC_V6, &mut out), &out),
            TCP_ATOMIC_V4
        );
    }

    // The largest results, written into buffers of exactly `out_len` bytes: a 65535-byte DF-clear
    // IPv4 datagram cut into 1280-byte IPv6 fragments, and a 64 KiB IPv6 packet hairpinned.
    #[test]
    fn out_len_holds_the_largest_results() {
        let mut h = crate::testpkt::V4::new(253);
        h.df = false;
        let input = h.build(&[0x5a; 65535 - 20], false);
        let mut out = std::vec![0u8; Translator::out_len(input.len())];
        let Outcome::Translated(e) = pool40().translate_4to6(&input, &mut out) else {
            panic!("not translated")
        };
        assert_eq!(e.count(), 54);
        assert!(e.packets(&out).all(|p| p.len() <= 1280));

        let mut cfg = crate::testpkt::config();
        (cfg.mtu4, cfg.mtu6) = (u16::MAX, u16::MAX);
        let t = Translator::new(cfg);
        let mut h6 = crate::testpkt::V6::new(253);
        h6.dst = crate::testpkt::a6("2001:db8:101:0:5::"); // 1.0.0.5, in an EAM: hairpinned
        let input = h6.build(&[0x5a; 65535 - 40], false);
        let mut out = std::vec![0u8; Translator::out_len(input.len())];
        let o = t.translate_6to4(&input, &mut out);
        assert!(matches!(o, Outcome::Hairpinned(_)), "{o:?}");
    }

    // A range outside the buffer is the caller's mistake, told apart from a truncated packet.
    #[test]
    fn in_place_range_outside_the_buffer() {
        let t = pool40();
        let mut buf = [0u8; 64];
        for (at, len) in [(10, 64), (65, 0), (usize::MAX, 2), (1, usize::MAX)] {
            assert_eq!(
                t.translate_4to6_in_place(&mut buf, at, len),
                InPlace::RangeOutOfBounds
            );
            assert_eq!(
                t.translate_6to4_in_place(&mut buf, at, len),
                InPlace::RangeOutOfBounds
            );
        }
        assert_eq!(
            t.translate_4to6_in_place(&mut buf, 0, 10),
            InPlace::Dropped(DropReason::Truncated)
        );
    }

    // RFC 3927 §2.7: 169.254/16 is never forwarded, so never translated, even when an EAM (or the
    // prefix) covers it: as source or destination, both ways, copied or in place. No ICMP error
    // either (TTL and hop limit 1 would call for one).
    #[test]
    fn link_local_never_translated() {
        use crate::testpkt::{self, V4, V6};
        let eams = [
            testpkt::EAMS[1], // 10.0.0.0/24 <-> 2001:db8:2::/120, the peer
            crate::Eam::new(
                "169.254.0.0/16".parse().unwrap(),
                "2001:db8:a9fe::/112".parse().unwrap(),
            )
            .unwrap(),
        ];
        let (peer, peer6) = (Ipv4Addr::new(10, 0, 0, 5), testpkt::a6("2001:db8:2::5"));
        let mut with_pool = testpkt::config();
        with_pool.eam = &eams;
        let mut eam_only = with_pool;
        eam_only.pool6 = None;
        let ll = Ipv4Addr::new(169, 254, 1, 1);
        let udp = [0x04, 0xd2, 0x16, 0x2e, 0, 16, 0, 0, 7, 7, 7, 7, 7, 7, 7, 7];

        for (cfg, embedded) in [(with_pool, false), (with_pool, true), (eam_only, false)] {
            let t = Translator::new(cfg);
            // The EAM's image of 169.254.1.1, or the prefix's: the tables do map it, only the
            // link-local rule refuses it.
            let ll6 = if embedded {
                cfg.pool6.unwrap().embed(ll, &[]).unwrap()
            } else {
                assert_eq!(
                    EamTable::new(cfg.eam).to_v6(ll),
                    Some(testpkt::a6("2001:db8:a9fe::101"))
                );
                testpkt::a6("2001:db8:a9fe::101")
            };
            let refused = |input: &[u8], why| {
                let v4 = input[0] >> 4 == 4;
                let mut out = [0u8; 4096];
                let copy = if v4 {
                    t.translate_4to6(input, &mut out)
                } else {
                    t.translate_6to4(input, &mut out)
                };
                assert_eq!(copy, Outcome::Dropped(why), "{ll6}");
                let mut buf = [&[0u8; 28][..], input].concat();
                let before = buf.clone();
                let r = if v4 {
                    t.translate_4to6_in_place(&mut buf, 28, input.len())
                } else {
                    t.translate_6to4_in_place(&mut buf, 28, input.len())
                };
                assert_eq!(r, InPlace::Dropped(why), "{ll6}");
                assert_eq!(buf, before);
            };
            for ttl in [64, 1] {
                for (src, dst, src6, dst6, why) in [
                    (ll, peer, ll6, peer6, DropReason::UntranslatableSource),
                    (peer, ll, peer6, ll6, DropReason::UntranslatableDestination),
                ] {
                    let mut h = V4::new(17);
                    (h.ttl, h.src, h.dst) = (ttl, src, dst);
                    refused(&h.build(&udp, true), why);
                    let mut h = V6::new(17);
                    (h.hop_limit, h.src, h.dst) = (ttl, src6, dst6);
                    refused(&h.build(&udp, true), why);
                }
            }
        }
    }

    // No overflow for absurd lengths: nothing past the largest IP packet is read.
    #[test]
    fn out_len_saturates() {
        let most = Translator::out_len(MAX_IP_PACKET);
        assert_eq!(Translator::out_len(usize::MAX), most);
        assert_eq!(Translator::out_len(usize::MAX / 2), most);
        assert!(Translator::out_len(MAX_IP_PACKET - 1) <= most);
    }
}
