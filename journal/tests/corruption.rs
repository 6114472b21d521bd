//! Property: a single damaged byte anywhere in a journal never makes a reader or `verify` panic,
//! and wherever the byte matters (segment header, record header, payload, end marker, seal),
//! `verify` reports a problem and a reader stops with an error at that record instead of handing
//! out different bytes. Damage that cannot matter (padding, unused header space, the durable hint,
//! bytes past a segment's end marker) leaves every record readable and unchanged.
//!
//! Replay a failure with `PROPTEST_RNG_SEED=<seed>` (the seed is printed).

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use common::{TempDir, kind, payload, small_config};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed, TestRunner};
use sequent_journal::format::{RECORD_HEADER_LEN, RECORDS_OFFSET};
use sequent_journal::{Durability, Listing, Reader, Writer, verify};

/// A segment file, the byte ranges whose damage must be detected, and its length.
type SegmentLayout = (PathBuf, Vec<(u64, u64)>, u64);

/// Where the bytes that matter are, per segment file.
#[derive(Debug)]
struct Layout {
    segments: Vec<SegmentLayout>,
    seals: Vec<(PathBuf, u64)>,
    records: u64,
}

fn base() -> (TempDir, Layout) {
    {
        let dir = TempDir::new("corruption-base");
        let mut writer = Writer::open(dir.path(), &small_config(Durability::None)).unwrap();
        for sequence in 1..=180 {
            writer
                .append(kind(sequence), sequence, &payload(sequence))
                .unwrap();
        }
        writer.close().unwrap();
        let listing = Listing::read(dir.path()).unwrap();
        let mut segments = Vec::new();
        for (first, path) in &listing.segments {
            let mut ranges = vec![(0, 64)]; // the header up to the durable hint
            let mut reader = Reader::from_sequence(dir.path(), *first).unwrap();
            let mut offset = RECORDS_OFFSET;
            let mut next_first = None;
            while let Some(record) = reader.next().unwrap() {
                if record.offset != offset {
                    next_first = Some(record.sequence);
                    break; // the reader moved on to the next segment
                }
                ranges.push((offset, offset + record.framed.len() as u64));
                offset = record.next_offset();
            }
            let sealed = listing.seals.contains_key(first);
            if sealed || next_first.is_some() {
                ranges.push((offset, offset + RECORD_HEADER_LEN)); // the end marker
            }
            let len = std::fs::metadata(path).unwrap().len();
            segments.push((path.clone(), ranges, len));
        }
        let seals = listing
            .seals
            .values()
            .map(|p| (p.clone(), std::fs::metadata(p).unwrap().len()))
            .collect();
        (
            dir,
            Layout {
                segments,
                seals,
                records: 180,
            },
        )
    }
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn flip(path: &Path, offset: u64, mask: u8) {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0];
    file.read_exact_at(&mut byte, offset).unwrap();
    file.write_all_at(&[byte[0] ^ mask], offset).unwrap();
}

/// Reads everything; returns the records read and whether it stopped on an error.
fn read_all(dir: &Path) -> (u64, bool) {
    let Ok(mut reader) = Reader::open(dir) else {
        return (0, true);
    };
    let mut count = 0;
    loop {
        match reader.next() {
            Ok(Some(record)) => {
                assert_eq!(
                    record.payload,
                    &payload(record.sequence)[..],
                    "changed bytes handed out"
                );
                count += 1;
            }
            Ok(None) => return (count, false),
            Err(_) => return (count, true),
        }
    }
}

#[test]
fn a_damaged_byte_is_found_or_harmless() {
    let (base_dir, layout) = &base();
    let mut config = ProptestConfig::with_cases(96);
    config.failure_persistence = None;
    if let Ok(seed) = std::env::var("PROPTEST_RNG_SEED") {
        config.rng_seed = RngSeed::Fixed(seed.parse().expect("PROPTEST_RNG_SEED is a u64"));
    }
    eprintln!("corruption property: rng seed {:?}", config.rng_seed);
    let files = layout.segments.len() + layout.seals.len();
    let mut runner = TestRunner::new(config);
    runner
        .run(&(0..files, any::<u64>(), 1u8..=255), |(file, at, mask)| {
            let dir = TempDir::new("corruption-case");
            copy_dir(base_dir.path(), dir.path());
            let (path, len, must_detect) = if file < layout.segments.len() {
                let (path, ranges, len) = &layout.segments[file];
                let offset = at % len;
                let matters = ranges
                    .iter()
                    .any(|(start, end)| (*start..*end).contains(&offset));
                (path, offset, matters)
            } else {
                let (path, len) = &layout.seals[file - layout.segments.len()];
                (path, at % len, true)
            };
            let target = dir.path().join(path.file_name().unwrap());
            flip(&target, len, mask);
            let report = verify(dir.path(), |_| {}).unwrap();
            let (read, stopped) = read_all(dir.path());
            if must_detect {
                prop_assert!(
                    !report.is_intact(),
                    "damage at {} offset {len} went unnoticed (notes {:?})",
                    target.display(),
                    report.notes
                );
            } else {
                prop_assert!(
                    report.is_intact(),
                    "harmless damage reported: {:?}",
                    report.problems
                );
                prop_assert!(!stopped && read == layout.records);
            }
            Ok(())
        })
        .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// The decoders the fuzz targets drive (journal/fuzz), on arbitrary bytes, in CI: they return
    /// errors, never panic.
    #[test]
    fn seal_and_snapshot_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = sequent_journal::Seal::parse(Path::new("p.seal"), &bytes);
        let _ = sequent_journal::snapshot::SnapshotStore::parse(Path::new("p.snap"), &bytes);
    }

    /// Arbitrary bytes over the records area of a segment with a valid header: reading and
    /// verifying return errors, never panic, and never hand out a record that fails its checksum.
    #[test]
    fn arbitrary_records_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), frame_like in any::<bool>()) {
        use sequent_journal::format::{SegmentHeader, segment_file_name, segment_header_bytes};
        let dir = TempDir::new("arbitrary");
        let len = 4 * 4096usize;
        let mut file = vec![0u8; len];
        let header = SegmentHeader::new(*b"sequent-test-id!", 0, 1, len as u64);
        file[..72].copy_from_slice(&segment_header_bytes(&header));
        let mut bytes = bytes;
        if frame_like && bytes.len() >= 8 {
            bytes[..2].copy_from_slice(b"SQ"); // get past the magic now and then
            bytes[2] = 1;
        }
        file[4096..4096 + bytes.len()].copy_from_slice(&bytes);
        std::fs::write(dir.path().join(segment_file_name(1)), &file).unwrap();
        if let Ok(mut reader) = Reader::open(dir.path()) {
            while let Ok(Some(_)) = reader.next() {}
        }
        let _ = verify(dir.path(), |_| {});
    }
}
