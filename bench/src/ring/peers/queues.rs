//! The four topologies built from queues, generic over the [`Queue`] family.
//!
//! - `1p1c`: P → q → consumer.
//! - `1p3c-pipeline`: P → q1 → A → q2 → B → q3 → C; A and B check and forward.
//! - `1p3c-diamond`: P pushes every event to qa and qb; A forwards qa → qac, B forwards
//!   qb → qbc; C pops one event from each, in order, and checks that they match.
//! - `3p1c`: three producers, one consumer (shared MPSC queue, or for `rtrb` one SPSC queue
//!   per producer polled round-robin).
//!
//! Thread indices for pinning: producers first, then consumers in stage order.

use std::thread;

use super::{Queue, QueueRx, QueueTx};
use crate::ring::event::{ConsumerReport, Mismatch, Msg};
use crate::ring::harness::{Publish, RunCtx};
use crate::ring::wait::{Backoff, pin_current};
use crate::ring::{RunError, RunOutcome, Topology};

/// Runs queue family `Q` on the context's scenario.
pub(crate) fn run<Q: Queue>(ctx: &RunCtx<'_>) -> Result<RunOutcome, RunError> {
    debug_assert_eq!(Q::IMPL, ctx.imp);
    let capacity = ctx.config.capacity;
    match ctx.scenario.topology() {
        Topology::OneToOne => {
            let (tx, rx) = Q::spsc(capacity);
            fan_in(ctx, vec![tx], rx)
        }
        Topology::ThreeToOne => {
            let (txs, rx) = Q::mpsc(capacity, ctx.producers);
            fan_in(ctx, txs, rx)
        }
        Topology::Pipeline => pipeline::<Q>(ctx),
        Topology::Diamond => diamond::<Q>(ctx),
    }
}

