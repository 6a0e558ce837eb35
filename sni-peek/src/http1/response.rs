//! A response's status line and framing fields (RFC 9112 §4, §6.3): what a proxy that relays
//! responses as bytes needs to know where each one ends, and whether the connection switched
//! protocols.

use super::body::Body;
use super::fields::Framing;
use super::{Stop, field_lines, value_end};
use crate::{Error, Limits, Needed, Status};

/// The framing facts of an HTTP/1.x response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpResponse {
    status: u16,
    minor_version: u8,
    framing: Framing,
    consumed: usize,
}

impl HttpResponse {
    /// The status code, 100 to 999.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub fn minor_version(&self) -> u8 {
        self.minor_version
    }

    /// An interim response (1xx other than 101): the final one to the same request follows.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }

    /// How the body of this response to a request with `method` is framed (RFC 9112 §6.3):
    /// none after HEAD, 1xx, 204 and 304; [`Body::UntilClose`] for a 2xx to CONNECT (a tunnel)
    /// and when neither Content-Length nor a final `chunked` says otherwise.
    pub fn body(&self, method: &str) -> Body {
        self.framing.response_body(self.status, method.as_bytes())
    }

    /// The connection may carry another response after this one (RFC 9112 §9.3).
    pub fn keep_alive(&self) -> bool {
        let c = self.framing.connection;
        match self.minor_version {
            0 => c.keep_alive && !c.close,
            _ => !c.close,
        }
    }

    /// Input bytes up to and including the empty line that ends the head.
    pub fn consumed(&self) -> usize {
        self.consumed
    }
}

/// Parses a status line and header block received so far, with the same checks on field lines
/// as a request's.
pub fn parse_response(input: &[u8], limits: &Limits) -> Result<Status<HttpResponse>, Error> {
    let too_large = Error::HeadersTooLarge {
        limit: limits.max_header_len,
    };
    match scan(input) {
        Ok(r) if r.consumed > limits.max_header_len => Err(too_large),
        Ok(r) => Ok(Status::Complete(r)),
        Err(Stop::More) if input.len() >= limits.max_header_len => Err(too_large),
        Err(Stop::More) => Ok(Status::Partial(Needed::Unknown)),
        Err(Stop::Fail(e)) => Err(e),
    }
}

fn scan(input: &[u8]) -> Result<HttpResponse, Stop> {
    const BAD: Error = Error::InvalidStatusLine;
    const PREFIX: &[u8] = b"HTTP/1.";
    let seen = input.len().min(PREFIX.len());
    if input[..seen] != PREFIX[..seen] {
        return Err(BAD.into());
    }
    // `HTTP/1.1 200 ` then a reason phrase, possibly empty; the SP before it is often left out.
    // Only 1.0 and 1.1, as for requests.
    let line = input.get(..13).ok_or(Stop::More)?;
    let (minor, code) = (line[7], &line[9..12]);
    if !matches!(minor, b'0' | b'1') || line[8] != b' ' || !code.iter().all(u8::is_ascii_digit) {
        return Err(BAD.into());
    }
    let status = code.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    if status < 100 {
        return Err(BAD.into());
    }
    let mut pos = 12;
    match line[12] {
        b' ' => pos = value_end(input, 13)? + 1,
        b'\r' => match input.get(13) {
            None => return Err(Stop::More),
            Some(b'\n') => pos += 2,
            Some(_) => return Err(BAD.into()),
        },
        _ => return Err(BAD.into()),
    }
    let mut framing = Framing::default();
    let pos = field_lines(input, pos, |name, value| Ok(framing.field(name, value)?))?;
    Ok(HttpResponse {
        status,
        minor_version: minor - b'0',
        framing,
        consumed: pos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &[u8]) -> Result<Status<HttpResponse>, Error> {
        parse_response(input, &Limits::default())
    }

    #[test]
    fn framing_of_common_responses() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let r = parse(ok).unwrap().complete().unwrap();
        assert_eq!((r.status(), r.consumed()), (200, ok.len() - 5));
        assert_eq!(r.body("GET"), Body::Length(5));
        assert_eq!(r.body("HEAD"), Body::Empty);
        assert!(r.keep_alive());
        for cut in 0..ok.len() - 5 {
            assert_eq!(
                parse(&ok[..cut]),
                Ok(Status::Partial(Needed::Unknown)),
                "{cut}"
            );
        }
        let r = parse(b"HTTP/1.1 101\r\nUpgrade: websocket\r\n\r\n")
            .unwrap()
            .complete();
        assert_eq!(r.map(|r| (r.status(), r.is_interim())), Some((101, false)));
        let r = parse(b"HTTP/1.1 100 Continue\r\n\r\n")
            .unwrap()
            .complete()
            .unwrap();
        assert!(r.is_interim());
        let r = parse(b"HTTP/1.0 200 OK\r\n\r\n")
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!((r.body("GET"), r.keep_alive()), (Body::UntilClose, false));
        let r =
            parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
        let r = r.unwrap().complete().unwrap();
        assert_eq!((r.body("GET"), r.keep_alive()), (Body::Chunked, false));
    }

    #[test]
    fn what_is_not_a_status_line() {
        for bad in [
            &b"HTTP/2 200 OK\r\n"[..],
            b"HTTP/1.2 200 OK\r\n\r\n",
            b"HTTP/1.9 200 OK\r\n\r\n",
            b"HTTP/1.x 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX_Forwarded_For: 1\r\n\r\n",
            b"HTTP/1.1 20 OK\r\n",
            b"HTTP/1.1 099 OK\r\n",
            b"HTTP/1.1 200OK\r\n",
            b"HTTP/1.1 200 OK\n",
            b"ICY 200 OK\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        ] {
            assert!(parse(bad).is_err(), "{:?}", core::str::from_utf8(bad));
        }
    }
}
