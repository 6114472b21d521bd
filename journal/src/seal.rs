//! Scanning a segment end to end (checksums, sequence continuity, hash chain, Merkle tree, sparse
//! index) and the seal file that records the result once a segment is full.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use zerocopy::{FromBytes, IntoBytes};

use crate::error::{Error, Location};
use crate::format::{
    FORMAT_VERSION, INDEX_STRIDE, IndexEntry, RECORDS_OFFSET, SEAL_MAGIC, SealHeader,
    seal_file_name,
};
use crate::merkle::{Hash, MerkleBuilder, leaf_hash};
use crate::segment::{RecordRef, Segment, Slot, sync_dir};

/// How a scan of a segment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanEnd {
    /// At the end-of-segment marker: the segment is full and the next starts at this sequence.
    Full {
        /// First sequence of the next segment.
        next_sequence: u64,
        /// Offset of the marker.
        offset: u64,
    },
    /// At a zero frame word: the end of what has been written so far.
    Open {
        /// Where the next record goes.
        offset: u64,
    },
}

/// A bad record found by a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    /// Offset of the first bad byte.
    pub offset: u64,
    /// The sequence expected there.
    pub expected_sequence: u64,
    /// What is wrong.
    pub reason: String,
}

/// What a scan of one segment found.
#[derive(Debug, Clone)]
pub struct SegmentSummary {
    /// First sequence (from the header).
    pub first_sequence: u64,
    /// Records scanned (valid, in sequence).
    pub record_count: u64,
    /// Offset after the last valid record.
    pub records_end: u64,
    /// Chain hash before the first record.
    pub chain_start: Hash,
    /// Chain hash after the last valid record.
    pub chain_end: Hash,
    /// Merkle root over the valid records.
    pub merkle_root: Hash,
    /// Sparse index: one entry per [`INDEX_STRIDE`] records, starting with the first.
    pub index: Vec<IndexEntry>,
    /// How it ended, if it ended cleanly.
    pub end: Option<ScanEnd>,
    /// The first bad record, if the scan stopped on one.
    pub bad: Option<BadRecord>,
    /// Timestamp of the last valid record.
    pub last_timestamp_ns: Option<u64>,
}

