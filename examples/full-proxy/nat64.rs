//! The NAT64 gateway as the program runs it: started from `[nat64]`, its warnings logged, its
//! counters rendered for Prometheus, its settings replaced on SIGHUP.

use core::fmt::Write as _;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use sixgate::gateway::{Direction, Gateway, Io, Observer, Offloads, QueueStats, Warning};

use crate::config::Nat64;

/// Turns the gateway's warnings (already rate-limited) into log lines.
struct Logged;

impl Observer for Logged {
    fn warning(&self, w: &Warning) {
        match w {
            Warning::IoUringRefused { queue, error } => tracing::warn!(
                queue,
                "nat64: io_uring refused ({error}): this queue reads and writes one packet per system call"
            ),
            Warning::ReadFailed {
                queue,
                error,
                suppressed,
            } => tracing::warn!(
                queue,
                suppressed,
                "nat64: reading the device failed: {error}"
            ),
            Warning::WriteFailed {
                queue,
                error,
                suppressed,
            } => tracing::warn!(
                queue,
                suppressed,
                "nat64: writing to the device failed, packet lost: {error}"
            ),
            Warning::QueueStopped { queue, error } => tracing::error!(
                queue,
                "nat64: the device went away ({error}): this queue has stopped; restart to recreate it"
            ),
            other => tracing::warn!("nat64: {other:?}"),
        }
    }
}

/// Opens the device and starts the workers, with one log line saying what runs.
pub fn start(n: &Nat64) -> Result<Gateway, String> {
    let g = Gateway::start(&n.tun, n.queues, n.settings.clone(), Arc::new(Logged))
        .map_err(|e| format!("nat64: {e}"))?;
    let io = if g.io().iter().all(|io| *io == Io::Uring) {
        "io_uring"
    } else {
        "poll"
    };
    let offloads = match g.offloads() {
        Offloads::TcpSegmentation => "tso+csum",
        Offloads::Checksum => "csum",
        _ => "none",
    };
    let pool6 = n
        .settings
        .pool6
        .map_or_else(|| "none (EAM only)".to_string(), |p| p.prefix().to_string());
    tracing::info!(
        device = g.device(),
        prefix = %pool6,
        eam = n.settings.eam.len(),
        queues = g.queues(),
        io,
        offloads,
        "nat64 gateway running"
    );
    Ok(g)
}

/// Applies a reloaded `[nat64]` (or its absence) to what runs: new settings in place, the
/// gateway started or stopped. The device's name and queue count are read only at start.
pub fn reload(running: &ArcSwapOption<Gateway>, new: Option<&Nat64>) -> Result<(), String> {
    let current = running.load_full();
    match (current, new) {
        (Some(g), Some(n)) => {
            if n.tun != g.device() {
                tracing::warn!(
                    "nat64.tun changed: it takes effect at the next start, not on reload"
                );
            }
            if n.queues != 0 && n.queues != g.queues() {
                tracing::warn!(
                    "nat64.queues changed: it takes effect at the next start, not on reload"
                );
            }
            g.reload(n.settings.clone())
                .map_err(|e| format!("nat64: {e}"))
        }
        (None, Some(n)) => {
            running.store(Some(Arc::new(start(n)?)));
            Ok(())
        }
        (Some(_), None) => {
            running.store(None);
            tracing::info!("nat64 gateway stopped: the file has no [nat64] section any more");
            Ok(())
        }
        (None, None) => Ok(()),
    }
}

/// A counter family with one series per queue: name, help, and the value of one queue.
type PerQueue = (&'static str, &'static str, fn(&QueueStats) -> u64);

/// The gateway's counters in the Prometheus text format, per queue.
pub fn render(g: &Gateway, out: &mut String) {
    let mut family = |name: &str, help: &str, rows: &mut dyn Iterator<Item = (String, u64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (labels, value) in rows {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    };
    let queues = || g.stats().iter().enumerate();
    let by_direction = |f: fn(&QueueStats, Direction) -> u64| {
        queues().flat_map(move |(q, s)| {
            Direction::ALL.into_iter().map(move |d| {
                (
                    format!("queue=\"{q}\",direction=\"{}\"", d.as_str()),
                    f(s, d),
                )
            })
        })
    };
    family(
        "sixgate_nat64_packets_total",
        "Packets translated and written, by queue and the direction they were read in.",
        &mut by_direction(|s, d| s.packets(d)),
    );
    family(
        "sixgate_nat64_bytes_total",
        "Bytes of the packets translated, as read.",
        &mut by_direction(|s, d| s.bytes(d)),
    );
    family(
        "sixgate_nat64_icmp_errors_total",
        "ICMP errors the gateway generated, by the direction of the packet they answer.",
        &mut by_direction(|s, d| s.icmp_errors(d)),
    );
    family(
        "sixgate_nat64_drops_total",
        "Packets dropped, by reason (those answered with an ICMP error included).",
        &mut queues().flat_map(|(q, s)| {
            s.drops()
                .map(move |(reason, n)| (format!("queue=\"{q}\",reason=\"{reason}\""), n))
        }),
    );
    let per_queue: [PerQueue; 5] = [
        (
            "sixgate_nat64_echo_replies_total",
            "Echo requests to the gateway's own addresses answered.",
            QueueStats::echo_replies,
        ),
        (
            "sixgate_nat64_hairpinned_total",
            "IPv6 packets sent back to IPv6 (RFC 7757 hairpinning).",
            QueueStats::hairpinned,
        ),
        (
            "sixgate_nat64_icmp_errors_limited_total",
            "ICMP errors not sent: over the rate limit (1000/s per queue, bursts of 50).",
            QueueStats::icmp_limited,
        ),
        (
            "sixgate_nat64_write_errors_total",
            "Writes to the device the kernel refused (packets lost).",
            QueueStats::write_errors,
        ),
        (
            "sixgate_nat64_read_errors_total",
            "Reads from the device that failed.",
            QueueStats::read_errors,
        ),
    ];
    for (name, help, value) in per_queue {
        family(
            name,
            help,
            &mut queues().map(|(q, s)| (format!("queue=\"{q}\""), value(s))),
        );
    }
}
