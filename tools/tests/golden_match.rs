//! Golden scenarios for `sequent match`, run through the real binary.
//!
//! Each `tests/golden/match/NAME.jsonl` is an input; `NAME.expected.jsonl` is the exact stdout.
//! The binary runs with `--dump-book`, or with the arguments in `NAME.args` (one line) when
//! that file exists. `NAME.expected.stderr`, when present, is the exact stderr, and
//! `NAME.expected.exit` the exit code (default 0). Every expected file was checked by hand
//! against the rules in docs/match-format.md; `SEQUENT_BLESS=1` rewrites them from the binary's
//! output (review the diff before committing: blessing is not checking).

mod common {
    pub mod golden;
}

use std::path::{Path, PathBuf};
use std::process::Command;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/match")
}

#[test]
fn golden_scenarios() {
    common::golden::run_scenarios(&golden_dir(), &["match"], "--dump-book", 8);
}

#[test]
fn replay_gives_the_same_output() {
    let input = golden_dir().join("exchange_core_basic.jsonl");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_sequent"))
            .args(["match", "--dump-book", "--input"])
            .arg(&input)
            .output()
            .unwrap()
            .stdout
    };
    assert_eq!(run(), run());
}

#[test]
fn a_missing_file_is_an_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_sequent"))
        .args(["match", "--input", "/nonexistent/orders.jsonl"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with("sequent: cannot open /nonexistent/orders.jsonl"),
        "{stderr}"
    );
}
