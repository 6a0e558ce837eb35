//! What one small pool costs, counted by a global allocator: the heap blocks a pool keeps after
//! `Pool::new` and after an `update`, in bytes asked for and in what glibc's malloc spends on
//! them (16-byte granules, 8 bytes of header, 32 at least; an over-aligned block also costs the
//! alignment's worth of split-off space). A hosting operator runs 100,000 pools of 2 backends, so
//! a few hundred bytes each is tens of megabytes: the budgets below hold them there.
//!
//! `cargo test -p backend-pool --test memory -- --nocapture` prints the breakdown.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::{Cell, RefCell};
use core::net::SocketAddr;
use core::time::Duration;
use std::alloc::System;

use backend_pool::{
    Algorithm, Backend, LeastConn, Maglev, Pool, PoolConfig, SmoothWeighted, WeightedRandom,
};

struct Counting;

#[derive(Clone, Copy, Debug)]
enum Event {
    Alloc {
        ptr: usize,
        size: usize,
        align: usize,
    },
    Free {
        ptr: usize,
    },
}

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static LOG: RefCell<Vec<Event>> = const { RefCell::new(Vec::new()) };
}

fn log(event: Event) {
    if ARMED.try_with(Cell::get).unwrap_or(false) {
        // Capacity is reserved before arming: recording never allocates.
        let _ = LOG.try_with(|log| {
            let mut log = log.borrow_mut();
            if log.len() < log.capacity() {
                log.push(event);
            }
        });
    }
}

/// Records a block the system allocator gave (or failed to give) and hands it on.
fn allocated(ptr: *mut u8, size: usize, align: usize) -> *mut u8 {
    log(Event::Alloc {
        ptr: ptr as usize,
        size,
        align,
    });
    ptr
}

// SAFETY: forwards every call unchanged to the system allocator; only records on the way.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        allocated(
            unsafe { System.alloc(layout) },
            layout.size(),
            layout.align(),
        )
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        allocated(ptr, layout.size(), layout.align())
    }
    unsafe fn realloc(&self, old: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as ours.
        let ptr = unsafe { System.realloc(old, layout, new_size) };
        log(Event::Free { ptr: old as usize });
        allocated(ptr, new_size, layout.align())
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        log(Event::Free { ptr: ptr as usize });
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Heap blocks made while `f` ran and still live when it returned, as (size, align).
fn kept<T>(f: impl FnOnce() -> T) -> (T, Vec<(usize, usize)>) {
    LOG.with(|log| {
        let mut log = log.borrow_mut();
        log.clear();
        log.reserve(1 << 16);
    });
    ARMED.with(|a| a.set(true));
    let value = f();
    ARMED.with(|a| a.set(false));
    let events = LOG.with(|log| core::mem::take(&mut *log.borrow_mut()));
    let mut live: Vec<(usize, usize, usize)> = Vec::new();
    for event in events {
        match event {
            Event::Alloc { ptr, size, align } => live.push((ptr, size, align)),
            Event::Free { ptr } => live.retain(|&(p, _, _)| p != ptr),
        }
    }
    (value, live.into_iter().map(|(_, s, a)| (s, a)).collect())
}

/// What glibc's malloc spends on a block: the request plus an 8-byte header in 16-byte granules,
/// 32 at least; an over-aligned block is carved from one larger by the alignment.
fn malloc_cost(size: usize, align: usize) -> usize {
    let chunk = (size + 8).next_multiple_of(16).max(32);
    if align > 16 { chunk + align } else { chunk }
}

struct Cost {
    blocks: usize,
    asked: usize,
    malloc: usize,
    detail: Vec<(usize, usize)>,
}

fn cost(blocks: &[(usize, usize)]) -> Cost {
    Cost {
        blocks: blocks.len(),
        asked: blocks.iter().map(|&(s, _)| s).sum(),
        malloc: blocks.iter().map(|&(s, a)| malloc_cost(s, a)).sum(),
        detail: blocks.to_vec(),
    }
}

fn two_backends(port: u16) -> [Backend; 2] {
    let addr = |last: u8| SocketAddr::from(([192, 0, 2, last], port));
    [Backend::new(addr(1), 1), Backend::new(addr(2), 1)]
}

/// A boxed pool of two backends (the proxy holds each in an `Arc`, a box is the same block), then
/// what the same pool keeps after an update that changes both backends.
fn measure<A: Algorithm>(config: PoolConfig) -> (Cost, Cost) {
    // arc-swap makes its per-thread slots on a thread's first load: not the pool's cost
    drop(Pool::<A>::new(two_backends(80), config, A::Config::default(), 1).unwrap());
    let (pool, new) = kept(|| {
        Box::new(Pool::<A>::new(two_backends(443), config, A::Config::default(), 1).unwrap())
    });
    drop(pool);
    let (pool, updated) = kept(|| {
        let pool =
            Box::new(Pool::<A>::new(two_backends(443), config, A::Config::default(), 1).unwrap());
        pool.update(two_backends(8443), Duration::ZERO).unwrap();
        pool
    });
    drop(pool);
    (cost(&new), cost(&updated))
}

fn report<A: Algorithm>(name: &str, config: PoolConfig, budget: usize) {
    let (new, updated) = measure::<A>(config);
    println!(
        "{name}: size_of Pool {} (align {}); new: {} blocks, {} B asked, ~{} B malloc {:?}; \
         updated: {} blocks, {} B asked, ~{} B malloc {:?}",
        size_of::<Pool<A>>(),
        align_of::<Pool<A>>(),
        new.blocks,
        new.asked,
        new.malloc,
        new.detail,
        updated.blocks,
        updated.asked,
        updated.malloc,
        updated.detail,
    );
    for (when, c) in [("new", &new), ("updated", &updated)] {
        assert!(
            c.malloc <= budget,
            "{name} ({when}): ~{} B of malloc per 2-backend pool, budget {budget}",
            c.malloc
        );
    }
}

/// With health checks configured the proxy turns slow start on: the pool must not grow for it
/// until a backend actually ramps.
fn with_slow_start() -> PoolConfig {
    PoolConfig {
        slow_start: Duration::from_secs(10),
        ..Default::default()
    }
}

#[test]
fn a_two_backend_pool_stays_small() {
    // 2.5 KB (SmoothWeighted) and 1.8 KB (LeastConn) when states and the round-robin counter were
    // padded to 128-byte lines and a hash map found states by identity.
    report::<SmoothWeighted>("SmoothWeighted", PoolConfig::default(), 640);
    report::<SmoothWeighted>("SmoothWeighted+slow start", with_slow_start(), 640);
    report::<LeastConn>("LeastConn", PoolConfig::default(), 640);
    report::<WeightedRandom>("WeightedRandom", PoolConfig::default(), 640);
    // 264 KB when every pool of up to 655 backends had a table of 65537 four-byte slots
    report::<Maglev>("Maglev", PoolConfig::default(), 900);
}
