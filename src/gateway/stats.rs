//! Per-queue counters. A worker counts into plain integers and publishes them once per loop turn,
//! so a packet costs no atomic operation.

use core::sync::atomic::{AtomicU64, Ordering};

use nat64_xlat::DropReason;

/// Which way a packet crossed the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Read as IPv6, written as IPv4.
    SixToFour,
    /// Read as IPv4, written as IPv6.
    FourToSix,
}

impl Direction {
    /// Both, in label order.
    pub const ALL: [Direction; 2] = [Direction::SixToFour, Direction::FourToSix];

    /// `6to4` or `4to6`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::SixToFour => "6to4",
            Direction::FourToSix => "4to6",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// Why the gateway dropped a packet: the translator's reason, or one of the gateway's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PacketDrop {
    /// The translator refused it (and, where RFC 7915 says so, answered with an ICMP error,
    /// counted apart).
    Translator(DropReason),
    /// Neither IPv4 nor IPv6 (or shorter than its offload header).
    NotIp,
    /// The kernel's offload header asked for something we never negotiated or pointed outside
    /// the packet.
    Offload,
    /// Addressed to the gateway's own address but not an echo request it answers.
    ToGateway,
}

/// Every translator reason, in label order. `DropReason` may grow: a reason newer than this
/// build's nat64-xlat is counted as `other`.
const REASONS: [DropReason; DropReason::ALL.len()] = DropReason::ALL;
const GATEWAY_DROPS: [(PacketDrop, &str); 3] = [
    (PacketDrop::NotIp, "not-ip"),
    (PacketDrop::Offload, "offload-header"),
    (PacketDrop::ToGateway, "to-gateway"),
];
/// Slots: the translator's reasons, the gateway's, and `other`.
const DROP_SLOTS: usize = REASONS.len() + GATEWAY_DROPS.len() + 1;

impl PacketDrop {
    /// The `reason` label: the translator's kebab-case name, or the gateway's own.
    pub fn as_str(self) -> &'static str {
        match self {
            PacketDrop::Translator(r) => r.as_str(),
            other => GATEWAY_DROPS
                .iter()
                .find(|(d, _)| *d == other)
                .map_or("other", |(_, name)| name),
        }
    }

    pub(crate) fn slot(self) -> usize {
        let slot = match self {
            PacketDrop::Translator(r) => REASONS.iter().position(|&x| x == r),
            other => GATEWAY_DROPS
                .iter()
                .position(|(d, _)| *d == other)
                .map(|i| REASONS.len() + i),
        };
        slot.unwrap_or(DROP_SLOTS - 1)
    }

    fn from_slot(slot: usize) -> &'static str {
        match slot {
            s if s < REASONS.len() => REASONS[s].as_str(),
            s if s < REASONS.len() + GATEWAY_DROPS.len() => GATEWAY_DROPS[s - REASONS.len()].1,
            _ => "other",
        }
    }
}

/// A worker's counts since it last published them.
#[derive(Debug)]
pub(crate) struct Counts {
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    pub icmp_errors: [u64; 2],
    pub hairpinned: u64,
    pub echo_replies: u64,
    pub drops: [u64; DROP_SLOTS],
    pub write_errors: u64,
    pub read_errors: u64,
    /// ICMP errors not sent: over the rate limit.
    pub icmp_limited: u64,
}

// By hand: arrays past 32 elements have no derived Default.
impl Default for Counts {
    fn default() -> Self {
        Counts {
            packets: [0; 2],
            bytes: [0; 2],
            icmp_errors: [0; 2],
            hairpinned: 0,
            echo_replies: 0,
            drops: [0; DROP_SLOTS],
            write_errors: 0,
            read_errors: 0,
            icmp_limited: 0,
        }
    }
}

impl Counts {
    pub(crate) fn packet(&mut self, d: Direction, bytes: usize) {
        self.packets[d.index()] += 1;
        self.bytes[d.index()] += bytes as u64;
    }

    pub(crate) fn icmp_error(&mut self, d: Direction) {
        self.icmp_errors[d.index()] += 1;
    }

    pub(crate) fn drop(&mut self, why: PacketDrop) {
        self.drops[why.slot()] += 1;
    }
}

/// One queue's counters, read by the metrics endpoint at any time.
#[derive(Debug)]
pub struct QueueStats {
    packets: [AtomicU64; 2],
    bytes: [AtomicU64; 2],
    icmp_errors: [AtomicU64; 2],
    hairpinned: AtomicU64,
    echo_replies: AtomicU64,
    drops: [AtomicU64; DROP_SLOTS],
    write_errors: AtomicU64,
    read_errors: AtomicU64,
    icmp_limited: AtomicU64,
}

