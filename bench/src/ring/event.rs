//! The payload every implementation carries, and the checks every consumer runs on it.
//!
//! A consumer owns a [`Checker`]: it verifies that each producer's sequence numbers arrive
//! exactly once and in order, records latency, and notes the time of the last event. Checks
//! never panic on the hot path (a panicking consumer would hang a peer that cannot report
//! it); they count mismatches and keep the first one for the report.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use hdrhistogram::Histogram;
use quanta::Clock;

use super::PRODUCERS_MAX;

/// Highest latency the histograms track: 100 s. Larger values saturate to it.
const LATENCY_NS_MAX: u64 = 100_000_000_000;
/// Significant figures of the histograms (0.1 % value resolution).
const LATENCY_SIGFIG: u8 = 3;

/// A fresh latency histogram (allocated at set-up, never on the hot path).
pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, LATENCY_SIGFIG)
        .expect("constant histogram bounds are valid")
}

/// What queue peers move by value: 32 bytes, `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Msg {
    /// Which producer published it (0..PRODUCERS_MAX).
    pub producer: u32,
    /// The producer's own sequence, from 0.
    pub seq: u64,
    /// Raw clock value latency is measured from (0 when this event is not sampled).
    pub stamp_raw: u64,
    /// Latency run: the intended send time in ns after `stamp_raw`; 0 otherwise.
    pub intended_ns: u64,
}

/// What ring implementations keep in each slot: the [`Msg`] fields plus two stage marks.
///
/// A stage writes its mark (the event's `seq`) and a dependent stage checks it. The marks
/// use `Relaxed` because the ring itself must order them: the upstream handler's progress is
/// published with Release and the dependent barrier reads it with Acquire. If the ring let
/// C run ahead of A or B, C would see a stale mark and the run fails.
#[derive(Debug)]
pub(crate) struct RingEvent {
    pub producer: u32,
    pub seq: u64,
    pub stamp_raw: u64,
    pub intended_ns: u64,
    pub marks: [AtomicU64; 2],
}

/// Mark value before any stage wrote one.
const MARK_NONE: u64 = u64::MAX;

impl Default for RingEvent {
    fn default() -> Self {
        Self {
            producer: 0,
            seq: 0,
            stamp_raw: 0,
            intended_ns: 0,
            marks: [AtomicU64::new(MARK_NONE), AtomicU64::new(MARK_NONE)],
        }
    }
}

impl RingEvent {
    /// Overwrites the payload fields (the producer side; marks are left to the stages).
    #[inline]
    pub fn fill(&mut self, msg: Msg) {
        self.producer = msg.producer;
        self.seq = msg.seq;
        self.stamp_raw = msg.stamp_raw;
        self.intended_ns = msg.intended_ns;
    }
}

/// Writes one batch of messages into claimed ring slots (any ring's batch iterator).
#[inline]
pub(crate) fn fill_batch<'e>(
    events: impl Iterator<Item = &'e mut RingEvent>,
    msgs: impl Iterator<Item = Msg>,
) {
    for (event, msg) in events.zip(msgs) {
        event.fill(msg);
    }
}

/// The first thing a consumer found wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mismatch {
    /// `producer`'s event `got` arrived when `expected` was due (lost, doubled or reordered).
    Order {
        producer: u32,
        expected: u64,
        got: u64,
    },
    /// An event named a producer that does not exist in this scenario.
    UnknownProducer { producer: u32 },
    /// A dependent stage ran before its upstream stage had handled the event.
    Mark {
        upstream: usize,
        expected: u64,
        found: u64,
    },
    /// Diamond C popped different events from A's and B's queues.
    Pair { from_a: u64, from_b: u64 },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Mismatch::Order {
                producer,
                expected,
                got,
            } => {
                write!(f, "producer {producer}: expected seq {expected}, got {got}")
            }
            Mismatch::UnknownProducer { producer } => write!(f, "unknown producer id {producer}"),
            Mismatch::Mark {
                upstream,
                expected,
                found,
            } => write!(
                f,
                "seq {expected} reached a dependent stage before upstream stage {} (its mark was {found})",
                ["A", "B"][upstream]
            ),
            Mismatch::Pair { from_a, from_b } => {
                write!(f, "C popped seq {from_a} from A but seq {from_b} from B")
            }
        }
    }
}

/// Records one event's latency: `now - stamp_raw - intended_ns`, for sampled sequences.
#[derive(Debug)]
struct LatencyProbe {
    clock: Clock,
    hist: Histogram<u64>,
    /// `seq & mask == 0` selects the sampled events; 0 records every event.
    mask: u64,
}

/// Which sequences producers time-stamp in throughput runs.
#[derive(Debug, Clone)]
pub(crate) struct Stamper {
    clock: Clock,
    mask: u64,
}

impl Stamper {
    pub fn new(clock: Clock, sample_every: u64) -> Self {
        debug_assert!(sample_every.is_power_of_two());
        Self {
            clock,
            mask: sample_every - 1,
        }
    }

