//! `sequent-bench journal`: the sequent journal beside plain files, in one run.
//!
//! Five sections, each with a baseline run beside it and a correctness check that fails the run:
//!
//! - [`Section::Append`]: appends without sync (64 B, 256 B, 1 KiB payloads) against a
//!   `BufWriter<File>` doing buffered `write(2)`: throughput from an untimed pass, per-append
//!   latency percentiles from a second pass that times every append on its own.
//! - [`Section::Durable`]: group commit against `write` + `fdatasync` per batch.
//! - [`Section::Replay`]: a sequential [`Reader`](sequent_journal::Reader) scan against a
//!   `BufReader` parsing the baseline framing.
//! - [`Section::Tail`]: append-to-visible latency of a tailing reader on its own core against an
//!   `rtrb` queue between the same two threads.
//! - [`Section::Rss`]: resident memory while a multi-gigabyte journal is replayed.
//!
//! Every file lives under one directory the run creates and removes ([`ScratchDir`]). The
//! journal is used only through its public API.

pub mod append;
mod baseline;
mod durable;
mod render;
mod replay;
mod tail;

use std::path::{Path, PathBuf};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

pub use render::{json_line, render_markdown, render_table};

/// `impl` of the journal's rows.
pub const IMPL_JOURNAL: &str = "sequent-journal";

/// Record kind of every benchmark record (any application kind would do).
const KIND: u8 = 1;
/// Payload sizes of the append section.
pub const PAYLOAD_LENS: [usize; 3] = [64, 256, 1024];
/// Latencies above this are clamped into the histogram's top bucket (and still count for max).
const LATENCY_NS_MAX: u64 = 60_000_000_000;
/// A run whose reader or appender makes no progress for this long fails instead of hanging.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The sections, in the order a run takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Section {
    Append,
    Durable,
    Replay,
    Tail,
    Rss,
}

impl Section {
    /// The name in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Append => "append",
            Self::Durable => "durable",
            Self::Replay => "replay",
            Self::Tail => "tail",
            Self::Rss => "rss",
        }
    }
}

/// What one run measures and where its files go.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// Parent of the run's scratch directory (created inside it, removed at the end).
    pub dir: PathBuf,
    /// Records per append run of 64 B payloads, and records in the replay section.
    pub records: u64,
    /// Payload bytes one append run writes at most: larger payloads get fewer records.
    pub append_bytes_max: u64,
    /// Payload sizes of the append section.
    pub payload_lens: Vec<usize>,
    /// Segment length of the journal in the append, durable, replay and tail sections.
    pub segment_len: u64,
    /// Records per durable run.
    pub durable_records: u64,
    /// Group commit sizes (records per sync) of the durable section; the baseline syncs every
    /// this many records.
    pub group_records: Vec<u64>,
    /// Group commit interval: the longest a record waits for a sync when fewer are waiting.
    pub group_interval: Duration,
    /// Records per tail run.
    pub tail_records: u64,
    /// Send rate of the tail runs, records per second.
    pub tail_rate_per_sec: u64,
    /// Bytes of 1 KiB records written and replayed by the RSS section; 0 leaves it out.
    pub rss_bytes: u64,
    /// Segment length of the RSS section.
    pub rss_segment_len: u64,
    /// `available_parallelism()`.
    pub cores: usize,
    /// Pinnable core ids (read before anything was pinned).
    pub core_ids: Vec<usize>,
}

impl JournalConfig {
    /// The full run's sizes: 10M records, 1 GiB per append run, 2 GB for the RSS section.
    pub fn new(dir: PathBuf, cores: usize, core_ids: Vec<usize>) -> Self {
        Self {
            dir,
            records: 10_000_000,
            append_bytes_max: 1 << 30,
            payload_lens: PAYLOAD_LENS.to_vec(),
            segment_len: 64 << 20,
            durable_records: 200_000,
            group_records: vec![256, 64],
            group_interval: Duration::from_micros(200),
            tail_records: 400_000,
            tail_rate_per_sec: 200_000,
            rss_bytes: 2_000_000_000,
            rss_segment_len: 256 << 20,
            cores,
            core_ids,
        }
    }

    /// `--quick`: about a fifth of the full run, whole run well under a minute on 2 cores.
    pub fn quick(dir: PathBuf, cores: usize, core_ids: Vec<usize>) -> Self {
        Self {
            records: 2_000_000,
            append_bytes_max: 256 << 20,
            durable_records: 50_000,
            tail_records: 200_000,
            rss_bytes: 250_000_000,
            ..Self::new(dir, cores, core_ids)
        }
    }