impl Default for QueueStats {
    fn default() -> Self {
        QueueStats {
            packets: Default::default(),
            bytes: Default::default(),
            icmp_errors: Default::default(),
            hairpinned: Default::default(),
            echo_replies: Default::default(),
            drops: core::array::from_fn(|_| AtomicU64::new(0)),
            write_errors: Default::default(),
            read_errors: Default::default(),
            icmp_limited: Default::default(),
        }
    }
}

impl QueueStats {
    /// Packets translated and written, by the direction they were read in (an IPv4 datagram cut
    /// into IPv6 fragments counts once; a TCP super-packet translated whole counts once, one cut
    /// into segments counts each).
    pub fn packets(&self, d: Direction) -> u64 {
        self.packets[d.index()].load(Ordering::Relaxed)
    }

    /// Bytes of those packets as read.
    pub fn bytes(&self, d: Direction) -> u64 {
        self.bytes[d.index()].load(Ordering::Relaxed)
    }

    /// ICMP errors the gateway generated for packets read in direction `d` (Time Exceeded, Packet
    /// Too Big, …): sent back on the side the packet came from.
    pub fn icmp_errors(&self, d: Direction) -> u64 {
        self.icmp_errors[d.index()].load(Ordering::Relaxed)
    }

    /// IPv6 packets sent back to IPv6 (RFC 7757 §4.2.2 hairpinning).
    pub fn hairpinned(&self) -> u64 {
        self.hairpinned.load(Ordering::Relaxed)
    }

    /// Echo requests to the gateway's own addresses it answered.
    pub fn echo_replies(&self) -> u64 {
        self.echo_replies.load(Ordering::Relaxed)
    }

    /// Writes to the device the kernel refused (device down, queue full, …).
    pub fn write_errors(&self) -> u64 {
        self.write_errors.load(Ordering::Relaxed)
    }

    /// ICMP errors the rate limit held back (1000 a second per queue, bursts of 50).
    pub fn icmp_limited(&self) -> u64 {
        self.icmp_limited.load(Ordering::Relaxed)
    }

    /// Reads from the device that failed.
    pub fn read_errors(&self) -> u64 {
        self.read_errors.load(Ordering::Relaxed)
    }

    /// Drops, by reason label, the ones never seen included (with 0), so every series exists
    /// from the start.
    pub fn drops(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.drops
            .iter()
            .enumerate()
            .map(|(i, c)| (PacketDrop::from_slot(i), c.load(Ordering::Relaxed)))
    }

    /// Adds a worker's counts and zeroes them. Each queue has one writer, so a load and a store
    /// would do; `fetch_add` keeps a second writer (a test) honest at no cost per packet.
    pub(crate) fn publish(&self, c: &mut Counts) {
        let add = |a: &AtomicU64, v: &mut u64| {
            if *v != 0 {
                a.fetch_add(*v, Ordering::Relaxed);
                *v = 0;
            }
        };
        for i in 0..2 {
            add(&self.packets[i], &mut c.packets[i]);
            add(&self.bytes[i], &mut c.bytes[i]);
            add(&self.icmp_errors[i], &mut c.icmp_errors[i]);
        }
        add(&self.hairpinned, &mut c.hairpinned);
        add(&self.echo_replies, &mut c.echo_replies);
        for (a, v) in self.drops.iter().zip(c.drops.iter_mut()) {
            add(a, v);
        }
        add(&self.write_errors, &mut c.write_errors);
        add(&self.read_errors, &mut c.read_errors);
        add(&self.icmp_limited, &mut c.icmp_limited);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_drop_has_its_own_label() {
        let mut names: Vec<&str> = (0..DROP_SLOTS).map(PacketDrop::from_slot).collect();
        assert_eq!(names[5], "expired");
        assert_eq!(names[DROP_SLOTS - 1], "other");
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DROP_SLOTS);
        for d in [
            PacketDrop::NotIp,
            PacketDrop::Offload,
            PacketDrop::ToGateway,
        ] {
            assert_eq!(PacketDrop::from_slot(d.slot()), d.as_str());
        }
        let r = PacketDrop::Translator(DropReason::TooBig);
        assert_eq!(PacketDrop::from_slot(r.slot()), "too-big");
    }

    #[test]
    fn publish_moves_counts_once() {
        let s = QueueStats::default();
        let mut c = Counts::default();
        c.packet(Direction::FourToSix, 100);
        c.drop(PacketDrop::Translator(DropReason::Expired));
        s.publish(&mut c);
        s.publish(&mut c);
        assert_eq!(s.packets(Direction::FourToSix), 1);
        assert_eq!(s.bytes(Direction::FourToSix), 100);
        assert_eq!(s.packets(Direction::SixToFour), 0);
        assert_eq!(
            s.drops().find(|(n, _)| *n == "expired"),
            Some(("expired", 1))
        );
    }
}
