//! Unsolicited inbound SYNs, held for a simultaneous open (RFC 6146 §3.5.2.2): a SYN from IPv4
//! that no binding or filter lets in waits 6 s for the IPv6 side's own SYN on the same ports;
//! then its sender gets ICMP Port Unreachable. A fixed handful of slots (Jool holds 10).

use alloc::vec::Vec;

use crate::DropReason;

/// SYNs held at once.
pub const HELD_SYNS: usize = 16;
/// Longest SYN held (IP and TCP headers with options); a longer one is not held.
const HELD_LEN: usize = 120;

/// The connection a held SYN is for, as the IPv4 side names it: the pool4 address and port it
/// went to, and its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Ends {
    pub local: u32,
    pub port: u16,
    pub remote: u32,
    pub rport: u16,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    live: bool,
    ends: Ends,
    since: u32,
    len: u8,
    bytes: [u8; HELD_LEN],
}

/// The held SYNs.
#[derive(Debug)]
pub(crate) struct Held {
    slots: Vec<Slot>,
}

impl Held {
    pub(crate) fn new() -> Self {
        let empty = Slot {
            live: false,
            ends: Ends::default(),
            since: 0,
            len: 0,
            bytes: [0; HELD_LEN],
        };
        Held {
            slots: alloc::vec![empty; HELD_SYNS],
        }
    }

    pub(crate) fn memory(&self) -> usize {
        self.slots.len() * size_of::<Slot>()
    }

    pub(crate) fn count(&self) -> u32 {
        self.slots.iter().filter(|s| s.live).count() as u32
    }

    /// Holds `pkt`, a SYN for `ends`, at `now`: [`DropReason::SynHeld`], or
    /// [`DropReason::NoSession`] when it is too long or every slot is taken (it is dropped).
    /// A retransmission of a SYN already held stays as it was.
    pub(crate) fn hold(&mut self, now: u32, ends: Ends, pkt: &[u8]) -> DropReason {
        if self.slots.iter().any(|s| s.live && s.ends == ends) {
            return DropReason::SynHeld;
        }
        if pkt.len() > HELD_LEN {
            return DropReason::NoSession;
        }
        let Some(s) = self.slots.iter_mut().find(|s| !s.live) else {
            return DropReason::NoSession;
        };
        s.live = true;
        s.ends = ends;
        s.since = now;
        s.len = pkt.len() as u8;
        s.bytes[..pkt.len()].copy_from_slice(pkt);
        DropReason::SynHeld
    }

    /// Lets go of the SYN held for `ends`, if any: a session for it opened. Returns whether one
    /// was held.
    pub(crate) fn release(&mut self, ends: Ends) -> bool {
        let mut found = false;
        for s in self.slots.iter_mut().filter(|s| s.live && s.ends == ends) {
            s.live = false;
            found = true;
        }
        found
    }

    /// Hands each SYN held `wait` seconds or more by `now` to `answer`, and lets it go.
    pub(crate) fn due(&mut self, now: u32, wait: u32, mut answer: impl FnMut(&[u8])) {
        for s in self.slots.iter_mut().filter(|s| s.live) {
            if now >= s.since.saturating_add(wait) {
                s.live = false;
                answer(&s.bytes[..usize::from(s.len)]);
            }
        }
    }
}
