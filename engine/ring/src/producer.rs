//! Publishing: single- and multi-producer sequencers behind one [`Producer`] trait.

use std::fmt;

use crate::core::Core;
use crate::pipeline::Pipeline;
use crate::sequence::{SEQUENCE_INITIAL, Sequence, minimum};
use crate::sync::Arc;
use crate::wait::{WaitStrategy, Waited};

/// A handler panicked and the ring stopped; carried to the owner by `publish` and `shutdown`.
///
/// One pointer wide, so that `Result<i64, Halted>` comes back from `publish` in registers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Halted(std::sync::Arc<HaltedReport>);

#[derive(Debug, PartialEq, Eq)]
struct HaltedReport {
    handler: String,
    message: String,
}

impl Halted {
    pub(crate) fn new(handler: impl Into<String>, message: impl Into<String>) -> Self {
        Self(std::sync::Arc::new(HaltedReport {
            handler: handler.into(),
            message: message.into(),
        }))
    }

    /// The thread name of the handler that panicked.
    pub fn handler(&self) -> &str {
        &self.0.handler
    }

    /// Its panic message.
    pub fn message(&self) -> &str {
        &self.0.message
    }
}

impl fmt::Display for Halted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ring halted: handler `{}` panicked: {}",
            self.0.handler, self.0.message
        )
    }
}

impl std::error::Error for Halted {}

/// Why a `try_publish` did not publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TryPublishError {
    /// The slowest gating consumer has not released enough slots; nothing was written.
    Full,
    /// A handler panicked; the ring will not move again.
    Halted(Halted),
}

impl fmt::Display for TryPublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => f.write_str("ring full"),
            Self::Halted(h) => h.fmt(f),
        }
    }
}

impl std::error::Error for TryPublishError {}

/// Publishes events into the ring. Events are written in place through the closure, so nothing is
/// allocated or copied besides what the closure writes.
pub trait Producer<E> {
    /// Claims one slot if one is free, lets `f` fill it, publishes it, and returns its sequence.
    /// Never blocks.
    fn try_publish<F: FnOnce(&mut E)>(&mut self, f: F) -> Result<i64, TryPublishError>;

    /// Like [`Producer::try_publish`], but waits (with the ring's default wait strategy) while the
    /// ring is full. Fails only if a handler panicked.
    fn publish<F: FnOnce(&mut E)>(&mut self, f: F) -> Result<i64, Halted>;

    /// Claims `n` consecutive slots if they are free, lets `f` fill them through an iterator, and
    /// publishes them together. Returns the last sequence. Never blocks. `n` must be in
    /// `1..=capacity()`.
    fn try_batch_publish<F: FnOnce(BatchIterMut<'_, E>)>(
        &mut self,
        n: usize,
        f: F,
    ) -> Result<i64, TryPublishError>;

    /// Like [`Producer::try_batch_publish`], but waits while the ring lacks `n` free slots.
    fn batch_publish<F: FnOnce(BatchIterMut<'_, E>)>(
        &mut self,
        n: usize,
        f: F,
    ) -> Result<i64, Halted>;

    /// Slots free for publication now (back-pressure: 0 means the next `try_publish` fails).
    fn free_slots(&self) -> usize;

    /// The number of slots in the ring.
    fn capacity(&self) -> usize;

    /// Stops publishing: handlers drain every published event, run `on_shutdown` and their threads
    /// are joined. For a [`MultiProducer`], only the last handle to go does this. Reports a handler
    /// panic, if there was one.
    fn shutdown(self) -> Result<(), Halted>;
}

/// The slots of one batch claim, in sequence order.
pub struct BatchIterMut<'a, E> {
    core: &'a Core<E>,
    next: i64,
    last: i64,
}

impl<E> fmt::Debug for BatchIterMut<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchIterMut")
            .field("next", &self.next)
            .field("last", &self.last)
            .finish()
    }
}

impl<'a, E> Iterator for BatchIterMut<'a, E> {
    type Item = &'a mut E;

    #[inline(always)]
    fn next(&mut self) -> Option<&'a mut E> {
        if self.next > self.last {
            return None;
        }
        let seq = self.next;
        self.next += 1;
        // SAFETY: the producer claimed `next..=last` and has not published it, and every gating
        // consumer released the previous lap of these slots, so nothing else reads or writes them;
        // each sequence is yielded once, so the `&mut`s never alias. The iterator borrows the
        // producer for `'a`, so none outlives the publication that follows the closure.
        Some(unsafe { &mut *self.core.slot_ptr(seq) })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = (self.last - self.next + 1).max(0) as usize;
        (n, Some(n))
    }
}

