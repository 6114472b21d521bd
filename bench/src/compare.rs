//! `sequent-bench compare A.json B.json`: two `report` runs side by side, series matched by
//! scenario, label and offered rate, with B/A per percentile.
//!
//! Two runs on different machines are shown, but with a warning: their absolute figures do not
//! compare; only the ratios each run measured inside itself do (listed at the end, side by side).

use std::fmt::Write as _;
use std::path::Path;

use crate::recorder::SUMMARY_PERCENTILES;
use crate::report::format_ns;
use crate::results::{RunReport, SCHEMA_VERSION};

/// Why two reports cannot be compared.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a sequent-bench report: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("{path} has schema {found}, this sequent-bench reads {SCHEMA_VERSION}")]
    Schema { path: String, found: u32 },
}

/// Reads a `report.json`.
pub fn load(path: &Path) -> Result<RunReport, CompareError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| CompareError::Read {
        path: shown.clone(),
        source,
    })?;
    let report: RunReport = serde_json::from_str(&text).map_err(|source| CompareError::Parse {
        path: shown.clone(),
        source,
    })?;
    if report.schema != SCHEMA_VERSION {
        return Err(CompareError::Schema {
            path: shown,
            found: report.schema,
        });
    }
    Ok(report)
}

/// Whether two runs happened on machines whose absolute figures could be compared at all.
#[must_use]
pub fn same_machine(a: &RunReport, b: &RunReport) -> bool {
    a.machine.cpu_model == b.machine.cpu_model
        && a.machine.cores == b.machine.cores
        && a.config.cores == b.config.cores
}

fn ratio_text(a: u64, b: u64) -> String {
    if a == 0 {
        "-".to_owned()
    } else {
        format!("{:.2}", b as f64 / a as f64)
    }
}

