//! Active health checks (feature `tokio`): a task probes every backend of the current snapshot,
//! each on its own cadence (a jittered interval from the start of its previous probe, so a probe
//! that hangs until its timeout delays no other backend, and a down backend is checked every
//! interval like an up one), each probe under a timeout, and feeds the results to the pool's
//! rise/fall counters. The task holds the pool weakly: it ends with the pool, or when its handle
//! is dropped. At most `MAX_CONCURRENT_PROBES` probes run at once, so a large pool does not open
//! thousands of sockets in one burst; with more backends than that per probe time, probes run
//! correspondingly late.
//!
//! ```text
//!   Schedule (next probe per backend) ──due──▶ JoinSet of probes (≤ 64) ──done──▶ Pool::record_probe
//!        ▲          ▲                                                     │
//!        │          └──── requeued: start + jittered interval ◀───────────┘
//!        └── membership, re-read from the pool's snapshot at every wake
//! ```

use core::cmp::Reverse;
use core::future::Future;
use core::pin::Pin;
use core::time::Duration;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Weak};

use tokio::task::{Id, JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::config::nanos;
use crate::{Algorithm, Backend, BackendId, Pool, PoolError, Rng};

/// Probes running at once, per checker.
const MAX_CONCURRENT_PROBES: usize = 64;

/// What a probe returns: true when the backend is fit for traffic.
pub type ProbeFuture<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

/// A health probe. [`TcpConnect`](crate::TcpConnect) is the default,
/// [`TcpExchange`](crate::TcpExchange) sends a request and looks for an answer, and
/// `TlsHandshake` (feature `tls-check`) completes a TLS handshake; implement this for an HTTP
/// check, a PROXY protocol handshake or anything else.
pub trait Probe: Send + Sync + 'static {
    /// Probes one backend. The checker applies the timeout, so this may simply await.
    fn probe<'a>(&'a self, backend: &'a Backend) -> ProbeFuture<'a>;

    /// Whether this probe can tell anything about `backend`; the checker leaves the others alone
    /// (their active state stays as it is) rather than counting a probe it cannot make as failed.
    fn judges(&self, backend: &Backend) -> bool {
        let _ = backend;
        true
    }
}

/// When and how long to probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActiveConfig {
    /// Time from the start of one probe of a backend to the start of its next (or to the end of
    /// the probe, if that comes later), whether the backend is up or down.
    pub interval: Duration,
    /// Each wait varies by up to this percent either way, so a fleet does not probe in lockstep.
    pub jitter_percent: u8,
    /// A probe that takes longer has failed.
    pub timeout: Duration,
}

impl Default for ActiveConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            jitter_percent: 10,
            timeout: Duration::from_secs(2),
        }
    }
}

/// The running checker; dropping it stops the checks.
#[derive(Debug)]
pub struct ActiveChecks {
    task: JoinHandle<()>,
}

impl ActiveChecks {
    /// Stops the checks (the same as dropping the handle).
    pub fn stop(self) {}

    /// True once the task has ended (its pool was dropped, or it was stopped).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for ActiveChecks {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<A: Algorithm> Pool<A> {
    /// Starts active checks on the current tokio runtime. `epoch` is the instant the caller's
    /// `now` values count from, so probe results and picks share one clock.
    pub fn start_active_checks(
        self: &Arc<Self>,
        config: ActiveConfig,
        probe: Arc<dyn Probe>,
        epoch: Instant,
        seed: u64,
    ) -> Result<ActiveChecks, PoolError> {
        if config.interval.is_zero() || config.timeout.is_zero() {
            return Err(PoolError::InvalidConfig("interval and timeout must be > 0"));
        }
        if config.jitter_percent > 100 {
            return Err(PoolError::InvalidConfig("jitter_percent must be <= 100"));
        }
        let pool = Arc::downgrade(self);
        let task = tokio::spawn(run(pool, config, probe, epoch, Rng::new(seed)));
        Ok(ActiveChecks { task })
    }
}

/// When each backend of the current membership is probed next. A backend is either queued here or
/// being probed, never both, so one backend never has two probes running.
#[derive(Debug, Default)]
struct Schedule {
    /// (when, token), earliest first. Tokens of backends no longer members are skipped.
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    /// The members, by the token of their current membership: a backend removed and added again
    /// gets a new token, so whatever was queued or running for the old one is dropped.
    members: HashMap<u64, Backend>,
    tokens: HashMap<BackendId, u64>,
    last_token: u64,
}

