//! The deterministic port blocks of RFC 7422: which IPv4 address and ports each customer's
//! sub-prefix owns, as a pure function of the configuration, so an abuse desk holding the
//! configuration can name the customer behind "address:port at time T" without a log.

use alloc::vec::Vec;
use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};
use core::ops::RangeInclusive;

use crate::prefix::{Ipv4Prefix, Ipv6Prefix};

/// Most pool4 addresses a layout takes: a /16.
pub const MAX_POOL4_ADDRESSES: u32 = 1 << 16;

/// Most blocks (customer sub-prefixes) a layout takes: each costs a few bytes of state.
pub const MAX_BLOCKS: u64 = 1 << 24;

/// One customer's block: its IPv6 sub-prefix, and the IPv4 address and ports it owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The block's number n: sub-prefixes are numbered in the order of the customer list, and
    /// ascending within each prefix.
    pub index: u32,
    /// The customer's sub-prefix.
    pub prefix: Ipv6Prefix,
    /// The IPv4 address its sessions use.
    pub addr: Ipv4Addr,
    /// The ports its sessions use on that address.
    pub ports: RangeInclusive<u16>,
}

/// Why a layout was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LayoutError {
    /// `pool4` is empty.
    NoPool4,
    /// `customers` is empty.
    NoCustomers,
    /// More than [`MAX_POOL4_ADDRESSES`] pool4 addresses.
    Pool4TooLarge(u64),
    /// A pool4 prefix holds addresses no translator may use (0/8, 127/8, 169.254/16, 224/4, 240/4).
    Pool4Reserved(Ipv4Prefix),
    /// Two pool4 prefixes overlap.
    Pool4Overlap(Ipv4Prefix, Ipv4Prefix),
    /// Two customer prefixes overlap.
    CustomersOverlap(Ipv6Prefix, Ipv6Prefix),
    /// The port range is empty.
    Ports,
    /// `ports_per_block` is zero or larger than the port range.
    PortsPerBlock {
        /// Configured.
        ports_per_block: u16,
        /// Ports in the range.
        range: u32,
    },
    /// `block_prefix_len` is shorter than a customer prefix (a block would span customers) or
    /// longer than 128.
    BlockPrefixLen {
        /// Configured.
        block_prefix_len: u8,
        /// The customer prefix it does not fit.
        customer: Ipv6Prefix,
    },
    /// More than [`MAX_BLOCKS`] customer sub-prefixes.
    TooManyBlocks(u64),
    /// The customers' sub-prefixes outnumber the blocks the pool holds.
    TooFew {
        /// Blocks the pool holds: pool4 addresses × blocks per address.
        fit: u64,
        /// Sub-prefixes in `customers`.
        needed: u64,
    },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoPool4 => f.write_str("pool4 is empty: stateful NAT64 needs IPv4 addresses"),
            Self::NoCustomers => {
                f.write_str("customers is empty: no IPv6 source would be translated")
            }
            Self::Pool4TooLarge(n) => write!(
                f,
                "pool4 holds {n} addresses; at most {MAX_POOL4_ADDRESSES} (a /16) are supported"
            ),
            Self::Pool4Reserved(p) => write!(
                f,
                "pool4 {}/{} holds addresses that are never translated (0/8, 127/8, 169.254/16, 224/4, 240/4)",
                p.addr(),
                p.prefix_len()
            ),
            Self::Pool4Overlap(a, b) => write!(
                f,
                "pool4 prefixes {}/{} and {}/{} overlap",
                a.addr(),
                a.prefix_len(),
                b.addr(),
                b.prefix_len()
            ),
            Self::CustomersOverlap(a, b) => write!(
                f,
                "customer prefixes {}/{} and {}/{} overlap",
                a.addr(),
                a.prefix_len(),
                b.addr(),
                b.prefix_len()
            ),
            Self::TooManyBlocks(n) => write!(
                f,
                "the customers hold {n} sub-prefixes; at most {MAX_BLOCKS} are supported (use a shorter block_prefix_len)"
            ),
            Self::Ports => f.write_str("the port range is empty"),
            Self::PortsPerBlock {
                ports_per_block,
                range,
            } => write!(
                f,
                "ports_per_block = {ports_per_block} must be between 1 and the {range} ports of the range"
            ),
            Self::BlockPrefixLen {
                block_prefix_len,
                customer,
            } => write!(
                f,
                "block_prefix_len = {block_prefix_len} must be between the customer prefix's length ({}/{}) and 128",
                customer.addr(),
                customer.prefix_len()
            ),
            Self::TooFew { fit, needed } => write!(
                f,
                "the customers hold {needed} sub-prefixes but the pool has blocks for only {fit}: \
                 add pool4 addresses, use fewer ports_per_block or a shorter block_prefix_len"
            ),
        }
    }
}

