//! The on-disk layout: segment header, record frame, seal. `docs/journal-format.md` is the prose
//! version of this file and the golden files in `journal/tests/golden/` pin the bytes.
//!
//! Every integer is little-endian. Records are 8-byte aligned so that a record's first word (the
//! *frame word*) can be stored and loaded atomically: the writer stores it last, with Release, and a
//! reader that sees a non-zero frame word sees the whole record (see [`crate::segment`]).

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::merkle::Hash;

/// The current format version, written in every segment header, record frame and seal.
pub const FORMAT_VERSION: u16 = 1;
/// The oldest format version this build reads.
pub const FORMAT_VERSION_MIN: u16 = 1;

/// First 8 bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"SQJRNL\0\0";
/// First 8 bytes of every seal file.
pub const SEAL_MAGIC: [u8; 8] = *b"SQSEAL\0\0";
/// The two bytes that open every record frame ("SQ" read as a little-endian u16).
pub const RECORD_MAGIC: u16 = u16::from_le_bytes(*b"SQ");

/// Records start here; the first page holds only the segment header, so that the header's mutable
/// field (`durable_hint`) never shares a page with records.
pub const RECORDS_OFFSET: u64 = 4096;
/// Records and their payloads are padded to this alignment.
pub const RECORD_ALIGN: u64 = 8;
/// Size of a record header; the payload follows it.
pub const RECORD_HEADER_LEN: u64 = 32;
/// A payload may not exceed this (16 MiB): a larger length in a frame is corruption, not data.
pub const PAYLOAD_LEN_MAX: u32 = 16 << 20;
/// Smallest segment: the header page plus room for a few frames.
pub const SEGMENT_LEN_MIN: u64 = 2 * 4096;
/// Largest segment (a mapping this large is still cheap; larger files would make the sparse index
/// and the roll's fallocate slow).
pub const SEGMENT_LEN_MAX: u64 = 1 << 40;
/// The sparse index keeps one entry every this many records.
pub const INDEX_STRIDE: u64 = 1024;

/// Record kinds 1..=[`KIND_USER_MAX`] belong to the application; the rest are the journal's own.
pub const KIND_USER_MAX: u8 = 0xEF;
/// A real record (it has a sequence and is chained) recording that segments were removed by
/// retention; its payload is a list of [`RetentionEntry`].
pub const KIND_RETENTION: u8 = 0xF1;
/// Not a record: the marker after the last record of a full segment. Its `sequence` field holds the
/// first sequence of the next segment; it is not chained, counted or part of the Merkle tree.
pub const KIND_SEGMENT_END: u8 = 0xFF;

/// Rounds `len` up to [`RECORD_ALIGN`].
#[must_use]
pub const fn align_up(len: u64) -> u64 {
    (len + RECORD_ALIGN - 1) & !(RECORD_ALIGN - 1)
}

/// Bytes a record with `payload_len` bytes of payload occupies in a segment, padding included.
#[must_use]
pub const fn record_footprint(payload_len: u32) -> u64 {
    RECORD_HEADER_LEN + align_up(payload_len as u64)
}

/// The frame word: the record's first 8 bytes, packed so that one atomic store publishes the
/// record. Bytes: magic (2), version (1), kind (1), payload length (4).
#[must_use]
pub const fn frame_word(kind: u8, payload_len: u32) -> u64 {
    RECORD_MAGIC as u64
        | ((FORMAT_VERSION as u64 & 0xFF) << 16)
        | ((kind as u64) << 24)
        | ((payload_len as u64) << 32)
}

/// The parts of a frame word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Must equal [`RECORD_MAGIC`].
    pub magic: u16,
    /// Format version of this record.
    pub version: u8,
    /// Record kind.
    pub kind: u8,
    /// Payload length in bytes.
    pub payload_len: u32,
}

impl Frame {
    /// Splits a frame word.
    #[must_use]
    pub const fn from_word(word: u64) -> Self {
        Self {
            magic: word as u16,
            version: (word >> 16) as u8,
            kind: (word >> 24) as u8,
            payload_len: (word >> 32) as u32,
        }
    }
}

/// The 32-byte record header. The CRC32C covers every header byte but its own four (bytes
/// `0..24` and `28..32`) and then the payload (not the padding).
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct RecordHeader {
    /// See [`frame_word`].
    pub frame: U64,
    /// The record's sequence: the first record of a journal is 1, every record is its
    /// predecessor's plus one, across segments.
    pub sequence: U64,
    /// Caller-supplied time of the record (sequenced time, nanoseconds); the journal never reads a
    /// clock.
    pub timestamp_ns: U64,
    /// Header bytes `0..24` and `28..32`, then the payload, through CRC32C (Castagnoli).
    pub crc32c: U32,
    /// Zero; reserved.
    pub reserved: U32,
}

