//! Tail latency: a writer thread appends 64 B records at a fixed rate, each carrying the TSC read
//! just before its append; a tailing reader on another core spins on `next()` and records
//! now − stamp. The baseline hands the same payloads through an `rtrb` queue between the same
//! two threads, so the difference is the cost of the journal's mapping protocol (append, CRC32C
//! on both sides, the reader's frame checks) beside a plain in-memory handoff.

use std::hint::spin_loop;
use std::path::Path;

use hdrhistogram::Histogram;
use quanta::Clock;
use sequent_journal::{Config, Durability, Reader, Writer};

use super::{
    BenchError, IMPL_JOURNAL, JournalConfig, KIND, Row, STALL_TIMEOUT, Section, fill_payload,
    new_histogram, payload_buffer, record, remove,
};

/// `impl` of the baseline row.
pub const IMPL_RTRB: &str = "rtrb";
/// Payload bytes: sequence (0..8), the writer's TSC stamp (8..16), the fixed pattern.
const PAYLOAD_LEN: usize = 64;
/// Slots of the baseline queue: far more than the reader ever lags.
const QUEUE_SLOTS: usize = 1 << 16;
/// Empty polls between two looks at the stall deadline.
const POLLS_PER_STALL_CHECK: u32 = 1 << 16;

/// Where the two threads run.
#[derive(Debug, Clone, Copy)]
pub(super) struct TailPlan {
    writer_core: Option<usize>,
    reader_core: Option<usize>,
    /// Fewer than two cores: the reader yields between empty polls instead of spinning.
    oversubscribed: bool,
}

impl TailPlan {
    pub fn pinned(&self) -> bool {
        self.writer_core.is_some() && self.reader_core.is_some()
    }

    fn wait_label(&self) -> &'static str {
        if self.oversubscribed {
            "reader yields when caught up"
        } else {
            "reader busy-spins"
        }
    }
}

/// Pins writer and reader to the first two pinnable cores, when there are two.
pub(super) fn plan(config: &JournalConfig) -> TailPlan {
    match config.core_ids[..] {
        [writer, reader, ..] if config.cores >= 2 => TailPlan {
            writer_core: Some(writer),
            reader_core: Some(reader),
            oversubscribed: false,
        },
        _ => TailPlan {
            writer_core: None,
            reader_core: None,
            oversubscribed: config.cores < 2,
        },
    }
}

/// Journal and baseline rows.
pub(super) fn run(
    config: &JournalConfig,
    dir: &Path,
    plan: &TailPlan,
) -> Result<Vec<Row>, BenchError> {
    let records = config.tail_records;
    let period_ns = 1_000_000_000 / config.tail_rate_per_sec;
    let clock = Clock::new();
    let placement = match (plan.writer_core, plan.reader_core) {
        (Some(w), Some(r)) => format!("writer on core {w}, reader on core {r}"),
        _ => "not pinned".to_owned(),
    };

    // The writer is opened on this (unpinned) thread, so its housekeeping thread is not confined
    // to the writer's core.
    let path = dir.join("tail-journal");
    let mut writer = Writer::open(
        &path,
        &Config {
            segment_len: config.segment_len,
            durability: Durability::None,
            journal_id: None,
        },
    )?;
    let mut reader = Reader::follow(&path, 1)?;
    let (sent_ns, hist) = std::thread::scope(|scope| {
        let sender = scope.spawn(|| {
            pin(plan.writer_core);
            paced(&clock, records, period_ns, |sequence, payload| {
                writer.append(KIND, sequence, payload).map(drop)
            })
        });
        let receiver = scope.spawn(|| {
            pin(plan.reader_core);
            receive(&clock, records, plan.oversubscribed, IMPL_JOURNAL, || {
                reader
                    .next()
                    .map(|r| r.map(|r| (r.sequence, read_stamp(r.payload))))
            })
        });
        let sent = sender.join().expect("the tail writer thread panicked");
        let received = receiver.join().expect("the tail reader thread panicked");
        Ok::<_, BenchError>((sent?, received?))
    })?;
    writer.close()?;
    remove(&path)?;
    let rolls = records * sequent_journal::format::record_footprint(PAYLOAD_LEN as u32)
        / config.segment_len;
    let journal = Row::new(
        Section::Tail,
        IMPL_JOURNAL,
        "64 B".to_owned(),
        PAYLOAD_LEN,
        records,
    )
    .with_rate(std::time::Duration::from_nanos(sent_ns))
    .with_latency("append to visible", &hist)
    .with_note(format!(
        "Reader::follow, {}; {placement}; paced at {}/s; {rolls} segment rolls",
        plan.wait_label(),
        crate::report::format_rate(config.tail_rate_per_sec)
    ));
    let mut journal = journal;
    journal.threads = 2;
    journal.pinned = plan.pinned();

    let (mut producer, mut consumer) = rtrb::RingBuffer::<[u8; PAYLOAD_LEN]>::new(QUEUE_SLOTS);
    let (sent_ns, hist) = std::thread::scope(|scope| {
        let sender = scope.spawn(|| {
            pin(plan.writer_core);
            paced(&clock, records, period_ns, |_, payload| {
                let mut slot = [0; PAYLOAD_LEN];
                slot.copy_from_slice(payload);
                while let Err(rtrb::PushError::Full(back)) = producer.push(slot) {
                    slot = back;
                    spin_loop();
                }
                Ok::<(), BenchError>(())
            })
        });
        let receiver = scope.spawn(|| {
            pin(plan.reader_core);
            receive(&clock, records, plan.oversubscribed, IMPL_RTRB, || {
                Ok::<_, BenchError>(consumer.pop().ok().map(|slot| {
                    let sequence = u64::from_le_bytes(slot[..8].try_into().expect("8 bytes"));
                    (sequence, read_stamp(&slot))
                }))
            })
        });
        let sent = sender.join().expect("the tail writer thread panicked");
        let received = receiver.join().expect("the tail reader thread panicked");
        Ok::<_, BenchError>((sent?, received?))
    })?;
    let mut baseline = Row::new(
        Section::Tail,
        IMPL_RTRB,
        "64 B".to_owned(),
        PAYLOAD_LEN,
        records,
    )
    .with_rate(std::time::Duration::from_nanos(sent_ns))
    .with_latency("append to visible", &hist)
    .with_note(format!(
        "rtrb::RingBuffer<[u8; 64]> of {QUEUE_SLOTS} slots, {}; {placement}",
        plan.wait_label()
    ));
    baseline.threads = 2;
    baseline.pinned = plan.pinned();
    Ok(vec![journal, baseline])
}

