//! Verification of a whole journal (checksums, sequence continuity, hash chain, seals, Merkle
//! roots, retention records) and RFC 9162 proofs for any record.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use zerocopy::FromBytes;

use crate::dir::Listing;
use crate::error::Error;
use crate::format::{KIND_RETENTION, RetentionEntry, genesis_hash};
use crate::merkle::{self, Hash};
use crate::seal::{ScanEnd, Seal, scan_segment};
use crate::segment::Segment;

/// One segment as verification saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentReport {
    /// First sequence.
    pub first_sequence: u64,
    /// Segment index.
    pub segment_index: u64,
    /// Records in it.
    pub record_count: u64,
    /// Its Merkle root (from the records, or from the seal when removed).
    pub merkle_root: Hash,
    /// Whether a seal vouches for it.
    pub sealed: bool,
    /// Removed by retention: only its seal is left.
    pub removed: bool,
    /// Bytes of records.
    pub records_len: u64,
    /// Timestamp of its last record, when its records are present.
    pub last_timestamp_ns: Option<u64>,
}

/// The result of [`verify`].
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Every segment, oldest first (removed ones included).
    pub segments: Vec<SegmentReport>,
    /// Records present (removed segments not counted).
    pub records: u64,
    /// First sequence present.
    pub first_sequence: Option<u64>,
    /// Last sequence present.
    pub last_sequence: Option<u64>,
    /// Chain hash after the last record, when the chain is unbroken: the value to publish or
    /// compare with an earlier published one.
    pub head: Option<Hash>,
    /// One line per problem; empty means intact.
    pub problems: Vec<String>,
    /// Facts worth knowing that are not problems (an unsealed full segment, a pending removal).
    pub notes: Vec<String>,
    /// Counts per record kind.
    pub kinds: BTreeMap<u8, u64>,
    /// Payload bytes present.
    pub payload_bytes: u64,
}

impl VerifyReport {
    /// True when no problem was found.
    #[must_use]
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Progress of a long scan, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Segment files done.
    pub segments_done: u64,
    /// Segment files in all.
    pub segments_total: u64,
    /// Records so far.
    pub records: u64,
}

