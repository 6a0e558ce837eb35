//! Both directions at once, with half-close: a FIN from one side is passed on and the other
//! direction keeps flowing until it ends too. Bounded buffers; an idle timeout over both.

use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

#[cfg(target_os = "linux")]
use crate::splice::{self, Pipe};

/// How bytes cross the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Read into a buffer here, write it out.
    Copy,
    /// `splice(2)` through a pipe: the bytes stay in the kernel. Linux only; elsewhere it
    /// copies. The default: on loopback it moved 2 GiB responses ~20 % faster than copying, on
    /// half the proxy's CPU time (1.0 vs 0.83 GB/s, 253 vs 479 ticks for 6 GiB).
    Splice,
}

/// One direction's buffer: enough for a TLS record, small enough for many connections.
const BUFFER: usize = 16 * 1024;

/// How a relay ended, and what it carried.
#[derive(Debug)]
pub struct Relayed {
    /// Client to backend.
    pub up: u64,
    /// Backend to client.
    pub down: u64,
    pub end: End,
}

#[derive(Debug)]
pub enum End {
    /// Both sides closed their sending direction.
    Closed,
    /// Nothing moved either way for the idle timeout.
    Idle,
    /// A side failed (reset, unreachable); the other was closed.
    Error(std::io::Error),
}

/// Relays until both directions end, one fails, or nothing moves for `idle`.
pub async fn relay(
    mut client: TcpStream,
    mut backend: TcpStream,
    idle: Duration,
    method: Method,
) -> Relayed {
    let started = Instant::now();
    let last_activity = AtomicU64::new(0);
    let touch = || last_activity.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
    let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
    // Splicing needs two pipes; without them (descriptor limit), copy.
    #[cfg(target_os = "linux")]
    let pipes = match method {
        Method::Splice => Pipe::new().and_then(|a| Ok((a, Pipe::new()?))).ok(),
        Method::Copy => None,
    };
    #[cfg(not(target_os = "linux"))]
    let _ = method;
    let directions = async {
        #[cfg(target_os = "linux")]
        if let Some((to_backend, to_client)) = &pipes {
            return tokio::try_join!(
                splice::copy(&client, &backend, to_backend, &up, &touch),
                splice::copy(&backend, &client, to_client, &down, &touch),
            );
        }
        let (client_read, client_write) = client.split();
        let (backend_read, backend_write) = backend.split();
        tokio::try_join!(
            copy(client_read, backend_write, &up, &touch),
            copy(backend_read, client_write, &down, &touch),
        )
    };
    let idle_watch = async {
        loop {
            let since = Duration::from_millis(last_activity.load(Ordering::Relaxed));
            let quiet_for = started.elapsed().saturating_sub(since);
            if quiet_for >= idle {
                return;
            }
            tokio::time::sleep(idle - quiet_for).await;
        }
    };
    let end = tokio::select! {
        result = directions => match result {
            Ok(_) => End::Closed,
            Err(e) => End::Error(e),
        },
        () = idle_watch => End::Idle,
    };
    Relayed {
        up: up.load(Ordering::Relaxed),
        down: down.load(Ordering::Relaxed),
        end,
    }
}

async fn copy(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    carried: &AtomicU64,
    touched: impl Fn(),
) -> std::io::Result<()> {
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            // Pass the FIN on; the other direction goes on until its own end.
            return to.shutdown().await;
        }
        to.write_all(&buf[..n]).await?;
        carried.fetch_add(n as u64, Ordering::Relaxed);
        touched();
    }
}
