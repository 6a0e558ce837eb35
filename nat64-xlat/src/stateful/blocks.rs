//! Per-block state: which of its ports each protocol uses, its live sessions, and its rate of
//! new ones. Fixed at construction: a bit per port and protocol, a few words per block.

use alloc::vec;
use alloc::vec::Vec;

use super::table::Proto;

#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    sessions: u32,
    bibs: u32,
    /// The second `opened` counts for.
    second: u32,
    opened: u32,
    /// Where each protocol's next port search starts, as an offset in the block.
    cursor: [u16; 3],
}

/// All blocks' state.
#[derive(Debug)]
pub(crate) struct Blocks {
    counters: Vec<Counters>,
    /// `words` u64s per block and protocol.
    used: Vec<u64>,
    words: usize,
    ports: u16,
}

/// Why a block refused a new session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Sessions,
    Rate,
    Exhausted,
}

impl From<Refusal> for crate::DropReason {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Sessions => crate::DropReason::SessionLimit,
            Refusal::Rate => crate::DropReason::SessionRate,
            Refusal::Exhausted => crate::DropReason::BlockExhausted,
        }
    }
}

impl Blocks {
    pub(crate) fn new(blocks: u32, ports_per_block: u16) -> Self {
        let words = usize::from(ports_per_block).div_ceil(64);
        Blocks {
            counters: vec![Counters::default(); blocks as usize],
            used: vec![0; blocks as usize * 3 * words],
            words,
            ports: ports_per_block,
        }
    }

    pub(crate) fn memory(&self) -> usize {
        self.counters.len() * size_of::<Counters>() + self.used.len() * 8
    }

    /// Whether block `b` may open one more session now.
    pub(crate) fn admit(
        &mut self,
        b: u32,
        now: u32,
        max: u32,
        per_second: u32,
    ) -> Result<(), Refusal> {
        let c = &mut self.counters[b as usize];
        if c.sessions >= max {
            return Err(Refusal::Sessions);
        }
        if per_second != 0 {
            // Forward only: two queues' clocks may straddle a second.
            if now > c.second {
                c.second = now;
                c.opened = 0;
            }
            if c.opened >= per_second {
                return Err(Refusal::Rate);
            }
        }
        Ok(())
    }

    pub(crate) fn opened(&mut self, b: u32) {
        let c = &mut self.counters[b as usize];
        c.sessions += 1;
        c.opened += 1;
    }

    pub(crate) fn closed(&mut self, b: u32) {
        let c = &mut self.counters[b as usize];
        c.sessions = c.sessions.saturating_sub(1);
    }

    /// Takes a free port of block `b` (its first port `first`) for a binding from `source_port`:
    /// ports 0–1023 only for sources in 0–1023, which get one above where the block has none, and
    /// the others only above (RFC 6146 §3.5.1.1),
    /// the source's parity when one is free (RFC 4787 REQ-3), and the search goes round the
    /// block from where the last one stopped, so a freed port is taken again as late as possible
    /// (RFC 6888 REQ-8). ICMP identifiers are not ports: any is fine. Returns whether this is
    /// the block's first binding too.
    pub(crate) fn take_port(
        &mut self,
        b: u32,
        proto: Proto,
        first: u16,
        source_port: u16,
    ) -> Result<(u16, bool), Refusal> {
        let n = self.ports;
        let line = 1024u16.saturating_sub(first).min(n);
        // A well-known source tries the block's well-known ports, then those above (RFC 6146
        // §3.5.1.1 allows another range; refusing would cut off, e.g., every ntpd on port 123).
        // A port above 1023 never gets one below.
        let ranges = if proto == Proto::Icmp {
            [(0, n), (0, 0)]
        } else if source_port < 1024 {
            [(0, line), (line, n)]
        } else {
            [(line, n), (0, 0)]
        };
        let base = (b as usize * 3 + proto as usize) * self.words;
        for (lo, hi) in ranges.into_iter().filter(|(lo, hi)| lo < hi) {
            let c = &self.counters[b as usize];
            let start = c.cursor[proto as usize].clamp(lo, hi - 1);
            let used = &self.used[base..base + self.words];
            let free = |off: u16| used[usize::from(off) / 64] & (1 << (off % 64)) == 0;
            let want = |off: u16, strict: bool| {
                free(off)
                    && (!strict
                        || proto == Proto::Icmp
                        || (first.wrapping_add(off) ^ source_port) & 1 == 0)
            };
            let found = [true, false]
                .into_iter()
                .find_map(|strict| (start..hi).chain(lo..start).find(|&off| want(off, strict)));
            let Some(off) = found else { continue };
            self.used[base + usize::from(off) / 64] |= 1 << (off % 64);
            let c = &mut self.counters[b as usize];
            // The well-known range is rare and small: it does not move the round.
            if hi == n {
                c.cursor[proto as usize] = if off + 1 >= hi { lo } else { off + 1 };
            }
            c.bibs += 1;
            return Ok((first + off, c.bibs == 1));
        }
        Err(Refusal::Exhausted)
    }

