//! The ring under test (`sequent-ring`), on the same topologies as its peers, through its public
//! API only: `build_single_producer`/`build_multi_producer`, stages joined with `and_then`,
//! `publish`/`batch_publish`, `shutdown`.
//!
//! Waiting: `WaitStrategy::BusySpin` for handlers and the producer when every thread has a core
//! (handlers pinned with `pin_at_core`); `WaitStrategy::Yielding` when oversubscribed.

use std::thread;

use sequent_ring::{Halted, Producer, WaitStrategy};

use super::event::{Msg, ReportSlot, RingEvent, RingStage, StageRole, fill_batch, take_report};
use super::harness::{Publish, RunCtx};
use super::wait::pin_current;
use super::{Impl, RunError, RunOutcome, Topology};

/// `wait` label with a core per thread.
const WAIT_BUSY_SPIN: &str = "busy-spin";
/// `wait` label when oversubscribed (the ring spins `YIELD_AFTER_SPINS` times, then yields).
const WAIT_YIELDING: &str = "yielding";

type Builder<P> = sequent_ring::Builder<RingEvent, P>;

/// Runs the context's scenario on the sequent ring.
pub(crate) fn run(ctx: &RunCtx<'_>) -> Result<RunOutcome, RunError> {
    debug_assert_eq!(ctx.imp, Impl::SequentRing);
    let (wait, label) = if ctx.plan.oversubscribed {
        (WaitStrategy::Yielding, WAIT_YIELDING)
    } else {
        (WaitStrategy::BusySpin, WAIT_BUSY_SPIN)
    };
    let capacity = ctx.config.capacity;
    let mut slots = Vec::with_capacity(3);
    let build_error = |err: sequent_ring::BuildError| RunError::Ring {
        imp: ctx.imp,
        scenario: ctx.scenario,
        detail: format!("build failed: {err}"),
    };
    // Each topology as stages of (consumer name, role); consumers are numbered in this order
    // for pinning, and the last one records latency.
    const ONLY: &[&[(&str, StageRole)]] = &[&[("consumer", StageRole::Only)]];
    let stages: &[&[(&'static str, StageRole)]] = match ctx.scenario.topology() {
        Topology::OneToOne | Topology::ThreeToOne => ONLY,
        Topology::Pipeline => &[
            &[("A", StageRole::WriteMark0)],
            &[("B", StageRole::CheckMark0WriteMark1)],
            &[("C", StageRole::CheckMark1)],
        ],
        Topology::Diamond => &[
            &[("A", StageRole::WriteMark0), ("B", StageRole::WriteMark1)],
            &[("C", StageRole::CheckBothMarks)],
        ],
    };
    if matches!(ctx.scenario.topology(), Topology::ThreeToOne) {
        let builder = sequent_ring::build_multi_producer(capacity, RingEvent::default, wait);
        let producer = wire(ctx, builder, stages, &mut slots)
            .build()
            .map_err(build_error)?;
        let producers: Vec<_> = (0..ctx.producers).map(|_| producer.clone()).collect();
        // Dropping a clone is not the last handle going, so nothing drains here.
        drop(producer);
        drive(ctx, producers, &slots, label)
    } else {
        let builder = sequent_ring::build_single_producer(capacity, RingEvent::default, wait);
        let producer = wire(ctx, builder, stages, &mut slots)
            .build()
            .map_err(build_error)?;
        drive(ctx, vec![producer], &slots, label)
    }
}

/// Adds `stages` to `builder`, joining them with `and_then`.
fn wire<P>(
    ctx: &RunCtx<'_>,
    mut builder: Builder<P>,
    stages: &[&[(&'static str, StageRole)]],
    slots: &mut Vec<ReportSlot>,
) -> Builder<P> {
    let consumers: usize = stages.iter().map(|s| s.len()).sum();
    let mut index = 0;
    for (s, stage) in stages.iter().enumerate() {
        if s > 0 {
            builder = builder.and_then();
        }
        for &(name, role) in stage.iter() {
            let last = index + 1 == consumers;
            builder = add_stage(ctx, builder, index, name, role, last, slots);
            index += 1;
        }
    }
    builder
}

/// Adds a handler over a [`RingStage`] to the current stage, pinned to the core of consumer
/// `stage` when pinning, and keeps its report slot.
fn add_stage<P>(
    ctx: &RunCtx<'_>,
    builder: Builder<P>,
    stage: usize,
    name: &'static str,
    role: StageRole,
    last: bool,
    slots: &mut Vec<ReportSlot>,
) -> Builder<P> {
    let (mut handler, slot) = RingStage::new(ctx.checker(name, last), role);
    slots.push(slot);
    let builder = match ctx.core_for(ctx.producers + stage) {
        Some(core) => builder.pin_at_core(core),
        None => builder,
    };
    builder
        .thread_name(format!("bench-{name}"))
        .handle_events_with(move |event: &RingEvent, _: i64, _: bool| handler.handle(event))
}

/// The producer side over a sequent `Producer`: `publish` and `batch_publish` wait with the
/// ring's own default strategy.
struct SequentPublisher<P> {
    producer: P,
    /// Set when the ring reported a panicking handler.
    halted: Option<Halted>,
}

impl<P: Producer<RingEvent>> Publish for SequentPublisher<P> {
    #[inline(always)]
    fn publish(&mut self, msg: Msg) -> bool {
        match self.producer.publish(|event| event.fill(msg)) {
            Ok(_) => true,
            Err(halted) => {
                self.halted = Some(halted);
                false
            }
        }
    }

    #[inline(always)]
    fn publish_batch(&mut self, n: usize, msgs: impl Iterator<Item = Msg> + Clone) -> bool {
        match self
            .producer
            .batch_publish(n, |events| fill_batch(events, msgs))
        {
            Ok(_) => true,
            Err(halted) => {
                self.halted = Some(halted);
                false
            }
        }
    }
}

/// Runs the producer threads, then shuts the ring down (the last handle drains it and joins
/// the handler threads) and collects the handlers' reports.
fn drive<P>(
    ctx: &RunCtx<'_>,
    producers: Vec<P>,
    slots: &[ReportSlot],
    label: &'static str,
) -> Result<RunOutcome, RunError>
where
    P: Producer<RingEvent> + Send,
{
    let count = producers.len();
    let ring_error = |detail: String| RunError::Ring {
        imp: ctx.imp,
        scenario: ctx.scenario,
        detail,
    };
    let (starts, halted, waited) = thread::scope(|s| {
        let handles: Vec<_> = producers
            .into_iter()
            .enumerate()
            .map(|(index, producer)| {
                s.spawn(move || {
                    let _done = ctx.done_guard();
                    pin_current(ctx.core_for(index));
                    let mut publisher = SequentPublisher {
                        producer,
                        halted: None,
                    };
                    let start = ctx.produce(index as u32, &mut publisher);
                    (start, publisher)
                })
            })
            .collect();
        let waited = ctx.wait_for_done(count);
        let mut starts = Vec::with_capacity(count);
        let mut halted = None;
        for handle in handles {
            match handle.join() {
                Ok((start, publisher)) => {
                    starts.push(start);
                    if let Some(h) = publisher.halted {
                        halted.get_or_insert(h);
                    }
                    if let Err(h) = publisher.producer.shutdown() {
                        halted.get_or_insert(h);
                    }
                }
                Err(_) => starts.push(None),
            }
        }
        (starts, halted, waited)
    });
    if let Some(halted) = halted {
        return Err(ring_error(halted.to_string()));
    }
    waited?;
    let reports: Vec<_> = slots.iter().map(take_report).collect();
    ctx.outcome(&starts, &reports, label, ctx.scenario.is_batch())
}
