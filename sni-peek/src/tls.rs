//! The TLS record layer: find the ClientHello in handshake records split anywhere, reassemble it.
//!
//! ```text
//!  input:  [hdr|payload][hdr|payload][hdr|pay..      (records, cut anywhere by TCP)
//!                 \          |          /
//!  hello:   [type|len24|  ClientHello body  ]         (borrowed when in one record,
//!                                                      else copied into the caller's scratch)
//! ```
//!
//! Pass one walks the record headers without copying: it learns the handshake type and length as soon
//! as their bytes arrive (so a wrong type or an oversized hello fails at once) and says how many bytes
//! are missing. Pass two, only for a complete hello spread over several records, copies the payloads
//! into scratch. Both passes re-run on each call: the caller re-parses the growing buffer.

use crate::hello::{self, ClientHello, ProtocolVersion};
use crate::{Error, Limits, Needed, Status};

/// Length of a TLS record header: type, version, length.
pub const RECORD_HEADER_LEN: usize = 5;
/// Largest plaintext record payload (RFC 8446 §5.1).
pub const MAX_RECORD_LEN: usize = 1 << 14;
/// Length of a handshake message header: type and 24-bit length.
pub const HANDSHAKE_HEADER_LEN: usize = 4;

/// Record content types (RFC 8446 §5.1).
mod content_type {
    pub(super) const HANDSHAKE: u8 = 22;
}

/// Handshake message types (RFC 8446 §4).
mod handshake_type {
    pub(super) const CLIENT_HELLO: u8 = 1;
}

/// Parses a ClientHello from the bytes received so far.
///
/// `scratch` is only written when the hello spans several records; it must then hold the whole
/// handshake message (`4 + Limits::max_hello_len` bytes is always enough). Errors with
/// [`Error::NotTls`] when the first bytes are not a TLS handshake record nor an SSLv2 hello.
pub fn parse<'a>(
    input: &'a [u8],
    scratch: &'a mut [u8],
    limits: &Limits,
) -> Result<Status<ClientHello<'a>>, Error> {
    match classify(input) {
        Class::Partial(n) => Ok(Status::Partial(Needed::bytes(n))),
        Class::NotTls => Err(Error::NotTls),
        Class::Sslv2 => parse_sslv2(input),
        Class::Records => parse_records(input, scratch, limits),
    }
}

enum Class {
    Partial(usize),
    NotTls,
    Sslv2,
    Records,
}

/// Decides from the first three bytes: a TLS record, an SSLv2-compatible hello, or neither.
fn classify(input: &[u8]) -> Class {
    match input {
        [] => Class::Partial(3),
        [content_type::HANDSHAKE] => Class::Partial(2),
        [content_type::HANDSHAKE, 3, ..] => Class::Records,
        // SSLv2 record: 2-byte length with the top bit set, then msg_type CLIENT-HELLO (1).
        [b, ..] if b & 0x80 != 0 => match input.get(2) {
            None => Class::Partial(3 - input.len()),
            Some(1) => Class::Sslv2,
            Some(_) => Class::NotTls,
        },
        _ => Class::NotTls,
    }
}

/// True when the first bytes could start a TLS or SSLv2 ClientHello (used to route between parsers).
pub(crate) fn may_be_tls(input: &[u8]) -> bool {
    !matches!(classify(input), Class::NotTls)
}

/// An SSLv2-compatible ClientHello (RFC 5246 Appendix E.2): TLS, but it never carries a name.
fn parse_sslv2(input: &[u8]) -> Result<Status<ClientHello<'_>>, Error> {
    let [b0, b1, _, v0, v1, ..] = *input else {
        return Ok(Status::Partial(Needed::bytes(5 - input.len())));
    };
    let len = usize::from(u16::from_be_bytes([b0 & 0x7f, b1]));
    let total = 2 + len;
    // msg_type, version, three 2-byte lengths, then at least a cipher spec and a challenge.
    if len < 9 {
        return Err(Error::Truncated {
            layer: "SSLv2 ClientHello",
            required: 9,
            got: len,
        });
    }
    if input.len() < total {
        return Ok(Status::Partial(Needed::bytes(total - input.len())));
    }
    let version = ProtocolVersion(u16::from_be_bytes([v0, v1]));
    Ok(Status::Complete(ClientHello::sslv2(version, total)))
}

/// Where the ClientHello ended, learnt by walking the record headers.
struct Walk {
    /// Handshake message length including its 4-byte header.
    total: usize,
    /// Input bytes up to the end of the record holding the hello's last byte.
    consumed: usize,
    records: usize,
    record_version: u16,
}

fn parse_records<'a>(
    input: &'a [u8],
    scratch: &'a mut [u8],
    limits: &Limits,
) -> Result<Status<ClientHello<'a>>, Error> {
    let walk = match walk(input, limits)? {
        Status::Complete(w) => w,
        Status::Partial(n) => return Ok(Status::Partial(n)),
    };
    let body_range = HANDSHAKE_HEADER_LEN..walk.total;
    let first_payload = input.get(RECORD_HEADER_LEN..).unwrap_or_default();
    let message: &'a [u8] = match first_payload.get(..walk.total) {
        // The common case: the whole hello sits in the first record; borrow it.
        Some(m) if walk.records == 1 => m,
        _ => reassemble(input, scratch, walk.total)?,
    };
    let body = message.get(body_range).unwrap_or_default();
    let hello = hello::parse(body)?;
    Ok(Status::Complete(hello.framed(
        ProtocolVersion(walk.record_version),
        walk.consumed,
        walk.records,
    )))
}

