//! Everything one connection goes through: PROXY in, peek, route, connect with retries, PROXY
//! out with the peeked bytes in one write, relay, and one record when it ends.
//!
//! The steps before the relay run in a boxed future of their own, freed when the relay starts:
//! an idle connection keeps only its two sockets, its record and the relay's small state.

use core::fmt;
use core::net::SocketAddr;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use std::sync::Arc;
use std::time::Instant;

use backend_pool::InFlight;
use proxy_proto::{Addresses, Builder, Command};
use sni_peek::tokio::PeekError;
use sni_peek::{Limits as PeekLimits, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::accept::Active;
use super::forwarding::{self, Refusal as HttpRefusal};
use super::live::{ListenerState, Live, Shared};
use super::pools::{self, Connected};
use super::relay::{End, relay};
use super::{Mode, Outcome, ProxyOut, Record, Route};

/// What is known of a connection so far; it becomes its [`Record`] when it ends, or when its
/// task is dropped (the engine's threads stopped after the drain timeout).
struct Story {
    shared: Arc<Shared>,
    recorded: bool,
    started: Instant,
    client: SocketAddr,
    listener: SocketAddr,
    name: Option<Box<str>>,
    route: Option<Arc<Route>>,
    backend: Option<SocketAddr>,
    retries: u32,
    /// Counted by the relay as bytes go, so that a connection cut off has its count too.
    up: AtomicU64,
    down: AtomicU64,
}

/// How a connection ended before its relay began.
struct Ended {
    outcome: Outcome,
    detail: String,
}

fn ended(outcome: Outcome, detail: impl fmt::Display) -> Ended {
    Ended {
        outcome,
        detail: detail.to_string(),
    }
}

impl Story {
    fn new(shared: Arc<Shared>, client: SocketAddr, listener: SocketAddr) -> Story {
        Story {
            shared,
            recorded: false,
            started: Instant::now(),
            client,
            listener,
            name: None,
            route: None,
            backend: None,
            retries: 0,
            up: AtomicU64::new(0),
            down: AtomicU64::new(0),
        }
    }

    fn end(&mut self, outcome: Outcome, detail: Option<&dyn fmt::Display>) {
        self.recorded = true;
        self.shared.observer.connection(&Record {
            client: self.client,
            listener: self.listener,
            name: self.name.as_deref(),
            route: self.route.as_deref(),
            backend: self.backend,
            retries: self.retries,
            up: self.up.load(Ordering::Relaxed),
            down: self.down.load(Ordering::Relaxed),
            duration: self.started.elapsed(),
            outcome,
            detail,
        });
    }
}

impl Drop for Story {
    fn drop(&mut self) {
        if !self.recorded {
            self.end(Outcome::Shutdown, Some(&"cut off: the server shut down"));
        }
    }
}

/// Serves one accepted connection to its end; `active` counts it until then.
///
/// A plain function returning a block, not an `async fn`: an `async fn` keeps its arguments
/// twice in its frame (as given and as moved in), and this frame is most of what an idle
/// connection costs. For the same reason nothing that is done with before the relay (the
/// prepared connection, the HTTP start) is still a local while it runs.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn holds each argument twice"
)]
pub(crate) fn serve(
    mut client: TcpStream,
    peer: SocketAddr,
    settings: Arc<ListenerState>,
    live: Arc<Live>,
    shared: Arc<Shared>,
    active: Active,
) -> impl Future<Output = ()> + Send {
    async move {
        let _ = client.set_nodelay(true);
        // Addresses are kept canonical: an IPv4 client is IPv4 in records and headers, even if
        // a socket said ::ffff:.
        let local = client.local_addr().map_or(settings.address, canonical);
        let mut story = Story::new(Arc::clone(&shared), canonical(peer), local);
        let prepare = prepare(&mut client, &mut story, &settings, &live, &shared);
        let Some((backend, in_flight, http)) = started(Box::pin(prepare).await, &mut story) else {
            return close(client, active);
        };
        // The table is let go first: a change must not wait for long connections to stop the
        // health checks of routes it removed.
        let limits = live.limits;
        drop((live, settings, shared));
        let (end, refused) = match http {
            Some(http) => {
                // Boxed: a plain relay's task carries none of the forwarding relay's state.
                Box::pin(forward(&client, &backend, limits, &story, http)).await
            }
            None => {
                let relay = relay(&client, &backend, limits, &story.up, &story.down);
                (relay.await, None)
            }
        };
        drop(in_flight);
        finish(story, end, refused);
        drop(backend);
        close(client, active);
    }
}

