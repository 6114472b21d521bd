//! `sequent match --journal DIR` puts every well-formed input line on record before applying it;
//! `--from-journal DIR` replays them and must print exactly the same events, and the journal
//! verifies.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/match")
        .join(name)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sequent-match-journal-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn sequent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sequent"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_journaled_run_replays_to_the_same_events() {
    for scenario in [
        "exchange_core_basic",
        "liquibook_ioc_fok",
        "stp_post_only",
        "day_mass_cancel",
    ] {
        let dir = temp_dir(scenario);
        let input = golden(&format!("{scenario}.jsonl"));
        let first = sequent(&[
            "match",
            "--input",
            input.to_str().unwrap(),
            "--dump-book",
            "--journal",
            dir.to_str().unwrap(),
        ]);
        assert!(
            first.status.success(),
            "{}",
            String::from_utf8_lossy(&first.stderr)
        );
        assert!(String::from_utf8_lossy(&first.stderr).contains("durable through sequence"));
        let expected = std::fs::read(golden(&format!("{scenario}.expected.jsonl"))).unwrap();
        assert_eq!(
            first.stdout, expected,
            "{scenario}: journaling changed the events"
        );

        let replay = sequent(&[
            "match",
            "--from-journal",
            dir.to_str().unwrap(),
            "--dump-book",
        ]);
        assert!(
            replay.status.success(),
            "{}",
            String::from_utf8_lossy(&replay.stderr)
        );
        assert_eq!(replay.stdout, first.stdout, "{scenario}: replay differs");

        let verify = sequent(&["journal", "verify", dir.to_str().unwrap()]);
        assert!(
            verify.status.success(),
            "{}",
            String::from_utf8_lossy(&verify.stdout)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn skipped_lines_are_not_journaled() {
    let dir = temp_dir("skip");
    let input = golden("skip_invalid.jsonl");
    let first = sequent(&[
        "match",
        "--input",
        input.to_str().unwrap(),
        "--skip-invalid",
        "--journal",
        dir.to_str().unwrap(),
    ]);
    assert!(first.status.success());
    let lines = std::fs::read_to_string(&input).unwrap();
    let dump = sequent(&["journal", "dump", dir.to_str().unwrap(), "--json"]);
    let records = String::from_utf8(dump.stdout).unwrap().lines().count();
    let skipped = String::from_utf8_lossy(&first.stderr)
        .matches("(skipped)")
        .count();
    assert!(skipped > 0);
    assert_eq!(
        records,
        lines.lines().filter(|l| !l.trim().is_empty()).count() - skipped
    );
    let replay = sequent(&[
        "match",
        "--from-journal",
        dir.to_str().unwrap(),
        "--skip-invalid",
    ]);
    assert_eq!(replay.stdout, first.stdout);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn input_and_from_journal_exclude_each_other() {
    let out = sequent(&["match", "--input", "x", "--from-journal", "y"]);
    assert_eq!(out.status.code(), Some(2));
    let out = sequent(&["match"]);
    assert_eq!(out.status.code(), Some(2));
}
