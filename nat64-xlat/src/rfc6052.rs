//! RFC 6052 IPv4-embedded IPv6 addresses: the algorithmic mapping ("pool6") every SIIT uses when no
//! explicit mapping applies.
//!
//! ```text
//!  PL | 0-------------32--40--48--56--64--72--80--88--96--104---------|
//!  32 |     prefix    |v4(32)         | u | suffix                    |
//!  40 |     prefix        |v4(24)     | u |(8)| suffix                |
//!  48 |     prefix            |v4(16) | u | (16)  | suffix            |
//!  56 |     prefix                |(8)| u |  v4(24)   | suffix        |
//!  64 |     prefix                    | u |   v4(32)      | suffix    |
//!  96 |     prefix                                    |    v4(32)     |
//! ```
//! Bits 64-71 (the "u" octet) are always zero on output and ignored on input, as is the suffix.

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

use crate::prefix::{Ipv4Prefix, Ipv6Prefix, v4};

/// The Well-Known Prefix 64:ff9b::/96 (RFC 6052 §2.1).
pub const WELL_KNOWN_PREFIX: Ipv6Prefix =
    match Ipv6Prefix::new(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96) {
        Ok(p) => p,
        Err(_) => panic!("bad constant"),
    };

/// The local-use prefix 64:ff9b:1::/48 (RFC 8215); unlike the WKP it may embed any IPv4 address.
pub const LOCAL_USE_PREFIX: Ipv6Prefix =
    match Ipv6Prefix::new(Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48) {
        Ok(p) => p,
        Err(_) => panic!("bad constant"),
    };

/// IPv4 ranges the Well-Known Prefix must not carry (RFC 6052 §3.1): RFC 1918 and RFC 5735 §3.
///
/// 14.0.0.0/8 (listed by RFC 5735 as Public Data Networks) is left out: it has been ordinary global
/// unicast space since 2010. Later special-use blocks such as 100.64.0.0/10 (RFC 6598) are not listed
/// by RFC 6052, so they are not here either; pass your own list in [`crate::Config`] to change that.
pub const DEFAULT_NON_GLOBAL: &[Ipv4Prefix] = &[
    v4(0, 0, 0, 0, 8),
    v4(10, 0, 0, 0, 8),
    v4(127, 0, 0, 0, 8),
    v4(169, 254, 0, 0, 16),
    v4(172, 16, 0, 0, 12),
    v4(192, 0, 0, 0, 24),
    v4(192, 0, 2, 0, 24),
    v4(192, 88, 99, 0, 24),
    v4(192, 168, 0, 0, 16),
    v4(198, 18, 0, 0, 15),
    v4(198, 51, 100, 0, 24),
    v4(203, 0, 113, 0, 24),
    v4(224, 0, 0, 0, 4),
    v4(240, 0, 0, 0, 4),
];

/// A prefix cannot serve as an RFC 6052 translation prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pool6Error {
    /// RFC 6052 §2.2 allows only 32, 40, 48, 56, 64 and 96.
    Length(u8),
    /// A /96 prefix must have bits 64-71 (the u octet) zero.
    UOctet,
}

impl fmt::Display for Pool6Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Length(l) => write!(
                f,
                "RFC 6052 prefix length {l} is not one of 32, 40, 48, 56, 64, 96"
            ),
            Self::UOctet => f.write_str("RFC 6052 prefix has bits 64-71 set"),
        }
    }
}

impl core::error::Error for Pool6Error {}

/// An RFC 6052 translation prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool6 {
    prefix: Ipv6Prefix,
}

/// Where the IPv4 address goes for prefix length `len` (RFC 6052 §2.2): its top `hi` bits end at
/// bit 64, the rest start at bit 72, after the u octet. Returns `hi` and the shift of the low part.
const fn split(len: u8) -> (u32, u32) {
    let hi = if len >= 64 { 0 } else { 64 - len as u32 };
    // The low 32 - hi bits end at bit 72 + 32 - hi, which is 24 + hi bits from the right.
    let lo_shift = if len == 96 { 0 } else { 24 + hi };
    (hi, lo_shift)
}

