//! The appender and its housekeeping thread.
//!
//! [`Writer::append`] copies a record into the mapped active segment and publishes it: no system
//! call, no lock, no allocation. Everything slow happens on the housekeeping thread: syncing to
//! disk under the [`Durability`] policy (and publishing the durable sequence), and sealing full
//! segments (hash chain, Merkle root, sparse index). The only slow step left to the appender is
//! the roll to a new segment (create, `fallocate`, map), once per segment.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::dir::Listing;
use crate::error::{Error, Location};
use zerocopy::IntoBytes;

use crate::format::{
    KIND_RETENTION, KIND_SEGMENT_END, KIND_USER_MAX, PAYLOAD_LEN_MAX, RECORD_HEADER_LEN,
    RECORDS_OFFSET, RetentionEntry, SEGMENT_LEN_MAX, SEGMENT_LEN_MIN, genesis_hash,
    record_footprint,
};
use crate::merkle::Hash;
use crate::seal::{ScanEnd, Scanner, Seal, scan_segment};
use crate::segment::{Segment, Slot, Spare};

/// When appended records reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Never synced while running (the page cache decides); synced on [`Writer::close`]. The
    /// durable sequence only moves at close and on [`Writer::sync`]. A process crash loses
    /// nothing (the page cache survives it); a machine crash can lose everything since the last
    /// sync.
    None,
    /// Synced every `interval` by the housekeeping thread.
    Periodic {
        /// Time between syncs.
        interval: Duration,
    },
    /// Group commit: synced as soon as `records` records are waiting, or `interval` after the
    /// last sync if fewer are, by the housekeeping thread.
    GroupCommit {
        /// Records that trigger a sync at once.
        records: u64,
        /// Longest wait for a sync when fewer records are waiting.
        interval: Duration,
    },
}

/// How to open or create a journal.
#[derive(Debug, Clone)]
pub struct Config {
    /// Bytes per segment file (a multiple of 4096, at least [`SEGMENT_LEN_MIN`]). Default 64 MiB.
    pub segment_len: u64,
    /// The sync policy. Default: group commit of 256 records or 200 µs.
    pub durability: Durability,
    /// Identity written into a new journal's segments; derived from the directory, the time and
    /// the process id when `None`. Ignored when the journal exists.
    pub journal_id: Option<[u8; 16]>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            segment_len: 64 << 20,
            durability: Durability::GroupCommit {
                records: 256,
                interval: Duration::from_micros(200),
            },
            journal_id: None,
        }
    }
}

/// What opening a journal found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// True when the directory held no journal and one was created.
    pub created: bool,
    /// A torn tail that was cut off, if any.
    pub truncated: Option<Truncation>,
    /// Sequence the next append gets.
    pub next_sequence: u64,
    /// Leftover temporary files removed.
    pub removed_temporaries: usize,
    /// A newest segment whose header never reached the disk, removed.
    pub removed_unfinished: Option<PathBuf>,
}

/// A torn tail removed on open: a record whose append a crash interrupted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// The segment.
    pub path: PathBuf,
    /// Where the torn record started.
    pub offset: u64,
    /// Bytes zeroed.
    pub bytes: u64,
    /// The sequence the torn record would have had (and the next append now gets).
    pub from_sequence: u64,
    /// What was wrong with it.
    pub reason: String,
}

impl std::fmt::Display for Truncation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "torn tail: cut {} bytes at offset {} of {} (from sequence {}): {}",
            self.bytes,
            self.offset,
            self.path.display(),
            self.from_sequence,
            self.reason
        )
    }
}

/// State shared by the writer, its housekeeping thread and [`DurableWatch`] handles.
#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    durability: Durability,
    /// Last appended sequence. Release by the writer after `written_position`; Acquire by the
    /// housekeeper before it loads `written_position`, so the position covers that sequence.
    written: AtomicU64,
    /// `segment_index << 40 | offset` of the end of the last appended record. Release by the
    /// writer, Acquire by the housekeeper.
    written_position: AtomicU64,
    /// Last sequence on disk. Release by the housekeeper after its sync; Acquire by readers of it.
    durable: AtomicU64,
    /// Segments not yet sealed, oldest first; the last one is the active segment. The writer
    /// pushes on roll, the housekeeper pops after sealing.
    unsealed: Mutex<VecDeque<Arc<Segment>>>,
    /// Set by the writer on close.
    stop: AtomicBool,
    /// Set by [`Writer::sync`]: the housekeeper syncs on its next round whatever the policy.
    sync_requested: AtomicBool,
    /// Set by the housekeeper when a sync or seal failed; appends fail from then on.
    failed: AtomicBool,
    failure: Mutex<Option<String>>,
    durable_lock: Mutex<()>,
    durable_changed: Condvar,
    /// The next segment's file, made ahead by the housekeeper; taken by the writer on roll.
    spare: Mutex<Option<Spare>>,
    /// Length of new segments.
    segment_len: u64,
}

