//! The running engine allocates nothing in the steady state: every thread of the engine (the
//! gateway, the journal and core stages, the journal's housekeeper, the ledger posting stage and
//! its journal's housekeeper) is counted by a counting
//! global allocator while a client sends 20,000 orders, cancels and replaces over loopback TCP
//! after a warm-up of the same mix, dropping its connection after every 500 and logging in again
//! with a resend of its last 100 replies. Only this binary's main thread, the client, is not
//! counted (the test runs without libtest's harness, so no other thread exists).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sequent_node::client::Client;
use sequent_node::config::EngineConfig;
use sequent_node::engine::Engine;
use sequent_node::protocol::{ClientMessage, EngineMessage};

struct Counting;
static ARMED: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the client's thread: its allocations are not the engine's.
    static CLIENT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn count() {
    if ARMED.load(Ordering::Relaxed) && !CLIENT.with(std::cell::Cell::get) {
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

/// A batch of the mix: orders that rest and trade, cancels, replaces; waits for every answer.
fn batch(client: &mut Client, first: u32, count: u32) {
    let mut expected = 0;
    for id in first..first + count {
        let buy = id % 2 == 0;
        client
            .new_limit(
                id,
                id % 4,
                "ABC",
                buy,
                95 + i64::from(id % 11),
                u64::from(1 + id % 9),
            )
            .unwrap();
        expected += 1;
        if id % 5 == 0 {
            client.cancel(id - 3).unwrap();
            expected += 1;
        }
        if id % 7 == 0 {
            client
                .replace(id - 2, Some(96 + i64::from(id % 7)), 3)
                .unwrap();
            expected += 1;
        }
    }
    // Every order, cancel and replace gets exactly one answer of its own (fills come on top).
    let mut answered = 0;
    while answered < expected {
        match client.receive().unwrap().message {
            EngineMessage::Fill(_) => {}
            _ => answered += 1,
        }
    }
}

/// Reads up to the engine's answer to a heartbeat, so that every reply sent before it has been
/// seen; drops the connection, logs in again asking for the last `resent` replies and checks
/// they come, in order, up to the last seen. Returns the new connection.
fn drop_and_resend(mut client: Client, engine: &Engine, resent: u32) -> Client {
    client.send(0, &ClientMessage::Heartbeat).unwrap();
    while client.receive().unwrap().message != EngineMessage::Heartbeat {}
    let next_out = client.next_expected_out;
    drop(client);
    while engine.metrics().connections.load(Ordering::Relaxed) != 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut client = Client::connect(engine.address(), Duration::from_secs(20)).unwrap();
    let from = next_out - resent;
    assert!(matches!(
        client.login_from(1, false, from).unwrap(),
        EngineMessage::LoginAccepted(_)
    ));
    for sequence in from..next_out {
        assert_eq!(client.receive().unwrap().sequence, sequence);
    }
    client
}

fn main() {
    CLIENT.with(|c| c.set(true));
    let dir = std::env::temp_dir().join(format!("sequent-engine-no-alloc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = EngineConfig::loopback(&dir, true);
    // The posting hook on: the mix trades, so the ledger stage posts throughout.
    config.ledger = Some(sequent_node::config::LedgerSection {
        transfers_max: 1 << 18,
        segment_mib: 4,
        ..sequent_node::config::LedgerSection::default()
    });
    let engine = Engine::start(&config).unwrap();
    let mut client = Client::connect(engine.address(), Duration::from_secs(20)).unwrap();
    client.login(1, false).unwrap();
    for first in (1..10_000).step_by(500) {
        batch(&mut client, first, 500);
        client = drop_and_resend(client, &engine, 100);
    }
    std::thread::sleep(Duration::from_millis(50));
    ARMED.store(true, Ordering::SeqCst);
    for first in (10_000..30_000).step_by(500) {
        batch(&mut client, first, 500);
        client = drop_and_resend(client, &engine, 100);
    }
    ARMED.store(false, Ordering::SeqCst);
    let allocations = ALLOCATIONS.load(Ordering::SeqCst);
    drop(client);
    let applied = engine.metrics().applied.load(Ordering::Relaxed);
    let posting = engine.metrics().posting.get().expect("the hook is on");
    let posted = posting.posted.load(Ordering::Relaxed);
    engine.shutdown().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "engine_no_alloc: {applied} messages applied, {posted} trades posted, {allocations} allocations by engine threads in the steady state"
    );
    assert!(applied > 35_000, "the load did not run: {applied} applied");
    assert!(posted > 1_000, "the ledger posted too little: {posted}");
    assert_eq!(
        allocations, 0,
        "the engine's threads allocated in the steady state"
    );
}
