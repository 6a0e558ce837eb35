//! A snapshot's backends as the pick path sees them, and the one rule that says whether a
//! proposed backend is acceptable for a request.

use core::sync::atomic::Ordering;

use crate::algorithm::Algorithm;
use crate::backend::Backend;
use crate::health::StateRef;
use crate::rng::{mix64, stable_hash};
use crate::route::Route;
use crate::tried::Tried;

/// Seeds the key hash that keyed algorithms draw from instead of the generator.
pub(crate) const ADMIT_SEED: u64 = 0x736c_6f77;

/// One backend in a snapshot with its shared live state.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) backend: Backend,
    pub(crate) state: StateRef,
}

/// The pool's acceptance rule for one request: the snapshot's entries, the route it is served
/// on, the time and what it has already been given.
#[derive(Debug)]
pub(crate) struct Filter<'a> {
    pub(crate) entries: &'a [Entry],
    pub(crate) route: Route,
    pub(crate) now: u64,
    pub(crate) tried: &'a Tried,
}

impl<'a> Filter<'a> {
    /// In range, with weight, not tried, and healthy (unless health is ignored on this route).
    #[inline]
    pub(crate) fn usable(&self, index: u32) -> bool {
        match self.entries.get(index as usize) {
            Some(e) => {
                e.backend.weight > 0
                    && !self.tried.contains(index)
                    && (self.route.ignore_health() || e.state.in_service(self.now))
            }
            None => false,
        }
    }

    /// A usable entry of the route's tier.
    #[inline]
    pub(crate) fn in_tier(&self, index: u32) -> Option<&'a Entry> {
        let entry = self.entries.get(index as usize)?;
        (self.usable(index) && entry.backend.tier == self.route.tier).then_some(entry)
    }

    /// A usable entry of the route's tier that slow start admits: what a proposal must be to
    /// be handed out.
    #[inline]
    pub(crate) fn accepts<A: Algorithm>(&self, index: u32, key: &[u8]) -> Option<&'a Entry> {
        self.in_tier(index)
            .filter(|entry| self.route.clear || admitted::<A>(entry, self.now, key))
    }

    /// True once the request has been given a candidate.
    pub(crate) fn is_retry(&self) -> bool {
        self.tried.len() > 0
    }

    /// Connections in flight to this index (0 when out of range).
    pub(crate) fn in_flight(&self, index: u32) -> u64 {
        self.entries
            .get(index as usize)
            .map_or(0, |e| e.state.in_flight.load(Ordering::Relaxed))
    }

    /// The configured weight of this index (0 when out of range).
    pub(crate) fn weight(&self, index: u32) -> u32 {
        self.entries
            .get(index as usize)
            .map_or(0, |e| e.backend.weight)
    }
}

/// Slow start: a ramping backend is accepted at its current share of proposals, the first one
/// after it comes back included. Keyed algorithms decide by the key instead, so a key admitted at
/// share s stays admitted above s.
#[inline]
fn admitted<A: Algorithm>(entry: &Entry, now: u64, key: &[u8]) -> bool {
    let Some(share) = entry.state.ramp(now) else {
        return true;
    };
    if A::KEYED {
        let draw = mix64(stable_hash(key, ADMIT_SEED) ^ entry.backend.id.stable_hash());
        (draw >> 32) < share
    } else {
        entry.state.admit(share)
    }
}
