//! Gives memory back to the system after a wave of connections closes, and after a reload.
//!
//! glibc's malloc keeps what connections freed in its per-thread arenas: reused by the next
//! connections, but never returned while anything is allocated above it. `malloc_trim` returns
//! every free page of every arena; it is called when the number of open connections has
//! fallen far below its last peak, so a steady load never pays for it. (HAProxy keeps all of
//! it; nginx returns all of it, a process per worker.) A reload frees the routes and table it
//! replaced, under the new ones: without a trim, a process that started at 58 MB stayed at 107
//! after a reload that changed every one of 100,000 routes.

use core::sync::atomic::Ordering;
use core::time::Duration;
use std::sync::Arc;

use crate::metrics::Metrics;

/// How often the open connections and reloads are looked at.
const EVERY: Duration = Duration::from_secs(1);
/// A fall of at least this many connections from the peak since the last trim...
const FALL: u64 = 1000;

/// Runs until dropped.
pub async fn trim_after_closes_and_reloads(metrics: Arc<Metrics>) {
    let open = || {
        let accepted = metrics.accepted.load(Ordering::Relaxed);
        accepted.saturating_sub(metrics.ended.load(Ordering::Relaxed))
    };
    let reloads = || metrics.reloads.load(Ordering::Relaxed);
    let (mut peak, mut reloads_seen, mut reloaded) = (open(), reloads(), false);
    loop {
        tokio::time::sleep(EVERY).await;
        let now = open();
        peak = peak.max(now);
        // ...and to at most half of that peak. A reload seen at the last look has had a whole
        // period since: the engine frees the table it replaced as soon as no connection is
        // being routed by it (it looks every 100 ms; one still peeking holds it longer, and
        // what it holds is returned at the next trim).
        let fell = peak - now >= FALL && now <= peak / 2;
        if fell || reloaded {
            let started = std::time::Instant::now();
            trim();
            tracing::debug!(peak, now, reloaded, took = ?started.elapsed(), "freed memory returned to the system");
            peak = now;
        }
        let reloads_now = reloads();
        reloaded = reloads_now != reloads_seen;
        reloads_seen = reloads_now;
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim takes no pointer and only walks the allocator's own free lists.
    unsafe { libc::malloc_trim(0) };
}

/// Other allocators return memory by their own rules.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
