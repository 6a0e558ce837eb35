//! What the translation depends on, owned, so a reload can build a new value and swap it whole.

use core::net::{Ipv4Addr, Ipv6Addr};

use nat64_xlat::stateful::StatefulConfig;
use nat64_xlat::{Config, DEFAULT_NON_GLOBAL, Eam, Ipv4Prefix, Ipv6Prefix, Pool6, UdpZeroChecksum};

/// The gateway's translation settings (the `[nat64]` section less the device's name and queues).
/// Everything here can change while the gateway runs ([`Gateway::reload`](super::Gateway::reload)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settings {
    /// RFC 6052 prefix for IPv4 addresses (`64:ff9b::/96`); `None` with EAM only.
    pub pool6: Option<Pool6>,
    /// Source of the ICMPv4 errors the gateway generates; answers ICMP echo.
    pub own_v4: Option<Ipv4Addr>,
    /// Source of the ICMPv6 errors the gateway generates; answers ICMPv6 echo.
    pub own_v6: Option<Ipv6Addr>,
    /// RFC 7757 explicit address mappings, consulted before `pool6`.
    pub eam: Vec<Eam>,
    /// IPv4 networks never translated under the Well-Known Prefix (RFC 6052 §3.1).
    pub non_global: Vec<Ipv4Prefix>,
    /// RFC 6791 pools for ICMP errors from untranslatable sources.
    pub rfc6791_v4: Option<Ipv4Prefix>,
    /// The same for ICMPv4 errors translated to IPv6.
    pub rfc6791_v6: Option<Ipv6Prefix>,
    /// The device's MTU (both families share the device).
    pub mtu: u16,
    /// The smallest IPv6 MTU on the IPv6 side (RFC 7915 §6): IPv4 packets without DF are cut to it.
    pub lowest_ipv6_mtu: u16,
    /// What to do with IPv4 UDP datagrams without a checksum (RFC 7915 §4.5).
    pub udp_zero_checksum: UdpZeroChecksum,
    /// Stateful NAT64 (RFC 6146): IPv6 hosts in the layout's customer prefixes share its pool4
    /// addresses by port. `None`: stateless (SIIT). Its layout and capacity are fixed while the
    /// gateway runs; a reload may change timeouts, filtering, limits and the mapping log.
    pub stateful: Option<StatefulConfig>,
}

impl Settings {
    /// Settings with `pool6` and the defaults: the RFC 6052 non-global list, MTU 1500, lowest
    /// IPv6 MTU 1280, zero-checksum UDP dropped, no EAM, no own addresses.
    pub fn new(pool6: Option<Pool6>) -> Self {
        let defaults = Config::new(pool6);
        Settings {
            pool6,
            own_v4: None,
            own_v6: None,
            eam: Vec::new(),
            non_global: DEFAULT_NON_GLOBAL.to_vec(),
            rfc6791_v4: None,
            rfc6791_v6: None,
            mtu: 1500,
            lowest_ipv6_mtu: defaults.lowest_ipv6_mtu,
            udp_zero_checksum: defaults.udp_zero_checksum,
            stateful: None,
        }
    }

    /// The translator's configuration for ordinary packets.
    pub(crate) fn config(&self, id_key: u64) -> Config<'_> {
        let mut c = Config::new(self.pool6);
        c.non_global = &self.non_global;
        c.eam = &self.eam;
        c.rfc6791_v4 = self.rfc6791_v4;
        c.rfc6791_v6 = self.rfc6791_v6;
        c.own_v4 = self.own_v4;
        c.own_v6 = self.own_v6;
        c.lowest_ipv6_mtu = self.lowest_ipv6_mtu;
        c.mtu4 = self.mtu;
        c.mtu6 = self.mtu;
        c.id_key = id_key;
        c.udp_zero_checksum = self.udp_zero_checksum;
        c
    }

    /// The configuration for TCP super-packets (GSO): they stand for segments that each fit the
    /// MTU, so the translator must not hold the super-packet's own length against it. A segment
    /// that grows past the IPv6 MTU (4→6 adds 20 bytes) is the kernel's to report with Packet Too
    /// Big, which comes back through the gateway like any other.
    pub(crate) fn super_packet_config(&self, id_key: u64) -> Config<'_> {
        let mut c = self.config(id_key);
        c.mtu4 = u16::MAX;
        c.mtu6 = u16::MAX;
        c
    }
}