/// What the relay needs of a prepared connection; `None` when it ended before (recorded).
fn started(
    prepared: Result<(Connected, Option<Box<HttpStart>>), Ended>,
    story: &mut Story,
) -> Option<(TcpStream, InFlight, Option<Box<HttpStart>>)> {
    match prepared {
        Ok((connected, http)) => Some((connected.stream, connected.in_flight, http)),
        Err(e) => {
            story.end(e.outcome, Some(&e.detail));
            None
        }
    }
}

/// The client's socket is closed before the connection stops counting as active: the limit and
/// a drain count open connections.
fn close(client: TcpStream, active: Active) {
    drop(client);
    drop(active);
}

/// The forwarding relay, for a connection whose route adds forwarding fields.
async fn forward(
    client: &TcpStream,
    backend: &TcpStream,
    limits: super::Limits,
    story: &Story,
    http: Box<HttpStart>,
) -> (End, Option<(HttpRefusal, bool)>) {
    let route = story.route.as_deref();
    let forwarding = route.and_then(|r| r.forwarded.as_deref());
    let forwarding = forwarding.expect("an http start is made for a forwarding route");
    let counters = (&story.up, &story.down);
    let HttpStart { prefix, first } = unbox(http);
    forwarding::relay(
        client,
        backend,
        limits,
        counters,
        forwarding,
        story.client.ip(),
        prefix,
        first,
    )
    .await
}

/// The connection's record, from how its relay ended.
fn finish(mut story: Story, end: End, refused: Option<(HttpRefusal, bool)>) {
    if let Some((refusal, answered)) = refused {
        let (status, error) = (refusal.status, refusal.error);
        let detail = if answered {
            format!("answered {status}: {error}")
        } else {
            format!("not answered {status} (the backend's answers were cut short): {error}")
        };
        return story.end(Outcome::RequestRefused, Some(&detail));
    }
    // A backend that never answered (a plain HTTP server sent TLS, say) is no success, whoever
    // gave up first.
    let silent = story.down.load(Ordering::Relaxed) == 0;
    let (outcome, detail) = match end {
        End::Error(e) => return story.end(Outcome::RelayError, Some(&e)),
        End::Closed if silent => (Outcome::BackendSilent, "closed: the backend sent nothing"),
        End::Idle if silent => (
            Outcome::BackendSilent,
            "idle timeout: the backend sent nothing",
        ),
        End::Closed => (Outcome::Ok, "closed"),
        End::Idle => (Outcome::IdleTimeout, "idle timeout"),
    };
    story.end(outcome, Some(&detail));
}

/// A connection refused at accept: its record, at once.
pub(crate) fn refused(
    shared: &Arc<Shared>,
    client: SocketAddr,
    listener: SocketAddr,
    outcome: Outcome,
    detail: &dyn fmt::Display,
) {
    let (client, listener) = (canonical(client), canonical(listener));
    Story::new(Arc::clone(shared), client, listener).end(outcome, Some(detail));
}

fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// Moves the start out of its box and frees the box at once (a `let` of `*start` would keep
/// it until the relay ends).
#[expect(clippy::boxed_local, reason = "the point is to free the box here")]
fn unbox(start: Box<HttpStart>) -> HttpStart {
    *start
}

