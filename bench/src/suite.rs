//! `sequent-bench report`: every scenario that exists, in one bounded run, into one directory of
//! results (`report.json`, one `.hgrm` per full histogram, SVG and PNG charts) and one generated
//! Markdown page, plus the generated blocks of docs/BENCHMARKS.md.
//!
//! [`SCENARIOS`] is the list. A scenario whose code lives on another branch is an entry with
//! [`Kind::NotBuiltYet`]: the report names it and says so, it is never silently left out. To add
//! one, write a `fn(&Ctx) -> anyhow::Result<ScenarioResult>` and point its entry at it.
//!
//! Honesty rules the runner enforces: every scenario measures a baseline or a peer in the same
//! run and reports the ratio; repeats give a spread, and a wide one is a warning; more threads
//! than cores is a warning; a scenario that does not fit the remaining `--budget-secs` is
//! reported as skipped, with its estimate.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;

use crate::machine::Machine;
use crate::plot::{self, Line};
use crate::recorder::{Summary, summarize};
use crate::report::{format_ns, format_rate};
use crate::results::{
    HarnessCost, Ratio, RunConfig, RunReport, SCHEMA_VERSION, SPREAD_WARN_PCT, ScenarioResult,
    Series, Status, find_knee, spread_pct,
};

/// How big each scenario runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Tiny sizes: proves the pipeline end to end (tests, CI); the figures mean little.
    Smoke,
    /// A few minutes on 2 cores.
    Quick,
    /// The sizes docs/BENCHMARKS.md's hand-run sections use.
    Full,
}

impl Mode {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Smoke => "smoke",
            Self::Quick => "quick",
            Self::Full => "full",
        }
    }

    /// Picks the size for this mode.
    fn pick<T>(self, smoke: T, quick: T, full: T) -> T {
        match self {
            Self::Smoke => smoke,
            Self::Quick => quick,
            Self::Full => full,
        }
    }
}

/// What `report` was asked to do.
#[derive(Debug, Clone)]
pub struct ReportConfig {
    pub mode: Mode,
    /// The whole run stops starting scenarios once their estimate exceeds what is left.
    pub budget: Duration,
    /// Only these scenarios (empty: all).
    pub only: Vec<String>,
    /// Where `report.json`, the `.hgrm` files and the charts go.
    pub out_dir: PathBuf,
    /// The generated Markdown page (`BENCHMARKS-report.md`); `None` writes none.
    pub report_md: Option<PathBuf>,
    /// A page with `<!-- sequent-bench report: NAME begin/end -->` blocks to refresh.
    pub doc: Option<PathBuf>,
    /// Cores to use and the order to pin threads in.
    pub cores: usize,
    pub pin_plan: Vec<usize>,
    /// Runs per step of the scenarios the harness repeats itself (`None`: the mode's).
    pub repeats: Option<usize>,
    pub seed: u64,
    /// Scratch space for journals.
    pub scratch: PathBuf,
    /// The command line, recorded with the results.
    pub command: String,
    /// The binary's counting allocator: (allocations, live bytes), and live bytes alone.
    pub allocations: fn() -> (u64, i64),
    pub live_bytes: fn() -> i64,
    /// The ITCH sample the feed scenario decodes.
    pub itch: PathBuf,
}

impl ReportConfig {
    fn repeats(&self) -> usize {
        self.repeats
            .unwrap_or_else(|| self.mode.pick(2, 3, 5))
            .max(1)
    }
}

/// What a scenario gets.
pub struct Ctx<'a> {
    pub config: &'a ReportConfig,
    pub machine: &'a Machine,
    /// Progress lines (stderr in the binary).
    pub log: &'a dyn Fn(&str),
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A scenario's code, or the fact that it does not exist yet.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Built(fn(&Ctx<'_>) -> anyhow::Result<ScenarioResult>),
    /// Who is building it, or what it waits for.
    NotBuiltYet(&'static str),
}

/// One entry of [`SCENARIOS`].
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub name: &'static str,
    pub what: &'static str,
    /// Seconds it takes on 2 cores in (smoke, quick, full), measured; the budget check uses it.
    pub estimate_secs: [u64; 3],
    pub kind: Kind,
}

impl Entry {
    fn estimate(&self, mode: Mode) -> u64 {
        mode.pick(
            self.estimate_secs[0],
            self.estimate_secs[1],
            self.estimate_secs[2],
        )
    }
}

/// Every scenario `report` knows, in run order.
pub const SCENARIOS: &[Entry] = &[
    Entry {
        name: "baseline",
        what: "the harness alone: an open-loop schedule that does nothing, timed from each intended time",
        estimate_secs: [1, 8, 40],
        kind: Kind::Built(baseline),
    },
    Entry {
        name: "ring",
        what: "sequent-ring beside disruptor and rtrb: 1p1c open-loop latency and 1p1c throughput",
        estimate_secs: [2, 15, 90],
        kind: Kind::Built(ring),
    },
    Entry {
        name: "journal",
        what: "sequent-journal beside write(2)/fdatasync/BufReader/rtrb baselines (sequent-bench journal)",
        estimate_secs: [3, 30, 180],
        kind: Kind::Built(journal),
    },
    Entry {
        name: "matching",
        what: "sequent-matching beside lobster on one seeded stream: throughput and open-loop latency",
        estimate_secs: [2, 15, 120],
        kind: Kind::Built(matching),
    },
    Entry {
        name: "engine",
        what: "sequent-engine over loopback TCP at stepped rates: intended send → ack and → market-data tick, beside an echo floor",
        estimate_secs: [10, 60, 400],
        kind: Kind::Built(engine),
    },
    Entry {
        name: "feed",
        what: "ITCH decoding beside itchy; publish → subscriber one-way latency on loopback",
        estimate_secs: [3, 8, 60],
        kind: Kind::Built(feed),
    },
    Entry {
        name: "ledger",
        what: "sequent-ledger transfers in memory and with group commit (PostgreSQL peer: `sequent-bench ledger`)",
        estimate_secs: [1, 5, 60],
        kind: Kind::Built(ledger),
    },
    Entry {
        name: "payments",
        what: "the payments gateway over HTTP with two simulated acquirers (closed loop, sustained, open-loop latency) beside Payments::handle in memory; vault tokenisation",
        estimate_secs: [8, 12, 40],
        kind: Kind::Built(payments),
    },
    Entry {
        name: "failover",
        what: "hot standby: kill -9 of the primary to the first order acknowledged by the new primary, and the order-to-ack cost of the standby's acknowledgement beside the journal-only baseline",
        estimate_secs: [6, 12, 60],
        kind: Kind::Built(failover),
    },
];

/// The engine scenario pins the engine's three stages (and busy-spins them) only with at least
/// this many cores in the pin plan: three for the engine, the rest for the load.
pub const ENGINE_PIN_CORES_MIN: usize = 8;

