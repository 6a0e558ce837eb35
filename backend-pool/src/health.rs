//! Per-backend state that outlives snapshots: in-flight count, passive ejection, active up/down,
//! and the start of a slow-start ramp. Readers use atomics only; reports take a short per-backend
//! lock (reports are off the pick path).

use core::ops::Deref;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::config::{PoolConfig, Settings};
use crate::padded::Padded;

/// No ramp in progress.
pub(crate) const NO_RAMP: u64 = u64::MAX;

/// A whole share (full weight), in the 1/2^32 units of [`BackendState::ramp`].
const WHOLE: u64 = 1 << 32;

/// Pool-wide signals every backend state can raise.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Settings,
    /// Bumped after every health transition: cached tier decisions compare against it.
    pub(crate) generation: AtomicU64,
}

impl Shared {
    pub(crate) fn new(config: PoolConfig) -> Self {
        Self {
            config: config.into(),
            generation: AtomicU64::new(0),
        }
    }

    pub(crate) fn changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// The counters reports update, under one short lock.
#[derive(Debug, Default)]
struct Counters {
    /// Passive: failures in a row.
    consecutive_failures: u32,
    /// Passive: ejections since the last passed probation; > 0 while out of service or on
    /// probation.
    ejections: u32,
    /// Active: good checks in a row.
    ok: u32,
    /// Active: failed checks in a row.
    failed: u32,
}

/// Pools of up to this many backends keep their states compact; larger ones pad each state to
/// cache lines of its own.
pub(crate) const PAD_FROM: usize = 4;

/// One backend's state as snapshots and in-flight guards hold it: shared by identity, padded to
/// cache lines of its own in a pool of `PAD_FROM` backends or more, compact below.
///
/// Every pick writes its backend's `in_flight`, so two threads picking two different backends
/// whose states share a line slow each other down as if they had picked the same one. That is
/// worth 2 × 128 aligned bytes per backend where picks spread over many backends; with 2 or 3,
/// concurrent picks share a backend half or a third of the time anyway, padding would be most of
/// the pool's memory, and a proxy may hold 100,000 such pools (one per hosted site).
#[derive(Clone, Debug)]
pub(crate) enum StateRef {
    Compact(Arc<BackendState>),
    Padded(Arc<Padded<BackendState>>),
}

impl StateRef {
    /// A new state, padded or not as a pool of `pool_size` backends wants.
    pub(crate) fn new(shared: Arc<Shared>, ramp_from: u64, pool_size: usize) -> Self {
        let state = BackendState::new(shared, ramp_from);
        if pool_size >= PAD_FROM {
            Self::Padded(Arc::new(Padded(state)))
        } else {
            Self::Compact(Arc::new(state))
        }
    }
}

impl Deref for StateRef {
    type Target = BackendState;
    #[inline]
    fn deref(&self) -> &BackendState {
        match self {
            Self::Compact(state) => state,
            Self::Padded(state) => &state.0,
        }
    }
}

/// One backend's live state, shared by every snapshot that lists it.
///
/// Picks write only `in_flight` (and `admit_credit` while a ramp runs); they read the health
/// fields only while some member of the tier is out of service or ramping (see the snapshot's
/// route), and then just before writing the same state.
#[derive(Debug)]
pub(crate) struct BackendState {
    /// Connections picked and not yet dropped.
    pub(crate) in_flight: AtomicU64,
    /// Slow start's admission credit, in 1/2^32 units: each proposal during a ramp adds the
    /// current share, and a whole one admits. A ramp starts with a whole one, so the first
    /// proposal after a backend comes back is admitted.
    admit_credit: AtomicU64,
    /// Nanoseconds at which the current ejection ends; 0 when not ejected.
    ejected_until: AtomicU64,
    /// When the backend last came back (slow start measures from here), or `NO_RAMP`.
    ramp_from: AtomicU64,
    actively_down: AtomicBool,
    counters: Mutex<Counters>,
    pub(crate) shared: Arc<Shared>,
}

/// A read-only view of one backend's health, for operators and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthStatus {
    /// Connections picked and not yet dropped.
    pub in_flight: u64,
    /// Passive ejection in force at the time asked.
    pub ejected: bool,
    /// Returned from an ejection and not yet proven by a success: one failure re-ejects.
    pub on_probation: bool,
    /// Active checks have taken it down.
    pub actively_down: bool,
}

