//! Many threads picking while another publishes updates: no panic, counts add up, a removed
//! backend stops being picked, and every in-flight count returns to zero.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;
use std::sync::{Arc, Barrier};
use std::thread;

use backend_pool::{Backend, LeastConn, Pool, PoolConfig, Rng, SmoothWeighted};

const THREADS: usize = 4;

fn named(weights: &[u32]) -> Vec<Backend> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| Backend::new(format!("b{i}").as_str(), w))
        .collect()
}

#[test]
fn shared_counter_gives_exact_counts_across_threads() {
    let pool = Arc::new(
        Pool::<SmoothWeighted>::new(
            named(&[5, 1, 1]),
            PoolConfig::default(),
            Default::default(),
            1,
        )
        .unwrap(),
    );
    let per_thread = 7 * 1000;
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (pool, barrier) = (Arc::clone(&pool), Arc::clone(&barrier));
            thread::spawn(move || {
                let mut rng = Rng::new(t as u64);
                let mut counts = [0u64; 3];
                barrier.wait();
                for _ in 0..per_thread {
                    let snapshot = pool.load();
                    let pick = snapshot.pick(b"", Duration::ZERO, &mut rng).unwrap();
                    let i = snapshot
                        .backends()
                        .position(|b| b == pick.backend())
                        .unwrap();
                    counts[i] += 1;
                }
                counts
            })
        })
        .collect();
    let mut total = [0u64; 3];
    for h in handles {
        for (t, c) in total.iter_mut().zip(h.join().unwrap()) {
            *t += c;
        }
    }
    // whole cycles were handed out, one slot per pick, whichever thread took them
    let cycles = (THREADS * per_thread / 7) as u64;
    assert_eq!(total, [5 * cycles, cycles, cycles]);
}

#[test]
fn picks_during_updates() {
    let pool =
        Arc::new(Pool::<LeastConn>::new(named(&[3, 2, 1]), PoolConfig::default(), (), 1).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let picked = Arc::new(AtomicU64::new(0));
    let pickers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (pool, stop, picked) = (Arc::clone(&pool), Arc::clone(&stop), Arc::clone(&picked));
            thread::spawn(move || {
                let mut rng = Rng::new(t as u64);
                let mut held = Vec::new();
                let mut mine = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let snapshot = pool.snapshot();
                    let pick = snapshot.pick(b"", Duration::ZERO, &mut rng).unwrap();
                    mine += 1;
                    picked.fetch_add(1, Ordering::Relaxed);
                    // keep some connections open across updates
                    if mine % 7 == 0 {
                        held.push(pick.detach());
                    }
                    if held.len() > 16 {
                        held.clear();
                    }
                }
                mine
            })
        })
        .collect();
    for round in 0..200u32 {
        let weights: &[u32] = if round % 2 == 0 { &[3, 2] } else { &[1, 4, 2] };
        pool.update(named(weights), Duration::from_millis(u64::from(round)))
            .unwrap();
        // let the pickers run against this snapshot before publishing the next
        let seen = picked.load(Ordering::Relaxed);
        while picked.load(Ordering::Relaxed) < seen + THREADS as u64 {
            thread::yield_now();
        }
    }
    pool.update(named(&[3, 2]), Duration::from_secs(1)).unwrap();
    // After the last publish, b2 is gone for every new load.
    let mut rng = Rng::new(99);
    for _ in 0..1000 {
        let snapshot = pool.load();
        let pick = snapshot
            .pick(b"", Duration::from_secs(1), &mut rng)
            .unwrap();
        assert_ne!(pick.backend().id.to_string(), "b2");
    }
    stop.store(true, Ordering::Relaxed);
    let per_thread: Vec<u64> = pickers.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        per_thread.iter().sum::<u64>(),
        picked.load(Ordering::Relaxed),
        "counts add up"
    );
    for id in ["b0", "b1"] {
        let status = pool.status(&id.into(), Duration::from_secs(1)).unwrap();
        assert_eq!(status.in_flight, 0, "{id}");
    }
}
