//! Accepting on one listening socket: the connection limit, then a task per connection.

use core::net::SocketAddr;
use core::sync::atomic::Ordering;
use core::time::Duration;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::Outcome;
use super::connection;
use super::live::Shared;

/// Counts a connection as active until dropped.
pub(crate) struct Active(Arc<Shared>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Accepts on `listener` (bound to `address`, registered with this task's runtime) until `stop` says so. Connections already
/// accepted run on.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    address: SocketAddr,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
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
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        shared.observer.accepted();
        let live = shared.live.load_full();
        let refused = |outcome, detail: &dyn core::fmt::Display| {
            // The connection's own address, as a served connection's record has it.
            let local = stream.local_addr().unwrap_or(address);
            connection::refused(&shared, peer, local, outcome, detail);
        };
        let Some(settings) = live.by_address.get(&address).cloned() else {
            // A change dropped this address between the accept and now: say so, then stop.
            return refused(Outcome::ListenerRemoved, &"listener removed by a change");
        };
        let max = live.limits.max_connections as u64;
        if shared.active.fetch_add(1, Ordering::SeqCst) >= max {
            shared.active.fetch_sub(1, Ordering::SeqCst);
            refused(
                Outcome::OverLimit,
                &format_args!("max_connections ({max}) reached"),
            );
            continue;
        }
        let active = Active(Arc::clone(&shared));
        let shared = Arc::clone(&shared);
        // Boxed: the task then moves a pointer, not the connection's whole state, through spawn.
        let serving = connection::serve(stream, peer, settings, live, shared, active);
        tokio::spawn(Box::pin(serving));
    }
}