    /// The message for `producer`'s `seq`, stamped if `seq` is sampled.
    #[inline]
    pub fn msg(&self, producer: u32, seq: u64) -> Msg {
        let stamp_raw = if seq & self.mask == 0 {
            self.clock.raw()
        } else {
            0
        };
        Msg {
            producer,
            seq,
            stamp_raw,
            intended_ns: 0,
        }
    }
}

/// Per-consumer verification state; see the module docs.
#[derive(Debug)]
pub(crate) struct Checker {
    consumer: &'static str,
    producers: usize,
    per_producer: u64,
    /// The next sequence due from each producer.
    next_seq: [u64; PRODUCERS_MAX],
    seen: u64,
    errors: u64,
    first: Option<Mismatch>,
    clock: Clock,
    end_raw: u64,
    latency: Option<LatencyProbe>,
}

impl Checker {
    /// A checker for a consumer that expects `per_producer` events from each of `producers`.
    /// `latency_every` is `Some(n)` for the consumer that records latency (n = 1: every event).
    pub fn new(
        consumer: &'static str,
        producers: usize,
        per_producer: u64,
        clock: &Clock,
        latency_every: Option<u64>,
    ) -> Self {
        assert!((1..=PRODUCERS_MAX).contains(&producers), "1..=3 producers");
        let latency = latency_every.map(|every| {
            assert!(
                every.is_power_of_two(),
                "latency sampling must be a power of two"
            );
            LatencyProbe {
                clock: clock.clone(),
                hist: new_histogram(),
                mask: every - 1,
            }
        });
        Self {
            consumer,
            producers,
            per_producer,
            next_seq: [0; PRODUCERS_MAX],
            seen: 0,
            errors: 0,
            first: None,
            clock: clock.clone(),
            end_raw: 0,
            latency,
        }
    }

    /// Events this consumer expects in all.
    pub fn expected(&self) -> u64 {
        self.per_producer * self.producers as u64
    }

    /// Notes a mismatch found by the caller (stage marks, diamond pairs).
    #[cold]
    pub fn mismatch(&mut self, what: Mismatch) {
        self.errors += 1;
        self.first.get_or_insert(what);
    }

    /// Checks one event; returns true when it was the last expected one.
    #[inline]
    pub fn observe(&mut self, producer: u32, seq: u64, stamp_raw: u64, intended_ns: u64) -> bool {
        let index = producer as usize;
        if index < self.producers {
            let expected = self.next_seq[index];
            if seq != expected {
                self.mismatch(Mismatch::Order {
                    producer,
                    expected,
                    got: seq,
                });
            }
            self.next_seq[index] = seq.wrapping_add(1);
        } else {
            self.mismatch(Mismatch::UnknownProducer { producer });
        }
        if let Some(probe) = &mut self.latency {
            if seq & probe.mask == 0 {
                let now = probe.clock.raw();
                let ns = probe
                    .clock
                    .delta_as_nanos(stamp_raw, now)
                    .saturating_sub(intended_ns);
                probe.hist.saturating_record(ns.max(1));
            }
        }
        self.seen += 1;
        if self.seen == self.expected() {
            self.end_raw = self.clock.raw();
            return true;
        }
        false
    }

    /// Checks a [`Msg`]; returns true when it was the last expected one.
    #[inline]
    pub fn observe_msg(&mut self, msg: &Msg) -> bool {
        self.observe(msg.producer, msg.seq, msg.stamp_raw, msg.intended_ns)
    }

    /// A snapshot for the harness (clones the histogram: call it once, at the end).
    pub fn report(&self) -> ConsumerReport {
        ConsumerReport {
            consumer: self.consumer,
            producers: self.producers,
            per_producer: self.per_producer,
            next_seq: self.next_seq,
            seen: self.seen,
            errors: self.errors,
            first: self.first,
            end_raw: self.end_raw,
            latency: self.latency.as_ref().map(|probe| probe.hist.clone()),
        }
    }
}

/// What a consumer reports at the end of a run.
#[derive(Debug, Clone)]
pub(crate) struct ConsumerReport {
    pub consumer: &'static str,
    producers: usize,
    per_producer: u64,
    next_seq: [u64; PRODUCERS_MAX],
    seen: u64,
    errors: u64,
    first: Option<Mismatch>,
    /// Raw clock when the last expected event arrived (0 if it never did).
    pub end_raw: u64,
    pub latency: Option<Histogram<u64>>,
}

impl ConsumerReport {
    /// `Err(detail)` unless every producer's events 0..per_producer arrived once, in order.
    pub fn verify(&self) -> Result<(), String> {
        if let Some(first) = self.first {
            return Err(format!("{} mismatches; first: {first}", self.errors));
        }
        let expected = self.per_producer * self.producers as u64;
        if self.seen != expected {
            return Err(format!("saw {} events, expected {expected}", self.seen));
        }
        for (producer, &next) in self.next_seq[..self.producers].iter().enumerate() {
            if next != self.per_producer {
                return Err(format!(
                    "producer {producer}: last seq seen {}, expected {}",
                    next.wrapping_sub(1),
                    self.per_producer - 1
                ));
            }
        }
        Ok(())
    }
}

