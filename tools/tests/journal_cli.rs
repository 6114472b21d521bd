//! End-to-end tests of `sequent journal`: each runs the real binary on a journal in its own
//! temporary directory (removed when the test ends, pass or fail), and checks the output against
//! what was written, recomputed independently here from `load`'s documented payload formula.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sequent_journal::{Config, Durability, Writer};
use serde_json::Value;

/// Records every loaded fixture holds: three 1 MiB segments (two sealed) at 232 bytes a record.
const RECORDS: u64 = 10_000;
const PAYLOAD_BYTES: usize = 200;
/// First sequence of the second segment: (1 MiB − 4096 header bytes) / 232 bytes per record,
/// less the room kept for the end marker, is 4501 records in the first.
const SECOND_SEGMENT_FIRST: u64 = 4502;
/// Footprint of one record of the fixture: 32-byte header + 200 bytes of payload.
const RECORD_FOOTPRINT: u64 = 232;
/// Records start after the header page.
const RECORDS_OFFSET: u64 = 4096;
/// The longest a test waits for a child before failing.
const CHILD_TIMEOUT: Duration = Duration::from_secs(10);

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("sequent-journal-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create the temporary directory");
        Self(path)
    }

    fn journal(&self) -> PathBuf {
        self.0.join("journal")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sequent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sequent"))
}

fn run(args: &[&str]) -> Output {
    sequent().args(args).output().expect("run sequent")
}

fn run_with_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = sequent()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sequent");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin)
        .expect("write stdin");
    child.wait_with_output().expect("wait for sequent")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("stderr is UTF-8")
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exited, not killed")
}

/// `load`'s documented payload: `seq.to_le_bytes()` repeated to `len` bytes, truncated.
fn payload(sequence: u64, len: usize) -> Vec<u8> {
    sequence
        .to_le_bytes()
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// A journal of [`RECORDS`] records written by `sequent journal load`.
fn loaded(name: &str) -> TempDir {
    let dir = TempDir::new(name);
    let journal = dir.journal();
    let output = run(&[
        "journal",
        "load",
        path_str(&journal),
        "--records",
        &RECORDS.to_string(),
        "--payload",
        &PAYLOAD_BYTES.to_string(),
        "--segment-mib",
        "1",
        "--durability",
        "none",
    ]);
    assert_eq!(code(&output), 0, "load failed: {}", stderr(&output));
    assert!(
        output.stdout.is_empty(),
        "without --report-durable stdout stays empty"
    );
    dir
}

/// Flips one hex digit of the value of `"key":"…"` (its first digit, or that of element `index`
/// of an array value).
fn tamper(json: &str, key: &str, index: usize) -> String {
    let mut doc: Value = serde_json::from_str(json).expect("prove --json is JSON");
    let slot = match &mut doc[key] {
        Value::Array(items) => &mut items[index],
        other => other,
    };
    let text = slot.as_str().expect("a hex string").to_owned();
    let first = if text.starts_with('0') { '1' } else { '0' };
    *slot = Value::String(format!("{first}{}", &text[1..]));
    serde_json::to_string(&doc).expect("serialize")
}

#[test]
fn load_reports_durable_sequences_in_increasing_order_up_to_the_last() {
    let dir = TempDir::new("durable");
    let output = run(&[
        "journal",
        "load",
        path_str(&dir.journal()),
        "--records",
        "3000",
        "--payload",
        "16",
        "--segment-mib",
        "1",
        "--durability",
        "group",
        "--group-records",
        "64",
        "--report-durable",
    ]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let durable: Vec<u64> = stdout(&output)
        .lines()
        .map(|line| {
            line.strip_prefix("durable ")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("not a `durable <seq>` line: {line:?}"))
        })
        .collect();
    assert!(durable.windows(2).all(|w| w[0] < w[1]), "{durable:?}");
    assert_eq!(
        durable.last(),
        Some(&3000),
        "the last line covers every record"
    );
}

#[test]
fn load_continues_an_existing_journal_with_its_own_segment_length() {
    // The fixture's active segment is 1 MiB; a second run without --segment-mib (64 MiB for a
    // new journal) appends more than the room left in it, so it must roll at 1 MiB.
    let dir = loaded("continue");
    let journal = dir.journal();
    let output = run(&[
        "journal",
        "load",
        path_str(&journal),
        "--records",
        &RECORDS.to_string(),
        "--payload",
        &PAYLOAD_BYTES.to_string(),
    ]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let report = sequent_journal::verify(&journal, |_| {}).expect("verify");
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.records, 2 * RECORDS);
    // 20 000 records at 4501 a segment.
    assert_eq!(report.segments.len(), 5);
    for entry in std::fs::read_dir(&journal).expect("list") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "journal") {
            let len = std::fs::metadata(&path).expect("stat").len();
            assert_eq!(len, 1 << 20, "{} is not 1 MiB", path.display());
        }
    }
}

