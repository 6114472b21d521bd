//! The payments gateway benchmark (`sequent-bench payments`, issue 9): the whole pipeline of
//! `sequent-payments-node` (HTTP, tokenisation, sequencer, journal ∥ engine, dispatcher, ISO 8583
//! connectors) against two in-process acquirer simulators on loopback, beside the engine alone
//! (`Payments::handle` in memory, no I/O) and the vault's tokenisation, so the ratios show what
//! the edge costs.
//!
//! - Closed loop: `clients` merchant connections (keep-alive) each create a payment and poll it
//!   until the acquirer's answer is in: authorisations/s end to end at that concurrency.
//! - Sustained: the same clients send back to back without waiting for the authorisation; the
//!   rate is approvals over the time until the last one is in (what the pipeline drains).
//! - Open loop: a fixed offered rate; each request's latency counts from its *intended* send
//!   time, so a stall delays every request behind it as a merchant would see (no coordinated
//!   omission).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use sequent_acquirer_sim::SimConfig;
use sequent_acquirer_sim::server::{Shared, local, spawn_acquirer_listener, spawn_admin_listener};
use sequent_payments::{
    AcquirerRequest, AcquirerResult, Bin, Config, CreatePayment, Expiry, IdemKey, Input,
    MerchantId, Output, Payments, Token,
};
use sequent_payments_node::{Node, NodeConfig};
use sequent_vault::{KeySet, Pan, Vault};
use serde::Serialize;

/// Every HTTP wait is bounded by this; a run that needs it has failed.
const PATIENCE: Duration = Duration::from_secs(30);
/// The engine keeps at most `payments_max` (65 536 in `Config::example`) payments: the runs
/// together stay below it.
const GATEWAY_PAYMENTS_MAX: u64 = 60_000;
/// Threads the gateway runs besides its HTTP workers: journal, core, dispatcher, timer, re-entry,
/// two connectors; each in-process simulator adds an acceptor and a connection thread.
const GATEWAY_FIXED_THREADS: usize = 7 + 2 * 2;

/// What to run.
#[derive(Debug, Clone)]
pub struct PaymentsBenchConfig {
    /// Merchant connections of the closed loop and the sustained run.
    pub clients: usize,
    /// Gateway HTTP worker threads.
    pub http_threads: usize,
    /// Seconds per gateway run.
    pub seconds: f64,
    /// Offered requests/s of the open loop.
    pub open_rate: u64,
    /// Tokenisations and engine authorisations per in-memory run.
    pub memory_ops: u64,
}

/// Latency percentiles, µs.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub samples: u64,
}

/// One run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct PaymentsReport {
    pub cores: usize,
    pub threads: usize,
    pub clients: usize,
    /// Closed loop: create then poll until authorised, authorisations/s.
    pub closed_loop_auth_per_sec: f64,
    /// Create → authorised as the client saw it.
    pub closed_loop_latency: Percentiles,
    /// Back-to-back creates: approvals over the time until the last one was in.
    pub sustained_auth_per_sec: f64,
    /// Creates refused with 503 (no route: in-flight limits) during the sustained run.
    pub sustained_no_route: u64,
    /// Open loop offered rate, requests/s.
    pub open_rate: u64,
    /// `POST /payments` → 201, from each request's intended send time.
    pub open_loop_latency: Percentiles,
    /// Vault FF1 tokenisations/s (one thread).
    pub ff1_tokens_per_sec: f64,
    /// Vault random tokenisations/s (one thread, in-memory records).
    pub random_tokens_per_sec: f64,
    /// `Payments::handle` in memory: create + approval per authorisation, authorisations/s.
    pub engine_auth_per_sec: f64,
}

