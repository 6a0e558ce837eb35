//! HTTP/2 with prior knowledge (RFC 9113 §3.4): the preface, then frames up to the first request's
//! complete header block (HEADERS + CONTINUATION), whose `:authority` is decoded with HPACK.

use crate::hpack::{self, EncodedAuthority};
use crate::name::HostName;
use crate::{Error, Limits, Needed, Status};

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Length of a frame header.
const FRAME_HEADER_LEN: usize = 9;
/// SETTINGS_MAX_FRAME_SIZE before the server says otherwise (RFC 9113 §6.5.2).
const MAX_FRAME_LEN: usize = 1 << 14;

mod frame_type {
    pub(super) const DATA: u8 = 0x0;
    pub(super) const HEADERS: u8 = 0x1;
    pub(super) const SETTINGS: u8 = 0x4;
    pub(super) const PUSH_PROMISE: u8 = 0x5;
    pub(super) const CONTINUATION: u8 = 0x9;
}

mod flag {
    pub(super) const ACK: u8 = 0x1;
    pub(super) const END_HEADERS: u8 = 0x4;
    pub(super) const PADDED: u8 = 0x8;
    pub(super) const PRIORITY: u8 = 0x20;
}

/// The first request of an HTTP/2 prior-knowledge connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H2Request<'a> {
    authority: Option<EncodedAuthority<'a>>,
    stream_id: u32,
    consumed: usize,
}

impl H2Request<'_> {
    /// The host from `:authority` (or `host` when there is none): lowercased, no port.
    pub fn host(&self) -> Option<HostName> {
        self.authority.and_then(|a| a.host())
    }

    /// The port, when the authority gives one.
    pub fn port(&self) -> Option<u16> {
        self.authority.and_then(|a| a.port())
    }

    /// The stream carrying the request.
    pub fn stream_id(&self) -> u32 {
        self.stream_id
    }

    /// Input bytes up to the end of the frame that completed the header block.
    pub fn consumed(&self) -> usize {
        self.consumed
    }
}

/// Reads the preface and frames up to the end of the first header block.
///
/// `scratch` joins a header block split over CONTINUATION frames; it is not touched otherwise.
/// Errors with [`Error::NotHttp`] when the input does not start with the preface.
pub fn parse<'a>(
    input: &'a [u8],
    scratch: &'a mut [u8],
    limits: &Limits,
) -> Result<Status<H2Request<'a>>, Error> {
    if input.len() < PREFACE.len() {
        return if PREFACE.starts_with(input) {
            Ok(Status::Partial(Needed::at_least(
                PREFACE.len() - input.len(),
            )))
        } else {
            Err(Error::NotHttp)
        };
    }
    if !input.starts_with(PREFACE) {
        return Err(Error::NotHttp);
    }
    let mut pos = PREFACE.len();
    // While a header block is open: its stream and how much of it is in scratch.
    let mut open: Option<(u32, usize)> = None;
    loop {
        let rest = input.get(pos..).unwrap_or_default();
        let Some(&[l0, l1, l2, kind, flags, s0, s1, s2, s3]) =
            rest.first_chunk::<FRAME_HEADER_LEN>()
        else {
            // A frame header, then at least its payload and the frames after it.
            let missing = pos + FRAME_HEADER_LEN - input.len();
            return needed(pos + FRAME_HEADER_LEN, Needed::at_least(missing), limits);
        };
        let len = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
        let stream = u32::from_be_bytes([s0, s1, s2, s3]) & 0x7fff_ffff;
        if len > MAX_FRAME_LEN {
            return Err(Error::H2Frame {
                reason: "frame larger than 16384 bytes",
            });
        }
        if pos == PREFACE.len() && kind != frame_type::SETTINGS {
            return Err(Error::H2Frame {
                reason: "preface not followed by SETTINGS",
            });
        }
        let end = pos + FRAME_HEADER_LEN + len;
        if end > limits.max_header_len {
            return Err(Error::HeadersTooLarge {
                limit: limits.max_header_len,
            });
        }
        if end > input.len() {
            // The rest of the frame its header announced.
            return needed(end, Needed::exactly(end - input.len()), limits);
        }
        let payload = &input[pos + FRAME_HEADER_LEN..end];
        let end_headers = flags & flag::END_HEADERS != 0;
        match (open, kind) {
            (None, frame_type::HEADERS) => {
                if stream == 0 || stream % 2 == 0 {
                    return Err(Error::H2Frame {
                        reason: "HEADERS on a stream the client cannot open",
                    });
                }
                let fragment = headers_fragment(payload, flags)?;
                if end_headers {
                    return done(fragment, stream, end);
                }
                open = Some((stream, append(scratch, 0, fragment)?));
            }
            (None, frame_type::DATA | frame_type::CONTINUATION | frame_type::PUSH_PROMISE) => {
                return Err(Error::H2Frame {
                    reason: "DATA, CONTINUATION or PUSH_PROMISE before the first HEADERS",
                });
            }
            (None, frame_type::SETTINGS) => settings(payload, flags, stream)?,
            // WINDOW_UPDATE, PRIORITY, PING and unknown types may come first too.
            (None, _) => {}
            (Some((open_stream, filled)), frame_type::CONTINUATION) if open_stream == stream => {
                let filled = append(scratch, filled, payload)?;
                if end_headers {
                    return done(scratch.get(..filled).unwrap_or_default(), stream, end);
                }
                open = Some((stream, filled));
            }
            (Some(_), _) => {
                return Err(Error::H2Frame {
                    reason: "header block interrupted by another frame",
                });
            }
        }
        pos = end;
    }
}

