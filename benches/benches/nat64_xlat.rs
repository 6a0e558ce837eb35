//! nat64-xlat: one translation per iteration, into a separate buffer and in place, beside a plain
//! copy of the same packet into the same kind of buffer (the least any translator that writes into
//! a caller buffer must do). No Rust SIIT crate translates into caller buffers without allocating,
//! so the copy is the reference.

use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use nat64_xlat::checksum::{add, finish, pseudo4, pseudo6, sum};
use nat64_xlat::{Config, InPlace, Outcome, Pool6, Translator};

const V4_HOST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
const V6_HOST_AS_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 33);

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn l4_checksum(seg: &mut [u8], at: usize, pseudo: Option<u32>) {
    seg[at..at + 2].fill(0);
    let c = finish(pseudo.map_or(sum(seg), |p| add(p, sum(seg))));
    seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, mut l4: Vec<u8>) -> Vec<u8> {
    let len = l4.len() as u32;
    match proto {
        6 => l4_checksum(&mut l4, 16, Some(pseudo4(src, dst, 6, len))),
        17 => l4_checksum(&mut l4, 6, Some(pseudo4(src, dst, 17, len))),
        _ => l4_checksum(&mut l4, 2, None),
    }
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, proto, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let c = finish(sum(&p));
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&l4);
    p
}

fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, mut l4: Vec<u8>) -> Vec<u8> {
    let at = match next {
        6 => 16,
        17 => 6,
        _ => 2,
    };
    let len = l4.len() as u32;
    l4_checksum(&mut l4, at, Some(pseudo6(src, dst, next, len)));
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next, 64]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&l4);
    p
}

fn tcp_syn() -> Vec<u8> {
    // 20-byte header and 20 bytes of options (MSS, SACK-permitted, timestamps, window scale).
    let mut t = vec![
        0xc0, 0x01, 0x01, 0xbb, 0, 0, 0, 7, 0, 0, 0, 0, 0xa0, 0x02, 0xfa, 0xf0, 0, 0, 0, 0,
    ];
    t.extend_from_slice(&[
        2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
    ]);
    t
}

fn udp(total: usize) -> Vec<u8> {
    let mut u = vec![0u8; total];
    u[..4].copy_from_slice(&[0x30, 0x39, 0, 53]);
    u[4..6].copy_from_slice(&(total as u16).to_be_bytes());
    u
}

fn echo(ty: u8) -> Vec<u8> {
    let mut e = vec![ty, 0, 0, 0, 0x42, 0x42, 0, 1];
    e.extend_from_slice(&[0x61; 56]);
    e
}

/// The packets, IPv4 side and IPv6 side, named as in the report. The UDP datagram is the largest
/// that crosses 1500-byte links both ways unfragmented: 1480 bytes as IPv4, 1500 as IPv6.
fn packets() -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    let s6 = v6("2001:db8:1c0:2:21::");
    let d6 = v6("2001:db8:1c6:3364:2::");
    let inner4 = ipv4(V6_HOST_AS_V4, V4_HOST, 17, udp(8 + 32));
    let mut err4 = vec![3, 3, 0, 0, 0, 0, 0, 0];
    err4.extend_from_slice(&inner4);
    let inner6 = ipv6(s6, d6, 17, udp(8 + 32));
    let mut err6 = vec![1, 4, 0, 0, 0, 0, 0, 0];
    err6.extend_from_slice(&inner6);
    vec![
        (
            "tcp_syn_60B",
            ipv4(V4_HOST, V6_HOST_AS_V4, 6, tcp_syn()),
            ipv6(s6, d6, 6, tcp_syn()),
        ),
        (
            "udp_1500B",
            ipv4(V4_HOST, V6_HOST_AS_V4, 17, udp(1460)),
            ipv6(s6, d6, 17, udp(1460)),
        ),
        (
            "icmp_echo",
            ipv4(V4_HOST, V6_HOST_AS_V4, 1, echo(8)),
            ipv6(s6, d6, 58, echo(128)),
        ),
        (
            "icmp_error",
            ipv4(V4_HOST, V6_HOST_AS_V4, 1, err4),
            ipv6(d6, s6, 58, err6),
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let pool6 = Pool6::new("2001:db8:100::/40".parse().unwrap()).unwrap();
    let xlat = Translator::new(Config::new(Some(pool6)));
    let mut out = vec![0u8; 4096];
    for (name, p4, p6) in packets() {
        for (dir, input) in [("4to6", &p4), ("6to4", &p6)] {
            // Make sure the bench measures a translation, not a drop.
            let o = if dir == "4to6" {
                xlat.translate_4to6(input, &mut out)
            } else {
                xlat.translate_6to4(input, &mut out)
            };
            assert!(matches!(o, Outcome::Translated(_)), "{name} {dir}: {o:?}");
            let mut g = c.benchmark_group(format!("nat64_xlat/{name}_{dir}"));
            g.throughput(Throughput::Elements(1));
            g.bench_function("nat64-xlat", |b| {
                b.iter(|| {
                    let o = if dir == "4to6" {
                        xlat.translate_4to6(black_box(input), &mut out)
                    } else {
                        xlat.translate_6to4(black_box(input), &mut out)
                    };
                    black_box(o)
                })
            });
            if name != "icmp_error" {
                // The payload stays put; the buffer is refilled outside the timed part.
                let mut buf = vec![0u8; 28 + input.len()];
                buf[28..].copy_from_slice(input);
                let fresh = buf.clone();
                g.bench_function("nat64-xlat in place", |b| {
                    b.iter_batched_ref(
                        || fresh.clone(),
                        |buf| {
                            let r = if dir == "4to6" {
                                xlat.translate_4to6_in_place(buf, 28, input.len())
                            } else {
                                xlat.translate_6to4_in_place(buf, 28, input.len())
                            };
                            black_box(r)
                        },
                        BatchSize::SmallInput,
                    )
                });
                let check = if dir == "4to6" {
                    xlat.translate_4to6_in_place(&mut buf, 28, input.len())
                } else {
                    xlat.translate_6to4_in_place(&mut buf, 28, input.len())
                };
                assert!(
                    matches!(check, InPlace::Translated(_)),
                    "{name} {dir}: {check:?}"
                );
            }
            g.bench_function("copy", |b| {
                b.iter(|| {
                    let src = black_box(input.as_slice());
                    out[..src.len()].copy_from_slice(src);
                    black_box(&out[..src.len()]);
                })
            });
            g.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
