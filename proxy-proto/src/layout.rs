//! The wire layout, written once: the parsers (`v1`, `v2`, `tlv`) read it and the writers
//! (`emit::v1`, `emit::v2`) write it, so the two sides cannot disagree on a byte.
//!
//! ```text
//!   v2:  0            12        13        14      16             16 + block        16 + len
//!        | signature  | ver/cmd | fam/tr  | len   | address block | TLVs ...           |
//!                       0x2_      0x__      u16 BE  0, 12, 36 or 216
//!   TLV: | type | len (u16 BE) | value |          SSL value: | client | verify (u32 BE) | sub-TLVs |
//!   v1:  PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\r\n     or     PROXY UNKNOWN ...\r\n
//! ```

use crate::{Command, Error, Transport};

/// Offsets in the 16-byte v2 preamble (smoltcp's `mod field`).
pub(crate) mod field {
    /// A byte range in the preamble.
    pub(crate) type Field = core::ops::Range<usize>;

    /// The 12-byte signature, [`crate::V2_SIGNATURE`].
    pub(crate) const SIGNATURE: Field = 0..12;
    /// Version (high nibble) and command (low nibble).
    pub(crate) const VER_CMD: usize = 12;
    /// Address family (high nibble) and transport (low nibble).
    pub(crate) const FAM: usize = 13;
    /// The length of what follows the preamble, big-endian.
    pub(crate) const LEN: Field = 14..16;
    /// Where the address block starts: the preamble's length.
    pub(crate) const ADDRESSES: usize = LEN.end;
}

/// Signature, version/command, family/transport and the length: 16 bytes.
pub(crate) const PREAMBLE: usize = field::ADDRESSES;

/// The largest length field, and the largest TLV value.
pub(crate) const MAX_LEN: usize = u16::MAX as usize;

/// The version nibble of the version/command byte.
const VERSION: u8 = 2;
const CMD_LOCAL: u8 = 0x0;
const CMD_PROXY: u8 = 0x1;

/// The version/command byte of a command.
pub(crate) fn command_byte(command: Command) -> u8 {
    VERSION << 4
        | match command {
            Command::Local => CMD_LOCAL,
            Command::Proxy => CMD_PROXY,
        }
}

/// The command of a version/command byte, or why it has none.
#[inline]
pub(crate) fn command(ver_cmd: u8) -> Result<Command, Error> {
    if ver_cmd >> 4 != VERSION {
        return Err(Error::V2("version is not 2"));
    }
    match ver_cmd & 0x0F {
        CMD_LOCAL => Ok(Command::Local),
        CMD_PROXY => Ok(Command::Proxy),
        _ => Err(Error::V2("command is neither LOCAL nor PROXY")),
    }
}

/// Address family nibbles.
pub(crate) mod family {
    /// `AF_UNSPEC`: no addresses.
    pub(crate) const UNSPEC: u8 = 0x0;
    /// `AF_INET`.
    pub(crate) const INET: u8 = 0x1;
    /// `AF_INET6`.
    pub(crate) const INET6: u8 = 0x2;
    /// `AF_UNIX`.
    pub(crate) const UNIX: u8 = 0x3;
}

const TRANSPORT_UNSPEC: u8 = 0x0;
const TRANSPORT_STREAM: u8 = 0x1;
const TRANSPORT_DGRAM: u8 = 0x2;

/// The family/transport byte of a family nibble and a transport; `None` when they do not go
/// together (the UNSPEC family goes with the UNSPEC transport, and only it).
pub(crate) fn family_byte(fam: u8, transport: Transport) -> Option<u8> {
    let t = match transport {
        Transport::Unspec => TRANSPORT_UNSPEC,
        Transport::Stream => TRANSPORT_STREAM,
        Transport::Dgram => TRANSPORT_DGRAM,
    };
    ((fam == family::UNSPEC) == (t == TRANSPORT_UNSPEC)).then_some(fam << 4 | t)
}