impl<E> ExactSizeIterator for BatchIterMut<'_, E> {}

fn check_batch(n: usize, capacity: usize) {
    assert!(
        n > 0 && n <= capacity,
        "batch of {n} does not fit a ring of {capacity}"
    );
}

fn halted<E>(core: &Core<E>) -> Halted {
    core.lifecycle
        .report()
        .unwrap_or_else(|| Halted::new("unknown", "ring halted"))
}

/// Why a claim that found no room failed: the ring is full, or it will never drain again.
fn full_or_halted<E>(core: &Core<E>) -> TryPublishError {
    if core.lifecycle.is_halted() {
        TryPublishError::Halted(halted(core))
    } else {
        TryPublishError::Full
    }
}

/// Waits until the slowest gating consumer has reached `wrap_point`, returning its sequence.
#[cold]
fn wait_for_room<E>(
    core: &Core<E>,
    gating: &Gating,
    wait: WaitStrategy,
    wrap_point: i64,
    floor: i64,
) -> Result<i64, Halted> {
    let notifier = core.notifier(gating.boundary);
    let gating = &gating.sequences[..];
    loop {
        let waited = wait.wait(
            notifier,
            || {
                let min = minimum(gating, floor);
                (min >= wrap_point).then_some(min)
            },
            || core.lifecycle.is_halted(),
        );
        match waited {
            Waited::Ready(min) => return Ok(min),
            Waited::GaveUp => return Err(halted(core)),
            Waited::TimedOut => {}
        }
    }
}

/// What a producer waits for before reusing a slot.
#[derive(Debug)]
pub(crate) struct Gating {
    /// The consumers of the last stage: a slot may be reused once all of them have passed it.
    pub(crate) sequences: Box<[Arc<Sequence>]>,
    /// The notifier they signal (the number of stages), where a producer parks when full.
    pub(crate) boundary: usize,
}

/// The producer of a ring with exactly one publishing thread: claims are plain arithmetic, no
/// atomic read-modify-write.
pub struct SingleProducer<E> {
    core: Arc<Core<E>>,
    gating: Gating,
    /// The last sequence claimed, which is also the last published (claims publish before return).
    claimed: i64,
    /// A lower bound of `minimum(gating)`, refreshed only when a claim would seem to wrap.
    gating_cached: i64,
    wait: WaitStrategy,
    pipeline: Pipeline<E>,
}

impl<E> fmt::Debug for SingleProducer<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SingleProducer")
            .field("claimed", &self.claimed)
            .field("capacity", &self.core.size())
            .finish_non_exhaustive()
    }
}

impl<E: Send + Sync + 'static> SingleProducer<E> {
    pub(crate) fn new(
        core: Arc<Core<E>>,
        gating: Gating,
        wait: WaitStrategy,
        pipeline: Pipeline<E>,
    ) -> Self {
        Self {
            core,
            gating,
            claimed: SEQUENCE_INITIAL,
            gating_cached: SEQUENCE_INITIAL,
            wait,
            pipeline,
        }
    }

    /// Is there room for `n` more without waiting? Refreshes the cache only on the slow path.
    #[inline(always)]
    fn has_room(&mut self, n: i64) -> bool {
        let wrap_point = self.claimed + n - self.core.size() as i64;
        if wrap_point <= self.gating_cached {
            return true;
        }
        self.gating_cached = minimum(&self.gating.sequences, self.claimed);
        wrap_point <= self.gating_cached
    }

    #[inline(always)]
    fn claim_or_wait(&mut self, n: i64) -> Result<(), Halted> {
        if self.has_room(n) {
            return Ok(());
        }
        let wrap_point = self.claimed + n - self.core.size() as i64;
        self.gating_cached = wait_for_room(
            &self.core,
            &self.gating,
            self.wait,
            wrap_point,
            self.claimed,
        )?;
        Ok(())
    }

    #[inline(always)]
    fn write_and_publish(&mut self, f: impl FnOnce(&mut E)) -> i64 {
        let seq = self.claimed + 1;
        // SAFETY: `seq` is claimed by this (only) producer, not yet published, and `has_room`
        // established that every gating consumer released the slot's previous lap.
        unsafe { self.core.slot_mut(seq, f) };
        self.claimed = seq;
        // Release stores, flag first: first-stage consumers find the flag on the slot's line;
        // the cursor (which is stored after it, so it never covers an unflagged slot) serves
        // long backlogs, `shutdown` and back-pressure. Both pair with the Acquires in
        // `Core::highest_published`.
        self.core.set_published(seq);
        self.core.cursor.set(seq);
        self.core.notifier(0).signal();
        seq
    }

    fn batch_write_and_publish(&mut self, n: i64, f: impl FnOnce(BatchIterMut<'_, E>)) -> i64 {
        let first = self.claimed + 1;
        let last = self.claimed + n;
        f(BatchIterMut {
            core: &self.core,
            next: first,
            last,
        });
        self.claimed = last;
        // Release stores: each slot's flag, then the cursor; see `write_and_publish`.
        for seq in first..=last {
            self.core.set_published(seq);
        }
        self.core.cursor.set(last);
        self.core.notifier(0).signal();
        last
    }
}

