//! From a host name to a route, and from a route to a connected backend.
//!
//! Finding a route hashes, never scans: exact names in one hash table, `*.domain` suffixes in
//! another (both hold route indices, no copy of a name), and a name's suffixes are tried from the
//! longest, so a lookup costs one probe per label whatever the number of routes.
//!
//! Routes share pools: every route with the same backends (addresses, weights, backups), the same
//! balancing, connection attempts, connect timeout and health settings, on the same listening
//! port, uses one pool
//! and one set of health checks. A hosting rack of 100,000 customers on 500 server pairs runs 500
//! pools, not 100,000. A route owns one pool per listening port when some of its backends take
//! "the port the client connected to", one pool otherwise.
//!
//! A reload keeps every pool whose key is unchanged, so ejections and in-flight counts carry
//! over. A route whose backends changed takes over the pool that served its first host, when no
//! route of the new file still has that pool's key, and the pool's membership is updated in place
//! (the backends it keeps keep their health). Both are hash lookups: building the table is linear
//! in the number of routes.

use core::hash::BuildHasher;
use core::net::{IpAddr, SocketAddr};
use core::time::Duration;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::RandomState;
use std::sync::Arc;
use std::time::Instant;

use backend_pool::{
    ActiveChecks, ActiveConfig, Algorithm, Backend, BackendId, InFlight, LeastConn, Maglev, Pool,
    PoolConfig, PoolError, Rng, SmoothWeighted, TcpConnect,
};
use sni_peek::HostName;
use tokio::net::TcpStream;

use crate::config::{Balance, Config, Health, HostPattern, Route};

/// A route, ready to pick from.
pub struct RouteState {
    pub spec: Arc<Route>,
    /// By listening port; port 0 when every backend names its own port.
    pools: RoutePools,
}

/// A route's pools: nearly always one, held without an allocation of its own.
enum RoutePools {
    One(u16, Arc<Balancer>),
    PerPort(Box<[(u16, Arc<Balancer>)]>),
}

impl RouteState {
    /// The name logs use for this route: its first host and its line, e.g. `www.example.com@12`.
    pub fn name(&self) -> String {
        let first = self.spec.hosts.first().map(ToString::to_string);
        format!("{}@{}", first.unwrap_or_default(), self.spec.line)
    }

    fn pool(&self, port: u16) -> Option<&Arc<Balancer>> {
        self.pool_exactly(port).or_else(|| self.pool_exactly(0))
    }

    fn pool_exactly(&self, port: u16) -> Option<&Arc<Balancer>> {
        match &self.pools {
            RoutePools::One(p, b) => (*p == port).then_some(b),
            RoutePools::PerPort(pools) => pools.iter().find(|(p, _)| *p == port).map(|(_, b)| b),
        }
    }
}

/// One pool with its algorithm, and its active checks while it lives.
pub struct Balancer {
    pool: Pools,
    _checks: Option<ActiveChecks>,
}

enum Pools {
    RoundRobin(Arc<Pool<SmoothWeighted>>),
    LeastConn(Arc<Pool<LeastConn>>),
    Consistent(Arc<Pool<Maglev>>),
}

/// What routes must have in common to share a pool, and a reload to keep one.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct PoolKey {
    settings: PoolSettings,
    /// Address (port resolved), weight, backup: in the file's order.
    backends: Box<[(SocketAddr, u32, bool)]>,
}

/// A pool's key without its backends: what a route taking over its old pool must keep.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
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
            health: route.health.as_deref().copied(),
        }
    }
}

