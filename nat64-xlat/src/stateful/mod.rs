//! Stateful NAT64 (RFC 6146): many IPv6-only hosts share a few IPv4 addresses by port, with the
//! ports handed out in deterministic blocks (RFC 7422) so that "IPv4 address:port at time T"
//! names a customer's IPv6 prefix without any log.
//!
//! Sans-IO like the rest of the crate: the caller passes the time (any fixed epoch) and a
//! [`Translator`] whose configuration gives pool6, the MTUs and the translator's own addresses.
//! Memory is taken once, in [`Nat64::new`]; translating allocates nothing.
//!
//! - BIB and session tables per protocol (TCP, UDP, ICMP echo with the identifier as the port),
//!   endpoint-independent mapping, endpoint-independent or address-dependent filtering;
//! - the TCP state machine of §3.5.2 with its timers, unsolicited inbound SYNs held 6 s then
//!   answered with ICMP Port Unreachable, hairpinning for TCP and UDP (§3.8);
//! - ICMP errors from either side matched to their session through the quoted packet (§3.5.3);
//! - per-block limits: sessions, new sessions per second, refused destination ports, each
//!   answered with ICMPv6 Destination Unreachable 1/1; sources outside the customers get 1/5;
//! - expiry by a wheel of one-second slots, so its cost follows the sessions that come due.
//!
//! The translation itself is the stateless [`Translator`]'s: the session's IPv6 host and pool4
//! address become a one-entry explicit address mapping for that packet, and the port is
//! rewritten here with RFC 1624 checksum updates. Fragments are not reassembled: they are
//! dropped ([`DropReason::Fragmented`]).
//!
//! ```
//! use core::time::Duration;
//! use nat64_xlat::stateful::{Layout, Nat64, StatefulConfig};
//! use nat64_xlat::{Config, Outcome, Pool6, Translator};
//!
//! let layout = Layout::new(
//!     &["203.0.113.16/29".parse()?],
//!     1024..=65535,
//!     &["2001:db8:6::/56".parse()?],
//!     64,
//!     2016,
//! )?;
//! let mut nat = Nat64::new(StatefulConfig::new(layout));
//! // A network-specific prefix: the Well-Known Prefix would refuse 192.0.2.1 (RFC 6052 §3.1).
//! let xlat = Translator::new(Config::new(Some(Pool6::new("2001:db8:64::/96".parse()?)?)));
//!
//! // A UDP datagram from 2001:db8:6:1::5 port 40000 to 192.0.2.1 port 53.
//! let mut v6 = [0u8; 48];
//! v6[..8].copy_from_slice(&[0x60, 0, 0, 0, 0, 8, 17, 64]);
//! v6[8..24].copy_from_slice(&"2001:db8:6:1::5".parse::<core::net::Ipv6Addr>()?.octets());
//! v6[24..40].copy_from_slice(&"2001:db8:64::c000:201".parse::<core::net::Ipv6Addr>()?.octets());
//! v6[40..48].copy_from_slice(&[0x9c, 0x40, 0, 53, 0, 8, 0, 0]);
//!
//! let mut out = [0u8; 4096];
//! let Outcome::Translated(e) = nat.translate_6to4(&xlat, Duration::ZERO, &v6, &mut out) else {
//!     panic!()
//! };
//! let v4 = e.packets(&out).next().unwrap();
//! // Block 1 (2001:db8:6:1::/64) owns ports 3040-5055 of 203.0.113.16.
//! assert_eq!(&v4[12..16], &[203, 0, 113, 16]);
//! let port = u16::from_be_bytes([v4[20], v4[21]]);
//! assert!((3040..=5055).contains(&port));
//! assert_eq!(nat.layout().owner("203.0.113.16".parse()?, port).unwrap().index, 1);
//! # Ok::<(), Box<dyn core::error::Error>>(())
//! ```

mod blocks;
mod config;
mod flow;
mod held;
mod layout;
mod table;
mod tcp;

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};
use core::time::Duration;

pub use config::{Filtering, INCOMING_SYN, Limits, StatefulConfig, TimeoutError, Timeouts};
pub use held::HELD_SYNS;
pub use layout::{Block, Layout, LayoutError, MAX_BLOCKS, MAX_POOL4_ADDRESSES};
pub use table::Proto;
pub use tcp::State as TcpState;

use crate::Eam;
use crate::fail::{Fail, Ip};
use crate::mapping::never_translated;
use crate::outcome::{DropReason, Emitted, InPlace, Outcome};
use crate::prefix::Ipv4Prefix;
use crate::translator::Translator;
use blocks::Blocks;
use flow::Flow;
use held::Held;
use table::{Bib, Session, Table};
use tcp::{Flags, Lifetime, Side, State};

