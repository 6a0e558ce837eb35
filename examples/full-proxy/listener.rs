//! Accepting, and everything one connection goes through: PROXY in, peek, route, connect with
//! retries, PROXY out with the peeked bytes in one write, relay, one log line.

use core::net::SocketAddr;
use core::sync::atomic::Ordering;
use core::time::Duration;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use proxy_proto::TrustPolicy;
use proxy_proto::tokio::ReadConfig;
use proxy_proto::{Addresses, Builder, Command};
use sni_peek::{Limits, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::config::{Config, Mode, ProxyOut};
use crate::metrics::Metrics;
use crate::relay::{End, relay};
use crate::routing::{self, PendingUpdates, Routes};

/// What a reload swaps in one piece: the configuration and the routes built from it.
pub struct Live {
    pub config: Config,
    pub routes: Routes,
    /// By bound address.
    pub listeners: HashMap<SocketAddr, Arc<ListenerState>>,
}

pub struct ListenerState {
    pub mode: Mode,
    pub peek_timeout: Duration,
    /// Take the v1 lines nginx 1.22 writes (mixed families, leading zeros).
    pub lenient_proxy_v1: bool,
    /// `None`: nobody may send a PROXY header (the bytes are read as the application's).
    pub trust: Option<TrustPolicy>,
}

impl Live {
    /// Builds what `config` needs, reusing `old`'s pools where it can. Nothing running changes
    /// until the returned updates are applied.
    pub fn new(
        config: Config,
        old: Option<&Live>,
        epoch: Instant,
    ) -> Result<(Live, PendingUpdates), String> {
        let (routes, pending) = Routes::build(&config, old.map(|o| &o.routes), epoch)?;
        let mut listeners = HashMap::new();
        for l in &config.listeners {
            let state = Arc::new(ListenerState {
                mode: l.mode,
                peek_timeout: l.peek_timeout,
                lenient_proxy_v1: l.accept_proxy_lenient,
                trust: (!l.accept_proxy_from.is_empty())
                    .then(|| TrustPolicy::trusted(l.accept_proxy_from.iter().copied())),
            });
            for a in &l.addresses {
                listeners.insert(*a, Arc::clone(&state));
            }
        }
        Ok((
            Live {
                config,
                routes,
                listeners,
            },
            pending,
        ))
    }
}

/// What every task shares.
pub struct Shared {
    pub live: ArcSwap<Live>,
    pub metrics: Arc<Metrics>,
    pub epoch: Instant,
}

/// Counts a connection as active until dropped.
struct Active(Arc<Metrics>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Accepts on one address until `stop` says so. Connections already accepted run on.
pub async fn accept_loop(
    listener: std::net::TcpListener,
    address: SocketAddr,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    // Registered here, with the worker's own runtime, where it is accepted on.
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%address, "cannot accept on this worker: {e}");
            return;
        }
    };
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!(%address, "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        shared.metrics.accepted.fetch_add(1, Ordering::Relaxed);
        let live = shared.live.load_full();
        let Some(settings) = live.listeners.get(&address).cloned() else {
            // A reload dropped this address between the accept and now: say so, then stop.
            shared.metrics.outcome("listener_removed");
            tracing::info!(client = %peer, listener = %address, outcome = "listener_removed", "listener removed by a reload");
            return;
        };
        let max = live.config.limits.max_connections as u64;
        if shared.metrics.active.fetch_add(1, Ordering::SeqCst) >= max {
            shared.metrics.active.fetch_sub(1, Ordering::SeqCst);
            shared.metrics.outcome("over_limit");
            tracing::warn!(client = %peer, listener = %address, outcome = "over_limit", "refused: max_connections ({max}) reached");
            continue;
        }
        let active = Active(Arc::clone(&shared.metrics));
        let shared = Arc::clone(&shared);
        // Boxed: the task then moves a pointer, not the connection's whole state, through spawn.
        tokio::spawn(Box::pin(async move {
            let _active = active;
            serve(stream, peer, address, settings, live, shared).await;
        }));
    }
}

/// One connection's story, logged once when it ends.
struct Story {
    started: Instant,
    client: SocketAddr,
    listener: SocketAddr,
    name: Option<String>,
    route: Option<String>,
    backend: Option<SocketAddr>,
    up: u64,
    down: u64,
}

impl Story {
    fn end(&self, metrics: &Metrics, outcome: &'static str, detail: &str) {
        metrics.outcome(outcome);
        metrics.bytes_up.fetch_add(self.up, Ordering::Relaxed);
        metrics.bytes_down.fetch_add(self.down, Ordering::Relaxed);
        tracing::info!(
            client = %self.client,
            listener = %self.listener,
            name = self.name.as_deref().unwrap_or("-"),
            route = self.route.as_deref().unwrap_or("-"),
            backend = %self.backend.map_or_else(|| "-".to_string(), |b| b.to_string()),
            up = self.up,
            down = self.down,
            ms = self.started.elapsed().as_millis() as u64,
            outcome,
            "{detail}"
        );
    }
}

