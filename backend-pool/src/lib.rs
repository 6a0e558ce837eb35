//! # backend-pool
//!
//! Picks the backend for each connection from a weighted set, fast and fairly, and stays honest
//! about health:
//!
//! - **Algorithms, one trait** ([`Algorithm`]): [`SmoothWeighted`] (nginx's smooth weighted
//!   round-robin, exact sequence, O(1) per pick from a precomputed cycle and one atomic counter,
//!   random start per rebuild; a cycle too long to precompute is walked live, O(distinct weights)
//!   per pick under a short lock), [`LeastConn`] (weighted power of two choices on in-flight counts),
//!   [`Maglev`] (consistent hashing over any key, prime table ≥ 100·n), [`WeightedRandom`].
//! - **Retries** ([`Candidates`]): bounded, no duplicates, never a drained (weight 0) or unhealthy
//!   backend, in the algorithm's order, with no allocation.
//! - **In-flight guards** ([`Candidate`]): dropping one decrements exactly once, whatever happened;
//!   counts survive rebuilds.
//! - **Health keyed by identity**, so it survives weight and membership changes: passive ejection
//!   with growing back-off and probation, active checks with rise/fall (the `tokio` feature runs
//!   them: a TCP connect, a TCP send/expect exchange, a TLS handshake with `tls-check`, or a
//!   probe of your own), slow start, a backup tier, a panic threshold.
//! - **Lock-free reads**: membership changes publish a new immutable [`Snapshot`] through
//!   `arc-swap`; a pick takes no lock and allocates nothing.
//! - **Time and randomness are inputs** (`now`, a monotonic clock that must not go backwards, and
//!   [`Rng`]), so tests need no sleeps and runs reproduce from a seed; a proxy that wants no
//!   reproducible run takes [`Rng::from_entropy`].
//! - [`Pool::pick`] is the common case in one call: it loads the snapshot, picks, and returns an
//!   owned in-flight guard ([`InFlight`]) that can move into the connection's task. Load the
//!   snapshot yourself ([`Pool::load`]) for retries or many picks in a row.
//! - **Chosen at run time** ([`AnyPool`]): one type over every algorithm, named by an
//!   [`AlgorithmChoice`] (from a configuration file, say), with the pool's methods.
//! - [`Snapshot::select`] gives the first choice without the in-flight count (one atomic
//!   operation per pick for smooth round-robin, none for Maglev and random) when no count is needed;
//!   it refuses to compile for [`LeastConn`], which balances on those counts.
//!
//! It does no network I/O outside the optional `tokio` health checker, and no DNS: identities are
//! addresses or names the caller resolves.
//!
//! ```text
//!            update(backends, now)                        pick / candidates (key, now, rng)
//!  caller ─────────────────────────▶ Pool ──ArcSwap──▶ Snapshot ──▶ tier + health rule ──▶ Algorithm
//!                                      │                   │                                 │
//!     record_success / failure / probe │                   └─ entries ─▶ BackendState ◀── Candidate
//!  ───────────────────────────────────▶┘      (by identity, shared by every snapshot)      (in-flight guard)
//! ```
//!
//! ```
//! use backend_pool::{Backend, Pool, PoolConfig, Rng, SmoothWeighted, SmoothConfig};
//! use std::time::Duration;
//!
//! let backends = [Backend::new("a", 5), Backend::new("b", 1), Backend::new("c", 1)];
//! let config = SmoothConfig { random_start: false, ..Default::default() };
//! let pool = Pool::<SmoothWeighted>::new(backends, PoolConfig::default(), config, 1)?;
//! let mut rng = Rng::new(1);
//! let now = Duration::ZERO;
//! let snapshot = pool.load();
//! let mut seen = String::new();
//! for _ in 0..7 {
//!     let pick = snapshot.pick(b"", now, &mut rng)?;
//!     seen += &pick.backend().id.to_string();
//! }
//! assert_eq!(seen, "aabacaa");
//! # Ok::<(), backend_pool::PoolError>(())
//! ```
//!
//! MSRV: Rust 1.85.
#![forbid(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations)]

#[cfg(feature = "tokio")]
mod active;
mod algorithm;
mod alias;
mod any;
mod backend;
mod candidate;
mod config;
mod entry;
mod error;
mod health;
mod least_conn;
mod maglev;
mod padded;
mod plan;
mod pool;
#[cfg(feature = "tokio")]
mod probe;
mod random;
mod rng;
mod route;
mod swrr;
#[cfg(feature = "tls-check")]
mod tls_probe;
mod tried;

#[cfg(feature = "tokio")]
pub use active::{ActiveChecks, ActiveConfig, Probe, ProbeFuture};
pub use algorithm::{Algorithm, Member, Proposal};
pub use any::{AlgorithmChoice, AnyCandidates, AnyPool, AnySnapshot};
pub use backend::{Backend, BackendId, Tier};
pub use candidate::{Candidate, Candidates, InFlight};
pub use config::PoolConfig;
pub use error::PoolError;
pub use health::HealthStatus;
pub use least_conn::LeastConn;
pub use maglev::{Maglev, MaglevConfig};
pub use pool::{Pool, Snapshot, SnapshotRef};
#[cfg(feature = "tokio")]
pub use probe::{TcpConnect, TcpExchange};
pub use random::WeightedRandom;
pub use rng::Rng;
pub use swrr::{SmoothConfig, SmoothWeighted};
#[cfg(feature = "tls-check")]
pub use tls_probe::TlsHandshake;

/// The README's example, compiled and run with the doctests so it cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
