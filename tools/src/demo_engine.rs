//! The engine part of `sequent demo`: starts `sequent-engine` in-process on loopback with a
//! temporary journal, runs simulated clients over real TCP for a bounded time, and prints what a
//! newcomer wants to see: orders/s, order-to-acknowledgement latency from each order's intended
//! send time (open loop, so a stall is charged in full), trades, the journal's size and that it
//! verifies, and that a restart on the journal recovers the exact state the engine stopped with.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use hdrhistogram::Histogram;
use sequent_node::config::EngineConfig;
use sequent_node::engine::Engine;
use sequent_node::protocol::{
    CancelBody, ClientMessage, Decoded, EngineMessage, FRAME_LEN_MAX, LoginBody, decode_engine,
    encode_client,
};

#[derive(clap::Args, Debug)]
pub struct EngineArgs {
    /// Seconds of simulated client load against the engine (0 skips the engine part).
    #[arg(long, default_value_t = 3)]
    engine_seconds: u64,
    /// Simulated client sessions, each on its own connection.
    #[arg(long, default_value_t = 4)]
    clients: u32,
    /// Orders per second per client (open loop).
    #[arg(long, default_value_t = 5_000)]
    client_rate: u64,
}

/// What one client saw.
struct ClientStats {
    sent: u64,
    acked: u64,
    rejected: u64,
    fills: u64,
    latency: Histogram<u64>,
}

