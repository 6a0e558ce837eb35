//! HTTP/1.x: the authority of a request from its request line and header block (RFC 9112 §3),
//! and the facts that frame it on a connection: its body's length, whether the connection
//! persists or is upgraded, whether the client waits for `100 Continue`.
//!
//! The whole header block is waited for, not just the Host line: a second Host further down must
//! still be refused, and an HTTP/1.0 request only proves it has no Host at the empty line.
//!
//! Every header line is validated, not only Host: the bytes reach the backend untouched, so a line
//! that this parser and the backend could read differently (a bare CR, a bare LF, whitespace
//! before the colon, a control byte) would let a request smuggle a Host past the router. Names
//! are checked against a token table, values eight bytes at a time for control bytes. A request
//! whose body could be framed two ways (RFC 9112 §6.3: Content-Length with Transfer-Encoding, a
//! coding other than a final `chunked`, a Content-Length that is not one plain number) is an
//! error, not a guess: a proxy that forwards the bytes as they came must not guess.
//!
//! [`BodyReader`] follows a body to its end, chunk by chunk; [`parse_response`] reads a status
//! line and the fields that frame a response.

mod body;
mod fields;
mod response;

pub use body::{Body, BodyReader, MAX_CHUNK_EXTENSION, Progress};
pub use fields::{Field, Fields};
pub use response::{HttpResponse, parse_response};

use crate::name::{self, HostName};
use crate::{Error, Limits, Needed, Status};
use fields::Framing;

/// Longest method accepted before the bytes are judged not to be HTTP (the longest registered
/// method, UPDATEREDIRECTREF, has 17 characters).
const MAX_METHOD_LEN: usize = 24;

/// The routing and framing facts of an HTTP/1.x request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpRequest<'a> {
    /// Validated, without brackets or trailing dot; lowercased only when asked for (a copy).
    host: Option<&'a [u8]>,
    port: Option<u16>,
    minor_version: u8,
    connect: bool,
    absolute_form: bool,
    method: &'a [u8],
    target: &'a [u8],
    /// The head: any leading empty lines, the request line, the fields and the empty line.
    head: &'a [u8],
    /// Where the first field line starts in `head`.
    fields_at: usize,
    framing: Framing,
}

impl<'a> HttpRequest<'a> {
    /// The host: from an absolute-form or CONNECT target if there is one (RFC 9112 §3.2.2), else
    /// from Host. Lowercased, without port or IPv6 brackets. `None` for an HTTP/1.0 request without
    /// Host, or an empty Host.
    pub fn host(&self) -> Option<HostName> {
        self.host.map(HostName::from_checked)
    }

    /// The host as sent (validated, without brackets or trailing dot, not lowercased): for a
    /// case-insensitive lookup without the copy [`Self::host`] makes.
    pub fn host_as_sent(&self) -> Option<&'a str> {
        // Validated as ASCII, so this cannot fail.
        self.host.and_then(|n| core::str::from_utf8(n).ok())
    }

    /// The port given with the host, if any.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub fn minor_version(&self) -> u8 {
        self.minor_version
    }

    /// The method, as sent (a token: case matters, RFC 9110 §9.1).
    pub fn method(&self) -> &'a str {
        ascii(self.method)
    }

    /// The request target, as sent (visible ASCII).
    pub fn target(&self) -> &'a str {
        ascii(self.target)
    }

    /// A CONNECT request: the host is the tunnel's destination.
    pub fn is_connect(&self) -> bool {
        self.connect
    }

    /// The request target was in absolute form and the host came from it.
    pub fn is_absolute_form(&self) -> bool {
        self.absolute_form
    }

    /// How the request's body is framed: [`Body::Empty`], [`Body::Length`] or [`Body::Chunked`]
    /// (never [`Body::UntilClose`]: RFC 9112 §6.3 gives a request without either field no body).
    pub fn body(&self) -> Body {
        self.framing.body
    }

    /// The connection may carry another request after this one's response (RFC 9112 §9.3):
    /// HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        let c = self.framing.connection;
        match self.minor_version {
            0 => c.keep_alive && !c.close,
            _ => !c.close,
        }
    }

    /// An `Upgrade` field was sent: the backend may switch protocols (101) after this request.
    /// Reported whether or not `Connection` lists `upgrade`, so a proxy can wait for the answer
    /// either way.
    pub fn has_upgrade(&self) -> bool {
        self.framing.upgrade
    }

    /// `Connection` lists `upgrade`.
    pub fn connection_upgrade(&self) -> bool {
        self.framing.connection.upgrade
    }

    /// `Expect: 100-continue`: the client may wait for an interim response before its body.
    pub fn expects_continue(&self) -> bool {
        self.framing.expect_continue
    }

    /// `X-Forwarded-For`, `X-Forwarded-Proto` or `Forwarded` was sent: claims about earlier
    /// hops that a proxy must remove or append to.
    pub fn has_forwarding_fields(&self) -> bool {
        self.framing.forwarding
    }

    /// `Connection` lists options other than `close`, `keep-alive` and `upgrade`: names of
    /// fields the next hop is to drop (RFC 9110 §7.6.1).
    pub fn connection_lists_fields(&self) -> bool {
        self.framing.connection.other
    }

    /// The field lines of the head, in order, each with its place in the input.
    pub fn fields(&self) -> Fields<'a> {
        Fields::new(self.head, self.fields_at)
    }

    /// Where the empty line that ends the head starts in the input: a field line inserted here
    /// is the last one.
    pub fn fields_end(&self) -> usize {
        self.head.len() - 2
    }

    /// Input bytes up to and including the empty line that ends the header block.
    pub fn consumed(&self) -> usize {
        self.head.len()
    }
}

