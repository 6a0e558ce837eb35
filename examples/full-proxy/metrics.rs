//! Counters, and an optional address that serves them in the Prometheus text format.

use core::fmt::Write as _;
use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Every outcome a connection can have, as the `outcome` label.
pub const OUTCOMES: [&str; 10] = [
    "ok",
    "no_route",
    "wrong_protocol",
    "peek_failed",
    "proxy_header_refused",
    "backend_unreachable",
    "idle_timeout",
    "relay_error",
    "over_limit",
    "listener_removed",
];

#[derive(Debug, Default)]
pub struct Metrics {
    pub accepted: AtomicU64,
    pub active: AtomicU64,
    pub outcomes: [AtomicU64; OUTCOMES.len()],
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
    pub connect_retries: AtomicU64,
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
    /// The NAT64 gateway, when one runs: it lives here so its counters render with ours, and
    /// storing `None` stops it.
    pub gateway: arc_swap::ArcSwapOption<sixgate::gateway::Gateway>,
}

impl Metrics {
    pub fn outcome(&self, name: &str) {
        if let Some(i) = OUTCOMES.iter().position(|o| *o == name) {
            self.outcomes[i].fetch_add(1, Ordering::Relaxed);
        }
    }

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
            self.active.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP sixgate_connections_total Connections ended, by outcome.\n# TYPE sixgate_connections_total counter"
        );
        for (name, value) in OUTCOMES.iter().zip(&self.outcomes) {
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
