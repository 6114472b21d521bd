//! `sequent ledger reconcile`: the golden report (checked by hand against the rules in
//! docs/ledger-format.md) comes out exactly, twice the same; tolerances turn the amount and date
//! breaks into matches; the JSON form carries the same counts; exit 1 while there are breaks.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/ledger_reconcile")
        .join(name)
}

fn reconcile(extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sequent"))
        .args(["ledger", "reconcile", "--input"])
        .arg(golden("ledger.jsonl"))
        .arg("--settlement")
        .arg(golden("settlement.csv"))
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn the_report_is_exact_and_deterministic() {
    let first = reconcile(&[]);
    assert_eq!(first.status.code(), Some(1), "breaks exit 1");
    let want = std::fs::read_to_string(golden("expected.txt")).unwrap();
    assert_eq!(String::from_utf8(first.stdout.clone()).unwrap(), want);
    assert_eq!(reconcile(&[]).stdout, first.stdout);
}

#[test]
fn tolerances_and_json() {
    let out = reconcile(&["--tolerance", "1", "--date-tolerance-days", "3", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["breaks"], 5);
    assert_eq!(doc["counts"]["matched"], 3);
    assert_eq!(doc["counts"]["amount_mismatch"], 0);
    assert_eq!(doc["counts"]["missing_in_ledger"], 2);
    assert_eq!(doc["cut_seq"], 8);
}
