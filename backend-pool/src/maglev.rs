//! Maglev consistent hashing (Eisenbud et al., NSDI 2016), weighted: a prime-sized table filled
//! from each backend's own permutation, so a key maps to the same backend in every process and
//! removing one of n backends moves about 1/n of the keys (plus Maglev's own reshuffle of
//! ≈ 0.6 % among the others, which dominates beyond n ≈ 100). Unhealthy backends are skipped at pick
//! time by rehashing the key, never by rebuilding the table.
//!
//! Table size. The paper asks for a prime M ≫ N: with M ≥ 100·N every backend's share is within
//! 1 % of its due (equal weights get ⌊M/N⌋ or ⌈M/N⌉ slots each), and that holds for small N with
//! a small M just as for large N with a large one. So the size follows N on a fixed ladder, the
//! primes at or above 65537·2^k for any integer k (…, 257, 521, 1031, 2053, 4099, …, 65537,
//! 131101, …): two backends take 257 slots, not 65537, which matters to a proxy holding one pool
//! per hosted site. Within a step, removing one of n backends moves ≈ 1/n of the keys (plus the
//! reshuffle) and adding one moves keys mostly to it; when n crosses a step (2→3, 5→6, 10→11,
//! 20→21, 40→41, 81→82, 163→164, 327→328, 655→656, … with the defaults) the size changes and
//! nearly every key moves. A pool that must keep its keys while it grows or shrinks across those
//! sets [`MaglevConfig::min_table_size`] (65537, Envoy's size, keeps the old placement of pools up
//! to 655 backends; from 328 backends on it is the default anyway).

use core::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::PoolError;
use crate::algorithm::{Algorithm, Member, Proposal};
use crate::rng::{mix64, scale, stable_hash};

/// Settings for [`Maglev`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaglevConfig {
    /// Table slots per backend, at least: 100 keeps every backend's share within 1 % of its due.
    /// The size comes from a fixed ladder (see [`Maglev::table_size`]), so it stays the same while
    /// backends come and go and a key keeps its backend.
    pub slots_per_backend: u32,
    /// The smallest table, in slots: the size is the first step of the ladder (see
    /// [`Maglev::table_size`]) at or above both this and `slots_per_backend` per backend. The
    /// default, 0, lets a small pool have a small table; 65537 (Envoy's size) keeps every pool up to
    /// 655 backends on one size, so adding or removing a backend never remaps the others' keys.
    pub min_table_size: u64,
    /// Largest table allowed, in slots (a byte each while the snapshot has at most 256 backends,
    /// 2 up to 65536, else 4). The default, 2^24, is at most 64 MiB per tier
    /// (primary and backup each have a table) and serves up to 167 772 backends at 100 slots
    /// each; more backends are a [`PoolError::TableTooLarge`] unless this is raised.
    pub max_table_size: u64,
}

impl Default for MaglevConfig {
    fn default() -> Self {
        Self {
            slots_per_backend: 100,
            min_table_size: 0,
            max_table_size: 1 << 24,
        }
    }
}

/// Maglev lookup table over one tier.
#[derive(Debug)]
pub struct Maglev {
    table: Slots,
}

/// Slot → snapshot index, in the narrowest integers that hold every index: a table over the first
/// 256 backends of a snapshot takes a byte a slot (257 bytes for a pool of 2, not 1028).
#[derive(Debug)]
enum Slots {
    U8(Box<[u8]>),
    U16(Box<[u16]>),
    U32(Box<[u32]>),
}

impl Slots {
    fn new(table: Vec<u32>) -> Self {
        let max = table.iter().copied().max().unwrap_or(0);
        if u8::try_from(max).is_ok() {
            Self::U8(table.iter().map(|&i| i as u8).collect())
        } else if u16::try_from(max).is_ok() {
            Self::U16(table.iter().map(|&i| i as u16).collect())
        } else {
            Self::U32(table.into_boxed_slice())
        }
    }

