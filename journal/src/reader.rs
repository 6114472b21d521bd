//! Readers: a sequential scan from any sequence, and a tailing reader that follows a live writer
//! (in this process or another) through the shared mapping.
//!
//! A reader maps one segment at a time and tells the kernel to drop pages it has passed, so its
//! resident memory stays flat however long the journal is. It checks every record it hands out
//! (checksum, sequence) and never skips a bad one: it returns an error naming the segment, offset
//! and sequence.

use std::path::{Path, PathBuf};

use crate::dir::Listing;
use crate::error::{Error, Location};
use crate::format::RECORDS_OFFSET;
use crate::seal::Seal;
use crate::segment::{Peek, RecordRef, Segment, Slot};

/// Bytes a reader passes before it releases the pages behind it.
const RELEASE_STRIDE: u64 = 16 << 20;

/// Reads records in sequence order from a journal directory.
#[derive(Debug)]
pub struct Reader {
    dir: PathBuf,
    segment: Option<Segment>,
    /// Offset of the next frame in `segment`.
    offset: u64,
    /// Sequence of the next record to hand out.
    next_sequence: u64,
    /// Tailing: the end of what is written is "not yet", not "the end".
    follow: bool,
    released: u64,
    /// First sequence of the segment whose end marker was passed last: a segment lookup that
    /// finds it again means the next segment is not created yet.
    finished: Option<u64>,
}

