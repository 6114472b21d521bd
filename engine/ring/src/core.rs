//! The state every producer and consumer of one ring shares: the slots, the cursor, the
//! per-slot publication flags, the lifecycle and the blocking notifier.

use std::fmt;

use crate::sequence::{SEQUENCE_INITIAL, Sequence};
use crate::sync::{AtomicBool, AtomicI64, Cell, Ordering, fence};
use crate::wait::Notifier;

/// The most stages a ring's graph may have. Each stage boundary has its own notifier, so a parked
/// handler is woken only by the stage it waits for, never by every publication.
pub const STAGES_MAX: usize = 16;

/// The largest ring, in slots (a limit on memory at start-up, not on correctness: a slot's flag
/// holds a whole sequence and is compared for equality).
pub const RING_SLOTS_MAX: usize = 1 << 30;

/// One slot: the event, and the sequence last published into it.
///
/// The flag lives on the slot's own cache line, so a first-stage consumer learns that `n` is
/// published from the line it is about to read `n` from, and reads the cursor only for a long
/// backlog; the cursor's line stays with the producer. Measured (docs/BENCHMARKS.md#reading-the-figures, `1p1c`):
/// with the cursor polled for every batch, single publication settled on a near-empty ring at
/// about 30M events/s, half of `disruptor`; with the flag it runs the consumer in long batches at
/// 170-270M.
#[derive(Debug)]
struct Slot<E> {
    /// The sequence last published into this slot; [`SEQUENCE_INITIAL`] before the first. A slot
    /// at index `i` holds sequences `i`, `i + size`, ... so a stale lap never reads as current.
    published: AtomicI64,
    value: Cell<E>,
}

pub(crate) struct Core<E> {
    /// Preallocated slots; `slots.len()` is a power of two. A slot is written only by the producer
    /// that claimed its sequence and read only by consumers the barriers have let past it. Each
    /// slot is padded to its own cache-line pair, so the producer writing sequence `n + 1` never
    /// steals the line a consumer is reading `n` from (measured: batched 1P-1C went from 179M to
    /// 264M events/s on the 2-core CI machine); the cost is memory, 128 bytes per small slot.
    slots: Box<[crossbeam_utils::CachePadded<Slot<E>>]>,
    /// `slots.len() - 1`: sequence → index is `seq & mask`.
    mask: i64,
    /// Single producer: the highest published sequence. Multi producer: the highest *claimed*
    /// sequence; what is published is told by each slot's `published` flag.
    pub(crate) cursor: Sequence,
    /// Several producers claim with atomics and publish out of order.
    multi_producer: bool,
    /// `notifiers[k]` wakes parked consumers of stage `k`; it is signalled by the producer
    /// (`k == 0`) or by the consumers of stage `k - 1`. `notifiers[stages]` wakes a producer
    /// parked on a full ring and is signalled by the last stage.
    notifiers: Box<[Notifier]>,
    pub(crate) lifecycle: Lifecycle,
}

/// How many slots a first-stage consumer checks one by one before it reads the cursor to take
/// the rest of a long backlog at once. Below this the ring is near empty and the cursor's line
/// stays with the producer; above it one cursor read per batch costs nothing. The loom models
/// use 1, so that their few events take the cursor path too.
#[cfg(not(loom))]
const SCAN_BEFORE_CURSOR: i64 = 8;
#[cfg(loom)]
const SCAN_BEFORE_CURSOR: i64 = 1;

impl<E> fmt::Debug for Core<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("slots", &self.slots.len())
            .field("cursor", &self.cursor.get())
            .field("multi_producer", &self.multi_producer)
            .finish_non_exhaustive()
    }
}

// SAFETY: slots are only reached through `slot_ref`/`slot_mut`, whose callers hold the sequence
// discipline that makes every access exclusive-or-shared as Rust requires; `E: Send` lets values
// written by a producer be read (`E: Sync`: concurrently, by parallel handlers) on other threads.
unsafe impl<E: Send + Sync> Sync for Core<E> {}
// SAFETY: as above; the core owns its `E`s, which may move with it between threads.
unsafe impl<E: Send> Send for Core<E> {}

impl<E> Core<E> {
    pub(crate) fn new(size: usize, mut factory: impl FnMut() -> E, multi_producer: bool) -> Self {
        assert!(
            size.is_power_of_two(),
            "ring size {size} is not a power of two"
        );
        assert!(
            size <= RING_SLOTS_MAX,
            "ring size {size} exceeds {RING_SLOTS_MAX}"
        );
        let slots: Box<[crossbeam_utils::CachePadded<Slot<E>>]> = (0..size)
            .map(|_| {
                crossbeam_utils::CachePadded::new(Slot {
                    published: AtomicI64::new(SEQUENCE_INITIAL),
                    value: Cell::new(factory()),
                })
            })
            .collect();
        Self {
            slots,
            mask: size as i64 - 1,
            cursor: Sequence::new(SEQUENCE_INITIAL),
            multi_producer,
            notifiers: (0..=STAGES_MAX).map(|_| Notifier::new()).collect(),
            lifecycle: Lifecycle::new(),
        }
    }

    #[inline(always)]
    pub(crate) fn size(&self) -> usize {
        self.slots.len()
    }