/// Verifies everything in `dir`. `Err` only when the directory cannot be read; every integrity
/// failure is a line in [`VerifyReport::problems`], and verification goes on where it can.
pub fn verify(dir: &Path, mut progress: impl FnMut(Progress)) -> Result<VerifyReport, Error> {
    let listing = Listing::read(dir)?;
    let mut report = VerifyReport::default();
    if listing.segments.is_empty() && listing.seals.is_empty() {
        return Err(Error::Empty {
            path: dir.to_path_buf(),
        });
    }
    let firsts: Vec<u64> = {
        let mut all: Vec<u64> = listing
            .segments
            .keys()
            .chain(listing.seals.keys())
            .copied()
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    };
    let segments_total = listing.segments.len() as u64;
    let mut segments_done = 0;
    let mut chain: Option<Hash> = None;
    let mut expected_first: Option<u64> = None;
    let mut expected_index: Option<u64> = None;
    let mut journal_id: Option<[u8; 16]> = None;
    let mut removed: BTreeMap<u64, Seal> = BTreeMap::new();
    let mut retention_claims: Vec<(u64, RetentionEntry)> = Vec::new();
    let last_first = listing.segments.keys().next_back().copied();

    for &first in &firsts {
        let seal = match listing.seals.get(&first).map(|path| Seal::read(path)) {
            None => None,
            Some(Ok(seal)) => Some(seal),
            Some(Err(error)) => {
                report.problems.push(error.to_string());
                None
            }
        };
        if let Some(expected) = expected_first
            && first != expected
        {
            report.problems.push(format!(
                "gap: the segment before sequence {first} ends at {}, so records {expected}..{first} are missing",
                expected - 1
            ));
            chain = None;
        }
        let Some(path) = listing.segments.get(&first) else {
            // Removed by retention: the seal stands in for it.
            let Some(seal) = seal else {
                report.problems.push(format!(
                    "seal for segment {first} is unreadable and its segment file is gone"
                ));
                chain = None;
                expected_first = None;
                continue;
            };
            check_identity(
                &mut report,
                &mut journal_id,
                seal.header.journal_id,
                &listing.seals[&first],
            );
            if let Some(known) = chain
                && known != seal.header.chain_start
            {
                report.problems.push(format!(
                    "{}: chain start does not follow from the previous segment",
                    listing.seals[&first].display()
                ));
            }
            chain = Some(seal.header.chain_end);
            expected_first = Some(seal.first_sequence() + seal.header.record_count.get());
            expected_index = Some(seal.segment_index() + 1);
            report.segments.push(SegmentReport {
                first_sequence: first,
                segment_index: seal.segment_index(),
                record_count: seal.header.record_count.get(),
                merkle_root: seal.header.merkle_root,
                sealed: true,
                removed: true,
                records_len: seal.header.records_len.get(),
                last_timestamp_ns: None,
            });
            removed.insert(first, seal);
            continue;
        };
        let segment = match Segment::open(path, false) {
            Ok(segment) => segment,
            Err(error) => {
                report.problems.push(error.to_string());
                chain = None;
                expected_first = None;
                continue;
            }
        };
        check_identity(&mut report, &mut journal_id, segment.journal_id(), path);
        if let Some(expected) = expected_index
            && segment.index() != expected
        {
            report.problems.push(format!(
                "{}: segment index {} where {expected} was expected",
                path.display(),
                segment.index()
            ));
        }
        let chain_start = if segment.index() == 0 {
            let genesis = genesis_hash(&segment.journal_id());
            if chain.is_some_and(|known| known != genesis) {
                report.problems.push(format!(
                    "{}: segment 0 after another segment",
                    path.display()
                ));
            }
            genesis
        } else if let Some(known) = chain {
            known
        } else if let Some(seal) = &seal {
            report.notes.push(format!(
                "{}: chain start taken from its own seal (no earlier segment or seal to link it to)",
                path.display()
            ));
            seal.header.chain_start
        } else {
            report.problems.push(format!(
                "{}: chain cannot be checked: no earlier segment or seal and no seal of its own",
                path.display()
            ));
            [0; 32]
        };
        let summary = scan_segment(&segment, chain_start, |record| {
            *report.kinds.entry(record.kind).or_default() += 1;
            report.payload_bytes += record.payload.len() as u64;
            if record.kind == KIND_RETENTION {
                match <[RetentionEntry]>::ref_from_bytes(record.payload) {
                    Ok(entries) => retention_claims
                        .extend(entries.iter().map(|entry| (record.sequence, *entry))),
                    Err(_) => report.problems.push(format!(
                        "{}: retention record {} has a payload of {} bytes, not a list of entries",
                        path.display(),
                        record.sequence,
                        record.payload.len()
                    )),
                }
            }
        });
        segments_done += 1;
        report.records += summary.record_count;
        progress(Progress {
            segments_done,
            segments_total,
            records: report.records,
        });
        if summary.record_count > 0 {
            report.first_sequence.get_or_insert(first);
            report.last_sequence = Some(first + summary.record_count - 1);
        }
        let is_last = Some(first) == last_first;
        if let Some(bad) = &summary.bad {
            report.problems.push(format!(
                "{} at offset {} (sequence {}): {}",
                path.display(),
                bad.offset,
                bad.expected_sequence,
                bad.reason
            ));
            chain = None;
        } else {
            chain = Some(summary.chain_end);
        }
        match summary.end {
            Some(ScanEnd::Open { offset }) if is_last => {
                if let Some(at) = segment.last_nonzero(offset) {
                    report.notes.push(format!(
                        "{}: bytes of an unfinished append after the last record (offsets {offset}..={at}); the writer cuts them on open",
                        path.display()
                    ));
                }
            }
            Some(ScanEnd::Open { .. }) => report.problems.push(format!(
                "{}: ends without an end marker but a later segment exists",
                path.display()
            )),
            Some(ScanEnd::Full { .. }) if is_last => report.notes.push(format!(
                "{}: full, and the next segment is not created yet (the writer creates it on open)",
                path.display()
            )),
            _ => {}
        }
        match &seal {
            Some(seal) => compare_seal(&mut report, path, seal, &summary),
            None if !is_last && summary.bad.is_none() => report.notes.push(format!(
                "{}: full but not sealed yet (the writer seals it in the background or on its next open)",
                path.display()
            )),
            None => {}
        }
        report.segments.push(SegmentReport {
            first_sequence: first,
            segment_index: segment.index(),
            record_count: summary.record_count,
            merkle_root: summary.merkle_root,
            sealed: seal.is_some(),
            removed: false,
            records_len: summary.records_end - crate::format::RECORDS_OFFSET,
            last_timestamp_ns: summary.last_timestamp_ns,
        });
        expected_first = Some(first + summary.record_count);
        expected_index = Some(segment.index() + 1);
    }

    // Every removal must be recorded, and every record of a removal must match what was removed.
    for (sequence, claim) in &retention_claims {
        let first = claim.first_sequence.get();
        match (removed.get(&first), listing.segments.contains_key(&first)) {
            (Some(seal), _) => {
                if seal.header.chain_end != claim.chain_end
                    || seal.header.merkle_root != claim.merkle_root
                    || seal.header.record_count != claim.record_count
                    || seal.header.segment_index != claim.segment_index
                {
                    report.problems.push(format!(
                        "retention record {sequence} describes segment {first} differently from its seal"
                    ));
                }
            }
            (None, true) => report.notes.push(format!(
                "retention record {sequence} removes segment {first}, which is still present (removal interrupted; the next retention run finishes it)"
            )),
            (None, false) => report.problems.push(format!(
                "retention record {sequence} names segment {first}, whose seal is missing"
            )),
        }
    }
    for first in removed.keys() {
        if !retention_claims
            .iter()
            .any(|(_, claim)| claim.first_sequence.get() == *first)
        {
            report.problems.push(format!(
                "segment {first} was removed without a retention record in the journal"
            ));
        }
    }
    // A head is only worth publishing when the chain ran unbroken from the genesis hash.
    report.head = if report.problems.is_empty() {
        chain
    } else {
        None
    };
    Ok(report)
}

