//! nat64-xlat's stateful translator beside the stateless one on the same packet: a session hit
//! (the common case: every packet of a flow after its first), a new session (binding, port
//! search, session), and the expiry of sessions that came due, per session. The stateless row
//! maps the same host by a one-entry EAM, so both do the same header work.

use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use nat64_xlat::checksum::{add, finish, pseudo4, pseudo6, sum};
use nat64_xlat::stateful::{Layout, Nat64, StatefulConfig};
use nat64_xlat::{Config, Eam, InPlace, Outcome, Pool6, Translator};

const REMOTE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
const POOL4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 0);

fn host(block: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 6, block, 0, 0, 0, 0x10)
}

fn udp6(src: Ipv6Addr, sport: u16, payload: usize) -> Vec<u8> {
    let dst = Pool6::new("64:ff9b::/96".parse().unwrap())
        .unwrap()
        .embed(REMOTE, &[])
        .unwrap();
    let len = 8 + payload;
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(len as u16).to_be_bytes());
    p.extend_from_slice(&[17, 64]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&53u16.to_be_bytes());
    p.extend_from_slice(&(len as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.resize(40 + len, 0x5a);
    let c = finish(add(pseudo6(src, dst, 17, len as u32), sum(&p[40..])));
    p[46..48].copy_from_slice(&c.to_be_bytes());
    p
}

fn udp4(dst: Ipv4Addr, dport: u16, payload: usize) -> Vec<u8> {
    let len = 8 + payload;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&((20 + len) as u16).to_be_bytes());
    p.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, 17, 0, 0]);
    p.extend_from_slice(&REMOTE.octets());
    p.extend_from_slice(&dst.octets());
    let c = finish(sum(&p));
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&53u16.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&(len as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.resize(20 + len, 0x5a);
    let c = finish(add(pseudo4(REMOTE, dst, 17, len as u32), sum(&p[20..])));
    p[26..28].copy_from_slice(&c.to_be_bytes());
    p
}

/// 256 customers (/64s of a /56), one pool4 address of 64512 ports each.
fn config(capacity: u32) -> StatefulConfig {
    let layout = Layout::new(
        &["203.0.113.0/24".parse().unwrap()],
        1024..=65535,
        &["2001:db8:6::/56".parse().unwrap()],
        64,
        64512,
    )
    .unwrap();
    let mut c = StatefulConfig::new(layout);
    c.capacity = capacity;
    c.limits.max_sessions_per_block = u32::MAX;
    c
}

fn in_place(buf: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 28 + buf.len()];
    b[28..].copy_from_slice(buf);
    b
}

