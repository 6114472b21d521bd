//! End to end over loopback TCP: the engine (in-process, through its library) and real sockets.
//! Replies are held until durable (group commit), as in production.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sequent_node::client::Client;
use sequent_node::config::EngineConfig;
use sequent_node::engine::Engine;
use sequent_node::protocol::{EngineMessage, SessionRejectReason};

const TIMEOUT: Duration = Duration::from_secs(10);

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("sequent-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(journal: &Path) -> EngineConfig {
    EngineConfig::parse(&format!(
        r#"
symbols = ["ABC", "XYZ"]
sessions_max = 16
[venue]
orders_max = 65536
levels_max = 4096
levels_per_side_max = 1024
accounts_max = 64
ids_max = 65536
[rings]
input_slots = 1024
output_slots = 4096
[journal]
dir = "{}"
durability = "group"
group_records = 64
interval_us = 500
segment_mib = 1
[gateway]
listen = "127.0.0.1:0"
connections_max = 32
"#,
        journal.display()
    ))
    .unwrap()
}

fn connect(address: SocketAddr, session: u32) -> Client {
    let mut client = Client::connect(address, TIMEOUT).unwrap();
    let reply = client.login(session, false).unwrap();
    assert!(
        matches!(reply, EngineMessage::LoginAccepted(_)),
        "{reply:?}"
    );
    client
}

