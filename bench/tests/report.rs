//! `sequent-bench report --mode smoke` end to end into a temp dir: every scenario entry is
//! reported (measured, or "not built yet"), the JSON reads back, each kept histogram is a valid
//! `.hgrm`, every chart exists as SVG and PNG, the generated block of the doc is replaced with the
//! prose around it kept, and `compare` of the run with itself gives ratios of 1.

use std::path::Path;
use std::process::Command;

use sequent_bench::compare::load;
use sequent_bench::recorder::parse_hgrm_rows;
use sequent_bench::results::Status;

#[test]
fn the_smallest_report_writes_every_artefact() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bench");
    let doc = dir.path().join("BENCHMARKS.md");
    let report_md = dir.path().join("BENCHMARKS-report.md");
    std::fs::write(
        &doc,
        "# Benchmarks\n\nhand-written prose\n\n<!-- sequent-bench report: summary begin -->\nstale\n<!-- sequent-bench report: summary end -->\n\nmore prose\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sequent-bench"))
        .current_dir(&root)
        .args(["report", "--mode", "smoke", "--budget-secs", "300", "--out"])
        .arg(&out)
        .arg("--report-md")
        .arg(&report_md)
        .arg("--doc")
        .arg(&doc)
        .arg("--scratch")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "report failed:\n{stderr}");

    let report = load(&out.join("report.json")).unwrap();
    let status = |name: &str| {
        &report
            .scenarios
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .status
    };
    for name in [
        "baseline", "ring", "journal", "matching", "engine", "feed", "ledger",
    ] {
        assert_eq!(status(name), &Status::Measured, "{name}");
    }
    assert_eq!(status("payments"), &Status::Measured, "payments");
    // The failover scenario runs two sequent-engine processes: the binary `cargo test
    // --workspace` builds next to sequent-bench (alone, `-p sequent-bench` does not build it).
    let engine_bin =
        std::path::Path::new(env!("CARGO_BIN_EXE_sequent-bench")).with_file_name("sequent-engine");
    if engine_bin.exists() {
        assert_eq!(status("failover"), &Status::Measured, "failover");
    } else {
        eprintln!(
            "failover not checked: {} is not built",
            engine_bin.display()
        );
    }
    assert!(report.harness.per_sample_ns > 0.0);
    assert_eq!(report.config.mode, "smoke");

    // The engine scenario measured acks and market-data ticks at every step, beside the echo.
    let engine = report
        .scenarios
        .iter()
        .find(|s| s.name == "engine")
        .unwrap();
    for label in [
        "echo ack",
        "engine-match ack",
        "engine-match md tick",
        "engine-durable ack",
    ] {
        assert!(
            engine
                .series
                .iter()
                .any(|s| s.label == label && s.latency.count > 0),
            "engine has no {label} series"
        );
    }
    assert_eq!(engine.knees.len(), 3, "one knee per target");
    assert!(!engine.ratios.is_empty());

    // Every kept histogram is an .hgrm whose last row holds every sample.
    let mut hgrms = 0;
    for scenario in &report.scenarios {
        for series in &scenario.series {
            let Some(file) = &series.hgrm else { continue };
            let text = std::fs::read_to_string(out.join(file)).unwrap();
            assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)"));
            let rows = parse_hgrm_rows(&text);
            assert_eq!(rows.last().unwrap().2, series.latency.count, "{file}");
            hgrms += 1;
        }
    }
    assert!(hgrms >= 8, "{hgrms} histograms kept");

    // Charts: the engine's spectrum and its rate chart, each as SVG and PNG.
    let page = std::fs::read_to_string(&report_md).unwrap();
    let charts: Vec<&str> = page
        .lines()
        .filter_map(|l| l.strip_prefix("![")?.split("](").nth(1)?.strip_suffix(')'))
        .collect();
    assert!(
        charts.iter().any(|c| c.contains("rate-latency-engine")),
        "{page}"
    );
    for chart in &charts {
        let svg = dir.path().join(chart);
        assert!(svg.exists(), "{}", svg.display());
        assert!(svg.with_extension("png").exists(), "{}", svg.display());
    }
    // Every scenario of the issue exists now: none is listed as not built.
    assert!(!page.contains("**not built yet**"), "{page}");

    // The doc's block was regenerated; the prose around it is untouched.
    let doc_text = std::fs::read_to_string(&doc).unwrap();
    assert!(doc_text.starts_with("# Benchmarks\n\nhand-written prose\n\n"));
    assert!(doc_text.ends_with("<!-- sequent-bench report: summary end -->\n\nmore prose\n"));
    assert!(!doc_text.contains("stale"));
    assert!(doc_text.contains("| engine | measured |"), "{doc_text}");

    // compare of a run with itself: every percentile ratio is 1.00.
    let json = out.join("report.json");
    let compared = Command::new(env!("CARGO_BIN_EXE_sequent-bench"))
        .args(["compare"])
        .arg(&json)
        .arg(&json)
        .output()
        .unwrap();
    assert!(compared.status.success());
    let text = String::from_utf8_lossy(&compared.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("engine / engine-match ack @"))
        .unwrap_or_else(|| panic!("{text}"));
    // Each cell is `A_VALUE UNIT→B_VALUE UNIT RATIO`: the word two after each arrow is a ratio.
    let ratios: Vec<&str> = line
        .split('→')
        .skip(1)
        .filter_map(|cell| cell.split_whitespace().nth(2))
        .collect();
    assert_eq!(ratios.len(), 7, "six percentiles and max: {line}");
    assert!(ratios.iter().all(|r| *r == "1.00"), "{line}");
}
