//! Torn tails, corruption, newer versions: what a crash or a bad disk leaves, and what opening,
//! reading and verifying do about it.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use common::{TempDir, kind, payload, small_config};
use sequent_journal::format::{RECORDS_OFFSET, record_footprint};
use sequent_journal::{Durability, Error, Listing, Reader, Writer, verify};

fn write_journal(dir: &Path, records: u64) {
    let mut writer = Writer::open(dir, &small_config(Durability::None)).unwrap();
    for sequence in 1..=records {
        writer
            .append(kind(sequence), sequence, &payload(sequence))
            .unwrap();
    }
    writer.close().unwrap();
}

fn last_segment(dir: &Path) -> PathBuf {
    Listing::read(dir)
        .unwrap()
        .segments
        .last_key_value()
        .unwrap()
        .1
        .clone()
}

fn first_segment(dir: &Path) -> PathBuf {
    Listing::read(dir)
        .unwrap()
        .segments
        .first_key_value()
        .unwrap()
        .1
        .clone()
}

/// Offset of the end of the records in a segment whose records are `first..=last`.
fn records_end(first: u64, last: u64) -> u64 {
    RECORDS_OFFSET
        + (first..=last)
            .map(|s| record_footprint(payload(s).len() as u32))
            .sum::<u64>()
}

fn patch(path: &Path, offset: u64, bytes: &[u8]) {
    let file = OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, offset).unwrap();
    file.sync_all().unwrap();
}

fn read(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let file = OpenOptions::new().read(true).open(path).unwrap();
    let mut buf = vec![0; len];
    file.read_exact_at(&mut buf, offset).unwrap();
    buf
}

/// The first sequence of the last segment and its records.
fn last_segment_range(dir: &Path) -> (u64, u64) {
    let listing = Listing::read(dir).unwrap();
    let first = *listing.segments.last_key_value().unwrap().0;
    let mut reader = Reader::from_sequence(dir, first).unwrap();
    let mut last = first - 1;
    while let Some(record) = reader.next().unwrap() {
        last = record.sequence;
    }
    (first, last)
}

#[test]
fn a_torn_tail_is_cut_and_reported_and_appends_continue() {
    let dir = TempDir::new("torn");
    write_journal(dir.path(), 100);
    let (first, last) = last_segment_range(dir.path());
    let path = last_segment(dir.path());
    let end = records_end(first, last);
    // A crash after the payload copy and before the frame word: bytes with no frame.
    patch(&path, end + 8, &[0xAB; 40]);
    // The durable hint written at close would call this corruption of a durable record if it
    // covered the torn sequence; it does not (the torn record was never appended).
    let mut writer = Writer::open(dir.path(), &small_config(Durability::None)).unwrap();
    let truncation = writer
        .open_report()
        .truncated
        .clone()
        .expect("torn tail reported");
    assert_eq!(truncation.offset, end);
    assert_eq!(truncation.from_sequence, last + 1);
    assert_eq!(truncation.bytes, 48);
    assert!(truncation.to_string().contains("torn tail"), "{truncation}");
    assert_eq!(writer.append(1, 0, b"after the crash").unwrap(), last + 1);
    writer.close().unwrap();
    let report = verify(dir.path(), |_| {}).unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.last_sequence, Some(last + 1));
}

#[test]
fn a_half_written_record_with_a_frame_is_a_torn_tail() {
    let dir = TempDir::new("torn-frame");
    write_journal(dir.path(), 50);
    let (first, last) = last_segment_range(dir.path());
    let path = last_segment(dir.path());
    let end = records_end(first, last);
    // Copy the last record's frame to the end: a frame whose checksum cannot match (power loss
    // persisted the frame's page but not the payload's).
    let frame = read(&path, records_end(first, last - 1), 32);
    patch(&path, end, &frame);
    // Raise nothing: the hint on disk says `last` is durable, and the torn record is `last + 1`.
    let writer = Writer::open(dir.path(), &small_config(Durability::None)).unwrap();
    let truncation = writer
        .open_report()
        .truncated
        .clone()
        .expect("torn tail reported");
    assert_eq!(truncation.from_sequence, last + 1);
    writer.close().unwrap();
}

/// Opening `dir` fails with corruption of the durable record `sequence` at `offset`.
fn assert_refused_as_durable_corruption(dir: &Path, offset: u64, sequence: u64) {
    let error = Writer::open(dir, &small_config(Durability::None)).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, Error::Corrupt { .. }), "{text}");
    assert!(text.contains(&format!("offset {offset}")), "{text}");
    assert!(text.contains(&format!("sequence {sequence}")), "{text}");
    assert!(text.contains("not a torn tail"), "{text}");
}

