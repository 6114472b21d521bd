//! `sequent journal`: the journal's command-line tools, thin over `sequent-journal`.
//!
//! | command | what it does | exit codes |
//! |---|---|---|
//! | `verify DIR [--expect-head HEX] [--verbose]` | checksums, sequence continuity, hash chain, seals, Merkle roots | 0 intact (and head as expected); 1 problems; 2 usage |
//! | `dump DIR [--from SEQ] [--limit N] [--json]` | one line per record | 0; 1 at a corrupt record (the error names segment, offset, sequence) |
//! | `stats DIR [--json]` | segments, records, bytes, sequences, timestamps, kinds, head | 0; 1 unreadable |
//! | `prove DIR SEQ [--json] [--consistency OLD NEW]` | RFC 9162 inclusion (or consistency) proof | 0; 1 no such record; 2 usage |
//! | `check-proof` | verifies `prove --json` output read from stdin | 0 verifies; 1 does not |
//! | `tail DIR [--from SEQ] [--count N] [--json]` | follows a live writer | 0 |
//! | `load DIR --records N ...` | deterministic load generator | 0; 1 the writer failed |
//! | `replay DIR --config FILE [--until SEQ] [--json]` | an engine journal through a fresh core: its state digest, term and feed position | 0; 1 unreadable or not an engine journal |
//!
//! Output goes to stdout and stops quietly at a closed pipe; progress bars go to stderr, and only
//! when stderr is a terminal, so scripts and tests never see them.

use std::fmt::{self, Write as _};
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sequent_journal::merkle::{self, Hash};
use sequent_journal::{Listing, Reader, RecordRef, Segment};

mod load;
pub(crate) mod proof;

/// Payload bytes `dump` and `tail` show in text form; the rest is elided with `…`.
const TEXT_PAYLOAD_BYTES_MAX: usize = 64;
/// How long `tail` sleeps when it has caught up with the writer: short enough that a human sees
/// records at once, long enough that an idle tail costs no measurable CPU.
const TAIL_IDLE_SLEEP: Duration = Duration::from_millis(1);
/// Polls `tail` makes with a yield before it starts sleeping, so that a burst right after it
/// caught up is not delayed by a whole sleep.
const TAIL_YIELDS_MAX: u32 = 64;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Check every segment: checksums, sequence continuity, hash chain, seals and Merkle roots.
    /// Exit 0 only when the journal is intact; otherwise one `problem:` line per problem, exit 1.
    Verify(VerifyArgs),
    /// Print records, one line each, from a sequence on.
    Dump(DumpArgs),
    /// Summarise a journal: segments, records, bytes, sequences, timestamps, kinds, head hash.
    Stats(StatsArgs),
    /// Print the RFC 9162 inclusion proof of one record (or, with --consistency, a consistency
    /// proof between two sizes of the tree of the segment that holds it).
    Prove(proof::ProveArgs),
    /// Verify a proof given as JSON on stdin (the output of `prove --json`) with the documented
    /// RFC 9162 algorithm alone. Exit 0 when it verifies, 1 otherwise.
    CheckProof,
    /// Follow a live journal and print records as they are appended.
    Tail(TailArgs),
    /// Append deterministic records: a load generator for benchmarks and crash tests.
    Load(load::Args),
    /// Replay a sequent-engine journal through a fresh core (sized by the engine's config) and
    /// print the state digest, so an operator can check a standby, a failed-over primary or an
    /// archive on any machine: the digest equals the engine's at the same sequence.
    Replay(ReplayArgs),
}

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// The journal directory.
    dir: PathBuf,
    /// The engine's configuration (symbols and capacities; its journal.dir is ignored).
    #[arg(long)]
    config: PathBuf,
    /// Stop after this sequence (default: the end).
    #[arg(long, value_name = "SEQ")]
    until: Option<u64>,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn replay(args: &ReplayArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("cannot read {}", args.config.display()))?;
    let config = sequent_node::config::EngineConfig::parse(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.config.display()))?;
    let replayed = sequent_node::engine::replay_journal(&config, &args.dir, args.until)
        .with_context(|| format!("cannot replay {}", args.dir.display()))?;
    let books = sequent_feed::book::hex(&replayed.books.digest());
    let mut out = io::stdout().lock();
    if args.json {
        writeln!(
            out,
            "{{\"records\":{},\"sequence\":{},\"digest\":\"{:016x}\",\"term\":{},\"feed_messages\":{},\"books_digest\":\"{books}\"}}",
            replayed.records,
            replayed.sequence,
            replayed.digest,
            replayed.term,
            replayed.feed_messages
        )?;
    } else {
        writeln!(out, "records {}", replayed.records)?;
        writeln!(out, "sequence {}", replayed.sequence)?;
        writeln!(out, "digest {:016x}", replayed.digest)?;
        writeln!(out, "term {}", replayed.term)?;
        writeln!(out, "feed_messages {}", replayed.feed_messages)?;
        writeln!(out, "books_digest {books}")?;
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// The journal directory.
    dir: PathBuf,
    /// Also fail unless the head chain hash equals this one (64 hex digits), e.g. one published
    /// earlier.
    #[arg(long, value_name = "HEX")]
    expect_head: Option<String>,
    /// Print each segment's Merkle root.
    #[arg(long, short)]
    verbose: bool,
}

