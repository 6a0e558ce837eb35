//! The NAT64 gateway as the program runs it: started from `[nat64]`, its warnings and mapping
//! log logged, its counters rendered for Prometheus, its settings replaced on SIGHUP, and the
//! abuse desk's question "who had this address and port?" answered from the file.

use core::fmt::Write as _;
use core::net::SocketAddrV4;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use sixgate::gateway::{
    Direction, Gateway, Io, Observer, Offloads, QueueStats, SessionTable, Warning,
};
use sixgate::nat64_xlat::stateful::{Block, Layout, MappingEvent, StatefulConfig};

use crate::config::{Nat64, format_duration};

/// Turns the gateway's warnings (already rate-limited) and its mapping log into log lines.
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

    fn mapping(&self, event: &MappingEvent, block: &Block) {
        tracing::info!("{}", mapping_line(event, block));
    }
}

/// One line of the mapping log (`log_mappings`): a block's first binding or its last going, with
/// everything an abuse desk needs; `at` counts seconds from the gateway's start (the log line's
/// own timestamp is the wall clock, at most a second later).
pub fn mapping_line(event: &MappingEvent, block: &Block) -> String {
    let what = match event {
        MappingEvent::Used { .. } => "used",
        MappingEvent::Freed { .. } => "freed",
        _ => "changed",
    };
    let at = event.at();
    format!(
        "nat64 mapping {what} block={} prefix={} addr={} ports={}-{} at={}s",
        block.index,
        block.prefix,
        block.addr,
        block.ports.start(),
        block.ports.end(),
        at.as_secs()
    )
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
    match (&n.settings.stateful, g.sessions()) {
        (Some(cfg), Some(table)) => {
            let layout = &cfg.layout;
            tracing::info!(
                device = g.device(),
                mode = "stateful",
                prefix = %pool6,
                pool4 = %list(layout.pool4()),
                customers = %list(layout.customers()),
                blocks_used = layout.blocks(),
                blocks_available = blocks_available(layout),
                ports_per_block = layout.ports_per_block(),
                capacity = table.capacity,
                memory = %format!("{:.1} MiB", table.memory as f64 / f64::from(1 << 20)),
                queues = g.queues(),
                io,
                offloads,
                "nat64 gateway running"
            );
            short_timeouts(cfg);
        }
        _ => tracing::info!(
            device = g.device(),
            mode = "stateless",
            prefix = %pool6,
            eam = n.settings.eam.len(),
            queues = g.queues(),
            io,
            offloads,
            "nat64 gateway running"
        ),
    }
    Ok(g)
}

/// Timeouts below RFC 6146's minimums run only with `allow_short_timeouts`: say so at start.
fn short_timeouts(cfg: &StatefulConfig) {
    if let Err(e) = cfg.timeouts.check() {
        tracing::warn!(
            "nat64: {}_timeout {} is below RFC 6146's minimum of {} (allow_short_timeouts): for test rigs only",
            e.name,
            format_duration(e.got),
            format_duration(e.min)
        );
    }
}

fn list<T: core::fmt::Display>(items: &[T]) -> String {
    let items: Vec<String> = items.iter().map(T::to_string).collect();
    items.join(",")
}

/// Blocks the pool holds: pool4 addresses × blocks per address.
fn blocks_available(layout: &Layout) -> u64 {
    let addresses: u64 = layout.pool4().iter().map(|p| u64::from(p.size())).sum();
    addresses * u64::from(layout.blocks_per_address())
}

