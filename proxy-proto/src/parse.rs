//! Entry points: detect the version, or ask for one.

use crate::{Error, Header, Needed, Status, V2_DEFAULT_MAX_LEN, v1, v2};

/// Parsing options. The defaults are strict and cap v2 headers at 4 KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parser {
    max_v2_len: usize,
    lenient_v1: bool,
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

impl Parser {
    /// Strict, with the default v2 cap.
    pub const fn new() -> Self {
        Parser {
            max_v2_len: V2_DEFAULT_MAX_LEN,
            lenient_v1: false,
        }
    }

    /// The largest v2 header accepted, 16-byte preamble included (the format allows 65 551). A
    /// larger one is refused as soon as its length field is read, before its bytes arrive.
    /// Values under 16 are taken as 16 (a bare LOCAL header), which refuses every address.
    pub const fn max_v2_len(mut self, max: usize) -> Self {
        self.max_v2_len = if max < 16 { 16 } else { max };
        self
    }

    /// Accept what nginx 1.22 sends in v1: lines whose addresses mix IPv4 and IPv6 under either
    /// protocol word (read as IPv6, the IPv4 side v4-mapped) and leading zeros in IPv4 octets
    /// and ports (read as decimal). Off by default.
    pub const fn lenient_v1(mut self, lenient: bool) -> Self {
        self.lenient_v1 = lenient;
        self
    }

    /// Parses either version, told apart by the first byte.
    #[inline]
    pub fn parse<'a>(&self, buf: &'a [u8]) -> Result<Status<Header<'a>>, Error> {
        match buf.first() {
            None => Ok(Status::Partial(Needed::at_least(15))),
            Some(b'P') => self.parse_v1(buf),
            Some(b'\r') => self.parse_v2(buf),
            Some(_) => Err(Error::NotProxy),
        }
    }

    /// Parses a v1 line only.
    #[inline]
    pub fn parse_v1<'a>(&self, buf: &'a [u8]) -> Result<Status<Header<'a>>, Error> {
        v1::parse(buf, self.lenient_v1)
    }

    /// Parses a v2 header only.
    #[inline]
    pub fn parse_v2<'a>(&self, buf: &'a [u8]) -> Result<Status<Header<'a>>, Error> {
        v2::parse(buf, self.max_v2_len)
    }
}

/// Parses either version with the default (strict) options. See [`Parser::parse`].
#[inline]
pub fn parse(buf: &[u8]) -> Result<Status<Header<'_>>, Error> {
    Parser::new().parse(buf)
}

/// Parses a v1 line with the default (strict) options.
pub fn parse_v1(buf: &[u8]) -> Result<Status<Header<'_>>, Error> {
    Parser::new().parse_v1(buf)
}

/// Parses a v2 header with the default options.
pub fn parse_v2(buf: &[u8]) -> Result<Status<Header<'_>>, Error> {
    Parser::new().parse_v2(buf)
}
