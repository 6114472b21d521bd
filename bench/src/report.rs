//! Turning runs into rows, and rows into a terminal table, a GitHub Markdown table or JSON
//! lines (one object per (impl, scenario)).

use std::fmt::Write as _;

use serde::Serialize;

use crate::machine::Machine;
use crate::ring::{Impl, RunOutcome, Scenario};

/// One (impl, scenario) result: the median of its runs. The field names are the JSON keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// `sequent-ring`, `disruptor`, `crossbeam-channel`, `crossbeam-arrayqueue`, `rtrb`, `std-mpsc`.
    #[serde(rename = "impl")]
    pub imp: String,
    /// `1p1c`, `1p1c-batch`, …, `1p1c-latency`.
    pub scenario: String,
    /// Events per second of the median run (for `1p1c-latency`: the achieved send rate).
    pub ops_per_sec: u64,
    /// Latency percentiles of the median run, ns (see `latency`).
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub p9999_ns: u64,
    pub max_ns: u64,
    /// `available_parallelism()` of the machine.
    pub cores: usize,
    /// Producer plus consumer threads of the scenario.
    pub threads: usize,
    /// Whether each thread was pinned to a core of its own.
    pub pinned: bool,
    /// How threads waited (`busy-spin`, `busy-spin+hint`, `yielding`, `spin64+yield`).
    pub wait: String,
    /// Whether the `-batch` scenario used a native batch API (false for non-batch scenarios).
    pub native_batch: bool,
    /// Events per run.
    pub events: u64,
    /// Latency samples in the median run's histogram.
    pub latency_samples: u64,
    /// What the percentiles measure: `open-loop` (every event, from its intended send time)
    /// or `sampled` (every 1024th event, from its actual send time, under saturation).
    pub latency: String,
    /// Runs taken; the row reports the median one.
    pub runs: usize,
    /// (max − min) / median of the key figure over the runs, in percent (throughput; p99 for
    /// the latency scenario).
    pub spread_pct: f64,
    /// Against the best peer (every impl but sequent-ring) in this run for this scenario:
    /// ops/s ratio for throughput, best peer p99 / this p99 for latency. >1 is better.
    pub vs_best_peer: Option<f64>,
}

impl Row {
    /// The figure runs are ranked by: ops/s, or p99 for the latency scenario (lower is better).
    fn key(&self) -> f64 {
        if self.is_latency() {
            self.p99_ns as f64
        } else {
            self.ops_per_sec as f64
        }
    }

    fn is_latency(&self) -> bool {
        self.scenario == Scenario::Latency.name()
    }
}

fn run_key(run: &RunOutcome) -> f64 {
    match run.scenario {
        Scenario::Latency => run.latency_ns.value_at_quantile(0.99) as f64,
        Scenario::Throughput { .. } => run.ops_per_sec(),
    }
}

/// Summarizes the runs of one (impl, scenario): the median run's figures plus the spread.
/// Panics on an empty slice or mixed (impl, scenario): both are harness bugs.
pub fn summarize(runs: &[RunOutcome], cores: usize) -> Row {
    assert!(!runs.is_empty(), "summarize needs at least one run");
    let (imp, scenario) = (runs[0].imp, runs[0].scenario);
    assert!(
        runs.iter().all(|r| r.imp == imp && r.scenario == scenario),
        "one (impl, scenario)"
    );
    let mut order: Vec<&RunOutcome> = runs.iter().collect();
    order.sort_by(|a, b| run_key(a).total_cmp(&run_key(b)));
    let median = order[(order.len() - 1) / 2];
    let (min, max) = (run_key(order[0]), run_key(order[order.len() - 1]));
    let median_key = run_key(median);
    let spread_pct = if median_key > 0.0 {
        (max - min) / median_key * 100.0
    } else {
        0.0
    };
    let hist = &median.latency_ns;
    let quantile = |q: f64| {
        if hist.is_empty() {
            0
        } else {
            hist.value_at_quantile(q)
        }
    };
    Row {
        imp: imp.name().to_owned(),
        scenario: scenario.name().to_owned(),
        ops_per_sec: median.ops_per_sec().round() as u64,
        p50_ns: quantile(0.50),
        p99_ns: quantile(0.99),
        p999_ns: quantile(0.999),
        p9999_ns: quantile(0.9999),
        max_ns: hist.max(),
        cores,
        threads: median.threads,
        pinned: median.pinned,
        wait: median.wait.to_owned(),
        native_batch: median.native_batch,
        events: median.events,
        latency_samples: hist.len(),
        latency: match scenario {
            Scenario::Latency => "open-loop",
            Scenario::Throughput { .. } => "sampled",
        }
        .to_owned(),
        runs: runs.len(),
        spread_pct,
        vs_best_peer: None,
    }
}

