//! `sequent payments scenario NAME`: card-acquiring stories run end to end for people to watch
//! (issue 9). Each scenario starts two acquirer simulators as separate processes (this binary
//! re-executed as the hidden `sequent payments acquirer-sim …`, i.e.
//! `sequent_acquirer_sim::cli::main_with_args`), the gateway in this process (the library API of
//! `sequent-payments-node`: `Node::start`), drives the merchant HTTP API over loopback, prints
//! what happened, and ends with one `verdict:` line. Exit code 0 only when every check held.
//!
//! What a scenario checks comes from outside the gateway where it can: the simulators' own
//! records (their clearing files and `stats`), and a replay of the journal (breaker openings,
//! retries elsewhere, the digest the node stopped with). Nothing printed and no file written
//! outside the simulators' folder may hold a card number: the run ends with that scan too.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, ExitCode, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use sequent_payments::routing::Breaker;
use sequent_payments::{AcquirerId, AcquirerRequest, Input, Output, Payments};
use sequent_payments_node::{Node, NodeConfig};
use serde_json::Value;

/// Bounds every wait on a process or a payment; a scenario that needs it has failed.
const PATIENCE: Duration = Duration::from_secs(30);
/// The merchant every scenario but `partial` uses (no 3DS below 500.00, a large daily volume).
const MERCHANT_KEY: &str = "sk_test_merchant_1";
/// Merchant 2 never asks for 3DS: `partial` uses it for amounts above 500.00.
const MERCHANT_NO_3DS_KEY: &str = "sk_test_merchant_2";

/// `sequent payments …`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one card-acquiring scenario end to end (two simulator processes, the gateway, the
    /// merchant API over loopback), print what happened and a verdict; exit 0 only if its
    /// checks hold.
    Scenario(ScenarioArgs),
    /// The acquirer simulator's command line (the scenarios run it as a separate process).
    #[command(name = "acquirer-sim", hide = true, disable_help_flag = true)]
    AcquirerSim {
        /// `sequent-acquirer-sim` arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

/// The stories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Sustained authorisations with both acquirers at 20–80 ms jittered latency.
    Peak,
    /// The cheaper acquirer unreachable ("10 minutes", compressed): fail-over, reversals,
    /// nothing authorised twice, end-of-day reconciliation.
    Outage,
    /// Idempotency keys (same body → same answer, different body → 409, concurrent retries)
    /// and retransmitted STANs at the acquirer.
    Duplicates,
    /// Partial approvals: the hold shrinks, the approved amount is captured or voided.
    Partial,
    /// Answers after the connector's timeout: reversed, recorded as late, retried elsewhere.
    Late,
    /// A clearing file with a dropped, a duplicated and an altered row: reported.
    SettlementMismatch,
}

/// `sequent payments scenario` arguments.
#[derive(Debug, clap::Args)]
pub struct ScenarioArgs {
    /// Which scenario.
    pub name: Scenario,
    /// Smaller and shorter (a few seconds each): what the tests run.
    #[arg(long)]
    pub quick: bool,
    /// Keep every file here (journal, vault, configs, clearing files; `sim/` holds the
    /// simulators' own); default: a fresh folder under the temp dir, removed after the run.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Runs `sequent payments …`.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::AcquirerSim { args } => {
            let code = sequent_acquirer_sim::cli::main_with_args(
                std::iter::once(OsString::from("sequent-acquirer-sim")).chain(args),
            );
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
        }
        Command::Scenario(args) => scenario(&args),
    }
}

fn scenario(args: &ScenarioArgs) -> anyhow::Result<ExitCode> {
    let name = args
        .name
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_owned());
    let (dir, temporary) = match &args.dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("sequent-payments-{name}-{}", std::process::id())),
            true,
        ),
    };
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        bail!(
            "{} is not empty (a scenario needs a fresh journal)",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir.join("sim"))
        .with_context(|| format!("creating {}", dir.display()))?;
    println!(
        "scenario {name}{}: files in {}",
        if args.quick { " (quick)" } else { "" },
        dir.display()
    );
    let mut run = Run {
        dir: dir.clone(),
        quick: args.quick,
        checks: Vec::new(),
    };
    let outcome = match args.name {
        Scenario::Peak => peak(&mut run),
        Scenario::Outage => outage(&mut run),
        Scenario::Duplicates => duplicates(&mut run),
        Scenario::Partial => partial(&mut run),
        Scenario::Late => late(&mut run),
        Scenario::SettlementMismatch => settlement_mismatch(&mut run),
    };
    if let Err(error) = &outcome {
        run.check(&format!("the scenario ran to its end ({error:#})"), false);
    }
    run.check(
        "no card number in the files this run wrote (simulators' own excepted)",
        !files_hold_pan(&dir, &dir.join("sim")),
    );
    let failed: Vec<&str> = run
        .checks
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(what, _)| what.as_str())
        .collect();
    if temporary && failed.is_empty() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if failed.is_empty() {
        println!("verdict: PASS {name}: {} checks held", run.checks.len());
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "verdict: FAIL {name}: {} of {} checks failed: {}",
            failed.len(),
            run.checks.len(),
            failed.join("; ")
        );
        Ok(ExitCode::from(1))
    }
}

