//! The loop a handler thread runs, and the event poller that a thread with its own loop drives.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::barrier::Barrier;
use crate::core::Core;
use crate::handler::{EventHandler, EventHandlerMut};
use crate::sequence::{SEQUENCE_INITIAL, Sequence};
use crate::sync::Arc;
use crate::wait::{WaitStrategy, Waited};

/// Shared or exclusive access to the slots, chosen by which handler trait was given.
pub(crate) trait Access<E>: Send + 'static {
    fn start(&mut self);
    /// Processes `lo..=hi`.
    ///
    /// # Safety
    /// `lo..=hi` lies between the caller's own sequence and its barrier; for exclusive access the
    /// caller is the only consumer in its stage.
    unsafe fn run(&mut self, core: &Core<E>, lo: i64, hi: i64);
    fn timeout(&mut self, sequence: i64);
    fn shutdown(&mut self);
}

pub(crate) struct Shared<H>(pub(crate) H);
pub(crate) struct Exclusive<H>(pub(crate) H);

impl<E, H: EventHandler<E>> Access<E> for Shared<H> {
    fn start(&mut self) {
        self.0.on_start();
    }

    #[inline(always)]
    unsafe fn run(&mut self, core: &Core<E>, lo: i64, hi: i64) {
        for seq in lo..=hi {
            // SAFETY: forwarded from this function's contract.
            unsafe { core.slot_ref(seq, |event| self.0.on_event(event, seq, seq == hi)) };
        }
    }

    fn timeout(&mut self, sequence: i64) {
        self.0.on_timeout(sequence);
    }

    fn shutdown(&mut self) {
        self.0.on_shutdown();
    }
}

impl<E, H: EventHandlerMut<E>> Access<E> for Exclusive<H> {
    fn start(&mut self) {
        self.0.on_start();
    }

    #[inline(always)]
    unsafe fn run(&mut self, core: &Core<E>, lo: i64, hi: i64) {
        for seq in lo..=hi {
            // SAFETY: forwarded from this function's contract (exclusive: alone in its stage).
            unsafe { core.slot_mut(seq, |event| self.0.on_event(event, seq, seq == hi)) };
        }
    }

    fn timeout(&mut self, sequence: i64) {
        self.0.on_timeout(sequence);
    }

    fn shutdown(&mut self) {
        self.0.on_shutdown();
    }
}

/// One handler's position in the graph: what it waits for and how far it has got.
pub(crate) struct Processor<E, A> {
    pub(crate) name: String,
    pub(crate) access: A,
    pub(crate) barrier: Barrier<E>,
    pub(crate) sequence: Arc<Sequence>,
    pub(crate) wait: WaitStrategy,
}

impl<E: Send + Sync + 'static, A: Access<E>> Processor<E, A> {
    /// Runs the handler until the ring drains after shutdown, or a handler anywhere panics. A
    /// panic here halts the ring and is recorded for the owner.
    pub(crate) fn run(mut self) {
        let core = Arc::clone(self.barrier.core());
        let outcome = catch_unwind(AssertUnwindSafe(|| self.run_loop(&core)));
        if let Err(payload) = outcome {
            let message = panic_message(payload.as_ref());
            core.lifecycle
                .halt(crate::Halted::new(self.name.clone(), message));
            core.wake_all();
        }
    }

    fn run_loop(&mut self, core: &Core<E>) {
        self.access.start();
        let mut next = SEQUENCE_INITIAL + 1;
        loop {
            let barrier = &self.barrier;
            let waited = self.wait.wait(
                self.barrier.waits_on(),
                || {
                    let available = barrier.available(next);
                    (available >= next).then_some(available)
                },
                || core.lifecycle.should_exit(next),
            );
            match waited {
                Waited::Ready(available) => {
                    // SAFETY: `next..=available` is past this handler's sequence and within its
                    // barrier; the builder enforced exclusivity for `Exclusive` access.
                    unsafe { self.access.run(core, next, available) };
                    self.sequence.set(available);
                    self.barrier.signal_downstream();
                    next = available + 1;
                }
                Waited::TimedOut => self.access.timeout(next - 1),
                Waited::GaveUp => break,
            }
        }
        if !core.lifecycle.is_halted() {
            self.access.shutdown();
        }
    }
}

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// What one call to [`EventPoller::poll`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollState {
    /// This many events were handed to the callback.
    Processed(usize),
    /// Nothing is available yet.
    Idle,
    /// The ring shut down and this poller has seen every event, or a handler panicked.
    Closed,
}

/// A consumer without a thread of its own: a thread that runs its own I/O loop calls
/// [`EventPoller::poll`] when it has time. It gates the producer like any handler, so a poller that
/// is never polled stops the ring once it is full.
pub struct EventPoller<E> {
    barrier: Barrier<E>,
    sequence: Arc<Sequence>,
    next: i64,
}

impl<E> std::fmt::Debug for EventPoller<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventPoller")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl<E: Send + Sync> EventPoller<E> {
    pub(crate) fn new(barrier: Barrier<E>, sequence: Arc<Sequence>) -> Self {
        Self {
            barrier,
            sequence,
            next: SEQUENCE_INITIAL + 1,
        }
    }

    /// Hands every available event to `f(event, sequence, end_of_batch)`, then releases them.
    pub fn poll(&mut self, f: impl FnMut(&E, i64, bool)) -> PollState {
        self.poll_limit(usize::MAX, f)
    }

    /// Like [`EventPoller::poll`], but hands over at most `limit` events (at least 1), so an I/O
    /// loop keeps a bound on the time it spends here.
    pub fn poll_limit(&mut self, limit: usize, mut f: impl FnMut(&E, i64, bool)) -> PollState {
        assert!(limit > 0, "poll limit must be positive");
        let core = self.barrier.core();
        let available = self.barrier.available(self.next);
        if available < self.next {
            return if core.lifecycle.should_exit(self.next) {
                PollState::Closed
            } else {
                PollState::Idle
            };
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let hi = available.min(self.next.saturating_add(limit - 1));
        for seq in self.next..=hi {
            // SAFETY: `seq` is within this poller's barrier and past its own sequence; pollers
            // only ever take shared access.
            unsafe { core.slot_ref(seq, |event| f(event, seq, seq == hi)) };
        }
        let count = (hi - self.next + 1) as usize;
        self.sequence.set(hi);
        self.barrier.signal_downstream();
        self.next = hi + 1;
        PollState::Processed(count)
    }

    /// The last sequence this poller released.
    pub fn sequence(&self) -> i64 {
        self.next - 1
    }
}
