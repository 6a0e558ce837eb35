//! Many threads picking while another publishes updates: no panic, exact per-backend counts from
//! a shared cycle, a removed backend stops being picked, in-flight counts match the guards held and
//! return to zero.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;
use std::sync::{Arc, Barrier};
use std::thread;

use backend_pool::{
    Algorithm, Backend, InFlight, LeastConn, Maglev, Pool, PoolConfig, Rng, SmoothWeighted,
};

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

/// Pickers hold some connections open across updates; the publisher alternates memberships,
/// then removes b2 for good. Checked while the pickers run: no pick made from a snapshot loaded
/// after that publish is b2. Checked after: the pool's in-flight counts equal the guards the
/// pickers still hold, then drop to zero.
fn picks_during_updates<A: Algorithm>(config: A::Config, rounds: u32) {
    let pool =
        Arc::new(Pool::<A>::new(named(&[3, 2, 1]), PoolConfig::default(), config, 1).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let final_published = Arc::new(AtomicBool::new(false));
    let picked = Arc::new(AtomicU64::new(0));
    let checked = Arc::new(AtomicU64::new(0));
    let pickers: Vec<_> = (0..THREADS)
        .map(|t| {
            let pool = Arc::clone(&pool);
            let (stop, final_published) = (Arc::clone(&stop), Arc::clone(&final_published));
            let (picked, checked) = (Arc::clone(&picked), Arc::clone(&checked));
            thread::spawn(move || {
                let mut rng = Rng::new(t as u64);
                let mut held = Vec::new();
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let after_removal = final_published.load(Ordering::SeqCst);
                    let snapshot = pool.snapshot();
                    let key = i.to_le_bytes();
                    let pick = snapshot.pick(&key, Duration::ZERO, &mut rng).unwrap();
                    if after_removal {
                        assert_ne!(pick.backend().id.to_string(), "b2", "removed, still picked");
                        checked.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                    picked.fetch_add(1, Ordering::Relaxed);
                    // keep some connections open across updates
                    if i % 7 == 0 {
                        held.push(pick.detach());
                    }
                    if held.len() > 16 {
                        held.drain(..8);
                    }
                }
                held
            })
        })
        .collect();
    for round in 0..rounds {
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
    final_published.store(true, Ordering::SeqCst);
    while checked.load(Ordering::Relaxed) < 1000 {
        thread::yield_now();
    }
    stop.store(true, Ordering::SeqCst);
    let held: Vec<InFlight> = pickers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let now = Duration::from_secs(1);
    for id in ["b0", "b1"] {
        let guards = held.iter().filter(|g| g.id().to_string() == id).count() as u64;
        let status = pool.status(&id.into(), now).unwrap();
        assert_eq!(
            status.in_flight, guards,
            "{id}: the pool counts what is held"
        );
    }
    drop(held);
    for id in ["b0", "b1"] {
        assert_eq!(pool.status(&id.into(), now).unwrap().in_flight, 0, "{id}");
    }
}

#[test]
fn picks_during_updates_least_conn() {
    picks_during_updates::<LeastConn>((), 200);
}

#[test]
fn picks_during_updates_smooth() {
    picks_during_updates::<SmoothWeighted>(Default::default(), 200);
}

#[test]
fn picks_during_updates_maglev() {
    // each rebuild fills a 65537-slot table: fewer rounds keep the debug run short
    picks_during_updates::<Maglev>(Default::default(), 20);
}
