//! One packet read from the device, start to finish, without I/O: echo to our own addresses,
//! the offload header checked, the translation in place where it can be (a copy where it must),
//! and what to write back.
//!
//! In stateful mode the translation goes through the shared session table ([`Nat64`]), locked
//! for the one packet: the queues share it because the kernel may hand the two directions of
//! one session to different queues.

use core::cell::Cell;
use core::ops::Range;
use core::time::Duration;

use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use nat64_xlat::stateful::Nat64;
use nat64_xlat::{DropReason, InPlace, Outcome, Packets, Translator};

use super::echo::{self, Own};
use super::settings::Settings;
use super::stats::{Counts, Direction, PacketDrop};
use super::vnet::{self, Offload};

/// Bytes a read buffer keeps free before the offload header: the IPv6 header of a 4→6
/// translation in place starts 20 bytes before the IPv4 header (28 with a Fragment header), and
/// its offload header 10 bytes before that.
pub(crate) const HEADROOM: usize = 64;

/// The largest read: an offload header and a 64 KiB super-packet (an IPv6 packet's payload
/// length counts 65535 past its 40-byte header).
pub(crate) const MAX_READ: usize = vnet::LEN + 40 + 65535;

/// What to write back for one packet read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// `buf[range]`: an offload header and the packet, where they lie in the read buffer.
    InPlace(Range<usize>),
    /// The packets in `out[..len]`, back to back, each to go behind a plain offload header.
    Copied(usize),
    /// Nothing (counted).
    Dropped,
}

/// What a worker keeps from one packet to the next.
#[derive(Debug, Default)]
pub(crate) struct Local {
    pub counts: Counts,
    icmp: IcmpBudget,
    /// One segment of a super-packet being cut.
    segment: Vec<u8>,
}

/// ICMP errors the gateway may generate: a token bucket per queue (RFC 4443 §2.4 (f), RFC 1812
/// §4.3.2.8), so a flood of expiring or oversized packets with spoofed sources cannot make it a
/// reflector. The kernel's own limit (`icmp_msgs_per_sec`, 1000/s, burst 50) does not apply to
/// packets we write.
#[derive(Debug)]
struct IcmpBudget {
    tokens: u32,
    since: Option<Instant>,
}

const ICMP_PER_SECOND: u32 = 1000;
const ICMP_BURST: u32 = 50;

impl Default for IcmpBudget {
    fn default() -> Self {
        IcmpBudget {
            tokens: ICMP_BURST,
            since: None,
        }
    }
}

