//! What a consumer may read: everything the producer published, or everything its upstream
//! handlers have released.

use crate::core::Core;
use crate::sequence::{Sequence, minimum};
use crate::sync::Arc;

/// A consumer's view of how far it may go.
#[derive(Debug)]
pub(crate) struct Barrier<E> {
    core: Arc<Core<E>>,
    /// The handlers of the previous stage; empty for the first stage, which follows the cursor.
    upstream: Box<[Arc<Sequence>]>,
    /// The stage this consumer belongs to: it parks on notifier `stage` and, after releasing
    /// events, signals notifier `stage + 1`.
    stage: usize,
}

impl<E> Barrier<E> {
    pub(crate) fn new(core: Arc<Core<E>>, upstream: Box<[Arc<Sequence>]>, stage: usize) -> Self {
        Self {
            core,
            upstream,
            stage,
        }
    }

    /// Where this consumer parks: woken when its upstream advances.
    pub(crate) fn waits_on(&self) -> &crate::wait::Notifier {
        self.core.notifier(self.stage)
    }

    /// Wakes the consumers downstream of this one (or a producer waiting for room, if this is the
    /// last stage) after this consumer released events.
    #[inline(always)]
    pub(crate) fn signal_downstream(&self) {
        self.core.notifier(self.stage + 1).signal();
    }

    pub(crate) fn core(&self) -> &Arc<Core<E>> {
        &self.core
    }

    /// The highest sequence this consumer may process now, given that it wants `next`. It is at
    /// least `next` if anything is ready; `next - 1` (or lower) otherwise.
    #[inline(always)]
    pub(crate) fn available(&self, next: i64) -> i64 {
        if self.upstream.is_empty() {
            // Acquire loads of the slots' flags (and perhaps the cursor) pair with the producer's
            // Release stores on publication.
            self.core.highest_published(next)
        } else {
            // Upstream handlers only release published sequences, so no availability scan is
            // needed; Acquire loads pair with their Release after they finished with the slots.
            minimum(&self.upstream, i64::MAX)
        }
    }
}