fn wait_label(ctx: &RunCtx<'_>) -> &'static str {
    Backoff::label(ctx.plan.oversubscribed)
}

fn native_batch<T: QueueTx>(ctx: &RunCtx<'_>) -> bool {
    ctx.scenario.is_batch() && T::NATIVE_BATCH
}

/// Pushes `msg`, waiting while the queue is full; false if the run was aborted.
#[inline]
fn push_blocking<T: QueueTx>(
    tx: &mut T,
    msg: Msg,
    backoff: &mut Backoff,
    ctx: &RunCtx<'_>,
) -> bool {
    let mut msg = msg;
    loop {
        match tx.try_push(msg) {
            Ok(()) => {
                backoff.reset();
                return true;
            }
            Err(back) => {
                if ctx.aborted() {
                    return false;
                }
                msg = back;
                backoff.snooze();
            }
        }
    }
}

/// Pops the next message, waiting while the queue is empty; `None` if the run was aborted.
#[inline]
fn pop_blocking<R: QueueRx>(rx: &mut R, backoff: &mut Backoff, ctx: &RunCtx<'_>) -> Option<Msg> {
    loop {
        if let Some(msg) = rx.try_pop() {
            backoff.reset();
            return Some(msg);
        }
        if ctx.aborted() {
            return None;
        }
        backoff.snooze();
    }
}

/// Pushes the `n` messages of `msgs` as one chunk, waiting until `n` slots are free.
fn push_chunk_blocking<T: QueueTx>(
    tx: &mut T,
    n: usize,
    msgs: impl Iterator<Item = Msg>,
    backoff: &mut Backoff,
    ctx: &RunCtx<'_>,
) -> bool {
    let mut msgs = msgs;
    loop {
        match tx.try_push_chunk(n, msgs) {
            Ok(()) => {
                backoff.reset();
                return true;
            }
            Err(back) => {
                if ctx.aborted() {
                    return false;
                }
                msgs = back;
                backoff.snooze();
            }
        }
    }
}

/// The producer side over one queue.
struct QueuePublisher<'c, 'a, T> {
    tx: T,
    backoff: Backoff,
    ctx: &'c RunCtx<'a>,
}

impl<'c, 'a, T: QueueTx> QueuePublisher<'c, 'a, T> {
    fn new(tx: T, ctx: &'c RunCtx<'a>) -> Self {
        Self {
            tx,
            backoff: Backoff::new(ctx.plan.oversubscribed),
            ctx,
        }
    }
}

impl<T: QueueTx> Publish for QueuePublisher<'_, '_, T> {
    #[inline(always)]
    fn publish(&mut self, msg: Msg) -> bool {
        push_blocking(&mut self.tx, msg, &mut self.backoff, self.ctx)
    }

    #[inline(always)]
    fn publish_batch(&mut self, n: usize, msgs: impl Iterator<Item = Msg> + Clone) -> bool {
        if T::NATIVE_BATCH {
            push_chunk_blocking(&mut self.tx, n, msgs, &mut self.backoff, self.ctx)
        } else {
            msgs.into_iter().all(|msg| self.publish(msg))
        }
    }
}

/// The diamond's producer side: every event goes to both A's and B's queue.
struct DualPublisher<'c, 'a, T> {
    a: T,
    b: T,
    /// One batch, stamped once and pushed to both queues (allocated at set-up).
    batch: Vec<Msg>,
    backoff: Backoff,
    ctx: &'c RunCtx<'a>,
}

impl<T: QueueTx> Publish for DualPublisher<'_, '_, T> {
    #[inline(always)]
    fn publish(&mut self, msg: Msg) -> bool {
        push_blocking(&mut self.a, msg, &mut self.backoff, self.ctx)
            && push_blocking(&mut self.b, msg, &mut self.backoff, self.ctx)
    }

    #[inline(always)]
    fn publish_batch(&mut self, n: usize, msgs: impl Iterator<Item = Msg> + Clone) -> bool {
        if !T::NATIVE_BATCH {
            return msgs.into_iter().all(|msg| self.publish(msg));
        }
        self.batch.clear();
        self.batch.extend(msgs);
        debug_assert_eq!(self.batch.len(), n);
        let (ctx, backoff) = (self.ctx, &mut self.backoff);
        push_chunk_blocking(&mut self.a, n, self.batch.iter().copied(), backoff, ctx)
            && push_chunk_blocking(&mut self.b, n, self.batch.iter().copied(), backoff, ctx)
    }
}

/// The last consumer: checks every message and records latency.
fn consume_last<R: QueueRx>(ctx: &RunCtx<'_>, mut rx: R, name: &'static str) -> ConsumerReport {
    let mut checker = ctx.checker(name, true);
    let mut backoff = Backoff::new(ctx.plan.oversubscribed);
    while let Some(msg) = pop_blocking(&mut rx, &mut backoff, ctx) {
        if checker.observe_msg(&msg) {
            break;
        }
    }
    checker.report()
}

/// A middle stage: checks every message and forwards it.
fn forward<R: QueueRx, T: QueueTx>(
    ctx: &RunCtx<'_>,
    mut rx: R,
    mut tx: T,
    name: &'static str,
) -> ConsumerReport {
    let mut checker = ctx.checker(name, false);
    let mut backoff = Backoff::new(ctx.plan.oversubscribed);
    while let Some(msg) = pop_blocking(&mut rx, &mut backoff, ctx) {
        let last = checker.observe_msg(&msg);
        if !push_blocking(&mut tx, msg, &mut backoff, ctx) || last {
            break;
        }
    }
    checker.report()
}

/// Diamond C: one message from A's queue, then one from B's; they must be the same event.
fn join_pairs<R: QueueRx>(ctx: &RunCtx<'_>, mut from_a: R, mut from_b: R) -> ConsumerReport {
    let mut checker = ctx.checker("C", true);
    let mut backoff = Backoff::new(ctx.plan.oversubscribed);
    while let Some(a) = pop_blocking(&mut from_a, &mut backoff, ctx) {
        let Some(b) = pop_blocking(&mut from_b, &mut backoff, ctx) else {
            break;
        };
        if a != b {
            checker.mismatch(Mismatch::Pair {
                from_a: a.seq,
                from_b: b.seq,
            });
        }
        if checker.observe_msg(&a) {
            break;
        }
    }
    checker.report()
}

/// Starts one producer thread per publisher and returns their start times once joined.
fn spawn_producers<'scope, 'env, P>(
    scope: &'scope thread::Scope<'scope, 'env>,
    ctx: &'env RunCtx<'env>,
    publishers: Vec<P>,
) -> Vec<thread::ScopedJoinHandle<'scope, Option<u64>>>
where
    P: Publish + Send + 'scope,
{
    publishers
        .into_iter()
        .enumerate()
        .map(|(index, mut publisher)| {
            scope.spawn(move || {
                let _done = ctx.done_guard();
                pin_current(ctx.core_for(index));
                ctx.produce(index as u32, &mut publisher)
            })
        })
        .collect()
}

fn join_starts(handles: Vec<thread::ScopedJoinHandle<'_, Option<u64>>>) -> Vec<Option<u64>> {
    handles
        .into_iter()
        .map(|handle| handle.join().ok().flatten())
        .collect()
}

fn fan_in<T: QueueTx, R: QueueRx>(
    ctx: &RunCtx<'_>,
    txs: Vec<T>,
    rx: R,
) -> Result<RunOutcome, RunError> {
    let producers = txs.len();
    // Shorten the context's lifetime to this function so the scope can borrow it.
    let ctx: &RunCtx<'_> = ctx;
    thread::scope(|s| {
        let consumer = spawn_pinned(s, ctx, producers, move || consume_last(ctx, rx, "consumer"));
        let publishers = txs
            .into_iter()
            .map(|tx| QueuePublisher::new(tx, ctx))
            .collect();
        let handles = spawn_producers(s, ctx, publishers);
        let waited = ctx.wait_for_done(producers + 1);
        let starts = join_starts(handles);
        let report = consumer.join().ok();
        waited?;
        ctx.outcome(&starts, &[report], wait_label(ctx), native_batch::<T>(ctx))
    })
}

/// Spawns a consumer thread in `scope`, pinned to the core of thread `index` when pinning, that
/// counts as done (for the run's watchdog) when it returns.
fn spawn_pinned<'scope, 'env, T: Send + 'scope>(
    scope: &'scope thread::Scope<'scope, 'env>,
    ctx: &'scope RunCtx<'env>,
    index: usize,
    body: impl FnOnce() -> T + Send + 'scope,
) -> thread::ScopedJoinHandle<'scope, T> {
    scope.spawn(move || {
        let _done = ctx.done_guard();
        pin_current(ctx.core_for(index));
        body()
    })
}

