//! The hot standby in one process (docs/replication.md): a standby follows a primary record for
//! record with digests compared at every checkpoint; replies wait for the standby's
//! acknowledgement; a standby that starts late catches up from the primary's files without a
//! gap; a planned hand-over promotes it with nothing lost; an engine whose peer has taken over
//! refuses to start as primary; a diverged journal is archived, never merged.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sequent_journal::Reader;
use sequent_node::client::Client;
use sequent_node::config::EngineConfig;
use sequent_node::engine::{Engine, replay_journal};
use sequent_node::protocol::EngineMessage;
use sequent_node::standby::Standby;

mod support;
use support::{TempDir, http};

const TIMEOUT: Duration = Duration::from_secs(20);

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn config(journal: &Path, listen: SocketAddr, peer: Option<SocketAddr>, ack: bool) -> EngineConfig {
    let mut config = EngineConfig::loopback(journal, true);
    config.replication.listen = Some(listen);
    config.replication.peer = peer;
    config.replication.standby_ack = ack;
    config.replication.digest_every = 16;
    config
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Sends `ids` as sell orders on session 1 and waits for every acceptance.
fn sell(client: &mut Client, ids: std::ops::RangeInclusive<u32>) {
    let count = ids.clone().count();
    for id in ids {
        client
            .new_limit(id, 1, "ABC", false, 100 + i64::from(id % 13), 1)
            .unwrap();
    }
    let mut accepted = 0;
    while accepted < count {
        if let EngineMessage::Accepted(_) = client.receive().unwrap().message {
            accepted += 1;
        }
    }
}

/// One HTTP request line to the metrics/admin endpoint; the whole answer.
fn records(dir: &Path) -> Vec<(u64, u64, u8, Vec<u8>)> {
    let mut reader = Reader::open(dir).unwrap();
    let mut out = Vec::new();
    while let Some(r) = reader.next().unwrap() {
        out.push((r.sequence, r.timestamp_ns, r.kind, r.payload.to_vec()));
    }
    out
}

#[test]
fn a_standby_follows_then_takes_over_on_a_planned_hand_over() {
    let dir = TempDir::new("standby-handover");
    let (repl_a, repl_b) = (free_addr(), free_addr());
    let primary_config = config(&dir.0.join("a"), repl_a, Some(repl_b), true);
    let standby_config = config(&dir.0.join("b"), repl_b, Some(repl_a), true);
    let primary = Engine::start(&primary_config).unwrap();
    let standby = Standby::start(&standby_config, repl_a).unwrap();

    let mut client = Client::connect(primary.address(), TIMEOUT).unwrap();
    client.login(1, false).unwrap();
    // Every acceptance waits for the standby's acknowledgement of its input.
    sell(&mut client, 1..=300);
    let written = primary.replication().written.load(Ordering::Acquire);
    let acked = primary.replication().standby_acked.load(Ordering::Acquire);
    assert!(
        acked >= 300,
        "replies went out before the standby acknowledged: acked {acked}"
    );
    wait_until("the standby to apply everything", || {
        standby.metrics().standby_applied.load(Ordering::Relaxed) >= written
    });
    // Every checkpoint is compared (a digest may trail its record by a heartbeat).
    wait_until("every checkpoint to be compared", || {
        standby.metrics().digests_checked.load(Ordering::Relaxed) >= written / 16
    });
    assert_eq!(standby.metrics().divergences.load(Ordering::Relaxed), 0);

    // The planned hand-over (a graceful stop): the standby takes over in the next term.
    let primary_term = primary.term();
    let (_, primary_digest) = primary.shutdown_with_digest().unwrap();
    let promoted = standby.wait().unwrap().expect("the standby took over");
    assert_eq!(promoted.term(), primary_term + 1);
    // The primary's records are the standby's, byte for byte, before its restart marker.
    let a = records(&dir.0.join("a"));
    let b = records(&dir.0.join("b"));
    assert_eq!(&b[..a.len()], &a[..], "the standby's journal differs");
    let replayed = replay_journal(&primary_config, &dir.0.join("b"), Some(a.len() as u64)).unwrap();
    assert_eq!(replayed.digest, primary_digest);

    // The client logs in on the new primary: nothing acknowledged is lost, nothing doubles.
    // It asks for its last ten replies again: the standby's core kept the same history.
    drop(client);
    let mut client = Client::connect(promoted.address(), TIMEOUT).unwrap();
    match client.login_from(1, false, 291).unwrap() {
        EngineMessage::LoginAccepted(accepted) => assert_eq!(accepted.next_expected.get(), 301),
        other => panic!("login refused: {other:?}"),
    }
    for id in 291..=300u32 {
        let frame = client.receive().unwrap();
        assert_eq!(frame.sequence, id, "resent in order");
        assert!(
            matches!(frame.message, EngineMessage::Accepted(a) if a.client_order_id.get() == id),
            "{frame:?}"
        );
    }
    // No standby now: the promoted engine releases replies on its own (degraded, an alarm).
    sell(&mut client, 301..=320);
    assert!(promoted.replication().degraded.load(Ordering::Acquire));
    let mut buyer = Client::connect(promoted.address(), TIMEOUT).unwrap();
    buyer.login(2, false).unwrap();
    buyer.new_limit(1, 2, "ABC", true, 1_000, 1_000).unwrap();
    let mut filled = 0u64;
    while filled < 320 {
        if let EngineMessage::Fill(fill) = buyer.receive().unwrap().message {
            filled += fill.qty.get();
        }
    }
    drop(client);
    drop(buyer);
    let (_, digest) = promoted.shutdown_with_digest().unwrap();
    let replayed = replay_journal(&standby_config, &dir.0.join("b"), None).unwrap();
    assert_eq!(
        replayed.digest, digest,
        "the new primary's state is its journal's"
    );
    assert_eq!(replayed.term, primary_term + 1);
}

#[test]
fn a_late_standby_catches_up_from_the_files_then_follows_live() {
    let dir = TempDir::new("standby-late");
    let (repl_a, repl_b) = (free_addr(), free_addr());
    // Without standby acknowledgements the primary serves alone until the standby comes.
    let mut primary_config = config(&dir.0.join("a"), repl_a, None, false);
    primary_config.journal.segment_mib = 1; // several segments to catch up through
    let standby_config = config(&dir.0.join("b"), repl_b, None, false);
    let primary = Engine::start(&primary_config).unwrap();
    let mut client = Client::connect(primary.address(), TIMEOUT).unwrap();
    client.login(1, false).unwrap();
    sell(&mut client, 1..=12_000);
    let standby = Standby::start(&standby_config, repl_a).unwrap();
    // Live traffic while it catches up.
    sell(&mut client, 12_001..=13_000);
    let written = primary.replication().written.load(Ordering::Acquire);
    wait_until("the late standby to catch up", || {
        standby.metrics().standby_applied.load(Ordering::Relaxed) >= written
    });
    assert!(primary.replication().attached.load(Ordering::Acquire));
    // Checkpoints of the catch-up are compared while the primary still holds them (the last 64).
    assert!(standby.metrics().digests_checked.load(Ordering::Relaxed) > 10);
    assert_eq!(standby.metrics().divergences.load(Ordering::Relaxed), 0);
    drop(client);
    drop(standby); // stops following
    let (_, digest) = primary.shutdown_with_digest().unwrap();
    let a = records(&dir.0.join("a"));
    let b = records(&dir.0.join("b"));
    assert!(b.len() as u64 >= written);
    assert_eq!(&a[..b.len()], &b[..], "the standby's copy differs");
    assert!(
        std::fs::read_dir(dir.0.join("a"))
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".journal"))
            .count()
            > 1,
        "the catch-up read only one segment"
    );
    let replayed = replay_journal(&primary_config, &dir.0.join("a"), None).unwrap();
    assert_eq!(replayed.digest, digest);
}