impl BackendState {
    pub(crate) fn new(shared: Arc<Shared>, ramp_from: u64) -> Self {
        Self {
            in_flight: AtomicU64::new(0),
            admit_credit: AtomicU64::new(WHOLE),
            ejected_until: AtomicU64::new(0),
            ramp_from: AtomicU64::new(ramp_from),
            actively_down: AtomicBool::new(false),
            counters: Mutex::default(),
            shared,
        }
    }

    /// Neither ejected (an ejection that has run out counts as over) nor actively down.
    #[inline]
    pub(crate) fn in_service(&self, now: u64) -> bool {
        let until = self.ejected_until.load(Ordering::SeqCst);
        (until == 0 || until <= now) && !self.actively_down.load(Ordering::Relaxed)
    }

    pub(crate) fn ejected_until(&self) -> u64 {
        self.ejected_until.load(Ordering::SeqCst)
    }

    /// Slow-start share in 1/2^32 units, or `None` at full weight.
    #[inline]
    pub(crate) fn ramp(&self, now: u64) -> Option<u64> {
        let window = self.shared.config.slow_start;
        if window == 0 {
            return None;
        }
        let from = self.ramp_from.load(Ordering::Relaxed);
        if from == NO_RAMP || now < from || now - from >= window {
            return None;
        }
        let (whole, floor) = (
            u128::from(WHOLE),
            u128::from(self.shared.config.slow_start_floor_percent) * u128::from(WHOLE) / 100,
        );
        let share = floor + (whole - floor) * u128::from(now - from) / u128::from(window);
        Some(share as u64)
    }

    /// When the slow-start ramp in progress, or still to come (it begins when an ejection ends),
    /// reaches full weight; `None` when there is none.
    pub(crate) fn ramp_end(&self, now: u64) -> Option<u64> {
        let window = self.shared.config.slow_start;
        let from = self.ramp_from.load(Ordering::Relaxed);
        if window == 0 || from == NO_RAMP {
            return None;
        }
        let end = from.saturating_add(window);
        (now < end).then_some(end)
    }

