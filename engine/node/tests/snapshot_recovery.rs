//! Snapshots in the running engine (docs/engine-snapshot.md): taken on a schedule, by the admin
//! command and at a graceful stop; a restart loads the newest and replays only the journal after
//! it, to the same digest, feed position and books as a replay of the whole journal; a damaged
//! newest snapshot is passed over for an older one; old files are pruned.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sequent_node::client::Client;
use sequent_node::config::EngineConfig;
use sequent_node::engine::{Engine, replay_journal};
use sequent_node::protocol::EngineMessage;

mod support;
use support::{TempDir, http};

const TIMEOUT: Duration = Duration::from_secs(20);

fn snapshot_files(dir: &Path) -> Vec<u64> {
    let mut found: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".snap")?.parse().ok()
        })
        .collect();
    found.sort_unstable();
    found
}

/// Orders from two sessions that rest, trade, get cancelled and replaced; waits for the answers.
fn trade(engine: &Engine, first: u32, count: u32) {
    let mut a = Client::connect(engine.address(), TIMEOUT).unwrap();
    let mut b = Client::connect(engine.address(), TIMEOUT).unwrap();
    a.login(1, false).unwrap();
    b.login(2, false).unwrap();
    for id in first..first + count {
        let symbol = if id % 3 == 0 { "XYZ" } else { "ABC" };
        a.new_limit(
            id,
            1,
            symbol,
            false,
            100 + i64::from(id % 7),
            u64::from(1 + id % 5),
        )
        .unwrap();
        b.new_limit(
            id,
            2,
            symbol,
            true,
            98 + i64::from(id % 5),
            u64::from(1 + id % 3),
        )
        .unwrap();
        if id % 10 == 0 {
            a.cancel(id - 5).unwrap();
            b.replace(id - 3, Some(99), 2).unwrap();
        }
    }
    // Each session's last order is answered after everything it sent before.
    for (client, last) in [(&mut a, first + count - 1), (&mut b, first + count - 1)] {
        loop {
            match client.receive().unwrap().message {
                EngineMessage::Accepted(x) if x.client_order_id.get() == last => break,
                EngineMessage::Rejected(x) if x.client_order_id.get() == last => break,
                _ => {}
            }
        }
    }
}

#[test]
fn restarts_load_the_newest_snapshot_and_replay_only_the_rest() {
    let dir = TempDir::new("snapshots-restart");
    let mut config = EngineConfig::loopback(&dir.0.join("journal"), true);
    config.snapshots.every_records = 1_000;
    config.snapshots.keep = 2;
    config.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
    let snapshots = config.snapshot_dir();

    let engine = Engine::start(&config).unwrap();
    trade(&engine, 1, 300); // ~630 inputs: below the first scheduled snapshot
    std::thread::sleep(Duration::from_millis(50)); // the clients' disconnections are sequenced
    assert_eq!(
        engine.metrics().snapshots_written.load(Ordering::Relaxed),
        0
    );
    // The admin command: a snapshot as of the last sequenced input, written off the core's thread.
    let admin = engine.metrics_address().unwrap();
    let written = engine.metrics().snapshots_written.load(Ordering::Relaxed);
    assert!(http(admin, "POST /admin/snapshot").starts_with("HTTP/1.1 200"));
    let deadline = Instant::now() + TIMEOUT;
    while engine.metrics().snapshots_written.load(Ordering::Relaxed) == written {
        assert!(
            Instant::now() < deadline,
            "the admin snapshot was never written"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let at = engine.metrics().snapshot_sequence.load(Ordering::Relaxed);
    assert_eq!(at, engine.metrics().journal_written.load(Ordering::Relaxed));
    trade(&engine, 1_000, 300); // crosses sequence 1,000: a scheduled snapshot
    assert!(
        engine
            .metrics()
            .snapshot_pause_ns_max
            .load(Ordering::Relaxed)
            > 0,
        "the core's pause was not measured"
    );
    let (_, digest) = engine.shutdown_with_digest().unwrap();
    let files = snapshot_files(&snapshots);
    assert!(files.len() <= 2, "not pruned to keep = 2: {files:?}");
    let full = replay_journal(&config, &config.journal.dir, None).unwrap();
    assert_eq!(full.digest, digest);
    assert_eq!(
        *files.last().unwrap(),
        full.sequence,
        "no snapshot at the stop"
    );

    // The restart loads the stop's snapshot: nothing left to replay, the same state.
    let engine = Engine::start(&config).unwrap();
    let recovered = engine.recovered();
    assert_eq!(recovered.snapshot, full.sequence);
    assert_eq!(recovered.replayed, 0);
    assert_eq!(recovered.digest, digest);
    assert_eq!(recovered.feed_messages, full.feed_messages);
    assert_eq!(recovered.books_digest, full.books.digest());
    trade(&engine, 2_000, 200);
    let (_, digest) = engine.shutdown_with_digest().unwrap();

    // Damage the newest snapshot: recovery passes it over for the older one and replays the
    // journal after it, to the same state.
    let files = snapshot_files(&snapshots);
    let newest = snapshots.join(format!("{:020}.snap", files.last().unwrap()));
    let mut bytes = std::fs::read(&newest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&newest, bytes).unwrap();
    let engine = Engine::start(&config).unwrap();
    let recovered = engine.recovered();
    // (Up to what was recovered: the engine has journaled its restart marker since.)
    let full = replay_journal(&config, &config.journal.dir, Some(recovered.sequence)).unwrap();
    assert!(
        recovered.snapshot > 0 && recovered.snapshot < *files.last().unwrap(),
        "{recovered:?} (files {files:?})"
    );
    assert!(recovered.replayed > 0);
    assert_eq!(recovered.digest, digest);
    assert_eq!(recovered.digest, full.digest);
    assert_eq!(recovered.feed_messages, full.feed_messages);
    assert_eq!(recovered.books_digest, full.books.digest());
    engine.shutdown().unwrap();
}