    #[inline]
    fn len(&self) -> usize {
        match self {
            Self::U8(t) => t.len(),
            Self::U16(t) => t.len(),
            Self::U32(t) => t.len(),
        }
    }

    #[inline]
    fn get(&self, slot: usize) -> Option<u32> {
        match self {
            Self::U8(t) => t.get(slot).map(|&i| u32::from(i)),
            Self::U16(t) => t.get(slot).map(|&i| u32::from(i)),
            Self::U32(t) => t.get(slot).copied(),
        }
    }
}

/// Key hashes do not depend on the rebuild seed: a key must keep its backend across rebuilds.
const KEY_SEED: u64 = 0x6d61_676c_6576;
const EMPTY: u32 = u32::MAX;
/// The table sizes' ladder passes through Envoy's 65537 (= 2^16 + 1, prime), so pools of 328
/// backends and more keep the sizes, and the placement, they had when it started there.
const LADDER: u64 = 65537;

impl Maglev {
    /// The lookup table: slot → snapshot index.
    pub fn table(&self) -> impl ExactSizeIterator<Item = u32> + '_ {
        (0..self.table.len()).map(|slot| self.table.get(slot).unwrap_or(EMPTY))
    }

    /// The table size for `n` backends: the first prime at or above the smallest step of the
    /// ladder `⌈65537·2^k⌉`, k any integer (…, 129, 257, 513, …, 32769, 65537, 131074, …), that
    /// gives every backend `slots_per_backend` slots and is at least `min_table_size`; capped at
    /// the largest prime ≤ `max_table_size`. It depends on nothing but `n` and the configuration,
    /// so every process agrees, and it changes only when `n` crosses a step (with the defaults:
    /// 3, 6, 11, 21, 41, 82, 164, 328, 656, 1311, … backends) — only then does a membership
    /// change remap most keys; otherwise removing one of n backends moves about 1/n of them.
    pub fn table_size(n: usize, config: &MaglevConfig) -> Result<u64, PoolError> {
        let needed = (n as u64)
            .saturating_mul(u64::from(config.slots_per_backend))
            .max(2);
        let limit = config.max_table_size.min(u64::from(EMPTY) - 1);
        let too_large = PoolError::TableTooLarge {
            size: needed,
            limit: config.max_table_size,
        };
        if needed > limit {
            return Err(too_large);
        }
        let floor = needed.max(config.min_table_size);
        let mut step = LADDER;
        while step < floor {
            step = step.saturating_mul(2);
        }
        while step.div_ceil(2) >= floor {
            step = step.div_ceil(2);
        }
        if step <= limit {
            let size = next_prime(step);
            if size <= limit {
                return Ok(size);
            }
        }
        let cap = prev_prime(limit);
        if needed <= cap {
            Ok(cap)
        } else {
            Err(too_large)
        }
    }
}

impl Maglev {
    /// The table size `build` uses, `None` for no members; what `build` refuses.
    fn size_for(members: &[Member], config: &MaglevConfig) -> Result<Option<u64>, PoolError> {
        if config.slots_per_backend == 0 {
            return Err(PoolError::InvalidConfig("slots_per_backend must be >= 1"));
        }
        if members.is_empty() {
            return Ok(None);
        }
        Self::table_size(members.len(), config).map(Some)
    }
}

impl Algorithm for Maglev {
    type Config = MaglevConfig;
    const KEYED: bool = true;

    /// The configuration and the table size, without filling a table.
    fn check(members: &[Member], config: &MaglevConfig) -> Result<(), PoolError> {
        Self::size_for(members, config).map(drop)
    }

    fn build(members: &[Member], config: &MaglevConfig, _seed: u64) -> Result<Self, PoolError> {
        let Some(size) = Self::size_for(members, config)? else {
            return Ok(Self {
                table: Slots::U8(Box::default()),
            });
        };
        Ok(Self {
            table: Slots::new(populate(members, size)),
        })
    }

