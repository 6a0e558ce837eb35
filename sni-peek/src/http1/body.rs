//! Following a message body to its end (RFC 9112 §6.3, §7.1), without holding any of it: a
//! state machine that is told each new slice of bytes and says how many belong to the body.
//!
//! Chunk lines are read strictly, because a proxy that passes them on as they came must read them
//! as every backend would: CRLF only (a bare LF ends a line for some readers, not others), a size
//! of hex digits that does not overflow, extensions of tokens and quoted strings up to a length
//! cap, the CRLF right after the data, and trailer fields as valid as header fields. A trailer
//! field that frames, routes or forwards (RFC 9110 §6.5.1) is refused: a backend that merges
//! trailers into the header section (Apache's `MergeTrailers on`) would take a second
//! Content-Length or a forged X-Forwarded-For from it.

use super::fields::dashed_lower;
use crate::Error;

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Body {
    /// No body: the next message starts right after the head.
    #[default]
    Empty,
    /// This many bytes.
    Length(u64),
    /// Chunks, then a last chunk and trailer fields (RFC 9112 §7.1).
    Chunked,
    /// Everything until the connection closes (a response only).
    UntilClose,
}

/// How far one call to [`BodyReader::advance`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the input that belong to the body.
    pub consumed: usize,
    /// The body ended; the input after `consumed` is the next message's.
    pub done: bool,
}

/// Longest chunk extension accepted on one chunk line (hyper caps them at 16 KiB per body;
/// nothing legitimate comes near either).
pub const MAX_CHUNK_EXTENSION: usize = 4096;

/// The fields refused in a trailer, lowercase: framing, routing and connection management
/// (RFC 9110 §6.5.1, §7.6.1), and the forwarding fields a proxy writes. Compared ignoring case
/// and reading `_` as `-`, as CGI-style backends do.
const REFUSED_TRAILERS: [&[u8]; 12] = [
    b"content-length",
    b"transfer-encoding",
    b"host",
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"upgrade",
    b"te",
    b"trailer",
    b"forwarded",
    b"x-forwarded-for",
    b"x-forwarded-proto",
];

/// The longest name in [`REFUSED_TRAILERS`] (`transfer-encoding`, `x-forwarded-proto`): a
/// trailer name is kept up to this length, and a longer one cannot be refused by name.
const TRAILER_NAME_KEPT: usize = 17;

/// Follows one body from its first byte to its end, split anywhere.
///
/// ```
/// use sni_peek::http1::{Body, BodyReader, Progress};
///
/// let mut body = BodyReader::new(Body::Chunked, 16 * 1024);
/// let bytes = b"2;a=\"b\"\r\nxx\r\n0\r\nX-T: 1\r\n\r\nGET /next HTTP/1.1\r\n";
/// assert_eq!(body.advance(&bytes[..7]), Ok(Progress { consumed: 7, done: false }));
/// // The body ends after the trailer's empty line: 26 bytes in all.
/// assert_eq!(body.advance(&bytes[7..]), Ok(Progress { consumed: 26 - 7, done: true }));
/// assert!(BodyReader::new(Body::Chunked, 1024).advance(b"2\nxx\r\n").is_err());
/// ```
#[derive(Debug, Clone)]
pub struct BodyReader {
    state: State,
    /// Extension bytes on the current chunk line, or trailer bytes so far.
    counted: usize,
    max_trailers: usize,
    /// The current trailer field's name so far, lowercased with `_` read as `-`: its first
    /// `name_len` bytes, or `name_len` past the array for a name too long to be refused.
    name: [u8; TRAILER_NAME_KEPT],
    name_len: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Done,
    Length(u64),
    UntilClose,
    /// Hex digits of a chunk size, so far (`None` before the first).
    Size(Option<u64>),
    /// In the extensions after a size.
    Ext(u64, Ext),
    /// The CR ending a chunk line was seen.
    SizeLf(u64),
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line, or of the final empty line.
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    EndLf,
}

/// Where in `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )` a chunk line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ext {
    /// Before a `;` or the line's end.
    BeforeSemi,
    BeforeName,
    Name,
    /// After a name: `=`, `;` or the line's end.
    AfterName,
    BeforeValue,
    Token,
    Quoted,
    QuotedEscape,
}

