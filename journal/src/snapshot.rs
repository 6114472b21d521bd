//! Snapshots: an engine's state at a sequence, so recovery replays a suffix instead of the whole
//! journal.
//!
//! A snapshot file is `<sequence, 20 digits>.snap`: a 64-byte header (magic, format version,
//! engine tag and engine version, journal id, sequence, payload length, payload CRC32C, header
//! CRC32C) and the engine's bytes. It is written under a name unique to the writing process and
//! call, synced, renamed into place and the directory synced: a crash leaves either the old set of
//! snapshots or the new one, never a half-written file under a snapshot's name. Two snapshots at
//! the same sequence (a restart that snapshots again) replace each other atomically.
//!
//! Discovery ([`SnapshotStore::latest`]) tries the newest first and rejects, with a reason, any
//! that is damaged, belongs to another journal or engine, was written by a newer engine version,
//! or is ahead of the journal (its inputs were lost in a torn tail, so its state never happened).

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::error::{Error, Location};
use crate::format::{FORMAT_VERSION, parse_file_name};
use crate::segment::sync_dir;

/// First 8 bytes of a snapshot file.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"SQSNAP\0\0";

/// The snapshot file header.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct SnapshotHeader {
    /// [`SNAPSHOT_MAGIC`].
    pub magic: [u8; 8],
    /// The journal format version.
    pub version: U16,
    /// Zero.
    pub reserved: U16,
    /// Which engine wrote it (the application's choice: matching, ledger, ...).
    pub engine_tag: U32,
    /// The engine's own state format version.
    pub engine_version: U32,
    /// Zero.
    pub reserved2: U32,
    /// The journal whose inputs produced this state.
    pub journal_id: [u8; 16],
    /// The state reflects every record up to and including this sequence.
    pub sequence: U64,
    /// Bytes of state after the header.
    pub payload_len: U64,
    /// CRC32C of the state bytes.
    pub payload_crc32c: U32,
    /// CRC32C of this header with this field zero.
    pub header_crc32c: U32,
}

const _: () = assert!(size_of::<SnapshotHeader>() == 64);

/// A loaded, checked snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Its file.
    pub path: PathBuf,
    /// Every record up to this one is reflected.
    pub sequence: u64,
    /// The engine's format version.
    pub engine_version: u32,
    /// The engine's bytes.
    pub state: Vec<u8>,
}

/// What an engine is, for snapshot discovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineId {
    /// The application's tag for the engine.
    pub tag: u32,
    /// The newest state format version this build of the engine reads.
    pub version_max: u32,
}

/// Snapshots found unusable, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The file.
    pub path: PathBuf,
    /// Why it was passed over.
    pub reason: String,
}

/// The directory of an engine's snapshots.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    dir: PathBuf,
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

impl SnapshotStore {
    /// A store in `dir` (created if missing).
    pub fn open(dir: &Path) -> Result<Self, Error> {
        fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The file name of the snapshot at `sequence`.
    #[must_use]
    pub fn file_name(sequence: u64) -> String {
        format!("{sequence:020}.snap")
    }

    /// Writes a snapshot durably and returns its path.
    pub fn write(
        &self,
        journal_id: [u8; 16],
        engine: EngineId,
        sequence: u64,
        state: &[u8],
    ) -> Result<PathBuf, Error> {
        let path = self.dir.join(Self::file_name(sequence));
        // Unique per process and call: two writers (or a restart racing a slow old process) never
        // write into the same temporary file.
        let temp = self.dir.join(format!(
            "{}.{}.{}.tmp",
            Self::file_name(sequence),
            std::process::id(),
            UNIQUE.fetch_add(1, Ordering::Relaxed)
        ));
        let mut header = SnapshotHeader {
            magic: SNAPSHOT_MAGIC,
            version: FORMAT_VERSION.into(),
            reserved: 0.into(),
            engine_tag: engine.tag.into(),
            engine_version: engine.version_max.into(),
            reserved2: 0.into(),
            journal_id,
            sequence: sequence.into(),
            payload_len: (state.len() as u64).into(),
            payload_crc32c: crc32c::crc32c(state).into(),
            header_crc32c: 0.into(),
        };
        header.header_crc32c = crc32c::crc32c(header.as_bytes()).into();
        let io_error = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let mut file = File::create(&temp).map_err(io_error)?;
        file.write_all(header.as_bytes()).map_err(io_error)?;
        file.write_all(state).map_err(io_error)?;
        file.sync_all().map_err(io_error)?;
        fs::rename(&temp, &path).map_err(io_error)?;
        sync_dir(&self.dir)?;
        Ok(path)
    }

    /// Snapshot files by sequence, newest first. Temporary files are not snapshots.
    pub fn list(&self) -> Result<Vec<(u64, PathBuf)>, Error> {
        let io_error = |source| Error::Io {
            path: self.dir.clone(),
            source,
        };
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_error)? {
            let entry = entry.map_err(io_error)?;
            if let Some(sequence) = entry
                .file_name()
                .to_str()
                .and_then(|name| parse_file_name(name, "snap"))
            {
                found.push((sequence, entry.path()));
            }
        }
        found.sort_by_key(|entry| std::cmp::Reverse(entry.0));
        Ok(found)
    }