impl IcmpBudget {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let since = *self.since.get_or_insert(now);
        let earned =
            now.duration_since(since).as_millis() as u64 * u64::from(ICMP_PER_SECOND) / 1000;
        if earned > 0 {
            self.tokens = (u64::from(self.tokens) + earned).min(u64::from(ICMP_BURST)) as u32;
            self.since = Some(now);
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

/// Room in `out` for the results of one read: a super-packet cut into segments needs a result's
/// worth per segment (twice a segment, as the translator's hairpinning takes half as scratch).
pub(crate) fn out_len() -> usize {
    2 * Translator::out_len(MAX_READ)
}

/// The stateful translator's table and the epoch of its clock.
#[derive(Debug)]
pub(crate) struct Sessions {
    pub table: Mutex<Nat64>,
    pub epoch: Instant,
}

impl Sessions {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Nat64> {
        // The table's code does not panic (it is fuzzed); were it ever to, mid-packet, the other
        // queues carry on with what it left (at worst a session that never expires) rather than
        // all stop.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The translators a worker uses until the settings change.
#[derive(Debug)]
pub(crate) struct Step<'s> {
    plain: Translator<'s>,
    super_packets: Translator<'s>,
    settings: &'s Settings,
    sessions: Option<&'s Sessions>,
    /// The clock of the session table, read once per batch ([`Step::tick`]).
    now: Cell<Duration>,
}

impl<'s> Step<'s> {
    /// The step for as long as the settings last; in stateful mode, with the session table.
    pub(crate) fn new(settings: &'s Settings, id_key: u64, sessions: Option<&'s Sessions>) -> Self {
        let step = Step {
            plain: Translator::new(settings.config(id_key)),
            super_packets: Translator::new(settings.super_packet_config(id_key)),
            settings,
            sessions,
            now: Cell::new(Duration::ZERO),
        };
        step.tick();
        step
    }

    /// Reads the session table's clock: once per batch, whose packets share the reading
    /// (sessions count in seconds).
    pub(crate) fn tick(&self) {
        if let Some(s) = self.sessions {
            self.now.set(s.epoch.elapsed());
        }
    }

    fn stateful(&self) -> Option<(&Sessions, Duration)> {
        self.sessions.map(|s| (s, self.now.get()))
    }

    /// Handles the `len` bytes read at `buf[at..]` (offload header, then the packet); `at` must
    /// be at least [`HEADROOM`]. `out` ([`out_len`] bytes) receives copied results.
    pub(crate) fn process(
        &self,
        buf: &mut [u8],
        at: usize,
        len: usize,
        out: &mut [u8],
        local: &mut Local,
    ) -> Verdict {
        let c = &mut local.counts;
        let drop = |c: &mut Counts, why| {
            c.drop(why);
            Verdict::Dropped
        };
        let p = at + vnet::LEN;
        let Some(plen) = len.checked_sub(vnet::LEN).filter(|&n| n > 0) else {
            return drop(c, PacketDrop::NotIp);
        };
        if at < HEADROOM || buf.len() < p + plen {
            return drop(c, PacketDrop::NotIp);
        }
        let mut header = [0u8; vnet::LEN];
        header.copy_from_slice(&buf[at..p]);
        let header = vnet::Header::read(&header);
        let packet = &mut buf[p..p + plen];
        let (dir, own) = match packet[0] >> 4 {
            6 => (
                Direction::SixToFour,
                echo::answer_v6(packet, self.settings.own_v6),
            ),
            4 => (
                Direction::FourToSix,
                echo::answer_v4(packet, self.settings.own_v4),
            ),
            _ => return drop(c, PacketDrop::NotIp),
        };
        match own {
            Own::NotOurs => {}
            Own::Refused => return drop(c, PacketDrop::ToGateway),
            Own::Replied => {
                c.echo_replies += 1;
                vnet::Header::default().write(&mut buf[at..p]);
                return Verdict::InPlace(at..p + plen);
            }
        }
        let Ok(offload) = Offload::check(header, packet) else {
            return drop(c, PacketDrop::Offload);
        };
        let xlat = if header.is_gso() {
            &self.super_packets
        } else {
            &self.plain
        };
        let saved = vnet::neutralise(packet, &offload);
        let done = match (self.stateful(), dir) {
            (None, Direction::SixToFour) => xlat.translate_6to4_in_place(buf, p, plen),
            (None, Direction::FourToSix) => xlat.translate_4to6_in_place(buf, p, plen),
            (Some((s, now)), Direction::SixToFour) => {
                s.lock().translate_6to4_in_place(xlat, now, buf, p, plen)
            }
            (Some((s, now)), Direction::FourToSix) => {
                s.lock().translate_4to6_in_place(xlat, now, buf, p, plen)
            }
        };
        match done {
            InPlace::Translated(ref range) | InPlace::Hairpinned(ref range) => {
                let range = range.clone();
                let Some(h) =
                    vnet::after_translation(&mut buf[range.clone()], &offload, self.settings.mtu)
                else {
                    return drop(c, PacketDrop::Offload);
                };
                let start = range.start - vnet::LEN;
                h.write(&mut buf[start..range.start]);
                if matches!(done, InPlace::Hairpinned(_)) {
                    c.hairpinned += 1;
                } else {
                    c.packet(dir, plen);
                }
                Verdict::InPlace(start..range.end)
            }
            InPlace::Dropped(r) => drop(c, PacketDrop::Translator(r)),
            InPlace::NeedsOutBuffer => {
                let packet = &mut buf[p..p + plen];
                vnet::restore(packet, &offload, saved);
                if header.is_gso() {
                    // Whatever leaves through the copying path leaves as ordinary packets.
                    return self.cut(packet, &offload, dir, out, local);
                }
                // The copying path may quote or fragment the packet: its checksum must be whole.
                vnet::finish_checksum(packet, &offload);
                match self.copy(packet, dir, out, local) {
                    0 => Verdict::Dropped,
                    n => Verdict::Copied(n),
                }
            }
            _ => drop(c, PacketDrop::Translator(DropReason::Malformed)),
        }
    }

    /// A super-packet, segment by segment through the copying path.
    fn cut(
        &self,
        packet: &[u8],
        offload: &Offload,
        dir: Direction,
        out: &mut [u8],
        local: &mut Local,
    ) -> Verdict {
        let mut at = 0;
        let mut segment = core::mem::take(&mut local.segment);
        vnet::segment(packet, offload, &mut segment, |seg| {
            if out.len() - at < Translator::out_len(seg.len()) {
                local
                    .counts
                    .drop(PacketDrop::Translator(DropReason::BufferTooSmall));
                return;
            }
            at += self.copy(seg, dir, &mut out[at..], local);
        });
        local.segment = segment;
        if at == 0 {
            Verdict::Dropped
        } else {
            Verdict::Copied(at)
        }
    }

    /// One whole packet through the translator's copying path into `out`; the bytes written.
    fn copy(&self, packet: &[u8], dir: Direction, out: &mut [u8], local: &mut Local) -> usize {
        let c = &mut local.counts;
        let xlat = &self.plain;
        let outcome = match (self.stateful(), dir) {
            (None, Direction::SixToFour) => xlat.translate_6to4(packet, out),
            (None, Direction::FourToSix) => xlat.translate_4to6(packet, out),
            (Some((s, now)), Direction::SixToFour) => {
                s.lock().translate_6to4(xlat, now, packet, out)
            }
            (Some((s, now)), Direction::FourToSix) => {
                s.lock().translate_4to6(xlat, now, packet, out)
            }
        };
        match outcome {
            Outcome::Translated(e) => {
                c.packet(dir, packet.len());
                e.len()
            }
            Outcome::Hairpinned(e) => {
                c.hairpinned += 1;
                e.len()
            }
            Outcome::IcmpError { reason, reply } => {
                c.drop(PacketDrop::Translator(reason));
                if local.icmp.take() {
                    local.counts.icmp_error(dir);
                    reply.len()
                } else {
                    local.counts.icmp_limited += 1;
                    0
                }
            }
            Outcome::Dropped(r) => {
                c.drop(PacketDrop::Translator(r));
                0
            }
            _ => {
                c.drop(PacketDrop::Translator(DropReason::Malformed));
                0
            }
        }
    }
}

/// Every packet one read turns into, each with its offload header in front: what a worker
/// writes. For tests and the fuzz target, which drive the same step without a device.
pub(crate) fn written(step: &Step<'_>, read: &[u8], local: &mut Local) -> Vec<Vec<u8>> {
    let mut buf = vec![0u8; HEADROOM + read.len()];
    buf[HEADROOM..].copy_from_slice(read);
    let mut out = vec![0u8; out_len()];
    match step.process(&mut buf, HEADROOM, read.len(), &mut out, local) {
        Verdict::InPlace(r) => vec![buf[r].to_vec()],
        Verdict::Copied(n) => Packets::new(&out[..n])
            .map(|p| [&[0u8; vnet::LEN][..], p].concat())
            .collect(),
        Verdict::Dropped => Vec::new(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use core::net::{Ipv4Addr, Ipv6Addr};

    use nat64_xlat::{DropReason, Eam, Ipv4Prefix, Ipv6Prefix, Pool6, checksum};

    use super::*;
    use crate::gateway::vnet::{GSO_ECN, GSO_TCPV4, GSO_TCPV6, Header, NEEDS_CSUM};

    pub(crate) const HOST6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 6, 0, 0, 0, 0, 0x10);
    pub(crate) const HOST6_AS_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
    pub(crate) const REMOTE4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
    pub(crate) const REMOTE4_AS_V6: Ipv6Addr =
        Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0xc633, 0x6402);

    pub(crate) fn settings() -> Settings {
        let mut s = Settings::new(Some(Pool6::new("64:ff9b::/96".parse().unwrap()).unwrap()));
        s.own_v4 = Some(Ipv4Addr::new(192, 0, 2, 1));
        s.own_v6 = Some("2001:db8:64::1".parse().unwrap());
        s.eam = vec![eam(HOST6_AS_V4, HOST6)];
        // 198.51.100.0/24 is documentation space, refused under the Well-Known Prefix by default.
        s.non_global = vec![Ipv4Prefix::new(Ipv4Addr::new(10, 0, 0, 0), 8).unwrap()];
        s
    }

    pub(crate) fn eam(v4: Ipv4Addr, v6: Ipv6Addr) -> Eam {
        Eam::new(
            Ipv4Prefix::new(v4, 32).unwrap(),
            Ipv6Prefix::new(v6, 128).unwrap(),
        )
        .unwrap()
    }

    /// A TCP segment over IPv6 with a whole checksum, hop limit 64.
    pub(crate) fn tcp6(src: Ipv6Addr, dst: Ipv6Addr, seq: u32, payload: &[u8]) -> Vec<u8> {
        let l4len = 20 + payload.len();
        let mut p = vec![0x60, 0, 0, 0, 0, 0, 6, 64];
        p[4..6].copy_from_slice(&(l4len as u16).to_be_bytes());
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        p.extend_from_slice(&tcp_header(seq));
        p.extend_from_slice(payload);
        let pseudo = checksum::pseudo6(src, dst, 6, l4len as u32);
        let c = checksum::finish(checksum::add(pseudo, checksum::sum(&p[40..])));
        p[56..58].copy_from_slice(&c.to_be_bytes());
        p
    }

    /// The same over IPv4, DF set, TTL 64.
    pub(crate) fn tcp4(src: Ipv4Addr, dst: Ipv4Addr, seq: u32, payload: &[u8]) -> Vec<u8> {
        let total = 40 + payload.len();
        let mut p = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0];
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        let c = checksum::finish(checksum::sum(&p[..20]));
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.extend_from_slice(&tcp_header(seq));
        p.extend_from_slice(payload);
        let pseudo = checksum::pseudo4(src, dst, 6, (total - 20) as u32);
        let c = checksum::finish(checksum::add(pseudo, checksum::sum(&p[20..])));
        p[36..38].copy_from_slice(&c.to_be_bytes());
        p
    }

    fn tcp_header(seq: u32) -> [u8; 20] {
        let mut t = [0u8; 20];
        t[0..2].copy_from_slice(&40000u16.to_be_bytes());
        t[2..4].copy_from_slice(&80u16.to_be_bytes());
        t[4..8].copy_from_slice(&seq.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = 0x18; // PSH, ACK
        t[14..16].copy_from_slice(&65535u16.to_be_bytes());
        t
    }

    /// What the kernel hands over for a packet with a partial checksum: the field holds the
    /// folded pseudo-header sum of the whole L4 length.
    pub(crate) fn partial(mut p: Vec<u8>, gso: Option<(u8, u16)>) -> Vec<u8> {
        let l4 = if p[0] >> 4 == 6 { 40 } else { 20 };
        let pseudo = vnet::pseudo_header(&p, l4, 6).unwrap();
        p[l4 + 16..l4 + 18].copy_from_slice(&checksum::fold(pseudo).to_be_bytes());
        let (gso_type, gso_size) = gso.unwrap_or((0, 0));
        let h = Header {
            flags: NEEDS_CSUM,
            gso_type,
            hdr_len: (l4 + 20) as u16,
            gso_size,
            csum_start: l4 as u16,
            csum_offset: 16,
        };
        let mut read = vec![0u8; vnet::LEN];
        h.write(&mut read);
        read.extend_from_slice(&p);
        read
    }

    pub(crate) fn whole(p: &[u8]) -> Vec<u8> {
        [&[0u8; vnet::LEN][..], p].concat()
    }

    /// What the kernel does with a written partial checksum: sums from `csum_start`.
    fn kernel_finishes(written: &[u8]) -> Vec<u8> {
        let h = Header::read(written[..vnet::LEN].try_into().unwrap());
        let mut p = written[vnet::LEN..].to_vec();
        if h.flags & NEEDS_CSUM != 0 {
            let start = usize::from(h.csum_start);
            let field = start + usize::from(h.csum_offset);
            let c = checksum::finish(checksum::sum(&p[start..]));
            p[field..field + 2].copy_from_slice(&c.to_be_bytes());
        }
        p
    }

    fn one(settings: &Settings, read: &[u8]) -> Vec<u8> {
        let step = Step::new(settings, 1, None);
        let mut l = Local::default();
        let mut w = written(&step, read, &mut l);
        assert_eq!(w.len(), 1, "{:?}", l.counts);
        w.pop().unwrap()
    }

    // A 64 KiB TCP super-packet (GSO TCPV6) is translated once: GSO type, checksum start and
    // header length follow the new header, gso_size stays, and once the kernel finishes the
    // checksum the packet equals the per-packet translation of the same bytes sent whole.
    #[test]
    fn tcp_super_packet_6to4_matches_the_whole_path() {
        let s = settings();
        let payload: Vec<u8> = (0..65_000u32).map(|i| (i * 7) as u8).collect();
        let v6 = tcp6(HOST6, REMOTE4_AS_V6, 1000, &payload);
        let gso = one(&s, &partial(v6.clone(), Some((GSO_TCPV6 | GSO_ECN, 1428))));
        let h = Header::read(gso[..vnet::LEN].try_into().unwrap());
        assert_eq!(h.gso_type, GSO_TCPV4 | GSO_ECN);
        assert_eq!((h.gso_size, h.csum_start, h.csum_offset), (1428, 20, 16));
        assert_eq!(h.hdr_len, 40);
        assert_eq!(h.flags, NEEDS_CSUM);
        let finished = kernel_finishes(&gso);
        assert_eq!(finished.len(), v6.len() - 20);
        // The reference: the same segment, whole checksum, a settings with a big MTU so the
        // translator does not answer Packet Too Big.
        let mut big = s.clone();
        big.mtu = u16::MAX;
        let reference = one(&big, &whole(&v6));
        assert_eq!(
            Header::read(reference[..vnet::LEN].try_into().unwrap()),
            Header::default()
        );
        // IPv4 ID is per translation (a counter); everything else must match.
        let (mut a, mut b) = (finished, reference[vnet::LEN..].to_vec());
        for p in [&mut a, &mut b] {
            p[4..6].fill(0);
            p[10..12].fill(0);
        }
        assert_eq!(a, b);
        assert_eq!(&a[12..16], &HOST6_AS_V4.octets());
    }

    /// Stateful settings: h6's /63 shares 192.0.2.16/29, block 0 (h6's /64) on ports 1024-3039.
    fn stateful_settings() -> (Settings, Sessions) {
        use nat64_xlat::stateful::{Layout, Nat64, StatefulConfig};
        let mut s = settings();
        s.eam.clear();
        let layout = Layout::new(
            &["192.0.2.16/29".parse().unwrap()],
            1024..=65535,
            &["2001:db8:6::/63".parse().unwrap()],
            64,
            2016,
        )
        .unwrap();
        let cfg = StatefulConfig::new(layout);
        s.stateful = Some(cfg.clone());
        let sessions = Sessions {
            table: Mutex::new(Nat64::new(cfg)),
            epoch: Instant::now(),
        };
        (s, sessions)
    }

    /// An IPv4 segment from `tcp4` with other ports, its checksum updated.
    fn with_ports(mut p: Vec<u8>, sport: u16, dport: u16) -> Vec<u8> {
        let c = u16::from_be_bytes([p[36], p[37]]);
        let c = checksum::update(c, 40000 + 80, u32::from(sport) + u32::from(dport));
        p[20..22].copy_from_slice(&sport.to_be_bytes());
        p[22..24].copy_from_slice(&dport.to_be_bytes());
        p[36..38].copy_from_slice(&c.to_be_bytes());
        p
    }

    /// Turns a PSH+ACK segment from `tcp6`/`tcp4` into a SYN, its checksum updated.
    fn syn(mut p: Vec<u8>) -> Vec<u8> {
        let l4 = if p[0] >> 4 == 6 { 40 } else { 20 };
        p[l4 + 13] = 0x02;
        let c = u16::from_be_bytes([p[l4 + 16], p[l4 + 17]]);
        let c = checksum::update(c, 0x5018, 0x5002);
        p[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
        p
    }

    // The session's port goes into a super-packet as well: with a partial checksum only the
    // pseudo-header part is in the field, so the port change must not be patched into it, and
    // once the kernel finishes the checksum the packet equals the whole-packet translation.
    #[test]
    fn stateful_super_packet_gets_the_session_port_and_a_right_checksum() {
        let (mut s, sessions) = stateful_settings();
        s.mtu = u16::MAX;
        let step = Step::new(&s, 1, Some(&sessions));
        let mut l = Local::default();
        let opened = written(
            &step,
            &whole(&syn(tcp6(HOST6, REMOTE4_AS_V6, 1, b""))),
            &mut l,
        );
        assert_eq!(opened.len(), 1, "{:?}", l.counts);
        let port = u16::from_be_bytes([opened[0][vnet::LEN + 20], opened[0][vnet::LEN + 21]]);
        assert!((1024..=3039).contains(&port), "{port}");

        let payload: Vec<u8> = (0..60_000u32).map(|i| (i * 13) as u8).collect();
        let v6 = tcp6(HOST6, REMOTE4_AS_V6, 1000, &payload);
        let gso = written(&step, &partial(v6.clone(), Some((GSO_TCPV6, 1428))), &mut l);
        let reference = written(&step, &whole(&v6), &mut l);
        let (mut a, mut b) = (kernel_finishes(&gso[0]), reference[0][vnet::LEN..].to_vec());
        for p in [&mut a, &mut b] {
            p[4..6].fill(0);
            p[10..12].fill(0);
        }
        assert_eq!(a, b);
        assert_eq!(&a[12..16], &[192, 0, 2, 16]);
        assert_eq!(u16::from_be_bytes([a[20], a[21]]), port);
        // The whole packet's checksum is right.
        let pseudo = checksum::pseudo4(
            Ipv4Addr::new(192, 0, 2, 16),
            REMOTE4,
            6,
            (b.len() - 20) as u32,
        );
        assert_eq!(
            checksum::finish(checksum::add(pseudo, checksum::sum(&b[20..]))),
            0
        );

        // The reply comes back to h6's own port.
        let back = with_ports(
            tcp4(REMOTE4, Ipv4Addr::new(192, 0, 2, 16), 5, b"ok"),
            80,
            port,
        );
        let reply = written(&step, &whole(&back), &mut l);
        assert_eq!(reply.len(), 1, "{:?}", l.counts);
        let v6r = &reply[0][vnet::LEN..];
        assert_eq!(&v6r[24..40], &HOST6.octets());
        assert_eq!(u16::from_be_bytes([v6r[42], v6r[43]]), 40000);
    }

    // A source outside the customers is refused with ICMPv6 1/5, counted by reason.
    #[test]
    fn stateful_refuses_a_source_outside_the_customers() {
        let (s, sessions) = stateful_settings();
        let step = Step::new(&s, 1, Some(&sessions));
        let mut l = Local::default();
        let stranger = Ipv6Addr::new(0x2001, 0xdb8, 7, 0, 0, 0, 0, 1);
        let w = written(
            &step,
            &whole(&syn(tcp6(stranger, REMOTE4_AS_V6, 1, b""))),
            &mut l,
        );
        assert_eq!(w.len(), 1);
        let e = &w[0][vnet::LEN..];
        assert_eq!((e[6], e[40], e[41]), (58, 1, 5));
        assert_eq!(
            l.counts.drops[PacketDrop::Translator(DropReason::NotCustomer).slot()],
            1
        );
    }

    #[test]
    fn tcp_super_packet_4to6() {
        let s = settings();
        let payload = vec![0xa5u8; 30_000];
        let v4 = tcp4(REMOTE4, HOST6_AS_V4, 7, &payload);
        let gso = one(&s, &partial(v4.clone(), Some((GSO_TCPV4, 1000))));
        let h = Header::read(gso[..vnet::LEN].try_into().unwrap());
        assert_eq!(
            (h.gso_type, h.gso_size, h.csum_start, h.hdr_len),
            (GSO_TCPV6, 1000, 40, 60)
        );
        let finished = kernel_finishes(&gso);
        assert_eq!(finished.len(), v4.len() + 20);
        assert_eq!(&finished[8..24], &REMOTE4_AS_V6.octets());
        assert_eq!(&finished[24..40], &HOST6.octets());
        let pseudo = checksum::pseudo6(REMOTE4_AS_V6, HOST6, 6, (finished.len() - 40) as u32);
        assert_eq!(
            checksum::finish(checksum::add(pseudo, checksum::sum(&finished[40..]))),
            0
        );
    }

    // A partial checksum on an ordinary packet stays partial, redone for the new addresses.
    #[test]
    fn partial_checksum_on_a_plain_packet() {
        let s = settings();
        let v6 = tcp6(HOST6, REMOTE4_AS_V6, 5, b"hello");
        let w = one(&s, &partial(v6, None));
        let h = Header::read(w[..vnet::LEN].try_into().unwrap());
        assert_eq!(
            (h.flags, h.gso_type, h.csum_start, h.csum_offset),
            (NEEDS_CSUM, 0, 20, 16)
        );
        let p = kernel_finishes(&w);
        let pseudo = checksum::pseudo4(HOST6_AS_V4, REMOTE4, 6, 25);
        assert_eq!(
            checksum::finish(checksum::add(pseudo, checksum::sum(&p[20..]))),
            0
        );
    }

    // A bad checksum is not repaired by the offload bookkeeping: without NEEDS_CSUM the
    // translator's incremental update keeps it exactly as wrong.
    #[test]
    fn a_wrong_checksum_stays_wrong() {
        let s = settings();
        let mut v6 = tcp6(HOST6, REMOTE4_AS_V6, 5, b"hello");
        v6[56] ^= 0x40;
        let w = one(&s, &whole(&v6));
        let p = &w[vnet::LEN..];
        let pseudo = checksum::pseudo4(HOST6_AS_V4, REMOTE4, 6, 25);
        assert_ne!(
            checksum::finish(checksum::add(pseudo, checksum::sum(&p[20..]))),
            0
        );
    }

    // A super-packet that must take the copying path (here: its hop limit runs out) is cut into
    // its segments first, so every ICMP error quotes an ordinary packet with a whole checksum.
    #[test]
    fn expired_super_packet_is_cut_and_each_segment_gets_time_exceeded() {
        let s = settings();
        let mut v6 = tcp6(HOST6, REMOTE4_AS_V6, 5, &[1u8; 2500]);
        v6[7] = 1;
        let step = Step::new(&s, 1, None);
        let mut l = Local::default();
        let w = written(&step, &partial(v6.clone(), Some((GSO_TCPV6, 1000))), &mut l);
        assert_eq!(w.len(), 3);
        for (i, err) in w.iter().enumerate() {
            let err = &err[vnet::LEN..];
            assert_eq!((err[6], err[40], err[41]), (58, 3, 0)); // ICMPv6 Time Exceeded
            assert_eq!(&err[8..24], &s.own_v6.unwrap().octets());
            let quoted = &err[48..];
            let seq = u32::from_be_bytes(quoted[44..48].try_into().unwrap());
            assert_eq!(seq, 5 + 1000 * i as u32);
            let l4len = if i == 2 { 520 } else { 1020 };
            assert_eq!(u16::from_be_bytes([quoted[4], quoted[5]]), l4len);
        }
        // The whole segment is quoted when it fits the 1280-byte error: its checksum is whole.
        let last = &w[2][vnet::LEN + 48..];
        let pseudo = checksum::pseudo6(HOST6, REMOTE4_AS_V6, 6, 520);
        assert_eq!(
            checksum::finish(checksum::add(pseudo, checksum::sum(&last[40..]))),
            0
        );
        assert_eq!(l.counts.icmp_errors, [3, 0]);
    }

    // Hairpinned super-packets leave as ordinary segments, each within the MTU.
    #[test]
    fn hairpinned_super_packet_leaves_as_segments() {
        let mut s = settings();
        let other6: Ipv6Addr = "2001:db8:6::20".parse().unwrap();
        let other4 = Ipv4Addr::new(192, 0, 2, 20);
        s.eam.push(eam(other4, other6));
        let v6 = tcp6(
            HOST6,
            "64:ff9b::c000:214".parse().unwrap(),
            9,
            &[7u8; 20_000],
        );
        let step = Step::new(&s, 1, None);
        let mut l = Local::default();
        let w = written(&step, &partial(v6, Some((GSO_TCPV6, 1440))), &mut l);
        assert_eq!(w.len(), 14, "{:?}", l.counts);
        for seg in &w {
            let p = &seg[vnet::LEN..];
            assert!(p.len() <= 1500);
            assert_eq!(&p[24..40], &other6.octets());
        }
        assert_eq!(l.counts.hairpinned, 14);
    }

    // ICMP errors are rate-limited per queue: a flood of expiring packets gets at most the burst.
    #[test]
    fn icmp_errors_are_rate_limited() {
        let s = settings();
        let step = Step::new(&s, 1, None);
        let mut l = Local::default();
        let mut v6 = tcp6(HOST6, REMOTE4_AS_V6, 5, b"x");
        v6[7] = 1;
        let sent: usize = (0..200)
            .map(|_| written(&step, &whole(&v6), &mut l).len())
            .sum();
        assert!(
            (ICMP_BURST as usize..ICMP_BURST as usize + 5).contains(&sent),
            "{sent}"
        );
        assert_eq!(l.counts.icmp_limited as usize, 200 - sent);
    }

    // 4→6 super-packets shrink their segments to fit the MTU rather than bounce off it.
    #[test]
    fn super_packet_4to6_segments_fit_the_mtu() {
        let s = settings();
        let v4 = tcp4(REMOTE4, HOST6_AS_V4, 7, &[3u8; 10_000]);
        let gso = one(&s, &partial(v4, Some((GSO_TCPV4, 1460))));
        let h = Header::read(gso[..vnet::LEN].try_into().unwrap());
        assert_eq!(h.gso_size, 1440);
    }

    #[test]
    fn offload_headers_we_never_negotiated_are_dropped() {
        let s = settings();
        let step = Step::new(&s, 1, None);
        let v6 = tcp6(HOST6, REMOTE4_AS_V6, 5, &[1u8; 3000]);
        let mut bad = Vec::new();
        // UDP GSO on a TCP packet; TCPV4 on IPv6; GSO without NEEDS_CSUM; a checksum offset
        // past the end; csum_start not at the TCP header.
        let mut r = partial(v6.clone(), Some((5, 1000)));
        bad.push(r.clone());
        r[1] = GSO_TCPV4;
        bad.push(r.clone());
        r[1] = GSO_TCPV6;
        r[0] = 0;
        bad.push(r.clone());
        r[0] = NEEDS_CSUM;
        r[8..10].copy_from_slice(&60000u16.to_le_bytes());
        bad.push(r.clone());
        r[8..10].copy_from_slice(&16u16.to_le_bytes());
        r[6..8].copy_from_slice(&44u16.to_le_bytes());
        bad.push(r);
        for read in bad {
            let mut l = Local::default();
            assert!(written(&step, &read, &mut l).is_empty());
            assert_eq!(l.counts.drops[PacketDrop::Offload.slot()], 1);
        }
        // A bogus hdr_len is only a hint: it is recomputed, never trusted.
        let mut r = partial(v6, Some((GSO_TCPV6, 1000)));
        r[2..4].copy_from_slice(&9999u16.to_le_bytes());
        let w = one(&s, &r);
        assert_eq!(Header::read(w[..vnet::LEN].try_into().unwrap()).hdr_len, 40);
    }

    #[test]
    fn not_ip_and_short_reads_are_counted() {
        let s = settings();
        let step = Step::new(&s, 1, None);
        for read in [
            &[][..],
            &[0u8; 5][..],
            &[0u8; 10][..],
            &[0u8; 11][..],
            &[0u8; 60][..],
        ] {
            let mut l = Local::default();
            assert!(written(&step, read, &mut l).is_empty());
            assert_eq!(l.counts.drops[PacketDrop::NotIp.slot()], 1, "{read:?}");
        }
        let mut l = Local::default();
        let mut v6 = tcp6(HOST6, REMOTE4_AS_V6, 5, b"x");
        v6[7] = 0;
        let _ = written(&step, &whole(&v6), &mut l);
        assert_eq!(
            l.counts.drops[PacketDrop::Translator(DropReason::Expired).slot()],
            1
        );
    }
}
