//! One segment file, memory-mapped. All of the journal's `unsafe` lives here.
//!
//! Publication protocol (the writer may live in another process than a reader):
//! 1. the writer copies the payload and writes the header's sequence, timestamp and CRC with plain
//!    stores into the shared mapping;
//! 2. it then stores the record's frame word (its first 8 bytes) with Release;
//! 3. a reader loads the frame word with a Relaxed atomic load followed by an Acquire fence (atomic
//!    loads up to pointer size are allowed on read-only mappings only as Relaxed); a non-zero frame
//!    word means the rest of the record is written and will not change.
//!
//! Files are preallocated with `fallocate`, so a page is never allocated while the writer stores
//! into it (a store into a hole of a full disk would be a SIGBUS) and unwritten frames read as zero.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering, fence};

use memmap2::{MmapOptions, MmapRaw};
use zerocopy::{FromBytes, IntoBytes};

use crate::error::{Error, Location};
use crate::format::{
    DURABLE_HINT_OFFSET, FORMAT_VERSION, FORMAT_VERSION_MIN, Frame, KIND_SEGMENT_END,
    PAYLOAD_LEN_MAX, RECORD_HEADER_LEN, RECORD_MAGIC, RECORDS_OFFSET, RecordHeader,
    SEGMENT_LEN_MAX, SEGMENT_LEN_MIN, SEGMENT_MAGIC, SegmentHeader, frame_word, record_crc,
    record_footprint, segment_file_name,
};

/// A mapped segment file.
#[derive(Debug)]
pub struct Segment {
    map: MmapRaw,
    path: PathBuf,
    header: SegmentHeader,
    // Kept open for `fdatasync` of the file's metadata by the sync thread.
    file: File,
}

/// A record read from a segment. The payload borrows the mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Sequence of the record.
    pub sequence: u64,
    /// Caller-supplied timestamp.
    pub timestamp_ns: u64,
    /// Record kind.
    pub kind: u8,
    /// The payload.
    pub payload: &'a [u8],
    /// Offset of the record in its segment file.
    pub offset: u64,
    /// The record's bytes as framed (header and payload, without padding): the Merkle leaf.
    pub framed: &'a [u8],
}

impl RecordRef<'_> {
    /// Offset of the next record.
    #[must_use]
    pub fn next_offset(&self) -> u64 {
        self.offset + record_footprint(self.payload.len() as u32)
    }
}