impl Schedule {
    /// Takes a new membership: newcomers are due at `now`, the others keep their place.
    fn reconcile<'b>(&mut self, backends: impl Iterator<Item = &'b Backend>, now: Instant) {
        let mut tokens = HashMap::with_capacity(self.tokens.len());
        for backend in backends {
            let token = match self.tokens.remove(&backend.id) {
                Some(token) => token,
                None => {
                    self.last_token += 1;
                    self.queue.push(Reverse((now, self.last_token)));
                    self.last_token
                }
            };
            self.members.insert(token, backend.clone());
            tokens.insert(backend.id.clone(), token);
        }
        for (_, gone) in self.tokens.drain() {
            self.members.remove(&gone);
        }
        self.tokens = tokens;
    }

    /// The next member due at or before `now`.
    fn pop_due(&mut self, now: Instant) -> Option<(u64, Backend)> {
        while let Some(&Reverse((at, token))) = self.queue.peek() {
            if at > now {
                return None;
            }
            self.queue.pop();
            if let Some(backend) = self.members.get(&token) {
                return Some((token, backend.clone()));
            }
        }
        None
    }

    /// Queues a member again after its probe; a former member is forgotten.
    fn requeue(&mut self, token: u64, at: Instant) {
        if self.members.contains_key(&token) {
            self.queue.push(Reverse((at, token)));
        }
    }

    fn next_due(&self) -> Option<Instant> {
        self.queue.peek().map(|&Reverse((at, _))| at)
    }
}

async fn run<A: Algorithm>(
    pool: Weak<Pool<A>>,
    config: ActiveConfig,
    probe: Arc<dyn Probe>,
    epoch: Instant,
    mut rng: Rng,
) {
    let mut schedule = Schedule::default();
    let mut seen = None;
    let mut probes = JoinSet::new();
    // Which member each running probe is for, and when it started.
    let mut running: HashMap<Id, (u64, Instant)> = HashMap::new();
    loop {
        let Some(snapshot) = pool.upgrade().map(|p| p.snapshot()) else {
            return;
        };
        let now = Instant::now();
        if !seen.as_ref().is_some_and(|s| Arc::ptr_eq(s, &snapshot)) {
            schedule.reconcile(snapshot.backends().filter(|b| probe.judges(b)), now);
            seen = Some(snapshot);
        }
        while probes.len() < MAX_CONCURRENT_PROBES {
            let Some((token, backend)) = schedule.pop_due(now) else {
                break;
            };
            let probe = Arc::clone(&probe);
            let task = probes.spawn(async move {
                let ok = tokio::time::timeout(config.timeout, probe.probe(&backend))
                    .await
                    .unwrap_or(false);
                (backend.id, ok)
            });
            running.insert(task.id(), (token, now));
        }
        // Wake for the next due probe, or a finished one; at least every interval, to see
        // membership changes.
        let poll = later(now, config.interval);
        let wake = schedule.next_due().map_or(poll, |due| due.min(poll));
        let joined = if probes.len() >= MAX_CONCURRENT_PROBES {
            probes.join_next_with_id().await
        } else if probes.is_empty() {
            tokio::time::sleep_until(wake).await;
            None
        } else {
            tokio::time::timeout_at(wake, probes.join_next_with_id())
                .await
                .ok()
                .flatten()
        };
        let (task, result) = match joined {
            None => continue,
            Some(Ok((task, result))) => (task, Some(result)),
            // A probe that panicked says nothing about the backend: record nothing.
            Some(Err(e)) => (e.id(), None),
        };
        if let Some((id, ok)) = result {
            let Some(pool) = pool.upgrade() else {
                return;
            };
            pool.record_probe(&id, ok, epoch.elapsed());
        }
        if let Some((token, started)) = running.remove(&task) {
            let next = later(started, jittered(&config, &mut rng)).max(Instant::now());
            schedule.requeue(token, next);
        }
    }
}

/// `at + wait`, or far in the future for a wait too long to represent.
fn later(at: Instant, wait: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);
    at.checked_add(wait).unwrap_or_else(|| at + FAR)
}