#[test]
fn corruption_of_a_durable_record_refuses_to_open() {
    let dir = TempDir::new("corrupt-durable");
    write_journal(dir.path(), 60);
    let (first, last) = last_segment_range(dir.path());
    assert!(last > first, "the last segment holds at least two records");
    let path = last_segment(dir.path());
    // Flip a payload byte of the last record: close synced it, so the header's durable hint covers
    // it and this cannot be a torn tail.
    let offset = records_end(first, last - 1);
    let byte = read(&path, offset + 32, 1)[0];
    patch(&path, offset + 32, &[byte ^ 0x01]);
    assert_refused_as_durable_corruption(dir.path(), offset, last);
}

#[test]
fn a_durable_last_record_zeroed_whole_refuses_to_open() {
    // Every byte of the last record gone (a bad disk, or a tool that zeroed it): the scan sees a
    // clean end one record early, but the header's durable hint says that record reached the
    // disk, so ending there would drop an acknowledged record without a word.
    let dir = TempDir::new("zeroed-durable");
    write_journal(dir.path(), 60);
    let (first, last) = last_segment_range(dir.path());
    let path = last_segment(dir.path());
    let offset = records_end(first, last - 1);
    let footprint = record_footprint(payload(last).len() as u32);
    patch(&path, offset, &vec![0; footprint as usize]);
    assert_refused_as_durable_corruption(dir.path(), offset, last);
    // With the hint below it (the record was never synced), the same bytes are a clean end.
    patch(&path, 64, &(last - 1).to_le_bytes());
    let writer = Writer::open(dir.path(), &small_config(Durability::None)).unwrap();
    assert_eq!(writer.next_sequence(), last);
    assert_eq!(writer.open_report().truncated, None);
    writer.close().unwrap();
}

#[test]
fn corruption_followed_by_valid_records_is_not_a_torn_tail() {
    let dir = TempDir::new("corrupt-middle");
    write_journal(dir.path(), 60);
    let (first, last) = last_segment_range(dir.path());
    let path = last_segment(dir.path());
    // Zero the durable hint so only the "valid record follows" rule can catch it.
    patch(&path, 64, &[0; 8]);
    let offset = RECORDS_OFFSET; // the segment's first record
    patch(&path, offset + 16, &[0xFF]); // inside the timestamp
    let error = Writer::open(dir.path(), &small_config(Durability::None)).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("a valid record"), "{text}");
    assert!(text.contains(&format!("sequence {first}")), "{text}");
    let _ = last;
}

#[test]
fn corruption_in_a_sealed_segment_is_named_by_reader_and_verify() {
    let dir = TempDir::new("corrupt-sealed");
    write_journal(dir.path(), 200);
    let path = first_segment(dir.path());
    let offset = RECORDS_OFFSET + record_footprint(payload(1).len() as u32); // record 2
    let byte = read(&path, offset + 40, 1)[0];
    patch(&path, offset + 40, &[!byte]);

    let mut reader = Reader::open(dir.path()).unwrap();
    assert_eq!(reader.next().unwrap().unwrap().sequence, 1);
    let error = reader.next().unwrap_err().to_string();
    assert!(error.contains("checksum mismatch"), "{error}");
    assert!(error.contains(&format!("offset {offset}")), "{error}");
    assert!(error.contains("sequence 2"), "{error}");
    // The reader never skips: asking again gives the same error.
    assert!(reader.next().is_err());

    let report = verify(dir.path(), |_| {}).unwrap();
    assert!(!report.is_intact());
    assert!(
        report.problems[0].contains(&format!("offset {offset}"))
            && report.problems[0].contains("sequence 2"),
        "{:?}",
        report.problems
    );
    assert!(report.head.is_none(), "a broken chain has no head");
}

#[test]
fn a_recomputed_checksum_does_not_hide_an_edit_from_the_chain() {
    // An attacker who edits a record and fixes its CRC still breaks the seal's chain and root.
    let dir = TempDir::new("tamper");
    write_journal(dir.path(), 200);
    let path = first_segment(dir.path());
    let offset = RECORDS_OFFSET + record_footprint(payload(1).len() as u32);
    let mut header = read(&path, offset, 32);
    let len = u32::from_le_bytes(header[4..8].try_into().unwrap()) as usize;
    let mut payload_bytes = read(&path, offset + 32, len);
    payload_bytes[0] ^= 0x80;
    let crc = crc32c::crc32c_append(
        crc32c::crc32c_append(crc32c::crc32c(&header[..24]), &header[28..32]),
        &payload_bytes,
    );
    header[24..28].copy_from_slice(&crc.to_le_bytes());
    patch(&path, offset, &header);
    patch(&path, offset + 32, &payload_bytes);

    let mut reader = Reader::open(dir.path()).unwrap();
    while reader.next().unwrap().is_some() {} // every checksum passes
    let report = verify(dir.path(), |_| {}).unwrap();
    assert!(
        report.problems.iter().any(|p| p.contains("chain end")),
        "{:?}",
        report.problems
    );
    assert!(report.problems.iter().any(|p| p.contains("Merkle root")));
}

