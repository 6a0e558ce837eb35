//! The fields that frame a message (RFC 9112 §6, RFC 9110 §7.6.1, §7.8, §10.1.1), read as the head
//! is scanned, and the field lines of a head already validated.

use core::ops::Range;

use super::body::Body;
use crate::Error;

/// What the framing fields of one head said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Framing {
    pub(crate) body: Body,
    content_length: Option<u64>,
    /// A Transfer-Encoding field was seen, whatever its value.
    transfer_encoding: bool,
    /// Its codings end in `chunked`, which comes once.
    chunked_last: bool,
    /// Its codings include one other than `chunked`.
    other_coding: bool,
    pub(crate) connection: Connection,
    pub(crate) upgrade: bool,
    pub(crate) expect_continue: bool,
    /// X-Forwarded-For, X-Forwarded-Proto or Forwarded was seen.
    pub(crate) forwarding: bool,
}

/// The `Connection` options that matter to framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Connection {
    pub(crate) close: bool,
    pub(crate) keep_alive: bool,
    pub(crate) upgrade: bool,
    /// An option other than those three: a field name the next hop is to drop.
    pub(crate) other: bool,
}

fn framing(reason: &'static str) -> Error {
    Error::Framing { reason }
}

impl Framing {
    /// Takes one field line (the value without its line end, not trimmed). Host is the caller's.
    pub(crate) fn field(&mut self, name: &[u8], value: &[u8]) -> Result<(), Error> {
        // Rack, WSGI and PHP read `X_Forwarded_For` and `X-Forwarded-For` as one variable
        // (`HTTP_X_FORWARDED_FOR`; Puma CVE-2024-45614): a name that becomes a framing or
        // forwarding field when `_` is read as `-` would pass beside the real one.
        if underscore_alias(name) {
            return Err(Error::InvalidHeader {
                reason: "underscore in a framing or forwarding field name",
            });
        }
        // Names are compared by length first: most fields are none of these.
        match name.len() {
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                if self.content_length.is_some() {
                    return Err(framing("more than one Content-Length"));
                }
                self.content_length = Some(content_length(value)?);
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                if self.transfer_encoding {
                    return Err(framing("more than one Transfer-Encoding line"));
                }
                self.transfer_encoding = true;
                self.codings(value)?;
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for option in list(value) {
                    let c = &mut self.connection;
                    if option.eq_ignore_ascii_case(b"close") {
                        c.close = true;
                    } else if option.eq_ignore_ascii_case(b"keep-alive") {
                        c.keep_alive = true;
                    } else if option.eq_ignore_ascii_case(b"upgrade") {
                        c.upgrade = true;
                    } else {
                        c.other = true;
                    }
                }
            }
            7 if name.eq_ignore_ascii_case(b"upgrade") => self.upgrade = true,
            9 if name.eq_ignore_ascii_case(b"forwarded") => self.forwarding = true,
            15 if name.eq_ignore_ascii_case(b"x-forwarded-for") => self.forwarding = true,
            17 if name.eq_ignore_ascii_case(b"x-forwarded-proto") => self.forwarding = true,
            6 if name.eq_ignore_ascii_case(b"expect") => {
                self.expect_continue |= value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
            }
            _ => {}
        }
        Ok(())
    }

    /// The codings of a Transfer-Encoding line: `chunked` must come last and once; an empty
    /// element or parameters are refused rather than read one way or another.
    fn codings(&mut self, value: &[u8]) -> Result<(), Error> {
        let mut seen_any = false;
        for coding in value.split(|&b| b == b',') {
            let coding = coding.trim_ascii();
            if coding.is_empty() || !coding.iter().all(|&b| super::is_tchar(b)) {
                return Err(framing("Transfer-Encoding is not a list of codings"));
            }
            if self.chunked_last {
                return Err(framing("a coding after chunked"));
            }
            if coding.eq_ignore_ascii_case(b"chunked") {
                self.chunked_last = true;
            } else {
                self.other_coding = true;
            }
            seen_any = true;
        }
        if !seen_any {
            return Err(framing("Transfer-Encoding is not a list of codings"));
        }
        Ok(())
    }

    /// RFC 9112 §6.3 for a request, strictly: whatever a reader could frame another way is an
    /// error.
    pub(crate) fn check_request(&mut self, minor_version: u8, connect: bool) -> Result<(), Error> {
        self.body = match (self.transfer_encoding, self.content_length) {
            (true, Some(_)) => return Err(framing("both Content-Length and Transfer-Encoding")),
            (true, None) if minor_version == 0 => {
                return Err(framing("Transfer-Encoding in an HTTP/1.0 request"));
            }
            (true, None) if !self.chunked_last => {
                return Err(framing("Transfer-Encoding does not end in chunked"));
            }
            (true, None) if self.other_coding => return Err(Error::UnsupportedCoding),
            (true, None) => Body::Chunked,
            (false, Some(0)) | (false, None) => Body::Empty,
            (false, Some(n)) => Body::Length(n),
        };
        if connect && self.body != Body::Empty {
            return Err(framing("CONNECT with a body"));
        }
        Ok(())
    }

    /// RFC 9112 §6.3 for a response to `method` with `status`: the backend is believed, but a
    /// Content-Length that is not a number is still an error.
    pub(crate) fn response_body(&self, status: u16, method: &[u8]) -> Body {
        if method == b"HEAD" || status < 200 || status == 204 || status == 304 {
            Body::Empty
        } else if method == b"CONNECT" && (200..300).contains(&status) {
            Body::UntilClose
        } else if self.transfer_encoding {
            if self.chunked_last {
                Body::Chunked
            } else {
                Body::UntilClose
            }
        } else {
            match self.content_length {
                Some(0) => Body::Empty,
                Some(n) => Body::Length(n),
                None => Body::UntilClose,
            }
        }
    }
}

