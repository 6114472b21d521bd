//! What `sequent-bench report` writes as JSON and `sequent-bench compare` reads back: the run's
//! configuration and machine, the harness's own cost, and per scenario the series it measured,
//! each with its percentile summary and spectrum.

use serde::{Deserialize, Serialize};

use crate::machine::Machine;
use crate::recorder::Summary;

/// Bumped when a field changes meaning; `compare` refuses other versions.
pub const SCHEMA_VERSION: u32 = 1;

/// One `report` run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub schema: u32,
    /// Seconds since the Unix epoch when the run started.
    pub started_unix_s: u64,
    pub machine: Machine,
    pub config: RunConfig,
    pub harness: HarnessCost,
    pub scenarios: Vec<ScenarioResult>,
    /// Everything the run warned about (oversubscription, wide spreads, a busy machine).
    pub warnings: Vec<String>,
    /// Wall time of the whole run, seconds.
    pub elapsed_s: f64,
}

/// How the run was asked for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunConfig {
    /// `smoke`, `quick` or `full`.
    pub mode: String,
    pub budget_secs: u64,
    /// Cores the run was allowed to use (`--cores`, else every core of the affinity mask).
    pub cores: usize,
    /// Core ids threads were pinned to, in plan order (`--pin`, else the mask in order).
    pub pin_plan: Vec<usize>,
    /// Runs per scenario step for the scenarios the harness repeats itself.
    pub repeats: usize,
    /// Seed of every generated load.
    pub seed: u64,
    /// The command line.
    pub command: String,
}

/// What measuring costs, measured in the same run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HarnessCost {
    /// `Instant::now()`, ns per call (median of rounds).
    pub instant_now_ns: f64,
    /// `quanta::Clock::raw()` plus `delta_as_nanos` per read, ns.
    pub tsc_read_ns: f64,
    /// One `Recorder::record` into a warm histogram, ns.
    pub record_ns: f64,
    /// A timestamp and a record: what each sample costs the measured thread.
    pub per_sample_ns: f64,
}

/// The state of one scenario entry in the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "why")]
pub enum Status {
    Measured,
    /// The scenario's code does not exist yet (another branch builds it).
    NotBuiltYet(String),
    /// Left out: not enough of `--budget-secs` left, or not in `--only`.
    Skipped(String),
    /// It ran and failed; the message says how.
    Failed(String),
}

/// One scenario of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub name: String,
    /// One line: what is measured, against what.
    pub what: String,
    pub status: Status,
    pub seconds: f64,
    /// Threads the scenario runs at once, and whether they were pinned.
    pub threads: usize,
    pub pinned: bool,
    /// Wait strategies in use (`busy-spin`, `yield`, `blocking read`, …).
    pub wait: String,
    pub series: Vec<Series>,
    /// Throughput knees of stepped-rate scenarios, one per target.
    pub knees: Vec<Knee>,
    /// Headline ratios measured in this run (the only figures worth comparing across machines).
    pub ratios: Vec<Ratio>,
    /// Free-form notes (what a figure means, what was left out).
    pub notes: Vec<String>,
}

impl ScenarioResult {
    #[must_use]
    pub fn new(name: &str, what: &str, status: Status) -> Self {
        Self {
            name: name.to_owned(),
            what: what.to_owned(),
            status,
            seconds: 0.0,
            threads: 0,
            pinned: false,
            wait: String::new(),
            series: Vec::new(),
            knees: Vec::new(),
            ratios: Vec::new(),
            notes: Vec::new(),
        }
    }
}

/// One measured line: a target (implementation, peer or baseline) at one step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Series {
    /// The target: `sequent-ring`, `rtrb`, `engine-match ack`, `echo`, `nothing`, ….
    pub label: String,
    /// What the latency times (`intended send → ack`, `per batch`, …).
    pub measures: String,
    /// Offered rate, per second (open-loop steps), if the series has one.
    pub offered_per_sec: Option<u64>,
    /// Achieved rate, per second.
    pub achieved_per_sec: Option<f64>,
    /// Runs taken; the summary is the median run's (by p99).
    pub runs: usize,
    /// (max − min) / median of the runs' p99 (or throughput when there is no latency), percent.
    pub spread_pct: f64,
    pub latency: Summary,
    /// The `.hgrm` file next to the JSON, when the full histogram was kept.
    pub hgrm: Option<String>,
}

