//! `sequent-bench failover`: what the hot standby costs and what it buys (docs/replication.md).
//!
//! - **Take-over time**: two `sequent-engine` processes on loopback, a primary and its standby
//!   (replies held for the standby's acknowledgement). A client sends orders, the primary is
//!   killed with SIGKILL, and the clock runs from the kill to the first order acknowledged by the
//!   new primary: failure detection, promotion, the client's reconnect, login and resend all
//!   count. Repeated `runs` times; median and worst reported.
//! - **Acknowledgement cost**: the same open-loop order load ([`sequent_node::load`], latency from
//!   each order's intended send time) against an engine that holds replies until its journal is
//!   durable (the baseline), and against one that also waits for its standby's acknowledgement.
//!   The ratio of the p50 and p99 is the price of a second copy before every reply.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use sequent_node::client::Client;
use sequent_node::config::EngineConfig;
use sequent_node::engine::Engine;
use sequent_node::load::{LoadConfig, run as load};
use sequent_node::protocol::EngineMessage;
use sequent_node::standby::Standby;
use serde::Serialize;

use crate::machine::Machine;
use crate::report::format_ns;

/// What to run.
#[derive(Debug, Clone)]
pub struct FailoverBenchConfig {
    /// Kill-and-take-over repetitions.
    pub runs: usize,
    /// Offered orders/s of the acknowledgement-cost load.
    pub rate: u64,
    /// Seconds of load per target.
    pub seconds: f64,
    /// Sessions of the load.
    pub sessions: u32,
    /// The `sequent-engine` binary.
    pub engine_bin: PathBuf,
    /// Scratch directory (a subdirectory per run, removed after).
    pub dir: PathBuf,
}

/// The results, JSON keys as named.
#[derive(Debug, Clone, Serialize)]
pub struct FailoverReport {
    /// Kill to first acknowledgement on the new primary, one per run, ns.
    pub takeover_ns: Vec<u64>,
    /// Median of `takeover_ns`.
    pub takeover_median_ns: u64,
    /// Worst of `takeover_ns`.
    pub takeover_worst_ns: u64,
    /// Order-to-ack percentiles without a standby (journal durable only): p50, p99, p99.9, max.
    pub alone: [u64; 4],
    /// The same with the standby's acknowledgement as well.
    pub with_standby: [u64; 4],
    /// Orders acknowledged per second in each (alone, with standby).
    pub acked_per_sec: [u64; 2],
    /// Offered rate.
    pub offered: u64,
}

/// Finds `sequent-engine` next to the running executable (both built by the same cargo command).
pub fn engine_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("no directory")?;
    for candidate in [dir.join("sequent-engine"), dir.join("../sequent-engine")] {
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    bail!(
        "sequent-engine is not built next to {}: run `cargo build --release -p sequent-node -p sequent-bench` first",
        exe.display()
    )
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn percentiles(histogram: &Histogram<u64>) -> [u64; 4] {
    [
        histogram.value_at_quantile(0.5),
        histogram.value_at_quantile(0.99),
        histogram.value_at_quantile(0.999),
        histogram.max(),
    ]
}

/// Runs both parts.
pub fn run(config: &FailoverBenchConfig) -> anyhow::Result<FailoverReport> {
    let root = config
        .dir
        .join(format!("sequent-bench-failover-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    let outcome = (|| {
        let mut takeover_ns = Vec::with_capacity(config.runs);
        for run in 0..config.runs {
            let ns = takeover(config, &root.join(format!("run-{run}")))?;
            eprintln!(
                "  take-over run {run}: first acknowledgement {} after the kill",
                format_ns(ns)
            );
            takeover_ns.push(ns);
        }
        let (alone, alone_rate) = ack_cost(config, &root.join("alone"), false)?;
        let (with_standby, standby_rate) = ack_cost(config, &root.join("standby"), true)?;
        let mut sorted = takeover_ns.clone();
        sorted.sort_unstable();
        Ok(FailoverReport {
            takeover_median_ns: sorted.get(sorted.len() / 2).copied().unwrap_or(0),
            takeover_worst_ns: sorted.last().copied().unwrap_or(0),
            takeover_ns,
            alone,
            with_standby,
            acked_per_sec: [alone_rate, standby_rate],
            offered: config.rate,
        })
    })();
    let _ = std::fs::remove_dir_all(&root);
    outcome
}

/// The open-loop load against an engine, with or without a standby acknowledging.
fn ack_cost(
    config: &FailoverBenchConfig,
    dir: &Path,
    with_standby: bool,
) -> anyhow::Result<([u64; 4], u64)> {
    let mut primary = EngineConfig::loopback(&dir.join("primary"), true);
    let follower = if with_standby {
        let listen = free_addr()?;
        primary.replication.listen = Some(listen);
        primary.replication.standby_ack = true;
        let mut follower = EngineConfig::loopback(&dir.join("standby"), true);
        follower.replication.listen = Some(free_addr()?);
        Some((follower, listen))
    } else {
        None
    };
    let engine = Engine::start(&primary)?;
    let standby = follower
        .map(|(config, listen)| Standby::start(&config, listen))
        .transpose()?;
    let report = load(
        engine.address(),
        &LoadConfig {
            sessions: config.sessions,
            rate_per_session: (config.rate / u64::from(config.sessions)).max(1),
            duration: Duration::from_secs_f64(config.seconds),
        },
    )?;
    drop(standby);
    engine.shutdown()?;
    let rate = (report.acked as f64 / report.elapsed.as_secs_f64()) as u64;
    let name = if with_standby {
        "with standby ack"
    } else {
        "journal only"
    };
    let p = percentiles(&report.latency);
    eprintln!(
        "  {name:<17} offered {}/s  acked {rate}/s  p50 {}  p99 {}  p99.9 {}  max {}",
        config.rate,
        format_ns(p[0]),
        format_ns(p[1]),
        format_ns(p[2]),
        format_ns(p[3])
    );
    Ok((p, rate))
}

struct Process {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    fn spawn(bin: &Path, config: &Path, standby_of: Option<SocketAddr>) -> anyhow::Result<Self> {
        let mut command = Command::new(bin);
        command.arg("--config").arg(config);
        if let Some(primary) = standby_of {
            command
                .arg("--standby")
                .arg("--primary")
                .arg(primary.to_string());
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self { child, lines })
    }

    fn expect(&self, prefix: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .map_err(|_| anyhow::anyhow!("the engine never printed {prefix:?}"))?;
            if line.starts_with(prefix) {
                return Ok(());
            }
        }
    }
}

