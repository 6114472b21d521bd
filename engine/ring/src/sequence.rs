//! A padded sequence counter: the cursor, and each consumer's progress.

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicI64, Ordering};

/// The value of a sequence before anything was published or consumed: the first event is 0.
pub const SEQUENCE_INITIAL: i64 = -1;

/// A monotonically increasing event sequence, alone on its cache line(s) so that the producer's
/// cursor and each consumer's progress never share a line (false sharing would make every
/// publication invalidate every reader's line).
#[derive(Debug)]
pub(crate) struct Sequence(CachePadded<AtomicI64>);

impl Sequence {
    pub(crate) fn new(value: i64) -> Self {
        Self(CachePadded::new(AtomicI64::new(value)))
    }

    /// Acquire: pairs with the Release in [`Sequence::set`], so everything the writer did to the
    /// slots up to this sequence is visible to the reader.
    #[inline(always)]
    pub(crate) fn get(&self) -> i64 {
        self.0.load(Ordering::Acquire)
    }

    /// Release: publishes the slot writes (producer) or the end of slot reads (consumer) made before
    /// this store; pairs with the Acquire in [`Sequence::get`].
    #[inline(always)]
    pub(crate) fn set(&self, value: i64) {
        self.0.store(value, Ordering::Release);
    }

    /// AcqRel compare-and-swap used by the multi-producer claim: Acquire to see the latest claim,
    /// Release so a successful claim is ordered before the slot writes that follow it.
    #[inline(always)]
    pub(crate) fn compare_exchange(&self, current: i64, new: i64) -> Result<i64, i64> {
        self.0
            .compare_exchange_weak(current, new, Ordering::AcqRel, Ordering::Acquire)
    }

    /// AcqRel fetch-add used by the blocking multi-producer claim.
    #[inline(always)]
    pub(crate) fn fetch_add(&self, delta: i64) -> i64 {
        self.0.fetch_add(delta, Ordering::AcqRel)
    }
}

/// The lowest of `sequences`, or `floor` if it is lower (a sequence never outruns the cursor).
#[inline(always)]
pub(crate) fn minimum(sequences: &[crate::sync::Arc<Sequence>], floor: i64) -> i64 {
    let mut min = floor;
    for s in sequences {
        min = min.min(s.get());
    }
    min
}