/// One scenario run: its folder and the checks so far.
struct Run {
    dir: PathBuf,
    quick: bool,
    checks: Vec<(String, bool)>,
}

impl Run {
    fn check(&mut self, what: &str, ok: bool) {
        println!("  check: {what}: {}", if ok { "ok" } else { "FAILED" });
        self.checks.push((what.to_owned(), ok));
    }

    fn sim(&self, name: &str, config: &str) -> anyhow::Result<Sim> {
        Sim::start(&self.dir.join("sim"), name, config)
    }

    /// The gateway on `sims` (acq-a = acquirer 1, the cheaper, routed first; acq-b = 2).
    fn gateway(&self, sims: &[&Sim], engine: &str, connector_a: &str) -> anyhow::Result<Gateway> {
        let mut text = format!(
            "[gateway]\nlisten = \"127.0.0.1:0\"\nthreads = 4\nring_slots = 1024\n\n\
             [journal]\ndir = \"journal\"\nsegment_mib = 8\n\n\
             [vault]\nkeys = \"vault.keys\"\nrecords = \"vault.records\"\n\n[engine]\n{engine}\n\n\
             [[merchants]]\nid = 1\napi_key = \"{MERCHANT_KEY}\"\n\n\
             [[merchants]]\nid = 2\napi_key = \"{MERCHANT_NO_3DS_KEY}\"\n"
        );
        for (i, sim) in sims.iter().enumerate() {
            text.push_str(&format!(
                "\n[[acquirers]]\nid = {}\nname = \"{}\"\naddress = \"{}\"\nadmin = \"{}\"\n\
                 reconnect_min_ms = 50\nreconnect_max_ms = 200\n{}\n",
                i + 1,
                sim.name,
                sim.addr,
                sim.admin,
                if i == 0 {
                    connector_a
                } else {
                    "forward_retry_ms = 200"
                }
            ));
        }
        let path = self.dir.join("payments.toml");
        std::fs::write(&path, text)?;
        let config = NodeConfig::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
        let node = Node::start(&config)?;
        let addr = node.address();
        println!("gateway: listening on {addr}");
        Ok(Gateway {
            node: Some(node),
            addr,
            config,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Processes: the simulators (separate processes of this binary) and the gateway (in process).

/// An acquirer simulator process.
struct Sim {
    name: String,
    child: Child,
    addr: SocketAddr,
    admin: SocketAddr,
}

impl Sim {
    fn start(dir: &Path, name: &str, config: &str) -> anyhow::Result<Sim> {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!("name = \"{name}\"\nbusiness_date = \"2026-11-24\"\n{config}"),
        )?;
        let mut child = Process::new(std::env::current_exe()?)
            .args(["payments", "acquirer-sim", "--config"])
            .arg(&path)
            .args(["--admin-listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting an acquirer simulator")?;
        let stdout = child.stdout.take().context("simulator stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        let prefix = name.to_owned();
        std::thread::Builder::new()
            .name(format!("{name}-stdout"))
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { return };
                    println!("  [{prefix}] {line}");
                    let _ = tx.send(line);
                }
            })?;
        let mut addr = None;
        let mut admin = None;
        while addr.is_none() || admin.is_none() {
            let line = rx
                .recv_timeout(PATIENCE)
                .context("the simulator did not say where it listens")?;
            if let Some(rest) = line.strip_prefix("listening:") {
                addr = Some(rest.trim().parse()?);
            } else if let Some(rest) = line.strip_prefix("admin:") {
                admin = Some(rest.trim().parse()?);
            }
        }
        Ok(Sim {
            name: name.to_owned(),
            child,
            addr: addr.context("no address")?,
            admin: admin.context("no admin address")?,
        })
    }

    /// One admin command, one reply line.
    fn command(&self, line: &str) -> anyhow::Result<String> {
        let mut s = TcpStream::connect(self.admin)?;
        s.set_read_timeout(Some(PATIENCE))?;
        writeln!(s, "{line}")?;
        let mut reply = String::new();
        BufReader::new(s).read_line(&mut reply)?;
        let reply = reply.trim().to_owned();
        if !reply.starts_with("ok") {
            bail!("{}: `{line}` answered `{reply}`", self.name);
        }
        Ok(reply)
    }

    /// `stats`: (field, value) pairs.
    fn stats(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        let reply = self.command("stats")?;
        let words: Vec<&str> = reply.split_whitespace().skip(2).collect();
        Ok(words
            .chunks(2)
            .filter_map(|w| Some((w.first()?.to_string(), w.get(1)?.parse().ok()?)))
            .collect())
    }

    /// The simulator's own records, from its clearing file: (payment id, kind) per row.
    fn records(&self, dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
        let path = dir.join("sim").join(format!("{}-records.csv", self.name));
        self.command(&format!("clearing {}", path.display()))?;
        let text = std::fs::read_to_string(&path)?;
        Ok(text
            .lines()
            .skip(1)
            .filter_map(|line| {
                let f: Vec<&str> = line.split(',').collect();
                Some((f.get(1)?.get(..9)?.to_owned(), f.get(5)?.to_string()))
            })
            .collect())
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.command("shutdown");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The gateway, in this process.
struct Gateway {
    node: Option<Node>,
    addr: SocketAddr,
    config: NodeConfig,
}

impl Gateway {
    fn metric(&self, name: &str) -> anyhow::Result<u64> {
        let text = http(self.addr, "GET", "/metrics", None, "", "")?.text;
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("sequent_payments_{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("no metric {name}"))
    }

    fn merchant(&self, key: &'static str) -> Merchant {
        Merchant {
            addr: self.addr,
            key,
        }
    }

    /// Blocks until `done()` holds (polled every 50 ms), at most [`PATIENCE`].
    fn wait_until(&self, what: &str, mut done: impl FnMut() -> anyhow::Result<bool>) -> bool {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if done().unwrap_or(false) {
                return true;
            }
            if Instant::now() > deadline {
                println!("  gave up waiting: {what}");
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every reversal was acknowledged and every capture forwarded.
    fn wait_settled(&self, captures: u64) -> bool {
        self.wait_until("reversals and captures acknowledged", || {
            Ok(
                self.metric("reversals_queued")? == self.metric("reversals_acknowledged")?
                    && self.metric("forwards_acknowledged")? >= captures,
            )
        })
    }

    /// End of day: the gateway fetches the acquirer's clearing file and reconciles it.
    fn settle(&self, acquirer: &str) -> anyhow::Result<Value> {
        let r = http(
            self.addr,
            "POST",
            &format!("/settlement/{acquirer}"),
            None,
            "",
            "",
        )?;
        if r.status != 200 {
            bail!("settlement of {acquirer}: {} {}", r.status, r.text);
        }
        let b = &r.body;
        println!(
            "reconciliation {acquirer}: matched {} missing {} unexpected {} duplicated {} amount_mismatch {} balanced {}",
            b["matched"],
            b["missing"],
            b["unexpected"],
            b["duplicated"],
            b["amount_mismatch"],
            b["balanced"]
        );
        Ok(r.body)
    }

    /// Prints and counts what the gateway saw.
    fn print_metrics(&self) -> anyhow::Result<()> {
        let names = [
            "approvals",
            "partial_approvals",
            "declines",
            "acquirer_errors",
            "timeouts",
            "late_answers",
            "reversals_queued",
            "reversals_acknowledged",
            "retransmissions",
            "http_5xx",
        ];
        let mut line = String::from("gateway:");
        for n in names {
            line.push_str(&format!(" {n} {}", self.metric(n)?));
        }
        println!("{line}");
        Ok(())
    }

    /// Stops the node and replays its journal: the digest must be the one it stopped with.
    fn stop_and_replay(&mut self) -> anyhow::Result<Replayed> {
        let node = self.node.take().context("the gateway is stopped")?;
        let (sequence, digest) = node.shutdown()?;
        let mut engine = Payments::new(self.config.engine_config());
        let mut reader = sequent_journal::Reader::open(&self.config.journal.dir)?;
        let mut out = Vec::new();
        let mut replayed = Replayed::default();
        let mut last_acquirer: BTreeMap<u64, AcquirerId> = BTreeMap::new();
        let mut open = vec![false; engine.router().acquirers.len()];
        while let Some(entry) = reader.next()? {
            if entry.kind != sequent_payments_node::pipeline::RECORD_KIND_INPUT {
                continue;
            }
            let input = Input::decode(entry.payload).map_err(|e| anyhow::anyhow!("{e}"))?;
            out.clear();
            engine.handle(entry.sequence, entry.timestamp_ns, &input, &mut out);
            for o in &out {
                if let Output::ToAcquirer {
                    acquirer,
                    payment_id,
                    msg: AcquirerRequest::Authorise { .. },
                    ..
                } = o
                {
                    if let Some(previous) = last_acquirer.insert(payment_id.0, *acquirer) {
                        replayed.retries += 1;
                        if previous != *acquirer {
                            replayed.retries_elsewhere += 1;
                        }
                    }
                }
            }
            for (i, a) in engine.router().acquirers.iter().enumerate() {
                let now_open = matches!(a.breaker, Breaker::Open { .. });
                if now_open && !open[i] {
                    replayed.breaker_openings += 1;
                }
                open[i] = now_open;
            }
            replayed.sequence = entry.sequence;
        }
        replayed.digest_matches = engine.state_digest() == digest && replayed.sequence == sequence;
        println!(
            "journal replayed: sequence {} digest {} ({}), breaker openings {}, retries {} ({} elsewhere)",
            replayed.sequence,
            sequent_payments_node::node::hex(&engine.state_digest()[..8]),
            if replayed.digest_matches {
                "the digest the node stopped with"
            } else {
                "NOT the digest the node stopped with"
            },
            replayed.breaker_openings,
            replayed.retries,
            replayed.retries_elsewhere
        );
        Ok(replayed)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            let _ = node.shutdown();
        }
    }
}

/// What a replay of the journal found.
#[derive(Debug, Default)]
struct Replayed {
    sequence: u64,
    digest_matches: bool,
    breaker_openings: u64,
    retries: u64,
    retries_elsewhere: u64,
}

// ---------------------------------------------------------------------------------------------
// The merchant's side: a small blocking HTTP/1.1 client, one connection per request.

/// An HTTP answer.
#[derive(Debug, Clone)]
struct Http {
    status: u16,
    body: Value,
    text: String,
}

fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    idempotency: &str,
    body: &str,
) -> anyhow::Result<Http> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(PATIENCE))?;
    // HTTP/1.0: the server answers with a plain body read to the end, never chunked (a
    // reconciliation of thousands of lines would be).
    let mut req = format!(
        "{method} {path} HTTP/1.0\r\nHost: sequent\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(key) = key {
        req.push_str(&format!("Authorization: Bearer {key}\r\n"));
    }
    if !idempotency.is_empty() {
        req.push_str(&format!("Idempotency-Key: {idempotency}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no HTTP status")?;
    Ok(Http {
        status,
        body: serde_json::from_str(body).unwrap_or(Value::Null),
        text: body.to_owned(),
    })
}

/// A merchant's client.
#[derive(Clone, Copy)]
struct Merchant {
    addr: SocketAddr,
    key: &'static str,
}

impl Merchant {
    fn post(&self, path: &str, idempotency: &str, body: &str) -> anyhow::Result<Http> {
        http(self.addr, "POST", path, Some(self.key), idempotency, body)
    }

    fn get(&self, path: &str) -> anyhow::Result<Http> {
        http(self.addr, "GET", path, Some(self.key), "", "")
    }

    /// `POST /payments` with a test card; returns the answer.
    fn pay(&self, key: &str, card: u64, amount: u64) -> anyhow::Result<Http> {
        self.post("/payments", key, &payment_body(card, amount))
    }

    /// Polls a payment until it leaves `authorising`; its view.
    fn wait_final(&self, id: u64) -> anyhow::Result<Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let r = self.get(&format!("/payments/{id}"))?;
            let status = r.body["status"].as_str().unwrap_or_default();
            if status != "authorising" && status != "authenticating" && !status.is_empty() {
                return Ok(r.body);
            }
            if Instant::now() > deadline {
                bail!("payment {id} stuck: {}", r.text);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn capture(&self, id: u64, amount: Option<u64>) -> anyhow::Result<Http> {
        let body = amount.map_or_else(String::new, |a| format!(r#"{{"amount": {a}}}"#));
        self.post(
            &format!("/payments/{id}/capture"),
            &format!("cap-{id}"),
            &body,
        )
    }
}

/// The request body for test card number `card` (see [`test_pan`]).
fn payment_body(card: u64, amount: u64) -> String {
    format!(
        r#"{{"amount": {amount}, "currency": 978, "card": {{"number": "{}", "expiry": "12/30"}}}}"#,
        test_pan(card)
    )
}

/// A Luhn-valid 16-digit test card `4000 0…n c`: one card per payment keeps the engine's
/// per-card velocity limit out of the story.
fn test_pan(n: u64) -> String {
    let body = format!("4000{:011}", n % 100_000_000_000);
    let mut sum = 0;
    // The check digit goes last, so the digit before it is doubled first (ISO/IEC 7812-1).
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

fn id_of(r: &Http) -> Option<u64> {
    r.body["id"].as_u64()
}

/// Per payment: authorisations left standing at the acquirers (auth rows − reversal rows) in the
/// simulators' own records, and capture rows.
fn standing(records: &[(String, String)]) -> BTreeMap<u64, (i64, u64)> {
    let mut out: BTreeMap<u64, (i64, u64)> = BTreeMap::new();
    for (payment, kind) in records {
        let Ok(p) = payment.parse() else { continue };
        let e = out.entry(p).or_default();
        match kind.as_str() {
            "auth" => e.0 += 1,
            "reversal" => e.0 -= 1,
            "capture" => e.1 += 1,
            _ => {}
        }
    }
    out
}

/// The reconciliation holds nothing missing, altered or doubled, and each `unexpected` row is an
/// auth the engine had already reversed (its late approval) with its reversal matched: it nets
/// to zero.
fn reconciles(report: &Value) -> bool {
    let clean = ["missing", "amount_mismatch", "duplicated"]
        .iter()
        .all(|f| report[f].as_u64() == Some(0));
    let lines = report["lines"].as_array().cloned().unwrap_or_default();
    let netted = lines
        .iter()
        .filter(|l| l["category"] == "unexpected")
        .all(|l| {
            l["kind"] == "auth"
                && lines.iter().any(|r| {
                    r["kind"] == "reversal"
                        && r["category"] == "matched"
                        && r["payment_id"] == l["payment_id"]
                })
        });
    clean && netted
}

// ---------------------------------------------------------------------------------------------
// The scenarios.

/// Sends `rate` payments/s for `seconds` from `clients` threads, open loop (each at its
/// intended time); returns the payment ids created and the count of 503s.
fn offered_load(
    m: Merchant,
    rate: u64,
    seconds: f64,
    clients: u64,
    first_card: u64,
    progress: impl Fn(f64, u64) + Sync,
) -> anyhow::Result<(Vec<u64>, u64)> {
    let total = (rate as f64 * seconds) as u64;
    let ids = Mutex::new(Vec::new());
    let no_route = AtomicU64::new(0);
    let sent = AtomicU64::new(0);
    let errors = Mutex::new(Vec::new());
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    std::thread::scope(|scope| {
        for c in 0..clients {
            let (ids, no_route, sent, errors) = (&ids, &no_route, &sent, &errors);
            scope.spawn(move || {
                let mut i = c;
                while i < total {
                    let due = start + interval * u32::try_from(i).unwrap_or(u32::MAX);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    match m.pay(
                        &format!("load-{first_card}-{i}"),
                        first_card + i,
                        100 + i % 4_000,
                    ) {
                        Ok(r) if r.status == 201 => {
                            if let Some(id) = id_of(&r) {
                                ids.lock().unwrap_or_else(|e| e.into_inner()).push(id);
                            }
                        }
                        Ok(r) if r.status == 503 => {
                            no_route.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => errors
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(format!("{} {}", r.status, r.text)),
                        Err(e) => errors
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(e.to_string()),
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                    i += clients;
                }
            });
        }
        // Progress once a second, from this thread (it blocks in `sleep`).
        let mut next = 1.0;
        while sent.load(Ordering::Relaxed) < total {
            std::thread::sleep(Duration::from_millis(100));
            let t = start.elapsed().as_secs_f64();
            if t >= next {
                progress(t, sent.load(Ordering::Relaxed));
                next += 1.0;
            }
        }
    });
    let errors = errors.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = errors.first() {
        bail!("{} payment requests failed, first: {e}", errors.len());
    }
    Ok((
        ids.into_inner().unwrap_or_else(|e| e.into_inner()),
        no_route.into_inner(),
    ))
}

fn peak(run: &mut Run) -> anyhow::Result<()> {
    // At 50 ms mean latency and 64 authorisations in flight per acquirer (the engine's limit),
    // the two take about 2 500/s: the offered rate is well inside, what is measured is the gateway.
    let (rate, seconds) = if run.quick { (150, 2.0) } else { (400, 15.0) };
    let latency = "latency_ms = 20\njitter_ms = 60\n";
    let a = run.sim("acq-a", &format!("seed = 1\n{latency}"))?;
    let b = run.sim("acq-b", &format!("seed = 2\n{latency}"))?;
    println!("acquirers: acq-a and acq-b answer in 20–80 ms (uniform jitter)");
    let mut gw = run.gateway(&[&a, &b], "auth_timeout_ms = 5000", "")?;
    let m = gw.merchant(MERCHANT_KEY);
    println!("offering {rate} authorisations/s for {seconds} s from 8 merchant connections");
    let start = Instant::now();
    let (ids, no_route) = offered_load(m, rate, seconds, 8, 1, |t, sent| {
        let approved = gw.metric("approvals").unwrap_or(0);
        println!(
            "  t={t:>4.1}s sent {sent:>6} approved {approved:>6} ({:.0} authorisations/s)",
            approved as f64 / t
        );
    })?;
    let created = ids.len() as u64;
    let all_answered = gw.wait_until("every authorisation answered", || {
        Ok(gw.metric("approvals")? + gw.metric("declines")? >= created)
    });
    let elapsed = start.elapsed().as_secs_f64();
    let approved = gw.metric("approvals")?;
    println!(
        "sent {} created {created} no-route {no_route}; approved {approved} in {elapsed:.2} s: {:.0} authorisations/s sustained",
        (rate as f64 * seconds) as u64,
        approved as f64 / elapsed
    );
    gw.print_metrics()?;
    let mut authorised = 0;
    for id in &ids {
        if m.wait_final(*id)?["status"] == "authorised" {
            authorised += 1;
        }
    }
    run.check("every request created a payment (no 503)", no_route == 0);
    run.check(
        "every payment answered and authorised",
        all_answered && authorised == created,
    );
    run.check(
        "no timeouts at 20–80 ms",
        gw.metric("timeouts")? == 0 && gw.metric("http_5xx")? == 0,
    );
    run.check(
        "the gateway kept up: every authorisation in within 1 s of the last request",
        elapsed <= seconds + 1.0,
    );
    let ra = gw.settle("acq-a")?;
    let rb = gw.settle("acq-b")?;
    run.check(
        "both reconciliations balance",
        ra["balanced"] == true && rb["balanced"] == true,
    );
    let replayed = gw.stop_and_replay()?;
    run.check("replay reproduces the digest", replayed.digest_matches);
    Ok(())
}

fn outage(run: &mut Run) -> anyhow::Result<()> {
    let (rate, before, during, after) = if run.quick {
        (40, 1.0, 2.0, 1.0)
    } else {
        (60, 3.0, 10.0, 3.0)
    };
    let latency = "latency_ms = 20\njitter_ms = 30\n";
    let a = run.sim("acq-a", &format!("seed = 1\n{latency}"))?;
    let b = run.sim("acq-b", &format!("seed = 2\n{latency}"))?;
    let breaker_open_ms = (during * 1000.0 / 4.0) as u64;
    let mut gw = run.gateway(
        &[&a, &b],
        &format!(
            "auth_timeout_ms = 3000\nbreaker_failures = 3\nbreaker_open_ms = {breaker_open_ms}"
        ),
        "response_timeout_ms = 250\nforward_retry_ms = 1000",
    )?;
    let m = gw.merchant(MERCHANT_KEY);
    println!(
        "acq-a (cheaper, routed first) goes silent for \"10 minutes\", compressed to {during} s; {rate} payments/s throughout"
    );
    let mut ids = Vec::new();
    let mut no_route = 0;
    let mut card = 1;
    for (phase, seconds, then) in [
        ("before", before, Some("outage drop")),
        ("outage", during, Some("outage refuse")),
        ("outage", during, Some("outage off")),
        ("after", after, None),
    ] {
        let seconds = if phase == "outage" {
            seconds / 2.0
        } else {
            seconds
        };
        let (mut i, n) = offered_load(m, rate, seconds, 4, card, |_, _| {})?;
        card += 100_000;
        println!(
            "  {phase}: {} payments created, {n} refused (no route), approvals so far {}, timeouts {}, errors {}",
            i.len(),
            gw.metric("approvals")?,
            gw.metric("timeouts")?,
            gw.metric("acquirer_errors")?
        );
        ids.append(&mut i);
        no_route += n;
        if let Some(command) = then {
            println!("  acq-a: {}", a.command(command)?);
        }
    }
    let mut authorised = 0;
    let mut at_b = 0;
    let mut captures = 0;
    for id in &ids {
        let v = m.wait_final(*id)?;
        if v["status"] == "authorised" {
            authorised += 1;
            at_b += u64::from(v["acquirer"] == 2);
            if m.capture(*id, None)?.body["status"] == "captured" {
                captures += 1;
            }
        }
    }
    println!(
        "{} payments: {authorised} authorised ({at_b} at acq-b), {captures} captured, {no_route} refused with 503",
        ids.len()
    );
    let settled = gw.wait_settled(captures);
    gw.print_metrics()?;
    run.check(
        "every payment authorised (failed over) and captured",
        authorised == ids.len() && captures == authorised as u64,
    );
    run.check("traffic failed over to acq-b", at_b > 0);
    run.check(
        "every pending reversal acknowledged, every capture forwarded",
        settled && gw.metric("reversals_queued")? > 0,
    );
    let mut records = a.records(&run.dir)?;
    records.extend(b.records(&run.dir)?);
    let standing = standing(&records);
    let twice = standing.values().filter(|(n, _)| *n > 1).count();
    println!(
        "simulators' own records: {} payments, {twice} with more than one authorisation standing",
        standing.len()
    );
    run.check(
        "nothing authorised twice (simulators' records)",
        twice == 0 && standing.values().filter(|(n, _)| *n == 1).count() == authorised,
    );
    let ra = gw.settle("acq-a")?;
    let rb = gw.settle("acq-b")?;
    run.check(
        "end-of-day reconciliation balances (late approvals net out by their reversals)",
        reconciles(&ra) && reconciles(&rb) && rb["balanced"] == true,
    );
    let replayed = gw.stop_and_replay()?;
    run.check("the breaker opened", replayed.breaker_openings > 0);
    run.check(
        "authorisations retried elsewhere",
        replayed.retries_elsewhere > 0,
    );
    run.check("replay reproduces the digest", replayed.digest_matches);
    Ok(())
}

fn duplicates(run: &mut Run) -> anyhow::Result<()> {
    // acq-a answers only the first of every two business requests on a connection: lost answers
    // make the gateway retransmit captures and reversals with the same STAN and RRN.
    let a = run.sim(
        "acq-a",
        "seed = 1\nlatency_ms = 5\nburst_size = 2\nburst_answered = 1\n",
    )?;
    let b = run.sim("acq-b", "seed = 2\nlatency_ms = 5\n")?;
    let mut gw = run.gateway(
        &[&a, &b],
        "auth_timeout_ms = 3000",
        "response_timeout_ms = 300",
    )?;
    let m = gw.merchant(MERCHANT_KEY);
    let first = m.pay("order-1", 1, 1_000)?;
    let again = m.pay("order-1", 1, 1_000)?;
    println!(
        "order-1: {} id {}; the same key and body again: {} id {}",
        first.status, first.body["id"], again.status, again.body["id"]
    );
    run.check(
        "same key, same body: the first answer",
        first.status == 201 && again.status == first.status && again.body == first.body,
    );
    let conflict = m.pay("order-1", 1, 1_001)?;
    println!(
        "order-1 with another amount: {} {}",
        conflict.status, conflict.body["error"]
    );
    run.check(
        "same key, different body: 409 conflict",
        conflict.status == 409 && conflict.body["error"] == "idempotency_key_reused",
    );
    // Four retries of one request at once: one payment.
    let answers: Vec<Option<u64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(move || m.pay("order-2", 2, 2_000).ok().and_then(|r| id_of(&r))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().ok().flatten())
            .collect()
    });
    println!("order-2 sent four times at once: ids {answers:?}");
    run.check(
        "concurrent retries: one payment",
        answers.iter().all(|a| a.is_some() && *a == answers[0]),
    );
    let mut ids = vec![id_of(&first).context("order-1 has no id")?];
    ids.extend(answers[0]);
    for i in 3..9 {
        ids.extend(id_of(&m.pay(&format!("order-{i}"), i, 1_000 + i)?));
    }
    let mut captures = 0;
    for id in &ids {
        if m.wait_final(*id)?["status"] == "authorised"
            && m.capture(*id, None)?.body["status"] == "captured"
        {
            captures += 1;
        }
        // A capture retried by the merchant: the first answer, no second capture.
        let retry = m.capture(*id, None)?;
        if retry.status >= 500 {
            bail!("capture retry of {id}: {} {}", retry.status, retry.text);
        }
    }
    let settled = gw.wait_settled(captures);
    gw.print_metrics()?;
    let stats = a.stats()?;
    println!("acq-a stats: {stats:?}");
    run.check(
        "every payment authorised and captured once",
        captures == ids.len() as u64 && settled,
    );
    run.check(
        "the gateway retransmitted (same STAN) and acq-a recognised the duplicates",
        gw.metric("retransmissions")? > 0 && stats.get("duplicates").copied().unwrap_or(0) > 0,
    );
    let mut records = a.records(&run.dir)?;
    records.extend(b.records(&run.dir)?);
    let standing = standing(&records);
    run.check(
        "acquirers' records: one authorisation and one capture per payment",
        ids.iter()
            .all(|id| standing.get(id).is_some_and(|&(n, c)| n == 1 && c == 1))
            && standing.values().all(|&(n, c)| n <= 1 && c <= 1),
    );
    let ra = gw.settle("acq-a")?;
    let rb = gw.settle("acq-b")?;
    run.check(
        "reconciliation: nothing duplicated or missing",
        reconciles(&ra) && reconciles(&rb),
    );
    let replayed = gw.stop_and_replay()?;
    run.check("replay reproduces the digest", replayed.digest_matches);
    Ok(())
}

fn partial(run: &mut Run) -> anyhow::Result<()> {
    let rule = "latency_ms = 5\npartial_over_minor = 50000\n";
    let a = run.sim("acq-a", &format!("seed = 1\n{rule}"))?;
    let b = run.sim("acq-b", &format!("seed = 2\n{rule}"))?;
    println!("acquirers approve at most 500.00: more is approved partially for 500.00");
    let mut gw = run.gateway(&[&a, &b], "auth_timeout_ms = 3000", "")?;
    let m = gw.merchant(MERCHANT_NO_3DS_KEY);
    let n = if run.quick { 3 } else { 10 };
    let mut partials = Vec::new();
    let mut fulls = 0;
    for i in 0..n {
        for (amount, full) in [(80_000 + i, false), (10_000 + i, true)] {
            let r = m.pay(&format!("order-{amount}"), amount, amount)?;
            let v = m.wait_final(id_of(&r).context("no id")?)?;
            println!(
                "  payment {} asked {} authorised {} status {}",
                v["id"], v["amount"], v["authorised"], v["status"]
            );
            if full {
                fulls += u64::from(v["authorised"] == v["amount"]);
            } else if v["authorised"] == 50_000 && v["status"] == "authorised" {
                partials.push(v["id"].as_u64().unwrap_or(0));
            }
        }
    }
    run.check(
        "every amount above 500.00 partially approved",
        partials.len() as u64 == n,
    );
    run.check("every smaller amount fully approved", fulls == n);
    // Capture the approved amount of all but one; void the last.
    let mut captures = 0;
    let last = partials.pop().context("no partial approval")?;
    for id in &partials {
        let over = m.capture(*id, Some(80_000))?;
        let c = m.post(
            &format!("/payments/{id}/capture"),
            &format!("cap-ok-{id}"),
            r#"{"amount": 50000}"#,
        )?;
        println!(
            "  capture {id}: 800.00 → {} {}; 500.00 → {} {}",
            over.status, over.body["error"], c.status, c.body["status"]
        );
        captures += u64::from(over.status == 422 && c.body["status"] == "captured");
    }
    let void = m.post(
        &format!("/payments/{last}/void"),
        &format!("void-{last}"),
        "",
    )?;
    println!("  void {last}: {}", void.body["status"]);
    run.check(
        "more than the approved amount refused; the approved amount captured",
        captures == partials.len() as u64,
    );
    run.check("a partial approval voided", void.body["status"] == "voided");
    let settled = gw.wait_settled(captures);
    gw.print_metrics()?;
    run.check(
        "the gateway counted the partial approvals",
        gw.metric("partial_approvals")? == n && settled,
    );
    let ra = gw.settle("acq-a")?;
    let rb = gw.settle("acq-b")?;
    run.check(
        "both reconciliations balance",
        ra["balanced"] == true && rb["balanced"] == true,
    );
    let replayed = gw.stop_and_replay()?;
    run.check("replay reproduces the digest", replayed.digest_matches);
    Ok(())
}

fn late(run: &mut Run) -> anyhow::Result<()> {
    let a = run.sim("acq-a", "seed = 1\nlatency_ms = 700\n")?;
    let b = run.sim("acq-b", "seed = 2\nlatency_ms = 10\n")?;
    println!("acq-a answers in 700 ms; the gateway waits 250 ms");
    let mut gw = run.gateway(
        &[&a, &b],
        "auth_timeout_ms = 3000\nbreaker_failures = 3\nbreaker_open_ms = 1000",
        "response_timeout_ms = 250",
    )?;
    let m = gw.merchant(MERCHANT_KEY);
    let n = if run.quick { 5 } else { 12 };
    let mut ids = Vec::new();
    for i in 0..n {
        ids.extend(id_of(&m.pay(&format!("order-{i}"), i, 1_000 + i)?));
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut at_b = 0;
    for id in &ids {
        let v = m.wait_final(*id)?;
        println!(
            "  payment {id}: {} at acquirer {} (attempt {})",
            v["status"], v["acquirer"], v["attempt"]
        );
        at_b += u64::from(v["status"] == "authorised" && v["acquirer"] == 2);
    }
    let late_seen = gw.wait_until("late answers", || {
        Ok(gw.metric("late_answers")? > 0 && gw.metric("engine_late_replies")? > 0)
    });
    let settled = gw.wait_settled(0);
    gw.print_metrics()?;
    run.check(
        "every payment authorised at acq-b after the timeout",
        at_b == ids.len() as u64,
    );
    run.check("late answers recorded by the engine", late_seen);
    run.check(
        "every timed-out authorisation reversed and acknowledged",
        settled && gw.metric("reversals_queued")? >= gw.metric("timeouts")?,
    );
    let records = a.records(&run.dir)?;
    let standing_a = standing(&records);
    run.check(
        "acq-a's own records: every authorisation reversed",
        !standing_a.is_empty() && standing_a.values().all(|&(n, _)| n == 0),
    );
    let ra = gw.settle("acq-a")?;
    run.check(
        "acq-a reconciles (late approvals net out by their reversals)",
        reconciles(&ra),
    );
    let replayed = gw.stop_and_replay()?;
    run.check(
        "authorisations retried elsewhere",
        replayed.retries_elsewhere > 0,
    );
    run.check("replay reproduces the digest", replayed.digest_matches);
    Ok(())
}

fn settlement_mismatch(run: &mut Run) -> anyhow::Result<()> {
    let a = run.sim(
        "acq-a",
        "seed = 1\nlatency_ms = 2\n[mismatch]\nseed = 5\ndrop_rate = 0.1\nduplicate_rate = 0.1\nalter_rate = 0.1\n",
    )?;
    let b = run.sim("acq-b", "seed = 2\nlatency_ms = 2\n")?;
    println!("acq-a's clearing file drops, duplicates and alters about one row in ten");
    let mut gw = run.gateway(&[&a, &b], "auth_timeout_ms = 3000", "")?;
    let m = gw.merchant(MERCHANT_KEY);
    let n = 20;
    let mut captures = 0;
    for i in 0..n {
        let id = id_of(&m.pay(&format!("order-{i}"), i, 1_000 + i)?).context("no id")?;
        if m.wait_final(id)?["status"] == "authorised"
            && m.capture(id, None)?.body["status"] == "captured"
        {
            captures += 1;
        }
    }
    let settled = gw.wait_settled(captures);
    gw.print_metrics()?;
    run.check(
        "every payment authorised and captured",
        captures == n && settled,
    );
    let ra = gw.settle("acq-a")?;
    for l in ra["lines"].as_array().into_iter().flatten() {
        if l["category"] != "matched" {
            println!(
                "  {}: payment {} {} amount {} expected {}",
                l["category"].as_str().unwrap_or("?"),
                l["payment_id"],
                l["kind"].as_str().unwrap_or("?"),
                l["amount"],
                l["expected"]
            );
        }
    }
    let at_least_one = |f: &str| ra[f].as_u64().unwrap_or(0) > 0;
    run.check("a dropped row reported missing", at_least_one("missing"));
    run.check(
        "a doubled row reported duplicated",
        at_least_one("duplicated"),
    );
    run.check(
        "an altered row reported as an amount mismatch",
        at_least_one("amount_mismatch"),
    );
    run.check(
        "acq-a's file not reported balanced",
        ra["balanced"] == false,
    );
    let replayed = gw.stop_and_replay()?;
    run.check("replay reproduces the digest", replayed.digest_matches);
    Ok(())
}

/// True when a file under `dir` (outside `except`) holds a 13–19 digit Luhn-valid run.
fn files_hold_pan(dir: &Path, except: &Path) -> bool {
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.starts_with(except) {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p)
                .is_ok_and(|bytes| sequent_payments_node::edge::contains_pan(&bytes))
            {
                println!("  a card number in {}", p.display());
                return true;
            }
        }
    }
    false
}