#[test]
fn a_replaced_primary_refuses_to_start_and_comes_back_as_a_standby() {
    let dir = TempDir::new("standby-fence");
    let (repl_a, repl_b) = (free_addr(), free_addr());
    let a_config = config(&dir.0.join("a"), repl_a, Some(repl_b), true);
    let mut b_config = config(&dir.0.join("b"), repl_b, Some(repl_a), true);
    b_config.metrics.listen = Some(free_addr());
    let a = Engine::start(&a_config).unwrap();
    let standby = Standby::start(&b_config, repl_a).unwrap();
    let mut client = Client::connect(a.address(), TIMEOUT).unwrap();
    client.login(1, false).unwrap();
    sell(&mut client, 1..=50);

    // The operator promotes b while a still runs (as if a were cut off): a learns from its peer
    // that a later term exists and stops serving; what it held is never acknowledged.
    let admin = standby.metrics_address().unwrap();
    assert!(http(admin, "GET /admin/status").contains("role standby"));
    assert!(http(admin, "POST /admin/handover").starts_with("HTTP/1.1 409"));
    assert!(http(admin, "POST /admin/promote").starts_with("HTTP/1.1 200"));
    let b = standby.wait().unwrap().expect("promoted");
    let status = http(admin, "GET /admin/status");
    assert!(
        status.contains("role primary") && status.contains("term 2"),
        "{status}"
    );
    client
        .new_limit(51, 1, "ABC", false, 100, 1)
        .expect("a still reads");
    wait_until("a to fence itself", || {
        a.replication().fenced.load(Ordering::Acquire)
    });
    let reply = client.receive();
    assert!(
        !matches!(
            reply.as_ref().map(|f| &f.message),
            Ok(EngineMessage::Accepted(_))
        ),
        "a fenced primary acknowledged an order: {reply:?}"
    );
    let error = a.shutdown().unwrap_err().to_string();
    assert!(error.starts_with("fenced"), "{error}");

    // a cannot start as primary while b is.
    let error = Engine::start(&a_config).unwrap_err().to_string();
    assert!(error.starts_with("fenced"), "{error}");

    // a's journal may hold order 51, which b never had: as a standby it archives its journal
    // and copies b's history instead.
    let a_records = records(&dir.0.join("a"));
    let back = Standby::start(&a_config, b.replication_address().unwrap()).unwrap();
    let written = b.replication().written.load(Ordering::Acquire);
    wait_until("a to follow b", || {
        back.metrics().standby_applied.load(Ordering::Relaxed) >= written
    });
    let b_records = records(&dir.0.join("b"));
    let diverged =
        a_records.len() > b_records.len() || a_records[..] != b_records[..a_records.len()];
    eprintln!(
        "a held {} records, b {}: {}",
        a_records.len(),
        b_records.len(),
        if diverged {
            "diverged"
        } else {
            "a prefix of b"
        }
    );
    let archived = dir.0.join("a.diverged-1").exists();
    assert_eq!(
        archived, diverged,
        "a diverged journal is archived, a matching one is kept"
    );
    // b, serving in sync mode again now that a standby is attached, acknowledges new orders.
    let mut client = Client::connect(b.address(), TIMEOUT).unwrap();
    match client.login(1, false).unwrap() {
        EngineMessage::LoginAccepted(accepted) => assert_eq!(accepted.next_expected.get(), 51),
        other => panic!("login refused: {other:?}"),
    }
    sell(&mut client, 51..=60);
    drop(client);
    drop(back);
    b.shutdown().unwrap();
}