fn pipeline<Q: Queue>(ctx: &RunCtx<'_>) -> Result<RunOutcome, RunError> {
    let capacity = ctx.config.capacity;
    let (tx1, rx1) = Q::spsc(capacity);
    let (tx2, rx2) = Q::spsc(capacity);
    let (tx3, rx3) = Q::spsc(capacity);
    thread::scope(|s| {
        let a = spawn_pinned(s, ctx, 1, move || forward(ctx, rx1, tx2, "A"));
        let b = spawn_pinned(s, ctx, 2, move || forward(ctx, rx2, tx3, "B"));
        let c = spawn_pinned(s, ctx, 3, move || consume_last(ctx, rx3, "C"));
        let handles = spawn_producers(s, ctx, vec![QueuePublisher::new(tx1, ctx)]);
        let waited = ctx.wait_for_done(4);
        let starts = join_starts(handles);
        let reports = [a.join().ok(), b.join().ok(), c.join().ok()];
        waited?;
        ctx.outcome(
            &starts,
            &reports,
            wait_label(ctx),
            native_batch::<Q::Tx>(ctx),
        )
    })
}

fn diamond<Q: Queue>(ctx: &RunCtx<'_>) -> Result<RunOutcome, RunError> {
    let capacity = ctx.config.capacity;
    let (tx_a, rx_a) = Q::spsc(capacity);
    let (tx_b, rx_b) = Q::spsc(capacity);
    let (tx_ac, rx_ac) = Q::spsc(capacity);
    let (tx_bc, rx_bc) = Q::spsc(capacity);
    let publisher = DualPublisher {
        a: tx_a,
        b: tx_b,
        batch: Vec::with_capacity(ctx.config.batch),
        backoff: Backoff::new(ctx.plan.oversubscribed),
        ctx,
    };
    thread::scope(|s| {
        let a = spawn_pinned(s, ctx, 1, move || forward(ctx, rx_a, tx_ac, "A"));
        let b = spawn_pinned(s, ctx, 2, move || forward(ctx, rx_b, tx_bc, "B"));
        let c = spawn_pinned(s, ctx, 3, move || join_pairs(ctx, rx_ac, rx_bc));
        let handles = spawn_producers(s, ctx, vec![publisher]);
        let waited = ctx.wait_for_done(4);
        let starts = join_starts(handles);
        let reports = [a.join().ok(), b.join().ok(), c.join().ok()];
        waited?;
        ctx.outcome(
            &starts,
            &reports,
            wait_label(ctx),
            native_batch::<Q::Tx>(ctx),
        )
    })
}