    #[inline]
    fn propose(&self, p: &mut Proposal<'_>) -> Option<u32> {
        let size = self.table.len() as u64;
        if size == 0 {
            return None;
        }
        let hash = if p.attempt() == 0 {
            let h = stable_hash(p.key(), KEY_SEED);
            *p.cursor() = h;
            h
        } else {
            // Rehash rather than step to the next slot: an unhealthy backend's keys spread by
            // weight over the others instead of landing on one neighbour.
            mix64(*p.cursor() ^ u64::from(p.attempt()).wrapping_mul(0x9e37_79b9_7f4a_7c15))
        };
        self.table.get(scale(hash, size) as usize)
    }
}

/// Each backend walks its permutation (offset + j·skip mod size) and claims the first free slot,
/// taking turns in rounds; a backend of weight w takes a turn in w / max_weight of the rounds:
/// its c-th turn falls in round ⌊c·max_weight / w⌋ + 1, after the lower identities' turns of that
/// round. Turns come from a heap in that order, so a round costs nothing for backends sitting it
/// out: O(size · log n) whatever the weights, not O(rounds · n).
fn populate(members: &[Member], size: u64) -> Vec<u32> {
    // Placement order by identity, not by list order, so the table is the same whatever order the
    // caller listed the backends in.
    let mut order: Vec<&Member> = members.iter().collect();
    order.sort_by_key(|m| (m.id_hash, m.index));
    let max_weight = u64::from(order.iter().map(|m| m.weight).max().unwrap_or(1));
    let mut position: Vec<u64> = order.iter().map(|m| mix64(m.id_hash ^ 1) % size).collect();
    let skip: Vec<u64> = order
        .iter()
        .map(|m| mix64(m.id_hash ^ 2) % (size - 1) + 1)
        .collect();
    let round = |claimed: u64, weight: u32| claimed * max_weight / u64::from(weight) + 1;
    let mut turns: BinaryHeap<Reverse<(u64, usize)>> =
        (0..order.len()).map(|k| Reverse((1, k))).collect();
    let mut claimed = vec![0u64; order.len()];
    let mut table = vec![EMPTY; size as usize];
    let mut filled = 0u64;
    while filled < size {
        let Some(Reverse((_, k))) = turns.pop() else {
            break;
        };
        loop {
            let slot = position[k] as usize;
            position[k] = (position[k] + skip[k]) % size;
            if table[slot] == EMPTY {
                table[slot] = order[k].index;
                break;
            }
        }
        filled += 1;
        // claims stay below the size (< 2^32), so claims × max_weight fits in 64 bits
        claimed[k] += 1;
        turns.push(Reverse((round(claimed[k], order[k].weight), k)));
    }
    table
}

fn next_prime(mut n: u64) -> u64 {
    while !is_prime(n) {
        n += 1;
    }
    n
}

fn prev_prime(mut n: u64) -> u64 {
    while n > 2 && !is_prime(n) {
        n -= 1;
    }
    n
}

