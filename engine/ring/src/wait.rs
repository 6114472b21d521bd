//! Wait strategies: how a consumer (or a producer facing a full ring) waits for a sequence.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::sync::{Ordering, fence, spin_hint, yield_now};

/// How a handler thread waits for the next event, chosen per handler.
///
/// | strategy | latency | CPU when idle | use when |
/// |---|---|---|---|
/// | `BusySpin` | lowest | a whole core | the thread has a core to itself (pinned, isolated) |
/// | `Yielding` | low | a core, but shares it | threads ≈ cores |
/// | `Blocking` | µs (a futex wake) | none | threads > cores, tests, background stages |
/// | `PhasedBackoff` | low, then µs | spins, then none | bursty traffic on shared cores |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitStrategy {
    /// Spin with the CPU's spin-loop hint (`pause`) until the sequence is available.
    BusySpin,
    /// Spin [`YIELD_AFTER_SPINS`] times, then `sched_yield` between checks.
    Yielding,
    /// Park on a condition variable; producers and upstream handlers wake it on progress.
    /// With a `timeout`, the handler's `on_timeout` runs each time it elapses with no event.
    Blocking {
        /// How long to park before `EventHandler::on_timeout` is called; `None` parks until woken.
        timeout: Option<Duration>,
    },
    /// Spin `spin_tries` times, yield `yield_tries` times, then park as `Blocking` (no timeout).
    PhasedBackoff {
        /// Checks with the spin-loop hint before yielding.
        spin_tries: u32,
        /// Checks with `sched_yield` before parking.
        yield_tries: u32,
    },
}

/// Spins before the `Yielding` strategy starts yielding (LMAX uses 100 as well).
pub const YIELD_AFTER_SPINS: u32 = 100;

impl WaitStrategy {
    /// `Blocking` without a timeout.
    pub const fn blocking() -> Self {
        Self::Blocking { timeout: None }
    }

    /// `PhasedBackoff` with defaults suited to a shared core: 1000 spins, then 100 yields.
    pub const fn phased() -> Self {
        Self::PhasedBackoff {
            spin_tries: 1_000,
            yield_tries: 100,
        }
    }

    /// Does this strategy park, so that progress must be signalled to it?
    pub(crate) fn parks(self) -> bool {
        matches!(self, Self::Blocking { .. } | Self::PhasedBackoff { .. })
    }

    /// Does this strategy hold its core while idle?
    pub fn spins(self) -> bool {
        matches!(self, Self::BusySpin)
    }

    /// Waits until `ready` returns `Some`, or `give_up` is true, or (blocking with a timeout) the
    /// timeout elapses. `ready` is checked before anything else, so a wait that needs not wait
    /// costs one call.
    #[inline]
    pub(crate) fn wait<T>(
        self,
        notifier: &Notifier,
        mut ready: impl FnMut() -> Option<T>,
        mut give_up: impl FnMut() -> bool,
    ) -> Waited<T> {
        if let Some(v) = ready() {
            return Waited::Ready(v);
        }
        match self {
            Self::BusySpin => loop {
                if let Some(v) = ready() {
                    return Waited::Ready(v);
                }
                if give_up() {
                    return Waited::GaveUp;
                }
                spin_hint();
            },
            Self::Yielding => {
                let mut spins = 0u32;
                loop {
                    if let Some(v) = ready() {
                        return Waited::Ready(v);
                    }
                    if give_up() {
                        return Waited::GaveUp;
                    }
                    if spins < YIELD_AFTER_SPINS {
                        spins += 1;
                        spin_hint();
                    } else {
                        yield_now();
                    }
                }
            }
            Self::Blocking { timeout } => notifier.park_until(&mut ready, &mut give_up, timeout),
            Self::PhasedBackoff {
                spin_tries,
                yield_tries,
            } => {
                for _ in 0..spin_tries {
                    if let Some(v) = ready() {
                        return Waited::Ready(v);
                    }
                    if give_up() {
                        return Waited::GaveUp;
                    }
                    spin_hint();
                }
                for _ in 0..yield_tries {
                    if let Some(v) = ready() {
                        return Waited::Ready(v);
                    }
                    if give_up() {
                        return Waited::GaveUp;
                    }
                    yield_now();
                }
                notifier.park_until(&mut ready, &mut give_up, None)
            }
        }
    }
}

/// The outcome of a wait.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Waited<T> {
    Ready(T),
    GaveUp,
    TimedOut,
}

/// Parks waiters of blocking strategies; every sequence advance calls [`Notifier::notify`].
///
/// The protocol is a Dekker handshake: the advancing side stores its sequence, then
/// `fence(SeqCst)`, then reads `waiters`; the parking side increments `waiters`, then
/// `fence(SeqCst)`, then re-checks its condition. The two fences forbid both sides reading the old
/// value, so either the waiter sees the new sequence or the notifier sees the waiter. The mutex
/// closes the window between the waiter's last check and its sleep.
#[derive(Debug)]
pub(crate) struct Notifier {
    waiters: std::sync::atomic::AtomicUsize,
    lock: Mutex<()>,
    condvar: Condvar,
}

impl Notifier {
    pub(crate) fn new() -> Self {
        Self {
            waiters: std::sync::atomic::AtomicUsize::new(0),
            lock: Mutex::new(()),
            condvar: Condvar::new(),
        }
    }

    /// Wakes every parked waiter, if there is one. Call after the sequence store.
    #[inline]
    pub(crate) fn notify(&self) {
        // SeqCst fence: the advancing half of the Dekker handshake; pairs with the fence in
        // `park_until`.
        fence(Ordering::SeqCst);
        // Relaxed: ordered by the fence above.
        if self.waiters.load(Ordering::Relaxed) != 0 {
            self.wake_all();
        }
    }

    /// Wakes every parked waiter unconditionally (shutdown, halt).
    pub(crate) fn wake_all(&self) {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.condvar.notify_all();
    }

    fn park_until<T>(
        &self,
        ready: &mut impl FnMut() -> Option<T>,
        give_up: &mut impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Waited<T> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        // Relaxed increment, then the SeqCst fence: the parking half of the Dekker handshake;
        // pairs with the fence in `notify`.
        self.waiters.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let outcome = loop {
            if let Some(v) = ready() {
                break Waited::Ready(v);
            }
            if give_up() {
                break Waited::GaveUp;
            }
            match deadline {
                None => guard = self.condvar.wait(guard).unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break Waited::TimedOut;
                    }
                    guard = self
                        .condvar
                        .wait_timeout(guard, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        };
        // Relaxed: only a hint for notifiers; a stale non-zero costs one spurious lock.
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        drop(guard);
        outcome
    }
}