fn check_identity(
    report: &mut VerifyReport,
    known: &mut Option<[u8; 16]>,
    found: [u8; 16],
    path: &Path,
) {
    match known {
        None => *known = Some(found),
        Some(id) if *id != found => report.problems.push(format!(
            "{}: belongs to another journal (journal id differs)",
            path.display()
        )),
        Some(_) => {}
    }
}

fn compare_seal(
    report: &mut VerifyReport,
    path: &Path,
    seal: &Seal,
    summary: &crate::seal::SegmentSummary,
) {
    let mut mismatch = |what: &str| {
        report.problems.push(format!(
            "{}: seal disagrees with the records: {what}",
            path.display()
        ));
    };
    let header = &seal.header;
    if header.record_count.get() != summary.record_count {
        mismatch(&format!(
            "seal says {} records, the segment holds {}",
            header.record_count.get(),
            summary.record_count
        ));
    }
    if header.chain_start != summary.chain_start {
        mismatch("chain start");
    }
    if header.chain_end != summary.chain_end {
        mismatch("chain end (a record was changed, added or removed)");
    }
    if header.merkle_root != summary.merkle_root {
        mismatch("Merkle root");
    }
    if header.records_len.get() != summary.records_end - crate::format::RECORDS_OFFSET {
        mismatch("records length");
    }
    if seal.index != summary.index {
        mismatch("sparse index");
    }
}

/// An RFC 9162 inclusion proof of one record in its segment's Merkle tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// The record's sequence.
    pub sequence: u64,
    /// Its segment file.
    pub segment: PathBuf,
    /// The leaf's index in the tree (sequence − the segment's first sequence).
    pub leaf_index: u64,
    /// The tree's size (records in the segment).
    pub tree_size: u64,
    /// `SHA-256(0x00 || record bytes)`.
    pub leaf_hash: Hash,
    /// The record's framed bytes (header and payload), the leaf's input.
    pub record: Vec<u8>,
    /// The audit path, bottom up.
    pub path: Vec<Hash>,
    /// The tree's root.
    pub root: Hash,
    /// True when the root is the one in the segment's seal; false for the active segment.
    pub sealed: bool,
}

/// An RFC 9162 consistency proof between two sizes of one segment's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// The segment file.
    pub segment: PathBuf,
    /// The older size.
    pub old_size: u64,
    /// The newer size.
    pub new_size: u64,
    /// Root at the older size.
    pub old_root: Hash,
    /// Root at the newer size.
    pub new_root: Hash,
    /// The proof.
    pub path: Vec<Hash>,
}

/// A segment's leaves, for proofs.
struct SegmentLeaves {
    path: PathBuf,
    leaves: Vec<Hash>,
    /// The framed bytes of the record asked for, if it is in this segment.
    record: Option<Vec<u8>>,
    first: u64,
    seal: Option<Seal>,
}