/// `1*DIGIT` (RFC 9110 §8.6), no sign, no list, no overflow, and no leading zero: RFC 9110
/// allows them, but a backend reading with `strtol(v, 0, 0)` takes `0100` as octal 64.
fn content_length(value: &[u8]) -> Result<u64, Error> {
    let digits = value.trim_ascii();
    if digits.is_empty() {
        return Err(framing("empty Content-Length"));
    }
    let n = digits.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return Err(framing("Content-Length is not one decimal number"));
        }
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(framing("Content-Length overflows"))
    })?;
    if digits.len() > 1 && digits[0] == b'0' {
        return Err(framing("zero-padded Content-Length"));
    }
    Ok(n)
}

/// Whether `name` is `lower` (a lowercase field name) when ASCII case is ignored and `_` is
/// read as `-`, as CGI-style backends read it.
fn is_dashed(name: &[u8], lower: &[u8]) -> bool {
    name.len() == lower.len() && name.iter().zip(lower).all(|(&b, &l)| dashed_lower(b) == l)
}

/// A name byte lowercased, `_` read as `-`.
pub(crate) fn dashed_lower(b: u8) -> u8 {
    match b {
        b'_' => b'-',
        b => b.to_ascii_lowercase(),
    }
}

/// A name with a `_` that CGI-style backends read as a framing or forwarding field (those
/// whose names have a `-`; the others cannot be spelt with a `_`). Cheap for other names: the
/// length first, then one or two bytes, since such a name has a `_` where the field has a `-`.
#[inline]
fn underscore_alias(name: &[u8]) -> bool {
    let underscore_at = |i: usize| name.get(i) == Some(&b'_');
    let field: &[u8] = match name.len() {
        14 if underscore_at(7) => b"content-length",
        15 if underscore_at(1) || underscore_at(11) => b"x-forwarded-for",
        17 if underscore_at(8) => b"transfer-encoding",
        17 if underscore_at(1) || underscore_at(11) => b"x-forwarded-proto",
        _ => return false,
    };
    is_dashed(name, field)
}

/// The non-empty elements of a comma-separated list, trimmed.
fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|e| !e.is_empty())
}

/// One field line of a validated head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field<'a> {
    /// The name, as sent (a token; compare without case).
    pub name: &'a str,
    /// The value without the whitespace around it (visible ASCII, SP, HTAB or obs-text).
    pub value: &'a [u8],
    /// The whole line, its CRLF included, as a range of the input.
    pub line: Range<usize>,
}