impl core::error::Error for LayoutError {}

/// The block layout: pool4 addresses and ports, customer prefixes cut into sub-prefixes of
/// `block_prefix_len`, and `ports_per_block` ports each.
///
/// Sub-prefix n (numbered in the order of `customers`, ascending within each prefix) owns pool4
/// address number ⌊n / B⌋ (addresses taken in order, each prefix ascending) and the ports
/// `port_lo + (n mod B) × ports_per_block` up to `ports_per_block − 1` more, where
/// B = ⌊(port_hi − port_lo + 1) / ports_per_block⌋ blocks per address.
///
/// ```
/// use nat64_xlat::stateful::Layout;
///
/// let layout = Layout::new(
///     &["203.0.113.16/29".parse()?],
///     1024..=65535,
///     &["2001:db8:6::/56".parse()?],
///     64,
///     2016,
/// )?;
/// let b = layout.owner("203.0.113.16".parse()?, 3040).unwrap();
/// assert_eq!(b.index, 1);
/// assert_eq!(b.prefix.to_string(), "2001:db8:6:1::/64");
/// assert_eq!(b.ports, 3040..=5055);
/// # Ok::<(), Box<dyn core::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pool4: Vec<Ipv4Prefix>,
    port_lo: u16,
    port_hi: u16,
    customers: Vec<Ipv6Prefix>,
    /// Sub-prefix number at which each customer prefix starts.
    starts: Vec<u64>,
    block_prefix_len: u8,
    ports_per_block: u16,
    per_addr: u32,
    blocks: u32,
}

impl Layout {
    /// Checks and builds a layout.
    pub fn new(
        pool4: &[Ipv4Prefix],
        ports: RangeInclusive<u16>,
        customers: &[Ipv6Prefix],
        block_prefix_len: u8,
        ports_per_block: u16,
    ) -> Result<Self, LayoutError> {
        if pool4.is_empty() {
            return Err(LayoutError::NoPool4);
        }
        if customers.is_empty() {
            return Err(LayoutError::NoCustomers);
        }
        let mut addresses = 0u64;
        for (i, p) in pool4.iter().enumerate() {
            let first = p.addr();
            let last = Ipv4Addr::from_bits(first.to_bits() | (p.size() - 1));
            if crate::mapping::never_translated(first) || crate::mapping::never_translated(last) {
                return Err(LayoutError::Pool4Reserved(*p));
            }
            if let Some(q) = pool4[..i]
                .iter()
                .find(|q| q.contains(first) || p.contains(q.addr()))
            {
                return Err(LayoutError::Pool4Overlap(*q, *p));
            }
            addresses += u64::from(p.size());
        }
        if addresses > u64::from(MAX_POOL4_ADDRESSES) {
            return Err(LayoutError::Pool4TooLarge(addresses));
        }
        let (lo, hi) = (*ports.start(), *ports.end());
        if lo > hi {
            return Err(LayoutError::Ports);
        }
        let range = u32::from(hi) - u32::from(lo) + 1;
        if ports_per_block == 0 || u32::from(ports_per_block) > range {
            return Err(LayoutError::PortsPerBlock {
                ports_per_block,
                range,
            });
        }
        let per_addr = range / u32::from(ports_per_block);
        let mut starts = Vec::with_capacity(customers.len());
        let mut needed = 0u64;
        for (i, c) in customers.iter().enumerate() {
            if block_prefix_len < c.prefix_len() || block_prefix_len > 128 {
                return Err(LayoutError::BlockPrefixLen {
                    block_prefix_len,
                    customer: *c,
                });
            }
            if let Some(o) = customers[..i]
                .iter()
                .find(|o| o.contains(c.addr()) || c.contains(o.addr()))
            {
                return Err(LayoutError::CustomersOverlap(*o, *c));
            }
            starts.push(needed);
            let bits = u32::from(block_prefix_len - c.prefix_len());
            needed = needed.saturating_add(if bits >= 63 { u64::MAX } else { 1 << bits });
        }
        let fit = addresses * u64::from(per_addr);
        if needed > MAX_BLOCKS {
            return Err(LayoutError::TooManyBlocks(needed));
        }
        if needed > fit {
            return Err(LayoutError::TooFew { fit, needed });
        }
        Ok(Self {
            pool4: pool4.to_vec(),
            port_lo: lo,
            port_hi: hi,
            customers: customers.to_vec(),
            starts,
            block_prefix_len,
            ports_per_block,
            per_addr,
            blocks: needed as u32,
        })
    }