async fn serve(
    mut client: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    settings: Arc<ListenerState>,
    live: Arc<Live>,
    shared: Arc<Shared>,
) {
    let _ = client.set_nodelay(true);
    let deadline = tokio::time::Instant::now() + settings.peek_timeout;
    let mut story = Story {
        started: Instant::now(),
        client: peer,
        listener: local,
        name: None,
        route: None,
        backend: None,
        up: 0,
        down: 0,
    };
    let metrics = &shared.metrics;

    // 1. A PROXY header, from trusted sources only (and required from them). Addresses are
    // kept canonical: an IPv4 client is IPv4 in logs and headers, even if a socket said ::ffff:.
    let canonical = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    let (mut origin, mut target, early) = (canonical(peer), canonical(local), Vec::new());
    story.client = origin;
    let early = match &settings.trust {
        None => early,
        Some(trust) => {
            let config = ReadConfig {
                timeout: settings.peek_timeout,
                parser: proxy_proto::Parser::new().lenient_v1(settings.lenient_proxy_v1),
            };
            match proxy_proto::tokio::read_header(&mut client, peer, trust, &config).await {
                Ok(accepted) => {
                    if let Some(h) = accepted.header() {
                        let h = h.header();
                        origin = h.source().map_or(origin, canonical);
                        target = h.destination().map_or(target, canonical);
                    }
                    story.client = origin;
                    accepted.rest().to_vec()
                }
                Err(e) => return story.end(metrics, "proxy_header_refused", &e.to_string()),
            }
        }
    };

    // 2. Peek: read until the name is known, keeping every byte.
    let mut reader = (&early[..]).chain(&mut client);
    let peeked = match sni_peek::tokio::peek(&mut reader, deadline, &Limits::default()).await {
        Ok(p) => p,
        Err(e) => return story.end(metrics, "peek_failed", &e.to_string()),
    };
    let protocol = peeked.summary.protocol;
    let name = peeked.summary.host.map(|h| h.as_str().to_string());
    story.name.clone_from(&name);
    let wanted = match settings.mode {
        Mode::Tls => protocol == Protocol::Tls,
        Mode::Http => matches!(protocol, Protocol::Http1 | Protocol::H2),
        Mode::Auto => protocol != Protocol::Unknown,
    };
    if !wanted {
        return story.end(
            metrics,
            "wrong_protocol",
            &format!("{protocol:?} on a {:?} listener", settings.mode),
        );
    }

    // 3. Route, then a backend, retrying the next candidate on a failed connect.
    let Some(route) = live.routes.find(peeked.summary.host.as_ref()) else {
        Box::pin(refuse(&mut client, protocol, Refusal::NoRoute)).await;
        return story.end(metrics, "no_route", "no route for this name");
    };
    story.route = Some(route.name());
    let connected = match routing::connect(route, local.port(), origin.ip(), shared.epoch).await {
        Ok(c) => c,
        Err(e) => {
            Box::pin(refuse(&mut client, protocol, Refusal::Unavailable)).await;
            return story.end(metrics, "backend_unreachable", &e.to_string());
        }
    };
    story.backend = Some(connected.backend);
    metrics
        .connect_retries
        .fetch_add(u64::from(connected.retries), Ordering::Relaxed);

    // 4. The PROXY header and every peeked byte, in one write.
    let addresses = Addresses::from_pair(origin, target);
    let first = match first_write(
        route.spec.proxy_protocol,
        addresses,
        name.as_deref(),
        &peeked.bytes,
    ) {
        Ok(first) => first,
        Err(e) => return story.end(metrics, "relay_error", &format!("PROXY header: {e}")),
    };
    let mut backend = connected.stream;
    let timeout = route.spec.connect_timeout;
    let written = tokio::time::timeout(timeout, backend.write_all(&first)).await;
    if let Err(e) = written
        .map_err(|_| format!("no room within {timeout:?}"))
        .and_then(|w| w.map_err(|e| e.to_string()))
    {
        connected.in_flight.record_failure(shared.epoch.elapsed());
        return story.end(
            metrics,
            "relay_error",
            &format!("writing to the backend: {e}"),
        );
    }

    // 5. Relay until both sides are done. The configuration is let go first: a reload must
    // not wait for long connections to stop the health checks of routes it removed.
    let limits = live.config.limits;
    drop(live);
    let relayed = relay(client, backend, limits.idle_timeout, limits.relay).await;
    story.up = relayed.up + peeked.bytes.len() as u64;
    story.down = relayed.down;
    drop(connected.in_flight);
    match relayed.end {
        End::Closed => story.end(metrics, "ok", "closed"),
        End::Idle => story.end(metrics, "idle_timeout", "idle timeout"),
        End::Error(e) => story.end(metrics, "relay_error", &e.to_string()),
    }
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
    let _ = client.shutdown().await;
    // Read what the client still sends for a moment, so closing does not reset the answer away.
    let mut sink = [0u8; 512];
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}
