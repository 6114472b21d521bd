//! After start-up, publishing and handling allocate nothing: a counting global allocator sees no
//! allocation while a steady stream of single and batched publications flows through a diamond
//! graph (with a mutating stage and a parking wait strategy, the paths most likely to allocate).
//! Only the test's thread and the ring's handler threads count (see `COUNTING`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use sequent_ring::{Producer, WaitStrategy, build_multi_producer, build_single_producer};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Threads that count: the test's own and the ring's handler threads (each handler opts in
    /// on its first event). libtest's main thread, which may allocate while it waits for the test,
    /// never does.
    static COUNTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn count() {
    if COUNTING.with(std::cell::Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

fn opt_in() {
    COUNTING.with(|c| c.set(true));
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(Default)]
struct Order {
    id: u64,
    price: i64,
    checked: bool,
}

fn wait_for(counter: &AtomicU64, n: u64) {
    while counter.load(Ordering::Acquire) < n {
        std::thread::yield_now();
    }
}

/// One test, so that no other test's set-up runs inside a measurement window.
#[test]
fn steady_state_allocates_nothing() {
    opt_in();
    single_producer_diamond();
    multi_producer();
}

fn single_producer_diamond() {
    let done = Arc::new(AtomicU64::new(0));
    let d = Arc::clone(&done);
    let mut producer = build_single_producer(256, Order::default, WaitStrategy::blocking())
        .handle_events_mut(|o: &mut Order, _, _| {
            opt_in();
            o.checked = o.price > 0;
        })
        .and_then()
        .handle_events_with(|o: &Order, _, _| {
            opt_in();
            assert!(o.checked);
        })
        .wait_strategy(WaitStrategy::Yielding)
        .handle_events_with(|o: &Order, seq, _| {
            opt_in();
            assert_eq!(o.id, seq as u64);
        })
        .and_then()
        .handle_events_with(move |_: &Order, _, _| {
            opt_in();
            d.fetch_add(1, Ordering::Release);
        })
        .build()
        .unwrap();

    let mut next = 0u64;
    let mut publish_round = |producer: &mut sequent_ring::SingleProducer<Order>| {
        for _ in 0..10_000 {
            producer
                .publish(|o: &mut Order| {
                    o.id = next;
                    o.price = 100;
                })
                .unwrap();
            next += 1;
        }
        for _ in 0..1_000 {
            let first = next;
            producer
                .batch_publish(16, |slots| {
                    for (i, o) in slots.enumerate() {
                        o.id = first + i as u64;
                        o.price = 100;
                    }
                })
                .unwrap();
            next += 16;
        }
        while producer
            .try_publish(|o: &mut Order| {
                o.id = next;
                o.price = 100;
            })
            .is_ok()
        {
            next += 1;
        }
        next
    };

    // Warm up: threads started, thread-locals and lazy statics touched.
    let n = publish_round(&mut producer);
    wait_for(&done, n);
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let n = publish_round(&mut producer);
    wait_for(&done, n);
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    assert_eq!(
        after - before,
        0,
        "{} allocations in the steady state",
        after - before
    );
    assert!(n > 40_000);
    producer.shutdown().unwrap();
}

fn multi_producer() {
    let done = Arc::new(AtomicU64::new(0));
    let d = Arc::clone(&done);
    let producer = build_multi_producer(128, || 0u64, WaitStrategy::phased())
        .handle_events_with(move |_: &u64, _, _| {
            opt_in();
            d.fetch_add(1, Ordering::Release);
        })
        .build()
        .unwrap();
    let mut other = producer.clone();
    let mut mine = producer;
    let round = |p: &mut sequent_ring::MultiProducer<u64>| {
        for i in 0..5_000 {
            p.publish(|v| *v = i).unwrap();
        }
        for _ in 0..500 {
            p.batch_publish(8, |slots| slots.for_each(|v| *v = 1))
                .unwrap();
        }
    };
    round(&mut mine);
    round(&mut other);
    wait_for(&done, 2 * 9_000);
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    round(&mut mine);
    round(&mut other);
    wait_for(&done, 4 * 9_000);
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    assert_eq!(
        after - before,
        0,
        "{} allocations in the steady state",
        after - before
    );
    other.shutdown().unwrap();
    mine.shutdown().unwrap();
    // The counter counts: an allocation on this thread is seen.
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let probe = vec![1u8; 16];
    assert!(ALLOCATIONS.load(Ordering::SeqCst) > before);
    drop(probe);
}