/// Runs the scenarios, writes every file, returns the report. `log` sees progress and warnings.
pub fn run(
    config: &ReportConfig,
    machine: &Machine,
    harness: HarnessCost,
    log: &dyn Fn(&str),
) -> anyhow::Result<RunReport> {
    let started = Instant::now();
    let started_unix_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    std::fs::create_dir_all(&config.out_dir)
        .with_context(|| format!("creating {}", config.out_dir.display()))?;
    let mut warnings = Vec::new();
    let warn = |text: String, warnings: &mut Vec<String>| {
        log(&format!("WARNING: {text}"));
        warnings.push(text);
    };
    if machine.is_busy() {
        warn(
            format!(
                "the cores were {} busy before the run: figures will be noisy",
                machine.busy_text()
            ),
            &mut warnings,
        );
    }
    if config.cores < 4 {
        warn(
            format!(
                "{} cores: the engine and multi-stage ring scenarios run more threads than cores; \
                 only ratios measured in this run mean anything, and no figure here predicts a \
                 many-core machine",
                config.cores
            ),
            &mut warnings,
        );
    }
    let ctx = Ctx {
        config,
        machine,
        log,
    };
    let mut scenarios = Vec::new();
    for entry in SCENARIOS {
        let left = config.budget.saturating_sub(started.elapsed()).as_secs();
        let mut result = if !config.only.is_empty() && !config.only.iter().any(|n| n == entry.name)
        {
            ScenarioResult::new(
                entry.name,
                entry.what,
                Status::Skipped("not in --only".into()),
            )
        } else {
            match entry.kind {
                Kind::NotBuiltYet(why) => {
                    log(&format!("{}: not built yet ({why})", entry.name));
                    ScenarioResult::new(entry.name, entry.what, Status::NotBuiltYet(why.into()))
                }
                Kind::Built(_) if entry.estimate(config.mode) > left => {
                    let why = format!(
                        "budget: needs about {} s, {left} s of --budget-secs left",
                        entry.estimate(config.mode)
                    );
                    warn(format!("{}: skipped, {why}", entry.name), &mut warnings);
                    ScenarioResult::new(entry.name, entry.what, Status::Skipped(why))
                }
                Kind::Built(run) => {
                    log(&format!("{}: {}", entry.name, entry.what));
                    let at = Instant::now();
                    let mut result = run(&ctx).unwrap_or_else(|e| {
                        ScenarioResult::new(
                            entry.name,
                            entry.what,
                            Status::Failed(format!("{e:#}")),
                        )
                    });
                    result.seconds = at.elapsed().as_secs_f64();
                    log(&format!(
                        "{}: {} in {:.1} s",
                        entry.name,
                        status_text(&result.status),
                        result.seconds
                    ));
                    result
                }
            }
        };
        result.name = entry.name.to_owned();
        result.what = entry.what.to_owned();
        if let Status::Failed(why) = &result.status {
            warn(format!("{} failed: {why}", entry.name), &mut warnings);
        }
        if result.threads > config.cores {
            warn(
                format!(
                    "{} runs {} threads on {} cores: oversubscribed, its latency includes the scheduler",
                    entry.name, result.threads, config.cores
                ),
                &mut warnings,
            );
        }
        for series in &result.series {
            if series.runs > 1 && series.spread_pct > SPREAD_WARN_PCT {
                warn(
                    format!(
                        "{}: the {} runs spread {:.0} % (> {SPREAD_WARN_PCT:.0} %): \
                         treat its figures as rough",
                        series.key(entry.name),
                        series.runs,
                        series.spread_pct
                    ),
                    &mut warnings,
                );
            }
        }
        scenarios.push(result);
    }
    let report = RunReport {
        schema: SCHEMA_VERSION,
        started_unix_s,
        machine: machine.clone(),
        config: RunConfig {
            mode: config.mode.name().to_owned(),
            budget_secs: config.budget.as_secs(),
            cores: config.cores,
            pin_plan: config.pin_plan.clone(),
            repeats: config.repeats(),
            seed: config.seed,
            command: config.command.clone(),
        },
        harness,
        scenarios,
        warnings,
        elapsed_s: started.elapsed().as_secs_f64(),
    };
    write_outputs(config, &report)?;
    Ok(report)
}

fn status_text(status: &Status) -> String {
    match status {
        Status::Measured => "measured".to_owned(),
        Status::NotBuiltYet(why) => format!("not built yet ({why})"),
        Status::Skipped(why) => format!("skipped ({why})"),
        Status::Failed(why) => format!("FAILED: {why}"),
    }
}

/// The median run of `runs` by p99, the spread of their p99s, and the median's histogram.
fn median_by_p99(runs: &[Histogram<u64>]) -> (usize, f64) {
    assert!(!runs.is_empty(), "at least one run");
    let p99 = |h: &Histogram<u64>| {
        if h.is_empty() {
            0.0
        } else {
            h.value_at_quantile(0.99) as f64
        }
    };
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.sort_by(|&a, &b| p99(&runs[a]).total_cmp(&p99(&runs[b])));
    let values: Vec<f64> = runs.iter().map(p99).collect();
    (order[(order.len() - 1) / 2], spread_pct(&values))
}

/// A series from repeated runs with full histograms: the median run (by p99) and the spread.
fn series_from_runs(
    label: &str,
    measures: &str,
    offered: Option<u64>,
    achieved: &[f64],
    runs: &[Histogram<u64>],
) -> (Series, Histogram<u64>) {
    let (median, spread) = median_by_p99(runs);
    let hist = runs[median].clone();
    (
        Series {
            label: label.to_owned(),
            measures: measures.to_owned(),
            offered_per_sec: offered,
            achieved_per_sec: achieved.get(median).copied(),
            runs: runs.len(),
            spread_pct: spread,
            latency: summarize(&hist),
            hgrm: None,
        },
        hist,
    )
}

/// A series from figures another module reported (no full histogram).
fn series_from_figures(
    label: String,
    measures: &str,
    achieved: Option<f64>,
    count: u64,
    latency: Option<[u64; 4]>,
) -> Series {
    Series {
        label,
        measures: measures.to_owned(),
        offered_per_sec: None,
        achieved_per_sec: achieved,
        runs: 1,
        spread_pct: 0.0,
        latency: match latency {
            Some([p50, p99, p999, max]) => {
                Summary::from_points(count, &[(50.0, p50), (99.0, p99), (99.9, p999)], max)
            }
            None => Summary::from_points(0, &[], 0),
        },
        hgrm: None,
    }
}

/// Files of one scenario, relative names, filled in by the writer.
fn file_slug(text: &str) -> String {
    let mut slug: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while slug.contains("--") {
        slug = slug.replace("--", "-");
    }
    slug.trim_matches('-').to_owned()
}

