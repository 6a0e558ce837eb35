//! PROXY protocol parse and emit, ours beside `ppp` 2.3 and `proxy-header` 0.1.3 in each group.
//!
//! Every parser is asked for the same work: the addresses, and for v2 every TLV. `ppp` and
//! `proxy-header` read TLVs lazily, so their runs walk the TLVs to do what ours did at parse;
//! neither checks the CRC32C, which ours verifies (the "full validation" of the goal).

use core::hint::black_box;
use core::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use proxy_proto::{Builder, SslBuilder, Status};

const V1_TCP4: &[u8] = b"PROXY TCP4 192.168.100.201 10.20.30.40 56324 443\r\n";
const V1_TCP6: &[u8] =
    b"PROXY TCP6 2001:db8:85a3::8a2e:370:7334 2001:db8:1234:5678::443 56324 443\r\n";
/// Captured from HAProxy 2.6 (TLS frontend, every proxy-v2-option): 185 bytes.
const HAPROXY_TLS: &[u8] = include_bytes!("../../proxy-proto/testdata/haproxy-v2-tls.bin");

fn v2(b: Builder<'_>) -> Vec<u8> {
    let mut out = vec![0; b.len().unwrap()];
    b.write(&mut out).unwrap();
    out
}

/// HAProxy's TLS header without the unique id: CRC, ALPN, AUTHORITY and SSL with five
/// sub-TLVs — the 141-byte shape HAProxy sends with `crc32c,authority,ssl,cert-cn,ssl-cipher,
/// cert-sig,cert-key`.
fn haproxy_141() -> Vec<u8> {
    let Ok(Status::Complete(h)) = proxy_proto::parse(HAPROXY_TLS) else {
        unreachable!()
    };
    let ssl = h.ssl().unwrap();
    let ssl = ssl
        .sub_tlvs()
        .fold(SslBuilder::new(ssl.client().0, ssl.verify()), |b, t| {
            b.sub(t.kind, t.value)
        });
    let b = Builder::v2(h.command(), h.addresses())
        .crc32c()
        .alpn(h.alpn().unwrap())
        .authority(h.authority().unwrap())
        .ssl(ssl);
    let out = v2(b);
    assert_eq!(out.len(), 141);
    out
}

fn ours(bytes: &[u8]) -> usize {
    match proxy_proto::parse(bytes) {
        Ok(Status::Complete(h)) => {
            h.len()
                + usize::from(h.source().is_some())
                + h.tlvs().map(|t| t.value.len()).sum::<usize>()
        }
        _ => unreachable!(),
    }
}

fn ppp_v1(bytes: &[u8]) -> usize {
    let h = ppp::v1::Header::try_from(bytes).unwrap();
    h.header.len() + usize::from(!matches!(h.addresses, ppp::v1::Addresses::Unknown))
}

fn ppp_v2(bytes: &[u8]) -> usize {
    let h = ppp::v2::Header::try_from(bytes).unwrap();
    let tlvs: usize = h.tlvs().map(|t| t.unwrap().value.len()).sum();
    h.len() + usize::from(h.addresses != ppp::v2::Addresses::Unspecified) + tlvs
}

fn proxy_header(bytes: &[u8]) -> usize {
    let (h, len) =
        proxy_header::ProxyHeader::parse(bytes, proxy_header::ParseConfig::default()).unwrap();
    let tlvs: usize = h.tlvs().map(|t| usize::from(t.unwrap().kind())).sum();
    len + usize::from(h.proxied_address().is_some()) + tlvs
}

fn group(c: &mut Criterion, name: &str, bytes: &[u8], v1: bool) {
    let mut g = c.benchmark_group(name);
    g.bench_function("sixgate", |b| b.iter(|| ours(black_box(bytes))));
    if v1 {
        g.bench_function("ppp", |b| b.iter(|| ppp_v1(black_box(bytes))));
    } else {
        g.bench_function("ppp", |b| b.iter(|| ppp_v2(black_box(bytes))));
    }
    g.bench_function("proxy-header", |b| {
        b.iter(|| proxy_header(black_box(bytes)))
    });
    g.finish();
}

fn parse(c: &mut Criterion) {
    let sa = |s: &str| s.parse().unwrap();
    group(c, "parse v1 TCP4", V1_TCP4, true);
    group(c, "parse v1 TCP6", V1_TCP6, true);
    let tcp4 = v2(Builder::v2_proxy(
        sa("192.168.100.201:56324"),
        sa("10.20.30.40:443"),
    ));
    group(c, "parse v2 TCP4", &tcp4, false);
    let tcp6 = v2(Builder::v2_proxy(
        sa("[2001:db8:85a3::8a2e:370:7334]:56324"),
        sa("[2001:db8:1234:5678::443]:443"),
    ));
    group(c, "parse v2 TCP6", &tcp6, false);
    group(
        c,
        "parse v2 HAProxy TLS 141 B with CRC32C",
        &haproxy_141(),
        false,
    );
}

fn emit(c: &mut Criterion) {
    let src: std::net::SocketAddr = "[2001:db8:85a3::8a2e:370:7334]:56324".parse().unwrap();
    let dst: std::net::SocketAddr = "[2001:db8:1234:5678::443]:443".parse().unwrap();
    let mut g = c.benchmark_group("emit v2 TCP6 + AUTHORITY");
    g.bench_function("sixgate", |b| {
        let mut buf = [0u8; 128];
        b.iter(|| {
            Builder::v2_proxy(black_box(src), black_box(dst))
                .authority(black_box("www.example.com"))
                .write(&mut buf)
                .unwrap()
        })
    });
    g.bench_function("ppp", |b| {
        b.iter(|| {
            ppp::v2::Builder::with_addresses(
                0x21,
                ppp::v2::Protocol::Stream,
                (black_box(src), black_box(dst)),
            )
            .write_tlv(ppp::v2::Type::Authority, black_box(b"www.example.com"))
            .unwrap()
            .build()
            .unwrap()
            .len()
        })
    });
    g.bench_function("proxy-header", |b| {
        let mut buf = [0u8; 128];
        b.iter(|| {
            let addr = proxy_header::ProxiedAddress::stream(black_box(src), black_box(dst));
            let tlvs = [proxy_header::Tlv::Authority(
                black_box("www.example.com").into(),
            )];
            proxy_header::ProxyHeader::with_tlvs(Some(addr), tlvs)
                .encode_to_slice_v2(&mut buf)
                .unwrap()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = parse, emit
}
criterion_main!(benches);