    /// Slow start for a proposal of this backend at `share` (from [`Self::ramp`]): admits at
    /// exactly the share's rate, the first proposal of a ramp included, smoothly rather than by
    /// chance, so a backend that comes back takes its first connection as soon as it is proposed.
    pub(crate) fn admit(&self, share: u64) -> bool {
        let mut admitted = false;
        let _ = self
            .admit_credit
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |credit| {
                let credit = credit.saturating_add(share);
                admitted = credit >= WHOLE;
                Some(if admitted { credit - WHOLE } else { credit })
            });
        admitted
    }

    /// A slow-start ramp from `from`, with a whole admission in hand.
    fn start_ramp(&self, from: u64) {
        self.admit_credit.store(WHOLE, Ordering::Relaxed);
        self.ramp_from.store(from, Ordering::Relaxed);
    }

    pub(crate) fn record_success(&self, now: u64) {
        let mut p = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        p.consecutive_failures = 0;
        let until = self.ejected_until.load(Ordering::SeqCst);
        if until > now {
            // A connection made before the ejection worked: return early, still on probation.
            self.ejected_until.store(0, Ordering::SeqCst);
            self.start_ramp(now);
            self.shared.changed();
        } else if p.ejections > 0 {
            p.ejections = 0;
            self.ejected_until.store(0, Ordering::SeqCst);
        }
    }

    pub(crate) fn record_failure(&self, now: u64) {
        let config = &self.shared.config;
        if config.failures_to_eject == 0 {
            return;
        }
        let mut p = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        if self.ejected_until.load(Ordering::SeqCst) > now {
            return; // late failures of an already ejected backend change nothing
        }
        p.consecutive_failures += 1;
        let on_probation = p.ejections > 0;
        if !on_probation && p.consecutive_failures < config.failures_to_eject {
            return;
        }
        let factor = 1u64 << p.ejections.min(32);
        let backoff = config
            .base_ejection
            .saturating_mul(factor)
            .min(config.max_ejection);
        p.ejections = p.ejections.saturating_add(1);
        p.consecutive_failures = 0;
        let until = now.saturating_add(backoff).max(1);
        self.ejected_until.store(until, Ordering::SeqCst);
        // Slow start begins when the ejection ends.
        self.start_ramp(until);
        self.shared.changed();
    }

    /// One active check's result. A down backend rises on its `rise`-th consecutive good check,
    /// the first one counting: checked every `interval`, it is back `(rise - 1) · interval` after
    /// its first good check. A good check of a backend that is (or has just come) up also ends a
    /// passive ejection, onto probation (Envoy's `successful_active_health_check_uneject_host`):
    /// the checks, not the ejection's back-off, decide when a checked backend returns.
    pub(crate) fn record_probe(&self, ok: bool, now: u64) {
        let config = &self.shared.config;
        let mut s = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        let down = self.actively_down.load(Ordering::SeqCst);
        if ok {
            s.failed = 0;
            s.ok = s.ok.saturating_add(1);
            if down && s.ok < config.rise {
                return;
            }
            let ended_ejection = self.end_ejection(now);
            if down {
                self.actively_down.store(false, Ordering::SeqCst);
            }
            if down || ended_ejection {
                self.start_ramp(now);
                self.shared.changed();
            }
        } else {
            s.ok = 0;
            s.failed = s.failed.saturating_add(1);
            if !down && s.failed >= config.fall {
                self.actively_down.store(true, Ordering::SeqCst);
                self.shared.changed();
            }
        }
    }

    /// Ends a passive ejection still in force at `now`, leaving the backend on probation; true if
    /// there was one. The caller holds the counters' lock.
    fn end_ejection(&self, now: u64) -> bool {
        let ejected = self.ejected_until.load(Ordering::SeqCst) > now;
        if ejected {
            self.ejected_until.store(0, Ordering::SeqCst);
        }
        ejected
    }

    pub(crate) fn status(&self, now: u64) -> HealthStatus {
        let p = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        let until = self.ejected_until.load(Ordering::SeqCst);
        let ejected = until > now;
        HealthStatus {
            in_flight: self.in_flight.load(Ordering::SeqCst),
            ejected,
            on_probation: !ejected && p.ejections > 0,
            actively_down: self.actively_down.load(Ordering::SeqCst),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    const S: u64 = 1_000_000_000;

    fn state(config: PoolConfig) -> BackendState {
        BackendState::new(Arc::new(Shared::new(config)), NO_RAMP)
    }

    #[test]
    fn consecutive_failures_eject_and_back_off_grows_on_failed_probation() {
        let st = state(PoolConfig {
            failures_to_eject: 3,
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(35),
            ..Default::default()
        });
        st.record_failure(0);
        st.record_failure(0);
        st.record_success(0); // breaks the streak
        st.record_failure(0);
        st.record_failure(0);
        assert!(st.in_service(0));
        st.record_failure(S);
        assert!(!st.in_service(S));
        assert_eq!(st.ejected_until(), 11 * S);
        assert!(
            st.in_service(11 * S),
            "back in service when the back-off ends"
        );
        assert!(st.status(11 * S).on_probation);
        // One failure on probation re-ejects, for twice as long, then capped.
        st.record_failure(12 * S);
        assert_eq!(st.ejected_until(), 32 * S);
        st.record_failure(32 * S);
        assert_eq!(
            st.ejected_until(),
            32 * S + 35 * S,
            "capped at max_ejection"
        );
        // A success after the back-off ends passes probation: the next ejection is short again.
        st.record_success(100 * S);
        assert!(!st.status(100 * S).on_probation);
        for _ in 0..3 {
            st.record_failure(100 * S);
        }
        assert_eq!(st.ejected_until(), 110 * S);
    }

    #[test]
    fn success_while_ejected_returns_early_on_probation() {
        let st = state(PoolConfig {
            failures_to_eject: 1,
            ..Default::default()
        });
        st.record_failure(S);
        assert!(!st.in_service(2 * S));
        st.record_success(2 * S);
        assert!(st.in_service(2 * S));
        assert!(st.status(2 * S).on_probation);
        st.record_failure(3 * S);
        assert_eq!(
            st.ejected_until(),
            23 * S,
            "probation failure doubles the back-off"
        );
    }

    #[test]
    fn late_failures_do_not_extend_an_ejection() {
        let st = state(PoolConfig {
            failures_to_eject: 1,
            ..Default::default()
        });
        st.record_failure(0);
        let until = st.ejected_until();
        st.record_failure(S);
        assert_eq!(st.ejected_until(), until);
    }

    #[test]
    fn passive_off_never_ejects() {
        let st = state(PoolConfig {
            failures_to_eject: 0,
            ..Default::default()
        });
        for _ in 0..100 {
            st.record_failure(0);
        }
        assert!(st.in_service(0));
    }

    #[test]
    fn rise_and_fall_hysteresis() {
        let st = state(PoolConfig {
            rise: 2,
            fall: 3,
            ..Default::default()
        });
        st.record_probe(false, 0);
        st.record_probe(false, 0);
        st.record_probe(true, 0); // resets the fall streak
        st.record_probe(false, 0);
        st.record_probe(false, 0);
        assert!(st.in_service(0));
        st.record_probe(false, 0);
        assert!(!st.in_service(0));
        st.record_probe(true, 0);
        st.record_probe(false, 0); // resets the rise streak
        st.record_probe(true, 0);
        assert!(!st.in_service(0));
        st.record_probe(true, 0);
        assert!(st.in_service(0));
    }

    /// Checks every `interval` (1 s) on a simulated clock; the backend listens again from `back`.
    /// Returns the first good check and the time it was back in service.
    fn recovery(rise: u32, back: u64, config: PoolConfig) -> (u64, u64) {
        let st = state(PoolConfig { rise, ..config });
        st.record_failure(0);
        let mut first_good = None;
        for t in (0..60).map(|k| k * S) {
            let ok = t >= back;
            st.record_probe(ok, t);
            if ok {
                first_good.get_or_insert(t);
            }
            if st.in_service(t) && t >= back {
                return (first_good.unwrap(), t);
            }
        }
        panic!("never back");
    }

    #[test]
    fn a_down_backend_is_up_rise_minus_one_intervals_after_its_first_good_check() {
        let config = PoolConfig {
            failures_to_eject: 0,
            fall: 3,
            ..Default::default()
        };
        for rise in 1..=4 {
            for back in [7 * S, 7 * S + 1, 7 * S + S / 2, 8 * S - 1] {
                let (first_good, up) = recovery(rise, back, config);
                assert_eq!(first_good, back.div_ceil(S) * S, "checked every interval");
                assert_eq!(up, first_good + u64::from(rise - 1) * S, "rise {rise}");
                assert!(up - back <= u64::from(rise) * S);
            }
        }
    }

    #[test]
    fn a_passive_ejection_does_not_outlast_good_checks() {
        // Traffic ejected it for 10 s at 0; checks took it down (fall 3); it listens again at
        // 3.5 s. Rise 2 brings it back at 5 s, not when the ejection would have ended.
        let config = PoolConfig {
            failures_to_eject: 1,
            base_ejection: Duration::from_secs(10),
            fall: 3,
            ..Default::default()
        };
        assert_eq!(recovery(2, 3 * S + S / 2, config), (4 * S, 5 * S));
        // Up for the checks but ejected by traffic: the next good check ends the ejection, onto
        // probation, and the slow-start ramp begins there.
        let st = state(PoolConfig {
            slow_start: Duration::from_secs(10),
            ..config
        });
        st.record_failure(0);
        st.record_probe(false, S / 2);
        assert!(!st.in_service(S / 2));
        st.record_probe(true, S);
        assert!(st.in_service(S));
        assert!(st.status(S).on_probation);
        assert_eq!(st.ramp(S), Some((1u64 << 32) / 10));
        // A good check changes nothing for a backend in service.
        let generation = st.shared.generation.load(Ordering::SeqCst);
        st.record_probe(true, 2 * S);
        assert_eq!(st.shared.generation.load(Ordering::SeqCst), generation);
    }

    #[test]
    fn slow_start_ramp_is_monotone_from_floor_to_full() {
        let st = state(PoolConfig {
            failures_to_eject: 1,
            base_ejection: Duration::from_secs(10),
            slow_start: Duration::from_secs(60),
            slow_start_floor_percent: 10,
            ..Default::default()
        });
        assert_eq!(st.ramp(0), None, "no ramp at process start");
        st.record_failure(0);
        let floor = (1u64 << 32) / 10;
        assert_eq!(st.ramp(10 * S), Some(floor));
        let mut last = 0;
        for t in (10..70).map(|s| s * S) {
            let share = st.ramp(t).unwrap();
            assert!(share >= last && share < 1 << 32);
            last = share;
        }
        assert_eq!(st.ramp(70 * S), None, "full weight after the window");
    }
}
