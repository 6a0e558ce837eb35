//! Both directions at once, with half-close: a FIN from one side is passed on and the other
//! direction keeps flowing until it ends too. Bounded buffers; an idle timeout over both.

use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

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
pub async fn relay(client: TcpStream, backend: TcpStream, idle: Duration) -> Relayed {
    let (client_read, client_write) = client.into_split();
    let (backend_read, backend_write) = backend.into_split();
    let started = Instant::now();
    let last_activity = AtomicU64::new(0);
    let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
    let directions = async {
        tokio::try_join!(
            copy(client_read, backend_write, &up, &last_activity, started),
            copy(backend_read, client_write, &down, &last_activity, started),
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
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    carried: &AtomicU64,
    last_activity: &AtomicU64,
    started: Instant,
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
        last_activity.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}
