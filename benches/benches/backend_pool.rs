//! backend-pool beside pingora-load-balancing: one group per pool size and thread count, every
//! algorithm of both in it, so the report reads as ratios from one run.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use backend_pool::{
    Algorithm, Backend, LeastConn, Maglev, Pool, PoolConfig, Rng, SmoothWeighted, WeightedRandom,
};
use criterion::{Criterion, criterion_group, criterion_main};
use pingora_load_balancing::Backend as PBackend;
use pingora_load_balancing::selection::{
    BackendIter, BackendSelection, Consistent, Random, RoundRobin,
};

const KEYS: usize = 1024;

fn addr(i: usize) -> String {
    format!("10.{}.{}.{}:443", i >> 16, (i >> 8) & 255, i & 255)
}

/// Weights 1..=100, spread over the pool.
fn weight(i: usize) -> u32 {
    1 + (i * 37 % 100) as u32
}

fn ours<A: Algorithm>(n: usize) -> Arc<Pool<A>> {
    let backends =
        (0..n).map(|i| Backend::new(addr(i).parse::<std::net::SocketAddr>().unwrap(), weight(i)));
    Arc::new(Pool::new(backends, PoolConfig::default(), A::Config::default(), 1).unwrap())
}

fn theirs<S: BackendSelection>(n: usize) -> Arc<S> {
    let set: BTreeSet<PBackend> = (0..n)
        .map(|i| PBackend::new_with_weight(&addr(i), weight(i) as usize).unwrap())
        .collect();
    Arc::new(S::build(&set))
}

