//! What the translator did with a packet: the caller's answer, written into the caller's buffer.

use core::fmt;
use core::ops::Range;

/// The result of one translation. Packets are written back to back at the start of the output buffer;
/// walk them with [`Emitted::packets`]. Open for additions: match with a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// One packet, or several fragments, to send out of the other side.
    Translated(Emitted),
    /// RFC 7757 §4.2.2 hairpinning: the packet went IPv6 → IPv4 → IPv6 and goes back out of the
    /// IPv6 side.
    Hairpinned(Emitted),
    /// The input was refused and an ICMP error goes back to its sender, out of the side it came in on.
    IcmpError {
        /// Why the input was refused.
        reason: DropReason,
        /// The error message.
        reply: Emitted,
    },
    /// Nothing to send.
    Dropped(DropReason),
}

/// The result of an in-place translation ([`crate::Translator::translate_4to6_in_place`]). Open
/// for additions: match with a wildcard arm.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InPlace {
    /// The translated packet now lies at this range of the buffer.
    Translated(Range<usize>),
    /// Stateful NAT64 hairpinning (RFC 6146 §3.8): the IPv6 packet, rewritten where it lies, goes
    /// back out of the IPv6 side.
    Hairpinned(Range<usize>),
    /// Nothing to send.
    Dropped(DropReason),
    /// Not a packet that can be translated where it lies: it must be fragmented, is an ICMP error
    /// or calls for one, is hairpinned, or has too little headroom. The buffer is untouched; call
    /// the copying method with an output buffer.
    NeedsOutBuffer,
    /// `at..at + len` does not lie within the buffer: a mistake of the caller, not a bad packet.
    /// The buffer is untouched.
    RangeOutOfBounds,
}

/// Where the emitted packets lie in the output buffer.
///
/// Eight bytes, so a whole [`Outcome`] comes back in registers rather than through memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Emitted {
    len: u32,
    count: u32,
}

impl Emitted {
    pub(crate) fn new(len: usize, count: usize) -> Self {
        // Both are bounded by the 65535-byte IP datagrams they come from, fragment headers included.
        Self {
            len: len as u32,
            count: count as u32,
        }
    }

    /// Bytes written, all packets together, from the start of the output buffer.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether nothing was written (never the case for an emitted result).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of packets (more than one only for fragments).
    pub fn count(&self) -> usize {
        self.count as usize
    }

    /// The emitted packets, each a slice of `out` (the buffer given to the translator).
    pub fn packets<'b>(&self, out: &'b [u8]) -> Packets<'b> {
        Packets {
            rest: out.get(..self.len()).unwrap_or(&[]),
        }
    }
}

/// Iterator over packets written back to back; each packet's length comes from its own IP header.
#[derive(Debug, Clone)]
pub struct Packets<'b> {
    rest: &'b [u8],
}

impl<'b> Packets<'b> {
    /// The packets laid back to back in `bytes` (several translations' results appended one after
    /// another, say), each cut by its own IP length field.
    pub fn new(bytes: &'b [u8]) -> Self {
        Packets { rest: bytes }
    }
}

impl<'b> Iterator for Packets<'b> {
    type Item = &'b [u8];

    fn next(&mut self) -> Option<&'b [u8]> {
        let first = *self.rest.first()?;
        let len = match first >> 4 {
            4 if self.rest.len() >= 4 => {
                usize::from(u16::from_be_bytes([self.rest[2], self.rest[3]]))
            }
            6 if self.rest.len() >= 6 => {
                40 + usize::from(u16::from_be_bytes([self.rest[4], self.rest[5]]))
            }
            _ => self.rest.len(),
        };
        let len = len.clamp(1, self.rest.len());
        let (pkt, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(pkt)
    }
}