const _: () = assert!(size_of::<RecordHeader>() as u64 == RECORD_HEADER_LEN);

/// The CRC32C of a record: header bytes `0..24`, then `28..32`, then the payload.
#[must_use]
pub fn record_crc(header: &RecordHeader, payload: &[u8]) -> u32 {
    let bytes = header.as_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&bytes[..24]), &bytes[28..32]);
    crc32c::crc32c_append(crc, payload)
}

/// The segment header at offset 0 of every segment file. Everything up to `header_crc32c` is
/// written once at creation and covered by that CRC; `durable_hint` after it is rewritten by the
/// journal's sync thread.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct SegmentHeader {
    /// [`SEGMENT_MAGIC`].
    pub magic: [u8; 8],
    /// [`FORMAT_VERSION`] of the writer.
    pub version: U16,
    /// Size of this struct in bytes, so later versions can grow it.
    pub header_len: U16,
    /// Zero; reserved for flags.
    pub flags: U32,
    /// Identity of the journal, the same in every segment, seal and snapshot of it.
    pub journal_id: [u8; 16],
    /// 0 for the first segment, then +1 per segment, also across retention.
    pub segment_index: U64,
    /// Sequence of the first record in this segment (also in the file name).
    pub first_sequence: U64,
    /// The file's length; records never cross it.
    pub segment_len: U64,
    /// CRC32C of bytes `0..56` and `60..64`.
    pub header_crc32c: U32,
    /// Zero.
    pub reserved: U32,
    /// A lower bound on the last sequence of this segment known to be on disk: written by the sync
    /// thread after each sync, so it lags one round. On open, a bad record below this sequence is
    /// corruption, never a torn tail.
    pub durable_hint: U64,
}

/// Byte offset of `durable_hint` in the segment header.
pub const DURABLE_HINT_OFFSET: usize = 64;
/// `header_crc32c` sits here; it covers the bytes before it and the four after it.
pub const SEGMENT_HEADER_CRC_LEN: usize = 56;
const _: () = assert!(size_of::<SegmentHeader>() == 72);
const _: () = assert!(std::mem::offset_of!(SegmentHeader, durable_hint) == DURABLE_HINT_OFFSET);
const _: () = assert!(std::mem::offset_of!(SegmentHeader, header_crc32c) == SEGMENT_HEADER_CRC_LEN);

impl SegmentHeader {
    /// A sealed (CRC filled) header for a new segment.
    #[must_use]
    pub fn new(
        journal_id: [u8; 16],
        segment_index: u64,
        first_sequence: u64,
        segment_len: u64,
    ) -> Self {
        let mut header = Self {
            magic: SEGMENT_MAGIC,
            version: FORMAT_VERSION.into(),
            header_len: (size_of::<Self>() as u16).into(),
            flags: 0.into(),
            journal_id,
            segment_index: segment_index.into(),
            first_sequence: first_sequence.into(),
            segment_len: segment_len.into(),
            header_crc32c: 0.into(),
            reserved: 0.into(),
            durable_hint: 0.into(),
        };
        header.header_crc32c = header.compute_crc().into();
        header
    }

    /// CRC32C of the immutable part: bytes `0..56`, then `60..64` (everything before the
    /// durable hint but the CRC itself).
    #[must_use]
    pub fn compute_crc(&self) -> u32 {
        let bytes = self.as_bytes();
        crc32c::crc32c_append(
            crc32c::crc32c(&bytes[..SEGMENT_HEADER_CRC_LEN]),
            &bytes[SEGMENT_HEADER_CRC_LEN + 4..DURABLE_HINT_OFFSET],
        )
    }
}

/// The header's bytes as written at offset 0 of a segment file.
#[must_use]
pub fn segment_header_bytes(header: &SegmentHeader) -> Vec<u8> {
    header.as_bytes().to_vec()
}