fn segment_leaves(dir: &Path, sequence: u64) -> Result<SegmentLeaves, Error> {
    let listing = Listing::read(dir)?;
    let Some((first, path)) = listing.segment_for(sequence) else {
        return Err(Error::NoSuchSequence {
            sequence,
            first: listing.segments.keys().next().copied().unwrap_or(1),
            last: crate::recover::bounds(dir).map_or(0, |b| b.last_sequence),
        });
    };
    let segment = Segment::open(path, false)?;
    let mut leaves = Vec::new();
    let mut record = None;
    let summary = scan_segment(&segment, [0; 32], |r| {
        leaves.push(merkle::leaf_hash(r.framed));
        if r.sequence == sequence {
            record = Some(r.framed.to_vec());
        }
    });
    if let Some(bad) = summary.bad {
        return Err(Error::Corrupt {
            at: crate::error::Location {
                path: path.clone(),
                offset: bad.offset,
                sequence: Some(bad.expected_sequence),
            },
            reason: bad.reason,
        });
    }
    let seal = listing
        .seals
        .get(&first)
        .map(|p| Seal::read(p))
        .transpose()?;
    Ok(SegmentLeaves {
        path: path.clone(),
        leaves,
        record,
        first,
        seal,
    })
}

/// The inclusion proof of record `sequence`, checked with [`merkle::verify_inclusion`] (and
/// against the seal's root, for a sealed segment) before it is returned.
pub fn prove_inclusion(dir: &Path, sequence: u64) -> Result<InclusionProof, Error> {
    let SegmentLeaves {
        path: segment,
        leaves,
        record,
        first,
        seal,
    } = segment_leaves(dir, sequence)?;
    let count = leaves.len() as u64;
    let Some(record) = record else {
        return Err(Error::NoSuchSequence {
            sequence,
            first: crate::recover::bounds(dir).map_or(first, |b| b.first_sequence),
            last: crate::recover::bounds(dir).map_or(0, |b| b.last_sequence),
        });
    };
    let leaf_index = sequence - first;
    let root = merkle::root_from_leaves(&leaves);
    let corrupt = |reason: String| Error::Corrupt {
        at: crate::error::Location {
            path: segment.clone(),
            offset: 0,
            sequence: Some(sequence),
        },
        reason,
    };
    if let Some(seal) = &seal
        && seal.header.merkle_root != root
    {
        return Err(corrupt(
            "the records' Merkle root differs from the seal's".into(),
        ));
    }
    let path =
        merkle::inclusion_proof(&leaves, leaf_index).map_err(|error| corrupt(error.to_string()))?;
    let leaf_hash = leaves[leaf_index as usize];
    merkle::verify_inclusion(leaf_index, count, &leaf_hash, &path, &root)
        .map_err(|error| corrupt(format!("proof did not verify: {error}")))?;
    Ok(InclusionProof {
        sequence,
        segment,
        leaf_index,
        tree_size: count,
        leaf_hash,
        record,
        path,
        root,
        sealed: seal.is_some(),
    })
}

/// The consistency proof between the first `old_size` and the first `new_size` records of the
/// segment holding `sequence`, checked with [`merkle::verify_consistency`] before it is returned.
pub fn prove_consistency(
    dir: &Path,
    sequence: u64,
    old_size: u64,
    new_size: u64,
) -> Result<ConsistencyProof, Error> {
    let SegmentLeaves {
        path: segment,
        leaves,
        ..
    } = segment_leaves(dir, sequence)?;
    let count = leaves.len() as u64;
    let config = |reason: String| Error::Config(reason);
    if old_size == 0 || old_size > new_size || new_size > count {
        return Err(config(format!(
            "sizes must satisfy 0 < old <= new <= {count} (the segment's records); got {old_size} and {new_size}"
        )));
    }
    let new_leaves = &leaves[..new_size as usize];
    let path = merkle::consistency_proof(new_leaves, old_size)
        .map_err(|error| config(error.to_string()))?;
    let old_root = merkle::root_from_leaves(&leaves[..old_size as usize]);
    let new_root = merkle::root_from_leaves(new_leaves);
    merkle::verify_consistency(old_size, new_size, &old_root, &new_root, &path)
        .map_err(|error| config(format!("proof did not verify: {error}")))?;
    Ok(ConsistencyProof {
        segment,
        old_size,
        new_size,
        old_root,
        new_root,
        path,
    })
}
