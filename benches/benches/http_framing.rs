//! The framing facts of an HTTP/1 request (issue 12) beside httparse, one group per input: a
//! request head read for method, target, body framing and keep-alive, and a chunked body
//! followed to its end.
//!
//! httparse validates the syntax of the lines but not their meaning, so it appears twice: parsing
//! only, and parsing plus the checks a proxy must add to frame the request as strictly as
//! sni-peek does (one Host; one Content-Length, a plain number without leading zeros;
//! Transfer-Encoding a final `chunked` alone, never with Content-Length, not in 1.0; no framing
//! or forwarding name spelt with `_`; Connection, Upgrade, Expect, the forwarding fields).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sni_peek::http1::{Body, BodyReader};
use sni_peek::{Limits, Status};

/// What a browser sends for a page: about 400 bytes, Host among the first fields.
const GET: &[u8] = b"GET /account/orders?page=2&sort=date HTTP/1.1\r\n\
Host: shop.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:122.0) Gecko/20100101 Firefox/122.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Referer: https://shop.example.com/account\r\n\
Cookie: session=3f2a9c1e7b6d4a58; theme=dark\r\n\
Connection: keep-alive\r\n\
Upgrade-Insecure-Requests: 1\r\n\r\n";

/// A form post of about the same size: its body framed by Content-Length.
const POST: &[u8] = b"POST /api/v1/cart/items HTTP/1.1\r\n\
Host: shop.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:122.0) Gecko/20100101 Firefox/122.0\r\n\
Accept: application/json, text/plain, */*\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Content-Type: application/json\r\n\
Content-Length: 187\r\n\
Origin: https://shop.example.com\r\n\
Cookie: session=3f2a9c1e7b6d4a58; theme=dark\r\n\
Connection: keep-alive\r\n\r\n";

/// The facts as one number, so that none of them is optimised away and the peers can be
/// compared: method and target lengths, the body, then keep-alive, Upgrade, Expect, forwarding
/// fields seen and other Connection options.
fn summary(method: &str, target: &str, body: Body, flags: [bool; 5]) -> u64 {
    let body = match body {
        Body::Empty => 0,
        Body::Length(n) => n << 2,
        Body::Chunked => 1,
        Body::UntilClose => 2,
    };
    let flags = flags.iter().rev().fold(0, |n, &f| n << 1 | u64::from(f));
    ((method.len() + target.len()) as u64) << 48 ^ body << 5 ^ flags
}

fn ours(input: &[u8]) -> u64 {
    match sni_peek::http1::parse(input, &Limits::default()) {
        Ok(Status::Complete(r)) => {
            let flags = [
                r.keep_alive(),
                r.has_upgrade(),
                r.expects_continue(),
                r.has_forwarding_fields(),
                r.connection_lists_fields(),
            ];
            summary(r.method(), r.target(), r.body(), flags)
        }
        other => panic!("{other:?}"),
    }
}

fn httparse_only(input: &[u8]) -> u64 {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    assert!(req.parse(input).unwrap().is_complete());
    (req.method.unwrap().len() + req.path.unwrap().len() + req.headers.len()) as u64
}

/// httparse, then what it leaves to its caller before the body can be framed.
fn httparse_framed(input: &[u8]) -> u64 {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    assert!(req.parse(input).unwrap().is_complete());
    framing(&req).expect("a valid request")
}

fn framing(req: &httparse::Request<'_, '_>) -> Result<u64, &'static str> {
    let (mut host, mut length, mut chunked) = (false, None, None);
    let (mut close, mut keep_alive, mut upgrade, mut expect) = (false, false, false, false);
    let (mut forwarding, mut other_option) = (false, false);
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        // `X_Forwarded_For` is `HTTP_X_FORWARDED_FOR` to CGI-style backends, like the real one;
        // only names of the aliased lengths are searched, as sni-peek does.
        if matches!(name.len(), 14 | 15 | 17)
            && name.contains(&b'_')
            && ALIASED.iter().any(|a| underscore_alias(name, a))
        {
            return Err("a framing or forwarding name with _");
        }
        if name.eq_ignore_ascii_case(b"host") {
            if host {
                return Err("two Host");
            }
            host = true;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            if length.is_some() {
                return Err("two Content-Length");
            }
            length = Some(content_length(h.value)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if chunked.is_some() {
                return Err("two Transfer-Encoding");
            }
            if !h.value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err("not chunked alone");
            }
            chunked = Some(());
        } else if name.eq_ignore_ascii_case(b"x-forwarded-for")
            || name.eq_ignore_ascii_case(b"x-forwarded-proto")
            || name.eq_ignore_ascii_case(b"forwarded")
        {
            forwarding = true;
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade = true;
        } else if name.eq_ignore_ascii_case(b"expect") {
            expect |= h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case(b"connection") {
            for option in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if option.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if option.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                } else if !option.is_empty() && !option.eq_ignore_ascii_case(b"upgrade") {
                    other_option = true;
                }
            }
        }
    }
    let version = req.version.unwrap();
    if !host && version == 1 {
        return Err("no Host");
    }
    let body = match (chunked, length) {
        (Some(()), Some(_)) => return Err("Content-Length with Transfer-Encoding"),
        (Some(()), None) if version == 0 => return Err("Transfer-Encoding in 1.0"),
        (Some(()), None) => Body::Chunked,
        (None, None | Some(0)) => Body::Empty,
        (None, Some(n)) => Body::Length(n),
    };
    let method = req.method.unwrap();
    if method == "CONNECT" && body != Body::Empty {
        return Err("CONNECT with a body");
    }
    let persists = if version == 0 {
        keep_alive && !close
    } else {
        !close
    };
    let flags = [persists, upgrade, expect, forwarding, other_option];
    Ok(summary(method, req.path.unwrap(), body, flags))
}

