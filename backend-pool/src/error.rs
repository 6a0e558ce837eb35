//! Why a pool cannot give a backend, or cannot be built.

use core::fmt;

/// Everything that can go wrong, as a small value: no panics, no strings to parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PoolError {
    /// The pool has no backends at all.
    Empty,
    /// Every backend has weight 0 (drained).
    AllDrained,
    /// Every backend with a weight is ejected or down, and panic mode is off.
    NoHealthy,
    /// The same identity appears twice in one membership list.
    DuplicateBackend,
    /// More backends than an index can address.
    TooManyBackends {
        /// Backends given.
        count: usize,
        /// The most a pool can hold.
        limit: usize,
    },
    /// Maglev: the lookup table would be larger than the configured limit.
    TableTooLarge {
        /// Slots the table would need.
        size: u64,
        /// The configured `max_table_size`.
        limit: u64,
    },
    /// A configuration value is out of range; the text names it.
    InvalidConfig(&'static str),
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the pool has no backends"),
            Self::AllDrained => f.write_str("every backend has weight 0"),
            Self::NoHealthy => f.write_str("no healthy backend and panic mode is off"),
            Self::DuplicateBackend => f.write_str("the same backend identity appears twice"),
            Self::TooManyBackends { count, limit } => {
                write!(f, "{count} backends, at most {limit} supported")
            }
            Self::TableTooLarge { size, limit } => {
                write!(
                    f,
                    "Maglev table of {size} slots exceeds max_table_size {limit}"
                )
            }
            Self::InvalidConfig(what) => write!(f, "invalid configuration: {what}"),
        }
    }
}

impl core::error::Error for PoolError {}
