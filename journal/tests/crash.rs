//! Crash test: a child process appends under load with group commit and is killed with SIGKILL at
//! a random moment, many times. After each kill, opening the journal must succeed (cutting a torn
//! tail if the kill landed mid-append), every record the child reported durable must be there with
//! its exact bytes, and the whole journal must verify (checksums, chain, seals, Merkle roots).
//!
//! The child is this test binary itself, run with `SEQUENT_CRASH_CHILD` set. Rounds and seed:
//! `SEQUENT_CRASH_ROUNDS` (default 12), `SEQUENT_CRASH_SEED` (printed, to replay a failure).

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{TempDir, kind, payload, small_config};
use sequent_journal::{Durability, Reader, Writer, verify};

#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("SEQUENT_CRASH_CHILD") else {
        return; // not a child: nothing to do
    };
    let config = small_config(Durability::GroupCommit {
        records: 16,
        interval: Duration::from_micros(100),
    });
    let mut writer = Writer::open(dir.as_ref(), &config).unwrap();
    let watch = writer.durable_watch();
    let mut stdout = std::io::stdout().lock();
    if let Some(truncation) = &writer.open_report().truncated {
        writeln!(stdout, "truncated {}", truncation.from_sequence).unwrap();
    }
    let mut reported = 0;
    loop {
        let sequence = writer.next_sequence();
        writer
            .append(kind(sequence), sequence, &payload(sequence))
            .unwrap();
        let durable = watch.durable_sequence();
        if durable > reported {
            reported = durable;
            writeln!(stdout, "durable {durable}").unwrap();
            stdout.flush().unwrap();
        }
    }
}

fn next_random(state: &mut u64) -> u64 {
    // xorshift64*: enough to spread kill times; seeded for replay.
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

#[test]
fn sigkill_at_random_points_loses_nothing_durable() {
    if std::env::var("SEQUENT_CRASH_CHILD").is_ok() {
        return;
    }
    let rounds: u32 = std::env::var("SEQUENT_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let seed: u64 = std::env::var("SEQUENT_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED_CAFE);
    eprintln!("crash test: {rounds} rounds, SEQUENT_CRASH_SEED={seed}");
    let mut random = seed | 1;
    let dir = TempDir::new("crash");
    let exe = std::env::current_exe().unwrap();
    let mut durable_max = 0u64;
    let mut truncations = 0;
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env("SEQUENT_CRASH_CHILD", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill the child even when an assertion below fails, or it appends forever.
        struct KillOnDrop(std::process::Child);
        impl Drop for KillOnDrop {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let stdout = child.stdout.take().unwrap();
        let mut child = KillOnDrop(child);
        let (sender, receiver) = mpsc::channel();
        let lines = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait for the child's first durable report, so every round appends something, then let
        // it run a random 1..40 ms more.
        let mut seen = Vec::new();
        loop {
            let line = receiver
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("round {round}: the child reported nothing durable"));
            let durable = line.starts_with("durable ");
            seen.push(line);
            if durable {
                break;
            }
        }
        let delay = 1 + next_random(&mut random) % 40;
        std::thread::sleep(Duration::from_millis(delay));
        child.0.kill().unwrap(); // SIGKILL
        child.0.wait().unwrap();
        lines.join().unwrap();
        let mut reported = 0u64;
        for line in seen.into_iter().chain(receiver.try_iter()) {
            if let Some(value) = line.strip_prefix("durable ") {
                reported = reported.max(value.parse().unwrap());
            } else if line.starts_with("truncated ") {
                truncations += 1;
            }
        }
        assert!(reported >= durable_max, "durable sequence went backwards");
        durable_max = reported;

        // Recovery: open (cuts a torn tail), then every durable record is there, byte for byte.
        let writer = Writer::open(dir.path(), &small_config(Durability::None))
            .unwrap_or_else(|error| panic!("round {round} (seed {seed}): open failed: {error}"));
        if writer.open_report().truncated.is_some() {
            truncations += 1;
        }
        let next = writer.next_sequence();
        writer.close().unwrap();
        assert!(
            next > durable_max,
            "round {round} (seed {seed}): durable {durable_max} but the journal ends at {}",
            next - 1
        );
        let mut reader = Reader::open(dir.path()).unwrap();
        let mut expected = 1;
        while let Some(record) = reader.next().unwrap() {
            assert_eq!(record.sequence, expected);
            assert_eq!(record.payload, &payload(expected)[..], "record {expected}");
            assert_eq!(record.kind, kind(expected));
            expected += 1;
        }
        assert_eq!(expected, next);
        let report = verify(dir.path(), |_| {}).unwrap();
        assert!(
            report.is_intact(),
            "round {round} (seed {seed}): {:?}",
            report.problems
        );
    }
    eprintln!(
        "crash test: {rounds} kills, {durable_max} records durable at the end, {truncations} torn tails cut"
    );
}