/// Sessions one IPv4 host may open from the IPv4 side towards one binding. A binding's sessions
/// with one remote address share a hash chain (address-dependent filtering looks them up by
/// address), so without a cap a remote host could lengthen the chain every lookup walks by
/// sending from many ports. The IPv6 host's own sessions are not capped.
const INBOUND_PER_REMOTE: usize = 64;
/// The same for the IPv6 host's own sessions from one source port to one remote address (a port
/// scan from a fixed port): a higher cap, but one, as the chain is walked under the table's lock.
/// (A binding also holds at most `u16::MAX` sessions: its counter's width.)
const OUTBOUND_PER_REMOTE: usize = 512;
/// Mapping-log events queued before the oldest are lost (counted).
const EVENTS: usize = 1024;

/// One line of the optional mapping log (RFC 6888 REQ-12 style, per block not per session).
/// Open for additions: match with a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MappingEvent {
    /// The block got its first binding.
    Used {
        /// The block; [`Layout::block`] tells its prefix, address and ports.
        block: u32,
        /// When.
        at: Duration,
    },
    /// The block's last binding went.
    Freed {
        /// The block.
        block: u32,
        /// When.
        at: Duration,
    },
}

impl MappingEvent {
    /// The block it is about: [`Layout::block`] tells its prefix, address and ports.
    pub fn block(&self) -> u32 {
        match *self {
            MappingEvent::Used { block, .. } | MappingEvent::Freed { block, .. } => block,
        }
    }

    /// When, on the caller's clock (whole seconds).
    pub fn at(&self) -> Duration {
        match *self {
            MappingEvent::Used { at, .. } | MappingEvent::Freed { at, .. } => at,
        }
    }
}

/// What the table holds now, and what happened since it was made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Live sessions by protocol: TCP, UDP, ICMP.
    pub sessions: [u32; 3],
    /// Live BIB entries.
    pub bindings: u32,
    /// Sessions opened.
    pub opened: u64,
    /// Sessions expired.
    pub expired: u64,
    /// Inbound SYNs held now.
    pub held_syns: u32,
    /// Mapping events lost because nobody took them.
    pub events_lost: u64,
}

/// Why [`Nat64::reconfigure`] refused a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReconfigureError {
    /// The block layout differs: live sessions would change owner. Build a new [`Nat64`].
    Layout,
    /// The capacity differs: the table's memory is fixed. Build a new [`Nat64`].
    Capacity,
}

impl fmt::Display for ReconfigureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Layout => "the pool4, ports, customers or block size changed: live sessions would be re-mapped",
            Self::Capacity => "the session capacity changed: the table's memory is fixed when it is made",
        })
    }
}

impl core::error::Error for ReconfigureError {}

#[derive(Debug, Clone, Copy)]
struct Secs {
    udp: u32,
    est: u32,
    trans: u32,
    icmp: u32,
}

fn secs(d: Duration) -> u32 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.min(u64::from(u32::MAX / 2)) as u32
}

impl Secs {
    /// The shortest: how long a session may wait on the wheel before it is looked at again.
    fn horizon(&self) -> u32 {
        self.udp.min(self.est).min(self.trans).min(self.icmp)
    }

    fn of(t: &Timeouts) -> Self {
        Secs {
            udp: secs(t.udp).max(1),
            est: secs(t.tcp_established).max(1),
            trans: secs(t.tcp_transitory).max(1),
            icmp: secs(t.icmp).max(1),
        }
    }
}

/// How a packet from the IPv6 side leaves.
#[derive(Debug, Clone, Copy)]
enum Way6 {
    /// To IPv4: the session's pool4 address and IPv6 host, and the port.
    Out { v4: u32, v6: u128, port: u16 },
    /// Straight back to the IPv6 side (hairpinning).
    Hairpin { src: (u128, u16), dst: (u128, u16) },
}

/// A stateful NAT64. See the [module documentation](self).
#[derive(Debug)]
pub struct Nat64 {
    layout: Layout,
    /// Each block's pool4 address, worked out once: the hot path needs it per packet.
    addrs: Vec<u32>,
    timeouts: Timeouts,
    secs: Secs,
    filtering: Filtering,
    limits: Limits,
    log_mappings: bool,
    capacity: u32,
    table: Table,
    blocks: Blocks,
    held: Held,
    events: VecDeque<MappingEvent>,
    stats: Stats,
    /// The caller's second of the first call: the table counts from there.
    epoch: Option<u64>,
}

fn eam(v4: u32, v6: u128) -> Eam {
    Eam::host(Ipv4Addr::from_bits(v4), Ipv6Addr::from_bits(v6))
}