/// Why a packet was not translated. Open for additions: match with a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// The input is shorter than its headers say, or than a header.
    Truncated,
    /// Wrong IP version, IPv4 IHL below 5, or an impossible length field.
    Malformed,
    /// The IPv4 header checksum is wrong.
    Ipv4HeaderChecksum,
    /// No mapping (EAM or RFC 6052) for the source address.
    UntranslatableSource,
    /// No mapping (EAM or RFC 6052) for the destination address.
    UntranslatableDestination,
    /// TTL or hop limit would reach zero (RFC 7915 §4.1 / §5.1).
    Expired,
    /// The IPv4 packet carries an unexpired loose or strict source route (RFC 7915 §4.1).
    SourceRoute,
    /// A Routing header with Segments Left non-zero (RFC 7915 §5.1).
    SegmentsLeft,
    /// An extension header after the Fragment header (RFC 7915 §5.1).
    ExtensionAfterFragment,
    /// A non-last fragment whose payload is not a multiple of 8 bytes (RFC 791, RFC 8200 §4.5).
    UnalignedFragment,
    /// An ICMP type or code with no counterpart (RFC 7915 §4.2 / §5.2).
    UntranslatableIcmp,
    /// A Parameter Problem pointer with no counterpart (RFC 7915 §4.2 / §5.2 tables).
    UntranslatablePointer,
    /// An ICMP error inside an ICMP error (RFC 7915 §4.3 / §5.3: one level only).
    NestedIcmpError,
    /// The packet quoted inside an ICMP error cannot be translated.
    InnerPacket,
    /// A fragmented ICMP message: its checksum cannot be translated.
    FragmentedIcmp,
    /// An ICMP error whose checksum is wrong: its checksum is recomputed on translation, which
    /// would turn a corrupt message into a valid-looking one.
    IcmpErrorChecksum,
    /// An IPv4 UDP datagram with checksum zero, refused by policy (RFC 7915 §4.5).
    UdpZeroChecksum,
    /// Larger than the next link and not allowed to be fragmented.
    TooBig,
    /// The output buffer cannot hold the result.
    BufferTooSmall,
    /// Stateful: the IPv6 source lies outside every customer prefix (answered with ICMPv6 1/5).
    NotCustomer,
    /// Stateful: the destination port is refused for new sessions (answered with ICMPv6 1/1).
    PortRefused,
    /// Stateful: the customer's port block has no free port (answered with ICMPv6 1/1).
    BlockExhausted,
    /// Stateful: the customer's block holds its maximum of sessions (ICMPv6 1/1 when outbound).
    SessionLimit,
    /// Stateful: the customer's block opened its maximum of sessions this second (ICMPv6 1/1).
    SessionRate,
    /// Stateful: the session table is full (ICMPv6 1/1 when outbound).
    TableFull,
    /// Stateful: an inbound packet or a packet that cannot open a session (a TCP segment other than SYN, a reply) matches no session, or filtering refused it.
    NoSession,
    /// Stateful: an unsolicited inbound SYN, held for 6 s in case the IPv6 side opens the same connection (RFC 6146 §3.5.2.2), then answered with ICMP Port Unreachable.
    SynHeld,
    /// Stateful: an ICMP error whose quoted packet matches no session (RFC 6146 §3.5.3).
    UnmatchedIcmpError,
    /// Stateful: a fragment; sessions are found by ports, which only the first fragment carries, and fragments are not reassembled.
    Fragmented,
    /// Stateful: a protocol without ports or identifiers to share (neither TCP, UDP nor ICMP echo).
    NoPorts,
}

impl DropReason {
    /// Every reason, in declaration order: for counters that keep a slot per reason.
    pub const ALL: [DropReason; 30] = [
        Self::Truncated,
        Self::Malformed,
        Self::Ipv4HeaderChecksum,
        Self::UntranslatableSource,
        Self::UntranslatableDestination,
        Self::Expired,
        Self::SourceRoute,
        Self::SegmentsLeft,
        Self::ExtensionAfterFragment,
        Self::UnalignedFragment,
        Self::UntranslatableIcmp,
        Self::UntranslatablePointer,
        Self::NestedIcmpError,
        Self::InnerPacket,
        Self::FragmentedIcmp,
        Self::IcmpErrorChecksum,
        Self::UdpZeroChecksum,
        Self::TooBig,
        Self::BufferTooSmall,
        Self::NotCustomer,
        Self::PortRefused,
        Self::BlockExhausted,
        Self::SessionLimit,
        Self::SessionRate,
        Self::TableFull,
        Self::NoSession,
        Self::SynHeld,
        Self::UnmatchedIcmpError,
        Self::Fragmented,
        Self::NoPorts,
    ];