/// The first bytes of a connection whose requests get forwarding fields: the relay frames them.
/// Boxed where it is passed on, so that a connection without them holds a pointer, not two
/// empty vectors, while it relays.
struct HttpStart {
    /// The PROXY header, if the route sends one.
    prefix: Vec<u8>,
    /// Everything the peek read.
    first: Vec<u8>,
}

/// PROXY in, peek, route, connect, first write: a connected backend that has every byte the
/// client sent so far (counted in `story.up`) — or, for a route with forwarding fields on an
/// HTTP/1 connection, the bytes the relay is to frame first.
async fn prepare(
    client: &mut TcpStream,
    story: &mut Story,
    settings: &ListenerState,
    live: &Live,
    shared: &Shared,
) -> Result<(Connected, Option<Box<HttpStart>>), Ended> {
    let deadline = tokio::time::Instant::now() + settings.peek_timeout;

    // 1. A PROXY header, from trusted sources only (and required from them).
    let mut target = story.listener;
    let early = match &settings.trust {
        None => Default::default(),
        Some(trust) => {
            let parser = proxy_proto::Parser::new().lenient_v1(settings.lenient_proxy_v1);
            let peer = story.client;
            let accepted = proxy_proto::tokio::read_header(client, peer, trust, deadline, &parser)
                .await
                .map_err(|e| ended(Outcome::ProxyHeaderRefused, e))?;
            if let Some(h) = accepted.header() {
                let h = h.header();
                story.client = h.source().map_or(story.client, canonical);
                target = h.destination().map_or(target, canonical);
            }
            accepted.into_parts().1
        }
    };

    // 2. Peek: read until the name is known, keeping every byte.
    let mut reader = (&early[..]).chain(&mut *client);
    let peek = sni_peek::tokio::peek(&mut reader, deadline, &PeekLimits::default()).await;
    let peeked = match peek {
        Ok(peeked) => peeked,
        Err(e) => {
            // A request that is HTTP but broken is told so, whatever its route would do.
            if let PeekError::Invalid { error, bytes } = &e
                && settings.mode != Mode::Tls
                && bytes.first().is_some_and(u8::is_ascii_alphabetic)
                && !bytes.starts_with(b"PRI * HTTP/2.0")
            {
                let refusal = HttpRefusal::of(*error);
                drop(reader);
                let _ = client.write_all(refusal.response().as_bytes()).await;
                linger(client).await;
                return Err(ended(Outcome::RequestRefused, e));
            }
            return Err(ended(Outcome::PeekFailed, e));
        }
    };
    // The peek may decide before it has read all that followed a long PROXY header: what it
    // left unread goes after what it read.
    let (unread, _) = reader.into_inner();
    let mut peeked_bytes = Vec::from(peeked.bytes);
    peeked_bytes.extend_from_slice(unread);
    let protocol = peeked.summary.protocol;
    let name = peeked.summary.host.as_ref().map(|h| h.as_str());
    story.name = name.map(Box::from);
    let wanted = match settings.mode {
        Mode::Tls => protocol == Protocol::Tls,
        Mode::Http => matches!(protocol, Protocol::Http1 | Protocol::H2),
        Mode::Auto => protocol != Protocol::Unknown,
    };
    if !wanted {
        let why = format!("{protocol:?} on a {:?} listener", settings.mode);
        return Err(ended(Outcome::WrongProtocol, why));
    }

    // 3. Route, then a backend, retrying the next candidate on a failed connect.
    let Some(route) = live.table.find(name, settings.index) else {
        refuse(client, protocol, Refusal::NoRoute).await;
        return Err(ended(
            Outcome::NoRoute,
            "no route for this name on this listener",
        ));
    };
    story.route = Some(Arc::clone(&route.spec));
    let port = story.listener.port();
    let connected = match pools::connect(route, port, story.client.ip(), shared.epoch).await {
        Ok(c) => c,
        Err(e) => {
            if let pools::ConnectError::AllFailed { tried, .. } = e {
                story.retries = tried;
            }
            refuse(client, protocol, Refusal::Unavailable).await;
            return Err(ended(Outcome::BackendUnreachable, e));
        }
    };
    story.backend = Some(connected.backend);
    story.retries = connected.retries;

    // 4. The PROXY header and every peeked byte, in one write; for forwarding fields, the
    // relay frames the bytes first.
    let addresses = Addresses::from_pair(story.client, target);
    let http = route.spec.forwarded.is_some() && protocol == Protocol::Http1;
    let sent_now = if http { &[][..] } else { &peeked_bytes[..] };
    let first = first_write(route.spec.proxy_protocol, addresses, name, sent_now)
        .map_err(|e| ended(Outcome::RelayError, format_args!("PROXY header: {e}")))?;
    if http {
        let start = HttpStart {
            prefix: first,
            first: peeked_bytes,
        };
        return Ok((connected, Some(Box::new(start))));
    }
    let mut backend = connected;
    let timeout = route.spec.connect_timeout;
    let written = tokio::time::timeout(timeout, backend.stream.write_all(&first)).await;
    if let Err(e) = written
        .map_err(|_| format!("no room within {timeout:?}"))
        .and_then(|w| w.map_err(|e| e.to_string()))
    {
        backend.in_flight.record_failure(shared.epoch.elapsed());
        return Err(ended(
            Outcome::RelayError,
            format_args!("writing to the backend: {e}"),
        ));
    }
    story.up = AtomicU64::new(peeked_bytes.len() as u64);
    Ok((backend, None))
}

