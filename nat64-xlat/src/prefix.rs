//! IPv4 and IPv6 prefixes (address + length), as used by every address-mapping table.

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};
use core::str::FromStr;

/// A prefix was malformed: bad address, length out of range, or host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PrefixError {
    /// The text is not `address/length` or `address`.
    Syntax,
    /// The length exceeds 32 (IPv4) or 128 (IPv6).
    Length {
        /// The length given.
        got: u8,
        /// The largest allowed.
        max: u8,
    },
    /// Bits beyond the prefix length are set.
    HostBits,
}

impl fmt::Display for PrefixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax => f.write_str("prefix is not ADDRESS[/LENGTH]"),
            Self::Length { got, max } => write!(f, "prefix length {got} exceeds {max}"),
            Self::HostBits => f.write_str("prefix has bits set beyond its length"),
        }
    }
}

impl core::error::Error for PrefixError {}

/// An IPv4 prefix such as `192.0.2.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Prefix {
    addr: Ipv4Addr,
    len: u8,
}

/// An IPv6 prefix such as `64:ff9b::/96`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Prefix {
    addr: Ipv6Addr,
    len: u8,
}

fn mask32(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

fn mask128(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    }
}

impl Ipv4Prefix {
    /// The /32 of one address.
    pub(crate) const fn host(addr: Ipv4Addr) -> Self {
        Self { addr, len: 32 }
    }

    /// A prefix; fails when `len > 32` or bits beyond `len` are set.
    pub const fn new(addr: Ipv4Addr, len: u8) -> Result<Self, PrefixError> {
        if len > 32 {
            return Err(PrefixError::Length { got: len, max: 32 });
        }
        let bits = addr.to_bits();
        let mask = if len == 0 {
            0
        } else {
            u32::MAX << (32 - len as u32)
        };
        if bits & !mask != 0 {
            return Err(PrefixError::HostBits);
        }
        Ok(Self { addr, len })
    }

    /// The network address.
    pub const fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length in bits.
    pub const fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether `a` lies inside this prefix.
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        (a.to_bits() ^ self.addr.to_bits()) & mask32(self.len) == 0
    }

    /// Number of addresses, saturating at `u32::MAX` for `/0`.
    pub fn size(&self) -> u32 {
        if self.len == 0 {
            u32::MAX
        } else {
            1u32 << (32 - u32::from(self.len))
        }
    }
}

impl Ipv6Prefix {
    /// The /128 of one address.
    pub(crate) const fn host(addr: Ipv6Addr) -> Self {
        Self { addr, len: 128 }
    }

    /// A prefix; fails when `len > 128` or bits beyond `len` are set.
    pub const fn new(addr: Ipv6Addr, len: u8) -> Result<Self, PrefixError> {
        if len > 128 {
            return Err(PrefixError::Length { got: len, max: 128 });
        }
        let bits = addr.to_bits();
        let mask = if len == 0 {
            0
        } else {
            u128::MAX << (128 - len as u32)
        };
        if bits & !mask != 0 {
            return Err(PrefixError::HostBits);
        }
        Ok(Self { addr, len })
    }

    /// The network address.
    pub const fn addr(&self) -> Ipv6Addr {
        self.addr
    }

    /// The prefix length in bits.
    pub const fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether `a` lies inside this prefix.
    pub fn contains(&self, a: Ipv6Addr) -> bool {
        (a.to_bits() ^ self.addr.to_bits()) & mask128(self.len) == 0
    }
}

fn split_len(s: &str) -> Result<(&str, Option<u8>), PrefixError> {
    match s.split_once('/') {
        None => Ok((s, None)),
        Some((a, l)) => {
            let len = l.parse::<u8>().map_err(|_| PrefixError::Syntax)?;
            Ok((a, Some(len)))
        }
    }
}

impl FromStr for Ipv4Prefix {
    type Err = PrefixError;
    /// `a.b.c.d/len`, or a bare address meaning `/32`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, len) = split_len(s)?;
        let addr = a.parse::<Ipv4Addr>().map_err(|_| PrefixError::Syntax)?;
        Self::new(addr, len.unwrap_or(32))
    }
}

impl FromStr for Ipv6Prefix {
    type Err = PrefixError;
    /// `addr/len`, or a bare address meaning `/128`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, len) = split_len(s)?;
        let addr = a.parse::<Ipv6Addr>().map_err(|_| PrefixError::Syntax)?;
        Self::new(addr, len.unwrap_or(128))
    }
}

impl fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Builds a constant IPv4 prefix; panics at compile time when malformed.
pub(crate) const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Prefix {
    match Ipv4Prefix::new(Ipv4Addr::new(a, b, c, d), len) {
        Ok(p) => p,
        Err(_) => panic!("bad constant prefix"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_contains() {
        let p: Ipv4Prefix = "10.0.0.0/8".parse().unwrap();
        assert!(p.contains(Ipv4Addr::new(10, 255, 1, 2)));
        assert!(!p.contains(Ipv4Addr::new(11, 0, 0, 0)));
        let q: Ipv6Prefix = "2001:db8::/32".parse().unwrap();
        assert!(q.contains("2001:db8:1::1".parse().unwrap()));
        assert!(!q.contains("2001:db9::".parse().unwrap()));
        assert_eq!("2::2".parse::<Ipv6Prefix>().unwrap().prefix_len(), 128);
        assert_eq!("0.0.0.0/0".parse::<Ipv4Prefix>().unwrap().size(), u32::MAX);
        assert_eq!("203.0.113.8/32".parse::<Ipv4Prefix>().unwrap().size(), 1);
        assert_eq!("203.0.113.0/24".parse::<Ipv4Prefix>().unwrap().size(), 256);
    }

    #[test]
    fn rejects_bad_prefixes() {
        assert_eq!(
            "10.0.0.1/8".parse::<Ipv4Prefix>(),
            Err(PrefixError::HostBits)
        );
        assert_eq!(
            "10.0.0.0/33".parse::<Ipv4Prefix>(),
            Err(PrefixError::Length { got: 33, max: 32 })
        );
        assert_eq!(
            "::/129".parse::<Ipv6Prefix>(),
            Err(PrefixError::Length { got: 129, max: 128 })
        );
        assert_eq!("10.0.0/8".parse::<Ipv4Prefix>(), Err(PrefixError::Syntax));
        assert_eq!("10.0.0.0/x".parse::<Ipv4Prefix>(), Err(PrefixError::Syntax));
    }
}
