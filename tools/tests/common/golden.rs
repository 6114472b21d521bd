//! The golden-scenario runner shared by `golden_match.rs` and `golden_ledger.rs`.
//!
//! Each `NAME.jsonl` in a scenario directory is an input; `NAME.expected.jsonl` is the exact
//! stdout. `NAME.expected.stderr`, when present, is the exact stderr, and `NAME.expected.exit` the
//! exit code (default 0). `SEQUENT_BLESS=1` rewrites them from the binary's output (review the
//! diff before committing: blessing is not checking).

use std::path::{Path, PathBuf};
use std::process::Command;

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Runs every `NAME.jsonl` in `dir` through `sequent COMMAND.. --input NAME.jsonl ARGS` (ARGS from
/// `NAME.args`, else `default_args`) and compares stdout, stderr and the exit code with the
/// `NAME.expected.*` files; `SEQUENT_BLESS=1` rewrites them instead. At least `scenarios_min`
/// scenarios must be there.
pub fn run_scenarios(dir: &Path, command: &[&str], default_args: &str, scenarios_min: usize) {
    let bless = std::env::var_os("SEQUENT_BLESS").is_some();
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.ends_with(".jsonl") && !name.ends_with(".expected.jsonl")
        })
        .collect();
    inputs.sort();
    assert!(
        inputs.len() >= scenarios_min,
        "golden scenarios missing: {inputs:?}"
    );
    let mut failures = Vec::new();
    for input in &inputs {
        let stem = input.file_stem().unwrap().to_str().unwrap();
        let sibling = |ext: &str| input.with_file_name(format!("{stem}.{ext}"));
        let args = read(&sibling("args")).unwrap_or_else(|| default_args.to_owned());
        let output = Command::new(env!("CARGO_BIN_EXE_sequent"))
            .args(command)
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