/// Keeps a full histogram: writes `NAME.hgrm` into the out dir and records the file name.
fn keep_hgrm(ctx: &Ctx<'_>, scenario: &str, series: &mut Series, hist: &Histogram<u64>) {
    let rate = series
        .offered_per_sec
        .map_or_else(String::new, |r| format!("-{r}"));
    let name = format!(
        "{}-{}{rate}.hgrm",
        file_slug(scenario),
        file_slug(&series.label)
    );
    let path = ctx.config.out_dir.join(&name);
    match std::fs::write(&path, crate::recorder::write_hgrm(hist)) {
        Ok(()) => series.hgrm = Some(name),
        Err(e) => (ctx.log)(&format!("could not write {}: {e}", path.display())),
    }
}

fn baseline(ctx: &Ctx<'_>) -> anyhow::Result<ScenarioResult> {
    let mode = ctx.config.mode;
    let (rate, samples) = mode.pick((20_000, 4_000), (100_000, 100_000), (100_000, 1_000_000));
    let core = ctx.config.pin_plan.first().copied();
    let mut result = ScenarioResult::new("baseline", "", Status::Measured);
    result.threads = 1;
    result.pinned = core.is_some();
    result.wait = "sleep until 50 µs before due, then spin; or spin only".to_owned();
    for (label, spin) in [("nothing, sleep+spin", false), ("nothing, spin", true)] {
        let mut runs = Vec::new();
        let mut achieved = Vec::new();
        for _ in 0..ctx.config.repeats() {
            let (recorder, elapsed) = std::thread::scope(|s| {
                s.spawn(|| {
                    if let Some(id) = core {
                        core_affinity::set_for_current(core_affinity::CoreId { id });
                    }
                    crate::overhead::run_nothing(rate, samples, spin)
                })
                .join()
                .expect("the baseline thread does not panic")
            });
            achieved.push(samples as f64 / elapsed.as_secs_f64().max(1e-9));
            runs.push(recorder.histogram().clone());
        }
        let (mut series, hist) = series_from_runs(
            label,
            "intended time → the harness reaching it",
            Some(rate),
            &achieved,
            &runs,
        );
        keep_hgrm(ctx, "baseline", &mut series, &hist);
        (ctx.log)(&format!(
            "  {label}: p50 {} p99 {} max {} (spread {:.0} %)",
            format_ns(series.latency.at(50.0).unwrap_or(0)),
            format_ns(series.latency.at(99.0).unwrap_or(0)),
            format_ns(series.latency.max_ns),
            series.spread_pct
        ));
        result.series.push(series);
    }
    result.notes.push(
        "Every open-loop figure in this run includes this floor: subtract nothing, compare against it."
            .to_owned(),
    );
    Ok(result)
}

fn ring(ctx: &Ctx<'_>) -> anyhow::Result<ScenarioResult> {
    use crate::ring::{Impl, RingConfig, Scenario, Topology, run_one};
    let mode = ctx.config.mode;
    let mut ring = RingConfig::new(ctx.config.cores, ctx.config.pin_plan.clone());
    ring.events = mode.pick(200_000, 3_000_000, 20_000_000);
    ring.latency_events = mode.pick(20_000, 400_000, 2_000_000);
    ring.latency_rate_per_sec = 1_000_000;
    let mut result = ScenarioResult::new("ring", "", Status::Measured);
    let impls = [Impl::SequentRing, Impl::Disruptor, Impl::Rtrb];
    let throughput = Scenario::Throughput {
        topology: Topology::OneToOne,
        batch: false,
    };
    let mut p99_of = Vec::new();
    let mut ops_of = Vec::new();
    for imp in impls {
        let mut lat_runs = Vec::new();
        let mut ops = Vec::new();
        for _ in 0..ctx.config.repeats() {
            let outcome = run_one(imp, Scenario::Latency, &ring)?;
            result.threads = outcome.threads;
            result.pinned = outcome.pinned;
            result.wait = outcome.wait.to_owned();
            lat_runs.push(outcome.latency_ns);
            ops.push(run_one(imp, throughput, &ring)?.ops_per_sec());
        }
        let (mut series, hist) = series_from_runs(
            imp.name(),
            "1p1c open loop at 1M/s: intended send → consumed",
            Some(ring.latency_rate_per_sec),
            &[],
            &lat_runs,
        );
        keep_hgrm(ctx, "ring", &mut series, &hist);
        ops.sort_by(f64::total_cmp);
        let median_ops = ops[(ops.len() - 1) / 2];
        (ctx.log)(&format!(
            "  {:<13} latency p99 {} (spread {:.0} %); 1p1c {} events/s (spread {:.0} %)",
            imp.name(),
            format_ns(series.latency.at(99.0).unwrap_or(0)),
            series.spread_pct,
            format_rate(median_ops as u64),
            spread_pct(&ops)
        ));
        p99_of.push((imp.name(), series.latency.at(99.0).unwrap_or(0)));
        ops_of.push((imp.name(), median_ops, spread_pct(&ops)));
        result.series.push(series);
    }
    // Throughput has no latency of its own worth a spectrum: it goes in as achieved rates.
    for (name, ops, spread) in &ops_of {
        let mut series = series_from_figures(
            format!("{name} 1p1c throughput"),
            "closed loop, events/s",
            Some(*ops),
            ring.events,
            None,
        );
        series.runs = ctx.config.repeats();
        series.spread_pct = *spread;
        result.series.push(series);
    }
    let best_peer_p99 = p99_of[1..].iter().map(|p| p.1).min().unwrap_or(0);
    let best_peer_ops = ops_of[1..].iter().map(|p| p.1).fold(0.0, f64::max);
    result.ratios.push(Ratio {
        figure: "best peer p99 / sequent-ring p99 (1p1c latency; >1: sequent-ring better)".into(),
        value: best_peer_p99 as f64 / p99_of[0].1.max(1) as f64,
    });
    result.ratios.push(Ratio {
        figure: "sequent-ring / best peer events/s (1p1c; >1: sequent-ring better)".into(),
        value: ops_of[0].1 / best_peer_ops.max(1.0),
    });
    Ok(result)
}

