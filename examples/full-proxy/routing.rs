//! From a host name to a route, and from a route to a connected backend.
//!
//! Each route owns one backend pool per listening port when some of its backends take "the port
//! the client connected to", one pool otherwise. Pools survive a reload that leaves their route's
//! hosts, balancing and health settings alone, so ejections and in-flight counts carry over.

use core::net::{IpAddr, SocketAddr};
use core::time::Duration;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use backend_pool::{
    ActiveChecks, ActiveConfig, Algorithm, Backend, BackendId, InFlight, LeastConn, Maglev, Pool,
    PoolConfig, PoolError, Rng, SmoothWeighted, TcpConnect,
};
use tokio::net::TcpStream;

use crate::config::{Balance, Config, HostPattern, Route};

/// A route, ready to pick from.
pub struct RouteState {
    pub spec: Route,
    /// For logs: the first host and the route's line, e.g. `www.example.com@12`.
    name: String,
    /// By listening port; key 0 when every backend names its own port.
    pools: HashMap<u16, Arc<Balancer>>,
}

impl RouteState {
    /// The name logs use for this route: its first host and its line.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn pool(&self, port: u16) -> Option<&Arc<Balancer>> {
        self.pools.get(&port).or_else(|| self.pools.get(&0))
    }
}

/// One pool with its algorithm, and its active checks while it lives.
pub struct Balancer {
    pool: Pools,
    _checks: Option<ActiveChecks>,
    signature: PoolSignature,
}

enum Pools {
    RoundRobin(Arc<Pool<SmoothWeighted>>),
    LeastConn(Arc<Pool<LeastConn>>),
    Consistent(Arc<Pool<Maglev>>),
}

/// What must be unchanged for a reload to keep a pool (and its health).
#[derive(Clone, PartialEq, Debug)]
struct PoolSignature {
    hosts: Vec<HostPattern>,
    balance: Balance,
    port: u16,
    config: PoolConfig,
    health: Option<crate::config::Health>,
}

/// Every route and how to find one by name.
pub struct Routes {
    pub routes: Vec<Arc<RouteState>>,
    exact: HashMap<String, usize>,
    /// Longest suffix first.
    suffixes: Vec<(String, usize)>,
    default: Option<usize>,
}

/// Membership changes for pools a reload keeps, checked but not yet applied: the running
/// configuration stays untouched until the whole reload has succeeded.
#[must_use = "a reload is only applied by PendingUpdates::apply"]
pub struct PendingUpdates(Vec<(Arc<Balancer>, Vec<Backend>)>);

impl PendingUpdates {
    pub fn apply(self, now: Duration) {
        for (balancer, backends) in self.0 {
            if let Err(e) = balancer.update(backends, now) {
                // Checked by `Balancer::check` when the reload was built; cannot happen.
                tracing::error!("applying a checked pool update failed: {e}");
            }
        }
    }
}

impl Routes {
    /// Builds the routes of `config`, reusing `old`'s pools where their signature is unchanged.
    /// Nothing running changes: updates to reused pools come back to be applied on success.
    pub fn build(
        config: &Config,
        old: Option<&Routes>,
        epoch: Instant,
    ) -> Result<(Routes, PendingUpdates), String> {
        let ports: BTreeSet<u16> = config
            .listeners
            .iter()
            .flat_map(|l| l.addresses.iter().map(SocketAddr::port))
            .collect();
        let reusable: Vec<Arc<Balancer>> = old
            .map(|o| {
                o.routes
                    .iter()
                    .flat_map(|r| r.pools.values().cloned())
                    .collect()
            })
            .unwrap_or_default();
        let mut routes = Vec::new();
        let mut pending = Vec::new();
        let (mut exact, mut suffixes, mut default) = (HashMap::new(), Vec::new(), None);
        for (index, spec) in config.routes.iter().enumerate() {
            let per_port = spec.backends.iter().any(|b| b.port.is_none());
            let pool_ports: Vec<u16> = if per_port {
                ports.iter().copied().collect()
            } else {
                vec![0]
            };
            let mut pools = HashMap::new();
            for port in pool_ports {
                let backends: Vec<Backend> = spec
                    .backends
                    .iter()
                    .map(|b| {
                        let backend =
                            Backend::new(SocketAddr::new(b.ip, b.port.unwrap_or(port)), b.weight);
                        if b.backup { backend.backup() } else { backend }
                    })
                    .collect();
                let signature = PoolSignature {
                    hosts: spec.hosts.clone(),
                    balance: spec.balance,
                    port,
                    config: pool_config(spec),
                    health: spec.health,
                };
                let balancer = match reusable.iter().find(|b| b.signature == signature) {
                    Some(old) => {
                        Balancer::check(&backends, &signature)
                            .map_err(|e| format!("route on line {}: {e}", spec.line))?;
                        pending.push((Arc::clone(old), backends));
                        Arc::clone(old)
                    }
                    None => Arc::new(
                        Balancer::new(backends, signature, epoch)
                            .map_err(|e| format!("route on line {}: {e}", spec.line))?,
                    ),
                };
                pools.insert(port, balancer);
            }
            for host in &spec.hosts {
                match host {
                    HostPattern::Exact(h) => {
                        exact.insert(h.clone(), index);
                    }
                    HostPattern::Suffix(s) => suffixes.push((s.clone(), index)),
                    HostPattern::Any => default = Some(index),
                }
            }
            let first_host = spec
                .hosts
                .first()
                .map(ToString::to_string)
                .unwrap_or_default();
            routes.push(Arc::new(RouteState {
                name: format!("{first_host}@{}", spec.line),
                spec: spec.clone(),
                pools,
            }));
        }
        suffixes.sort_by_key(|(s, _)| core::cmp::Reverse(s.len()));
        let routes = Routes {
            routes,
            exact,
            suffixes,
            default,
        };
        Ok((routes, PendingUpdates(pending)))
    }

