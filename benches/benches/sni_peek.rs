//! sni-peek beside its peers, one group per input: full validation of a ClientHello against
//! tls-parser (parse + extensions + SNI/ALPN lookup) and rustls's `Acceptor`; Host extraction
//! against httparse's full request parse.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sni_peek::{Limits, Status};
use tls_parser::{
    TlsExtension, TlsMessage, TlsMessageHandshake, parse_tls_extensions,
    parse_tls_message_handshake, parse_tls_plaintext, parse_tls_raw_record,
};

const TLS12: &[u8] = include_bytes!("../../sni-peek/testdata/openssl_tls12.bin");
const CHROME_LIKE: &[u8] = include_bytes!("../../sni-peek/testdata/chrome_like.bin");
const CHROME_LIKE_PQ: &[u8] = include_bytes!("../../sni-peek/testdata/chrome_like_pq.bin");

/// A browser-like request of about 400 bytes, Host in the middle of the block.
const REQUEST: &[u8] = b"GET /assets/app.js?v=3 HTTP/1.1\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Host: www.example.com\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Referer: https://www.example.com/\r\n\
Connection: keep-alive\r\n\
Cache-Control: no-cache\r\n\r\n";

/// The hello's handshake bytes in `n` records of about equal size.
fn in_records(hello: &[u8], n: usize) -> Vec<u8> {
    let message = &hello[5..];
    let mut out = Vec::new();
    for chunk in message.chunks(message.len().div_ceil(n)) {
        out.extend([22, hello[1], hello[2]]);
        out.extend((chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// Full validation, then the name as sent (what tls-parser hands out) and the ALPN list.
fn ours(input: &[u8], scratch: &mut [u8]) -> usize {
    match sni_peek::tls::parse(input, scratch, &Limits::default()) {
        Ok(Status::Complete(h)) => {
            h.server_name_as_sent().map_or(0, str::len) + h.alpn().map(<[u8]>::len).sum::<usize>()
        }
        other => panic!("{other:?}"),
    }
}

/// The same, with the name copied out lowercased (what rustls hands out).
fn ours_lowercased(input: &[u8], scratch: &mut [u8]) -> usize {
    match sni_peek::tls::parse(input, scratch, &Limits::default()) {
        Ok(Status::Complete(h)) => {
            h.server_name().map_or(0, |n| n.as_bytes().len())
                + h.alpn().map(<[u8]>::len).sum::<usize>()
        }
        other => panic!("{other:?}"),
    }
}

/// tls-parser doing the same work: the hello, its extensions, then SNI and ALPN. Records are
/// joined by hand first, as a user of the released crate has to.
fn tls_parser(input: &[u8]) -> usize {
    let joined;
    let hello = match parse_tls_plaintext(input) {
        Ok((_, plain)) => match plain.msg.into_iter().next() {
            Some(TlsMessage::Handshake(TlsMessageHandshake::ClientHello(h))) => h,
            other => panic!("{other:?}"),
        },
        Err(_) => {
            let mut buf = Vec::new();
            let mut rest = input;
            while let Ok((next, record)) = parse_tls_raw_record(rest) {
                buf.extend_from_slice(record.data);
                rest = next;
            }
            joined = buf;
            match parse_tls_message_handshake(&joined) {
                Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ClientHello(h)))) => h,
                other => panic!("{other:?}"),
            }
        }
    };
    let (_, exts) = parse_tls_extensions(hello.ext.unwrap_or_default()).unwrap();
    let mut n = 0;
    for ext in exts {
        match ext {
            // The name as routed on: without its trailing dot, as ours and rustls report it.
            TlsExtension::SNI(names) => {
                n += names
                    .first()
                    .map_or(0, |(_, name)| name.strip_suffix(b".").unwrap_or(name).len())
            }
            TlsExtension::ALPN(list) => n += list.iter().map(|p| p.len()).sum::<usize>(),
            _ => {}
        }
    }
    n
}

fn rustls_acceptor(input: &[u8]) -> usize {
    let mut acceptor = rustls::server::Acceptor::default();
    let mut rd = input;
    while !rd.is_empty() {
        acceptor.read_tls(&mut rd).unwrap();
    }
    let accepted = acceptor.accept().ok().flatten().expect("a complete hello");
    let hello = accepted.client_hello();
    hello.server_name().map_or(0, str::len) + hello.alpn().map_or(0, |a| a.map(<[u8]>::len).sum())
}

fn tls_groups(c: &mut Criterion) {
    let pq_3 = in_records(CHROME_LIKE_PQ, 3);
    let inputs: [(&str, &[u8]); 4] = [
        ("tls12_219B", TLS12),
        ("chrome_like_572B", CHROME_LIKE),
        ("pq_1759B", CHROME_LIKE_PQ),
        ("pq_1759B_3_records", &pq_3),
    ];
    let mut scratch = vec![0u8; Limits::default().scratch_len()];
    for (name, input) in inputs {
        let mut g = c.benchmark_group(format!("client_hello/{name}"));
        g.throughput(Throughput::Bytes(input.len() as u64));
        let want = ours(input, &mut scratch);
        assert_eq!(tls_parser(input), want, "{name}: peers disagree");
        assert_eq!(rustls_acceptor(input), want, "{name}: peers disagree");
        g.bench_function("sni-peek", |b| {
            b.iter(|| ours(black_box(input), &mut scratch))
        });
        g.bench_function("sni-peek-lowercased", |b| {
            b.iter(|| ours_lowercased(black_box(input), &mut scratch))
        });
        g.bench_function("tls-parser", |b| b.iter(|| tls_parser(black_box(input))));
        g.bench_function("rustls-acceptor", |b| {
            b.iter(|| rustls_acceptor(black_box(input)))
        });
        g.finish();
    }
}

fn http_group(c: &mut Criterion) {
    let mut g = c.benchmark_group(format!("http_host/request_{}B", REQUEST.len()));
    g.throughput(Throughput::Bytes(REQUEST.len() as u64));
    g.bench_function("sni-peek", |b| {
        b.iter(
            || match sni_peek::http1::parse(black_box(REQUEST), &Limits::default()) {
                Ok(Status::Complete(r)) => r.host_as_sent().map_or(0, str::len),
                other => panic!("{other:?}"),
            },
        )
    });
    g.bench_function("sni-peek-lowercased", |b| {
        b.iter(
            || match sni_peek::http1::parse(black_box(REQUEST), &Limits::default()) {
                Ok(Status::Complete(r)) => r.host().map_or(0, |h| h.as_bytes().len()),
                other => panic!("{other:?}"),
            },
        )
    });
    g.bench_function("httparse", |b| {
        b.iter(|| {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            assert!(req.parse(black_box(REQUEST)).unwrap().is_complete());
            req.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("host"))
                .map_or(0, |h| h.value.len())
        })
    });
    g.finish();
}

criterion_group!(benches, tls_groups, http_group);
criterion_main!(benches);