fn keys() -> Vec<[u8; 16]> {
    let mut rng = Rng::new(5);
    (0..KEYS)
        .map(|_| {
            let mut k = [0u8; 16];
            k[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
            k[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
            k
        })
        .collect()
}

/// A pick loop that can run on several threads at once; returns the time of the measuring thread.
fn timed<F>(threads: usize, iters: u64, make: impl Fn(usize) -> F + Sync) -> Duration
where
    F: FnMut(u64),
{
    let barrier = Barrier::new(threads);
    thread::scope(|s| {
        for t in 1..threads {
            let (barrier, make) = (&barrier, &make);
            s.spawn(move || {
                let mut pick = make(t);
                barrier.wait();
                for i in 0..iters {
                    pick(i);
                }
            });
        }
        let mut pick = make(0);
        barrier.wait();
        let start = Instant::now();
        for i in 0..iters {
            pick(i);
        }
        start.elapsed()
    })
}

fn ours_pick<A: Algorithm>(pool: &Arc<Pool<A>>, keys: &[[u8; 16]], t: usize) -> impl FnMut(u64) {
    let snapshot = pool.snapshot();
    let keys = keys.to_vec();
    let mut rng = Rng::new(t as u64);
    move |i| {
        let key = &keys[i as usize % KEYS];
        let pick = snapshot.pick(key, Duration::ZERO, &mut rng).unwrap();
        black_box(pick.backend());
    }
}

/// Without the in-flight guard, like the peer (which has none).
fn ours_select<A: Algorithm>(pool: &Arc<Pool<A>>, keys: &[[u8; 16]], t: usize) -> impl FnMut(u64) {
    let snapshot = pool.snapshot();
    let keys = keys.to_vec();
    let mut rng = Rng::new(t as u64);
    move |i| {
        let key = &keys[i as usize % KEYS];
        black_box(snapshot.select(key, Duration::ZERO, &mut rng).unwrap());
    }
}

fn theirs_pick<S>(sel: &Arc<S>, keys: &[[u8; 16]]) -> impl FnMut(u64)
where
    S: BackendSelection,
    S::Iter: BackendIter,
{
    let sel = Arc::clone(sel);
    let keys = keys.to_vec();
    move |i| {
        let key = &keys[i as usize % KEYS];
        let mut iter = sel.iter(key);
        black_box(iter.next().is_some());
    }
}

fn picks(c: &mut Criterion) {
    let keys = keys();
    for n in [10usize, 100, 1000] {
        let swrr = ours::<SmoothWeighted>(n);
        let least = ours::<LeastConn>(n);
        let maglev = ours::<Maglev>(n);
        let random = ours::<WeightedRandom>(n);
        let rr = theirs::<RoundRobin>(n);
        let ketama = theirs::<Consistent>(n);
        let prandom = theirs::<Random>(n);
        for threads in [1usize, 2] {
            let mut g = c.benchmark_group(format!("backend_pool/pick/n={n}/threads={threads}"));
            g.bench_function("sixgate SmoothWeighted", |b| {
                b.iter_custom(|it| timed(threads, it, |t| ours_pick(&swrr, &keys, t)))
            });
            g.bench_function("sixgate SmoothWeighted select", |b| {
                b.iter_custom(|it| timed(threads, it, |t| ours_select(&swrr, &keys, t)))
            });
            g.bench_function("sixgate SmoothWeighted (load+pick)", |b| {
                b.iter_custom(|it| {
                    timed(threads, it, |t| {
                        let mut rng = Rng::new(t as u64);
                        let pool = &swrr;
                        move |_| {
                            let snapshot = pool.load();
                            let pick = snapshot.pick(b"", Duration::ZERO, &mut rng).unwrap();
                            black_box(pick.backend());
                        }
                    })
                })
            });
            g.bench_function("pingora RoundRobin", |b| {
                b.iter_custom(|it| timed(threads, it, |_| theirs_pick(&rr, &keys)))
            });
            g.bench_function("sixgate Maglev", |b| {
                b.iter_custom(|it| timed(threads, it, |t| ours_pick(&maglev, &keys, t)))
            });
            g.bench_function("sixgate Maglev select", |b| {
                b.iter_custom(|it| timed(threads, it, |t| ours_select(&maglev, &keys, t)))
            });
            g.bench_function("pingora KetamaHashing", |b| {
                b.iter_custom(|it| timed(threads, it, |_| theirs_pick(&ketama, &keys)))
            });
            g.bench_function("sixgate LeastConn", |b| {
                b.iter_custom(|it| timed(threads, it, |t| ours_pick(&least, &keys, t)))
            });
            g.bench_function("sixgate WeightedRandom", |b| {
                b.iter_custom(|it| timed(threads, it, |t| ours_pick(&random, &keys, t)))
            });
            g.bench_function("sixgate WeightedRandom select", |b| {
                b.iter_custom(|it| timed(threads, it, |t| ours_select(&random, &keys, t)))
            });
            g.bench_function("pingora Random", |b| {
                b.iter_custom(|it| timed(threads, it, |_| theirs_pick(&prandom, &keys)))
            });
            g.finish();
        }
    }
}

/// Not a timing: the longest run of one backend for weights {100, 1, 1}, printed beside the
/// timings (nginx's smooth order vs pingora's expanded array).
fn smoothness(_: &mut Criterion) {
    let backends = [
        ("10.0.0.1:443", 100),
        ("10.0.0.2:443", 1),
        ("10.0.0.3:443", 1),
    ];
    let pool = Pool::<SmoothWeighted>::new(
        backends.map(|(a, w)| Backend::new(a.parse::<std::net::SocketAddr>().unwrap(), w)),
        PoolConfig::default(),
        Default::default(),
        1,
    )
    .unwrap();
    let snapshot = pool.load();
    let mut rng = Rng::new(1);
    let ours: Vec<String> = (0..1020)
        .map(|_| {
            snapshot
                .pick(b"", Duration::ZERO, &mut rng)
                .unwrap()
                .backend()
                .id
                .to_string()
        })
        .collect();
    let set: BTreeSet<PBackend> = backends
        .iter()
        .map(|(a, w)| PBackend::new_with_weight(a, *w as usize).unwrap())
        .collect();
    let rr = Arc::new(RoundRobin::build(&set));
    let theirs: Vec<String> = (0..1020)
        .map(|_| format!("{:?}", rr.iter(b"").next().unwrap().addr))
        .collect();
    let longest = |v: &[String]| {
        v.chunk_by(|a, b| a == b)
            .map(<[String]>::len)
            .max()
            .unwrap_or(0)
    };
    println!(
        "smoothness {{100,1,1}}: longest run of one backend: sixgate SmoothWeighted {}, pingora RoundRobin {}",
        longest(&ours),
        longest(&theirs)
    );
}

criterion_group!(benches, smoothness, picks);
criterion_main!(benches);
