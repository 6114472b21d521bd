//! `sequent-engine --config engine.toml`: the trading engine. Recovers by replaying its journal,
//! prints the sequence and digest it recovered to, opens the order-entry gateway, and runs until
//! SIGTERM or SIGINT, then drains, syncs the journal and exits 0.
//!
//! Exit codes: 0 clean stop; 1 a failure (journal, pipeline, network); 2 bad usage or a bad config
//! (the message names the key).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Parser;
use sequent_node::config::EngineConfig;
use sequent_node::engine::Engine;

#[derive(Debug, Parser)]
#[command(name = "sequent-engine", version, about = "sequent's trading engine")]
struct Args {
    /// The configuration file (see engine/node/engine.toml).
    #[arg(long)]
    config: PathBuf,
    /// Overrides [gateway] listen.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Overrides [journal] dir.
    #[arg(long)]
    journal_dir: Option<PathBuf>,
    /// Overrides [metrics] listen.
    #[arg(long)]
    metrics_listen: Option<std::net::SocketAddr>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let text = match std::fs::read_to_string(&args.config) {
        Ok(text) => text,
        Err(error) => {
            eprintln!(
                "sequent-engine: cannot read {}: {error}",
                args.config.display()
            );
            return ExitCode::from(2);
        }
    };
    let mut config = match EngineConfig::parse(&text) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("sequent-engine: {}: {error}", args.config.display());
            return ExitCode::from(2);
        }
    };
    if let Some(listen) = args.listen {
        config.gateway.listen = listen;
    }
    if let Some(dir) = args.journal_dir {
        config.journal.dir = dir;
    }
    if let Some(listen) = args.metrics_listen {
        config.metrics.listen = Some(listen);
    }
    let engine = match Engine::start(&config) {
        Ok(engine) => engine,
        Err(error) => {
            eprintln!("sequent-engine: {error:#}");
            return ExitCode::from(1);
        }
    };
    let recovered = engine.recovered();
    println!(
        "recovered: {} records replayed, sequence {}, digest {:016x}",
        recovered.replayed, recovered.sequence, recovered.digest
    );
    println!("listening: {}", engine.address());
    if let Some(metrics) = engine.metrics_address() {
        println!("metrics: http://{metrics}/metrics");
    }
    let stop = engine.stop_flag();
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(error) = signal_hook::flag::register(signal, std::sync::Arc::clone(&stop)) {
            eprintln!("sequent-engine: cannot handle signal {signal}: {error}");
            return ExitCode::from(1);
        }
    }
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("stopping: draining the rings and syncing the journal");
    match engine.shutdown() {
        Ok(inputs) => {
            println!("stopped: {inputs} inputs sequenced in this run");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("sequent-engine: {error:#}");
            ExitCode::from(1)
        }
    }
}