    /// Gives back a port; returns whether the block is now unused.
    pub(crate) fn free_port(&mut self, b: u32, proto: Proto, first: u16, port: u16) -> bool {
        let off = port.wrapping_sub(first);
        if off >= self.ports {
            return false;
        }
        let base = (b as usize * 3 + proto as usize) * self.words;
        self.used[base + usize::from(off) / 64] &= !(1 << (off % 64));
        let c = &mut self.counters[b as usize];
        c.bibs = c.bibs.saturating_sub(1);
        c.bibs == 0
    }

    /// Whether `port` of block `b` is taken (for tests and checks).
    #[cfg(test)]
    pub(crate) fn is_taken(&self, b: u32, proto: Proto, first: u16, port: u16) -> bool {
        let off = port.wrapping_sub(first);
        let base = (b as usize * 3 + proto as usize) * self.words;
        off < self.ports && self.used[base + usize::from(off) / 64] & (1 << (off % 64)) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parity_range_and_round_robin() {
        let mut b = Blocks::new(2, 8);
        // Block at 1020..=1027 straddles the well-known range.
        let (p, first_use) = b.take_port(1, Proto::Udp, 1020, 5001).unwrap();
        assert_eq!((p, first_use), (1025, true));
        let (p, first_use) = b.take_port(1, Proto::Udp, 1020, 5000).unwrap();
        assert_eq!((p, first_use), (1026, false));
        // A well-known source port only gets 1020..=1023.
        let (p, _) = b.take_port(1, Proto::Udp, 1020, 53).unwrap();
        assert_eq!(p, 1023);
        // Freed ports are taken again last: the search goes on past them.
        assert!(!b.free_port(1, Proto::Udp, 1020, 1025));
        let (p, _) = b.take_port(1, Proto::Udp, 1020, 5001).unwrap();
        assert_eq!(p, 1027);
        // Odd ports above 1023: 1025 only; then any parity.
        let (p, _) = b.take_port(1, Proto::Udp, 1020, 5001).unwrap();
        assert_eq!(p, 1025);
        let (p, _) = b.take_port(1, Proto::Udp, 1020, 5001).unwrap();
        assert_eq!(p, 1024);
        assert_eq!(
            b.take_port(1, Proto::Udp, 1020, 5001),
            Err(Refusal::Exhausted)
        );
        // Other protocols and blocks are apart.
        assert!(b.take_port(1, Proto::Tcp, 1020, 5001).is_ok());
        assert!(b.take_port(0, Proto::Udp, 1100, 5001).is_ok());
        // A block all below 1024 has nothing for an ephemeral source port.
        assert_eq!(
            b.take_port(0, Proto::Udp, 1012, 5001),
            Err(Refusal::Exhausted)
        );
        assert!(b.is_taken(1, Proto::Udp, 1020, 1024));
    }

    #[test]
    fn limits() {
        let mut b = Blocks::new(1, 64);
        assert_eq!(b.admit(0, 10, 2, 1), Ok(()));
        b.opened(0);
        assert_eq!(b.admit(0, 10, 2, 1), Err(Refusal::Rate));
        assert_eq!(b.admit(0, 11, 2, 1), Ok(()));
        b.opened(0);
        assert_eq!(b.admit(0, 12, 2, 0), Err(Refusal::Sessions));
        b.closed(0);
        assert_eq!(b.admit(0, 12, 2, 0), Ok(()));
    }

    #[test]
    fn a_well_known_source_falls_back_above_when_the_low_ports_are_taken() {
        // Block 1020..=1027: four well-known ports, four above.
        let mut b = Blocks::new(1, 8);
        for want in [1021, 1023, 1020, 1022] {
            assert_eq!(b.take_port(0, Proto::Udp, 1020, 123).unwrap().0, want);
        }
        assert_eq!(b.take_port(0, Proto::Udp, 1020, 123).unwrap().0, 1025);
        // Never the other way round.
        let mut b = Blocks::new(1, 8);
        for _ in 0..4 {
            b.take_port(0, Proto::Udp, 1020, 40000).unwrap();
        }
        assert_eq!(
            b.take_port(0, Proto::Udp, 1020, 40000),
            Err(Refusal::Exhausted)
        );
    }

    #[test]
    fn icmp_identifiers_take_any_port() {
        let mut b = Blocks::new(1, 4);
        for _ in 0..4 {
            b.take_port(0, Proto::Icmp, 0, 7).unwrap();
        }
        assert_eq!(b.take_port(0, Proto::Icmp, 0, 7), Err(Refusal::Exhausted));
    }
}
