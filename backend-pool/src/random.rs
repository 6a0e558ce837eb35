//! Weighted random: each pick independent, in proportion to weight, O(1) via an alias table.

use crate::PoolError;
use crate::algorithm::{Algorithm, Member, Proposal};
use crate::alias::AliasTable;

/// Picks at random in proportion to weight, from the caller's seeded generator.
#[derive(Debug)]
pub struct WeightedRandom {
    table: AliasTable,
}

impl Algorithm for WeightedRandom {
    type Config = ();

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
        self.table.sample(p.rng())
    }
}