/// Translates `input` through the session's mapping (`host`, a one-entry EAM) into `out`, and
/// writes the session's port into the result. An ICMP error the translator made itself quotes
/// the packet as it came, so it is left as it is. `from`: the side `input` came from.
fn copying<A>(
    xlat: &Translator<'_>,
    host: Eam,
    from: Side,
    f: &Flow<A>,
    input: &[u8],
    out: &mut [u8],
    port: u16,
) -> Outcome {
    let eams = [host];
    let view = xlat.with_eam(&eams);
    let o = match from {
        Side::V6 => view.translate_6to4(input, out),
        Side::V4 => view.translate_4to6(input, out),
    };
    xlat.resume_ids(&view);
    if let Outcome::Translated(e) = o {
        // The host's port is the source going out, the destination coming in; in an error's
        // quote, the other way round.
        let source = (from == Side::V6) != f.error;
        flow::set_ports(&mut out[..e.len()], f.error, source, port);
    }
    o
}

/// The same where the packet lies (`buf[at..at + len]`): the field the flow found moves with the
/// header, which the translator writes without options or extension headers (20 bytes of IPv4,
/// 40 of IPv6: a packet translated in place is no fragment).
#[allow(clippy::too_many_arguments)]
fn in_place<A>(
    xlat: &Translator<'_>,
    host: Eam,
    from: Side,
    f: &Flow<A>,
    buf: &mut [u8],
    at: usize,
    len: usize,
    port: u16,
) -> InPlace {
    let eams = [host];
    let view = xlat.with_eam(&eams);
    let (r, l4) = match from {
        Side::V6 => (view.translate_6to4_in_place(buf, at, len), 20),
        Side::V4 => (view.translate_4to6_in_place(buf, at, len), 40),
    };
    xlat.resume_ids(&view);
    if let InPlace::Translated(range) = &r {
        let field = f.field.moved(f.l4, l4);
        flow::rewrite(&mut buf[range.clone()], field, port, from == Side::V6);
    }
    r
}

/// A packet whose hop limit or TTL runs out here: dropped at 0, answered with Time Exceeded (ICMP
/// type `ty`) at 1, as the translator would.
fn expiring(hops: u8, ty: u8) -> Result<(), Fail> {
    match hops {
        0 => Err(DropReason::Expired.into()),
        1 => Err(Fail::Reply {
            reason: DropReason::Expired,
            ty,
            code: 0,
            rest: 0,
        }),
        _ => Ok(()),
    }
}

/// The ICMPv6 error (or drop) `fail` says, about `input`; without an `own_v6`, from the
/// address `input` was sent to.
fn refuse6(xlat: &Translator<'_>, input: &[u8], out: &mut [u8], fail: Fail) -> Outcome {
    if xlat.config().own_v6.is_some() || matches!(fail, Fail::Drop(_)) {
        return xlat.fail(Ip::V6, input, out, fail);
    }
    let dst = input
        .get(24..40)
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .map(Ipv6Addr::from);
    xlat.or_own(None, dst).fail(Ip::V6, input, out, fail)
}

/// The ICMPv4 error (or drop) `fail` says, about `input`; without an `own_v4`, from the pool4
/// address `input` was sent to.
fn refuse4(xlat: &Translator<'_>, input: &[u8], out: &mut [u8], fail: Fail) -> Outcome {
    if xlat.config().own_v4.is_some() || matches!(fail, Fail::Drop(_)) {
        return xlat.fail(Ip::V4, input, out, fail);
    }
    let dst = input
        .get(16..20)
        .map(|b| Ipv4Addr::new(b[0], b[1], b[2], b[3]));
    xlat.or_own(dst, None).fail(Ip::V4, input, out, fail)
}

fn refused(reason: DropReason) -> Fail {
    Fail::Reply {
        reason,
        ty: 1,
        code: 1,
        rest: 0,
    }
}

impl Nat64 {
    /// A translator with empty tables; takes all of its memory now.
    pub fn new(cfg: StatefulConfig) -> Self {
        let secs = Secs::of(&cfg.timeouts);
        let capacity = cfg.capacity.max(1);
        Nat64 {
            table: Table::new(capacity, secs.horizon(), cfg.hash_key),
            blocks: Blocks::new(cfg.layout.blocks(), cfg.layout.ports_per_block()),
            held: Held::new(),
            events: VecDeque::with_capacity(EVENTS),
            stats: Stats::default(),
            epoch: None,
            secs,
            addrs: (0..cfg.layout.blocks())
                .map(|n| cfg.layout.block_address(n).to_bits())
                .collect(),
            layout: cfg.layout,
            timeouts: cfg.timeouts,
            filtering: cfg.filtering,
            limits: cfg.limits,
            log_mappings: cfg.log_mappings,
            capacity,
        }
    }