    /// Records of one append run with `payload_len`-byte payloads.
    fn append_records(&self, payload_len: usize) -> u64 {
        self.records
            .min(self.append_bytes_max / payload_len.max(1) as u64)
            .max(1)
    }

    fn validate(&self) -> Result<(), BenchError> {
        let bad = |what: &str| Err(BenchError::Config(what.to_owned()));
        if self.records == 0 || self.durable_records == 0 || self.tail_records == 0 {
            return bad("record counts must be at least 1");
        }
        if self.payload_lens.iter().any(|&len| len < PAYLOAD_LEN_MIN) {
            return bad("payloads must be at least 16 bytes (sequence and stamp)");
        }
        if self.group_records.contains(&0) {
            return bad("group commit sizes must be at least 1");
        }
        if self.tail_rate_per_sec == 0 {
            return bad("the tail rate must be at least 1 record/s");
        }
        Ok(())
    }
}

/// Every payload carries its sequence (bytes 0..8) and, in the tail section, a stamp (8..16).
const PAYLOAD_LEN_MIN: usize = 16;

/// One measured line of the report. The field names are the JSON keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// `append`, `durable`, `replay`, `tail`, `rss`.
    pub section: String,
    /// `sequent-journal` or the baseline's name (`bufwriter`, `write+fdatasync`, `bufreader`,
    /// `rtrb`).
    #[serde(rename = "impl")]
    pub imp: String,
    /// What varies inside the section: `64 B`, `group 256`, `group 256 wait`, ….
    pub case: String,
    /// Payload bytes per record.
    pub payload_bytes: usize,
    /// Records in the run.
    pub records: u64,
    /// Records per second (durable section: records that became durable per second; tail:
    /// the achieved send rate).
    pub records_per_sec: u64,
    /// Payload megabytes (10^6) per second.
    pub payload_mb_per_sec: f64,
    /// This row's records/s over the baseline's in the same case and run (journal rows only);
    /// for the tail section, baseline p99 / journal p99. >1: the journal is better.
    pub vs_baseline: Option<f64>,
    /// What the percentiles time (`per append`, `per batch commit`, `append to visible`), or
    /// `None` when the row has no latency.
    pub latency: Option<String>,
    /// Mean of the same histogram: beside p50 it shows how much the rare slow events weigh.
    pub mean_ns: Option<u64>,
    pub p50_ns: Option<u64>,
    pub p99_ns: Option<u64>,
    pub p999_ns: Option<u64>,
    pub max_ns: Option<u64>,
    /// RSS section: resident bytes when the replay started, at most, and at the end.
    pub rss_start_bytes: Option<u64>,
    pub rss_max_bytes: Option<u64>,
    pub rss_end_bytes: Option<u64>,
    /// RSS section: most segment files mapped at once by this process.
    pub mapped_segments_max: Option<u64>,
    /// Threads the section runs (the journal's housekeeping thread not counted).
    pub threads: usize,
    /// Whether those threads were pinned to cores of their own.
    pub pinned: bool,
    /// How it was measured, in a few words.
    pub note: String,
    /// The baseline row's `case` this row is ranked against (its own `case` unless set).
    #[serde(skip)]
    pub baseline_case: String,
}

impl Row {
    fn new(section: Section, imp: &str, case: String, payload_bytes: usize, records: u64) -> Self {
        Self {
            section: section.name().to_owned(),
            imp: imp.to_owned(),
            baseline_case: case.clone(),
            case,
            payload_bytes,
            records,
            records_per_sec: 0,
            payload_mb_per_sec: 0.0,
            vs_baseline: None,
            latency: None,
            mean_ns: None,
            p50_ns: None,
            p99_ns: None,
            p999_ns: None,
            max_ns: None,
            rss_start_bytes: None,
            rss_max_bytes: None,
            rss_end_bytes: None,
            mapped_segments_max: None,
            threads: 1,
            pinned: false,
            note: String::new(),
        }
    }

    /// Sets the rate columns from `records` in `elapsed`.
    fn with_rate(mut self, elapsed: Duration) -> Self {
        let secs = elapsed.as_secs_f64().max(1e-9);
        self.records_per_sec = (self.records as f64 / secs).round() as u64;
        self.payload_mb_per_sec = self.records as f64 * self.payload_bytes as f64 / secs / 1e6;
        self
    }