impl Series {
    /// The key two runs are matched by in `compare`.
    #[must_use]
    pub fn key(&self, scenario: &str) -> String {
        match self.offered_per_sec {
            Some(rate) => format!("{scenario} / {} @ {rate}/s", self.label),
            None => format!("{scenario} / {}", self.label),
        }
    }
}

/// Where a target's latency broke as the offered rate rose.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Knee {
    pub target: String,
    /// The highest offered rate that still held (achieved ≥ 95 % of offered and p99 within
    /// [`KNEE_P99_FACTOR`] × the lowest rate's p99); `None` if even the lowest step broke.
    pub last_good_per_sec: Option<u64>,
    /// The first offered rate that broke, `None` if none did (the knee is above the steps).
    pub first_bad_per_sec: Option<u64>,
    /// Why the first bad step is bad.
    pub why: String,
}

/// A step's p99 beyond this multiple of the lowest step's p99 counts as broken.
pub const KNEE_P99_FACTOR: f64 = 10.0;
/// A step that achieves less than this share of its offered rate counts as broken.
pub const KNEE_ACHIEVED_MIN: f64 = 0.95;

/// A ratio measured within one run: `numerator / denominator` of `figure`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ratio {
    pub figure: String,
    pub value: f64,
}

/// Finds the knee of one target's steps, given as (offered/s, achieved/s, p99 ns) in rising
/// offered order.
#[must_use]
pub fn find_knee(target: &str, steps: &[(u64, f64, u64)]) -> Knee {
    let base_p99 = steps.first().map_or(0, |s| s.2).max(1);
    let mut last_good = None;
    for &(offered, achieved, p99) in steps {
        let why = if achieved < KNEE_ACHIEVED_MIN * offered as f64 {
            Some(format!(
                "achieved {:.0}/s of {offered}/s offered (< {:.0} %)",
                achieved,
                KNEE_ACHIEVED_MIN * 100.0
            ))
        } else if p99 as f64 > KNEE_P99_FACTOR * base_p99 as f64 {
            Some(format!(
                "p99 {p99} ns > {KNEE_P99_FACTOR}× the lowest step's {base_p99} ns"
            ))
        } else {
            None
        };
        match why {
            Some(why) => {
                return Knee {
                    target: target.to_owned(),
                    last_good_per_sec: last_good,
                    first_bad_per_sec: Some(offered),
                    why,
                };
            }
            None => last_good = Some(offered),
        }
    }
    Knee {
        target: target.to_owned(),
        last_good_per_sec: last_good,
        first_bad_per_sec: None,
        why: "no step broke: the knee is above the highest rate".to_owned(),
    }
}

/// (max − min) / median of `values`, percent; 0 for fewer than two or a zero median.
#[must_use]
pub fn spread_pct(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[(sorted.len() - 1) / 2];
    if median <= 0.0 {
        return 0.0;
    }
    (sorted[sorted.len() - 1] - sorted[0]) / median * 100.0
}

/// Above this spread (percent) the run warns that the repeats disagree.
pub const SPREAD_WARN_PCT: f64 = 25.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_knee_is_the_first_step_that_breaks() {
        let steps = [
            (1_000, 1_000.0, 50_000),
            (2_000, 2_000.0, 60_000),
            (4_000, 3_990.0, 400_000),
            (8_000, 8_000.0, 900_000), // p99 18× the first
            (16_000, 9_000.0, 5_000_000),
        ];
        let knee = find_knee("engine", &steps);
        assert_eq!(knee.last_good_per_sec, Some(4_000));
        assert_eq!(knee.first_bad_per_sec, Some(8_000));
        assert!(knee.why.contains("p99"), "{}", knee.why);
        let starved = find_knee("engine", &[(1_000, 1_000.0, 1), (2_000, 1_500.0, 1)]);
        assert_eq!(starved.first_bad_per_sec, Some(2_000));
        assert!(starved.why.contains("achieved"), "{}", starved.why);
        let fine = find_knee("engine", &[(1_000, 1_000.0, 10)]);
        assert_eq!(
            (fine.last_good_per_sec, fine.first_bad_per_sec),
            (Some(1_000), None)
        );
    }

    #[test]
    fn spread_is_range_over_median() {
        assert_eq!(spread_pct(&[10.0]), 0.0);
        assert!((spread_pct(&[10.0, 20.0, 40.0]) - 150.0).abs() < 1e-9);
    }
}
