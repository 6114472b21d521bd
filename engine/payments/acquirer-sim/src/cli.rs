//! The command line of `sequent-acquirer-sim` (see the crate docs), callable as a library
//! function so that another crate can build the same simulator as a binary of its own.

use std::io::{BufRead, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use crate::SimConfig;
use crate::server::{Shared, local, spawn_acquirer_listener, spawn_admin_listener};
use anyhow::Context;
use clap::Parser;

/// A SIMULATED external acquirer / card network for tests and demos, on loopback. Speaks framed
/// ISO 8583 (docs/iso8583.md). Prints `listening: ADDR` (and `admin: ADDR`) when ready; reads
/// control lines on stdin: `outage refuse|drop|off|auto`, `clearing [PATH]`, `stats`, `shutdown`.
#[derive(Debug, Parser)]
#[command(name = "sequent-acquirer-sim", version)]
struct Args {
    /// TOML configuration (keys in the crate docs); flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// ISO 8583 listen address.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Admin (control line) listen address.
    #[arg(long)]
    admin_listen: Option<String>,
    /// Where `clearing` (without a path) and `shutdown` write the clearing CSV.
    #[arg(long)]
    clearing_file: Option<PathBuf>,
    /// Acquirer name (clearing file's first column).
    #[arg(long)]
    name: Option<String>,
    /// Seed of every random draw.
    #[arg(long)]
    seed: Option<u64>,
    /// Fixed answer latency, ms.
    #[arg(long)]
    latency_ms: Option<u64>,
    /// Random extra latency, uniform 0..=N ms.
    #[arg(long)]
    jitter_ms: Option<u64>,
    /// Amounts (minor units) above this are declined 51.
    #[arg(long)]
    limit_minor: Option<u64>,
    /// Amounts above this are approved partially (10) for this amount.
    #[arg(long)]
    partial_over_minor: Option<u64>,
    /// Share of requests answered 96.
    #[arg(long)]
    error_rate: Option<f64>,
    /// Share of requests processed but never answered.
    #[arg(long)]
    no_answer_rate: Option<f64>,
    /// Business date for the clearing file, YYYY-MM-DD (default: today, UTC).
    #[arg(long)]
    business_date: Option<String>,
}

fn config(args: &Args) -> anyhow::Result<SimConfig> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            SimConfig::from_toml(&text).with_context(|| path.display().to_string())?
        }
        None => SimConfig::default(),
    };
    if let Some(v) = &args.name {
        config.name = v.clone();
    }
    if let Some(v) = args.seed {
        config.seed = v;
    }
    if let Some(v) = args.latency_ms {
        config.latency_ms = v;
    }
    if let Some(v) = args.jitter_ms {
        config.jitter_ms = v;
    }
    if args.limit_minor.is_some() {
        config.limit_minor = args.limit_minor;
    }
    if args.partial_over_minor.is_some() {
        config.partial_over_minor = args.partial_over_minor;
    }
    if let Some(v) = args.error_rate {
        config.error_rate = v;
    }
    if let Some(v) = args.no_answer_rate {
        config.no_answer_rate = v;
    }
    if args.business_date.is_some() {
        config.business_date = args.business_date.clone();
    }
    config.validate()?;
    Ok(config)
}

/// The simulator's command line, as a library call: parses `args` (the first item is the
/// program name, as in `std::env::args_os`), runs until `shutdown`, and returns the exit code
/// (0 after `shutdown`, 2 bad usage or configuration, 1 a socket cannot be bound). The binary is
/// `main_with_args(std::env::args_os())`; other crates' test harnesses wrap it in a binary of
/// their own so that `cargo test` builds it for them (see the payments node's tests).
pub fn main_with_args<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args = match Args::try_parse_from(args) {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let config = match config(&args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("sequent-acquirer-sim: {e:#}");
            return 2;
        }
    };
    if let Err(e) = run(args, config) {
        eprintln!("sequent-acquirer-sim: {e:#}");
        return 1;
    }
    0
}

fn run(args: Args, config: SimConfig) -> anyhow::Result<()> {
    let shared = Shared::new(config, args.clearing_file.clone());
    let listener =
        TcpListener::bind(&args.listen).with_context(|| format!("binding {}", args.listen))?;
    let addr = local(&listener)?;
    spawn_acquirer_listener(Arc::clone(&shared), listener)?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening: {addr}")?;
    if let Some(admin) = &args.admin_listen {
        let admin_listener =
            TcpListener::bind(admin).with_context(|| format!("binding {admin}"))?;
        writeln!(stdout, "admin: {}", local(&admin_listener)?)?;
        spawn_admin_listener(Arc::clone(&shared), admin_listener)?;
    }
    stdout.flush()?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let reply = shared.handle_command(&line);
        writeln!(stdout, "{reply}")?;
        stdout.flush()?;
        if shared.stopping() {
            return Ok(());
        }
    }
    // Stdin closed (run without a terminal, as under CI): keep serving until `shutdown` on the
    // admin port.
    loop {
        std::thread::park();
    }
}
