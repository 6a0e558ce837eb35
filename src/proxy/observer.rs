//! What a connection leaves behind: one record when it ends, handed to the program's observer,
//! which makes its log line and counters from it; and word of each replaced route table freed.

use core::fmt;
use core::net::SocketAddr;
use core::time::Duration;

use super::Route;

/// Told of every connection once, when it ends, and of route tables freed. Called on the thread
/// that served the connection or freed the table: keep it short (count, log), and never block.
pub trait Observer: Send + Sync + 'static {
    /// A connection was accepted; its record follows when it ends (one refused at accept
    /// included), so accepted less recorded is the number open.
    fn accepted(&self) {}

    /// One connection's record.
    fn connection(&self, record: &Record<'_>);

    /// The route table a change replaced has been freed: no connection is being routed by it
    /// any more. Until then a connection still peeking or connecting holds the whole old table
    /// (seconds, at most its timeouts). The moment for a program to hand freed memory back to
    /// the system.
    ///
    /// Said once for each change that succeeded ([`Server::reload`](super::Server::reload),
    /// `set_routes`, `add_route`, `remove_route`, `reweight`: each builds a table), not
    /// necessarily in their order. Never for the table running at shutdown, nor reliably for
    /// one a connection still held then; on the caller's runtime it may come after
    /// [`Server::shutdown`](super::Server::shutdown) has returned.
    fn table_freed(&self) {}
}

/// Observes nothing.
impl Observer for () {
    fn connection(&self, _: &Record<'_>) {}
}

/// One connection's story.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct Record<'a> {
    /// The client: from the PROXY header when a trusted source sent one. An IPv4 client is
    /// IPv4 here, even when a socket said `::ffff:`.
    pub client: SocketAddr,
    /// The address the connection arrived on.
    pub listener: SocketAddr,
    /// The name it asked for (SNI or Host), when it named one.
    pub name: Option<&'a str>,
    /// The route that served it.
    pub route: Option<&'a Route>,
    /// The backend it was relayed to.
    pub backend: Option<SocketAddr>,
    /// Backends that failed to connect before this one (for [`Outcome::BackendUnreachable`]:
    /// every one tried).
    pub retries: u32,
    /// Bytes from the client to the backend, the peeked ones included.
    pub up: u64,
    /// Bytes from the backend to the client.
    pub down: u64,
    /// From accept to close.
    pub duration: Duration,
    /// How it ended.
    pub outcome: Outcome,
    /// What went wrong, in words, when something did.
    pub detail: Option<&'a dyn fmt::Display>,
}

impl fmt::Debug for Record<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("client", &self.client)
            .field("listener", &self.listener)
            .field("name", &self.name)
            .field("route", &self.route.map(|r| &r.name))
            .field("backend", &self.backend)
            .field("retries", &self.retries)
            .field("up", &self.up)
            .field("down", &self.down)
            .field("duration", &self.duration)
            .field("outcome", &self.outcome)
            .field("detail", &self.detail.map(ToString::to_string))
            .finish()
    }
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// Relayed until both sides closed.
    Ok,
    /// No route has its name on this listener (TLS: `unrecognized_name`; HTTP: 421).
    NoRoute,
    /// Not the protocol its listener takes.
    WrongProtocol,
    /// No name could be read before the peek timeout, or the bytes were not a hello.
    PeekFailed,
    /// A PROXY header where none was allowed, or none (or a bad one) where one was required.
    ProxyHeaderRefused,
    /// No backend of the route could be connected (TLS: `internal_error`; HTTP: 503).
    BackendUnreachable,
    /// Relayed, but the backend sent nothing before the connection ended: a backend that
    /// waits for something else (a plain HTTP server sent TLS, say).
    BackendSilent,
    /// Nothing moved either way for the idle timeout.
    IdleTimeout,
    /// A side failed while relaying (reset, unreachable), or the first write did.
    RelayError,
    /// Refused at accept: `max_connections` were open.
    OverLimit,
    /// Its listener was removed between the accept and serving it.
    ListenerRemoved,
    /// Still open when the server's threads stopped, after the drain timeout.
    Shutdown,
    /// An HTTP/1 request on a route with [`Forwarding`](super::Forwarding) could be framed two
    /// ways, or broke RFC 9112: answered 400 (431, 501) after the responses to the requests
    /// before it, and closed. Nothing from it on reached the backend.
    RequestRefused,
}

impl Outcome {
    /// Every outcome, for counters that start at zero.
    pub const ALL: [Outcome; 13] = [
        Outcome::Ok,
        Outcome::NoRoute,
        Outcome::WrongProtocol,
        Outcome::PeekFailed,
        Outcome::ProxyHeaderRefused,
        Outcome::BackendUnreachable,
        Outcome::BackendSilent,
        Outcome::IdleTimeout,
        Outcome::RelayError,
        Outcome::OverLimit,
        Outcome::ListenerRemoved,
        Outcome::Shutdown,
        Outcome::RequestRefused,
    ];

    /// Its label in logs and metrics: `ok`, `no_route`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::NoRoute => "no_route",
            Outcome::WrongProtocol => "wrong_protocol",
            Outcome::PeekFailed => "peek_failed",
            Outcome::ProxyHeaderRefused => "proxy_header_refused",
            Outcome::BackendUnreachable => "backend_unreachable",
            Outcome::BackendSilent => "backend_silent",
            Outcome::IdleTimeout => "idle_timeout",
            Outcome::RelayError => "relay_error",
            Outcome::OverLimit => "over_limit",
            Outcome::ListenerRemoved => "listener_removed",
            Outcome::Shutdown => "shutdown",
            Outcome::RequestRefused => "request_refused",
        }
    }

    /// Its place in [`Outcome::ALL`], to index an array of counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_index_order_and_labels_are_distinct() {
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(o.index(), i);
        }
        let mut labels: Vec<_> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Outcome::ALL.len());
    }
}
