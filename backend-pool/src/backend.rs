//! What a backend is: who it is (identity), how much traffic it takes (weight), and whether it
//! serves normally or only when every primary is gone (tier).

use core::fmt;
use core::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::rng::stable_hash;

/// Who a backend is. Health, in-flight counts and Maglev placement are keyed by this, so they
/// survive weight and membership changes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BackendId {
    /// A socket address.
    Addr(SocketAddr),
    /// A name (host name, pod name, anything stable).
    Name(Arc<str>),
}

impl BackendId {
    /// An identity by name.
    pub fn name(name: &str) -> Self {
        Self::Name(Arc::from(name))
    }

    /// The same value in every process: Maglev places backends by it.
    pub(crate) fn stable_hash(&self) -> u64 {
        match self {
            Self::Addr(addr) => {
                // tag, 16 address bytes, 2 port bytes: v4 and v6 never collide.
                let mut buf = [0u8; 19];
                match addr.ip() {
                    IpAddr::V4(ip) => {
                        buf[0] = 4;
                        buf[1..5].copy_from_slice(&ip.octets());
                    }
                    IpAddr::V6(ip) => {
                        buf[0] = 6;
                        buf[1..17].copy_from_slice(&ip.octets());
                    }
                }
                buf[17..].copy_from_slice(&addr.port().to_be_bytes());
                stable_hash(&buf, 0x6164_6472)
            }
            Self::Name(name) => stable_hash(name.as_bytes(), 0x6e61_6d65),
        }
    }
}

impl From<SocketAddr> for BackendId {
    fn from(addr: SocketAddr) -> Self {
        Self::Addr(addr)
    }
}

impl From<&str> for BackendId {
    fn from(name: &str) -> Self {
        Self::name(name)
    }
}

impl fmt::Display for BackendId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Addr(addr) => addr.fmt(f),
            Self::Name(name) => f.write_str(name),
        }
    }
}

/// Which group a backend serves in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Tier {
    /// Takes traffic normally.
    #[default]
    Primary,
    /// Takes traffic only when no primary is healthy.
    Backup,
}

impl Tier {
    pub(crate) const fn index(self) -> usize {
        match self {
            Self::Primary => 0,
            Self::Backup => 1,
        }
    }
}

/// One backend as the pool sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// Who it is.
    pub id: BackendId,
    /// Its share of traffic relative to the others in its tier; 0 drains it (never picked, not
    /// even on retry).
    pub weight: u32,
    /// Primary or backup.
    pub tier: Tier,
}

impl Backend {
    /// A primary backend.
    pub fn new(id: impl Into<BackendId>, weight: u32) -> Self {
        Self {
            id: id.into(),
            weight,
            tier: Tier::Primary,
        }
    }

    /// The same backend in the backup tier.
    pub fn backup(mut self) -> Self {
        self.tier = Tier::Backup;
        self
    }

    /// Weight 0: never picked.
    pub fn is_drained(&self) -> bool {
        self.weight == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_hash_separates_families_and_names() {
        let v4: SocketAddr = "192.0.2.1:443".parse().unwrap();
        let v6: SocketAddr = "[::ffff:192.0.2.1]:443".parse().unwrap();
        let a = BackendId::from(v4).stable_hash();
        let b = BackendId::from(v6).stable_hash();
        let c = BackendId::name("192.0.2.1:443").stable_hash();
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, BackendId::from(v4).stable_hash());
    }

    #[test]
    fn backend_builders() {
        let b = Backend::new("web-1", 0).backup();
        assert!(b.is_drained());
        assert_eq!(b.tier, Tier::Backup);
        assert_eq!(b.id.to_string(), "web-1");
    }
}