impl<E: Send + Sync + 'static> Producer<E> for SingleProducer<E> {
    #[inline(always)]
    fn try_publish<F: FnOnce(&mut E)>(&mut self, f: F) -> Result<i64, TryPublishError> {
        if !self.has_room(1) {
            return Err(full_or_halted(&self.core));
        }
        Ok(self.write_and_publish(f))
    }

    #[inline(always)]
    fn publish<F: FnOnce(&mut E)>(&mut self, f: F) -> Result<i64, Halted> {
        self.claim_or_wait(1)?;
        Ok(self.write_and_publish(f))
    }

    #[inline]
    fn try_batch_publish<F: FnOnce(BatchIterMut<'_, E>)>(
        &mut self,
        n: usize,
        f: F,
    ) -> Result<i64, TryPublishError> {
        check_batch(n, self.core.size());
        if !self.has_room(n as i64) {
            return Err(full_or_halted(&self.core));
        }
        Ok(self.batch_write_and_publish(n as i64, f))
    }

    #[inline]
    fn batch_publish<F: FnOnce(BatchIterMut<'_, E>)>(
        &mut self,
        n: usize,
        f: F,
    ) -> Result<i64, Halted> {
        check_batch(n, self.core.size());
        self.claim_or_wait(n as i64)?;
        Ok(self.batch_write_and_publish(n as i64, f))
    }

    fn free_slots(&self) -> usize {
        let used = self.claimed - minimum(&self.gating.sequences, self.claimed);
        self.core.size() - used as usize
    }

    fn capacity(&self) -> usize {
        self.core.size()
    }

    fn shutdown(mut self) -> Result<(), Halted> {
        self.pipeline.shutdown()
    }
}

/// A producer handle that may be cloned into many threads. Claims are an atomic add (blocking) or
/// a compare-and-swap (try); each slot carries a publication flag so consumers see a gap-free
/// prefix even when producers finish out of order.
pub struct MultiProducer<E> {
    core: Arc<Core<E>>,
    gating: std::sync::Arc<Gating>,
    /// This handle's lower bound of `minimum(gating)`.
    gating_cached: i64,
    wait: WaitStrategy,
    /// The last handle to drop (or shut down) drains and joins the handlers.
    pipeline: std::sync::Arc<Pipeline<E>>,
}

impl<E> fmt::Debug for MultiProducer<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiProducer")
            .field("capacity", &self.core.size())
            .finish_non_exhaustive()
    }
}

impl<E> Clone for MultiProducer<E> {
    fn clone(&self) -> Self {
        Self {
            core: Arc::clone(&self.core),
            gating: std::sync::Arc::clone(&self.gating),
            gating_cached: self.gating_cached,
            wait: self.wait,
            pipeline: std::sync::Arc::clone(&self.pipeline),
        }
    }
}

/// Publishes a multi-producer claim even if the closure filling it panics, so that consumers are
/// never wedged behind a claimed-but-unpublished slot.
struct PublishOnDrop<'a, E> {
    core: &'a Core<E>,
    first: i64,
    last: i64,
}

impl<E> Drop for PublishOnDrop<'_, E> {
    #[inline(always)]
    fn drop(&mut self) {
        for seq in self.first..=self.last {
            self.core.set_published(seq);
        }
        self.core.notifier(0).signal();
    }
}

