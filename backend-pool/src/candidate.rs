//! Handing out backends for one request: the first pick, then bounded retries with no duplicates,
//! each one counted in flight until its guard is dropped.

use core::sync::atomic::Ordering;
use core::time::Duration;

use crate::PoolError;
use crate::algorithm::{Algorithm, Proposal};
use crate::backend::{Backend, BackendId, Tier};
use crate::config::nanos;
use crate::entry::{ADMIT_SEED, Entry, Filter};
use crate::health::StateRef;
use crate::pool::Snapshot;
use crate::rng::{Rng, mix64, scale, stable_hash};
use crate::route::Route;
use crate::tried::Tried;

/// Proposals asked of the algorithm per candidate before the weighted scan takes over.
const PROBES: u32 = 16;

/// The candidates for one request, best first: the algorithm's pick, then its retries. Bounded by
/// `PoolConfig::max_attempts`, never the same backend twice, never a drained or (outside panic
/// mode) unhealthy one. Allocation-free: the backends already given are kept in an inline list of
/// 32, so one request is offered at most 32 backends — with more eligible ones, retries cover 32
/// of them, not all.
#[derive(Debug)]
pub struct Candidates<'s, 'r, A: Algorithm> {
    snapshot: &'s Snapshot<A>,
    algorithm: &'s A,
    route: Route,
    key: &'r [u8],
    rng: &'r mut Rng,
    now: u64,
    tried: Tried,
    attempt: u32,
    cursor: u64,
    max: usize,
}

impl<'s, 'r, A: Algorithm> Candidates<'s, 'r, A> {
    /// The candidates on `route`, which must be one the snapshot decided (`Snapshot::route`).
    pub(crate) fn new(
        snapshot: &'s Snapshot<A>,
        route: Route,
        key: &'r [u8],
        rng: &'r mut Rng,
        now: u64,
    ) -> Result<Self, PoolError> {
        Ok(Self {
            snapshot,
            algorithm: snapshot.algorithm(route.tier).ok_or(PoolError::NoHealthy)?,
            route,
            key,
            rng,
            now,
            tried: Tried::new(),
            attempt: 0,
            cursor: 0,
            max: snapshot.max_attempts(),
        })
    }

    /// After the probes: a weighted draw over every usable backend of the tier, O(n), so even a
    /// pool with most backends down spreads by weight rather than onto a neighbour.
    fn fallback(&mut self) -> Option<u32> {
        let bits = if A::KEYED {
            mix64(stable_hash(self.key, ADMIT_SEED) ^ u64::from(self.attempt))
        } else {
            self.rng.next_u64()
        };
        let filter = Filter {
            entries: self.snapshot.entries(),
            route: self.route,
            now: self.now,
            tried: &self.tried,
        };
        let usable =
            || (0..filter.entries.len() as u32).filter_map(|i| Some((i, filter.in_tier(i)?)));
        let total: u64 = usable().map(|(_, e)| u64::from(e.backend.weight)).sum();
        if total == 0 {
            return None;
        }
        let mut draw = scale(bits, total);
        for (i, e) in usable() {
            let w = u64::from(e.backend.weight);
            if draw < w {
                return Some(i);
            }
            draw -= w;
        }
        None
    }

    fn take(&mut self, index: u32) -> Candidate<'s> {
        self.tried.insert(index);
        Candidate::counted(&self.snapshot.entries()[index as usize])
    }
}

impl<'s, A: Algorithm> Iterator for Candidates<'s, '_, A> {
    type Item = Candidate<'s>;

    fn next(&mut self) -> Option<Candidate<'s>> {
        if self.tried.len() >= self.max {
            return None;
        }
        loop {
            if let Some(index) = self.next_in_tier() {
                return Some(self.take(index));
            }
            // Every usable primary was tried for this request: the backups stand in before the
            // request fails, as nginx's do (a refused connect is not yet a backend marked down).
            if !self.fall_back_to_backups() {
                return None;
            }
        }
    }
}

