//! The state every producer and consumer of one ring shares: the slots, the cursor, the
//! multi-producer availability flags, the lifecycle and the blocking notifier.

use std::fmt;

use crate::sequence::{SEQUENCE_INITIAL, Sequence};
use crate::sync::{AtomicBool, AtomicI32, AtomicI64, Cell, Ordering, fence};
use crate::wait::Notifier;

/// The most stages a ring's graph may have. Each stage boundary has its own notifier, so a parked
/// handler is woken only by the stage it waits for, never by every publication.
pub const STAGES_MAX: usize = 16;

/// The largest ring, in slots (a limit on memory at start-up, not on correctness: availability
/// rounds are compared for equality and a slot's flag is never more than one lap stale).
pub const RING_SLOTS_MAX: usize = 1 << 30;

pub(crate) struct Core<E> {
    /// Preallocated slots; `slots.len()` is a power of two. A slot is written only by the producer
    /// that claimed its sequence and read only by consumers the barriers have let past it. Each
    /// slot is padded to its own cache-line pair, so the producer writing sequence `n + 1` never
    /// steals the line a consumer is reading `n` from (measured: batched 1P-1C went from 179M to
    /// 264M events/s on the 2-core CI machine); the cost is memory, 128 bytes per small slot.
    slots: Box<[crossbeam_utils::CachePadded<Cell<E>>]>,
    /// `slots.len() - 1`: sequence → index is `seq & mask`.
    mask: i64,
    /// log2(slots.len()): sequence → availability round is `seq >> shift`.
    shift: u32,
    /// Single producer: the highest published sequence. Multi producer: the highest *claimed*
    /// sequence; what is published is told by `available`.
    pub(crate) cursor: Sequence,
    /// Multi producer only: for each slot, the round (`seq >> shift`) of the last sequence
    /// published into it. Empty for a single producer.
    available: Box<[AtomicI32]>,
    /// `notifiers[k]` wakes parked consumers of stage `k`; it is signalled by the producer
    /// (`k == 0`) or by the consumers of stage `k - 1`. `notifiers[stages]` wakes a producer
    /// parked on a full ring and is signalled by the last stage.
    notifiers: Box<[Notifier]>,
    pub(crate) lifecycle: Lifecycle,
}

impl<E> fmt::Debug for Core<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("slots", &self.slots.len())
            .field("cursor", &self.cursor.get())
            .field("multi_producer", &!self.available.is_empty())
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
        let slots: Box<[crossbeam_utils::CachePadded<Cell<E>>]> = (0..size)
            .map(|_| crossbeam_utils::CachePadded::new(Cell::new(factory())))
            .collect();
        let available: Box<[AtomicI32]> = if multi_producer {
            (0..size).map(|_| AtomicI32::new(-1)).collect()
        } else {
            Box::new([])
        };
        Self {
            slots,
            mask: size as i64 - 1,
            shift: size.trailing_zeros(),
            cursor: Sequence::new(SEQUENCE_INITIAL),
            available,
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
        let cell = &self.slots[(seq & self.mask) as usize];
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
        let cell = &self.slots[(seq & self.mask) as usize];
        // SAFETY: exclusive access per this function's contract.
        cell.with_mut(|p| f(unsafe { &mut *p }))
    }

    /// A raw pointer to the slot of `seq`, for the batch iterator, which hands out `&mut`s that
    /// outlive a closure. Dereferencing it carries [`Core::slot_mut`]'s obligations.
    #[inline(always)]
    pub(crate) fn slot_ptr(&self, seq: i64) -> *mut E {
        self.slots[(seq & self.mask) as usize].with_mut(|p| p)
    }

    /// Multi producer: marks `seq` published. Release: pairs with the Acquire in
    /// [`Core::is_available`], making the slot write visible to whoever sees the flag.
    #[inline(always)]
    pub(crate) fn set_available(&self, seq: i64) {
        let index = (seq & self.mask) as usize;
        self.available[index].store((seq >> self.shift) as i32, Ordering::Release);
    }

    #[inline(always)]
    fn is_available(&self, seq: i64) -> bool {
        let index = (seq & self.mask) as usize;
        // Acquire: pairs with the Release in `set_available`.
        self.available[index].load(Ordering::Acquire) == (seq >> self.shift) as i32
    }

    /// The highest sequence at or after `lowest` up to `claimed` that is published with no gap,
    /// or `lowest - 1` if `lowest` itself is not yet published.
    #[inline(always)]
    pub(crate) fn highest_published(&self, lowest: i64, claimed: i64) -> i64 {
        if self.available.is_empty() {
            return claimed;
        }
        let mut seq = lowest;
        while seq <= claimed {
            if !self.is_available(seq) {
                return seq - 1;
            }
            seq += 1;
        }
        claimed
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