/// The field lines of a validated head ([`HttpRequest::fields`](super::HttpRequest::fields)).
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    head: &'a [u8],
    at: usize,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(head: &'a [u8], at: usize) -> Self {
        Fields { head, at }
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;

    fn next(&mut self) -> Option<Field<'a>> {
        let start = self.at;
        let rest = self.head.get(start..)?;
        // Validated: every line ends in CRLF, no CR or LF elsewhere, and the head ends with an
        // empty line.
        let len = rest.iter().position(|&b| b == b'\r')?;
        if len == 0 {
            return None;
        }
        let line = &rest[..len];
        let colon = line.iter().position(|&b| b == b':')?;
        self.at = start + len + 2;
        Some(Field {
            name: core::str::from_utf8(&line[..colon]).unwrap_or_default(),
            value: line[colon + 1..].trim_ascii(),
            line: start..self.at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_is_one_plain_number() {
        assert_eq!(content_length(b" 5 "), Ok(5));
        assert_eq!(content_length(b"0"), Ok(0));
        assert_eq!(content_length(b"\t0 "), Ok(0));
        assert_eq!(content_length(b"100"), Ok(100));
        assert_eq!(content_length(b"18446744073709551615"), Ok(u64::MAX));
        for zeros in [
            &b" 005 "[..],
            b"00",
            b"0100",
            b"05",
            b"000000000000000000000",
        ] {
            assert_eq!(
                content_length(zeros),
                Err(framing("zero-padded Content-Length")),
                "{zeros:?}"
            );
        }
        for bad in [
            &b""[..],
            b"  ",
            b"+5",
            b"-5",
            b"0x5",
            b"5, 5",
            b"5,6",
            b"5 6",
            b"18446744073709551616",
            b"99999999999999999999",
        ] {
            assert!(content_length(bad).is_err(), "{bad:?}");
        }
    }

    fn request(fields: &[(&[u8], &[u8])], minor: u8) -> Result<Body, Error> {
        let mut f = Framing::default();
        for (name, value) in fields {
            f.field(name, value)?;
        }
        f.check_request(minor, false).map(|()| f.body)
    }

    #[test]
    fn transfer_encoding_must_be_a_final_chunked_alone() {
        let te = |v: &[u8]| request(&[(b"Transfer-Encoding", v)], 1);
        assert_eq!(te(b" chunked "), Ok(Body::Chunked));
        assert_eq!(te(b"CHUNKED"), Ok(Body::Chunked));
        assert_eq!(te(b"gzip, chunked"), Err(Error::UnsupportedCoding));
        for bad in [
            &b"xchunked"[..],
            b"chunked, identity",
            b"chunked, chunked",
            b"chunked;x=1",
            b"chunked,",
            b",chunked",
            b"",
            b"identity",
        ] {
            assert!(
                matches!(te(bad), Err(Error::Framing { .. })),
                "{:?}",
                core::str::from_utf8(bad)
            );
        }
        assert!(request(&[(b"Transfer-Encoding", b"chunked")], 0).is_err());
        assert!(
            request(
                &[
                    (b"Transfer-Encoding", b"chunked"),
                    (b"transfer-encoding", b"chunked")
                ],
                1
            )
            .is_err()
        );
        assert!(
            request(
                &[
                    (b"Content-Length", b"13"),
                    (b"Transfer-Encoding", b"chunked")
                ],
                1
            )
            .is_err()
        );
        assert!(request(&[(b"Content-Length", b"1"), (b"Content-Length", b"1")], 1).is_err());
    }

    #[test]
    fn underscored_framing_and_forwarding_names_are_refused() {
        let refused = Err(Error::InvalidHeader {
            reason: "underscore in a framing or forwarding field name",
        });
        for name in [
            &b"X_Forwarded_For"[..],
            b"x_forwarded-for",
            b"X-Forwarded_For",
            b"X_FORWARDED_PROTO",
            b"Content_Length",
            b"transfer_encoding",
            b"Transfer_Encoding",
        ] {
            let mut f = Framing::default();
            assert_eq!(f.field(name, b"6.6.6.6"), refused, "{name:?}");
        }
        // Other names with `_`, or of the same length, are fields like any other.
        for name in [
            &b"X_Forwarded_Fox"[..],
            b"X_Forwarded_Host",
            b"Content_Type",
            b"X_Real_IP",
            b"Accept_Language",
            b"If_Modified_Since",
            b"X_Forwarded_For_",
        ] {
            let mut f = Framing::default();
            assert_eq!(f.field(name, b"1"), Ok(()), "{name:?}");
            assert_eq!(f, Framing::default(), "{name:?}");
        }
        let mut f = Framing::default();
        f.field(b"x-forwarded-for", b"1.2.3.4").unwrap();
        assert!(f.forwarding);
        // Against a plain search: each field's name with one or two places set to `_`, `-`
        // or a letter, and names of the same lengths.
        const ALIASED: [&[u8]; 4] = [
            b"content-length",
            b"transfer-encoding",
            b"x-forwarded-for",
            b"x-forwarded-proto",
        ];
        let plain =
            |name: &[u8]| name.contains(&b'_') && ALIASED.iter().any(|n| is_dashed(name, n));
        for field in ALIASED
            .iter()
            .chain([&&b"accept-language"[..], &&b"if-modified-since"[..]])
        {
            for i in 0..field.len() {
                for b in [b'_', b'-', b'X'] {
                    let mut name = field.to_vec();
                    name[i] = b;
                    assert_eq!(underscore_alias(&name), plain(&name), "{name:?}");
                    name[field.len() - 1 - i] = b'_';
                    assert_eq!(underscore_alias(&name), plain(&name), "{name:?}");
                }
            }
        }
    }

    #[test]
    fn dashed_names_ignore_case_and_read_underscores_as_dashes() {
        assert!(is_dashed(b"X_Forwarded-FOR", b"x-forwarded-for"));
        assert!(is_dashed(b"te", b"te"));
        assert!(!is_dashed(b"x-forwarded-fo", b"x-forwarded-for"));
        assert!(!is_dashed(b"x.forwarded.for", b"x-forwarded-for"));
        assert!(!is_dashed(b"x-forwarded-for", b"x_forwarded_for"));
    }

    #[test]
    fn responses_are_framed_by_status_and_method() {
        let mut f = Framing::default();
        f.field(b"Content-Length", b"7").unwrap();
        assert_eq!(f.response_body(200, b"GET"), Body::Length(7));
        assert_eq!(f.response_body(200, b"HEAD"), Body::Empty);
        assert_eq!(f.response_body(304, b"GET"), Body::Empty);
        assert_eq!(f.response_body(100, b"GET"), Body::Empty);
        assert_eq!(f.response_body(200, b"CONNECT"), Body::UntilClose);
        assert_eq!(
            Framing::default().response_body(200, b"GET"),
            Body::UntilClose
        );
    }
}