impl Pool6 {
    /// Validates `prefix` as an RFC 6052 prefix.
    pub const fn new(prefix: Ipv6Prefix) -> Result<Self, Pool6Error> {
        match prefix.prefix_len() {
            32 | 40 | 48 | 56 | 64 => Ok(Self { prefix }),
            96 => {
                if prefix.addr().octets()[8] != 0 {
                    Err(Pool6Error::UOctet)
                } else {
                    Ok(Self { prefix })
                }
            }
            l => Err(Pool6Error::Length(l)),
        }
    }

    /// The prefix.
    pub const fn prefix(&self) -> Ipv6Prefix {
        self.prefix
    }

    fn is_wkp(&self) -> bool {
        self.prefix == WELL_KNOWN_PREFIX
    }

    /// Embeds `a` (RFC 6052 §2.2). `None` when the WKP would carry a non-global address (§3.1).
    // Always: an out-of-line Option<Ipv6Addr> (align 1) comes back through memory and stalls
    // store forwarding on every packet.
    #[inline(always)]
    pub fn embed(&self, a: Ipv4Addr, non_global: &[Ipv4Prefix]) -> Option<Ipv6Addr> {
        if self.is_wkp() && non_global.iter().any(|p| p.contains(a)) {
            return None;
        }
        let v4 = u128::from(a.to_bits());
        let (hi, lo_shift) = split(self.prefix.prefix_len());
        let high = if hi == 0 { 0 } else { (v4 >> (32 - hi)) << 64 };
        let low = (v4 & u128::from(u32::MAX.checked_shr(hi).unwrap_or(0))) << lo_shift;
        Some(Ipv6Addr::from_bits(
            self.prefix.addr().to_bits() | high | low,
        ))
    }

    /// Extracts the IPv4 address from `a` when it lies in this prefix (RFC 6052 §2.3), ignoring the u
    /// octet and suffix. `None` outside the prefix, or for a non-global address under the WKP.
    // Always: an out-of-line Option<Ipv6Addr> (align 1) comes back through memory and stalls
    // store forwarding on every packet.
    #[inline(always)]
    pub fn extract(&self, a: Ipv6Addr, non_global: &[Ipv4Prefix]) -> Option<Ipv4Addr> {
        if !self.prefix.contains(a) {
            return None;
        }
        let bits = a.to_bits();
        let (hi, lo_shift) = split(self.prefix.prefix_len());
        let high = if hi == 0 {
            0
        } else {
            ((bits >> 64) as u32 & (u32::MAX >> (32 - hi))) << (32 - hi)
        };
        let low = (bits >> lo_shift) as u32 & u32::MAX.checked_shr(hi).unwrap_or(0);
        let v4 = Ipv4Addr::from_bits(high | low);
        if self.is_wkp() && non_global.iter().any(|p| p.contains(v4)) {
            return None;
        }
        Some(v4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(s: &str) -> Pool6 {
        Pool6::new(s.parse().unwrap()).unwrap()
    }

    const HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 33);

    // RFC 6052 §2.4, table 2: 192.0.2.33 under every prefix length.
    #[test]
    fn rfc6052_section_2_4_examples() {
        let rows = [
            ("2001:db8::/32", "2001:db8:c000:221::"),
            ("2001:db8:100::/40", "2001:db8:1c0:2:21::"),
            ("2001:db8:122::/48", "2001:db8:122:c000:2:2100::"),
            ("2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"),
            ("2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"),
            ("2001:db8:122:344::/96", "2001:db8:122:344::192.0.2.33"),
            ("64:ff9b::/96", "64:ff9b::192.0.2.33"),
        ];
        for (prefix, want) in rows {
            let p = pool(prefix);
            let want: Ipv6Addr = want.parse().unwrap();
            // 192.0.2.33 is documentation space, non-global: use an empty list to test the layout.
            assert_eq!(p.embed(HOST, &[]), Some(want), "{prefix}");
            assert_eq!(p.extract(want, &[]), Some(HOST), "{prefix}");
        }
    }

    #[test]
    fn u_octet_and_suffix_ignored_on_receive() {
        let p = pool("2001:db8:100::/40");
        let noisy: Ipv6Addr = "2001:db8:1c0:2:ff21:ffff:ffff:ffff".parse().unwrap();
        assert_eq!(p.extract(noisy, &[]), Some(HOST));
        let p = pool("2001:db8:122:344::/64");
        let noisy: Ipv6Addr = "2001:db8:122:344:ffc0:2:21ff:ffff".parse().unwrap();
        assert_eq!(p.extract(noisy, &[]), Some(HOST));
    }

    #[test]
    fn outside_prefix_is_not_extracted() {
        let p = pool("2001:db8:100::/40");
        assert_eq!(p.extract("2001:db8:200::1".parse().unwrap(), &[]), None);
    }

    #[test]
    fn well_known_prefix_refuses_non_global() {
        let p = Pool6::new(WELL_KNOWN_PREFIX).unwrap();
        for a in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "0.1.2.3",
            "169.254.1.1",
            "224.0.0.1",
        ] {
            let a: Ipv4Addr = a.parse().unwrap();
            assert_eq!(p.embed(a, DEFAULT_NON_GLOBAL), None, "{a}");
            let mut o = [0u8; 16];
            o[..4].copy_from_slice(&[0, 0x64, 0xff, 0x9b]);
            o[12..].copy_from_slice(&a.octets());
            assert_eq!(
                p.extract(Ipv6Addr::from(o), DEFAULT_NON_GLOBAL),
                None,
                "{a}"
            );
        }
        // 100.64.0.0/10 is not in RFC 6052's list.
        let cgn = Ipv4Addr::new(100, 64, 0, 1);
        assert!(p.embed(cgn, DEFAULT_NON_GLOBAL).is_some());
        // The list is configurable.
        let custom = [v4(100, 64, 0, 0, 10)];
        assert_eq!(p.embed(cgn, &custom), None);
        assert!(p.embed(Ipv4Addr::new(10, 0, 0, 1), &custom).is_some());
        assert!(
            p.embed(Ipv4Addr::new(8, 8, 8, 8), DEFAULT_NON_GLOBAL)
                .is_some()
        );
    }

