//! What each connection leaves behind, as the program shows it: one log line per connection,
//! counters, and an optional address that serves them in the Prometheus text format.

use core::fmt::{self, Write as _};
use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sixgate::proxy::{Observer, Outcome, Record};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Debug, Default)]
pub struct Metrics {
    pub accepted: AtomicU64,
    /// Connections ended, refused ones included: `accepted - ended` are open.
    pub ended: AtomicU64,
    pub outcomes: [AtomicU64; Outcome::ALL.len()],
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
    pub connect_retries: AtomicU64,
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
    /// Route tables replaced by a reload and since freed (not shown: for the memory trimmer).
    pub tables_freed: AtomicU64,
    /// The NAT64 gateway, when one runs: it lives here so its counters render with ours, and
    /// storing `None` stops it.
    pub gateway: arc_swap::ArcSwapOption<sixgate::gateway::Gateway>,
}

impl Observer for Metrics {
    fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    fn table_freed(&self) {
        self.tables_freed.fetch_add(1, Ordering::Relaxed);
    }

    fn connection(&self, r: &Record<'_>) {
        self.outcomes[r.outcome.index()].fetch_add(1, Ordering::Relaxed);
        self.bytes_up.fetch_add(r.up, Ordering::Relaxed);
        self.bytes_down.fetch_add(r.down, Ordering::Relaxed);
        self.connect_retries
            .fetch_add(u64::from(r.retries), Ordering::Relaxed);
        self.ended.fetch_add(1, Ordering::Relaxed);
        // Formatted only if the line is logged: no allocation per connection otherwise.
        let (name, route) = (r.name.unwrap_or("-"), r.route.map_or("-", |r| &r.name));
        let backend = Or(r.backend, "-");
        let outcome = r.outcome.as_str();
        let ms = r.duration.as_millis() as u64;
        let (client, listener, up, down) = (r.client, r.listener, r.up, r.down);
        let message = Or(r.detail, "");
        match r.outcome {
            Outcome::OverLimit => {
                tracing::warn!(target: "connection", %client, %listener, name, route, %backend, up, down, ms, outcome, "{message}");
            }
            _ => {
                tracing::info!(target: "connection", %client, %listener, name, route, %backend, up, down, ms, outcome, "{message}");
            }
        }
    }
}

/// An optional value as a log line shows it: the value, or the given text without one.
struct Or<T>(Option<T>, &'static str);

impl<T: fmt::Display> fmt::Display for Or<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(value) => value.fmt(f),
            None => f.write_str(self.1),
        }
    }
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            "sixgate_connections_accepted_total",
            "Connections accepted.",
            self.accepted.load(Ordering::Relaxed),
        );
        counter(
            "sixgate_bytes_up_total",
            "Bytes relayed from clients to backends.",
            self.bytes_up.load(Ordering::Relaxed),
        );
        counter(
            "sixgate_bytes_down_total",
            "Bytes relayed from backends to clients.",
            self.bytes_down.load(Ordering::Relaxed),
        );
        counter(
            "sixgate_connect_retries_total",
            "Backend connects retried on another backend.",
            self.connect_retries.load(Ordering::Relaxed),
        );
        counter(
            "sixgate_reloads_total",
            "Configuration reloads applied.",
            self.reloads.load(Ordering::Relaxed),
        );
        counter(
            "sixgate_reload_failures_total",
            "Configuration reloads refused.",
            self.reload_failures.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP sixgate_connections_active Connections open now.\n# TYPE sixgate_connections_active gauge"
        );
        let _ = writeln!(
            out,
            "sixgate_connections_active {}",
            self.accepted
                .load(Ordering::Relaxed)
                .saturating_sub(self.ended.load(Ordering::Relaxed))
        );
        let _ = writeln!(
            out,
            "# HELP sixgate_connections_total Connections ended, by outcome.\n# TYPE sixgate_connections_total counter"
        );
        for (outcome, value) in Outcome::ALL.iter().zip(&self.outcomes) {
            let name = outcome.as_str();
            let _ = writeln!(
                out,
                "sixgate_connections_total{{outcome=\"{name}\"}} {}",
                value.load(Ordering::Relaxed)
            );
        }
        if let Some(gateway) = self.gateway.load().as_deref() {
            crate::nat64::render(gateway, &mut out);
        }
        out
    }
}

/// Serves `GET /metrics` (any path, in fact) on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "metrics on http://{address}/metrics");
    }
    loop {
        let mut stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors and the like: say so and back off, never stop serving.
                tracing::warn!("metrics: accept failed: {e}");
                tokio::time::sleep(core::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            // Read the whole request head first: closing a socket with unread bytes resets it,
            // and the reset can destroy the answer before the client reads it.
            let mut head = Vec::new();
            let mut chunk = [0u8; 1024];
            let read_head = async {
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&chunk[..n]),
                    }
                }
            };
            let _ = tokio::time::timeout(core::time::Duration::from_secs(2), read_head).await;
            let body = metrics.render();
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
