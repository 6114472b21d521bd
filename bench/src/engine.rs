//! `sequent-bench engine`: order-to-acknowledgement latency and sustained orders/s of
//! `sequent-engine` over loopback TCP, open loop, beside a baseline in the same run.
//!
//! Three targets get the same load ([`sequent_node::load`]: sessions on their own connections,
//! each sending on a fixed schedule, latency from each order's *intended* send time to its
//! acknowledgement, so stalls are charged in full):
//!
//! - `engine-durable`: the engine as configured for production: group commit (128 records or
//!   200 µs) and every reply held until its input is on disk;
//! - `engine-match`: the same engine with replies released as soon as the core has matched (the
//!   journal still records every input, in parallel);
//! - `echo`: the baseline: a server that decodes each frame with the same codec and answers every
//!   order with an acknowledgement at once, one thread per connection, no journal, no matching. It
//!   measures the client harness, loopback TCP and the scheduler: what any engine pays here.
//!
//! Each target runs at every offered rate; the ratio column is the echo's p99 over the target's
//! (above 1 the target is as fast as the floor).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use sequent_node::config::{
    CoresSection, EngineConfig, FeedSection, SendName, WaitName, WaitSection,
};
use sequent_node::engine::Engine;
use sequent_node::load::{LoadConfig, LoadOptions, LoadReport};
use sequent_node::protocol::{
    ClientMessage, Decoded, EngineMessage, FRAME_LEN_MAX, LoginAcceptedBody, OrderReplyBody,
    decode_client, encode_engine,
};
use serde::Serialize;

use crate::machine::Machine;
use crate::report::{format_ns, format_rate};

/// What to run.
#[derive(Debug, Clone)]
pub struct EngineBenchConfig {
    /// Sessions (connections) in the load.
    pub sessions: u32,
    /// Offered rates, orders per second in all.
    pub rates: Vec<u64>,
    /// Seconds per (target, rate).
    pub seconds: f64,
    /// Where the journals go (a fresh subdirectory per run, removed after).
    pub dir: std::path::PathBuf,
}

/// One measured (target, rate).
#[derive(Debug, Clone, Serialize)]
pub struct EngineRow {
    /// `engine-durable`, `engine-match` or `echo`.
    pub target: &'static str,
    /// Offered orders/s.
    pub offered: u64,
    /// Orders acknowledged per second.
    pub acked_per_sec: u64,
    /// Orders sent.
    pub sent: u64,
    /// Orders acknowledged.
    pub acked: u64,
    /// Intended send → acknowledgement percentiles, ns.
    pub p50_ns: u64,
    /// p99.
    pub p99_ns: u64,
    /// p99.9.
    pub p999_ns: u64,
    /// Max.
    pub max_ns: u64,
    /// Echo p99 / this p99 at the same rate.
    pub ratio_p99_vs_echo: Option<f64>,
}

/// Runs every target at every rate; `progress` sees each row as it is measured.
pub fn run(
    config: &EngineBenchConfig,
    mut progress: impl FnMut(&EngineRow),
) -> anyhow::Result<Vec<EngineRow>> {
    let mut rows = Vec::new();
    for &offered in &config.rates {
        let per_session = (offered / u64::from(config.sessions)).max(1);
        let load = LoadConfig {
            sessions: config.sessions,
            rate_per_session: per_session,
            duration: Duration::from_secs_f64(config.seconds),
        };
        let echo = Echo::start()?;
        let report = sequent_node::load::run(echo.address, &load)?;
        echo.stop();
        let echo_row = row("echo", offered, &report, None);
        progress(&echo_row);
        let echo_p99 = echo_row.p99_ns;
        rows.push(echo_row);
        for (target, hold) in [("engine-durable", true), ("engine-match", false)] {
            let dir = config.dir.join(format!(
                "sequent-bench-engine-{}-{offered}-{target}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            let engine = Engine::start(&EngineConfig::loopback(&dir, hold))?;
            let report = sequent_node::load::run(engine.address(), &load)?;
            engine.shutdown()?;
            let _ = std::fs::remove_dir_all(&dir);
            anyhow::ensure!(
                report.acked + report.rejected == report.sent,
                "{target} at {offered}/s: {} orders sent, {} answered",
                report.sent,
                report.acked + report.rejected
            );
            let row = row(target, offered, &report, Some(echo_p99));
            progress(&row);
            rows.push(row);
        }
    }
    Ok(rows)
}

fn row(
    target: &'static str,
    offered: u64,
    report: &LoadReport,
    echo_p99: Option<u64>,
) -> EngineRow {
    let q = |p: f64| report.latency.value_at_quantile(p);
    let p99 = q(0.99);
    EngineRow {
        target,
        offered,
        acked_per_sec: (report.acked as f64 / report.elapsed.as_secs_f64().max(1e-9)) as u64,
        sent: report.sent,
        acked: report.acked,
        p50_ns: q(0.5),
        p99_ns: p99,
        p999_ns: q(0.999),
        max_ns: report.latency.max(),
        ratio_p99_vs_echo: echo_p99.map(|e| e as f64 / p99.max(1) as f64),
    }
}

/// The baseline server: decode, acknowledge, nothing else.
struct Echo {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Echo {
    fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut workers = Vec::new();
            while !flag.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let flag = Arc::clone(&flag);
                        workers.push(std::thread::spawn(move || echo_connection(stream, &flag)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            for worker in workers {
                let _ = worker.join();
            }
        });
        Ok(Self {
            address,
            stop,
            thread,
        })
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.thread.join();
    }
}

fn echo_connection(mut stream: TcpStream, stop: &AtomicBool) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buffer = Vec::with_capacity(1 << 16);
    let mut chunk = [0u8; 1 << 14];
    let mut out = Vec::with_capacity(1 << 16);
    let mut frame = [0u8; FRAME_LEN_MAX];
    let mut sequence = 0u32;
    while !stop.load(Ordering::Acquire) {
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => return,
        }
        let mut at = 0;
        while let Decoded::Frame(f, len) = decode_client(&buffer[at..]) {
            at += len;
            let reply = match f.message {
                ClientMessage::Login(login) => Some((
                    0,
                    EngineMessage::LoginAccepted(LoginAcceptedBody {
                        session: login.session,
                        next_expected: 1.into(),
                    }),
                )),
                ClientMessage::NewOrder(order) => {
                    sequence += 1;
                    Some((
                        sequence,
                        EngineMessage::Accepted(OrderReplyBody {
                            client_order_id: order.client_order_id,
                            reason: 0.into(),
                            reserved: 0.into(),
                        }),
                    ))
                }
                _ => None,
            };
            if let Some((sequence, message)) = reply {
                let len = encode_engine(&mut frame, sequence, &message);
                out.extend_from_slice(&frame[..len]);
            }
        }
        buffer.drain(..at);
        if !out.is_empty() {
            if stream.write_all(&out).is_err() {
                return;
            }
            out.clear();
        }
    }
}

