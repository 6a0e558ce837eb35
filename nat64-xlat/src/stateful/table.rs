//! The BIB and session tables (RFC 6146 §3.1, §3.2): fixed arrays taken at construction, found
//! through chained hash buckets both ways, expired by a wheel of one-second slots.
//!
//! A BIB entry binds an IPv6 source (address, port) to a pool4 port of its customer's block, per
//! protocol (endpoint-independent mapping: one binding for every remote). A session adds the
//! remote IPv4 endpoint. Entries are indexes into the arrays, `NONE` the null link.

use alloc::vec;
use alloc::vec::Vec;

/// The null link.
pub(crate) const NONE: u32 = u32::MAX;

/// Transport protocols with sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Proto {
    /// TCP.
    Tcp = 0,
    /// UDP.
    Udp = 1,
    /// ICMP queries (echo), the identifier as the port.
    Icmp = 2,
}

/// A BIB entry: 36 bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bib {
    pub v6: [u8; 16],
    pub port6: u16,
    pub port4: u16,
    pub block: u32,
    /// Live sessions on this binding; the entry goes with the last.
    pub sessions: u16,
    pub proto: u8,
    /// Chain in the IPv6-side buckets, or the free list.
    next6: u32,
    /// Chain in the IPv4-side buckets.
    next4: u32,
}

/// A session: 24 bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Session {
    pub bib: u32,
    pub remote: u32,
    pub rport: u16,
    /// The TCP state ([`super::tcp::State`] as a byte); 0 for UDP and ICMP.
    pub state: u8,
    pub proto: u8,
    /// Second of the clock at which it expires.
    pub expires: u32,
    /// Chain in the session buckets, or the free list.
    next: u32,
    /// Next in its wheel slot.
    wheel: u32,
}

/// Slots of the expiry wheel: one per second, so no session waits in a slot more than this long
/// before it is looked at again.
const WHEEL: u32 = 256;

/// The tables, sized once.
#[derive(Debug)]
pub(crate) struct Table {
    bibs: Vec<Bib>,
    sessions: Vec<Session>,
    by6: Vec<u32>,
    by4: Vec<u32>,
    by_remote: Vec<u32>,
    free_bib: u32,
    free_session: u32,
    wheel: Vec<u32>,
    /// The last second the wheel has been turned to.
    turned: Option<u32>,
    /// Longest a session sits in one slot: the shortest timeout.
    horizon: u32,
    key: u64,
    pub live_sessions: u32,
    pub live_bibs: u32,
}

#[inline(always)]
fn mix(h: u64, v: u64) -> u64 {
    (h ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29)
}

impl Table {
    /// Room for `capacity` sessions and as many BIB entries; `horizon` is the shortest timeout, in
    /// seconds: no session waits longer than that in one slot, so neither a refresh under that
    /// timeout nor a move to TRANS can leave it in a slot past its expiry.
    pub(crate) fn new(capacity: u32, horizon: u32, key: u64) -> Self {
        let cap = capacity.max(1) as usize;
        let buckets = cap.next_power_of_two();
        let mut bibs = vec![
            Bib {
                v6: [0; 16],
                port6: 0,
                port4: 0,
                block: 0,
                sessions: 0,
                proto: 0,
                next6: NONE,
                next4: NONE,
            };
            cap
        ];
        let mut sessions = vec![
            Session {
                bib: NONE,
                remote: 0,
                rport: 0,
                state: 0,
                proto: 0,
                expires: 0,
                next: NONE,
                wheel: NONE,
            };
            cap
        ];
        for i in 0..cap {
            let next = if i + 1 < cap { (i + 1) as u32 } else { NONE };
            bibs[i].next6 = next;
            sessions[i].next = next;
        }
        Table {
            bibs,
            sessions,
            by6: vec![NONE; buckets],
            by4: vec![NONE; buckets],
            by_remote: vec![NONE; buckets],
            free_bib: 0,
            free_session: 0,
            wheel: vec![NONE; WHEEL as usize],
            turned: None,
            horizon: horizon.clamp(1, WHEEL - 16),
            key,
            live_sessions: 0,
            live_bibs: 0,
        }
    }

    /// Bytes the table took, for the operator's arithmetic.
    pub(crate) fn memory(&self) -> usize {
        self.bibs.len() * size_of::<Bib>()
            + self.sessions.len() * size_of::<Session>()
            + (self.by6.len() + self.by4.len() + self.by_remote.len() + self.wheel.len()) * 4
    }

