//! `sequent ledger shard` and `sequent ledger coordinator`: the cross-shard two-phase commit of
//! `sequent_ledger::cross_shard` with each shard and the coordinator in its own process, each with
//! its own journal, over TCP on loopback. The state machines decide everything; this module only
//! journals, sends and receives. The protocol is in docs/ledger-format.md ("Shards as processes").
//!
//! - A shard journals every coordinator message (with the time it stamps on it) before applying
//!   it, and answers only after the journal is synced: an answer the coordinator saw is never
//!   lost. It rebuilds itself by replaying its journal (the `fenced` set of the shard lives
//!   outside the ledger, so a shard recovers by replay, not from a ledger snapshot).
//! - The coordinator journals its records (`Begin`, `Commit`, `Abort`, `Done`) and syncs before
//!   it sends any message they cause; restarted, it recovers from them (presumed abort) and skips
//!   input transfers it has already begun.

use std::collections::BTreeSet;
use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use sequent_journal::Writer;
use sequent_ledger::cross_shard::{
    Coordinator, CrossTransfer, Decision, Leg, Record, Shard, ShardInput, ToCoordinator, ToShard,
    clearing_account, shard_of,
};
use sequent_ledger::{
    Account, AccountFlags, Config, Ledger, PendingState, Transfer, TransferFlags,
};

use crate::ledger_line::{Input, parse_line};

/// Journal record kind of a shard's input (`encode_shard_input`).
pub const JOURNAL_KIND_SHARD_INPUT: u8 = 4;
/// Journal record kind of a coordinator record (`Record::encode`).
pub const JOURNAL_KIND_COORDINATOR: u8 = 5;

/// Largest frame either side accepts; anything longer is a broken peer.
const FRAME_LEN_MAX: usize = 256;
/// Bytes of an encoded `ToShard`.
pub const TO_SHARD_LEN: usize = 1 + 4 * 16 + 4 + 2 + 1 + 1;
/// Bytes of an encoded `ToCoordinator`.
pub const TO_COORDINATOR_LEN: usize = 1 + 16 + 1 + 1;
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

// ------------------------------------------------------------------------------- wire codec

fn leg_byte(leg: Leg) -> u8 {
    leg as u8
}

fn leg_from(byte: u8) -> Option<Leg> {
    match byte {
        1 => Some(Leg::Debit),
        2 => Some(Leg::Credit),
        _ => None,
    }
}

/// `ToShard`, fixed layout little-endian: tag (1 prepare, 2 resolve), transfer id, debit,
/// credit, amount (u128 each), ledger u32, code u16, leg u8 (1 debit, 2 credit), decision u8 (0
/// none, 1 post, 2 void).
pub fn encode_to_shard(message: &ToShard) -> [u8; TO_SHARD_LEN] {
    let (tag, transfer, leg, decision) = match *message {
        ToShard::Prepare { transfer, leg } => (1, transfer, leg, 0),
        ToShard::Resolve {
            transfer,
            leg,
            decision,
        } => (
            2,
            transfer,
            leg,
            match decision {
                Decision::Post => 1,
                Decision::Void => 2,
            },
        ),
    };
    let mut out = [0u8; TO_SHARD_LEN];
    out[0] = tag;
    for (i, v) in [
        transfer.id,
        transfer.debit_account_id,
        transfer.credit_account_id,
        transfer.amount,
    ]
    .into_iter()
    .enumerate()
    {
        out[1 + 16 * i..17 + 16 * i].copy_from_slice(&v.to_le_bytes());
    }
    out[65..69].copy_from_slice(&transfer.ledger.to_le_bytes());
    out[69..71].copy_from_slice(&transfer.code.to_le_bytes());
    out[71] = leg_byte(leg);
    out[72] = decision;
    out
}

/// The inverse of `encode_to_shard`; `None` for any other length or an unknown tag, leg or
/// decision.
pub fn decode_to_shard(bytes: &[u8]) -> Option<ToShard> {
    let bytes: &[u8; TO_SHARD_LEN] = bytes.try_into().ok()?;
    let u128_at = |at: usize| {
        let mut word = [0u8; 16];
        word.copy_from_slice(&bytes[at..at + 16]);
        u128::from_le_bytes(word)
    };
    let transfer = CrossTransfer {
        id: u128_at(1),
        debit_account_id: u128_at(17),
        credit_account_id: u128_at(33),
        amount: u128_at(49),
        ledger: u32::from_le_bytes([bytes[65], bytes[66], bytes[67], bytes[68]]),
        code: u16::from_le_bytes([bytes[69], bytes[70]]),
    };
    let leg = leg_from(bytes[71])?;
    match (bytes[0], bytes[72]) {
        (1, 0) => Some(ToShard::Prepare { transfer, leg }),
        (2, 1 | 2) => Some(ToShard::Resolve {
            transfer,
            leg,
            decision: if bytes[72] == 1 {
                Decision::Post
            } else {
                Decision::Void
            },
        }),
        _ => None,
    }
}

/// `ToCoordinator`: tag (1 prepared, 2 resolved), transfer id u128, leg u8, ok u8 (0 or 1; 0 for
/// resolved).
pub fn encode_to_coordinator(message: &ToCoordinator) -> [u8; TO_COORDINATOR_LEN] {
    let (tag, id, leg, ok) = match *message {
        ToCoordinator::Prepared { id, leg, ok } => (1, id, leg, u8::from(ok)),
        ToCoordinator::Resolved { id, leg } => (2, id, leg, 0),
    };
    let mut out = [0u8; TO_COORDINATOR_LEN];
    out[0] = tag;
    out[1..17].copy_from_slice(&id.to_le_bytes());
    out[17] = leg_byte(leg);
    out[18] = ok;
    out
}