fn write_config(
    path: &Path,
    journal: &Path,
    gateway: SocketAddr,
    replication: SocketAddr,
    peer: SocketAddr,
) -> anyhow::Result<()> {
    std::fs::write(
        path,
        format!(
            r#"
symbols = ["ABC"]
sessions_max = 8
[venue]
orders_max = 65536
levels_max = 4096
levels_per_side_max = 2048
accounts_max = 8
ids_max = 1048576
[rings]
input_slots = 4096
output_slots = 16384
[journal]
dir = "{}"
durability = "group"
group_records = 64
interval_us = 200
segment_mib = 16
[gateway]
listen = "{gateway}"
connections_max = 8
[replication]
listen = "{replication}"
peer = "{peer}"
standby_ack = true
heartbeat_interval_ms = 5
heartbeat_timeout_ms = 50
"#,
            journal.display()
        ),
    )?;
    Ok(())
}

/// One take-over: returns ns from the kill to the first acknowledgement on the new primary.
fn takeover(config: &FailoverBenchConfig, dir: &Path) -> anyhow::Result<u64> {
    std::fs::create_dir_all(dir)?;
    let (gateway_a, gateway_b) = (free_addr()?, free_addr()?);
    let (repl_a, repl_b) = (free_addr()?, free_addr()?);
    let (config_a, config_b) = (dir.join("a.toml"), dir.join("b.toml"));
    write_config(&config_a, &dir.join("a"), gateway_a, repl_a, repl_b)?;
    write_config(&config_b, &dir.join("b"), gateway_b, repl_b, repl_a)?;
    let primary = Process::spawn(&config.engine_bin, &config_a, None)?;
    primary.expect("listening: ")?;
    let standby = Process::spawn(&config.engine_bin, &config_b, Some(repl_a))?;
    standby.expect("standby: following")?;
    let mut client = Client::connect(gateway_a, Duration::from_secs(10))?;
    client.login(1, false)?;
    // Some acknowledged orders so the standby has a history to apply.
    for id in 1..=200 {
        client.new_limit(id, 1, "ABC", false, 100 + i64::from(id % 9), 1)?;
    }
    let mut acked = 0;
    while acked < 200 {
        if let EngineMessage::Accepted(_) = client.receive()?.message {
            acked += 1;
        }
    }
    drop(client);
    let mut primary = primary;
    let killed = Instant::now();
    primary.child.kill()?;
    let _ = primary.child.wait();
    let deadline = killed + Duration::from_secs(20);
    loop {
        if let Ok(mut client) = Client::connect(gateway_b, Duration::from_millis(100)) {
            client.set_timeout(Duration::from_secs(10))?;
            if let Ok(EngineMessage::LoginAccepted(accepted)) = client.login(1, false) {
                client.next_sequence = accepted.next_expected.get();
                client.new_limit(10_000, 1, "ABC", false, 100, 1)?;
                loop {
                    if let EngineMessage::Accepted(_) = client.receive()?.message {
                        let ns = killed.elapsed().as_nanos() as u64;
                        drop(standby);
                        return Ok(ns);
                    }
                }
            }
        }
        if Instant::now() > deadline {
            bail!("the standby never served");
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// The report as Markdown for docs/BENCHMARKS.md.
#[must_use]
pub fn render_markdown(machine: &Machine, command: &str, report: &FailoverReport) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Command: `{command}`  \nMachine: {}\n\n",
        machine.summary()
    ));
    out.push_str("| take-over (kill -9 → first ack on the new primary) | runs | median | worst |\n|---|---:|---:|---:|\n");
    out.push_str(&format!(
        "| two `sequent-engine` processes, loopback, standby ack on | {} | {} | {} |\n\n",
        report.takeover_ns.len(),
        format_ns(report.takeover_median_ns),
        format_ns(report.takeover_worst_ns)
    ));
    out.push_str(&format!(
        "| order-to-ack, open loop at {}/s | acked/s | p50 | p99 | p99.9 | max |\n|---|---:|---:|---:|---:|---:|\n",
        report.offered
    ));
    for (name, p, rate) in [
        (
            "journal durable (baseline)",
            report.alone,
            report.acked_per_sec[0],
        ),
        (
            "journal durable + standby ack",
            report.with_standby,
            report.acked_per_sec[1],
        ),
    ] {
        out.push_str(&format!(
            "| {name} | {rate} | {} | {} | {} | {} |\n",
            format_ns(p[0]),
            format_ns(p[1]),
            format_ns(p[2]),
            format_ns(p[3])
        ));
    }
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    out.push_str(&format!(
        "\nCost of the standby's acknowledgement: p50 ×{:.2}, p99 ×{:.2} (with standby / baseline, same run).\n",
        ratio(report.with_standby[0], report.alone[0]),
        ratio(report.with_standby[1], report.alone[1])
    ));
    out
}
