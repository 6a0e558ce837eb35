//! Least-connections by weighted power of two choices: draw two distinct backends in proportion to
//! weight, keep the one with fewer connections per unit of weight. O(1), no global scan, and
//! without load it reduces to weighted random.

use crate::PoolError;
use crate::algorithm::{Algorithm, Member, Proposal};
use crate::alias::AliasTable;

/// Weighted power-of-two-choices on in-flight counts (`in_flight / weight`).
#[derive(Debug)]
pub struct LeastConn {
    table: AliasTable,
}

/// Redraws allowed to find a second backend distinct from the first.
const REDRAWS: u32 = 4;

impl Algorithm for LeastConn {
    type Config = ();
    const COUNTS_IN_FLIGHT: bool = true;

    fn build(members: &[Member], _: &(), _seed: u64) -> Result<Self, PoolError> {
        Ok(Self {
            table: AliasTable::new(members),
        })
    }

    /// Builds from any members.
    fn check(_: &[Member], _: &()) -> Result<(), PoolError> {
        Ok(())
    }

    #[inline]
    fn propose(&self, p: &mut Proposal<'_>) -> Option<u32> {
        let first = self.table.sample_position(p.rng())?;
        let a = self.table.index(first);
        if self.table.len() < 2 {
            return Some(a);
        }
        // Two distinct backends: redraw a few times, then take the next one in the table.
        let mut second = first;
        for _ in 0..REDRAWS {
            second = self.table.sample_position(p.rng())?;
            if second != first {
                break;
            }
        }
        if second == first {
            second = first + 1;
        }
        let b = self.table.index(second);
        match (p.is_usable(a), p.is_usable(b)) {
            (true, false) | (false, false) => return Some(a),
            (false, true) => return Some(b),
            (true, true) => {}
        }
        // a/wa ≤ b/wb  ⇔  a·wb ≤ b·wa, in integers; ties keep the first (weighted) draw
        let load_a = u128::from(p.in_flight(a)) * u128::from(p.weight(b));
        let load_b = u128::from(p.in_flight(b)) * u128::from(p.weight(a));
        Some(if load_b < load_a { b } else { a })
    }
}
