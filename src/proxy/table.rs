//! From a host name and a listener to a route.
//!
//! Finding a route hashes, never scans: exact names in one hash table, `*.domain` suffixes in
//! another (both hold route indices, no copy of a name), and a name's suffixes are tried from the
//! longest, so a lookup costs one probe per label whatever the number of routes. A route bound to
//! some listeners is found only on those: a name may go to one route on the TLS listener and to
//! another on the HTTP one, and a name unrouted on a listener falls through to the suffixes and
//! the default route that serve it.
//!
//! Routes share pools ([`super::pools`]); building a table is linear in the number of routes.

use core::hash::BuildHasher;
use core::net::SocketAddr;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use hashbrown::HashTable;

use super::pools::{Balancer, PendingUpdates, PoolKey};
use super::{Error, HostPattern, Listener, Route};

/// A route, ready to pick from.
pub(crate) struct RouteState {
    pub(crate) spec: Arc<Route>,
    /// The listeners it serves, by index; `None`: all.
    serves: Option<Box<[u32]>>,
    pools: RoutePools,
}

/// A route's pools, by listening port (0 when every backend names its own port): nearly always
/// one, held without an allocation of its own.
enum RoutePools {
    One(u16, Balancer),
    PerPort(Box<[(u16, Balancer)]>),
}

impl RouteState {
    pub(crate) fn pool(&self, port: u16) -> Option<&Balancer> {
        self.pool_exactly(port).or_else(|| self.pool_exactly(0))
    }

    fn pool_exactly(&self, port: u16) -> Option<&Balancer> {
        match &self.pools {
            RoutePools::One(p, b) => (*p == port).then_some(b),
            RoutePools::PerPort(pools) => pools.iter().find(|(p, _)| *p == port).map(|(_, b)| b),
        }
    }

    fn serves(&self, listener: u32) -> bool {
        self.serves.as_ref().is_none_or(|s| s.contains(&listener))
    }
}

/// Every route and how to find one by name.
pub(crate) struct RouteTable {
    routes: Vec<RouteState>,
    names: Names,
    /// Routes with `*`, in order: the first that serves a listener is its default.
    defaults: Vec<u32>,
    /// Every pool once: routes share them, and the next table reuses them.
    pools: Pools,
}