/// The seven defined family/transport bytes: `00 11 12 21 22 31 32`, as (family, transport).
#[inline]
pub(crate) fn family_transport(byte: u8) -> Option<(u8, Transport)> {
    const fn both(fam: u8, t: u8) -> u8 {
        fam << 4 | t
    }
    const UNSPEC: u8 = both(family::UNSPEC, TRANSPORT_UNSPEC);
    const INET_STREAM: u8 = both(family::INET, TRANSPORT_STREAM);
    const INET_DGRAM: u8 = both(family::INET, TRANSPORT_DGRAM);
    const INET6_STREAM: u8 = both(family::INET6, TRANSPORT_STREAM);
    const INET6_DGRAM: u8 = both(family::INET6, TRANSPORT_DGRAM);
    const UNIX_STREAM: u8 = both(family::UNIX, TRANSPORT_STREAM);
    const UNIX_DGRAM: u8 = both(family::UNIX, TRANSPORT_DGRAM);
    let transport = match byte {
        UNSPEC => Transport::Unspec,
        INET_STREAM | INET6_STREAM | UNIX_STREAM => Transport::Stream,
        INET_DGRAM | INET6_DGRAM | UNIX_DGRAM => Transport::Dgram,
        _ => return None,
    };
    Some((byte >> 4, transport))
}

/// An IPv4 block: source and destination address, then source and destination port.
pub(crate) const INET_BLOCK: usize = 2 * 4 + 2 * 2;
/// An IPv6 block, in the same order.
pub(crate) const INET6_BLOCK: usize = 2 * 16 + 2 * 2;
/// A UNIX path field: the path, NUL-padded (a path of all 108 bytes has no NUL).
pub(crate) const UNIX_PATH: usize = 108;
/// A UNIX block: source path, then destination path.
pub(crate) const UNIX_BLOCK: usize = 2 * UNIX_PATH;

/// The address block length of a family nibble; `None` for an undefined family.
#[inline]
pub(crate) fn block_len(fam: u8) -> Option<usize> {
    match fam {
        family::UNSPEC => Some(0),
        family::INET => Some(INET_BLOCK),
        family::INET6 => Some(INET6_BLOCK),
        family::UNIX => Some(UNIX_BLOCK),
        _ => None,
    }
}

/// A TLV's head: its type, then its value's length (u16, big-endian).
pub(crate) const TLV_HEAD: usize = 3;

/// The head of a TLV whose value is `len` bytes (at most [`MAX_LEN`], checked by the caller).
pub(crate) fn tlv_head(kind: u8, len: usize) -> [u8; TLV_HEAD] {
    let [hi, lo] = (len as u16).to_be_bytes();
    [kind, hi, lo]
}

/// The type and value length in a TLV's head.
#[inline]
pub(crate) fn read_tlv_head([kind, hi, lo]: [u8; TLV_HEAD]) -> (u8, usize) {
    (kind, usize::from(u16::from_be_bytes([hi, lo])))
}

/// The CRC32C TLV's value: the checksum, big-endian.
pub(crate) const CRC32C_LEN: usize = 4;
/// The head of the SSL TLV's value: the `client` byte, then `verify` (u32, big-endian).
pub(crate) const SSL_HEAD: usize = 1 + 4;
/// The longest UNIQUE_ID value.
pub(crate) const UNIQUE_ID_MAX: usize = 128;

/// The v1 line's words.
pub(crate) mod v1 {
    /// What every v1 line starts with.
    pub(crate) const PROXY: &[u8] = b"PROXY";
    /// IPv4 addresses follow.
    pub(crate) const TCP4: &[u8] = b"TCP4";
    /// IPv6 addresses follow.
    pub(crate) const TCP6: &[u8] = b"TCP6";
    /// Anything may follow, up to the CRLF; it is ignored.
    pub(crate) const UNKNOWN: &[u8] = b"UNKNOWN";
    /// What every v1 line ends with.
    pub(crate) const CRLF: &[u8] = b"\r\n";
}
