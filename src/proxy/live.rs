//! What a change swaps in one piece — listeners' settings, limits and the route table — and
//! what every connection of a server shares.

use core::net::SocketAddr;
use core::sync::atomic::AtomicU64;
use core::time::Duration;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use proxy_proto::TrustPolicy;

use super::pools::PendingUpdates;
use super::table::RouteTable;
use super::{Config, Error, Limits, Listener, Mode, Observer, Route};

/// The running configuration: immutable, replaced whole.
pub(crate) struct Live {
    pub(crate) listeners: Vec<Listener>,
    pub(crate) limits: Limits,
    pub(crate) table: RouteTable,
    /// Each configured address's settings.
    pub(crate) by_address: HashMap<SocketAddr, Arc<ListenerState>>,
}

/// A listener's settings, as each of its connections needs them.
pub(crate) struct ListenerState {
    /// Its place in the configuration, which routes bind to.
    pub(crate) index: u32,
    /// The configured address (port 0 until bound).
    pub(crate) address: SocketAddr,
    pub(crate) mode: Mode,
    pub(crate) peek_timeout: Duration,
    /// Take the v1 lines nginx 1.22 writes (mixed families, leading zeros).
    pub(crate) lenient_proxy_v1: bool,
    /// `None`: nobody may send a PROXY header (the bytes are read as the application's).
    pub(crate) trust: Option<TrustPolicy>,
}

impl Live {
    /// Builds what `config` needs, reusing `old`'s pools where it can. Nothing running changes
    /// until the returned updates are applied.
    pub(crate) fn new(
        config: Config,
        old: Option<&Live>,
        epoch: Instant,
    ) -> Result<(Live, PendingUpdates), Error> {
        let Config {
            listeners,
            routes,
            limits,
        } = config;
        let (table, pending) =
            RouteTable::build(&routes, &listeners, old.map(|o| &o.table), epoch)?;
        drop(routes);
        let mut by_address = HashMap::new();
        for (index, l) in listeners.iter().enumerate() {
            for &address in &l.addresses {
                let state = ListenerState {
                    index: index as u32,
                    address,
                    mode: l.mode,
                    peek_timeout: l.peek_timeout,
                    lenient_proxy_v1: l.accept_proxy_lenient,
                    trust: (!l.accept_proxy_from.is_empty())
                        .then(|| TrustPolicy::trusted(l.accept_proxy_from.iter().copied())),
                };
                if by_address.insert(address, Arc::new(state)).is_some() {
                    return Err(Error::AddressTwice(address));
                }
            }
        }
        let live = Live {
            listeners,
            limits,
            table,
            by_address,
        };
        Ok((live, pending))
    }

    /// This configuration with other routes.
    pub(crate) fn with_routes(&self, routes: Vec<Arc<Route>>) -> Config {
        Config {
            listeners: self.listeners.clone(),
            routes,
            limits: self.limits,
        }
    }
}

/// What every task of a server shares.
pub(crate) struct Shared {
    pub(crate) live: ArcSwap<Live>,
    pub(crate) observer: Arc<dyn Observer>,
    pub(crate) accepted: AtomicU64,
    pub(crate) active: AtomicU64,
    pub(crate) epoch: Instant,
}
