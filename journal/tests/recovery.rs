//! Snapshots, recovery, retention and proofs.

mod common;

use common::{TempDir, kind, payload, small_config};
use sequent_journal::merkle;
use sequent_journal::snapshot::{EngineId, SnapshotStore};
use sequent_journal::{
    Durability, Listing, Reader, Retention, Writer, bounds, prove_consistency, prove_inclusion,
    recover, verify,
};

const ENGINE: EngineId = EngineId {
    tag: 6,
    version_max: 1,
};

/// A toy engine: the state is the sum of payload bytes, so replay from a snapshot can be
/// compared with replay from the start.
fn apply(state: u64, payload: &[u8]) -> u64 {
    payload.iter().fold(state, |acc, &b| {
        acc.wrapping_mul(31).wrapping_add(u64::from(b))
    })
}

fn replay(dir: &std::path::Path, from: u64, mut state: u64) -> (u64, u64) {
    let mut reader = Reader::from_sequence(dir, from).unwrap();
    let mut last = from - 1;
    while let Some(record) = reader.next().unwrap() {
        if record.kind <= sequent_journal::format::KIND_USER_MAX {
            state = apply(state, record.payload);
        }
        last = record.sequence;
    }
    (state, last)
}

#[test]
fn restart_after_restart_recovers_from_the_newest_snapshot() {
    let journal = TempDir::new("recover-journal");
    let snaps = TempDir::new("recover-snaps");
    let store = SnapshotStore::open(snaps.path()).unwrap();
    let mut expected = 0u64;
    let mut next = 1u64;
    for restart in 0..6 {
        let mut writer = Writer::open(journal.path(), &small_config(Durability::None)).unwrap();
        let recovery = recover(journal.path(), &store, ENGINE).unwrap();
        let state = recovery
            .snapshot
            .as_ref()
            .map_or(0, |s| u64::from_le_bytes(s.state[..8].try_into().unwrap()));
        let (state, last) = replay(journal.path(), recovery.replay_from, state);
        assert_eq!(
            state, expected,
            "restart {restart}: recovered state differs"
        );
        assert_eq!(last, next - 1);
        // Work, then snapshot at a sequence; restart 3 snapshots twice at the same sequence (a
        // name clash must replace, not corrupt).
        let mut state = state;
        for _ in 0..97 {
            let p = payload(next);
            assert_eq!(writer.append(kind(next), next, &p).unwrap(), next);
            state = apply(state, &p);
            next += 1;
        }
        writer.sync().unwrap();
        store
            .write(writer.journal_id(), ENGINE, next - 1, &state.to_le_bytes())
            .unwrap();
        if restart == 3 {
            store
                .write(writer.journal_id(), ENGINE, next - 1, &state.to_le_bytes())
                .unwrap();
        }
        expected = state;
        // Some work after the snapshot, which recovery must replay.
        for _ in 0..13 {
            let p = payload(next);
            writer.append(kind(next), next, &p).unwrap();
            expected = apply(expected, &p);
            next += 1;
        }
        writer.close().unwrap();
    }
    let recovery = recover(journal.path(), &store, ENGINE).unwrap();
    assert_eq!(recovery.snapshot.unwrap().sequence, next - 1 - 13);
    assert!(recovery.rejected.is_empty(), "{:?}", recovery.rejected);
}