/// `--nat64-lookup`: the customer sub-prefix that owned `at` under `layout` (at any time: the
/// blocks are a function of the layout alone). `Err` says why no block owns it.
pub fn lookup(layout: &Layout, at: SocketAddrV4) -> Result<String, String> {
    let (addr, port) = (*at.ip(), at.port());
    if let Some(b) = layout.owner(addr, port) {
        return Ok(format!(
            "{at} -> {} (block {}, ports {}-{})",
            b.prefix,
            b.index,
            b.ports.start(),
            b.ports.end()
        ));
    }
    let ports = layout.ports();
    let (lo, hi) = (*ports.start(), *ports.end());
    let per_block = u32::from(layout.ports_per_block());
    let per_addr = layout.blocks_per_address();
    // The address's number in pool4, as the layout counts them.
    let mut k = 0u64;
    let mut number = None;
    for p in layout.pool4() {
        if p.contains(addr) {
            number = Some(k + u64::from(addr.to_bits() - p.addr().to_bits()));
            break;
        }
        k += u64::from(p.size());
    }
    let why = match number {
        None => format!("{addr} is not in pool4 ({})", list(layout.pool4())),
        Some(_) if !ports.contains(&port) => format!("port {port} is outside the ports {lo}-{hi}"),
        Some(_) if u32::from(port - lo) / per_block >= per_addr => {
            let unused = u32::from(lo) + per_addr * per_block;
            format!("port {port} is past the last whole block: ports {unused}-{hi} are not used")
        }
        Some(k) => {
            let n = k * u64::from(per_addr) + u64::from(port - lo) / u64::from(per_block);
            format!(
                "block {n} is not assigned: the customers hold {} sub-prefixes (blocks 0-{})",
                layout.blocks(),
                layout.blocks() - 1
            )
        }
    };
    Err(format!("{at} -> no block: {why}"))
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
    if let Some(table) = g.sessions() {
        render_sessions(&table, out);
    }
}

