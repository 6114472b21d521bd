//! The harness shared by the ledger fault tests (`ledger_shards.rs`, `ledger_partition.rs`,
//! `ledger_torn_tail.rs`):
//! shard and coordinator processes, a seeded generator, the end-of-run checks (every transfer
//! whole on every shard, no money created or destroyed, the coordinator's journal agreeing with
//! the shards'), and the journal surgery that stands in for a crash mid-write.
#![allow(dead_code)] // each test binary uses its own part

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sequent_ledger::cross_shard::Record;

pub const SHARDS: u32 = 3;
pub const ACCOUNTS: u64 = 30;
pub const OPENING: u64 = 1_000;
/// Journal record kinds (tools/src/ledger_shards.rs).
pub const KIND_SHARD_INPUT: u8 = 4;
pub const KIND_COORDINATOR: u8 = 7;

pub fn sequent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sequent"))
}

/// xorshift64; the seed comes from `var` when set, else the clock, and is printed.
pub struct Rng(u64);

impl Rng {
    pub fn from_env(var: &str) -> Self {
        let seed: u64 = std::env::var(var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        println!("seed = {seed} (replay with {var}={seed})");
        Rng(seed | 1)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A fresh directory for one test, removed when it passes.
pub fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sequent-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `transfers` cross-shard transfers; with `amount_max` 1 no prepare can fail for lack of funds
/// (30 accounts of 1,000 each), so every voided transfer was aborted by a timeout.
pub fn write_input(dir: &Path, rng: &mut Rng, transfers: u64, amount_max: u64) -> PathBuf {
    write_input_with(dir, rng, transfers, |_, rng| 1 + rng.below(amount_max))
}

/// [`write_input`] with each transfer's amount drawn by `amount(id, rng)`.
pub fn write_input_with(
    dir: &Path,
    rng: &mut Rng,
    transfers: u64,
    amount: impl Fn(u64, &mut Rng) -> u64,
) -> PathBuf {
    let mut input = String::new();
    for id in 1..=transfers {
        let debit = 1 + rng.below(ACCOUNTS);
        let mut credit = 1 + rng.below(ACCOUNTS);
        while credit % u64::from(SHARDS) == debit % u64::from(SHARDS) {
            credit = 1 + rng.below(ACCOUNTS);
        }
        let amount = amount(id, rng);
        writeln!(
            input,
            r#"{{"op":"transfer","id":{id},"debit":{debit},"credit":{credit},"amount":{amount},"ledger":1,"code":1}}"#
        )
        .unwrap();
    }
    let path = dir.join("input.jsonl");
    std::fs::write(&path, input).unwrap();
    path
}

/// Processes killed when the test ends, passing or failing.
#[derive(Default)]
pub struct Children(pub Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn shard_args(command: &mut Command, index: u32, dir: &Path) {
    command
        .args(["ledger", "shard", "--index", &index.to_string()])
        .args(["--shards", &SHARDS.to_string()])
        .args(["--accounts", &ACCOUNTS.to_string()])
        .args(["--opening", &OPENING.to_string()])
        .arg("--journal")
        .arg(dir.join(format!("shard{index}")));
}

/// Starts shard `index`; its stderr goes to `dir/shard{index}.N.stderr` (returned).
pub fn start_shard(index: u32, dir: &Path, port: u16) -> (Child, PathBuf) {
    let mut n = 0;
    let log = loop {
        let log = dir.join(format!("shard{index}.{n}.stderr"));
        if !log.exists() {
            break log;
        }
        n += 1;
    };
    let mut command = sequent();
    shard_args(&mut command, index, dir);
    let child = command
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (child, log)
}

/// Waits until `log` contains `text` (a process saying it is ready); panics after 20 s.
pub fn wait_for_line(log: &Path, text: &str) -> String {
    let start = Instant::now();
    loop {
        let content = std::fs::read_to_string(log).unwrap_or_default();
        if content.contains(text) {
            return content;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{} never said {text:?}: {content}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The coordinator's command; `shard_ports` in index order (a proxy's port stands in for a shard).
pub fn coordinator_command(
    dir: &Path,
    shard_ports: &[u16],
    input: &Path,
    timeout_ms: u64,
) -> Command {
    let shards: Vec<String> = shard_ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let mut command = sequent();
    command
        .args(["ledger", "coordinator", "--shards", &shards.join(",")])
        .arg("--journal")
        .arg(dir.join("coordinator"))
        .arg("--input")
        .arg(input)
        .args(["--timeout-ms", &timeout_ms.to_string()]);
    command
}

/// Reads up to `count` decision lines (fewer when the coordinator ended).
pub fn read_decisions(
    lines: &mut impl Iterator<Item = String>,
    count: usize,
    into: &mut Vec<String>,
) {
    for _ in 0..count {
        match lines.next() {
            Some(line) => into.push(line),
            None => return,
        }
    }
}

pub fn field<'a>(line: &'a str, name: &str) -> &'a str {
    let start = line.find(&format!("\"{name}\":")).unwrap() + name.len() + 3;
    let rest = &line[start..];
    let end = rest.find([',', '}']).unwrap();
    rest[..end].trim_matches('"')
}

/// `sequent ledger shard --dump`: the shard rebuilt from its journal alone.
pub fn dump_shard(index: u32, dir: &Path) -> std::process::Output {
    let mut command = sequent();
    shard_args(&mut command, index, dir);
    command.arg("--dump").output().unwrap()
}

/// The line a shard prints after replaying its journal (`replayed N inputs, digest D`).
pub fn replay_line(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.contains("replayed"))
        .unwrap_or_else(|| panic!("no replay line in {stderr}"))
}

/// The coordinator's records, from its journal.
pub fn coordinator_records(dir: &Path) -> Vec<Record> {
    let mut reader = sequent_journal::Reader::open(&dir.join("coordinator")).unwrap();
    let mut records = Vec::new();
    while let Some(r) = reader.next().unwrap() {
        assert_eq!(r.kind, KIND_COORDINATOR);
        records.push(Record::decode(r.payload).expect("a coordinator record"));
    }
    records
}

/// What the end-of-run check found.
#[derive(Debug)]
pub struct Whole {
    pub posted: usize,
    pub voided: usize,
}

/// The end-of-run check, from the journals alone (every shard through `--dump`, the coordinator
/// through its records), after every process stopped:
///
/// - no leg pending anywhere; each of `1..=transfers` both legs posted or no leg posted;
/// - the customers' total is `ACCOUNTS × OPENING` and the clearing accounts net to zero;
/// - the coordinator's journal agrees: every transfer has `Begin`, one decision and `Done`;
///   `Commit` exactly where both legs are posted;
/// - every decision line printed says what the shards did, at most once per transfer.
pub fn check_whole(dir: &Path, transfers: u64, decisions: &[String]) -> Whole {
    let mut decided: BTreeMap<u64, String> = BTreeMap::new();
    for line in decisions {
        let id: u64 = field(line, "id").parse().unwrap();
        let ev = field(line, "ev").to_owned();
        assert!(decided.insert(id, ev).is_none(), "{id} reported twice");
    }
    let mut legs: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut customers = 0i128;
    let mut clearing = 0i128;
    for index in 0..SHARDS {
        let dump = dump_shard(index, dir);
        assert!(
            dump.status.success(),
            "{}",
            String::from_utf8_lossy(&dump.stderr)
        );
        for line in String::from_utf8(dump.stdout).unwrap().lines() {
            if field(line, "ev") == "leg" {
                let id: u64 = field(line, "id").parse().unwrap();
                legs.entry(id)
                    .or_default()
                    .push(field(line, "state").to_owned());
                continue;
            }
            let n = |f: &str| field(line, f).parse::<i128>().unwrap();
            assert_eq!(n("debits_pending"), 0, "pending left: {line}");
            assert_eq!(n("credits_pending"), 0, "pending left: {line}");
            let net = n("credits_posted") - n("debits_posted");
            match field(line, "code") {
                "10" => customers += net,
                "20" => clearing += net,
                _ => {}
            }
        }
    }
    assert_eq!(
        customers,
        i128::from(ACCOUNTS * OPENING),
        "money created or destroyed"
    );
    assert_eq!(clearing, 0, "clearing accounts do not net to zero");

    let mut begun = BTreeSet::new();
    let mut committed = BTreeSet::new();
    let mut aborted = BTreeSet::new();
    let mut done = BTreeSet::new();
    for record in coordinator_records(dir) {
        match record {
            Record::Begin { transfer, .. } => {
                assert!(begun.insert(transfer.id as u64), "{record:?} twice");
            }
            Record::Commit { id } => assert!(committed.insert(id as u64), "{record:?} twice"),
            Record::Abort { id } => assert!(aborted.insert(id as u64), "{record:?} twice"),
            Record::Done { id } => assert!(done.insert(id as u64), "{record:?} twice"),
        }
    }
    let mut whole = Whole {
        posted: 0,
        voided: 0,
    };
    for id in 1..=transfers {
        let states = legs.get(&id).cloned().unwrap_or_default();
        let both_posted = states.len() == 2 && states.iter().all(|s| s == "posted");
        assert!(
            both_posted || states.iter().all(|s| s == "voided"),
            "transfer {id} is half done: {states:?}"
        );
        assert!(
            begun.contains(&id) && done.contains(&id),
            "transfer {id} not begun and done in the coordinator's journal"
        );
        assert_ne!(
            committed.contains(&id),
            aborted.contains(&id),
            "transfer {id}: one decision"
        );
        assert_eq!(
            committed.contains(&id),
            both_posted,
            "transfer {id}: the coordinator's journal and the shards' disagree ({states:?})"
        );
        if let Some(ev) = decided.get(&id) {
            assert_eq!(ev == "posted", both_posted, "transfer {id} reported {ev}");
        }
        if both_posted {
            whole.posted += 1;
        } else {
            whole.voided += 1;
        }
    }
    whole
}

// ----------------------------------------------------------------------- journal surgery

/// A record in a journal's last segment, as the bytes lie in the file.
#[derive(Clone, Copy, Debug)]
pub struct RecordAt {
    pub sequence: u64,
    pub kind: u8,
    pub timestamp_ns: u64,
    /// Where its header starts.
    pub offset: u64,
    pub payload_len: u64,
}

/// A journal's last segment: its file, the durable hint in its header, and its records.
#[derive(Debug)]
pub struct Tail {
    pub path: PathBuf,
    pub hint: u64,
    pub records: Vec<RecordAt>,
}

const RECORDS_OFFSET: u64 = sequent_journal::format::RECORDS_OFFSET;
const HEADER_LEN: u64 = sequent_journal::format::RECORD_HEADER_LEN;
const HINT_OFFSET: u64 = sequent_journal::format::DURABLE_HINT_OFFSET as u64;

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// Walks the last segment of the journal in `dir` (no process may hold it).
pub fn tail(dir: &Path) -> Tail {
    let listing = sequent_journal::Listing::read(dir).unwrap();
    let (_, path) = listing.segments.iter().next_back().expect("a segment");
    let file = File::open(path).unwrap();
    let len = file.metadata().unwrap().len();
    let mut hint = [0u8; 8];
    file.read_exact_at(&mut hint, HINT_OFFSET).unwrap();
    let mut records = Vec::new();
    let mut offset = RECORDS_OFFSET;
    let mut header = [0u8; HEADER_LEN as usize];
    while offset + HEADER_LEN <= len {
        file.read_exact_at(&mut header, offset).unwrap();
        let frame = u64_at(&header, 0);
        let kind = (frame >> 24) as u8;
        if frame == 0 || kind == sequent_journal::format::KIND_SEGMENT_END {
            break;
        }
        let payload_len = frame >> 32;
        records.push(RecordAt {
            sequence: u64_at(&header, 8),
            kind,
            timestamp_ns: u64_at(&header, 16),
            offset,
            payload_len,
        });
        offset += sequent_journal::format::record_footprint(payload_len as u32);
    }
    Tail {
        path: path.clone(),
        hint: u64::from_le_bytes(hint),
        records,
    }
}

impl Tail {
    pub fn record(&self, sequence: u64) -> RecordAt {
        *self
            .records
            .iter()
            .find(|r| r.sequence == sequence)
            .unwrap_or_else(|| panic!("no record {sequence} in {}", self.path.display()))
    }

    pub fn payload(&self, record: &RecordAt) -> Vec<u8> {
        let mut payload = vec![0u8; record.payload_len as usize];
        File::open(&self.path)
            .unwrap()
            .read_exact_at(&mut payload, record.offset + HEADER_LEN)
            .unwrap();
        payload
    }
}

/// Bytes of a file saved before surgery, to put back.
pub struct Saved {
    path: PathBuf,
    offset: u64,
    bytes: Vec<u8>,
}

impl Saved {
    pub fn restore(self) {
        let file = OpenOptions::new().write(true).open(&self.path).unwrap();
        file.write_all_at(&self.bytes, self.offset).unwrap();
        file.sync_all().unwrap();
    }
}

/// Tears `record` as a crash mid-write would: zeroes it from a random byte to its end. The cut is
/// at or after `cut_min` and at or before its last non-zero byte (so the tear changes
/// something); `cut_min` 1 keeps at least one byte (a record with no byte written is no record:
/// a clean end, nothing to report). Returns where it cut and the bytes it overwrote.
pub fn tear(tail: &Tail, record: &RecordAt, cut_min: u64, rng: &mut Rng) -> (u64, Saved) {
    let len = HEADER_LEN + record.payload_len;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&tail.path)
        .unwrap();
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, record.offset).unwrap();
    let last_nonzero = bytes.iter().rposition(|&b| b != 0).expect("a record") as u64;
    assert!(last_nonzero >= cut_min);
    let cut = cut_min + rng.below(last_nonzero + 1 - cut_min);
    file.write_all_at(&vec![0u8; (len - cut) as usize], record.offset + cut)
        .unwrap();
    file.sync_all().unwrap();
    (
        record.offset + cut,
        Saved {
            path: tail.path.clone(),
            offset: record.offset,
            bytes,
        },
    )
}

/// Leaves the journal in `dir` as a crash in the middle of appending one more record would:
/// appends `payload` (through the journal, so that it is a well-formed record), puts the header's
/// durable hint back where it was (the record was never synced, so nothing can have been
/// answered for it) and tears the record at a random byte. Returns the torn record's sequence and
/// the byte it was cut at.
pub fn crash_mid_append(
    dir: &Path,
    kind: u8,
    timestamp_ns: u64,
    payload: &[u8],
    rng: &mut Rng,
) -> (u64, u64) {
    let before = tail(dir);
    let mut writer =
        sequent_journal::Writer::open(dir, &sequent_journal::Config::default()).unwrap();
    let sequence = writer.append(kind, timestamp_ns, payload).unwrap();
    writer.close().unwrap();
    let after = tail(dir);
    assert_eq!(
        after.path, before.path,
        "the append stayed in the last segment"
    );
    let file = OpenOptions::new().write(true).open(&after.path).unwrap();
    file.write_all_at(&before.hint.to_le_bytes(), HINT_OFFSET)
        .unwrap();
    file.sync_all().unwrap();
    let (cut, _) = tear(&after, &after.record(sequence), 1, rng);
    (sequence, cut)
}
