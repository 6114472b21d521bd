//! The engine part of `sequent demo`: starts `sequent-engine` in-process on loopback with a
//! temporary journal, runs simulated clients over real TCP for a bounded time, and prints what a
//! newcomer wants to see: orders/s, order-to-acknowledgement latency from each order's intended
//! send time (open loop, so a stall is charged in full), trades, the journal's size and that it
//! verifies, that a market-data subscriber listening over loopback UDP rebuilt books equal (by
//! digest) to the engine's, and that a restart on the journal recovers the exact state the engine
//! stopped with.

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use sequent_node::config::EngineConfig;
use sequent_node::engine::Engine;

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

/// A free UDP port on loopback.
fn free_udp_port() -> Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The feed on loopback: multicast where this host loops it back, else unicast UDP.
fn feed_section() -> Result<(sequent_node::config::FeedSection, &'static str)> {
    use std::net::{Ipv4Addr, SocketAddrV4};
    let local = Ipv4Addr::LOCALHOST;
    let (pa, pb) = (free_udp_port()?, free_udp_port()?);
    let group = Ipv4Addr::new(239, 255, 78, 1);
    let (line_a, line_b, how) = if sequent_feed::net::multicast_loopback_works(group, pa, local) {
        (
            SocketAddrV4::new(group, pa),
            SocketAddrV4::new(Ipv4Addr::new(239, 255, 79, 1), pb),
            "multicast on lo",
        )
    } else {
        (
            SocketAddrV4::new(local, pa),
            SocketAddrV4::new(local, pb),
            "unicast UDP (multicast does not loop back here)",
        )
    };
    let snapshot = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    Ok((
        sequent_node::config::FeedSection {
            line_a,
            line_b: Some(line_b),
            interface: local,
            ttl: 1,
            send: sequent_node::config::SendName::Sendmmsg,
            retransmit: SocketAddrV4::new(local, free_udp_port()?),
            snapshot: SocketAddrV4::new(local, snapshot),
            history_packets: 65_536,
        },
        how,
    ))
}

fn run_in(args: &EngineArgs, dir: &std::path::Path) -> Result<()> {
    let mut config = EngineConfig::loopback(dir, true);
    let (feed, feed_how) = feed_section()?;
    config.feed = Some(feed);
    // The ledger posting hook: every trade becomes a linked pair of transfers (cash, position).
    config.ledger = Some(sequent_node::config::LedgerSection::default());
    // The subscriber joins before the engine starts: it sees the whole session.
    let mut subscriber = sequent_feed::net::NetSubscriber::open(
        sequent_feed::subscriber::Subscriber::new(
            sequent_feed::subscriber::SubscriberConfig::default(),
        ),
        &sequent_feed::net::SubscriberNetConfig {
            line_a: sequent_feed::net::LineAddr {
                addr: feed.line_a,
                iface: feed.interface,
            },
            line_b: feed.line_b.map(|addr| sequent_feed::net::LineAddr {
                addr,
                iface: feed.interface,
            }),
            recv: sequent_feed::net::RecvKind::Recv,
            retransmit_addr: std::net::SocketAddr::V4(feed.retransmit),
            snapshot_addr: std::net::SocketAddr::V4(feed.snapshot),
        },
    )
    .context("opening the feed subscriber")?
    .0;
    let listening = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let listen = std::sync::Arc::clone(&listening);
    let listener = std::thread::Builder::new()
        .name("demo-feedsub".into())
        .spawn(move || {
            while listen.load(Ordering::Acquire) {
                let _ = subscriber.poll_once(Duration::from_millis(5));
            }
            // What is still on its way: until 300 ms pass without a packet (at most 5 s).
            let end = std::time::Instant::now() + Duration::from_secs(5);
            let mut quiet_since = std::time::Instant::now();
            while std::time::Instant::now() < end
                && quiet_since.elapsed() < Duration::from_millis(300)
            {
                if subscriber.poll_once(Duration::from_millis(20)).unwrap_or(0) > 0 {
                    quiet_since = std::time::Instant::now();
                }
            }
            subscriber
        })?;
    let engine = Engine::start(&config).context("starting the engine")?;
    let threads = 6 + 2 * args.clients as usize;
    // The online cores, not this thread's affinity (the ring part pinned this thread to one).
    let cores = sequent_ring::online_cores().len().max(1);
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
            "warning: {threads} threads (gateway, journal, core, housekeeper, ledger posting, feed subscriber, 2 per client) on {cores} cores: oversubscribed; latency includes scheduler delays"
        );
    }
    let total = sequent_node::load::run(
        engine.address(),
        &sequent_node::load::LoadConfig {
            sessions: args.clients,
            rate_per_session: args.client_rate,
            duration: Duration::from_secs(args.engine_seconds),
        },
    )?;
    let elapsed = total.elapsed.as_secs_f64();
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
    listening.store(false, Ordering::Release);
    let subscriber = listener
        .join()
        .map_err(|_| anyhow::anyhow!("the feed subscriber panicked"))?;
    let replayed = sequent_node::engine::replay_journal(&config, dir, None)?;
    let books = subscriber.core.books().digest();
    let stats = &subscriber.core.stats;
    ensure!(
        books == replayed.books.digest() && stats.gaps_open() == 0,
        "the subscriber's books ({}, {} gaps open) differ from the engine's ({})",
        sequent_feed::book::hex(&books),
        stats.gaps_open(),
        sequent_feed::book::hex(&replayed.books.digest())
    );
    println!(
        "market data ({feed_how}): the subscriber received {} messages ({} gaps seen, none left open) and rebuilt {} resting orders: book digest {}, equal to the engine's",
        stats.messages,
        stats.gaps_seen,
        subscriber.core.books().orders_len(),
        &sequent_feed::book::hex(&books)[..16]
    );
    let (ledger, trades) = sequent_node::posting::replay_ledger(&config)?;
    let ledgers = 1 + config.symbols.len() as u32;
    let balanced = (1..=ledgers).all(|l| {
        let (debits, credits) = sequent_node::posting::Shared::totals(&ledger, l);
        debits == credits
    });
    ensure!(balanced, "the posting ledger's trial balance does not hold");
    ensure!(
        trades.len() as u64 == total.fills / 2,
        "the posting ledger holds {} trades, the clients saw {}",
        trades.len(),
        total.fills / 2
    );
    println!(
        "ledger posting hook: {} trades posted as {} transfers (cash and position, linked) into {} ledgers; trial balance holds (debits = credits in each)",
        trades.len(),
        2 * trades.len(),
        ledgers
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