/// The inverse of `encode_to_coordinator`.
pub fn decode_to_coordinator(bytes: &[u8]) -> Option<ToCoordinator> {
    let bytes: &[u8; TO_COORDINATOR_LEN] = bytes.try_into().ok()?;
    let mut word = [0u8; 16];
    word.copy_from_slice(&bytes[1..17]);
    let id = u128::from_le_bytes(word);
    let leg = leg_from(bytes[17])?;
    match (bytes[0], bytes[18]) {
        (1, ok @ (0 | 1)) => Some(ToCoordinator::Prepared {
            id,
            leg,
            ok: ok == 1,
        }),
        (2, 0) => Some(ToCoordinator::Resolved { id, leg }),
        _ => None,
    }
}

/// A shard's journaled input: its time (u64) then the `ToShard` encoding.
pub fn encode_shard_input(input: &ShardInput) -> [u8; 8 + TO_SHARD_LEN] {
    let mut out = [0u8; 8 + TO_SHARD_LEN];
    out[..8].copy_from_slice(&input.ts.to_le_bytes());
    out[8..].copy_from_slice(&encode_to_shard(&input.message));
    out
}

pub fn decode_shard_input(bytes: &[u8]) -> Option<ShardInput> {
    let (ts, message) = bytes.split_first_chunk::<8>()?;
    Some(ShardInput {
        ts: u64::from_le_bytes(*ts),
        message: decode_to_shard(message)?,
    })
}

/// Writes one frame: the payload's length (u32 little-endian), then the payload.
fn write_frame(out: &mut impl Write, payload: &[u8]) -> std::io::Result<()> {
    out.write_all(&(payload.len() as u32).to_le_bytes())?;
    out.write_all(payload)
}

/// Reads one frame into `buf`; `Ok(false)` at a clean end of stream.
fn read_frame(input: &mut impl Read, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > FRAME_LEN_MAX {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes, at most {FRAME_LEN_MAX}"),
        ));
    }
    buf.resize(len, 0);
    input.read_exact(buf)?;
    Ok(true)
}

fn wall_ns() -> u64 {
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

/// Runs a shard: replays its journal, then serves one coordinator connection at a time.
pub fn shard(args: &ShardArgs) -> anyhow::Result<ExitCode> {
    if args.shards == 0 || args.index >= args.shards {
        bail!("--index must be below --shards");
    }
    let mut writer = Writer::open(&args.journal, &sequent_journal::Config::default())
        .with_context(|| format!("cannot open the journal in {}", args.journal.display()))?;
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
    let mut frame = Vec::with_capacity(FRAME_LEN_MAX);
    let mut replies = Vec::new();
    loop {
        let (stream, peer) = listener.accept().context("cannot accept")?;
        stream.set_nodelay(true).ok();
        let mut input = BufReader::new(stream.try_clone().context("cannot clone a socket")?);
        let mut output = BufWriter::new(stream);
        // One connection: frames in, replies out, until the coordinator goes away.
        let served: anyhow::Result<()> = (|| loop {
            if !read_frame(&mut input, &mut frame)? {
                return Ok(());
            }
            let message = decode_to_shard(&frame).context("not a coordinator message")?;
            // Sequenced time never goes backwards, whatever the wall clock does.
            now = now.max(wall_ns());
            let shard_input = ShardInput { ts: now, message };
            // On record before it has any effect.
            writer
                .append(
                    JOURNAL_KIND_SHARD_INPUT,
                    now,
                    &encode_shard_input(&shard_input),
                )
                .context("cannot journal")?;
            replies.push(shard.handle(&shard_input));
            // Answer once every frame already received is applied, after one sync for them all.
            if input.buffer().is_empty() {
                writer.sync().context("cannot sync the journal")?;
                for reply in replies.drain(..) {
                    write_frame(&mut output, &encode_to_coordinator(&reply))?;
                }
                output.flush()?;
            }
        })();
        replies.clear();
        if let Err(e) = served {
            eprintln!(
                "sequent ledger shard {}: connection from {peer} ended: {e:#}",
                args.index
            );
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_garbage_is_refused() {
        let transfer = CrossTransfer {
            id: 7,
            debit_account_id: 1,
            credit_account_id: 2,
            amount: u128::MAX,
            ledger: 1,
            code: 9,
        };
        for message in [
            ToShard::Prepare {
                transfer,
                leg: Leg::Credit,
            },
            ToShard::Resolve {
                transfer,
                leg: Leg::Debit,
                decision: Decision::Void,
            },
        ] {
            assert_eq!(decode_to_shard(&encode_to_shard(&message)), Some(message));
            let input = ShardInput { ts: 5, message };
            assert_eq!(decode_shard_input(&encode_shard_input(&input)), Some(input));
        }
        for reply in [
            ToCoordinator::Prepared {
                id: 3,
                leg: Leg::Debit,
                ok: true,
            },
            ToCoordinator::Resolved {
                id: 3,
                leg: Leg::Credit,
            },
        ] {
            assert_eq!(
                decode_to_coordinator(&encode_to_coordinator(&reply)),
                Some(reply)
            );
        }
        assert_eq!(decode_to_shard(&[0; TO_SHARD_LEN]), None);
        assert_eq!(decode_to_coordinator(&[1; 3]), None);
        let mut frame = Vec::new();
        let mut long = &[0xff, 0xff, 0, 0][..];
        assert!(read_frame(&mut long, &mut frame).is_err());
    }
}
