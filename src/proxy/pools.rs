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

use core::hash::{Hash, Hasher};
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
use super::{Balance, Check, Route};

/// One pool with its algorithm, and its active checks while it lives; cloning shares it. A pool
/// without checks is held as the pool alone, with no allocation of its own beside it.
#[derive(Clone)]
pub(crate) enum Balancer {
    Plain(AnyPool),
    /// The checks stop when the last route holding the pool goes.
    Checked(Arc<(AnyPool, ActiveChecks)>),
}

/// What routes must have in common to share a pool, and a reload to keep one: read from a route
/// and a listening port where it is needed, never copied, so a pool costs no key of its own.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolKey<'a> {
    route: &'a Route,
    /// The listening port, or 0 when every backend names its own.
    port: u16,
}

impl<'a> PoolKey<'a> {
    pub(crate) fn of(route: &'a Route, port: u16) -> Self {
        PoolKey { route, port }
    }

    fn attempts(&self) -> u32 {
        self.route.connect_attempts.min(32)
    }

    /// Whether a pool of this key could serve a route of `other`'s after a membership update:
    /// the same balancing, port, attempts, connect timeout (a connect that times out counts as a
    /// failure of the pool's backend: routes with another timeout must not eject backends for
    /// each other) and health settings.
    pub(crate) fn same_settings(&self, other: &PoolKey<'_>) -> bool {
        let (a, b) = (self.route, other.route);
        a.balance == b.balance
            && self.port == other.port
            && self.attempts() == other.attempts()
            && a.connect_timeout == b.connect_timeout
            && a.health == b.health
    }

    /// Address (port resolved), weight, backup: in the file's order.
    fn members(&self) -> impl Iterator<Item = (SocketAddr, u32, bool)> + 'a {
        let port = self.port;
        self.route.backends.iter().map(move |b| {
            let address = SocketAddr::new(b.ip, b.port.unwrap_or(port));
            (address, b.weight, b.backup)
        })
    }

    fn backends(&self) -> impl Iterator<Item = Backend> + 'a {
        self.members().map(|(address, weight, backup)| {
            let backend = Backend::new(address, weight);
            if backup { backend.backup() } else { backend }
        })
    }
}

impl PartialEq for PoolKey<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.same_settings(other) && self.members().eq(other.members())
    }
}

impl Hash for PoolKey<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let route = self.route;
        (
            route.balance,
            self.port,
            self.attempts(),
            route.connect_timeout,
        )
            .hash(state);
        route.health.hash(state);
        state.write_usize(route.backends.len());
        self.members().for_each(|member| member.hash(state));
    }
}

/// Membership changes for pools a new table keeps, checked but not yet applied: the running
/// table stays untouched until the whole change has succeeded. Each is held as the route and
/// port whose backends the pool takes, not as a list of its own.
#[must_use = "a change is only applied by PendingUpdates::apply"]
#[derive(Default)]
pub(crate) struct PendingUpdates {
    updates: Vec<(Balancer, Arc<Route>, u16)>,
    /// Reused by each check.
    scratch: Vec<Backend>,
}

impl PendingUpdates {
    /// Checks that `pool` can take the backends of `route` on `port`, to apply later.
    pub(crate) fn update(
        &mut self,
        pool: &Balancer,
        route: &Arc<Route>,
        port: u16,
    ) -> Result<(), PoolError> {
        let key = PoolKey::of(route, port);
        self.scratch.clear();
        self.scratch.extend(key.backends());
        Balancer::check(&self.scratch, &key)?;
        self.updates.push((pool.clone(), Arc::clone(route), port));
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.updates.len()
    }

    pub(crate) fn apply(self, now: Duration) {
        for (balancer, route, port) in self.updates {
            let backends = PoolKey::of(&route, port).backends();
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

fn pool_config(key: &PoolKey<'_>) -> PoolConfig {
    let mut config = PoolConfig {
        max_attempts: key.attempts(),
        ..PoolConfig::default()
    };
    if let Some(h) = &key.route.health {
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
    pub(crate) fn new(key: &PoolKey<'_>, epoch: Instant) -> Result<Self, PoolError> {
        let seed = Rng::from_entropy().next_u64();
        let (backends, config) = (key.backends(), pool_config(key));
        let pool = AnyPool::new(backends, config, algorithm(key.route.balance), seed)?;
        let Some(h) = &key.route.health else {
            return Ok(Balancer::Plain(pool));
        };
        let active = ActiveConfig {
            interval: h.interval,
            jitter_percent: 10,
            timeout: h.timeout,
        };
        let probe = probe_of(&h.check)?;
        let checks = pool.start_active_checks(active, probe, epoch.into(), seed)?;
        Ok(Balancer::Checked(Arc::new((pool, checks))))
    }

    fn pool(&self) -> &AnyPool {
        match self {
            Balancer::Plain(pool) => pool,
            Balancer::Checked(checked) => &checked.0,
        }
    }

    /// Whether both are the same pool.
    #[cfg(test)]
    pub(crate) fn same(&self, other: &Balancer) -> bool {
        self.pool().ptr_eq(other.pool())
    }

    /// Whether a pool of these backends can be built, without building anything: the pool's own
    /// check, which agrees with `Pool::new` and `update`.
    fn check(backends: &[Backend], key: &PoolKey<'_>) -> Result<(), PoolError> {
        let config = pool_config(key);
        AnyPool::check(backends, &config, &algorithm(key.route.balance))
    }

    fn update(
        &self,
        backends: impl IntoIterator<Item = Backend>,
        now: Duration,
    ) -> Result<(), PoolError> {
        self.pool().update(backends, now)
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
    let snapshot = balancer.pool().snapshot();
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
