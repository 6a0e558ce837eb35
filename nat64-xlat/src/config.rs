//! The translator's configuration: a plain struct, borrowed tables, no allocation.

use core::net::{Ipv4Addr, Ipv6Addr};

use crate::eam::Eam;
use crate::prefix::{Ipv4Prefix, Ipv6Prefix};
use crate::rfc6052::{DEFAULT_NON_GLOBAL, Pool6};

/// What to do with an IPv4 UDP datagram whose checksum is zero (RFC 7915 §4.5): IPv4 lets a
/// sender leave the UDP checksum out, IPv6 does not (RFC 8200 §8.1), so the datagram cannot be
/// translated as it is. Only an unfragmented datagram can have its checksum computed; a first
/// fragment with checksum zero holds too little of the datagram, and is refused under every policy,
/// silently unless the policy is [`UdpZeroChecksum::Icmp`] (§4.5: "SHOULD drop the packet"). Later
/// fragments carry no UDP header and are translated as they are.
///
/// Every refusal comes back as [`crate::DropReason::UdpZeroChecksum`] (in
/// [`crate::Outcome::Dropped`], or in [`crate::Outcome::IcmpError`] under `Icmp`), for the
/// management event §4.5 asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UdpZeroChecksum {
    /// Drop it, and send nothing back: RFC 7915 §4.5's first option for an unfragmented
    /// datagram, and what it asks for a first fragment. The default of [`Config::new`].
    Drop,
    /// Drop it, and answer the sender with ICMPv4 Destination Unreachable 3/13 (communication
    /// administratively prohibited), the error RFC 7915 §4.4 says a translator SHOULD be able to
    /// send for a packet it discards. §4.5 does not ask for it; Jool sends it (its cases ect1 and
    /// ect1-amend), for first fragments too.
    Icmp,
    /// Compute the checksum of an unfragmented datagram and translate it: RFC 7915 §4.5's second
    /// option. A first fragment cannot be summed and is dropped as under `Drop`.
    Compute,
}

/// Everything a stateless translator needs to know. Build it with [`Config::new`] and adjust fields
/// (open for new fields, so not by a struct literal).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Config<'a> {
    /// The RFC 6052 prefix ("pool6"); `None` for an EAM-only translator.
    pub pool6: Option<Pool6>,
    /// IPv4 ranges the Well-Known Prefix refuses (RFC 6052 §3.1). Whatever this holds, no prefix
    /// or EAM translates 0.0.0.0/8, 127.0.0.0/8, 169.254.0.0/16, 224.0.0.0/4 or 240.0.0.0/4.
    pub non_global: &'a [Ipv4Prefix],
    /// RFC 7757 explicit address mappings, consulted before `pool6`.
    pub eam: &'a [Eam],
    /// RFC 6791 pool: IPv4 sources for ICMPv6 errors whose source cannot be translated.
    /// `None` falls back to `own_v4`.
    pub rfc6791_v4: Option<Ipv4Prefix>,
    /// The same for ICMPv4 errors whose source cannot be mapped to IPv6; `None` falls back to `own_v6`.
    pub rfc6791_v6: Option<Ipv6Prefix>,
    /// The translator's IPv4 address: source of the ICMPv4 errors it generates. `None`: it sends none.
    pub own_v4: Option<Ipv4Addr>,
    /// The translator's IPv6 address: source of the ICMPv6 errors it generates. `None`: it sends none.
    pub own_v6: Option<Ipv6Addr>,
    /// Largest IPv6 packet made from a DF-clear IPv4 packet before fragmenting (RFC 7915 §4, default 1280).
    pub lowest_ipv6_mtu: u16,
    /// MTU of the IPv4-side link; values below 68, the IPv4 minimum (RFC 791), are taken as 68.
    pub mtu4: u16,
    /// MTU of the IPv6-side link; values below 1280, the IPv6 minimum (RFC 8200 §5), are taken as
    /// 1280. The same floor applies to `lowest_ipv6_mtu`.
    pub mtu6: u16,
    /// `None` copies TOS ↔ traffic class (RFC 7915 default); `Some(v)` writes `v` into the traffic
    /// class or TOS of every translated packet (RFC 7915 §4.1 and §5.1 let it be forced, e.g. to 0).
    pub traffic_class: Option<u8>,
    /// Secret mixed into the IPv4 Identification of packets made from unfragmented IPv6 ones, so
    /// other flows' IDs cannot be predicted (RFC 7739). Set it from a random source at start-up;
    /// the default 0 still varies IDs per flow, but predictably to anyone who knows the formula.
    pub id_key: u64,
    /// Policy for an IPv4 UDP datagram with checksum zero (RFC 7915 §4.5); default
    /// [`UdpZeroChecksum::Drop`].
    pub udp_zero_checksum: UdpZeroChecksum,
    /// RFC 7757 §4.2.2 intrinsic hairpinning: IPv6 packets whose IPv4 destination falls in an EAM
    /// IPv4 range are translated straight back to IPv6.
    pub hairpinning: bool,
}

impl<'a> Config<'a> {
    /// A translator with `pool6`, the default non-global list, no EAM, no RFC 6791 pools, no own
    /// addresses, 1500-byte links, lowest-ipv6-mtu 1280, TOS copied, zero UDP checksums dropped
    /// silently ([`UdpZeroChecksum::Drop`]), and hairpinning on.
    pub const fn new(pool6: Option<Pool6>) -> Self {
        Self {
            pool6,
            non_global: DEFAULT_NON_GLOBAL,
            eam: &[],
            rfc6791_v4: None,
            rfc6791_v6: None,
            own_v4: None,
            own_v6: None,
            lowest_ipv6_mtu: 1280,
            mtu4: 1500,
            mtu6: 1500,
            traffic_class: None,
            id_key: 0,
            udp_zero_checksum: UdpZeroChecksum::Drop,
            hairpinning: true,
        }
    }
}