#[test]
fn a_newer_format_version_is_refused_with_a_clear_message() {
    let dir = TempDir::new("newer");
    write_journal(dir.path(), 3);
    let path = first_segment(dir.path());
    // Version 2 in the header, with a correct header checksum.
    let mut header = read(&path, 0, 72);
    header[8..10].copy_from_slice(&2u16.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&header[..56]), &header[60..64]);
    header[56..60].copy_from_slice(&crc.to_le_bytes());
    patch(&path, 0, &header);
    let error = Writer::open(dir.path(), &small_config(Durability::None)).unwrap_err();
    assert!(
        matches!(error, Error::NewerVersion { found: 2, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("upgrade sequent"), "{error}");
    assert!(Reader::open(dir.path()).unwrap().next().is_err());
}

#[test]
fn a_deleted_middle_segment_is_a_gap() {
    let dir = TempDir::new("gap");
    write_journal(dir.path(), 300);
    let listing = Listing::read(dir.path()).unwrap();
    let (first, path) = listing.segments.iter().nth(2).unwrap();
    std::fs::remove_file(path).unwrap();
    std::fs::remove_file(&listing.seals[first]).unwrap();
    let report = verify(dir.path(), |_| {}).unwrap();
    assert!(
        report.problems.iter().any(|p| p.starts_with("gap")),
        "{:?}",
        report.problems
    );
}

#[test]
fn a_crash_between_end_marker_and_next_segment_resumes() {
    use sequent_journal::format::{KIND_SEGMENT_END, RecordHeader, frame_word, record_crc};
    use zerocopy::IntoBytes;
    let dir = TempDir::new("mid-roll");
    write_journal(dir.path(), 100);
    let (first, last) = last_segment_range(dir.path());
    let segments_before = Listing::read(dir.path()).unwrap().segments.len();
    // What the writer stores when it rolls: an end marker naming the next sequence. The crash
    // comes before the next segment's file exists.
    let mut marker = RecordHeader {
        frame: frame_word(KIND_SEGMENT_END, 0).into(),
        sequence: (last + 1).into(),
        timestamp_ns: 0.into(),
        crc32c: 0.into(),
        reserved: 0.into(),
    };
    marker.crc32c = record_crc(&marker, &[]).into();
    patch(
        &last_segment(dir.path()),
        records_end(first, last),
        marker.as_bytes(),
    );

    let mut writer = Writer::open(dir.path(), &small_config(Durability::None)).unwrap();
    assert_eq!(writer.next_sequence(), last + 1);
    assert_eq!(writer.append(1, 0, b"next segment").unwrap(), last + 1);
    writer.close().unwrap();
    let listing = Listing::read(dir.path()).unwrap();
    assert_eq!(listing.segments.len(), segments_before + 1);
    assert!(
        listing.seals.contains_key(&first),
        "the ended segment was sealed"
    );
    let report = verify(dir.path(), |_| {}).unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.last_sequence, Some(last + 1));
}

#[test]
fn a_new_segment_whose_header_never_reached_the_disk_is_removed() {
    use sequent_journal::format::{KIND_SEGMENT_END, RecordHeader, frame_word, record_crc};
    use zerocopy::IntoBytes;
    let dir = TempDir::new("blank-header");
    write_journal(dir.path(), 100);
    let (first, last) = last_segment_range(dir.path());
    // The roll's marker reached the disk, the new segment's header did not (power loss).
    let mut marker = RecordHeader {
        frame: frame_word(KIND_SEGMENT_END, 0).into(),
        sequence: (last + 1).into(),
        timestamp_ns: 0.into(),
        crc32c: 0.into(),
        reserved: 0.into(),
    };
    marker.crc32c = record_crc(&marker, &[]).into();
    patch(
        &last_segment(dir.path()),
        records_end(first, last),
        marker.as_bytes(),
    );
    let blank = dir
        .path()
        .join(sequent_journal::format::segment_file_name(last + 1));
    std::fs::write(&blank, vec![0u8; 4 * 4096]).unwrap();

    let writer = Writer::open(dir.path(), &small_config(Durability::None)).unwrap();
    assert_eq!(
        writer.open_report().removed_unfinished.as_ref(),
        Some(&blank)
    );
    assert_eq!(writer.next_sequence(), last + 1);
    writer.close().unwrap();
    let report = verify(dir.path(), |_| {}).unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
}