    /// Number of blocks in use: the customers' sub-prefixes.
    pub fn blocks(&self) -> u32 {
        self.blocks
    }

    /// Blocks each pool4 address holds (B).
    pub fn blocks_per_address(&self) -> u32 {
        self.per_addr
    }

    /// The pool4 prefixes.
    pub fn pool4(&self) -> &[Ipv4Prefix] {
        &self.pool4
    }

    /// The customer prefixes.
    pub fn customers(&self) -> &[Ipv6Prefix] {
        &self.customers
    }

    /// The whole port range.
    pub fn ports(&self) -> RangeInclusive<u16> {
        self.port_lo..=self.port_hi
    }

    /// Length of each customer sub-prefix.
    pub fn block_prefix_len(&self) -> u8 {
        self.block_prefix_len
    }

    /// Ports in each block.
    pub fn ports_per_block(&self) -> u16 {
        self.ports_per_block
    }

    /// Block number `n`, if there is one.
    pub fn block(&self, n: u32) -> Option<Block> {
        if n >= self.blocks {
            return None;
        }
        let c = self.starts.partition_point(|&s| s <= u64::from(n)) - 1;
        let within = u128::from(u64::from(n) - self.starts[c]);
        let shift = 128 - u32::from(self.block_prefix_len);
        let bits = self.customers[c].addr().to_bits() | within.checked_shl(shift).unwrap_or(0);
        let prefix = Ipv6Prefix::new(Ipv6Addr::from_bits(bits), self.block_prefix_len).ok()?;
        let lo = self.block_first_port(n);
        Some(Block {
            index: n,
            prefix,
            addr: self.address(n / self.per_addr)?,
            ports: lo..=lo + (self.ports_per_block - 1),
        })
    }

    /// The block whose sub-prefix holds `a`; `None` for a source outside `customers`.
    #[inline]
    pub fn block_of(&self, a: Ipv6Addr) -> Option<u32> {
        let c = self.customers.iter().position(|c| c.contains(a))?;
        let host = a.to_bits() & !mask128(self.customers[c].prefix_len());
        let within = host
            .checked_shr(128 - u32::from(self.block_prefix_len))
            .unwrap_or(0);
        Some((self.starts[c] + within as u64) as u32)
    }

    /// The block that owns `port` on `addr`: what an abuse desk asks. `None` when the address is
    /// not in pool4 or no block owns the port.
    pub fn owner(&self, addr: Ipv4Addr, port: u16) -> Option<Block> {
        let mut k = 0u32;
        let mut found = None;
        for p in &self.pool4 {
            if p.contains(addr) {
                found = Some(k + (addr.to_bits() - p.addr().to_bits()));
                break;
            }
            k += p.size();
        }
        let k = found?;
        if port < self.port_lo {
            return None;
        }
        let b = u32::from(port - self.port_lo) / u32::from(self.ports_per_block);
        if b >= self.per_addr {
            return None;
        }
        self.block(k.checked_mul(self.per_addr)?.checked_add(b)?)
    }

