//! The `disruptor` crate 4.4 on the same topologies, built with its own dependency graph.
//!
//! Waiting: with a core per thread, handlers use `BusySpinWithSpinLoopHint` and the producer
//! uses the crate's own spinning `publish`/`batch_publish`. Oversubscribed, handlers use
//! [`SpinThenYield`] (the crate has no yielding strategy; its `WaitStrategy` trait is public)
//! and the producer loops on `try_publish`/`try_batch_publish` with the harness's back-off,
//! because the crate's `publish` spins without ever yielding.

use std::cell::Cell;
use std::hint::spin_loop;
use std::thread;

use disruptor::wait_strategies::WaitStrategy;
use disruptor::{BusySpinWithSpinLoopHint, ProcessorSettings, Producer, Sequence};

use crate::ring::event::{
    Msg, ReportSlot, RingEvent, RingStage, StageRole, fill_batch, take_report,
};
use crate::ring::harness::{Publish, RunCtx};
use crate::ring::wait::{
    Backoff, SPIN_TRIES_BEFORE_YIELD, WAIT_SPIN, WAIT_SPIN_THEN_YIELD, pin_current,
};
use crate::ring::{Impl, RunError, RunOutcome, Topology};

/// A disruptor wait strategy that spins [`SPIN_TRIES_BEFORE_YIELD`] times for a sequence,
/// then yields. The crate calls `wait_for` on `&self` with the awaited sequence, so the spin
/// count lives in a thread local keyed by that sequence.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpinThenYield;

thread_local! {
    /// (sequence being waited for, spins so far) of this handler thread.
    static WAITING: Cell<(Sequence, u32)> = const { Cell::new((Sequence::MIN, 0)) };
}

impl WaitStrategy for SpinThenYield {
    fn wait_for(&self, sequence: Sequence) {
        WAITING.with(|waiting| {
            let (awaited, spins) = waiting.get();
            if awaited != sequence {
                waiting.set((sequence, 1));
                spin_loop();
            } else if spins < SPIN_TRIES_BEFORE_YIELD {
                waiting.set((sequence, spins + 1));
                spin_loop();
            } else {
                thread::yield_now();
            }
        });
    }
}

/// Runs the context's scenario on the `disruptor` crate.
pub(crate) fn run(ctx: &RunCtx<'_>) -> Result<RunOutcome, RunError> {
    debug_assert_eq!(ctx.imp, Impl::Disruptor);
    if ctx.plan.oversubscribed {
        run_with(ctx, SpinThenYield, WAIT_SPIN_THEN_YIELD)
    } else {
        run_with(ctx, BusySpinWithSpinLoopHint, WAIT_SPIN)
    }
}

/// Pins the next handler of `builder` to `core`, if given.
fn pinned<B, W>(builder: B, core: Option<usize>) -> B
where
    B: ProcessorSettings<RingEvent, W>,
{
    match core {
        Some(id) => builder.pin_at_core(id),
        None => builder,
    }
}

/// A handler closure over a [`RingStage`], and the slot it reports into.
fn stage(
    ctx: &RunCtx<'_>,
    name: &'static str,
    role: StageRole,
    last: bool,
) -> (
    impl FnMut(&RingEvent, Sequence, bool) + Send + 'static,
    ReportSlot,
) {
    let (mut stage, slot) = RingStage::new(ctx.checker(name, last), role);
    (
        move |event: &RingEvent, _: Sequence, _: bool| stage.handle(event),
        slot,
    )
}