/// Bytes validated as ASCII.
fn ascii(bytes: &[u8]) -> &str {
    core::str::from_utf8(bytes).unwrap_or_default()
}

/// A validated host and its port, borrowed from the input.
type Authority<'a> = (&'a [u8], Option<u16>);

/// What went wrong while scanning: more bytes would help, or the input cannot be HTTP/1.
enum Stop {
    More,
    Fail(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Fail(e)
    }
}

/// Parses the request line and header block received so far.
///
/// Errors with [`Error::NotHttp`] as soon as the bytes cannot start an HTTP/1 request.
pub fn parse<'a>(input: &'a [u8], limits: &Limits) -> Result<Status<HttpRequest<'a>>, Error> {
    match scan(input) {
        Ok(req) if req.consumed() > limits.max_header_len => Err(Error::HeadersTooLarge {
            limit: limits.max_header_len,
        }),
        Ok(req) => Ok(Status::Complete(req)),
        Err(Stop::More) if input.len() >= limits.max_header_len => Err(Error::HeadersTooLarge {
            limit: limits.max_header_len,
        }),
        Err(Stop::More) => Ok(Status::Partial(Needed::Unknown)),
        Err(Stop::Fail(e)) => Err(e),
    }
}

fn scan(input: &[u8]) -> Result<HttpRequest<'_>, Stop> {
    // RFC 9112 §2.2: empty lines (CRLF) before the request line are ignored.
    let mut pos = 0;
    loop {
        match input.get(pos..pos + 2) {
            Some(b"\r\n") => pos += 2,
            Some([b'\r' | b'\n', _]) => return Err(Error::NotHttp.into()),
            None if input.get(pos).is_some_and(|&b| b != b'\r') => break,
            None => return Err(Stop::More),
            Some(_) => break,
        }
    }

    let method = token_until_space(input, &mut pos)?;
    let target = target_until_space(input, &mut pos)?;
    let minor_version = version_line(input, &mut pos)?;

    let connect = method == b"CONNECT";
    let from_target = if connect {
        // RFC 9110 §9.3.6: the authority-form target of CONNECT always has a port.
        match name::check_authority(target)? {
            (_, None) => {
                return Err(Error::InvalidRequestLine {
                    reason: "CONNECT target without a port",
                }
                .into());
            }
            authority => Some(authority),
        }
    } else if target == b"*" {
        // RFC 9112 §3.2.4: the asterisk form is only for a server-wide OPTIONS.
        if method != b"OPTIONS" {
            return Err(Error::InvalidRequestLine {
                reason: "asterisk-form target outside OPTIONS",
            }
            .into());
        }
        None
    } else if target.first() == Some(&b'/') {
        None
    } else {
        absolute_authority(target)?
    };

    let fields_at = pos;
    let mut host_header: Option<Option<Authority<'_>>> = None;
    let mut framing = Framing::default();
    let pos = field_lines(input, pos, |name, value| {
        if name.eq_ignore_ascii_case(b"host") {
            if host_header.is_some() {
                return Err(Error::DuplicateHost.into());
            }
            host_header = Some(host_value(value)?);
        } else {
            framing.field(name, value)?;
        }
        Ok(())
    })?;
    framing.check_request(minor_version, connect)?;

    let Some(host_header) = host_header.or(if minor_version == 0 { Some(None) } else { None })
    else {
        return Err(Error::MissingHost.into());
    };
    let (host, port) = match from_target.or(host_header) {
        Some((h, p)) => (Some(h), p),
        None => (None, None),
    };
    Ok(HttpRequest {
        host,
        port,
        minor_version,
        connect,
        absolute_form: !connect && from_target.is_some(),
        method,
        target,
        head: &input[..pos],
        fields_at,
        framing,
    })
}

