//! The translator: configuration plus the IPv4 identification counter, and the entry points that
//! turn an internal result into an [`Outcome`] (including the ICMP errors it generates itself).

#[cfg(feature = "alloc")]
use core::net::{Ipv4Addr, Ipv6Addr};

use crate::config::Config;
use crate::fail::{Fail, Ip, MAX_ICMP6_ERROR};
use crate::ids::Ids;
use crate::outcome::{InPlace, Outcome};
use crate::wire::{MIN_MTU6, field};
use crate::{xlat46, xlat64};

/// Largest IP packet: an IPv6 header and a 65535-byte payload (an IPv4 datagram is smaller).
const MAX_IP_PACKET: usize = field::IPV6_LEN + u16::MAX as usize;
/// Headers of each IPv6 fragment: the fixed header and the Fragment header.
const FRAGMENT_HEADERS: usize = field::IPV6_LEN + field::FRAG6_LEN;
/// Room for the headers an ICMP error puts before what it quotes.
const ERROR_HEADERS: usize = 64;
/// A stateless IPv4/IPv6 translator (SIIT, RFC 7915).
///
/// `&self` is enough to translate, so one translator can serve several threads; the only mutable
/// state is the counter that numbers IPv4 packets made from unfragmented IPv6 ones.
#[derive(Debug)]
pub struct Translator<'a> {
    cfg: Config<'a>,
    ids: Ids,
}

impl<'a> Translator<'a> {
    /// A translator with this configuration.
    pub const fn new(cfg: Config<'a>) -> Self {
        Self {
            cfg,
            ids: Ids::new(0),
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
        match xlat46::translate(&self.cfg, input, out, false) {
            Ok(e) => Outcome::Translated(e),
            Err(f) => self.fail(Ip::V4, input, out, f),
        }
    }

    /// Translates an IPv6 packet that arrived on the IPv6 side. The result (IPv4 packets, a
    /// hairpinned IPv6 packet, or an ICMPv6 error for the sender) is written at the start of `out`.
    /// Hairpinning uses the second half of `out` as scratch space; an `out` of
    /// [`Translator::out_len`]`(input.len())` bytes is always enough.
    #[inline]
    pub fn translate_6to4(&self, input: &[u8], out: &mut [u8]) -> Outcome {
        match xlat64::translate(&self.cfg, &self.ids, input, out) {
            Ok(xlat64::Done::Out(e)) => Outcome::Translated(e),
            Ok(xlat64::Done::Hairpin(e)) => Outcome::Hairpinned(e),
            Err(f) => self.fail(Ip::V6, input, out, f),
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
        match xlat46::translate_in_place(&self.cfg, buf, at, len) {
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
        match xlat64::translate_in_place(&self.cfg, &self.ids, buf, at, len) {
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
        let frags = input_len / (MIN_MTU6 - FRAGMENT_HEADERS) + 1;
        let need = input_len + FRAGMENT_HEADERS * frags + ERROR_HEADERS;
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
            ids: Ids::new(self.ids.now()),
        }
    }

    /// Takes the identification counter back from a [`Translator::with_eam`] view.
    #[cfg(feature = "alloc")]
    pub(crate) fn resume_ids(&self, view: &Translator<'_>) {
        self.ids.set(view.ids.now());
    }

    /// What becomes of `input` (an IP`ip` packet) that translation refused with `f`.
    pub(crate) fn fail(&self, ip: Ip, input: &[u8], out: &mut [u8], f: Fail) -> Outcome {
        f.answer(&self.cfg, ip, input, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eam::EamTable;
    use crate::outcome::DropReason;
    use crate::rfc6052::{Pool6, WELL_KNOWN_PREFIX};
    use core::net::Ipv4Addr;

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