    /// Runs `f` on the event at `seq`.
    ///
    /// # Safety
    /// `seq` is published and the caller's own sequence has not passed it, so the producer cannot
    /// be writing this slot; no handler with `&mut` access to it runs concurrently (the builder
    /// puts a mutating handler alone in its stage).
    #[inline(always)]
    pub(crate) unsafe fn slot_ref<R>(&self, seq: i64, f: impl FnOnce(&E) -> R) -> R {
        let cell = &self.slot(seq).value;
        // SAFETY: shared access is exclusive of writers per this function's contract.
        cell.with(|p| f(unsafe { &*p }))
    }

    /// Runs `f` on the event at `seq` with exclusive access.
    ///
    /// # Safety
    /// Either the caller claimed `seq` and has not published it, and every gating consumer has
    /// released the previous lap of this slot; or the caller is the only handler of its stage and
    /// `seq` is between its barrier and its own sequence.
    #[inline(always)]
    pub(crate) unsafe fn slot_mut<R>(&self, seq: i64, f: impl FnOnce(&mut E) -> R) -> R {
        let cell = &self.slot(seq).value;
        // SAFETY: exclusive access per this function's contract.
        cell.with_mut(|p| f(unsafe { &mut *p }))
    }

    /// A raw pointer to the slot of `seq`, for the batch iterator, which hands out `&mut`s that
    /// outlive a closure. Dereferencing it carries [`Core::slot_mut`]'s obligations.
    #[inline(always)]
    pub(crate) fn slot_ptr(&self, seq: i64) -> *mut E {
        self.slot(seq).value.with_mut(|p| p)
    }

    #[inline(always)]
    fn slot(&self, seq: i64) -> &Slot<E> {
        &self.slots[(seq & self.mask) as usize]
    }

    /// Marks `seq` published (after its slot was written). Release: pairs with the Acquire in
    /// [`Core::is_published`], making the slot write visible to whoever sees the flag.
    #[inline(always)]
    pub(crate) fn set_published(&self, seq: i64) {
        self.slot(seq).published.store(seq, Ordering::Release);
    }

    #[inline(always)]
    fn is_published(&self, seq: i64) -> bool {
        // Acquire: pairs with the Release in `set_published`.
        self.slot(seq).published.load(Ordering::Acquire) == seq
    }

    /// What a first-stage consumer that wants `next` may read: the highest sequence from `next`
    /// on that is published with no gap, or `next - 1` if `next` is not published yet.
    ///
    /// It checks the slots' flags one by one (lines it reads next anyway), and only after
    /// [`SCAN_BEFORE_CURSOR`] published slots in a row does it consult the cursor: a single
    /// producer's cursor covers everything up to it; a multi producer's cursor only bounds the
    /// claims, so the scan goes on to it.
    #[inline(always)]
    pub(crate) fn highest_published(&self, next: i64) -> i64 {
        let mut seq = next;
        let scan_end = next + SCAN_BEFORE_CURSOR;
        while seq < scan_end {
            if !self.is_published(seq) {
                return seq - 1;
            }
            seq += 1;
        }
        // Acquire (in `Sequence::get`): pairs with the producers' Release on the cursor.
        let cursor = self.cursor.get();
        if !self.multi_producer {
            // Everything up to the cursor was published before the cursor was stored.
            return cursor.max(seq - 1);
        }
        while seq <= cursor {
            if !self.is_published(seq) {
                return seq - 1;
            }
            seq += 1;
        }
        seq - 1
    }

    /// The notifier at stage boundary `boundary` (see `notifiers`).
    #[inline(always)]
    pub(crate) fn notifier(&self, boundary: usize) -> &Notifier {
        &self.notifiers[boundary]
    }

    /// Wakes every parked waiter at every boundary (shutdown, halt).
    pub(crate) fn wake_all(&self) {
        for notifier in self.notifiers.iter() {
            notifier.wake_all();
        }
    }
}

/// How a ring stops: `closing` drains to `final_sequence`; `halted` stops at once because a handler
/// panicked.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    closing: AtomicBool,
    final_sequence: AtomicI64,
    halted: AtomicBool,
    /// The first panic, for the owner. Taken only on the panic path and at shutdown.
    pub(crate) panic: std::sync::Mutex<Option<crate::Halted>>,
}

impl Lifecycle {
    fn new() -> Self {
        Self {
            closing: AtomicBool::new(false),
            final_sequence: AtomicI64::new(i64::MAX),
            halted: AtomicBool::new(false),
            panic: std::sync::Mutex::new(None),
        }
    }

    /// Producers are gone: consumers drain to `last` and stop.
    pub(crate) fn close(&self, last: i64) {
        self.final_sequence.store(last, Ordering::Relaxed);
        // Release: orders the `final_sequence` store above; pairs with the Acquire in `should_exit`.
        self.closing.store(true, Ordering::Release);
        fence(Ordering::SeqCst);
    }

    pub(crate) fn halt(&self, report: crate::Halted) {
        let mut slot = self.panic.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(report);
        }
        drop(slot);
        // Release: makes the report visible; pairs with the Acquire in `is_halted`.
        self.halted.store(true, Ordering::Release);
    }

    #[inline(always)]
    pub(crate) fn is_halted(&self) -> bool {
        self.halted.load(Ordering::Acquire)
    }

    pub(crate) fn report(&self) -> Option<crate::Halted> {
        self.panic.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Should a consumer whose next wanted sequence is `next` stop waiting for good?
    #[inline(always)]
    pub(crate) fn should_exit(&self, next: i64) -> bool {
        if self.is_halted() {
            return true;
        }
        // Acquire: pairs with the Release in `close`.
        self.closing.load(Ordering::Acquire) && next > self.final_sequence.load(Ordering::Relaxed)
    }
}