    /// The route for a name (already lowercase, without trailing dot): exact, then the longest
    /// matching `*.suffix`, then `*`. No name goes to `*` too.
    pub fn find(&self, host: Option<&str>) -> Option<&Arc<RouteState>> {
        let index = host
            .and_then(|h| {
                self.exact.get(h).copied().or_else(|| {
                    self.suffixes
                        .iter()
                        .find(|(s, _)| h.ends_with(s.as_str()))
                        .map(|&(_, i)| i)
                })
            })
            .or(self.default)?;
        self.routes.get(index)
    }
}

fn pool_config(route: &Route) -> PoolConfig {
    let mut config = PoolConfig {
        max_attempts: route.connect_attempts.min(32),
        ..PoolConfig::default()
    };
    if let Some(h) = route.health {
        (config.rise, config.fall) = (h.rise, h.fall);
        // A backend that comes back through its checks ramps up instead of taking a full share.
        config.slow_start = Duration::from_secs(10);
    }
    config
}

impl Balancer {
    fn new(
        backends: Vec<Backend>,
        signature: PoolSignature,
        epoch: Instant,
    ) -> Result<Self, PoolError> {
        let seed = seed();
        let config = signature.config;
        let pool = match signature.balance {
            Balance::RoundRobin => Pools::RoundRobin(Arc::new(Pool::new(
                backends,
                config,
                Default::default(),
                seed,
            )?)),
            Balance::LeastConn => {
                Pools::LeastConn(Arc::new(Pool::new(backends, config, (), seed)?))
            }
            Balance::Consistent => Pools::Consistent(Arc::new(Pool::new(
                backends,
                config,
                Default::default(),
                seed,
            )?)),
        };
        let checks = match signature.health {
            None => None,
            Some(h) => {
                let active = ActiveConfig {
                    interval: h.interval,
                    jitter_percent: 10,
                    timeout: h.timeout,
                };
                let probe = Arc::new(TcpConnect);
                Some(match &pool {
                    Pools::RoundRobin(p) => {
                        p.start_active_checks(active, probe, epoch.into(), seed)?
                    }
                    Pools::LeastConn(p) => {
                        p.start_active_checks(active, probe, epoch.into(), seed)?
                    }
                    Pools::Consistent(p) => {
                        p.start_active_checks(active, probe, epoch.into(), seed)?
                    }
                })
            }
        };
        Ok(Balancer {
            pool,
            _checks: checks,
            signature,
        })
    }

    /// Whether a pool of these backends can be built, without building anything that runs.
    fn check(backends: &[Backend], signature: &PoolSignature) -> Result<(), PoolError> {
        let (backends, config) = (backends.to_vec(), signature.config);
        match signature.balance {
            Balance::RoundRobin => {
                Pool::<SmoothWeighted>::new(backends, config, Default::default(), 0).map(drop)
            }
            Balance::LeastConn => Pool::<LeastConn>::new(backends, config, (), 0).map(drop),
            Balance::Consistent => {
                Pool::<Maglev>::new(backends, config, Default::default(), 0).map(drop)
            }
        }
    }

    fn update(&self, backends: Vec<Backend>, now: Duration) -> Result<(), PoolError> {
        match &self.pool {
            Pools::RoundRobin(p) => p.update(backends, now),
            Pools::LeastConn(p) => p.update(backends, now),
            Pools::Consistent(p) => p.update(backends, now),
        }
    }
}

/// A connected backend, counted in flight until dropped.
pub struct Connected {
    pub stream: TcpStream,
    pub backend: SocketAddr,
    /// Failed attempts before this one.
    pub retries: u32,
    pub in_flight: InFlight,
}

/// Why no backend could be reached.
#[derive(Debug)]
pub enum ConnectError {
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
pub async fn connect(
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
    match &balancer.pool {
        Pools::RoundRobin(p) => connect_with(p, key, timeout, epoch).await,
        Pools::LeastConn(p) => connect_with(p, key, timeout, epoch).await,
        Pools::Consistent(p) => connect_with(p, key, timeout, epoch).await,
    }
}

async fn connect_with<A: Algorithm>(
    pool: &Pool<A>,
    key: &[u8],
    timeout: Duration,
    epoch: Instant,
) -> Result<Connected, ConnectError> {
    let snapshot = pool.snapshot();
    let mut rng = Rng::new(seed());
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

/// A seed that differs between processes and calls, for start offsets and two-choice draws.
fn seed() -> u64 {
    use core::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    // One random start per process (std's hasher keys), then a counter through SplitMix64:
    // cheap per connection, different in every process.
    static START: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let start = *START.get_or_init(|| {
        use core::hash::BuildHasher;
        std::hash::RandomState::new().hash_one(Instant::now())
    });
    let mut z = start.wrapping_add(COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