/// Reads the field lines from `pos` to the empty line that ends them, handing each name and
/// value (without its line end) to `field`; returns where the block ends, past the empty line.
fn field_lines<'a>(
    input: &'a [u8],
    mut pos: usize,
    mut field: impl FnMut(&'a [u8], &'a [u8]) -> Result<(), Stop>,
) -> Result<usize, Stop> {
    loop {
        if end_of_fields(input, pos)? {
            return Ok(pos + 2);
        }
        let colon = header_name_end(input, pos)?;
        let line_end = value_end(input, colon + 1)?;
        field(&input[pos..colon], &input[colon + 1..line_end - 1])?;
        pos = line_end + 1;
    }
}

/// Whether the line at `pos` is the empty line that ends a field block (CRLF only: a bare LF
/// ends a line for some readers and not others), or an error for a line that cannot start a
/// field.
fn end_of_fields(input: &[u8], pos: usize) -> Result<bool, Stop> {
    match input.get(pos) {
        None => Err(Stop::More),
        Some(b'\r') => match input.get(pos + 1) {
            None => Err(Stop::More),
            Some(b'\n') => Ok(true),
            Some(_) => Err(Error::InvalidHeader {
                reason: "CR not followed by LF",
            }
            .into()),
        },
        Some(b'\n') => Err(Error::InvalidHeader {
            reason: "LF without CR",
        }
        .into()),
        Some(b' ' | b'\t') => Err(Error::ObsFold.into()),
        Some(_) => Ok(false),
    }
}

/// RFC 9110 §5.6.2 tchar, as a table: header names are scanned byte by byte.
const TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = matches!(b as u8,
            b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`'
            | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z');
        b += 1;
    }
    t
};

fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

fn token_until_space<'a>(input: &'a [u8], pos: &mut usize) -> Result<&'a [u8], Stop> {
    let start = *pos;
    loop {
        match input.get(*pos) {
            None => return Err(Stop::More),
            Some(b' ') if *pos > start => break,
            Some(&b) if is_tchar(b) && *pos - start < MAX_METHOD_LEN => *pos += 1,
            Some(_) => return Err(Error::NotHttp.into()),
        }
    }
    let token = &input[start..*pos];
    *pos += 1;
    Ok(token)
}

fn target_until_space<'a>(input: &'a [u8], pos: &mut usize) -> Result<&'a [u8], Stop> {
    let start = *pos;
    let rest = input.get(start..).unwrap_or_default();
    let len = first_not_visible(rest).ok_or(Stop::More)?;
    if len == 0 || rest[len] != b' ' {
        return Err(Error::NotHttp.into());
    }
    *pos += len + 1;
    Ok(&rest[..len])
}

/// Position of the first byte outside `0x21..=0x7e` (visible ASCII), sixteen bytes at a time.
fn first_not_visible(s: &[u8]) -> Option<usize> {
    const ONES: u128 = u128::from_ne_bytes([0x01; 16]);
    const HIGHS: u128 = u128::from_ne_bytes([0x80; 16]);
    const BELOW: u128 = u128::from_ne_bytes([0x21; 16]);
    let mut rest = s;
    while let Some((chunk, tail)) = rest.split_first_chunk::<16>() {
        let x = u128::from_le_bytes(*chunk);
        // Bytes below 0x21, and bytes above 0x7e: in both tests the lowest flag is exact.
        let low = x.wrapping_sub(BELOW) & !x & HIGHS;
        let high = (x.wrapping_add(ONES) | x) & HIGHS;
        let hit = low | high;
        if hit != 0 {
            return Some(s.len() - rest.len() + (hit.trailing_zeros() / 8) as usize);
        }
        rest = tail;
    }
    let at = s.len() - rest.len();
    rest.iter()
        .position(|b| !(0x21..=0x7e).contains(b))
        .map(|p| at + p)
}

/// `HTTP/1.0` or `HTTP/1.1` then the line end; returns the minor version. Other minor
/// versions are refused, as httparse and hyper refuse them: a backend may read `HTTP/1.2` as
/// 1.1, as 1.0 or not at all, and Host, keep-alive and Transfer-Encoding depend on which.
fn version_line(input: &[u8], pos: &mut usize) -> Result<u8, Stop> {
    const PREFIX: &[u8] = b"HTTP/";
    let rest = input.get(*pos..).unwrap_or_default();
    let seen = rest.len().min(PREFIX.len());
    if rest[..seen] != PREFIX[..seen] {
        return Err(Error::NotHttp.into());
    }
    let (&[major, dot, minor], after) = rest
        .get(PREFIX.len()..)
        .and_then(|r| r.split_first_chunk::<3>())
        .ok_or(Stop::More)?;
    if major != b'1' || dot != b'.' || !matches!(minor, b'0' | b'1') {
        return Err(Error::InvalidRequestLine {
            reason: "not HTTP/1.0 or HTTP/1.1",
        }
        .into());
    }
    let eol = match after {
        [] | [b'\r'] => return Err(Stop::More),
        [b'\n', ..] => {
            return Err(Error::InvalidRequestLine {
                reason: "LF without CR",
            }
            .into());
        }
        [b'\r', b'\n', ..] => 2,
        _ => {
            return Err(Error::InvalidRequestLine {
                reason: "bytes after the version",
            }
            .into());
        }
    };
    *pos += PREFIX.len() + 3 + eol;
    Ok(minor - b'0')
}

/// The authority of an absolute-form target (`scheme://authority/path`), if it has one.
fn absolute_authority(target: &[u8]) -> Result<Option<Authority<'_>>, Error> {
    const NOT_A_FORM: Error = Error::InvalidRequestLine {
        reason: "target is neither origin, absolute, authority nor asterisk form",
    };
    let sep = target
        .windows(3)
        .position(|w| w == b"://")
        .ok_or(NOT_A_FORM)?;
    let scheme = &target[..sep];
    let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok {
        return Err(NOT_A_FORM);
    }
    let rest = &target[sep + 3..];
    let end = rest
        .iter()
        .position(|b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.contains(&b'@') {
        return Err(Error::InvalidRequestLine {
            reason: "userinfo in the request target",
        });
    }
    if authority.is_empty() {
        // RFC 9110 §4.2.1: an http(s) URI with an empty host must be rejected as invalid.
        if scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https") {
            return Err(Error::InvalidRequestLine {
                reason: "http(s) target with an empty host",
            });
        }
        return Ok(None);
    }
    name::check_authority(authority).map(Some)
}

