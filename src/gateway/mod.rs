//! The NAT64 gateway: [`nat64_xlat`] on a TUN device, the translator an operator puts between
//! IPv6-only servers and the IPv4 internet instead of TAYGA or Jool.
//!
//! ```text
//!   IPv6 servers ──▶ kernel routes 64:ff9b::/96 ──▶ TUN queue 0 ─┐    ┌─▶ worker 0 ─┐
//!                                                  TUN queue 1 ─┼────┼─▶ worker 1 ─┼─ translated
//!   IPv4 internet ◀── kernel routes 192.0.2.0/24 ◀─ … ──────────┘    └─▶ …  ───────┘  packets back
//! ```
//!
//! The gateway owns the device (created if missing, `IFF_MULTI_QUEUE`, MTU set, brought up) and
//! one worker thread per queue. Each worker reads packets through io_uring in batches, translates
//! them in place (no allocation, the payload never copied), answers ICMP echo to the gateway's
//! own addresses, and writes the results back through the same queue. The kernel hands over TCP
//! super-packets (TSO) and partial checksums, and takes them back: a 64 KiB TCP burst is
//! translated once. The routes into the device are the operator's.
//!
//! ```no_run
//! use std::sync::Arc;
//! use sixgate::gateway::{Gateway, Quiet, Settings};
//! use sixgate::nat64_xlat::Pool6;
//!
//! let mut settings = Settings::new(Some(Pool6::new("64:ff9b::/96".parse()?)?));
//! settings.own_v4 = Some("192.0.2.1".parse()?);
//! settings.own_v6 = Some("2001:db8:64::1".parse()?);
//! let gateway = Gateway::start("nat64", 0, settings, Arc::new(Quiet))?;
//! println!("{} queues on {}", gateway.queues(), gateway.device());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! With [`Settings::stateful`] it is a stateful NAT64 (RFC 6146): the IPv6 hosts of the
//! customer prefixes share the pool4 addresses by port, in deterministic blocks (RFC 7422) so an
//! address and port name a customer without a log. The queues share one session table; a thread
//! expires sessions once a second. It does no routing and no address assignment.

mod device;
mod echo;
mod expiry;
mod packet;
mod settings;
mod stats;
mod vnet;
mod worker;

use core::fmt;
use core::hash::{BuildHasher, Hasher};
use core::sync::atomic::Ordering;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use arc_swap::ArcSwap;
use nat64_xlat::stateful::{Block, MappingEvent, Nat64, ReconfigureError};

pub use device::Offloads;
pub use settings::Settings;
pub use stats::{Direction, PacketDrop, QueueStats};

/// Why the gateway could not start or apply settings.
#[derive(Debug)]
#[non_exhaustive]
pub enum GatewayError {
    /// The TUN device: missing `/dev/net/tun`, no permission, a name used by another kind of
    /// device, refused settings. The message names the cause.
    Device(String),
    /// A worker thread could not be started.
    Thread(io::Error),
    /// Stateful settings the running gateway cannot take: explicit address mappings (a stateful
    /// NAT64 has none), or a reload that would change the block layout, the capacity or the mode
    /// under live sessions. The message says which; the running settings stay.
    Stateful(String),
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GatewayError::Device(m) => f.write_str(m),
            GatewayError::Thread(e) => write!(f, "cannot start a gateway worker: {e}"),
            GatewayError::Stateful(m) => f.write_str(m),
        }
    }
}

impl core::error::Error for GatewayError {}

