//! A pool whose algorithm is named at run time, say by a configuration file: one type, the pool's
//! methods, and the match over the algorithms written once, here, instead of at every call.

use core::time::Duration;
use std::sync::Arc;
#[cfg(feature = "tokio")]
use tokio::time::Instant;

#[cfg(feature = "tokio")]
use crate::{ActiveChecks, ActiveConfig, Probe};
use crate::{
    Backend, BackendId, Candidate, Candidates, HealthStatus, InFlight, LeastConn, Maglev,
    MaglevConfig, Pool, PoolConfig, PoolError, Rng, SmoothConfig, SmoothWeighted, Snapshot,
    WeightedRandom,
};

/// An algorithm and its settings, chosen at run time (for [`AnyPool`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AlgorithmChoice {
    /// [`SmoothWeighted`]: nginx's smooth weighted round-robin.
    SmoothWeighted(SmoothConfig),
    /// [`LeastConn`]: weighted power of two choices on in-flight counts.
    LeastConn,
    /// [`Maglev`]: consistent hashing over the request key.
    Maglev(MaglevConfig),
    /// [`WeightedRandom`]: independent weighted draws.
    WeightedRandom,
}

/// One variant per algorithm, each holding `$of<..>` of it: the three types below, declared once.
macro_rules! per_algorithm {
    ($(#[$attr:meta])* $name:ident $(<$($lt:lifetime),+>)? of $of:ident) => {
        $(#[$attr])*
        #[non_exhaustive]
        pub enum $name $(<$($lt),+>)? {
            /// Smooth weighted round-robin.
            SmoothWeighted($of<$($($lt,)+)? SmoothWeighted>),
            /// Least connections.
            LeastConn($of<$($($lt,)+)? LeastConn>),
            /// Maglev consistent hashing.
            Maglev($of<$($($lt,)+)? Maglev>),
            /// Weighted random.
            WeightedRandom($of<$($($lt,)+)? WeightedRandom>),
        }
    };
}

type SharedPool<A> = Arc<Pool<A>>;
type SharedSnapshot<A> = Arc<Snapshot<A>>;

per_algorithm! {
    /// A shared [`Pool`] of the algorithm an [`AlgorithmChoice`] names, with the pool's methods:
    /// build it once from the configuration, then pick, update and check health without matching on
    /// the algorithm. Cloning shares the pool (each variant is an `Arc`).
    ///
    /// ```
    /// use backend_pool::{AlgorithmChoice, AnyPool, Backend, Rng};
    /// use std::time::Duration;
    ///
    /// // say the configuration file asked for "least-conn"
    /// let choice = AlgorithmChoice::LeastConn;
    /// let backends = [Backend::new("a", 1), Backend::new("b", 1)];
    /// let pool = AnyPool::new(backends, Default::default(), choice, 1)?;
    /// let now = Duration::ZERO;
    /// let conn = pool.pick(b"", now, &mut Rng::from_entropy())?;
    /// assert_eq!(pool.status(conn.id(), now).unwrap().in_flight, 1);
    /// # Ok::<(), backend_pool::PoolError>(())
    /// ```
    #[derive(Clone, Debug)]
    AnyPool of SharedPool
}

per_algorithm! {
    /// A snapshot of an [`AnyPool`] (see [`Pool::snapshot`]), owned.
    #[derive(Clone, Debug)]
    AnySnapshot of SharedSnapshot
}

per_algorithm! {
    /// The candidates of an [`AnySnapshot`] (see [`Snapshot::candidates`]).
    #[derive(Debug)]
    AnyCandidates<'s, 'r> of Candidates
}

/// `$body` with `$p` bound to the variant's content, whatever the algorithm; with `=> $to`, the
/// result wrapped in `$to`'s variant of the same algorithm.
macro_rules! each {
    ($from:ident, $value:expr, $p:ident => $body:expr) => {
        match $value {
            $from::SmoothWeighted($p) => $body,
            $from::LeastConn($p) => $body,
            $from::Maglev($p) => $body,
            $from::WeightedRandom($p) => $body,
        }
    };
    ($from:ident => $to:ident, $value:expr, $p:ident => $body:expr) => {
        match $value {
            $from::SmoothWeighted($p) => $to::SmoothWeighted($body),
            $from::LeastConn($p) => $to::LeastConn($body),
            $from::Maglev($p) => $to::Maglev($body),
            $from::WeightedRandom($p) => $to::WeightedRandom($body),
        }
    };
}

impl AnyPool {
    /// A pool of the chosen algorithm (see [`Pool::new`]).
    pub fn new(
        backends: impl IntoIterator<Item = Backend>,
        config: PoolConfig,
        algorithm: AlgorithmChoice,
        seed: u64,
    ) -> Result<Self, PoolError> {
        use AlgorithmChoice as C;
        Ok(match algorithm {
            C::SmoothWeighted(c) => {
                Self::SmoothWeighted(Arc::new(Pool::new(backends, config, c, seed)?))
            }
            C::LeastConn => Self::LeastConn(Arc::new(Pool::new(backends, config, (), seed)?)),
            C::Maglev(c) => Self::Maglev(Arc::new(Pool::new(backends, config, c, seed)?)),
            C::WeightedRandom => {
                Self::WeightedRandom(Arc::new(Pool::new(backends, config, (), seed)?))
            }
        })
    }

    /// Whether [`new`](Self::new) would accept these (see [`Pool::check`]).
    pub fn check(
        backends: &[Backend],
        config: &PoolConfig,
        algorithm: &AlgorithmChoice,
    ) -> Result<(), PoolError> {
        use AlgorithmChoice as C;
        match algorithm {
            C::SmoothWeighted(c) => Pool::<SmoothWeighted>::check(backends, config, c),
            C::LeastConn => Pool::<LeastConn>::check(backends, config, &()),
            C::Maglev(c) => Pool::<Maglev>::check(backends, config, c),
            C::WeightedRandom => Pool::<WeightedRandom>::check(backends, config, &()),
        }
    }

    /// Whether both are the same pool (clones of one another), as [`Arc::ptr_eq`] says.
    pub fn ptr_eq(&self, other: &AnyPool) -> bool {
        match (self, other) {
            (Self::SmoothWeighted(a), Self::SmoothWeighted(b)) => Arc::ptr_eq(a, b),
            (Self::LeastConn(a), Self::LeastConn(b)) => Arc::ptr_eq(a, b),
            (Self::Maglev(a), Self::Maglev(b)) => Arc::ptr_eq(a, b),
            (Self::WeightedRandom(a), Self::WeightedRandom(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// See [`Pool::update`].
    pub fn update(
        &self,
        backends: impl IntoIterator<Item = Backend>,
        now: Duration,
    ) -> Result<(), PoolError> {
        each!(AnyPool, self, p => p.update(backends, now))
    }

    /// See [`Pool::pick`].
    pub fn pick(&self, key: &[u8], now: Duration, rng: &mut Rng) -> Result<InFlight, PoolError> {
        each!(AnyPool, self, p => p.pick(key, now, rng))
    }

    /// The current snapshot, owned (see [`Pool::snapshot`]): for retries.
    pub fn snapshot(&self) -> AnySnapshot {
        each!(AnyPool => AnySnapshot, self, p => p.snapshot())
    }

    /// See [`Pool::record_success`].
    pub fn record_success(&self, id: &BackendId, now: Duration) -> bool {
        each!(AnyPool, self, p => p.record_success(id, now))
    }

    /// See [`Pool::record_failure`].
    pub fn record_failure(&self, id: &BackendId, now: Duration) -> bool {
        each!(AnyPool, self, p => p.record_failure(id, now))
    }

    /// See [`Pool::record_probe`].
    pub fn record_probe(&self, id: &BackendId, ok: bool, now: Duration) -> bool {
        each!(AnyPool, self, p => p.record_probe(id, ok, now))
    }

    /// See [`Pool::status`].
    pub fn status(&self, id: &BackendId, now: Duration) -> Option<HealthStatus> {
        each!(AnyPool, self, p => p.status(id, now))
    }

    /// See [`Pool::config`].
    pub fn config(&self) -> PoolConfig {
        each!(AnyPool, self, p => p.config())
    }

    /// See [`Pool::start_active_checks`].
    #[cfg(feature = "tokio")]
    pub fn start_active_checks(
        &self,
        config: ActiveConfig,
        probe: Arc<dyn Probe>,
        epoch: Instant,
        seed: u64,
    ) -> Result<ActiveChecks, PoolError> {
        each!(AnyPool, self, p => p.start_active_checks(config, probe, epoch, seed))
    }
}

impl AnySnapshot {
    /// See [`Snapshot::candidates`].
    pub fn candidates<'s, 'r>(
        &'s self,
        key: &'r [u8],
        now: Duration,
        rng: &'r mut Rng,
    ) -> Result<AnyCandidates<'s, 'r>, PoolError> {
        Ok(each!(AnySnapshot => AnyCandidates, self, s => s.candidates(key, now, rng)?))
    }

    /// See [`Snapshot::pick`].
    pub fn pick(
        &self,
        key: &[u8],
        now: Duration,
        rng: &mut Rng,
    ) -> Result<Candidate<'_>, PoolError> {
        each!(AnySnapshot, self, s => s.pick(key, now, rng))
    }

    /// How many backends (drained ones included).
    pub fn len(&self) -> usize {
        each!(AnySnapshot, self, s => s.len())
    }

    /// No backends at all.
    pub fn is_empty(&self) -> bool {
        each!(AnySnapshot, self, s => s.is_empty())
    }
}

impl<'s> Iterator for AnyCandidates<'s, '_> {
    type Item = Candidate<'s>;

    fn next(&mut self) -> Option<Candidate<'s>> {
        each!(AnyCandidates, self, c => c.next())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHOICES: [AlgorithmChoice; 4] = [
        AlgorithmChoice::SmoothWeighted(SmoothConfig {
            random_start: false,
            max_period: 1 << 20,
        }),
        AlgorithmChoice::LeastConn,
        AlgorithmChoice::Maglev(MaglevConfig {
            slots_per_backend: 100,
            min_table_size: 0,
            max_table_size: 1 << 24,
        }),
        AlgorithmChoice::WeightedRandom,
    ];

    #[test]
    fn every_choice_picks_retries_and_checks_as_its_pool() {
        let now = Duration::ZERO;
        for choice in CHOICES {
            let backends = [("b0", 3), ("b1", 0), ("b2", 1)].map(|(id, w)| Backend::new(id, w));
            let pool = AnyPool::new(backends, PoolConfig::default(), choice, 1).unwrap();
            let mut rng = Rng::new(1);
            let snapshot = pool.snapshot();
            assert_eq!(snapshot.len(), 3);
            let mut all: Vec<String> = snapshot
                .candidates(b"k", now, &mut rng)
                .unwrap()
                .map(|c| c.backend().id.to_string())
                .collect();
            all.sort();
            assert_eq!(all, ["b0", "b2"], "{choice:?}");
            let conn = pool.pick(b"k", now, &mut rng).unwrap();
            assert_eq!(pool.status(conn.id(), now).unwrap().in_flight, 1);
            assert!(pool.record_failure(conn.id(), now));
            pool.update([Backend::new("b0", 1)], now).unwrap();
            assert_eq!(pool.snapshot().len(), 1);
            let twice = [Backend::new("x", 1), Backend::new("x", 1)];
            let config = PoolConfig::default();
            assert_eq!(
                AnyPool::check(&twice, &config, &choice),
                Err(PoolError::DuplicateBackend)
            );
        }
    }
}