/// Where the colon after a header name is; the name must be a non-empty token.
fn header_name_end(input: &[u8], start: usize) -> Result<usize, Stop> {
    let name_len = input
        .get(start..)
        .unwrap_or_default()
        .iter()
        .position(|&b| !is_tchar(b))
        .ok_or(Stop::More)?;
    let end = start + name_len;
    match input[end] {
        b':' if name_len > 0 => Ok(end),
        b':' => Err(Error::InvalidHeader {
            reason: "empty header name",
        }
        .into()),
        b' ' | b'\t' => Err(Error::WhitespaceBeforeColon.into()),
        _ => Err(Error::InvalidHeader {
            reason: "character not allowed in a header name",
        }
        .into()),
    }
}

/// Where the LF ending a field value is, once every byte before it is a valid field-value byte
/// (RFC 9110 §5.5: visible ASCII, SP, HTAB, obs-text) and a CR only comes right before it.
fn value_end(input: &[u8], start: usize) -> Result<usize, Stop> {
    let mut at = start;
    loop {
        let rest = input.get(at..).unwrap_or_default();
        at += first_control(rest).ok_or(Stop::More)?;
        match input[at] {
            b'\n' => {
                return Err(Error::InvalidHeader {
                    reason: "LF without CR",
                }
                .into());
            }
            b'\t' => at += 1,
            b'\r' => {
                return match input.get(at + 1) {
                    None => Err(Stop::More),
                    Some(b'\n') => Ok(at + 1),
                    Some(_) => Err(Error::InvalidHeader {
                        reason: "CR not followed by LF",
                    }
                    .into()),
                };
            }
            _ => {
                return Err(Error::InvalidHeader {
                    reason: "control character in a header value",
                }
                .into());
            }
        }
    }
}

