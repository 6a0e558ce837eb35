//! The address block: IPv4, IPv6, UNIX or none.

use core::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::layout::{block_len, family};

/// The source and destination a header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Addresses<'a> {
    /// No addresses (v2 `AF_UNSPEC`, v1 `UNKNOWN`, or a LOCAL header that sent none).
    Unspec,
    /// IPv4 (`TCP4`, v2 family `0x1`).
    Ipv4 {
        /// The client.
        src: SocketAddrV4,
        /// What the client connected to.
        dst: SocketAddrV4,
    },
    /// IPv6 (`TCP6`, v2 family `0x2`).
    Ipv6 {
        /// The client.
        src: SocketAddrV6,
        /// What the client connected to.
        dst: SocketAddrV6,
    },
    /// UNIX socket paths (v2 family `0x3`): the bytes before the first NUL, or all 108.
    Unix {
        /// The client's path.
        src: &'a [u8],
        /// The listening path.
        dst: &'a [u8],
    },
}

impl Addresses<'_> {
    /// A source/destination pair, whatever their families: when they differ, the IPv4 one is
    /// written v4-mapped (`::ffff:a.b.c.d`) and both travel as IPv6, as HAProxy does.
    pub fn from_pair(src: SocketAddr, dst: SocketAddr) -> Self {
        match (src, dst) {
            (SocketAddr::V4(src), SocketAddr::V4(dst)) => Addresses::Ipv4 { src, dst },
            (src, dst) => Addresses::Ipv6 {
                src: to_v6(src),
                dst: to_v6(dst),
            },
        }
    }

    /// The source as a socket address (IPv4 and IPv6 only).
    pub fn source(&self) -> Option<SocketAddr> {
        match *self {
            Addresses::Ipv4 { src, .. } => Some(SocketAddr::V4(src)),
            Addresses::Ipv6 { src, .. } => Some(SocketAddr::V6(src)),
            _ => None,
        }
    }

    /// The destination as a socket address (IPv4 and IPv6 only).
    pub fn destination(&self) -> Option<SocketAddr> {
        match *self {
            Addresses::Ipv4 { dst, .. } => Some(SocketAddr::V4(dst)),
            Addresses::Ipv6 { dst, .. } => Some(SocketAddr::V6(dst)),
            _ => None,
        }
    }

    /// The v2 address family nibble: 0 UNSPEC, 1 INET, 2 INET6, 3 UNIX.
    pub(crate) fn family_nibble(&self) -> u8 {
        match self {
            Addresses::Unspec => family::UNSPEC,
            Addresses::Ipv4 { .. } => family::INET,
            Addresses::Ipv6 { .. } => family::INET6,
            Addresses::Unix { .. } => family::UNIX,
        }
    }

    /// The v2 address block's length.
    pub(crate) fn v2_len(&self) -> usize {
        block_len(self.family_nibble()).unwrap_or(0)
    }
}

impl From<(SocketAddr, SocketAddr)> for Addresses<'_> {
    fn from((src, dst): (SocketAddr, SocketAddr)) -> Self {
        Addresses::from_pair(src, dst)
    }
}

fn to_v6(addr: SocketAddr) -> SocketAddrV6 {
    match addr {
        SocketAddr::V6(v6) => v6,
        SocketAddr::V4(v4) => SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0),
    }
}

/// An IP address as v6, v4-mapped when it is v4 (for lenient v1 lines that mix families).
pub(crate) fn ip_to_v6(ip: IpAddr) -> core::net::Ipv6Addr {
    match ip {
        IpAddr::V6(v6) => v6,
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
    }
}