/// A chunk size line of at most 16 hex digits (so no overflow) and its CRLF, whole in `input`:
/// the size and the line's length.
fn plain_size_line(input: &[u8]) -> Option<(u64, usize)> {
    let digits = input
        .iter()
        .take(16)
        .take_while(|b| b.is_ascii_hexdigit())
        .count();
    if digits == 0 || input.get(digits..digits + 2) != Some(b"\r\n") {
        return None;
    }
    let size = input[..digits].iter().fold(0, |n, &b| {
        n << 4 | u64::from(char::from(b).to_digit(16).unwrap_or(0))
    });
    Some((size, digits + 2))
}

fn chunk(reason: &'static str) -> Error {
    Error::Chunk { reason }
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_tchar(b: u8) -> bool {
    super::is_tchar(b)
}

impl BodyReader {
    /// A reader for a body framed as `body`; trailer fields may take up to `max_trailers` bytes.
    pub fn new(body: Body, max_trailers: usize) -> Self {
        let state = match body {
            Body::Empty | Body::Length(0) => State::Done,
            Body::Length(n) => State::Length(n),
            Body::Chunked => State::Size(None),
            Body::UntilClose => State::UntilClose,
        };
        BodyReader {
            state,
            counted: 0,
            max_trailers,
            name: [0; TRAILER_NAME_KEPT],
            name_len: 0,
        }
    }

    /// The body has ended.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Bytes of body data (not of chunk lines) still announced and not yet seen, if known.
    pub fn data_remaining(&self) -> Option<u64> {
        match self.state {
            State::Length(n) | State::Data(n) => Some(n),
            _ => None,
        }
    }

    /// Reads `input`, the bytes that follow those of earlier calls: how many belong to the
    /// body, and whether it ended. An error is final.
    pub fn advance(&mut self, input: &[u8]) -> Result<Progress, Error> {
        let mut at = 0;
        while at < input.len() {
            // Runs of data are skipped at once; lines are read byte by byte.
            match self.state {
                State::Done => break,
                State::UntilClose => at = input.len(),
                State::Length(n) | State::Data(n) => {
                    let take = n.min((input.len() - at) as u64);
                    at += take as usize;
                    let left = n - take;
                    self.state = match (self.state, left) {
                        (State::Length(_), 0) => State::Done,
                        (State::Length(_), _) => State::Length(left),
                        (_, 0) => State::DataCr,
                        _ => State::Data(left),
                    };
                }
                // The common shapes in one step: a whole size line without extensions, and the
                // CRLF after data. Anything else, cut short included, goes byte by byte.
                State::DataCr if input[at..].starts_with(b"\r\n") => {
                    at += 2;
                    self.state = State::Size(None);
                }
                State::Size(None) => match plain_size_line(&input[at..]) {
                    Some((0, len)) => {
                        at += len;
                        self.counted = 0;
                        self.state = State::TrailerStart;
                    }
                    Some((size, len)) => {
                        at += len;
                        self.state = State::Data(size);
                    }
                    None => {
                        self.state = self.step(input[at])?;
                        at += 1;
                    }
                },
                _ => {
                    self.state = self.step(input[at])?;
                    at += 1;
                }
            }
        }
        Ok(Progress {
            consumed: at,
            done: self.state == State::Done,
        })
    }

    fn step(&mut self, b: u8) -> Result<State, Error> {
        Ok(match self.state {
            State::Size(size) => match (b, size) {
                (b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F', _) => {
                    let digit = u64::from(char::from(b).to_digit(16).unwrap_or(0));
                    let size = size.unwrap_or(0);
                    State::Size(Some(
                        size.checked_mul(16)
                            .and_then(|s| s.checked_add(digit))
                            .ok_or(chunk("chunk size overflows"))?,
                    ))
                }
                (_, None) => return Err(chunk("chunk size is not hex digits")),
                (b'\r', Some(size)) => State::SizeLf(size),
                (b';', Some(size)) => self.extension(size, Ext::BeforeName)?,
                (b, Some(size)) if is_ws(b) => self.extension(size, Ext::BeforeSemi)?,
                (_, Some(_)) => return Err(chunk("junk after the chunk size")),
            },
            State::Ext(size, ext) => self.ext_step(size, ext, b)?,
            State::SizeLf(size) => match (b, size) {
                (b'\n', 0) => {
                    self.counted = 0;
                    State::TrailerStart
                }
                (b'\n', size) => State::Data(size),
                _ => return Err(chunk("CR not followed by LF in a chunk line")),
            },
            State::DataCr if b == b'\r' => State::DataLf,
            State::DataCr => return Err(chunk("chunk data not followed by CRLF")),
            State::DataLf if b == b'\n' => State::Size(None),
            State::DataLf => return Err(chunk("chunk data not followed by CRLF")),
            State::TrailerStart => match b {
                b'\r' => State::EndLf,
                b if is_tchar(b) => {
                    self.name_len = 0;
                    self.name_byte(b);
                    self.trailer(State::TrailerName)?
                }
                b if is_ws(b) => return Err(Error::ObsFold),
                _ => return Err(chunk("invalid trailer field")),
            },
            State::TrailerName => match b {
                b':' if self.refused_trailer() => {
                    return Err(chunk("a framing or forwarding field in the trailer"));
                }
                b':' => self.trailer(State::TrailerValue)?,
                b if is_tchar(b) => {
                    self.name_byte(b);
                    self.trailer(State::TrailerName)?
                }
                b if is_ws(b) => return Err(Error::WhitespaceBeforeColon),
                _ => return Err(chunk("invalid trailer field")),
            },
            State::TrailerValue => match b {
                b'\r' => self.trailer(State::TrailerLf)?,
                b'\t' => self.trailer(State::TrailerValue)?,
                b if b < 0x20 || b == 0x7f => {
                    return Err(chunk("control character in a trailer field"));
                }
                _ => self.trailer(State::TrailerValue)?,
            },
            State::TrailerLf if b == b'\n' => self.trailer(State::TrailerStart)?,
            State::TrailerLf | State::EndLf if b != b'\n' => {
                return Err(chunk("CR not followed by LF in the trailer"));
            }
            State::EndLf => State::Done,
            // Runs and ends are handled by `advance`.
            State::Done
            | State::UntilClose
            | State::Length(_)
            | State::Data(_)
            | State::TrailerLf => self.state,
        })
    }

    /// One more byte of a chunk line's extensions, within the cap.
    fn extension(&mut self, size: u64, ext: Ext) -> Result<State, Error> {
        self.counted += 1;
        if self.counted > MAX_CHUNK_EXTENSION {
            return Err(chunk("chunk extension too long"));
        }
        Ok(State::Ext(size, ext))
    }

    /// One more byte of a trailer field's name: kept while a refused name could still match.
    fn name_byte(&mut self, b: u8) {
        let len = usize::from(self.name_len);
        match self.name.get_mut(len) {
            Some(slot) => {
                *slot = dashed_lower(b);
                self.name_len += 1;
            }
            // Past the longest refused name: stays one past the array.
            None => self.name_len = TRAILER_NAME_KEPT as u8 + 1,
        }
    }

    /// The trailer field name just ended is one of [`REFUSED_TRAILERS`].
    fn refused_trailer(&self) -> bool {
        self.name
            .get(..usize::from(self.name_len))
            .is_some_and(|name| REFUSED_TRAILERS.contains(&name))
    }

    /// One more byte of the trailer section, within the cap.
    fn trailer(&mut self, next: State) -> Result<State, Error> {
        self.counted += 1;
        if self.counted > self.max_trailers {
            return Err(chunk("trailer fields too long"));
        }
        Ok(next)
    }

    fn ext_step(&mut self, size: u64, ext: Ext, b: u8) -> Result<State, Error> {
        let line_end = |this: &mut Self| {
            this.counted = 0;
            State::SizeLf(size)
        };
        let next = match (ext, b) {
            (Ext::QuotedEscape, b) if b == b'\t' || b >= 0x20 && b != 0x7f => Ext::Quoted,
            (Ext::Quoted, b'"') => Ext::BeforeSemi,
            (Ext::Quoted, b'\\') => Ext::QuotedEscape,
            (Ext::Quoted, b) if b == b'\t' || b >= 0x20 && b != 0x7f => Ext::Quoted,
            (Ext::Quoted | Ext::QuotedEscape, _) => {
                return Err(chunk("control character in a chunk extension"));
            }
            (Ext::BeforeSemi | Ext::Name | Ext::AfterName | Ext::Token, b'\r') => {
                return Ok(line_end(self));
            }
            (Ext::BeforeSemi | Ext::Name | Ext::AfterName | Ext::Token, b';') => Ext::BeforeName,
            (Ext::Name | Ext::AfterName, b'=') => Ext::BeforeValue,
            (Ext::Name, b) if is_tchar(b) => Ext::Name,
            (Ext::Token, b) if is_tchar(b) => Ext::Token,
            (Ext::Name | Ext::AfterName, b) if is_ws(b) => Ext::AfterName,
            (Ext::Token | Ext::BeforeSemi, b) if is_ws(b) => Ext::BeforeSemi,
            (Ext::BeforeName | Ext::BeforeValue, b) if is_ws(b) => ext,
            (Ext::BeforeName, b) if is_tchar(b) => Ext::Name,
            (Ext::BeforeValue, b'"') => Ext::Quoted,
            (Ext::BeforeValue, b) if is_tchar(b) => Ext::Token,
            _ => return Err(chunk("malformed chunk extension")),
        };
        self.extension(size, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(body: Body, input: &[u8]) -> Result<Progress, Error> {
        BodyReader::new(body, 16 * 1024).advance(input)
    }

    /// Every split into two calls gives the same answer as one call.
    fn same_at_every_split(body: Body, input: &[u8]) -> Result<Progress, Error> {
        let want = whole(body, input);
        for cut in 0..=input.len() {
            let mut r = BodyReader::new(body, 16 * 1024);
            let got = r.advance(&input[..cut]).and_then(|first| {
                if first.done {
                    return Ok(first);
                }
                r.advance(&input[cut..]).map(|second| Progress {
                    consumed: first.consumed + second.consumed,
                    done: second.done,
                })
            });
            match (&want, &got) {
                (Ok(w), Ok(g)) => assert_eq!(w, g, "cut at {cut}"),
                (Err(_), Err(_)) => {}
                _ => panic!("cut at {cut}: {want:?} vs {got:?}"),
            }
        }
        want
    }

    fn done_at(n: usize) -> Result<Progress, Error> {
        Ok(Progress {
            consumed: n,
            done: true,
        })
    }

    #[test]
    fn length_bodies_end_at_their_length() {
        assert_eq!(same_at_every_split(Body::Length(3), b"abcGET"), done_at(3));
        assert_eq!(same_at_every_split(Body::Empty, b"GET"), done_at(0));
        let mut r = BodyReader::new(Body::Length(10), 0);
        assert!(!r.advance(b"abc").unwrap().done);
        assert_eq!(r.data_remaining(), Some(7));
        let close = whole(Body::UntilClose, b"anything");
        assert_eq!(
            close,
            Ok(Progress {
                consumed: 8,
                done: false
            })
        );
    }

    #[test]
    fn chunked_bodies_with_extensions_and_trailers() {
        let body = b"2;a=\"b\"\r\nxx\r\n0\r\nX-T: 1\r\n\r\nGET";
        assert_eq!(
            same_at_every_split(Body::Chunked, body),
            done_at(body.len() - 3)
        );
        let body = b"A\r\n0123456789\r\n0000\r\n\r\n";
        assert_eq!(
            same_at_every_split(Body::Chunked, body),
            done_at(body.len())
        );
        let body = b"0000000000000000002\r\nxx\r\n0\r\n\r\n";
        assert_eq!(
            same_at_every_split(Body::Chunked, body),
            done_at(body.len())
        );
        let body = b"1 ; name = \"q\\\"x\" ;n2;n3=t\r\nx\r\n0\r\n\r\n";
        assert_eq!(
            same_at_every_split(Body::Chunked, body),
            done_at(body.len())
        );
    }

    #[test]
    fn chunk_lines_that_could_be_read_two_ways_are_errors() {
        for bad in [
            &b"2;\nxx\r\n0\r\n\r\n"[..],
            b"2\nxx\r\n0\r\n\r\n",
            b"2\r\nxx\n0\r\n\r\n",
            b"2\r\nxxAB0\r\n\r\n",
            b"10000000000000001\r\n",
            b"\r\n",
            b";e\r\n",
            b"0x2\r\n",
            b"-2\r\n",
            b"2\rxx",
            b"2;a=\"b\r\n",
            b"2;=b\r\n",
            b"2;a=b c\r\n",
            b"0\r\nX: 1\n\r\n",
            b"0\r\n X: 1\r\n\r\n",
            b"0\r\nX : 1\r\n\r\n",
            b"0\r\nX: a\0b\r\n\r\n",
            b"0\r\n\r\r",
        ] {
            assert!(
                same_at_every_split(Body::Chunked, bad).is_err(),
                "{:?}",
                core::str::from_utf8(bad)
            );
        }
    }

    #[test]
    fn framing_and_forwarding_fields_are_refused_in_the_trailer() {
        let refused = Err(chunk("a framing or forwarding field in the trailer"));
        for field in [
            &b"X-Forwarded-For: 6.6.6.6"[..],
            b"x-forwarded-for:6.6.6.6",
            b"X_Forwarded_For: 6.6.6.6",
            b"X-FORWARDED-PROTO: https",
            b"Forwarded: for=6.6.6.6",
            b"Content-Length: 5",
            b"Content_Length: 5",
            b"Transfer-Encoding: chunked",
            b"Host: evil.test",
            b"Connection: close",
            b"Keep-Alive: timeout=5",
            b"Proxy-Connection: close",
            b"Upgrade: websocket",
            b"TE: trailers",
            b"Trailer: X-T",
        ] {
            // Second in the trailer, so the name is read after another one.
            let body = [&b"0\r\nX-T: 1\r\n"[..], field, b"\r\n\r\n"].concat();
            assert_eq!(
                same_at_every_split(Body::Chunked, &body),
                refused,
                "{:?}",
                core::str::from_utf8(field)
            );
        }
        // Names that share a start or an end with a refused one, or are longer than any.
        for field in [
            &b"X-Forwarded-Fo: 1"[..],
            b"X-Forwarded-Form: 1",
            b"X-Forwarded-Host: a",
            b"Content-Length-X: 5",
            b"XContent-Length: 5",
            b"T: 1",
            b"Tee: 1",
            b"Hosts: a",
            b"X-Transfer-Encoding-Long-Name: chunked",
            b"Transfer-Encodings: chunked",
            b"X-Long-Trailer-Name-Over-Seventeen: te",
            b"Server-Timing: te;dur=1",
        ] {
            let body = [&b"0\r\n"[..], field, b"\r\nX-T: 1\r\n\r\nGET"].concat();
            assert_eq!(
                same_at_every_split(Body::Chunked, &body),
                done_at(body.len() - 3),
                "{:?}",
                core::str::from_utf8(field)
            );
        }
        // The values and the chunk data may name them.
        let body = b"f\r\nX-Forwarded-For\r\n0\r\nX-Note: Content-Length: 5\r\n\r\n";
        assert_eq!(
            same_at_every_split(Body::Chunked, body),
            done_at(body.len())
        );
    }

    #[test]
    fn the_reader_stays_small() {
        assert!(core::mem::size_of::<BodyReader>() <= 64);
    }

    #[test]
    fn extensions_and_trailers_are_capped() {
        let mut long = std::vec![b'1', b';', b'a', b'='];
        long.resize(MAX_CHUNK_EXTENSION + 10, b'b');
        assert_eq!(
            whole(Body::Chunked, &long),
            Err(chunk("chunk extension too long"))
        );
        let mut r = BodyReader::new(Body::Chunked, 8);
        assert!(r.advance(b"0\r\nX-Long: 123456\r\n\r\n").is_err());
    }
}
