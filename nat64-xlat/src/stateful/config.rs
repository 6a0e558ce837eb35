//! What a stateful translator is told: the block layout, timers, filtering and per-block limits.

use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use super::layout::Layout;

/// Session lifetimes (RFC 6146 §4). [`Timeouts::RFC6146`] holds the RFC's defaults;
/// [`Timeouts::check`] holds them to its minimums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeouts {
    /// UDP sessions: default 5 minutes, never below 2 (UDP_MIN).
    pub udp: Duration,
    /// Established TCP sessions: default and minimum 2 hours 4 minutes (TCP_EST).
    pub tcp_established: Duration,
    /// TCP sessions opening, closing or reset: default and minimum 4 minutes (TCP_TRANS).
    pub tcp_transitory: Duration,
    /// ICMP query sessions: default 60 seconds (ICMP_DEFAULT).
    pub icmp: Duration,
}

/// How long an unsolicited inbound SYN waits for the IPv6 side's own SYN (TCP_INCOMING_SYN,
/// RFC 6146 §3.5.2.2) before the sender gets ICMP Port Unreachable.
pub const INCOMING_SYN: Duration = Duration::from_secs(6);

impl Timeouts {
    /// RFC 6146 §4's defaults.
    pub const RFC6146: Timeouts = Timeouts {
        udp: Duration::from_secs(5 * 60),
        tcp_established: Duration::from_secs(2 * 3600 + 4 * 60),
        tcp_transitory: Duration::from_secs(4 * 60),
        icmp: Duration::from_secs(60),
    };

    /// Checks the RFC's minimums: UDP 2 min, TCP established 2 h 4 min, TCP transitory 4 min,
    /// ICMP above zero. A test rig may use shorter ones (nothing else depends on the check).
    pub fn check(&self) -> Result<(), TimeoutError> {
        let min = [
            ("udp", self.udp, Duration::from_secs(120)),
            (
                "tcp_established",
                self.tcp_established,
                Self::RFC6146.tcp_established,
            ),
            (
                "tcp_transitory",
                self.tcp_transitory,
                Self::RFC6146.tcp_transitory,
            ),
            ("icmp", self.icmp, Duration::from_secs(1)),
        ];
        for (name, got, min) in min {
            if got < min {
                return Err(TimeoutError { name, got, min });
            }
        }
        Ok(())
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Self::RFC6146
    }
}

/// A timeout below RFC 6146's minimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeoutError {
    /// Which timeout.
    pub name: &'static str,
    /// Configured.
    pub got: Duration,
    /// The RFC's minimum.
    pub min: Duration,
}

impl fmt::Display for TimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} timeout {:?} is below RFC 6146's minimum of {:?}",
            self.name, self.got, self.min
        )
    }
}

impl core::error::Error for TimeoutError {}

/// Which inbound packets may use an existing mapping (RFC 4787 §5, RFC 6146 §3.5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Filtering {
    /// Any IPv4 host may send to a mapped address and port (REQ-8's recommendation for
    /// applications' transparency).
    #[default]
    EndpointIndependent,
    /// Only IPv4 hosts the IPv6 host has sent to (any port of theirs).
    AddressDependent,
}

/// Per-block limits (RFC 6888 REQ-4, REQ-5): a customer over one is refused with ICMPv6
/// Destination Unreachable 1/1; no session of anyone is ever evicted (REQ-11).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Live sessions a block may hold (every protocol and state counts).
    pub max_sessions_per_block: u32,
    /// New sessions a block may open per second; 0 = unlimited.
    pub new_sessions_per_second: u32,
    /// Destination ports (TCP and UDP) no new session may go to, e.g. 25 against spam.
    pub refuse_ports: Vec<u16>,
}

impl Default for Limits {
    /// 2000 sessions per block, no rate limit, no refused port.
    fn default() -> Self {
        Limits {
            max_sessions_per_block: 2000,
            new_sessions_per_second: 0,
            refuse_ports: Vec::new(),
        }
    }
}

/// Everything a [`super::Nat64`] needs. Build with [`StatefulConfig::new`] and adjust fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatefulConfig {
    /// Pool4, ports and customers.
    pub layout: Layout,
    /// Session lifetimes.
    pub timeouts: Timeouts,
    /// Inbound filtering.
    pub filtering: Filtering,
    /// Per-block limits.
    pub limits: Limits,
    /// Sessions the table holds in all: its memory is taken at construction.
    pub capacity: u32,
    /// Queue a [`super::MappingEvent`] when a block is first used and when it is freed.
    pub log_mappings: bool,
    /// Secret mixed into the table's hashes, so remote hosts cannot aim at one chain. Set it from
    /// a random source.
    pub hash_key: u64,
}

impl StatefulConfig {
    /// RFC 6146's timeouts, endpoint-independent filtering, [`Limits::default`], room for
    /// 2 sessions per port of every block (at least 1024), no mapping log.
    pub fn new(layout: Layout) -> Self {
        let ports = u64::from(layout.blocks()) * u64::from(layout.ports_per_block());
        StatefulConfig {
            layout,
            timeouts: Timeouts::RFC6146,
            filtering: Filtering::EndpointIndependent,
            limits: Limits::default(),
            capacity: (2 * ports).clamp(1024, 1 << 24) as u32,
            log_mappings: false,
            hash_key: 0,
        }
    }
}
