//! SIGKILL crash recovery of `sequent ledger apply --journal DIR --resume`.
//!
//! A large generated input (accounts, plain, pending with and without timeouts, posts, voids,
//! linked chains, retries, failures; sequenced time advancing) is applied by a child process that
//! is killed with SIGKILL at seeded points (after a seeded number of result lines has reached
//! this test, or at once, during recovery), then restarted on the same journal with the same
//! input and `--resume` (which skips the input lines the journal already holds). At the end:
//!
//! - the final balances equal those of one uninterrupted run without a journal;
//! - every run's result lines are a contiguous stretch of the uninterrupted run's, in order, and
//!   no transfer is acknowledged `ok` twice: nothing was applied twice, nothing skipped (a killed
//!   run's results for lines it journaled but had not yet synced are never printed: results are
//!   released only after the sync that makes their lines durable);
//! - every transfer acknowledged `ok` by any run is in the final ledger exactly as sent: sent
//!   again on the same journal, each answers `exists`.
//!
//! `SEQUENT_CRASH_SEED` replays a seed (printed); `SEQUENT_CRASH_LINES` sets the input size.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const ACCOUNTS: u64 = 64;

/// The input: one JSON object per line.
fn generate(seed: u64, lines: usize) -> String {
    let mut rng = Rng(seed | 1);
    let mut out = String::new();
    let mut ts = 1u64;
    for id in 1..=ACCOUNTS {
        let flags = if id > 1 && id % 2 == 0 {
            r#","flags":["debits_must_not_exceed_credits"]"#
        } else {
            ""
        };
        writeln!(
            out,
            r#"{{"op":"account","id":{id},"ledger":1,"code":10{flags},"ts":{ts}}}"#
        )
        .unwrap();
    }
    let mut next_id = 1_000u64;
    for id in 2..=ACCOUNTS {
        next_id += 1;
        writeln!(
            out,
            r#"{{"op":"transfer","id":{next_id},"debit":1,"credit":{id},"amount":1000000,"ledger":1,"code":1,"ts":{ts}}}"#
        )
        .unwrap();
    }
    let mut open_pending: Vec<u64> = Vec::new();
    let mut retryable: Vec<String> = Vec::new();
    let mut written = 0;
    let account = |rng: &mut Rng| 2 + rng.below(ACCOUNTS - 1);
    while written < lines {
        ts += rng.below(3);
        let kind = rng.below(100);
        let (debit, mut credit) = (account(&mut rng), account(&mut rng));
        if credit == debit {
            credit = if debit == ACCOUNTS { 2 } else { debit + 1 };
        }
        let amount = 1 + rng.below(5_000);
        next_id += 1;
        let id = next_id;
        match kind {
            0..55 => {
                let line = format!(
                    r#"{{"op":"transfer","id":{id},"debit":{debit},"credit":{credit},"amount":{amount},"ledger":1,"code":1,"ts":{ts}}}"#
                );
                writeln!(out, "{line}").unwrap();
                retryable.push(line);
                written += 1;
            }
            55..70 => {
                let timeout = if rng.below(3) == 0 {
                    format!(r#","timeout_ns":{}"#, 1 + rng.below(200))
                } else {
                    String::new()
                };
                writeln!(
                    out,
                    r#"{{"op":"transfer","id":{id},"debit":{debit},"credit":{credit},"amount":{amount},"ledger":1,"code":1,"flags":["pending"]{timeout},"ts":{ts}}}"#
                )
                .unwrap();
                open_pending.push(id);
                written += 1;
            }
            70..84 if !open_pending.is_empty() => {
                let pick = rng.below(open_pending.len() as u64) as usize;
                let pending = open_pending.swap_remove(pick);
                let (flag, amount) = if kind < 78 {
                    ("post_pending", if rng.below(2) == 0 { 0 } else { 1 })
                } else {
                    ("void_pending", 0)
                };
                writeln!(
                    out,
                    r#"{{"op":"transfer","id":{id},"pending_id":{pending},"amount":{amount},"flags":["{flag}"],"ts":{ts}}}"#
                )
                .unwrap();
                written += 1;
            }
            84..92 => {
                let members = 2 + rng.below(3);
                for member in 0..members {
                    let linked = if member + 1 < members {
                        r#","flags":["linked"]"#
                    } else {
                        ""
                    };
                    let (d, c) = (account(&mut rng), account(&mut rng));
                    let c = if c == d {
                        if d == ACCOUNTS { 2 } else { d + 1 }
                    } else {
                        c
                    };
                    writeln!(
                        out,
                        r#"{{"op":"transfer","id":{},"debit":{d},"credit":{c},"amount":{},"ledger":1,"code":1{linked},"ts":{ts}}}"#,
                        id * 10 + member,
                        1 + rng.below(20_000),
                    )
                    .unwrap();
                    written += 1;
                }
            }
            92..96 if !retryable.is_empty() => {
                // Each line is retried at most once, so its `exists` answer is unique.
                let pick = rng.below(retryable.len() as u64) as usize;
                let line = retryable.swap_remove(pick);
                writeln!(out, "{line}").unwrap();
                written += 1;
            }
            _ => {
                // Far more than any account holds: exceeds_credits on the even (limited) ones.
                writeln!(
                    out,
                    r#"{{"op":"transfer","id":{id},"debit":{},"credit":{credit},"amount":900000000,"ledger":1,"code":1,"ts":{ts}}}"#,
                    2 * (1 + rng.below(ACCOUNTS / 2 - 1)),
                )
                .unwrap();
                written += 1;
            }
        }
    }
    out
}

fn sequent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sequent"))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sequent-ledger-crash-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn apply(args: &[&str]) -> (Vec<String>, String) {
    let output = sequent()
        .args(["ledger", "apply"])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{args:?}: {stderr}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    (stdout.lines().map(str::to_owned).collect(), stderr)
}

