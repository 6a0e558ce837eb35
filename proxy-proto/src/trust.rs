//! Who may send a PROXY header: networks ([`Cidr`]) and the [`Policy`] for each ([`TrustPolicy`]).
//!
//! Nothing here reads a socket; the `tokio` reader and any other runtime's glue ask
//! [`TrustPolicy::policy_for`] about the peer before they read. [`Cidr`] and [`Policy`] need
//! neither `std` nor an allocator; [`TrustPolicy`] keeps its rules in a `Vec` and needs `alloc`.
//!
//! ```
//! # #[cfg(feature = "alloc")] {
//! use proxy_proto::{Policy, TrustPolicy};
//!
//! // Our load balancers must send a header; nobody else may.
//! let policy = TrustPolicy::trusted(["192.0.2.0/24".parse().unwrap()]);
//! assert_eq!(policy.policy_for("192.0.2.9".parse().unwrap()), Policy::Require);
//! assert_eq!(policy.policy_for("::ffff:192.0.2.9".parse().unwrap()), Policy::Require);
//! assert_eq!(policy.policy_for("2001:db8::1".parse().unwrap()), Policy::Reject);
//! # }
//! ```

#[cfg(feature = "alloc")]
use alloc::vec::Vec;
use core::fmt;
use core::net::IpAddr;
use core::str::FromStr;

/// What to do about PROXY headers from one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// A header must come first; a connection without one is refused.
    Require,
    /// Take a header if the bytes start with one, else pass them on as the application's.
    Use,
    /// Do not look: every byte is the application's. Nothing is read.
    Ignore,
    /// A header from this source is refused (it could forge any client address).
    Reject,
}

/// An IPv4 or IPv6 network, written `192.0.2.0/24`, `2001:db8::/32`, or as one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The network of `addr` with `prefix` bits; `None` when the prefix is too long. An
    /// IPv4-mapped IPv6 network (`::ffff:192.0.2.0/120`) is the IPv4 network it maps.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), prefix - 96),
                None => (addr, prefix),
            },
            _ => (addr, prefix),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then(|| Cidr {
            network: mask(addr, prefix),
            prefix,
        })
    }

    /// Whether `ip` is inside. An IPv4-mapped IPv6 address (a dual-stack socket's view of an
    /// IPv4 client) matches IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        ip.is_ipv4() == self.network.is_ipv4() && mask(ip, self.prefix) == self.network
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & m).into())
        }
        IpAddr::V6(v6) => {
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & m).into())
        }
    }
}

/// A [`Cidr`] that did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CidrError;

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a network in CIDR notation (192.0.2.0/24, 2001:db8::/32)")
    }
}

impl core::error::Error for CidrError {}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, CidrError> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| CidrError)?;
        let prefix = match prefix {
            None => {
                if addr.is_ipv4() {
                    32
                } else {
                    128
                }
            }
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse().map_err(|_| CidrError)?
            }
            Some(_) => return Err(CidrError),
        };
        Cidr::new(addr, prefix).ok_or(CidrError)
    }
}

/// Which policy applies to which source: the longest matching network wins, else the default.
///
/// The rules are kept in a `Vec`, so this type needs the `alloc` feature (on with `std`).
#[cfg(feature = "alloc")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustPolicy {
    rules: Vec<(Cidr, Policy)>,
    default: Policy,
}

#[cfg(feature = "alloc")]
impl TrustPolicy {
    /// Every source gets `default` until rules are added.
    pub fn new(default: Policy) -> Self {
        TrustPolicy {
            rules: Vec::new(),
            default,
        }
    }

    /// The usual setup: these sources must send a header, nobody else may.
    pub fn trusted(sources: impl IntoIterator<Item = Cidr>) -> Self {
        sources
            .into_iter()
            .fold(Self::new(Policy::Reject), |p, cidr| {
                p.rule(cidr, Policy::Require)
            })
    }

    /// Applies `policy` to sources in `cidr`.
    #[must_use]
    pub fn rule(mut self, cidr: Cidr, policy: Policy) -> Self {
        self.rules.push((cidr, policy));
        self
    }

    /// The policy for a peer.
    pub fn policy_for(&self, peer: IpAddr) -> Policy {
        self.rules
            .iter()
            .filter(|(cidr, _)| cidr.contains(peer))
            .max_by_key(|(cidr, _)| cidr.prefix())
            .map_or(self.default, |&(_, policy)| policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parse_and_contains() {
        let c: Cidr = "192.0.2.77/24".parse().unwrap();
        assert!(c.contains("192.0.2.1".parse().unwrap()));
        assert!(
            c.contains("::ffff:192.0.2.1".parse().unwrap()),
            "dual-stack sockets see v4-mapped peers"
        );
        assert!(!c.contains("192.0.3.1".parse().unwrap()));
        assert!(!c.contains("2001:db8::1".parse().unwrap()));
        let mapped: Cidr = "::ffff:192.0.2.0/120".parse().unwrap();
        assert!(
            mapped.contains("192.0.2.9".parse().unwrap())
                && mapped.contains("::ffff:192.0.2.9".parse().unwrap())
        );
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(
            "0.0.0.0/0"
                .parse::<Cidr>()
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert_eq!("10.0.0.1".parse::<Cidr>().unwrap().prefix(), 32);
        for bad in [
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "nope",
            "10.0.0.0/8/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn longest_prefix_wins() {
        let p = TrustPolicy::new(Policy::Reject)
            .rule("10.0.0.0/8".parse().unwrap(), Policy::Require)
            .rule("10.1.0.0/16".parse().unwrap(), Policy::Use);
        assert_eq!(
            p.policy_for("10.1.2.3".parse().unwrap()),
            Policy::Use,
            "longest prefix wins"
        );
        assert_eq!(p.policy_for("10.2.2.3".parse().unwrap()), Policy::Require);
        assert_eq!(p.policy_for("11.0.0.1".parse().unwrap()), Policy::Reject);
    }
}