/// The PROXY header the route asks for (v2 with the name as AUTHORITY), then the peeked bytes.
fn first_write(
    version: ProxyOut,
    addresses: Addresses<'_>,
    name: Option<&str>,
    peeked: &[u8],
) -> Result<Vec<u8>, proxy_proto::EmitError> {
    let header = match (version, name) {
        (ProxyOut::None, _) => None,
        (ProxyOut::V1, _) => Some(Builder::v1(addresses)),
        (ProxyOut::V2, Some(name)) => Some(Builder::v2(Command::Proxy, addresses).authority(name)),
        (ProxyOut::V2, None) => Some(Builder::v2(Command::Proxy, addresses)),
    };
    let header_len = header.as_ref().map_or(Ok(0), Builder::len)?;
    let mut first = vec![0; header_len];
    if let Some(header) = header {
        header.write(&mut first)?;
    }
    first.extend_from_slice(peeked);
    Ok(first)
}

enum Refusal {
    NoRoute,
    Unavailable,
}

/// Tells the client why, in its own protocol, then closes without resetting the answer away.
async fn refuse(client: &mut TcpStream, protocol: Protocol, why: Refusal) {
    let answer: &[u8] = match (protocol, why) {
        // A fatal alert: unrecognized_name (112), internal_error (80).
        (Protocol::Tls, Refusal::NoRoute) => &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 112],
        (Protocol::Tls, Refusal::Unavailable) => &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 80],
        (Protocol::Http1, Refusal::NoRoute) => {
            b"HTTP/1.1 421 Misdirected Request\r\nContent-Type: text/plain\r\nContent-Length: 24\r\nConnection: close\r\n\r\nno route for this host.\n"
        }
        (Protocol::Http1, Refusal::Unavailable) => {
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 25\r\nConnection: close\r\n\r\nno backend is reachable.\n"
        }
        // HTTP/2 with prior knowledge: our (empty) SETTINGS, then GOAWAY with no stream
        // processed and REFUSED_STREAM (7), so the client may retry elsewhere.
        (Protocol::H2, _) => &[
            0, 0, 0, 4, 0, 0, 0, 0, 0, // SETTINGS, no parameters
            0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, // GOAWAY, last stream 0
        ],
        _ => b"",
    };
    let _ = client.write_all(answer).await;
    linger(client).await;
}

/// Closes the sending side, then reads what the client still sends for a moment, so that
/// closing does not reset the answer away.
async fn linger(client: &mut TcpStream) {
    let _ = client.shutdown().await;
    let mut sink = [0u8; 512];
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}