fn journal(ctx: &Ctx<'_>) -> anyhow::Result<ScenarioResult> {
    use crate::journal::{JournalConfig, Progress, run};
    let mode = ctx.config.mode;
    let mut config = JournalConfig::quick(
        ctx.config.scratch.clone(),
        ctx.config.cores,
        ctx.config.pin_plan.clone(),
    );
    match mode {
        Mode::Smoke => {
            config.records = 20_000;
            config.append_bytes_max = 4 << 20;
            config.durable_records = 2_000;
            config.tail_records = 5_000;
            config.rss_bytes = 0;
            config.segment_len = 4 << 20;
        }
        Mode::Quick => config.rss_bytes = 0,
        Mode::Full => {
            config = JournalConfig::new(
                ctx.config.scratch.clone(),
                ctx.config.cores,
                ctx.config.pin_plan.clone(),
            );
        }
    }
    let mut result = ScenarioResult::new("journal", "", Status::Measured);
    let rows = run(&config, |progress| match progress {
        Progress::Section {
            threads, pinned, ..
        } => {
            result.threads = result.threads.max(threads + 1);
            result.pinned |= pinned;
        }
        Progress::Row(row) => (ctx.log)(&format!(
            "  {:<8} {:<16} {:<16} {} records/s",
            row.section,
            row.imp,
            row.case,
            format_rate(row.records_per_sec)
        )),
        Progress::Skipped { section, reason } => {
            result
                .notes
                .push(format!("{} skipped: {reason}", section.name()));
        }
    })?;
    result.wait = "busy-spin readers where pinned; the housekeeper sleeps".to_owned();
    for row in &rows {
        let label = format!("{} {} {}", row.section, row.imp, row.case);
        let latency = match (row.p50_ns, row.p99_ns, row.p999_ns, row.max_ns) {
            (Some(p50), Some(p99), Some(p999), Some(max)) => Some([p50, p99, p999, max]),
            _ => None,
        };
        let series = series_from_figures(
            label.clone(),
            row.latency.as_deref().unwrap_or("records/s"),
            Some(row.records_per_sec as f64),
            row.records,
            latency,
        );
        result.series.push(series);
        if let Some(ratio) = row.vs_baseline {
            result.ratios.push(Ratio {
                figure: format!("{label} vs its baseline (>1: the journal better)"),
                value: ratio,
            });
        }
    }
    Ok(result)
}

fn matching(ctx: &Ctx<'_>) -> anyhow::Result<ScenarioResult> {
    use crate::matching::{Impl, MatchingConfig, generate, run_suite};
    let mode = ctx.config.mode;
    let ops = mode.pick(50_000, 1_000_000, 5_000_000);
    let config = MatchingConfig {
        impls: Impl::ALL.to_vec(),
        rates: mode.pick(
            vec![125_000, 1_000_000],
            vec![125_000, 1_000_000, 3_000_000, 5_000_000],
            vec![125_000, 1_000_000, 3_000_000, 5_000_000],
        ),
        seconds_per_rate: mode.pick(0.05, 0.5, 2.0),
        resting_target: 4_000,
        accounts: 100,
        repeats: ctx.config.repeats(),
        allocations: ctx.config.allocations,
    };
    let stream = generate(ctx.config.seed, ops, config.resting_target, config.accounts);
    let (rows, _memory) = run_suite(&stream, &config, ctx.config.cores, |row| {
        (ctx.log)(&format!(
            "  {:<17} {:<18} {} ops/s, p99 {}",
            row.imp,
            row.scenario,
            format_rate(row.ops_per_sec),
            format_ns(row.p99_ns)
        ));
    })
    .map_err(anyhow::Error::msg)?;
    let mut result = ScenarioResult::new("matching", "", Status::Measured);
    result.notes.push(format!(
        "open-loop rows: the median of {} runs by p99 (the matching module keeps no spread; runs shows 1)",
        config.repeats
    ));
    result.threads = 1;
    result.wait = "none (single thread, open-loop schedule in virtual send times)".to_owned();
    for row in &rows {
        let label = if row.rate > 0 {
            format!("{} open-loop", row.imp)
        } else {
            format!("{} {}", row.imp, row.scenario)
        };
        let mut series = series_from_figures(
            label,
            if row.rate > 0 {
                "intended send → applied (median run by p99)"
            } else {
                "per operation, closed loop"
            },
            Some(row.ops_per_sec as f64),
            row.ops,
            Some([row.p50_ns, row.p99_ns, row.p999_ns, row.max_ns]),
        );
        series.offered_per_sec = (row.rate > 0).then_some(row.rate);
        result.series.push(series);
        if let Some(ratio) = row.vs_peer
            && row.imp == Impl::Sequent.name()
        {
            result.ratios.push(Ratio {
                figure: format!(
                    "sequent-matching vs lobster, {} (>1: sequent better)",
                    row.scenario
                ),
                value: ratio,
            });
        }
    }
    Ok(result)
}

