//! Address mapping, IPv4 ↔ IPv6: explicit address mappings first (RFC 7757), then the RFC 6052
//! prefix, then the RFC 6791 pools for the sources of ICMP errors. Methods on [`Config`], so the
//! per-direction translators need nothing but the configuration.

use core::net::{Ipv4Addr, Ipv6Addr};

use crate::checksum;
use crate::config::Config;
use crate::eam::EamTable;

/// IPv4 addresses no prefix or EAM may translate, whatever the configuration: "this network"
/// 0.0.0.0/8, loopback 127.0.0.0/8, link-local 169.254.0.0/16 (RFC 3927 §2.7: a router must not
/// forward a packet from or to it), multicast 224.0.0.0/4 (a group would become a unicast IPv6
/// address) and reserved 240.0.0.0/4, which holds the limited broadcast 255.255.255.255.
#[inline(always)]
pub(crate) const fn never_translated(a: Ipv4Addr) -> bool {
    let first = a.octets()[0];
    first == 0 || first == 127 || first >= 224 || a.is_link_local()
}

/// Which end of the conversation an address belongs to, for the hairpinning rules of RFC 7757 §4.2.2:
/// in the second pass of a hairpinned packet, the "remote" addresses (outer source, quoted
/// destination) are mapped with RFC 6052 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Local,
    Remote,
}

impl Config<'_> {
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
        self.rfc6791_source_v6(a)
    }

    #[inline(always)]
    fn map_4to6_any(&self, a: Ipv4Addr, role: Role, hairpin: bool) -> Option<Ipv6Addr> {
        let eam = !(hairpin && role == Role::Remote);
        if eam {
            if let Some(v6) = EamTable::new(self.eam).to_v6(a) {
                return Some(v6);
            }
        }
        self.pool6?.embed(a, self.non_global)
    }

    /// IPv6 → IPv4 address: EAM first (RFC 7757), then RFC 6052.
    // Always: an out-of-line Option<Ipv6Addr> (align 1) comes back through memory and stalls
    // store forwarding on every packet.
    #[inline(always)]
    pub(crate) fn map_6to4(&self, a: Ipv6Addr) -> Option<Ipv4Addr> {
        EamTable::new(self.eam)
            .to_v4(a)
            .or_else(|| self.pool6?.extract(a, self.non_global))
            .filter(|&v4| !never_translated(v4))
    }

    /// RFC 6791: the IPv4 source for an ICMPv6 error whose source has no mapping. The address is
    /// picked from the pool by the untranslatable source, so one router keeps one address.
    pub(crate) fn rfc6791_source_v4(&self, untranslatable: Ipv6Addr) -> Option<Ipv4Addr> {
        match self.rfc6791_v4 {
            Some(p) => {
                let h = checksum::fold(checksum::sum(&untranslatable.octets()));
                let pick = u32::from(h) % p.size().max(1);
                Some(Ipv4Addr::from_bits(p.addr().to_bits() | pick))
            }
            None => self.own_v4,
        }
    }

    /// The same for ICMPv4 errors (a Jool extension; RFC 6791 only defines the IPv4 pool).
    pub(crate) fn rfc6791_source_v6(&self, untranslatable: Ipv4Addr) -> Option<Ipv6Addr> {
        match self.rfc6791_v6 {
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
            None => self.own_v6,
        }
    }
}
