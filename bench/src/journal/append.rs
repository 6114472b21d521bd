//! Appends without sync: the journal (`Durability::None`) against buffered `write(2)`.
//!
//! Each side runs twice on a fresh file: an untimed pass gives the throughput (the clock would
//! cost as much as a small append), then a pass that reads the TSC (`quanta::Clock::raw`) around
//! every single append gives the latency percentiles, segment rolls and `write(2)` calls
//! included. Neither side syncs: the journal's close (which msyncs) and the baseline's file close
//! are outside the timed region; the baseline's last buffer flush is inside it.

use std::path::Path;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use quanta::Clock;
use sequent_journal::{Config, Durability, Writer};

use super::baseline::{FramedWriter, HEADER_LEN};
use super::{
    BenchError, IMPL_JOURNAL, JournalConfig, KIND, Row, Section, fill_payload, new_histogram,
    payload_buffer, record, remove,
};

/// `impl` of the baseline rows.
pub const IMPL_BUFWRITER: &str = "bufwriter";

/// The case label of a payload size: `64 B`, `1 KiB`.
pub(super) fn size_case(payload_len: usize) -> String {
    if payload_len >= 1024 && payload_len % 1024 == 0 {
        format!("{} KiB", payload_len / 1024)
    } else {
        format!("{payload_len} B")
    }
}

/// Journal and baseline rows for one payload size.
pub(super) fn run(
    config: &JournalConfig,
    dir: &Path,
    payload_len: usize,
) -> Result<Vec<Row>, BenchError> {
    let records = config.append_records(payload_len);
    let clock = Clock::new();
    let case = size_case(payload_len);
    let segment_mib = config.segment_len >> 20;

    let path = dir.join(format!("append-{payload_len}-journal"));
    let elapsed = journal_pass(config, &path, records, payload_len, None)?;
    remove(&path)?;
    let mut hist = new_histogram();
    journal_pass(
        config,
        &path,
        records,
        payload_len,
        Some((&clock, &mut hist)),
    )?;
    remove(&path)?;
    let journal = Row::new(
        Section::Append,
        IMPL_JOURNAL,
        case.clone(),
        payload_len,
        records,
    )
    .with_rate(elapsed)
    .with_latency("per append", &hist)
    .with_note(format!(
        "Durability::None, {segment_mib} MiB segments, rolls included"
    ));

    let path = dir.join(format!("append-{payload_len}-plain"));
    let elapsed = baseline_pass(&path, records, payload_len, None)?;
    remove(&path)?;
    let mut hist = new_histogram();
    baseline_pass(&path, records, payload_len, Some((&clock, &mut hist)))?;
    remove(&path)?;
    let baseline = Row::new(Section::Append, IMPL_BUFWRITER, case, payload_len, records)
        .with_rate(elapsed)
        .with_latency("per append", &hist)
        .with_note("64 KiB BufWriter, 24 B header, no sync");
    Ok(vec![journal, baseline])
}

type Timing<'a> = Option<(&'a Clock, &'a mut Histogram<u64>)>;

/// Appends `records` records to a new journal in `path`; returns the time the appends took.
fn journal_pass(
    config: &JournalConfig,
    path: &Path,
    records: u64,
    payload_len: usize,
    timing: Timing<'_>,
) -> Result<Duration, BenchError> {
    let mut writer = Writer::open(
        path,
        &Config {
            segment_len: config.segment_len,
            durability: Durability::None,
            journal_id: None,
        },
    )?;
    let mut payload = payload_buffer(payload_len);
    let mut last = 0;
    let started = Instant::now();
    match timing {
        None => {
            for sequence in 1..=records {
                fill_payload(&mut payload, sequence);
                last = writer.append(KIND, sequence, &payload)?;
            }
        }
        Some((clock, hist)) => {
            for sequence in 1..=records {
                fill_payload(&mut payload, sequence);
                let start = clock.raw();
                last = writer.append(KIND, sequence, &payload)?;
                let end = clock.raw();
                record(hist, clock.delta_as_nanos(start, end));
            }
        }
    }
    let elapsed = started.elapsed();
    if last != records || writer.next_sequence() != records + 1 {
        return Err(BenchError::check(
            Section::Append,
            IMPL_JOURNAL,
            format!(
                "{records} appends returned last sequence {last}, next sequence {}",
                writer.next_sequence()
            ),
        ));
    }
    writer.close()?;
    Ok(elapsed)
}

/// Writes `records` framed records to a new file at `path`; returns the time the writes took.
fn baseline_pass(
    path: &Path,
    records: u64,
    payload_len: usize,
    timing: Timing<'_>,
) -> Result<Duration, BenchError> {
    let mut writer = FramedWriter::create(path)?;
    let mut payload = payload_buffer(payload_len);
    let started = Instant::now();
    match timing {
        None => {
            for sequence in 1..=records {
                fill_payload(&mut payload, sequence);
                writer
                    .append(KIND, sequence, sequence, &payload)
                    .map_err(BenchError::io(path))?;
            }
        }
        Some((clock, hist)) => {
            for sequence in 1..=records {
                fill_payload(&mut payload, sequence);
                let start = clock.raw();
                writer
                    .append(KIND, sequence, sequence, &payload)
                    .map_err(BenchError::io(path))?;
                let end = clock.raw();
                record(hist, clock.delta_as_nanos(start, end));
            }
        }
    }
    let file = writer.finish().map_err(BenchError::io(path))?;
    let elapsed = started.elapsed();
    let len = file.metadata().map_err(BenchError::io(path))?.len();
    let expected = records * (HEADER_LEN + payload_len) as u64;
    if len != expected {
        return Err(BenchError::check(
            Section::Append,
            IMPL_BUFWRITER,
            format!("file holds {len} bytes, {records} records make {expected}"),
        ));
    }
    Ok(elapsed)
}

/// The smallest of many back-to-back TSC reads converted to ns: what timing one append adds.
pub fn clock_overhead_ns() -> u64 {
    let clock = Clock::new();
    (0..10_000)
        .map(|_| {
            let start = clock.raw();
            let end = clock.raw();
            clock.delta_as_nanos(start, end)
        })
        .min()
        .unwrap_or(0)
}