fn percentiles(h: &Histogram<u64>) -> Percentiles {
    Percentiles {
        p50_us: h.value_at_quantile(0.50),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        max_us: h.max(),
        samples: h.len(),
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid HdrHistogram bounds")
}

/// Threads the gateway part runs at once (for the oversubscription warning).
pub fn threads(config: &PaymentsBenchConfig) -> usize {
    GATEWAY_FIXED_THREADS + config.http_threads + config.clients
}

/// Runs every part.
pub fn run(config: &PaymentsBenchConfig) -> anyhow::Result<PaymentsReport> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let (ff1, random) = tokenisation(config.memory_ops);
    eprintln!("tokenisation: FF1 {ff1:.0}/s, random {random:.0}/s");
    let engine = engine_alone(config.memory_ops);
    eprintln!("engine alone: {engine:.0} authorisations/s");
    let dir = std::env::temp_dir().join(format!("sequent-bench-payments-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let outcome = gateway_runs(config, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let (closed, closed_latency, sustained, no_route, open) = outcome?;
    Ok(PaymentsReport {
        cores,
        threads: threads(config),
        clients: config.clients,
        closed_loop_auth_per_sec: closed,
        closed_loop_latency: closed_latency,
        sustained_auth_per_sec: sustained,
        sustained_no_route: no_route,
        open_rate: config.open_rate,
        open_loop_latency: open,
        ff1_tokens_per_sec: ff1,
        random_tokens_per_sec: random,
        engine_auth_per_sec: engine,
    })
}

/// A Luhn-valid 16-digit test card.
fn test_pan(n: u64) -> String {
    let body = format!("4000{:011}", n % 100_000_000_000);
    let mut sum = 0;
    for (i, b) in body.bytes().rev().enumerate() {
        let d = u32::from(b - b'0');
        sum += if i % 2 == 0 {
            let x = d * 2;
            if x > 9 { x - 9 } else { x }
        } else {
            d
        };
    }
    format!("{body}{}", (10 - sum % 10) % 10)
}

fn tokenisation(ops: u64) -> (f64, f64) {
    let mut rng = rand_core::UnwrapErr(rand_core::OsRng);
    let keys = KeySet::generate(&mut rng);
    let (mut vault, _grant) = Vault::in_memory(keys, rng);
    let pans: Vec<Pan> = (0..1024)
        .map(|i| Pan::parse(&test_pan(i)).expect("a valid test card"))
        .collect();
    let start = Instant::now();
    for i in 0..ops {
        let t = vault
            .tokenise_ff1(&pans[(i % 1024) as usize])
            .expect("FF1 tokenises a valid card");
        std::hint::black_box(t);
    }
    let ff1 = ops as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    for i in 0..ops {
        let t = vault
            .tokenise_random(&pans[(i % 1024) as usize])
            .expect("a random token for a valid card");
        std::hint::black_box(t);
    }
    let random = ops as f64 / start.elapsed().as_secs_f64();
    (ff1, random)
}

/// `Payments::handle` alone: create, then the acquirer's approval, per authorisation. A fresh
/// engine every `GATEWAY_PAYMENTS_MAX` payments (its table is bounded).
fn engine_alone(ops: u64) -> f64 {
    // One input per ms of sequenced time: below the merchant velocity limit (10 000/s).
    const NS_PER_AUTH: u64 = 1_000_000;
    let mut out = Vec::with_capacity(64);
    let mut engine = Payments::new(Config::example());
    let mut seq = 0u64;
    let start = Instant::now();
    for i in 0..ops {
        if i % GATEWAY_PAYMENTS_MAX == 0 && i > 0 {
            engine = Payments::new(Config::example());
        }
        seq += 1;
        let mut body_hash = [0u8; 32];
        body_hash[..8].copy_from_slice(&i.to_le_bytes());
        let create = Input::CreatePayment(CreatePayment {
            merchant: MerchantId(1),
            key: IdemKey(u128::from(i) + 1),
            body_hash,
            amount: 100 + i % 1_000,
            currency: 978,
            token: Token(0x7e57_0000_0000_0000_0000_0000_0000_0000 | u128::from(i)),
            bin: Bin(40_000_000),
            last4: 4242,
            expiry: Expiry(9912),
            three_ds: None,
        });
        out.clear();
        engine.handle(seq, seq * NS_PER_AUTH, &create, &mut out);
        let sent = out.iter().find_map(|o| match o {
            Output::ToAcquirer {
                acquirer,
                payment_id,
                attempt,
                msg: AcquirerRequest::Authorise { amount, .. },
            } => Some((*acquirer, *payment_id, *attempt, *amount)),
            _ => None,
        });
        let Some((acquirer, payment_id, attempt, amount)) = sent else {
            panic!("the engine sent no authorisation: {out:?}");
        };
        seq += 1;
        out.clear();
        engine.handle(
            seq,
            seq * NS_PER_AUTH,
            &Input::AcquirerReply {
                acquirer,
                payment_id,
                attempt,
                result: AcquirerResult::Approved {
                    auth_code: *b"123456",
                    approved_amount: amount,
                },
            },
            &mut out,
        );
        std::hint::black_box(&out);
    }
    ops as f64 / start.elapsed().as_secs_f64()
}

type GatewayFigures = (f64, Percentiles, f64, u64, Percentiles);

fn start_sim(name: &str, seed: u64) -> anyhow::Result<(Arc<Shared>, SocketAddr, SocketAddr)> {
    let config = SimConfig {
        name: name.into(),
        seed,
        business_date: Some("2026-11-24".into()),
        ..SimConfig::default()
    };
    let shared = Shared::new(config, None);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = local(&listener)?;
    spawn_acquirer_listener(Arc::clone(&shared), listener)?;
    let admin_listener = TcpListener::bind("127.0.0.1:0")?;
    let admin = local(&admin_listener)?;
    spawn_admin_listener(Arc::clone(&shared), admin_listener)?;
    Ok((shared, addr, admin))
}

fn gateway_runs(
    config: &PaymentsBenchConfig,
    dir: &std::path::Path,
) -> anyhow::Result<GatewayFigures> {
    let (sim_a, addr_a, admin_a) = start_sim("acq-a", 1)?;
    let (sim_b, addr_b, admin_b) = start_sim("acq-b", 2)?;
    let text = format!(
        "[gateway]\nlisten = \"127.0.0.1:0\"\nthreads = {}\nring_slots = 4096\nreply_timeout_ms = 10000\n\n\
         [journal]\ndir = \"journal\"\nsegment_mib = 64\n\n\
         [vault]\nkeys = \"vault.keys\"\nrecords = \"vault.records\"\n\n[engine]\nauth_timeout_ms = 10000\n\n\
         [[merchants]]\nid = 1\napi_key = \"sk_bench\"\n\n\
         [[acquirers]]\nid = 1\nname = \"acq-a\"\naddress = \"{addr_a}\"\nadmin = \"{admin_a}\"\n\n\
         [[acquirers]]\nid = 2\nname = \"acq-b\"\naddress = \"{addr_b}\"\nadmin = \"{admin_b}\"\n",
        config.http_threads
    );
    let path = dir.join("payments.toml");
    std::fs::write(&path, text)?;
    let node_config = NodeConfig::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let node = Node::start(&node_config)?;
    let addr = node.address();
    let next_card = AtomicU64::new(1);
    let figures = (|| {
        // Warm up: connectors signed on, pages touched.
        closed_loop(addr, config.clients, 0.3, &next_card)?;
        let (closed, closed_latency) =
            closed_loop(addr, config.clients, config.seconds, &next_card)?;
        eprintln!("closed loop: {closed:.0} authorisations/s");
        // The open loop before the sustained run: it measures a gateway with no backlog.
        let open = open_loop(addr, config.open_rate, config.seconds, &next_card)?;
        eprintln!(
            "open loop at {}/s: p99 {} µs",
            config.open_rate, open.p99_us
        );
        let (sustained, no_route) =
            sustained(&node, addr, config.clients, config.seconds, &next_card)?;
        eprintln!("sustained: {sustained:.0} authorisations/s ({no_route} × 503)");
        if next_card.load(Ordering::Relaxed) > GATEWAY_PAYMENTS_MAX {
            bail!("the runs made more payments than the engine holds; shorten --seconds");
        }
        Ok((closed, closed_latency, sustained, no_route, open))
    })();
    let _ = node.shutdown();
    sim_a.handle_command("shutdown");
    sim_b.handle_command("shutdown");
    figures
}

/// A keep-alive HTTP/1.1 connection to the gateway.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(addr: SocketAddr) -> anyhow::Result<Client> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(PATIENCE))?;
        Ok(Client {
            writer: s.try_clone()?,
            reader: BufReader::new(s),
        })
    }

    /// One request; (status, body).
    fn request(
        &mut self,
        method: &str,
        path: &str,
        key: &str,
        body: &str,
    ) -> anyhow::Result<(u16, String)> {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer sk_bench\r\nContent-Length: {}\r\n",
            body.len()
        );
        if !key.is_empty() {
            req.push_str(&format!("Idempotency-Key: {key}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        self.writer.write_all(req.as_bytes())?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("no HTTP status in {line:?}"))?;
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse()?;
                }
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    fn create(&mut self, card: u64) -> anyhow::Result<(u16, String)> {
        let body = format!(
            r#"{{"amount": {}, "currency": 978, "card": {{"number": "{}", "expiry": "12/30"}}}}"#,
            100 + card % 1_000,
            test_pan(card)
        );
        self.request("POST", "/payments", &format!("b-{card}"), &body)
    }
}

fn payment_id(body: &str) -> anyhow::Result<u64> {
    let v: serde_json::Value = serde_json::from_str(body)?;
    v["id"]
        .as_u64()
        .with_context(|| format!("no payment id in {body}"))
}

fn closed_loop(
    addr: SocketAddr,
    clients: usize,
    seconds: f64,
    next_card: &AtomicU64,
) -> anyhow::Result<(f64, Percentiles)> {
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(move || -> anyhow::Result<(u64, Histogram<u64>)> {
                    let mut client = Client::connect(addr)?;
                    let mut hist = histogram();
                    let mut done = 0;
                    while Instant::now() < end {
                        let card = next_card.fetch_add(1, Ordering::Relaxed);
                        let t0 = Instant::now();
                        let (status, body) = client.create(card)?;
                        if status != 201 {
                            bail!("create: {status} {body}");
                        }
                        let id = payment_id(&body)?;
                        // Poll until the acquirer's answer is in; the wait blocks, never spins.
                        loop {
                            let (_, view) =
                                client.request("GET", &format!("/payments/{id}"), "", "")?;
                            if !view.contains("\"authorising\"") {
                                break;
                            }
                            if t0.elapsed() > PATIENCE {
                                bail!("payment {id} stuck");
                            }
                            std::thread::sleep(Duration::from_micros(200));
                        }
                        hist.saturating_record(t0.elapsed().as_micros() as u64);
                        done += 1;
                    }
                    Ok((done, hist))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a client panicked")))
            })
            .collect::<Vec<_>>()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let mut total = 0;
    let mut hist = histogram();
    for r in results {
        let (n, h) = r?;
        total += n;
        hist.add(&h)?;
    }
    Ok((total as f64 / elapsed, percentiles(&hist)))
}

fn metric(node: &Node, name: &str) -> u64 {
    node.metrics()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("sequent_payments_{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn sustained(
    node: &Node,
    addr: SocketAddr,
    clients: usize,
    seconds: f64,
    next_card: &AtomicU64,
) -> anyhow::Result<(f64, u64)> {
    let approvals_before = metric(node, "approvals") + metric(node, "declines");
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let created = AtomicU64::new(0);
    let no_route = AtomicU64::new(0);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let (created, no_route) = (&created, &no_route);
                scope.spawn(move || -> anyhow::Result<()> {
                    let mut client = Client::connect(addr)?;
                    while Instant::now() < end {
                        let (status, body) =
                            client.create(next_card.fetch_add(1, Ordering::Relaxed))?;
                        match status {
                            201 => created.fetch_add(1, Ordering::Relaxed),
                            503 => no_route.fetch_add(1, Ordering::Relaxed),
                            _ => bail!("create: {status} {body}"),
                        };
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("a client panicked")))?;
        }
        Ok(())
    })?;
    let created = created.into_inner();
    let deadline = Instant::now() + PATIENCE;
    // Done when the acquirers' answers are in *and* the engine and the journal have taken every
    // input sequenced so far (the connectors count an answer before it is sequenced).
    while metric(node, "approvals") + metric(node, "declines") < approvals_before + created
        || metric(node, "applied") < metric(node, "inputs")
        || metric(node, "journal_written") < metric(node, "inputs")
    {
        if Instant::now() > deadline {
            bail!("authorisations outstanding after the sustained run");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok((
        created as f64 / start.elapsed().as_secs_f64(),
        no_route.into_inner(),
    ))
}

fn open_loop(
    addr: SocketAddr,
    rate: u64,
    seconds: f64,
    next_card: &AtomicU64,
) -> anyhow::Result<Percentiles> {
    // Enough connections that a slow answer does not hold back the next send for long; each
    // connection sends its share at the intended times.
    const CONNECTIONS: u64 = 8;
    let total = (rate as f64 * seconds) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let start = Instant::now() + Duration::from_millis(20);
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..CONNECTIONS)
            .map(|c| {
                scope.spawn(move || -> anyhow::Result<Histogram<u64>> {
                    let mut client = Client::connect(addr)?;
                    let mut hist = histogram();
                    let mut i = c;
                    while i < total {
                        let intended = start + interval * u32::try_from(i).unwrap_or(u32::MAX);
                        if let Some(wait) = intended.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        let (status, body) =
                            client.create(next_card.fetch_add(1, Ordering::Relaxed))?;
                        if status != 201 {
                            bail!("create: {status} {body}");
                        }
                        hist.saturating_record(intended.elapsed().as_micros() as u64);
                        i += CONNECTIONS;
                    }
                    Ok(hist)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a client panicked")))
            })
            .collect::<Vec<_>>()
    });
    let mut hist = histogram();
    for r in results {
        hist.add(&r?)?;
    }
    Ok(percentiles(&hist))
}

/// The Markdown section for docs/BENCHMARKS.md.
pub fn render_markdown(machine_line: &str, command: &str, r: &PaymentsReport) -> String {
    let lat = |p: &Percentiles| {
        format!(
            "p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs ({} samples)",
            p.p50_us, p.p99_us, p.p999_us, p.max_us, p.samples
        )
    };
    format!(
        "Machine: {machine_line}\n\nCommand: `{command}`\n\n\
         | what | figure |\n|---|---|\n\
         | gateway, closed loop ({} clients: create, poll until authorised) | {:.0} authorisations/s |\n\
         | closed loop, create → authorised | {} |\n\
         | gateway, sustained (back-to-back creates, until the last approval) | {:.0} authorisations/s ({} × 503) |\n\
         | open loop at {}/s, `POST /payments` → 201 from the intended send time | {} |\n\
         | vault FF1 tokenisation (one thread) | {:.0} /s |\n\
         | vault random tokenisation (one thread, in memory) | {:.0} /s |\n\
         | baseline: `Payments::handle` in memory (create + approval) | {:.0} authorisations/s |\n\
         | edge cost: engine alone ÷ gateway sustained | {:.0}× |\n",
        r.clients,
        r.closed_loop_auth_per_sec,
        lat(&r.closed_loop_latency),
        r.sustained_auth_per_sec,
        r.sustained_no_route,
        r.open_rate,
        lat(&r.open_loop_latency),
        r.ff1_tokens_per_sec,
        r.random_tokens_per_sec,
        r.engine_auth_per_sec,
        r.engine_auth_per_sec / r.sustained_auth_per_sec.max(1.0),
    )
}