/// Partial with `n`, unless `end`, where those bytes end, is past the cap already.
fn needed(end: usize, n: Needed, limits: &Limits) -> Result<Status<H2Request<'static>>, Error> {
    if end > limits.max_header_len {
        return Err(Error::HeadersTooLarge {
            limit: limits.max_header_len,
        });
    }
    Ok(Status::Partial(n))
}

fn done(block: &[u8], stream_id: u32, consumed: usize) -> Result<Status<H2Request<'_>>, Error> {
    Ok(Status::Complete(H2Request {
        authority: hpack::find_authority(block)?,
        stream_id,
        consumed,
    }))
}

/// A SETTINGS frame's framing (RFC 9113 §6.5): on stream 0, six bytes per setting, empty with ACK.
fn settings(payload: &[u8], flags: u8, stream: u32) -> Result<(), Error> {
    let reason = if stream != 0 {
        "SETTINGS on a stream other than 0"
    } else if payload.len() % 6 != 0 {
        "SETTINGS length not a multiple of 6"
    } else if flags & flag::ACK != 0 && !payload.is_empty() {
        "SETTINGS ACK with a payload"
    } else {
        return Ok(());
    };
    Err(Error::H2Frame { reason })
}

/// The header block fragment of a HEADERS payload, without padding and priority (RFC 9113 §6.2).
fn headers_fragment(payload: &[u8], flags: u8) -> Result<&[u8], Error> {
    let mut rest = payload;
    let mut pad = 0usize;
    if flags & flag::PADDED != 0 {
        let (&p, tail) = rest.split_first().ok_or(Error::H2Frame {
            reason: "PADDED HEADERS without a pad length",
        })?;
        pad = usize::from(p);
        rest = tail;
    }
    if flags & flag::PRIORITY != 0 {
        rest = rest.get(5..).ok_or(Error::H2Frame {
            reason: "PRIORITY HEADERS shorter than its priority fields",
        })?;
    }
    rest.get(..rest.len().wrapping_sub(pad))
        .filter(|_| pad <= rest.len())
        .ok_or(Error::H2Frame {
            reason: "padding longer than the frame",
        })
}