impl RouteTable {
    /// Builds the table of `routes` for `listeners`, reusing `old`'s pools where their key is
    /// unchanged (or a changed route can take its old pool over). Nothing running changes:
    /// updates to pools taken over come back to be applied on success.
    pub(crate) fn build(
        routes: &[Arc<Route>],
        listeners: &[Listener],
        old: Option<&RouteTable>,
        epoch: Instant,
    ) -> Result<(RouteTable, PendingUpdates), Error> {
        let ports: BTreeSet<u16> = listeners
            .iter()
            .flat_map(|l| l.addresses.iter().map(SocketAddr::port))
            .collect();
        let ports: Vec<u16> = ports.into_iter().collect();
        let listener_index = listener_names(listeners)?;
        let pool_ports = |spec: &Route| -> &[u16] {
            if spec.backends.iter().any(|b| b.port.is_none()) {
                &ports
            } else {
                &[0]
            }
        };
        // The old table's hasher: a key hashed once is looked up in both tables. Room for as
        // many pools as the old table has and one per route added, or else one per route
        // (growing would hash every key again from its route at each doubling); shrunk to the
        // pools made at the end.
        let room = old.map_or(routes.len(), |o| {
            o.pools.table.len() + routes.len().saturating_sub(o.routes.len())
        });
        let mut pools = Pools {
            hasher: old.map(|o| o.pools.hasher.clone()).unwrap_or_default(),
            table: HashTable::with_capacity(room),
        };
        // The keys the new routes want, as sorted hashes: an old pool whose key is among them
        // stays as it is (a collision only means a new pool where one could have been taken
        // over).
        let wanted: Vec<u64> = match old {
            None => Vec::new(),
            Some(_) => {
                let mut hashes: Vec<u64> = routes
                    .iter()
                    .flat_map(|spec| pool_ports(spec).iter().map(|&p| PoolKey::of(spec, p)))
                    .map(|key| pools.hasher.hash_one(key))
                    .collect();
                hashes.sort_unstable();
                hashes
            }
        };
        // The old pools taken over, by their entry in the old table.
        let mut taken: hashbrown::HashSet<(u32, u16), foldhash::fast::RandomState> =
            hashbrown::HashSet::default();
        let mut states: Vec<RouteState> = Vec::with_capacity(routes.len());
        let mut pending = PendingUpdates::default();
        let mut route_names: HashTable<u32> = HashTable::with_capacity(routes.len());
        let (mut names, mut defaults) = (Names::sized_for(routes), Vec::new());
        let mut made = Vec::new();
        for (index, spec) in routes.iter().enumerate() {
            let index = u32::try_from(index).map_err(|_| Error::TooManyRoutes)?;
            let name_hash = pools.hasher.hash_one(&spec.name);
            let same_name = |&r: &u32| routes[r as usize].name == spec.name;
            if route_names.find(name_hash, same_name).is_some() {
                return Err(Error::DuplicateName {
                    what: "routes",
                    name: spec.name.clone(),
                });
            }
            route_names.insert_unique(name_hash, index, |&r| {
                pools.hasher.hash_one(&routes[r as usize].name)
            });
            let fail = |source| Error::Pool {
                route: spec.name.clone(),
                source,
            };
            let mut route_pools = Vec::new();
            made.clear();
            for &port in pool_ports(spec) {
                let key = PoolKey::of(spec, port);
                let hash = pools.hasher.hash_one(key);
                if let Some(shared) = pools.get(&states, hash, &key) {
                    route_pools.push((port, shared.clone()));
                    continue;
                }
                let kept = old.and_then(|o| o.pools.get(&o.routes, hash, &key));
                let balancer = if let Some(kept) = kept {
                    kept.clone()
                } else if let Some((former, _)) = old
                    .and_then(|o| o.taken_over(spec, port, &wanted))
                    .filter(|&(_, entry)| taken.insert(entry))
                {
                    pending.update(former, spec, port).map_err(fail)?;
                    former.clone()
                } else {
                    Balancer::new(&key, epoch).map_err(fail)?
                };
                route_pools.push((port, balancer));
                made.push((hash, port));
            }
            let serves = match spec.listeners.as_slice() {
                [] => None,
                bound => Some(
                    bound
                        .iter()
                        .map(|name| {
                            listener_index.get(name.as_str()).copied().ok_or_else(|| {
                                Error::UnknownListener {
                                    route: spec.name.clone(),
                                    listener: name.clone(),
                                }
                            })
                        })
                        .collect::<Result<Box<[u32]>, _>>()?,
                ),
            };
            states.push(RouteState {
                spec: Arc::clone(spec),
                serves,
                pools: match <[_; 1]>::try_from(route_pools) {
                    Ok([(port, pool)]) => RoutePools::One(port, pool),
                    Err(many) => RoutePools::PerPort(many.into_boxed_slice()),
                },
            });
            for &(hash, port) in &made {
                pools.insert(&states, hash, index, port);
            }
            for (host, pattern) in spec.hosts.iter().enumerate() {
                match pattern {
                    HostPattern::Any => {
                        if let Some(&earlier) = defaults
                            .iter()
                            .find(|&&d| overlap(&states[d as usize], &states[index as usize]))
                        {
                            return Err(routed_twice(&states, earlier, index, pattern));
                        }
                        defaults.push(index);
                    }
                    _ => {
                        if let Some(earlier) = names.insert(&states, index, host as u32) {
                            return Err(routed_twice(&states, earlier, index, pattern));
                        }
                    }
                }
            }
        }
        names.shrink_to_fit(&states);
        pools.shrink_to_fit(&states);
        let table = RouteTable {
            routes: states,
            names,
            defaults,
            pools,
        };
        Ok((table, pending))
    }