    /// Removes every snapshot but the newest `keep`. Tries each one; the first failure, if any,
    /// is returned after the others were tried.
    pub fn prune(&self, keep: usize) -> Result<(), Error> {
        let mut first_error = None;
        for (_, path) in self.list()?.into_iter().skip(keep) {
            if let Err(source) = fs::remove_file(&path) {
                first_error.get_or_insert(Error::Io { path, source });
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Reads and checks one snapshot file (never panics on arbitrary bytes).
    pub fn read(path: &Path) -> Result<(SnapshotHeader, Vec<u8>), Error> {
        let bytes = fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        parse(path, &bytes)
    }

    /// Checks snapshot bytes read elsewhere; `path` only names them in errors. Never panics.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<(SnapshotHeader, Vec<u8>), Error> {
        parse(path, bytes)
    }

    /// The newest usable snapshot for `engine` of journal `journal_id` whose sequence is at most
    /// `last_sequence` (the journal's end) and at least `first_sequence - 1` (so the records after
    /// it are still held), with the reasons every newer one was passed over.
    pub fn latest(
        &self,
        journal_id: [u8; 16],
        engine: EngineId,
        first_sequence: u64,
        last_sequence: u64,
    ) -> Result<(Option<Snapshot>, Vec<Rejected>), Error> {
        let mut rejected = Vec::new();
        for (sequence, path) in self.list()? {
            let reject = |reason: String| Rejected {
                path: path.clone(),
                reason,
            };
            if sequence > last_sequence {
                rejected.push(reject(format!(
                    "ahead of the journal (which ends at {last_sequence}): its inputs were lost, so this state never happened"
                )));
                continue;
            }
            if sequence + 1 < first_sequence {
                rejected.push(reject(format!(
                    "older than the journal's first held record {first_sequence}: the records after it were removed"
                )));
                continue;
            }
            let (header, state) = match Self::read(&path) {
                Ok(read) => read,
                Err(error) => {
                    rejected.push(reject(error.to_string()));
                    continue;
                }
            };
            if header.sequence.get() != sequence {
                rejected.push(reject(format!(
                    "file name says sequence {sequence}, header says {}",
                    header.sequence.get()
                )));
                continue;
            }
            if header.journal_id != journal_id {
                rejected.push(reject("belongs to another journal".into()));
                continue;
            }
            if header.engine_tag.get() != engine.tag {
                rejected.push(reject(format!(
                    "written by engine {}, not {}",
                    header.engine_tag.get(),
                    engine.tag
                )));
                continue;
            }
            if header.engine_version.get() > engine.version_max {
                rejected.push(reject(format!(
                    "engine state version {} is newer than this build reads ({})",
                    header.engine_version.get(),
                    engine.version_max
                )));
                continue;
            }
            return Ok((
                Some(Snapshot {
                    path,
                    sequence,
                    engine_version: header.engine_version.get(),
                    state,
                }),
                rejected,
            ));
        }
        Ok((None, rejected))
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<(SnapshotHeader, Vec<u8>), Error> {
    let corrupt = |reason: String| Error::Corrupt {
        at: Location {
            path: path.to_path_buf(),
            offset: 0,
            sequence: None,
        },
        reason,
    };
    let (header, state) = SnapshotHeader::read_from_prefix(bytes)
        .map_err(|_| corrupt(format!("snapshot is {} bytes, too short", bytes.len())))?;
    if header.magic != SNAPSHOT_MAGIC {
        return Err(corrupt("not a sequent snapshot (bad magic)".into()));
    }
    if header.version.get() > FORMAT_VERSION {
        return Err(Error::NewerVersion {
            path: path.to_path_buf(),
            found: header.version.get(),
            supported: FORMAT_VERSION,
        });
    }
    let mut check = header;
    check.header_crc32c = 0.into();
    if crc32c::crc32c(check.as_bytes()) != header.header_crc32c.get() {
        return Err(corrupt("snapshot header checksum mismatch".into()));
    }
    if state.len() as u64 != header.payload_len.get() {
        return Err(corrupt(format!(
            "snapshot header announces {} bytes of state, the file has {}",
            header.payload_len.get(),
            state.len()
        )));
    }
    if crc32c::crc32c(state) != header.payload_crc32c.get() {
        return Err(corrupt("snapshot state checksum mismatch".into()));
    }
    Ok((header, state.to_vec()))
}
