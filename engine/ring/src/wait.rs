//! Wait strategies: how a consumer (or a producer facing a full ring) waits for a sequence.

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

/// Parks waiters of blocking strategies; every sequence advance calls [`Notifier::signal`].
///
/// An eventcount without a lock, so that a publisher never waits for a parked thread that was
/// preempted while holding a mutex (on an oversubscribed core that costs milliseconds):
/// - the waiter registers in `waiters`, reads `epoch`, then `fence(SeqCst)`, then re-checks its
///   condition, and sleeps on the futex only while `epoch` still holds the value it read;
/// - the signaller stores its sequence, then `fence(SeqCst)`, then reads `waiters`; if non-zero it
///   bumps `epoch` and wakes every sleeper.
///
/// The two fences forbid both sides missing each other: either the waiter's re-check sees the new
/// sequence, or the signaller sees the waiter and bumps `epoch` after the waiter read it, so the
/// kernel's compare in `futex_wait` refuses to sleep.
#[derive(Debug)]
pub(crate) struct Notifier {
    /// Set once at build time if some waiter may park here; otherwise `signal` costs one load.
    enabled: std::sync::atomic::AtomicBool,
    waiters: std::sync::atomic::AtomicUsize,
    epoch: std::sync::atomic::AtomicU32,
}

impl Notifier {
    pub(crate) fn new() -> Self {
        Self {
            enabled: std::sync::atomic::AtomicBool::new(false),
            waiters: std::sync::atomic::AtomicUsize::new(0),
            epoch: std::sync::atomic::AtomicU32::new(0),
        }
    }

    pub(crate) fn enable(&self) {
        // Relaxed: set at build, before the producer exists or any handler thread is spawned;
        // both happen-after this store in the building thread.
        self.enabled.store(true, Ordering::Relaxed);
    }

    /// After a sequence advanced: wakes parked waiters, if any may park here at all.
    #[inline(always)]
    pub(crate) fn signal(&self) {
        // Relaxed: see `enable`.
        if self.enabled.load(Ordering::Relaxed) {
            // SeqCst fence: the signalling half of the handshake; pairs with the fence in
            // `park_until`.
            fence(Ordering::SeqCst);
            // Relaxed: ordered by the fence above.
            if self.waiters.load(Ordering::Relaxed) != 0 {
                self.wake_all();
            }
        }
    }

    /// Wakes every parked waiter unconditionally (shutdown, halt, or a signal that saw one).
    pub(crate) fn wake_all(&self) {
        // Release: a woken waiter's Acquire load of `epoch` sees everything before this bump.
        self.epoch.fetch_add(1, Ordering::Release);
        futex::wake_all(&self.epoch);
    }

    fn park_until<T>(
        &self,
        ready: &mut impl FnMut() -> Option<T>,
        give_up: &mut impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Waited<T> {
        let deadline = timeout.map(|t| Instant::now() + t);
        // Relaxed: ordered before the re-check by the fence below.
        self.waiters.fetch_add(1, Ordering::Relaxed);
        let outcome = loop {
            // Acquire: pairs with the Release bump in `wake_all`.
            let epoch = self.epoch.load(Ordering::Acquire);
            // SeqCst fence: the parking half of the handshake; pairs with the fence in `signal`.
            fence(Ordering::SeqCst);
            if let Some(v) = ready() {
                break Waited::Ready(v);
            }
            if give_up() {
                break Waited::GaveUp;
            }
            let remaining = match deadline {
                None => None,
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => break Waited::TimedOut,
                },
            };
            futex::wait(&self.epoch, epoch, remaining);
        };
        // Relaxed: only a hint for signallers; a stale non-zero costs one spurious wake.
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        outcome
    }
}

/// Sleeping on a 32-bit word until it changes: Linux futexes, elsewhere a short sleep.
mod futex {
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    /// Sleeps while `word == expected`, at most `timeout`; may return spuriously.
    #[cfg(target_os = "linux")]
    pub(super) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        let ts = timeout.map(|t| libc::timespec {
            tv_sec: t.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
            tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `word` is a live, aligned `AtomicU32` for the duration of the call (borrowed),
        // and `ts_ptr` is null or points to `ts`, which outlives the call. FUTEX_WAIT only reads
        // them; a mismatch, a signal or a timeout simply return, and the caller loops.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                expected,
                ts_ptr,
            );
        }
    }

    /// Wakes every thread sleeping on `word`.
    #[cfg(target_os = "linux")]
    pub(super) fn wake_all(word: &AtomicU32) {
        // SAFETY: `word` is a live, aligned `AtomicU32`; FUTEX_WAKE does not access memory
        // through the pointer beyond using its address as the key.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                i32::MAX,
            );
        }
    }

    /// Without futexes: poll the word with short sleeps.
    #[cfg(not(target_os = "linux"))]
    pub(super) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        use std::sync::atomic::Ordering;
        let nap = Duration::from_micros(50);
        if word.load(Ordering::Acquire) == expected {
            std::thread::sleep(timeout.map_or(nap, |t| t.min(nap)));
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn wake_all(_word: &AtomicU32) {}
}
