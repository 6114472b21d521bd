//! The suite: every selected (impl, scenario), repeated, interleaved so that a slow phase of the
//! machine does not land on one implementation only.

use super::{Impl, RingConfig, RunError, RunOutcome, Scenario, run_one};
use crate::report::{Row, rank_against_peers, summarize};

/// What `sequent-bench ring` runs.
#[derive(Debug, Clone)]
pub struct SuiteConfig {
    /// Event counts, capacity, cores, clock.
    pub ring: RingConfig,
    /// Implementations, in table order.
    pub impls: Vec<Impl>,
    /// Scenarios, in table order.
    pub scenarios: Vec<Scenario>,
    /// Runs per (impl, scenario); the median is reported.
    pub repeats: usize,
}

/// What the suite tells its caller as it goes (the binary prints these on stderr).
#[derive(Debug)]
pub enum Progress<'a> {
    /// A scenario starts: its thread count, and whether it is oversubscribed.
    Scenario {
        /// The scenario.
        scenario: Scenario,
        /// Producer plus consumer threads.
        threads: usize,
        /// `available_parallelism()`.
        cores: usize,
        /// Whether every thread gets its own pinned core.
        pinned: bool,
    },
    /// One run finished.
    Run {
        /// Its figures.
        outcome: &'a RunOutcome,
        /// Which repeat, from 1.
        repeat: usize,
    },
}

/// Runs the suite and returns one row per (impl, scenario), scenario-major, ranked against
/// the best peer. The first failed run (a broken correctness check) stops the suite.
pub fn run_suite(
    config: &SuiteConfig,
    mut progress: impl FnMut(Progress<'_>),
) -> Result<Vec<Row>, RunError> {
    config.ring.validate()?;
    if config.repeats == 0 {
        return Err(RunError::Config("repeats must be at least 1".to_owned()));
    }
    let mut rows = Vec::with_capacity(config.impls.len() * config.scenarios.len());
    for &scenario in &config.scenarios {
        let plan = config.ring.plan(scenario);
        progress(Progress::Scenario {
            scenario,
            threads: plan.threads,
            cores: config.ring.cores,
            pinned: plan.pin.is_some(),
        });
        let mut runs: Vec<Vec<RunOutcome>> =
            vec![Vec::with_capacity(config.repeats); config.impls.len()];
        for repeat in 1..=config.repeats {
            for (index, &imp) in config.impls.iter().enumerate() {
                let outcome = run_one(imp, scenario, &config.ring)?;
                progress(Progress::Run {
                    outcome: &outcome,
                    repeat,
                });
                runs[index].push(outcome);
            }
        }
        rows.extend(runs.iter().map(|r| summarize(r, config.ring.cores)));
    }
    rank_against_peers(&mut rows);
    Ok(rows)
}
