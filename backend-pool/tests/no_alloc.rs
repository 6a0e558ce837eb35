//! The pick path never allocates: a counting global allocator watches this thread while it loads
//! snapshots, picks, retries and drops guards, for every algorithm, with health in play.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::time::Duration;
use std::alloc::System;

use backend_pool::{
    Algorithm, Backend, LeastConn, Maglev, Pool, PoolConfig, Rng, SmoothWeighted, WeightedRandom,
};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if ARMED.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
    }
}

// SAFETY: forwards every call unchanged to the system allocator; only counts on the way.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn picks_without_allocating<A: Algorithm>(algorithm: A::Config) {
    let backends: Vec<Backend> = (0..50)
        .map(|i| {
            let b = Backend::new(format!("backend-{i}").as_str(), i % 7);
            if i % 10 == 0 { b.backup() } else { b }
        })
        .collect();
    let config = PoolConfig {
        failures_to_eject: 1,
        slow_start: Duration::from_secs(100),
        max_attempts: 8,
        ..Default::default()
    };
    let pool = Pool::<A>::new(backends, config, algorithm, 7).unwrap();
    let s = Duration::from_secs;
    // Some ejected, one ramping back, so skips, fallbacks and slow start all run.
    for i in [1, 2, 3, 8, 9] {
        pool.record_failure(&format!("backend-{i}").as_str().into(), s(0));
    }
    pool.record_failure(&"backend-4".into(), s(100));
    let mut rng = Rng::new(3);
    let mut run = |from: u64| {
        let mut picked = 0u64;
        for i in 0..2000u64 {
            let now = s(from + i / 100);
            let snapshot = pool.load();
            let key = i.to_le_bytes();
            for candidate in snapshot.candidates(&key, now, &mut rng).unwrap() {
                picked += u64::from(candidate.backend().weight);
            }
        }
        picked
    };
    run(0); // warm up: arc-swap's per-thread slots are made on first use
    ARMED.with(|a| a.set(true));
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let picked = run(5);
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    ARMED.with(|a| a.set(false));
    assert!(picked > 0);
    assert_eq!(after - before, 0, "allocations on the pick path");
}

#[test]
fn no_allocation_per_pick() {
    // The harness itself sees an allocation when there is one.
    ARMED.with(|a| a.set(true));
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    drop(core::hint::black_box(vec![1u8; 8]));
    let seen = ALLOCATIONS.load(Ordering::SeqCst) - before;
    ARMED.with(|a| a.set(false));
    assert_eq!(seen, 1);

    picks_without_allocating::<SmoothWeighted>(Default::default());
    picks_without_allocating::<LeastConn>(());
    picks_without_allocating::<Maglev>(Default::default());
    picks_without_allocating::<WeightedRandom>(());
}
