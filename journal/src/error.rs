//! The journal's errors: each names the file, and where it applies the offset and sequence.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Where in a journal something is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The segment (or seal, or snapshot) file.
    pub path: PathBuf,
    /// Byte offset in that file.
    pub offset: u64,
    /// The sequence of the record there, or the one expected there.
    pub sequence: Option<u64>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at offset {}", self.path.display(), self.offset)?;
        if let Some(sequence) = self.sequence {
            write!(f, " (sequence {sequence})")?;
        }
        Ok(())
    }
}

/// A journal failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed on this path.
    #[error("{path}: {source}", path = .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// Bytes that are not what the format says, before the tail: never skipped.
    #[error("corrupt journal: {at}: {reason}")]
    Corrupt {
        /// Where.
        at: Location,
        /// What is wrong.
        reason: String,
    },
    /// Written by a newer version of sequent.
    #[error(
        "{path}: written in journal format version {found}, this build reads up to version {supported}: upgrade sequent to read it",
        path = .path.display()
    )]
    NewerVersion {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u16,
        /// Ours.
        supported: u16,
    },
    /// A configuration value out of range.
    #[error("invalid journal configuration: {0}")]
    Config(String),
    /// A payload larger than a segment can hold or the format allows.
    #[error("payload of {len} bytes exceeds the maximum of {max} for this journal")]
    PayloadTooLarge {
        /// Requested.
        len: usize,
        /// Allowed.
        max: usize,
    },
    /// Asked for a sequence the journal does not hold.
    #[error("sequence {sequence} is not in the journal (first held {first}, last written {last})")]
    NoSuchSequence {
        /// Requested.
        sequence: u64,
        /// First held (after retention).
        first: u64,
        /// Last written.
        last: u64,
    },
    /// The journal's background thread failed (its error, as text) and the writer stopped.
    #[error("journal housekeeping failed: {0}")]
    Housekeeping(String),
    /// Another writer holds the journal.
    #[error("{path} is locked by another writer", path = .path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The directory holds no journal.
    #[error("{path} holds no journal segments", path = .path.display())]
    Empty {
        /// The directory.
        path: PathBuf,
    },
}
