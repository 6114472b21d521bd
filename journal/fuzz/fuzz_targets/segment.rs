//! Arbitrary bytes as the records of a segment: reading and verifying never panic.
//!
//! The input is laid over the records area of a segment with a valid header (so the fuzzer
//! spends its time on frames, not on the header checks, which a second target covers), written
//! to a file in a temporary directory, then read with `Reader` and checked with `verify`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sequent_journal::format::{RECORDS_OFFSET, SegmentHeader, segment_file_name};
use sequent_journal::{Reader, verify};
use zerocopy_free::as_bytes;

mod zerocopy_free {
    /// The header's bytes without depending on zerocopy here.
    pub fn as_bytes(header: &sequent_journal::format::SegmentHeader) -> Vec<u8> {
        sequent_journal::format::segment_header_bytes(header)
    }
}

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("sequent-fuzz-segment-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let len: u64 = 4 * 4096;
    let header = SegmentHeader::new(*b"fuzz-journal-id!", 0, 1, len);
    let mut file = vec![0u8; len as usize];
    file[..72].copy_from_slice(&as_bytes(&header));
    let room = len as usize - RECORDS_OFFSET as usize;
    let take = data.len().min(room);
    file[RECORDS_OFFSET as usize..RECORDS_OFFSET as usize + take].copy_from_slice(&data[..take]);
    std::fs::write(dir.join(segment_file_name(1)), &file).unwrap();
    if let Ok(mut reader) = Reader::open(&dir) {
        while let Ok(Some(_)) = reader.next() {}
    }
    let _ = verify(&dir, |_| {});
    let _ = std::fs::remove_dir_all(&dir);
});