/// Fills `vs_best_peer` of every row from the best peer row of the same scenario.
pub fn rank_against_peers(rows: &mut [Row]) {
    let peer_names: Vec<&str> = Impl::ALL
        .iter()
        .filter(|i| i.is_peer())
        .map(|i| i.name())
        .collect();
    let scenarios: Vec<String> = rows.iter().map(|r| r.scenario.clone()).collect();
    for scenario in scenarios {
        let peers = rows
            .iter()
            .filter(|r| r.scenario == scenario && peer_names.contains(&r.imp.as_str()));
        let best = if scenario == Scenario::Latency.name() {
            peers
                .map(Row::key)
                .filter(|p99| *p99 > 0.0)
                .min_by(f64::total_cmp)
        } else {
            peers.map(Row::key).max_by(f64::total_cmp)
        };
        for row in rows.iter_mut().filter(|r| r.scenario == scenario) {
            row.vs_best_peer = best.and_then(|best| {
                let key = row.key();
                let ratio = if row.is_latency() {
                    best / key
                } else {
                    key / best
                };
                ratio.is_finite().then_some(ratio)
            });
        }
    }
}

/// `850 ns`, `12.3 µs`, `4.56 ms`, `1.20 s`.
pub fn format_ns(ns: u64) -> String {
    let ns_f = ns as f64;
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{} µs", three_digits(ns_f / 1e3)),
        1_000_000..1_000_000_000 => format!("{} ms", three_digits(ns_f / 1e6)),
        _ => format!("{} s", three_digits(ns_f / 1e9)),
    }
}

/// `950`, `12.3k`, `123M`, `1.40G` (three significant digits).
pub fn format_rate(per_sec: u64) -> String {
    let v = per_sec as f64;
    match per_sec {
        0..1_000 => format!("{per_sec}"),
        1_000..1_000_000 => format!("{}k", three_digits(v / 1e3)),
        1_000_000..1_000_000_000 => format!("{}M", three_digits(v / 1e6)),
        _ => format!("{}G", three_digits(v / 1e9)),
    }
}

