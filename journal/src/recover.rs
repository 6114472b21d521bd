//! Recovery: the newest valid snapshot, and where replay of the journal starts after it.
//!
//! Open the [`crate::Writer`] first when the process will append: it cuts a torn tail, so the
//! bounds seen here are the ones replay will meet.

use std::path::Path;

use crate::dir::Listing;
use crate::error::Error;
use crate::seal::scan_segment;
use crate::segment::Segment;
use crate::snapshot::{EngineId, Rejected, Snapshot, SnapshotStore};

/// First and last sequence a journal holds, and its identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// The journal's identity.
    pub journal_id: [u8; 16],
    /// First sequence still held (after retention).
    pub first_sequence: u64,
    /// Last valid sequence (`first_sequence - 1` when it holds none).
    pub last_sequence: u64,
}

/// Reads a journal's bounds: the first segment's header, and a scan of the last segment, which
/// stops at the first record that is not valid (a torn tail a writer would cut).
pub fn bounds(dir: &Path) -> Result<Bounds, Error> {
    let listing = Listing::read(dir)?;
    let (Some((&first, first_path)), Some((_, last_path))) = (
        listing.segments.first_key_value(),
        listing.segments.last_key_value(),
    ) else {
        return Err(Error::Empty {
            path: dir.to_path_buf(),
        });
    };
    let journal_id = Segment::open(first_path, false)?.journal_id();
    let last = Segment::open(last_path, false)?;
    let summary = scan_segment(&last, [0; 32], |_| {});
    Ok(Bounds {
        journal_id,
        first_sequence: first,
        last_sequence: summary.first_sequence + summary.record_count - 1,
    })
}

/// What recovery starts from.
#[derive(Debug, Clone)]
pub struct Recovery {
    /// The journal's bounds.
    pub bounds: Bounds,
    /// The newest usable snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// Newer snapshots passed over, and why.
    pub rejected: Vec<Rejected>,
    /// Replay the journal from this sequence (the snapshot's plus one, or the first held).
    pub replay_from: u64,
}

/// Finds the newest snapshot of `engine` that this journal can continue from. Fails when there is
/// none and retention removed the journal's beginning (the state cannot be rebuilt).
pub fn recover(
    journal_dir: &Path,
    snapshots: &SnapshotStore,
    engine: EngineId,
) -> Result<Recovery, Error> {
    let bounds = bounds(journal_dir)?;
    let (snapshot, rejected) = snapshots.latest(
        bounds.journal_id,
        engine,
        bounds.first_sequence,
        bounds.last_sequence,
    )?;
    let replay_from = match &snapshot {
        Some(snapshot) => snapshot.sequence + 1,
        None if bounds.first_sequence > 1 => {
            return Err(Error::Config(format!(
                "no usable snapshot, and the journal starts at sequence {} (retention removed the records before it): the state cannot be rebuilt",
                bounds.first_sequence
            )));
        }
        None => 1,
    };
    Ok(Recovery {
        bounds,
        snapshot,
        rejected,
        replay_from,
    })
}