    /// A short stable name for logs and counters.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::Malformed => "malformed",
            Self::Ipv4HeaderChecksum => "ipv4-header-checksum",
            Self::UntranslatableSource => "untranslatable-source",
            Self::UntranslatableDestination => "untranslatable-destination",
            Self::Expired => "expired",
            Self::SourceRoute => "source-route",
            Self::SegmentsLeft => "segments-left",
            Self::ExtensionAfterFragment => "extension-after-fragment",
            Self::UnalignedFragment => "unaligned-fragment",
            Self::UntranslatableIcmp => "untranslatable-icmp",
            Self::UntranslatablePointer => "untranslatable-pointer",
            Self::NestedIcmpError => "nested-icmp-error",
            Self::InnerPacket => "inner-packet",
            Self::FragmentedIcmp => "fragmented-icmp",
            Self::IcmpErrorChecksum => "icmp-error-checksum",
            Self::UdpZeroChecksum => "udp-zero-checksum",
            Self::TooBig => "too-big",
            Self::BufferTooSmall => "buffer-too-small",
            Self::NotCustomer => "not-customer",
            Self::PortRefused => "port-refused",
            Self::BlockExhausted => "block-exhausted",
            Self::SessionLimit => "session-limit",
            Self::SessionRate => "session-rate",
            Self::TableFull => "table-full",
            Self::NoSession => "no-session",
            Self::SynHeld => "syn-held",
            Self::UnmatchedIcmpError => "unmatched-icmp-error",
            Self::Fragmented => "fragmented",
            Self::NoPorts => "no-ports",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::error::Error for DropReason {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_walks_back_to_back_headers() {
        let mut buf = [0u8; 100];
        // A 30-byte IPv4 packet then a 48-byte IPv6 packet.
        buf[0] = 0x45;
        buf[2..4].copy_from_slice(&30u16.to_be_bytes());
        buf[30] = 0x60;
        buf[34..36].copy_from_slice(&8u16.to_be_bytes());
        let e = Emitted::new(78, 2);
        let lens: [usize; 2] = {
            let mut it = e.packets(&buf).map(<[u8]>::len);
            [it.next().unwrap(), it.next().unwrap()]
        };
        assert_eq!(lens, [30, 48]);
        assert_eq!(e.packets(&buf).count(), 2);
    }

    // Names are counter keys: each must be distinct, kebab-case, and what Display prints. The
    // match without a wildcard makes a new variant fail to compile until it is listed here.
    #[test]
    fn reasons_have_distinct_names() {
        use DropReason::*;
        let all = [
            Truncated,
            Malformed,
            Ipv4HeaderChecksum,
            UntranslatableSource,
            UntranslatableDestination,
            Expired,
            SourceRoute,
            SegmentsLeft,
            ExtensionAfterFragment,
            UnalignedFragment,
            UntranslatableIcmp,
            UntranslatablePointer,
            NestedIcmpError,
            InnerPacket,
            FragmentedIcmp,
            IcmpErrorChecksum,
            UdpZeroChecksum,
            TooBig,
            BufferTooSmall,
            NotCustomer,
            PortRefused,
            BlockExhausted,
            SessionLimit,
            SessionRate,
            TableFull,
            NoSession,
            SynHeld,
            UnmatchedIcmpError,
            Fragmented,
            NoPorts,
        ];
        // ALL must list exactly these: the match below fails to compile when one is missing here.
        assert_eq!(all, DropReason::ALL);
        for r in all {
            match r {
                Truncated
                | Malformed
                | Ipv4HeaderChecksum
                | UntranslatableSource
                | UntranslatableDestination
                | Expired
                | SourceRoute
                | SegmentsLeft
                | ExtensionAfterFragment
                | UnalignedFragment
                | UntranslatableIcmp
                | UntranslatablePointer
                | NestedIcmpError
                | InnerPacket
                | FragmentedIcmp
                | IcmpErrorChecksum
                | UdpZeroChecksum
                | TooBig
                | BufferTooSmall
                | NotCustomer
                | PortRefused
                | BlockExhausted
                | SessionLimit
                | SessionRate
                | TableFull
                | NoSession
                | SynHeld
                | UnmatchedIcmpError
                | Fragmented
                | NoPorts => {}
            }
            let name = r.as_str();
            assert!(!name.is_empty());
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            );
            assert_eq!(std::format!("{r}"), name);
            assert_eq!(
                all.iter().filter(|o| o.as_str() == name).count(),
                1,
                "{name}"
            );
        }
    }
}