    /// Applies new timeouts, filtering, limits and logging to the live table. The layout and
    /// capacity cannot change under live sessions.
    pub fn reconfigure(&mut self, cfg: &StatefulConfig) -> Result<(), ReconfigureError> {
        self.can_reconfigure(cfg)?;
        self.timeouts = cfg.timeouts;
        self.secs = Secs::of(&cfg.timeouts);
        self.table.set_horizon(self.secs.horizon());
        self.filtering = cfg.filtering;
        self.limits = cfg.limits.clone();
        self.log_mappings = cfg.log_mappings;
        Ok(())
    }

    /// The caller's time as the table counts it: seconds since the first call. Whatever the
    /// caller's epoch (Unix time too), the table's `u32` seconds last 68 years from there; a
    /// clock that goes back reads as the first call.
    #[inline]
    fn clock(&mut self, now: Duration) -> u32 {
        let s = now.as_secs();
        let epoch = *self.epoch.get_or_insert(s);
        s.saturating_sub(epoch).min(u64::from(u32::MAX / 2)) as u32
    }

    /// A table time back on the caller's clock, for the mapping log.
    fn at(&self, t: u32) -> Duration {
        Duration::from_secs(self.epoch.unwrap_or(0) + u64::from(t))
    }

    #[inline]
    fn addr(&self, block: u32) -> u32 {
        self.addrs[block as usize]
    }

    /// Whether [`Nat64::reconfigure`] would take `cfg`, without applying it.
    pub fn can_reconfigure(&self, cfg: &StatefulConfig) -> Result<(), ReconfigureError> {
        if cfg.layout != self.layout {
            return Err(ReconfigureError::Layout);
        }
        if cfg.capacity.max(1) != self.capacity {
            return Err(ReconfigureError::Capacity);
        }
        Ok(())
    }

