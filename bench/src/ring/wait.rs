//! How the harness's own threads wait: busy-spin when every thread has a core, spin a little
//! then yield when threads outnumber cores (a spinning thread would otherwise burn the time
//! slice of the thread it waits for).

use std::hint::spin_loop;

/// Spins before the oversubscribed back-off starts yielding.
pub(crate) const SPIN_TRIES_BEFORE_YIELD: u32 = 64;

/// Wait label for queue peers and the disruptor when each thread has a core.
pub(crate) const WAIT_SPIN: &str = "busy-spin+hint";
/// Wait label when oversubscribed.
pub(crate) const WAIT_SPIN_THEN_YIELD: &str = "spin64+yield";

/// One waiting loop's back-off state; `reset` it after progress.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    /// `None`: never yield (busy-spin with the spin-loop hint).
    yield_after: Option<u32>,
    spins: u32,
}

impl Backoff {
    pub fn new(oversubscribed: bool) -> Self {
        Self {
            yield_after: oversubscribed.then_some(SPIN_TRIES_BEFORE_YIELD),
            spins: 0,
        }
    }

    /// Waits a little: a spin-loop hint, or `yield_now` once the spin budget is spent.
    #[inline]
    pub fn snooze(&mut self) {
        match self.yield_after {
            Some(limit) if self.spins >= limit => std::thread::yield_now(),
            Some(_) => {
                self.spins += 1;
                spin_loop();
            }
            None => spin_loop(),
        }
    }

    /// Progress was made: the next wait starts spinning again.
    #[inline]
    pub fn reset(&mut self) {
        self.spins = 0;
    }

    /// The `wait` label for the JSON output.
    pub fn label(oversubscribed: bool) -> &'static str {
        if oversubscribed {
            WAIT_SPIN_THEN_YIELD
        } else {
            WAIT_SPIN
        }
    }
}

/// Pins the calling thread to `core`, if given. Panics if the kernel refuses: a benchmark
/// that silently runs unpinned would report figures for a placement it did not have.
pub(crate) fn pin_current(core: Option<usize>) {
    if let Some(id) = core {
        assert!(
            core_affinity::set_for_current(core_affinity::CoreId { id }),
            "could not pin thread to core {id}"
        );
    }
}