/// Scans `segment` from its first record, hashing as it goes. Stops at the end marker, at a zero
/// frame word, or at the first bad record (a checksum failure, or a sequence out of order), which
/// it reports in [`SegmentSummary::bad`]. `on_record` sees every valid record.
pub fn scan_segment(
    segment: &Segment,
    chain_start: Hash,
    on_record: impl FnMut(&RecordRef<'_>),
) -> SegmentSummary {
    let mut scanner = Scanner::new(segment, chain_start);
    scanner.step(segment, u64::MAX, on_record);
    scanner.finish()
}

/// A scan that can stop after a budget of records and go on later: the housekeeping thread seals
/// a large segment a slice per round, so syncs and spare segments never wait behind a seal.
#[derive(Debug, Clone)]
pub struct Scanner {
    summary: SegmentSummary,
    tree: MerkleBuilder,
    offset: u64,
    expected: u64,
    finished: bool,
}

impl Scanner {
    /// A scan of `segment` from its first record, with the chain hash before it.
    #[must_use]
    pub fn new(segment: &Segment, chain_start: Hash) -> Self {
        Self {
            summary: SegmentSummary {
                first_sequence: segment.first_sequence(),
                record_count: 0,
                records_end: RECORDS_OFFSET,
                chain_start,
                chain_end: chain_start,
                merkle_root: MerkleBuilder::new().root(),
                index: Vec::new(),
                end: None,
                bad: None,
                last_timestamp_ns: None,
            },
            tree: MerkleBuilder::new(),
            offset: RECORDS_OFFSET,
            expected: segment.first_sequence(),
            finished: false,
        }
    }

    /// Scans up to `budget` more records of `segment` (the one given to [`Scanner::new`]); true
    /// when the scan has ended (end marker, end of the records written, or a bad record).
    pub fn step(
        &mut self,
        segment: &Segment,
        budget: u64,
        mut on_record: impl FnMut(&RecordRef<'_>),
    ) -> bool {
        let summary = &mut self.summary;
        let mut done = 0;
        while !self.finished && done < budget {
            done += 1;
            let offset = self.offset;
            let expected = self.expected;
            match segment.read_at(offset) {
                Slot::Record(record) => {
                    if record.sequence != expected {
                        summary.bad = Some(BadRecord {
                            offset,
                            expected_sequence: expected,
                            reason: format!(
                                "record has sequence {}, expected {expected}",
                                record.sequence
                            ),
                        });
                        self.finished = true;
                        break;
                    }
                    if summary.record_count % INDEX_STRIDE == 0 {
                        summary.index.push(IndexEntry {
                            sequence: expected.into(),
                            offset: offset.into(),
                        });
                    }
                    let leaf = leaf_hash(record.framed);
                    summary.chain_end = crate::format::chain_step(&summary.chain_end, &leaf);
                    self.tree.push(leaf);
                    on_record(&record);
                    summary.record_count += 1;
                    summary.last_timestamp_ns = Some(record.timestamp_ns);
                    self.expected += 1;
                    self.offset = record.next_offset();
                    summary.records_end = self.offset;
                    if summary.record_count % 65_536 == 0 {
                        segment.release_before(self.offset);
                    }
                }
                Slot::Empty => {
                    summary.end = Some(ScanEnd::Open { offset });
                    self.finished = true;
                }
                Slot::SegmentEnd { next_sequence } => {
                    if next_sequence == expected {
                        summary.end = Some(ScanEnd::Full {
                            next_sequence,
                            offset,
                        });
                    } else {
                        summary.bad = Some(BadRecord {
                            offset,
                            expected_sequence: expected,
                            reason: format!(
                                "end-of-segment marker names next sequence {next_sequence}, expected {expected}"
                            ),
                        });
                    }
                    self.finished = true;
                }
                Slot::Invalid(reason) => {
                    summary.bad = Some(BadRecord {
                        offset,
                        expected_sequence: expected,
                        reason: reason.to_string(),
                    });
                    self.finished = true;
                }
            }
        }
        self.finished
    }

    /// The summary (call once [`Scanner::step`] has returned true; before that it describes the
    /// records scanned so far).
    #[must_use]
    pub fn finish(mut self) -> SegmentSummary {
        self.summary.merkle_root = self.tree.root();
        self.summary
    }
}

/// A seal: the fixed header and the sparse index.
#[derive(Debug, Clone)]
pub struct Seal {
    /// The fixed part.
    pub header: SealHeader,
    /// One entry per [`INDEX_STRIDE`] records.
    pub index: Vec<IndexEntry>,
}

impl Seal {
    /// The seal for a fully scanned segment.
    #[must_use]
    pub fn from_summary(segment: &Segment, summary: &SegmentSummary) -> Self {
        let mut header = SealHeader {
            magic: SEAL_MAGIC,
            version: FORMAT_VERSION.into(),
            reserved0: 0.into(),
            index_len: (summary.index.len() as u32).into(),
            journal_id: segment.journal_id(),
            segment_index: segment.index().into(),
            first_sequence: segment.first_sequence().into(),
            record_count: summary.record_count.into(),
            records_len: (summary.records_end - RECORDS_OFFSET).into(),
            chain_start: summary.chain_start,
            chain_end: summary.chain_end,
            merkle_root: summary.merkle_root,
            crc32c: 0.into(),
            reserved1: 0.into(),
        };
        header.crc32c = seal_crc(&header, &summary.index).into();
        Self {
            header,
            index: summary.index.clone(),
        }
    }

    /// First sequence of the sealed segment.
    #[must_use]
    pub fn first_sequence(&self) -> u64 {
        self.header.first_sequence.get()
    }

    /// Last sequence of the sealed segment (`first - 1` if it holds no records).
    #[must_use]
    pub fn last_sequence(&self) -> u64 {
        self.first_sequence() + self.header.record_count.get() - 1
    }

    /// Segment index.
    #[must_use]
    pub fn segment_index(&self) -> u64 {
        self.header.segment_index.get()
    }

    /// Writes the seal durably: a temporary file, `fsync`, rename, `fsync` of the directory.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, Error> {
        let path = dir.join(seal_file_name(self.first_sequence()));
        let temp = dir.join(format!("{}.tmp", seal_file_name(self.first_sequence())));
        let io_error = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let mut bytes = self.header.as_bytes().to_vec();
        bytes.extend_from_slice(self.index.as_bytes());
        let mut file = File::create(&temp).map_err(io_error)?;
        file.write_all(&bytes).map_err(io_error)?;
        file.sync_all().map_err(io_error)?;
        fs::rename(&temp, &path).map_err(io_error)?;
        sync_dir(dir)?;
        Ok(path)
    }

    /// Reads and checks a seal file.
    pub fn read(path: &Path) -> Result<Self, Error> {
        let bytes = fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &bytes)
    }

    /// Parses seal bytes (never panics on arbitrary input).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self, Error> {
        let corrupt = |reason: String| Error::Corrupt {
            at: Location {
                path: path.to_path_buf(),
                offset: 0,
                sequence: None,
            },
            reason,
        };
        let (header, rest) = SealHeader::read_from_prefix(bytes)
            .map_err(|_| corrupt(format!("seal file is {} bytes, too short", bytes.len())))?;
        if header.magic != SEAL_MAGIC {
            return Err(corrupt("not a sequent seal file (bad magic)".into()));
        }
        if header.version.get() > FORMAT_VERSION {
            return Err(Error::NewerVersion {
                path: path.to_path_buf(),
                found: header.version.get(),
                supported: FORMAT_VERSION,
            });
        }
        let index_len = header.index_len.get() as usize;
        if rest.len() != index_len * size_of::<IndexEntry>() {
            return Err(corrupt(format!(
                "seal announces {index_len} index entries but has {} bytes after its header",
                rest.len()
            )));
        }
        // IndexEntry is made of byte-order integers, so its alignment is 1 and this cannot fail
        // on alignment; the length was checked above.
        let index = <[IndexEntry]>::ref_from_bytes(rest)
            .map_err(|_| corrupt("unreadable index".into()))?
            .to_vec();
        if seal_crc(&header, &index) != header.crc32c.get() {
            return Err(corrupt("seal checksum mismatch".into()));
        }
        if header.record_count.get() == 0 && header.first_sequence.get() == 0 {
            return Err(corrupt("seal of a segment starting at sequence 0".into()));
        }
        Ok(Self { header, index })
    }

    /// Offset of the record at `sequence` or of an earlier one in the same segment, from the
    /// sparse index.
    #[must_use]
    pub fn index_lookup(&self, sequence: u64) -> u64 {
        match self
            .index
            .partition_point(|entry| entry.sequence.get() <= sequence)
        {
            0 => RECORDS_OFFSET,
            n => self.index[n - 1].offset.get(),
        }
    }
}

fn seal_crc(header: &SealHeader, index: &[IndexEntry]) -> u32 {
    let mut copy = *header;
    copy.crc32c = 0.into();
    crc32c::crc32c_append(crc32c::crc32c(copy.as_bytes()), index.as_bytes())
}
