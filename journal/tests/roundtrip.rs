//! Append, read back, seek, tail, seal and verify.

mod common;

use std::time::Duration;

use common::{TempDir, group_commit, kind, payload, small_config};
use sequent_journal::{Durability, Listing, Reader, Writer, verify};

#[test]
fn records_read_back_in_order_across_segments() {
    let dir = TempDir::new("roundtrip");
    let mut writer = Writer::open(dir.path(), &small_config(group_commit())).unwrap();
    assert!(writer.open_report().created);
    for sequence in 1..=2_000 {
        let got = writer
            .append(kind(sequence), sequence * 10, &payload(sequence))
            .unwrap();
        assert_eq!(got, sequence);
    }
    writer.sync().unwrap();
    assert_eq!(writer.durable_sequence(), 2_000);
    writer.close().unwrap();

    let listing = Listing::read(dir.path()).unwrap();
    assert!(
        listing.segments.len() > 20,
        "small segments roll often: {}",
        listing.segments.len()
    );
    // Every full segment is sealed; the active one is not.
    assert_eq!(listing.seals.len(), listing.segments.len() - 1);

    let mut reader = Reader::open(dir.path()).unwrap();
    for sequence in 1..=2_000 {
        let record = reader.next().unwrap().unwrap();
        assert_eq!(record.sequence, sequence);
        assert_eq!(record.kind, kind(sequence));
        assert_eq!(record.timestamp_ns, sequence * 10);
        assert_eq!(record.payload, &payload(sequence)[..]);
    }
    assert!(reader.next().unwrap().is_none());

    let report = verify(dir.path(), |_| {}).unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.records, 2_000);
    assert_eq!(report.last_sequence, Some(2_000));
    assert!(report.head.is_some());
}

#[test]
fn seek_starts_at_any_sequence() {
    let dir = TempDir::new("seek");
    let mut writer = Writer::open(dir.path(), &small_config(Durability::None)).unwrap();
    for sequence in 1..=3_000 {
        writer
            .append(kind(sequence), sequence, &payload(sequence))
            .unwrap();
    }
    writer.close().unwrap();
    for start in [1, 2, 77, 1_023, 1_024, 1_025, 2_048, 2_999, 3_000] {
        let mut reader = Reader::from_sequence(dir.path(), start).unwrap();
        let record = reader.next().unwrap().unwrap();
        assert_eq!(record.sequence, start);
        assert_eq!(record.payload, &payload(start)[..]);
    }
    let mut reader = Reader::from_sequence(dir.path(), 3_001).unwrap();
    assert!(reader.next().unwrap().is_none());
}

#[test]
fn reopen_continues_the_sequence_and_the_chain() {
    let dir = TempDir::new("reopen");
    for round in 0..5u64 {
        let mut writer = Writer::open(dir.path(), &small_config(group_commit())).unwrap();
        assert_eq!(writer.next_sequence(), round * 300 + 1);
        assert!(writer.open_report().truncated.is_none());
        for sequence in round * 300 + 1..=round * 300 + 300 {
            writer
                .append(kind(sequence), sequence, &payload(sequence))
                .unwrap();
        }
        writer.close().unwrap();
    }
    let report = verify(dir.path(), |_| {}).unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.records, 1_500);
}

#[test]
fn a_second_writer_is_refused() {
    let dir = TempDir::new("lock");
    let _writer = Writer::open(dir.path(), &small_config(Durability::None)).unwrap();
    let error = Writer::open(dir.path(), &small_config(Durability::None)).unwrap_err();
    assert!(
        error.to_string().contains("locked by another writer"),
        "{error}"
    );
}

#[test]
fn tailing_reader_follows_a_live_writer_across_rolls() {
    let dir = TempDir::new("tail");
    let mut writer = Writer::open(dir.path(), &small_config(Durability::None)).unwrap();
    writer.append(1, 0, b"first").unwrap();
    let path = dir.path().to_path_buf();
    let tail = std::thread::spawn(move || {
        let mut reader = Reader::follow(&path, 1).unwrap();
        let mut seen = 0u64;
        while seen < 1_500 {
            match reader.next().unwrap() {
                Some(record) => {
                    seen += 1;
                    assert_eq!(record.sequence, seen);
                    if seen > 1 {
                        assert_eq!(record.payload, &payload(seen)[..]);
                    }
                }
                None => std::thread::yield_now(),
            }
        }
        seen
    });
    for sequence in 2..=1_500 {
        writer
            .append(kind(sequence), sequence, &payload(sequence))
            .unwrap();
        if sequence % 100 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert_eq!(tail.join().unwrap(), 1_500);
    writer.close().unwrap();
}

#[test]
fn durable_sequence_follows_group_commit() {
    let dir = TempDir::new("durable");
    let mut writer = Writer::open(dir.path(), &small_config(group_commit())).unwrap();
    let watch = writer.durable_watch();
    let mut last = 0;
    for sequence in 1..=100 {
        last = writer.append(1, sequence, b"x").unwrap();
    }
    assert!(
        watch.wait_durable(last, Duration::from_secs(10)),
        "group commit never synced"
    );
    assert!(watch.durable_sequence() >= last);
    writer.close().unwrap();
}

#[test]
fn oversized_payload_is_refused_and_loses_nothing() {
    let dir = TempDir::new("oversized");
    let mut writer = Writer::open(dir.path(), &small_config(Durability::None)).unwrap();
    writer.append(1, 1, b"before").unwrap();
    let error = writer
        .append(1, 2, &vec![0; writer.payload_len_max() + 1])
        .unwrap_err();
    assert!(error.to_string().contains("exceeds the maximum"), "{error}");
    assert_eq!(writer.append(1, 3, b"after").unwrap(), 2);
    writer.close().unwrap();
    let mut reader = Reader::open(dir.path()).unwrap();
    assert_eq!(reader.next().unwrap().unwrap().payload, b"before");
    assert_eq!(reader.next().unwrap().unwrap().payload, b"after");
}

#[test]
fn reopening_with_another_segment_len_keeps_the_last_segment_size() {
    // The roll must use the active segment's own length, never the new configuration's.
    let dir = TempDir::new("resize");
    let mut small = small_config(Durability::None);
    let mut writer = Writer::open(dir.path(), &small).unwrap();
    for sequence in 1..=10 {
        writer
            .append(kind(sequence), sequence, &payload(sequence))
            .unwrap();
    }
    writer.close().unwrap();
    small.segment_len = 16 * 4096; // four times larger
    let mut writer = Writer::open(dir.path(), &small).unwrap();
    for sequence in 11..=400 {
        writer
            .append(kind(sequence), sequence, &payload(sequence))
            .unwrap();
    }
    writer.close().unwrap();
    let report = verify(dir.path(), |_| {}).unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.records, 400);
    let lens: std::collections::BTreeSet<u64> = Listing::read(dir.path())
        .unwrap()
        .segments
        .values()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .collect();
    assert_eq!(
        lens.into_iter().collect::<Vec<_>>(),
        vec![4 * 4096, 16 * 4096]
    );
}
