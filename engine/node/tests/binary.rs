//! The `sequent-engine` binary as an operator runs it: a config file, kill -9 in the middle of a
//! load, a restart that recovers by replay, SIGTERM for a clean stop, the metrics endpoint, and a
//! bad config refused by key.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sequent_node::client::Client;
use sequent_node::protocol::EngineMessage;

mod support;
use support::{TempDir, start_binary};

const TIMEOUT: Duration = Duration::from_secs(20);

fn write_config(dir: &Path) -> PathBuf {
    let path = dir.join("engine.toml");
    std::fs::write(
        &path,
        format!(
            r#"
symbols = ["ABC"]
sessions_max = 8
[venue]
orders_max = 65536
levels_max = 4096
levels_per_side_max = 2048
accounts_max = 8
ids_max = 65536
[rings]
input_slots = 1024
output_slots = 8192
[journal]
dir = "{}"
durability = "group"
group_records = 32
interval_us = 300
segment_mib = 1
[gateway]
listen = "127.0.0.1:0"
connections_max = 8
[metrics]
listen = "127.0.0.1:0"
[snapshots]
every_records = 100
"#,
            dir.join("journal").display()
        ),
    )
    .unwrap();
    path
}

fn login(address: SocketAddr, session: u32) -> (Client, u32) {
    let mut client = Client::connect(address, TIMEOUT).unwrap();
    match client.login(session, false).unwrap() {
        EngineMessage::LoginAccepted(accepted) => {
            let next = accepted.next_expected.get();
            (client, next)
        }
        other => panic!("login refused: {other:?}"),
    }
}

#[test]
fn kill_9_mid_load_then_restart_keeps_every_acknowledged_order_exactly_once() {
    const ORDERS: u32 = 1_500;
    let dir = TempDir::new("bin-kill");
    let config = write_config(&dir.0);
    let engine = start_binary(&config);
    let (mut seller, _) = login(engine.address, 1);
    for id in 1..=ORDERS {
        seller
            .new_limit(id, 1, "ABC", false, 100 + i64::from(id % 40), 1)
            .unwrap();
    }
    // Read some acknowledgements, then kill the engine with the rest in flight.
    let mut acknowledged = Vec::new();
    while acknowledged.len() < 400 {
        if let EngineMessage::Accepted(a) = seller.receive().unwrap().message {
            acknowledged.push(a.client_order_id.get());
        }
    }
    // A scheduled snapshot is on disk before the kill (they are written off the core's thread;
    // one that finds the writer busy is skipped, so under this burst the first is the one).
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let mut http = TcpStream::connect(engine.metrics()).unwrap();
        http.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        http.read_to_string(&mut text).unwrap();
        if !text.contains("sequent_snapshots_written 0\n") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no snapshot was written"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut engine = engine;
    engine.child.kill().unwrap(); // SIGKILL
    engine.child.wait().unwrap();
    drop(engine);
    drop(seller);

    let engine = start_binary(&config);
    assert!(
        engine.recovered.contains("records replayed"),
        "{}",
        engine.recovered
    );
    // Recovery started from a snapshot taken before the kill, then replayed the rest.
    let from_snapshot: u64 = engine
        .recovered
        .rsplit("from snapshot ")
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(from_snapshot >= 100, "{}", engine.recovered);
    eprintln!(
        "acknowledged before the kill: {}; recovered: {}",
        acknowledged.len(),
        engine.recovered
    );
    let (mut seller, next) = login(engine.address, 1);
    assert!(
        next > *acknowledged.last().unwrap(),
        "the engine forgot acknowledged orders: resumes at {next}"
    );
    eprintln!("the engine resumes session 1 at sequence {next}");
    // Resend what the engine does not have; it acknowledges each once.
    seller.next_sequence = next;
    for id in next..=ORDERS {
        seller
            .new_limit(id, 1, "ABC", false, 100 + i64::from(id % 40), 1)
            .unwrap();
    }
    for _ in next..=ORDERS {
        assert!(matches!(
            seller.receive().unwrap().message,
            EngineMessage::Accepted(_)
        ));
    }
    // One buyer sweeps the book: every order fills exactly once.
    let (mut buyer, _) = login(engine.address, 2);
    buyer
        .new_limit(1, 2, "ABC", true, 1_000, u64::from(ORDERS) + 10)
        .unwrap();
    let mut maker_fills: BTreeMap<u32, u64> = BTreeMap::new();
    while maker_fills.len() < ORDERS as usize {
        if let EngineMessage::Fill(fill) = seller.receive().unwrap().message {
            *maker_fills.entry(fill.client_order_id.get()).or_default() += fill.qty.get();
        }
    }
    assert_eq!(
        maker_fills.keys().copied().collect::<Vec<_>>(),
        (1..=ORDERS).collect::<Vec<_>>()
    );
    assert!(
        maker_fills.values().all(|&qty| qty == 1),
        "an order filled twice"
    );
    let mut taker_qty = 0;
    while taker_qty < u64::from(ORDERS) {
        if let EngineMessage::Fill(fill) = buyer.receive().unwrap().message {
            taker_qty += fill.qty.get();
        }
    }
    assert_eq!(taker_qty, u64::from(ORDERS));

    // The metrics endpoint answers with the counters.
    let mut http = TcpStream::connect(engine.metrics()).unwrap();
    http.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    http.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.contains("sequent_inputs_total "), "{text}");
    assert!(text.contains("sequent_journal_durable_lag "), "{text}");
    // Every reply released went through the stage histograms.
    for stage in ["journal", "core", "release"] {
        let count: u64 = text
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!(
                    "sequent_stage_latency_seconds_count{{stage=\"{stage}\"}} "
                ))
            })
            .unwrap_or_else(|| panic!("no {stage} latency in {text}"))
            .parse()
            .unwrap();
        assert!(
            count >= u64::from(ORDERS).saturating_sub(u64::from(next)),
            "{stage}: {count}"
        );
    }
    assert!(text.contains("sequent_input_ring_fill_max "), "{text}");

    // SIGTERM: a clean stop, exit 0.
    let mut engine = engine;
    // Without libc in this crate, SIGTERM goes through the kill command.
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(engine.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exit = engine.child.wait().unwrap();
    assert!(
        exit.success(),
        "SIGTERM did not stop the engine cleanly: {exit}"
    );
}

#[test]
fn a_bad_config_is_refused_by_key() {
    let dir = TempDir::new("bin-badconfig");
    let path = dir.0.join("engine.toml");
    std::fs::write(
        &path,
        "symbols = [\"ABC\"]\n[journal]\ndir = \"j\"\n[gateway]\nlisten_on = \"x\"\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sequent-engine"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("listen_on"), "{stderr}");
}