    /// The pool4 address of block `n` (no bounds check on `n` against the customers).
    #[inline]
    pub(crate) fn block_address(&self, n: u32) -> Ipv4Addr {
        self.address(n / self.per_addr)
            .unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    /// The first port of block `n`.
    #[inline]
    pub(crate) fn block_first_port(&self, n: u32) -> u16 {
        self.port_lo + (n % self.per_addr) as u16 * self.ports_per_block
    }

    /// The block number of `port` on `addr`, without building the [`Block`].
    #[inline]
    pub(crate) fn block_number(&self, addr: Ipv4Addr, port: u16) -> Option<u32> {
        let mut k = 0u32;
        for p in &self.pool4 {
            if p.contains(addr) {
                let k = k + (addr.to_bits() - p.addr().to_bits());
                let b =
                    u32::from(port.checked_sub(self.port_lo)?) / u32::from(self.ports_per_block);
                let n = k * self.per_addr + b;
                return (b < self.per_addr && n < self.blocks).then_some(n);
            }
            k += p.size();
        }
        None
    }

    /// Whether `a` is a pool4 address.
    #[inline]
    pub fn is_pool4(&self, a: Ipv4Addr) -> bool {
        self.pool4.iter().any(|p| p.contains(a))
    }

    fn address(&self, mut k: u32) -> Option<Ipv4Addr> {
        for p in &self.pool4 {
            if k < p.size() {
                return Some(Ipv4Addr::from_bits(p.addr().to_bits() + k));
            }
            k -= p.size();
        }
        None
    }
}

fn mask128(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    fn v4(s: &str) -> Ipv4Prefix {
        s.parse().unwrap()
    }
    fn v6(s: &str) -> Ipv6Prefix {
        s.parse().unwrap()
    }

    /// The issue's example: a /56 of /64 customers, 2016 ports each, on a /29.
    fn hosting() -> Layout {
        Layout::new(
            &[v4("203.0.113.16/29")],
            1024..=65535,
            &[v6("2001:db8:6::/56")],
            64,
            2016,
        )
        .unwrap()
    }

    #[test]
    fn first_last_and_boundary_blocks() {
        let l = hosting();
        // B = floor(64512 / 2016) = 32 blocks per address; 256 sub-prefixes need 8 addresses.
        assert_eq!(l.blocks_per_address(), 32);
        assert_eq!(l.blocks(), 256);
        let first = l.block(0).unwrap();
        assert_eq!(first.prefix, v6("2001:db8:6::/64"));
        assert_eq!(first.addr, "203.0.113.16".parse::<Ipv4Addr>().unwrap());
        assert_eq!(first.ports, 1024..=3039);
        let last_of_first_addr = l.block(31).unwrap();
        assert_eq!(last_of_first_addr.ports, 1024 + 31 * 2016..=65535);
        let second_addr = l.block(32).unwrap();
        assert_eq!(
            second_addr.addr,
            "203.0.113.17".parse::<Ipv4Addr>().unwrap()
        );
        assert_eq!(second_addr.ports, 1024..=3039);
        assert_eq!(second_addr.prefix, v6("2001:db8:6:20::/64"));
        let last = l.block(255).unwrap();
        assert_eq!(last.prefix, v6("2001:db8:6:ff::/64"));
        assert_eq!(last.addr, "203.0.113.23".parse::<Ipv4Addr>().unwrap());
        assert!(l.block(256).is_none());
    }

    #[test]
    fn owner_inverts_block() {
        let l = hosting();
        for n in [0, 1, 31, 32, 100, 255] {
            let b = l.block(n).unwrap();
            for p in [*b.ports.start(), *b.ports.end()] {
                assert_eq!(l.owner(b.addr, p), Some(b.clone()));
                assert_eq!(l.block_number(b.addr, p), Some(n));
            }
            let host = Ipv6Addr::from_bits(b.prefix.addr().to_bits() | 0x1234);
            assert_eq!(l.block_of(host), Some(n));
        }
        assert_eq!(l.owner("203.0.113.16".parse().unwrap(), 1023), None);
        assert_eq!(l.owner("203.0.113.24".parse().unwrap(), 2000), None);
        assert_eq!(l.block_of("2001:db8:7::1".parse().unwrap()), None);
    }

    #[test]
    fn several_pool_prefixes_and_customers_in_order() {
        // 16,384 customers on 256 addresses, 64 each with 1008 ports: RFC 7422's arithmetic.
        let l = Layout::new(
            &[v4("192.0.2.0/25"), v4("198.51.100.0/25")],
            1024..=65535,
            &[v6("2001:db8:a::/52"), v6("2001:db8:b::/52")],
            64,
            1008,
        )
        .unwrap();
        assert_eq!(l.blocks(), 8192);
        assert_eq!(l.blocks_per_address(), 64);
        let b = l.block(4095).unwrap();
        assert_eq!(b.prefix, v6("2001:db8:a:fff::/64"));
        assert_eq!(b.addr, "192.0.2.63".parse::<Ipv4Addr>().unwrap());
        assert_eq!(b.ports, 1024 + 63 * 1008..=65535);
        let b = l.block(4096).unwrap();
        assert_eq!(b.prefix, v6("2001:db8:b::/64"));
        assert_eq!(b.addr, "192.0.2.64".parse::<Ipv4Addr>().unwrap());
        assert_eq!(b.ports, 1024..=2031);
        let b = l.block(8191).unwrap();
        assert_eq!(b.prefix, v6("2001:db8:b:fff::/64"));
        assert_eq!(b.addr, "192.0.2.127".parse::<Ipv4Addr>().unwrap());
        // The second pool prefix is spare: no block owns its ports yet.
        assert_eq!(l.owner("198.51.100.0".parse().unwrap(), 1024), None);
    }

    #[test]
    fn a_layout_that_does_not_fit_says_how_many_do() {
        let e = Layout::new(
            &[v4("203.0.113.16/30")],
            1024..=65535,
            &[v6("2001:db8:6::/56")],
            64,
            2016,
        )
        .unwrap_err();
        assert_eq!(
            e,
            LayoutError::TooFew {
                fit: 128,
                needed: 256
            }
        );
        assert!(e.to_string().contains("only 128"));
    }

    #[test]
    fn refusals() {
        let c = [v6("2001:db8:6::/56")];
        let p = [v4("203.0.113.0/24")];
        assert_eq!(
            Layout::new(&[], 1024..=65535, &c, 64, 64),
            Err(LayoutError::NoPool4)
        );
        assert_eq!(
            Layout::new(&p, 1024..=65535, &[], 64, 64),
            Err(LayoutError::NoCustomers)
        );
        assert!(matches!(
            Layout::new(&[v4("127.0.0.0/30")], 1024..=65535, &c, 64, 64),
            Err(LayoutError::Pool4Reserved(_))
        ));
        assert!(matches!(
            Layout::new(
                &[v4("203.0.113.0/24"), v4("203.0.113.8/29")],
                1024..=65535,
                &c,
                64,
                64
            ),
            Err(LayoutError::Pool4Overlap(..))
        ));
        assert!(matches!(
            Layout::new(&p, 1024..=65535, &c, 48, 64),
            Err(LayoutError::BlockPrefixLen { .. })
        ));
        assert!(matches!(
            Layout::new(&p, 1024..=2000, &c, 64, 2016),
            Err(LayoutError::PortsPerBlock { .. })
        ));
        assert!(matches!(
            Layout::new(&p, 1024..=65535, &[c[0], v6("2001:db8:6:1::/64")], 64, 64),
            Err(LayoutError::CustomersOverlap(..))
        ));
        assert!(matches!(
            Layout::new(&[v4("10.0.0.0/8")], 1024..=65535, &c, 64, 64),
            Err(LayoutError::Pool4TooLarge(_))
        ));
    }

    #[test]
    fn one_address_many_hosts() {
        // /128 blocks: each host its own ports.
        let l = Layout::new(
            &[v4("192.0.2.1/32")],
            1024..=65535,
            &[v6("2001:db8::/120")],
            128,
            252,
        )
        .unwrap();
        assert_eq!(l.blocks(), 256);
        assert_eq!(l.block_of("2001:db8::ff".parse().unwrap()), Some(255));
        assert_eq!(l.block(255).unwrap().ports, 1024 + 255 * 252..=65535);
    }
}