fn is_prime(n: u64) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n % 2 == 0 {
        return false;
    }
    let mut d = 3;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 2;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::BackendId;

    fn members(n: usize, weight: u32) -> Vec<Member> {
        (0..n)
            .map(|i| Member {
                index: i as u32,
                weight,
                id_hash: BackendId::name(&format!("backend-{i}")).stable_hash(),
            })
            .collect()
    }

    fn slots(m: &Maglev) -> Vec<u32> {
        m.table().collect()
    }

    fn shares(table: &[u32], n: usize) -> Vec<u64> {
        let mut counts = vec![0u64; n];
        for &b in table {
            counts[b as usize] += 1;
        }
        counts
    }

    #[test]
    fn table_is_prime_and_at_least_100n() {
        let config = MaglevConfig {
            min_table_size: 0,
            ..Default::default()
        };
        let m = Maglev::build(&members(100, 1), &config, 0).unwrap();
        assert_eq!(slots(&m).len(), 16411, "65537/4 rounded up, next prime");
        let m = Maglev::build(&members(1000, 1), &MaglevConfig::default(), 0).unwrap();
        assert_eq!(slots(&m).len(), 131_101, "65537·2, next prime");
        let m = Maglev::build(&members(3, 1), &MaglevConfig::default(), 0).unwrap();
        assert_eq!(slots(&m).len(), 521, "65537/128 rounded up, next prime");
        let m = Maglev::build(&members(2, 1), &MaglevConfig::default(), 0).unwrap();
        assert_eq!(slots(&m).len(), 257, "65537/256 rounded up, a prime");
        assert!(is_prime(10007) && !is_prime(10001));
    }

    #[test]
    fn balance_max_over_mean_at_n_100() {
        let config = MaglevConfig {
            min_table_size: 0,
            ..Default::default()
        };
        let m = Maglev::build(&members(100, 1), &config, 0).unwrap();
        let counts = shares(&slots(&m), 100);
        let mean = slots(&m).len() as f64 / 100.0;
        let max = *counts.iter().max().unwrap() as f64;
        assert!(max / mean <= 1.01, "max/mean {}", max / mean);
    }

    #[test]
    fn weighted_shares_follow_weights() {
        let mut ms = members(10, 1);
        for (i, m) in ms.iter_mut().enumerate() {
            m.weight = 1 + i as u32;
        }
        let m = Maglev::build(&ms, &MaglevConfig::default(), 0).unwrap();
        let counts = shares(&slots(&m), 10);
        let size = slots(&m).len() as f64;
        for (i, &c) in counts.iter().enumerate() {
            let due = size * (1 + i) as f64 / 55.0;
            assert!((c as f64 - due).abs() / due < 0.03, "{i}: {c} vs {due}");
        }
    }

    #[test]
    fn size_stays_between_ladder_steps() {
        let size = |n| Maglev::table_size(n, &MaglevConfig::default()).unwrap();
        let sizes: Vec<u64> = [
            1, 2, 3, 5, 6, 10, 11, 20, 21, 40, 41, 81, 82, 163, 164, 327, 328,
        ]
        .iter()
        .map(|&n| size(n))
        .collect();
        assert_eq!(
            sizes,
            [
                131, 257, 521, 521, 1031, 1031, 2053, 2053, 4099, 4099, 8209, 8209, 16411, 16411,
                32771, 32771, 65537
            ]
        );
        for n in 1..=3000 {
            assert!(size(n) >= 100 * n as u64, "{n}");
            assert!(is_prime(size(n)), "{n}");
        }
        // Envoy's size for every pool up to 655 backends, as before the ladder went below it
        let envoy = MaglevConfig {
            min_table_size: 65537,
            ..Default::default()
        };
        for n in [1, 2, 20, 327, 328, 655] {
            assert_eq!(Maglev::table_size(n, &envoy), Ok(65537));
        }
        assert_eq!(Maglev::table_size(656, &envoy), Ok(131_101));
        assert_eq!(size(655), 65537);
        assert_eq!(size(656), 131_101);
        assert_eq!(size(700), size(699));
        assert_eq!(size(1310), 131_101);
        assert_eq!(size(1311), 262_151);
        // past the ladder's last step below the cap, the cap itself
        let capped = MaglevConfig {
            max_table_size: 200_000,
            ..Default::default()
        };
        assert_eq!(Maglev::table_size(1311, &capped), Ok(199_999));
        assert_eq!(Maglev::table_size(1999, &capped), Ok(199_999));
        assert!(
            Maglev::table_size(2000, &capped).is_err(),
            "199999 < 2000·100"
        );
    }

    /// Share of keys that move when backend `gone` leaves (indices renumbered as a snapshot would).
    fn moved_when_removed(all: &[Member], gone: u32, config: &MaglevConfig) -> f64 {
        let before = Maglev::build(all, config, 0).unwrap();
        let remaining: Vec<Member> = all
            .iter()
            .filter(|m| m.index != gone)
            .enumerate()
            .map(|(i, m)| Member {
                index: i as u32,
                ..*m
            })
            .collect();
        let after = Maglev::build(&remaining, config, 0).unwrap();
        assert_eq!(
            slots(&after).len(),
            slots(&before).len(),
            "same ladder step"
        );
        let moved = slots(&before)
            .iter()
            .zip(slots(&after).iter())
            .filter(|&(&b, &a)| all[b as usize].id_hash != remaining[a as usize].id_hash)
            .count();
        moved as f64 / slots(&before).len() as f64
    }

    /// Maglev reshuffles some slots among the remaining backends on top of the removed backend's
    /// 1/n, more as M/N falls (the paper's M ≫ N). With Envoy's 65537 (M/N ≥ 100, and far more
    /// for small pools): ≈ 0.6 %, so ≤ 2/n up to n ≈ 100 and 1/n + 1 % beyond. With the default
    /// ladder (M/N between 100 and 200 for most n): 1–3 % on average, and up to ≈ 15 % for an
    /// unlucky set of identities at M ≈ 1000 (these names at 1031 are one).
    #[test]
    fn removing_one_of_n_moves_about_1_over_n() {
        let envoy = MaglevConfig {
            min_table_size: 65537,
            ..Default::default()
        };
        for n in [10usize, 100, 700] {
            let share = moved_when_removed(&members(n, 1), 3, &envoy);
            let bound = (2.0 / n as f64).max(1.0 / n as f64 + 0.01);
            assert!(share <= bound, "n={n}: {share}");
        }
        for n in [4usize, 5, 10, 20, 40, 81, 100, 300, 700] {
            let all = members(n, 1);
            let shares: Vec<f64> = (0..n.min(10) as u32)
                .map(|gone| {
                    moved_when_removed(&all, gone, &MaglevConfig::default()) - 1.0 / n as f64
                })
                .collect();
            let mean = shares.iter().sum::<f64>() / shares.len() as f64;
            let worst = shares.iter().copied().fold(0.0, f64::max);
            let (mean_bound, worst_bound) = if n <= 10 { (0.12, 0.2) } else { (0.03, 0.04) };
            assert!(
                mean <= mean_bound && worst <= worst_bound,
                "n={n}: {mean} {worst}"
            );
        }
    }

    #[test]
    fn adding_one_moves_keys_mostly_to_it() {
        let envoy = MaglevConfig {
            min_table_size: 65537,
            ..Default::default()
        };
        // the default ladder: 16411 slots for both; Envoy's size: 65537
        for (config, elsewhere_bound) in [(envoy, 1.0 / 101.0), (MaglevConfig::default(), 0.02)] {
            let all = members(101, 1);
            let before = Maglev::build(&all[..100], &config, 0).unwrap();
            let size = slots(&before).len() as u64;
            let after = Maglev::build(&all, &config, 0).unwrap();
            assert_eq!(slots(&after).len() as u64, size);
            let (mut to_new, mut elsewhere) = (0, 0);
            for (b, a) in slots(&before).iter().zip(slots(&after).iter()) {
                if b != a {
                    if *a == 100 {
                        to_new += 1
                    } else {
                        elsewhere += 1
                    }
                }
            }
            let share = |x: u64| x as f64 / size as f64;
            assert!((share(to_new) - 1.0 / 101.0).abs() < 0.001, "{to_new}");
            assert!(share(elsewhere) <= elsewhere_bound, "{size}: {elsewhere}");
        }
    }

    #[test]
    fn extreme_weight_ratios_build_and_terminate() {
        let mut ms = members(2, 1);
        ms[0].weight = u32::MAX;
        let m = Maglev::build(&ms, &MaglevConfig::default(), 0).unwrap();
        let counts = shares(&slots(&m), 2);
        assert_eq!(counts[0] + counts[1], slots(&m).len() as u64);
        assert!(
            counts[1] <= 1,
            "weight 1 against u32::MAX gets at most a slot: {counts:?}"
        );
        ms[0].weight = 1_000_000;
        let m = Maglev::build(&ms, &MaglevConfig::default(), 0).unwrap();
        assert!(shares(&slots(&m), 2)[1] <= 1);
    }

    /// One heavy backend among many of weight 1: the weight-1 backends sit out about a million
    /// rounds each; visiting them every round made this build quadratic (minutes here).
    #[test]
    fn skewed_weights_build_without_visiting_idle_backends() {
        let n = 5000;
        let mut ms = members(n, 1);
        ms[0].weight = 1_000_000;
        let m = Maglev::build(&ms, &MaglevConfig::default(), 0).unwrap();
        let counts = shares(&slots(&m), n);
        assert_eq!(counts[0], slots(&m).len() as u64 - (n as u64 - 1));
        assert!(
            counts[1..].iter().all(|&c| c == 1),
            "one turn each, in round 1"
        );
    }

    #[test]
    fn same_table_whatever_the_listing_order_and_seed() {
        let ms = members(50, 3);
        let a = Maglev::build(&ms, &MaglevConfig::default(), 1).unwrap();
        // the same identities listed backwards, snapshot indices renumbered accordingly
        let reversed: Vec<Member> = ms
            .iter()
            .rev()
            .enumerate()
            .map(|(i, m)| Member {
                index: i as u32,
                ..*m
            })
            .collect();
        let b = Maglev::build(&reversed, &MaglevConfig::default(), 2).unwrap();
        for (x, y) in slots(&a).iter().zip(slots(&b).iter()) {
            assert_eq!(ms[*x as usize].id_hash, reversed[*y as usize].id_hash);
        }
    }

    // Pinned: a key must map to the same backend in every process and every release. With
    // `min_table_size: 65537` a pool of 20 keeps the placement it had when that was the default.
    #[test]
    fn key_placement_is_pinned_across_processes() {
        let keys = [
            &b"198.51.100.7"[..],
            b"example.com",
            b"",
            b"\x20\x01\x0d\xb8",
        ];
        let envoy = MaglevConfig {
            min_table_size: 65537,
            ..Default::default()
        };
        for (config, size, expected) in [
            (envoy, 65537, [4, 16, 16, 5]),
            (MaglevConfig::default(), 2053, [3, 8, 6, 5]),
        ] {
            let m = Maglev::build(&members(20, 1), &config, 0).unwrap();
            assert_eq!(slots(&m).len() as u64, size);
            let lookup = |key: &[u8]| slots(&m)[scale(stable_hash(key, KEY_SEED), size) as usize];
            let got: Vec<u32> = keys.iter().map(|k| lookup(k)).collect();
            assert_eq!(got, expected, "{size}");
        }
    }

    #[test]
    fn slots_take_the_narrowest_integers_that_hold_every_index() {
        for (max, width) in [
            (0u32, 1),
            (255, 1),
            (256, 2),
            (65535, 2),
            (65536, 4),
            (u32::MAX - 1, 4),
        ] {
            let table = vec![0, max, 1];
            let slots = Slots::new(table.clone());
            let got = match &slots {
                Slots::U8(_) => 1,
                Slots::U16(_) => 2,
                Slots::U32(_) => 4,
            };
            assert_eq!(got, width, "{max}");
            assert_eq!(slots.len(), 3);
            assert_eq!(
                (0..3).map(|i| slots.get(i).unwrap()).collect::<Vec<_>>(),
                table
            );
            assert_eq!(slots.get(3), None);
        }
    }

    #[test]
    fn default_table_stays_within_64_mib() {
        let config = MaglevConfig::default();
        let largest = Maglev::table_size(167_772, &config).unwrap();
        assert!(largest * 4 <= 64 << 20, "{largest}");
        assert!(Maglev::table_size(167_773, &config).is_err());
    }

    #[test]
    fn oversized_table_is_a_typed_error() {
        let config = MaglevConfig {
            slots_per_backend: 100,
            min_table_size: 0,
            max_table_size: 1000,
        };
        assert_eq!(
            Maglev::build(&members(11, 1), &config, 0).unwrap_err(),
            PoolError::TableTooLarge {
                size: 1100,
                limit: 1000
            }
        );
    }
}
