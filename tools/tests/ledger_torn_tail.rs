//! A torn journal tail, as a crash in the middle of a write leaves it, through the ledger
//! processes: a shard (`sequent ledger shard`), the coordinator (`sequent ledger coordinator`),
//! and the offline `sequent ledger apply --journal DIR --resume`. `sequent-journal` cuts a torn
//! tail on open and refuses, as corruption, a bad record at or below the segment's durable hint
//! (docs/journal-format.md, "Recovery on open"); these tests check what that means end to end.
//!
//! Each test does two things to the journal of a process that was SIGKILLed mid-run:
//!
//! 1. **An acknowledged record cannot be torn.** The last synced record (the durable hint's) is
//!    torn at a seeded random byte (byte 0 included: the whole record gone): it is at or below
//!    the hint, so a restart must refuse with
//!    "corruption, not a torn tail" and drop nothing. Every answer a shard or coordinator sent
//!    came after its record was synced, so a record anyone saw answered is always in that range:
//!    the journal never silently loses one. The bytes are then put back.
//! 2. **An unacknowledged record is cut and reported.** One more record is appended and torn at a
//!    seeded random byte, with the durable hint left where it was (never synced, so never
//!    answered: the disk as a crash mid-append leaves it). The restart must cut it, say so on
//!    stderr (`torn tail: cut N bytes at offset O of SEGMENT (from sequence S)`), recover exactly
//!    the state before (same replay count and digest for a shard, same record count for the
//!    coordinator, same balances and output for `apply`) and finish the run: every transfer whole,
//!    no money created or destroyed, the coordinator's journal agreeing with the shards'.
//!
//! `SEQUENT_TORN_SEED` replays a seed (printed; all three tests take it): it picks the inputs, the
//! kill points (counted in decisions), the victim and both cut bytes. Which record is last when
//! the kill lands still depends on the processes' timing.

#[path = "common/shards.rs"]
mod shards;

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Output, Stdio};

use shards::*;

const TRANSFERS: u64 = 400;

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Tears the last synced record of the journal in `journal` and checks that `restart` refuses
/// it; then puts the bytes back.
fn acknowledged_record_is_never_torn(
    journal: &Path,
    rng: &mut Rng,
    restart: impl FnOnce() -> Output,
) {
    let tail = tail(journal);
    assert!(tail.hint >= 1, "nothing was synced yet");
    let synced = tail.record(tail.hint);
    // From byte 0: a synced record wholly zeroed is refused too.
    let (cut, saved) = tear(&tail, &synced, 0, rng);
    let refused = restart();
    let stderr = stderr_of(&refused);
    println!(
        "tore synced record {} of {} at byte {cut}: {}",
        synced.sequence,
        journal.display(),
        stderr.trim()
    );
    assert!(
        !refused.status.success(),
        "a torn acknowledged record was accepted"
    );
    assert!(stderr.contains("corruption, not a torn tail"), "{stderr}");
    saved.restore();
}

fn assert_reports_torn(log: &str, torn: u64) {
    assert!(
        log.contains("torn tail: cut") && log.contains(&format!("(from sequence {torn})")),
        "the torn record {torn} was not reported: {log}"
    );
}

