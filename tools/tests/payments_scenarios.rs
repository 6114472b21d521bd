//! `sequent payments scenario NAME --quick`, each scenario end to end as a user runs it: the
//! `sequent` binary (the gateway in process, two simulator processes of the same binary), exit 0,
//! the lines that say what happened, then the PAN scan over everything it printed and every file
//! it wrote except the simulators' own (`sim/`: their configs and clearing files).
//!
//! The scenarios run one at a time (a lock): each starts three processes with a few dozen
//! threads that block, and the checks of some of them (peak's "kept up") are about time.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs one scenario; returns everything it printed (stdout then stderr) and its folder.
fn scenario(name: &str) -> (String, tempfile::TempDir) {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = Command::new(env!("CARGO_BIN_EXE_sequent"))
        .args(["payments", "scenario", name, "--quick", "--dir"])
        .arg(&run)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{name} failed ({:?}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains(&format!("verdict: PASS {name}")),
        "{stdout}"
    );
    assert!(!stdout.contains("FAILED"), "{stdout}");
    pan_scan(&[&out.stdout, &out.stderr], &run);
    (stdout, dir)
}

/// No 13–19 digit Luhn-valid run in what was printed, nor in any file outside `sim/`.
fn pan_scan(printed: &[&[u8]], run: &Path) {
    for bytes in printed {
        assert!(
            !sequent_payments_node::edge::contains_pan(bytes),
            "a card number was printed"
        );
    }
    let files = walk(run, &run.join("sim"));
    assert!(
        files.iter().any(|f| f.starts_with(run.join("journal"))),
        "the scan must read the journal: {files:?}"
    );
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        assert!(
            !sequent_payments_node::edge::contains_pan(&bytes),
            "a card number in {}",
            file.display()
        );
    }
    // The scan can fail: it recognises a test card.
    assert!(sequent_payments_node::edge::contains_pan(
        b"card 4000000000000002 here"
    ));
}

fn walk(dir: &Path, except: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.starts_with(except) {
            continue;
        }
        if p.is_dir() {
            out.extend(walk(&p, except));
        } else {
            out.push(p);
        }
    }
    out
}

/// The number after `label` on the first line holding it.
fn number_after(text: &str, label: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.contains(label))
        .unwrap_or_else(|| panic!("no `{label}` in\n{text}"));
    let rest = &line[line.find(label).unwrap() + label.len()..];
    rest.split_whitespace()
        .next()
        .and_then(|w| w.trim_matches(|c: char| !c.is_ascii_digit()).parse().ok())
        .unwrap_or_else(|| panic!("no number after `{label}` in {line}"))
}

#[test]
fn peak_sustains_authorisations_at_realistic_latency() {
    let (out, _dir) = scenario("peak");
    assert!(out.contains("authorisations/s sustained"), "{out}");
    assert_eq!(number_after(&out, "no-route"), 0, "{out}");
    assert!(out.contains("reconciliation acq-a:"), "{out}");
}

#[test]
fn outage_fails_over_reverses_and_reconciles() {
    let (out, _dir) = scenario("outage");
    assert!(out.contains("acq-a: ok outage drop"), "{out}");
    assert!(number_after(&out, "breaker openings") >= 1, "{out}");
    assert!(number_after(&out, ", retries") >= 1, "{out}");
    assert!(number_after(&out, "reversals_acknowledged") >= 1, "{out}");
    assert!(
        out.contains(" 0 with more than one authorisation standing"),
        "{out}"
    );
}

#[test]
fn duplicates_answer_the_same_conflict_and_retransmit() {
    let (out, _dir) = scenario("duplicates");
    assert!(out.contains("order-1 with another amount: 409"), "{out}");
    assert!(number_after(&out, "\"duplicates\":") >= 1, "{out}");
}

#[test]
fn partial_approvals_shrink_the_hold() {
    let (out, _dir) = scenario("partial");
    assert!(number_after(&out, "partial_approvals") >= 3, "{out}");
    assert!(out.contains("authorised 50000"), "{out}");
}

#[test]
fn late_answers_are_reversed_and_recorded() {
    let (out, _dir) = scenario("late");
    assert!(number_after(&out, "late_answers") >= 1, "{out}");
    assert!(number_after(&out, "reversals_acknowledged") >= 1, "{out}");
}

#[test]
fn settlement_mismatch_reports_dropped_doubled_and_altered_rows() {
    let (out, _dir) = scenario("settlement-mismatch");
    assert!(number_after(&out, "missing") >= 1, "{out}");
    assert!(out.contains("  duplicated: payment"), "{out}");
    assert!(out.contains("  amount_mismatch: payment"), "{out}");
}