fn jittered(config: &ActiveConfig, rng: &mut Rng) -> Duration {
    let base = nanos(config.interval);
    let spread = base / 100 * u64::from(config.jitter_percent);
    let low = base - spread;
    Duration::from_nanos(low + rng.below(spread.saturating_mul(2).saturating_add(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PoolConfig, TcpConnect, WeightedRandom};
    use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    struct Switch {
        healthy: AtomicBool,
        calls: AtomicU32,
    }

    impl Probe for Switch {
        fn probe<'a>(&'a self, _: &'a Backend) -> ProbeFuture<'a> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let ok = self.healthy.load(Ordering::SeqCst);
            Box::pin(async move { ok })
        }
    }

    /// Never answers: only the timeout ends it.
    struct Hang;

    impl Probe for Hang {
        fn probe<'a>(&'a self, _: &'a Backend) -> ProbeFuture<'a> {
            Box::pin(core::future::pending())
        }
    }

    fn pool() -> Arc<Pool<WeightedRandom>> {
        let config = PoolConfig {
            rise: 2,
            fall: 3,
            ..Default::default()
        };
        Arc::new(Pool::new([Backend::new("a", 1)], config, (), 1).unwrap())
    }

    fn switch() -> Arc<Switch> {
        Arc::new(Switch {
            healthy: AtomicBool::new(false),
            calls: AtomicU32::new(0),
        })
    }

    /// Probes every `interval`, no jitter.
    fn every(interval: Duration, timeout: Duration) -> ActiveConfig {
        ActiveConfig {
            interval,
            jitter_percent: 0,
            timeout,
        }
    }

    /// Starts checks with the clock's start as the epoch.
    fn start(
        pool: &Arc<Pool<WeightedRandom>>,
        config: ActiveConfig,
        probe: Arc<dyn Probe>,
    ) -> ActiveChecks {
        pool.start_active_checks(config, probe, Instant::now(), 1)
            .unwrap()
    }

    fn down(pool: &Pool<WeightedRandom>, id: &str) -> bool {
        pool.status(&id.into(), Duration::ZERO)
            .unwrap()
            .actively_down
    }

    #[tokio::test(start_paused = true)]
    async fn custom_probe_with_fall_and_rise() {
        let pool = pool();
        let probe = switch();
        let config = every(Duration::from_secs(1), Duration::from_millis(100));
        let checks = start(&pool, config, probe.clone());
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!down(&pool, "a"), "two failures are not yet three");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(down(&pool, "a"));
        probe.healthy.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(down(&pool, "a"), "one success is not yet two");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!down(&pool, "a"));
        // stopping ends the probes
        checks.stop();
        let calls = probe.calls.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(probe.calls.load(Ordering::SeqCst), calls);
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_hangs_fails_by_timeout_and_the_task_ends_with_the_pool() {
        let pool = pool();
        let config = ActiveConfig {
            interval: Duration::from_secs(1),
            jitter_percent: 50,
            timeout: Duration::from_millis(200),
        };
        let checks = start(&pool, config, Arc::new(Hang));
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(down(&pool, "a"));
        drop(pool);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(checks.is_finished());
    }

    /// A pool of a backend that never answers (its probes hang until the timeout) and one that
    /// refuses at once while down and listens again from `back`.
    struct Blackhole {
        back: Instant,
        calls: AtomicU32,
    }

    impl Probe for Blackhole {
        fn probe<'a>(&'a self, backend: &'a Backend) -> ProbeFuture<'a> {
            if backend.id == "gone".into() {
                return Box::pin(core::future::pending());
            }
            self.calls.fetch_add(1, Ordering::SeqCst);
            let ok = Instant::now() >= self.back;
            Box::pin(async move { ok })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hang_delays_no_other_backend_and_rise_counts_from_the_first_good_check() {
        let config = PoolConfig {
            rise: 2,
            fall: 1,
            ..Default::default()
        };
        let backends = [Backend::new("gone", 1), Backend::new("flaky", 1)];
        let pool = Arc::new(Pool::<WeightedRandom>::new(backends, config, (), 1).unwrap());
        let start = Instant::now();
        let probe = Arc::new(Blackhole {
            back: start + Duration::from_millis(3300),
            calls: AtomicU32::new(0),
        });
        let active = every(Duration::from_secs(1), Duration::from_millis(900));
        let _checks = pool
            .start_active_checks(active, probe.clone(), start, 1)
            .unwrap();
        tokio::time::sleep_until(start + Duration::from_millis(3900)).await;
        assert!(down(&pool, "flaky"), "down, checked at 0, 1, 2, 3 s");
        assert_eq!(probe.calls.load(Ordering::SeqCst), 4, "hangs delay no one");
        // First good check at 4 s; rise 2: up at 5 s, not a moment before.
        tokio::time::sleep_until(start + Duration::from_millis(4999)).await;
        assert!(down(&pool, "flaky"));
        tokio::time::sleep_until(start + Duration::from_millis(5001)).await;
        assert!(!down(&pool, "flaky"));
        assert!(down(&pool, "gone"));
    }

    #[tokio::test(start_paused = true)]
    async fn membership_changes_are_probed_within_an_interval() {
        let pool = pool();
        let probe = switch();
        let config = every(Duration::from_secs(10), Duration::from_secs(1));
        let _checks = start(&pool, config, probe.clone());
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(probe.calls.load(Ordering::SeqCst), 1);
        let two = [Backend::new("a", 1), Backend::new("b", 1)];
        pool.update(two, Duration::from_secs(1)).unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        // "b" once (within 10 s of joining), "a" once more at 10 s.
        assert_eq!(probe.calls.load(Ordering::SeqCst), 3);
        pool.update([Backend::new("b", 1)], Duration::from_secs(11))
            .unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        // Only "b" from now on: three more.
        assert_eq!(probe.calls.load(Ordering::SeqCst), 6);
    }

    /// Counts probes running at once; each takes 50 ms.
    #[derive(Default)]
    struct Crowd {
        running: AtomicU32,
        most: AtomicU32,
        calls: AtomicU32,
    }

    impl Probe for Crowd {
        fn probe<'a>(&'a self, _: &'a Backend) -> ProbeFuture<'a> {
            Box::pin(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
                self.most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                self.running.fetch_sub(1, Ordering::SeqCst);
                true
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn probes_run_a_bounded_number_at_once() {
        let backends = (0..300).map(|i| Backend::new(format!("n{i}").as_str(), 1));
        let pool =
            Arc::new(Pool::<WeightedRandom>::new(backends, PoolConfig::default(), (), 1).unwrap());
        let probe = Arc::new(Crowd::default());
        let config = every(Duration::from_secs(10), Duration::from_secs(1));
        let _checks = start(&pool, config, probe.clone());
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            probe.calls.load(Ordering::SeqCst),
            300,
            "one round, every backend"
        );
        let most = probe.most.load(Ordering::SeqCst) as usize;
        assert_eq!(most, MAX_CONCURRENT_PROBES);
    }

    #[tokio::test(start_paused = true)]
    async fn tcp_connect_leaves_named_backends_alone() {
        let config = PoolConfig {
            fall: 1,
            ..Default::default()
        };
        let backends = [Backend::new("web-1", 1), Backend::new("web-2", 1)];
        let pool = Arc::new(Pool::<WeightedRandom>::new(backends, config, (), 1).unwrap());
        let active = every(Duration::from_secs(1), Duration::from_secs(1));
        let _checks = start(&pool, active, Arc::new(TcpConnect));
        tokio::time::sleep(Duration::from_secs(5)).await;
        for id in ["web-1", "web-2"] {
            let status = pool.status(&id.into(), Duration::ZERO).unwrap();
            assert!(!status.actively_down, "{id}: no information, not down");
        }
        assert!(
            pool.load()
                .pick(b"", Duration::ZERO, &mut Rng::new(1))
                .is_ok()
        );
    }

    #[test]
    fn jitter_stays_within_its_band() {
        let config = ActiveConfig {
            interval: Duration::from_secs(10),
            jitter_percent: 20,
            timeout: Duration::from_secs(1),
        };
        let mut rng = Rng::new(1);
        let waits: Vec<Duration> = (0..1000).map(|_| jittered(&config, &mut rng)).collect();
        assert!(
            waits
                .iter()
                .all(|w| *w >= Duration::from_secs(8) && *w <= Duration::from_secs(12))
        );
        assert!(waits.iter().any(|w| *w < Duration::from_secs(9)));
        assert!(waits.iter().any(|w| *w > Duration::from_secs(11)));
    }

    #[tokio::test]
    async fn tcp_connect_probe_against_real_sockets() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live = listener.local_addr().unwrap();
        let closed = {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap()
        };
        let accept = tokio::spawn(async move {
            loop {
                if listener.accept().await.is_err() {
                    return;
                }
            }
        });
        let config = PoolConfig {
            fall: 2,
            ..Default::default()
        };
        let backends = [Backend::new(live, 1), Backend::new(closed, 1)];
        let pool = Arc::new(Pool::<WeightedRandom>::new(backends, config, (), 1).unwrap());
        let active = ActiveConfig {
            interval: Duration::from_millis(20),
            jitter_percent: 10,
            timeout: Duration::from_secs(1),
        };
        let _checks = pool
            .start_active_checks(active, Arc::new(TcpConnect), Instant::now(), 2)
            .unwrap();
        let status = |addr| pool.status(&BackendId::Addr(addr), Duration::ZERO).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !status(closed).actively_down && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            status(closed).actively_down,
            "refused connections take it down"
        );
        assert!(!status(live).actively_down);
        accept.abort();
    }
}
