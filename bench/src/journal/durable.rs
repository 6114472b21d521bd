//! Durable appends: the journal's group commit against `write` + `fdatasync` per batch.
//!
//! Three runs per group size `g`, 64 B payloads:
//! - `stream`: the appender never waits; the housekeeping thread syncs every `g` records (or
//!   every interval) and the run ends when the last record is durable. A sync covers everything
//!   written when it starts, so when the appender outruns the disk a sync covers more than `g`.
//! - `wait`: the appender appends `g` records, then blocks until the last is durable: one commit
//!   per batch of exactly `g`, like the baseline; the percentiles time that wait.
//! - baseline: `g` framed records go to a plain file in one `write(2)`, then `fdatasync`; the
//!   percentiles time the two calls.

use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use quanta::Clock;
use sequent_journal::{Config, Durability, Writer};

use super::baseline::HEADER_LEN;
use super::{
    BenchError, IMPL_JOURNAL, JournalConfig, KIND, Row, STALL_TIMEOUT, Section, fill_payload,
    new_histogram, payload_buffer, record, remove,
};

/// `impl` of the baseline rows.
pub const IMPL_FDATASYNC: &str = "write+fdatasync";
/// Payload bytes of every durable record.
const PAYLOAD_LEN: usize = 64;

/// The stream, wait and baseline rows for group size `group`.
pub(super) fn run(config: &JournalConfig, dir: &Path, group: u64) -> Result<Vec<Row>, BenchError> {
    let records = config.durable_records;
    let case = format!("group {group}");
    let interval_us = config.group_interval.as_micros();
    let clock = Clock::new();
    let journal_config = Config {
        segment_len: config.segment_len,
        durability: Durability::GroupCommit {
            records: group,
            interval: config.group_interval,
        },
        journal_id: None,
    };
    let mut payload = payload_buffer(PAYLOAD_LEN);

    // Stream: append everything, then wait for the last record to be durable.
    let path = dir.join(format!("durable-{group}-stream"));
    let mut writer = Writer::open(&path, &journal_config)?;
    let watch = writer.durable_watch();
    let started = Instant::now();
    let mut last = 0;
    for sequence in 1..=records {
        fill_payload(&mut payload, sequence);
        last = writer.append(KIND, sequence, &payload)?;
    }
    let durable = watch.wait_durable(last, STALL_TIMEOUT);
    let elapsed = started.elapsed();
    if !durable || writer.durable_sequence() < records || last != records {
        return Err(BenchError::check(
            Section::Durable,
            IMPL_JOURNAL,
            format!(
                "stream: last sequence {last} of {records}, durable {} after {:?}",
                writer.durable_sequence(),
                STALL_TIMEOUT
            ),
        ));
    }
    writer.close()?;
    remove(&path)?;
    let mut stream = Row::new(
        Section::Durable,
        IMPL_JOURNAL,
        format!("{case} stream"),
        PAYLOAD_LEN,
        records,
    )
    .with_rate(elapsed)
    .with_note(format!(
        "GroupCommit {{ records: {group}, interval: {interval_us} µs }}, appender never waits"
    ));
    stream.baseline_case.clone_from(&case);

    // Wait: one commit per batch of `group` records.
    let path = dir.join(format!("durable-{group}-wait"));
    let mut writer = Writer::open(&path, &journal_config)?;
    let watch = writer.durable_watch();
    let mut hist = new_histogram();
    let started = Instant::now();
    let mut sequence = 0;
    while sequence < records {
        let batch_end = (sequence + group).min(records);
        while sequence < batch_end {
            sequence += 1;
            fill_payload(&mut payload, sequence);
            writer.append(KIND, sequence, &payload)?;
        }
        let start = clock.raw();
        if !watch.wait_durable(sequence, STALL_TIMEOUT) {
            return Err(BenchError::check(
                Section::Durable,
                IMPL_JOURNAL,
                format!("wait: sequence {sequence} not durable after {STALL_TIMEOUT:?}"),
            ));
        }
        record(&mut hist, clock.delta_as_nanos(start, clock.raw()));
    }
    let elapsed = started.elapsed();
    writer.close()?;
    remove(&path)?;
    let mut wait = Row::new(
        Section::Durable,
        IMPL_JOURNAL,
        format!("{case} wait"),
        PAYLOAD_LEN,
        records,
    )
    .with_rate(elapsed)
    .with_latency("per batch commit", &hist)
    .with_note(format!(
        "appends {group}, then waits for durable (housekeeper wake + msync)"
    ));
    wait.baseline_case.clone_from(&case);

    // Baseline: write + fdatasync per batch.
    let path = dir.join(format!("durable-{group}-plain"));
    let mut file = File::create(&path).map_err(BenchError::io(&path))?;
    let mut batch: Vec<u8> = Vec::with_capacity(group as usize * (HEADER_LEN + PAYLOAD_LEN));
    let mut hist = new_histogram();
    let started = Instant::now();
    let mut sequence = 0;
    while sequence < records {
        let batch_end = (sequence + group).min(records);
        batch.clear();
        while sequence < batch_end {
            sequence += 1;
            fill_payload(&mut payload, sequence);
            batch.extend_from_slice(&(PAYLOAD_LEN as u32).to_le_bytes());
            batch.extend_from_slice(&[KIND, 0, 0, 0]);
            batch.extend_from_slice(&sequence.to_le_bytes());
            batch.extend_from_slice(&sequence.to_le_bytes());
            batch.extend_from_slice(&payload);
        }
        let start = clock.raw();
        file.write_all(&batch).map_err(BenchError::io(&path))?;
        file.sync_data().map_err(BenchError::io(&path))?;
        record(&mut hist, clock.delta_as_nanos(start, clock.raw()));
    }
    let elapsed = started.elapsed();
    let len = file.metadata().map_err(BenchError::io(&path))?.len();
    drop(file);
    remove(&path)?;
    let expected = records * (HEADER_LEN + PAYLOAD_LEN) as u64;
    if len != expected {
        return Err(BenchError::check(
            Section::Durable,
            IMPL_FDATASYNC,
            format!("file holds {len} bytes, {records} records make {expected}"),
        ));
    }
    let baseline = Row::new(Section::Durable, IMPL_FDATASYNC, case, PAYLOAD_LEN, records)
        .with_rate(elapsed)
        .with_latency("per batch commit", &hist)
        .with_note(format!("one write(2) of {group} records, then fdatasync"));
    Ok(vec![stream, wait, baseline])
}