    /// The routes, in order.
    pub(crate) fn specs(&self) -> impl ExactSizeIterator<Item = &Arc<Route>> {
        self.routes.iter().map(|r| &r.spec)
    }

    /// The pool a changed route may take over: the one that served its first host on `port`,
    /// with the same settings, when no new route wants that pool as it is.
    /// Answers it with its entry in this table.
    fn taken_over(
        &self,
        spec: &Route,
        port: u16,
        wanted: &[u64],
    ) -> Option<(&Balancer, (u32, u16))> {
        let first = spec.hosts.first()?;
        let index = match first {
            HostPattern::Exact(h) => self.names.exact(&self.routes, h, None),
            HostPattern::Suffix(s) => self.names.suffix(&self.routes, s, None),
            HostPattern::Any => self.defaults.first().copied(),
        }?;
        let key = PoolKey::of(&self.routes.get(index as usize)?.spec, port);
        if !key.same_settings(&PoolKey::of(spec, port)) {
            return None;
        }
        let hash = self.pools.hasher.hash_one(key);
        if wanted.binary_search(&hash).is_ok() {
            return None;
        }
        self.pools.entry(&self.routes, hash, &key)
    }

    /// The route for a name on listener `listener` (its index): exact, then the longest
    /// matching `*.suffix`, then `*`. No name goes to `*` too. The name comes normalised from
    /// the peeker (or [`sni_peek::HostName::new`]), as the patterns do: nothing is lowercased or
    /// trimmed here.
    pub(crate) fn find(&self, name: Option<&str>, listener: u32) -> Option<&RouteState> {
        let on = Some(listener);
        let index = name
            .and_then(|name| {
                self.names.exact(&self.routes, name, on).or_else(|| {
                    // One probe per label: `a.b.example.org` tries `.b.example.org`,
                    // `.example.org`, `.org`, longest first.
                    name.match_indices('.')
                        .find_map(|(at, _)| self.names.suffix(&self.routes, &name[at..], on))
                })
            })
            .or_else(|| {
                let serving = |&&d: &&u32| self.routes[d as usize].serves(listener);
                self.defaults.iter().find(serving).copied()
            })?;
        self.routes.get(index as usize)
    }
}

/// Each listener name to its index; two listeners with one name are refused.
fn listener_names(listeners: &[Listener]) -> Result<HashMap<&str, u32>, Error> {
    let mut index = HashMap::new();
    for (i, l) in listeners.iter().enumerate() {
        if let Some(name) = &l.name {
            if index.insert(name.as_str(), i as u32).is_some() {
                return Err(Error::DuplicateName {
                    what: "listeners",
                    name: name.clone(),
                });
            }
        }
    }
    Ok(index)
}

/// Whether two routes serve a listener in common.
fn overlap(a: &RouteState, b: &RouteState) -> bool {
    match (&a.serves, &b.serves) {
        (None, _) | (_, None) => true,
        (Some(a), Some(b)) => a.iter().any(|l| b.contains(l)),
    }
}

fn routed_twice(states: &[RouteState], first: u32, second: u32, pattern: &HostPattern) -> Error {
    Error::RoutedTwice {
        pattern: pattern.to_string(),
        first: states[first as usize].spec.name.clone(),
        second: states[second as usize].spec.name.clone(),
    }
}

/// Every pool once, as the first route that uses it and the listening port it is for: the key is
/// read from that route, the pool is that route's.
struct Pools {
    hasher: foldhash::fast::RandomState,
    table: HashTable<(u32, u16)>,
}