/// Starts a resumed run and SIGKILLs it once `acks` result lines have arrived (0: after
/// `delay`). Returns the complete result lines it printed before the kill.
fn killed_run(
    input: &Path,
    journal: &Path,
    every: &str,
    acks: usize,
    delay: Duration,
) -> Vec<String> {
    let mut child = sequent()
        .args(["ledger", "apply", "--resume", "--snapshot-every", every])
        .arg("--input")
        .arg(input)
        .arg("--journal")
        .arg(journal)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    if acks == 0 {
        std::thread::sleep(delay);
    } else {
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while seen.len() < acks {
            line.clear();
            // Blocking read: the child writes, or ends and the pipe closes.
            if stdout.read_line(&mut line).unwrap() == 0 || !line.ends_with('\n') {
                break;
            }
            seen.push(line.trim_end().to_owned());
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    seen
}

#[test]
fn sigkilled_runs_resume_to_the_uninterrupted_result() {
    let seed = std::env::var("SEQUENT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let lines: usize = std::env::var("SEQUENT_CRASH_LINES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150_000);
    println!("seed = {seed} (replay with SEQUENT_CRASH_SEED={seed})");
    let dir = temp_dir("run");
    let input = dir.join("input.jsonl");
    std::fs::write(&input, generate(seed, lines)).unwrap();
    let input_s = input.to_str().unwrap();

    let (reference, _) = apply(&["--input", input_s, "--dump-balances"]);
    let (reference_results, reference_balances): (Vec<_>, Vec<_>) = reference
        .into_iter()
        .partition(|l| !l.starts_with(r#"{"ev":"balance""#));
    assert!(reference_results.len() > lines, "every line answers");

    let journal = dir.join("journal");
    // Snapshots every eighth of the input, kills after a sixteenth to an eighth of it: the
    // killed runs get past the first snapshots, so recovery starts from one.
    let every = (lines / 8).max(100).to_string();
    let mut rng = Rng(seed ^ 0x5eed);
    let mut runs: Vec<Vec<String>> = Vec::new();
    for kill in 0..6 {
        let (acks, delay) = if kill == 2 {
            // During recovery or the first lines.
            (0, Duration::from_millis(rng.below(150)))
        } else {
            let sixteenth = lines as u64 / 16;
            (
                (sixteenth + rng.below(sixteenth + 1)) as usize,
                Duration::ZERO,
            )
        };
        runs.push(killed_run(&input, &journal, &every, acks, delay));
    }
    let (last, stderr) = apply(&[
        "--input",
        input_s,
        "--journal",
        journal.to_str().unwrap(),
        "--resume",
        "--snapshot-every",
        &every,
        "--dump-balances",
    ]);
    println!("final run: {stderr}");
    assert!(
        stderr.contains("from the snapshot at record"),
        "recovery did not start from a snapshot"
    );
    let (last_results, balances): (Vec<_>, Vec<_>) = last
        .into_iter()
        .partition(|l| !l.starts_with(r#"{"ev":"balance""#));
    runs.push(last_results);
    assert_eq!(
        balances, reference_balances,
        "final balances differ from the uninterrupted run's"
    );

    // Each run's results: a contiguous stretch of the reference, later than the previous run's.
    let mut at = 0usize;
    let mut acked_ok = BTreeSet::new();
    for (k, run) in runs.iter().enumerate() {
        println!("run {k}: {} result lines", run.len());
        let Some(first) = run.first() else { continue };
        let start = at
            + reference_results[at..]
                .iter()
                .position(|l| l == first)
                .unwrap_or_else(|| panic!("run {k}: {first} is not in the reference after {at}"));
        assert_eq!(
            &reference_results[start..start + run.len()],
            &run[..],
            "run {k} departs from the uninterrupted run"
        );
        at = start + run.len();
        for l in run {
            if let Some(id) = l.strip_prefix(r#"{"ev":"ok","id":"#) {
                assert!(acked_ok.insert(id.to_owned()), "{l} acknowledged twice");
            }
        }
    }
    // Results are released only once the journal holding their lines is synced, so a run killed
    // after journaling lines but before releasing their results never answers them (they were
    // never acknowledged; the probe below finds them applied all the same). The final run answers
    // what the journal did not hold, through to the end of the input.
    if runs.last().is_some_and(|last| !last.is_empty()) {
        assert_eq!(
            at,
            reference_results.len(),
            "the last run ends where the input ends"
        );
    }

    // Every transfer acknowledged `ok` is in the ledger as sent: every line the uninterrupted
    // run answered `ok` (a superset, whole chains included; result lines follow input lines
    // one to one), resent, answers `exists`.
    let text = std::fs::read_to_string(&input).unwrap();
    let probe: String = text
        .lines()
        .zip(&reference_results)
        .filter(|(l, r)| l.starts_with(r#"{"op":"transfer""#) && r.starts_with(r#"{"ev":"ok""#))
        .map(|(l, _)| format!("{l}\n"))
        .collect();
    assert!(
        acked_ok.len() <= probe.lines().count(),
        "more acknowledgements than transfers"
    );
    let probe_path = dir.join("probe.jsonl");
    std::fs::write(&probe_path, &probe).unwrap();
    let (answers, _) = apply(&[
        "--input",
        probe_path.to_str().unwrap(),
        "--journal",
        journal.to_str().unwrap(),
    ]);
    assert_eq!(answers.len(), probe.lines().count());
    for a in &answers {
        assert!(
            a.starts_with(r#"{"ev":"exists""#),
            "resent acknowledged transfer: {a}"
        );
    }
    println!(
        "{} acknowledged transfers resent, all exist; {} killed runs",
        answers.len(),
        runs.len() - 1
    );
    let _ = std::fs::remove_dir_all(&dir);
}
