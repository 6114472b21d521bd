//! Golden scenarios for `sequent ledger apply`, run through the real binary.
//!
//! Each `tests/golden/ledger/NAME.jsonl` is an input; `NAME.expected.jsonl` is the exact stdout.
//! The binary runs with `--dump-balances`, or with the arguments in `NAME.args` (one line) when
//! that file exists. `NAME.expected.stderr`, when present, is the exact stderr, and
//! `NAME.expected.exit` the exit code (default 0). Every expected file was checked by hand
//! against the rules in docs/ledger-format.md; `SEQUENT_BLESS=1` rewrites them from the binary's
//! output (review the diff before committing: blessing is not checking).

use std::path::{Path, PathBuf};
use std::process::Command;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/ledger")
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

#[test]
fn golden_scenarios() {
    let bless = std::env::var_os("SEQUENT_BLESS").is_some();
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.ends_with(".jsonl") && !name.ends_with(".expected.jsonl")
        })
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 7, "golden scenarios missing: {inputs:?}");
    let mut failures = Vec::new();
    for input in &inputs {
        let stem = input.file_stem().unwrap().to_str().unwrap();
        let sibling = |ext: &str| input.with_file_name(format!("{stem}.{ext}"));
        let args = read(&sibling("args")).unwrap_or_else(|| "--dump-balances".to_owned());
        let output = Command::new(env!("CARGO_BIN_EXE_sequent"))
            .args(["ledger", "apply"])
            .arg("--input")
            .arg(input)
            .args(args.split_whitespace())
            .output()
            .unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        let code = output.status.code().unwrap_or(-1);
        if bless {
            std::fs::write(sibling("expected.jsonl"), &stdout).unwrap();
            if !stderr.is_empty() || sibling("expected.stderr").exists() {
                std::fs::write(sibling("expected.stderr"), &stderr).unwrap();
            }
            if code != 0 {
                std::fs::write(sibling("expected.exit"), format!("{code}\n")).unwrap();
            }
            continue;
        }
        let want_stdout = read(&sibling("expected.jsonl")).unwrap_or_default();
        let want_stderr = read(&sibling("expected.stderr")).unwrap_or_default();
        let want_code: i32 =
            read(&sibling("expected.exit")).map_or(0, |s| s.trim().parse().unwrap());
        if stdout != want_stdout {
            failures.push(format!(
                "{stem}: stdout differs\n--- want\n{want_stdout}--- got\n{stdout}"
            ));
        }
        // The path of the input appears in no message, so stderr compares exactly.
        if stderr != want_stderr {
            failures.push(format!(
                "{stem}: stderr differs\n--- want\n{want_stderr}--- got\n{stderr}"
            ));
        }
        if code != want_code {
            failures.push(format!("{stem}: exit code {code}, want {want_code}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn replay_gives_the_same_output() {
    let input = golden_dir().join("linked_chains.jsonl");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_sequent"))
            .args(["ledger", "apply", "--dump-balances", "--input"])
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
        .args(["ledger", "apply", "--input", "/nonexistent/ledger.jsonl"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with("sequent: cannot open /nonexistent/ledger.jsonl"),
        "{stderr}"
    );
}