    #[test]
    fn rfc8215_local_use_prefix_carries_anything() {
        let p = Pool6::new(LOCAL_USE_PREFIX).unwrap();
        let a = Ipv4Addr::new(10, 1, 2, 3);
        let v6 = p.embed(a, DEFAULT_NON_GLOBAL).unwrap();
        assert_eq!(v6, "64:ff9b:1:a01:2:300::".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.extract(v6, DEFAULT_NON_GLOBAL), Some(a));
    }

    proptest::proptest! {
        // Embed then extract gives the address back for every prefix length, whatever the u octet
        // and suffix bits hold on the way in (RFC 6052 §2.2-2.3).
        #[test]
        fn embed_extract_round_trip(len_idx in 0usize..6, v4 in proptest::prelude::any::<u32>(), noise in proptest::prelude::any::<u128>()) {
            let len = [32u8, 40, 48, 56, 64, 96][len_idx];
            let prefix = Ipv6Prefix::new(Ipv6Addr::from_bits(0x2001_0db8_1234_5678_00bc_def0_0000_0000 & (u128::MAX << (128 - u32::from(len)))), len).unwrap();
            let p = Pool6::new(prefix).unwrap();
            let a = Ipv4Addr::from_bits(v4);
            let v6 = p.embed(a, &[]).unwrap();
            proptest::prop_assert_eq!(v6.octets()[8], 0, "u octet zero");
            proptest::prop_assert_eq!(p.extract(v6, &[]), Some(a));
            // Noise in bits 64-71 and in the suffix is ignored.
            let mut o = v6.octets();
            let n = noise.to_be_bytes();
            if len < 96 {
                o[8] = n[8]; // for /96 the u octet is part of the prefix
            }
            let used: [usize; 4] = match len { 32 => [4, 5, 6, 7], 40 => [5, 6, 7, 9], 48 => [6, 7, 9, 10], 56 => [7, 9, 10, 11], 64 => [9, 10, 11, 12], _ => [12, 13, 14, 15] };
            for i in (usize::from(len) / 8).max(9)..16 {
                if !used.contains(&i) {
                    o[i] = n[i];
                }
            }
            proptest::prop_assert_eq!(p.extract(Ipv6Addr::from(o), &[]), Some(a));
        }
    }

    #[test]
    fn invalid_prefixes() {
        assert_eq!(
            Pool6::new("2001:db8::/36".parse().unwrap()),
            Err(Pool6Error::Length(36))
        );
        assert_eq!(
            Pool6::new("2001:db8:0:0:100::/96".parse().unwrap()),
            Err(Pool6Error::UOctet)
        );
    }
}
