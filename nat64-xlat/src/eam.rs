//! RFC 7757 Explicit Address Mappings: an IPv4 prefix paired with an IPv6 prefix, consulted before
//! RFC 6052, longest match first.
//!
//! The suffixes may differ in length (RFC 7757 §3.2): the IPv4 suffix bits are copied most
//! significant first to the top of the IPv6 suffix, whose extra low bits are zero going to IPv6 and
//! ignored coming back. An IPv4 suffix longer than the IPv6 one would lose bits, so it is refused.

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

use crate::prefix::{Ipv4Prefix, Ipv6Prefix};

/// Two prefixes cannot form an explicit address mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EamError {
    /// The IPv4 suffix (32 − IPv4 prefix length) is longer than the IPv6 suffix (128 − IPv6 prefix
    /// length): distinct IPv4 addresses would map to the same IPv6 address.
    Ipv4SuffixLonger {
        /// Bits of IPv4 suffix.
        v4_suffix: u8,
        /// Bits of IPv6 suffix.
        v6_suffix: u8,
    },
}

impl fmt::Display for EamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ipv4SuffixLonger {
                v4_suffix,
                v6_suffix,
            } => write!(
                f,
                "EAM IPv4 suffix of {v4_suffix} bits does not fit the IPv6 suffix of {v6_suffix} bits"
            ),
        }
    }
}

impl core::error::Error for EamError {}

/// One explicit address mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eam {
    v4: Ipv4Prefix,
    v6: Ipv6Prefix,
}

impl Eam {
    /// Pairs two prefixes, if every address of the IPv4 one has its own IPv6 address (RFC 7757
    /// §3.2: the IPv4 suffix must not be longer than the IPv6 suffix).
    pub const fn new(v4: Ipv4Prefix, v6: Ipv6Prefix) -> Result<Self, EamError> {
        let v4_suffix = 32 - v4.prefix_len();
        let v6_suffix = 128 - v6.prefix_len();
        if v4_suffix > v6_suffix {
            return Err(EamError::Ipv4SuffixLonger {
                v4_suffix,
                v6_suffix,
            });
        }
        Ok(Self { v4, v6 })
    }

    /// One address to one address: how the stateful translator names a session's two ends.
    #[cfg(feature = "alloc")]
    pub(crate) const fn host(v4: Ipv4Addr, v6: Ipv6Addr) -> Self {
        Self {
            v4: Ipv4Prefix::host(v4),
            v6: Ipv6Prefix::host(v6),
        }
    }

    /// The IPv4 side.
    pub const fn v4(&self) -> Ipv4Prefix {
        self.v4
    }

    /// The IPv6 side.
    pub const fn v6(&self) -> Ipv6Prefix {
        self.v6
    }

    fn to_v6(self, a: Ipv4Addr) -> Ipv6Addr {
        let l4 = u32::from(self.v4.prefix_len());
        let l6 = u32::from(self.v6.prefix_len());
        let suffix4 = if l4 == 32 { 0 } else { a.to_bits() << l4 };
        // Place the IPv4 suffix (left-aligned in 32 bits) right after the IPv6 prefix.
        let wide = u128::from(suffix4) << 96;
        let suffix6 = if l6 == 128 { 0 } else { wide >> l6 };
        Ipv6Addr::from_bits(self.v6.addr().to_bits() | suffix6)
    }

    fn to_v4(self, a: Ipv6Addr) -> Ipv4Addr {
        let l4 = u32::from(self.v4.prefix_len());
        let l6 = u32::from(self.v6.prefix_len());
        let suffix6 = if l6 == 128 { 0 } else { a.to_bits() << l6 };
        let top = (suffix6 >> 96) as u32;
        let suffix4 = if l4 == 32 { 0 } else { top >> l4 };
        Ipv4Addr::from_bits(self.v4.addr().to_bits() | suffix4)
    }
}

/// Longest-prefix-match lookups over a slice of [`Eam`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct EamTable<'a> {
    entries: &'a [Eam],
}

impl<'a> EamTable<'a> {
    /// A table over `entries` (order does not matter).
    pub const fn new(entries: &'a [Eam]) -> Self {
        Self { entries }
    }

    /// The IPv6 address of `a`, by the entry whose IPv4 prefix matches longest.
    // Always: see `Config::map_4to6`.
    #[inline(always)]
    pub fn to_v6(&self, a: Ipv4Addr) -> Option<Ipv6Addr> {
        self.entries
            .iter()
            .filter(|e| e.v4.contains(a))
            .max_by_key(|e| e.v4.prefix_len())
            .map(|e| e.to_v6(a))
    }

