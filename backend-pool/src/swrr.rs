//! Smooth weighted round-robin with nginx's exact sequence, at O(1) per pick: the whole cycle is
//! computed when the snapshot is built, then walked with one shared atomic counter. A cycle too
//! long to precompute (sum of weights / their gcd above `max_period`, or too many distinct weights
//! to build quickly) is walked live instead: nginx's own step, exact, O(distinct weights) per pick
//! under a short per-tier lock.

use core::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::PoolError;
use crate::algorithm::{Algorithm, Member, Proposal};
use crate::health::PAD_FROM;
use crate::rng::mix64;

/// Settings for [`SmoothWeighted`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmoothConfig {
    /// Start each rebuilt cycle at a random position (from the rebuild seed) so a fleet of proxies
    /// does not send its first picks to the same backend. Off only for reproducing nginx exactly.
    pub random_start: bool,
    /// Longest cycle (sum of weights / their gcd) to precompute, in picks; 4 bytes each (the
    /// default, 2^20, is 4 MiB per tier). At most 2^30 whatever is set here. Longer cycles are
    /// walked live: the same sequence, slower and under a lock.
    pub max_period: u64,
}

impl Default for SmoothConfig {
    fn default() -> Self {
        Self {
            random_start: true,
            max_period: 1 << 20,
        }
    }
}

/// nginx's smooth weighted round-robin (`a a b a c a a` for weights 5, 1, 1), precomputed, or
/// walked live when the cycle is too long to precompute.
#[derive(Debug)]
pub struct SmoothWeighted {
    /// `[lead]` is the counter: the next pick's position in the cycle (every pick adds one);
    /// then one full cycle of snapshot indices (none when walked live). The counter lives with
    /// the cycle rather than beside the fields every pick reads, so those stay on lines nobody
    /// writes: a pick writes the counter, then reads the cycle from the line it has just written
    /// (the whole cycle, for a small pool). From `PAD_FROM` members on, 128 bytes of unused slots
    /// before the counter and after the cycle keep whatever the allocator put beside the block
    /// off the counter's lines; below, the pool stays small (a proxy may hold 100,000 of them).
    cycle: Box<[AtomicU32]>,
    live: Option<Box<Mutex<Stepper>>>,
    /// Fast remainder by the period.
    len: FastMod,
    /// Where the counter is in `cycle`.
    lead: u32,
    /// Picks in one cycle (at most 2^30); 0 when walked live.
    period: u32,
}

/// Unused slots on each side of a padded cycle: 128 bytes (Intel fetches lines in pairs).
const PAD_SLOTS: usize = 32;

impl SmoothWeighted {
    /// One full cycle, as snapshot indices; empty when the cycle is walked live.
    pub fn schedule(&self) -> impl ExactSizeIterator<Item = u32> + '_ {
        let first = self.lead as usize + 1;
        self.cycle[first..first + self.period as usize]
            .iter()
            .map(|slot| slot.load(Ordering::Relaxed))
    }

    #[inline]
    fn counter(&self) -> &AtomicU32 {
        &self.cycle[self.lead as usize]
    }
}

/// Counter value at which whole cycles are subtracted again: the counter stays below 2^32, in
/// the fast remainder's range, and no slot changes its place in the cycle.
const FOLD_AT: u32 = 1 << 31;
/// Longest cycle: the fold subtracts at least one cycle.
const MAX_PERIOD: u64 = 1 << 30;

impl SmoothWeighted {
    #[inline]
    fn take_slot(&self) -> u64 {
        let slot = self.counter().fetch_add(1, Ordering::Relaxed);
        if slot == FOLD_AT {
            // exactly one pick sees this value, so exactly one folds, by whole cycles (at most
            // 2^30, so the counter never wraps)
            let len = u64::from(self.period);
            let fold = MAX_PERIOD.checked_div(len).map_or(0, |k| k * len);
            self.counter().fetch_sub(fold as u32, Ordering::Relaxed);
        }
        u64::from(slot)
    }
}

impl Algorithm for SmoothWeighted {
    type Config = SmoothConfig;

    /// Builds from any members: a cycle too long to precompute is walked live.
    fn check(_: &[Member], _: &SmoothConfig) -> Result<(), PoolError> {
        Ok(())
    }

