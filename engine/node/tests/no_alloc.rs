//! The core allocates nothing per input once warm: a counting global allocator over 50,000
//! inputs of every kind (orders that rest, trade, are rejected; cancels; replaces; resends;
//! heartbeats), with the output vector reused.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use sequent_matching::VenueConfig;
use sequent_node::core::{Core, CoreConfig, Input};
use sequent_node::protocol::{
    CancelBody, ClientMessage, LoginBody, NewOrderBody, ReplaceBody, symbol_bytes,
};

struct Counting;
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Only the test's own thread counts: libtest's main thread may allocate while it waits for
    /// the test to finish, which is not the code under test.
    static COUNTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn count() {
    if COUNTING.with(std::cell::Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: delegates to the system allocator and only counts.
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

fn input(i: u32, sequence: u32) -> Input {
    let connection = u64::from(i % 2) + 1;
    let message = match i % 5 {
        0 | 1 => ClientMessage::NewOrder(NewOrderBody {
            client_order_id: i.into(),
            account: (i % 3).into(),
            symbol: symbol_bytes("ABC").unwrap(),
            side: if i % 2 == 0 { b'B' } else { b'S' },
            order_type: b'L',
            tif: if i % 7 == 0 { b'I' } else { b'G' },
            flags: 0,
            reserved: 0.into(),
            price: (95 + i64::from(i % 11)).into(),
            qty: u64::from(1 + i % 20).into(),
        }),
        2 => ClientMessage::Cancel(CancelBody {
            client_order_id: (i - 2).into(),
            reserved: 0.into(),
        }),
        3 => ClientMessage::Replace(ReplaceBody {
            client_order_id: (i - 3).into(),
            flags: 1,
            reserved: [0; 3],
            price: (96 + i64::from(i % 9)).into(),
            qty: u64::from(1 + i % 15).into(),
        }),
        _ => ClientMessage::Heartbeat,
    };
    Input::Frame {
        connection,
        sequence,
        message,
    }
}

#[test]
fn applying_inputs_allocates_nothing() {
    COUNTING.with(|c| c.set(true));
    let mut core = Core::new(&CoreConfig {
        sessions_max: 4,
        symbols: vec!["ABC".into()],
        venue: VenueConfig::SMALL,
        resend_history: 16,
    });
    let mut out = Vec::with_capacity(4096);
    for (connection, session) in [(1, 1), (2, 2)] {
        core.apply(
            0,
            &Input::Frame {
                connection,
                sequence: 0,
                message: ClientMessage::Login(LoginBody {
                    session: session.into(),
                    next_expected: 1.into(),
                    flags: 0,
                    reserved: [0; 7],
                }),
            },
            &mut out,
        );
    }
    let mut next = [1u32; 3];
    let mut step = |core: &mut Core, out: &mut Vec<Output>, i: u32| {
        let connection = (i % 2 + 1) as usize;
        let message_input = input(i, next[connection]);
        if !matches!(
            message_input,
            Input::Frame {
                message: ClientMessage::Heartbeat,
                ..
            }
        ) {
            next[connection] += 1;
        }
        out.clear();
        core.apply(u64::from(i), &message_input, out);
        // A resend of the previous sequence now and then: recognised, not applied.
        if i % 13 == 0 && next[connection] > 1 {
            core.apply(u64::from(i), &input(i, next[connection] - 1), out);
        }
    };
    for i in 10..5_000 {
        step(&mut core, &mut out, i);
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for i in 5_000..55_000 {
        step(&mut core, &mut out, i);
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert!(core.counters().applied > 30_000, "{:?}", core.counters());
    assert!(core.counters().duplicates > 1_000, "{:?}", core.counters());
    assert_eq!(allocations, 0, "the core allocated while applying inputs");
    // The counter counts: an allocation here is seen.
    let probe = vec![1u8; 10];
    assert!(ALLOCATIONS.load(Ordering::Relaxed) > before + allocations);
    drop(probe);
}

use sequent_node::core::Output;