/// Something a running gateway tells its operator, at most once per kind and queue every ten
/// seconds (`suppressed` counts the ones held back since the last).
#[derive(Debug)]
#[non_exhaustive]
pub enum Warning {
    /// The kernel refused io_uring; this queue reads and writes one packet per system call.
    IoUringRefused {
        /// The queue.
        queue: usize,
        /// What the kernel said.
        error: io::Error,
    },
    /// A read from the device failed.
    ReadFailed {
        /// The queue.
        queue: usize,
        /// What the kernel said.
        error: io::Error,
        /// Failures since the last warning.
        suppressed: u64,
    },
    /// The queue's device went away (deleted, or the queue detached): its worker has stopped.
    QueueStopped {
        /// The queue.
        queue: usize,
        /// What the kernel said.
        error: io::Error,
    },
    /// A write to the device failed: the packet is lost (device down, queue full, a packet the
    /// kernel refused).
    WriteFailed {
        /// The queue.
        queue: usize,
        /// What the kernel said.
        error: io::Error,
        /// Failures since the last warning.
        suppressed: u64,
    },
}

/// Receives the gateway's warnings (a program turns them into log lines). Nothing per packet
/// comes here: packets are counted in [`QueueStats`].
pub trait Observer: Send + Sync + 'static {
    /// A warning, from a worker thread.
    fn warning(&self, w: &Warning);

    /// Stateful mode with `log_mappings`: a block was first used or freed (RFC 6888 REQ-12
    /// style, one line per block rather than per session). From the expiry thread, within a
    /// second of the event.
    fn mapping(&self, _event: &MappingEvent, _block: &Block) {}
}

/// Says nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Quiet;

impl Observer for Quiet {
    fn warning(&self, _: &Warning) {}
}

/// How a queue's worker moves packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Io {
    /// io_uring: many reads and writes per system call.
    Uring,
    /// poll(2), then one read or write per packet; `uring_error` says why io_uring was not used.
    Poll {
        /// The kernel's answer to io_uring, when it refused.
        uring_error: Option<String>,
    },
}

/// A running gateway. Dropping it stops the workers (as [`Gateway::stop`] does); a device the
/// gateway created goes away with its last queue.
#[derive(Debug)]
pub struct Gateway {
    shared: Arc<worker::Shared>,
    workers: Vec<JoinHandle<()>>,
    expiry: Option<JoinHandle<()>>,
    io: Vec<Io>,
    device: String,
    offloads: Offloads,
}

impl Gateway {
    /// Opens (or creates) the TUN device `name` with `queues` queues (0: one per CPU), sets
    /// its MTU, brings it up, and starts one worker per queue.
    pub fn start(
        name: &str,
        queues: usize,
        settings: Settings,
        observer: Arc<dyn Observer>,
    ) -> Result<Gateway, GatewayError> {
        let queues = match queues {
            0 => device::cpus(),
            n => n,
        }
        .min(MAX_QUEUES);
        let (fds, offloads) = device::open(name, queues)?;
        device::configure(name, settings.mtu)?;
        Self::run(fds, settings, observer, false, name.to_string(), offloads)
    }

    /// Runs workers on descriptors that behave like TUN queues with `IFF_VNET_HDR` (one packet
    /// per read and write, each behind a 10-byte `virtio_net_hdr`): a `SOCK_SEQPACKET` pair in
    /// tests. `force_poll` skips io_uring.
    #[doc(hidden)]
    pub fn on_descriptors(
        fds: Vec<OwnedFd>,
        settings: Settings,
        observer: Arc<dyn Observer>,
        force_poll: bool,
    ) -> Result<Gateway, GatewayError> {
        Self::run(
            fds,
            settings,
            observer,
            force_poll,
            String::new(),
            Offloads::None,
        )
    }

