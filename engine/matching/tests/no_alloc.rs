//! After construction, the venue allocates nothing: a counting global allocator sees no
//! allocation while a steady stream of limit, market, IOC, FOK and DAY orders, cancels, replaces
//! (both kinds), self-trade cancels, mass cancels, end-of-day and throttle rejections and alerts
//! flows through it, with the event `Vec` reused across calls.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use sequent_matching::{Command, Limits, NewOrder, Side, Stp, Tif, Venue, VenueConfig};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

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

/// xorshift64*: a deterministic stream of commands without allocating.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn command(&mut self, next_id: &mut u64) -> Command {
        let roll = self.below(100);
        let live = next_id.saturating_sub(1 + self.below(200)).max(1);
        match roll {
            0..=49 => {
                *next_id += 1;
                let side = if self.below(2) == 0 {
                    Side::Buy
                } else {
                    Side::Sell
                };
                // Bids mostly below 1000 and offers mostly above: a book that keeps some depth.
                let base = if side == Side::Buy { 985 } else { 995 };
                Command::New(NewOrder {
                    id: *next_id,
                    account: self.below(8) as u32,
                    symbol: self.below(2) as u16,
                    side,
                    price: if self.below(20) == 0 {
                        None
                    } else {
                        Some(base + self.below(21) as i64)
                    },
                    qty: 1 + self.below(50),
                    tif: [Tif::Gtc, Tif::Gtc, Tif::Ioc, Tif::Fok, Tif::Day][self.below(5) as usize],
                    post_only: self.below(10) == 0,
                    stp: [
                        Stp::Off,
                        Stp::Off,
                        Stp::CancelNewest,
                        Stp::CancelOldest,
                        Stp::CancelBoth,
                    ][self.below(5) as usize],
                })
            }
            50..=69 => Command::Cancel { id: live },
            70..=94 => Command::Replace {
                id: live,
                qty: 1 + self.below(50),
                price: (self.below(2) == 0).then(|| 990 + self.below(21) as i64),
            },
            95..=96 => Command::MassCancel {
                account: Some(self.below(8) as u32),
                symbol: None,
            },
            97 if self.below(10) == 0 => Command::EndOfDay,
            97 => Command::Cancel { id: live },
            _ => Command::SetLimits {
                account: Some(self.below(8) as u32),
                limits: Limits {
                    credit_limit: Some(200_000 + u128::from(self.below(400_000))),
                    max_open_orders: Some(50),
                    orders_per_sec: Some(1_000_000),
                    alert_pct: Some(50),
                    ..Limits::NONE
                },
            },
        }
    }
}

fn round(
    venue: &mut Venue,
    generator: &mut Gen,
    next_id: &mut u64,
    now: &mut u64,
    events: &mut Vec<sequent_matching::Event>,
) -> usize {
    let mut produced = 0;
    for _ in 0..100_000 {
        let command = generator.command(next_id);
        *now += 500;
        events.clear();
        venue.apply(*now, &command, events);
        produced += events.len();
    }
    produced
}

#[test]
fn steady_state_allocates_nothing() {
    COUNTING.with(|c| c.set(true));
    let mut venue = Venue::new(VenueConfig {
        ids_max: 1 << 18,
        ..VenueConfig::SMALL
    });
    let mut events = Vec::with_capacity(4_096);
    let mut generator = Gen(0x9E37_79B9_7F4A_7C15);
    let (mut next_id, mut now) = (0u64, 0u64);
    round(
        &mut venue,
        &mut generator,
        &mut next_id,
        &mut now,
        &mut events,
    );
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let produced = round(
        &mut venue,
        &mut generator,
        &mut next_id,
        &mut now,
        &mut events,
    );
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    assert_eq!(
        after - before,
        0,
        "{} allocations in 100,000 commands",
        after - before
    );
    assert!(produced > 100_000, "the stream did work: {produced} events");
    assert!(
        venue.resting_orders() > 0,
        "orders rest: {}",
        venue.resting_orders()
    );
    // The check can fail: anything that allocates is seen.
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let boxed = std::hint::black_box(Box::new(1u8));
    drop(boxed);
    assert_eq!(ALLOCATIONS.load(Ordering::SeqCst) - before, 1);
}
