//! Maglev consistent hashing (Eisenbud et al., NSDI 2016), weighted: a prime-sized table filled
//! from each backend's own permutation, so a key maps to the same backend in every process and
//! removing one of n backends moves about 1/n of the keys (plus Maglev's own reshuffle of
//! ≈ 0.6 % among the others, which dominates beyond n ≈ 100). Unhealthy backends are skipped at pick
//! time by rehashing the key, never by rebuilding the table.

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
    /// The ladder's first step, in slots: small pools get Envoy's 65537 so removing a backend
    /// disturbs few keys.
    pub min_table_size: u64,
    /// Largest table allowed, in slots (4 bytes each). The default, 2^24, is 64 MiB per tier
    /// (primary and backup each have a table) and serves up to 167 772 backends at 100 slots
    /// each; more backends are a [`PoolError::TableTooLarge`] unless this is raised.
    pub max_table_size: u64,
}

impl Default for MaglevConfig {
    fn default() -> Self {
        Self {
            slots_per_backend: 100,
            min_table_size: 65537,
            max_table_size: 1 << 24,
        }
    }
}

/// Maglev lookup table over one tier.
#[derive(Debug)]
pub struct Maglev {
    table: Box<[u32]>,
}

/// Key hashes do not depend on the rebuild seed: a key must keep its backend across rebuilds.
const KEY_SEED: u64 = 0x6d61_676c_6576;
const EMPTY: u32 = u32::MAX;

impl Maglev {
    /// The lookup table: slot → snapshot index.
    pub fn table(&self) -> &[u32] {
        &self.table
    }