fn run_with<W>(ctx: &RunCtx<'_>, wait: W, label: &'static str) -> Result<RunOutcome, RunError>
where
    W: WaitStrategy + 'static,
{
    let capacity = ctx.config.capacity;
    let first_consumer = ctx.producers;
    let core = |stage: usize| ctx.core_for(first_consumer + stage);
    match ctx.scenario.topology() {
        Topology::OneToOne => {
            let (only, slot) = stage(ctx, "consumer", StageRole::Only, true);
            let builder = disruptor::build_single_producer(capacity, RingEvent::default, wait);
            let producer = pinned(builder, core(0)).handle_events_with(only).build();
            drive(ctx, vec![producer], &[slot], label)
        }
        Topology::Pipeline => {
            let (a, slot_a) = stage(ctx, "A", StageRole::WriteMark0, false);
            let (b, slot_b) = stage(ctx, "B", StageRole::CheckMark0WriteMark1, false);
            let (c, slot_c) = stage(ctx, "C", StageRole::CheckMark1, true);
            let builder = disruptor::build_single_producer(capacity, RingEvent::default, wait);
            let builder = pinned(builder, core(0)).handle_events_with(a).and_then();
            let builder = pinned(builder, core(1)).handle_events_with(b).and_then();
            let producer = pinned(builder, core(2)).handle_events_with(c).build();
            drive(ctx, vec![producer], &[slot_a, slot_b, slot_c], label)
        }
        Topology::Diamond => {
            let (a, slot_a) = stage(ctx, "A", StageRole::WriteMark0, false);
            let (b, slot_b) = stage(ctx, "B", StageRole::WriteMark1, false);
            let (c, slot_c) = stage(ctx, "C", StageRole::CheckBothMarks, true);
            let builder = disruptor::build_single_producer(capacity, RingEvent::default, wait);
            let builder = pinned(builder, core(0)).handle_events_with(a);
            let builder = pinned(builder, core(1)).handle_events_with(b).and_then();
            let producer = pinned(builder, core(2)).handle_events_with(c).build();
            drive(ctx, vec![producer], &[slot_a, slot_b, slot_c], label)
        }
        Topology::ThreeToOne => {
            let (only, slot) = stage(ctx, "consumer", StageRole::Only, true);
            let builder = disruptor::build_multi_producer(capacity, RingEvent::default, wait);
            let producer = pinned(builder, core(0)).handle_events_with(only).build();
            let producers = (0..ctx.producers).map(|_| producer.clone()).collect();
            drop(producer);
            drive(ctx, producers, &[slot], label)
        }
    }
}

/// The producer side over a disruptor `Producer` handle.
struct DisruptorPublisher<'c, 'a, P> {
    producer: P,
    /// `None`: use the crate's spinning `publish`; `Some`: `try_publish` with this back-off.
    backoff: Option<Backoff>,
    ctx: &'c RunCtx<'a>,
}

impl<P: Producer<RingEvent>> Publish for DisruptorPublisher<'_, '_, P> {
    #[inline(always)]
    fn publish(&mut self, msg: Msg) -> bool {
        let Some(backoff) = &mut self.backoff else {
            self.producer.publish(|event| event.fill(msg));
            return true;
        };
        loop {
            if self.producer.try_publish(|event| event.fill(msg)).is_ok() {
                backoff.reset();
                return true;
            }
            if self.ctx.aborted() {
                return false;
            }
            backoff.snooze();
        }
    }

    #[inline(always)]
    fn publish_batch(&mut self, n: usize, msgs: impl Iterator<Item = Msg> + Clone) -> bool {
        let Some(backoff) = &mut self.backoff else {
            self.producer
                .batch_publish(n, |events| fill_batch(events, msgs));
            return true;
        };
        loop {
            let attempt = msgs.clone();
            if self
                .producer
                .try_batch_publish(n, |events| fill_batch(events, attempt))
                .is_ok()
            {
                backoff.reset();
                return true;
            }
            if self.ctx.aborted() {
                return false;
            }
            backoff.snooze();
        }
    }
}

/// Runs the producer threads, then drops the producer handles, which drains the ring and
/// joins its handler threads; then collects the handlers' reports.
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
    let backoff = ctx.plan.oversubscribed.then(|| Backoff::new(true));
    let (starts, waited) = thread::scope(|s| {
        let handles: Vec<_> = producers
            .into_iter()
            .enumerate()
            .map(|(index, producer)| {
                s.spawn(move || {
                    let _done = ctx.done_guard();
                    pin_current(ctx.core_for(index));
                    let mut publisher = DisruptorPublisher {
                        producer,
                        backoff,
                        ctx,
                    };
                    let start = ctx.produce(index as u32, &mut publisher);
                    (start, publisher.producer)
                })
            })
            .collect();
        let waited = ctx.wait_for_done(count);
        let mut starts = Vec::with_capacity(count);
        for handle in handles {
            match handle.join() {
                // Dropping the last handle drains the ring and joins the handler threads.
                Ok((start, producer)) => {
                    starts.push(start);
                    drop(producer);
                }
                Err(_) => starts.push(None),
            }
        }
        (starts, waited)
    });
    waited?;
    let reports: Vec<_> = slots.iter().map(take_report).collect();
    ctx.outcome(&starts, &reports, label, ctx.scenario.is_batch())
}