#[test]
fn verify_of_an_intact_journal_exits_0_and_prints_the_head_the_library_computes() {
    let dir = loaded("verify");
    let journal = dir.journal();
    let output = run(&["journal", "verify", path_str(&journal), "--verbose"]);
    let text = stdout(&output);
    assert_eq!(code(&output), 0, "{text}{}", stderr(&output));
    let head = sequent_journal::verify(&journal, |_| {})
        .expect("verify")
        .head
        .expect("an intact chain has a head");
    let head_hex = sequent_journal::merkle::to_hex(&head);
    assert!(text.contains(&format!("head: {head_hex}\n")), "{text}");
    assert!(
        text.contains(&format!("records: {RECORDS} (sequences 1..={RECORDS})")),
        "{text}"
    );
    assert!(
        text.contains("segments: 3 present, 0 removed, 2 sealed"),
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("segment ")).count(),
        3,
        "{text}"
    );
    assert!(!text.contains("problem:"), "{text}");
    assert_eq!(
        stderr(&output),
        "",
        "no progress bar when stderr is not a terminal"
    );

    let expected = run(&[
        "journal",
        "verify",
        path_str(&journal),
        "--expect-head",
        &head_hex,
    ]);
    assert_eq!(code(&expected), 0, "{}", stdout(&expected));
    let other_head = format!(
        "{}{}",
        if head_hex.starts_with('0') { '1' } else { '0' },
        &head_hex[1..]
    );
    let unexpected = run(&[
        "journal",
        "verify",
        path_str(&journal),
        "--expect-head",
        &other_head,
    ]);
    assert_eq!(code(&unexpected), 1);
    assert!(stdout(&unexpected).contains(&format!("problem: head {head_hex} differs")));
}

