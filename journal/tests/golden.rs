//! Golden files pin the on-disk format (docs/journal-format.md): a journal written from fixed
//! inputs must equal `tests/golden/v1/` byte for byte, and the golden journal must read back and
//! verify. A format change fails here first; bump `FORMAT_VERSION`, keep reading v1, and add a v2
//! directory. Regenerate (after reviewing the change) with
//! `SEQUENT_BLESS=1 cargo test -p sequent-journal --test golden -- --test-threads=1`.

mod common;

use std::path::{Path, PathBuf};

use common::TempDir;
use sequent_journal::merkle::to_hex;
use sequent_journal::{Config, Durability, Reader, Writer, verify};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/v1")
}

/// The fixed inputs: seven records of kinds 1..=3, payloads of 0..=200 bytes, over two 8 KiB
/// segments.
fn inputs() -> Vec<(u8, u64, Vec<u8>)> {
    let mut inputs = vec![
        (1, 1_000, b"".to_vec()),
        (2, 2_000, b"new order ABC buy 100 @ 10050".to_vec()),
        (3, 3_000, (0..=255u8).take(200).collect()),
    ];
    for i in 0..20u8 {
        inputs.push((
            1 + i % 3,
            4_000 + u64::from(i),
            vec![i; 300 + usize::from(i)],
        ));
    }
    inputs
}

fn write(dir: &Path) {
    let config = Config {
        segment_len: 8192,
        durability: Durability::None,
        journal_id: Some(*b"golden-journal-1"),
    };
    let mut writer = Writer::open(dir, &config).unwrap();
    for (kind, timestamp, payload) in inputs() {
        writer.append(kind, timestamp, &payload).unwrap();
    }
    writer.close().unwrap();
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != "LOCK" && e.file_name() != "HEAD.txt")
        .map(|e| {
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn the_format_matches_the_golden_files() {
    let dir = TempDir::new("golden");
    write(dir.path());
    if std::env::var("SEQUENT_BLESS").is_ok() {
        let _ = std::fs::remove_dir_all(golden_dir());
        std::fs::create_dir_all(golden_dir()).unwrap();
        for (name, bytes) in files(dir.path()) {
            std::fs::write(golden_dir().join(name), bytes).unwrap();
        }
        let head = verify(dir.path(), |_| {}).unwrap().head.unwrap();
        std::fs::write(golden_dir().join("HEAD.txt"), to_hex(&head) + "\n").unwrap();
    }
    let written = files(dir.path());
    let golden = files(&golden_dir());
    let names = |f: &[(String, Vec<u8>)]| f.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&written), names(&golden));
    for ((name, bytes), (_, expected)) in written.iter().zip(&golden) {
        if let Some(at) = bytes.iter().zip(expected).position(|(a, b)| a != b) {
            panic!("{name}: first difference at byte {at}");
        }
        assert_eq!(bytes.len(), expected.len(), "{name}: length");
    }
}

#[test]
fn the_golden_journal_reads_and_verifies() {
    // Read from a copy: opening never writes, but the test must not depend on that.
    let dir = TempDir::new("golden-read");
    for (name, bytes) in files(&golden_dir()) {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let mut reader = Reader::open(dir.path()).unwrap();
    for (sequence, (kind, timestamp, payload)) in (1..).zip(inputs()) {
        let record = reader.next().unwrap().unwrap();
        assert_eq!(
            (
                record.sequence,
                record.kind,
                record.timestamp_ns,
                record.payload
            ),
            (sequence, kind, timestamp, payload.as_slice())
        );
    }
    assert!(reader.next().unwrap().is_none());
    let report = verify(dir.path(), |_| {}).unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    // The head a v1 journal of these inputs has; published values must stay checkable forever.
    let head = to_hex(&report.head.unwrap());
    let expected = std::fs::read_to_string(golden_dir().join("HEAD.txt")).unwrap();
    assert_eq!(head, expected.trim());
}