fn engine(ctx: &Ctx<'_>) -> anyhow::Result<ScenarioResult> {
    use crate::engine::{SteppedConfig, run_stepped};
    let mode = ctx.config.mode;
    let config = SteppedConfig {
        sessions: mode.pick(2, 4, 8),
        rates: mode.pick(
            vec![2_000, 8_000],
            vec![25_000, 125_000, 500_000],
            vec![125_000, 1_000_000, 3_000_000, 5_000_000],
        ),
        seconds: mode.pick(0.3, 1.0, 5.0),
        repeats: ctx.config.repeats(),
        seed: ctx.config.seed,
        dir: ctx.config.scratch.clone(),
        // Pin the engine only where its three stages can have a core each and the load still
        // has cores left: the last three of the plan.
        engine_cores: match ctx.config.pin_plan.as_slice() {
            plan if plan.len() >= ENGINE_PIN_CORES_MIN => {
                let n = plan.len();
                Some([plan[n - 3], plan[n - 2], plan[n - 1]])
            }
            _ => None,
        },
    };
    let steps = run_stepped(&config, |step| {
        if let Some(error) = &step.error {
            (ctx.log)(&format!(
                "  {:<15} offered {:>6}/s  stopped: {error}",
                step.target,
                format_rate(step.offered)
            ));
            return;
        }
        let p99: Vec<String> = step
            .runs
            .iter()
            .map(|r| {
                format_ns(if r.ack.is_empty() {
                    0
                } else {
                    r.ack.value_at_quantile(0.99)
                })
            })
            .collect();
        (ctx.log)(&format!(
            "  {:<15} offered {:>6}/s  ack p99 per run: {}",
            step.target,
            format_rate(step.offered),
            p99.join(", ")
        ));
    })?;
    let mut result = ScenarioResult::new("engine", "", Status::Measured);
    // Load: a sender and a receiver per session, a subscriber; the engine: gateway, journal, core,
    // housekeeper, feed publisher.
    result.threads = 2 * config.sessions as usize + 1 + 5;
    result.pinned = config.engine_cores.is_some();
    result.wait = match config.engine_cores {
        Some(cores) => format!(
            "load: blocking reads and sleeps, unpinned; engine: gateway, journal, core pinned to {cores:?}, journal and core busy-spin"
        ),
        None => "load: blocking reads and sleeps; engine: unpinned, journal and core park on a futex (its defaults)".to_owned(),
    };
    // Per target: (offered/s, achieved/s, p99 ns) per step, for the knee.
    type Steps<'a> = Vec<(&'a str, Vec<(u64, f64, u64)>)>;
    let mut knee_steps: Steps<'_> = Vec::new();
    let mut send_lag_max_ns = 0;
    for step in &steps {
        if let Some(error) = &step.error {
            result.notes.push(format!(
                "{} at {}/s: {error} ({} of {} runs done)",
                step.target,
                format_rate(step.offered),
                step.runs.len(),
                config.repeats
            ));
            let bad = (step.offered, 0.0, u64::MAX);
            match knee_steps.iter_mut().find(|(t, _)| *t == step.target) {
                Some((_, v)) => v.push(bad),
                None => knee_steps.push((step.target, vec![bad])),
            }
            continue;
        }
        let achieved: Vec<f64> = step.runs.iter().map(|r| r.achieved_per_sec).collect();
        let acks: Vec<Histogram<u64>> = step.runs.iter().map(|r| r.ack.clone()).collect();
        let (mut series, hist) = series_from_runs(
            &format!("{} ack", step.target),
            "intended send → acknowledgement",
            Some(step.offered),
            &achieved,
            &acks,
        );
        keep_hgrm(ctx, "engine", &mut series, &hist);
        let p99 = series.latency.at(99.0).unwrap_or(0);
        let achieved_median = series.achieved_per_sec.unwrap_or(0.0);
        match knee_steps.iter_mut().find(|(t, _)| *t == step.target) {
            Some((_, v)) => v.push((step.offered, achieved_median, p99)),
            None => knee_steps.push((step.target, vec![(step.offered, achieved_median, p99)])),
        }
        result.series.push(series);
        for run in &step.runs {
            send_lag_max_ns = send_lag_max_ns.max(run.send_lag_max_ns);
        }
        let mds: Vec<Histogram<u64>> = step.runs.iter().filter_map(|r| r.md.clone()).collect();
        if !mds.is_empty() && mds.iter().all(|h| !h.is_empty()) {
            let (mut series, hist) = series_from_runs(
                &format!("{} md tick", step.target),
                "intended send → AddOrder seen by a feed subscriber",
                Some(step.offered),
                &achieved,
                &mds,
            );
            keep_hgrm(ctx, "engine", &mut series, &hist);
            result.series.push(series);
            let ticks: u64 = step.runs.iter().map(|r| r.md_ticks).sum();
            let sent: u64 = step.runs.iter().map(|r| r.sent).sum();
            result.notes.push(format!(
                "{} at {}/s: {ticks} AddOrder ticks for {sent} orders (the rest traded in full on arrival)",
                step.target,
                format_rate(step.offered)
            ));
        } else if !mds.is_empty() {
            result.notes.push(format!(
                "{} at {}/s: the subscriber saw no AddOrder tick (no feed on loopback?)",
                step.target,
                format_rate(step.offered)
            ));
        }
    }
    for (target, target_steps) in &knee_steps {
        let mut knee = find_knee(target, target_steps);
        let failed = steps.iter().find(|s| {
            s.target == *target && Some(s.offered) == knee.first_bad_per_sec && s.error.is_some()
        });
        if let Some(error) = failed.and_then(|s| s.error.as_ref()) {
            knee.why = format!("the step failed: {error}");
        }
        result.knees.push(knee);
    }
    for target in ["engine-match", "engine-durable"] {
        let at = |t: &str| {
            result
                .series
                .iter()
                .find(|s| s.label == format!("{t} ack"))
                .and_then(|s| s.latency.at(99.0))
        };
        if let (Some(echo), Some(engine)) = (at("echo"), at(target)) {
            result.ratios.push(Ratio {
                figure: format!(
                    "echo p99 / {target} ack p99 at the lowest rate (1: as fast as the floor)"
                ),
                value: echo as f64 / engine.max(1) as f64,
            });
        }
    }
    result.notes.push(format!(
        "the load generator fell at most {} behind its own schedule (charged to the orders, not hidden)",
        format_ns(send_lag_max_ns)
    ));
    Ok(result)
}

fn feed(ctx: &Ctx<'_>) -> anyhow::Result<ScenarioResult> {
    use crate::feed::{FeedConfig, decode, latency};
    let mode = ctx.config.mode;
    let itch = std::fs::read(&ctx.config.itch)
        .with_context(|| format!("reading {}", ctx.config.itch.display()))?;
    let config = FeedConfig {
        itch,
        repeat: mode.pick(1, 40, 200),
        rounds: mode.pick(1, 3, 5),
        transport_messages: mode.pick(10_000, 200_000, 1_000_000),
        latency_rate: 20_000,
        latency_messages: mode.pick(2_000, 40_000, 200_000),
    };
    let mut result = ScenarioResult::new("feed", "", Status::Measured);
    result.threads = 2;
    result.wait = "blocking receive (poll)".to_owned();
    let rows: Vec<_> = decode(&config)?
        .into_iter()
        .chain(latency(&config)?)
        .collect();
    for row in &rows {
        let achieved = row.messages_per_s;
        let latency = match (row.p50_ns, row.p99_ns, row.p999_ns, row.max_ns) {
            (Some(p50), Some(p99), Some(p999), Some(max)) => Some([p50, p99, p999, max]),
            _ => None,
        };
        let series = series_from_figures(
            format!("{} {}", row.section, row.name),
            if latency.is_some() {
                "publish → subscriber, one way"
            } else {
                "messages/s"
            },
            achieved,
            row.messages,
            latency,
        );
        (ctx.log)(&format!(
            "  {:<40} {} /s",
            series.label,
            format_rate(series.achieved_per_sec.unwrap_or(0.0) as u64)
        ));
        result.series.push(series);
    }
    let per = |needle: &str| {
        rows.iter()
            .find(|r| r.section == "decode" && r.name.contains(needle))
            .and_then(|r| r.ns_per_message)
    };
    if let (Some(ours), Some(theirs)) = (per("sequent"), per("itchy")) {
        result.ratios.push(Ratio {
            figure: "itchy ns/message / sequent-feed ns/message (ITCH decode; >1: sequent faster)"
                .into(),
            value: theirs / ours.max(1e-9),
        });
    }
    Ok(result)
}

