//! The harness measured by itself: what a timestamp and a record cost, and the `baseline`
//! scenario, an open-loop schedule that does nothing, whose latency is the floor every other
//! open-loop figure in the run stands on (timer wake-ups, the scheduler, the clock).

use std::hint::black_box;
use std::time::{Duration, Instant};

use crate::recorder::Recorder;
use crate::results::HarnessCost;

/// Calls per timing round, and rounds (the median round is reported).
const CALLS_PER_ROUND: u32 = 100_000;
const ROUNDS: usize = 5;

fn median_ns_per_call(mut round: impl FnMut() -> Duration) -> f64 {
    let mut per_call: Vec<f64> = (0..ROUNDS)
        .map(|_| round().as_nanos() as f64 / f64::from(CALLS_PER_ROUND))
        .collect();
    per_call.sort_by(f64::total_cmp);
    per_call[ROUNDS / 2]
}

/// Times the clock reads and the recorder (a few tens of milliseconds).
#[must_use]
pub fn measure_harness_cost() -> HarnessCost {
    let instant_now_ns = median_ns_per_call(|| {
        let start = Instant::now();
        for _ in 0..CALLS_PER_ROUND {
            black_box(Instant::now());
        }
        start.elapsed()
    });
    let clock = quanta::Clock::new();
    let origin = clock.raw();
    let tsc_read_ns = median_ns_per_call(|| {
        let start = Instant::now();
        for _ in 0..CALLS_PER_ROUND {
            black_box(clock.delta_as_nanos(origin, clock.raw()));
        }
        start.elapsed()
    });
    let mut recorder = Recorder::new();
    // Values spread over many buckets, like real latencies; a cheap LCG so the loop measures the
    // record, not the generator.
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let record_ns = median_ns_per_call(|| {
        let start = Instant::now();
        for _ in 0..CALLS_PER_ROUND {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            recorder.record(100 + (x >> 44));
        }
        start.elapsed()
    });
    let per_sample_ns = median_ns_per_call(|| {
        let start = Instant::now();
        for _ in 0..CALLS_PER_ROUND {
            let t = clock.raw();
            recorder.record(clock.delta_as_nanos(origin, t).max(1) & 0xF_FFFF);
        }
        start.elapsed()
    });
    black_box(&recorder);
    HarnessCost {
        instant_now_ns,
        tsc_read_ns,
        record_ns,
        per_sample_ns,
    }
}

/// The `baseline` scenario: `samples` due every `1/rate` s from one thread, each "sent" by doing
/// nothing and recorded from its intended time, so the histogram holds the harness's own delay
/// in reaching each due time. `spin` busy-waits for each due time (one thread: never more
/// spinning threads than cores); otherwise it sleeps while more than 50 µs remain, like the
/// engine load.
#[must_use]
pub fn run_nothing(rate_per_sec: u64, samples: u64, spin: bool) -> (Recorder, Duration) {
    let interval_ns = 1_000_000_000 / rate_per_sec.max(1);
    let mut recorder = Recorder::new();
    let epoch = Instant::now();
    for i in 0..samples {
        let due = i * interval_ns;
        loop {
            let now = epoch.elapsed().as_nanos() as u64;
            if now >= due {
                break;
            }
            if !spin && due - now > 50_000 {
                std::thread::sleep(Duration::from_nanos(due - now - 50_000));
            } else {
                std::hint::spin_loop();
            }
        }
        let done = epoch.elapsed().as_nanos() as u64;
        recorder.record_open_loop(due, done);
    }
    (recorder, epoch.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_costs_are_positive_and_the_sample_costs_at_least_a_record() {
        let cost = measure_harness_cost();
        for (name, ns) in [
            ("instant", cost.instant_now_ns),
            ("tsc", cost.tsc_read_ns),
            ("record", cost.record_ns),
            ("sample", cost.per_sample_ns),
        ] {
            assert!(ns.is_finite() && ns > 0.0, "{name}: {ns}");
        }
    }

    #[test]
    fn nothing_records_every_sample() {
        let (recorder, elapsed) = run_nothing(100_000, 2_000, false);
        assert_eq!(recorder.len(), 2_000);
        // 2000 samples at 100k/s are due over 20 ms: the run cannot end before the last is due.
        assert!(elapsed >= Duration::from_micros(19_990), "{elapsed:?}");
    }
}