impl Pools {
    fn key<'r>(routes: &'r [RouteState], (route, port): (u32, u16)) -> PoolKey<'r> {
        PoolKey::of(&routes[route as usize].spec, port)
    }

    /// The pool of `key` (whose hash is `hash`), among those of `routes`.
    fn get<'r>(
        &self,
        routes: &'r [RouteState],
        hash: u64,
        key: &PoolKey<'_>,
    ) -> Option<&'r Balancer> {
        self.entry(routes, hash, key).map(|(pool, _)| pool)
    }

    /// The pool of `key` with its entry.
    fn entry<'r>(
        &self,
        routes: &'r [RouteState],
        hash: u64,
        key: &PoolKey<'_>,
    ) -> Option<(&'r Balancer, (u32, u16))> {
        let &(route, port) = self
            .table
            .find(hash, |&entry| Self::key(routes, entry) == *key)?;
        Some((routes[route as usize].pool_exactly(port)?, (route, port)))
    }

    fn insert(&mut self, routes: &[RouteState], hash: u64, route: u32, port: u16) {
        let hasher = &self.hasher;
        self.table.insert_unique(hash, (route, port), |&entry| {
            hasher.hash_one(Self::key(routes, entry))
        });
    }

    fn shrink_to_fit(&mut self, routes: &[RouteState]) {
        let hasher = &self.hasher;
        self.table
            .shrink_to_fit(|&entry| hasher.hash_one(Self::key(routes, entry)));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.len()
    }
}

/// Exact names and `*.domain` suffixes (kept with their leading dot, `.domain`), to the routes
/// that have them, without a copy of any name: an entry is a route and the index of one of its
/// hosts, and a probe compares with that host.
#[derive(Default)]
struct Names {
    hasher: foldhash::fast::RandomState,
    exact: hashbrown::HashTable<(u32, u32)>,
    suffixes: hashbrown::HashTable<(u32, u32)>,
}

impl Names {
    /// Empty, with room for every name and suffix of `routes`: the tables never grow (and hash
    /// every name again) while the table is built.
    fn sized_for(routes: &[Arc<Route>]) -> Self {
        let patterns = routes.iter().flat_map(|r| r.hosts.iter());
        let (mut exact, mut suffixes) = (0, 0);
        for pattern in patterns {
            match pattern {
                HostPattern::Exact(_) => exact += 1,
                HostPattern::Suffix(_) => suffixes += 1,
                HostPattern::Any => {}
            }
        }
        Names {
            hasher: Default::default(),
            exact: HashTable::with_capacity(exact),
            suffixes: HashTable::with_capacity(suffixes),
        }
    }

    fn text(routes: &[RouteState], (route, host): (u32, u32)) -> &str {
        routes[route as usize].spec.hosts[host as usize].key()
    }

    /// Adds a route's host; when a route serving a listener in common has it already, adds
    /// nothing and answers that route.
    fn insert(&mut self, routes: &[RouteState], route: u32, host: u32) -> Option<u32> {
        let text = Self::text(routes, (route, host));
        let table = match routes[route as usize].spec.hosts[host as usize] {
            HostPattern::Suffix(_) => &mut self.suffixes,
            _ => &mut self.exact,
        };
        let hash = self.hasher.hash_one(text);
        let earlier = table.iter_hash(hash).find(|&&(r, h)| {
            Self::text(routes, (r, h)) == text
                && overlap(&routes[r as usize], &routes[route as usize])
        });
        if let Some(&(earlier, _)) = earlier {
            return Some(earlier);
        }
        let hasher = &self.hasher;
        table.insert_unique(hash, (route, host), |&e| {
            hasher.hash_one(Self::text(routes, e))
        });
        None
    }

    fn shrink_to_fit(&mut self, routes: &[RouteState]) {
        let hasher = &self.hasher;
        let rehash = |&e: &(u32, u32)| hasher.hash_one(Self::text(routes, e));
        self.exact.shrink_to_fit(rehash);
        self.suffixes.shrink_to_fit(rehash);
    }

    /// The route with exactly this name that serves `listener` (any route with it: `None`).
    fn exact(&self, routes: &[RouteState], name: &str, listener: Option<u32>) -> Option<u32> {
        self.find(&self.exact, routes, name, listener)
    }

    /// `suffix` with its leading dot.
    fn suffix(&self, routes: &[RouteState], suffix: &str, listener: Option<u32>) -> Option<u32> {
        self.find(&self.suffixes, routes, suffix, listener)
    }

