//! The one selection trait. An algorithm only proposes backends; the pool decides whether a
//! proposal is usable (health, tier, already tried, slow start), so every algorithm gets those
//! rules, retries included, without reimplementing them.

use core::fmt;

use crate::entry::Filter;
use crate::{PoolError, Rng};

/// A backend as an algorithm sees it when building: its position in the snapshot, its weight
/// (never 0: drained backends are left out) and a hash of its identity that is the same in every
/// process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    /// Index into the snapshot; what `propose` returns.
    pub index: u32,
    /// Weight, at least 1.
    pub weight: u32,
    /// Stable hash of the backend's identity.
    pub id_hash: u64,
}

/// A selection algorithm, built once per snapshot and tier, then read by many threads at once.
pub trait Algorithm: Sized + Send + Sync + fmt::Debug + 'static {
    /// Its settings.
    type Config: Clone + Default + Send + Sync + fmt::Debug + 'static;

    /// True when the pick is a function of the request key (hashing): slow start and fallbacks
    /// then draw from the key instead of the random generator, so a key keeps its backend.
    const KEYED: bool = false;

    /// True when the algorithm balances on in-flight counts, so every pick must be counted:
    /// [`Snapshot::select`](crate::Snapshot::select), which does not count, then refuses to
    /// compile.
    const COUNTS_IN_FLIGHT: bool = false;

    /// Builds over the tier's members (in snapshot order, never empty). `seed` changes with
    /// every rebuild, so a fleet of proxies does not move in lockstep.
    fn build(members: &[Member], config: &Self::Config, seed: u64) -> Result<Self, PoolError>;

    /// Whether [`build`](Self::build) would accept these members with `config`, without building
    /// (for [`Pool::check`](crate::Pool::check), which validates a configuration before it is
    /// applied). The default builds and drops the result; an algorithm whose build cannot fail,
    /// or can tell more cheaply, says so here.
    fn check(members: &[Member], config: &Self::Config) -> Result<(), PoolError> {
        Self::build(members, config, 0).map(drop)
    }

    /// Proposes the next candidate, or `None` when the algorithm has nothing more to offer.
    /// Called again (with `attempt` increased) when a proposal is unusable or for a retry; the
    /// pool stops after a few proposals and falls back to a weighted scan.
    fn propose(&self, proposal: &mut Proposal<'_>) -> Option<u32>;
}

/// What an algorithm may consult while proposing.
#[derive(Debug)]
pub struct Proposal<'a> {
    pub(crate) key: &'a [u8],
    pub(crate) rng: &'a mut Rng,
    pub(crate) attempt: u32,
    pub(crate) cursor: &'a mut u64,
    pub(crate) filter: &'a Filter<'a>,
}

impl Proposal<'_> {
    /// The request key (client address, SNI, any bytes); empty when the caller gave none.
    pub fn key(&self) -> &[u8] {
        self.key
    }

    /// The caller's random generator.
    pub fn rng(&mut self) -> &mut Rng {
        self.rng
    }

    /// Proposals made so far for this request: 0 for the very first.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// True once the request has been given a candidate: this proposal is for a retry.
    pub fn is_retry(&self) -> bool {
        self.filter.is_retry()
    }

    /// Scratch state kept across the proposals of one request (a position, a hash).
    pub fn cursor(&mut self) -> &mut u64 {
        self.cursor
    }

    /// Whether the pool would accept this index now (in range, not tried, healthy or panic mode).
    pub fn is_usable(&self, index: u32) -> bool {
        self.filter.usable(index)
    }

    /// Connections in flight to this index (0 when out of range).
    pub fn in_flight(&self, index: u32) -> u64 {
        self.filter.in_flight(index)
    }

    /// The configured weight of this index (0 when out of range).
    pub fn weight(&self, index: u32) -> u32 {
        self.filter.weight(index)
    }
}

/// Members with these weights, indexed in order, each with its index as identity hash.
#[cfg(test)]
pub(crate) fn members(weights: &[u32]) -> Vec<Member> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &weight)| Member {
            index: i as u32,
            weight,
            id_hash: i as u64,
        })
        .collect()
}
