//! The subscriber's receive loop allocates nothing once warm: a counting global allocator over
//! 20,000 messages on each receive path (recv, recvmmsg, io_uring), counting only in the
//! subscriber's thread and only after a warm-up. The messages are trades on one symbol, which
//! touch per-symbol statistics and not the book: book growth (new orders, new price levels)
//! allocates by design and is not the receive loop. In order and lossless (unicast on
//! 127.0.0.1, one line, a paced publisher): gap recovery allocates (requests, the reorder buffer,
//! snapshots) and is not the steady state.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sequent_feed::net::{
    LineAddr, NetPublisher, NetSubscriber, PublisherNetConfig, RecvKind, SendKind,
    SubscriberNetConfig,
};
use sequent_feed::proto::{Side, build};
use sequent_feed::publisher::{Publisher, PublisherConfig};
use sequent_feed::subscriber::{Subscriber, SubscriberConfig};

struct Counting;
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Only the subscriber's thread counts, and only while set: the publisher thread and
    /// libtest allocate freely.
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

const WARM_MESSAGES: u64 = 5_000;
const MEASURED_MESSAGES: u64 = 20_000;

/// Runs one session on `recv`; returns (allocations while counting, messages counted over,
/// the path's log line).
fn steady_state_allocations(recv: RecvKind) -> (u64, u64, String) {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let local = Ipv4Addr::LOCALHOST;
    let line_a = LineAddr {
        addr: SocketAddrV4::new(local, port),
        iface: local,
    };
    let (mut publisher, _) = NetPublisher::open(
        Publisher::new(PublisherConfig::default()),
        &PublisherNetConfig {
            line_a,
            line_b: None,
            ttl: 0,
            send: SendKind::SendMmsg,
            retransmit_addr: SocketAddrV4::new(local, 0),
            snapshot_addr: SocketAddrV4::new(local, 0),
            loss_a: Default::default(),
            loss_b: Default::default(),
        },
    )
    .unwrap();
    let (mut subscriber, line) = NetSubscriber::open(
        Subscriber::new(SubscriberConfig::default()),
        &SubscriberNetConfig {
            line_a,
            line_b: None,
            recv,
            retransmit_addr: publisher.retransmit_addr().unwrap(),
            snapshot_addr: publisher.snapshot_addr().unwrap(),
        },
    )
    .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(30);
    let publisher_thread = {
        let done = done.clone();
        std::thread::spawn(move || {
            publisher.core.handle_message(&build::symbol(0, 1, "SEQ"));
            let total = WARM_MESSAGES + MEASURED_MESSAGES;
            for i in 0..total {
                let side = if i % 2 == 0 { Side::Buy } else { Side::Sell };
                let trade = build::trade(i, i, 1, side, 100, 10_000 + (i % 50) as i64, i);
                publisher.core.handle_message(&trade);
                if i % 16 == 15 {
                    publisher.core.flush();
                    publisher.pump().unwrap();
                }
                if i % 512 == 511 {
                    std::thread::sleep(Duration::from_micros(500));
                }
            }
            publisher.core.flush();
            publisher.pump().unwrap();
            // The end of session goes out only after the measured messages had time to arrive.
            std::thread::sleep(Duration::from_millis(100));
            while !done.load(Ordering::Acquire) && Instant::now() < deadline {
                publisher.core.end_session();
                publisher.pump().unwrap();
                publisher.serve().unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let mut counted_from = None;
    let mut counted_to = 0;
    while !subscriber.core.is_complete() && Instant::now() < deadline {
        let messages = subscriber.core.stats.messages;
        let measuring = (WARM_MESSAGES..WARM_MESSAGES + MEASURED_MESSAGES).contains(&messages);
        if measuring && counted_from.is_none() {
            counted_from = Some(messages);
        }
        COUNTING.with(|c| c.set(measuring));
        subscriber.poll_once(Duration::from_millis(1)).unwrap();
        COUNTING.with(|c| c.set(false));
        if measuring {
            counted_to = subscriber.core.stats.messages;
        }
    }
    done.store(true, Ordering::Release);
    publisher_thread.join().unwrap();
    assert!(subscriber.core.is_complete(), "the session did not end");
    assert_eq!(
        subscriber.core.stats.gaps_seen, 0,
        "lossless by construction"
    );
    (
        ALLOCATIONS.swap(0, Ordering::Relaxed),
        counted_to - counted_from.unwrap_or(counted_to),
        line,
    )
}

#[test]
fn receive_loop_allocates_nothing_in_the_steady_state() {
    for recv in [RecvKind::Recv, RecvKind::RecvMmsg, RecvKind::IoUring] {
        let (allocations, messages, line) = steady_state_allocations(recv);
        println!("{line}: {allocations} allocations over {messages} messages");
        assert!(
            messages >= MEASURED_MESSAGES / 2,
            "counted over too few messages"
        );
        assert_eq!(allocations, 0, "{line}");
    }
}
