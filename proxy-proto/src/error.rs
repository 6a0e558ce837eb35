//! Why a header was refused.

use core::fmt;

use crate::TlvType;

/// A header that can never become valid, however many more bytes arrive. Drop the connection.
///
/// Each variant names what was wrong; [`Error::kind`] gives a short stable word for logs and
/// metrics, `Display` a sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The bytes start with neither the v1 `PROXY ` nor the v2 signature.
    NotProxy,
    /// A malformed v1 line; the text says which rule it broke.
    V1(&'static str),
    /// A malformed v2 preamble or address block.
    V2(&'static str),
    /// A malformed TLV (for SSL sub-TLVs, the sub-type).
    Tlv {
        /// The TLV's type.
        tlv: TlvType,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// The CRC32C TLV does not match the header's checksum.
    Checksum {
        /// The value the TLV carried.
        sent: u32,
        /// The checksum of the header as received.
        computed: u32,
    },
    /// A v2 header longer than the configured cap.
    TooLarge {
        /// The header's length, preamble included.
        len: usize,
        /// The cap ([`crate::Parser::max_v2_len`]).
        max: usize,
    },
}

impl Error {
    /// A short stable name for the kind of error: `not-proxy`, `v1`, `v2`, `tlv`, `crc32c`,
    /// `too-large`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NotProxy => "not-proxy",
            Error::V1(_) => "v1",
            Error::V2(_) => "v2",
            Error::Tlv { .. } => "tlv",
            Error::Checksum { .. } => "crc32c",
            Error::TooLarge { .. } => "too-large",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotProxy => f.write_str("not a PROXY protocol header"),
            Error::V1(why) => write!(f, "invalid v1 header: {why}"),
            Error::V2(why) => write!(f, "invalid v2 header: {why}"),
            Error::Tlv { tlv, reason } => write!(f, "invalid TLV {tlv:?}: {reason}"),
            Error::Checksum { sent, computed } => write!(
                f,
                "CRC32C mismatch: header says {sent:#010x}, bytes give {computed:#010x}"
            ),
            Error::TooLarge { len, max } => {
                write!(f, "v2 header of {len} bytes is over the {max}-byte cap")
            }
        }
    }
}

impl core::error::Error for Error {}