    /// Sets the latency columns from `hist`.
    fn with_latency(mut self, what: &str, hist: &Histogram<u64>) -> Self {
        if !hist.is_empty() {
            self.latency = Some(what.to_owned());
            self.mean_ns = Some(hist.mean().round() as u64);
            self.p50_ns = Some(hist.value_at_quantile(0.50));
            self.p99_ns = Some(hist.value_at_quantile(0.99));
            self.p999_ns = Some(hist.value_at_quantile(0.999));
            self.max_ns = Some(hist.max());
        }
        self
    }

    fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }

    fn is_journal(&self) -> bool {
        self.imp == IMPL_JOURNAL
    }
}

/// What went wrong; every variant fails the run (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("journal: {0}")]
    Journal(#[from] sequent_journal::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{section} {imp}: correctness check failed: {what}")]
    Check {
        section: &'static str,
        imp: String,
        what: String,
    },
    #[error("bad configuration: {0}")]
    Config(String),
}

impl BenchError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn check(section: Section, imp: &str, what: String) -> Self {
        Self::Check {
            section: section.name(),
            imp: imp.to_owned(),
            what,
        }
    }
}

/// What the runner reports while it works.
#[derive(Debug)]
pub enum Progress<'a> {
    /// A section starts.
    Section {
        section: Section,
        threads: usize,
        cores: usize,
        pinned: bool,
    },
    /// A run finished.
    Row(&'a Row),
    /// A section was left out, and why.
    Skipped { section: Section, reason: String },
}

/// Runs every section and returns the rows, journal rows ranked against their baseline.
/// Removes every file it wrote, also on error.
pub fn run(
    config: &JournalConfig,
    mut progress: impl FnMut(Progress<'_>),
) -> Result<Vec<Row>, BenchError> {
    config.validate()?;
    let scratch = ScratchDir::create(&config.dir)?;
    let mut rows = Vec::new();
    let mut push = |row: Row, progress: &mut dyn FnMut(Progress<'_>)| {
        progress(Progress::Row(&row));
        rows.push(row);
    };

    progress(Progress::Section {
        section: Section::Append,
        threads: 1,
        cores: config.cores,
        pinned: false,
    });
    for &payload_len in &config.payload_lens {
        for row in append::run(config, scratch.path(), payload_len)? {
            push(row, &mut progress);
        }
    }

    progress(Progress::Section {
        section: Section::Durable,
        threads: 1,
        cores: config.cores,
        pinned: false,
    });
    for &group in &config.group_records {
        for row in durable::run(config, scratch.path(), group)? {
            push(row, &mut progress);
        }
    }

    progress(Progress::Section {
        section: Section::Replay,
        threads: 1,
        cores: config.cores,
        pinned: false,
    });
    for row in replay::run(config, scratch.path())? {
        push(row, &mut progress);
    }

    let plan = tail::plan(config);
    progress(Progress::Section {
        section: Section::Tail,
        threads: 2,
        cores: config.cores,
        pinned: plan.pinned(),
    });
    for row in tail::run(config, scratch.path(), &plan)? {
        push(row, &mut progress);
    }

    if config.rss_bytes == 0 {
        progress(Progress::Skipped {
            section: Section::Rss,
            reason: "--rss-gb 0".to_owned(),
        });
    } else {
        match replay::rss_skip_reason(config, scratch.path()) {
            Some(reason) => progress(Progress::Skipped {
                section: Section::Rss,
                reason,
            }),
            None => {
                progress(Progress::Section {
                    section: Section::Rss,
                    threads: 1,
                    cores: config.cores,
                    pinned: false,
                });
                let row = replay::run_rss(config, scratch.path())?;
                push(row, &mut progress);
            }
        }
    }
    drop(scratch);
    rank_against_baselines(&mut rows);
    Ok(rows)
}

/// Fills `vs_baseline` of each journal row from the non-journal row of the same section and
/// case: records/s ratio, or baseline p99 / journal p99 in the tail section.
pub fn rank_against_baselines(rows: &mut [Row]) {
    let baselines: Vec<Row> = rows.iter().filter(|r| !r.is_journal()).cloned().collect();
    for row in rows.iter_mut().filter(|r| r.is_journal()) {
        let Some(base) = baselines
            .iter()
            .find(|b| b.section == row.section && b.case == row.baseline_case)
        else {
            continue;
        };
        let ratio = if row.section == Section::Tail.name() {
            match (base.p99_ns, row.p99_ns) {
                (Some(base), Some(own)) if own > 0 => base as f64 / own as f64,
                _ => continue,
            }
        } else if base.records_per_sec > 0 {
            row.records_per_sec as f64 / base.records_per_sec as f64
        } else {
            continue;
        };
        row.vs_baseline = ratio.is_finite().then_some(ratio);
    }
}

/// A directory of this run's files, removed (with everything in it) when dropped.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates `parent/sequent-bench-journal-<pid>`, empty.
    pub fn create(parent: &Path) -> Result<Self, BenchError> {
        let path = parent.join(format!("sequent-bench-journal-{}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(BenchError::io(&path))?;
        }
        std::fs::create_dir_all(&path).map_err(BenchError::io(&path))?;
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // Best effort: a leftover directory is reported, not fatal.
        if let Err(err) = std::fs::remove_dir_all(&self.path) {
            eprintln!("warning: could not remove {}: {err}", self.path.display());
        }
    }
}

/// Removes a journal directory or baseline file of a finished run, so disk use stays bounded.
fn remove(path: &Path) -> Result<(), BenchError> {
    let result = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    result.map_err(BenchError::io(path))
}

/// A latency histogram: 1 ns to 60 s, three significant digits.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, 3).expect("constant, valid bounds")
}