#[test]
fn a_shard_cuts_and_reports_a_torn_tail_and_refuses_to_tear_an_acknowledged_record() {
    let mut rng = Rng::from_env("SEQUENT_TORN_SEED");
    let dir = test_dir("ledger-torn-shard");
    let input = write_input(&dir, &mut rng, TRANSFERS, 300);
    let ports: Vec<u16> = (0..SHARDS).map(|_| free_port()).collect();
    let mut processes = Children::default();
    for index in 0..SHARDS {
        let (child, log) = start_shard(index, &dir, ports[index as usize]);
        processes.0.push(child);
        wait_for_line(&log, "listening");
    }
    let mut coordinator = coordinator_command(&dir, &ports, &input, 300)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = BufReader::new(coordinator.stdout.take().unwrap());
    let mut lines = out.lines().map_while(Result::ok);
    let mut decisions = Vec::new();
    read_decisions(&mut lines, 60 + rng.below(60) as usize, &mut decisions);
    let victim = rng.below(u64::from(SHARDS)) as u32;
    let shard = &mut processes.0[victim as usize];
    shard.kill().unwrap();
    shard.wait().unwrap();
    let journal = dir.join(format!("shard{victim}"));

    // The shard as the kill left it, rebuilt from its journal: what the restart must reach.
    let before = dump_shard(victim, &dir);
    assert!(before.status.success(), "{}", stderr_of(&before));
    let replayed_before = replay_line(&stderr_of(&before)).to_owned();

    acknowledged_record_is_never_torn(&journal, &mut rng, || dump_shard(victim, &dir));

    // A resend of the last input, cut short by a crash while it was being appended.
    let tail = tail(&journal);
    let last = *tail.records.last().unwrap();
    assert_eq!(last.kind, KIND_SHARD_INPUT);
    let (torn, cut) = crash_mid_append(
        &journal,
        KIND_SHARD_INPUT,
        last.timestamp_ns,
        &tail.payload(&last),
        &mut rng,
    );
    let (child, log) = start_shard(victim, &dir, ports[victim as usize]);
    processes.0[victim as usize] = child;
    let log = wait_for_line(&log, "listening");
    println!("shard {victim}: tore record {torn} at byte {cut}; restarted:\n{log}");
    assert_reports_torn(&log, torn);
    assert_eq!(
        replay_line(&log).replace("replayed", ""),
        replayed_before.replace("replayed", ""),
        "the restarted shard is not the shard before the crash"
    );

    decisions.extend(lines);
    assert!(coordinator.wait().unwrap().success());
    drop(processes);
    let whole = check_whole(&dir, TRANSFERS, &decisions);
    println!("{} posted, {} voided", whole.posted, whole.voided);
    assert!(whole.posted > 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_coordinator_cuts_and_reports_a_torn_tail_and_refuses_to_tear_an_acknowledged_record() {
    let mut rng = Rng::from_env("SEQUENT_TORN_SEED");
    let dir = test_dir("ledger-torn-coordinator");
    let input = write_input(&dir, &mut rng, TRANSFERS, 300);
    let ports: Vec<u16> = (0..SHARDS).map(|_| free_port()).collect();
    let mut processes = Children::default();
    for index in 0..SHARDS {
        let (child, log) = start_shard(index, &dir, ports[index as usize]);
        processes.0.push(child);
        wait_for_line(&log, "listening");
    }
    let mut decisions = Vec::new();
    {
        let mut coordinator = coordinator_command(&dir, &ports, &input, 300)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = BufReader::new(coordinator.stdout.take().unwrap());
        let mut lines = out.lines().map_while(Result::ok);
        read_decisions(&mut lines, 60 + rng.below(60) as usize, &mut decisions);
        coordinator.kill().unwrap();
        coordinator.wait().unwrap();
    }
    let journal = dir.join("coordinator");
    acknowledged_record_is_never_torn(&journal, &mut rng, || {
        coordinator_command(&dir, &ports, &input, 300)
            .stdout(Stdio::null())
            .output()
            .unwrap()
    });

    // A copy of the last record, cut short by a crash while it was being appended.
    let tail = tail(&journal);
    let last = *tail.records.last().unwrap();
    let (torn, cut) = crash_mid_append(
        &journal,
        KIND_COORDINATOR,
        last.timestamp_ns,
        &tail.payload(&last),
        &mut rng,
    );
    let log_path = dir.join("coordinator.stderr");
    let mut coordinator = coordinator_command(&dir, &ports, &input, 300)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let out = BufReader::new(coordinator.stdout.take().unwrap());
    decisions.extend(out.lines().map_while(Result::ok));
    assert!(coordinator.wait().unwrap().success());
    let log = std::fs::read_to_string(&log_path).unwrap();
    println!("coordinator: tore record {torn} at byte {cut}; restarted:\n{log}");
    assert_reports_torn(&log, torn);
    // Every record before the torn one recovered.
    assert!(
        log.contains(&format!("recovered {} records", torn - 1)),
        "{log}"
    );
    drop(processes);
    let whole = check_whole(&dir, TRANSFERS, &decisions);
    println!("{} posted, {} voided", whole.posted, whole.voided);
    assert!(whole.posted > 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `sequent ledger apply` input: accounts, funding, then plain transfers (some fail for lack of
/// funds), one result line each, time advancing.
fn apply_input(rng: &mut Rng, transfers: u64) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for id in 1..=8u64 {
        let flags = if id > 1 {
            r#","flags":["debits_must_not_exceed_credits"]"#
        } else {
            ""
        };
        line.clear();
        write!(
            line,
            r#"{{"op":"account","id":{id},"ledger":1,"code":10{flags},"ts":1}}"#
        )
        .unwrap();
        lines.push(line.clone());
    }
    for id in 2..=8u64 {
        lines.push(format!(
            r#"{{"op":"transfer","id":{},"debit":1,"credit":{id},"amount":1000,"ledger":1,"code":1,"ts":1}}"#,
            100 + id
        ));
    }
    for n in 0..transfers {
        let debit = 2 + rng.below(7);
        let credit = 1 + (debit + rng.below(6)) % 8;
        let credit = if credit == debit { 1 } else { credit };
        lines.push(format!(
            r#"{{"op":"transfer","id":{},"debit":{debit},"credit":{credit},"amount":{},"ledger":1,"code":1,"ts":{}}}"#,
            1_000 + n,
            1 + rng.below(400),
            2 + n
        ));
    }
    lines
}

fn apply(input: &Path, journal: Option<&Path>, resume: bool) -> Output {
    let mut command = sequent();
    command
        .args(["ledger", "apply", "--dump-balances", "--input"])
        .arg(input);
    if let Some(journal) = journal {
        command.arg("--journal").arg(journal);
    }
    if resume {
        command.arg("--resume");
    }
    command.output().unwrap()
}

#[test]
fn ledger_apply_resume_cuts_and_reports_a_torn_tail_and_refuses_to_tear_a_synced_record() {
    let mut rng = Rng::from_env("SEQUENT_TORN_SEED");
    let dir = test_dir("ledger-torn-apply");
    let lines = apply_input(&mut rng, 300);
    let full_path = dir.join("input.jsonl");
    std::fs::write(&full_path, lines.join("\n") + "\n").unwrap();
    let uninterrupted = apply(&full_path, None, false);
    assert!(uninterrupted.status.success());
    let uninterrupted = String::from_utf8(uninterrupted.stdout).unwrap();

    // The interrupted run: it had journaled `done` lines when it stopped.
    let done = 20 + rng.below(lines.len() as u64 - 40) as usize;
    let prefix_path = dir.join("prefix.jsonl");
    std::fs::write(&prefix_path, lines[..done].join("\n") + "\n").unwrap();
    let journal = dir.join("journal");
    let first = apply(&prefix_path, Some(&journal), false);
    assert!(first.status.success(), "{}", stderr_of(&first));

    acknowledged_record_is_never_torn(&journal, &mut rng, || {
        apply(&full_path, Some(&journal), true)
    });

    // The next line, cut short by a crash while it was being appended.
    let ts = 2 + (done as u64).saturating_sub(15);
    let (torn, cut) = crash_mid_append(&journal, 2, ts, lines[done].as_bytes(), &mut rng);
    let resumed = apply(&full_path, Some(&journal), true);
    let log = stderr_of(&resumed);
    println!(
        "apply: tore record {torn} (input line {}) at byte {cut}; resumed:\n{log}",
        done + 1
    );
    assert!(resumed.status.success(), "{log}");
    assert_reports_torn(&log, torn);
    assert!(
        log.contains(&format!("resuming after input line {done} ")),
        "{log}"
    );
    // Nothing lost, nothing doubled: the resumed run's results (from line `done + 1`) and final
    // balances are exactly the end of the uninterrupted run's.
    let resumed = String::from_utf8(resumed.stdout).unwrap();
    assert!(
        resumed.lines().count() > 8 && uninterrupted.ends_with(&resumed),
        "resumed output is not the uninterrupted run's end:\n{resumed}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