/// Pass one: follow the record headers until the hello's last byte, checking each record.
fn walk(input: &[u8], limits: &Limits) -> Result<Status<Walk>, Error> {
    let mut pos = 0usize;
    let mut records = 0usize;
    // Handshake bytes in the records before this one, and the first four of them once they arrive.
    let mut seen = 0usize;
    let mut header = [0u8; HANDSHAKE_HEADER_LEN];
    let mut total: Option<usize> = None;
    let mut record_version = 0u16;
    loop {
        let rest = input.get(pos..).unwrap_or_default();
        if let Some(&t) = rest.first() {
            if t != content_type::HANDSHAKE {
                return Err(Error::InterleavedRecord { content_type: t });
            }
        }
        let [_, v0, v1, l0, l1, ..] = *rest else {
            // At least this header, then the rest of the hello if it came in one more record.
            let hello_left = match total {
                Some(t) => t - seen,
                None => HANDSHAKE_HEADER_LEN - seen,
            };
            return Ok(Status::Partial(Needed::bytes(
                RECORD_HEADER_LEN - rest.len() + hello_left,
            )));
        };
        records += 1;
        if records > limits.max_records {
            return Err(Error::TooManyRecords {
                limit: limits.max_records,
            });
        }
        if records == 1 {
            record_version = u16::from_be_bytes([v0, v1]);
        }
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        if len == 0 {
            return Err(Error::EmptyRecord);
        }
        if len > MAX_RECORD_LEN {
            return Err(Error::RecordOverflow { len });
        }
        let payload_start = pos + RECORD_HEADER_LEN;
        let payload_end = payload_start + len;
        let avail = input
            .get(payload_start..payload_end.min(input.len()))
            .unwrap_or_default();

        // Collect the handshake header as its bytes arrive, and judge it as soon as possible.
        if total.is_none() {
            for (i, &b) in avail.iter().take(HANDSHAKE_HEADER_LEN - seen).enumerate() {
                let at = seen + i;
                header[at] = b;
                if at == 0 && b != handshake_type::CLIENT_HELLO {
                    return Err(Error::NotClientHello { handshake_type: b });
                }
                if at == HANDSHAKE_HEADER_LEN - 1 {
                    let body = usize::from(header[1]) << 16
                        | usize::from(header[2]) << 8
                        | usize::from(header[3]);
                    if body > limits.max_hello_len {
                        return Err(Error::HelloTooLarge {
                            len: body,
                            limit: limits.max_hello_len,
                        });
                    }
                    total = Some(HANDSHAKE_HEADER_LEN + body);
                }
            }
        }
        let record_missing = payload_end - payload_start - avail.len();
        match total {
            // The hello ends inside this record.
            Some(t) if seen + len >= t => {
                let after = seen + len - t;
                // Handshake bytes after the hello: refused as soon as any of them is here.
                if after > 0 && seen + avail.len() > t {
                    return Err(Error::DataAfterHello { count: after });
                }
                if record_missing > 0 {
                    return Ok(Status::Partial(Needed::bytes(record_missing)));
                }
                return Ok(Status::Complete(Walk {
                    total: t,
                    consumed: payload_end,
                    records,
                    record_version,
                }));
            }
            _ => {
                seen += len;
                if record_missing > 0 {
                    let hello_left = match total {
                        Some(t) => t - seen,
                        None => HANDSHAKE_HEADER_LEN.saturating_sub(seen),
                    };
                    // The rest of this record, then a header and the rest of the hello.
                    return Ok(Status::Partial(Needed::bytes(
                        record_missing + RECORD_HEADER_LEN + hello_left,
                    )));
                }
                pos = payload_end;
            }
        }
    }
}

/// Pass two: copy the hello's bytes out of its records into `scratch`.
fn reassemble<'a>(input: &[u8], scratch: &'a mut [u8], total: usize) -> Result<&'a [u8], Error> {
    let got = scratch.len();
    let out = scratch.get_mut(..total).ok_or(Error::ScratchTooSmall {
        required: total,
        got,
    })?;
    let mut filled = 0;
    let mut rest = input;
    while filled < total {
        let Some(([_, _, _, l0, l1], after_header)) = rest.split_first_chunk::<RECORD_HEADER_LEN>()
        else {
            break;
        };
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        let Some((payload, next)) = after_header.split_at_checked(len) else {
            break;
        };
        let n = len.min(total - filled);
        out[filled..filled + n].copy_from_slice(&payload[..n]);
        filled += n;
        rest = next;
    }
    // walk() saw every record complete, so this only guards against a caller's changed input.
    if filled < total {
        return Err(Error::Truncated {
            layer: "TLS records",
            required: total,
            got: filled,
        });
    }
    Ok(out)
}