impl PoolKey {
    fn of(route: &Route, port: u16) -> Self {
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

/// Every route and how to find one by name.
pub struct Routes {
    routes: Vec<RouteState>,
    names: Names,
    default: Option<u32>,
    /// Every pool by its key: routes share them, and the next reload reuses them.
    pools: HashMap<PoolKey, Arc<Balancer>>,
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
    /// Builds the routes of `config`, reusing `old`'s pools where their key is unchanged (or a
    /// changed route can take its old pool over). Nothing running changes: updates to pools
    /// taken over come back to be applied on success.
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
        let ports: Vec<u16> = ports.into_iter().collect();
        let pool_ports = |spec: &Route| -> &[u16] {
            if spec.backends.iter().any(|b| b.port.is_none()) {
                &ports
            } else {
                &[0]
            }
        };
        // The keys the new file wants, as hashes: an old pool whose key is among them stays as it
        // is (a collision only means a new pool where one could have been taken over).
        let hasher = RandomState::new();
        let wanted: HashSet<u64> = match old {
            None => HashSet::new(),
            Some(_) => config
                .routes
                .iter()
                .flat_map(|spec| pool_ports(spec).iter().map(|&p| PoolKey::of(spec, p)))
                .map(|key| hasher.hash_one(&key))
                .collect(),
        };
        let mut taken: HashSet<*const Balancer> = HashSet::new();
        let mut routes = Vec::with_capacity(config.routes.len());
        let mut pools: HashMap<PoolKey, Arc<Balancer>> = HashMap::new();
        let mut pending = Vec::new();
        let (mut names, mut default) = (Names::default(), None);
        for (index, spec) in config.routes.iter().enumerate() {
            let index = u32::try_from(index).map_err(|_| "more than 2^32 routes".to_string())?;
            let fail = |e: PoolError| format!("route on line {}: {e}", spec.line);
            let mut route_pools = Vec::new();
            for &port in pool_ports(spec) {
                let key = PoolKey::of(spec, port);
                if let Some(shared) = pools.get(&key) {
                    route_pools.push((port, Arc::clone(shared)));
                    continue;
                }
                let balancer = if let Some(kept) = old.and_then(|o| o.pools.get(&key)) {
                    Arc::clone(kept)
                } else if let Some(former) = old
                    .and_then(|o| o.taken_over(spec, port, &wanted, &hasher))
                    .filter(|b| taken.insert(Arc::as_ptr(b)))
                {
                    let backends = key.backends();
                    Balancer::check(&backends, &key).map_err(fail)?;
                    pending.push((Arc::clone(&former), backends));
                    former
                } else {
                    Arc::new(Balancer::new(&key, epoch).map_err(fail)?)
                };
                route_pools.push((port, Arc::clone(&balancer)));
                pools.insert(key, balancer);
            }
            for (host, pattern) in spec.hosts.iter().enumerate() {
                match pattern {
                    HostPattern::Any => default = Some(index),
                    _ => names.insert(&config.routes, index, host as u32),
                }
            }
            let pools = match <[_; 1]>::try_from(route_pools) {
                Ok([(port, pool)]) => RoutePools::One(port, pool),
                Err(many) => RoutePools::PerPort(many.into_boxed_slice()),
            };
            routes.push(RouteState {
                spec: Arc::clone(spec),
                pools,
            });
        }
        names.shrink_to_fit(&config.routes);
        pools.shrink_to_fit();
        let routes = Routes {
            routes,
            names,
            default,
            pools,
        };
        Ok((routes, PendingUpdates(pending)))
    }

    /// The pool a changed route may take over: the one that served its first host on `port`,
    /// with the same settings, when no route of the new file wants that pool as it is.
    fn taken_over(
        &self,
        spec: &Route,
        port: u16,
        wanted: &HashSet<u64>,
        hasher: &RandomState,
    ) -> Option<Arc<Balancer>> {
        let first = spec.hosts.first()?;
        let index = match first {
            HostPattern::Exact(h) => self.names.exact(&self.routes, h),
            HostPattern::Suffix(s) => self.names.suffix(&self.routes, s),
            HostPattern::Any => self.default,
        }?;
        let former = self.routes.get(index as usize)?;
        let settings = PoolSettings::of(&former.spec, port);
        if settings != PoolSettings::of(spec, port) {
            return None;
        }
        let balancer = former.pool_exactly(port)?;
        let key = PoolKey::of(&former.spec, port);
        (!wanted.contains(&hasher.hash_one(&key))).then(|| Arc::clone(balancer))
    }

    /// The route for a name: exact, then the longest matching `*.suffix`, then `*`. No name
    /// goes to `*` too. The name comes normalised from the peeker (or [`HostName::new`]), as the
    /// configured patterns do: nothing is lowercased or trimmed here.
    pub fn find(&self, name: Option<&HostName>) -> Option<&RouteState> {
        let index = name
            .and_then(|n| self.exact_or_suffix(n.as_str()))
            .or(self.default)?;
        self.routes.get(index as usize)
    }

    /// One probe for the exact name, then one per label: `a.b.example.org` tries
    /// `.b.example.org`, `.example.org`, `.org`, longest first.
    fn exact_or_suffix(&self, name: &str) -> Option<u32> {
        if let Some(index) = self.names.exact(&self.routes, name) {
            return Some(index);
        }
        name.match_indices('.')
            .find_map(|(at, _)| self.names.suffix(&self.routes, &name[at..]))
    }
}

/// Exact names and `*.domain` suffixes (kept with their leading dot, `.domain`), to the routes
/// that have them, without a copy of any name: an entry is a route and the index of one of its
/// hosts, and a probe compares with that host. The configuration was checked: every pattern is
/// in one route only.
#[derive(Default)]
struct Names {
    hasher: foldhash::fast::RandomState,
    exact: hashbrown::HashTable<(u32, u32)>,
    suffixes: hashbrown::HashTable<(u32, u32)>,
}

impl Names {
    /// The text of a host pattern: a name, a suffix, or "" for `*`.
    fn text(spec: &Route, host: u32) -> &str {
        match spec.hosts.get(host as usize) {
            Some(HostPattern::Exact(text) | HostPattern::Suffix(text)) => text,
            _ => "",
        }
    }