    /// The IPv4 address of `a`, by the entry whose IPv6 prefix matches longest.
    // Always: see `Config::map_4to6`.
    #[inline(always)]
    pub fn to_v4(&self, a: Ipv6Addr) -> Option<Ipv4Addr> {
        self.entries
            .iter()
            .filter(|e| e.v6.contains(a))
            .max_by_key(|e| e.v6.prefix_len())
            .map(|e| e.to_v4(a))
    }

    /// Whether some entry's IPv4 prefix holds `a` (the hairpinning test of RFC 7757 §4.2).
    pub fn covers_v4(&self, a: Ipv4Addr) -> bool {
        self.entries.iter().any(|e| e.v4.contains(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eam(v4: &str, v6: &str) -> Eam {
        Eam::new(v4.parse().unwrap(), v6.parse().unwrap()).unwrap()
    }

    fn a4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn a6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    // RFC 7757 §3.2 and appendix A style: equal suffix lengths map bit for bit.
    #[test]
    fn equal_suffixes() {
        let t = [eam("192.0.2.0/24", "2001:db8:aaaa::/120")];
        let t = EamTable::new(&t);
        assert_eq!(t.to_v6(a4("192.0.2.1")), Some(a6("2001:db8:aaaa::1")));
        assert_eq!(t.to_v4(a6("2001:db8:aaaa::ff")), Some(a4("192.0.2.255")));
        assert_eq!(t.to_v4(a6("2001:db8:aaaa::100")), None);
        assert_eq!(t.to_v6(a4("192.0.3.1")), None);
    }

    #[test]
    fn single_addresses() {
        let t = [eam("192.0.2.1/32", "2001:db8:aaaa::5/128")];
        let t = EamTable::new(&t);
        assert_eq!(t.to_v6(a4("192.0.2.1")), Some(a6("2001:db8:aaaa::5")));
        assert_eq!(t.to_v4(a6("2001:db8:aaaa::5")), Some(a4("192.0.2.1")));
    }

    // IPv6 suffix longer than IPv4's: the IPv4 suffix goes to the top of it, the rest is zero, and
    // on the way back the low bits are ignored.
    #[test]
    fn longer_ipv6_suffix() {
        let t = [eam("198.51.100.0/24", "2001:db8:1c6:3364::/72")];
        let t = EamTable::new(&t);
        assert_eq!(
            t.to_v6(a4("198.51.100.2")),
            Some(a6("2001:db8:1c6:3364:2::"))
        );
        assert_eq!(
            t.to_v4(a6("2001:db8:1c6:3364:2:ffff::1")),
            Some(a4("198.51.100.2"))
        );
    }

    // IPv4 suffix longer than IPv6's: distinct IPv4 addresses would share an IPv6 address, so the
    // pair is refused (RFC 7757 §3.2); equal suffixes are the limit.
    #[test]
    fn longer_ipv4_suffix_refused() {
        let e = Eam::new(
            "10.0.0.0/16".parse().unwrap(),
            "2001:db8::/120".parse().unwrap(),
        );
        assert_eq!(
            e,
            Err(EamError::Ipv4SuffixLonger {
                v4_suffix: 16,
                v6_suffix: 8
            })
        );
        assert!(
            Eam::new("0.0.0.0/0".parse().unwrap(), "::/97".parse().unwrap()).is_err(),
            "32 bits into 31"
        );
        assert!(Eam::new("0.0.0.0/0".parse().unwrap(), "::/96".parse().unwrap()).is_ok());
        assert!(
            Eam::new(
                "10.0.0.0/24".parse().unwrap(),
                "2001:db8::/120".parse().unwrap()
            )
            .is_ok()
        );
    }

    #[test]
    fn longest_match_wins_whatever_the_order() {
        let t = [
            eam("10.0.0.0/8", "2001:db8:1::/104"),
            eam("10.1.0.0/16", "2001:db8:2::/112"),
            eam("10.1.2.3/32", "2001:db8:3::1/128"),
        ];
        let t = EamTable::new(&t);
        assert_eq!(t.to_v6(a4("10.1.2.3")), Some(a6("2001:db8:3::1")));
        assert_eq!(t.to_v6(a4("10.1.2.4")), Some(a6("2001:db8:2::204")));
        assert_eq!(t.to_v6(a4("10.2.0.1")), Some(a6("2001:db8:1::2:1")));
        assert_eq!(t.to_v4(a6("2001:db8:3::1")), Some(a4("10.1.2.3")));
        assert!(t.covers_v4(a4("10.9.9.9")));
        assert!(!t.covers_v4(a4("11.0.0.0")));
    }
}