/// The stateful session table's gauges and counters (stateful mode only).
fn render_sessions(table: &SessionTable, out: &mut String) {
    let s = &table.stats;
    let _ = writeln!(
        out,
        "# HELP sixgate_nat64_sessions Live stateful NAT64 sessions, by protocol.\n# TYPE sixgate_nat64_sessions gauge"
    );
    for (proto, n) in ["tcp", "udp", "icmp"].iter().zip(s.sessions) {
        let _ = writeln!(out, "sixgate_nat64_sessions{{proto=\"{proto}\"}} {n}");
    }
    let one: [(&str, &str, &str, u64); 6] = [
        (
            "sixgate_nat64_bindings",
            "gauge",
            "Live bindings (BIB entries): IPv6 address and port to pool4 address and port.",
            u64::from(s.bindings),
        ),
        (
            "sixgate_nat64_sessions_opened_total",
            "counter",
            "Stateful NAT64 sessions opened.",
            s.opened,
        ),
        (
            "sixgate_nat64_sessions_expired_total",
            "counter",
            "Stateful NAT64 sessions expired.",
            s.expired,
        ),
        (
            "sixgate_nat64_held_syns",
            "gauge",
            "Unsolicited inbound TCP SYNs held now, waiting for the IPv6 side's own SYN.",
            u64::from(s.held_syns),
        ),
        (
            "sixgate_nat64_session_capacity",
            "gauge",
            "Sessions the table holds at most (session_capacity).",
            u64::from(table.capacity),
        ),
        (
            "sixgate_nat64_mapping_events_lost_total",
            "counter",
            "Mapping log events lost because the queue was full (log_mappings).",
            s.events_lost,
        ),
    ];
    for (name, kind, help, value) in one {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
}

#[cfg(test)]
mod tests {
    use core::time::Duration;
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixDatagram;
    use std::time::Instant;

    use sixgate::nat64_xlat::checksum;

    use super::*;
    use crate::config;

    /// 256 blocks: the /64s of a /56, 32 of 2016 ports on each of 8 addresses.
    const STATEFUL: &str = r#"
[nat64]
tun = "nat64"
mode = "stateful"
pool6 = "64:ff9b::/96"
own_v6 = "2001:db8:64::1"
pool4 = ["203.0.113.16/29"]
customers = ["2001:db8:6::/56"]
"#;

    fn nat64(text: &str) -> Nat64 {
        match config::parse(text) {
            Ok(c) => c.nat64.unwrap(),
            Err(e) => panic!("{e:#?}"),
        }
    }

    fn layout(text: &str) -> Layout {
        nat64(text).settings.stateful.unwrap().layout
    }

    #[test]
    fn lookup_names_the_owner_or_says_why_there_is_none() {
        let l = layout(STATEFUL);
        let ask = |at: &str| lookup(&l, at.parse().unwrap());
        assert_eq!(
            ask("203.0.113.16:3040"),
            Ok("203.0.113.16:3040 -> 2001:db8:6:1::/64 (block 1, ports 3040-5055)".into())
        );
        assert_eq!(
            ask("203.0.113.16:5055").unwrap(),
            "203.0.113.16:5055 -> 2001:db8:6:1::/64 (block 1, ports 3040-5055)"
        );
        assert_eq!(
            ask("203.0.113.23:65535").unwrap(),
            "203.0.113.23:65535 -> 2001:db8:6:ff::/64 (block 255, ports 63520-65535)"
        );
        assert_eq!(
            ask("203.0.113.16:80"),
            Err("203.0.113.16:80 -> no block: port 80 is outside the ports 1024-65535".into())
        );
        assert_eq!(
            ask("203.0.113.24:3040"),
            Err(
                "203.0.113.24:3040 -> no block: 203.0.113.24 is not in pool4 (203.0.113.16/29)"
                    .into()
            )
        );
        // Half the customers: the upper addresses' blocks are nobody's. A shorter range: the
        // ports past the last whole block are nobody's.
        let l = layout(
            &STATEFUL
                .replace("/56", "/57")
                .replace("customers", "ports = \"1024-65000\"\ncustomers"),
        );
        let ask = |at: &str| lookup(&l, at.parse().unwrap());
        assert_eq!(
            ask("203.0.113.21:5000"),
            Err("203.0.113.21:5000 -> no block: block 156 is not assigned: the customers hold 128 sub-prefixes (blocks 0-127)".into())
        );
        assert_eq!(
            ask("203.0.113.16:64000"),
            Err("203.0.113.16:64000 -> no block: port 64000 is past the last whole block: ports 63520-65000 are not used".into())
        );
        assert!(ask("203.0.113.16:63519").is_ok());
    }

    #[test]
    fn a_mapping_log_line() {
        let l = layout(STATEFUL);
        let block = l.block(1).unwrap();
        let used = MappingEvent::Used {
            block: 1,
            at: Duration::from_millis(12_700),
        };
        assert_eq!(
            mapping_line(&used, &block),
            "nat64 mapping used block=1 prefix=2001:db8:6:1::/64 addr=203.0.113.16 ports=3040-5055 at=12s"
        );
        let freed = MappingEvent::Freed {
            block: 1,
            at: Duration::from_secs(400),
        };
        assert!(mapping_line(&freed, &block).starts_with("nat64 mapping freed block=1 "));
    }

    /// A gateway on one fake queue (a datagram socket pair: one packet per read and write, as
    /// a TUN queue), and the test's end of it.
    fn gateway(n: &Nat64) -> (Gateway, UnixDatagram) {
        let (ours, theirs) = UnixDatagram::pair().unwrap();
        let g = Gateway::on_descriptors(
            vec![OwnedFd::from(ours)],
            n.settings.clone(),
            Arc::new(Logged),
            true,
        )
        .unwrap();
        (g, theirs)
    }

    /// A UDP datagram from a customer's host to 8.8.8.8 port 53, behind an empty offload header.
    fn udp_from_customer() -> Vec<u8> {
        let src: core::net::Ipv6Addr = "2001:db8:6:1::5".parse().unwrap();
        let dst: core::net::Ipv6Addr = "64:ff9b::808:808".parse().unwrap();
        let mut udp = vec![0x9c, 0x40, 0, 53, 0, 12, 0, 0];
        udp.extend_from_slice(b"ping");
        let sum = checksum::add(checksum::pseudo6(src, dst, 17, 12), checksum::sum(&udp));
        udp[6..8].copy_from_slice(&checksum::udp(checksum::finish(sum)).to_be_bytes());
        let mut p = vec![0u8; 10];
        p.extend_from_slice(&[0x60, 0, 0, 0, 0, 12, 17, 64]);
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        p.extend_from_slice(&udp);
        p
    }

    #[test]
    fn the_session_table_is_rendered_in_stateful_mode_only() {
        let (g, peer) = gateway(&nat64(STATEFUL));
        peer.send(&udp_from_customer()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while g.sessions().unwrap().stats.sessions[1] == 0 {
            assert!(Instant::now() < deadline, "no session: {:?}", g.stats()[0]);
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut out = String::new();
        render(&g, &mut out);
        for line in [
            "# TYPE sixgate_nat64_sessions gauge",
            "sixgate_nat64_sessions{proto=\"tcp\"} 0",
            "sixgate_nat64_sessions{proto=\"udp\"} 1",
            "sixgate_nat64_sessions{proto=\"icmp\"} 0",
            "sixgate_nat64_bindings 1",
            "# TYPE sixgate_nat64_sessions_opened_total counter",
            "sixgate_nat64_sessions_opened_total 1",
            "sixgate_nat64_sessions_expired_total 0",
            "sixgate_nat64_held_syns 0",
            &format!(
                "sixgate_nat64_session_capacity {}",
                g.sessions().unwrap().capacity
            ),
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing:\n{out}");
        }
        // The translated datagram left from block 1's address and ports.
        let mut buf = [0u8; 2048];
        let n = peer.recv(&mut buf).unwrap();
        let v4 = &buf[10..n];
        assert_eq!(&v4[12..16], &[203, 0, 113, 16]);
        assert!((3040..=5055).contains(&u16::from_be_bytes([v4[20], v4[21]])));

        let stateless = nat64(&STATEFUL.replace("mode = \"stateful\"\n", "").replace(
            "pool4 = [\"203.0.113.16/29\"]\ncustomers = [\"2001:db8:6::/56\"]\n",
            "",
        ));
        let (g, _peer) = gateway(&stateless);
        let mut out = String::new();
        render(&g, &mut out);
        assert!(out.contains("sixgate_nat64_packets_total"), "{out}");
        for family in [
            "sixgate_nat64_sessions",
            "sixgate_nat64_bindings",
            "sixgate_nat64_held_syns",
            "sixgate_nat64_session_capacity",
        ] {
            assert!(!out.contains(family), "{family} in stateless mode:\n{out}");
        }
    }

    // What a running stateful gateway cannot take is refused whole, with the gateway's reason,
    // and the running settings stay; what it can take applies.
    #[test]
    fn a_reload_that_would_remap_sessions_is_refused_and_changes_nothing() {
        let first = nat64(STATEFUL);
        let (g, _peer) = gateway(&first);
        let running = ArcSwapOption::from_pointee(g);
        let settings = || running.load_full().unwrap().settings();
        for (change, why) in [
            (STATEFUL.replace("/29", "/28"), "restart"),
            (format!("{STATEFUL}session_capacity = 4096\n"), "capacity"),
            (
                STATEFUL.replace("mode = \"stateful\"\n", "").replace(
                    "pool4 = [\"203.0.113.16/29\"]\ncustomers = [\"2001:db8:6::/56\"]\n",
                    "",
                ),
                "mode",
            ),
        ] {
            let e = reload(&running, Some(&nat64(&change))).unwrap_err();
            assert!(e.starts_with("nat64: ") && e.contains(why), "{e}");
            assert_eq!(*settings(), first.settings, "{e}");
        }
        let longer = nat64(&format!(
            "{STATEFUL}udp_timeout = \"10m\"\nrefuse_ports = [25]\n"
        ));
        reload(&running, Some(&longer)).unwrap();
        assert_eq!(*settings(), longer.settings);
        let cfg = settings().stateful.clone().unwrap();
        assert_eq!(cfg.timeouts.udp, Duration::from_secs(600));
        assert_eq!(cfg.limits.refuse_ports, [25]);
    }
}