pub fn run(args: &EngineArgs) -> Result<()> {
    if args.engine_seconds == 0 {
        return Ok(());
    }
    ensure!(
        args.clients >= 1 && args.clients <= 64,
        "--clients must be 1..=64"
    );
    let dir = std::env::temp_dir().join(format!("sequent-demo-journal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let result = run_in(args, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn config(dir: &std::path::Path) -> Result<EngineConfig> {
    Ok(EngineConfig::parse(&format!(
        r#"
symbols = ["ABC", "XYZ"]
sessions_max = 64
[venue]
orders_max = 1048576
levels_max = 16384
levels_per_side_max = 4096
accounts_max = 64
ids_max = 4194304
[journal]
dir = "{}"
durability = "group"
group_records = 128
interval_us = 200
segment_mib = 16
hold_replies_until_durable = true
[gateway]
listen = "127.0.0.1:0"
connections_max = 128
"#,
        dir.display()
    ))?)
}

fn run_in(args: &EngineArgs, dir: &std::path::Path) -> Result<()> {
    let config = config(dir)?;
    let engine = Engine::start(&config).context("starting the engine")?;
    let threads = 4 + 2 * args.clients as usize;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!();
    println!(
        "sequent demo: sequent-engine on {} (journal group commit 128 records / 200 µs, replies held until durable), {} clients × {} orders/s for {} s over loopback TCP",
        engine.address(),
        args.clients,
        args.client_rate,
        args.engine_seconds
    );
    if threads > cores {
        println!(
            "warning: {threads} threads (gateway, journal, core, housekeeper, 2 per client) on {cores} cores: oversubscribed; latency includes scheduler delays"
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let handles: Vec<_> = (0..args.clients)
        .map(|i| {
            let address = engine.address();
            let stop = Arc::clone(&stop);
            let rate = args.client_rate;
            std::thread::spawn(move || client(address, i + 1, rate, &stop))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(args.engine_seconds));
    stop.store(true, Ordering::Release);
    let mut total = ClientStats {
        sent: 0,
        acked: 0,
        rejected: 0,
        fills: 0,
        latency: Histogram::new_with_bounds(1_000, 60_000_000_000, 3)?,
    };
    for handle in handles {
        let stats = handle
            .join()
            .map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
        total.sent += stats.sent;
        total.acked += stats.acked;
        total.rejected += stats.rejected;
        total.fills += stats.fills;
        total.latency.add(&stats.latency)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let inputs = engine.metrics().inputs.load(Ordering::Relaxed);
    let (_, digest) = engine.shutdown_with_digest()?;
    let q = |p: f64| total.latency.value_at_quantile(p) as f64 / 1_000.0;
    println!(
        "orders: {} sent, {} acknowledged, {} rejected = {:.0} orders/s; {} fills ({} trades); {inputs} inputs journaled",
        total.sent,
        total.acked,
        total.rejected,
        total.acked as f64 / elapsed,
        total.fills,
        total.fills / 2
    );
    println!(
        "order → acknowledgement (durable), from intended send time: p50 {:.1} µs   p99 {:.1} µs   p99.9 {:.1} µs   max {:.1} µs",
        q(0.5),
        q(0.99),
        q(0.999),
        total.latency.max() as f64 / 1_000.0
    );
    ensure!(
        total.acked + total.rejected == total.sent,
        "{} orders were sent but {} answered",
        total.sent,
        total.acked + total.rejected
    );
    let report = sequent_journal::verify(dir, |_| {})?;
    ensure!(
        report.is_intact(),
        "the journal does not verify: {:?}",
        report.problems
    );
    let bytes: u64 = report.segments.iter().map(|s| s.records_len).sum();
    println!(
        "journal: {} records, {:.1} MB, verifies (checksums, chain, seals); head {}",
        report.records,
        bytes as f64 / 1e6,
        report
            .head
            .map(|h| sequent_journal::merkle::to_hex(&h))
            .unwrap_or_default()
    );
    let restarted = Engine::start(&config)?;
    let recovered = restarted.recovered();
    restarted.shutdown()?;
    ensure!(
        recovered.digest == digest,
        "restart recovered digest {:016x}, the engine stopped at {digest:016x}",
        recovered.digest
    );
    println!(
        "restart: replayed {} records in a fresh engine: state digest {:016x}, equal to the one it stopped with",
        recovered.replayed, recovered.digest
    );
    Ok(())
}

/// One simulated client: a sender on the open-loop schedule and a receiver on the same
/// connection. Orders rest around 100 and cross now and then; every tenth message cancels.
fn client(address: SocketAddr, session: u32, rate: u64, stop: &AtomicBool) -> Result<ClientStats> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_nodelay(true)?;
    let mut frame = [0u8; FRAME_LEN_MAX];
    let len = encode_client(
        &mut frame,
        0,
        &ClientMessage::Login(LoginBody {
            session: session.into(),
            next_expected: 1.into(),
            flags: 1,
            reserved: [0; 7],
        }),
    );
    stream.write_all(&frame[..len])?;
    let mut reader = stream.try_clone()?;
    // intended send time (ns since `epoch`) per client order id
    let intended: Arc<Vec<AtomicU64>> =
        Arc::new((0..2_000_000).map(|_| AtomicU64::new(0)).collect());
    let sent = Arc::new(AtomicU64::new(0));
    let done_sending = Arc::new(AtomicBool::new(false));
    let epoch = Instant::now();
    let receiver = {
        let intended = Arc::clone(&intended);
        let sent = Arc::clone(&sent);
        let done = Arc::clone(&done_sending);
        std::thread::spawn(move || -> Result<ClientStats> {
            reader.set_read_timeout(Some(Duration::from_millis(50)))?;
            let mut stats = ClientStats {
                sent: 0,
                acked: 0,
                rejected: 0,
                fills: 0,
                latency: Histogram::new_with_bounds(1_000, 60_000_000_000, 3)?,
            };
            let mut buffer = Vec::with_capacity(1 << 16);
            let mut chunk = [0u8; 1 << 14];
            let mut idle_since = None;
            loop {
                let answered = stats.acked + stats.rejected;
                if done.load(Ordering::Acquire) && answered >= sent.load(Ordering::Acquire) {
                    break;
                }
                match reader.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        idle_since = None;
                        buffer.extend_from_slice(&chunk[..n]);
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        let since = *idle_since.get_or_insert_with(Instant::now);
                        if done.load(Ordering::Acquire) && since.elapsed() > Duration::from_secs(5)
                        {
                            break; // answers lost: reported by the caller's check
                        }
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
                let mut at = 0;
                while let Decoded::Frame(f, len) = decode_engine(&buffer[at..]) {
                    at += len;
                    let now = epoch.elapsed().as_nanos() as u64;
                    match f.message {
                        EngineMessage::Accepted(a) => {
                            stats.acked += 1;
                            let t0 =
                                intended[a.client_order_id.get() as usize].load(Ordering::Acquire);
                            stats.latency.record(now.saturating_sub(t0).max(1_000))?;
                        }
                        // Reason 2 (unknown order) answers a cancel of an order that already
                        // traded; cancels are not counted as sent orders.
                        EngineMessage::Rejected(r) if r.reason.get() != 2 => stats.rejected += 1,
                        EngineMessage::Fill(_) => stats.fills += 1,
                        _ => {}
                    }
                }
                buffer.drain(..at);
            }
            stats.sent = sent.load(Ordering::Acquire);
            Ok(stats)
        })
    };
    // Let the login be answered before the first order.
    std::thread::sleep(Duration::from_millis(20));
    let interval_ns = 1_000_000_000 / rate.max(1);
    let mut sequence = 1u32;
    let mut id = 1u32;
    let mut x = u64::from(session).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while !stop.load(Ordering::Acquire) && (id as usize) < intended.len() - 1 {
        let due = u64::from(id) * interval_ns;
        let now = epoch.elapsed().as_nanos() as u64;
        if now < due {
            std::thread::sleep(Duration::from_nanos((due - now).min(1_000_000)));
            continue;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let message = if id % 10 == 0 {
            // Cancel an earlier order (rejected as unknown when it already traded: not counted).
            ClientMessage::Cancel(CancelBody {
                client_order_id: (id - 5).into(),
                reserved: 0.into(),
            })
        } else {
            let buy = x & 1 == 0;
            let offset = ((x >> 8) % 6) as i64;
            ClientMessage::NewOrder(sequent_node::client::limit_order(
                id,
                session,
                if x & 0x100 == 0 { "ABC" } else { "XYZ" },
                buy,
                if buy { 97 + offset } else { 103 - offset },
                1 + (x >> 20) % 10,
            ))
        };
        intended[id as usize].store(due, Ordering::Release);
        let len = encode_client(&mut frame, sequence, &message);
        stream.write_all(&frame[..len])?;
        if id % 10 != 0 {
            sent.fetch_add(1, Ordering::AcqRel);
        }
        sequence += 1;
        id += 1;
    }
    done_sending.store(true, Ordering::Release);
    let stats = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("a client receiver panicked"))??;
    Ok(stats)
}
