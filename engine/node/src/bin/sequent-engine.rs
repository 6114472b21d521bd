//! `sequent-engine --config engine.toml`: the trading engine. Recovers by replaying its journal,
//! prints the sequence and digest it recovered to, opens the order-entry gateway, and runs until
//! SIGTERM or SIGINT, then drains, syncs the journal and exits 0.
//!
//! With `--standby` it runs as the hot standby of the primary whose replication endpoint is
//! `--primary` (or `[replication] peer`): it follows the primary's journal, and takes over when the
//! primary dies, hands over, or on `POST /admin/promote` (docs/replication.md).
//!
//! Exit codes: 0 clean stop; 1 a failure (journal, pipeline, network); 2 bad usage or a bad config
//! (the message names the key); 4 fenced (a primary of a later term replaced this engine).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Parser;
use sequent_node::config::EngineConfig;
use sequent_node::engine::Engine;
use sequent_node::standby::Standby;

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
    /// Overrides [replication] listen.
    #[arg(long)]
    replication_listen: Option<std::net::SocketAddr>,
    /// Run as the hot standby of `--primary` (default: [replication] peer).
    #[arg(long)]
    standby: bool,
    /// The primary's replication address (implies nothing without --standby).
    #[arg(long, requires = "standby")]
    primary: Option<std::net::SocketAddr>,
    /// Log lines on stderr as text or as one JSON object each (level by `SEQUENT_LOG`, default
    /// `info`; nothing is logged on the hot path, and no log line carries a secret).
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SEQUENT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logs(args.log_format);
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
    if let Some(listen) = args.replication_listen {
        config.replication.listen = Some(listen);
    }
    let signals = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(error) = signal_hook::flag::register(signal, Arc::clone(&signals)) {
            eprintln!("sequent-engine: cannot handle signal {signal}: {error}");
            return ExitCode::from(1);
        }
    }
    let engine = if args.standby {
        let Some(primary) = args.primary.or(config.replication.peer) else {
            eprintln!("sequent-engine: --standby needs --primary ADDR or [replication] peer");
            return ExitCode::from(2);
        };
        match follow(&config, primary, &signals) {
            Ok(Some(engine)) => engine,
            Ok(None) => {
                println!("stopped: standby");
                return ExitCode::SUCCESS;
            }
            Err(error) => {
                eprintln!("sequent-engine: {error:#}");
                return ExitCode::from(1);
            }
        }
    } else {
        match Engine::start(&config) {
            Ok(engine) => engine,
            Err(error) => {
                eprintln!("sequent-engine: {error:#}");
                return ExitCode::from(if format!("{error}").starts_with("fenced") {
                    4
                } else {
                    1
                });
            }
        }
    };
    let recovered = engine.recovered();
    println!(
        "recovered: {} records replayed, sequence {}, digest {:016x}, from snapshot {}",
        recovered.replayed, recovered.sequence, recovered.digest, recovered.snapshot
    );
    println!("term: {}", engine.term());
    println!("listening: {}", engine.address());
    if let Some(replication) = engine.replication_address() {
        println!("replication: {replication}");
    }
    if let Some(metrics) = engine.metrics_address() {
        println!("metrics: http://{metrics}/metrics");
    }
    let stop = engine.stop_flag();
    while !stop.load(Ordering::Acquire) {
        if signals.load(Ordering::Acquire) {
            stop.store(true, Ordering::Release);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("stopping: draining the rings and syncing the journal");
    match engine.shutdown_with_digest() {
        Ok((inputs, digest)) => {
            println!("stopped: {inputs} inputs sequenced in this run, digest {digest:016x}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("sequent-engine: {error:#}");
            ExitCode::from(if format!("{error}").starts_with("fenced") {
                4
            } else {
                1
            })
        }
    }
}

/// Runs as a standby until it takes over (the engine it became) or a signal stops it.
fn follow(
    config: &EngineConfig,
    primary: std::net::SocketAddr,
    signals: &AtomicBool,
) -> anyhow::Result<Option<Engine>> {
    let standby = Standby::start(config, primary)?;
    println!("standby: following {primary}");
    if let Some(metrics) = standby.metrics_address() {
        println!("metrics: http://{metrics}/metrics");
    }
    let stop = standby.stop_flag();
    while !standby.is_finished() {
        if signals.load(Ordering::Acquire) {
            stop.store(true, Ordering::Release);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let engine = standby.wait()?;
    if engine.is_some() {
        println!("promoted: this standby is now the primary");
    }
    Ok(engine)
}