/// Where a ring handler leaves its report: the harness reads it after the ring has shut down.
pub(crate) type ReportSlot = Arc<Mutex<Option<ConsumerReport>>>;

/// What a ring stage does with the marks besides the order check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StageRole {
    /// The only consumer (1p1c, 3p1c).
    Only,
    /// Pipeline stage 0 or diamond A: writes mark 0.
    WriteMark0,
    /// Pipeline B: checks mark 0, writes mark 1.
    CheckMark0WriteMark1,
    /// Diamond B: writes mark 1.
    WriteMark1,
    /// Pipeline C: checks mark 1.
    CheckMark1,
    /// Diamond C: checks marks 0 and 1.
    CheckBothMarks,
}

/// A ring handler's state: a [`Checker`] plus its stage role. It publishes its report when
/// the last event arrives and again when dropped, so a handler that never sees the last
/// event still reports what it saw.
#[derive(Debug)]
pub(crate) struct RingStage {
    checker: Checker,
    role: StageRole,
    slot: ReportSlot,
}

impl RingStage {
    pub fn new(checker: Checker, role: StageRole) -> (Self, ReportSlot) {
        let slot = ReportSlot::default();
        (
            Self {
                checker,
                role,
                slot: Arc::clone(&slot),
            },
            slot,
        )
    }

    #[inline]
    fn check_mark(&mut self, event: &RingEvent, upstream: usize) {
        // Relaxed: see `RingEvent`; the ring's barrier orders this load after the store.
        let found = event.marks[upstream].load(Ordering::Relaxed);
        if found != event.seq {
            self.checker.mismatch(Mismatch::Mark {
                upstream,
                expected: event.seq,
                found,
            });
        }
    }

    /// Handles one event from the ring.
    #[inline]
    pub fn handle(&mut self, event: &RingEvent) {
        match self.role {
            StageRole::Only => {}
            // Relaxed stores: published by the ring's Release of this handler's sequence.
            StageRole::WriteMark0 => event.marks[0].store(event.seq, Ordering::Relaxed),
            StageRole::WriteMark1 => event.marks[1].store(event.seq, Ordering::Relaxed),
            StageRole::CheckMark0WriteMark1 => {
                self.check_mark(event, 0);
                event.marks[1].store(event.seq, Ordering::Relaxed);
            }
            StageRole::CheckMark1 => self.check_mark(event, 1),
            StageRole::CheckBothMarks => {
                self.check_mark(event, 0);
                self.check_mark(event, 1);
            }
        }
        let last = self.checker.observe(
            event.producer,
            event.seq,
            event.stamp_raw,
            event.intended_ns,
        );
        if last {
            self.publish();
        }
    }

    #[cold]
    fn publish(&self) {
        let report = self.checker.report();
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(report);
    }
}

impl Drop for RingStage {
    fn drop(&mut self) {
        self.publish();
    }
}

/// Takes the report out of a slot after the ring has shut down.
pub(crate) fn take_report(slot: &ReportSlot) -> Option<ConsumerReport> {
    slot.lock().unwrap_or_else(PoisonError::into_inner).take()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checker(producers: usize, per_producer: u64) -> Checker {
        Checker::new("consumer", producers, per_producer, &Clock::new(), Some(1))
    }

    #[test]
    fn in_order_events_pass() {
        let mut check = checker(2, 3);
        for seq in 0..3 {
            for producer in 0..2 {
                let last = check.observe(producer, seq, 0, 0);
                assert_eq!(last, seq == 2 && producer == 1);
            }
        }
        assert_eq!(check.report().verify(), Ok(()));
        assert_eq!(check.report().latency.map(|h| h.len()), Some(6));
    }

    #[test]
    fn lost_doubled_and_missing_events_fail() {
        let mut lost = checker(1, 3);
        for seq in [0, 2] {
            lost.observe(0, seq, 0, 0);
        }
        let detail = lost.report().verify().unwrap_err();
        assert!(detail.contains("expected seq 1, got 2"), "{detail}");

        let mut doubled = checker(1, 2);
        for seq in [0, 0] {
            doubled.observe(0, seq, 0, 0);
        }
        assert!(doubled.report().verify().is_err());

        let mut short = checker(1, 3);
        short.observe(0, 0, 0, 0);
        assert_eq!(
            short.report().verify(),
            Err("saw 1 events, expected 3".to_owned())
        );

        let mut stranger = checker(1, 1);
        stranger.observe(2, 0, 0, 0);
        assert!(
            stranger
                .report()
                .verify()
                .unwrap_err()
                .contains("unknown producer id 2")
        );
    }

    #[test]
    fn a_stale_mark_fails_the_dependent_stage() {
        let (mut c, slot) = RingStage::new(checker(1, 1), StageRole::CheckBothMarks);
        let event = RingEvent::default();
        event.marks[0].store(0, Ordering::Relaxed);
        c.handle(&event); // mark 1 was never written: B had not run
        let report = take_report(&slot).expect("last event publishes the report");
        assert!(report.verify().unwrap_err().contains("upstream stage B"));
    }
}
