//! The plain-file baseline: records framed with a 24-byte header (payload length, kind,
//! sequence, timestamp: the journal's header without its magic, version and CRC32C) written with
//! buffered `write(2)` and read back with a `BufReader`.

use std::fs::File;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};
use std::path::Path;

use super::BenchError;

/// Bytes of the baseline's record header.
pub(super) const HEADER_LEN: usize = 24;
/// Buffer of the baseline's `BufWriter` and `BufReader`.
pub(super) const BUFFER_LEN: usize = 64 << 10;

/// `len: u32 | kind: u8 | 0: [u8; 3] | sequence: u64 | timestamp_ns: u64`, little endian.
fn encode_header(out: &mut [u8], payload_len: usize, kind: u8, sequence: u64, timestamp_ns: u64) {
    let len = u32::try_from(payload_len).expect("payloads are far below 4 GiB");
    out[0..4].copy_from_slice(&len.to_le_bytes());
    out[4] = kind;
    out[5..8].fill(0);
    out[8..16].copy_from_slice(&sequence.to_le_bytes());
    out[16..24].copy_from_slice(&timestamp_ns.to_le_bytes());
}

/// Buffered `write(2)`: each record is one `write_all` of header and payload into a 64 KiB
/// `BufWriter`, which issues a `write(2)` whenever it is full.
#[derive(Debug)]
pub(super) struct FramedWriter {
    out: BufWriter<File>,
    /// Header and payload of the record being written, so each record is a single `write_all`.
    frame: Vec<u8>,
}

impl FramedWriter {
    pub fn create(path: &Path) -> Result<Self, BenchError> {
        let file = File::create(path).map_err(BenchError::io(path))?;
        Ok(Self {
            out: BufWriter::with_capacity(BUFFER_LEN, file),
            frame: Vec::with_capacity(HEADER_LEN + (1 << 16)),
        })
    }

    /// Writes one record.
    #[inline]
    pub fn append(
        &mut self,
        kind: u8,
        sequence: u64,
        timestamp_ns: u64,
        payload: &[u8],
    ) -> std::io::Result<()> {
        self.frame.resize(HEADER_LEN + payload.len(), 0);
        encode_header(&mut self.frame, payload.len(), kind, sequence, timestamp_ns);
        self.frame[HEADER_LEN..].copy_from_slice(payload);
        self.out.write_all(&self.frame)
    }

    /// Flushes the buffer (one last `write(2)`) and hands the file back.
    pub fn finish(self) -> std::io::Result<File> {
        self.out.into_inner().map_err(|err| err.into_error())
    }
}

/// One record read back by [`FramedReader::next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    pub payload_len: usize,
    pub kind: u8,
    pub sequence: u64,
    pub timestamp_ns: u64,
}

/// Reads [`FramedWriter`]'s records back through a 64 KiB `BufReader`.
#[derive(Debug)]
pub(super) struct FramedReader {
    input: BufReader<File>,
    /// The last record's payload.
    payload: Vec<u8>,
}

impl FramedReader {
    pub fn open(path: &Path) -> Result<Self, BenchError> {
        let file = File::open(path).map_err(BenchError::io(path))?;
        Ok(Self {
            input: BufReader::with_capacity(BUFFER_LEN, file),
            payload: Vec::with_capacity(1 << 16),
        })
    }

    /// The next record and its payload, or `None` at a clean end of file.
    #[inline]
    pub fn next(&mut self) -> std::io::Result<Option<(Header, &[u8])>> {
        let mut header = [0; HEADER_LEN];
        match self.input.read_exact(&mut header) {
            Ok(()) => {}
            Err(err) if err.kind() == ErrorKind::UnexpectedEof => return Ok(None),
            Err(err) => return Err(err),
        }
        let parsed = Header {
            payload_len: le_u32(&header[0..4]) as usize,
            kind: header[4],
            sequence: le_u64(&header[8..16]),
            timestamp_ns: le_u64(&header[16..24]),
        };
        self.payload.resize(parsed.payload_len, 0);
        self.input.read_exact(&mut self.payload)?;
        Ok(Some((parsed, &self.payload)))
    }
}

/// A little-endian u32 from the first 4 bytes of `bytes` (at least 4 long).
fn le_u32(bytes: &[u8]) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(word)
}

/// A little-endian u64 from the first 8 bytes of `bytes` (at least 8 long).
fn le_u64(bytes: &[u8]) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_as_written() {
        let dir =
            std::env::temp_dir().join(format!("sequent-bench-baseline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("plain");
        let mut writer = FramedWriter::create(&path).unwrap();
        writer.append(3, 1, 10, b"abc").unwrap();
        writer.append(4, 2, 20, &[7; 100]).unwrap();
        writer.finish().unwrap();
        let mut reader = FramedReader::open(&path).unwrap();
        let (first, payload) = reader.next().unwrap().unwrap();
        assert_eq!((first.kind, first.sequence, first.timestamp_ns), (3, 1, 10));
        assert_eq!(payload, b"abc");
        let (second, payload) = reader.next().unwrap().unwrap();
        assert_eq!((second.payload_len, second.sequence), (100, 2));
        assert_eq!(payload, &[7; 100][..]);
        assert!(reader.next().unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