/// A Markdown table with the machine line.
#[must_use]
pub fn render_markdown(
    machine: &Machine,
    command: &str,
    sessions: u32,
    rows: &[EngineRow],
) -> String {
    let mut out = format!(
        "Command: `{command}`\n\nMachine: {}; {sessions} sessions; threads: 2 per session + the engine's gateway, journal, core and housekeeping threads.\n\n",
        machine.summary()
    );
    out.push_str("| target | offered | acked/s | sent | p50 | p99 | p99.9 | max | echo p99 / p99 |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for row in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            row.target,
            format_rate(row.offered),
            format_rate(row.acked_per_sec),
            row.sent,
            format_ns(row.p50_ns),
            format_ns(row.p99_ns),
            format_ns(row.p999_ns),
            format_ns(row.max_ns),
            row.ratio_p99_vs_echo
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"))
        ));
    }
    out
}

/// What [`run_stepped`] runs: every target at every offered rate, `repeats` times.
#[derive(Debug, Clone)]
pub struct SteppedConfig {
    pub sessions: u32,
    /// Offered rates, orders/s in all, rising.
    pub rates: Vec<u64>,
    pub seconds: f64,
    pub repeats: usize,
    pub seed: u64,
    pub dir: std::path::PathBuf,
    /// Cores for the engine's gateway, journal and core threads; when set they are pinned there
    /// and the journal and core stages busy-spin (a many-core machine); else the engine's
    /// defaults (unpinned, blocking waits).
    pub engine_cores: Option<[usize; 3]>,
}

/// One (target, rate) of a stepped run: every repeat's histograms, for the caller to summarize.
#[derive(Debug)]
pub struct Step {
    /// `echo`, `engine-match` or `engine-durable`.
    pub target: &'static str,
    pub offered: u64,
    /// The repeats that completed.
    pub runs: Vec<StepRun>,
    /// Why the step stopped short (the target reset a connection, lost answers, …).
    pub error: Option<String>,
}

/// One repeat of a step.
#[derive(Debug)]
pub struct StepRun {
    /// Offered × [`LoadReport::sustained_share`].
    pub achieved_per_sec: f64,
    /// Intended send → acknowledgement.
    pub ack: Histogram<u64>,
    /// Intended send → the order's `AddOrder` on the feed (engines only).
    pub md: Option<Histogram<u64>>,
    pub md_ticks: u64,
    pub sent: u64,
    pub send_lag_max_ns: u64,
}

