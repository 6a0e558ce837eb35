//! Gives memory back to the system after a wave of connections closes, and after a reload.
//!
//! glibc's malloc keeps what connections freed in its per-thread arenas: reused by the next
//! connections, but never returned while anything is allocated above it. `malloc_trim` returns
//! every free page of every arena; it is called when the number of open connections has
//! fallen far below its last peak, so a steady load never pays for it. (HAProxy keeps all of
//! it; nginx returns all of it, a process per worker.) A reload frees the old route table
//! under the new one, so it is trimmed once the engine says the old table is freed: without
//! that, a process that started at 58 MB resident stayed at 107 after a reload that changed
//! every one of 100,000 routes.

use core::sync::atomic::Ordering;
use core::time::Duration;
use std::sync::Arc;

use crate::metrics::Metrics;

/// How often the open connections and freed tables are looked at.
const EVERY: Duration = Duration::from_secs(1);
/// A fall of at least this many connections from the peak since the last trim...
const FALL: u64 = 1000;

/// Runs until dropped.
pub async fn trim_after_closes_and_reloads(metrics: Arc<Metrics>) {
    let open = || {
        let accepted = metrics.accepted.load(Ordering::Relaxed);
        accepted.saturating_sub(metrics.ended.load(Ordering::Relaxed))
    };
    let freed = || metrics.tables_freed.load(Ordering::Relaxed);
    let mut due = Due::new(open(), freed());
    loop {
        tokio::time::sleep(EVERY).await;
        let (now, tables_freed) = (open(), freed());
        if let Some(why) = due.look(now, tables_freed) {
            let started = std::time::Instant::now();
            trim();
            tracing::debug!(now, ?why, took = ?started.elapsed(), "freed memory returned to the system");
        }
    }
}

/// Why a trim is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    /// Open connections fell by `FALL` or more, to half their peak or less.
    ConnectionsClosed,
    /// The engine freed a table a reload replaced.
    TableFreed,
}

/// When a trim is due, from what is seen at each look.
struct Due {
    /// The most connections open since the last trim.
    peak: u64,
    /// Tables freed, as last seen.
    tables_freed: u64,
}

impl Due {
    fn new(open: u64, tables_freed: u64) -> Self {
        Due {
            peak: open,
            tables_freed,
        }
    }

    /// Whether to trim now, and why.
    fn look(&mut self, open: u64, tables_freed: u64) -> Option<Why> {
        self.peak = self.peak.max(open);
        // ...and to at most half of that peak.
        let why = if self.peak - open >= FALL && open <= self.peak / 2 {
            Why::ConnectionsClosed
        } else if tables_freed != self.tables_freed {
            Why::TableFreed
        } else {
            return None;
        };
        (self.peak, self.tables_freed) = (open, tables_freed);
        Some(why)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trim_follows_a_wave_of_closes_or_a_freed_table_once() {
        let mut due = Due::new(0, 0);
        // Connections come: no trim; they fall by less than a thousand: none.
        assert_eq!(due.look(1500, 0), None);
        assert_eq!(due.look(600, 0), None);
        // A thousand fewer and at most half the peak: one trim, and the peak starts again.
        assert_eq!(due.look(400, 0), Some(Why::ConnectionsClosed));
        assert_eq!(due.look(400, 0), None);
        // A steady load never trims, however long.
        for _ in 0..100 {
            assert_eq!(due.look(400, 0), None);
        }
        // Two tables freed between looks: one trim, then none until another is freed.
        assert_eq!(due.look(400, 2), Some(Why::TableFreed));
        assert_eq!(due.look(400, 2), None);
        assert_eq!(due.look(400, 3), Some(Why::TableFreed));
        // A wave after a reload's trim is measured from that trim's count.
        assert_eq!(due.look(2000, 3), None);
        assert_eq!(due.look(900, 3), Some(Why::ConnectionsClosed));
    }
}