const OFFSET_BITS: u32 = 40;
const _: () = assert!(SEGMENT_LEN_MAX <= 1 << OFFSET_BITS);

fn pack_position(segment_index: u64, offset: u64) -> u64 {
    (segment_index << OFFSET_BITS) | offset
}

fn unpack_position(position: u64) -> (u64, u64) {
    (position >> OFFSET_BITS, position & ((1 << OFFSET_BITS) - 1))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A cloneable view of a writer's durable sequence, for the stage that releases replies only once
/// their inputs are on disk.
#[derive(Debug, Clone)]
pub struct DurableWatch {
    shared: Arc<Shared>,
}

impl DurableWatch {
    /// The last sequence known to be on disk (0 before the first sync).
    #[must_use]
    pub fn durable_sequence(&self) -> u64 {
        // Acquire: pairs with the housekeeper's Release after its sync.
        self.shared.durable.load(Ordering::Acquire)
    }

    /// Blocks until `sequence` is durable or `timeout` passes; true when it is durable.
    #[must_use]
    pub fn wait_durable(&self, sequence: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut guard = lock(&self.shared.durable_lock);
        loop {
            if self.durable_sequence() >= sequence {
                return true;
            }
            let now = Instant::now();
            if now >= deadline || self.shared.failed.load(Ordering::Acquire) {
                return false;
            }
            guard = self
                .shared
                .durable_changed
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// The single appender of a journal directory.
#[derive(Debug)]
pub struct Writer {
    shared: Arc<Shared>,
    active: Arc<Segment>,
    /// Where the next record goes in `active`.
    offset: u64,
    next_sequence: u64,
    /// The largest payload that fits an empty segment.
    payload_len_max: usize,
    segment_len: u64,
    journal_id: [u8; 16],
    /// Group commit: the sequence at which the housekeeper is woken next.
    wake_at: u64,
    housekeeper: Option<JoinHandle<()>>,
    /// Held for the writer's life: an exclusive `flock` on `dir/LOCK`.
    _lock: File,
    report: OpenReport,
}

impl Writer {
    /// Opens the journal in `dir` for appending, creating the directory and the journal if needed.
    /// An existing journal's last segment is scanned: a torn tail is cut off and reported in
    /// [`Writer::open_report`]; a bad record that cannot be a torn tail is an error naming the
    /// segment, offset and sequence. Full segments that were not sealed yet are sealed by the
    /// housekeeping thread.
    pub fn open(dir: &Path, config: &Config) -> Result<Self, Error> {
        let segment_len = config.segment_len;
        if !(SEGMENT_LEN_MIN..=SEGMENT_LEN_MAX).contains(&segment_len) || segment_len % 4096 != 0 {
            return Err(Error::Config(format!(
                "segment_len {segment_len} must be a multiple of 4096 between {SEGMENT_LEN_MIN} and {SEGMENT_LEN_MAX}"
            )));
        }
        if let Durability::GroupCommit { records: 0, .. } = config.durability {
            return Err(Error::Config("group commit needs records >= 1".into()));
        }
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let lock_file = take_lock(dir)?;
        let mut listing = Listing::read(dir)?;
        // A segment made from a spare whose header never reached the disk (power loss right after
        // a roll): none of its records was durable (the header is synced before any is), so it
        // goes, and the segment before it, which ends with its marker, is continued.
        let mut removed_unfinished = None;
        if listing.segments.len() > 1
            && let Some((&first, path)) = listing.segments.last_key_value()
            && header_is_blank(path)
        {
            std::fs::remove_file(path).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            removed_unfinished = Some(path.clone());
            listing.segments.remove(&first);
        }
        let mut removed_temporaries = 0;
        for temp in &listing.temporaries {
            std::fs::remove_file(temp).map_err(|source| Error::Io {
                path: temp.clone(),
                source,
            })?;
            removed_temporaries += 1;
        }

        let (active, offset, next_sequence, truncated, created, unsealed_before, chain) =
            match listing.segments.last_key_value() {
                None => {
                    let journal_id = config.journal_id.unwrap_or_else(|| derive_journal_id(dir));
                    let segment = Segment::create(dir, journal_id, 0, 1, segment_len)?;
                    let chain = genesis_hash(&journal_id);
                    (segment, RECORDS_OFFSET, 1, None, true, Vec::new(), chain)
                }
                Some((_, last_path)) => {
                    let last = Segment::open(last_path, true)?;
                    let recovered = recover_tail(&last)?;
                    let (unsealed_before, chain) = unsealed_segments(dir, &listing, &last)?;
                    match recovered.full_next {
                        // The crash came between the end marker and the next segment's create.
                        Some(next_sequence) => {
                            let next = Segment::create(
                                dir,
                                last.journal_id(),
                                last.index() + 1,
                                next_sequence,
                                segment_len,
                            )?;
                            let mut before = unsealed_before;
                            before.push(Arc::new(last));
                            (
                                next,
                                RECORDS_OFFSET,
                                next_sequence,
                                recovered.truncated,
                                false,
                                before,
                                chain,
                            )
                        }
                        None => (
                            last,
                            recovered.offset,
                            recovered.next_sequence,
                            recovered.truncated,
                            false,
                            unsealed_before,
                            chain,
                        ),
                    }
                }
            };
        // Start-up pays the first-write faults of the active segment, not the first appends.
        active.populate_from(offset);
        let active = Arc::new(active);
        let journal_id = active.journal_id();
        let mut unsealed: VecDeque<Arc<Segment>> = unsealed_before.into();
        unsealed.push_back(Arc::clone(&active));
        let last_written = next_sequence - 1;
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            durability: config.durability,
            written: AtomicU64::new(last_written),
            written_position: AtomicU64::new(pack_position(active.index(), offset)),
            // What was there before this open survived the crash or close that preceded it, but
            // nothing is known to be on disk until the first sync.
            durable: AtomicU64::new(0),
            unsealed: Mutex::new(unsealed),
            stop: AtomicBool::new(false),
            sync_requested: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            durable_lock: Mutex::new(()),
            durable_changed: Condvar::new(),
            spare: Mutex::new(None),
            segment_len,
        });
        let first_unsealed = lock(&shared.unsealed)[0].index();
        let mut housekeeper = Housekeeper {
            shared: Arc::clone(&shared),
            chain,
            synced_index: first_unsealed,
            synced_offset: RECORDS_OFFSET,
            hint_unsynced: false,
            sealing: None,
            announced: active.index(),
            round: Vec::with_capacity(16),
        };
        // Everything before this open is synced now, so the durable sequence starts true.
        housekeeper.sync_round(true)?;
        let handle = thread::Builder::new()
            .name("journal-housekeeper".into())
            .spawn(move || housekeeper.run())
            .map_err(|source| Error::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        let wake_at = match config.durability {
            Durability::GroupCommit { records, .. } => last_written + records,
            _ => u64::MAX,
        };
        let payload_len_max = ((segment_len - RECORDS_OFFSET - 2 * RECORD_HEADER_LEN) as usize)
            .min(PAYLOAD_LEN_MAX as usize);
        Ok(Self {
            shared,
            active,
            offset,
            next_sequence,
            payload_len_max,
            segment_len,
            journal_id,
            wake_at,
            housekeeper: Some(handle),
            _lock: lock_file,
            report: OpenReport {
                created,
                truncated,
                next_sequence,
                removed_temporaries,
                removed_unfinished,
            },
        })
    }

    /// What opening found: whether the journal was created, and a torn tail that was cut.
    #[must_use]
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    /// The journal's identity.
    #[must_use]
    pub fn journal_id(&self) -> [u8; 16] {
        self.journal_id
    }

    /// The sequence the next append gets.
    #[must_use]
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// The last sequence known to be on disk.
    #[must_use]
    pub fn durable_sequence(&self) -> u64 {
        // Acquire: pairs with the housekeeper's Release after its sync.
        self.shared.durable.load(Ordering::Acquire)
    }

    /// A handle on the durable sequence for another thread.
    #[must_use]
    pub fn durable_watch(&self) -> DurableWatch {
        DurableWatch {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The largest payload an append accepts.
    #[must_use]
    pub fn payload_len_max(&self) -> usize {
        self.payload_len_max
    }

    /// Appends a record of `kind` (1..=[`KIND_USER_MAX`]) and returns its sequence. A copy into
    /// the mapping; no system call except when the segment is full and a new one is created.
    pub fn append(&mut self, kind: u8, timestamp_ns: u64, payload: &[u8]) -> Result<u64, Error> {
        assert!(
            (1..=KIND_USER_MAX).contains(&kind),
            "record kinds 1..={KIND_USER_MAX} are the application's; got {kind}"
        );
        self.append_kind(kind, timestamp_ns, payload)
    }

    pub(crate) fn append_kind(
        &mut self,
        kind: u8,
        timestamp_ns: u64,
        payload: &[u8],
    ) -> Result<u64, Error> {
        if payload.len() > self.payload_len_max {
            return Err(Error::PayloadTooLarge {
                len: payload.len(),
                max: self.payload_len_max,
            });
        }
        // Relaxed: a flag; the failure text is read under its mutex.
        if self.shared.failed.load(Ordering::Relaxed) {
            return Err(self.failure());
        }
        let footprint = record_footprint(payload.len() as u32);
        // Always leave room for the end marker after this record. The active segment's own length
        // counts: a journal reopened with another `segment_len` keeps its last segment's size.
        if self.offset + footprint + RECORD_HEADER_LEN > self.active.len() {
            self.roll()?;
        }
        let sequence = self.next_sequence;
        // SAFETY: this writer is the segment's only writer (the directory lock); `offset` is the end
        // of the published records; the record and an end marker fit (checked above).
        unsafe {
            self.active
                .write_record(self.offset, sequence, timestamp_ns, kind, payload);
        }
        self.offset += footprint;
        self.next_sequence += 1;
        // Release (both): the position first, then the sequence; the housekeeper loads the
        // sequence with Acquire and then the position, which therefore covers the sequence.
        self.shared.written_position.store(
            pack_position(self.active.index(), self.offset),
            Ordering::Release,
        );
        self.shared.written.store(sequence, Ordering::Release);
        if sequence >= self.wake_at {
            if let Durability::GroupCommit { records, .. } = self.shared.durability {
                self.wake_at = sequence + records;
            }
            self.wake_housekeeper();
        }
        Ok(sequence)
    }

    fn failure(&self) -> Error {
        Error::Housekeeping(
            lock(&self.shared.failure)
                .clone()
                .unwrap_or_else(|| "unknown failure".into()),
        )
    }

    fn wake_housekeeper(&self) {
        if let Some(handle) = &self.housekeeper {
            handle.thread().unpark();
        }
    }

    /// Ends the active segment with its marker and starts the next one.
    fn roll(&mut self) -> Result<(), Error> {
        // SAFETY: as in `append_kind`; an end marker always fits (the append that came before left
        // room for it).
        unsafe {
            self.active
                .write_record(self.offset, self.next_sequence, 0, KIND_SEGMENT_END, &[]);
        }
        // The housekeeper's spare makes this one `rename`; without one (it is behind, or the
        // configured length changed) the segment is created here.
        let spare = lock(&self.shared.spare)
            .take()
            .filter(|spare| spare.len() == self.segment_len);
        let next = Arc::new(match spare {
            Some(spare) => spare.activate(
                &self.shared.dir,
                self.journal_id,
                self.active.index() + 1,
                self.next_sequence,
            )?,
            None => Segment::create(
                &self.shared.dir,
                self.journal_id,
                self.active.index() + 1,
                self.next_sequence,
                self.segment_len,
            )?,
        });
        lock(&self.shared.unsealed).push_back(Arc::clone(&next));
        self.active = next;
        self.offset = RECORDS_OFFSET;
        self.shared.written_position.store(
            pack_position(self.active.index(), self.offset),
            Ordering::Release,
        );
        self.wake_housekeeper();
        Ok(())
    }

    /// Syncs everything appended so far (through the housekeeping thread, whatever the policy)
    /// and returns the durable sequence.
    pub fn sync(&mut self) -> Result<u64, Error> {
        let written = self.next_sequence - 1;
        let watch = self.durable_watch();
        // Release: pairs with the housekeeper's AcqRel swap.
        self.shared.sync_requested.store(true, Ordering::Release);
        self.wake_housekeeper();
        while !watch.wait_durable(written, Duration::from_millis(100)) {
            if self.shared.failed.load(Ordering::Acquire) {
                return Err(self.failure());
            }
            // A request that raced with a round already past its check is picked up here.
            self.shared.sync_requested.store(true, Ordering::Release);
            self.wake_housekeeper();
        }
        Ok(self.durable_sequence())
    }

    /// Stops the housekeeping thread after a last sync and seal, and releases the lock. Dropping a
    /// writer does the same but cannot report an error.
    pub fn close(mut self) -> Result<OpenReport, Error> {
        self.stop()?;
        Ok(self.report.clone())
    }

    fn stop(&mut self) -> Result<(), Error> {
        let Some(handle) = self.housekeeper.take() else {
            return Ok(());
        };
        self.shared.stop.store(true, Ordering::Release);
        handle.thread().unpark();
        handle
            .join()
            .map_err(|_| Error::Housekeeping("the housekeeping thread panicked".into()))?;
        if self.shared.failed.load(Ordering::Acquire) {
            return Err(self.failure());
        }
        Ok(())
    }

    /// Removes old segments under `policy`. The removal is first appended as a
    /// [`KIND_RETENTION`](crate::format::KIND_RETENTION) record naming each segment with its chain
    /// end and Merkle root, and synced; then the segment files are deleted or moved to the
    /// archive. Their seals stay in the directory, so the chain still verifies from the genesis
    /// hash. Only sealed segments are removed, oldest first.
    pub fn apply_retention(
        &mut self,
        policy: &Retention,
        timestamp_ns: u64,
    ) -> Result<RetentionOutcome, Error> {
        let dir = self.shared.dir.clone();
        let listing = Listing::read(&dir)?;
        let present: Vec<(u64, PathBuf)> = listing
            .segments
            .iter()
            .map(|(first, path)| (*first, path.clone()))
            .collect();
        let removable_count = present
            .len()
            .saturating_sub(policy.keep_segments_min.max(1));
        let mut entries = Vec::new();
        let mut chosen = Vec::new();
        for (first, path) in present.into_iter().take(removable_count) {
            let Some(seal_path) = listing.seals.get(&first) else {
                break; // not sealed yet: neither it nor anything newer goes
            };
            let seal = Seal::read(seal_path)?;
            if seal.last_sequence() >= policy.keep_from_sequence {
                break;
            }
            entries.push(RetentionEntry {
                segment_index: seal.header.segment_index,
                first_sequence: seal.header.first_sequence,
                record_count: seal.header.record_count,
                archived: u64::from(policy.archive_dir.is_some()).into(),
                chain_end: seal.header.chain_end,
                merkle_root: seal.header.merkle_root,
            });
            chosen.push(path);
        }
        if chosen.is_empty() {
            return Ok(RetentionOutcome {
                record_sequence: None,
                removed: Vec::new(),
            });
        }
        let sequence = self.append_kind(KIND_RETENTION, timestamp_ns, entries.as_bytes())?;
        self.sync()?;
        if let Some(archive) = &policy.archive_dir {
            std::fs::create_dir_all(archive).map_err(|source| Error::Io {
                path: archive.clone(),
                source,
            })?;
        }
        for path in &chosen {
            let io_error = |source| Error::Io {
                path: path.clone(),
                source,
            };
            match &policy.archive_dir {
                None => std::fs::remove_file(path).map_err(io_error)?,
                Some(archive) => {
                    let target = archive.join(path.file_name().unwrap_or_default());
                    if std::fs::rename(path, &target).is_err() {
                        // Another file system: copy, sync, then remove.
                        std::fs::copy(path, &target).map_err(io_error)?;
                        File::open(&target)
                            .and_then(|f| f.sync_all())
                            .map_err(io_error)?;
                        std::fs::remove_file(path).map_err(io_error)?;
                    }
                    crate::segment::sync_dir(archive)?;
                }
            }
        }
        crate::segment::sync_dir(&dir)?;
        Ok(RetentionOutcome {
            record_sequence: Some(sequence),
            removed: chosen,
        })
    }
}

/// Which segments [`Writer::apply_retention`] may remove.
#[derive(Debug, Clone)]
pub struct Retention {
    /// Keep every segment holding this sequence or a later one (typically the newest snapshot's
    /// sequence plus one, so recovery never needs a removed record).
    pub keep_from_sequence: u64,
    /// Keep at least this many of the newest segments (the active one counts; at least 1).
    pub keep_segments_min: usize,
    /// Move removed segments here instead of deleting them.
    pub archive_dir: Option<PathBuf>,
}

/// What retention did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// The retention record's sequence, when anything was removed.
    pub record_sequence: Option<u64>,
    /// Segment files removed (or archived), oldest first.
    pub removed: Vec<PathBuf>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Errors were reported to whoever asked (`close`); a drop has no one to tell.
        let _ = self.stop();
    }
}

/// The housekeeping thread's state.
struct Housekeeper {
    shared: Arc<Shared>,
    /// Chain hash after the last sealed segment.
    chain: Hash,
    /// Everything before (`synced_index`, `synced_offset`) is on disk.
    synced_index: u64,
    synced_offset: u64,
    /// True while the stored hint has not been synced.
    hint_unsynced: bool,
    /// The seal in progress: the segment's index and the scan so far.
    sealing: Option<(u64, Scanner)>,
    /// Segments up to this index have their header page and directory entry on disk.
    announced: u64,
    /// The unsealed segments of the current round, reused: a sync round allocates nothing.
    round: Vec<Arc<Segment>>,
}

impl Housekeeper {
    fn run(mut self) {
        // True while full segments wait for their seal: the next round starts at once.
        let mut backlog = false;
        loop {
            let stopping = self.shared.stop.load(Ordering::Acquire);
            // AcqRel: the request pairs with the writer's Release in `sync`.
            let requested = self.shared.sync_requested.swap(false, Ordering::AcqRel);
            let sync = stopping || requested || self.shared.durability != Durability::None;
            // The spare first: a roll that finds none creates its segment on the appender's thread.
            let result = self
                .sync_round(sync)
                .and_then(|()| if stopping { Ok(()) } else { self.make_spare() })
                .and_then(|()| self.seal_round())
                .map(|more| {
                    backlog = more;
                });
            if let Err(error) = result {
                *lock(&self.shared.failure) = Some(error.to_string());
                self.shared.failed.store(true, Ordering::Release);
                self.notify_durable();
                return;
            }
            if backlog {
                continue;
            }
            if stopping {
                // A clean stop leaves the hint on disk too.
                if self.hint_unsynced
                    && let Some(active) = lock(&self.shared.unsealed).back().cloned()
                    && let Err(error) = active.flush(0, 4096)
                {
                    *lock(&self.shared.failure) = Some(error.to_string());
                    self.shared.failed.store(true, Ordering::Release);
                }
                if let Some(spare) = lock(&self.shared.spare).take() {
                    spare.discard();
                }
                return;
            }
            match self.shared.durability {
                Durability::None => thread::park(),
                Durability::Periodic { interval } | Durability::GroupCommit { interval, .. } => {
                    thread::park_timeout(interval);
                }
            }
        }
    }

    /// Makes the next segment's file ahead of the roll that will need it.
    fn make_spare(&self) -> Result<(), Error> {
        if lock(&self.shared.spare).is_some() {
            return Ok(());
        }
        let spare = Spare::create(&self.shared.dir, self.shared.segment_len)?;
        *lock(&self.shared.spare) = Some(spare);
        Ok(())
    }

    fn notify_durable(&self) {
        let _guard = lock(&self.shared.durable_lock);
        self.shared.durable_changed.notify_all();
    }

    /// Syncs up to the writer's published position and publishes the durable sequence.
    fn sync_round(&mut self, sync: bool) -> Result<(), Error> {
        // Acquire: pairs with the writer's Release; the position loaded next covers `written`.
        let written = self.shared.written.load(Ordering::Acquire);
        let (index, offset) = unpack_position(self.shared.written_position.load(Ordering::Acquire));
        if !sync || written <= self.shared.durable.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut segments = std::mem::take(&mut self.round);
        segments.clear();
        segments.extend(lock(&self.shared.unsealed).iter().cloned());
        let result = self.sync_segments(&segments, written, index, offset);
        segments.clear();
        self.round = segments;
        result
    }

    fn sync_segments(
        &mut self,
        segments: &[Arc<Segment>],
        written: u64,
        index: u64,
        offset: u64,
    ) -> Result<(), Error> {
        // A segment made from a spare has its header and name only in memory: put them on disk
        // before any of its records is called durable.
        let mut renamed = false;
        for segment in segments {
            if segment.index() > self.announced && segment.index() <= index {
                segment.flush(0, 4096)?;
                self.announced = segment.index();
                renamed = true;
            }
        }
        if renamed {
            crate::segment::sync_dir(&self.shared.dir)?;
        }
        for segment in segments {
            if segment.index() < self.synced_index || segment.index() > index {
                continue;
            }
            let mut start = if segment.index() == self.synced_index {
                self.synced_offset
            } else {
                RECORDS_OFFSET
            };
            let end = if segment.index() == index {
                offset
            } else {
                segment.len()
            };
            if segment.index() == index && self.hint_unsynced {
                // The hint stored after the last round's sync rides along with this one: one
                // msync, not two.
                start = 0;
                self.hint_unsynced = false;
            }
            segment.flush(start, end)?;
        }
        // After the data is on disk, the hint may say so: it reaches the disk with the next sync
        // (or earlier, by the kernel's writeback), and never claims more than the disk holds.
        if let Some(active) = segments.iter().find(|s| s.index() == index) {
            active.set_durable_hint(written);
            self.hint_unsynced = true;
        }
        self.synced_index = index;
        self.synced_offset = offset;
        // Release: pairs with the Acquire of whoever reads the durable sequence.
        self.shared.durable.fetch_max(written, Ordering::Release);
        self.notify_durable();
        Ok(())
    }

    /// Seals the oldest full segment a slice at a time ([`SEAL_SLICE_RECORDS`] records per
    /// round); true when more sealing waits. Syncs and the spare segment never wait behind a
    /// whole segment's hashing.
    fn seal_round(&mut self) -> Result<bool, Error> {
        let (segment, next_first) = {
            let unsealed = lock(&self.shared.unsealed);
            if unsealed.len() < 2 {
                return Ok(false);
            }
            (Arc::clone(&unsealed[0]), unsealed[1].first_sequence())
        };
        let scanner = match &mut self.sealing {
            Some((index, scanner)) if *index == segment.index() => scanner,
            _ => {
                self.sealing = Some((segment.index(), Scanner::new(&segment, self.chain)));
                &mut self.sealing.as_mut().expect("just set").1
            }
        };
        if !scanner.step(&segment, SEAL_SLICE_RECORDS, |_| {}) {
            return Ok(true);
        }
        let Some((_, scanner)) = self.sealing.take() else {
            return Ok(true);
        };
        let summary = scanner.finish();
        match (summary.end, &summary.bad) {
            (Some(ScanEnd::Full { next_sequence, .. }), None) if next_sequence == next_first => {}
            _ => {
                let (offset, reason) = match &summary.bad {
                    Some(bad) => (bad.offset, bad.reason.clone()),
                    None => (
                        summary.records_end,
                        format!(
                            "full segment does not end with an end marker naming sequence {next_first}"
                        ),
                    ),
                };
                return Err(Error::Corrupt {
                    at: Location {
                        path: segment.path().to_path_buf(),
                        offset,
                        sequence: Some(summary.first_sequence + summary.record_count),
                    },
                    reason,
                });
            }
        }
        Seal::from_summary(&segment, &summary).write(&self.shared.dir)?;
        self.chain = summary.chain_end;
        let mut unsealed = lock(&self.shared.unsealed);
        unsealed.pop_front();
        Ok(unsealed.len() >= 2)
    }
}

/// Records hashed per housekeeping round while sealing (about 20 ms of hashing).
const SEAL_SLICE_RECORDS: u64 = 65_536;

/// What scanning the last segment found.
struct TailRecovery {
    offset: u64,
    next_sequence: u64,
    truncated: Option<Truncation>,
    /// Set when the last segment is full (ends with its marker): the next segment's first sequence.
    full_next: Option<u64>,
}

/// Scans the last segment; cuts a torn tail; refuses corruption that a crash cannot explain.
fn recover_tail(segment: &Segment) -> Result<TailRecovery, Error> {
    let summary = scan_segment(segment, [0; 32], |_| {});
    let next_sequence = summary.first_sequence + summary.record_count;
    if let Some(ScanEnd::Full { next_sequence, .. }) = summary.end {
        return Ok(TailRecovery {
            offset: summary.records_end,
            next_sequence,
            truncated: None,
            full_next: Some(next_sequence),
        });
    }
    let bad = match summary.bad {
        Some(bad) => bad,
        None => match segment.last_nonzero(summary.records_end) {
            // Clean: nothing after the last record; but a segment whose header says records
            // up to `hint` reached the disk cannot end before them. No crash zeroes a synced
            // record, so this is damage, and cutting it would drop what was acknowledged.
            None => {
                let hint = segment.durable_hint();
                if hint >= next_sequence {
                    return Err(Error::Corrupt {
                        at: Location {
                            path: segment.path().to_path_buf(),
                            offset: summary.records_end,
                            sequence: Some(next_sequence),
                        },
                        reason: format!(
                            "the segment ends before sequence {next_sequence}, but records up to \
                             {hint} were on disk, so this is corruption, not a torn tail"
                        ),
                    });
                }
                return Ok(TailRecovery {
                    offset: summary.records_end,
                    next_sequence,
                    truncated: None,
                    full_next: None,
                });
            }
            // Bytes after an unpublished frame: an append that a crash stopped before its frame
            // word was stored. Left there, they would look like frames to a later reader.
            Some(_) => crate::seal::BadRecord {
                offset: summary.records_end,
                expected_sequence: next_sequence,
                reason: "bytes of an unfinished append after the last record".into(),
            },
        },
    };
    let corrupt = |reason: String| Error::Corrupt {
        at: Location {
            path: segment.path().to_path_buf(),
            offset: bad.offset,
            sequence: Some(bad.expected_sequence),
        },
        reason,
    };
    // A record reported durable is never a torn tail.
    let hint = segment.durable_hint();
    if bad.expected_sequence <= hint {
        return Err(corrupt(format!(
            "{}; records up to {hint} were on disk, so this is corruption, not a torn tail",
            bad.reason
        )));
    }
    // A torn append cannot be followed by a complete record: look for one after the bad bytes.
    let mut probe = bad.offset + 8;
    while probe + RECORD_HEADER_LEN <= segment.len() {
        if let Slot::Record(record) = segment.read_at(probe)
            && record.sequence > bad.expected_sequence
        {
            return Err(corrupt(format!(
                "{}; a valid record (sequence {}) follows at offset {probe}, so this is corruption, not a torn tail",
                bad.reason, record.sequence
            )));
        }
        probe += 8;
    }
    let end = segment
        .last_nonzero(bad.offset)
        .map_or(bad.offset, |last| (last + 8) & !7);
    let end = end.min(segment.len());
    segment.zero_range(bad.offset, end)?;
    Ok(TailRecovery {
        offset: bad.offset,
        next_sequence: bad.expected_sequence,
        truncated: Some(Truncation {
            path: segment.path().to_path_buf(),
            offset: bad.offset,
            bytes: end - bad.offset,
            from_sequence: bad.expected_sequence,
            reason: bad.reason,
        }),
        full_next: None,
    })
}

/// The full segments before `last` that have no seal yet (oldest first), and the chain hash
/// before the first of them (or before `last` when all are sealed).
fn unsealed_segments(
    dir: &Path,
    listing: &Listing,
    last: &Segment,
) -> Result<(Vec<Arc<Segment>>, Hash), Error> {
    let mut unsealed = Vec::new();
    let mut chain = genesis_hash(&last.journal_id());
    // Walk back from the newest full segment to the newest seal.
    let mut pending: Vec<&PathBuf> = Vec::new();
    for (first, path) in listing.segments.range(..last.first_sequence()).rev() {
        if let Some(seal_path) = listing.seals.get(first) {
            chain = Seal::read(seal_path)?.header.chain_end;
            break;
        }
        pending.push(path);
    }
    if pending.is_empty()
        && listing
            .segments
            .range(..last.first_sequence())
            .next()
            .is_none()
    {
        // `last` is the oldest segment left: its chain start is the previous seal's end (segments
        // removed by retention keep their seals) or the genesis hash.
        if let Some((_, seal_path)) = listing.seals.range(..last.first_sequence()).next_back() {
            chain = Seal::read(seal_path)?.header.chain_end;
        }
    }
    for path in pending.into_iter().rev() {
        unsealed.push(Arc::new(Segment::open(path, true)?));
    }
    let _ = dir;
    Ok((unsealed, chain))
}

/// True when the file's first page is all zero: a segment whose header was never written back.
fn header_is_blank(path: &Path) -> bool {
    use std::os::unix::fs::FileExt as _;
    let mut page = [0u8; 4096];
    File::open(path)
        .and_then(|file| file.read_exact_at(&mut page, 0))
        .is_ok_and(|()| page.iter().all(|&b| b == 0))
}

fn take_lock(dir: &Path) -> Result<File, Error> {
    let path = dir.join("LOCK");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
    // SAFETY: plain syscall on an open fd.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(Error::Locked { path });
    }
    Ok(file)
}

fn derive_journal_id(dir: &Path) -> [u8; 16] {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(dir.as_os_str().as_encoded_bytes());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    hasher.update(now.as_nanos().to_le_bytes());
    hasher.update(std::process::id().to_le_bytes());
    let digest: [u8; 32] = hasher.finalize().into();
    let mut id = [0; 16];
    id.copy_from_slice(&digest[..16]);
    id
}
