//! One snapshot's cached routing decision (which tier serves, with or without health): valid for
//! one health generation and until the earliest ejection among that snapshot's own members runs
//! out. Kept per snapshot, so an older snapshot still in use cannot hide a newer one's ejections.
//! A sequence lock keeps the decision and its end consistent; readers never wait.

use core::sync::atomic::{AtomicU64, Ordering, fence};

use crate::route::Decision;

/// Health generations are compared on their low 60 bits; the route takes the other 4.
const GENERATION_MASK: u64 = (1 << 60) - 1;

#[derive(Debug)]
pub(crate) struct Plan {
    /// Odd while a writer is storing.
    seq: AtomicU64,
    /// generation << 4 | the decision's bits.
    decision: AtomicU64,
    /// Caller-clock nanoseconds from which the decision is stale.
    until: AtomicU64,
}

impl Plan {
    pub(crate) const fn new() -> Self {
        Self {
            seq: AtomicU64::new(0),
            decision: AtomicU64::new(u64::MAX),
            until: AtomicU64::new(0),
        }
    }

    /// The route decided for `generation`, if still valid at `now`.
    #[inline]
    pub(crate) fn cached(&self, generation: u64, now: u64) -> Option<Decision> {
        let before = self.seq.load(Ordering::Acquire);
        let decision = self.decision.load(Ordering::Relaxed);
        let until = self.until.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        let consistent = before & 1 == 0 && self.seq.load(Ordering::Relaxed) == before;
        (consistent && decision >> 4 == generation & GENERATION_MASK && now < until)
            .then(|| Decision::from_bits(decision & 15))
    }

    /// Caches `decision` for `generation` until `until`; skipped when another writer is storing (the
    /// next pick decides again).
    #[cold]
    pub(crate) fn store(&self, generation: u64, decision: Decision, until: u64) {
        let seq = self.seq.load(Ordering::Relaxed);
        if seq & 1 == 1
            || self
                .seq
                .compare_exchange(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        fence(Ordering::Release);
        self.decision.store(
            (generation & GENERATION_MASK) << 4 | decision.to_bits(),
            Ordering::Relaxed,
        );
        self.until.store(until, Ordering::Relaxed);
        self.seq.store(seq + 2, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Tier;
    use crate::route::Route;

    #[test]
    fn valid_for_its_generation_until_its_end() {
        let plan = Plan::new();
        assert_eq!(plan.cached(0, 0), None, "nothing decided yet");
        let primary = Decision::Serve(Route {
            tier: Tier::Primary,
            panic: false,
            clear: false,
        });
        plan.store(7, primary, 100);
        assert_eq!(plan.cached(7, 99), Some(primary));
        assert_eq!(plan.cached(7, 100), None, "an ejection ran out");
        assert_eq!(plan.cached(8, 0), None, "health changed");
        let backup = Decision::Serve(Route {
            tier: Tier::Backup,
            panic: false,
            clear: true,
        });
        plan.store(8, backup, u64::MAX);
        assert_eq!(plan.cached(8, u64::MAX - 1), Some(backup));
    }
}