fn ledger(ctx: &Ctx<'_>) -> anyhow::Result<ScenarioResult> {
    use crate::ledger::{LedgerConfig, run};
    let mode = ctx.config.mode;
    let config = LedgerConfig {
        accounts: mode.pick(1_000, 100_000, 100_000),
        transfers: mode.pick(20_000, 500_000, 2_000_000),
        batch: 8_190,
        journal_dir: ctx.config.scratch.join("sequent-bench-report-ledger"),
        pg_transfers: 0,
        pg_script: PathBuf::from("tools/pg-bench-setup.sh"),
        seed: ctx.config.seed,
        prefault: true,
    };
    let report = run(&config, ctx.config.live_bytes)?;
    let mut result = ScenarioResult::new("ledger", "", Status::Measured);
    result.threads = 2;
    result.wait = "the journal's group commit (blocking fdatasync)".to_owned();
    for m in &report.modes {
        result.series.push(series_from_figures(
            m.name.to_owned(),
            "per batch",
            Some(m.per_sec),
            m.transfers,
            m.batch_ns,
        ));
    }
    if let (Some(memory), Some(durable)) = (report.modes.first(), report.modes.get(1)) {
        result.ratios.push(Ratio {
            figure: format!(
                "{} / {} transfers/s (the cost of durability)",
                durable.name, memory.name
            ),
            value: durable.per_sec / memory.per_sec.max(1e-9),
        });
    }
    result.notes.push(
        "PostgreSQL, the ledger's peer, runs only in `sequent-bench ledger` (it needs a server)."
            .into(),
    );
    Ok(result)
}

fn payments(ctx: &Ctx<'_>) -> anyhow::Result<ScenarioResult> {
    use crate::payments::{PaymentsBenchConfig, run, threads};
    let mode = ctx.config.mode;
    let config = PaymentsBenchConfig {
        clients: 4,
        http_threads: 4,
        seconds: mode.pick(1.0, 1.5, 5.0),
        open_rate: 500,
        memory_ops: mode.pick(20_000, 50_000, 200_000),
    };
    let report = run(&config)?;
    let mut result = ScenarioResult::new("payments", "", Status::Measured);
    result.threads = threads(&config);
    result.wait = "blocking (HTTP workers, rings with blocking waits, simulators)".to_owned();
    let us = |p: &crate::payments::Percentiles| {
        [
            p.p50_us * 1_000,
            p.p99_us * 1_000,
            p.p999_us * 1_000,
            p.max_us * 1_000,
        ]
    };
    result.series.push(series_from_figures(
        "create → authorised, closed loop".to_owned(),
        "per payment",
        Some(report.closed_loop_auth_per_sec),
        report.closed_loop_latency.samples,
        Some(us(&report.closed_loop_latency)),
    ));
    result.series.push(series_from_figures(
        format!("POST /payments → 201, open loop at {}/s", report.open_rate),
        "per request, from its intended send time",
        None,
        report.open_loop_latency.samples,
        Some(us(&report.open_loop_latency)),
    ));
    result.series.push(series_from_figures(
        "sustained authorisations".to_owned(),
        "throughput",
        Some(report.sustained_auth_per_sec),
        0,
        None,
    ));
    result.ratios.push(Ratio {
        figure: "gateway sustained authorisations/s / Payments::handle in memory".to_owned(),
        value: report.sustained_auth_per_sec / report.engine_auth_per_sec.max(1e-9),
    });
    result.ratios.push(Ratio {
        figure: "FF1 tokens/s / random vault tokens/s".to_owned(),
        value: report.ff1_tokens_per_sec / report.random_tokens_per_sec.max(1e-9),
    });
    Ok(result)
}

fn failover(ctx: &Ctx<'_>) -> anyhow::Result<ScenarioResult> {
    use crate::failover::{FailoverBenchConfig, engine_binary, run};
    let mode = ctx.config.mode;
    let config = FailoverBenchConfig {
        runs: mode.pick(2, 5, 20),
        rate: 20_000,
        seconds: mode.pick(0.5, 1.0, 3.0),
        sessions: 2,
        engine_bin: engine_binary()?,
        dir: ctx.config.scratch.clone(),
    };
    let report = run(&config)?;
    let mut result = ScenarioResult::new("failover", "", Status::Measured);
    result.threads = 10;
    result.wait = "blocking (both engines), 5 ms heartbeats, 50 ms timeout".to_owned();
    let mut takeover = report.takeover_ns.clone();
    takeover.sort_unstable();
    let at = |q: f64| takeover[((takeover.len() - 1) as f64 * q).round() as usize];
    result.series.push(series_from_figures(
        "take-over: kill -9 → first ack on the new primary".to_owned(),
        "per take-over",
        None,
        takeover.len() as u64,
        Some([at(0.5), at(0.99), at(0.999), report.takeover_worst_ns]),
    ));
    for (label, figures, rate) in [
        (
            "order → ack, journal durable (baseline)",
            report.alone,
            report.acked_per_sec[0],
        ),
        (
            "order → ack, journal durable + standby ack",
            report.with_standby,
            report.acked_per_sec[1],
        ),
    ] {
        result.series.push(series_from_figures(
            label.to_owned(),
            "per order, open loop",
            Some(rate as f64),
            rate,
            Some(figures),
        ));
    }
    result.ratios.push(Ratio {
        figure: "p99 order → ack with the standby's acknowledgement / without".to_owned(),
        value: report.with_standby[1] as f64 / report.alone[1].max(1) as f64,
    });
    result.notes.push(
        "Needs the sequent-engine binary next to sequent-bench (cargo build --release -p sequent-node -p sequent-bench).".into(),
    );
    Ok(result)
}

/// Markers of a generated block in a hand-written page.
#[must_use]
pub fn block_markers(name: &str) -> (String, String) {
    (
        format!("<!-- sequent-bench report: {name} begin -->"),
        format!("<!-- sequent-bench report: {name} end -->"),
    )
}

/// Replaces the text between the `name` markers of `page` with `body`; everything outside the
/// markers is kept byte for byte. A marker counts only as a whole line, so prose that quotes it
/// (in backticks, say) is never taken for it. `None` when the page has no such block (or its end
/// comes first): the caller says so instead of appending somewhere surprising.
#[must_use]
pub fn replace_block(page: &str, name: &str, body: &str) -> Option<String> {
    let (begin, end) = block_markers(name);
    // Byte offset of the end of the first line equal to `marker` at or after `from`, and of its
    // start.
    let find_line = |marker: &str, from: usize| -> Option<(usize, usize)> {
        let mut at = from;
        for line in page[from..].split_inclusive('\n') {
            if line.trim_end_matches(['\n', '\r']) == marker {
                return Some((at, at + line.len()));
            }
            at += line.len();
        }
        None
    };
    let (_, start) = find_line(&begin, 0)?;
    let (stop, _) = find_line(&end, start)?;
    let mut out = String::with_capacity(page.len() + body.len());
    out.push_str(&page[..start]);
    if !page[..start].ends_with('\n') {
        out.push('\n');
    }
    out.push_str(body.trim_end());
    out.push('\n');
    out.push_str(&page[stop..]);
    Some(out)
}