#[test]
fn orders_are_acknowledged_and_fill_across_sessions() {
    let dir = TempDir::new("fills");
    let engine = Engine::start(&config(&dir.0)).unwrap();
    let mut seller = connect(engine.address(), 1);
    let mut buyer = connect(engine.address(), 2);
    seller.new_limit(1, 1, "ABC", false, 100, 50).unwrap();
    assert!(
        matches!(seller.receive().unwrap().message, EngineMessage::Accepted(a) if a.client_order_id.get() == 1)
    );
    buyer.new_limit(7, 2, "ABC", true, 101, 30).unwrap();
    let replies = buyer.receive_n(2).unwrap();
    assert!(matches!(replies[0].message, EngineMessage::Accepted(_)));
    assert!(
        matches!(replies[1].message, EngineMessage::Fill(f) if f.liquidity == b'R' && f.price.get() == 100 && f.qty.get() == 30)
    );
    assert!(
        matches!(seller.receive().unwrap().message, EngineMessage::Fill(f) if f.liquidity == b'A' && f.qty.get() == 30)
    );
    // A reused order id is rejected, and the metrics count it by reason.
    seller.new_limit(1, 1, "ABC", false, 100, 5).unwrap();
    assert!(
        matches!(seller.receive().unwrap().message, EngineMessage::Rejected(r) if r.reason.get() == 1)
    );
    let text = sequent_node::metrics::render(engine.metrics());
    assert!(
        text.contains("sequent_order_rejects_total{reason=\"duplicate_id\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("sequent_order_rejects_total{reason=\"credit_limit\"} 0\n"),
        "{text}"
    );
    let inputs = engine.shutdown().unwrap();
    assert!(inputs >= 4, "{inputs}");
}

#[test]
fn a_reconnecting_client_resends_and_nothing_is_applied_twice() {
    let dir = TempDir::new("resend");
    let engine = Engine::start(&config(&dir.0)).unwrap();
    let mut client = connect(engine.address(), 3);
    for id in 1..=3 {
        client
            .new_limit(id, 1, "ABC", true, 90 + i64::from(id), 10)
            .unwrap();
    }
    assert_eq!(client.receive_n(3).unwrap().len(), 3);
    drop(client);
    // The client lost its last acknowledgement and resends from sequence 2.
    let mut client = Client::connect(engine.address(), TIMEOUT).unwrap();
    let reply = loop {
        // The disconnect may not be sequenced yet: retry the login until the session is free.
        match client.login(3, false).unwrap() {
            EngineMessage::SessionReject(_) => {
                std::thread::sleep(Duration::from_millis(20));
                client = Client::connect(engine.address(), TIMEOUT).unwrap();
            }
            other => break other,
        }
    };
    assert!(matches!(reply, EngineMessage::LoginAccepted(a) if a.next_expected.get() == 4));
    client.next_sequence = 2;
    for id in 2..=4 {
        client
            .new_limit(id, 1, "ABC", true, 90 + i64::from(id), 10)
            .unwrap();
    }
    let frame = client.receive().unwrap();
    assert!(
        matches!(frame.message, EngineMessage::Accepted(a) if a.client_order_id.get() == 4),
        "{frame:?}"
    );
    client.set_timeout(Duration::from_millis(300)).unwrap();
    assert!(client.receive().is_err(), "a resend was answered");
    assert_eq!(
        engine
            .metrics()
            .duplicates
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    engine.shutdown().unwrap();
}

#[test]
fn malformed_clients_do_not_disturb_the_others() {
    let dir = TempDir::new("malformed");
    let engine = Engine::start(&config(&dir.0)).unwrap();
    let mut good = connect(engine.address(), 1);
    let mut sloppy = connect(engine.address(), 2);
    let mut broken = connect(engine.address(), 3);
    // A frame with a bad side: rejected and skipped, the session goes on.
    let mut order = sequent_node::client::limit_order(1, 1, "ABC", true, 100, 5);
    order.side = b'Q';
    sloppy
        .send(1, &sequent_node::protocol::ClientMessage::NewOrder(order))
        .unwrap();
    let reject = sloppy.receive().unwrap().message;
    assert!(matches!(reject, EngineMessage::SessionReject(r)
        if SessionRejectReason::from_code(r.reason.get()) == Some(SessionRejectReason::BadField)));
    sloppy.new_limit(2, 1, "ABC", true, 100, 5).unwrap();
    assert!(matches!(
        sloppy.receive().unwrap().message,
        EngineMessage::Accepted(_)
    ));
    // An impossible length: the stream cannot be trusted, that session is closed.
    broken.send_raw(&[0xff, 0xff, b'N', 1, 0, 0, 0, 0]).unwrap();
    let reject = broken.receive().unwrap().message;
    assert!(matches!(reject, EngineMessage::SessionReject(r)
        if SessionRejectReason::from_code(r.reason.get()) == Some(SessionRejectReason::BadLength)));
    assert!(
        broken.receive().is_err(),
        "the broken session was not closed"
    );
    // The well-behaved session never noticed.
    good.new_limit(1, 1, "ABC", false, 100, 5).unwrap();
    let replies = good.receive_n(2).unwrap();
    assert!(matches!(replies[0].message, EngineMessage::Accepted(_)));
    assert!(matches!(replies[1].message, EngineMessage::Fill(_)));
    engine.shutdown().unwrap();
}

#[test]
fn a_restart_recovers_the_book_by_replay() {
    let dir = TempDir::new("restart");
    // Without snapshots: the whole journal is replayed.
    let mut restart_config = config(&dir.0);
    restart_config.snapshots.on_stop = false;
    restart_config.snapshots.every_records = 0;
    let engine = Engine::start(&restart_config).unwrap();
    let mut seller = connect(engine.address(), 1);
    seller.new_limit(1, 1, "XYZ", false, 200, 10).unwrap();
    seller.receive().unwrap();
    drop(seller);
    engine.shutdown().unwrap();

    let engine = Engine::start(&restart_config).unwrap();
    assert!(engine.recovered().replayed >= 3, "{:?}", engine.recovered());
    assert_eq!(engine.recovered().snapshot, 0);
    let mut buyer = connect(engine.address(), 2);
    buyer.new_limit(1, 2, "XYZ", true, 250, 4).unwrap();
    let replies = buyer.receive_n(2).unwrap();
    assert!(
        matches!(replies[1].message, EngineMessage::Fill(f) if f.price.get() == 200 && f.qty.get() == 4),
        "{replies:?}"
    );
    // Session 1 was logged out by the restart: it can log in again and resumes at sequence 2.
    let mut seller = Client::connect(engine.address(), TIMEOUT).unwrap();
    assert!(
        matches!(seller.login(1, false).unwrap(), EngineMessage::LoginAccepted(a) if a.next_expected.get() == 2)
    );
    engine.shutdown().unwrap();
}

#[test]
fn a_restart_recovers_to_the_digest_the_engine_stopped_with() {
    let dir = TempDir::new("digest");
    let engine = Engine::start(&config(&dir.0)).unwrap();
    let mut a = connect(engine.address(), 1);
    let mut b = connect(engine.address(), 2);
    for id in 1..=50 {
        a.new_limit(id, 1, "ABC", id % 2 == 0, 95 + i64::from(id % 10), 3)
            .unwrap();
        b.new_limit(id, 2, "ABC", id % 3 == 0, 95 + i64::from(id % 7), 2)
            .unwrap();
    }
    a.new_limit(60, 1, "XYZ", true, 10, 1).unwrap();
    a.receive().unwrap();
    drop((a, b));
    let (_, digest) = engine.shutdown_with_digest().unwrap();
    assert_ne!(digest, 0);
    let engine = Engine::start(&config(&dir.0)).unwrap();
    assert_eq!(
        engine.recovered().digest,
        digest,
        "replay did not rebuild the same state"
    );
    engine.shutdown().unwrap();
}