    /// A new horizon. When it shrinks (shorter timeouts), every session is put back in the slot
    /// the new one allows, so a session refreshed under the new timeouts is looked at in time.
    pub(crate) fn set_horizon(&mut self, horizon: u32) {
        let new = horizon.clamp(1, WHEEL - 16);
        let shrinks = new < self.horizon;
        self.horizon = new;
        if shrinks {
            let now = self.turned.unwrap_or(0);
            for slot in 0..WHEEL as usize {
                let mut i = core::mem::replace(&mut self.wheel[slot], NONE);
                while i != NONE {
                    let next = self.sessions[i as usize].wheel;
                    self.place(i, now);
                    i = next;
                }
            }
        }
    }

    pub(crate) fn is_full(&self) -> bool {
        self.free_session == NONE || self.free_bib == NONE
    }

    #[inline(always)]
    fn mask(&self) -> usize {
        self.by6.len() - 1
    }

    #[inline(always)]
    fn hash6(&self, proto: Proto, v6: u128, port: u16) -> usize {
        let b = v6;
        let h = mix(self.key ^ proto as u64, b as u64);
        let h = mix(h, (b >> 64) as u64 ^ (u64::from(port) << 48));
        (h >> 20) as usize & self.mask()
    }

    #[inline(always)]
    fn hash4(&self, proto: Proto, block: u32, port: u16) -> usize {
        let h = mix(
            self.key ^ 0x55 ^ proto as u64,
            u64::from(block) << 16 | u64::from(port),
        );
        (h >> 20) as usize & self.mask()
    }

    #[inline(always)]
    fn hash_remote(&self, bib: u32, remote: u32) -> usize {
        let h = mix(self.key ^ 0xaa, u64::from(bib) << 32 | u64::from(remote));
        (h >> 20) as usize & self.mask()
    }

    /// The binding of an IPv6 source.
    #[inline]
    pub(crate) fn find6(&self, proto: Proto, v6: u128, port: u16) -> Option<u32> {
        let octets = v6.to_be_bytes();
        let mut i = self.by6[self.hash6(proto, v6, port)];
        while i != NONE {
            let b = &self.bibs[i as usize];
            if b.port6 == port && b.proto == proto as u8 && b.v6 == octets {
                return Some(i);
            }
            i = b.next6;
        }
        None
    }

    /// The binding of a pool4 port of `block`.
    #[inline]
    pub(crate) fn find4(&self, proto: Proto, block: u32, port: u16) -> Option<u32> {
        let mut i = self.by4[self.hash4(proto, block, port)];
        while i != NONE {
            let b = &self.bibs[i as usize];
            if b.port4 == port && b.block == block && b.proto == proto as u8 {
                return Some(i);
            }
            i = b.next4;
        }
        None
    }

    /// The session of `bib` with this remote endpoint.
    #[inline]
    pub(crate) fn find_session(&self, bib: u32, remote: u32, rport: u16) -> Option<u32> {
        let mut i = self.by_remote[self.hash_remote(bib, remote)];
        while i != NONE {
            let s = &self.sessions[i as usize];
            if s.bib == bib && s.remote == remote && s.rport == rport {
                return Some(i);
            }
            i = s.next;
        }
        None
    }

    /// How many sessions `bib` has with `remote` (any port), counted up to `cap`: they share one
    /// hash chain.
    pub(crate) fn pair_sessions(&self, bib: u32, remote: u32, cap: usize) -> usize {
        let mut n = 0;
        let mut i = self.by_remote[self.hash_remote(bib, remote)];
        while i != NONE && n < cap {
            let s = &self.sessions[i as usize];
            n += usize::from(s.bib == bib && s.remote == remote);
            i = s.next;
        }
        n
    }

    /// Whether `bib` has a session with `remote`, any port (address-dependent filtering).
    pub(crate) fn talks_to(&self, bib: u32, remote: u32) -> bool {
        let mut i = self.by_remote[self.hash_remote(bib, remote)];
        while i != NONE {
            let s = &self.sessions[i as usize];
            if s.bib == bib && s.remote == remote {
                return true;
            }
            i = s.next;
        }
        false
    }

    pub(crate) fn bib(&self, i: u32) -> &Bib {
        &self.bibs[i as usize]
    }

    pub(crate) fn session(&self, i: u32) -> &Session {
        &self.sessions[i as usize]
    }

    pub(crate) fn session_mut(&mut self, i: u32) -> &mut Session {
        &mut self.sessions[i as usize]
    }

