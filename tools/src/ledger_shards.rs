//! `sequent ledger shard` and `sequent ledger coordinator`: the cross-shard two-phase commit of
//! `sequent_ledger::cross_shard` with each shard and the coordinator in its own process, each with
//! its own journal, over TCP on loopback. The state machines decide everything; this module only
//! journals, sends and receives. The protocol is in docs/ledger-format.md ("Shards as processes").
//!
//! - A shard is an engine on its own ring (`ledger_shard_ring`): connection threads publish
//!   coordinator messages into an input ring; a journal stage records them (with the time
//!   stamped on them) while an apply stage runs `Shard::handle`; a reply stage answers only once
//!   the journal's durable sequence covers the input: an answer the coordinator saw is never
//!   lost. It rebuilds itself by replaying its journal (the `fenced` set of the shard lives
//!   outside the ledger, so a shard recovers by replay, not from a ledger snapshot).
//! - The coordinator journals its records (`Begin`, `Commit`, `Abort`, `Done`) and syncs before
//!   it sends any message they cause; restarted, it recovers from them (presumed abort) and skips
//!   input transfers it has already begun.

use std::collections::BTreeSet;
use std::io::{BufReader, BufWriter, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use sequent_journal::Writer;
use sequent_ledger::cross_shard::{
    Coordinator, CrossTransfer, Decision, Leg, Record, Shard, ToCoordinator, ToShard,
    clearing_account, shard_of,
};
use sequent_ledger::{
    Account, AccountFlags, Config, Ledger, PendingState, Transfer, TransferFlags,
};

use crate::ledger_line::{Input, parse_line};
use crate::ledger_wire::{
    FRAME_LEN_MAX, decode_shard_input, decode_to_coordinator, encode_to_shard, read_frame,
    write_frame,
};

/// Journal record kind of a shard's input (`encode_shard_input`).
pub const JOURNAL_KIND_SHARD_INPUT: u8 = 4;
/// Journal record kind of a coordinator record (`Record::encode`).
pub const JOURNAL_KIND_COORDINATOR: u8 = 7;

/// Transfers the coordinator keeps open at once.
const IN_FLIGHT_MAX: usize = 64;
/// How often the coordinator ticks (timeouts, resends) and retries a lost shard.
const TICK: Duration = Duration::from_millis(100);

/// Arguments of `sequent ledger shard`.
#[derive(clap::Args, Debug)]
pub struct ShardArgs {
    /// This shard's index, 0-based.
    #[arg(long)]
    index: u32,
    /// Number of shards.
    #[arg(long)]
    shards: u32,
    /// The shard's journal (created if missing; replayed when it holds records).
    #[arg(long)]
    journal: PathBuf,
    /// Address to listen on for the coordinator.
    #[arg(long, required_unless_present = "dump")]
    listen: Option<SocketAddr>,
    /// Customer accounts 1..=N exist system-wide; this shard holds those with id % shards =
    /// index.
    #[arg(long, default_value_t = 30)]
    accounts: u32,
    /// Opening credit of every customer account (from the shard's equity account).
    #[arg(long, default_value_t = 1_000)]
    opening: u64,
    /// Recover from the journal, print one `balance` line per account and one `leg` line per
    /// cross-shard leg, and exit.
    #[arg(long)]
    dump: bool,
    /// How the shard's ring stages wait when idle.
    #[arg(long, value_enum, default_value_t)]
    wait: crate::ledger_shard_ring::Wait,
}

/// Arguments of `sequent ledger coordinator`.
#[derive(clap::Args, Debug)]
pub struct CoordinatorArgs {
    /// The shards' addresses, in index order.
    #[arg(long, value_delimiter = ',', required = true)]
    shards: Vec<SocketAddr>,
    /// The coordinator's journal (created if missing; recovered from when it holds records).
    #[arg(long)]
    journal: PathBuf,
    /// JSON lines of `transfer` ops (id, debit, credit, amount, ledger, code) between shards.
    #[arg(long)]
    input: PathBuf,
    /// A transfer still preparing after this long is aborted.
    #[arg(long, default_value_t = 2_000)]
    timeout_ms: u64,
}

pub(crate) fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

// ------------------------------------------------------------------------------------ shard

/// Id of a shard's equity account (funds the customers' opening balances).
fn equity_account(index: u32) -> u128 {
    (1u128 << 126) + u128::from(index)
}

/// The shard's ledger before any coordinator message: its customers (limited to their credits),
/// its equity account, a clearing account per other shard, and the opening transfers. A function
/// of the arguments alone, so it is rebuilt, not journaled. Opening transfer ids end in 0xff;
/// leg ids end in 1 to 6.
fn opening_ledger(args: &ShardArgs) -> Ledger {
    let customers: Vec<u128> = (1..=u128::from(args.accounts))
        .filter(|&id| shard_of(id, args.shards) == args.index)
        .collect();
    let mut ledger = Ledger::new(Config {
        accounts_max: customers.len() as u32 + args.shards + 1,
        transfers_max: 1 << 20,
    });
    let account = |id, code, flags| Account {
        id,
        ledger: 1,
        code,
        flags,
        ..Account::default()
    };
    let equity = equity_account(args.index);
    let mut accounts = vec![account(equity, 30, AccountFlags::default())];
    for other in (0..args.shards).filter(|&o| o != args.index) {
        accounts.push(account(
            clearing_account(args.index, other, args.shards),
            20,
            AccountFlags::default(),
        ));
    }
    for &id in &customers {
        accounts.push(account(
            id,
            10,
            AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
        ));
    }
    for a in &accounts {
        let outcome = ledger.create_account(0, a);
        assert!(
            outcome.is_success(),
            "opening account {}: {outcome:?}",
            a.id
        );
    }
    let mut outcomes = Vec::new();
    for &id in &customers {
        ledger.create_transfers(
            0,
            &[Transfer {
                id: (id << 8) | 0xff,
                debit_account_id: equity,
                credit_account_id: id,
                amount: u128::from(args.opening),
                ledger: 1,
                code: 1,
                ..Transfer::default()
            }],
            &mut outcomes,
        );
    }
    assert!(outcomes.iter().all(|o| o.is_success()), "{outcomes:?}");
    ledger
}

/// Runs a shard: replays its journal, then runs it on its ring (`ledger_shard_ring::serve`), each
/// coordinator connection on its own thread.
pub fn shard(args: &ShardArgs) -> anyhow::Result<ExitCode> {
    if args.shards == 0 || args.index >= args.shards {
        bail!("--index must be below --shards");
    }
    let writer = Writer::open(&args.journal, &sequent_journal::Config::default())
        .with_context(|| format!("cannot open the journal in {}", args.journal.display()))?;
    if let Some(truncation) = &writer.open_report().truncated {
        eprintln!(
            "sequent ledger shard {}: journal: {truncation}; that input was never answered",
            args.index
        );
    }
    let mut shard = Shard::new(args.index, args.shards, opening_ledger(args));
    let mut replayed = 0u64;
    let mut now = 0u64;
    if writer.next_sequence() > 1 {
        let mut reader =
            sequent_journal::Reader::open(&args.journal).context("cannot read the journal")?;
        while let Some(record) = reader.next().context("cannot read the journal")? {
            if record.kind != JOURNAL_KIND_SHARD_INPUT {
                continue;
            }
            let input = decode_shard_input(record.payload).with_context(|| {
                format!("journal record {} is not a shard input", record.sequence)
            })?;
            now = now.max(input.ts);
            shard.handle(&input);
            replayed += 1;
        }
    }
    eprintln!(
        "sequent ledger shard {}: replayed {replayed} inputs, digest {}",
        args.index,
        hex(&shard.ledger.state_digest())
    );
    if args.dump {
        dump_shard(&shard.ledger)?;
        return Ok(ExitCode::SUCCESS);
    }
    let listen = args.listen.context("--listen is required")?;
    let listener =
        TcpListener::bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
    eprintln!("sequent ledger shard {}: listening on {listen}", args.index);
    crate::ledger_shard_ring::serve(args.index, &listener, shard, writer, now, args.wait)?;
    Ok(ExitCode::SUCCESS)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One `balance` line per account in id order, then one `leg` line per cross-shard leg.
fn dump_shard(ledger: &Ledger) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut accounts: Vec<_> = ledger.accounts().iter().collect();
    accounts.sort_by_key(|a| a.account.id);
    for a in accounts {
        let b = a.balances;
        writeln!(
            out,
            r#"{{"ev":"balance","account":{},"code":{},"debits_posted":{},"credits_posted":{},"debits_pending":{},"credits_pending":{}}}"#,
            a.account.id,
            a.account.code,
            b.debits_posted,
            b.credits_posted,
            b.debits_pending,
            b.credits_pending
        )?;
    }
    for t in ledger.transfers() {
        if !t.request.flags.contains(TransferFlags::PENDING) {
            continue;
        }
        let leg = if t.request.id & 0xff == Leg::Debit as u128 {
            "debit"
        } else {
            "credit"
        };
        let state = match t.state {
            PendingState::Pending => "pending",
            PendingState::Posted => "posted",
            PendingState::Voided => "voided",
            PendingState::Expired => "expired",
            PendingState::NotPending => "not_pending",
        };
        writeln!(
            out,
            r#"{{"ev":"leg","id":{},"leg":"{leg}","amount":{},"state":"{state}"}}"#,
            t.request.user_data, t.amount
        )?;
    }
    out.flush()?;
    Ok(())
}

// ------------------------------------------------------------------------------ coordinator

/// A connection to one shard; replies arrive on the shared channel from a reader thread.
struct Link {
    index: u32,
    addr: SocketAddr,
    stream: Option<BufWriter<TcpStream>>,
    tried_at: Option<Instant>,
}

impl Link {
    /// Connects if not connected (at most once per tick); a reader thread forwards replies.
    fn connect(&mut self, replies: &mpsc::Sender<ToCoordinator>) {
        if self.stream.is_some() || self.tried_at.is_some_and(|t| t.elapsed() < TICK) {
            return;
        }
        self.tried_at = Some(Instant::now());
        let Ok(stream) = TcpStream::connect_timeout(&self.addr, TICK) else {
            return;
        };
        stream.set_nodelay(true).ok();
        let Ok(reader) = stream.try_clone() else {
            return;
        };
        let replies = replies.clone();
        let index = self.index;
        std::thread::spawn(move || {
            let mut reader = BufReader::new(reader);
            let mut frame = Vec::with_capacity(FRAME_LEN_MAX);
            while let Ok(true) = read_frame(&mut reader, &mut frame) {
                let Some(reply) = decode_to_coordinator(&frame) else {
                    eprintln!("sequent ledger coordinator: shard {index} sent a bad frame");
                    return;
                };
                if replies.send(reply).is_err() {
                    return;
                }
            }
        });
        eprintln!(
            "sequent ledger coordinator: connected to shard {} at {}",
            self.index, self.addr
        );
        self.stream = Some(BufWriter::new(stream));
    }

    /// Sends, or drops the message when the shard is unreachable (the coordinator resends
    /// resolutions on its tick and aborts prepares that time out).
    fn send(&mut self, message: &ToShard) {
        if let Some(stream) = self.stream.as_mut() {
            if write_frame(stream, &encode_to_shard(message)).is_err() {
                self.stream = None;
            }
        }
    }

    fn flush(&mut self) {
        if let Some(stream) = self.stream.as_mut() {
            if stream.flush().is_err() {
                self.stream = None;
            }
        }
    }
}

/// Runs the coordinator over the input's transfers until every one is posted or voided.
pub fn coordinator(args: &CoordinatorArgs) -> anyhow::Result<ExitCode> {
    let shards = args.shards.len() as u32;
    if shards < 2 {
        bail!("--shards needs at least two addresses");
    }
    let mut transfers = Vec::new();
    let mut ids = BTreeSet::new();
    let text = std::fs::read_to_string(&args.input)
        .with_context(|| format!("cannot open {}", args.input.display()))?;
    for (index, line) in text.lines().enumerate() {
        let parsed = parse_line(line).map_err(|e| anyhow::anyhow!("line {}: {e}", index + 1))?;
        let Some(parsed) = parsed else { continue };
        let Input::Transfer(t) = parsed.input else {
            bail!("line {}: only transfer lines are coordinated", index + 1);
        };
        if t.id == 0 || t.id >= 1 << 120 {
            bail!("line {}: ids are 1 to 2^120 - 1", index + 1);
        }
        if !ids.insert(t.id) {
            bail!(
                "line {}: transfer id {} again (ids are unique here)",
                index + 1,
                t.id
            );
        }
        if shard_of(t.debit_account_id, shards) == shard_of(t.credit_account_id, shards) {
            bail!("line {}: debit and credit are on one shard", index + 1);
        }
        transfers.push(CrossTransfer {
            id: t.id,
            debit_account_id: t.debit_account_id,
            credit_account_id: t.credit_account_id,
            amount: t.amount,
            ledger: t.ledger,
            code: t.code,
        });
    }
    let mut writer = Writer::open(&args.journal, &sequent_journal::Config::default())
        .with_context(|| format!("cannot open the journal in {}", args.journal.display()))?;
    if let Some(truncation) = &writer.open_report().truncated {
        eprintln!(
            "sequent ledger coordinator: journal: {truncation}; no message it caused was sent"
        );
    }
    let timeout_ns = args.timeout_ms * 1_000_000;
    let mut records = Vec::new();
    if writer.next_sequence() > 1 {
        let mut reader =
            sequent_journal::Reader::open(&args.journal).context("cannot read the journal")?;
        while let Some(record) = reader.next().context("cannot read the journal")? {
            if record.kind == JOURNAL_KIND_COORDINATOR {
                records.push(Record::decode(record.payload).with_context(|| {
                    format!(
                        "journal record {} is not a coordinator record",
                        record.sequence
                    )
                })?);
            }
        }
    }
    let begun: BTreeSet<u128> = records
        .iter()
        .filter_map(|r| match r {
            Record::Begin { transfer, .. } => Some(transfer.id),
            _ => None,
        })
        .collect();
    let mut coordinator = Coordinator::recover(shards, timeout_ns, &records);
    eprintln!(
        "sequent ledger coordinator: recovered {} records, {} transfers begun, {} in doubt",
        records.len(),
        begun.len(),
        coordinator.in_doubt().len()
    );
    let mut pending = transfers.iter().filter(|t| !begun.contains(&t.id));
    let mut next = pending.next();
    let (reply_tx, replies) = mpsc::channel();
    let mut links: Vec<Link> = args
        .shards
        .iter()
        .enumerate()
        .map(|(index, &addr)| Link {
            index: index as u32,
            addr,
            stream: None,
            tried_at: None,
        })
        .collect();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut open = coordinator.in_doubt().len();
    let mut ticked = Instant::now();
    loop {
        for link in &mut links {
            link.connect(&reply_tx);
        }
        let now = wall_ns();
        while open < IN_FLIGHT_MAX {
            let Some(t) = next else { break };
            coordinator.handle_begin(now, *t);
            open += 1;
            next = pending.next();
        }
        if let Ok(reply) = replies.recv_timeout(Duration::from_millis(5)) {
            coordinator.handle_reply(reply);
            while let Ok(reply) = replies.try_recv() {
                coordinator.handle_reply(reply);
            }
        }
        if ticked.elapsed() >= TICK {
            coordinator.handle_tick(wall_ns());
            ticked = Instant::now();
        }
        // Records on record (synced) before any message they cause.
        let mut recorded = false;
        while let Some(record) = coordinator.poll_record() {
            writer
                .append(JOURNAL_KIND_COORDINATOR, now, &record.encode())
                .context("cannot journal")?;
            recorded = true;
            if let Record::Done { id } = record {
                open -= 1;
                let ev = match coordinator.decision(id) {
                    Some(Decision::Post) => "posted",
                    _ => "voided",
                };
                writeln!(out, r#"{{"ev":"{ev}","id":{id}}}"#)?;
            }
        }
        if recorded {
            writer.sync().context("cannot sync the journal")?;
            out.flush()?;
        }
        while let Some(envelope) = coordinator.poll_message() {
            links[envelope.shard as usize].send(&envelope.message);
        }
        for link in &mut links {
            link.flush();
        }
        if next.is_none() && open == 0 {
            break;
        }
    }
    writer.close().context("cannot close the journal")?;
    eprintln!("sequent ledger coordinator: every transfer is posted or voided");
    Ok(ExitCode::SUCCESS)
}
