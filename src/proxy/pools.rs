//! Pools of backends, shared by the routes whose backends and settings are equal, and the
//! connect that walks a pool's candidates.
//!
//! Every route with the same backends (addresses, weights, backups), the same balancing,
//! connection attempts, connect timeout and health settings, on the same listening port, uses one
//! pool and one set of health checks: a hosting rack of 100,000 customers on 500 server pairs
//! runs 500 pools, not 100,000. A route owns one pool per listening port when some of its
//! backends take "the port the client connected to", one pool otherwise.
//!
//! A new table keeps every pool whose key is unchanged, so ejections and in-flight counts carry
//! over. A route whose backends changed takes over the pool that served its first host, when no
//! route of the new table still has that pool's key, and the pool's membership is updated in
//! place (the backends it keeps keep their health).

use core::net::{IpAddr, SocketAddr};
use core::time::Duration;
use std::sync::Arc;
use std::time::Instant;

use backend_pool::{
    ActiveChecks, ActiveConfig, AlgorithmChoice, AnyPool, Backend, BackendId, InFlight, PoolConfig,
    PoolError, Probe, Rng, TcpConnect, TcpExchange, TlsHandshake,
};
use tokio::net::TcpStream;

use super::table::RouteState;
use super::{Balance, Check, Health, Route};

/// One pool with its algorithm, and its active checks while it lives.
pub(crate) struct Balancer {
    pool: AnyPool,
    _checks: Option<ActiveChecks>,
}

/// What routes must have in common to share a pool, and a reload to keep one.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(crate) struct PoolKey {
    settings: PoolSettings,
    /// Address (port resolved), weight, backup: in the file's order.
    backends: Box<[(SocketAddr, u32, bool)]>,
}

/// A pool's key without its backends: what a route taking over its old pool must keep.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct PoolSettings {
    balance: Balance,
    /// The listening port, or 0 when every backend names its own.
    port: u16,
    attempts: u32,
    /// A connect that times out counts as a failure of the pool's backend: routes with another
    /// timeout must not eject backends for each other.
    connect_timeout: core::time::Duration,
    health: Option<Health>,
}

impl PoolSettings {
    fn of(route: &Route, port: u16) -> Self {
        PoolSettings {
            balance: route.balance,
            port,
            attempts: route.connect_attempts.min(32),
            connect_timeout: route.connect_timeout,
            health: route.health.as_deref().cloned(),
        }
    }
}

impl PoolKey {
    pub(crate) fn of(route: &Route, port: u16) -> Self {
        let backends = route
            .backends
            .iter()
            .map(|b| {
                let address = SocketAddr::new(b.ip, b.port.unwrap_or(port));
                (address, b.weight, b.backup)
            })
            .collect();
        PoolKey {
            settings: PoolSettings::of(route, port),
            backends,
        }
    }

    /// Whether a pool of this key could serve a route of `other`'s after a membership update.
    pub(crate) fn same_settings(&self, other: &PoolKey) -> bool {
        self.settings == other.settings
    }

    fn backends(&self) -> Vec<Backend> {
        self.backends
            .iter()
            .map(|&(address, weight, backup)| {
                let backend = Backend::new(address, weight);
                if backup { backend.backup() } else { backend }
            })
            .collect()
    }
}

/// Membership changes for pools a new table keeps, checked but not yet applied: the running
/// table stays untouched until the whole change has succeeded.
#[must_use = "a change is only applied by PendingUpdates::apply"]
#[derive(Default)]
pub(crate) struct PendingUpdates(Vec<(Arc<Balancer>, Vec<Backend>)>);