/// The stepped-rate engine scenario of `sequent-bench report`: the echo floor, then the engine
/// with replies released after matching and held until durable, each with market data on a
/// unicast loopback line and a subscriber timing the ticks.
pub fn run_stepped(
    config: &SteppedConfig,
    mut progress: impl FnMut(&Step),
) -> anyhow::Result<Vec<Step>> {
    let mut steps = Vec::new();
    // Targets that failed a step (a connection reset under overload, answers lost): the knee is
    // there, and higher rates are not run against them.
    let mut broken: Vec<&str> = Vec::new();
    for &offered in &config.rates {
        let load = LoadConfig {
            sessions: config.sessions,
            rate_per_session: (offered / u64::from(config.sessions)).max(1),
            duration: Duration::from_secs_f64(config.seconds),
        };
        for target in ["echo", "engine-match", "engine-durable"] {
            let mut step = Step {
                target,
                offered,
                runs: Vec::new(),
                error: None,
            };
            if broken.contains(&target) {
                step.error = Some("broke at a lower rate: not run".to_owned());
            } else {
                for repeat in 0..config.repeats.max(1) {
                    match run_once_with_deadline(config, target, offered, load, repeat) {
                        Ok(run) => step.runs.push(run),
                        Err(error) => {
                            step.error = Some(format!("{error:#}"));
                            broken.push(target);
                            break;
                        }
                    }
                }
            }
            progress(&step);
            steps.push(step);
        }
    }
    Ok(steps)
}

/// Longest a load run may take beyond its sending time before the step counts as hung: the
/// load's own drain waits at most 5 s, the engine's shutdown a few more.
const STEP_GRACE: Duration = Duration::from_secs(30);

/// [`run_once`] on its own thread, given up after the run's time plus [`STEP_GRACE`]: a target
/// that hangs (a stage that panicked, a shutdown that never ends) becomes this step's error, not
/// a report that never ends. The abandoned thread is left behind; the process exits after the
/// report.
fn run_once_with_deadline(
    config: &SteppedConfig,
    target: &'static str,
    offered: u64,
    load: LoadConfig,
    repeat: usize,
) -> anyhow::Result<StepRun> {
    let (done, result) = std::sync::mpsc::sync_channel(1);
    let config_owned = config.clone();
    let deadline = load.duration + STEP_GRACE;
    std::thread::Builder::new()
        .name(format!("step-{target}-{offered}"))
        .spawn(move || {
            let _ = done.send(run_once(&config_owned, target, offered, &load, repeat));
        })?;
    match result.recv_timeout(deadline) {
        Ok(outcome) => outcome,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(anyhow::anyhow!(
            "no result {} s after the load started: the target hung",
            deadline.as_secs()
        )),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Err(anyhow::anyhow!("the load run panicked"))
        }
    }
}

/// One load run against one target.
fn run_once(
    config: &SteppedConfig,
    target: &str,
    offered: u64,
    load: &LoadConfig,
    repeat: usize,
) -> anyhow::Result<StepRun> {
    let options = LoadOptions {
        seed: config.seed + repeat as u64,
        market_data: None,
    };
    let report = if target == "echo" {
        let echo = Echo::start()?;
        let report = sequent_node::load::run_with(echo.address, load, &options);
        echo.stop();
        report?
    } else {
        let dir = config.dir.join(format!(
            "sequent-bench-report-engine-{}-{offered}-{target}-{repeat}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let line = SocketAddrV4::new(Ipv4Addr::LOCALHOST, free_udp_port()?);
        let mut engine_config = EngineConfig::loopback(&dir, target == "engine-durable");
        if let Some([gateway, journal, core]) = config.engine_cores {
            engine_config.cores = CoresSection {
                gateway: Some(gateway),
                journal: Some(journal),
                core: Some(core),
                posting: None,
            };
            engine_config.wait = WaitSection {
                journal: WaitName::Spin,
                core: WaitName::Spin,
                posting: WaitName::Blocking,
            };
        }
        engine_config.feed = Some(FeedSection {
            line_a: line,
            line_b: None,
            interface: Ipv4Addr::LOCALHOST,
            ttl: 1,
            send: SendName::Send,
            retransmit: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
            snapshot: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
            history_packets: 65_536,
        });
        let engine = Engine::start(&engine_config)?;
        let options = LoadOptions {
            market_data: Some(line),
            ..options
        };
        let report = sequent_node::load::run_with(engine.address(), load, &options);
        let shutdown = engine.shutdown();
        let _ = std::fs::remove_dir_all(&dir);
        let report = report?;
        shutdown?;
        anyhow::ensure!(
            report.acked + report.rejected == report.sent,
            "{target} at {offered}/s: {} orders sent, {} answered",
            report.sent,
            report.acked + report.rejected
        );
        report
    };
    Ok(StepRun {
        // Offered × the share the target sustained: the sender never slows down (open loop), so
        // what falls short shows as answers trailing the schedule.
        achieved_per_sec: offered as f64 * report.sustained_share(),
        sent: report.sent,
        md_ticks: report.md_ticks,
        send_lag_max_ns: report.send_lag_max_ns,
        md: (target != "echo").then_some(report.md_latency),
        ack: report.latency,
    })
}

/// A UDP port free at the time of asking (the engine binds it as its feed line's destination).
fn free_udp_port() -> std::io::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