/// Records `ns`, clamped into the histogram's range.
fn record(hist: &mut Histogram<u64>, ns: u64) {
    hist.saturating_record(ns.clamp(1, LATENCY_NS_MAX));
}

/// The payload of record `sequence`: its sequence in bytes 0..8, then a fixed pattern.
fn fill_payload(buf: &mut [u8], sequence: u64) {
    buf[..8].copy_from_slice(&sequence.to_le_bytes());
}

/// A buffer of `len` bytes with the fixed pattern (bytes 8.. never change between records).
fn payload_buffer(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ 0x5a)
        .collect()
}

/// An order-sensitive digest of one payload (FNV-style over 8-byte words, tail bytes folded in).
/// Replays sum these per record; the sum must equal the writer's.
fn payload_digest(payload: &[u8]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut acc = 0xcbf2_9ce4_8422_2325 ^ payload.len() as u64;
    let mut words = payload.chunks_exact(8);
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().expect("chunks of 8"));
        acc = (acc ^ word).wrapping_mul(PRIME);
    }
    for &byte in words.remainder() {
        acc = (acc ^ u64::from(byte)).wrapping_mul(PRIME);
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(section: Section, imp: &str, case: &str, rate: u64, p99: Option<u64>) -> Row {
        let mut row = Row::new(section, imp, case.to_owned(), 64, 1);
        row.records_per_sec = rate;
        row.p99_ns = p99;
        row
    }

    #[test]
    fn journal_rows_are_ranked_against_the_baseline_of_their_case() {
        let mut rows = vec![
            row(Section::Append, IMPL_JOURNAL, "64 B", 20, None),
            row(Section::Append, "bufwriter", "64 B", 10, None),
            row(Section::Append, IMPL_JOURNAL, "1 KiB", 5, None),
            row(Section::Append, "bufwriter", "1 KiB", 10, None),
            row(Section::Tail, IMPL_JOURNAL, "64 B", 1, Some(400)),
            row(Section::Tail, "rtrb", "64 B", 1, Some(200)),
        ];
        rank_against_baselines(&mut rows);
        let ratios: Vec<Option<f64>> = rows.iter().map(|r| r.vs_baseline).collect();
        assert_eq!(ratios, [Some(2.0), None, Some(0.5), None, Some(0.5), None]);
    }

    #[test]
    fn the_digest_sees_order_and_content() {
        let a = payload_digest(&[1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_ne!(a, payload_digest(&[2, 1, 3, 4, 5, 6, 7, 8, 9]));
        assert_ne!(a, payload_digest(&[1, 2, 3, 4, 5, 6, 7, 8, 10]));
        assert_ne!(a, payload_digest(&[1, 2, 3, 4, 5, 6, 7, 8]));
    }

    #[test]
    fn larger_payloads_get_fewer_records() {
        let mut config = JournalConfig::quick(PathBuf::from("/tmp"), 2, vec![0, 1]);
        config.records = 1_000;
        config.append_bytes_max = 16 * 1024;
        assert_eq!(config.append_records(64), 256);
        assert_eq!(config.append_records(8), 1_000);
    }
}
