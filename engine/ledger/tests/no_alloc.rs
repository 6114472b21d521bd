//! After construction, the ledger allocates nothing: a counting global allocator sees no
//! allocation while a steady stream of plain, pending, post, void, balancing and reversal
//! transfers, linked chains that succeed and chains that fail (and are undone), duplicates,
//! remembered failures and expiries flows through it, with the outcome `Vec` reused.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use sequent_ledger::{Account, AccountFlags, Config, Ledger, Transfer, TransferFlags};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Only this test's thread counts: libtest's main thread may allocate while it waits for the
    /// test to finish (its channel's first `recv`), which is not the ledger's doing.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
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

fn t(id: u128, debit: u128, credit: u128, amount: u128, flags: TransferFlags) -> Transfer {
    Transfer {
        id,
        debit_account_id: debit,
        credit_account_id: credit,
        amount,
        ledger: 1,
        code: 1,
        flags,
        ..Transfer::default()
    }
}

#[test]
fn applying_transfers_allocates_nothing_after_construction() {
    const ROUNDS: u128 = 20_000;
    let mut ledger = Ledger::new(Config {
        accounts_max: 64,
        transfers_max: 16 * ROUNDS as u32,
    });
    for id in 1..=8u128 {
        let flags = if id == 2 {
            AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS
        } else {
            AccountFlags::HISTORY
        };
        let parent = if id > 4 { 1 } else { 0 };
        let account = Account {
            id,
            ledger: 1,
            code: 10,
            flags,
            parent,
            user_data: 0,
        };
        ledger.create_account(0, &account);
    }
    let mut outcomes = Vec::with_capacity(16);
    let mut batch = Vec::with_capacity(16);
    COUNTING.with(|c| c.set(true));
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let mut now = 0u64;
    for round in 0..ROUNDS {
        let base = 1 + round * 10;
        now += 100;
        batch.clear();
        outcomes.clear();
        batch.push(t(base, 1, 2, 50, TransferFlags::default()));
        let mut pending = t(base + 1, 2, 3, 20, TransferFlags::PENDING);
        pending.timeout_ns = 150;
        batch.push(pending);
        let mut post = t(base + 2, 0, 0, 10, TransferFlags::POST_PENDING);
        post.pending_id = base + 1;
        post.ledger = 0;
        batch.push(post);
        batch.push(t(base + 3, 2, 5, 1000, TransferFlags::BALANCING_DEBIT));
        let mut reversal = t(base + 4, 0, 0, 0, TransferFlags::REVERSAL);
        reversal.pending_id = base + 3;
        reversal.ledger = 0;
        batch.push(reversal);
        // A chain that succeeds, then one that fails on its last member and is undone.
        batch.push(t(base + 5, 6, 7, 5, TransferFlags::LINKED));
        batch.push(t(base + 6, 7, 8, 5, TransferFlags::default()));
        batch.push(t(base + 7, 1, 4, 5, TransferFlags::LINKED));
        batch.push(t(
            base + 8,
            4,
            2,
            5,
            TransferFlags::PENDING.with(TransferFlags::LINKED),
        ));
        batch.push(t(base + 9, 2, 3, u128::MAX / 4, TransferFlags::default()));
        // A duplicate and a retry of a remembered failure.
        batch.push(t(base, 1, 2, 50, TransferFlags::default()));
        batch.push(t(base + 9, 2, 3, u128::MAX / 4, TransferFlags::default()));
        // A pending transfer left to expire two rounds later.
        let mut expiring = t(base + 10 + ROUNDS * 10, 1, 3, 7, TransferFlags::PENDING);
        expiring.timeout_ns = 150;
        batch.push(expiring);
        ledger.create_transfers(now, &batch, &mut outcomes);
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| **o == sequent_ledger::Outcome::Ok)
                .count(),
            8,
            "{outcomes:?}"
        );
    }
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(false));
    assert_eq!(after - before, 0, "the ledger allocated on the event path");
    assert!(ledger.expired_total() > 0);
    assert_eq!(ledger.transfers().len(), 8 * ROUNDS as usize);
}