impl Reader {
    /// A reader positioned at the first record the journal holds.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        let listing = Listing::read(dir)?;
        let Some((&first, _)) = listing.segments.first_key_value() else {
            return Err(Error::Empty {
                path: dir.to_path_buf(),
            });
        };
        Self::from_sequence(dir, first)
    }

    /// A reader whose first record is `sequence` (it may not be written yet). Uses the seals'
    /// sparse index to skip most of the segment.
    pub fn from_sequence(dir: &Path, sequence: u64) -> Result<Self, Error> {
        let listing = Listing::read(dir)?;
        match listing.segments.first_key_value() {
            None => Err(Error::Empty {
                path: dir.to_path_buf(),
            }),
            Some((&first, _)) if sequence < first => Err(Error::NoSuchSequence {
                sequence,
                first,
                last: crate::recover::bounds(dir).map_or(first - 1, |b| b.last_sequence),
            }),
            Some(_) => Ok(Self {
                dir: dir.to_path_buf(),
                segment: None,
                offset: RECORDS_OFFSET,
                next_sequence: sequence.max(1),
                follow: false,
                released: 0,
                finished: None,
            }),
        }
    }

    /// A tailing reader from `sequence`: [`Reader::next`] answers `Ok(None)` when it has caught up
    /// with the writer, and the caller polls again (spinning, yielding or sleeping as it likes).
    pub fn follow(dir: &Path, sequence: u64) -> Result<Self, Error> {
        let mut reader = Self::from_sequence(dir, sequence)?;
        reader.follow = true;
        Ok(reader)
    }

    /// The sequence the next record will have.
    #[must_use]
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// The next record, or `None` at the end of what is written (for a tailing reader: so far).
    #[allow(clippy::should_implement_trait)] // a lending iterator: the record borrows the reader
    pub fn next(&mut self) -> Result<Option<RecordRef<'_>>, Error> {
        // Phase one positions `offset` on the next record's frame without handing out a borrow;
        // phase two checks that record in full and returns it.
        loop {
            if self.segment.is_none() && !self.open_segment()? {
                return Ok(None);
            }
            let Some(segment) = self.segment.as_ref() else {
                return Ok(None);
            };
            match segment.peek(self.offset) {
                Peek::Record {
                    sequence,
                    footprint,
                } if sequence < self.next_sequence => self.offset += footprint,
                Peek::Record { .. } => break,
                Peek::Empty => {
                    if !self.follow && self.later_segment_exists()? {
                        return Err(self.corrupt(
                            "segment ends without an end marker but a later segment exists".into(),
                        ));
                    }
                    return Ok(None);
                }
                Peek::SegmentEnd { next_sequence } => {
                    if next_sequence != self.next_sequence {
                        return Err(self.corrupt(format!(
                            "end-of-segment marker names sequence {next_sequence}, expected {}",
                            self.next_sequence
                        )));
                    }
                    self.finished = Some(segment.first_sequence());
                    self.segment = None;
                }
                Peek::Invalid(reason) => return Err(self.corrupt(reason.into())),
            }
        }
        let expected = self.next_sequence;
        let offset = self.offset;
        let Some(segment) = self.segment.as_ref() else {
            return Ok(None);
        };
        match segment.read_at(offset) {
            Slot::Record(record) if record.sequence == expected => {
                self.offset = record.next_offset();
                self.next_sequence += 1;
                if self.offset - self.released >= RELEASE_STRIDE {
                    segment.release_before(offset);
                    self.released = offset;
                }
                Ok(Some(record))
            }
            Slot::Record(record) => Err(Error::Corrupt {
                at: Location {
                    path: segment.path().to_path_buf(),
                    offset,
                    sequence: Some(expected),
                },
                reason: format!(
                    "record has sequence {}, expected {expected}",
                    record.sequence
                ),
            }),
            Slot::Invalid(reason) => Err(Error::Corrupt {
                at: Location {
                    path: segment.path().to_path_buf(),
                    offset,
                    sequence: Some(expected),
                },
                reason: reason.into(),
            }),
            Slot::Empty | Slot::SegmentEnd { .. } => Err(Error::Corrupt {
                at: Location {
                    path: segment.path().to_path_buf(),
                    offset,
                    sequence: Some(expected),
                },
                reason: "frame changed under the reader".into(),
            }),
        }
    }

    fn corrupt(&self, reason: String) -> Error {
        Error::Corrupt {
            at: Location {
                path: self
                    .segment
                    .as_ref()
                    .map_or_else(|| self.dir.clone(), |s| s.path().to_path_buf()),
                offset: self.offset,
                sequence: Some(self.next_sequence),
            },
            reason,
        }
    }

    fn later_segment_exists(&self) -> Result<bool, Error> {
        let Some(segment) = &self.segment else {
            return Ok(false);
        };
        Ok(Listing::read(&self.dir)?
            .segment_after(segment.first_sequence())
            .is_some())
    }

    /// Maps the segment holding `next_sequence`; false when there is none yet.
    fn open_segment(&mut self) -> Result<bool, Error> {
        if self.finished.is_some() {
            // Past an end marker the next segment's name is known: one `open`, no directory
            // listing, for a tailing reader polling for it.
            let path = self
                .dir
                .join(crate::format::segment_file_name(self.next_sequence));
            return match Segment::open(&path, false) {
                Ok(segment) => {
                    self.offset = RECORDS_OFFSET;
                    self.released = 0;
                    self.finished = None;
                    self.segment = Some(segment);
                    Ok(true)
                }
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    Ok(false)
                }
                Err(error) => Err(error),
            };
        }
        let listing = Listing::read(&self.dir)?;
        let Some((first, path)) = listing.segment_for(self.next_sequence) else {
            let first = listing.segments.keys().next().copied().unwrap_or(0);
            return Err(Error::NoSuchSequence {
                sequence: self.next_sequence,
                first,
                last: crate::recover::bounds(&self.dir).map_or(0, |b| b.last_sequence),
            });
        };
        let segment = Segment::open(path, false)?;
        self.offset = match listing.seals.get(&first) {
            Some(seal_path) if self.next_sequence > first => {
                match Seal::read(seal_path) {
                    Ok(seal) => seal.index_lookup(self.next_sequence),
                    // A bad seal only costs the shortcut; `verify` reports it.
                    Err(_) => RECORDS_OFFSET,
                }
            }
            _ => RECORDS_OFFSET,
        };
        self.released = 0;
        self.segment = Some(segment);
        Ok(true)
    }
}