/// `path` relative to `base` when it lies under it, else as given; with `/` separators.
fn relative_to(path: &Path, base: &Path) -> String {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (path_abs, base_abs) = (abs(path), abs(base));
    let shown = path_abs
        .strip_prefix(&base_abs)
        .map_or_else(|_| path.to_path_buf(), Path::to_path_buf);
    shown.to_string_lossy().replace('\\', "/")
}

/// A series' name on a rate chart: its label (rates are the x axis).
fn rate_groups(series: &[Series]) -> Vec<(String, Vec<&Series>)> {
    let mut groups: Vec<(String, Vec<&Series>)> = Vec::new();
    for s in series
        .iter()
        .filter(|s| s.offered_per_sec.is_some() && s.latency.count > 0)
    {
        match groups.iter_mut().find(|(label, _)| *label == s.label) {
            Some((_, v)) => v.push(s),
            None => groups.push((s.label.clone(), vec![s])),
        }
    }
    groups.retain(|(_, v)| v.len() >= 2);
    groups
}

/// Writes the charts of one scenario; returns (caption, file stem relative to the out dir).
fn scenario_charts(
    out_dir: &Path,
    scenario: &ScenarioResult,
) -> Result<Vec<(String, String)>, plot::PlotError> {
    let mut charts = Vec::new();
    let with_latency: Vec<&Series> = scenario
        .series
        .iter()
        .filter(|s| s.latency.spectrum.len() >= 2)
        .collect();
    let mut rates: Vec<Option<u64>> = with_latency.iter().map(|s| s.offered_per_sec).collect();
    rates.sort_unstable();
    rates.dedup();
    // The lowest and the highest step: the shape before and at the load's limit.
    let picked: Vec<Option<u64>> = match rates.as_slice() {
        [] => Vec::new(),
        [one] => vec![*one],
        [first, .., last] => vec![*first, *last],
    };
    for rate in picked {
        let lines: Vec<Line> = with_latency
            .iter()
            .filter(|s| s.offered_per_sec == rate)
            .map(|s| Line {
                label: s.label.clone(),
                points: s
                    .latency
                    .spectrum
                    .iter()
                    .map(|p| (p.percentile, p.value_ns as f64))
                    .collect(),
            })
            .collect();
        let suffix = rate.map_or_else(String::new, |r| format!("-{r}"));
        let stem = format!("spectrum-{}{suffix}", file_slug(&scenario.name));
        let title = match rate {
            Some(r) => format!(
                "{}: latency by percentile at {}/s offered",
                scenario.name,
                format_rate(r)
            ),
            None => format!("{}: latency by percentile", scenario.name),
        };
        plot::spectrum(&out_dir.join(&stem), &title, &lines)?;
        charts.push((title, stem));
    }
    let groups = rate_groups(&scenario.series);
    if !groups.is_empty() {
        let mut lines = Vec::new();
        for (label, series) in &groups {
            for (name, percentile) in [("p50", 50.0), ("p99", 99.0)] {
                lines.push(Line {
                    label: format!("{label} {name}"),
                    points: series
                        .iter()
                        .filter_map(|s| {
                            Some((s.offered_per_sec? as f64, s.latency.at(percentile)? as f64))
                        })
                        .collect(),
                });
            }
        }
        let stem = format!("rate-latency-{}", file_slug(&scenario.name));
        let title = format!("{}: latency against offered rate", scenario.name);
        plot::throughput_latency(&out_dir.join(&stem), &title, &lines)?;
        charts.push((title, stem));
    }
    Ok(charts)
}

fn write_outputs(config: &ReportConfig, report: &RunReport) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(report).context("serializing the report")?;
    let json_path = config.out_dir.join("report.json");
    std::fs::write(&json_path, json + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    let mut charts = Vec::new();
    for scenario in &report.scenarios {
        charts.push(scenario_charts(&config.out_dir, scenario)?);
    }
    if let Some(md_path) = &config.report_md {
        let base = md_path.parent().unwrap_or(Path::new("."));
        let page = render_page(report, &charts, &relative_to(&config.out_dir, base));
        std::fs::write(md_path, page).with_context(|| format!("writing {}", md_path.display()))?;
    }
    if let Some(doc) = &config.doc {
        let page =
            std::fs::read_to_string(doc).with_context(|| format!("reading {}", doc.display()))?;
        let base = doc.parent().unwrap_or(Path::new("."));
        let report_link = config.report_md.as_ref().map(|p| relative_to(p, base));
        let body = render_summary(
            report,
            report_link.as_deref(),
            &relative_to(&config.out_dir, base),
            &charts,
        );
        let page = replace_block(&page, "summary", &body).with_context(|| {
            format!(
                "{} has no `<!-- sequent-bench report: summary begin -->` … `end -->` block to refresh",
                doc.display()
            )
        })?;
        std::fs::write(doc, page).with_context(|| format!("writing {}", doc.display()))?;
    }
    Ok(())
}

fn status_cell(status: &Status) -> String {
    match status {
        Status::Measured => "measured".to_owned(),
        Status::NotBuiltYet(_) => "**not built yet**".to_owned(),
        Status::Skipped(why) => format!("skipped: {why}"),
        Status::Failed(why) => format!("**FAILED**: {}", why.replace('|', "/")),
    }
}

/// The short block in docs/BENCHMARKS.md: the machine, one line per scenario, the ratios.
fn render_summary(
    report: &RunReport,
    report_link: Option<&str>,
    out_rel: &str,
    charts: &[Vec<(String, String)>],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "_Generated by `{}` ({} mode, {:.0} s); do not edit between the markers._\n",
        report.config.command, report.config.mode, report.elapsed_s
    );
    let _ = writeln!(out, "Machine: {}.\n", report.machine.summary());
    if let Some(link) = report_link {
        let _ = writeln!(
            out,
            "Every table, percentile and chart: [{link}]({link}); raw results in `{out_rel}/report.json` and `{out_rel}/*.hgrm`.\n"
        );
    }
    let _ = writeln!(
        out,
        "| scenario | status | ratios measured in this run |\n|---|---|---|"
    );
    for scenario in &report.scenarios {
        let ratios: Vec<String> = scenario
            .ratios
            .iter()
            .take(3)
            .map(|r| format!("{:.2}× {}", r.value, r.figure))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            scenario.name,
            status_cell(&scenario.status),
            if ratios.is_empty() {
                "-".to_owned()
            } else {
                ratios.join("<br>")
            }
        );
    }
    let headline = report
        .scenarios
        .iter()
        .zip(charts)
        .find(|(s, c)| s.name == "engine" && !c.is_empty())
        .or_else(|| {
            report
                .scenarios
                .iter()
                .zip(charts)
                .find(|(_, c)| !c.is_empty())
        });
    if let Some((_, charts)) = headline {
        let _ = writeln!(out);
        for (title, stem) in charts {
            let _ = writeln!(out, "![{title}]({out_rel}/{stem}.svg)");
        }
    }
    out
}

