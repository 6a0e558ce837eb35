//! Random sequences of picks, retries, outcomes, probes, membership updates and clock steps
//! against a backend pool, checking after every step: never a drained backend; never an unhealthy
//! one or the wrong tier outside panic mode (checked against a small model of the routing rule);
//! no duplicate in a retry list, which stays within max_attempts; typed errors exactly when the
//! model says so; in-flight counts equal the guards held, and return to zero.
#![no_main]

use std::collections::HashMap;
use std::time::Duration;

use arbitrary::Arbitrary;
use backend_pool::{
    Algorithm, Backend, BackendId, InFlight, LeastConn, Maglev, MaglevConfig, Pool, PoolConfig,
    PoolError, Rng, SmoothWeighted, Tier, WeightedRandom,
};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Op {
    Pick { key: u16, hold: bool },
    Retry { key: u16, take: u8, hold: bool },
    Release { slot: u8 },
    Success { backend: u8 },
    Failure { backend: u8 },
    Probe { backend: u8, ok: bool },
    Update { members: Vec<(u8, u8, bool)> },
    Tick { millis: u16 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    algorithm: u8,
    panic_percent: u8,
    failures: u8,
    slow_start: bool,
    max_attempts: u8,
    seed: u64,
    initial: Vec<(u8, u8, bool)>,
    ops: Vec<Op>,
}

fn id(n: u8) -> BackendId {
    BackendId::name(&format!("b{}", n % 16))
}

fn members(list: &[(u8, u8, bool)]) -> Vec<Backend> {
    let mut seen = [false; 16];
    let mut out = Vec::new();
    for &(n, weight, backup) in list.iter().take(16) {
        if std::mem::replace(&mut seen[usize::from(n % 16)], true) {
            continue; // duplicates are tested as an error separately
        }
        let b = Backend::new(id(n), u32::from(weight % 8) * u32::from(weight / 8 + 1));
        out.push(if backup { b.backup() } else { b });
    }
    out
}

/// The routing rule, restated: which tier serves and whether health is ignored.
fn model<A: Algorithm>(pool: &Pool<A>, now: Duration) -> Result<(Tier, bool), PoolError> {
    let snapshot = pool.load();
    let (mut total, mut healthy) = ([0u64; 2], [0u64; 2]);
    for b in snapshot.backends().filter(|b| b.weight > 0) {
        let t = usize::from(b.tier == Tier::Backup);
        total[t] += 1;
        let s = pool.status(&b.id, now).unwrap();
        healthy[t] += u64::from(!s.ejected && !s.actively_down);
    }
    if snapshot.is_empty() {
        return Err(PoolError::Empty);
    }
    if total == [0, 0] {
        return Err(PoolError::AllDrained);
    }
    let panic = u64::from(pool.config().panic_threshold_percent);
    let below = |t: usize| healthy[t] * 100 < panic * total[t];
    if healthy[0] > 0 {
        Ok((Tier::Primary, below(0)))
    } else if healthy[1] > 0 {
        Ok((Tier::Backup, below(1)))
    } else if panic == 0 {
        Err(PoolError::NoHealthy)
    } else if total[0] > 0 {
        Ok((Tier::Primary, true))
    } else {
        Ok((Tier::Backup, true))
    }
}

fn run<A: Algorithm>(input: &Input, algorithm: A::Config) {
    let config = PoolConfig {
        failures_to_eject: 1 + u32::from(input.failures % 4),
        base_ejection: Duration::from_secs(1),
        max_ejection: Duration::from_secs(8),
        slow_start: if input.slow_start {
            Duration::from_secs(10)
        } else {
            Duration::ZERO
        },
        panic_threshold_percent: input.panic_percent % 101,
        max_attempts: 1 + u32::from(input.max_attempts % 32),
        ..Default::default()
    };
    let Ok(pool) = Pool::<A>::new(members(&input.initial), config, algorithm, input.seed) else {
        return;
    };
    let mut rng = Rng::new(input.seed);
    let mut now = Duration::ZERO;
    // A backend removed and re-added is a new incarnation with its own count.
    let mut incarnation: HashMap<BackendId, u32> = HashMap::new();
    let mut held: Vec<(InFlight, u32)> = Vec::new();
    let mut expected: HashMap<(BackendId, u32), u64> = HashMap::new();

    for op in &input.ops {
        match op {
            Op::Pick { key, hold } | Op::Retry { key, hold, .. } => {
                let take = match op {
                    Op::Retry { take, .. } => usize::from(*take % 40),
                    _ => 1,
                };
                let routed = model(&pool, now);
                let snapshot = pool.load();
                let key = key.to_le_bytes();
                let candidates = snapshot.candidates(&key, now, &mut rng);
                match (&routed, candidates) {
                    (Err(want), Err(got)) => assert_eq!(*want, got),
                    (Err(want), Ok(_)) => panic!("model says {want:?}, pool gave candidates"),
                    (Ok(_), Err(got)) => panic!("model routes, pool says {got:?}"),
                    (Ok((tier, panic)), Ok(candidates)) => {
                        let mut seen = Vec::new();
                        // Primaries that may be handed out: all of them with weight in panic
                        // mode, the healthy ones otherwise.
                        let healthy = |b: &backend_pool::Backend| {
                            let s = pool.status(&b.id, now).unwrap();
                            !s.ejected && !s.actively_down
                        };
                        let usable_primaries = snapshot
                            .backends()
                            .filter(|b| b.tier == Tier::Primary && b.weight > 0)
                            .filter(|b| *panic || healthy(b))
                            .count();
                        for c in candidates.take(take) {
                            let b = c.backend();
                            assert!(b.weight > 0, "drained backend picked");
                            // A request whose every primary failed goes on to the backups.
                            let to_backups = *tier == Tier::Primary && b.tier == Tier::Backup;
                            assert!(b.tier == *tier || to_backups, "wrong tier");
                            if to_backups {
                                let primaries_seen = seen.len().min(usable_primaries);
                                assert_eq!(
                                    primaries_seen, usable_primaries,
                                    "a backup before every primary was tried"
                                );
                                assert!(healthy(b), "unhealthy backup picked");
                            } else if !panic {
                                assert!(healthy(b), "unhealthy picked");
                            }
                            assert!(!seen.contains(&b.id), "duplicate candidate");
                            seen.push(b.id.clone());
                            if *hold {
                                let inc = incarnation.get(&b.id).copied().unwrap_or(0);
                                *expected.entry((b.id.clone(), inc)).or_default() += 1;
                                held.push((c.detach(), inc));
                            }
                        }
                        assert!(seen.len() <= pool.config().max_attempts as usize);
                        if take > 0 {
                            assert!(!seen.is_empty(), "routable pool gave no candidate");
                        }
                    }
                }
            }
            Op::Release { slot } => {
                if !held.is_empty() {
                    let (guard, inc) = held.swap_remove(usize::from(*slot) % held.len());
                    *expected.get_mut(&(guard.id().clone(), inc)).unwrap() -= 1;
                }
            }
            Op::Success { backend } => {
                pool.record_success(&id(*backend), now);
            }
            Op::Failure { backend } => {
                pool.record_failure(&id(*backend), now);
            }
            Op::Probe { backend, ok } => {
                pool.record_probe(&id(*backend), *ok, now);
            }
            Op::Update { members: list } => {
                let next = members(list);
                for b in pool.load().backends() {
                    if !next.iter().any(|n| n.id == b.id) {
                        *incarnation.entry(b.id.clone()).or_default() += 1;
                    }
                }
                pool.update(next, now).unwrap();
            }
            Op::Tick { millis } => now += Duration::from_millis(u64::from(*millis)),
        }
        for b in pool.load().backends() {
            let s = pool.status(&b.id, now).unwrap();
            let inc = incarnation.get(&b.id).copied().unwrap_or(0);
            let held_here = expected.get(&(b.id.clone(), inc)).copied().unwrap_or(0);
            assert_eq!(s.in_flight, held_here, "in-flight count of {}", b.id);
        }
    }
    held.clear();
    for b in pool.load().backends() {
        assert_eq!(pool.status(&b.id, now).unwrap().in_flight, 0);
    }
}

fuzz_target!(|input: Input| {
    match input.algorithm % 4 {
        0 => run::<SmoothWeighted>(&input, Default::default()),
        1 => run::<LeastConn>(&input, ()),
        2 => run::<Maglev>(
            &input,
            MaglevConfig {
                min_table_size: 0,
                ..Default::default()
            },
        ),
        _ => run::<WeightedRandom>(&input, ()),
    }
});