/// A value in [1, 1000) with three significant digits: `1.23`, `12.3`, `123`.
fn three_digits(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

fn format_ratio(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"))
}

const HEADERS: [&str; 12] = [
    "impl",
    "scenario",
    "ops/s",
    "vs best peer",
    "p50",
    "p99",
    "p99.9",
    "p99.99",
    "max",
    "threads",
    "wait",
    "spread",
];

/// Names and labels align left; the figures (columns 2..9) align right.
fn is_text_column(index: usize) -> bool {
    !(2..9).contains(&index)
}

fn cells(row: &Row, cores: usize) -> [String; 12] {
    let threads = if row.threads > cores {
        format!("{}/{} cores!", row.threads, cores)
    } else {
        format!("{}{}", row.threads, if row.pinned { " pinned" } else { "" })
    };
    let native = if row.scenario.ends_with("-batch") && !row.native_batch {
        " (no batch api)"
    } else {
        ""
    };
    [
        row.imp.clone(),
        format!("{}{native}", row.scenario),
        format_rate(row.ops_per_sec),
        format_ratio(row.vs_best_peer),
        format_ns(row.p50_ns),
        format_ns(row.p99_ns),
        format_ns(row.p999_ns),
        format_ns(row.p9999_ns),
        format_ns(row.max_ns),
        threads,
        row.wait.clone(),
        format!("{:.0}%", row.spread_pct),
    ]
}

/// A plain-text table with aligned columns, for a terminal.
pub fn render_table(rows: &[Row]) -> String {
    let cores = rows.first().map_or(1, |r| r.cores);
    let body: Vec<[String; 12]> = rows.iter().map(|r| cells(r, cores)).collect();
    let mut widths = HEADERS.map(str::len);
    for line in &body {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut write_line = |line: &[String]| {
        for (i, (cell, width)) in line.iter().zip(widths).enumerate() {
            let pad = width - cell.chars().count();
            if is_text_column(i) {
                let _ = write!(out, "{cell}{}", " ".repeat(pad));
            } else {
                let _ = write!(out, "{}{cell}", " ".repeat(pad));
            }
            out.push_str(if i + 1 == line.len() { "\n" } else { "  " });
        }
    };
    write_line(&HEADERS.map(str::to_owned));
    let mut previous: Option<&str> = None;
    for (row, line) in rows.iter().zip(&body) {
        if previous.is_some_and(|p| p != row.scenario) {
            write_line(&HEADERS.map(|_| String::new()));
        }
        previous = Some(&row.scenario);
        write_line(line);
    }
    out.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The machine description and a GitHub table, as pasted into docs/BENCHMARKS.md.
pub fn render_markdown(machine: &Machine, command: &str, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Command: `{command}`\n");
    let _ = writeln!(out, "| machine | |\n|---|---|");
    let _ = writeln!(out, "| cores (available_parallelism) | {} |", machine.cores);
    let _ = writeln!(out, "| pinnable core ids | {:?} |", machine.core_ids);
    let _ = writeln!(out, "| CPU | {} |", machine.cpu_model);
    let _ = writeln!(out, "| kernel | {} |", machine.kernel);
    let _ = writeln!(out, "| commit | {} |", machine.git_commit);
    let _ = writeln!(
        out,
        "| cores busy just before the run | {} |",
        machine.busy_text()
    );
    let _ = writeln!(
        out,
        "| 1-min load average at start | {} |\n",
        machine.load_text()
    );
    let _ = writeln!(out, "| {} |", HEADERS.join(" | "));
    let align: Vec<&str> = (0..HEADERS.len())
        .map(|i| if is_text_column(i) { "---" } else { "---:" })
        .collect();
    let _ = writeln!(out, "|{}|", align.join("|"));
    let cores = rows.first().map_or(machine.cores, |r| r.cores);
    for row in rows {
        let mut line = cells(row, cores);
        if row.imp == Impl::SequentRing.name() {
            line[0] = format!("**{}**", line[0]);
        }
        let _ = writeln!(out, "| {} |", line.join(" | "));
    }
    out
}

/// One JSON object (a line without the newline).
pub fn json_line(row: &Row) -> String {
    serde_json::to_string(row).expect("a Row always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::{Topology, new_latency_histogram};

    #[test]
    fn durations_keep_three_significant_digits() {
        assert_eq!(format_ns(0), "0 ns");
        assert_eq!(format_ns(999), "999 ns");
        assert_eq!(format_ns(1_000), "1.00 µs");
        assert_eq!(format_ns(12_345), "12.3 µs");
        assert_eq!(format_ns(123_456), "123 µs");
        assert_eq!(format_ns(4_560_000), "4.56 ms");
        assert_eq!(format_ns(1_200_000_000), "1.20 s");
    }

    #[test]
    fn rates_keep_three_significant_digits() {
        assert_eq!(format_rate(950), "950");
        assert_eq!(format_rate(12_345), "12.3k");
        assert_eq!(format_rate(123_000_000), "123M");
        assert_eq!(format_rate(1_400_000_000), "1.40G");
    }

    fn outcome(imp: Impl, scenario: Scenario, elapsed_ns: u64, latencies: &[u64]) -> RunOutcome {
        let mut latency_ns = new_latency_histogram();
        for &ns in latencies {
            latency_ns.record(ns).unwrap();
        }
        RunOutcome {
            imp,
            scenario,
            events: 1_000,
            threads: 2,
            pinned: true,
            wait: "busy-spin",
            native_batch: false,
            elapsed_ns,
            latency_ns,
        }
    }

    const ONE: Scenario = Scenario::Throughput {
        topology: Topology::OneToOne,
        batch: false,
    };

    #[test]
    fn the_median_run_is_reported_with_its_spread() {
        // 1000 events in 10, 20 and 40 µs: 100M, 50M and 25M events/s; the median is 50M.
        let runs = [
            outcome(Impl::Rtrb, ONE, 10_000, &[100]),
            outcome(Impl::Rtrb, ONE, 40_000, &[300]),
            outcome(Impl::Rtrb, ONE, 20_000, &[200]),
        ];
        let row = summarize(&runs, 2);
        assert_eq!(row.ops_per_sec, 50_000_000);
        assert_eq!(row.p50_ns, 200);
        assert_eq!(row.max_ns, 200);
        assert_eq!(row.runs, 3);
        assert!((row.spread_pct - 150.0).abs() < 1e-9, "{}", row.spread_pct);
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let latencies: Vec<u64> = (1..=10_000).collect();
        let row = summarize(
            &[outcome(Impl::Rtrb, Scenario::Latency, 1_000, &latencies)],
            2,
        );
        // HdrHistogram with 3 significant digits: values within 0.1 %.
        let near = |got: u64, want: u64| got.abs_diff(want) * 1000 <= want;
        assert!(near(row.p50_ns, 5_000), "{}", row.p50_ns);
        assert!(near(row.p99_ns, 9_900), "{}", row.p99_ns);
        assert!(near(row.p999_ns, 9_990), "{}", row.p999_ns);
        assert!(near(row.max_ns, 10_000), "{}", row.max_ns);
        assert_eq!(row.latency, "open-loop");
        assert_eq!(row.latency_samples, 10_000);
    }

    #[test]
    fn ratios_compare_with_the_best_peer() {
        let mut rows = vec![
            summarize(&[outcome(Impl::SequentRing, ONE, 5_000, &[1])], 2), // 200M
            summarize(&[outcome(Impl::Rtrb, ONE, 10_000, &[1])], 2),       // 100M
            summarize(&[outcome(Impl::StdMpsc, ONE, 40_000, &[1])], 2),    // 25M
            summarize(
                &[outcome(Impl::SequentRing, Scenario::Latency, 1, &[100])],
                2,
            ),
            summarize(&[outcome(Impl::Disruptor, Scenario::Latency, 1, &[200])], 2),
        ];
        rank_against_peers(&mut rows);
        let ratios: Vec<_> = rows.iter().map(|r| r.vs_best_peer.unwrap()).collect();
        assert_eq!(ratios, [2.0, 1.0, 0.25, 2.0, 1.0]);
    }

    #[test]
    fn json_has_the_required_keys() {
        let row = summarize(&[outcome(Impl::SequentRing, ONE, 10_000, &[100])], 2);
        let value: serde_json::Value = serde_json::from_str(&json_line(&row)).unwrap();
        for key in [
            "impl",
            "scenario",
            "ops_per_sec",
            "p50_ns",
            "p99_ns",
            "p999_ns",
            "p9999_ns",
            "max_ns",
            "cores",
        ] {
            assert!(value.get(key).is_some(), "missing {key}");
        }
        assert_eq!(value["impl"], "sequent-ring");
        assert_eq!(value["scenario"], "1p1c");
        assert_eq!(value["ops_per_sec"], 100_000_000);
    }

    #[test]
    fn tables_have_one_line_per_row() {
        let rows = [
            summarize(&[outcome(Impl::SequentRing, ONE, 10_000, &[100])], 2),
            summarize(&[outcome(Impl::Rtrb, Scenario::Latency, 10_000, &[100])], 2),
        ];
        let table = render_table(&rows);
        // Header, two rows, and a blank line between scenarios.
        assert_eq!(table.lines().count(), 4, "{table}");
        assert!(
            table
                .lines()
                .nth(1)
                .unwrap()
                .starts_with("sequent-ring  1p1c"),
            "{table}"
        );
        let machine = Machine {
            cores: 2,
            core_ids: vec![0, 1],
            cpu_model: "AMD EPYC".to_owned(),
            kernel: "6.1".to_owned(),
            git_commit: "abc1234".to_owned(),
            load_avg_1m: Some(0.05),
            busy_before_pct: Some(1.0),
        };
        let markdown = render_markdown(&machine, "sequent-bench ring --quick", &rows);
        assert!(markdown.contains("| CPU | AMD EPYC |"));
        assert!(markdown.contains("| 1-min load average at start | 0.05 |"));
        assert!(markdown.contains("| cores busy just before the run | 1% |"));
        assert!(
            markdown.contains("| **sequent-ring** | 1p1c | 100M | "),
            "{markdown}"
        );
    }
}