fn append(scratch: &mut [u8], filled: usize, fragment: &[u8]) -> Result<usize, Error> {
    let got = scratch.len();
    let end = filled + fragment.len();
    scratch
        .get_mut(filled..end)
        .ok_or(Error::ScratchTooSmall { required: end, got })?
        .copy_from_slice(fragment);
    Ok(end)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::hpack::tests::literal;
    use std::vec::Vec;

    pub(crate) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        v.extend([kind, flags]);
        v.extend(stream.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    /// The preface, a SETTINGS frame, and a HEADERS frame with `:authority`, as a client sends them.
    pub(crate) fn request(authority: &[u8]) -> Vec<u8> {
        let mut v = PREFACE.to_vec();
        v.extend(frame(frame_type::SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]));
        v.extend(frame(8, 0, 0, &[0, 0xff, 0, 0])); // WINDOW_UPDATE
        let mut block = std::vec![0x82, 0x87, 0x84]; // GET https /
        block.extend(literal(b":authority", authority, true));
        v.extend(frame(
            frame_type::HEADERS,
            flag::END_HEADERS | 0x1,
            1,
            &block,
        ));
        v
    }

    fn parse_all(input: &[u8]) -> Result<Status<H2Request<'_>>, Error> {
        // Leaked: the result borrows the scratch, as a caller's would.
        let scratch = std::boxed::Box::leak(std::vec![0u8; 1024].into_boxed_slice());
        parse(input, scratch, &Limits::default())
    }

    fn complete(input: &[u8]) -> H2Request<'_> {
        match parse_all(input) {
            Ok(Status::Complete(r)) => r,
            other => panic!("expected complete, got {other:?}"),
        }
    }

    #[test]
    fn authority_from_first_headers() {
        let input = request(b"Example.com:8443");
        let r = complete(&input);
        assert_eq!(r.host().unwrap(), "example.com");
        assert_eq!(r.port(), Some(8443));
        assert_eq!(r.stream_id(), 1);
        assert_eq!(r.consumed(), input.len());
    }

    #[test]
    fn every_prefix_is_partial_with_the_exact_count_within_a_frame() {
        let input = request(b"example.com");
        for cut in 0..input.len() {
            match parse_all(&input[..cut]) {
                Ok(Status::Partial(n)) => assert!(cut + n.min() <= input.len()),
                other => panic!("cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn header_block_over_continuation_frames() {
        let mut block = std::vec![0x82, 0x87, 0x84];
        block.extend(literal(b":authority", b"split.example", false));
        let (a, b) = block.split_at(6);
        let mut input = PREFACE.to_vec();
        input.extend(frame(frame_type::SETTINGS, 0, 0, &[]));
        // PADDED and PRIORITY on the HEADERS frame, then two CONTINUATIONs.
        let mut headers = std::vec![2u8];
        headers.extend([0, 0, 0, 0, 16]);
        headers.extend_from_slice(a);
        headers.extend([0, 0]);
        input.extend(frame(
            frame_type::HEADERS,
            flag::PADDED | flag::PRIORITY,
            3,
            &headers,
        ));
        input.extend(frame(frame_type::CONTINUATION, 0, 3, &b[..3]));
        input.extend(frame(
            frame_type::CONTINUATION,
            flag::END_HEADERS,
            3,
            &b[3..],
        ));
        assert_eq!(complete(&input).host().unwrap(), "split.example");
        assert_eq!(
            parse(&input, &mut [0u8; 4], &Limits::default()),
            Err(Error::ScratchTooSmall {
                required: 6,
                got: 4
            })
        );
    }

    #[test]
    fn no_authority_is_no_name() {
        let mut input = PREFACE.to_vec();
        input.extend(frame(frame_type::SETTINGS, 0, 0, &[]));
        input.extend(frame(
            frame_type::HEADERS,
            flag::END_HEADERS,
            1,
            &[0x82, 0x87, 0x84],
        ));
        assert_eq!(complete(&input).host(), None);
    }

    #[test]
    fn not_the_preface_is_not_http() {
        assert_eq!(parse_all(b"PRI * HTTP/1.1\r\n"), Err(Error::NotHttp));
        assert_eq!(parse_all(b"PRX"), Err(Error::NotHttp));
        assert!(matches!(parse_all(b"PRI"), Ok(Status::Partial(_))));
    }

    fn frame_error(input: &[u8]) -> &'static str {
        match parse_all(input) {
            Err(Error::H2Frame { reason }) => reason,
            other => panic!("expected H2Frame, got {other:?}"),
        }
    }

    fn with(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut v = PREFACE.to_vec();
        for f in frames {
            v.extend_from_slice(f);
        }
        v
    }

    #[test]
    fn frame_errors_each_say_why() {
        let settings = frame(frame_type::SETTINGS, 0, 0, &[]);
        assert_eq!(
            frame_error(&with(&[frame(frame_type::HEADERS, 4, 1, &[0x82])])),
            "preface not followed by SETTINGS"
        );
        assert_eq!(
            frame_error(&with(&[
                settings.clone(),
                frame(frame_type::HEADERS, 4, 2, &[0x82])
            ])),
            "HEADERS on a stream the client cannot open"
        );
        assert_eq!(
            frame_error(&with(&[
                settings.clone(),
                frame(frame_type::DATA, 0, 1, b"x")
            ])),
            "DATA, CONTINUATION or PUSH_PROMISE before the first HEADERS"
        );
        assert_eq!(
            frame_error(&with(&[
                settings.clone(),
                frame(frame_type::HEADERS, 0, 1, &[0x82]),
                frame(frame_type::SETTINGS, 0, 0, &[])
            ])),
            "header block interrupted by another frame"
        );
        assert_eq!(
            frame_error(&with(&[
                settings.clone(),
                frame(frame_type::HEADERS, flag::PADDED | 4, 1, &[5, 0x82])
            ])),
            "padding longer than the frame"
        );
        assert_eq!(
            frame_error(&with(&[
                settings.clone(),
                frame(frame_type::HEADERS, flag::PADDED | 4, 1, &[])
            ])),
            "PADDED HEADERS without a pad length"
        );
        assert_eq!(
            frame_error(&with(&[
                settings.clone(),
                frame(frame_type::HEADERS, flag::PRIORITY | 4, 1, &[0, 0])
            ])),
            "PRIORITY HEADERS shorter than its priority fields"
        );
        assert_eq!(
            frame_error(&with(&[frame(frame_type::SETTINGS, 0, 1, &[])])),
            "SETTINGS on a stream other than 0"
        );
        assert_eq!(
            frame_error(&with(&[frame(
                frame_type::SETTINGS,
                0,
                0,
                &[0, 3, 0, 0, 0]
            )])),
            "SETTINGS length not a multiple of 6"
        );
        assert_eq!(
            frame_error(&with(&[
                settings.clone(),
                frame(frame_type::SETTINGS, flag::ACK, 0, &[0, 3, 0, 0, 0, 1])
            ])),
            "SETTINGS ACK with a payload"
        );
        let mut big = with(&[settings]);
        big.extend([0x00, 0x40, 0x01, 1, 4, 0, 0, 0, 1]);
        assert_eq!(frame_error(&big), "frame larger than 16384 bytes");
    }

    #[test]
    fn header_cap_is_enforced_before_waiting() {
        let input = request(b"example.com");
        let limits = Limits {
            max_header_len: 40,
            ..Limits::default()
        };
        assert_eq!(
            parse(&input, &mut [], &limits),
            Err(Error::HeadersTooLarge { limit: 40 })
        );
    }
}
