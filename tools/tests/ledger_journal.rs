//! `sequent ledger apply --journal DIR` puts every input line on record before applying it, and
//! `sequent ledger prove --journal DIR ID` proves the record that carried transfer ID: the JSON
//! proof verifies with `sequent journal check-proof`, without the journal.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sequent-ledger-journal-{name}-{}",
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
fn a_journaled_transfer_has_a_verifiable_inclusion_proof() {
    let dir = temp_dir("prove");
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/ledger/two_phase.jsonl");
    let run = sequent(&[
        "ledger",
        "apply",
        "--input",
        input.to_str().unwrap(),
        "--journal",
        dir.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let expected =
        std::fs::read_to_string(input.with_file_name("two_phase.expected.jsonl")).unwrap();
    let stdout = String::from_utf8(run.stdout).unwrap();
    assert!(
        expected.starts_with(&stdout),
        "journaling changed the results"
    );
    assert!(String::from_utf8_lossy(&run.stderr).contains("18 lines appended"));

    let proof = sequent(&[
        "ledger",
        "prove",
        "--journal",
        dir.to_str().unwrap(),
        "22",
        "--json",
    ]);
    assert!(
        proof.status.success(),
        "{}",
        String::from_utf8_lossy(&proof.stderr)
    );
    assert!(String::from_utf8_lossy(&proof.stderr).contains("transfer 22 is record 8"));
    let mut check = Command::new(env!("CARGO_BIN_EXE_sequent"))
        .args(["journal", "check-proof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(&proof.stdout)
        .unwrap();
    let checked = check.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stdout)
    );

    let missing = sequent(&["ledger", "prove", "--journal", dir.to_str().unwrap(), "777"]);
    assert_eq!(missing.status.code(), Some(1));
    let _ = std::fs::remove_dir_all(&dir);
}
