//! Why a server could not start, or a change of its routes or configuration was refused. A
//! refused change leaves everything running as it was.

use core::net::SocketAddr;
use std::io;

use backend_pool::PoolError;

/// Why the engine refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A listening address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The system's reason.
        source: io::Error,
    },
    /// The worker threads or their runtimes could not start.
    #[error("cannot start the workers: {0}")]
    Workers(io::Error),
    /// A route's backends cannot make a pool (none, or every weight 0, say).
    #[error("route {route}: {source}")]
    Pool {
        /// The route's name.
        route: String,
        /// The pool's reason.
        source: PoolError,
    },
    /// A host pattern is in two routes that serve a listener in common: the later could
    /// never be reached for it.
    #[error("{pattern} is routed twice: by route {first} and by route {second}")]
    RoutedTwice {
        /// The pattern (`*` for two default routes).
        pattern: String,
        /// The earlier route's name.
        first: String,
        /// The later route's name.
        second: String,
    },
    /// A route names a listener no listener has.
    #[error("route {route}: no listener is named {listener:?}")]
    UnknownListener {
        /// The route's name.
        route: String,
        /// The name it gave.
        listener: String,
    },
    /// Two routes, or two listeners, with one name.
    #[error("two {what} are named {name:?}")]
    DuplicateName {
        /// `routes` or `listeners`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// One address in two listeners, or twice in one.
    #[error("{0} is listed twice as a listening address")]
    AddressTwice(SocketAddr),
    /// A route named in a change is not in the table.
    #[error("no route is named {0:?}")]
    NoSuchRoute(String),
    /// A backend named in a change is not one of the route's.
    #[error("route {route} has no backend {backend}")]
    NoSuchBackend {
        /// The route's name.
        route: String,
        /// The backend asked for.
        backend: SocketAddr,
    },
    /// More routes than a table indexes (2³²).
    #[error("more than 2^32 routes")]
    TooManyRoutes,
}