    fn run(
        fds: Vec<OwnedFd>,
        settings: Settings,
        observer: Arc<dyn Observer>,
        force_poll: bool,
        device: String,
        offloads: Offloads,
    ) -> Result<Gateway, GatewayError> {
        check_stateful(&settings)?;
        let sessions = settings.stateful.clone().map(|mut cfg| {
            cfg.hash_key = random_key();
            packet::Sessions {
                table: std::sync::Mutex::new(Nat64::new(cfg)),
                epoch: std::time::Instant::now(),
            }
        });
        // The expiry thread writes ICMP errors for held SYNs through the first queue.
        let expiry_fd = match (&sessions, fds.first()) {
            (Some(_), Some(fd)) => Some(fd.try_clone().map_err(GatewayError::Thread)?),
            _ => None,
        };
        let shared = Arc::new(worker::Shared {
            settings: ArcSwap::from_pointee(settings),
            stats: (0..fds.len()).map(|_| QueueStats::default()).collect(),
            stop: Default::default(),
            observer,
            id_key: random_key(),
            sessions,
        });
        let (ready, started) = mpsc::channel();
        let mut gateway = Gateway {
            shared: Arc::clone(&shared),
            workers: Vec::new(),
            expiry: None,
            io: Vec::new(),
            device,
            offloads,
        };
        for (queue, fd) in fds.into_iter().enumerate() {
            let shared = Arc::clone(&shared);
            let ready = ready.clone();
            let worker = std::thread::Builder::new()
                .name(format!("nat64-q{queue}"))
                .spawn(move || worker::run(queue, fd, shared, force_poll, ready))
                .map_err(GatewayError::Thread)?;
            gateway.workers.push(worker);
        }
        drop(ready);
        if let Some(fd) = expiry_fd {
            let shared = Arc::clone(&shared);
            let t = std::thread::Builder::new()
                .name("nat64-expiry".to_string())
                .spawn(move || expiry::run(fd, shared))
                .map_err(GatewayError::Thread)?;
            gateway.expiry = Some(t);
        }
        let mut io: Vec<(usize, Io)> = started.iter().collect();
        io.sort_by_key(|(q, _)| *q);
        gateway.io = io.into_iter().map(|(_, io)| io).collect();
        Ok(gateway)
    }

    /// Applies new settings: each worker picks them up before its next batch (within 200 ms when
    /// idle). A new MTU is set on the device first; if the kernel refuses it, nothing changes.
    ///
    /// In stateful mode the timeouts, filtering, limits and mapping log change for the live
    /// sessions; a change of mode, block layout (pool4, ports, customers, block size) or capacity
    /// is refused with [`GatewayError::Stateful`] and nothing changes: live sessions keep their
    /// ports, so the layout an abuse desk reads stays the one that was in force. Restart the
    /// gateway to change them.
    pub fn reload(&self, settings: Settings) -> Result<(), GatewayError> {
        check_stateful(&settings)?;
        // Everything is checked before anything changes: the MTU, then the table.
        match (&self.shared.sessions, &settings.stateful) {
            (None, None) => {}
            (Some(s), Some(cfg)) => {
                if let Err(e) = s.lock().can_reconfigure(cfg) {
                    return Err(GatewayError::Stateful(match e {
                        ReconfigureError::Layout => "the new pool4, ports, customers, block_prefix_len or ports_per_block would re-map live sessions; restart the gateway to change them".to_string(),
                        _ => format!("{e}; restart the gateway to change it"),
                    }));
                }
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(GatewayError::Stateful(
                    "the mode (stateless or stateful) cannot change while the gateway runs; restart it".to_string(),
                ));
            }
        }
        if !self.device.is_empty() && settings.mtu != self.shared.settings.load().mtu {
            device::configure(&self.device, settings.mtu)?;
        }
        if let (Some(s), Some(cfg)) = (&self.shared.sessions, &settings.stateful) {
            // Checked above; nothing else changes the layout or capacity meanwhile.
            let _ = s.lock().reconfigure(cfg);
        }
        self.shared.settings.store(Arc::new(settings));
        Ok(())
    }

    /// The settings in force.
    pub fn settings(&self) -> Arc<Settings> {
        self.shared.settings.load_full()
    }

    /// The device's name.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// How many queues (and workers) run.
    pub fn queues(&self) -> usize {
        self.shared.stats.len()
    }

    /// The offloads the device agreed to.
    pub fn offloads(&self) -> Offloads {
        self.offloads
    }

