//! The pool: an immutable snapshot of the membership, published atomically, plus per-backend
//! state keyed by identity that every snapshot shares.
//!
//! ```text
//!  update(list) ──build──▶ Snapshot { entries, algorithm per tier } ──ArcSwap──▶ readers
//!                               │ entries share, by identity:
//!                               ▼
//!                    BackendState { in_flight, ejection, active up/down, ramp }
//! ```

use core::fmt;
use core::ops::Deref;
use core::sync::atomic::Ordering;
use core::time::Duration;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::{ArcSwap, Guard};

use crate::algorithm::{Algorithm, Member, Proposal};
use crate::backend::{Backend, BackendId, Tier};
use crate::candidate::{Candidate, Candidates, InFlight};
use crate::config::{PoolConfig, nanos};
use crate::entry::{Entry, Filter};
use crate::health::{BackendState, HealthStatus, NO_RAMP, Shared, StateRef};
use crate::plan::Plan;
use crate::rng::mix64;
use crate::route::{Decision, Route};
use crate::tried::Tried;
use crate::{PoolError, Rng};

/// A set of weighted backends with health, read lock-free by any number of threads.
///
/// Small: a pool of two backends keeps a few hundred bytes on the heap (see
/// `tests/memory.rs`), so a proxy can hold one per hosted site. Backends are found by identity
/// in the current snapshot (a scan for a few, a sorted index beyond), not in a map of their own.
pub struct Pool<A: Algorithm> {
    current: ArcSwap<Snapshot<A>>,
    shared: Arc<Shared>,
    /// Serializes updates; counts rebuilds (each one's random choices derive from the count).
    rebuilds: Mutex<u64>,
    algorithm: A::Config,
    seed: u64,
}

impl<A: Algorithm> fmt::Debug for Pool<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("current", &self.current.load())
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl<A: Algorithm> Pool<A> {
    /// A pool over `backends`. `seed` fixes every per-rebuild random choice (such as smooth
    /// round-robin's start offset), so a run reproduces; give each proxy of a fleet its own.
    pub fn new(
        backends: impl IntoIterator<Item = Backend>,
        config: PoolConfig,
        algorithm: A::Config,
        seed: u64,
    ) -> Result<Self, PoolError> {
        config.validate()?;
        let shared = Arc::new(Shared::new(config));
        let snapshot = build(
            backends.into_iter().collect(),
            None,
            &shared,
            &algorithm,
            rebuild_seed(seed, 0),
        )?;
        Ok(Self {
            current: ArcSwap::from_pointee(snapshot),
            shared,
            rebuilds: Mutex::new(1),
            algorithm,
            seed,
        })
    }

    /// Replaces membership and weights by publishing a new snapshot. Health and in-flight counts
    /// carry over by identity; a newcomer slow-starts from `now`. Readers never wait and never see
    /// a half-built state; on error nothing changes.
    pub fn update(
        &self,
        backends: impl IntoIterator<Item = Backend>,
        now: Duration,
    ) -> Result<(), PoolError> {
        let mut rebuilds = self.rebuilds.lock().unwrap_or_else(PoisonError::into_inner);
        // Under the lock the current snapshot is the last one published: its states carry over.
        let current = self.current.load_full();
        let snapshot = build(
            backends.into_iter().collect(),
            Some((nanos(now), &current)),
            &self.shared,
            &self.algorithm,
            rebuild_seed(self.seed, *rebuilds),
        )?;
        *rebuilds += 1;
        self.current.store(Arc::new(snapshot));
        Ok(())
    }

    /// The current snapshot, without a lock or an allocation. Hold it for one pick and its retries,
    /// not for a whole connection (it is an arc-swap guard): to keep a backend's count for as long
    /// as the connection lasts, [`detach`](Candidate::detach) the chosen candidate.
    pub fn load(&self) -> SnapshotRef<A> {
        SnapshotRef(self.current.load())
    }

    /// The backend for one request, in one call: loads the current snapshot, picks as
    /// [`Snapshot::pick`] does, and lets the snapshot go. The pick is counted in flight until the
    /// returned [`InFlight`] is dropped; it is owned (`Send + 'static`), so it can move into the
    /// task that serves the connection, and [`InFlight::id`] says where to connect.
    ///
    /// ```
    /// use backend_pool::{Backend, Pool, Rng, SmoothWeighted};
    /// use std::time::Duration;
    ///
    /// let backends = [Backend::new("a", 1), Backend::new("b", 1)];
    /// let pool = Pool::<SmoothWeighted>::new(backends, Default::default(), Default::default(), 1)?;
    /// let now = Duration::ZERO;
    /// let conn = pool.pick(b"", now, &mut Rng::new(1))?;
    /// assert_eq!(pool.status(conn.id(), now).unwrap().in_flight, 1);
    /// conn.record_success(now);
    /// # Ok::<(), backend_pool::PoolError>(())
    /// ```
    ///
    /// For retries, or many picks in a row, load the snapshot once and use
    /// [`Snapshot::candidates`] and [`Snapshot::pick`], which borrow it: bind it first
    /// (`let snapshot = pool.load();`), since a candidate cannot outlive the statement that made a
    /// temporary snapshot (`pool.load().pick(..)` held in a variable is error E0716).
    pub fn pick(&self, key: &[u8], now: Duration, rng: &mut Rng) -> Result<InFlight, PoolError> {
        self.load().pick(key, now, rng).map(Candidate::detach)
    }

    /// The current snapshot as an owned `Arc`, to keep for longer.
    pub fn snapshot(&self) -> Arc<Snapshot<A>> {
        self.current.load_full()
    }

    /// Passive health by identity (for outcomes learnt away from the [`Candidate`]); false when
    /// the identity is not in the pool.
    pub fn record_success(&self, id: &BackendId, now: Duration) -> bool {
        self.with_state(id, |s| s.record_success(nanos(now)))
    }

    /// Passive health by identity; false when the identity is not in the pool.
    pub fn record_failure(&self, id: &BackendId, now: Duration) -> bool {
        self.with_state(id, |s| s.record_failure(nanos(now)))
    }

    /// Active health: the result of one probe; false when the identity is not in the pool.
    pub fn record_probe(&self, id: &BackendId, ok: bool, now: Duration) -> bool {
        self.with_state(id, |s| s.record_probe(ok, nanos(now)))
    }

    /// Health and in-flight count of one backend at `now`.
    pub fn status(&self, id: &BackendId, now: Duration) -> Option<HealthStatus> {
        let snapshot = self.current.load();
        snapshot.find(id).map(|e| e.state.status(nanos(now)))
    }

    /// The configuration the pool was built with (durations as the pool uses them: whole
    /// nanoseconds, at most 584 years).
    pub fn config(&self) -> PoolConfig {
        self.shared.config.config()
    }

    fn with_state(&self, id: &BackendId, f: impl FnOnce(&BackendState)) -> bool {
        let snapshot = self.current.load();
        snapshot.find(id).map(|e| f(&e.state)).is_some()
    }

    /// Whether [`Pool::new`] would accept `backends` with these settings, without building
    /// anything: the same errors in the same cases (too many backends, a duplicate identity, an
    /// invalid configuration, what the algorithm refuses, such as a Maglev table over its limit),
    /// at the cost of sorting the identities. An empty list, all weights 0 or only backups are
    /// accepted, as `new` accepts them (picks then say why there is nothing to pick).
    /// [`update`](Self::update) accepts exactly the lists `new` accepts with the pool's settings.
    ///
    /// ```
    /// use backend_pool::{Backend, Pool, PoolConfig, PoolError, SmoothWeighted};
    ///
    /// let twice = [Backend::new("a", 1), Backend::new("a", 2)];
    /// let config = PoolConfig::default();
    /// let check = Pool::<SmoothWeighted>::check(&twice, &config, &Default::default());
    /// assert_eq!(check, Err(PoolError::DuplicateBackend));
    /// ```
    pub fn check(
        backends: &[Backend],
        config: &PoolConfig,
        algorithm: &A::Config,
    ) -> Result<(), PoolError> {
        config.validate()?;
        check_count(backends.len())?;
        if by_identity(backends).is_none() {
            return Err(PoolError::DuplicateBackend);
        }
        let mut members = Vec::new();
        for tier in [Tier::Primary, Tier::Backup] {
            tier_members(backends.iter(), tier, &mut members);
            if !members.is_empty() {
                A::check(&members, algorithm)?;
            }
        }
        Ok(())
    }
}

