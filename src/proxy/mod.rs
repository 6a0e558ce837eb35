//! The proxy engine: accepts TCP connections, reads just enough of each to know its name — the
//! TLS SNI or the HTTP Host, never decrypting — and relays its bytes untouched to a backend of
//! the route for that name, with an optional PROXY header (v1/v2) carrying the real client.
//!
//! ```no_run
//! use std::sync::Arc;
//! use sixgate::proxy::{Config, Listener, Mode, Route, Server};
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let backend = "[2001:db8::10]:443".parse()?;
//!     let config = Config {
//!         listeners: vec![Listener::new("[::]:443".parse()?, Mode::Tls)],
//!         routes: vec![Arc::new(Route::new(["www.example.com"], [backend])?)],
//!         ..Config::default()
//!     };
//!     let server = Server::start(config, Arc::new(()))?;
//!     tokio::signal::ctrl_c().await?;
//!     server.shutdown().await;
//!     Ok(())
//! }
//! ```
//!
//! - A [`Server`] runs a [`Config`] — [`Listener`]s, [`Route`]s, [`Limits`] — on the caller's
//!   tokio runtime ([`Server::start`]) or on threads of its own, one per core
//!   ([`Server::start_workers`]).
//! - While connections run, the configuration can be replaced whole ([`Server::reload`]), the
//!   routes too ([`Server::set_routes`]), or one route at a time ([`Server::add_route`],
//!   [`Server::remove_route`], [`Server::reweight`]). Each change builds a new table and swaps
//!   it in one store; a refused change ([`Error`]) leaves the running one. A change costs time
//!   linear in the number of routes, spent on the calling thread: on the engine's own workers,
//!   accepting never waits for it (call it from a runtime that does not accept, or with
//!   `spawn_blocking`, when the engine runs on yours).
//! - A route with [`Forwarding`] writes the client's address into every HTTP/1 request of a
//!   connection (X-Forwarded-For or RFC 7239 Forwarded), for backends that cannot read PROXY.
//!   Each head is checked against RFC 9112 and rewritten; bodies pass by their framing,
//!   untouched; a request that could be framed two ways is answered 400 and ends the connection,
//!   after the answers to the requests before it ([`Outcome::RequestRefused`]). Responses are
//!   relayed as they come: they are followed (never changed) only to find the answer to an
//!   Upgrade or CONNECT, after which both ways are a plain relay. That is safe because request
//!   framing never depends on them: a backend that frames its responses oddly can only stop the
//!   connection's requests early, never let one through unchecked.
//! - An [`Observer`] gets one [`Record`] per connection when it ends, with its [`Outcome`]:
//!   logs and counters are the program's. It is also told when a replaced route table has been
//!   freed, for a program that hands memory back to the system.
//!
//! Names are found by hashing, never by scanning: one probe for the exact name, one per label
//! for `*.domain` suffixes (longest first), then `*`. A route bound to listeners
//! ([`Route::listeners`]) is found only on those.
//!
//! Routes share pools: routes whose backends (addresses, weights, backups, in order), balancing,
//! connect attempts, connect timeout and health checks are equal use one pool and one set of
//! health checks, so 100,000 customers on 500 server pairs make 500 pools. A change keeps every
//! pool whose key is unchanged, with its health; a route whose backends changed takes its old
//! pool over and updates it in place. A route with backends on "the port the client connected
//! to" has one pool per listening port.

mod accept;
mod buffers;
mod connection;
mod error;
mod forwarding;
#[doc(hidden)]
pub use forwarding::internal;
mod live;
mod observer;
mod pools;
mod relay;
mod server;
mod settings;
mod sockets;
#[cfg(target_os = "linux")]
mod splice;
mod table;
#[cfg(target_os = "linux")]
mod uring;
#[cfg(target_os = "linux")]
#[doc(hidden)]
pub use uring::ring_sent;
mod workers;

pub use error::Error;
pub use observer::{Observer, Outcome, Record};
pub use server::Server;
pub use settings::{
    BackendSpec, Balance, Check, Config, ForwardedField, Forwarding, Health, HostPattern, Limits,
    Listener, Mode, ProxyOut, RelayMethod, Route, UnknownName,
};
