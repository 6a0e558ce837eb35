//! Where a snapshot's picks go: the routing decision its members' health gives, cached by
//! [`Plan`](crate::plan::Plan) in a few bits.

use crate::PoolError;
use crate::backend::Tier;

/// Which tier a pick draws from, and how it judges health there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) tier: Tier,
    /// Panic mode: health ignored.
    pub(crate) panic: bool,
    /// Every member of the tier is in service and none is ramping up, so a pick need not read
    /// any backend's health (it then touches a backend's state only to count it).
    pub(crate) clear: bool,
}

impl Route {
    /// Whether a proposal's health need not be read: panic mode, or nobody out of service.
    #[inline]
    pub(crate) fn ignore_health(self) -> bool {
        self.panic || self.clear
    }
}

/// What a snapshot's members say about where picks go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// No backends at all.
    Empty,
    /// Backends, but every weight is 0.
    AllDrained,
    /// Nobody in service, and no panic threshold to fall back on.
    NoHealthy,
    /// Picks draw from this route.
    Serve(Route),
}

/// Set in the bits of [`Decision::Serve`]; the other variants are 0, 1 and 2.
const SERVE: u64 = 8;
const BACKUP: u64 = 1;
const PANIC: u64 = 2;
const CLEAR: u64 = 4;

impl Decision {
    /// Bits that fit 4 (for the plan's cache).
    #[inline]
    pub(crate) const fn to_bits(self) -> u64 {
        match self {
            Decision::Empty => 0,
            Decision::AllDrained => 1,
            Decision::NoHealthy => 2,
            Decision::Serve(r) => {
                SERVE
                    | (r.tier.index() as u64 * BACKUP)
                    | (r.panic as u64 * PANIC)
                    | (r.clear as u64 * CLEAR)
            }
        }
    }

    /// The decision of [`to_bits`](Self::to_bits)' output.
    #[inline]
    pub(crate) const fn from_bits(bits: u64) -> Self {
        if bits & SERVE != 0 {
            let tier = if bits & BACKUP != 0 {
                Tier::Backup
            } else {
                Tier::Primary
            };
            Decision::Serve(Route {
                tier,
                panic: bits & PANIC != 0,
                clear: bits & CLEAR != 0,
            })
        } else {
            match bits {
                0 => Decision::Empty,
                1 => Decision::AllDrained,
                _ => Decision::NoHealthy,
            }
        }
    }

    /// The route, or why there is none.
    #[inline]
    pub(crate) fn route(self) -> Result<Route, PoolError> {
        match self {
            Decision::Serve(route) => Ok(route),
            Decision::Empty => Err(PoolError::Empty),
            Decision::AllDrained => Err(PoolError::AllDrained),
            Decision::NoHealthy => Err(PoolError::NoHealthy),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip() {
        let mut all = vec![Decision::Empty, Decision::AllDrained, Decision::NoHealthy];
        for tier in [Tier::Primary, Tier::Backup] {
            for panic in [false, true] {
                for clear in [false, true] {
                    all.push(Decision::Serve(Route { tier, panic, clear }));
                }
            }
        }
        for d in all {
            assert!(d.to_bits() < 16);
            assert_eq!(Decision::from_bits(d.to_bits()), d);
        }
    }
}