const ALIASED: [&[u8]; 4] = [
    b"content-length",
    b"transfer-encoding",
    b"x-forwarded-for",
    b"x-forwarded-proto",
];

fn underscore_alias(name: &[u8], of: &[u8]) -> bool {
    name.len() == of.len()
        && name.iter().zip(of).all(|(&n, &o)| {
            if n == b'_' {
                o == b'-'
            } else {
                n.to_ascii_lowercase() == o
            }
        })
}

/// One plain decimal number: `str::parse` would take a sign, `strtol` reads `010` as octal.
fn content_length(value: &[u8]) -> Result<u64, &'static str> {
    let digits = value.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err("Content-Length is not a number");
    }
    if digits.len() > 1 && digits[0] == b'0' {
        return Err("Content-Length with a leading zero");
    }
    digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or("Content-Length overflows")
    })
}

fn head_groups(c: &mut Criterion) {
    for (name, input) in [("get", GET), ("post", POST)] {
        let mut g = c.benchmark_group(format!("http_framing/{name}_{}B", input.len()));
        g.throughput(Throughput::Bytes(input.len() as u64));
        assert_eq!(
            httparse_framed(input),
            ours(input),
            "{name}: peers disagree"
        );
        g.bench_function("sni-peek", |b| b.iter(|| ours(black_box(input))));
        g.bench_function("httparse-parse-only", |b| {
            b.iter(|| httparse_only(black_box(input)))
        });
        g.bench_function("httparse+framing", |b| {
            b.iter(|| httparse_framed(black_box(input)))
        });
        g.finish();
    }
}

/// `total` bytes of data in chunks of `size`, the last chunk and no trailers.
fn chunked(total: usize, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(total + total / size * 8 + 5);
    for n in (0..total).step_by(size) {
        let len = size.min(total - n);
        out.extend_from_slice(format!("{len:x}\r\n").as_bytes());
        out.extend((0..len).map(|i| b'a' + (i % 26) as u8));
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn body_ours(input: &[u8], read: usize) -> usize {
    let mut body = BodyReader::new(Body::Chunked, 16 * 1024);
    let mut consumed = 0;
    for part in input.chunks(read) {
        let p = body.advance(part).unwrap();
        consumed += p.consumed;
        if p.done {
            return consumed;
        }
    }
    panic!("the body did not end")
}

/// httparse's chunk-size lines, the data skipped, its CRLF checked, the trailer section parsed.
fn body_httparse(input: &[u8]) -> usize {
    let mut at = 0;
    loop {
        let (line, size) = match httparse::parse_chunk_size(&input[at..]) {
            Ok(httparse::Status::Complete(c)) => c,
            other => panic!("{other:?}"),
        };
        at += line;
        if size == 0 {
            let mut trailers = [httparse::EMPTY_HEADER; 8];
            match httparse::parse_headers(&input[at..], &mut trailers) {
                Ok(httparse::Status::Complete((n, _))) => return at + n,
                other => panic!("{other:?}"),
            }
        }
        at += size as usize;
        assert_eq!(input.get(at..at + 2), Some(&b"\r\n"[..]));
        at += 2;
    }
}

fn body_group(c: &mut Criterion) {
    let input = chunked(64 * 1024, 4096);
    let mut g = c.benchmark_group("chunked_body/64KiB_in_4KiB_chunks");
    g.throughput(Throughput::Bytes(input.len() as u64));
    assert_eq!(body_ours(&input, input.len()), input.len());
    assert_eq!(body_httparse(&input), input.len());
    g.bench_function("sni-peek", |b| {
        b.iter(|| body_ours(black_box(&input), input.len()))
    });
    // As a proxy sees it: 16 KiB reads that cut chunk lines anywhere (httparse needs them whole).
    g.bench_function("sni-peek-16KiB-reads", |b| {
        b.iter(|| body_ours(black_box(&input), 16 * 1024))
    });
    g.bench_function("httparse", |b| b.iter(|| body_httparse(black_box(&input))));
    g.finish();
}

criterion_group!(benches, head_groups, body_group);
criterion_main!(benches);