    /// The block layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The timeouts in force.
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// Counters and live sizes.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.bindings = self.table.live_bibs;
        s.held_syns = self.held.count();
        s
    }

    /// Sessions the table holds at most.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Bytes taken by the tables, the block state and the held SYNs.
    pub fn memory(&self) -> usize {
        self.table.memory() + self.blocks.memory() + self.held.memory() + self.addrs.len() * 4
    }

    /// Bytes a session costs in the worst case, when it has a binding of its own (as every TCP
    /// connection does): the session and binding entries and their hash buckets.
    pub const fn bytes_per_session() -> usize {
        size_of::<Session>() + size_of::<Bib>() + 3 * 4
    }

    /// The pool4 address and port the IPv6 endpoint is bound to, if it is.
    pub fn binding(&self, proto: Proto, v6: Ipv6Addr, port: u16) -> Option<(Ipv4Addr, u16)> {
        let b = self.table.bib(self.table.find6(proto, v6.to_bits(), port)?);
        Some((Ipv4Addr::from_bits(self.addr(b.block)), b.port4))
    }

    /// The IPv6 endpoint bound to a pool4 address and port, if any.
    pub fn binding_of(&self, proto: Proto, v4: Ipv4Addr, port: u16) -> Option<(Ipv6Addr, u16)> {
        let block = self.layout.block_number(v4, port)?;
        let b = self.table.bib(self.table.find4(proto, block, port)?);
        Some((Ipv6Addr::from(b.v6), b.port6))
    }

    /// The state of a TCP session, if there is one.
    pub fn tcp_state(
        &self,
        v6: Ipv6Addr,
        port: u16,
        remote: Ipv4Addr,
        rport: u16,
    ) -> Option<TcpState> {
        let bib = self.table.find6(Proto::Tcp, v6.to_bits(), port)?;
        let s = self.table.find_session(bib, remote.to_bits(), rport)?;
        State::from_u8(self.table.session(s).state)
    }

    /// Takes the queued mapping events (when `log_mappings` is on).
    pub fn events(&mut self) -> impl Iterator<Item = MappingEvent> + '_ {
        self.events.drain(..)
    }

    /// Translates an IPv6 packet from the IPv6 side; as [`Translator::translate_6to4`], with
    /// `out` at least [`Translator::out_len`]`(input.len())` bytes.
    pub fn translate_6to4(
        &mut self,
        xlat: &Translator<'_>,
        now: Duration,
        input: &[u8],
        out: &mut [u8],
    ) -> Outcome {
        let now = self.clock(now);
        let (f, way) = match self.decide6(xlat, now, input) {
            Ok(d) => d,
            Err(fail) => return refuse6(xlat, input, out, fail),
        };
        match way {
            Way6::Hairpin { src, dst } => {
                let n = input.len();
                let Some(dst_buf) = out.get_mut(..n) else {
                    return Outcome::Dropped(DropReason::BufferTooSmall);
                };
                dst_buf.copy_from_slice(input);
                flow::hairpin6(dst_buf, f.field, src, dst);
                Outcome::Hairpinned(Emitted::new(n, 1))
            }
            Way6::Out { v4, v6, port } => {
                copying(xlat, eam(v4, v6), Side::V6, &f, input, out, port)
            }
        }
    }

    /// Translates an IPv4 packet from the IPv4 side; as [`Translator::translate_4to6`], with
    /// `out` at least [`Translator::out_len`]`(input.len())` bytes.
    pub fn translate_4to6(
        &mut self,
        xlat: &Translator<'_>,
        now: Duration,
        input: &[u8],
        out: &mut [u8],
    ) -> Outcome {
        let now = self.clock(now);
        let (f, v6, port) = match self.decide4(now, input) {
            Ok(d) => d,
            Err(fail) => return refuse4(xlat, input, out, fail),
        };
        copying(xlat, eam(f.local, v6), Side::V4, &f, input, out, port)
    }

    /// Translates the IPv6 packet at `buf[at..at + len]` where it lies, as
    /// [`Translator::translate_6to4_in_place`]; a hairpinned packet is rewritten where it lies
    /// too. [`InPlace::NeedsOutBuffer`] leaves `buf` untouched (the session is already
    /// updated): call [`Nat64::translate_6to4`].
    pub fn translate_6to4_in_place(
        &mut self,
        xlat: &Translator<'_>,
        now: Duration,
        buf: &mut [u8],
        at: usize,
        len: usize,
    ) -> InPlace {
        let Some(pkt) = buf.get_mut(at..at.saturating_add(len)) else {
            return InPlace::RangeOutOfBounds;
        };
        let now = self.clock(now);
        let (f, way) = match self.decide6(xlat, now, pkt) {
            Ok(d) if !d.0.error => d,
            Err(Fail::Drop(r)) => return InPlace::Dropped(r),
            _ => return InPlace::NeedsOutBuffer,
        };
        match way {
            Way6::Hairpin { src, dst } => {
                flow::hairpin6(pkt, f.field, src, dst);
                InPlace::Hairpinned(at..at + len)
            }
            Way6::Out { v4, v6, port } => {
                in_place(xlat, eam(v4, v6), Side::V6, &f, buf, at, len, port)
            }
        }
    }

    /// Translates the IPv4 packet at `buf[at..at + len]` where it lies, as
    /// [`Translator::translate_4to6_in_place`]. [`InPlace::NeedsOutBuffer`] leaves `buf`
    /// untouched: call [`Nat64::translate_4to6`].
    pub fn translate_4to6_in_place(
        &mut self,
        xlat: &Translator<'_>,
        now: Duration,
        buf: &mut [u8],
        at: usize,
        len: usize,
    ) -> InPlace {
        let Some(pkt) = buf.get_mut(at..at.saturating_add(len)) else {
            return InPlace::RangeOutOfBounds;
        };
        let now = self.clock(now);
        let (f, v6, port) = match self.decide4(now, pkt) {
            Ok(d) if !d.0.error => d,
            Err(Fail::Drop(r)) => return InPlace::Dropped(r),
            _ => return InPlace::NeedsOutBuffer,
        };
        in_place(xlat, eam(f.local, v6), Side::V4, &f, buf, at, len, port)
    }

    /// Expires what came due by `now`: sessions (established TCP ones first get a transitory
    /// lifetime more), and held SYNs older than 6 s, each answered with ICMP Port Unreachable
    /// written into `out` (576 bytes are enough) and handed to `emit`. Call it about once a
    /// second; the cost follows the sessions that come due, not the table's size. Returns the
    /// sessions removed.
    pub fn expire(
        &mut self,
        xlat: &Translator<'_>,
        now: Duration,
        out: &mut [u8],
        mut emit: impl FnMut(&[u8]),
    ) -> u32 {
        let now_s = self.clock(now);
        let at = self.at(now_s);
        self.held.due(now_s, secs(INCOMING_SYN), |syn| {
            let fail = Fail::Reply {
                reason: DropReason::SynHeld,
                ty: 3,
                code: 3,
                rest: 0,
            };
            if let Outcome::IcmpError { reply, .. } = refuse4(xlat, syn, out, fail) {
                emit(&out[..reply.len()]);
            }
        });
        let Nat64 {
            table,
            blocks,
            events,
            stats,
            secs,
            layout,
            log_mappings,
            ..
        } = self;
        let trans = secs.trans;
        let gone = table.turn(
            now_s,
            |s| match (s.proto == Proto::Tcp as u8)
                .then(|| State::from_u8(s.state).and_then(tcp::on_expiry))
                .flatten()
            {
                Some(next) => {
                    s.state = next as u8;
                    s.expires = now_s + trans;
                    false
                }
                None => true,
            },
            |s, b, last| {
                blocks.closed(b.block);
                stats.sessions[usize::from(s.proto)] -= 1;
                if last {
                    let first = layout.block_first_port(b.block);
                    let proto = table::proto_of(b.proto);
                    if blocks.free_port(b.block, proto, first, b.port4) && *log_mappings {
                        push(events, stats, MappingEvent::Freed { block: b.block, at });
                    }
                }
            },
        );
        stats.expired += u64::from(gone);
        gone
    }

    /// Where a packet from the IPv6 side goes, its session found or made.
    // Always, as flow6: the decision is a wide value.
    #[inline(always)]
    fn decide6(
        &mut self,
        xlat: &Translator<'_>,
        now: u32,
        pkt: &[u8],
    ) -> Result<(Flow<u128>, Way6), Fail> {
        let f = flow::flow6(pkt)?;
        let cfg = xlat.config();
        let pool6 = cfg.pool6.ok_or(DropReason::UntranslatableDestination)?;
        let remote = pool6
            .extract(Ipv6Addr::from_bits(f.remote), cfg.non_global)
            .filter(|&a| !never_translated(a))
            .map(Ipv4Addr::to_bits);
        if f.error {
            let r = remote.ok_or(DropReason::UnmatchedIcmpError)?;
            let bib = self
                .table
                .find6(f.proto, f.local, f.local_port)
                .filter(|&b| self.table.find_session(b, r, f.rport).is_some())
                .ok_or(DropReason::UnmatchedIcmpError)?;
            let b = self.table.bib(bib);
            let way = Way6::Out {
                v4: self.addr(b.block),
                v6: f.local,
                port: b.port4,
            };
            return Ok((f, way));
        }
        let remote = remote.ok_or(DropReason::UntranslatableDestination)?;
        // What the translator refuses for its hop limit must neither make nor move a session.
        expiring(pkt[7], 3)?;
        if self.layout.is_pool4(Ipv4Addr::from_bits(remote)) {
            return self.hairpin(&pool6, cfg.non_global, now, f, remote);
        }
        let (bib, _) = self.outbound(now, &f, remote)?;
        let b = self.table.bib(bib);
        let way = Way6::Out {
            v4: self.addr(b.block),
            v6: f.local,
            port: b.port4,
        };
        Ok((f, way))
    }

    /// RFC 6146 §3.8: a packet from one customer to another's pool4 address and port goes
    /// out through its own binding and in through the other's, without leaving IPv6.
    fn hairpin(
        &mut self,
        pool6: &crate::Pool6,
        non_global: &[Ipv4Prefix],
        now: u32,
        f: Flow<u128>,
        remote: u32,
    ) -> Result<(Flow<u128>, Way6), Fail> {
        if f.proto == Proto::Icmp {
            return Err(DropReason::NoSession.into());
        }
        // The target first: a packet to a port nobody holds makes no session of the sender's.
        let block_b = self
            .layout
            .block_number(Ipv4Addr::from_bits(remote), f.rport)
            .ok_or(DropReason::NoSession)?;
        let bib_b = self
            .table
            .find4(f.proto, block_b, f.rport)
            .ok_or(DropReason::NoSession)?;
        let (bib_a, _) = self.outbound(now, &f, remote)?;
        let a = *self.table.bib(bib_a);
        let addr_a = self.addr(a.block);
        let inbound = Flow {
            rport: a.port4,
            ..f
        };
        self.inbound_session(now, &inbound, bib_b, addr_a)?;
        let b = *self.table.bib(bib_b);
        let src = pool6
            .embed(Ipv4Addr::from_bits(addr_a), non_global)
            .ok_or(DropReason::UntranslatableSource)?
            .to_bits();
        Ok((
            f,
            Way6::Hairpin {
                src: (src, a.port4),
                dst: (u128::from_be_bytes(b.v6), b.port6),
            },
        ))
    }

    /// The binding and session of an outbound packet, made if it may open one.
    #[inline]
    fn outbound(&mut self, now: u32, f: &Flow<u128>, remote: u32) -> Result<(u32, u32), Fail> {
        let opens = f.opens && (f.proto != Proto::Tcp || f.flags.syn);
        if let Some(bib) = self.table.find6(f.proto, f.local, f.local_port) {
            if let Some(s) = self.table.find_session(bib, remote, f.rport) {
                self.touch(s, Side::V6, f.flags, now);
                return Ok((bib, s));
            }
            if !opens {
                return Err(DropReason::NoSession.into());
            }
            let block = self.table.bib(bib).block;
            self.admit(f, block, Some((bib, remote)), now)?;
            let s = self.open(bib, remote, f.rport, now, Side::V6)?;
            return Ok((bib, s));
        }
        if !opens {
            return Err(DropReason::NoSession.into());
        }
        let block = self
            .layout
            .block_of(Ipv6Addr::from_bits(f.local))
            .ok_or(Fail::Reply {
                reason: DropReason::NotCustomer,
                ty: 1,
                code: 5,
                rest: 0,
            })?;
        self.admit(f, block, None, now)?;
        let first = self.layout.block_first_port(block);
        let (port4, first_use) = self
            .blocks
            .take_port(block, f.proto, first, f.local_port)
            .map_err(|r| refused(r.into()))?;
        let Some(bib) = self
            .table
            .add_bib(f.proto, f.local, f.local_port, block, port4)
        else {
            self.blocks.free_port(block, f.proto, first, port4);
            return Err(refused(DropReason::TableFull));
        };
        if first_use && self.log_mappings {
            let at = self.at(now);
            push(
                &mut self.events,
                &mut self.stats,
                MappingEvent::Used { block, at },
            );
        }
        let s = self.open(bib, remote, f.rport, now, Side::V6)?;
        Ok((bib, s))
    }

    /// The checks before a session opens: refused port, room in the table, the block's limits.
    /// `pair` is the binding the session would join and its remote address, when it exists.
    fn admit<A>(
        &mut self,
        f: &Flow<A>,
        block: u32,
        pair: Option<(u32, u32)>,
        now: u32,
    ) -> Result<(), Fail> {
        if f.proto != Proto::Icmp && self.limits.refuse_ports.contains(&f.dport) {
            return Err(refused(DropReason::PortRefused));
        }
        if self.table.is_full() {
            return Err(refused(DropReason::TableFull));
        }
        if let Some((bib, remote)) = pair {
            let full = self.table.bib(bib).sessions == u16::MAX
                || self.table.pair_sessions(bib, remote, OUTBOUND_PER_REMOTE)
                    >= OUTBOUND_PER_REMOTE;
            if full {
                return Err(refused(DropReason::SessionLimit));
            }
        }
        let l = &self.limits;
        self.blocks
            .admit(
                block,
                now,
                l.max_sessions_per_block,
                l.new_sessions_per_second,
            )
            .map_err(|r| refused(r.into()))
    }

    /// A new session on `bib`. A TCP session opened by the IPv6 side that matches a held SYN
    /// is a simultaneous open: both SYNs are seen, the held one is dropped.
    fn open(
        &mut self,
        bib: u32,
        remote: u32,
        rport: u16,
        now: u32,
        side: Side,
    ) -> Result<u32, Fail> {
        let b = *self.table.bib(bib);
        let proto = table::proto_of(b.proto);
        let (state, life) = match (proto, side) {
            (Proto::Tcp, side) => {
                let ends = held::Ends {
                    local: self.addr(b.block),
                    port: b.port4,
                    remote,
                    rport,
                };
                // From IPv6: both SYNs are seen. From IPv4: its retransmission got through.
                match (self.held.release(ends), side) {
                    (true, Side::V6) => (State::Established as u8, self.secs.est),
                    (_, Side::V6) => (State::V6Init as u8, self.secs.trans),
                    (_, Side::V4) => (State::V4Init as u8, self.secs.trans),
                }
            }
            (Proto::Udp, _) => (0, self.secs.udp),
            (Proto::Icmp, _) => (0, self.secs.icmp),
        };
        let s = self
            .table
            .add_session(bib, remote, rport, state, now, now + life)
            .ok_or(refused(DropReason::TableFull))?;
        self.blocks.opened(b.block);
        self.stats.opened += 1;
        self.stats.sessions[proto as usize] += 1;
        Ok(s)
    }

    /// A packet on a live session: the TCP state machine, or a fresh lifetime.
    #[inline]
    fn touch(&mut self, s: u32, side: Side, flags: Flags, now: u32) {
        let secs = self.secs;
        let e = self.table.session_mut(s);
        let life = match table::proto_of(e.proto) {
            Proto::Udp => Lifetime::Established,
            Proto::Icmp => Lifetime::Transitory,
            Proto::Tcp => {
                let Some(state) = State::from_u8(e.state) else {
                    return;
                };
                let (next, life) = tcp::step(state, side, flags);
                e.state = next as u8;
                life
            }
        };
        let add = match (table::proto_of(e.proto), life) {
            (_, Lifetime::Keep) => return,
            (Proto::Udp, _) => secs.udp,
            (Proto::Icmp, _) => secs.icmp,
            (Proto::Tcp, Lifetime::Established) => secs.est,
            (Proto::Tcp, Lifetime::Transitory) => secs.trans,
        };
        e.expires = now + add;
    }

    /// The session for an inbound packet on `bib` from `remote`: found, or opened when the
    /// filtering lets it (a TCP one only by a SYN).
    fn inbound_session(
        &mut self,
        now: u32,
        f: &Flow<u128>,
        bib: u32,
        remote: u32,
    ) -> Result<u32, Fail> {
        if let Some(s) = self.table.find_session(bib, remote, f.rport) {
            self.touch(s, Side::V4, f.flags, now);
            return Ok(s);
        }
        let allowed =
            self.filtering == Filtering::EndpointIndependent || self.table.talks_to(bib, remote);
        if !allowed || !f.opens || (f.proto == Proto::Tcp && !f.flags.syn) {
            return Err(DropReason::NoSession.into());
        }
        self.admit_inbound(bib, remote, now)?;
        self.open(bib, remote, f.rport, now, Side::V4)
    }

    fn admit_inbound(&mut self, bib: u32, remote: u32, now: u32) -> Result<(), Fail> {
        if self.table.is_full() {
            return Err(DropReason::TableFull.into());
        }
        if self.table.bib(bib).sessions == u16::MAX
            || self.table.pair_sessions(bib, remote, INBOUND_PER_REMOTE) >= INBOUND_PER_REMOTE
        {
            return Err(DropReason::SessionLimit.into());
        }
        let block = self.table.bib(bib).block;
        let l = &self.limits;
        self.blocks
            .admit(
                block,
                now,
                l.max_sessions_per_block,
                l.new_sessions_per_second,
            )
            .map_err(|r| Fail::Drop(r.into()))
    }

    /// The mapping and port for a packet from the IPv4 side.
    #[inline(always)]
    fn decide4(&mut self, now: u32, pkt: &[u8]) -> Result<(Flow<u32>, u128, u16), Fail> {
        let f = flow::flow4(pkt)?;
        let missing = if f.error {
            DropReason::UnmatchedIcmpError
        } else {
            DropReason::NoSession
        };
        let block = self
            .layout
            .block_number(Ipv4Addr::from_bits(f.local), f.local_port)
            .ok_or(missing)?;
        let bib = self.table.find4(f.proto, block, f.local_port);
        if !f.error {
            expiring(pkt[8], 11)?;
        }
        if f.error {
            let bib = bib
                .filter(|&b| self.table.find_session(b, f.remote, f.rport).is_some())
                .ok_or(missing)?;
            let b = self.table.bib(bib);
            return Ok((f, u128::from_be_bytes(b.v6), b.port6));
        }
        let syn = f.proto == Proto::Tcp && f.flags.syn;
        let Some(bib) = bib else {
            return Err(if syn {
                self.hold(now, &f, pkt)
            } else {
                missing
            }
            .into());
        };
        if let Some(s) = self.table.find_session(bib, f.remote, f.rport) {
            self.touch(s, Side::V4, f.flags, now);
        } else {
            let allowed = self.filtering == Filtering::EndpointIndependent
                || self.table.talks_to(bib, f.remote);
            if syn && !allowed {
                return Err(self.hold(now, &f, pkt).into());
            }
            if !allowed || !f.opens || (f.proto == Proto::Tcp && !syn) {
                return Err(missing.into());
            }
            self.admit_inbound(bib, f.remote, now)?;
            self.open(bib, f.remote, f.rport, now, Side::V4)?;
        }
        let b = self.table.bib(bib);
        Ok((f, u128::from_be_bytes(b.v6), b.port6))
    }

    /// Holds an unsolicited inbound SYN (RFC 6146 §3.5.2.2) when there is room.
    fn hold(&mut self, now: u32, f: &Flow<u32>, pkt: &[u8]) -> DropReason {
        let ends = held::Ends {
            local: f.local,
            port: f.local_port,
            remote: f.remote,
            rport: f.rport,
        };
        self.held.hold(now, ends, pkt)
    }
}

fn push(events: &mut VecDeque<MappingEvent>, stats: &mut Stats, e: MappingEvent) {
    if events.len() >= EVENTS {
        events.pop_front();
        stats.events_lost += 1;
    }
    events.push_back(e);
}

#[cfg(test)]
mod tests;