    fn find(
        &self,
        table: &hashbrown::HashTable<(u32, u32)>,
        routes: &[RouteState],
        text: &str,
        listener: Option<u32>,
    ) -> Option<u32> {
        let is = |&(r, h): &(u32, u32)| {
            Self::text(routes, (r, h)) == text
                && listener.is_none_or(|l| routes[r as usize].serves(l))
        };
        table
            .find(self.hasher.hash_one(text), is)
            .map(|&(route, _)| route)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::{Mode, Route};

    fn listeners() -> Vec<Listener> {
        vec![
            Listener::new("127.0.0.1:8443".parse().unwrap(), Mode::Tls).named("https"),
            Listener::new("127.0.0.1:8080".parse().unwrap(), Mode::Http).named("http"),
        ]
    }

    /// Routes, each `(hosts, backends)`, serving every listener.
    fn routes(list: &[(&[&str], &[&str])]) -> Vec<Arc<Route>> {
        list.iter()
            .enumerate()
            .map(|(i, (hosts, backends))| {
                let backends = backends
                    .iter()
                    .map(|b| SocketAddr::new(b.parse().unwrap(), 443));
                let mut route = Route::new(hosts.iter().copied(), backends).unwrap();
                route.name = format!("{}#{i}", route.name);
                Arc::new(route)
            })
            .collect()
    }

    fn build(routes: &[Arc<Route>], old: Option<&RouteTable>) -> (RouteTable, PendingUpdates) {
        RouteTable::build(routes, &listeners(), old, Instant::now()).unwrap()
    }

    /// The first host of the route `name` goes to on the TLS listener, or `None` when unrouted.
    fn route_of(table: &RouteTable, name: Option<&str>) -> Option<String> {
        let route = table.find(name, 0)?;
        Some(route.spec.hosts[0].to_string())
    }

    #[test]
    fn exact_then_longest_suffix_then_default() {
        let (table, _) = build(
            &routes(&[
                (&["*.example.org"], &["::1"]),
                (&["*.b.example.org"], &["::2"]),
                (&["www.b.example.org", "example.org"], &["::3"]),
                (&["*.org"], &["::4"]),
            ]),
            None,
        );
        let find = |n: &str| route_of(&table, Some(n));
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
        assert_eq!(route_of(&table, None), None);
    }

    #[test]
    fn the_default_takes_no_name_and_every_unrouted_name() {
        let (table, _) = build(
            &routes(&[(&["www.example.com"], &["::1"]), (&["*"], &["::2"])]),
            None,
        );
        assert_eq!(
            route_of(&table, Some("www.example.com")).unwrap(),
            "www.example.com"
        );
        assert_eq!(route_of(&table, Some("example.com")).unwrap(), "*");
        assert_eq!(route_of(&table, None).unwrap(), "*");
    }

    #[test]
    fn routes_bound_to_listeners_are_found_only_there() {
        let mut list = routes(&[
            (&["www.example.com"], &["::1"]),
            (&["www.example.com"], &["::2"]),
            (&["*.example.com"], &["::3"]),
            (&["*"], &["::4"]),
        ]);
        let bind = |r: &mut Arc<Route>, to: &str| Arc::make_mut(r).listeners = vec![to.into()];
        bind(&mut list[0], "https");
        bind(&mut list[1], "http");
        bind(&mut list[2], "https");
        bind(&mut list[3], "http");
        let (table, _) = build(&list, None);
        let on = |name: &str, listener| table.find(Some(name), listener).map(|r| &*r.spec.name);
        assert_eq!(on("www.example.com", 0), Some("www.example.com#0"));
        assert_eq!(on("www.example.com", 1), Some("www.example.com#1"));
        // Unrouted on a listener, a name falls through to what serves that listener.
        assert_eq!(on("shop.example.com", 0), Some("*.example.com#2"));
        assert_eq!(on("shop.example.com", 1), Some("*#3"));
        assert_eq!(on("example.net", 0), None);
        assert_eq!(table.find(None, 1).map(|r| &*r.spec.name), Some("*#3"));
    }

    #[test]
    fn a_pattern_twice_on_one_listener_and_unknown_listeners_are_refused() {
        let mut list = routes(&[(&["a.example"], &["::1"]), (&["A.example."], &["::2"])]);
        let refused = |list: &[Arc<Route>]| {
            RouteTable::build(list, &listeners(), None, Instant::now())
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(
            refused(&list).unwrap(),
            "a.example is routed twice: by route a.example#0 and by route a.example#1"
        );
        Arc::make_mut(&mut list[0]).listeners = vec!["https".into()];
        assert!(refused(&list).is_some(), "the second serves every listener");
        Arc::make_mut(&mut list[1]).listeners = vec!["http".into()];
        assert_eq!(refused(&list), None);
        Arc::make_mut(&mut list[1]).listeners = vec!["htp".into()];
        assert_eq!(
            refused(&list).unwrap(),
            "route a.example#1: no listener is named \"htp\""
        );
        let defaults = routes(&[(&["*"], &["::1"]), (&["*"], &["::2"])]);
        assert!(refused(&defaults).unwrap().contains("* is routed twice"));
        let mut same_name = routes(&[(&["a.example"], &["::1"]), (&["b.example"], &["::2"])]);
        Arc::make_mut(&mut same_name[1]).name = "a.example#0".into();
        assert_eq!(
            refused(&same_name).unwrap(),
            "two routes are named \"a.example#0\""
        );
    }

    #[test]
    fn routes_with_equal_backends_share_a_pool() {
        let list = routes(&[
            (&["a.example"], &["::1", "::2"]),
            (&["b.example"], &["::1", "::2"]),
            (&["c.example"], &["::2", "::1"]),
        ]);
        let (table, _) = build(&list, None);
        let pool = |i: usize| table.routes[i].pool(8443).unwrap().clone();
        assert!(Balancer::same(&pool(0), &pool(1)));
        assert!(
            !Balancer::same(&pool(0), &pool(2)),
            "the order is part of the key"
        );
        assert_eq!(table.pools.len(), 2);
        // A different weight, balance or connect timeout is a different pool: a route's
        // timeouts count against its backends too.
        let mut other = list.clone();
        Arc::make_mut(&mut other[1]).backends[0].weight = 2;
        assert_eq!(build(&other, None).0.pools.len(), 3);
        let mut other = list.clone();
        Arc::make_mut(&mut other[1]).connect_timeout = core::time::Duration::from_millis(50);
        assert_eq!(build(&other, None).0.pools.len(), 3);
    }

    #[test]
    fn a_rebuild_keeps_unchanged_pools_and_hands_changed_ones_over() {
        let before = routes(&[
            (&["a.example"], &["::1", "::2"]),
            (&["b.example"], &["::1", "::2"]),
            (&["c.example"], &["::3", "::4"]),
        ]);
        let (old, _) = build(&before, None);
        let old_pool = |i: usize| old.routes[i].pool(8443).unwrap().clone();
        // a keeps its backends, b changes but a still uses the shared pool, c changes alone.
        let after = routes(&[
            (&["a.example"], &["::1", "::2"]),
            (&["b.example"], &["::1", "::5"]),
            (&["c.example"], &["::3", "::6"]),
        ]);
        let (new, pending) = build(&after, Some(&old));
        let new_pool = |i: usize| new.routes[i].pool(8443).unwrap().clone();
        assert!(Balancer::same(&new_pool(0), &old_pool(0)));
        assert!(
            !Balancer::same(&new_pool(1), &old_pool(1)),
            "a still wants it as it is"
        );
        assert!(
            Balancer::same(&new_pool(2), &old_pool(2)),
            "taken over by c"
        );
        assert_eq!(pending.len(), 1);
        pending.apply(core::time::Duration::ZERO);
        // The next rebuild finds the updated pool under its new key.
        let (again, pending) = build(&after, Some(&new));
        assert!(Balancer::same(
            &again.routes[2].pool(8443).unwrap().clone(),
            &old_pool(2)
        ));
        assert_eq!(pending.len(), 0);
    }
}