    /// How each queue moves packets.
    pub fn io(&self) -> &[Io] {
        &self.io
    }

    /// Each queue's counters.
    pub fn stats(&self) -> &[QueueStats] {
        &self.shared.stats
    }

    /// In stateful mode: the session table's counters, its capacity and the bytes it took.
    pub fn sessions(&self) -> Option<SessionTable> {
        let s = self.shared.sessions.as_ref()?;
        let t = s.lock();
        Some(SessionTable {
            stats: t.stats(),
            capacity: t.capacity(),
            memory: t.memory(),
        })
    }

    /// Stops the workers and waits for them (each notices within 200 ms).
    pub fn stop(mut self) {
        self.stop_workers();
    }

    fn stop_workers(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for w in self.workers.drain(..).chain(self.expiry.take()) {
            let _ = w.join();
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

/// A look at the stateful session table ([`Gateway::sessions`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionTable {
    /// Live sessions and bindings, and counts since start.
    pub stats: nat64_xlat::stateful::Stats,
    /// Sessions the table holds at most.
    pub capacity: u32,
    /// Bytes the table took at start.
    pub memory: usize,
}

/// A stateful NAT64 has no explicit address mappings: its IPv6 hosts are mapped by session.
fn check_stateful(settings: &Settings) -> Result<(), GatewayError> {
    if settings.stateful.is_some() && !settings.eam.is_empty() {
        return Err(GatewayError::Stateful(
            "explicit address mappings (eam) cannot be combined with stateful mode".to_string(),
        ));
    }
    Ok(())
}

/// Checks a device name as the kernel will (1 to 15 bytes, no '/', ':' or whitespace), so a
/// configuration can be refused before anything starts.
pub fn check_device_name(name: &str) -> Result<(), GatewayError> {
    device::check_name(name)
}

/// More queues than the kernel allows on one TUN device.
const MAX_QUEUES: usize = 256;

/// A per-process random key for the IPv4 identification offsets (RFC 7739 §5.3), from the
/// standard library's own randomly seeded hasher: no new dependency for eight bytes.
fn random_key() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id().into());
    h.finish()
}

/// Internals the fuzz target drives: the whole per-packet step a worker runs, without a device.
#[doc(hidden)]
pub mod internal {
    use nat64_xlat::{Outcome, Translator};

    use super::Settings;
    use super::echo::{self, Own};
    use super::packet::{Local, Step, written};

    /// What the translator alone writes for `packet` (no offload header), through its copying
    /// path, with the key and counter a fresh [`process`] uses.
    pub fn reference(settings: &Settings, packet: &[u8]) -> Vec<Vec<u8>> {
        let t = Translator::new(settings.config(KEY));
        let mut out = vec![0u8; Translator::out_len(packet.len())];
        let outcome = match packet.first().map(|b| b >> 4) {
            Some(4) => t.translate_4to6(packet, &mut out),
            Some(6) => t.translate_6to4(packet, &mut out),
            _ => return Vec::new(),
        };
        match outcome {
            Outcome::Translated(e)
            | Outcome::Hairpinned(e)
            | Outcome::IcmpError { reply: e, .. } => e.packets(&out).map(<[u8]>::to_vec).collect(),
            _ => Vec::new(),
        }
    }

    /// Whether `packet` is addressed to one of the gateway's own addresses (answered or refused
    /// by the gateway itself, never translated).
    pub fn is_echo_to_gateway(settings: &Settings, packet: &[u8]) -> bool {
        let mut copy = packet.to_vec();
        let own = match packet.first().map(|b| b >> 4) {
            Some(4) => echo::answer_v4(&mut copy, settings.own_v4),
            Some(6) => echo::answer_v6(&mut copy, settings.own_v6),
            _ => Own::NotOurs,
        };
        own != Own::NotOurs
    }

    const KEY: u64 = 0x5eed;