/// A seal: written beside a segment (`<first sequence>.seal`) once the segment is full, by the
/// journal's housekeeping thread. The fixed part is followed by `index_len` [`IndexEntry`] values;
/// the CRC covers the fixed part (with `crc32c` zero) and the index.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct SealHeader {
    /// [`SEAL_MAGIC`].
    pub magic: [u8; 8],
    /// [`FORMAT_VERSION`].
    pub version: U16,
    /// Zero.
    pub reserved0: U16,
    /// Number of index entries after this header.
    pub index_len: U32,
    /// Same as the segment's.
    pub journal_id: [u8; 16],
    /// Same as the segment's.
    pub segment_index: U64,
    /// First sequence in the segment.
    pub first_sequence: U64,
    /// Number of records (the Merkle tree's size).
    pub record_count: U64,
    /// Bytes of records, from [`RECORDS_OFFSET`] up to (not including) the end marker.
    pub records_len: U64,
    /// Chain hash before the first record.
    pub chain_start: [u8; 32],
    /// Chain hash after the last record.
    pub chain_end: [u8; 32],
    /// RFC 9162 Merkle tree hash over the segment's records (leaf i = record i's bytes).
    pub merkle_root: [u8; 32],
    /// CRC32C of this header (with this field zero) followed by the index.
    pub crc32c: U32,
    /// Zero.
    pub reserved1: U32,
}

const _: () = assert!(size_of::<SealHeader>() == 168);

/// One sparse-index entry: the record with this sequence starts at this offset of the segment.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct IndexEntry {
    /// A record's sequence.
    pub sequence: U64,
    /// Its offset in the segment file.
    pub offset: U64,
}

/// One entry of a [`KIND_RETENTION`] record's payload: a segment that retention removed.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct RetentionEntry {
    /// The removed segment's index.
    pub segment_index: U64,
    /// Its first sequence.
    pub first_sequence: U64,
    /// Its record count.
    pub record_count: U64,
    /// 0 deleted, 1 moved to the archive directory.
    pub archived: U64,
    /// Its chain hash after its last record.
    pub chain_end: [u8; 32],
    /// Its Merkle root.
    pub merkle_root: [u8; 32],
}

const _: () = assert!(size_of::<RetentionEntry>() == 96);

/// The chain hash before the first record of a journal.
#[must_use]
pub fn genesis_hash(journal_id: &[u8; 16]) -> Hash {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(b"sequent-journal genesis v1");
    hasher.update(journal_id);
    hasher.finalize().into()
}

/// One step of the hash chain: `SHA-256(0x02 || previous || leaf)`, where `leaf` is the record's
/// RFC 9162 leaf hash. The 0x02 prefix keeps chain hashes apart from Merkle leaf (0x00) and node
/// (0x01) hashes.
#[must_use]
pub fn chain_step(previous: &Hash, leaf: &Hash) -> Hash {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update([0x02]);
    hasher.update(previous);
    hasher.update(leaf);
    hasher.finalize().into()
}

/// The file name of the segment starting at `first_sequence`: 20 digits, so names sort as numbers.
#[must_use]
pub fn segment_file_name(first_sequence: u64) -> String {
    format!("{first_sequence:020}.journal")
}

/// The file name of that segment's seal.
#[must_use]
pub fn seal_file_name(first_sequence: u64) -> String {
    format!("{first_sequence:020}.seal")
}

/// Parses a segment or seal file name back to its first sequence.
#[must_use]
pub fn parse_file_name(name: &str, extension: &str) -> Option<u64> {
    let stem = name.strip_suffix(extension)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_word_round_trips() {
        let frame = Frame::from_word(frame_word(7, 300));
        assert_eq!(frame.magic, RECORD_MAGIC);
        assert_eq!(frame.version, FORMAT_VERSION as u8);
        assert_eq!(frame.kind, 7);
        assert_eq!(frame.payload_len, 300);
        assert_eq!(&frame_word(7, 300).to_le_bytes()[..2], b"SQ");
    }

    #[test]
    fn footprint_is_aligned() {
        assert_eq!(record_footprint(0), 32);
        assert_eq!(record_footprint(1), 40);
        assert_eq!(record_footprint(8), 40);
        assert_eq!(record_footprint(64), 96);
    }

    #[test]
    fn file_names_sort_and_parse() {
        assert_eq!(segment_file_name(1), "00000000000000000001.journal");
        assert_eq!(parse_file_name(&segment_file_name(42), "journal"), Some(42));
        assert_eq!(
            parse_file_name(&seal_file_name(u64::MAX), "seal"),
            Some(u64::MAX)
        );
        assert_eq!(parse_file_name("0001.journal", "journal"), None);
        assert_eq!(
            parse_file_name("0000000000000000000x.journal", "journal"),
            None
        );
        assert!(segment_file_name(9) < segment_file_name(10));
    }
}
