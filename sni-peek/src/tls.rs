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
//! into scratch. Both passes re-run on each call: the caller re-parses the growing buffer. A hello
//! that exactly fills one complete record (every client seen so far) skips both.

use crate::hello::{self, ClientHello, ProtocolVersion};
use crate::reader::Reader;
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
        Class::Partial(n) => Ok(Status::Partial(Needed::at_least(n))),
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

/// Record versions accepted: SSL 3.0 to TLS 1.2 (0x0300-0x0303). TLS 1.3 freezes the field at
/// 0x0301 or 0x0303 (RFC 8446 §5.1), so anything else is not a client this proxy can serve: in the
/// first record it proves the bytes are not TLS, in a later one it is [`Error::RecordVersion`].
fn is_record_version(major: u8, minor: u8) -> bool {
    major == 3 && minor <= 3
}

/// Decides from the first three bytes: a TLS record, an SSLv2-compatible hello, or neither.
fn classify(input: &[u8]) -> Class {
    match input {
        [] => Class::Partial(RECORD_HEADER_LEN),
        [content_type::HANDSHAKE] => Class::Partial(RECORD_HEADER_LEN - 1),
        [content_type::HANDSHAKE, 3] => Class::Partial(RECORD_HEADER_LEN - 2),
        [content_type::HANDSHAKE, v0, v1, ..] if is_record_version(*v0, *v1) => Class::Records,
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
        return Ok(Status::Partial(Needed::at_least(5 - input.len())));
    };
    let len = usize::from(u16::from_be_bytes([b0 & 0x7f, b1]));
    let total = 2 + len;
    // msg_type, version and three 2-byte lengths at least.
    if len < 9 {
        return Err(Error::Truncated {
            layer: "SSLv2 ClientHello",
            required: 9,
            got: len,
        });
    }
    if input.len() < total {
        return Ok(Status::Partial(Needed::exactly(total - input.len())));
    }
    // The three lengths (cipher specs, session id, challenge) must fill the record exactly.
    let mut r = Reader::new(&input[5..total], "SSLv2 ClientHello");
    let declared = 9 + usize::from(r.u16()?) + usize::from(r.u16()?) + usize::from(r.u16()?);
    if declared != len {
        return Err(Error::LengthMismatch {
            layer: "SSLv2 ClientHello",
            declared,
            actual: len,
        });
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
    // Every known client: one record holding exactly the whole hello. Checked without the walk.
    if let [
        _,
        _,
        v1,
        l0,
        l1,
        handshake_type::CLIENT_HELLO,
        b0,
        b1,
        b2,
        ..,
    ] = *input
    {
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        let body = usize::from(b0) << 16 | usize::from(b1) << 8 | usize::from(b2);
        if let Some(body_bytes) = input
            .get(RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN..)
            .and_then(|rest| rest.get(..body))
            .filter(|_| {
                len == HANDSHAKE_HEADER_LEN + body
                    && len <= MAX_RECORD_LEN
                    && body <= limits.max_hello_len
                    && limits.max_records >= 1
            })
        {
            let hello = hello::parse(body_bytes)?;
            let version = ProtocolVersion(u16::from_be_bytes([3, v1]));
            return Ok(Status::Complete(hello.framed(
                version,
                RECORD_HEADER_LEN + len,
                1,
            )));
        }
    }
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
            // The header first: its length says what comes next.
            return Ok(Status::Partial(Needed::at_least(
                RECORD_HEADER_LEN - rest.len(),
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
        } else if !is_record_version(v0, v1) {
            return Err(Error::RecordVersion {
                version: u16::from_be_bytes([v0, v1]),
            });
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
                    return Ok(Status::Partial(Needed::exactly(record_missing)));
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
                    // The rest of this record, then, when the hello is known to go on past it, one
                    // more header and the rest of the hello (the fewest bytes that could do).
                    let hello_left = match total {
                        Some(t) => t - seen,
                        None if seen < HANDSHAKE_HEADER_LEN => HANDSHAKE_HEADER_LEN - seen,
                        None => 0,
                    };
                    let needed = if hello_left > 0 {
                        Needed::at_least(record_missing + RECORD_HEADER_LEN + hello_left)
                    } else {
                        Needed::exactly(record_missing)
                    };
                    return Ok(Status::Partial(needed));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hello::CipherSuite;
    use crate::internal::{HelloSpec, build_hello, frame_hello, hello_body, reframe, with_len16};
    use std::string::{String, ToString};
    use std::vec::Vec;
    use std::{format, vec};

    const TLS13_ALPN: &[u8] = include_bytes!("../testdata/rustls_tls13_alpn.bin");
    const NO_SNI: &[u8] = include_bytes!("../testdata/rustls_no_sni.bin");
    const TLS12_ONLY: &[u8] = include_bytes!("../testdata/rustls_tls12_only.bin");
    const PQ_SIZED: &[u8] = include_bytes!("../testdata/rustls_pq_sized.bin");
    const OPENSSL: &[u8] = include_bytes!("../testdata/openssl_s_client.bin");
    const OPENSSL_TLS12: &[u8] = include_bytes!("../testdata/openssl_tls12.bin");
    const CURL: &[u8] = include_bytes!("../testdata/curl.bin");
    const GNUTLS: &[u8] = include_bytes!("../testdata/gnutls_cli.bin");
    const CHROME_LIKE: &[u8] = include_bytes!("../testdata/chrome_like.bin");
    const CHROME_LIKE_PQ: &[u8] = include_bytes!("../testdata/chrome_like_pq.bin");

    /// A test hello: file name, its bytes, the name and ALPN protocols it must give.
    type Sample = (
        &'static str,
        &'static [u8],
        Option<&'static str>,
        &'static [&'static [u8]],
    );

    const CAPTURED: &[Sample] = &[
        (
            "rustls_tls13_alpn",
            TLS13_ALPN,
            Some("rustls.example"),
            &[b"h2", b"http/1.1"],
        ),
        ("rustls_no_sni", NO_SNI, None, &[b"http/1.1"]),
        ("rustls_tls12_only", TLS12_ONLY, Some("tls12.example"), &[]),
        (
            "rustls_pq_sized",
            PQ_SIZED,
            Some("pq.example"),
            &[b"h2", b"http/1.1"],
        ),
        (
            "openssl_s_client",
            OPENSSL,
            Some("openssl.example"),
            &[b"h2", b"http/1.1"],
        ),
        (
            "openssl_tls12",
            OPENSSL_TLS12,
            Some("tls12.openssl.example"),
            &[],
        ),
        ("curl", CURL, Some("curl.example"), &[b"h2", b"http/1.1"]),
        (
            "gnutls_cli",
            GNUTLS,
            Some("gnutls.example"),
            &[b"h2", b"http/1.1"],
        ),
        (
            "chrome_like",
            CHROME_LIKE,
            Some("chrome.example"),
            &[b"h2", b"http/1.1"],
        ),
        (
            "chrome_like_pq",
            CHROME_LIKE_PQ,
            Some("pq.chrome.example"),
            &[b"h2", b"http/1.1"],
        ),
    ];

    fn parse_with(input: &[u8], limits: &Limits) -> Result<Status<ClientHello<'static>>, Error> {
        // Leak-free 'static: copy into a fresh box per call, like a caller's growing buffer.
        let input: &'static [u8] = std::boxed::Box::leak(input.into());
        let scratch: &'static mut [u8] = std::boxed::Box::leak(vec![0u8; 20_000].into());
        parse(input, scratch, limits)
    }

    fn hello(input: &[u8]) -> ClientHello<'static> {
        match parse_with(input, &Limits::default()) {
            Ok(Status::Complete(h)) => h,
            other => panic!("expected a complete hello, got {other:?}"),
        }
    }

    fn err(input: &[u8]) -> Error {
        match parse_with(input, &Limits::default()) {
            Err(e) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    fn answer(h: &ClientHello<'_>) -> (Option<String>, Vec<Vec<u8>>) {
        (
            h.server_name().map(|n| n.to_string()),
            h.alpn().map(<[u8]>::to_vec).collect(),
        )
    }

    fn expected(name: Option<&str>, alpn: &[&[u8]]) -> (Option<String>, Vec<Vec<u8>>) {
        (
            name.map(String::from),
            alpn.iter().map(|p| p.to_vec()).collect(),
        )
    }

    /// Every prefix must be Partial, and its `needed` must never overshoot the real end.
    fn assert_prefixes_partial(input: &[u8], end: usize, limits: &Limits, what: &str) {
        for cut in 0..end {
            match parse_with(&input[..cut], limits) {
                Ok(Status::Partial(n)) => {
                    assert!(
                        cut + n.min() <= end,
                        "{what}: cut {cut} needs {n:?} past {end}"
                    )
                }
                other => panic!("{what}: cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn captured_and_generated_hellos_give_name_and_alpn() {
        for (file, bytes, name, alpn) in CAPTURED {
            let h = hello(bytes);
            assert_eq!(answer(&h), expected(*name, alpn), "{file}");
            assert_eq!(h.consumed(), bytes.len(), "{file}");
            assert_eq!(h.record_count(), 1, "{file}");
        }
    }

    #[test]
    fn every_split_offset_is_partial_then_the_same_answer() {
        for (file, bytes, name, alpn) in CAPTURED {
            assert_prefixes_partial(bytes, bytes.len(), &Limits::default(), file);
            assert_eq!(answer(&hello(bytes)), expected(*name, alpn));
        }
    }

    #[test]
    fn needed_is_exact_once_the_single_record_header_is_in() {
        let h = TLS13_ALPN;
        for cut in RECORD_HEADER_LEN..h.len() {
            assert_eq!(
                parse_with(&h[..cut], &Limits::default()),
                Ok(Status::Partial(Needed::exactly(h.len() - cut)))
            );
        }
    }

    #[test]
    fn reframed_into_1_2_3_byte_records_every_prefix_then_the_same_answer() {
        let many = Limits {
            max_records: usize::MAX,
            ..Limits::default()
        };
        for (file, bytes, name, alpn) in CAPTURED {
            for payload in [1, 2, 3] {
                let framed = reframe(bytes, payload);
                let what = format!("{file} in {payload}-byte records");
                assert_prefixes_partial(&framed, framed.len(), &many, &what);
                match parse_with(&framed, &many) {
                    Ok(Status::Complete(h)) => {
                        assert_eq!(answer(&h), expected(*name, alpn), "{what}");
                        assert_eq!(h.consumed(), framed.len());
                    }
                    other => panic!("{what}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn three_records_and_split_inside_the_handshake_header_and_the_name() {
        // Records cut at 2 bytes (inside the handshake header), then inside the SNI.
        let spec = HelloSpec {
            server_name: Some(b"split.example"),
            ..HelloSpec::default()
        };
        let one = build_hello(&spec);
        let message = &one[RECORD_HEADER_LEN..];
        let name_at = message.windows(5).position(|w| w == b"split").unwrap() + 3;
        let mut framed = Vec::new();
        for part in [&message[..2], &message[2..name_at], &message[name_at..]] {
            framed.extend([22, 3, 1]);
            framed.extend((part.len() as u16).to_be_bytes());
            framed.extend_from_slice(part);
        }
        let h = hello(&framed);
        assert_eq!(h.server_name().unwrap(), "split.example");
        assert_eq!(h.record_count(), 3);
    }

    #[test]
    fn one_to_four_bytes_need_the_rest_of_the_record_header() {
        for n in 0..RECORD_HEADER_LEN {
            assert_eq!(
                parse_with(&TLS13_ALPN[..n], &Limits::default()),
                Ok(Status::Partial(Needed::at_least(RECORD_HEADER_LEN - n)))
            );
        }
    }

    #[test]
    fn not_tls_from_the_first_byte() {
        assert_eq!(err(b"G"), Error::NotTls);
        assert_eq!(err(&[0x16, 0x02]), Error::NotTls);
        assert_eq!(err(&[0x80, 0x2e, 0x02]), Error::NotTls);
    }

    #[test]
    fn too_many_records_under_the_default_cap() {
        let framed = reframe(TLS13_ALPN, 1);
        assert_eq!(err(&framed), Error::TooManyRecords { limit: 64 });
    }

    #[test]
    fn zero_length_record_is_an_error() {
        let mut input = vec![22, 3, 1, 0, 0];
        input.extend_from_slice(TLS13_ALPN);
        assert_eq!(err(&input), Error::EmptyRecord);
    }

    #[test]
    fn record_longer_than_2_14_is_an_error() {
        assert_eq!(
            err(&[22, 3, 1, 0x40, 0x01, 1]),
            Error::RecordOverflow { len: 16385 }
        );
    }

    #[test]
    fn handshake_length_over_the_cap_fails_at_once() {
        // Only 9 bytes: the record header and the handshake header announcing 64 KiB.
        assert_eq!(
            err(&[22, 3, 1, 0x40, 0x00, 1, 0x01, 0x00, 0x00]),
            Error::HelloTooLarge {
                len: 0x10000,
                limit: 16384
            }
        );
    }

    #[test]
    fn alert_or_ccs_before_the_hello_completes_is_an_error() {
        let mut framed = reframe(TLS13_ALPN, 100);
        let second = RECORD_HEADER_LEN + 100;
        framed.splice(second..second, [21, 3, 3, 0, 2, 2, 40]);
        assert_eq!(err(&framed), Error::InterleavedRecord { content_type: 21 });
        // As soon as its first byte is there.
        assert_eq!(
            err(&framed[..second + 1]),
            Error::InterleavedRecord { content_type: 21 }
        );
    }

    #[test]
    fn ccs_and_early_data_after_the_hello_are_left_for_forwarding() {
        let mut input = TLS13_ALPN.to_vec();
        input.extend([20, 3, 3, 0, 1, 1, 23, 3, 3, 0, 3, 9, 9, 9]);
        let h = hello(&input);
        assert_eq!(h.server_name().unwrap(), "rustls.example");
        assert_eq!(h.consumed(), TLS13_ALPN.len());
    }

    #[test]
    fn handshake_type_other_than_client_hello_fails_at_its_first_byte() {
        assert_eq!(
            err(&[22, 3, 3, 0, 50, 2]),
            Error::NotClientHello { handshake_type: 2 }
        );
    }

    #[test]
    fn handshake_bytes_after_the_hello_in_its_record_are_an_error() {
        let mut input = TLS13_ALPN.to_vec();
        input.extend([20, 0, 0, 0]);
        let len = (TLS13_ALPN.len() - RECORD_HEADER_LEN + 4) as u16;
        input[3..5].copy_from_slice(&len.to_be_bytes());
        assert_eq!(err(&input), Error::DataAfterHello { count: 4 });
    }

    #[test]
    fn record_versions_0300_to_0303_accepted() {
        for minor in 0..=3 {
            let mut input = TLS13_ALPN.to_vec();
            input[2] = minor;
            assert_eq!(
                hello(&input).record_version(),
                ProtocolVersion(0x0300 | u16::from(minor))
            );
        }
    }

    #[test]
    fn other_record_versions_are_refused() {
        for version in [[3u8, 4], [3, 0xff], [2, 0], [0x7f, 0x1c]] {
            let mut input = TLS13_ALPN.to_vec();
            input[1..3].copy_from_slice(&version);
            assert_eq!(err(&input), Error::NotTls, "{version:?}");
            assert_eq!(err(&input[..3]), Error::NotTls, "{version:?}");
            // In a later record, once the stream is known to be TLS.
            let mut framed = reframe(TLS13_ALPN, 100);
            framed[100 + RECORD_HEADER_LEN + 1..][..2].copy_from_slice(&version);
            assert_eq!(
                err(&framed),
                Error::RecordVersion {
                    version: u16::from_be_bytes(version)
                }
            );
        }
    }

    #[test]
    fn sslv2_hello_is_tls_without_a_name() {
        // msg_type 1, version 3.1, cipher_spec 3, session 0, challenge 16.
        let mut v2 = vec![
            0x80, 0x1c, 0x01, 0x03, 0x01, 0x00, 0x03, 0x00, 0x00, 0x00, 0x10,
        ];
        v2.extend([0x00, 0x00, 0x2f]);
        v2.extend([0xab; 16]);
        assert_eq!(
            parse_with(&v2[..4], &Limits::default()),
            Ok(Status::Partial(Needed::at_least(1)))
        );
        assert_eq!(
            parse_with(&v2[..10], &Limits::default()),
            Ok(Status::Partial(Needed::exactly(20)))
        );
        let h = hello(&v2);
        assert!(h.is_sslv2());
        assert_eq!(h.server_name(), None);
        assert_eq!(h.legacy_version(), ProtocolVersion::TLSV1_0);
        assert_eq!(h.consumed(), 30);
        let mut bad = v2.clone();
        bad[10] = 0x11; // challenge one byte longer than the record
        assert_eq!(
            err(&bad),
            Error::LengthMismatch {
                layer: "SSLv2 ClientHello",
                declared: 29,
                actual: 28
            }
        );
        assert_eq!(
            err(&[0x80, 0x04, 0x01, 3, 1]),
            Error::Truncated {
                layer: "SSLv2 ClientHello",
                required: 9,
                got: 4
            }
        );
    }

    #[test]
    fn ssl3_hello_without_extensions_has_no_name() {
        let mut body = hello_body(&[0x00, 0x2f], &[]);
        body.truncate(body.len() - 2); // drop the empty extensions block
        body[..2].copy_from_slice(&[3, 0]);
        let h = hello(&frame_hello(&body));
        assert_eq!(h.server_name(), None);
        assert_eq!(h.alpn().count(), 0);
        assert_eq!(h.max_version(), ProtocolVersion::SSLV3);
    }

    #[test]
    fn no_sni_still_reports_alpn() {
        let h = hello(NO_SNI);
        assert_eq!(h.server_name(), None);
        assert_eq!(h.alpn().collect::<Vec<_>>(), [b"http/1.1"]);
    }

    fn with_ext(t: u16, data: &[u8]) -> Vec<u8> {
        frame_hello(&hello_body(&[0x13, 0x01], &[(t, data)]))
    }

    fn sni(entries: &[(u8, &[u8])]) -> Vec<u8> {
        let mut list = Vec::new();
        for (kind, name) in entries {
            list.push(*kind);
            list.extend(with_len16(name));
        }
        with_len16(&list)
    }

    #[test]
    fn empty_sni_extension_is_an_error() {
        assert_eq!(
            err(&with_ext(0, &[])),
            Error::Empty {
                field: "server_name extension"
            }
        );
        assert_eq!(
            err(&with_ext(0, &[0, 0])),
            Error::Empty {
                field: "server_name_list"
            }
        );
        assert_eq!(
            err(&with_ext(0, &sni(&[(0, b"")]))),
            Error::Empty { field: "host_name" }
        );
    }

    #[test]
    fn sni_list_length_not_filling_the_extension_is_an_error() {
        let mut data = sni(&[(0, b"a.example")]);
        data.push(0);
        assert_eq!(
            err(&with_ext(0, &data)),
            Error::LengthMismatch {
                layer: "server_name_list",
                declared: 12,
                actual: 13
            }
        );
    }

    #[test]
    fn name_overrunning_its_list_is_an_error() {
        let mut data = sni(&[(0, b"a.example")]);
        data[4] = 20; // host_name length past the list
        assert_eq!(
            err(&with_ext(0, &data)),
            Error::Truncated {
                layer: "server_name_list",
                required: 20,
                got: 9
            }
        );
    }

    #[test]
    fn two_host_names_are_an_error() {
        let data = sni(&[(0, b"a.example"), (0, b"b.example")]);
        assert_eq!(err(&with_ext(0, &data)), Error::DuplicateHostName);
    }

    #[test]
    fn unknown_name_type_is_no_name() {
        assert_eq!(
            hello(&with_ext(0, &sni(&[(7, b"opaque")]))).server_name(),
            None
        );
        let h = hello(&with_ext(0, &sni(&[(7, b"opaque"), (0, b"b.example")])));
        assert_eq!(h.server_name().unwrap(), "b.example");
    }

    #[test]
    fn duplicate_extension_is_an_error() {
        let body = hello_body(&[0x13, 0x01], &[(23, &[]), (10, &[0, 2, 0, 29]), (23, &[])]);
        assert_eq!(
            err(&frame_hello(&body)),
            Error::DuplicateExtension { ext_type: 23 }
        );
        // Same low bits (the filter collides), different types: not duplicates.
        let body = hello_body(&[0x13, 0x01], &[(23, &[]), (23 + 1024, &[])]);
        assert!(hello(&frame_hello(&body)).server_name().is_none());
    }

    #[test]
    fn names_are_normalised_or_refused() {
        let name = |n: &[u8]| hello(&with_ext(0, &sni(&[(0, n)]))).server_name();
        assert_eq!(name(b"WWW.Example.COM.").unwrap(), "www.example.com");
        let h = hello(&with_ext(0, &sni(&[(0, b"WWW.Example.COM.")])));
        assert_eq!(h.server_name_as_sent(), Some("WWW.Example.COM"));
        assert_eq!(name(b"_dmarc.example").unwrap(), "_dmarc.example");
        assert_eq!(
            name(b"xn--nxasmq6b.example").unwrap(),
            "xn--nxasmq6b.example"
        );
        assert_eq!(name(b"192.0.2.1"), None);
        for bad in [
            &b"a\0b"[..],
            b"a b",
            b"a/b",
            "é.example".as_bytes(),
            b"a..b",
        ] {
            assert!(
                matches!(
                    err(&with_ext(0, &sni(&[(0, bad)]))),
                    Error::InvalidName { .. }
                ),
                "{bad:?}"
            );
        }
        let long_label = [b'a'; 64];
        assert!(matches!(
            err(&with_ext(0, &sni(&[(0, &long_label)]))),
            Error::InvalidName { .. }
        ));
        let long_name = [b'a'; 254].map(|_| b'a');
        let mut dotted = long_name;
        for i in (60..254).step_by(60) {
            dotted[i] = b'.';
        }
        assert_eq!(
            err(&with_ext(0, &sni(&[(0, &dotted)]))),
            Error::InvalidName {
                reason: "longer than 253 bytes"
            }
        );
    }

    #[test]
    fn grease_is_ignored_everywhere() {
        let spec = HelloSpec {
            server_name: Some(b"grease.example"),
            alpn: &[b"\x1a\x1a", b"h2"],
            grease: true,
            ..HelloSpec::default()
        };
        let h = hello(&build_hello(&spec));
        assert_eq!(h.server_name().unwrap(), "grease.example");
        assert_eq!(h.alpn().collect::<Vec<_>>(), [b"h2"]);
        assert_eq!(
            h.supported_versions().collect::<Vec<_>>(),
            [ProtocolVersion::TLSV1_3, ProtocolVersion::TLSV1_2]
        );
        assert_eq!(
            h.cipher_suites().collect::<Vec<_>>(),
            [
                CipherSuite::TLS13_AES_128_GCM_SHA256,
                CipherSuite::TLS13_AES_256_GCM_SHA384,
                CipherSuite(0xc02f)
            ]
        );
    }

    #[test]
    fn ech_flags_the_outer_name() {
        let h = hello(CHROME_LIKE);
        assert!(h.has_ech());
        assert_eq!(h.server_name().unwrap(), "chrome.example");
        assert!(!hello(TLS13_ALPN).has_ech());
    }

    #[test]
    fn empty_alpn_list_or_protocol_is_an_error() {
        assert_eq!(
            err(&with_ext(16, &[0, 0])),
            Error::Empty {
                field: "protocol_name_list"
            }
        );
        assert_eq!(
            err(&with_ext(16, &[0, 4, 2, b'h', b'2', 0])),
            Error::Empty {
                field: "ALPN protocol name"
            }
        );
        assert_eq!(
            err(&with_ext(16, &[0, 3, 2, b'h'])),
            Error::LengthMismatch {
                layer: "protocol_name_list",
                declared: 3,
                actual: 2
            }
        );
    }

    #[test]
    fn extension_bytes_left_over_are_an_error() {
        // ALPN list shorter than its extension.
        assert_eq!(
            err(&with_ext(16, &[0, 3, 2, b'h', b'2', 0xff])),
            Error::LengthMismatch {
                layer: "protocol_name_list",
                declared: 3,
                actual: 4
            }
        );
        // supported_versions likewise, and odd.
        assert_eq!(
            err(&with_ext(43, &[2, 3, 4, 9])),
            Error::LengthMismatch {
                layer: "supported_versions",
                declared: 2,
                actual: 3
            }
        );
        assert_eq!(
            err(&with_ext(43, &[1, 3])),
            Error::OddLength {
                field: "supported_versions",
                len: 1
            }
        );
        // Bytes after the extensions block.
        let mut body = hello_body(&[0x13, 0x01], &[]);
        body.push(0);
        assert_eq!(
            err(&frame_hello(&body)),
            Error::TrailingBytes {
                layer: "ClientHello",
                count: 1
            }
        );
        // An extension running past the block.
        let mut body = hello_body(&[0x13, 0x01], &[(23, &[1, 2])]);
        let n = body.len();
        body[n - 3] = 9;
        assert_eq!(
            err(&frame_hello(&body)),
            Error::Truncated {
                layer: "extensions",
                required: 9,
                got: 2
            }
        );
    }

    #[test]
    fn session_id_cipher_suites_and_compression_are_checked() {
        let good = hello_body(&[0x13, 0x01], &[]);
        let mut long_sid = good.clone();
        long_sid[34] = 33;
        assert_eq!(
            err(&frame_hello(&long_sid)),
            Error::SessionIdTooLong { len: 33 }
        );
        assert_eq!(
            err(&frame_hello(&hello_body(&[0x13, 0x01, 0x13], &[]))),
            Error::OddLength {
                field: "cipher_suites",
                len: 3
            }
        );
        assert_eq!(
            err(&frame_hello(&hello_body(&[], &[]))),
            Error::Empty {
                field: "cipher_suites"
            }
        );
        let mut no_comp = good.clone();
        let at = 2 + 32 + 1 + 32 + 2 + 2;
        no_comp.splice(at..at + 2, [0]);
        assert_eq!(
            err(&frame_hello(&no_comp)),
            Error::Empty {
                field: "legacy_compression_methods"
            }
        );
        // A hello cut short inside the random.
        assert_eq!(
            err(&frame_hello(&good[..20])),
            Error::Truncated {
                layer: "ClientHello",
                required: 32,
                got: 18
            }
        );
    }

    #[test]
    fn pre_shared_key_must_be_the_last_extension() {
        let psk: &[u8] = &[0, 0, 0, 0]; // empty identities and binders: only the position matters
        let last = hello_body(&[0x13, 0x01], &[(23, &[]), (41, psk)]);
        assert!(hello(&frame_hello(&last)).server_name().is_none());
        for after in [23u16, 0x0a0a] {
            let body = hello_body(&[0x13, 0x01], &[(41, psk), (after, &[])]);
            assert_eq!(err(&frame_hello(&body)), Error::PreSharedKeyNotLast);
        }
    }

    #[test]
    fn compression_methods_must_offer_null_and_only_null_in_tls13() {
        let at = 2 + 32 + 1 + 32 + 2 + 2;
        let with_compression = |methods: &[u8], versions: &[u8]| {
            let mut body = hello_body(&[0x13, 0x01], &[(43, versions)]);
            let mut field = vec![methods.len() as u8];
            field.extend_from_slice(methods);
            body.splice(at..at + 2, field);
            frame_hello(&body)
        };
        let tls13_only: &[u8] = &[4, 0x3a, 0x3a, 0x03, 0x04]; // GREASE and TLS 1.3
        let tls13_and_12: &[u8] = &[4, 0x03, 0x04, 0x03, 0x03];
        let reason = |reason| Error::InvalidCompression { reason };
        assert_eq!(
            err(&with_compression(&[1, 0], tls13_only)),
            reason("a TLS 1.3-only hello must offer exactly null")
        );
        assert_eq!(
            err(&with_compression(&[0, 0], tls13_only)),
            reason("a TLS 1.3-only hello must offer exactly null")
        );
        assert_eq!(
            err(&with_compression(&[1], tls13_and_12)),
            reason("no null method")
        );
        hello(&with_compression(&[0], tls13_only));
        hello(&with_compression(&[1, 0], tls13_and_12));
    }

    #[test]
    fn padding_up_to_the_cap_still_gives_the_name() {
        let spec = HelloSpec {
            server_name: Some(b"padded.example"),
            padding: 16_000,
            ..HelloSpec::default()
        };
        let input = build_hello(&spec);
        assert_eq!(hello(&input).server_name().unwrap(), "padded.example");
        let over = HelloSpec {
            padding: 17_000,
            ..spec
        };
        assert!(matches!(
            err(&build_hello(&over)),
            Error::HelloTooLarge { .. }
        ));
        let roomy = Limits {
            max_hello_len: 20_000,
            ..Limits::default()
        };
        // Over 2^14: two records, joined in scratch.
        let h = parse_with(&build_hello(&over), &roomy)
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(
            (h.server_name().unwrap().as_str(), h.record_count()),
            ("padded.example", 2)
        );
    }

    #[test]
    fn scratch_too_small_for_a_multi_record_hello() {
        let framed = reframe(TLS13_ALPN, 100);
        let mut scratch = [0u8; 100];
        assert_eq!(
            parse(&framed, &mut scratch, &Limits::default()).unwrap_err(),
            Error::ScratchTooSmall {
                required: TLS13_ALPN.len() - RECORD_HEADER_LEN,
                got: 100
            }
        );
        // A single-record hello never touches it.
        assert!(parse(TLS13_ALPN, &mut [], &Limits::default()).is_ok());
    }

    /// Writes the synthetic Chrome-like hellos: `SNI_PEEK_WRITE_TESTDATA=1 cargo test -p sni-peek`.
    #[test]
    fn synthetic_testdata_is_what_the_generator_makes() {
        let alpn: &[&[u8]] = &[b"h2", b"http/1.1"];
        // Sizes as Chrome sends them: ~570 bytes classic, ~1.8 KB with an X25519MLKEM768 share.
        let chrome = |name: &'static [u8], key_share_len, padding, shuffle| HelloSpec {
            server_name: Some(name),
            alpn,
            grease: true,
            ech_len: 144,
            key_share_len,
            padding,
            shuffle,
        };
        for (file, spec, bytes) in [
            (
                "chrome_like",
                chrome(b"chrome.example", 32, 165, 7),
                CHROME_LIKE,
            ),
            (
                "chrome_like_pq",
                chrome(b"pq.chrome.example", 1216, 165, 11),
                CHROME_LIKE_PQ,
            ),
        ] {
            let made = build_hello(&spec);
            if std::env::var_os("SNI_PEEK_WRITE_TESTDATA").is_some() {
                let path = format!("{}/testdata/{file}.bin", env!("CARGO_MANIFEST_DIR"));
                std::fs::write(path, &made).unwrap();
            } else {
                assert_eq!(
                    made, bytes,
                    "{file}: regenerate with SNI_PEEK_WRITE_TESTDATA=1"
                );
            }
        }
    }
}