/// What is at an offset of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot<'a> {
    /// A complete, checksum-valid record.
    Record(RecordRef<'a>),
    /// Nothing written yet (a zero frame word): the end of the records so far.
    Empty,
    /// The end-of-segment marker; the next record is the next segment's first, with this sequence.
    SegmentEnd {
        /// First sequence of the next segment.
        next_sequence: u64,
    },
    /// Bytes that are not a valid record; the reason names what is wrong.
    Invalid(&'static str),
}

/// A preallocated, mapped file under a temporary name, waiting to become the next segment: the
/// housekeeping thread makes one ahead of time so that a roll costs the appender one `rename`
/// instead of a create, an `fallocate` and an `mmap`.
#[derive(Debug)]
pub struct Spare {
    map: MmapRaw,
    file: File,
    temp: PathBuf,
}

impl Spare {
    /// Creates, preallocates and prefaults `segment_len` bytes under a temporary name in `dir`
    /// (removed by the next writer's open if never used).
    pub fn create(dir: &Path, segment_len: u64) -> Result<Self, Error> {
        let spare = Self::create_unpopulated(dir, segment_len)?;
        populate(&spare.map, 0);
        Ok(spare)
    }

    /// As [`Spare::create`] without taking the first-write faults now: for a segment created on
    /// the appender's own thread, where paying them all at once would be one long stall instead
    /// of many short ones.
    fn create_unpopulated(dir: &Path, segment_len: u64) -> Result<Self, Error> {
        static SPARES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        assert!((SEGMENT_LEN_MIN..=SEGMENT_LEN_MAX).contains(&segment_len));
        assert!(
            segment_len % 4096 == 0,
            "segment length must be a multiple of the page size"
        );
        let temp = dir.join(format!(
            "spare-{}-{}.tmp",
            std::process::id(),
            SPARES.fetch_add(1, Ordering::Relaxed)
        ));
        let io_error = |source: io::Error| Error::Io {
            path: temp.clone(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)
            .map_err(io_error)?;
        preallocate(&file, segment_len).map_err(io_error)?;
        let map = MmapOptions::new()
            .len(segment_len as usize)
            .map_raw(&file)
            .map_err(io_error)?;
        Ok(Self { map, file, temp })
    }

    /// Its length.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.map.len() as u64
    }

    /// Removes the unused file (best effort: the next writer's open removes leftovers too).
    pub fn discard(self) {
        let _ = std::fs::remove_file(&self.temp);
    }

    /// Writes the segment header into the mapping and renames the file to its segment name: one
    /// system call. The header page and the directory are synced later by whoever makes the
    /// segment's records durable.
    pub fn activate(
        self,
        dir: &Path,
        journal_id: [u8; 16],
        segment_index: u64,
        first_sequence: u64,
    ) -> Result<Segment, Error> {
        let path = dir.join(segment_file_name(first_sequence));
        let header = SegmentHeader::new(journal_id, segment_index, first_sequence, self.len());
        // SAFETY: the mapping is at least SEGMENT_LEN_MIN bytes and the file still has its
        // temporary name, which no reader looks for: nobody else reads or writes it.
        unsafe {
            std::ptr::copy_nonoverlapping(
                header.as_bytes().as_ptr(),
                self.map.as_mut_ptr(),
                size_of::<SegmentHeader>(),
            );
        }
        std::fs::rename(&self.temp, &path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        Ok(Segment {
            map: self.map,
            path,
            header,
            file: self.file,
        })
    }
}

/// The frame at an offset, unchecked beyond its bounds (see [`Segment::peek`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peek {
    /// A record frame with this sequence, occupying `footprint` bytes.
    Record {
        /// Its sequence.
        sequence: u64,
        /// Bytes to the next frame.
        footprint: u64,
    },
    /// Nothing written yet.
    Empty,
    /// The end marker.
    SegmentEnd {
        /// First sequence of the next segment.
        next_sequence: u64,
    },
    /// Not a frame.
    Invalid(&'static str),
}

impl Segment {
    /// Creates, preallocates and maps a new segment, writes its header and makes the file's
    /// existence durable (temp name, `fsync`, rename, `fsync` of the directory).
    pub fn create(
        dir: &Path,
        journal_id: [u8; 16],
        segment_index: u64,
        first_sequence: u64,
        segment_len: u64,
    ) -> Result<Self, Error> {
        let segment = Spare::create_unpopulated(dir, segment_len)?.activate(
            dir,
            journal_id,
            segment_index,
            first_sequence,
        )?;
        segment.flush(0, 4096)?;
        sync_dir(dir)?;
        Ok(segment)
    }

    /// Maps an existing segment and checks its header. `writable` maps it read-write (for the
    /// writer reopening its last segment); readers map read-only.
    pub fn open(path: &Path, writable: bool) -> Result<Self, Error> {
        let io_error = |source: io::Error| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)
            .map_err(io_error)?;
        let file_len = file.metadata().map_err(io_error)?.len();
        let corrupt = |reason: String| Error::Corrupt {
            at: Location {
                path: path.to_path_buf(),
                offset: 0,
                sequence: None,
            },
            reason,
        };
        if file_len < SEGMENT_LEN_MIN {
            return Err(corrupt(format!(
                "segment file is {file_len} bytes, shorter than the minimum {SEGMENT_LEN_MIN}"
            )));
        }
        if file_len > SEGMENT_LEN_MAX {
            return Err(corrupt(format!(
                "segment file is {file_len} bytes, longer than the maximum {SEGMENT_LEN_MAX}"
            )));
        }
        let mut options = MmapOptions::new();
        options.len(file_len as usize);
        let map = if writable {
            options.map_raw(&file)
        } else {
            options.map_raw_read_only(&file)
        }
        .map_err(io_error)?;
        // SAFETY: the mapping is at least SEGMENT_LEN_MIN bytes; the header is written once at
        // creation (under a temporary name) and never after, except `durable_hint`, which we do not
        // read through this copy.
        let bytes = unsafe { std::slice::from_raw_parts(map.as_ptr(), size_of::<SegmentHeader>()) };
        let header = SegmentHeader::read_from_bytes(bytes).map_err(|_| corrupt("short".into()))?;
        if header.magic != SEGMENT_MAGIC {
            return Err(corrupt("not a sequent journal segment (bad magic)".into()));
        }
        let version = header.version.get();
        if version > FORMAT_VERSION {
            return Err(Error::NewerVersion {
                path: path.to_path_buf(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if version < FORMAT_VERSION_MIN {
            return Err(corrupt(format!(
                "format version {version} is not supported"
            )));
        }
        if header.compute_crc() != header.header_crc32c.get() {
            return Err(corrupt("segment header checksum mismatch".into()));
        }
        if header.segment_len.get() != file_len {
            return Err(corrupt(format!(
                "segment header says {} bytes, the file has {file_len}",
                header.segment_len.get()
            )));
        }
        Ok(Self {
            map,
            path: path.to_path_buf(),
            header,
            file,
        })
    }

    /// The file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The header as written at creation.
    #[must_use]
    pub fn header(&self) -> &SegmentHeader {
        &self.header
    }

    /// Index of the segment in its journal.
    #[must_use]
    pub fn index(&self) -> u64 {
        self.header.segment_index.get()
    }

    /// First sequence of the segment.
    #[must_use]
    pub fn first_sequence(&self) -> u64 {
        self.header.first_sequence.get()
    }

    /// Length of the file.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.map.len() as u64
    }

    /// Never true: a segment is at least [`SEGMENT_LEN_MIN`] bytes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// The journal id in the header.
    #[must_use]
    pub fn journal_id(&self) -> [u8; 16] {
        self.header.journal_id
    }

    fn frame_atomic(&self, offset: u64) -> &AtomicU64 {
        assert!(offset % 8 == 0 && offset + 8 <= self.len());
        // SAFETY: in bounds and 8-aligned (the map is page-aligned and `offset` is a multiple of
        // 8, asserted above); the memory lives as long as `self.map`. Every access to a frame word,
        // by the writer or a reader in any process, is atomic.
        unsafe { AtomicU64::from_ptr(self.map.as_mut_ptr().add(offset as usize).cast::<u64>()) }
    }

    /// Loads the frame word at `offset`: Relaxed (allowed on a read-only mapping) then an Acquire
    /// fence that pairs with the Release store in [`Segment::write_record`].
    fn load_frame(&self, offset: u64) -> u64 {
        let word = self.frame_atomic(offset).load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        word
    }

    /// The `durable_hint` from the header (see [`SegmentHeader::durable_hint`]).
    #[must_use]
    pub fn durable_hint(&self) -> u64 {
        self.load_frame(DURABLE_HINT_OFFSET as u64)
    }

    /// Stores `durable_hint`; only the journal's sync thread calls this, and it then syncs page 0.
    pub fn set_durable_hint(&self, sequence: u64) {
        // Relaxed: a hint read after a crash from the disk, not a synchronisation point.
        self.frame_atomic(DURABLE_HINT_OFFSET as u64)
            .store(sequence, Ordering::Relaxed);
    }

    /// Reads whatever is at `offset` (which must be 8-aligned and at least [`RECORDS_OFFSET`]). Never
    /// panics on arbitrary bytes.
    #[must_use]
    pub fn read_at(&self, offset: u64) -> Slot<'_> {
        if offset < RECORDS_OFFSET || offset % 8 != 0 {
            return Slot::Invalid("record offset is misaligned or inside the segment header");
        }
        if offset + RECORD_HEADER_LEN > self.len() {
            // Not even a header fits: the writer always leaves room for an end marker, so this is
            // where an end marker should have been.
            return Slot::Invalid("records run to the end of the segment without an end marker");
        }
        let word = self.load_frame(offset);
        if word == 0 {
            return Slot::Empty;
        }
        let frame = Frame::from_word(word);
        if frame.magic != RECORD_MAGIC {
            return Slot::Invalid("bad record magic");
        }
        if u16::from(frame.version) > FORMAT_VERSION
            || u16::from(frame.version) < FORMAT_VERSION_MIN
        {
            return Slot::Invalid("record format version not supported");
        }
        if frame.payload_len > PAYLOAD_LEN_MAX {
            return Slot::Invalid("payload length above the maximum");
        }
        let footprint = record_footprint(frame.payload_len);
        if offset + footprint > self.len() {
            return Slot::Invalid("record runs past the end of the segment");
        }
        // SAFETY: in bounds (checked above). The frame word was non-zero when loaded with Acquire,
        // so the writer finished these bytes before its Release store and never changes them again.
        let framed = unsafe {
            std::slice::from_raw_parts(
                self.map.as_ptr().add(offset as usize),
                (RECORD_HEADER_LEN + u64::from(frame.payload_len)) as usize,
            )
        };
        let Ok((header, payload)) = RecordHeader::read_from_prefix(framed) else {
            return Slot::Invalid("short record header");
        };
        if record_crc(&header, payload) != header.crc32c.get() {
            return Slot::Invalid("record checksum mismatch");
        }
        if frame.kind == KIND_SEGMENT_END {
            if frame.payload_len != 0 {
                return Slot::Invalid("end-of-segment marker with a payload");
            }
            return Slot::SegmentEnd {
                next_sequence: header.sequence.get(),
            };
        }
        if frame.kind == 0 {
            return Slot::Invalid("record kind 0");
        }
        Slot::Record(RecordRef {
            sequence: header.sequence.get(),
            timestamp_ns: header.timestamp_ns.get(),
            kind: frame.kind,
            payload,
            offset,
            framed,
        })
    }

    /// Looks at the frame at `offset` without checking the payload's checksum: enough to step over
    /// records while seeking. [`Segment::read_at`] checks everything before a record is handed out.
    #[must_use]
    pub fn peek(&self, offset: u64) -> Peek {
        if offset < RECORDS_OFFSET || offset % 8 != 0 || offset + RECORD_HEADER_LEN > self.len() {
            return Peek::Invalid("record offset out of place or past the end of the segment");
        }
        let word = self.load_frame(offset);
        if word == 0 {
            return Peek::Empty;
        }
        let frame = Frame::from_word(word);
        if frame.magic != RECORD_MAGIC {
            return Peek::Invalid("bad record magic");
        }
        if frame.payload_len > PAYLOAD_LEN_MAX
            || offset + record_footprint(frame.payload_len) > self.len()
        {
            return Peek::Invalid("record length runs past the end of the segment");
        }
        // SAFETY: in bounds (offset + 32 <= len, checked above) and published (non-zero frame word
        // loaded with Acquire): the writer no longer changes these 8 bytes.
        let sequence = u64::from_le_bytes(unsafe {
            std::ptr::read_unaligned(self.map.as_ptr().add(offset as usize + 8).cast::<[u8; 8]>())
        });
        if frame.kind == KIND_SEGMENT_END {
            return Peek::SegmentEnd {
                next_sequence: sequence,
            };
        }
        Peek::Record {
            sequence,
            footprint: record_footprint(frame.payload_len),
        }
    }

    /// Writes a record at `offset` and publishes it (frame word last, Release).
    ///
    /// # Safety
    /// The caller is the segment's only writer, `offset` is the current end of the records (so no
    /// reader holds a reference into `offset..offset + footprint`), and the record fits:
    /// `offset + record_footprint(payload.len()) + RECORD_HEADER_LEN <= self.len()` (room for the end
    /// marker after it) for a record, `offset + RECORD_HEADER_LEN <= self.len()` for an end marker.
    pub unsafe fn write_record(
        &self,
        offset: u64,
        sequence: u64,
        timestamp_ns: u64,
        kind: u8,
        payload: &[u8],
    ) {
        debug_assert!(offset % 8 == 0 && offset >= RECORDS_OFFSET);
        debug_assert!(offset + record_footprint(payload.len() as u32) <= self.len());
        let payload_len = payload.len() as u32;
        let word = frame_word(kind, payload_len);
        let mut header = RecordHeader {
            frame: word.into(),
            sequence: sequence.into(),
            timestamp_ns: timestamp_ns.into(),
            crc32c: 0.into(),
            reserved: 0.into(),
        };
        header.crc32c = record_crc(&header, payload).into();
        let base = self.map.as_mut_ptr();
        // SAFETY: per the caller's contract the range is in bounds and unpublished; the frame word
        // (bytes 0..8) is left for the atomic store below, the rest of the header is bytes 8..32 and
        // the payload follows. The padding is already zero (the file was preallocated as zeros and
        // a torn tail is zeroed on open).
        unsafe {
            let at = base.add(offset as usize);
            std::ptr::copy_nonoverlapping(header.as_bytes().as_ptr().add(8), at.add(8), 24);
            std::ptr::copy_nonoverlapping(
                payload.as_ptr(),
                at.add(RECORD_HEADER_LEN as usize),
                payload.len(),
            );
        }
        // Release: publishes the header and payload written above; pairs with the Acquire fence in
        // `load_frame` (in this process or any other mapping the file).
        self.frame_atomic(offset).store(word, Ordering::Release);
    }

    /// Takes the first-write faults of the unwritten space from `offset` on now (see `populate`):
    /// the writer calls this at open for the segment it will append to.
    pub fn populate_from(&self, offset: u64) {
        populate(&self.map, offset);
    }

    /// Zeroes `offset..end` (a torn tail) and syncs it, so the next append starts on clean bytes.
    pub fn zero_range(&self, offset: u64, end: u64) -> Result<(), Error> {
        assert!(offset >= RECORDS_OFFSET && offset <= end && end <= self.len());
        // SAFETY: in bounds; only the writer, while opening and before any record is appended or a
        // reader is handed this mapping by this process, calls this. A reader in another process
        // that raced onto these bytes finds them failing their checksum or zero.
        unsafe {
            std::ptr::write_bytes(
                self.map.as_mut_ptr().add(offset as usize),
                0,
                (end - offset) as usize,
            );
        }
        self.flush(offset, end)
    }

    /// `msync(MS_SYNC)` of `start..end`, widened to pages.
    pub fn flush(&self, start: u64, end: u64) -> Result<(), Error> {
        if end <= start {
            return Ok(());
        }
        let page_start = start & !4095;
        self.map
            .flush_range(page_start as usize, (end - page_start) as usize)
            .map_err(|source| Error::Io {
                path: self.path.clone(),
                source,
            })
    }

    /// Offset of the last non-zero byte at or after `start`, if any.
    #[must_use]
    pub fn last_nonzero(&self, start: u64) -> Option<u64> {
        let len = self.len();
        if start >= len {
            return None;
        }
        // SAFETY: in bounds. Only called on open, before any writer appends to this segment.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                self.map.as_ptr().add(start as usize),
                (len - start) as usize,
            )
        };
        bytes
            .iter()
            .rposition(|&b| b != 0)
            .map(|i| start + i as u64)
    }

    /// Advises the kernel that the pages before `offset` will not be read again (for long scans,
    /// so a replay's resident memory stays flat).
    pub fn release_before(&self, offset: u64) {
        let end = offset & !4095;
        if end == 0 {
            return;
        }
        // SAFETY: MADV_DONTNEED on a shared file mapping drops the pages from this process only; a
        // later access reads them again from the page cache or the file, so no data changes.
        // Best effort: a failure only costs memory.
        let _ = unsafe {
            self.map
                .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, 0, end as usize)
        };
    }

    /// `fdatasync` of the file (its metadata after a roll).
    pub fn sync_file(&self) -> Result<(), Error> {
        self.file.sync_data().map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// Takes the first-write page faults of `map[from..]` now, on the calling thread, instead of in
/// the appender: on ext4 the first store into each page of a preallocated (unwritten) extent
/// faults into the file system and can stall for milliseconds. `MADV_POPULATE_WRITE` (Linux 5.14)
/// does it in one call; older kernels get one atomic store of zero per page (the bytes are zero
/// already, and frame words are only ever accessed atomically).
fn populate(map: &MmapRaw, from: u64) {
    let start = (from + 4095) & !4095;
    let len = map.len() as u64;
    if start >= len {
        return;
    }
    if map
        .advise_range(
            memmap2::Advice::PopulateWrite,
            start as usize,
            (len - start) as usize,
        )
        .is_ok()
    {
        return;
    }
    let mut page = start;
    while page < len {
        // SAFETY: in bounds and 8-aligned (page-aligned); the word is zero (unwritten space past
        // the records) and stays zero; every other access to it is atomic too.
        unsafe { AtomicU64::from_ptr(map.as_mut_ptr().add(page as usize).cast::<u64>()) }
            .store(0, Ordering::Relaxed);
        page += 4096;
    }
}

fn preallocate(file: &File, len: u64) -> io::Result<()> {
    // SAFETY: plain syscall on an open fd.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len as libc::off_t) };
    if rc == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    // File systems without fallocate (tmpfs before 2.6.x, some FUSE): fall back to a sparse file.
    if error.raw_os_error() == Some(libc::EOPNOTSUPP) {
        return file.set_len(len);
    }
    Err(error)
}

/// `fsync` of a directory, so a create, rename or unlink in it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })
}
