//! The engine publishes market data: a subscriber on loopback (multicast when this host loops it
//! back, else unicast), joining after the engine has already sent its symbol directory, recovers
//! the start by retransmission and ends with books equal, by digest, to the books the journal's
//! inputs produce when replayed through a fresh core.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sequent_feed::book::Books;
use sequent_feed::net::{
    LineAddr, NetSubscriber, RecvKind, SubscriberNetConfig, multicast_loopback_works,
};
use sequent_feed::subscriber::{Subscriber, SubscriberConfig};
use sequent_journal::Reader;
use sequent_matching::VenueConfig;
use sequent_node::client::Client;
use sequent_node::config::EngineConfig;
use sequent_node::core::{Core, CoreConfig, Output};
use sequent_node::engine::Engine;
use sequent_node::protocol::EngineMessage;
use sequent_node::record;

const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_subscriber_rebuilds_the_engines_books() {
    let dir = std::env::temp_dir().join(format!("sequent-feed-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (pa, pb) = (free_port(), free_port());
    let group_a = Ipv4Addr::new(239, 255, 74, 1);
    let (line_a, line_b) = if multicast_loopback_works(group_a, pa, LOCAL) {
        println!("transport: multicast on lo");
        (
            SocketAddrV4::new(group_a, pa),
            SocketAddrV4::new(Ipv4Addr::new(239, 255, 75, 1), pb),
        )
    } else {
        println!("transport: unicast UDP on 127.0.0.1 (multicast does not loop back here)");
        (SocketAddrV4::new(LOCAL, pa), SocketAddrV4::new(LOCAL, pb))
    };
    let config = EngineConfig::parse(&format!(
        r#"
symbols = ["ABC", "XYZ"]
sessions_max = 8
[venue]
orders_max = 65536
levels_max = 4096
levels_per_side_max = 1024
accounts_max = 8
ids_max = 65536
[journal]
dir = "{}"
durability = "group"
group_records = 32
interval_us = 300
segment_mib = 1
[gateway]
listen = "127.0.0.1:0"
[feed]
line_a = "{line_a}"
line_b = "{line_b}"
retransmit = "127.0.0.1:0"
snapshot = "127.0.0.1:0"
"#,
        dir.display()
    ))
    .unwrap();
    let engine = Engine::start(&config).unwrap();
    let (retransmit, snapshot) = engine.feed_addresses().unwrap();

    // The subscriber joins late: the symbol directory went out before it listened.
    let mut subscriber = NetSubscriber::open(
        Subscriber::new(SubscriberConfig::default()),
        &SubscriberNetConfig {
            line_a: LineAddr {
                addr: line_a,
                iface: LOCAL,
            },
            line_b: Some(LineAddr {
                addr: line_b,
                iface: LOCAL,
            }),
            recv: RecvKind::Recv,
            retransmit_addr: retransmit,
            snapshot_addr: snapshot,
        },
    )
    .unwrap()
    .0;
    let done = Arc::new(AtomicBool::new(false));
    let stop = Arc::clone(&done);
    let receiver = std::thread::spawn(move || {
        while !stop.load(Ordering::Acquire) {
            let _ = subscriber.poll_once(Duration::from_millis(5));
        }
        // Drain what is still on its way: until 300 ms pass without a packet (at most 5 s).
        let end = Instant::now() + Duration::from_secs(5);
        let mut quiet_since = Instant::now();
        while Instant::now() < end && quiet_since.elapsed() < Duration::from_millis(300) {
            if subscriber.poll_once(Duration::from_millis(20)).unwrap_or(0) > 0 {
                quiet_since = Instant::now();
            }
        }
        subscriber
    });

    let mut a = Client::connect(engine.address(), Duration::from_secs(10)).unwrap();
    let mut b = Client::connect(engine.address(), Duration::from_secs(10)).unwrap();
    a.login(1, false).unwrap();
    b.login(2, true).unwrap();
    for id in 1..=200u32 {
        let symbol = if id % 3 == 0 { "XYZ" } else { "ABC" };
        a.new_limit(
            id,
            1,
            symbol,
            id % 2 == 0,
            95 + i64::from(id % 9),
            u64::from(1 + id % 7),
        )
        .unwrap();
        b.new_limit(
            id,
            2,
            symbol,
            id % 2 == 1,
            96 + i64::from(id % 7),
            u64::from(1 + id % 5),
        )
        .unwrap();
        if id % 10 == 0 {
            a.cancel(id - 4).unwrap();
            b.replace(id - 3, Some(97), 2).unwrap();
        }
    }
    // Wait until everything is answered (acknowledged when durable).
    let mut accepted = 0;
    while accepted < 200 {
        if let EngineMessage::Accepted(_) = a.receive().unwrap().message {
            accepted += 1;
        }
    }
    drop(b); // cancel on disconnect: its resting orders leave the book and the feed says so
    std::thread::sleep(Duration::from_millis(200));
    drop(a);
    engine.shutdown().unwrap();
    done.store(true, Ordering::Release);
    let subscriber = receiver.join().unwrap();

    // The books the journal's inputs produce, through a fresh core.
    let mut core = Core::new(&CoreConfig {
        sessions_max: 8,
        symbols: vec!["ABC".into(), "XYZ".into()],
        venue: VenueConfig {
            orders_max: 65536,
            levels_max: 4096,
            levels_per_side_max: 1024,
            symbols_max: 2,
            accounts_max: 8,
            ids_max: 65536,
        },
        resend_history: 16,
    });
    let mut expected = Books::new();
    let mut messages = 0u64;
    let mut out = Vec::new();
    let mut reader = Reader::open(&dir).unwrap();
    while let Some(entry) = reader.next().unwrap() {
        out.clear();
        core.apply(
            entry.timestamp_ns,
            &record::decode(entry.kind, entry.payload).unwrap(),
            &mut out,
        );
        for output in &out {
            if let Output::Market(message) = output {
                expected.apply(message);
                messages += 1;
            }
        }
    }
    assert!(
        expected.orders_len() > 10,
        "the session left too few orders to compare"
    );
    assert_eq!(
        subscriber.core.next_seq(),
        Some(messages + 1),
        "the subscriber did not receive every message"
    );
    assert_eq!(
        sequent_feed::book::hex(&subscriber.core.books().digest()),
        sequent_feed::book::hex(&expected.digest()),
        "the subscriber's books differ from the engine's"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