#[derive(clap::Args, Debug)]
pub struct DumpArgs {
    /// The journal directory.
    dir: PathBuf,
    /// First sequence to print (default: the first the journal holds).
    #[arg(long, value_name = "SEQ")]
    from: Option<u64>,
    /// Print at most this many records.
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    /// The journal directory.
    dir: PathBuf,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
pub struct TailArgs {
    /// The journal directory.
    dir: PathBuf,
    /// First sequence to print (default: the next one to be appended).
    #[arg(long, value_name = "SEQ")]
    from: Option<u64>,
    /// Stop after this many records (default: run until interrupted).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
}

/// Bad input the parser could not catch (a malformed hash, sizes out of order): exit code 2.
#[derive(Debug)]
pub struct Usage(pub String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// True when `error` is (or wraps) bad usage.
pub fn is_usage(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.is::<Usage>())
}

/// True when `error` is a write to a closed pipe: the reader (`head`, `less`) wanted no more.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Runs one journal command; `Ok` carries the exit code of a command that ran to its verdict.
pub fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Verify(args) => verify(&args),
        Command::Dump(args) => dump(&args).map(|()| ExitCode::SUCCESS),
        Command::Stats(args) => stats(&args).map(|()| ExitCode::SUCCESS),
        Command::Prove(args) => proof::prove(&args).map(|()| ExitCode::SUCCESS),
        Command::CheckProof => proof::check_proof(),
        Command::Tail(args) => tail(&args).map(|()| ExitCode::SUCCESS),
        Command::Load(args) => load::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Replay(args) => replay(&args).map(|()| ExitCode::SUCCESS),
    }
}

/// Parses a hash as `to_hex` writes it; uppercase digits are accepted and folded.
fn parse_hash(text: &str, what: &str) -> Result<Hash> {
    merkle::from_hex(&text.to_ascii_lowercase())
        .ok_or_else(|| Usage(format!("{what} must be 64 hex digits, got {text:?}")).into())
}

/// Appends the lowercase hex of `bytes` to `out`.
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(2 * bytes.len());
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::new();
    push_hex(&mut out, bytes);
    out
}

/// A progress bar on stderr when stderr is a terminal, and a hidden one otherwise.
fn scan_progress(verb: &str) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(&format!(
        "{verb} {{bar:30}} segment {{pos}}/{{len}} {{msg}} ({{elapsed}})"
    ))
    .expect("the template is a constant and valid");
    ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr()).with_style(style)
}

fn on_progress(bar: &ProgressBar, progress: sequent_journal::Progress) {
    bar.set_length(progress.segments_total);
    bar.set_position(progress.segments_done);
    bar.set_message(format!("{} records", progress.records));
}

fn verify_with_progress(dir: &Path, verb: &str) -> Result<sequent_journal::VerifyReport> {
    let bar = scan_progress(verb);
    let report = sequent_journal::verify(dir, |progress| on_progress(&bar, progress));
    bar.finish_and_clear();
    report.with_context(|| format!("cannot verify {}", dir.display()))
}