/// Rebuild `count`'s seed: every random choice of that rebuild derives from it.
fn rebuild_seed(seed: u64, count: u64) -> u64 {
    mix64(seed ^ (count + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

fn check_count(count: usize) -> Result<(), PoolError> {
    let limit = u32::MAX as usize - 1;
    if count > limit {
        return Err(PoolError::TooManyBackends { count, limit });
    }
    Ok(())
}

/// Up to this many backends, one is found by identity with a scan (as fast as a search, and no
/// index to keep); beyond, by binary search in a sorted index.
const SCAN: usize = 16;

/// Positions of `backends` sorted by identity, or `None` when an identity appears twice.
fn by_identity(backends: &[Backend]) -> Option<Vec<u32>> {
    let mut order: Vec<u32> = (0..backends.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| backends[a as usize].id.cmp(&backends[b as usize].id));
    let unique = order
        .windows(2)
        .all(|w| backends[w[0] as usize].id != backends[w[1] as usize].id);
    unique.then_some(order)
}

/// The members of one tier: weighted backends in list order.
fn tier_members<'b>(
    backends: impl Iterator<Item = &'b Backend>,
    tier: Tier,
    members: &mut Vec<Member>,
) {
    members.clear();
    members.extend(
        backends
            .enumerate()
            .filter(|(_, b)| b.tier == tier && b.weight > 0)
            .map(|(i, b)| Member {
                index: i as u32,
                weight: b.weight,
                id_hash: b.id.stable_hash(),
            }),
    );
}

/// A snapshot over `list`. `running` is `None` at process start, else the time of the update
/// and the snapshot it replaces, whose states carry over by identity.
fn build<A: Algorithm>(
    list: Vec<Backend>,
    running: Option<(u64, &Snapshot<A>)>,
    shared: &Arc<Shared>,
    config: &A::Config,
    seed: u64,
) -> Result<Snapshot<A>, PoolError> {
    check_count(list.len())?;
    let order = by_identity(&list).ok_or(PoolError::DuplicateBackend)?;
    let mut members = Vec::new();
    let mut tiers: [Option<A>; 2] = [None, None];
    for tier in [Tier::Primary, Tier::Backup] {
        tier_members(list.iter(), tier, &mut members);
        if !members.is_empty() {
            let tier_seed = mix64(seed ^ tier.index() as u64);
            tiers[tier.index()] = Some(A::build(&members, config, tier_seed)?);
        }
    }
    let size = list.len();
    let entries: Box<[Entry]> = list
        .into_iter()
        .map(|backend| {
            let state = match running.and_then(|(_, old)| old.find(&backend.id)) {
                Some(old) => old.state.clone(),
                // A newcomer to a running pool ramps up; at process start nobody does.
                None => StateRef::new(
                    Arc::clone(shared),
                    running.map_or(NO_RAMP, |(now, _)| now),
                    size,
                ),
            };
            Entry { backend, state }
        })
        .collect();
    let [primary, backup] = tiers;
    Ok(Snapshot {
        by_id: (entries.len() > SCAN).then(|| Box::new(order.into_boxed_slice())),
        entries,
        primary,
        backup: backup.map(Box::new),
        plan: Plan::new(),
        shared: Arc::clone(shared),
    })
}

/// A loaded snapshot (see [`Pool::load`]).
pub struct SnapshotRef<A: Algorithm>(Guard<Arc<Snapshot<A>>>);

impl<A: Algorithm> Deref for SnapshotRef<A> {
    type Target = Snapshot<A>;
    fn deref(&self) -> &Snapshot<A> {
        &self.0
    }
}

impl<A: Algorithm> fmt::Debug for SnapshotRef<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

/// One immutable membership: backends in the order given, and the algorithm built per tier.
#[derive(Debug)]
pub struct Snapshot<A: Algorithm> {
    entries: Box<[Entry]>,
    /// Entry positions sorted by identity, beyond `SCAN` entries (boxed twice: one pointer here).
    by_id: Option<Box<Box<[u32]>>>,
    primary: Option<A>,
    /// Rare, so boxed: an empty backup tier costs a pointer, not a whole algorithm.
    backup: Option<Box<A>>,
    /// Cached routing decision, this snapshot's own.
    plan: Plan,
    shared: Arc<Shared>,
}

impl<A: Algorithm> Snapshot<A> {
    /// The backends, in the order given.
    pub fn backends(&self) -> impl ExactSizeIterator<Item = &Backend> {
        self.entries.iter().map(|e| &e.backend)
    }

    /// How many backends (drained ones included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No backends at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The algorithm built over one tier, if the tier has a backend with weight.
    pub fn algorithm(&self, tier: Tier) -> Option<&A> {
        self.tier(tier.index())
    }

    #[inline]
    fn tier(&self, index: usize) -> Option<&A> {
        if index == 0 {
            self.primary.as_ref()
        } else {
            self.backup.as_deref()
        }
    }

    /// The entry of one identity.
    pub(crate) fn find(&self, id: &BackendId) -> Option<&Entry> {
        let Some(by_id) = &self.by_id else {
            return self.entries.iter().find(|e| e.backend.id == *id);
        };
        let at = by_id
            .binary_search_by(|&i| self.entries[i as usize].backend.id.cmp(id))
            .ok()?;
        self.entries.get(by_id[at] as usize)
    }

    /// Candidates offered per request at most.
    pub(crate) fn max_attempts(&self) -> usize {
        self.shared.config.max_attempts as usize
    }

    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The candidates for one request: `key` feeds hashing algorithms (may be empty for the
    /// others), `now` is the caller's monotonic clock (it must not go backwards), `rng` the
    /// caller's generator.
    ///
    /// ```
    /// use backend_pool::{Backend, Maglev, Pool, PoolConfig, Rng};
    /// use std::time::Duration;
    ///
    /// let backends = (1..=4).map(|i| Backend::new(format!("web-{i}").as_str(), 1));
    /// let config = PoolConfig { failures_to_eject: 1, ..Default::default() };
    /// let pool = Pool::<Maglev>::new(backends, config, Default::default(), 7)?;
    /// let (mut rng, now) = (Rng::new(1), Duration::from_secs(5));
    ///
    /// let snapshot = pool.load();
    /// let mut refused = None;
    /// for candidate in snapshot.candidates(b"198.51.100.7", now, &mut rng)? {
    ///     if refused.is_none() {
    ///         // say the first backend refuses the connection: report it, try the next
    ///         candidate.record_failure(now);
    ///         refused = Some(candidate.backend().id.clone());
    ///         continue;
    ///     }
    ///     candidate.record_success(now);
    ///     break; // a real proxy keeps `candidate` alive while the connection is open
    /// }
    /// // the refused backend is ejected: the same client now goes straight elsewhere
    /// let refused = refused.unwrap();
    /// assert!(pool.status(&refused, now).unwrap().ejected);
    /// assert_ne!(snapshot.pick(b"198.51.100.7", now, &mut rng)?.backend().id, refused);
    /// # Ok::<(), backend_pool::PoolError>(())
    /// ```
    pub fn candidates<'s, 'r>(
        &'s self,
        key: &'r [u8],
        now: Duration,
        rng: &'r mut Rng,
    ) -> Result<Candidates<'s, 'r, A>, PoolError> {
        let now = nanos(now);
        Candidates::new(self, self.route(now)?, key, rng, now)
    }

    /// The first candidate only, counted in flight until dropped.
    #[inline]
    pub fn pick(
        &self,
        key: &[u8],
        now: Duration,
        rng: &mut Rng,
    ) -> Result<Candidate<'_>, PoolError> {
        match self.first_proposal(key, nanos(now), rng)? {
            Some(entry) => Ok(Candidate::counted(entry)),
            None => self.slow_pick(key, now, rng),
        }
    }

    /// The first choice, same rules as [`pick`](Self::pick), but not counted in flight: for
    /// callers that need no count. Saves two atomic read-modify-writes per pick. Refused at compile
    /// time for algorithms that balance on those counts ([`LeastConn`](crate::LeastConn)), whose
    /// balancing uncounted picks would silently break:
    ///
    /// ```compile_fail
    /// use backend_pool::{Backend, LeastConn, Pool, PoolConfig, Rng};
    /// let pool = Pool::<LeastConn>::new([Backend::new("a", 1)], PoolConfig::default(), (), 1)?;
    /// let mut rng = Rng::new(1);
    /// pool.load().select(b"", std::time::Duration::ZERO, &mut rng)?;
    /// # Ok::<(), backend_pool::PoolError>(())
    /// ```
    #[inline]
    pub fn select(&self, key: &[u8], now: Duration, rng: &mut Rng) -> Result<&Backend, PoolError> {
        const {
            assert!(
                !A::COUNTS_IN_FLIGHT,
                "select does not count in flight: use pick with this algorithm"
            );
        }
        match self.first_proposal(key, nanos(now), rng)? {
            Some(entry) => Ok(&entry.backend),
            None => self.slow_pick(key, now, rng).map(|c| c.backend()),
        }
    }

    /// The algorithm's first proposal when it is usable, as it nearly always is: no retry state.
    #[inline]
    fn first_proposal(
        &self,
        key: &[u8],
        now: u64,
        rng: &mut Rng,
    ) -> Result<Option<&Entry>, PoolError> {
        static NOTHING_TRIED: Tried = Tried::new();
        let route = self.route(now)?;
        let algorithm = self.tier(route.tier.index()).ok_or(PoolError::NoHealthy)?;
        let filter = Filter {
            entries: &self.entries,
            route,
            now,
            tried: &NOTHING_TRIED,
        };
        let mut cursor = 0;
        let mut proposal = Proposal {
            key,
            rng,
            attempt: 0,
            cursor: &mut cursor,
            filter: &filter,
        };
        Ok(algorithm
            .propose(&mut proposal)
            .and_then(|index| filter.accepts::<A>(index, key)))
    }

    #[cold]
    fn slow_pick(
        &self,
        key: &[u8],
        now: Duration,
        rng: &mut Rng,
    ) -> Result<Candidate<'_>, PoolError> {
        self.candidates(key, now, rng)?
            .next()
            .ok_or(PoolError::NoHealthy)
    }

    /// Which tier serves, whether health is ignored (panic mode), and whether every member of
    /// the tier is in service at full weight. Recomputed, O(n), only after a health transition or
    /// when an ejection or a ramp among this snapshot's members has run out; otherwise a handful
    /// of loads.
    #[inline]
    pub(crate) fn route(&self, now: u64) -> Result<Route, PoolError> {
        let generation = self.shared.generation.load(Ordering::SeqCst);
        let decision = match self.plan.cached(generation, now) {
            Some(decision) => decision,
            None => {
                let (decision, until) = self.decide(now);
                self.plan.store(generation, decision, until);
                decision
            }
        };
        decision.route()
    }

    #[cold]
    /// The decision at `now` (a route is `clear` when every member of the serving tier is in
    /// service and none ramps), and when it may change without a health transition: the earliest end of an
    /// ejection or a slow-start ramp among this snapshot's members.
    fn decide(&self, now: u64) -> (Decision, u64) {
        let (mut total, mut healthy, mut clear) = ([0u64; 2], [0u64; 2], [true; 2]);
        let mut until = u64::MAX;
        for e in self.entries.iter().filter(|e| e.backend.weight > 0) {
            let t = e.backend.tier.index();
            total[t] += 1;
            let in_service = e.state.in_service(now);
            healthy[t] += u64::from(in_service);
            let ends = e.state.ejected_until();
            if ends > now {
                until = until.min(ends);
            }
            let ramp = e.state.ramp_end(now);
            if let Some(end) = ramp {
                until = until.min(end);
            }
            clear[t] &= in_service && ramp.is_none();
        }
        let decision = match self.route_for(total, healthy) {
            Decision::Serve(route) => Decision::Serve(Route {
                clear: clear[route.tier.index()],
                ..route
            }),
            other => other,
        };
        (decision, until)
    }

    /// The decision from the weighted members (`total`) and those in service (`healthy`) per
    /// tier, before `clear` is known.
    fn route_for(&self, total: [u64; 2], healthy: [u64; 2]) -> Decision {
        if total == [0, 0] {
            return if self.entries.is_empty() {
                Decision::Empty
            } else {
                Decision::AllDrained
            };
        }
        let panic = u64::from(self.shared.config.panic_threshold_percent);
        let serve = |tier: Tier| {
            let t = tier.index();
            Decision::Serve(Route {
                tier,
                panic: healthy[t] * 100 < panic * total[t],
                clear: false,
            })
        };
        if healthy[0] > 0 {
            serve(Tier::Primary)
        } else if healthy[1] > 0 {
            serve(Tier::Backup)
        } else if panic == 0 {
            Decision::NoHealthy
        } else {
            // Nobody healthy: panic mode on the primaries, or on the backups when there are none.
            let tier = if total[0] > 0 {
                Tier::Primary
            } else {
                Tier::Backup
            };
            Decision::Serve(Route {
                tier,
                panic: true,
                clear: false,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LeastConn, Maglev, MaglevConfig, SmoothConfig, SmoothWeighted, WeightedRandom};

    const T0: Duration = Duration::ZERO;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn named(weights: &[u32]) -> Vec<Backend> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| Backend::new(format!("b{i}").as_str(), w))
            .collect()
    }

    fn index_of<A: Algorithm>(snapshot: &Snapshot<A>, backend: &Backend) -> usize {
        snapshot.backends().position(|b| b == backend).unwrap()
    }

    /// Picks `n` times (guards dropped at once) and counts per backend.
    fn counts<A: Algorithm>(pool: &Pool<A>, n: usize, now: Duration, rng: &mut Rng) -> Vec<u64> {
        let snapshot = pool.load();
        let mut counts = vec![0u64; snapshot.len()];
        for i in 0..n {
            let key = (i as u64).to_le_bytes();
            let pick = snapshot.pick(&key, now, rng).unwrap();
            counts[index_of(&snapshot, pick.backend())] += 1;
        }
        counts
    }

    fn within_4_sigma(counts: &[u64], weights: &[u32]) {
        let n: u64 = counts.iter().sum();
        let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
        for (&c, &w) in counts.iter().zip(weights) {
            let p = f64::from(w) / total;
            let mean = n as f64 * p;
            let sigma = (n as f64 * p * (1.0 - p)).sqrt();
            assert!(
                (c as f64 - mean).abs() <= 4.0 * sigma.max(0.5),
                "{counts:?} vs {weights:?}"
            );
        }
    }

    fn strict() -> PoolConfig {
        PoolConfig {
            failures_to_eject: 1,
            base_ejection: secs(10),
            panic_threshold_percent: 0,
            max_attempts: 32,
            ..Default::default()
        }
    }

    #[test]
    fn empty_drained_duplicate_and_bad_config_are_typed_errors() {
        let mut rng = Rng::new(1);
        let pool = Pool::<SmoothWeighted>::new([], strict(), Default::default(), 1).unwrap();
        assert_eq!(
            pool.load().pick(b"", T0, &mut rng).unwrap_err(),
            PoolError::Empty
        );
        pool.update(named(&[0, 0]), T0).unwrap();
        assert_eq!(
            pool.load().pick(b"", T0, &mut rng).unwrap_err(),
            PoolError::AllDrained
        );
        let dup = [Backend::new("x", 1), Backend::new("x", 2)];
        assert_eq!(pool.update(dup, T0), Err(PoolError::DuplicateBackend));
        assert_eq!(pool.load().len(), 2, "a failed update changes nothing");
        let bad = PoolConfig {
            rise: 0,
            ..Default::default()
        };
        assert!(Pool::<Maglev>::new(named(&[1]), bad, Default::default(), 1).is_err());
    }

    /// `check` says what `new` (and `update` on a pool with the same settings) would say, for
    /// every edge case, without building.
    fn check_agrees_with_new<A: Algorithm>(algorithm: A::Config) {
        let many: Vec<Backend> = (0..40)
            .map(|i| Backend::new(format!("m{i}").as_str(), 1))
            .collect();
        let lists: Vec<Vec<Backend>> = vec![
            vec![],
            named(&[0]),
            named(&[0, 0, 0]),
            named(&[u32::MAX, u32::MAX, u32::MAX]),
            named(&[u32::MAX, 1, 0]),
            vec![Backend::new("x", 1), Backend::new("x", 2)],
            vec![
                Backend::new("x", 0),
                Backend::new("y", 1),
                Backend::new("x", 0).backup(),
            ],
            named(&[3, 1]).into_iter().map(Backend::backup).collect(),
            vec![Backend::new("p", 0), Backend::new("b", 2).backup()],
            (1..=20)
                .map(|i| Backend::new(format!("s{i}").as_str(), i))
                .collect(),
            many.clone(),
            many.iter().cloned().chain([many[17].clone()]).collect(),
        ];
        let configs = [
            PoolConfig::default(),
            strict(),
            PoolConfig {
                rise: 0,
                ..Default::default()
            },
            PoolConfig {
                max_attempts: 33,
                ..Default::default()
            },
        ];
        let name = core::any::type_name::<A>();
        for config in configs {
            let running = Pool::<A>::new(named(&[1, 2]), config, algorithm.clone(), 1);
            for list in &lists {
                let new = Pool::<A>::new(list.clone(), config, algorithm.clone(), 1).map(drop);
                let check = Pool::<A>::check(list, &config, &algorithm);
                assert_eq!(check, new, "{name} {list:?} {config:?}");
                if let Ok(pool) = &running {
                    let update = pool.update(list.clone(), T0);
                    assert_eq!(check, update, "{name} update {list:?}");
                }
            }
        }
    }

    #[test]
    fn check_says_what_new_and_update_would() {
        check_agrees_with_new::<SmoothWeighted>(SmoothConfig::default());
        check_agrees_with_new::<SmoothWeighted>(SmoothConfig {
            random_start: false,
            max_period: 1,
        });
        check_agrees_with_new::<LeastConn>(());
        check_agrees_with_new::<WeightedRandom>(());
        check_agrees_with_new::<Maglev>(Default::default());
        for maglev in [
            // 40 backends need 4000 slots: over the limit, while 20 fit
            MaglevConfig {
                min_table_size: 0,
                max_table_size: 3000,
                ..Default::default()
            },
            MaglevConfig {
                slots_per_backend: 0,
                ..Default::default()
            },
        ] {
            check_agrees_with_new::<Maglev>(maglev);
        }
        // the cases above do reach each error
        let config = PoolConfig::default();
        let twice = [Backend::new("x", 1), Backend::new("x", 1).backup()];
        assert_eq!(
            Pool::<LeastConn>::check(&twice, &config, &()),
            Err(PoolError::DuplicateBackend)
        );
        let tight = MaglevConfig {
            min_table_size: 0,
            max_table_size: 3000,
            ..Default::default()
        };
        let forty: Vec<Backend> = (0..40)
            .map(|i| Backend::new(format!("m{i}").as_str(), 1))
            .collect();
        assert!(matches!(
            Pool::<Maglev>::check(&forty, &config, &tight),
            Err(PoolError::TableTooLarge { .. })
        ));
        assert_eq!(Pool::<Maglev>::check(&forty[..20], &config, &tight), Ok(()));
    }

    #[test]
    fn exact_counts_over_whole_cycles_from_a_random_start() {
        let weights = [5, 3, 1, 0, 7];
        for seed in 0..5 {
            let pool =
                Pool::<SmoothWeighted>::new(named(&weights), strict(), Default::default(), seed)
                    .unwrap();
            let k = 4;
            let c = counts(&pool, 16 * k, T0, &mut Rng::new(seed));
            let expected: Vec<u64> = weights.iter().map(|&w| u64::from(w) * k as u64).collect();
            assert_eq!(c, expected);
        }
    }

    #[test]
    fn each_rebuild_starts_somewhere_else_reproducibly_by_seed() {
        let first_picks = |seed: u64| -> Vec<String> {
            let pool =
                Pool::<SmoothWeighted>::new(named(&[1; 8]), strict(), Default::default(), seed)
                    .unwrap();
            (0..40)
                .map(|round| {
                    pool.update(named(&[1; 8]), secs(round)).unwrap();
                    let snapshot = pool.load();
                    let pick = snapshot.pick(b"", secs(round), &mut Rng::new(0)).unwrap();
                    pick.backend().id.to_string()
                })
                .collect()
        };
        let a = first_picks(1);
        assert_eq!(a, first_picks(1), "same seed, same starts");
        assert_ne!(a, first_picks(2));
        let mut distinct = a.clone();
        distinct.sort();
        distinct.dedup();
        assert!(distinct.len() >= 6, "starts spread over the cycle: {a:?}");
    }

    /// Smooth round-robin over 5, 1, 1 from the start of its cycle, `a a b a c a a`.
    fn nginx_pool() -> Pool<SmoothWeighted> {
        let config = SmoothConfig {
            random_start: false,
            ..Default::default()
        };
        Pool::new(named(&[5, 1, 1]), strict(), config, 1).unwrap()
    }

    #[test]
    fn nginx_sequence_through_the_pool() {
        let pool = nginx_pool();
        let snapshot = pool.load();
        let mut rng = Rng::new(0);
        let seq: String = (0..14)
            .map(|_| {
                let p = snapshot.pick(b"", T0, &mut rng).unwrap();
                p.backend().id.to_string().replace('b', "")
            })
            .collect();
        assert_eq!(seq, "00102000010200");
    }

    fn zero_weight_never_picked<A: Algorithm>() {
        let weights = [3, 0, 2, 0, 1];
        let pool = Pool::<A>::new(named(&weights), strict(), Default::default(), 3).unwrap();
        let snapshot = pool.load();
        let mut rng = Rng::new(3);
        for i in 0..300u64 {
            let key = i.to_le_bytes();
            let got: Vec<usize> = snapshot
                .candidates(&key, T0, &mut rng)
                .unwrap()
                .map(|c| index_of(&snapshot, c.backend()))
                .collect();
            let mut sorted = got.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, vec![0, 2, 4], "each eligible exactly once: {got:?}");
        }
    }

    #[test]
    fn zero_weight_never_picked_and_retries_cover_all_once() {
        zero_weight_never_picked::<SmoothWeighted>();
        zero_weight_never_picked::<LeastConn>();
        zero_weight_never_picked::<Maglev>();
        zero_weight_never_picked::<WeightedRandom>();
    }

    #[test]
    fn select_follows_pick_rules_without_counting() {
        let pool = Pool::<SmoothWeighted>::new(named(&[2, 0, 1]), strict(), Default::default(), 4)
            .unwrap();
        pool.record_failure(&"b2".into(), T0);
        let snapshot = pool.load();
        let mut rng = Rng::new(1);
        for _ in 0..30 {
            let b = snapshot.select(b"", secs(1), &mut rng).unwrap();
            assert_eq!(b.id.to_string(), "b0");
        }
        assert_eq!(pool.status(&"b0".into(), T0).unwrap().in_flight, 0);
    }

    #[test]
    fn smooth_skips_keep_exact_shares_for_the_others() {
        let weights = [5, 3, 2, 1];
        let pool =
            Pool::<SmoothWeighted>::new(named(&weights), strict(), Default::default(), 8).unwrap();
        pool.record_failure(&"b1".into(), T0);
        let k = 5;
        // the cycle minus b1's slots: 8 picks per cycle, in exact shares
        let c = counts(&pool, 8 * k, secs(1), &mut Rng::new(1));
        assert_eq!(c, vec![5 * k as u64, 0, 2 * k as u64, k as u64]);
    }

    #[test]
    fn least_conn_compares_two_distinct_backends() {
        // With one connection held on b0, a P2C that compared b0 with itself would sometimes
        // return it; two distinct choices always prefer idle b1.
        let pool = Pool::<LeastConn>::new(named(&[1, 1]), strict(), (), 1).unwrap();
        let snapshot = pool.load();
        let mut rng = Rng::new(9);
        let held = loop {
            let c = snapshot.pick(b"", T0, &mut rng).unwrap();
            if c.backend().id.to_string() == "b0" {
                break c;
            }
        };
        for _ in 0..1000 {
            let c = snapshot.pick(b"", T0, &mut rng).unwrap();
            assert_eq!(c.backend().id.to_string(), "b1");
        }
        drop(held);
    }

    #[test]
    fn more_than_65536_backends() {
        let many: Vec<Backend> = (0..70_000u32)
            .map(|i| Backend::new(format!("n{i}").as_str(), 1 + i % 3))
            .collect();
        let swrr =
            Pool::<SmoothWeighted>::new(many.clone(), strict(), Default::default(), 1).unwrap();
        let random = Pool::<WeightedRandom>::new(many, strict(), (), 1).unwrap();
        let mut rng = Rng::new(1);
        let last = swrr.load().backends().count();
        assert_eq!(last, 70_000);
        let mut high = false;
        for _ in 0..2000 {
            let a = swrr
                .load()
                .pick(b"", T0, &mut rng)
                .unwrap()
                .backend()
                .clone();
            let b = random
                .load()
                .pick(b"", T0, &mut rng)
                .unwrap()
                .backend()
                .clone();
            let index = |b: &Backend| b.id.to_string()[1..].parse::<u32>().unwrap();
            high |= index(&a) >= 65_536 || index(&b) >= 65_536;
        }
        assert!(high, "indices above u16 are reachable");
    }

    #[test]
    fn smooth_accepts_cycles_too_long_to_precompute() {
        let mut rng = Rng::new(3);
        let heterogeneous: Vec<u32> = (0..1000).map(|_| 1 + rng.below(10_000) as u32).collect();
        for weights in [&heterogeneous[..], &[u32::MAX, 1]] {
            let pool = Pool::<SmoothWeighted>::new(named(weights), strict(), Default::default(), 1)
                .unwrap();
            let snapshot = pool.load();
            assert!(snapshot.algorithm(Tier::Primary).unwrap().schedule().len() == 0);
            assert_eq!(counts(&pool, 100, T0, &mut rng).iter().sum::<u64>(), 100);
        }
    }

    #[test]
    fn retries_are_bounded_by_max_attempts() {
        let config = PoolConfig {
            max_attempts: 2,
            ..strict()
        };
        let pool = Pool::<WeightedRandom>::new(named(&[1; 10]), config, (), 1).unwrap();
        let mut rng = Rng::new(1);
        assert_eq!(
            pool.load().candidates(b"", T0, &mut rng).unwrap().count(),
            2
        );
    }

    #[test]
    fn smooth_retry_follows_the_cycle() {
        let pool = nginx_pool();
        let snapshot = pool.load();
        let mut rng = Rng::new(1);
        // cycle a a b a c a a: first pick a (slot 0), retries walk on: b, then c
        let order: Vec<usize> = snapshot
            .candidates(b"", T0, &mut rng)
            .unwrap()
            .map(|c| index_of(&snapshot, c.backend()))
            .collect();
        assert_eq!(order, vec![0, 1, 2]);
    }

    #[test]
    fn random_and_least_conn_within_4_sigma_and_reproducible() {
        let weights = [1, 2, 3, 4, 0, 10];
        let random = Pool::<WeightedRandom>::new(named(&weights), strict(), (), 1).unwrap();
        let c = counts(&random, 20_000, T0, &mut Rng::new(11));
        within_4_sigma(&c, &weights);
        assert_eq!(c, counts(&random, 20_000, T0, &mut Rng::new(11)));
        // without load, least-connections is weighted random
        let lc = Pool::<LeastConn>::new(named(&weights), strict(), (), 1).unwrap();
        within_4_sigma(&counts(&lc, 20_000, T0, &mut Rng::new(12)), &weights);
    }

    #[test]
    fn least_conn_avoids_the_loaded_backend() {
        let pool = Pool::<LeastConn>::new(named(&[1, 1]), strict(), (), 1).unwrap();
        let snapshot = pool.load();
        let mut rng = Rng::new(5);
        let held: Vec<Candidate<'_>> = (0..10)
            .map(|_| snapshot.pick(b"", T0, &mut rng).unwrap())
            .collect();
        // each new pick goes to the backend with fewer in flight, so they stay level
        let on_0 = held
            .iter()
            .filter(|c| c.backend().id.to_string() == "b0")
            .count();
        assert_eq!(on_0, 5);
        drop(held);
        assert_eq!(pool.status(&"b0".into(), T0).unwrap().in_flight, 0);
    }

    #[test]
    fn ejection_returns_after_back_off_and_skips_meanwhile() {
        let pool = Pool::<SmoothWeighted>::new(named(&[1, 1, 1]), strict(), Default::default(), 1)
            .unwrap();
        let b1: BackendId = "b1".into();
        assert!(pool.record_failure(&b1, secs(1)));
        let mut rng = Rng::new(1);
        assert_eq!(counts(&pool, 30, secs(2), &mut rng)[1], 0);
        assert!(pool.status(&b1, secs(2)).unwrap().ejected);
        // back-off over (1 s + 10 s): back, on probation
        let c = counts(&pool, 30, secs(11), &mut rng);
        assert_eq!(c, vec![10, 10, 10]);
        assert!(pool.status(&b1, secs(11)).unwrap().on_probation);
        // fails on probation: out for twice as long
        pool.record_failure(&b1, secs(12));
        assert_eq!(counts(&pool, 30, secs(31), &mut rng)[1], 0);
        assert_eq!(counts(&pool, 30, secs(32), &mut rng)[1], 10);
    }

    #[test]
    fn an_old_snapshot_cannot_hide_a_newer_ejection_running_out() {
        let with = |primary: &str| vec![Backend::new(primary, 1), Backend::new("b", 1).backup()];
        let pool = Pool::<SmoothWeighted>::new(with("y"), strict(), Default::default(), 1).unwrap();
        let old = pool.snapshot();
        pool.update(with("x"), secs(1)).unwrap();
        let mut rng = Rng::new(1);
        // y, only in the old membership, is out until 12 s; x, only in the new, until 15 s
        old.pick(b"", secs(2), &mut rng)
            .unwrap()
            .record_failure(secs(2));
        pool.record_failure(&"x".into(), secs(5));
        let picked = |t: u64, rng: &mut Rng| {
            let snapshot = pool.load();
            let pick = snapshot.pick(b"", secs(t), rng).unwrap();
            pick.backend().id.to_string()
        };
        assert_eq!(picked(6, &mut rng), "b");
        // the old snapshot, still in use, notices y's return first
        let y = old.pick(b"", secs(12), &mut rng).unwrap();
        assert_eq!(y.backend().id.to_string(), "y");
        assert_eq!(picked(13, &mut rng), "b");
        for t in [15, 20, 100, 1000] {
            assert_eq!(picked(t, &mut rng), "x", "x is back at {t} s");
        }
    }

    #[test]
    fn all_ejected_without_panic_mode_is_an_error_then_recovers() {
        let pool = Pool::<Maglev>::new(named(&[1, 1]), strict(), Default::default(), 1).unwrap();
        pool.record_failure(&"b0".into(), T0);
        pool.record_failure(&"b1".into(), T0);
        let mut rng = Rng::new(1);
        assert_eq!(
            pool.load().pick(b"k", secs(1), &mut rng).unwrap_err(),
            PoolError::NoHealthy
        );
        assert!(pool.load().pick(b"k", secs(10), &mut rng).is_ok());
    }

    #[test]
    fn backup_only_when_no_primary_is_healthy_and_fails_back() {
        let backends = vec![
            Backend::new("p0", 1),
            Backend::new("p1", 1),
            Backend::new("s0", 1).backup(),
        ];
        let pool = Pool::<WeightedRandom>::new(backends, strict(), (), 1).unwrap();
        let mut rng = Rng::new(2);
        assert_eq!(counts(&pool, 100, T0, &mut rng)[2], 0, "backup idle");
        pool.record_failure(&"p0".into(), T0);
        assert_eq!(counts(&pool, 100, secs(1), &mut rng), vec![0, 100, 0]);
        pool.record_failure(&"p1".into(), secs(2));
        assert_eq!(counts(&pool, 100, secs(3), &mut rng), vec![0, 0, 100]);
        // p0 back at 10 s: fail-back, with no update or explicit refresh
        assert_eq!(counts(&pool, 100, secs(10), &mut rng), vec![100, 0, 0]);
        // active checks take the backup down too: the retry list skips it
        for _ in 0..3 {
            pool.record_probe(&"s0".into(), false, secs(10));
        }
        let snapshot = pool.load();
        assert_eq!(
            snapshot
                .candidates(b"", secs(10), &mut rng)
                .unwrap()
                .count(),
            1
        );
    }

    // A request whose primaries all fail to connect tries the backups before it fails, while
    // the primaries are still in service; picks keep to the primaries.
    #[test]
    fn a_request_tries_the_backups_once_every_primary_failed_it() {
        let backends = vec![
            Backend::new("p0", 1),
            Backend::new("s0", 1).backup(),
            Backend::new("p1", 1),
        ];
        let pool = Pool::<WeightedRandom>::new(backends, strict(), (), 1).unwrap();
        let mut rng = Rng::new(3);
        let snapshot = pool.load();
        let order: Vec<String> = snapshot
            .candidates(b"", T0, &mut rng)
            .unwrap()
            .map(|c| c.backend().id.to_string())
            .collect();
        assert_eq!(order.len(), 3, "{order:?}");
        assert_eq!(order[2], "s0", "primaries first: {order:?}");
        assert_eq!(
            counts(&pool, 100, T0, &mut rng)[1],
            0,
            "no pick of the backup"
        );
        // Fewer attempts than primaries: the backups are never reached.
        let two = PoolConfig {
            max_attempts: 2,
            ..strict()
        };
        let pool =
            Pool::<WeightedRandom>::new(pool.load().backends().cloned(), two, (), 1).unwrap();
        let snapshot = pool.load();
        let candidates = snapshot.candidates(b"", T0, &mut rng).unwrap();
        assert!(
            candidates
                .map(|c| c.backend().id.to_string())
                .all(|id| id != "s0")
        );
    }

    #[test]
    fn panic_mode_uses_every_backend_below_the_threshold() {
        let config = PoolConfig {
            panic_threshold_percent: 50,
            ..strict()
        };
        let pool = Pool::<WeightedRandom>::new(named(&[1, 1, 1, 1]), config, (), 1).unwrap();
        let mut rng = Rng::new(4);
        pool.record_failure(&"b0".into(), T0);
        pool.record_failure(&"b1".into(), T0);
        // 2 of 4 healthy = 50 %: not below, healthy only
        let c = counts(&pool, 400, secs(1), &mut rng);
        assert_eq!((c[0], c[1]), (0, 0));
        pool.record_failure(&"b2".into(), T0);
        // 1 of 4: panic, all four share the traffic
        let c = counts(&pool, 4000, secs(1), &mut rng);
        within_4_sigma(&c, &[1, 1, 1, 1]);
        pool.record_failure(&"b3".into(), T0);
        assert!(
            pool.load().pick(b"", secs(1), &mut rng).is_ok(),
            "panic, not error"
        );
    }

    #[test]
    fn health_survives_weight_and_membership_changes() {
        let pool = Pool::<SmoothWeighted>::new(named(&[1, 1, 1]), strict(), Default::default(), 1)
            .unwrap();
        pool.record_failure(&"b1".into(), T0);
        let mut changed = named(&[1, 5, 1, 1]);
        changed.remove(0);
        pool.update(changed, secs(1)).unwrap();
        assert!(pool.status(&"b1".into(), secs(1)).unwrap().ejected);
        let mut rng = Rng::new(1);
        let snapshot = pool.load();
        for _ in 0..50 {
            let pick = snapshot.pick(b"", secs(1), &mut rng).unwrap();
            assert_ne!(pick.backend().id.to_string(), "b1");
        }
        assert!(pool.status(&"b0".into(), secs(1)).is_none(), "removed");
    }

    #[test]
    fn a_detached_count_moves_into_another_thread() {
        let pool = Pool::<LeastConn>::new(named(&[1]), strict(), (), 1).unwrap();
        let in_flight = pool
            .load()
            .pick(b"", T0, &mut Rng::new(1))
            .unwrap()
            .detach();
        std::thread::spawn(move || drop(in_flight)).join().unwrap();
        assert_eq!(pool.status(&"b0".into(), T0).unwrap().in_flight, 0);
    }

    #[test]
    fn a_pick_on_the_pool_follows_the_snapshot_and_counts_until_dropped() {
        let pool = nginx_pool();
        let mut rng = Rng::new(1);
        let held: Vec<InFlight> = (0..7)
            .map(|_| pool.pick(b"", T0, &mut rng).unwrap())
            .collect();
        let seen: String = held.iter().map(|f| f.id().to_string()).collect();
        assert_eq!(
            seen, "b0b0b1b0b2b0b0",
            "nginx's smooth sequence for 5, 1, 1"
        );
        assert_eq!(pool.status(&"b0".into(), T0).unwrap().in_flight, 5);
        drop(held);
        assert_eq!(pool.status(&"b0".into(), T0).unwrap().in_flight, 0);

        pool.update(named(&[0]), T0).unwrap();
        assert_eq!(
            pool.pick(b"", T0, &mut rng).unwrap_err(),
            PoolError::AllDrained
        );
    }

    #[test]
    fn in_flight_returns_to_zero_after_panic_and_survives_rebuild() {
        let pool = Pool::<LeastConn>::new(named(&[1]), strict(), (), 1).unwrap();
        let id: BackendId = "b0".into();
        let detached = {
            let snapshot = pool.load();
            let mut rng = Rng::new(1);
            let held = snapshot.pick(b"", T0, &mut rng).unwrap();
            let outcome = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| {
                let _inner = snapshot.pick(b"", T0, &mut Rng::new(2)).unwrap();
                panic!("connection handler panicked");
            }));
            assert!(outcome.is_err());
            assert_eq!(pool.status(&id, T0).unwrap().in_flight, 1);
            held.detach()
        };
        pool.update(named(&[3, 1]), secs(1)).unwrap();
        assert_eq!(
            pool.status(&id, secs(1)).unwrap().in_flight,
            1,
            "survives rebuild"
        );
        detached.record_success(secs(1));
        drop(detached);
        assert_eq!(pool.status(&id, secs(1)).unwrap().in_flight, 0);
    }

    #[test]
    fn slow_start_ramps_a_recovered_backend_never_at_start() {
        let config = PoolConfig {
            slow_start: secs(100),
            slow_start_floor_percent: 10,
            ..strict()
        };
        let pool = Pool::<WeightedRandom>::new(named(&[1, 1]), config, (), 1).unwrap();
        let mut rng = Rng::new(6);
        within_4_sigma(&counts(&pool, 4000, T0, &mut rng), &[1, 1]);
        pool.record_failure(&"b1".into(), T0); // back at 10 s, full at 110 s
        let at_floor = counts(&pool, 4000, secs(10), &mut rng)[1];
        assert!(at_floor < 600, "about 10 % of its due: {at_floor}");
        let mut last = 0;
        for t in [10, 35, 60, 85, 110] {
            let share = counts(&pool, 4000, secs(t), &mut rng)[1];
            assert!(
                share + 120 >= last,
                "monotone within noise: {share} after {last}"
            );
            last = share;
        }
        within_4_sigma(&counts(&pool, 4000, secs(110), &mut rng), &[1, 1]);
    }

    #[test]
    fn a_backend_back_from_its_checks_takes_its_first_proposal_then_ramps() {
        let config = PoolConfig {
            slow_start: secs(100),
            slow_start_floor_percent: 10,
            ..strict()
        };
        let smooth = SmoothConfig {
            random_start: false,
            ..Default::default()
        };
        let pool = Pool::<SmoothWeighted>::new(named(&[1, 1]), config, smooth, 1).unwrap();
        let mut rng = Rng::new(1);
        for t in 0..3 {
            pool.record_probe(&"b1".into(), false, secs(t));
        }
        assert_eq!(counts(&pool, 10, secs(3), &mut rng), [10, 0]);
        for t in 4..6 {
            pool.record_probe(&"b1".into(), true, secs(t));
        }
        // Up at 5 s (rise 2): proposed every other pick, admitted at the first proposal.
        assert_eq!(counts(&pool, 2, secs(5), &mut rng), [1, 1]);
        // Then as if its weight were the floor's 10 %: 1/11 of the picks, smoothly (a refused
        // proposal passes its turn to the next in the cycle, so it is proposed again sooner).
        let c = counts(&pool, 2200, secs(5), &mut rng);
        assert!((195..=205).contains(&c[1]), "{c:?}");
        // Keyed: by the key, as before (Maglev's proposals are the key's owner).
        let pool = Pool::<Maglev>::new(named(&[1, 1]), config, Default::default(), 1).unwrap();
        pool.record_failure(&"b1".into(), T0); // back at 10 s
        let c = counts(&pool, 4000, secs(10), &mut rng);
        assert!(
            c[1] > 100 && c[1] < 320,
            "about 10 % of its 2000 keys: {c:?}"
        );
    }

    #[test]
    fn newcomer_slow_starts_on_update() {
        let config = PoolConfig {
            slow_start: secs(100),
            ..strict()
        };
        let pool = Pool::<WeightedRandom>::new(named(&[1]), config, (), 1).unwrap();
        pool.update(named(&[1, 1]), secs(50)).unwrap();
        let c = counts(&pool, 4000, secs(50), &mut Rng::new(1));
        assert!(c[1] < 600, "newcomer at the floor: {c:?}");
    }

    #[test]
    fn maglev_keys_keep_their_backend_across_rebuilds() {
        let pool = Pool::<Maglev>::new(named(&[1; 12]), strict(), Default::default(), 1).unwrap();
        let owner = |pool: &Pool<Maglev>, k: u64| {
            let snapshot = pool.load();
            let pick = snapshot
                .pick(&k.to_le_bytes(), T0, &mut Rng::new(k))
                .unwrap();
            pick.backend().id.clone()
        };
        let before: Vec<BackendId> = (0..2000).map(|k| owner(&pool, k)).collect();
        let mut reversed = named(&[1; 12]);
        reversed.reverse();
        pool.update(reversed, T0).unwrap();
        let after: Vec<BackendId> = (0..2000).map(|k| owner(&pool, k)).collect();
        assert_eq!(
            before, after,
            "same members in another order, another seed: same owners"
        );
    }

    #[test]
    fn maglev_update_removing_one_of_1000_moves_about_1_over_n() {
        let n = 1000;
        let all = named(&[1; 1000]);
        let pool = Pool::<Maglev>::new(all.clone(), strict(), Default::default(), 1).unwrap();
        let owners = |pool: &Pool<Maglev>| -> Vec<BackendId> {
            let snapshot = pool.load();
            let ids: Vec<&BackendId> = snapshot.backends().map(|b| &b.id).collect();
            let table = snapshot.algorithm(Tier::Primary).unwrap().table();
            table.map(|i| ids[i as usize].clone()).collect()
        };
        let before = owners(&pool);
        let mut fewer = all;
        fewer.remove(417);
        pool.update(fewer, secs(1)).unwrap();
        let after = owners(&pool);
        assert_eq!(before.len(), after.len(), "same table size");
        let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
        let share = moved as f64 / before.len() as f64;
        // its own 1/n plus Maglev's reshuffle among the others (≈ 0.6 %), not the whole table
        assert!(share <= 1.0 / n as f64 + 0.01, "moved {share}");
        assert!(
            share >= 0.5 / n as f64,
            "at least the removed backend's slots: {share}"
        );
    }

    #[test]
    fn maglev_ejection_spreads_keys_without_rebuilding() {
        let pool = Pool::<Maglev>::new(named(&[1; 10]), strict(), Default::default(), 1).unwrap();
        let snapshot = pool.snapshot();
        let mut rng = Rng::new(1);
        let before: Vec<usize> = (0..5000u64)
            .map(|k| {
                index_of(
                    &snapshot,
                    snapshot
                        .pick(&k.to_le_bytes(), T0, &mut rng)
                        .unwrap()
                        .backend(),
                )
            })
            .collect();
        pool.record_failure(&"b3".into(), T0);
        assert!(Arc::ptr_eq(&snapshot, &pool.snapshot()), "no new snapshot");
        let mut moved_to = [0u32; 10];
        for (k, &was) in before.iter().enumerate() {
            let now = index_of(
                &snapshot,
                snapshot
                    .pick(&(k as u64).to_le_bytes(), secs(1), &mut rng)
                    .unwrap()
                    .backend(),
            );
            if was == 3 {
                moved_to[now] += 1;
            } else {
                assert_eq!(now, was, "only the ejected backend's keys move");
            }
        }
        assert_eq!(moved_to[3], 0);
        assert!(
            moved_to.iter().filter(|&&m| m > 0).count() >= 8,
            "spread, not dumped on a neighbour: {moved_to:?}"
        );
        // and the same key comes back to it when it returns
        let k = before.iter().position(|&b| b == 3).unwrap() as u64;
        let back = snapshot.pick(&k.to_le_bytes(), secs(10), &mut rng).unwrap();
        assert_eq!(back.backend().id.to_string(), "b3");
    }
}
