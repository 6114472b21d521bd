//! `sequent-payments-gateway --config payments.toml`: recovers by replaying the journal, prints
//! `recovered: …` and `listening: ADDR`, serves the merchant API until SIGINT/SIGTERM or stdin
//! closes with `--stdin-stop`, then prints `stopped: sequence N digest HEX`.
//!
//! Exit codes: 0 clean stop, 1 runtime failure, 2 bad usage or configuration.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use clap::Parser;
use sequent_payments_node::{Node, NodeConfig};

/// The payments node: merchant HTTP API, tokenisation, journal, engine, acquirer connectors.
#[derive(Debug, Parser)]
#[command(name = "sequent-payments-gateway", version)]
struct Args {
    /// The node's TOML configuration.
    #[arg(long)]
    config: PathBuf,
    /// Override `[gateway] listen`.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Stop when a line `stop` arrives on stdin or stdin closes (for supervisors and tests).
    #[arg(long)]
    stdin_stop: bool,
}

fn main() {
    let args = Args::parse();
    let mut config = match NodeConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sequent-payments-gateway: {}: {e}", args.config.display());
            std::process::exit(2);
        }
    };
    if let Some(listen) = args.listen {
        config.gateway.listen = listen;
    }
    if let Err(e) = run(&config, args.stdin_stop) {
        eprintln!("sequent-payments-gateway: {e:#}");
        std::process::exit(1);
    }
}

fn run(config: &NodeConfig, stdin_stop: bool) -> anyhow::Result<()> {
    let node = Node::start(config)?;
    println!("listening: {}", node.address());
    std::io::stdout().flush()?;
    if stdin_stop {
        for line in std::io::stdin().lock().lines() {
            if line?.trim() == "stop" {
                break;
            }
        }
    } else {
        let stop = node.stop_flag();
        signal_wait(&stop);
    }
    let (sequence, digest) = node.shutdown()?;
    println!(
        "stopped: sequence {sequence} digest {}",
        sequent_payments_node::node::hex(&digest)
    );
    Ok(())
}

/// Waits for SIGINT or SIGTERM.
fn signal_wait(stop: &std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let flag = std::sync::Arc::clone(stop);
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(signal, std::sync::Arc::clone(&flag));
    }
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