    /// The table size for `n` backends: the first prime at or above a step of the ladder
    /// `max(min_table_size, slots_per_backend)·2^k` that gives every backend `slots_per_backend`
    /// slots, capped at the largest prime ≤ `max_table_size`. It depends on nothing but `n` and
    /// the configuration, so every process agrees, and it changes only when `n` crosses a step
    /// (with the defaults: 656, 1311, 2622, … backends) — only then does a membership change
    /// remap most keys; otherwise removing one of n backends moves about 1/n of them.
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
        let mut step = config
            .min_table_size
            .max(u64::from(config.slots_per_backend))
            .max(2);
        while step < needed {
            step = step.saturating_mul(2);
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

impl Algorithm for Maglev {
    type Config = MaglevConfig;
    const KEYED: bool = true;

    fn build(members: &[Member], config: &MaglevConfig, _seed: u64) -> Result<Self, PoolError> {
        if config.slots_per_backend == 0 {
            return Err(PoolError::InvalidConfig("slots_per_backend must be >= 1"));
        }
        if members.is_empty() {
            return Ok(Self {
                table: Box::default(),
            });
        }
        let size = Self::table_size(members.len(), config)?;
        Ok(Self {
            table: populate(members, size),
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
        self.table.get(scale(hash, size) as usize).copied()
    }
}

/// Each backend walks its permutation (offset + j·skip mod size) and claims the first free slot,
/// taking turns in rounds; a backend of weight w takes a turn in w / max_weight of the rounds:
/// its c-th turn falls in round ⌊c·max_weight / w⌋ + 1, after the lower identities' turns of that
/// round. Turns come from a heap in that order, so a round costs nothing for backends sitting it
/// out: O(size · log n) whatever the weights, not O(rounds · n).
fn populate(members: &[Member], size: u64) -> Box<[u32]> {
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
    table.into_boxed_slice()
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
        assert_eq!(m.table.len(), 12809, "100·2^7, next prime");
        let m = Maglev::build(&members(1000, 1), &MaglevConfig::default(), 0).unwrap();
        assert_eq!(m.table.len(), 131_101, "65537·2, next prime");
        let m = Maglev::build(&members(3, 1), &MaglevConfig::default(), 0).unwrap();
        assert_eq!(m.table.len(), 65537);
        assert!(is_prime(10007) && !is_prime(10001));
    }

    #[test]
    fn balance_max_over_mean_at_n_100() {
        let config = MaglevConfig {
            min_table_size: 0,
            ..Default::default()
        };
        let m = Maglev::build(&members(100, 1), &config, 0).unwrap();
        let counts = shares(&m.table, 100);
        let mean = m.table.len() as f64 / 100.0;
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
        let counts = shares(&m.table, 10);
        let size = m.table.len() as f64;
        for (i, &c) in counts.iter().enumerate() {
            let due = size * (1 + i) as f64 / 55.0;
            assert!((c as f64 - due).abs() / due < 0.03, "{i}: {c} vs {due}");
        }
    }

    #[test]
    fn size_stays_between_ladder_steps() {
        let size = |n| Maglev::table_size(n, &MaglevConfig::default()).unwrap();
        assert_eq!(size(1), 65537);
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

    /// Maglev reshuffles ≈ 0.6 % of slots among the remaining backends on top of the removed
    /// backend's 1/n (the paper's and Envoy's tables behave the same): ≤ 2/n holds up to n ≈ 100;
    /// beyond, the bound is 1/n + 1 %.
    #[test]
    fn removing_one_of_n_moves_about_1_over_n() {
        for n in [10usize, 100, 700] {
            let all = members(n, 1);
            let before = Maglev::build(&all, &MaglevConfig::default(), 0).unwrap();
            let size = before.table.len() as u64;
            // renumbered as a snapshot would: indices follow the list
            let remaining: Vec<Member> = all
                .iter()
                .filter(|m| m.index != 3)
                .enumerate()
                .map(|(i, m)| Member {
                    index: i as u32,
                    ..*m
                })
                .collect();
            let after = Maglev::build(&remaining, &MaglevConfig::default(), 0).unwrap();
            assert_eq!(after.table.len() as u64, size);
            let moved = before
                .table
                .iter()
                .zip(after.table.iter())
                .filter(|&(&b, &a)| all[b as usize].id_hash != remaining[a as usize].id_hash)
                .count();
            let share = moved as f64 / size as f64;
            let bound = (2.0 / n as f64).max(1.0 / n as f64 + 0.01);
            assert!(share <= bound, "n={n}: {share}");
        }
    }

    #[test]
    fn adding_one_moves_keys_mostly_to_it() {
        let all = members(101, 1);
        let before = Maglev::build(&all[..100], &MaglevConfig::default(), 0).unwrap();
        let size = before.table.len() as u64;
        let after = Maglev::build(&all, &MaglevConfig::default(), 0).unwrap();
        let (mut to_new, mut elsewhere) = (0, 0);
        for (b, a) in before.table.iter().zip(after.table.iter()) {
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
        assert!(share(elsewhere) <= 1.0 / 101.0, "{elsewhere}");
    }

    #[test]
    fn extreme_weight_ratios_build_and_terminate() {
        let mut ms = members(2, 1);
        ms[0].weight = u32::MAX;
        let m = Maglev::build(&ms, &MaglevConfig::default(), 0).unwrap();
        let counts = shares(&m.table, 2);
        assert_eq!(counts[0] + counts[1], m.table.len() as u64);
        assert!(
            counts[1] <= 1,
            "weight 1 against u32::MAX gets at most a slot: {counts:?}"
        );
        ms[0].weight = 1_000_000;
        let m = Maglev::build(&ms, &MaglevConfig::default(), 0).unwrap();
        assert!(shares(&m.table, 2)[1] <= 1);
    }

    /// One heavy backend among many of weight 1: the weight-1 backends sit out about a million
    /// rounds each; visiting them every round made this build quadratic (minutes here).
    #[test]
    fn skewed_weights_build_without_visiting_idle_backends() {
        let n = 5000;
        let mut ms = members(n, 1);
        ms[0].weight = 1_000_000;
        let m = Maglev::build(&ms, &MaglevConfig::default(), 0).unwrap();
        let counts = shares(&m.table, n);
        assert_eq!(counts[0], m.table.len() as u64 - (n as u64 - 1));
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
        for (x, y) in a.table.iter().zip(b.table.iter()) {
            assert_eq!(ms[*x as usize].id_hash, reversed[*y as usize].id_hash);
        }
    }

    // Pinned: a key must map to the same backend in every process and every release.
    #[test]
    fn key_placement_is_pinned_across_processes() {
        let m = Maglev::build(&members(20, 1), &MaglevConfig::default(), 0).unwrap();
        let size = m.table.len() as u64;
        let lookup = |key: &[u8]| m.table[scale(stable_hash(key, KEY_SEED), size) as usize];
        assert_eq!(size, 65537);
        let got: Vec<u32> = [
            &b"198.51.100.7"[..],
            b"example.com",
            b"",
            b"\x20\x01\x0d\xb8",
        ]
        .iter()
        .map(|k| lookup(k))
        .collect();
        assert_eq!(got, vec![4, 16, 16, 5]);
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