    fn build(members: &[Member], config: &SmoothConfig, seed: u64) -> Result<Self, PoolError> {
        let mut stepper = Stepper::new(members);
        let precompute = stepper.period <= config.max_period.min(MAX_PERIOD)
            && stepper.period.saturating_mul(stepper.groups.len() as u64) <= MAX_BUILD_STEPS;
        if !precompute {
            if config.random_start {
                // as far into the cycle as a quick build allows
                let reach = (MAX_LIVE_START / stepper.groups.len().max(1) as u64).max(1);
                for _ in 0..mix64(seed) % stepper.period.min(reach) {
                    stepper.step();
                }
            }
            return Ok(Self {
                cycle: Box::new([AtomicU32::new(0)]),
                live: Some(Box::new(Mutex::new(stepper))),
                len: FastMod::new(0),
                lead: 0,
                period: 0,
            });
        }
        let period = stepper.period;
        let start = if config.random_start && period > 0 {
            mix64(seed) % period
        } else {
            0
        };
        let pad = if members.len() >= PAD_FROM {
            PAD_SLOTS
        } else {
            0
        };
        // the period is at most 2^30: it and the start fit
        let cycle: Box<[AtomicU32]> = core::iter::repeat_n(0, pad)
            .chain(core::iter::once(start as u32))
            .chain((0..period).map(|_| stepper.step()))
            .chain(core::iter::repeat_n(0, pad))
            .map(AtomicU32::new)
            .collect();
        Ok(Self {
            cycle,
            live: None,
            len: FastMod::new(period),
            lead: pad as u32,
            period: period as u32,
        })
    }

    #[inline]
    fn propose(&self, p: &mut Proposal<'_>) -> Option<u32> {
        if let Some(live) = &self.live {
            // No slots to walk on from: a retry, too, takes the sequence's next step.
            return Some(live.lock().unwrap_or_else(PoisonError::into_inner).step());
        }
        let period = u64::from(self.period);
        if period == 0 {
            return None;
        }
        // A first pick takes its slot from the shared counter, again after an unusable one, so
        // the others keep exact shares: the cycle minus the skipped backend's slots. A retry walks
        // on from its pick's slot, so it too follows the smooth order.
        let slot = if p.is_retry() {
            p.cursor().wrapping_add(1)
        } else {
            self.take_slot()
        };
        *p.cursor() = slot;
        let at = self.lead as usize + 1 + self.len.rem(slot, period) as usize;
        self.cycle
            .get(at)
            .map(|index| index.load(Ordering::Relaxed))
    }
}

/// `a % d` by two multiplications with a precomputed reciprocal (Lemire, Kaser, Kurz 2019) for
/// `a` below 2^32, which the folded counter always is; a division otherwise. Only the reciprocal
/// is kept: `d` is the length of the slice it indexes, given again with each call.
#[derive(Debug)]
struct FastMod {
    m: u64,
}

impl FastMod {
    /// `d` at most 2^30 (the longest cycle allowed).
    fn new(d: u64) -> Self {
        let m = if d > 1 { u64::MAX / d + 1 } else { 0 };
        Self { m }
    }

    /// `a % d`, for the `d` this was made for.
    #[inline]
    fn rem(&self, a: u64, d: u64) -> u64 {
        if d <= 1 {
            return 0;
        }
        if a >> 32 != 0 {
            return a % d;
        }
        let low = self.m.wrapping_mul(a);
        ((u128::from(low) * u128::from(d)) >> 64) as u64
    }
}

/// Cycle length × distinct weights allowed when precomputing (a fraction of a second).
const MAX_BUILD_STEPS: u64 = 1 << 26;
/// Steps × distinct weights spent on a live walker's random start.
const MAX_LIVE_START: u64 = 1 << 20;

/// One group of members with the same weight: nginx picks them in list order, one per round.
#[derive(Debug)]
struct Group {
    weight: u64,
    members: Vec<u32>,
    next: usize,
    rounds: u64,
}

/// nginx's selection, step by step: every peer's current weight grows by its weight, the largest
/// wins (first in list order on a tie) and loses the total. Peers of equal weight are always
/// picked in turn, so one step costs O(distinct weights), not O(n).
#[derive(Debug)]
struct Stepper {
    groups: Vec<Group>,
    /// Picks in one cycle: the sum of the weights divided by their gcd.
    period: u64,
    /// Steps taken in the current cycle.
    t: u64,
}

