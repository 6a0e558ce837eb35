//! The TCP session state machine of RFC 6146 §3.5.2.2, with RFC 7857 §2's RST rule: a pure
//! function of the state, the packet's direction and flags, giving the next state and which
//! lifetime to set.

/// A TCP session's state (CLOSED is the absence of a session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// The IPv6 side sent a SYN.
    V6Init = 1,
    /// The IPv4 side sent a SYN.
    V4Init = 2,
    /// Both SYNs seen.
    Established = 3,
    /// The IPv4 side sent a FIN.
    V4FinRcv = 4,
    /// The IPv6 side sent a FIN.
    V6FinRcv = 5,
    /// Both sides sent a FIN.
    BothFinRcv = 6,
    /// Reset, or idle past the established timeout: removed after the transitory timeout unless
    /// traffic resumes.
    Trans = 7,
}

impl State {
    pub(crate) fn from_u8(b: u8) -> Option<State> {
        Some(match b {
            1 => State::V6Init,
            2 => State::V4Init,
            3 => State::Established,
            4 => State::V4FinRcv,
            5 => State::V6FinRcv,
            6 => State::BothFinRcv,
            7 => State::Trans,
            _ => return None,
        })
    }
}

/// Which side a packet came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    V6,
    V4,
}

/// The flags that move the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Flags {
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
}

impl Flags {
    pub(crate) fn of(tcp_header: &[u8]) -> Flags {
        let f = tcp_header.get(13).copied().unwrap_or(0);
        Flags {
            fin: f & 0x01 != 0,
            syn: f & 0x02 != 0,
            rst: f & 0x04 != 0,
        }
    }
}

/// Which lifetime a transition sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lifetime {
    Established,
    Transitory,
    /// Leave the expiry as it is.
    Keep,
}

/// The next state and lifetime for a packet on an existing session.
///
/// A packet moves the session as far as all its flags say: a SYN that also carries FIN or RST,
/// or a FIN that brings a transitory session back, takes the second transition too. So the
/// same packet seen twice changes nothing the second time (the in-place entry points decide,
/// and on `NeedsOutBuffer` the copying ones decide again), and a FIN is never lost.
pub(crate) fn step(state: State, side: Side, f: Flags) -> (State, Lifetime) {
    let (first, life) = once(state, side, f);
    if first == state {
        return (first, life);
    }
    match once(first, side, f) {
        (second, _) if second == first => (first, life),
        (second, Lifetime::Keep) => (second, life),
        other => other,
    }
}

fn once(state: State, side: Side, f: Flags) -> (State, Lifetime) {
    use Lifetime as L;
    use State::*;
    match state {
        V6Init => match (side, f.syn) {
            (Side::V4, true) => (Established, L::Established),
            (Side::V6, true) => (V6Init, L::Transitory),
            _ => (V6Init, L::Keep),
        },
        V4Init => match (side, f.syn) {
            (Side::V6, true) => (Established, L::Established),
            _ => (V4Init, L::Keep),
        },
        Established if f.rst => (Trans, L::Transitory),
        Established if f.fin => (
            if side == Side::V4 { V4FinRcv } else { V6FinRcv },
            L::Established,
        ),
        Established => (Established, L::Established),
        V4FinRcv if f.fin && side == Side::V6 => (BothFinRcv, L::Transitory),
        // RFC 7857 §2: after an RST, TCP_TRANS, in the half-closed states too (Jool #212).
        V4FinRcv | V6FinRcv if f.rst => (Trans, L::Transitory),
        V4FinRcv => (V4FinRcv, L::Established),
        V6FinRcv if f.fin && side == Side::V4 => (BothFinRcv, L::Transitory),
        V6FinRcv => (V6FinRcv, L::Established),
        // A new connection on the same ports (TIME_WAIT is over at the host): a fresh start, or
        // the closing session would cut it when its transitory lifetime runs out.
        BothFinRcv if f.syn => (
            if side == Side::V6 { V6Init } else { V4Init },
            L::Transitory,
        ),
        BothFinRcv => (BothFinRcv, L::Keep),
        Trans if f.rst => (Trans, L::Keep),
        Trans => (Established, L::Established),
    }
}

/// What happens when a session's lifetime runs out: an established or half-closed one gets a
/// transitory lifetime more (RFC 6146 §3.5.2.2: it may be idle, not gone; we send no probe; a
/// half-closed connection may stream one way for long), every other state is removed.
pub(crate) fn on_expiry(state: State) -> Option<State> {
    (state == State::Established || state == State::V4FinRcv || state == State::V6FinRcv)
        .then_some(State::Trans)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYN: Flags = Flags {
        syn: true,
        fin: false,
        rst: false,
    };
    const FIN: Flags = Flags {
        syn: false,
        fin: true,
        rst: false,
    };
    const RST: Flags = Flags {
        syn: false,
        fin: false,
        rst: true,
    };
    const ACK: Flags = Flags {
        syn: false,
        fin: false,
        rst: false,
    };

    #[test]
    fn every_transition_of_rfc6146() {
        use Lifetime as L;
        use Side::*;
        use State::*;
        let cases = [
            (V6Init, V4, SYN, Established, L::Established),
            (V6Init, V6, SYN, V6Init, L::Transitory),
            (V6Init, V6, ACK, V6Init, L::Keep),
            (V6Init, V4, ACK, V6Init, L::Keep),
            (V4Init, V6, SYN, Established, L::Established),
            (V4Init, V4, SYN, V4Init, L::Keep),
            (Established, V4, FIN, V4FinRcv, L::Established),
            (Established, V6, FIN, V6FinRcv, L::Established),
            (Established, V4, RST, Trans, L::Transitory),
            (Established, V6, RST, Trans, L::Transitory),
            (Established, V6, ACK, Established, L::Established),
            (V4FinRcv, V6, FIN, BothFinRcv, L::Transitory),
            (V4FinRcv, V4, FIN, V4FinRcv, L::Established),
            (V4FinRcv, V6, ACK, V4FinRcv, L::Established),
            (V4FinRcv, V6, RST, Trans, L::Transitory),
            (V6FinRcv, V4, RST, Trans, L::Transitory),
            (V6FinRcv, V4, FIN, BothFinRcv, L::Transitory),
            (V6FinRcv, V6, ACK, V6FinRcv, L::Established),
            (BothFinRcv, V4, ACK, BothFinRcv, L::Keep),
            // The ports used again for a new connection.
            (BothFinRcv, V6, SYN, V6Init, L::Transitory),
            (BothFinRcv, V4, SYN, V4Init, L::Transitory),
            (BothFinRcv, V6, RST, BothFinRcv, L::Keep),
            (Trans, V6, ACK, Established, L::Established),
            (Trans, V4, ACK, Established, L::Established),
            (Trans, V4, RST, Trans, L::Keep),
        ];
        for (from, side, f, to, life) in cases {
            assert_eq!(step(from, side, f), (to, life), "{from:?} {side:?} {f:?}");
        }
    }

    #[test]
    fn expiry_of_an_established_session_leaves_a_transitory_one() {
        assert_eq!(on_expiry(State::Established), Some(State::Trans));
        assert_eq!(on_expiry(State::Trans), None);
        assert_eq!(on_expiry(State::V6Init), None);
        assert_eq!(on_expiry(State::V4Init), None);
        assert_eq!(on_expiry(State::BothFinRcv), None);
        for b in 1..=7 {
            assert_eq!(State::from_u8(b).map(|s| s as u8), Some(b));
        }
        assert_eq!(State::from_u8(0), None);
    }
}
