//! `load`: a deterministic load generator, for benchmarks and for crash tests that kill it and
//! then check what survived.
//!
//! Record `seq` has kind [`LOAD_KIND`], timestamp `seq`, and payload [`fill_payload`]:
//! `payload(seq) = seq.to_le_bytes()` repeated to BYTES bytes (truncated), so a checker can
//! recompute every record from its sequence alone.
//!
//! Output contract (a crash test parses it): with `--report-durable`, stdout carries only lines
//! `durable <seq>`, each flushed at once, with `<seq>` strictly increasing; `durable S` means the
//! writer's durable sequence reached S, so records 1..=S must survive a crash of this process
//! (and, except under `--durability none`, of the machine). Everything else goes to stderr.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::ValueEnum;
use sequent_journal::{Config, Durability, Listing, Segment, Writer};

use super::Usage;

/// Segment size of a new journal when `--segment-mib` is not given.
const SEGMENT_MIB_DEFAULT: u64 = 64;

/// The kind of every record `load` appends.
pub const LOAD_KIND: u8 = 1;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The journal directory (created if needed; an existing journal is continued).
    dir: PathBuf,
    /// Records to append.
    #[arg(long, value_name = "N")]
    records: u64,
    /// Payload bytes per record: `seq.to_le_bytes()` repeated to this length (truncated).
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    payload: usize,
    /// When appended records reach the disk.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Group)]
    durability: DurabilityArg,
    /// Sync interval of `periodic`, and longest wait of `group`, in microseconds.
    #[arg(long, value_name = "US", default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    interval_us: u64,
    /// Records that trigger a group commit at once.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    group_records: u64,
    /// Segment size in MiB of a new journal [default: 64]; an existing journal keeps its own.
    #[arg(long, value_name = "M", value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    segment_mib: Option<u64>,
    /// Records appended between two looks at the durable sequence.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    batch: u64,
    /// Print `durable <seq>` on stdout (flushed) each time the durable sequence advances.
    #[arg(long)]
    report_durable: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DurabilityArg {
    /// Synced only at the end (the page cache decides before that).
    None,
    /// Synced every `--interval-us`.
    Periodic,
    /// Group commit: `--group-records` records or `--interval-us`, whichever comes first.
    Group,
}

/// Writes `payload(sequence)` into `payload`: `sequence.to_le_bytes()` repeated to the buffer's
/// length, the last copy truncated. Public contract of `sequent journal load`: checkers recompute
/// it from the sequence.
pub fn fill_payload(sequence: u64, payload: &mut [u8]) {
    let word = sequence.to_le_bytes();
    for chunk in payload.chunks_mut(word.len()) {
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

/// The length of the newest segment of the journal in `dir`, if there is one.
fn existing_segment_len(dir: &Path) -> Result<Option<u64>> {
    if !dir.is_dir() {
        return Ok(None);
    }
    let listing = Listing::read(dir)?;
    match listing.segments.values().next_back() {
        Some(path) => Ok(Some(Segment::open(path, false)?.len())),
        None => Ok(None),
    }
}

/// Prints `durable <seq>` when the durable sequence passed the last one printed.
struct DurableReporter<W: Write> {
    out: W,
    reported: u64,
}

impl<W: Write> DurableReporter<W> {
    fn poll(&mut self, durable: u64) -> io::Result<()> {
        if durable > self.reported {
            writeln!(self.out, "durable {durable}")?;
            // Flushed per line: a process killed right after must not take a printed claim with it.
            self.out.flush()?;
            self.reported = durable;
        }
        Ok(())
    }
}

pub fn run(args: &Args) -> Result<()> {
    let interval = Duration::from_micros(args.interval_us);
    // `Writer::open` sizes its roll check by `Config::segment_len` even for an existing active
    // segment of another length, and then writes past that segment's end: an existing journal
    // keeps its own length.
    let segment_len = match (existing_segment_len(&args.dir)?, args.segment_mib) {
        (Some(existing), Some(mib)) if existing != mib << 20 => {
            eprintln!(
                "note: continuing a journal of {existing}-byte segments; --segment-mib applies to new journals"
            );
            existing
        }
        (Some(existing), _) => existing,
        (None, mib) => mib.unwrap_or(SEGMENT_MIB_DEFAULT) << 20,
    };
    let config = Config {
        segment_len,
        durability: match args.durability {
            DurabilityArg::None => Durability::None,
            DurabilityArg::Periodic => Durability::Periodic { interval },
            DurabilityArg::Group => Durability::GroupCommit {
                records: args.group_records,
                interval,
            },
        },
        journal_id: None,
    };
    let mut writer = Writer::open(&args.dir, &config)
        .with_context(|| format!("cannot open {} for appending", args.dir.display()))?;
    if let Some(truncation) = &writer.open_report().truncated {
        eprintln!("note: {truncation}");
    }
    if args.payload > writer.payload_len_max() {
        return Err(Usage(format!(
            "--payload {} exceeds the largest payload this journal takes, {}",
            args.payload,
            writer.payload_len_max()
        ))
        .into());
    }
    let mut payload = vec![0; args.payload];
    let mut reporter = args.report_durable.then(|| DurableReporter {
        out: io::stdout().lock(),
        reported: 0,
    });
    let first = writer.next_sequence();
    let end = first.checked_add(args.records).ok_or_else(|| {
        Usage(format!(
            "--records {} runs past the last sequence",
            args.records
        ))
    })?;
    let started = Instant::now();
    while writer.next_sequence() < end {
        let batch_end = (writer.next_sequence() + args.batch).min(end);
        while writer.next_sequence() < batch_end {
            let sequence = writer.next_sequence();
            fill_payload(sequence, &mut payload);
            let appended = writer.append(LOAD_KIND, sequence, &payload)?;
            assert_eq!(appended, sequence, "the writer hands out next_sequence()");
        }
        if let Some(reporter) = &mut reporter {
            reporter.poll(writer.durable_sequence())?;
        }
    }
    let durable = writer.sync()?;
    if let Some(reporter) = &mut reporter {
        reporter.poll(durable)?;
    }
    writer.close()?;
    let elapsed = started.elapsed();
    eprintln!(
        "loaded {} records (sequences from {first}, before {end}) of {} payload bytes in {:.3} s; durable through {durable}",
        args.records,
        args.payload,
        elapsed.as_secs_f64(),
    );
    Ok(())
}