#[test]
fn prune_keeps_the_newest_snapshots_and_leaves_other_files() {
    let snaps = TempDir::new("prune-snaps");
    let store = SnapshotStore::open(snaps.path()).unwrap();
    for sequence in [5, 40, 12, 33] {
        store.write([7; 16], ENGINE, sequence, b"state").unwrap();
    }
    let other = snaps.path().join("notes.txt");
    std::fs::write(&other, b"not a snapshot").unwrap();
    store.prune(2).unwrap();
    let kept: Vec<u64> = store.list().unwrap().iter().map(|(s, _)| *s).collect();
    assert_eq!(kept, vec![40, 33]);
    assert!(other.exists(), "prune removes snapshots only");
    store.prune(5).unwrap();
    assert_eq!(store.list().unwrap().len(), 2);
    store.prune(0).unwrap();
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn stale_damaged_and_foreign_snapshots_are_passed_over_with_reasons() {
    let journal = TempDir::new("stale-journal");
    let snaps = TempDir::new("stale-snaps");
    let store = SnapshotStore::open(snaps.path()).unwrap();
    let mut writer = Writer::open(journal.path(), &small_config(Durability::None)).unwrap();
    for sequence in 1..=50 {
        writer.append(1, sequence, &payload(sequence)).unwrap();
    }
    let id = writer.journal_id();
    writer.close().unwrap();
    store.write(id, ENGINE, 20, b"good").unwrap();
    // Ahead of the journal: the inputs it reflects were lost.
    store.write(id, ENGINE, 60, b"ahead").unwrap();
    // Another journal's.
    store.write([9; 16], ENGINE, 45, b"foreign").unwrap();
    // Another engine's.
    store
        .write(
            id,
            EngineId {
                tag: 8,
                version_max: 1,
            },
            44,
            b"ledger",
        )
        .unwrap();
    // A newer engine version.
    store
        .write(
            id,
            EngineId {
                tag: 6,
                version_max: 2,
            },
            43,
            b"newer",
        )
        .unwrap();
    // Damaged on disk.
    let damaged = store.write(id, ENGINE, 42, b"damaged").unwrap();
    let mut bytes = std::fs::read(&damaged).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    std::fs::write(&damaged, bytes).unwrap();
    // A leftover temporary from a crash mid-write is not a snapshot.
    std::fs::write(
        snaps.path().join("00000000000000000049.snap.1.2.tmp"),
        b"junk",
    )
    .unwrap();

    let recovery = recover(journal.path(), &store, ENGINE).unwrap();
    let snapshot = recovery.snapshot.unwrap();
    assert_eq!(
        (snapshot.sequence, snapshot.state.as_slice()),
        (20, &b"good"[..])
    );
    assert_eq!(recovery.replay_from, 21);
    let reasons: Vec<&str> = recovery
        .rejected
        .iter()
        .map(|r| r.reason.as_str())
        .collect();
    assert_eq!(reasons.len(), 5, "{reasons:?}");
    assert!(reasons[0].contains("ahead of the journal"));
    assert!(reasons[1].contains("another journal"));
    assert!(reasons[2].contains("written by engine 8"));
    assert!(reasons[3].contains("newer than this build"));
    assert!(reasons[4].contains("checksum mismatch"));
}

#[test]
fn retention_removes_old_segments_records_it_and_the_chain_still_verifies() {
    let journal = TempDir::new("retention");
    let archive = TempDir::new("retention-archive");
    let store_dir = TempDir::new("retention-snaps");
    let store = SnapshotStore::open(store_dir.path()).unwrap();
    let mut writer = Writer::open(journal.path(), &small_config(Durability::None)).unwrap();
    for sequence in 1..=600 {
        writer
            .append(kind(sequence), sequence, &payload(sequence))
            .unwrap();
    }
    writer.sync().unwrap();
    store
        .write(writer.journal_id(), ENGINE, 400, b"state")
        .unwrap();
    let before = verify(journal.path(), |_| {}).unwrap();
    let outcome = writer
        .apply_retention(
            &Retention {
                keep_from_sequence: 401,
                keep_segments_min: 2,
                archive_dir: Some(archive.path().to_path_buf()),
            },
            999,
        )
        .unwrap();
    assert!(!outcome.removed.is_empty());
    assert_eq!(outcome.record_sequence, Some(601));
    for sequence in 602..=650 {
        writer
            .append(kind(sequence), sequence, &payload(sequence))
            .unwrap();
    }
    writer.close().unwrap();

    let listing = Listing::read(journal.path()).unwrap();
    let first_held = *listing.segments.first_key_value().unwrap().0;
    assert!(first_held > 1 && first_held <= 401);
    assert_eq!(
        std::fs::read_dir(archive.path()).unwrap().count(),
        outcome.removed.len()
    );
    let report = verify(journal.path(), |_| {}).unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    // The chain runs through the removed segments' seals: the head over the records that were
    // present before is unchanged by retention, and the removed segments are still listed.
    assert!(report.segments.iter().any(|s| s.removed));
    assert_eq!(
        report.segments[0].merkle_root,
        before.segments[0].merkle_root
    );
    assert_eq!(bounds(journal.path()).unwrap().first_sequence, first_held);
    // Recovery uses the snapshot; without it the state could not be rebuilt.
    assert_eq!(
        recover(journal.path(), &store, ENGINE).unwrap().replay_from,
        401
    );
    std::fs::remove_dir_all(store_dir.path()).unwrap();
    let empty = SnapshotStore::open(store_dir.path()).unwrap();
    let error = recover(journal.path(), &empty, ENGINE).unwrap_err();
    assert!(error.to_string().contains("cannot be rebuilt"), "{error}");
}

#[test]
fn a_removal_without_a_record_is_a_problem() {
    let journal = TempDir::new("silent-removal");
    let mut writer = Writer::open(journal.path(), &small_config(Durability::None)).unwrap();
    for sequence in 1..=300 {
        writer.append(1, sequence, &payload(sequence)).unwrap();
    }
    writer.close().unwrap();
    let listing = Listing::read(journal.path()).unwrap();
    std::fs::remove_file(listing.segments.first_key_value().unwrap().1).unwrap();
    let report = verify(journal.path(), |_| {}).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("removed without a retention record")),
        "{:?}",
        report.problems
    );
}