fn render_page(report: &RunReport, charts: &[Vec<(String, String)>], out_rel: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# sequent-bench report\n");
    let _ = writeln!(
        out,
        "Generated by `{}`; regenerate it, do not edit it. What the figures mean and how to run on a \
         bigger machine: [BENCHMARKS.md](BENCHMARKS.md#report).\n",
        report.config.command
    );
    let m = &report.machine;
    let _ = writeln!(out, "| run | |\n|---|---|");
    for (key, value) in [
        ("mode", report.config.mode.clone()),
        (
            "budget",
            format!(
                "{} s (took {:.0} s)",
                report.config.budget_secs, report.elapsed_s
            ),
        ),
        ("cores (available_parallelism)", m.cores.to_string()),
        (
            "cores used / pin plan",
            format!("{} / {:?}", report.config.cores, report.config.pin_plan),
        ),
        ("CPU", m.cpu_model.clone()),
        ("kernel", m.kernel.clone()),
        ("commit", m.git_commit.clone()),
        ("busy before the run", m.busy_text()),
        ("load average at start", m.load_text()),
        ("repeats per step", report.config.repeats.to_string()),
        ("seed", report.config.seed.to_string()),
    ] {
        let _ = writeln!(out, "| {key} | {value} |");
    }
    let h = &report.harness;
    let _ = writeln!(
        out,
        "\n**Harness cost** (same run): `Instant::now()` {:.1} ns, TSC read {:.1} ns, one record {:.1} ns, \
         timestamp + record {:.1} ns per sample. The `baseline` scenario below is the open-loop floor.\n",
        h.instant_now_ns, h.tsc_read_ns, h.record_ns, h.per_sample_ns
    );
    if !report.warnings.is_empty() {
        let _ = writeln!(out, "**Warnings**\n");
        for w in &report.warnings {
            let _ = writeln!(out, "- ⚠ {w}");
        }
        let _ = writeln!(out);
    }
    for (scenario, charts) in report.scenarios.iter().zip(charts) {
        let _ = writeln!(out, "## {}\n", scenario.name);
        let _ = writeln!(out, "{}\n", scenario.what);
        let _ = writeln!(out, "Status: {}.", status_cell(&scenario.status));
        if scenario.status != Status::Measured {
            let _ = writeln!(out);
            continue;
        }
        let _ = writeln!(
            out,
            " {:.1} s; {} thread(s){}; waits: {}.\n",
            scenario.seconds,
            scenario.threads,
            if scenario.pinned {
                ", pinned"
            } else {
                ", not pinned"
            },
            scenario.wait
        );
        let _ = writeln!(
            out,
            "| series | measures | offered/s | achieved/s | p50 | p90 | p99 | p99.9 | p99.99 | max | count | runs | spread |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for s in &scenario.series {
            let at = |p: f64| s.latency.at(p).map_or_else(|| "-".to_owned(), format_ns);
            let label = match &s.hgrm {
                Some(file) => format!("[{}]({out_rel}/{file})", s.label),
                None => s.label.clone(),
            };
            let _ = writeln!(
                out,
                "| {label} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0}% |",
                s.measures,
                s.offered_per_sec
                    .map_or_else(|| "-".to_owned(), format_rate),
                s.achieved_per_sec
                    .map_or_else(|| "-".to_owned(), |a| format_rate(a as u64)),
                at(50.0),
                at(90.0),
                at(99.0),
                at(99.9),
                at(99.99),
                if s.latency.count > 0 {
                    format_ns(s.latency.max_ns)
                } else {
                    "-".to_owned()
                },
                s.latency.count,
                s.runs,
                s.spread_pct
            );
        }
        if !scenario.knees.is_empty() {
            let _ = writeln!(
                out,
                "\n| target | last rate that held | first that broke | why |\n|---|---:|---:|---|"
            );
            for k in &scenario.knees {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    k.target,
                    k.last_good_per_sec
                        .map_or_else(|| "-".to_owned(), format_rate),
                    k.first_bad_per_sec
                        .map_or_else(|| "-".to_owned(), format_rate),
                    k.why
                );
            }
        }
        if !scenario.ratios.is_empty() {
            let _ = writeln!(out);
            for r in &scenario.ratios {
                let _ = writeln!(out, "- **{:.2}×** {}", r.value, r.figure);
            }
        }
        if !scenario.notes.is_empty() {
            let _ = writeln!(out);
            for n in &scenario.notes {
                let _ = writeln!(out, "- {n}");
            }
        }
        for (title, stem) in charts {
            let _ = writeln!(out, "\n![{title}]({out_rel}/{stem}.svg)");
        }
        let _ = writeln!(out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_replaced_and_the_prose_around_it_kept() {
        let page = "# Title\n\nprose before\n<!-- sequent-bench report: summary begin -->\nold\n<!-- sequent-bench report: summary end -->\nprose after\n";
        let new = replace_block(page, "summary", "new table\n").unwrap();
        assert_eq!(
            new,
            "# Title\n\nprose before\n<!-- sequent-bench report: summary begin -->\nnew table\n<!-- sequent-bench report: summary end -->\nprose after\n"
        );
        // Idempotent: the same body again gives the same page.
        assert_eq!(replace_block(&new, "summary", "new table").unwrap(), new);
        assert_eq!(replace_block(page, "other", "x"), None);
        let reversed = "<!-- sequent-bench report: summary end -->\n<!-- sequent-bench report: summary begin -->\n";
        assert_eq!(replace_block(reversed, "summary", "x"), None);
        // Prose that quotes a marker inline is not a marker.
        let quoted = "see `<!-- sequent-bench report: summary begin -->` below\n<!-- sequent-bench report: summary begin -->\n<!-- sequent-bench report: summary end -->\n";
        assert_eq!(
            replace_block(quoted, "summary", "x").unwrap(),
            "see `<!-- sequent-bench report: summary begin -->` below\n<!-- sequent-bench report: summary begin -->\nx\n<!-- sequent-bench report: summary end -->\n"
        );
    }

    #[test]
    fn every_scenario_the_issue_names_has_an_entry() {
        for name in [
            "baseline", "ring", "journal", "matching", "engine", "feed", "ledger", "payments",
            "failover",
        ] {
            assert!(SCENARIOS.iter().any(|e| e.name == name), "{name} missing");
        }
        let mut names: Vec<&str> = SCENARIOS.iter().map(|e| e.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SCENARIOS.len(), "duplicate entry");
    }

    #[test]
    fn slugs_are_file_names() {
        assert_eq!(file_slug("engine-match md tick"), "engine-match-md-tick");
        assert_eq!(file_slug("nothing, sleep+spin"), "nothing-sleep-spin");
    }
}