    fn insert(&mut self, routes: &[Arc<Route>], route: u32, host: u32) {
        let spec = &routes[route as usize];
        let table = match spec.hosts[host as usize] {
            HostPattern::Suffix(_) => &mut self.suffixes,
            _ => &mut self.exact,
        };
        let hasher = &self.hasher;
        let rehash = |&(r, h): &(u32, u32)| hasher.hash_one(Self::text(&routes[r as usize], h));
        table.insert_unique(
            hasher.hash_one(Self::text(spec, host)),
            (route, host),
            rehash,
        );
    }

    fn shrink_to_fit(&mut self, routes: &[Arc<Route>]) {
        let hasher = &self.hasher;
        let rehash = |&(r, h): &(u32, u32)| hasher.hash_one(Self::text(&routes[r as usize], h));
        self.exact.shrink_to_fit(rehash);
        self.suffixes.shrink_to_fit(rehash);
    }

    fn exact(&self, routes: &[RouteState], name: &str) -> Option<u32> {
        Self::find(&self.exact, self.hasher.hash_one(name), routes, name)
    }

    /// `suffix` with its leading dot.
    fn suffix(&self, routes: &[RouteState], suffix: &str) -> Option<u32> {
        Self::find(&self.suffixes, self.hasher.hash_one(suffix), routes, suffix)
    }

    fn find(
        table: &hashbrown::HashTable<(u32, u32)>,
        hash: u64,
        routes: &[RouteState],
        text: &str,
    ) -> Option<u32> {
        let is = |&(r, h): &(u32, u32)| {
            routes
                .get(r as usize)
                .is_some_and(|route| Self::text(&route.spec, h) == text)
        };
        table.find(hash, is).map(|&(route, _)| route)
    }
}

fn pool_config(settings: &PoolSettings) -> PoolConfig {
    let mut config = PoolConfig {
        max_attempts: settings.attempts,
        ..PoolConfig::default()
    };
    if let Some(h) = settings.health {
        (config.rise, config.fall) = (h.rise, h.fall);
        // A backend that comes back through its checks ramps up instead of taking a full share.
        config.slow_start = Duration::from_secs(10);
    }
    config
}

impl Balancer {
    fn new(key: &PoolKey, epoch: Instant) -> Result<Self, PoolError> {
        let seed = seed();
        let (backends, config) = (key.backends(), pool_config(&key.settings));
        let pool = match key.settings.balance {
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
        let checks = match key.settings.health {
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
        })
    }