fn bench(c: &mut Criterion) {
    let pool6 = Pool6::new("64:ff9b::/96".parse().unwrap()).unwrap();
    let stateless_eam = [Eam::new(
        "203.0.113.0/32".parse().unwrap(),
        format!("{}/128", host(0)).parse().unwrap(),
    )
    .unwrap()];
    let mut cfg = Config::new(Some(pool6));
    cfg.non_global = &[];
    let stateless = Translator::new({
        let mut c = cfg;
        c.eam = &stateless_eam;
        c
    });
    let xlat = Translator::new(cfg);
    let now = Duration::from_secs(10);

    for payload in [32, 1432] {
        let v6 = udp6(host(0), 40000, payload);
        let mut nat = Nat64::new(config(1 << 16));
        let mut out = vec![0u8; Translator::out_len(v6.len())];
        let Outcome::Translated(e) = nat.translate_6to4(&xlat, now, &v6, &mut out) else {
            panic!("no session opened");
        };
        let port = u16::from_be_bytes([out[20], out[21]]);
        assert!(!e.is_empty());
        let v4 = udp4(POOL4, port, payload);

        for (dir, input) in [("6to4", &v6), ("4to6", &v4)] {
            let mut g = c.benchmark_group(format!("nat64_stateful/udp_{}B_{dir}", input.len()));
            g.throughput(Throughput::Elements(1));
            let fresh = in_place(input);
            let n = input.len();
            g.bench_function("stateless in place", |b| {
                b.iter_batched_ref(
                    || fresh.clone(),
                    |buf| {
                        black_box(if dir == "6to4" {
                            stateless.translate_6to4_in_place(buf, 28, n)
                        } else {
                            stateless.translate_4to6_in_place(buf, 28, n)
                        })
                    },
                    BatchSize::SmallInput,
                )
            });
            g.bench_function("stateful hit in place", |b| {
                b.iter_batched_ref(
                    || fresh.clone(),
                    |buf| {
                        let r = if dir == "6to4" {
                            nat.translate_6to4_in_place(&xlat, now, buf, 28, n)
                        } else {
                            nat.translate_4to6_in_place(&xlat, now, buf, 28, n)
                        };
                        black_box(r)
                    },
                    BatchSize::SmallInput,
                )
            });
            let mut check = fresh.clone();
            let r = if dir == "6to4" {
                nat.translate_6to4_in_place(&xlat, now, &mut check, 28, n)
            } else {
                nat.translate_4to6_in_place(&xlat, now, &mut check, 28, n)
            };
            assert!(matches!(r, InPlace::Translated(_)), "{dir}: {r:?}");
            g.bench_function("stateless copy", |b| {
                b.iter(|| {
                    black_box(if dir == "6to4" {
                        stateless.translate_6to4(black_box(input), &mut out)
                    } else {
                        stateless.translate_4to6(black_box(input), &mut out)
                    })
                })
            });
            g.bench_function("stateful hit copy", |b| {
                b.iter(|| {
                    black_box(if dir == "6to4" {
                        nat.translate_6to4(&xlat, now, black_box(input), &mut out)
                    } else {
                        nat.translate_4to6(&xlat, now, black_box(input), &mut out)
                    })
                })
            });
            g.finish();
        }
    }

    // A new session per packet: each from another customer and port, into a fresh table of
    // 65536 sessions (made outside the timed part).
    let mut g = c.benchmark_group("nat64_stateful/new_session_6to4");
    g.throughput(Throughput::Elements(1));
    let template = udp6(host(0), 1024, 32);
    g.bench_function("stateful new session", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut left = iters;
            let mut out = vec![0u8; Translator::out_len(template.len())];
            while left > 0 {
                let chunk = left.min(1 << 16);
                let mut nat = Nat64::new(config(1 << 16));
                let packets: Vec<Vec<u8>> = (0..chunk)
                    .map(|i| udp6(host((i % 256) as u16), 1024 + (i / 256) as u16, 32))
                    .collect();
                let start = Instant::now();
                for p in &packets {
                    black_box(nat.translate_6to4(&xlat, now, p, &mut out));
                }
                spent += start.elapsed();
                assert_eq!(nat.stats().sessions[1] as u64, chunk);
                left -= chunk;
            }
            spent
        })
    });
    g.finish();

    // Expiry: 65536 UDP sessions come due at once; the time per session removed.
    let mut g = c.benchmark_group("nat64_stateful/expiry_per_session");
    const N: u64 = 1 << 16;
    g.throughput(Throughput::Elements(N));
    g.bench_function("stateful expire", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut out = vec![0u8; 1500];
            for _ in 0..iters {
                let mut nat = Nat64::new(config(N as u32));
                let mut buf = vec![0u8; 4096];
                nat.expire(&xlat, Duration::ZERO, &mut out, |_| {});
                for i in 0..N {
                    let p = udp6(host((i % 256) as u16), 1024 + (i / 256) as u16, 0);
                    nat.translate_6to4(&xlat, Duration::ZERO, &p, &mut buf);
                }
                let later = Duration::from_secs(301);
                let start = Instant::now();
                let gone = nat.expire(&xlat, later, &mut out, |_| {});
                spent += start.elapsed();
                assert_eq!(u64::from(gone), N);
            }
            spent
        })
    });
    g.finish();

    // A million sessions, each with a binding of its own (the worst case for memory): the table
    // holds them, and the bytes per session are printed with the bench output.
    let mut nat = Nat64::new(config(1 << 20));
    let mut out = vec![0u8; 4096];
    let start = Instant::now();
    for i in 0..1u32 << 20 {
        let p = udp6(host((i % 256) as u16), 1024 + (i / 256) as u16, 0);
        let o = nat.translate_6to4(&xlat, now, &p, &mut out);
        assert!(matches!(o, Outcome::Translated(_)), "session {i}: {o:?}");
    }
    let filled = start.elapsed();
    let stats = nat.stats();
    assert_eq!((stats.sessions[1], stats.bindings), (1 << 20, 1 << 20));
    println!(
        "nat64_stateful: {} sessions in {:.2} s; {} bytes per session (worst case, a binding each); the table takes {} MiB",
        stats.sessions[1],
        filled.as_secs_f64(),
        Nat64::bytes_per_session(),
        nat.memory() >> 20
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