impl<A: Algorithm> Candidates<'_, '_, A> {
    /// Moves from the primaries to the backups, judged by their health; false when already
    /// there or there are none.
    fn fall_back_to_backups(&mut self) -> bool {
        let Some(backups) = (self.route.tier == Tier::Primary)
            .then(|| self.snapshot.algorithm(Tier::Backup))
            .flatten()
        else {
            return false;
        };
        self.algorithm = backups;
        self.route = Route {
            tier: Tier::Backup,
            panic: false,
            clear: false,
        };
        (self.attempt, self.cursor) = (0, 0);
        true
    }

    /// The next untried usable backend of the current tier.
    fn next_in_tier(&mut self) -> Option<u32> {
        for _ in 0..PROBES {
            let filter = Filter {
                entries: self.snapshot.entries(),
                route: self.route,
                now: self.now,
                tried: &self.tried,
            };
            let mut proposal = Proposal {
                key: self.key,
                rng: self.rng,
                attempt: self.attempt,
                cursor: &mut self.cursor,
                filter: &filter,
            };
            let picked = self.algorithm.propose(&mut proposal);
            self.attempt = self.attempt.wrapping_add(1);
            match picked {
                None => break,
                Some(i) if filter.accepts::<A>(i, self.key).is_some() => return Some(i),
                Some(_) => {}
            }
        }
        self.fallback()
    }
}

/// One backend handed out for a request, counted in flight until dropped (success, error,
/// cancellation or panic: the count goes down exactly once).
#[derive(Debug)]
#[must_use = "dropping the candidate ends its in-flight count at once"]
pub struct Candidate<'s> {
    entry: &'s Entry,
}

impl<'s> Candidate<'s> {
    #[inline]
    pub(crate) fn counted(entry: &'s Entry) -> Self {
        entry.state.in_flight.fetch_add(1, Ordering::Relaxed);
        Self { entry }
    }

    /// The backend to connect to.
    pub fn backend(&self) -> &'s Backend {
        &self.entry.backend
    }

    /// Passive health: the connection worked.
    pub fn record_success(&self, now: Duration) {
        self.entry.state.record_success(nanos(now));
    }

    /// Passive health: the connection failed.
    pub fn record_failure(&self, now: Duration) {
        self.entry.state.record_failure(nanos(now));
    }

    /// Keeps the in-flight count beyond the snapshot's lifetime: the way to hold a long
    /// connection. A candidate borrows its snapshot (from [`Pool::load`](crate::Pool::load), an
    /// arc-swap guard meant for short reads), so it cannot move into a spawned task; the
    /// [`InFlight`] is owned, `Send` and `'static`. Connect with the candidate, then detach it and
    /// let the snapshot go.
    pub fn detach(self) -> InFlight {
        let state = self.entry.state.clone();
        let id = self.entry.backend.id.clone();
        core::mem::forget(self); // the count now belongs to the InFlight
        InFlight { state, id }
    }
}

impl Drop for Candidate<'_> {
    fn drop(&mut self) {
        self.entry.state.in_flight.fetch_sub(1, Ordering::Release);
    }
}

/// An owned in-flight count, independent of any snapshot (`Send + 'static`: it can move into a
/// task that lives as long as the connection).
#[derive(Debug)]
#[must_use = "dropping it ends the in-flight count at once"]
pub struct InFlight {
    state: StateRef,
    id: BackendId,
}

impl InFlight {
    /// Which backend this counts against.
    pub fn id(&self) -> &BackendId {
        &self.id
    }

    /// Passive health: the connection worked.
    pub fn record_success(&self, now: Duration) {
        self.state.record_success(nanos(now));
    }

    /// Passive health: the connection failed.
    pub fn record_failure(&self, now: Duration) {
        self.state.record_failure(nanos(now));
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Ordering::Release);
    }
}