    /// A new binding; the caller checked [`Table::is_full`] and chose a free `port4`.
    pub(crate) fn add_bib(
        &mut self,
        proto: Proto,
        v6: u128,
        port6: u16,
        block: u32,
        port4: u16,
    ) -> Option<u32> {
        let i = self.free_bib;
        if i == NONE {
            return None;
        }
        let h6 = self.hash6(proto, v6, port6);
        let h4 = self.hash4(proto, block, port4);
        let b = &mut self.bibs[i as usize];
        self.free_bib = b.next6;
        *b = Bib {
            v6: v6.to_be_bytes(),
            port6,
            port4,
            block,
            sessions: 0,
            proto: proto as u8,
            next6: self.by6[h6],
            next4: self.by4[h4],
        };
        self.by6[h6] = i;
        self.by4[h4] = i;
        self.live_bibs += 1;
        Some(i)
    }

    /// A new session on `bib`, expiring at `expires`; `now` places it on the wheel.
    pub(crate) fn add_session(
        &mut self,
        bib: u32,
        remote: u32,
        rport: u16,
        state: u8,
        now: u32,
        expires: u32,
    ) -> Option<u32> {
        let i = self.free_session;
        if i == NONE {
            return None;
        }
        let h = self.hash_remote(bib, remote);
        let proto = self.bibs[bib as usize].proto;
        let s = &mut self.sessions[i as usize];
        self.free_session = s.next;
        *s = Session {
            bib,
            remote,
            rport,
            state,
            proto,
            expires,
            next: self.by_remote[h],
            wheel: NONE,
        };
        self.by_remote[h] = i;
        self.bibs[bib as usize].sessions += 1;
        self.live_sessions += 1;
        self.place(i, now);
        Some(i)
    }

    fn place(&mut self, i: u32, now: u32) {
        let s = &self.sessions[i as usize];
        let at = s
            .expires
            .min(now.wrapping_add(self.horizon))
            .max(now.wrapping_add(1));
        let slot = (at % WHEEL) as usize;
        self.sessions[i as usize].wheel = self.wheel[slot];
        self.wheel[slot] = i;
    }

    /// Turns the wheel to `now`: every session in a slot that came due is either handed to
    /// `due` (which says whether to remove it, after perhaps moving its expiry on) or put back
    /// in the slot of its expiry. Removed sessions are passed to `removed` with their BIB, before
    /// the entries are freed.
    pub(crate) fn turn(
        &mut self,
        now: u32,
        mut due: impl FnMut(&mut Session) -> bool,
        mut removed: impl FnMut(&Session, &Bib, bool),
    ) -> u32 {
        let from = match self.turned {
            // The first turn looks at every slot: sessions may have been placed before it.
            None if now == 0 => {
                self.turned = Some(now);
                return 0;
            }
            None => now.saturating_sub(WHEEL),
            Some(t) if now <= t => return 0,
            Some(t) => t,
        };
        let steps = (now - from).min(WHEEL);
        let mut gone = 0;
        for k in 1..=steps {
            let second = if steps == WHEEL && now - from > WHEEL {
                now - WHEEL + k
            } else {
                from + k
            };
            let slot = (second % WHEEL) as usize;
            let mut i = core::mem::replace(&mut self.wheel[slot], NONE);
            while i != NONE {
                let next = self.sessions[i as usize].wheel;
                let s = &mut self.sessions[i as usize];
                if s.expires <= now && due(s) {
                    let bib = s.bib;
                    let last = self.bibs[bib as usize].sessions == 1;
                    removed(&self.sessions[i as usize], &self.bibs[bib as usize], last);
                    self.remove_session(i);
                    gone += 1;
                } else {
                    self.place(i, now);
                }
                i = next;
            }
        }
        self.turned = Some(now);
        gone
    }

    fn remove_session(&mut self, i: u32) {
        let s = self.sessions[i as usize];
        let h = self.hash_remote(s.bib, s.remote);
        if self.by_remote[h] == i {
            self.by_remote[h] = s.next;
        } else {
            let mut j = self.by_remote[h];
            while j != NONE {
                let n = self.sessions[j as usize].next;
                if n == i {
                    self.sessions[j as usize].next = s.next;
                    break;
                }
                j = n;
            }
        }
        let e = &mut self.sessions[i as usize];
        e.bib = NONE;
        e.next = self.free_session;
        self.free_session = i;
        self.live_sessions -= 1;
        let b = &mut self.bibs[s.bib as usize];
        b.sessions -= 1;
        if b.sessions == 0 {
            self.remove_bib(s.bib);
        }
    }