fn verify(args: &VerifyArgs) -> Result<ExitCode> {
    let expected_head = args
        .expect_head
        .as_deref()
        .map(|text| parse_hash(text, "--expect-head"))
        .transpose()?;
    let report = verify_with_progress(&args.dir, "verifying")?;
    let mut out = io::stdout().lock();
    let mut problems = report.problems.len();
    for problem in &report.problems {
        writeln!(out, "problem: {problem}")?;
    }
    if let Some(expected) = expected_head {
        match report.head {
            Some(head) if head == expected => {}
            Some(head) => {
                problems += 1;
                writeln!(
                    out,
                    "problem: head {} differs from the expected {}",
                    merkle::to_hex(&head),
                    merkle::to_hex(&expected)
                )?;
            }
            None => {
                problems += 1;
                writeln!(
                    out,
                    "problem: no head (the chain is broken), so it cannot equal the expected {}",
                    merkle::to_hex(&expected)
                )?;
            }
        }
    }
    for note in &report.notes {
        writeln!(out, "note: {note}")?;
    }
    let removed = report.segments.iter().filter(|s| s.removed).count();
    let sealed = report.segments.iter().filter(|s| s.sealed).count();
    writeln!(
        out,
        "segments: {} present, {removed} removed, {sealed} sealed",
        report.segments.len() - removed
    )?;
    match (report.first_sequence, report.last_sequence) {
        (Some(first), Some(last)) => {
            writeln!(
                out,
                "records: {} (sequences {first}..={last})",
                report.records
            )?;
        }
        _ => writeln!(out, "records: {}", report.records)?,
    }
    match &report.head {
        Some(head) => writeln!(out, "head: {}", merkle::to_hex(head))?,
        None => writeln!(out, "head: none (the chain is broken)")?,
    }
    if args.verbose {
        for segment in &report.segments {
            writeln!(
                out,
                "segment {}: first {} records {} {}{} root {}",
                segment.segment_index,
                segment.first_sequence,
                segment.record_count,
                if segment.sealed { "sealed" } else { "unsealed" },
                if segment.removed { " removed" } else { "" },
                merkle::to_hex(&segment.merkle_root)
            )?;
        }
    }
    if problems == 0 {
        writeln!(out, "intact")?;
        out.flush()?;
        Ok(ExitCode::SUCCESS)
    } else {
        writeln!(out, "NOT INTACT: {problems} problem(s)")?;
        out.flush()?;
        Ok(ExitCode::from(1))
    }
}

/// Formats records for `dump` and `tail` into a reused line buffer.
struct RecordPrinter {
    json: bool,
    line: String,
}

impl RecordPrinter {
    fn new(json: bool) -> Self {
        Self {
            json,
            line: String::with_capacity(256),
        }
    }

    fn write(&mut self, out: &mut impl Write, record: &RecordRef<'_>) -> io::Result<()> {
        let line = &mut self.line;
        line.clear();
        let (sequence, timestamp_ns, kind, len) = (
            record.sequence,
            record.timestamp_ns,
            record.kind,
            record.payload.len(),
        );
        // `write!` into a String cannot fail.
        if self.json {
            let _ = write!(
                line,
                r#"{{"sequence":{sequence},"timestamp_ns":{timestamp_ns},"kind":{kind},"len":{len},"payload_hex":""#
            );
            push_hex(line, record.payload);
            line.push_str("\"}");
        } else {
            let _ = write!(
                line,
                "seq={sequence} ts={timestamp_ns} kind={kind} len={len} payload="
            );
            let shown = len.min(TEXT_PAYLOAD_BYTES_MAX);
            push_hex(line, &record.payload[..shown]);
            if shown < len {
                line.push('…');
            }
        }
        line.push('\n');
        out.write_all(line.as_bytes())
    }
}

fn dump(args: &DumpArgs) -> Result<()> {
    let mut reader = match args.from {
        Some(sequence) => Reader::from_sequence(&args.dir, sequence)?,
        None => Reader::open(&args.dir)?,
    };
    let mut out = io::BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut printer = RecordPrinter::new(args.json);
    let limit = args.limit.unwrap_or(u64::MAX);
    let mut printed = 0;
    let outcome = loop {
        if printed >= limit {
            break Ok(());
        }
        match reader.next() {
            Ok(Some(record)) => printer.write(&mut out, &record)?,
            Ok(None) => break Ok(()),
            Err(error) => break Err(error),
        }
        printed += 1;
    };
    // The records before a corrupt one are shown before the error that stops the dump.
    out.flush()?;
    Ok(outcome?)
}

