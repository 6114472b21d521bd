//! The engine part of `sequent demo`: starts `sequent-engine` in-process on loopback with a
//! temporary journal, runs simulated clients over real TCP for a bounded time, and prints what a
//! newcomer wants to see: orders/s, order-to-acknowledgement latency from each order's intended
//! send time (open loop, so a stall is charged in full), trades, the journal's size and that it
//! verifies, and that a restart on the journal recovers the exact state the engine stopped with.

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

fn run_in(args: &EngineArgs, dir: &std::path::Path) -> Result<()> {
    let config = EngineConfig::loopback(dir, true);
    let engine = Engine::start(&config).context("starting the engine")?;
    let threads = 4 + 2 * args.clients as usize;
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
            "warning: {threads} threads (gateway, journal, core, housekeeper, 2 per client) on {cores} cores: oversubscribed; latency includes scheduler delays"
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