#[test]
fn dump_json_gives_every_record_as_written() {
    let dir = loaded("dump");
    let output = run(&["journal", "dump", path_str(&dir.journal()), "--json"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let text = stdout(&output);
    let mut expected_sequence = 1;
    for line in text.lines() {
        let record: Value = serde_json::from_str(line).expect("each line is JSON");
        let sequence = expected_sequence;
        assert_eq!(record["sequence"], sequence, "{line}");
        assert_eq!(record["timestamp_ns"], sequence, "{line}");
        assert_eq!(record["kind"], 1, "{line}");
        assert_eq!(record["len"], PAYLOAD_BYTES, "{line}");
        assert_eq!(
            record["payload_hex"],
            hex(&payload(sequence, PAYLOAD_BYTES)),
            "{line}"
        );
        expected_sequence += 1;
    }
    assert_eq!(expected_sequence, RECORDS + 1, "every record, once");
}

#[test]
fn dump_from_starts_at_the_sequence_asked_and_crosses_segments() {
    let dir = loaded("dump-from");
    let from = SECOND_SEGMENT_FIRST - 2;
    let output = run(&[
        "journal",
        "dump",
        path_str(&dir.journal()),
        "--from",
        &from.to_string(),
        "--limit",
        "5",
    ]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    for (line, sequence) in lines.iter().zip(from..) {
        let shown = hex(&payload(sequence, 64));
        assert_eq!(
            *line,
            format!("seq={sequence} ts={sequence} kind=1 len={PAYLOAD_BYTES} payload={shown}…")
        );
    }
}

#[test]
fn dump_into_a_closed_pipe_stops_quietly_with_exit_0() {
    let dir = loaded("pipe");
    let mut child = sequent()
        .args(["journal", "dump", path_str(&dir.journal())])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut first)
        .expect("read one line");
    // The reader is dropped here, like `head -1` exiting: the dump's next write gets EPIPE.
    assert!(first.starts_with("seq=1 "), "{first}");
    let mut errors = String::new();
    child
        .stderr
        .take()
        .expect("piped")
        .read_to_string(&mut errors)
        .expect("read stderr");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "stderr: {errors}");
    assert_eq!(errors, "", "a closed pipe is not an error");
}

#[test]
fn stats_counts_segments_records_bytes_and_kinds() {
    let dir = loaded("stats");
    let output = run(&["journal", "stats", path_str(&dir.journal()), "--json"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        "",
        "no progress bar when stderr is not a terminal"
    );
    let stats: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(stats["records"], RECORDS);
    assert_eq!(stats["segments_present"], 3);
    assert_eq!(stats["segments_sealed"], 2);
    assert_eq!(stats["segments_removed"], 0);
    assert_eq!(stats["first_sequence"], 1);
    assert_eq!(stats["last_sequence"], RECORDS);
    assert_eq!(stats["first_timestamp_ns"], 1);
    assert_eq!(stats["last_timestamp_ns"], RECORDS);
    assert_eq!(stats["payload_bytes"], RECORDS * PAYLOAD_BYTES as u64);
    assert_eq!(stats["record_bytes"], RECORDS * RECORD_FOOTPRINT);
    assert_eq!(stats["kinds"]["1"], RECORDS);
    assert_eq!(stats["problems"], 0);
    assert_eq!(stats["head"].as_str().map(str::len), Some(64));

    let text = run(&["journal", "stats", path_str(&dir.journal())]);
    assert_eq!(code(&text), 0);
    let text = stdout(&text);
    assert!(text.contains(&format!("records: {RECORDS}\n")), "{text}");
    assert!(
        text.contains(&format!("kind 1: {RECORDS} records\n")),
        "{text}"
    );
}

#[test]
fn prove_and_check_proof_round_trip_and_a_tampered_proof_fails() {
    let dir = loaded("prove");
    let journal = path_str(&dir.journal()).to_owned();
    let check = |proof: &str| {
        let output = run_with_stdin(&["journal", "check-proof"], proof.as_bytes());
        (code(&output), stdout(&output))
    };

    // A record of a sealed segment.
    let output = run(&["journal", "prove", &journal, "4600", "--json"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let proof = stdout(&output);
    let doc: Value = serde_json::from_str(&proof).expect("JSON");
    assert_eq!(doc["leaf_index"], 4600 - SECOND_SEGMENT_FIRST);
    assert_eq!(doc["sealed"], true);
    assert!(doc["path"].as_array().is_some_and(|p| !p.is_empty()));
    let (verdict, text) = check(&proof);
    assert_eq!(verdict, 0, "{text}");
    assert!(text.starts_with("verified: record 4600 "), "{text}");
    for (key, index) in [
        ("root", 0),
        ("path", 0),
        ("path", 5),
        ("leaf_hash", 0),
        ("record_hex", 0),
    ] {
        let (verdict, text) = check(&tamper(&proof, key, index));
        assert_eq!(verdict, 1, "tampered {key}[{index}] verified: {text}");
        assert!(text.starts_with("invalid: "), "{text}");
    }
    let (verdict, _) = check("{\"not\": \"a proof\"}");
    assert_eq!(verdict, 1);

    // A record of the active segment: the root covers its records so far.
    let output = run(&["journal", "prove", &journal, &RECORDS.to_string(), "--json"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let proof = stdout(&output);
    assert!(proof.contains("\"sealed\":false"), "{proof}");
    assert_eq!(check(&proof).0, 0);

    // Consistency between two sizes of the first segment's tree.
    let output = run(&[
        "journal",
        "prove",
        &journal,
        "5",
        "--consistency",
        "3",
        "1000",
        "--json",
    ]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let proof = stdout(&output);
    assert_eq!(check(&proof).0, 0, "{proof}");
    assert_eq!(check(&tamper(&proof, "old_root", 0)).0, 1);
    assert_eq!(check(&tamper(&proof, "new_root", 0)).0, 1);
    assert_eq!(check(&tamper(&proof, "path", 0)).0, 1);

    // The text form lists the audit path one hash per line.
    let output = run(&["journal", "prove", &journal, "4600"]);
    let text = stdout(&output);
    let path_len = doc["path"].as_array().map_or(0, Vec::len);
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("  ") && l.len() == 66)
            .count(),
        path_len,
        "{text}"
    );
}

#[test]
fn a_corrupt_byte_makes_verify_exit_1_naming_the_file_and_offset() {
    let dir = loaded("corrupt");
    let journal = dir.journal();
    let segment = journal.join("00000000000000000001.journal");
    // Record 11 (index 10) of the first segment; flip a byte of its payload.
    let offset = RECORDS_OFFSET + 10 * RECORD_FOOTPRINT;
    let mut bytes = std::fs::read(&segment).expect("read segment");
    bytes[(offset + 32 + 5) as usize] ^= 0x40;
    std::fs::write(&segment, &bytes).expect("write segment");

    let output = run(&["journal", "verify", path_str(&journal)]);
    let text = stdout(&output);
    assert_eq!(code(&output), 1, "{text}");
    assert!(
        text.lines().any(|line| line.starts_with("problem: ")
            && line.contains(path_str(&segment))
            && line.contains(&format!("offset {offset} (sequence 11)"))),
        "{text}"
    );
    assert!(text.contains("NOT INTACT"), "{text}");

    // `dump` prints the ten good records, then stops with the reader's error.
    let output = run(&["journal", "dump", path_str(&journal)]);
    assert_eq!(code(&output), 1);
    assert_eq!(stdout(&output).lines().count(), 10);
    let error = stderr(&output);
    assert!(error.starts_with("sequent: corrupt journal: "), "{error}");
    assert!(
        error.contains(&format!(
            "{} at offset {offset} (sequence 11)",
            segment.display()
        )),
        "{error}"
    );
    assert_eq!(error.lines().count(), 1, "one line, no backtrace: {error}");
}

/// Reads `count` JSON lines from a `tail` child, then waits for it; fails after [`CHILD_TIMEOUT`].
fn tail_lines(mut child: std::process::Child, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let reader = BufReader::new(child.stdout.take().expect("piped"));
    let lines: Vec<Value> = reader
        .lines()
        .take(count)
        .map(|line| serde_json::from_str(&line.expect("read")).expect("JSON line"))
        .collect();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            assert!(status.success(), "tail failed: {status}");
            return lines;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("tail did not stop after --count records");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn tail_prints_records_a_live_writer_appends_across_segment_rolls() {
    let dir = TempDir::new("tail");
    let journal = dir.journal();
    let config = Config {
        segment_len: sequent_journal::format::SEGMENT_LEN_MIN,
        durability: Durability::None,
        journal_id: None,
    };
    let mut writer = Writer::open(&journal, &config).expect("open writer");
    for sequence in 1..=5 {
        writer
            .append(1, sequence, &payload(sequence, 300))
            .expect("append");
    }

    // From an explicit sequence: records 6..=45, about a dozen per 8 KiB segment.
    let child = sequent()
        .args([
            "journal",
            "tail",
            path_str(&journal),
            "--from",
            "6",
            "--count",
            "40",
            "--json",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn tail");
    for sequence in 6..=45 {
        writer
            .append(1, sequence, &payload(sequence, 300))
            .expect("append");
        if sequence % 8 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let lines = tail_lines(child, 40);
    assert_eq!(lines.len(), 40);
    for (line, sequence) in lines.iter().zip(6u64..) {
        assert_eq!(line["sequence"], sequence, "{line}");
        assert_eq!(line["payload_hex"], hex(&payload(sequence, 300)), "{line}");
    }

    // From the default (the current end): records appended after it starts, in order.
    let stop = Arc::new(AtomicBool::new(false));
    let appender = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let deadline = Instant::now() + CHILD_TIMEOUT;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let sequence = writer.next_sequence();
                writer
                    .append(1, sequence, &payload(sequence, 300))
                    .expect("append");
                std::thread::sleep(Duration::from_millis(1));
            }
            writer.close().expect("close");
        })
    };
    let child = sequent()
        .args([
            "journal",
            "tail",
            path_str(&journal),
            "--count",
            "5",
            "--json",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn tail");
    let lines = tail_lines(child, 5);
    stop.store(true, Ordering::Relaxed);
    appender.join().expect("appender");
    let first = lines[0]["sequence"].as_u64().expect("a sequence");
    assert!(
        first > 45,
        "the default starts after what was there: {first}"
    );
    for (line, sequence) in lines.iter().zip(first..) {
        assert_eq!(line["sequence"], sequence, "{line}");
    }
}

#[test]
fn bad_usage_exits_2_and_a_missing_journal_exits_1() {
    let dir = loaded("usage");
    let journal = path_str(&dir.journal()).to_owned();
    for args in [
        vec!["journal", "verify"],
        vec!["journal", "dump", &journal, "--from", "abc"],
        vec!["journal", "frobnicate", &journal],
        vec![
            "journal",
            "load",
            &journal,
            "--records",
            "1",
            "--durability",
            "sometimes",
        ],
        vec!["journal", "prove", &journal, "5", "--consistency", "3"],
    ] {
        let output = run(&args);
        assert_eq!(code(&output), 2, "{args:?}: {}", stderr(&output));
    }
    // Bad values only the command can see: one `sequent:` line, exit 2.
    for args in [
        vec!["journal", "verify", &journal, "--expect-head", "zz"],
        vec!["journal", "prove", &journal, "5", "--consistency", "7", "3"],
        vec![
            "journal",
            "prove",
            &journal,
            "5",
            "--consistency",
            "3",
            "100000",
        ],
        vec![
            "journal",
            "load",
            &journal,
            "--records",
            "1",
            "--payload",
            "2000000",
        ],
    ] {
        let output = run(&args);
        let error = stderr(&output);
        assert_eq!(code(&output), 2, "{args:?}: {error}");
        assert!(
            error.starts_with("sequent: ") && error.lines().count() == 1,
            "{error}"
        );
    }
    let missing = dir.0.join("missing");
    let output = run(&["journal", "verify", path_str(&missing)]);
    assert_eq!(code(&output), 1);
    assert!(
        stderr(&output).starts_with("sequent: "),
        "{}",
        stderr(&output)
    );
}