    /// Whether a pool of these backends can be built, without building anything that runs.
    fn check(backends: &[Backend], key: &PoolKey) -> Result<(), PoolError> {
        let (backends, config) = (backends.to_vec(), pool_config(&key.settings));
        match key.settings.balance {
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

#[cfg(test)]
mod tests {
    use super::*;

    const LISTEN: &str = "[[listen]]\naddresses = [\"127.0.0.1:8443\"]\n";

    /// A file of routes, each `(hosts, backends)`, on one listener.
    fn file(routes: &[(&[&str], &[&str])]) -> String {
        let mut text = String::from(LISTEN);
        for (hosts, backends) in routes {
            let hosts: Vec<String> = hosts.iter().map(|h| format!("{h:?}")).collect();
            let backends: Vec<String> = backends
                .iter()
                .map(|b| format!("{{ address = {b:?} }}"))
                .collect();
            text += &format!(
                "[[route]]\nhosts = [{}]\nbackends = [{}]\n",
                hosts.join(", "),
                backends.join(", ")
            );
        }
        text
    }

    fn build(text: &str, old: Option<&Routes>) -> (Routes, PendingUpdates) {
        let config = crate::config::parse(text).unwrap_or_else(|e| panic!("{e:?}"));
        Routes::build(&config, old, Instant::now()).unwrap()
    }

    /// The first host of the route `name` goes to, or `None` when unrouted.
    fn route_of(routes: &Routes, name: Option<&str>) -> Option<String> {
        let name = name.map(|n| HostName::new(n).unwrap());
        let route = routes.find(name.as_ref())?;
        Some(route.spec.hosts[0].to_string())
    }

    #[test]
    fn exact_then_longest_suffix_then_default() {
        let text = file(&[
            (&["*.example.org"], &["::1"]),
            (&["*.b.example.org"], &["::2"]),
            (&["www.b.example.org", "example.org"], &["::3"]),
            (&["*.org"], &["::4"]),
        ]);
        let (routes, _) = build(&text, None);
        let find = |n: &str| route_of(&routes, Some(n));
        assert_eq!(find("www.b.example.org").unwrap(), "www.b.example.org");
        assert_eq!(find("example.org").unwrap(), "www.b.example.org");
        assert_eq!(find("a.b.example.org").unwrap(), "*.b.example.org");
        assert_eq!(find("x.a.b.example.org").unwrap(), "*.b.example.org");
        // `*.b.example.org` covers names below b.example.org, not b.example.org itself.
        assert_eq!(find("b.example.org").unwrap(), "*.example.org");
        assert_eq!(find("a.example.org").unwrap(), "*.example.org");
        assert_eq!(find("other.org").unwrap(), "*.org");
        // A suffix matches at a label boundary only.
        assert_eq!(find("notexample.org").unwrap(), "*.org");
        assert_eq!(find("example.net"), None);
        assert_eq!(route_of(&routes, None), None);
    }

    #[test]
    fn the_default_takes_no_name_and_every_unrouted_name() {
        let text = file(&[(&["www.example.com"], &["::1"]), (&["*"], &["::2"])]);
        let (routes, _) = build(&text, None);
        assert_eq!(
            route_of(&routes, Some("www.example.com")).unwrap(),
            "www.example.com"
        );
        assert_eq!(route_of(&routes, Some("example.com")).unwrap(), "*");
        assert_eq!(route_of(&routes, None).unwrap(), "*");
    }

    // Patterns and names are normalised by the same rules, each once: the file's when it is
    // read, the peeker's (here `HostName::new`) when a name arrives.
    #[test]
    fn names_and_patterns_normalised_alike() {
        let text = file(&[
            (&["WWW.Example.COM."], &["::1"]),
            (&["*.Example.ORG."], &["::2"]),
        ]);
        let (routes, _) = build(&text, None);
        assert_eq!(
            route_of(&routes, Some("www.EXAMPLE.com.")).unwrap(),
            "www.example.com"
        );
        assert_eq!(
            route_of(&routes, Some("A.B.example.org.")).unwrap(),
            "*.example.org"
        );
    }

    #[test]
    fn routes_with_equal_backends_share_a_pool() {
        let text = file(&[
            (&["a.example"], &["::1", "::2"]),
            (&["b.example"], &["::1", "::2"]),
            (&["c.example"], &["::2", "::1"]),
        ]);
        let (routes, _) = build(&text, None);
        let pool = |i: usize| Arc::clone(routes.routes[i].pool(8443).unwrap());
        assert!(Arc::ptr_eq(&pool(0), &pool(1)));
        assert!(
            !Arc::ptr_eq(&pool(0), &pool(2)),
            "the order is part of the key"
        );
        assert_eq!(routes.pools.len(), 2);
        // A different weight, balance or health is a different pool.
        let weighted = text.replacen(
            "{ address = \"::1\" }",
            "{ address = \"::1\", weight = 2 }",
            1,
        );
        let (routes, _) = build(&weighted, None);
        assert_eq!(routes.pools.len(), 3);
        // So is another connect timeout: its timeouts count against the backends too.
        let impatient = text.replacen(
            "hosts = [\"b.example\"]",
            "hosts = [\"b.example\"]\nconnect_timeout = \"50ms\"",
            1,
        );
        assert_ne!(impatient, text);
        let (routes, _) = build(&impatient, None);
        assert_eq!(routes.pools.len(), 3);
    }

    #[test]
    fn a_reload_keeps_unchanged_pools_and_hands_changed_ones_over() {
        let before = file(&[
            (&["a.example"], &["::1", "::2"]),
            (&["b.example"], &["::1", "::2"]),
            (&["c.example"], &["::3", "::4"]),
        ]);
        let (old, _) = build(&before, None);
        let old_pool = |i: usize| Arc::clone(old.routes[i].pool(8443).unwrap());
        // a keeps its backends, b changes but a still uses the shared pool, c changes alone.
        let after = file(&[
            (&["a.example"], &["::1", "::2"]),
            (&["b.example"], &["::1", "::5"]),
            (&["c.example"], &["::3", "::6"]),
        ]);
        let (new, pending) = build(&after, Some(&old));
        let new_pool = |i: usize| Arc::clone(new.routes[i].pool(8443).unwrap());
        assert!(Arc::ptr_eq(&new_pool(0), &old_pool(0)));
        assert!(
            !Arc::ptr_eq(&new_pool(1), &old_pool(1)),
            "a still wants it as it is"
        );
        assert!(Arc::ptr_eq(&new_pool(2), &old_pool(2)), "taken over by c");
        assert_eq!(pending.0.len(), 1);
        assert!(Arc::ptr_eq(&pending.0[0].0, &old_pool(2)));
        pending.apply(Duration::ZERO);
        // The next reload finds the updated pool under its new key.
        let (again, pending) = build(&after, Some(&new));
        assert!(Arc::ptr_eq(
            &again.routes[2].pool(8443).unwrap().clone(),
            &old_pool(2)
        ));
        assert!(pending.0.is_empty());
    }
}