impl Stepper {
    fn new(members: &[Member]) -> Self {
        let gcd = members
            .iter()
            .fold(0u64, |g, m| gcd(g, u64::from(m.weight)))
            .max(1);
        let mut groups: Vec<Group> = Vec::new();
        for m in members.iter().filter(|m| m.weight > 0) {
            let weight = u64::from(m.weight) / gcd;
            match groups.iter_mut().find(|g| g.weight == weight) {
                Some(g) => g.members.push(m.index),
                None => groups.push(Group {
                    weight,
                    members: vec![m.index],
                    next: 0,
                    rounds: 0,
                }),
            }
        }
        let period = members.iter().map(|m| u64::from(m.weight) / gcd).sum();
        Self {
            groups,
            period,
            t: 0,
        }
    }

    /// The next pick (`u32::MAX` when there are no members).
    fn step(&mut self) -> u32 {
        if self.t == self.period {
            // a whole cycle: every current weight is back to zero
            self.t = 0;
            for g in &mut self.groups {
                g.rounds = 0;
            }
        }
        self.t += 1;
        let (t, total) = (i128::from(self.t), i128::from(self.period));
        // current weight of a group's next member = t·w − total·(times it was picked)
        let mut best: Option<(i128, u32, usize)> = None;
        for (gi, g) in self.groups.iter().enumerate() {
            let value = t * i128::from(g.weight) - total * i128::from(g.rounds);
            let index = g.members[g.next];
            let better = match best {
                None => true,
                Some((v, i, _)) => value > v || (value == v && index < i),
            };
            if better {
                best = Some((value, index, gi));
            }
        }
        let Some((_, index, gi)) = best else {
            return u32::MAX;
        };
        let g = &mut self.groups[gi];
        g.next += 1;
        if g.next == g.members.len() {
            g.next = 0;
            g.rounds += 1;
        }
        index
    }
}

const fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        let r = a % b;
        a = b;
        b = r;
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rng;
    use crate::algorithm::members;

    fn nginx_cycle(m: &[Member]) -> Box<[u32]> {
        let mut s = Stepper::new(m);
        (0..s.period).map(|_| s.step()).collect()
    }

    fn letters(cycle: &[u32]) -> String {
        cycle.iter().map(|&i| (b'a' + i as u8) as char).collect()
    }

    /// nginx's loop as written (O(n) per pick), to check the precomputed cycle against.
    fn nginx_reference(weights: &[u32], picks: usize) -> Vec<u32> {
        let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
        let mut current = vec![0i64; weights.len()];
        let mut out = Vec::new();
        for _ in 0..picks {
            let mut best: Option<usize> = None;
            for (i, &w) in weights.iter().enumerate() {
                current[i] += i64::from(w);
                if best.is_none_or(|b| current[i] > current[b]) {
                    best = Some(i);
                }
            }
            let b = best.unwrap();
            current[b] -= total;
            out.push(b as u32);
        }
        out
    }

    #[test]
    fn fast_mod_equals_remainder() {
        let mut rng = Rng::new(3);
        let divisors = [1u64, 2, 3, 7, 505, 50_500, 1 << 22, (1 << 30) - 35, 1 << 30];
        for d in divisors {
            let f = FastMod::new(d);
            let edges = [
                0,
                1,
                d - 1,
                d,
                d + 1,
                u64::from(u32::MAX),
                1 << 32,
                u64::MAX,
            ];
            for a in edges {
                assert_eq!(f.rem(a, d), a % d, "{a} % {d}");
            }
            for _ in 0..10_000 {
                let a = rng.next_u64() >> (rng.below(2) * 32);
                assert_eq!(f.rem(a, d), a % d, "{a} % {d}");
            }
        }
    }

    #[test]
    fn counter_folds_without_leaving_the_cycle() {
        let m = members(&[5, 1, 1]);
        let config = SmoothConfig {
            random_start: false,
            ..Default::default()
        };
        let s = SmoothWeighted::build(&m, &config, 0).unwrap();
        s.counter().store(FOLD_AT - 20, Ordering::Relaxed);
        let positions: Vec<u64> = (0..40).map(|_| s.len.rem(s.take_slot(), 7)).collect();
        for pair in positions.windows(2) {
            assert_eq!(pair[1], (pair[0] + 1) % 7, "{positions:?}");
        }
        assert!(s.counter().load(Ordering::Relaxed) < FOLD_AT);
    }

    #[test]
    fn nginx_golden_sequences() {
        let cycle = |w: &[u32]| letters(&nginx_cycle(&members(w)));
        assert_eq!(cycle(&[5, 1, 1]), "aabacaa");
        assert_eq!(cycle(&[4, 2, 1]), "abacaba");
        assert_eq!(cycle(&[2, 1]), "aba");
        assert_eq!(cycle(&[1, 1, 1]), "abc");
        assert_eq!(cycle(&[10, 2, 2]), "aabacaa", "scaled by the gcd");
    }

    #[test]
    fn matches_nginx_loop_for_random_weights() {
        let mut rng = Rng::new(42);
        for _ in 0..200 {
            let n = 1 + rng.below(12) as usize;
            let weights: Vec<u32> = (0..n).map(|_| 1 + rng.below(20) as u32).collect();
            let cycle = nginx_cycle(&members(&weights));
            let g = weights.iter().fold(0, |g, &w| gcd(g, u64::from(w)));
            let reduced: Vec<u32> = weights.iter().map(|&w| (u64::from(w) / g) as u32).collect();
            assert_eq!(
                &*cycle,
                nginx_reference(&reduced, cycle.len()),
                "{weights:?}"
            );
            // and nginx with the unreduced weights is the same sequence
            assert_eq!(
                &*cycle,
                nginx_reference(&weights, cycle.len()),
                "{weights:?}"
            );
        }
    }

    #[test]
    fn exact_counts_per_cycle_and_window_smoothness() {
        let mut rng = Rng::new(7);
        for _ in 0..100 {
            let n = 1 + rng.below(8) as usize;
            let weights: Vec<u32> = (0..n).map(|_| 1 + rng.below(30) as u32).collect();
            let g = weights.iter().fold(0, |g, &w| gcd(g, u64::from(w)));
            let w: Vec<u64> = weights.iter().map(|&x| u64::from(x) / g).collect();
            let total: u64 = w.iter().sum();
            let cycle = nginx_cycle(&members(&weights));
            for (i, &wi) in w.iter().enumerate() {
                let count = cycle.iter().filter(|&&c| c == i as u32).count() as u64;
                assert_eq!(count, wi);
            }
            // every window of every length, wrapping around the cycle (it repeats forever)
            let len = cycle.len();
            for (i, &wi) in w.iter().enumerate() {
                let mut prefix = vec![0u64; 2 * len + 1];
                for k in 0..2 * len {
                    prefix[k + 1] = prefix[k] + u64::from(cycle[k % len] == i as u32);
                }
                for l in 1..=len {
                    for start in 0..len {
                        let count = prefix[start + l] - prefix[start];
                        assert!(
                            count <= (l as u64 * wi).div_ceil(total) + 1,
                            "{weights:?} window {l} at {start}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn longest_run_for_100_1_1_is_nginx_s() {
        let cycle = nginx_cycle(&members(&[100, 1, 1]));
        let doubled: Vec<u32> = cycle.iter().chain(cycle.iter()).copied().collect();
        let longest = doubled
            .chunk_by(|a, b| a == b)
            .map(<[u32]>::len)
            .max()
            .unwrap();
        let reference = nginx_reference(&[100, 1, 1], 204);
        let ref_longest = reference
            .chunk_by(|a, b| a == b)
            .map(<[u32]>::len)
            .max()
            .unwrap();
        assert_eq!(longest, ref_longest);
        assert!(longest < 100, "smoother than an expanded array: {longest}");
    }

    fn not_random(max_period: u64) -> SmoothConfig {
        SmoothConfig {
            random_start: false,
            max_period,
        }
    }

    /// The first `picks` of a built algorithm, through `propose` as the pool calls it.
    fn walk(s: &SmoothWeighted, picks: usize) -> Vec<u32> {
        let filter = crate::entry::Filter {
            entries: &[],
            route: crate::route::Route {
                tier: crate::Tier::Primary,
                panic: false,
                clear: false,
            },
            now: 0,
            tried: &crate::tried::Tried::new(),
        };
        let mut rng = Rng::new(0);
        (0..picks)
            .map(|_| {
                let mut cursor = 0;
                let mut p = Proposal {
                    key: b"",
                    rng: &mut rng,
                    attempt: 0,
                    cursor: &mut cursor,
                    filter: &filter,
                };
                s.propose(&mut p).unwrap()
            })
            .collect()
    }

    #[test]
    fn long_cycles_are_walked_live_with_nginx_s_sequence() {
        let mut rng = Rng::new(5);
        let heterogeneous: Vec<u32> = (0..1000).map(|_| 1 + rng.below(10_000) as u32).collect();
        let distinct: Vec<u32> = (1..=3000).collect();
        for weights in [&heterogeneous[..], &distinct, &[u32::MAX, 1], &[5, 1, 1]] {
            // [5, 1, 1] with a 4-pick limit: live across the cycle's wrap
            let limit = if weights.len() == 3 { 4 } else { 1 << 20 };
            let s = SmoothWeighted::build(&members(weights), &not_random(limit), 0).unwrap();
            assert_eq!(s.schedule().len(), 0, "walked live");
            let picks = 3 * weights.len().max(10);
            assert_eq!(
                walk(&s, picks),
                nginx_reference(weights, picks),
                "{}",
                weights.len()
            );
        }
        // within the limits, still precomputed
        let s = SmoothWeighted::build(&members(&[5, 1, 1]), &not_random(7), 0).unwrap();
        assert_eq!(letters(&s.schedule().collect::<Vec<_>>()), "aabacaa");
    }

    #[test]
    fn a_live_walk_starts_at_random_reproducibly() {
        let weights = [1_000_000, 999_999, 3];
        let m = members(&weights);
        let first = |seed| {
            walk(
                &SmoothWeighted::build(&m, &SmoothConfig::default(), seed).unwrap(),
                40,
            )
        };
        assert_eq!(first(1), first(1));
        // a random start reaches at most 2^20 / 3 steps in
        let reference = nginx_reference(&weights, 350_000 + 40);
        let starts: Vec<Vec<u32>> = (0..8).map(first).collect();
        for s in &starts {
            assert!(
                reference.windows(40).any(|w| w == &s[..]),
                "a stretch of nginx's sequence"
            );
        }
        assert!(
            starts.iter().any(|s| s != &starts[0]),
            "seeds start elsewhere"
        );
    }

    #[test]
    fn padded_cycles_walk_the_same_sequence() {
        for weights in [&[5, 1, 1][..], &[5, 1, 1, 2], &[3; 40]] {
            let s = SmoothWeighted::build(&members(weights), &not_random(1 << 20), 0).unwrap();
            let padded = weights.len() >= PAD_FROM;
            assert_eq!(s.lead as usize, if padded { PAD_SLOTS } else { 0 });
            assert_eq!(s.schedule().len() as u64, u64::from(s.period));
            let cycle: Vec<u32> = s.schedule().collect();
            let picks = walk(&s, 3 * cycle.len());
            assert!(picks.chunks(cycle.len()).all(|c| c == cycle), "{weights:?}");
            assert_eq!(&*cycle, &*nginx_cycle(&members(weights)));
        }
    }

    #[test]
    fn huge_but_proportional_weights_reduce_by_the_gcd() {
        let s = SmoothWeighted::build(&members(&[u32::MAX, u32::MAX]), &not_random(4), 0).unwrap();
        assert!(s.schedule().eq([0, 1]));
    }

    #[test]
    fn random_start_spreads_a_fleet_by_weight() {
        let m = members(&[5, 1, 1]);
        let config = SmoothConfig::default();
        let mut first = [0u32; 3];
        let fleet = 7000;
        for seed in 0..fleet {
            let s = SmoothWeighted::build(&m, &config, mix64(seed)).unwrap();
            let start = s.counter().load(Ordering::Relaxed) as usize;
            first[s.schedule().nth(start).unwrap() as usize] += 1;
        }
        // binomial bounds, 4σ
        for (i, &w) in [5.0, 1.0, 1.0].iter().enumerate() {
            let p = w / 7.0;
            let mean = fleet as f64 * p;
            let sigma = (fleet as f64 * p * (1.0 - p)).sqrt();
            assert!(
                (f64::from(first[i]) - mean).abs() <= 4.0 * sigma,
                "{first:?}"
            );
        }
    }
}
