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
use sequent_journal::format::record_footprint;
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
    let faults_before = thread_page_faults();
    let elapsed = journal_pass(config, &path, records, payload_len, None)?;
    let faults = thread_page_faults().saturating_sub(faults_before);
    remove(&path)?;
    let mut hist = new_histogram();
    let mut stalls = Stalls::default();
    journal_pass(
        config,
        &path,
        records,
        payload_len,
        Some((&clock, &mut hist, &mut stalls)),
    )?;
    remove(&path)?;
    let rolls = records * record_footprint(payload_len as u32) / config.segment_len;
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
        "Durability::None, {segment_mib} MiB segments, {rolls} rolls; \
             {:.1} page faults per 1000 appends; {}",
        faults as f64 * 1000.0 / records as f64,
        stalls.describe()
    ));

    let path = dir.join(format!("append-{payload_len}-plain"));
    let elapsed = baseline_pass(&path, records, payload_len, None)?;
    remove(&path)?;
    let mut hist = new_histogram();
    let mut stalls = Stalls::default();
    baseline_pass(
        &path,
        records,
        payload_len,
        Some((&clock, &mut hist, &mut stalls)),
    )?;
    remove(&path)?;
    let baseline = Row::new(Section::Append, IMPL_BUFWRITER, case, payload_len, records)
        .with_rate(elapsed)
        .with_latency("per append", &hist)
        .with_note(format!(
            "64 KiB BufWriter, 24 B header, no sync; {}",
            stalls.describe()
        ));
    Ok(vec![journal, baseline])
}

type Timing<'a> = Option<(&'a Clock, &'a mut Histogram<u64>, &'a mut Stalls)>;

/// An append slower than this is a stall (a segment roll, a `write(2)` that waited for the disk,
/// a preemption): counted with its time, so a reader sees what the mean is made of.
const STALL_NS: u64 = 100_000;

/// Appends slower than [`STALL_NS`].
#[derive(Debug, Default)]
struct Stalls {
    count: u64,
    total_ns: u64,
}

impl Stalls {
    #[inline]
    fn add(&mut self, ns: u64) {
        if ns > STALL_NS {
            self.count += 1;
            self.total_ns += ns;
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} appends > {} took {} in all",
            self.count,
            crate::report::format_ns(STALL_NS),
            crate::report::format_ns(self.total_ns)
        )
    }
}

/// Minor and major page faults of the calling thread so far (/proc/thread-self/stat fields 10
/// and 12), 0 if unreadable.
fn thread_page_faults() -> u64 {
    std::fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|stat| parse_faults(&stat))
        .unwrap_or(0)
}

fn parse_faults(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces; fields after its closing parenthesis start at 3.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let minor: u64 = fields.get(10 - 3)?.parse().ok()?;
    let major: u64 = fields.get(12 - 3)?.parse().ok()?;
    Some(minor + major)
}

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
        Some((clock, hist, stalls)) => {
            for sequence in 1..=records {
                fill_payload(&mut payload, sequence);
                let start = clock.raw();
                last = writer.append(KIND, sequence, &payload)?;
                let end = clock.raw();
                let ns = clock.delta_as_nanos(start, end);
                record(hist, ns);
                stalls.add(ns);
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
        Some((clock, hist, stalls)) => {
            for sequence in 1..=records {
                fill_payload(&mut payload, sequence);
                let start = clock.raw();
                writer
                    .append(KIND, sequence, sequence, &payload)
                    .map_err(BenchError::io(path))?;
                let end = clock.raw();
                let ns = clock.delta_as_nanos(start, end);
                record(hist, ns);
                stalls.add(ns);
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

/// The median of many back-to-back TSC reads converted to ns: what timing one append adds (and
/// the clock's granularity: a VM may advance the TSC in steps of several ns).
pub fn clock_overhead_ns() -> u64 {
    let clock = Clock::new();
    let mut deltas: Vec<u64> = (0..10_001)
        .map(|_| {
            let start = clock.raw();
            let end = clock.raw();
            clock.delta_as_nanos(start, end)
        })
        .collect();
    deltas.sort_unstable();
    deltas[deltas.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_fields_10_and_12_after_the_command_name() {
        let stat = "42 (a b) R 1 42 42 0 -1 4194560 150 0 7 0 3 1";
        assert_eq!(parse_faults(stat), Some(157));
        // A fresh test thread may not have faulted yet (it failed so under parallel tests):
        // touch fresh pages on this thread first.
        let touched = vec![1u8; 4 << 20];
        assert_eq!(std::hint::black_box(&touched)[touched.len() - 1], 1);
        assert!(thread_page_faults() > 0);
    }
}