fn pin(core: Option<usize>) {
    if let Some(id) = core {
        assert!(
            core_affinity::set_for_current(core_affinity::CoreId { id }),
            "could not pin thread to core {id}"
        );
    }
}

/// The writer's stamp: payload bytes 8..16.
fn read_stamp(payload: &[u8]) -> u64 {
    u64::from_le_bytes(
        payload[8..16]
            .try_into()
            .expect("payload of at least 16 bytes"),
    )
}

/// Sends `records` payloads, record `i` not before `i × period_ns` after the start, each stamped
/// with the TSC just before `send`. Returns the ns the sending took.
fn paced<E>(
    clock: &Clock,
    records: u64,
    period_ns: u64,
    mut send: impl FnMut(u64, &[u8]) -> Result<(), E>,
) -> Result<u64, E> {
    let mut payload = payload_buffer(PAYLOAD_LEN);
    let start = clock.raw();
    for sequence in 1..=records {
        let due_ns = sequence * period_ns;
        while clock.delta_as_nanos(start, clock.raw()) < due_ns {
            spin_loop();
        }
        fill_payload(&mut payload, sequence);
        payload[8..16].copy_from_slice(&clock.raw().to_le_bytes());
        send(sequence, &payload)?;
    }
    Ok(clock.delta_as_nanos(start, clock.raw()))
}

/// Polls `poll` until `records` records arrived, checking that sequences run 1, 2, 3, …, and
/// records now − stamp of each. Fails after [`STALL_TIMEOUT`] without a record.
fn receive<E>(
    clock: &Clock,
    records: u64,
    oversubscribed: bool,
    imp: &str,
    mut poll: impl FnMut() -> Result<Option<(u64, u64)>, E>,
) -> Result<Histogram<u64>, BenchError>
where
    BenchError: From<E>,
{
    let mut hist = new_histogram();
    let mut expected = 1;
    let mut idle_polls = 0u32;
    let mut idle_since = 0;
    while expected <= records {
        match poll()? {
            Some((sequence, stamp)) => {
                let now = clock.raw();
                if sequence != expected {
                    return Err(BenchError::check(
                        Section::Tail,
                        imp,
                        format!("record {expected} arrived with sequence {sequence}"),
                    ));
                }
                record(&mut hist, clock.delta_as_nanos(stamp, now));
                expected += 1;
                idle_polls = 0;
            }
            None => {
                if idle_polls == 0 {
                    idle_since = clock.raw();
                }
                idle_polls = idle_polls.wrapping_add(1);
                if idle_polls % POLLS_PER_STALL_CHECK == 0
                    && clock.delta_as_nanos(idle_since, clock.raw())
                        > STALL_TIMEOUT.as_nanos() as u64
                {
                    return Err(BenchError::check(
                        Section::Tail,
                        imp,
                        format!("no record {expected} of {records} within {STALL_TIMEOUT:?}"),
                    ));
                }
                if oversubscribed {
                    std::thread::yield_now();
                } else {
                    spin_loop();
                }
            }
        }
    }
    Ok(hist)
}
