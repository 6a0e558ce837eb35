//! A killed backend that restarts, on a simulated clock, with the settings the full proxy uses
//! (smooth round-robin, rise 2 / fall 3 checks every second, passive ejection on, 10 s slow
//! start): it takes connections again within `rise` check intervals of listening, whenever it
//! restarts and whatever the checks' phase, as HAProxy's `inter 1s rise 2` does.

use core::time::Duration;

use backend_pool::{Backend, BackendId, Pool, PoolConfig, Rng, SmoothWeighted};

const KILLED: u64 = 10_000;
const INTERVAL: u64 = 1_000;
const REQUEST_GAP: u64 = 100;

/// Milliseconds from the restart (`down_for` after the kill) to the first connection it takes;
/// checks run every second from `phase`, a request every 100 ms.
fn recovery(down_for: u64, phase: u64, seed: u64) -> Option<u64> {
    let config = PoolConfig {
        rise: 2,
        fall: 3,
        slow_start: Duration::from_secs(10),
        ..Default::default()
    };
    let [keep, flaky] = ["[::1]:8001", "[::1]:8002"].map(|a| a.parse().unwrap());
    let backends = [Backend::new(keep, 1), Backend::new(flaky, 1)];
    let pool = Pool::<SmoothWeighted>::new(backends, config, Default::default(), seed).unwrap();
    let flaky = BackendId::Addr(flaky);
    let back = KILLED + down_for;
    let listening = |t: u64| !(KILLED..back).contains(&t);
    let mut rng = Rng::new(seed);
    for t in 0..back + 30_000 {
        let now = Duration::from_millis(t);
        if t % INTERVAL == phase {
            pool.record_probe(&flaky, listening(t), now);
        }
        if t % REQUEST_GAP != 0 {
            continue;
        }
        let snapshot = pool.load();
        for candidate in snapshot.candidates(b"", now, &mut rng).unwrap() {
            if candidate.backend().id != flaky || listening(t) {
                candidate.record_success(now);
                if candidate.backend().id == flaky && t >= back {
                    return Some(t - back);
                }
                break;
            }
            candidate.record_failure(now); // refused: the proxy retries the next candidate
        }
    }
    None
}

#[test]
fn a_restarted_backend_takes_connections_within_rise_intervals() {
    for down_for in [500, 2_000, 5_000, 7_000, 15_000, 25_000] {
        let mut total = 0;
        let phases: Vec<u64> = (0..INTERVAL).step_by(50).collect();
        for (seed, &phase) in phases.iter().enumerate() {
            let took = recovery(down_for, phase, seed as u64 + 1).expect("never came back");
            // The first good check comes within an interval, the rise-th one interval later,
            // and the backend is proposed at the first or second request after that.
            assert!(
                took <= 2 * INTERVAL + 2 * REQUEST_GAP,
                "down {down_for} ms, phase {phase}: back after {took} ms"
            );
            total += took;
        }
        let mean = total / phases.len() as u64;
        assert!(mean <= 1_700, "down {down_for} ms: {mean} ms on average");
    }
}