/// The side-by-side text.
#[must_use]
pub fn render(a: &RunReport, b: &RunReport, a_name: &str, b_name: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "A: {a_name}\n   {}\n   {} mode, commit {}",
        a.machine.summary(),
        a.config.mode,
        a.machine.git_commit
    );
    let _ = writeln!(
        out,
        "B: {b_name}\n   {}\n   {} mode, commit {}",
        b.machine.summary(),
        b.config.mode,
        b.machine.git_commit
    );
    if !same_machine(a, b) {
        let _ = writeln!(
            out,
            "\nWARNING: A and B ran on different machines (CPU or cores differ): B/A of absolute \
             figures below says nothing about the code. Compare the in-run ratios at the end."
        );
    }
    let _ = writeln!(out, "\nB/A per percentile (<1: B faster)");
    let mut header = format!("{:<52}", "series");
    for p in SUMMARY_PERCENTILES {
        let _ = write!(header, " {:>22}", format!("p{p}"));
    }
    let _ = write!(header, " {:>22}", "max");
    let _ = writeln!(out, "{header}");
    let mut only_a = Vec::new();
    for sa in &a.scenarios {
        for series_a in &sa.series {
            let key = series_a.key(&sa.name);
            let found = b
                .scenarios
                .iter()
                .filter(|sb| sb.name == sa.name)
                .flat_map(|sb| sb.series.iter())
                .find(|s| s.key(&sa.name) == key);
            let Some(series_b) = found else {
                only_a.push(key);
                continue;
            };
            if series_a.latency.count == 0 && series_b.latency.count == 0 {
                let (ra, rb) = (
                    series_a.achieved_per_sec.unwrap_or(0.0),
                    series_b.achieved_per_sec.unwrap_or(0.0),
                );
                let _ = writeln!(
                    out,
                    "{key:<52} rate {ra:.0}/s → {rb:.0}/s, B/A {}",
                    if ra > 0.0 {
                        format!("{:.2}", rb / ra)
                    } else {
                        "-".to_owned()
                    }
                );
                continue;
            }
            let mut line = format!("{key:<52}");
            for p in SUMMARY_PERCENTILES {
                let (va, vb) = (
                    series_a.latency.at(p).unwrap_or(0),
                    series_b.latency.at(p).unwrap_or(0),
                );
                let cell = if va == 0 && vb == 0 {
                    "-".to_owned()
                } else {
                    format!("{}→{} {}", format_ns(va), format_ns(vb), ratio_text(va, vb))
                };
                let _ = write!(line, " {cell:>22}");
            }
            let (ma, mb) = (series_a.latency.max_ns, series_b.latency.max_ns);
            let _ = write!(
                line,
                " {:>22}",
                format!("{}→{} {}", format_ns(ma), format_ns(mb), ratio_text(ma, mb))
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    let only_b: Vec<String> = b
        .scenarios
        .iter()
        .flat_map(|sb| sb.series.iter().map(|s| s.key(&sb.name)))
        .filter(|key| {
            !a.scenarios
                .iter()
                .flat_map(|sa| sa.series.iter().map(|s| s.key(&sa.name)))
                .any(|k| &k == key)
        })
        .collect();
    if !only_a.is_empty() {
        let _ = writeln!(out, "\nonly in A: {}", only_a.join("; "));
    }
    if !only_b.is_empty() {
        let _ = writeln!(out, "only in B: {}", only_b.join("; "));
    }
    let _ = writeln!(
        out,
        "\nin-run ratios (each measured inside its own run: these compare across machines)"
    );
    for sa in &a.scenarios {
        for ra in &sa.ratios {
            let rb = b
                .scenarios
                .iter()
                .filter(|sb| sb.name == sa.name)
                .flat_map(|sb| sb.ratios.iter())
                .find(|r| r.figure == ra.figure);
            let _ = writeln!(
                out,
                "  {:<10} A {:>7.2}  B {:>7}  {}",
                sa.name,
                ra.value,
                rb.map_or_else(|| "-".to_owned(), |r| format!("{:.2}", r.value)),
                ra.figure
            );
        }
    }
    let _ = writeln!(out, "\nstatus");
    for sa in &a.scenarios {
        let sb = b.scenarios.iter().find(|s| s.name == sa.name);
        let _ = writeln!(
            out,
            "  {:<10} A {:?}  B {}",
            sa.name,
            sa.status,
            sb.map_or_else(|| "absent".to_owned(), |s| format!("{:?}", s.status))
        );
    }
    out
}

/// Percentile spectra of A and B on one chart per scenario (SVG and PNG under `dir`): for each
/// series both runs measured, at the scenario's lowest step, the A line and the B line. Returns
/// the files written.
pub fn plot(
    a: &RunReport,
    b: &RunReport,
    dir: &Path,
) -> Result<Vec<std::path::PathBuf>, crate::plot::PlotError> {
    use crate::plot::{Line, spectrum};
    let mut files = Vec::new();
    for sa in &a.scenarios {
        let Some(sb) = b.scenarios.iter().find(|s| s.name == sa.name) else {
            continue;
        };
        let lowest = sa
            .series
            .iter()
            .filter(|s| s.latency.spectrum.len() >= 2)
            .map(|s| s.offered_per_sec)
            .min();
        let Some(rate) = lowest else { continue };
        let mut lines = Vec::new();
        for series_a in sa
            .series
            .iter()
            .filter(|s| s.offered_per_sec == rate && s.latency.spectrum.len() >= 2)
        {
            let key = series_a.key(&sa.name);
            let Some(series_b) = sb.series.iter().find(|s| s.key(&sb.name) == key) else {
                continue;
            };
            for (run, series) in [("A", series_a), ("B", series_b)] {
                lines.push(Line {
                    label: format!("{run}: {}", series.label),
                    points: series
                        .latency
                        .spectrum
                        .iter()
                        .map(|p| (p.percentile, p.value_ns as f64))
                        .collect(),
                });
            }
        }
        if lines.is_empty() {
            continue;
        }
        let title = match rate {
            Some(r) => format!(
                "{}: A against B at {}/s",
                sa.name,
                crate::report::format_rate(r)
            ),
            None => format!("{}: A against B", sa.name),
        };
        files.extend(spectrum(
            &dir.join(format!("compare-{}", sa.name)),
            &title,
            &lines,
        )?);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::Machine;
    use crate::recorder::Recorder;
    use crate::results::{HarnessCost, Ratio, RunConfig, ScenarioResult, Series, Status};

    fn report(cpu: &str, scale: u64) -> RunReport {
        let mut recorder = Recorder::new();
        for ns in 1..=1_000u64 {
            recorder.record(ns * scale);
        }
        let mut scenario = ScenarioResult::new("engine", "test", Status::Measured);
        scenario.series.push(Series {
            label: "engine-match ack".into(),
            measures: "ack".into(),
            offered_per_sec: Some(1_000),
            achieved_per_sec: Some(1_000.0),
            runs: 1,
            spread_pct: 0.0,
            latency: recorder.summary(),
            hgrm: None,
        });
        scenario.ratios.push(Ratio {
            figure: "echo p99 / engine p99".into(),
            value: 0.5,
        });
        RunReport {
            schema: SCHEMA_VERSION,
            started_unix_s: 0,
            machine: Machine {
                cores: 2,
                core_ids: vec![0, 1],
                cpu_model: cpu.into(),
                kernel: "6.1".into(),
                git_commit: "abc".into(),
                load_avg_1m: None,
                busy_before_pct: None,
            },
            config: RunConfig {
                mode: "smoke".into(),
                budget_secs: 60,
                cores: 2,
                pin_plan: vec![0, 1],
                repeats: 1,
                seed: 1,
                command: "test".into(),
            },
            harness: HarnessCost {
                instant_now_ns: 20.0,
                tsc_read_ns: 10.0,
                record_ns: 5.0,
                per_sample_ns: 15.0,
            },
            scenarios: vec![scenario],
            warnings: Vec::new(),
            elapsed_s: 1.0,
        }
    }

    #[test]
    fn ratios_per_percentile_are_b_over_a() {
        let (a, b) = (report("X", 1_000), report("X", 2_000));
        let text = render(&a, &b, "a.json", "b.json");
        let line = text
            .lines()
            .find(|l| l.starts_with("engine / engine-match ack @ 1000/s"))
            .unwrap_or_else(|| panic!("{text}"));
        // p50 of 1..=1000 µs is 500 µs in A, 1 ms in B.
        assert!(line.contains("500 µs→1.00 ms 2.00"), "{line}");
        assert!(!text.contains("WARNING"), "{text}");
        assert!(
            text.contains("A    0.50  B    0.50  echo p99 / engine p99"),
            "{text}"
        );
    }

    #[test]
    fn both_runs_share_one_chart_per_scenario() {
        let dir = tempfile::tempdir().unwrap();
        let files = plot(&report("X", 1_000), &report("X", 2_000), dir.path()).unwrap();
        assert_eq!(files.len(), 2, "{files:?}");
        let svg = std::fs::read_to_string(&files[0]).unwrap();
        assert!(svg.contains("\nA: engine-match ack\n") && svg.contains("\nB: engine-match ack\n"));
    }

    #[test]
    fn different_machines_are_flagged() {
        let text = render(&report("X", 1), &report("Y", 1), "a", "b");
        assert!(
            text.contains("WARNING: A and B ran on different machines"),
            "{text}"
        );
    }

    #[test]
    fn a_report_round_trips_through_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        std::fs::write(&path, serde_json::to_string(&report("X", 3)).unwrap()).unwrap();
        let (back, original) = (load(&path).unwrap(), report("X", 3));
        let (got, want) = (
            &back.scenarios[0].series[0].latency,
            &original.scenarios[0].series[0].latency,
        );
        assert_eq!(got.percentiles, want.percentiles);
        assert_eq!((got.count, got.max_ns), (want.count, want.max_ns));
        assert_eq!(got.spectrum.len(), want.spectrum.len());
        std::fs::write(&path, "{}").unwrap();
        assert!(matches!(load(&path), Err(CompareError::Parse { .. })));
    }
}