impl<E: Send + Sync + 'static> MultiProducer<E> {
    pub(crate) fn new(
        core: Arc<Core<E>>,
        gating: Gating,
        wait: WaitStrategy,
        pipeline: Pipeline<E>,
    ) -> Self {
        Self {
            core,
            gating: std::sync::Arc::new(gating),
            gating_cached: SEQUENCE_INITIAL,
            wait,
            pipeline: std::sync::Arc::new(pipeline),
        }
    }

    /// Claims `n` slots if free; returns the last claimed sequence.
    #[inline(always)]
    fn try_claim(&mut self, n: i64) -> Option<i64> {
        let size = self.core.size() as i64;
        loop {
            let current = self.core.cursor.get();
            let last = current + n;
            let wrap_point = last - size;
            if wrap_point > self.gating_cached {
                self.gating_cached = minimum(&self.gating.sequences, current);
                if wrap_point > self.gating_cached {
                    return None;
                }
            }
            if self.core.cursor.compare_exchange(current, last).is_ok() {
                return Some(last);
            }
        }
    }

    /// Claims `n` slots, waiting for room; returns the last claimed sequence.
    #[inline(always)]
    fn claim(&mut self, n: i64) -> Result<i64, Halted> {
        let current = self.core.cursor.fetch_add(n);
        let last = current + n;
        let wrap_point = last - self.core.size() as i64;
        if wrap_point > self.gating_cached {
            self.gating_cached = minimum(&self.gating.sequences, current);
            if wrap_point > self.gating_cached {
                self.gating_cached =
                    wait_for_room(&self.core, &self.gating, self.wait, wrap_point, current)?;
            }
        }
        Ok(last)
    }

    #[inline(always)]
    fn write_and_publish(&self, seq: i64, f: impl FnOnce(&mut E)) -> i64 {
        let _publish = PublishOnDrop {
            core: &self.core,
            first: seq,
            last: seq,
        };
        // SAFETY: this handle claimed `seq` (CAS or fetch-add), it is not yet published, and the
        // claim waited until every gating consumer released the slot's previous lap.
        unsafe { self.core.slot_mut(seq, f) };
        seq
    }

    fn batch_write_and_publish(
        &self,
        last: i64,
        n: i64,
        f: impl FnOnce(BatchIterMut<'_, E>),
    ) -> i64 {
        let first = last - n + 1;
        let _publish = PublishOnDrop {
            core: &self.core,
            first,
            last,
        };
        f(BatchIterMut {
            core: &self.core,
            next: first,
            last,
        });
        last
    }
}

impl<E: Send + Sync + 'static> Producer<E> for MultiProducer<E> {
    #[inline]
    fn try_publish<F: FnOnce(&mut E)>(&mut self, f: F) -> Result<i64, TryPublishError> {
        match self.try_claim(1) {
            Some(seq) => Ok(self.write_and_publish(seq, f)),
            None => Err(full_or_halted(&self.core)),
        }
    }

    #[inline]
    fn publish<F: FnOnce(&mut E)>(&mut self, f: F) -> Result<i64, Halted> {
        let seq = self.claim(1)?;
        Ok(self.write_and_publish(seq, f))
    }

    #[inline]
    fn try_batch_publish<F: FnOnce(BatchIterMut<'_, E>)>(
        &mut self,
        n: usize,
        f: F,
    ) -> Result<i64, TryPublishError> {
        check_batch(n, self.core.size());
        match self.try_claim(n as i64) {
            Some(last) => Ok(self.batch_write_and_publish(last, n as i64, f)),
            None => Err(full_or_halted(&self.core)),
        }
    }

    #[inline]
    fn batch_publish<F: FnOnce(BatchIterMut<'_, E>)>(
        &mut self,
        n: usize,
        f: F,
    ) -> Result<i64, Halted> {
        check_batch(n, self.core.size());
        let last = self.claim(n as i64)?;
        Ok(self.batch_write_and_publish(last, n as i64, f))
    }

    fn free_slots(&self) -> usize {
        let claimed = self.core.cursor.get();
        let used = claimed - minimum(&self.gating.sequences, claimed);
        self.core.size().saturating_sub(used as usize)
    }

    fn capacity(&self) -> usize {
        self.core.size()
    }

    fn shutdown(self) -> Result<(), Halted> {
        match std::sync::Arc::into_inner(self.pipeline) {
            Some(mut pipeline) => pipeline.shutdown(),
            None => Ok(()),
        }
    }
}
