//! Walker/Vose alias table: a weighted draw in O(1) with two random words, built in integers so
//! the probabilities are exact to 2^-64 for any u32 weights.

use crate::algorithm::Member;
use crate::rng::Rng;

/// One column of the table, all a draw reads, together: one allocation per table, one cache line
/// per draw.
#[derive(Clone, Copy, Debug)]
struct Column {
    /// Chance (out of 2^64) that the column keeps its own member rather than its alias.
    keep: u64,
    /// Position of the alias.
    alias: u32,
    /// The snapshot index of the column's own member.
    index: u32,
}

#[derive(Debug)]
pub(crate) struct AliasTable {
    columns: Box<[Column]>,
}

impl AliasTable {
    pub(crate) fn new(members: &[Member]) -> Self {
        let n = members.len();
        let total: u128 = members.iter().map(|m| u128::from(m.weight)).sum();
        // Each column holds `total` units; member j brings weight_j·n units.
        let mut units: Vec<u128> = members
            .iter()
            .map(|m| u128::from(m.weight) * n as u128)
            .collect();
        let mut keep = vec![u64::MAX; n];
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&j| units[j] < total);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            // units[s] < total; drop low bits of both when total ≥ 2^64 so the shift fits
            let drop = (128 - total.leading_zeros()).saturating_sub(64);
            keep[s] = (((units[s] >> drop) << 64) / (total >> drop)) as u64;
            alias[s] = l as u32;
            units[l] -= total - units[s];
            if units[l] < total {
                large.pop();
                small.push(l);
            }
        }
        Self {
            columns: members
                .iter()
                .enumerate()
                .map(|(j, m)| Column {
                    keep: keep[j],
                    alias: alias[j],
                    index: m.index,
                })
                .collect(),
        }
    }

    #[inline]
    pub(crate) fn sample(&self, rng: &mut Rng) -> Option<u32> {
        self.sample_position(rng).map(|j| self.columns[j].index)
    }

    /// Position of the drawn member in the table (0..len).
    #[inline]
    pub(crate) fn sample_position(&self, rng: &mut Rng) -> Option<usize> {
        let n = self.columns.len() as u64;
        if n == 0 {
            return None;
        }
        let j = rng.below(n) as usize;
        let column = &self.columns[j];
        Some(if rng.next_u64() < column.keep {
            j
        } else {
            column.alias as usize
        })
    }

    /// The snapshot index at a position.
    #[inline]
    pub(crate) fn index(&self, position: usize) -> u32 {
        self.columns[position % self.columns.len()].index
    }

    pub(crate) fn len(&self) -> usize {
        self.columns.len()
    }
}

/// The chance (in 1/2^64) that `sample` returns each member, computed from the table.
#[cfg(test)]
pub(crate) fn exact_shares(table: &AliasTable) -> Vec<f64> {
    let n = table.columns.len();
    let mut shares = vec![0.0; n];
    for (j, column) in table.columns.iter().enumerate() {
        let keep = column.keep as f64 / 2f64.powi(64);
        shares[j] += keep / n as f64;
        shares[column.alias as usize] += (1.0 - keep) / n as f64;
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::members;

    #[test]
    fn shares_equal_weights_even_at_extremes() {
        for weights in [
            vec![1, 2, 3, 4],
            vec![u32::MAX, 1],
            vec![1_000_000, 1],
            vec![7; 5],
            vec![1],
        ] {
            let table = AliasTable::new(&members(&weights));
            let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
            for (share, &w) in exact_shares(&table).iter().zip(&weights) {
                assert!((share - f64::from(w) / total).abs() < 1e-9, "{weights:?}");
            }
        }
    }
}