impl PendingUpdates {
    /// Checks that `pool` can take `key`'s backends, to apply later.
    pub(crate) fn update(&mut self, pool: &Arc<Balancer>, key: &PoolKey) -> Result<(), PoolError> {
        let backends = key.backends();
        Balancer::check(&backends, key)?;
        self.0.push((Arc::clone(pool), backends));
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn apply(self, now: Duration) {
        for (balancer, backends) in self.0 {
            if let Err(e) = balancer.update(backends, now) {
                // Checked by `Balancer::check` when the reload was built; cannot happen.
                tracing::error!("applying a checked pool update failed: {e}");
            }
        }
    }
}

/// The pool's algorithm for a route's `balance`.
fn algorithm(balance: Balance) -> AlgorithmChoice {
    match balance {
        Balance::RoundRobin => AlgorithmChoice::SmoothWeighted(Default::default()),
        Balance::LeastConn => AlgorithmChoice::LeastConn,
        Balance::Consistent => AlgorithmChoice::Maglev(Default::default()),
    }
}

fn pool_config(settings: &PoolSettings) -> PoolConfig {
    let mut config = PoolConfig {
        max_attempts: settings.attempts,
        ..PoolConfig::default()
    };
    if let Some(h) = &settings.health {
        (config.rise, config.fall) = (h.rise, h.fall);
        // A backend that comes back through its checks ramps up instead of taking a full share.
        config.slow_start = Duration::from_secs(10);
    }
    config
}

/// The probe that asks what `check` asks; refused when it never could (an `expect` beyond the
/// 16 KiB read, an SNI that is no name).
fn probe_of(check: &Check) -> Result<Arc<dyn Probe>, PoolError> {
    Ok(match check {
        Check::Connect => Arc::new(TcpConnect),
        Check::Exchange { send, expect } => Arc::new(TcpExchange::new(&send[..], &expect[..])?),
        Check::Tls { server_name } => Arc::new(TlsHandshake::new(server_name.as_deref())?),
    })
}

impl Balancer {
    pub(crate) fn new(key: &PoolKey, epoch: Instant) -> Result<Self, PoolError> {
        let seed = Rng::from_entropy().next_u64();
        let (backends, config) = (key.backends(), pool_config(&key.settings));
        let pool = AnyPool::new(backends, config, algorithm(key.settings.balance), seed)?;
        let checks = match &key.settings.health {
            None => None,
            Some(h) => {
                let active = ActiveConfig {
                    interval: h.interval,
                    jitter_percent: 10,
                    timeout: h.timeout,
                };
                let probe = probe_of(&h.check)?;
                Some(pool.start_active_checks(active, probe, epoch.into(), seed)?)
            }
        };
        Ok(Balancer {
            pool,
            _checks: checks,
        })
    }

    /// Whether a pool of these backends can be built, without building anything: the pool's own
    /// check, which agrees with `Pool::new` and `update`.
    fn check(backends: &[Backend], key: &PoolKey) -> Result<(), PoolError> {
        let config = pool_config(&key.settings);
        AnyPool::check(backends, &config, &algorithm(key.settings.balance))
    }

    fn update(&self, backends: Vec<Backend>, now: Duration) -> Result<(), PoolError> {
        self.pool.update(backends, now)
    }
}

/// A connected backend, counted in flight until dropped.
pub(crate) struct Connected {
    pub(crate) stream: TcpStream,
    pub(crate) backend: SocketAddr,
    /// Failed attempts before this one.
    pub(crate) retries: u32,
    pub(crate) in_flight: InFlight,
}

/// Why no backend could be reached.
#[derive(Debug)]
pub(crate) enum ConnectError {
    NoBackend(PoolError),
    AllFailed { tried: u32, last: String },
}

impl core::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConnectError::NoBackend(e) => write!(f, "no backend to try: {e}"),
            ConnectError::AllFailed { tried, last } => {
                write!(f, "{tried} backend(s) tried, none connected (last: {last})")
            }
        }
    }
}

/// Connects to the route's backends in the pool's order, retrying the next candidate on failure,
/// invisible to the client. `client` is the consistent-hashing key.
pub(crate) async fn connect(
    route: &RouteState,
    listen_port: u16,
    client: IpAddr,
    epoch: Instant,
) -> Result<Connected, ConnectError> {
    let Some(balancer) = route.pool(listen_port) else {
        return Err(ConnectError::NoBackend(PoolError::Empty));
    };
    let octets = match client {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    let key = &octets[..];
    let timeout = route.spec.connect_timeout;
    let snapshot = balancer.pool.snapshot();
    let mut rng = Rng::from_entropy();
    let candidates = snapshot
        .candidates(key, epoch.elapsed(), &mut rng)
        .map_err(ConnectError::NoBackend)?;
    let (mut tried, mut last) = (0, String::from("none"));
    for candidate in candidates {
        let BackendId::Addr(addr) = candidate.backend().id else {
            continue;
        };
        tried += 1;
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                candidate.record_success(epoch.elapsed());
                let _ = stream.set_nodelay(true);
                return Ok(Connected {
                    stream,
                    backend: addr,
                    retries: tried - 1,
                    in_flight: candidate.detach(),
                });
            }
            Ok(Err(e)) => last = format!("{addr}: {e}"),
            Err(_) => last = format!("{addr}: no answer within {timeout:?}"),
        }
        candidate.record_failure(epoch.elapsed());
    }
    Err(ConnectError::AllFailed { tried, last })
}