    /// Every packet (each behind its 10-byte offload header) a worker would write back after
    /// reading `read` (offload header and packet) under `settings`.
    pub fn process(settings: &Settings, read: &[u8]) -> Vec<Vec<u8>> {
        let step = Step::new(settings, KEY, None);
        written(&step, read, &mut Local::default())
    }
}

#[cfg(test)]
mod tests {
    use core::time::Duration;
    use std::os::fd::{AsRawFd, FromRawFd};
    use std::time::Instant;

    use super::packet::tests::{
        HOST6, HOST6_AS_V4, REMOTE4, REMOTE4_AS_V6, eam, settings, tcp4, tcp6, whole,
    };
    use super::*;

    /// A queue the test holds the other end of: one packet per read and write, like TUN.
    #[allow(unsafe_code)]
    fn fake_queue() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: socketpair fills two descriptors, owned at once.
        let r = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        assert_eq!(r, 0);
        // SAFETY: both are new descriptors nobody else owns.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    fn send(fd: &OwnedFd, bytes: &[u8]) {
        let mut f = std::fs::File::from(fd.try_clone().unwrap());
        std::io::Write::write_all(&mut f, bytes).unwrap();
    }

    /// The next packet the gateway wrote, within two seconds.
    #[allow(unsafe_code)]
    fn receive(fd: &OwnedFd) -> Vec<u8> {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, 2000) };
        assert_eq!(ready, 1, "the gateway wrote nothing");
        let mut buf = vec![0u8; 70_000];
        // SAFETY: reads into `buf`.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        assert!(n > 0);
        buf.truncate(n as usize);
        buf
    }

    fn start(force_poll: bool) -> (Gateway, OwnedFd) {
        let (ours, theirs) = fake_queue();
        let g =
            Gateway::on_descriptors(vec![ours], settings(), Arc::new(Quiet), force_poll).unwrap();
        (g, theirs)
    }

    // Packets go through in the order they came, both ways, on both I/O paths: TCP must not see
    // reordering the queue did not cause.
    #[test]
    fn a_thousand_packets_in_order_both_ways() {
        for force_poll in [false, true] {
            let (g, peer) = start(force_poll);
            if force_poll {
                assert_eq!(g.io()[0], Io::Poll { uring_error: None });
            }
            // In bursts of 50, so neither socket buffer fills (a TUN write never waits; a
            // socket's does).
            for burst in 0..20u32 {
                let seqs = burst * 50..burst * 50 + 50;
                for seq in seqs.clone() {
                    if seq % 2 == 0 {
                        send(&peer, &whole(&tcp6(HOST6, REMOTE4_AS_V6, seq, b"data")));
                    } else {
                        send(&peer, &whole(&tcp4(REMOTE4, HOST6_AS_V4, seq, b"data")));
                    }
                }
                for seq in seqs {
                    let w = receive(&peer);
                    let p = &w[vnet::LEN..];
                    let l4 = if seq % 2 == 0 { 20 } else { 40 };
                    assert_eq!(p[0] >> 4, if seq % 2 == 0 { 4 } else { 6 });
                    assert_eq!(&p[l4 + 4..l4 + 8], &seq.to_be_bytes(), "out of order");
                }
            }
            let deadline = Instant::now() + Duration::from_secs(2);
            while g.stats()[0].packets(Direction::SixToFour) < 500 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            assert_eq!(g.stats()[0].packets(Direction::SixToFour), 500);
            assert_eq!(g.stats()[0].packets(Direction::FourToSix), 500);
            assert_eq!(g.stats()[0].bytes(Direction::SixToFour), 500 * 64);
            g.stop();
        }
    }

    // A packet that takes the copying path (an IPv4 packet without DF cut into IPv6 fragments)
    // does not overtake the in-place packets read before it.
    #[test]
    fn copied_results_keep_their_place_in_line() {
        let (_g, peer) = start(false);
        let no_df = |seq: u32, len: usize| {
            let mut p = tcp4(REMOTE4, HOST6_AS_V4, seq, &vec![0u8; len]);
            p[6] = 0;
            p[10..12].fill(0);
            let c = nat64_xlat::checksum::finish(nat64_xlat::checksum::sum(&p[..20]));
            p[10..12].copy_from_slice(&c.to_be_bytes());
            p
        };
        for round in 0..10u32 {
            for i in 0..8 {
                let seq = round * 8 + i;
                send(
                    &peer,
                    &whole(&no_df(seq, if i % 2 == 0 { 100 } else { 1400 })),
                );
            }
            let mut seqs = Vec::new();
            while seqs.len() < 8 {
                let w = receive(&peer);
                let p = &w[vnet::LEN..];
                // First fragments and whole packets carry the TCP header; later fragments none.
                let (next, at) = if p[6] == 44 { (p[40], 48) } else { (p[6], 40) };
                let offset = if p[6] == 44 {
                    u16::from_be_bytes([p[42], p[43]]) >> 3
                } else {
                    0
                };
                if next == 6 && offset == 0 {
                    seqs.push(u32::from_be_bytes(p[at + 4..at + 8].try_into().unwrap()));
                }
            }
            let want: Vec<u32> = (round * 8..round * 8 + 8).collect();
            assert_eq!(seqs, want);
        }
    }

    #[test]
    fn echo_to_the_gateway_and_errors_from_it() {
        let (g, peer) = start(false);
        let own6 = g.settings().own_v6.unwrap();
        let echo = super::echo::tests::echo_v6(HOST6, own6, b"");
        send(&peer, &whole(&echo));
        let reply = receive(&peer);
        assert_eq!(
            (
                reply[vnet::LEN + 40],
                &reply[vnet::LEN + 24..vnet::LEN + 40]
            ),
            (129, &HOST6.octets()[..])
        );
        // Hop limit 1: Time Exceeded from own_v6, through the copying path.
        let mut expiring = tcp6(HOST6, REMOTE4_AS_V6, 1, b"x");
        expiring[7] = 1;
        send(&peer, &whole(&expiring));
        let err = receive(&peer);
        assert_eq!(&err[vnet::LEN + 8..vnet::LEN + 24], &own6.octets());
        assert_eq!(err[vnet::LEN + 40], 3);
        let deadline = Instant::now() + Duration::from_secs(2);
        while g.stats()[0].icmp_errors(Direction::SixToFour) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(g.stats()[0].echo_replies(), 1);
        assert_eq!(g.stats()[0].icmp_errors(Direction::SixToFour), 1);
        assert_eq!(
            g.stats()[0].drops().find(|(n, _)| *n == "expired"),
            Some(("expired", 1))
        );
    }

    // A reload takes effect without restarting anything: a new EAM entry maps a new host.
    #[test]
    fn reload_adds_an_eam_entry() {
        let (g, peer) = start(false);
        let new6: core::net::Ipv6Addr = "2001:db8:6::11".parse().unwrap();
        let new4 = core::net::Ipv4Addr::new(192, 0, 2, 11);
        let mut s = settings();
        s.pool6 = None;
        send(&peer, &whole(&tcp6(new6, REMOTE4_AS_V6, 1, b"x")));
        std::thread::sleep(Duration::from_millis(50));
        s.eam.push(eam(new4, new6));
        s.pool6 = settings().pool6;
        g.reload(s).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        send(&peer, &whole(&tcp6(new6, REMOTE4_AS_V6, 2, b"x")));
        let w = receive(&peer);
        // The first packet (before the reload) is written too: 2001:db8:6::11 had no mapping
        // before, so it got an ICMPv6 error; what matters is the translated one.
        let p = if w[vnet::LEN] >> 4 == 6 {
            receive(&peer)
        } else {
            w
        };
        assert_eq!(&p[vnet::LEN + 12..vnet::LEN + 16], &new4.octets());
    }
}