/// Position of the first byte below 0x20 or equal to 0x7f, eight bytes at a time (measured faster
/// here than sixteen in a u128, which compiles to pairs of scalar operations).
fn first_control(s: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const SPACES: u64 = u64::from_ne_bytes([0x20; 8]);
    const DELS: u64 = u64::from_ne_bytes([0x7f; 8]);
    let mut rest = s;
    while let Some((chunk, tail)) = rest.split_first_chunk::<8>() {
        let x = u64::from_le_bytes(*chunk);
        // Bytes below 0x20, and bytes equal to 0x7f: in both tests the lowest flag is exact.
        let low = x.wrapping_sub(SPACES) & !x & HIGHS;
        let del = x ^ DELS;
        let del = del.wrapping_sub(ONES) & !del & HIGHS;
        let hit = low | del;
        if hit != 0 {
            return Some(s.len() - rest.len() + (hit.trailing_zeros() / 8) as usize);
        }
        rest = tail;
    }
    let at = s.len() - rest.len();
    rest.iter()
        .position(|&b| b < 0x20 || b == 0x7f)
        .map(|p| at + p)
}

/// The Host field value between colon and LF, already checked by [`value_end`]: trimmed and
/// split. Empty means no name.
fn host_value(raw: &[u8]) -> Result<Option<Authority<'_>>, Error> {
    let raw = raw.trim_ascii();
    if raw.is_empty() {
        return Ok(None);
    }
    name::check_authority(raw).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Result<Status<HttpRequest<'_>>, Error> {
        parse(input, &Limits::default())
    }

    fn complete(input: &[u8]) -> HttpRequest<'_> {
        match parse_all(input) {
            Ok(Status::Complete(r)) => r,
            other => panic!("expected complete, got {other:?}"),
        }
    }

    fn host(input: &[u8]) -> (Option<std::string::String>, Option<u16>) {
        let r = complete(input);
        (r.host().map(|h| h.as_str().into()), r.port())
    }

    fn err(input: &[u8]) -> Error {
        parse_all(input).unwrap_err()
    }

    const GET: &[u8] = b"GET /index.html HTTP/1.1\r\nUser-Agent: t\r\nHost: Example.com\r\nAccept: */*\r\n\r\nbody";

    #[test]
    fn host_is_lowercased_and_consumed_ends_at_the_empty_line() {
        let r = complete(GET);
        assert_eq!(r.host().unwrap(), "example.com");
        assert_eq!(r.host_as_sent(), Some("Example.com"));
        assert_eq!(r.port(), None);
        assert_eq!(r.minor_version(), 1);
        assert_eq!(r.consumed(), GET.len() - 4);
    }

    #[test]
    fn every_prefix_is_partial_then_the_same_answer() {
        let whole = complete(GET);
        for cut in 0..GET.len() - 4 {
            assert_eq!(
                parse_all(&GET[..cut]),
                Ok(Status::Partial(Needed::Unknown)),
                "cut at {cut}"
            );
        }
        assert_eq!(complete(&GET[..GET.len() - 4]), whole);
    }

    #[test]
    fn port_and_ipv6_literal() {
        assert_eq!(
            host(b"GET / HTTP/1.1\r\nHost: a.com:8080\r\n\r\n"),
            (Some("a.com".into()), Some(8080))
        );
        assert_eq!(
            host(b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"),
            (Some("::1".into()), Some(8080))
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: ::1\r\n\r\n"),
            Error::InvalidName {
                reason: "IPv6 literal without brackets"
            }
        );
    }

    #[test]
    fn absolute_form_takes_precedence() {
        let r =
            complete(b"GET http://Origin.example:81/x?y HTTP/1.1\r\nHost: other.example\r\n\r\n");
        assert_eq!(
            (r.host().unwrap().as_str(), r.port()),
            ("origin.example", Some(81))
        );
        assert!(r.is_absolute_form());
        assert_eq!(
            err(b"GET http://u@a.com/ HTTP/1.1\r\nHost: a.com\r\n\r\n"),
            Error::InvalidRequestLine {
                reason: "userinfo in the request target"
            }
        );
        assert_eq!(
            err(b"GET a.com HTTP/1.1\r\nHost: a.com\r\n\r\n"),
            Error::InvalidRequestLine {
                reason: "target is neither origin, absolute, authority nor asterisk form"
            }
        );
    }

    #[test]
    fn absolute_form_still_needs_host_in_http11_and_asterisk_form_is_accepted() {
        assert_eq!(
            err(b"GET http://a.com/ HTTP/1.1\r\n\r\n"),
            Error::MissingHost
        );
        let r = complete(b"OPTIONS * HTTP/1.1\r\nHost: a.com\r\n\r\n");
        assert_eq!(r.host().unwrap(), "a.com");
        assert!(!r.is_absolute_form());
    }

    #[test]
    fn request_target_forms_are_checked() {
        let line = |reason| Error::InvalidRequestLine { reason };
        assert_eq!(
            err(b"GET http:///x HTTP/1.1\r\nHost: a.com\r\n\r\n"),
            line("http(s) target with an empty host")
        );
        assert_eq!(
            err(b"GET HTTPS:///x HTTP/1.1\r\nHost: a.com\r\n\r\n"),
            line("http(s) target with an empty host")
        );
        // Another scheme without an authority: the host comes from Host, so not absolute-form.
        let r = complete(b"GET urn-x:///x HTTP/1.1\r\nHost: a.com\r\n\r\n");
        assert_eq!(r.host().unwrap(), "a.com");
        assert!(!r.is_absolute_form());
        assert_eq!(
            err(b"CONNECT a.example HTTP/1.1\r\nHost: a.example\r\n\r\n"),
            line("CONNECT target without a port")
        );
        assert_eq!(
            err(b"GET * HTTP/1.1\r\nHost: a.com\r\n\r\n"),
            line("asterisk-form target outside OPTIONS")
        );
        let r = complete(b"CONNECT a.com:443 HTTP/1.1\r\nHost: a.com:443\r\n\r\n");
        assert!(!r.is_absolute_form());
    }

    #[test]
    fn connect_authority_is_flagged() {
        let r = complete(b"CONNECT a.com:443 HTTP/1.1\r\nHost: a.com:443\r\n\r\n");
        assert!(r.is_connect());
        assert_eq!((r.host().unwrap().as_str(), r.port()), ("a.com", Some(443)));
    }

    #[test]
    fn header_name_is_case_insensitive_and_value_trimmed() {
        assert_eq!(
            host(b"GET / HTTP/1.1\r\nhOsT: \t a.com \t\r\n\r\n"),
            (Some("a.com".into()), None)
        );
    }

    #[test]
    fn leading_empty_lines_are_skipped_but_lines_end_in_crlf_only() {
        assert_eq!(
            host(b"\r\n\r\nGET / HTTP/1.1\r\nHost: a.com\r\n\r\n"),
            (Some("a.com".into()), None)
        );
        // A bare LF ends a line for some readers and not others: never accepted.
        let lf = |reason| Error::InvalidHeader { reason };
        assert_eq!(
            err(b"GET / HTTP/1.1\nHost: a\r\n\r\n"),
            Error::InvalidRequestLine {
                reason: "LF without CR"
            }
        );
        assert_eq!(err(b"GET / HTTP/1.1\r\nHost: a\n\r\n"), lf("LF without CR"));
        assert_eq!(err(b"GET / HTTP/1.1\r\nHost: a\r\n\n"), lf("LF without CR"));
        assert_eq!(err(b"\nGET / HTTP/1.1\r\n"), Error::NotHttp);
    }

    #[test]
    fn framing_facts() {
        let r = complete(
            b"POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-Continue\r\n\r\n",
        );
        assert_eq!((r.method(), r.target()), ("POST", "/u"));
        assert_eq!(r.body(), Body::Length(5));
        assert!(r.expects_continue() && r.keep_alive() && !r.has_upgrade());
        let r = complete(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
        assert_eq!((r.body(), r.keep_alive()), (Body::Chunked, false));
        let r = complete(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        );
        assert!(r.has_upgrade() && r.connection_upgrade());
        let r = complete(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!((r.body(), r.keep_alive()), (Body::Empty, false));
        let r = complete(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert!(r.keep_alive());
        let r = complete(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(r.body(), Body::Empty);
    }

    #[test]
    fn smuggling_shapes_are_errors() {
        const CL_TE: &[u8] = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 13\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nSMUGGLED";
        assert!(matches!(err(CL_TE), Error::Framing { .. }));
        let with = |field: &[u8]| {
            let mut v = b"POST / HTTP/1.1\r\nHost: a\r\n".to_vec();
            v.extend_from_slice(field);
            v.extend_from_slice(b"\r\n\r\n");
            parse_all(&v).map(|_| ())
        };
        for bad in [
            &b"Transfer-Encoding: xchunked"[..],
            b"Transfer-Encoding: chunked, identity",
            b"Transfer-Encoding: chunked;x=1",
            b"Transfer-Encoding: chunked,",
            b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
            b"Content-Length: +5",
            b"Content-Length: 0x5",
            b"Content-Length: 5, 6",
            b"Content-Length: 5, 5",
            b"Content-Length: ",
            b"Content-Length: 99999999999999999999",
            b"Content-Length: 5\r\nContent-Length: 5",
            b"Content-Length: 005",
            b"Content-Length: 00",
            b"Content-Length: 0100",
        ] {
            assert!(
                matches!(with(bad), Err(Error::Framing { .. })),
                "{:?}",
                std::string::String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            with(b"Transfer-Encoding: gzip, chunked"),
            Err(Error::UnsupportedCoding)
        );
        assert_eq!(
            with(b"Transfer-Encoding : chunked"),
            Err(Error::WhitespaceBeforeColon)
        );
        // Refused for its empty value before the fold is reached: 400 either way.
        assert!(with(b"Transfer-Encoding:\r\n chunked").is_err());
        assert_eq!(with(b"X: 1\r\n 2"), Err(Error::ObsFold));
        // CGI-style backends read `_` as `-`: a second X-Forwarded-For or Content-Length.
        for name in [
            &b"X_Forwarded_For"[..],
            b"X-Forwarded_Proto",
            b"Content_Length",
            b"Transfer_Encoding",
        ] {
            let field = [name, b": 6"].concat();
            assert_eq!(
                with(&field),
                Err(Error::InvalidHeader {
                    reason: "underscore in a framing or forwarding field name"
                }),
                "{:?}",
                std::string::String::from_utf8_lossy(name)
            );
        }
        assert_eq!(with(b"X_Other_Field: 6"), Ok(()));
        assert!(matches!(
            err(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Error::Framing { .. }
        ));
        assert!(matches!(
            err(b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nContent-Length: 2\r\n\r\n"),
            Error::Framing { .. }
        ));
    }

    #[test]
    fn fields_are_listed_with_their_lines() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For:  1.2.3.4 \r\n\r\n";
        let r = complete(head);
        let fields: std::vec::Vec<_> = r.fields().collect();
        assert_eq!(fields.len(), 2);
        assert_eq!(fields[1].name, "X-Forwarded-For");
        assert_eq!(fields[1].value, b"1.2.3.4");
        assert_eq!(
            &head[fields[1].line.clone()],
            b"X-Forwarded-For:  1.2.3.4 \r\n"
        );
        assert_eq!(r.fields_end(), head.len() - 2);
    }

    #[test]
    fn http10_without_host_is_no_name_but_http11_is_an_error() {
        assert_eq!(host(b"GET / HTTP/1.0\r\nAccept: */*\r\n\r\n"), (None, None));
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"),
            Error::MissingHost
        );
        assert_eq!(host(b"GET / HTTP/1.1\r\nHost:\r\n\r\n"), (None, None));
    }

    #[test]
    fn duplicate_host_is_an_error_even_when_equal() {
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: a.com\r\nHost: a.com\r\n\r\n"),
            Error::DuplicateHost
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: a.com\r\nhost: b.com\r\n\r\n"),
            Error::DuplicateHost
        );
    }

    #[test]
    fn whitespace_before_colon_is_an_error() {
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost : a.com\r\n\r\n"),
            Error::WhitespaceBeforeColon
        );
    }

    #[test]
    fn obs_fold_is_an_error() {
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: a.com\r\n  .b\r\n\r\n"),
            Error::ObsFold
        );
    }

    #[test]
    fn invalid_characters_are_errors() {
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHo(st: a\r\n\r\n"),
            Error::InvalidHeader {
                reason: "character not allowed in a header name"
            }
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: a\x01.com\r\n\r\n"),
            Error::InvalidHeader {
                reason: "control character in a header value"
            }
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"),
            Error::InvalidName {
                reason: "character not allowed in a host name"
            }
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\n: x\r\n\r\n"),
            Error::InvalidHeader {
                reason: "empty header name"
            }
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: a\r\n\rx\r\n\r\n"),
            Error::InvalidHeader {
                reason: "CR not followed by LF"
            }
        );
    }

    #[test]
    fn every_header_line_is_checked_not_only_host() {
        let line = |l: &[u8]| {
            let mut v = b"GET / HTTP/1.1\r\nHost: a.com\r\n".to_vec();
            v.extend_from_slice(l);
            v.extend_from_slice(b"\r\n\r\n");
            parse_all(&v).map(|s| assert!(matches!(s, Status::Complete(_))))
        };
        let header = |reason| Err(Error::InvalidHeader { reason });
        // A bare CR: some backends end the line there and read a second Host.
        assert_eq!(line(b"X-A: 1\rHost: evil"), header("CR not followed by LF"));
        assert_eq!(
            line(b"Transfer-Encoding : chunked"),
            Err(Error::WhitespaceBeforeColon)
        );
        assert_eq!(line(b"X-A\t: 1"), Err(Error::WhitespaceBeforeColon));
        for bad in [0x00u8, 0x01, 0x0b, 0x1f, 0x7f] {
            assert_eq!(
                line(&[b'X', b':', b' ', b'a', bad, b'b']),
                header("control character in a header value"),
                "{bad:#x}"
            );
        }
        assert_eq!(
            line(b"X(: 1"),
            header("character not allowed in a header name")
        );
        assert_eq!(
            line(b"X\x80: 1"),
            header("character not allowed in a header name")
        );
        assert_eq!(line(b"X-A 1"), Err(Error::WhitespaceBeforeColon));
        // Tabs and obs-text are field-value bytes.
        assert_eq!(line(b"X-A: \t1\x80\xff\t"), Ok(()));
        // A line cut after its CR waits for the LF.
        assert_eq!(
            parse_all(b"GET / HTTP/1.1\r\nHost: a.com\r\nX: 1\r"),
            Ok(Status::Partial(Needed::Unknown))
        );
    }

    #[test]
    fn request_line_errors() {
        let version = Error::InvalidRequestLine {
            reason: "not HTTP/1.0 or HTTP/1.1",
        };
        for bad in [
            &b"GET / HTTP/2.0\r\n"[..],
            b"GET / HTTP/1.2\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.9\r\n",
            b"GET / HTTP/0.9\r\n",
            b"GET / HTTP/1.x\r\n",
        ] {
            assert_eq!(err(bad), version, "{:?}", core::str::from_utf8(bad));
        }
        // Known as soon as the minor digit arrives.
        assert_eq!(err(b"GET / HTTP/1.2"), version);
        assert_eq!(complete(b"GET / HTTP/1.0\r\n\r\n").minor_version(), 0);
        assert_eq!(
            err(b"GET / HTTP/1.1x\r\n"),
            Error::InvalidRequestLine {
                reason: "bytes after the version"
            }
        );
    }

    #[test]
    fn not_http_as_soon_as_the_bytes_prove_it() {
        assert_eq!(err(b"\x00"), Error::NotHttp);
        assert_eq!(err(b"GET\t"), Error::NotHttp);
        assert_eq!(err(b"GET / FTP"), Error::NotHttp);
        assert_eq!(err(b"GET /\x01"), Error::NotHttp);
        assert_eq!(err(&[b'A'; MAX_METHOD_LEN + 1]), Error::NotHttp);
        assert_eq!(parse_all(b"GET / HT"), Ok(Status::Partial(Needed::Unknown)));
    }

    #[test]
    fn header_cap() {
        let limits = Limits {
            max_header_len: 32,
            ..Limits::default()
        };
        assert_eq!(
            parse(GET, &limits),
            Err(Error::HeadersTooLarge { limit: 32 })
        );
        assert_eq!(
            parse(&GET[..40], &limits),
            Err(Error::HeadersTooLarge { limit: 32 })
        );
        assert_eq!(
            parse(&GET[..20], &limits),
            Ok(Status::Partial(Needed::Unknown))
        );
    }

    #[test]
    fn first_not_visible_matches_a_plain_search() {
        for bad in [0x00u8, b' ', 0x20, 0x7f, 0x80, 0xff, b'\t'] {
            for at in 0..40 {
                let mut buf = [b'~'; 40];
                buf[at] = bad;
                for start in 0..40 {
                    let want = buf[start..].iter().position(|b| !(0x21..=0x7e).contains(b));
                    assert_eq!(first_not_visible(&buf[start..]), want, "{bad:#x} at {at}");
                }
            }
        }
        let all: std::vec::Vec<u8> = (0..=255).collect();
        for start in 0..256 {
            let want = all[start..].iter().position(|b| !(0x21..=0x7e).contains(b));
            assert_eq!(first_not_visible(&all[start..]), want);
        }
    }

    #[test]
    fn first_control_matches_a_plain_search() {
        let plain = |s: &[u8]| s.iter().position(|&b| b < 0x20 || b == 0x7f);
        for bad in [0x00u8, b'\t', b'\r', b'\n', 0x1f, 0x7f] {
            for at in 0..40 {
                let mut buf = [b'~'; 40];
                buf[at] = bad;
                buf[(at + 7) % 40] = 0x80;
                for start in 0..40 {
                    assert_eq!(first_control(&buf[start..]), plain(&buf[start..]));
                }
            }
        }
        let all: std::vec::Vec<u8> = (0..=255).rev().collect();
        for start in 0..256 {
            assert_eq!(first_control(&all[start..]), plain(&all[start..]));
        }
    }
}
