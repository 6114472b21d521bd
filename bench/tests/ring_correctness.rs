//! Every implementation on every scenario, with a tiny event count, through the library API:
//! each run must pass its exactly-once, in-order check and report sane figures. This is a
//! correctness test of the ring (and of each adapter), not a performance test.

use std::time::Duration;

use sequent_bench::machine::Machine;
use sequent_bench::ring::{Impl, RingConfig, RunError, Scenario, run_one};

fn config() -> RingConfig {
    let machine = Machine::detect();
    let mut config = RingConfig::new(machine.cores, machine.core_ids);
    config.events = 10_000;
    config.latency_events = 2_000;
    // 2000 events at 200k/s: 10 ms per latency run.
    config.latency_rate_per_sec = 200_000;
    // A small ring so that every run wraps it many times and producers meet a full ring.
    config.capacity = 256;
    config.sample_every = 64;
    config.run_timeout = Duration::from_secs(30);
    config
}

#[test]
fn every_impl_passes_every_scenario() {
    let config = config();
    let mut failures = Vec::new();
    for scenario in Scenario::ALL {
        for imp in Impl::ALL {
            match run_one(imp, scenario, &config) {
                Ok(outcome) => {
                    assert_eq!(outcome.imp, imp);
                    assert_eq!(outcome.scenario, scenario);
                    assert!(outcome.elapsed_ns > 0, "{imp} {scenario}: no elapsed time");
                    assert!(outcome.ops_per_sec() > 0.0);
                    let expected_samples = match scenario {
                        Scenario::Latency => config.latency_events,
                        Scenario::Throughput { .. } => {
                            // Every 64th event of each producer (seq 0, 64, ...).
                            let producers = scenario.topology().producers() as u64;
                            producers * outcome.events.div_ceil(producers).div_ceil(64)
                        }
                    };
                    assert_eq!(
                        outcome.latency_ns.len(),
                        expected_samples,
                        "{imp} {scenario}: latency samples"
                    );
                }
                Err(err) => failures.push(err.to_string()),
            }
        }
    }
    assert!(failures.is_empty(), "failed runs:\n{}", failures.join("\n"));
}

#[test]
fn a_bad_configuration_is_refused() {
    let mut config = config();
    config.capacity = 1000;
    let err = run_one(Impl::Rtrb, Scenario::ALL[0], &config).unwrap_err();
    assert!(matches!(err, RunError::Config(_)), "{err}");
}