    fn remove_bib(&mut self, i: u32) {
        let b = self.bibs[i as usize];
        let h6 = self.hash6(proto_of(b.proto), u128::from_be_bytes(b.v6), b.port6);
        let h4 = self.hash4(proto_of(b.proto), b.block, b.port4);
        if self.by6[h6] == i {
            self.by6[h6] = b.next6;
        } else {
            let mut j = self.by6[h6];
            while j != NONE {
                let n = self.bibs[j as usize].next6;
                if n == i {
                    self.bibs[j as usize].next6 = b.next6;
                    break;
                }
                j = n;
            }
        }
        if self.by4[h4] == i {
            self.by4[h4] = b.next4;
        } else {
            let mut j = self.by4[h4];
            while j != NONE {
                let n = self.bibs[j as usize].next4;
                if n == i {
                    self.bibs[j as usize].next4 = b.next4;
                    break;
                }
                j = n;
            }
        }
        self.bibs[i as usize].next6 = self.free_bib;
        self.free_bib = i;
        self.live_bibs -= 1;
    }
}

pub(crate) fn proto_of(p: u8) -> Proto {
    match p {
        0 => Proto::Tcp,
        1 => Proto::Udp,
        _ => Proto::Icmp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn entries_are_small() {
        assert_eq!(size_of::<Bib>(), 36);
        assert_eq!(size_of::<Session>(), 24);
    }

    #[test]
    fn add_find_expire_and_reuse() {
        let mut t = Table::new(4, 240, 7);
        let v6 = "2001:db8::1".parse::<Ipv6Addr>().unwrap().to_bits();
        let r = "192.0.2.9".parse::<Ipv4Addr>().unwrap().to_bits();
        let b = t.add_bib(Proto::Udp, v6, 5000, 3, 6000).unwrap();
        assert_eq!(t.find6(Proto::Udp, v6, 5000), Some(b));
        assert_eq!(t.find6(Proto::Tcp, v6, 5000), None);
        assert_eq!(t.find4(Proto::Udp, 3, 6000), Some(b));
        let s1 = t.add_session(b, r, 53, 0, 100, 400).unwrap();
        t.add_session(b, r, 54, 0, 100, 200).unwrap();
        assert_eq!(t.find_session(b, r, 53), Some(s1));
        assert!(t.talks_to(b, r));
        assert!(!t.talks_to(b, "192.0.2.10".parse::<Ipv4Addr>().unwrap().to_bits()));
        t.turn(100, |_| true, |_, _, _| {});
        let mut last = Vec::new();
        assert_eq!(t.turn(199, |_| true, |_, _, l| last.push(l)), 0);
        assert_eq!(t.turn(200, |_| true, |_, _, l| last.push(l)), 1);
        assert_eq!(t.find_session(b, r, 54), None);
        assert_eq!(t.find6(Proto::Udp, v6, 5000), Some(b));
        assert_eq!(t.turn(399, |_| true, |_, _, l| last.push(l)), 0);
        assert_eq!(t.turn(400, |_| true, |_, _, l| last.push(l)), 1);
        assert_eq!(last, [false, true]);
        assert_eq!(t.find6(Proto::Udp, v6, 5000), None);
        assert_eq!(t.find4(Proto::Udp, 3, 6000), None);
        assert_eq!((t.live_bibs, t.live_sessions), (0, 0));
        // Every entry comes back to the free lists.
        for k in 0..4u16 {
            let b = t.add_bib(Proto::Tcp, v6, k, 0, k).unwrap();
            t.add_session(b, r, 1, 0, 500, 900).unwrap();
        }
        assert!(t.is_full());
        assert!(t.add_bib(Proto::Tcp, v6, 9, 0, 9).is_none());
    }

    #[test]
    fn a_refreshed_session_outlives_its_slot_and_a_long_jump_expires_everything() {
        let mut t = Table::new(8, 240, 0);
        let v6 = "2001:db8::1".parse::<Ipv6Addr>().unwrap().to_bits();
        let r = "192.0.2.9".parse::<Ipv4Addr>().unwrap().to_bits();
        let b = t.add_bib(Proto::Tcp, v6, 1, 0, 1).unwrap();
        let s = t.add_session(b, r, 80, 3, 0, 7440).unwrap();
        t.turn(0, |_| true, |_, _, _| {});
        // Looked at every 240 s, kept until its expiry.
        for now in (10..7440).step_by(10) {
            assert_eq!(t.turn(now, |_| true, |_, _, _| {}), 0, "at {now}");
        }
        // Brought forward (RST): found within the horizon.
        t.session_mut(s).expires = 7440 + 240;
        assert_eq!(t.turn(7440 + 239, |_| true, |_, _, _| {}), 0);
        assert_eq!(t.turn(7440 + 240, |_| true, |_, _, _| {}), 1);
        // A jump of hours still visits every slot once.
        let b = t.add_bib(Proto::Udp, v6, 2, 0, 2).unwrap();
        t.add_session(b, r, 53, 0, 7700, 8000).unwrap();
        assert_eq!(t.turn(100_000, |_| true, |_, _, _| {}), 1);
    }
}