#[test]
fn every_record_has_an_inclusion_proof_that_verifies_against_the_seal() {
    let journal = TempDir::new("proofs");
    let mut writer = Writer::open(journal.path(), &small_config(Durability::None)).unwrap();
    for sequence in 1..=400 {
        writer
            .append(kind(sequence), sequence, &payload(sequence))
            .unwrap();
    }
    writer.close().unwrap();
    let report = verify(journal.path(), |_| {}).unwrap();
    for sequence in 1..=400 {
        let proof = prove_inclusion(journal.path(), sequence).unwrap();
        assert_eq!(proof.leaf_hash, merkle::leaf_hash(&proof.record));
        merkle::verify_inclusion(
            proof.leaf_index,
            proof.tree_size,
            &proof.leaf_hash,
            &proof.path,
            &proof.root,
        )
        .unwrap();
        let segment = report
            .segments
            .iter()
            .find(|s| s.first_sequence <= sequence && sequence < s.first_sequence + s.record_count)
            .unwrap();
        assert_eq!(proof.root, segment.merkle_root);
        assert_eq!(proof.sealed, segment.sealed);
        // Any other record's hash does not verify at this position.
        let other = merkle::leaf_hash(b"not this record");
        assert!(
            merkle::verify_inclusion(
                proof.leaf_index,
                proof.tree_size,
                &other,
                &proof.path,
                &proof.root
            )
            .is_err()
        );
    }
    let error = prove_inclusion(journal.path(), 401).unwrap_err();
    assert!(error.to_string().contains("401"), "{error}");
}

#[test]
fn consistency_proofs_link_two_sizes_of_a_segment() {
    let journal = TempDir::new("consistency");
    let mut writer = Writer::open(journal.path(), &small_config(Durability::None)).unwrap();
    for sequence in 1..=40 {
        writer.append(1, sequence, &payload(sequence % 3)).unwrap();
    }
    writer.close().unwrap();
    let first_count = verify(journal.path(), |_| {}).unwrap().segments[0].record_count;
    for old in 1..=first_count {
        for new in old..=first_count {
            let proof = prove_consistency(journal.path(), 1, old, new).unwrap();
            merkle::verify_consistency(old, new, &proof.old_root, &proof.new_root, &proof.path)
                .unwrap();
        }
    }
    assert!(prove_consistency(journal.path(), 1, 0, 1).is_err());
    assert!(prove_consistency(journal.path(), 1, 2, first_count + 1).is_err());
}