fn tail(args: &TailArgs) -> Result<()> {
    let from = match args.from {
        Some(sequence) => sequence,
        None => sequent_journal::bounds(&args.dir)?.last_sequence + 1,
    };
    let mut reader = Reader::follow(&args.dir, from)?;
    let mut out = io::BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut printer = RecordPrinter::new(args.json);
    let count = args.count.unwrap_or(u64::MAX);
    let mut printed = 0;
    let mut idle_polls = 0u32;
    while printed < count {
        match reader.next()? {
            Some(record) => {
                printer.write(&mut out, &record)?;
                printed += 1;
                idle_polls = 0;
            }
            None => {
                // Caught up: show what was printed, then wait for the writer.
                out.flush()?;
                if idle_polls < TAIL_YIELDS_MAX {
                    idle_polls += 1;
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(TAIL_IDLE_SLEEP);
                }
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// What `stats` reports; also its JSON form.
#[derive(Debug, serde::Serialize)]
struct Stats {
    journal_id: String,
    segments_present: usize,
    segments_sealed: usize,
    segments_removed: usize,
    records: u64,
    first_sequence: Option<u64>,
    last_sequence: Option<u64>,
    first_timestamp_ns: Option<u64>,
    last_timestamp_ns: Option<u64>,
    /// Bytes of framed records in the segments present (headers, payloads, padding).
    record_bytes: u64,
    payload_bytes: u64,
    /// Bytes the segment and seal files take (segments are preallocated, so this is mostly
    /// their fixed length).
    file_bytes: u64,
    /// Records per kind, by kind number.
    kinds: std::collections::BTreeMap<u8, u64>,
    head: Option<String>,
    /// The last segment's `durable_hint`: a lower bound on its last sequence known to be on disk.
    durable_hint: u64,
    problems: usize,
}

fn stats(args: &StatsArgs) -> Result<()> {
    let report = verify_with_progress(&args.dir, "scanning")?;
    let bounds = sequent_journal::bounds(&args.dir)?;
    let listing = Listing::read(&args.dir)?;
    let mut file_bytes = 0;
    for path in listing.segments.values().chain(listing.seals.values()) {
        file_bytes += std::fs::metadata(path)
            .with_context(|| format!("cannot stat {}", path.display()))?
            .len();
    }
    let durable_hint = match listing.segments.values().next_back() {
        Some(path) => Segment::open(path, false)?.durable_hint(),
        None => 0,
    };
    // The first record's timestamp; a journal too damaged to read it still gets its other stats.
    let first_timestamp_ns = match report.first_sequence {
        Some(first) => Reader::from_sequence(&args.dir, first)
            .ok()
            .and_then(|mut reader| reader.next().ok().flatten().map(|r| r.timestamp_ns)),
        None => None,
    };
    let present = report.segments.iter().filter(|s| !s.removed);
    let stats = Stats {
        journal_id: hex(&bounds.journal_id),
        segments_present: present.clone().count(),
        segments_sealed: report.segments.iter().filter(|s| s.sealed).count(),
        segments_removed: report.segments.iter().filter(|s| s.removed).count(),
        records: report.records,
        first_sequence: report.first_sequence,
        last_sequence: report.last_sequence,
        first_timestamp_ns,
        last_timestamp_ns: present.clone().rev().find_map(|s| s.last_timestamp_ns),
        record_bytes: present.map(|s| s.records_len).sum(),
        payload_bytes: report.payload_bytes,
        file_bytes,
        kinds: report.kinds.clone(),
        head: report.head.as_ref().map(merkle::to_hex),
        durable_hint,
        problems: report.problems.len(),
    };
    let mut out = io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &stats)?;
        writeln!(out)?;
    } else {
        write_stats_text(&mut out, &stats)?;
    }
    out.flush()?;
    Ok(())
}

fn write_stats_text(out: &mut impl Write, stats: &Stats) -> io::Result<()> {
    let range = |first: Option<u64>, last: Option<u64>| match (first, last) {
        (Some(first), Some(last)) => format!("{first}..={last}"),
        _ => "none".to_owned(),
    };
    writeln!(out, "journal id: {}", stats.journal_id)?;
    writeln!(
        out,
        "segments: {} present ({} sealed), {} removed",
        stats.segments_present, stats.segments_sealed, stats.segments_removed
    )?;
    writeln!(out, "records: {}", stats.records)?;
    writeln!(
        out,
        "sequences: {}",
        range(stats.first_sequence, stats.last_sequence)
    )?;
    writeln!(
        out,
        "timestamps (ns): {}",
        range(stats.first_timestamp_ns, stats.last_timestamp_ns)
    )?;
    writeln!(
        out,
        "bytes: {} of records, {} of payload, {} on disk",
        stats.record_bytes, stats.payload_bytes, stats.file_bytes
    )?;
    for (kind, count) in &stats.kinds {
        writeln!(out, "kind {kind}: {count} records")?;
    }
    writeln!(out, "head: {}", stats.head.as_deref().unwrap_or("none"))?;
    writeln!(out, "durable hint (last segment): {}", stats.durable_hint)?;
    if stats.problems > 0 {
        writeln!(
            out,
            "problems: {} (run `sequent journal verify` for each)",
            stats.problems
        )?;
    }
    Ok(())
}
