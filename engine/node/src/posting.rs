//! The ledger posting hook (`docs/engine-ledger-posting.md`): a consumer of the output ring, in
//! parallel with the gateway, that posts every execution the core reports ([`Output::Trade`])
//! into a [`sequent_ledger::Ledger`] as a linked pair of double-entry transfers, and keeps its
//! own journal of the trades it posted so that a restart rebuilds the same ledger.
//!
//! ```text
//! output ring → ┬ gateway (replies, market data)
//!               └ posting (this module): waits until the trade's input is durable in the engine
//!                 journal → appends the trade to the ledger journal → posts it to the ledger
//! ```
//!
//! Why the wait for the engine journal: a trade is posted only once the input that caused it can
//! no longer be lost, so the ledger never holds an execution that a recovered engine would not
//! make again (a trade number reused for another trade would be answered `exists`, wrongly).
//! Why a journal of trades and not of transfers: the transfers are a pure function of the trade
//! ([`transfers_of`]), and the ledger applies each trade at the trade's own sequenced time, so
//! the rebuilt ledger (and its `state_digest()`) is the same however the live run batched.
//!
//! Recovery: the newest usable snapshot of the ledger (written at every graceful stop and, with
//! `[ledger] snapshot_every`, every N trades) is restored and the ledger journal after it is
//! replayed (its last trade number is the posted point);
//! the engine's recovery replay then hands this module every trade after that point again
//! ([`Posting::take`]), so nothing is lost; transfer ids derived from the trade number make a
//! repeat answer `exists`, so nothing is doubled even if the point were wrong.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use sequent_journal::snapshot::{EngineId, SnapshotStore};
use sequent_journal::{DurableWatch, Reader, Writer};
use sequent_ledger::{Account, AccountFlags, Ledger, Outcome, Transfer, TransferFlags};
use sequent_ring::EventHandler;

use crate::config::EngineConfig;
use crate::core::{Output, Trade};
use crate::engine::{Metrics, OutputSlot};

/// The ledger of cash (ticks of the quote currency).
pub const CASH_LEDGER: u32 = 1;
/// Account code of a cash account.
pub const CODE_CASH: u16 = 1;
/// Account code of a position account.
pub const CODE_POSITION: u16 = 2;
/// Transfer code of a trade's cash leg.
pub const CODE_TRADE_CASH: u16 = 1;
/// Transfer code of a trade's delivery (instrument) leg.
pub const CODE_TRADE_DELIVERY: u16 = 2;

/// The journal record kind of one posted trade.
pub const RECORD_TRADE: u8 = 1;
/// Bytes of a trade record: match number, input sequence, symbol, buyer, seller, price, qty.
pub const TRADE_RECORD_LEN: usize = 8 + 8 + 2 + 4 + 4 + 8 + 8;

/// Trades posted per ledger lock: the batch is applied when it is full or the ring has nothing
/// more for now.
pub const BATCH_TRADES_MAX: usize = 256;

/// The posting ledger's engine id in its journal's snapshot files ("LPST"), and its state version.
pub const SNAPSHOT_ENGINE: EngineId = EngineId {
    tag: u32::from_be_bytes(*b"LPST"),
    version_max: 1,
};

/// Snapshots kept in the ledger journal's `snapshots/`; older ones are removed after each write.
const SNAPSHOTS_KEPT: usize = 2;

/// The ledger of the instrument of book `symbol`.
#[must_use]
pub const fn position_ledger(symbol: u16) -> u32 {
    2 + symbol as u32
}

/// The ledger account of venue account `account` in `ledger`: the ledger in the high 64 bits, the
/// venue account in the low ones (non-zero because ledgers start at 1).
#[must_use]
pub const fn account_id(account: u32, ledger: u32) -> u128 {
    ((ledger as u128) << 64) | account as u128
}

/// The transfer ids of trade `match_number`: (cash leg, delivery leg). Unique per trade and
/// non-zero because trade numbers start at 1.
#[must_use]
pub const fn transfer_ids(match_number: u64) -> (u128, u128) {
    let base = (match_number as u128) << 1;
    (base, base | 1)
}

/// Why a trade is recorded but not posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Buyer and seller are one account (a wash trade without self-trade prevention): nothing
    /// changes hands, and the ledger refuses a transfer from an account to itself.
    SameAccount,
    /// The price is not positive: there is no cash amount to move.
    NonPositivePrice,
}

/// The linked pair a trade posts: cash from the buyer to the seller (price × qty ticks), then
/// the instrument from the seller to the buyer (qty). The first is `linked`, so both post or
/// neither does.
pub fn transfers_of(trade: &Trade) -> Result<[Transfer; 2], Skip> {
    if trade.buyer_account == trade.seller_account {
        return Err(Skip::SameAccount);
    }
    if trade.price <= 0 {
        return Err(Skip::NonPositivePrice);
    }
    let (cash_id, delivery_id) = transfer_ids(trade.match_number);
    let instrument = position_ledger(trade.symbol);
    let cash = Transfer {
        id: cash_id,
        debit_account_id: account_id(trade.buyer_account, CASH_LEDGER),
        credit_account_id: account_id(trade.seller_account, CASH_LEDGER),
        // Both factors fit 64 bits; their product fits 128.
        amount: trade.price as u128 * u128::from(trade.qty),
        user_data: u128::from(trade.match_number),
        ledger: CASH_LEDGER,
        code: CODE_TRADE_CASH,
        flags: TransferFlags::LINKED,
        ..Transfer::default()
    };
    let delivery = Transfer {
        id: delivery_id,
        debit_account_id: account_id(trade.seller_account, instrument),
        credit_account_id: account_id(trade.buyer_account, instrument),
        amount: u128::from(trade.qty),
        user_data: u128::from(trade.match_number),
        ledger: instrument,
        code: CODE_TRADE_DELIVERY,
        flags: TransferFlags::default(),
        ..Transfer::default()
    };
    Ok([cash, delivery])
}

/// Encodes a trade record.
#[must_use]
pub fn encode_trade(input_sequence: u64, trade: &Trade) -> [u8; TRADE_RECORD_LEN] {
    let mut out = [0u8; TRADE_RECORD_LEN];
    out[0..8].copy_from_slice(&trade.match_number.to_le_bytes());
    out[8..16].copy_from_slice(&input_sequence.to_le_bytes());
    out[16..18].copy_from_slice(&trade.symbol.to_le_bytes());
    out[18..22].copy_from_slice(&trade.buyer_account.to_le_bytes());
    out[22..26].copy_from_slice(&trade.seller_account.to_le_bytes());
    out[26..34].copy_from_slice(&trade.price.to_le_bytes());
    out[34..42].copy_from_slice(&trade.qty.to_le_bytes());
    out
}

/// Decodes a trade record: (input sequence, trade); `None` when the length is wrong.
#[must_use]
pub fn decode_trade(payload: &[u8]) -> Option<(u64, Trade)> {
    let bytes: &[u8; TRADE_RECORD_LEN] = payload.try_into().ok()?;
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    Some((
        u64_at(8),
        Trade {
            match_number: u64_at(0),
            symbol: u16::from_le_bytes([bytes[16], bytes[17]]),
            buyer_account: u32_at(18),
            seller_account: u32_at(22),
            price: u64_at(26) as i64,
            qty: u64_at(34),
        },
    ))
}

/// Counters and the ledger, shared by the posting thread (the only writer) and the metrics
/// endpoint (which locks the ledger to read balances). The counters are Relaxed on both sides:
/// each is written by the posting thread alone and read for display; nothing is ordered by them
/// (the ledger itself is behind the mutex).
#[derive(Debug)]
pub struct Shared {
    /// The ledger. Locked by the posting thread once per batch and by the admin endpoint per
    /// request; nothing else takes it.
    pub ledger: Mutex<Ledger>,
    /// The symbols, for the admin view.
    pub symbols: Vec<String>,
    /// Trades posted (both legs `ok`).
    pub posted: AtomicU64,
    /// Trades whose legs were already in the ledger (`exists`): a re-post, harmlessly.
    pub exists: AtomicU64,
    /// Trades recorded but not posted: buyer and seller are one account.
    pub skipped_same_account: AtomicU64,
    /// Trades recorded but not posted: the price is not positive.
    pub skipped_price: AtomicU64,
    /// Trades that failed, by the first failing leg's outcome (index into `Outcome::ALL`).
    pub failures: [AtomicU64; Outcome::ALL.len()],
    /// The number of the last trade handed to the ledger.
    pub last_match: AtomicU64,
    /// Output-ring slots the posting stage has consumed.
    pub consumed: AtomicU64,
    /// Trades that waited for the engine journal's durable write.
    pub waits: AtomicU64,
}

impl Shared {
    /// Posted debits and credits of one ledger, summed over its accounts: (debits, credits). The
    /// trial balance holds when they are equal.
    #[must_use]
    pub fn totals(ledger: &Ledger, ledger_id: u32) -> (u128, u128) {
        ledger
            .accounts()
            .iter()
            .filter(|a| a.account.ledger == ledger_id)
            .fold((0, 0), |(d, c), a| {
                (d + a.balances.debits_posted, c + a.balances.credits_posted)
            })
    }

    /// Locks the ledger (a panic on the posting thread leaves it usable for reading).
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where the posting ledger's journal lives.
#[must_use]
pub fn ledger_dir(config: &EngineConfig) -> Option<PathBuf> {
    let section = config.ledger.as_ref()?;
    Some(
        section
            .dir
            .clone()
            .unwrap_or_else(|| config.journal.dir.join("ledger")),
    )
}

/// The posting ledger's capacities for `config`.
///
/// # Panics
/// When `config` has no `[ledger]` section.
#[must_use]
pub fn ledger_config(config: &EngineConfig) -> sequent_ledger::Config {
    let section = config.ledger.as_ref().expect("a [ledger] section");
    sequent_ledger::Config {
        accounts_max: config.venue.accounts_max * (1 + config.symbols.len() as u32),
        transfers_max: section.transfers_max,
    }
}

/// A fresh ledger sized for `config`, with every account created: for each venue account, its
/// cash account and one position account per symbol (at time 0, in that order: deterministic).
///
/// # Panics
/// When `config` has no `[ledger]` section.
#[must_use]
pub fn new_ledger(config: &EngineConfig) -> Ledger {
    let accounts = config.venue.accounts_max;
    let ledgers = 1 + config.symbols.len() as u32;
    let mut ledger = Ledger::new(ledger_config(config));
    for account in 0..accounts {
        for ledger_id in 1..=ledgers {
            let outcome = ledger.create_account(
                0,
                &Account {
                    id: account_id(account, ledger_id),
                    ledger: ledger_id,
                    code: if ledger_id == CASH_LEDGER {
                        CODE_CASH
                    } else {
                        CODE_POSITION
                    },
                    flags: AccountFlags::default(),
                    ..Account::default()
                },
            );
            assert_eq!(outcome, Outcome::Ok, "account {account} ledger {ledger_id}");
        }
    }
    ledger
}

/// Rebuilds the posting ledger from its journal alone, writing nothing: for tests and tools.
/// Returns the ledger and the trades the journal holds, in order.
pub fn replay_ledger(config: &EngineConfig) -> anyhow::Result<(Ledger, Vec<Trade>)> {
    let dir = ledger_dir(config).context("no [ledger] section")?;
    let mut ledger = new_ledger(config);
    let mut trades = Vec::new();
    let mut outcomes = Vec::with_capacity(2);
    if dir.exists() {
        let mut reader = Reader::from_sequence(&dir, 1)?;
        while let Some(entry) = reader.next()? {
            let (_, trade) = decode_record(entry.sequence, entry.kind, entry.payload)?;
            if let Ok(pair) = transfers_of(&trade) {
                outcomes.clear();
                ledger.create_transfers(entry.timestamp_ns, &pair, &mut outcomes);
            }
            trades.push(trade);
        }
    }
    Ok((ledger, trades))
}

fn decode_record(sequence: u64, kind: u8, payload: &[u8]) -> anyhow::Result<(u64, Trade)> {
    if kind != RECORD_TRADE {
        bail!("ledger journal record {sequence}: kind {kind} is not a trade");
    }
    decode_trade(payload).with_context(|| {
        format!(
            "ledger journal record {sequence}: {} bytes, a trade has {TRADE_RECORD_LEN}",
            payload.len()
        )
    })
}

/// The posting side: the ledger's journal and the trades waiting to be applied. Built by
/// recovery (which feeds it the replayed trades), then moved into the posting stage.
#[derive(Debug)]
pub struct Posting {
    shared: Arc<Shared>,
    writer: Writer,
    /// Trades journaled and not yet applied, with their sequenced time. Never beyond
    /// `BATCH_TRADES_MAX` (allocated at start).
    batch: Vec<(u64, Trade)>,
    outcomes: Vec<Outcome>,
    /// The last trade journaled: trades up to it are not taken again.
    last_match: u64,
    /// The last trade journaled and the input that made it: a replayed trade with its number must
    /// equal it, or the ledger journal belongs to another history.
    last_trade: Option<(u64, Trade)>,
    /// The ledger journal's `snapshots/`.
    store: SnapshotStore,
    /// Journal records since the newest snapshot (or since the start, without one).
    since_snapshot: u64,
    /// Snapshot every this many trades, at the first batch boundary past it (0: only at a
    /// graceful stop).
    snapshot_every: u64,
    /// Reused by every snapshot (grown at the first).
    snapshot_bytes: Vec<u8>,
}

/// What a posting snapshot holds besides the ledger: the posted point.
fn encode_snapshot(
    last_match: u64,
    last_trade: Option<(u64, Trade)>,
    ledger: &Ledger,
    out: &mut Vec<u8>,
) {
    out.clear();
    out.extend_from_slice(&last_match.to_le_bytes());
    match last_trade {
        Some((input_sequence, trade)) => {
            out.push(1);
            out.extend_from_slice(&encode_trade(input_sequence, &trade));
        }
        None => {
            out.push(0);
            out.extend_from_slice(&[0; TRADE_RECORD_LEN]);
        }
    }
    ledger.write_snapshot(out);
}

/// What a posting snapshot restores: the posted point and the ledger.
struct Restored {
    last_match: u64,
    last_trade: Option<(u64, Trade)>,
    ledger: Ledger,
}

/// The posted point and the ledger of a snapshot's state, or why it cannot be used.
fn decode_snapshot(state: &[u8], config: sequent_ledger::Config) -> Result<Restored, String> {
    let head = 8 + 1 + TRADE_RECORD_LEN;
    let (Some((count, _)), true) = (state.split_first_chunk::<8>(), state.len() >= head) else {
        return Err(format!(
            "{} bytes, shorter than its {head}-byte header",
            state.len()
        ));
    };
    let last_match = u64::from_le_bytes(*count);
    let last_trade = match state[8] {
        0 => None,
        1 => Some(
            decode_trade(&state[9..head]).ok_or_else(|| "its last trade is garbled".to_owned())?,
        ),
        other => return Err(format!("last-trade flag {other}")),
    };
    if last_trade.map_or(0, |(_, t)| t.match_number) != last_match {
        return Err(format!(
            "its last trade {:?} is not its posted point {last_match}",
            last_trade.map(|(_, t)| t.match_number)
        ));
    }
    let ledger = Ledger::read_snapshot(config, &state[head..]).map_err(|e| e.to_string())?;
    Ok(Restored {
        last_match,
        last_trade,
        ledger,
    })
}

impl Posting {
    /// Opens (or creates) the posting ledger's journal and rebuilds the ledger from it; `None`
    /// without a `[ledger]` section.
    pub fn open(config: &EngineConfig) -> anyhow::Result<Option<Self>> {
        let Some(dir) = ledger_dir(config) else {
            return Ok(None);
        };
        let section = config.ledger.as_ref().expect("checked by ledger_dir");
        let journal = sequent_journal::Config {
            segment_len: section.segment_mib.max(1) << 20,
            ..sequent_journal::Config::default()
        };
        let writer = Writer::open(&dir, &journal)
            .with_context(|| format!("cannot open the ledger journal in {}", dir.display()))?;
        if let Some(truncation) = &writer.open_report().truncated {
            tracing::info!("ledger journal: {truncation}");
        }
        let store = SnapshotStore::open(&dir.join("snapshots"))
            .with_context(|| format!("cannot open {}/snapshots", dir.display()))?;
        let mut posting = Self {
            shared: Arc::new(Shared {
                ledger: Mutex::new(new_ledger(config)),
                symbols: config.symbols.clone(),
                posted: AtomicU64::new(0),
                exists: AtomicU64::new(0),
                skipped_same_account: AtomicU64::new(0),
                skipped_price: AtomicU64::new(0),
                failures: std::array::from_fn(|_| AtomicU64::new(0)),
                last_match: AtomicU64::new(0),
                consumed: AtomicU64::new(0),
                waits: AtomicU64::new(0),
            }),
            writer,
            batch: Vec::with_capacity(BATCH_TRADES_MAX),
            outcomes: Vec::with_capacity(2),
            last_match: 0,
            last_trade: None,
            store,
            since_snapshot: 0,
            snapshot_every: section.snapshot_every,
            snapshot_bytes: Vec::new(),
        };
        if posting.writer.next_sequence() > 1 {
            let replay_from = posting.restore(config, &dir)?;
            let mut reader = Reader::from_sequence(&dir, replay_from)?;
            while let Some(entry) = reader.next()? {
                let (input_sequence, trade) =
                    decode_record(entry.sequence, entry.kind, entry.payload)?;
                if trade.match_number <= posting.last_match {
                    bail!(
                        "ledger journal record {}: trade {} after trade {}: trades must ascend",
                        entry.sequence,
                        trade.match_number,
                        posting.last_match
                    );
                }
                posting.last_match = trade.match_number;
                posting.last_trade = Some((input_sequence, trade));
                posting.batch.push((entry.timestamp_ns, trade));
                posting.since_snapshot += 1;
                if posting.batch.len() == BATCH_TRADES_MAX {
                    posting.apply_batch();
                }
            }
            posting.apply_batch();
            tracing::info!(
                "ledger journal {}: {} trades, the last is {}; {} replayed after the snapshot",
                dir.display(),
                posting.writer.next_sequence() - 1,
                posting.last_match,
                posting.since_snapshot
            );
        }
        Ok(Some(posting))
    }

    /// Restores the newest usable snapshot, if any, and returns the journal sequence to replay
    /// from. Snapshots that are damaged, of another journal, ahead of it, or of another capacity
    /// are passed over (logged) for an older one or the journal's start.
    fn restore(&mut self, config: &EngineConfig, dir: &Path) -> anyhow::Result<u64> {
        let recovery = sequent_journal::recover(dir, &self.store, SNAPSHOT_ENGINE)
            .with_context(|| format!("cannot recover the ledger journal in {}", dir.display()))?;
        for rejected in &recovery.rejected {
            tracing::warn!(
                "ledger snapshot {} passed over: {}",
                rejected.path.display(),
                rejected.reason
            );
        }
        let Some(snapshot) = &recovery.snapshot else {
            return Ok(recovery.replay_from);
        };
        match decode_snapshot(&snapshot.state, ledger_config(config)) {
            Ok(Restored {
                last_match,
                last_trade,
                ledger,
            }) => {
                *self.shared.lock() = ledger;
                self.last_match = last_match;
                self.last_trade = last_trade;
                self.shared.last_match.store(last_match, Ordering::Relaxed);
                tracing::info!(
                    "ledger snapshot {}: trades up to {last_match} (journal record {})",
                    snapshot.path.display(),
                    snapshot.sequence
                );
                Ok(recovery.replay_from)
            }
            Err(reason) if recovery.bounds.first_sequence <= 1 => {
                tracing::warn!(
                    "ledger snapshot {} passed over: {reason}; replaying the whole ledger journal",
                    snapshot.path.display()
                );
                Ok(1)
            }
            Err(reason) => bail!(
                "ledger snapshot {}: {reason}, and the ledger journal starts at record {}",
                snapshot.path.display(),
                recovery.bounds.first_sequence
            ),
        }
    }

    /// Syncs the journal and writes a snapshot of the ledger at its last record; keeps the
    /// newest [`SNAPSHOTS_KEPT`].
    fn snapshot(&mut self) -> anyhow::Result<()> {
        let sequence = self.writer.next_sequence() - 1;
        if sequence == 0 || self.since_snapshot == 0 {
            return Ok(());
        }
        self.writer
            .sync()
            .context("cannot sync the ledger journal")?;
        encode_snapshot(
            self.last_match,
            self.last_trade,
            &self.shared.lock(),
            &mut self.snapshot_bytes,
        );
        self.store
            .write(
                self.writer.journal_id(),
                SNAPSHOT_ENGINE,
                sequence,
                &self.snapshot_bytes,
            )
            .context("cannot write the ledger snapshot")?;
        self.store
            .prune(SNAPSHOTS_KEPT)
            .context("cannot remove old ledger snapshots")?;
        self.since_snapshot = 0;
        Ok(())
    }

    /// The shared counters and ledger.
    #[must_use]
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The number of the last trade taken: later ones are posted, earlier ones are not taken
    /// again.
    #[must_use]
    pub fn last_match(&self) -> u64 {
        self.last_match
    }

    /// The input sequence of the last trade taken (0: none).
    #[must_use]
    pub fn last_input_sequence(&self) -> u64 {
        self.last_trade.map_or(0, |(sequence, _)| sequence)
    }

    /// Takes the trades among the outputs of input `input_sequence` (at sequenced time `ts`) that
    /// come after the last one taken: journals each and queues it for the ledger. A trade with the
    /// number of the last one taken must equal it (a check that the ledger journal and the engine
    /// journal tell one history).
    pub fn take(&mut self, ts: u64, input_sequence: u64, outputs: &[Output]) -> anyhow::Result<()> {
        for output in outputs {
            if let Output::Trade(trade) = output {
                self.take_trade(ts, input_sequence, trade)?;
            }
        }
        Ok(())
    }

    fn take_trade(&mut self, ts: u64, input_sequence: u64, trade: &Trade) -> anyhow::Result<()> {
        if trade.match_number <= self.last_match {
            if let Some(last) = self.last_trade
                && trade.match_number == last.1.match_number
                && (input_sequence, *trade) != last
            {
                bail!(
                    "the ledger journal's last trade {:?} (input {}) differs from the engine's \
                     trade {trade:?} (input {input_sequence}): the ledger journal belongs to \
                     another engine journal",
                    last.1,
                    last.0
                );
            }
            return Ok(());
        }
        let record = encode_trade(input_sequence, trade);
        self.writer
            .append(RECORD_TRADE, ts, &record)
            .context("cannot append to the ledger journal")?;
        self.last_match = trade.match_number;
        self.last_trade = Some((input_sequence, *trade));
        self.batch.push((ts, *trade));
        self.since_snapshot += 1;
        if self.batch.len() == BATCH_TRADES_MAX {
            self.flush();
        }
        Ok(())
    }

    /// Applies the queued trades to the ledger (one lock) and counts their outcomes; then, with
    /// `snapshot_every`, writes a snapshot once that many trades were journaled since the last.
    /// A failed snapshot is logged: the journal still holds every trade.
    pub fn flush(&mut self) {
        self.apply_batch();
        if self.snapshot_every > 0
            && self.since_snapshot >= self.snapshot_every
            && let Err(error) = self.snapshot()
        {
            tracing::warn!("ledger snapshot failed: {error:#}");
        }
    }

    fn apply_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let shared = &*self.shared;
        let mut ledger = shared.lock();
        for &(ts, trade) in &self.batch {
            let pair = match transfers_of(&trade) {
                Ok(pair) => pair,
                Err(Skip::SameAccount) => {
                    shared.skipped_same_account.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Err(Skip::NonPositivePrice) => {
                    shared.skipped_price.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            self.outcomes.clear();
            // Each trade at its own time: the ledger's state does not depend on the batching.
            ledger.create_transfers(ts, &pair, &mut self.outcomes);
            match (self.outcomes[0], self.outcomes[1]) {
                (Outcome::Ok, Outcome::Ok) => shared.posted.fetch_add(1, Ordering::Relaxed),
                (Outcome::Exists, Outcome::Exists) => shared.exists.fetch_add(1, Ordering::Relaxed),
                (first, second) => {
                    // The member that failed names the reason; the other says `linked_event_failed`.
                    let reason = if first == Outcome::LinkedEventFailed {
                        second
                    } else {
                        first
                    };
                    let index = Outcome::ALL
                        .iter()
                        .position(|o| *o == reason)
                        .expect("every outcome is listed");
                    shared.failures[index].fetch_add(1, Ordering::Relaxed)
                }
            };
        }
        drop(ledger);
        self.batch.clear();
        shared.last_match.store(self.last_match, Ordering::Relaxed);
    }

    /// Applies what is queued and syncs the journal.
    pub fn sync(&mut self) -> anyhow::Result<()> {
        self.flush();
        self.writer
            .sync()
            .context("cannot sync the ledger journal")?;
        Ok(())
    }

    /// Applies what is queued, syncs the journal, writes a snapshot of the ledger (if anything was
    /// journaled since the last one; a failure is logged, the journal holds everything) and
    /// closes the journal.
    pub fn close(mut self) -> anyhow::Result<()> {
        self.apply_batch();
        self.writer
            .sync()
            .context("cannot sync the ledger journal")?;
        if let Err(error) = self.snapshot() {
            tracing::warn!("ledger snapshot at close failed: {error:#}");
        }
        self.writer
            .close()
            .context("cannot close the ledger journal")?;
        Ok(())
    }
}

/// What the posting stage waits for before it posts a trade: the engine journal holding the
/// input that made it.
pub(crate) enum Gate {
    /// Synced to disk (the journal syncs on its own: group commit or periodic).
    Durable(DurableWatch),
    /// Appended (durability `none`: nothing is synced while running, and a process crash loses
    /// nothing that was appended; a machine crash may lose both journals' tails, which recovery
    /// handles as any lost tail).
    Appended(Arc<Metrics>),
}

impl Gate {
    /// Blocks until `sequence` passes the gate.
    fn wait(&self, sequence: u64) {
        match self {
            Self::Durable(watch) => {
                while !watch.wait_durable(sequence, Duration::from_millis(100)) {}
            }
            Self::Appended(metrics) => {
                // Relaxed: the journal stage stores it after its append returned, so a value that
                // has reached `sequence` says the record is in the kernel's hands; no memory
                // written by the journal thread is read here.
                while metrics.journal_written.load(Ordering::Relaxed) < sequence {
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
        }
    }

    fn passed(&self) -> u64 {
        match self {
            Self::Durable(watch) => watch.durable_sequence(),
            Self::Appended(metrics) => metrics.journal_written.load(Ordering::Relaxed),
        }
    }
}

/// The posting stage: a handler of the output ring on its own thread.
pub(crate) struct PostingStage {
    pub(crate) posting: Option<Posting>,
    pub(crate) gate: Gate,
    /// The last engine sequence known to have passed the gate.
    pub(crate) passed: u64,
}

impl EventHandler<OutputSlot> for PostingStage {
    fn on_event(&mut self, slot: &OutputSlot, sequence: i64, end_of_batch: bool) {
        let Some(posting) = self.posting.as_mut() else {
            return;
        };
        if let (Output::Trade(trade), false) = (&slot.output, slot.last) {
            if slot.input_sequence > self.passed {
                self.passed = self.gate.passed();
                if slot.input_sequence > self.passed {
                    // What is queued may go now; this trade waits for its input.
                    posting.flush();
                    posting.shared.waits.fetch_add(1, Ordering::Relaxed);
                    self.gate.wait(slot.input_sequence);
                    self.passed = slot.input_sequence;
                }
            }
            // A journal that refuses an append leaves the ledger unable to promise recovery:
            // stop here, as the engine's journal stage does.
            posting
                .take_trade(slot.input_ts, slot.input_sequence, trade)
                .unwrap_or_else(|error| panic!("posting failed: {error:#}"));
        }
        if end_of_batch {
            posting.flush();
        }
        posting
            .shared
            .consumed
            .store(sequence as u64 + 1, Ordering::Relaxed);
    }

    fn on_shutdown(&mut self) {
        if let Some(posting) = self.posting.take()
            && let Err(error) = posting.close()
        {
            tracing::warn!("ledger journal close failed: {error:#}");
        }
    }
}

/// Appends the posting metrics (Prometheus text).
pub fn render(shared: &Shared, published: u64, out: &mut String) {
    use std::fmt::Write as _;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let _ = write!(
        out,
        "# HELP sequent_ledger_postings_total trades posted to the ledger (both legs ok)\n\
         # TYPE sequent_ledger_postings_total counter\n\
         sequent_ledger_postings_total {}\n\
         # HELP sequent_ledger_postings_existing_total trades whose legs were already in the ledger (a re-post)\n\
         # TYPE sequent_ledger_postings_existing_total counter\n\
         sequent_ledger_postings_existing_total {}\n\
         # HELP sequent_ledger_postings_skipped_total trades recorded but not posted, by reason\n\
         # TYPE sequent_ledger_postings_skipped_total counter\n\
         sequent_ledger_postings_skipped_total{{reason=\"same_account\"}} {}\n\
         sequent_ledger_postings_skipped_total{{reason=\"non_positive_price\"}} {}\n\
         # HELP sequent_ledger_last_trade the number of the last trade handed to the ledger\n\
         # TYPE sequent_ledger_last_trade gauge\n\
         sequent_ledger_last_trade {}\n\
         # HELP sequent_ledger_lag_slots output-ring slots published by the core and not yet consumed by the posting stage\n\
         # TYPE sequent_ledger_lag_slots gauge\n\
         sequent_ledger_lag_slots {}\n\
         # HELP sequent_ledger_durability_waits_total trades that waited for their input's durable write\n\
         # TYPE sequent_ledger_durability_waits_total counter\n\
         sequent_ledger_durability_waits_total {}\n\
         # HELP sequent_ledger_posting_failures_total trades the ledger refused, by the failing leg's outcome\n\
         # TYPE sequent_ledger_posting_failures_total counter\n",
        load(&shared.posted),
        load(&shared.exists),
        load(&shared.skipped_same_account),
        load(&shared.skipped_price),
        load(&shared.last_match),
        published.saturating_sub(load(&shared.consumed)),
        load(&shared.waits),
    );
    for (outcome, count) in Outcome::ALL.iter().zip(&shared.failures) {
        let count = load(count);
        if count > 0 || matches!(outcome, Outcome::LedgerFull) {
            let _ = writeln!(
                out,
                "sequent_ledger_posting_failures_total{{reason=\"{}\"}} {count}",
                outcome.name()
            );
        }
    }
    let ledger = shared.lock();
    let ledgers = 1 + shared.symbols.len() as u32;
    let mut balanced = true;
    out.push_str(
        "# HELP sequent_ledger_posted_total posted debits and credits summed over one ledger's accounts (cash in ticks, instruments in units)\n\
         # TYPE sequent_ledger_posted_total gauge\n",
    );
    for ledger_id in 1..=ledgers {
        let (debits, credits) = Shared::totals(&ledger, ledger_id);
        balanced &= debits == credits;
        let _ = write!(
            out,
            "sequent_ledger_posted_total{{ledger=\"{ledger_id}\",side=\"debits\"}} {debits}\n\
             sequent_ledger_posted_total{{ledger=\"{ledger_id}\",side=\"credits\"}} {credits}\n"
        );
    }
    let _ = write!(
        out,
        "# HELP sequent_ledger_trial_balance_ok 1 when debits equal credits in every ledger (ALARM when 0)\n\
         # TYPE sequent_ledger_trial_balance_ok gauge\n\
         sequent_ledger_trial_balance_ok {}\n",
        u8::from(balanced)
    );
}

/// `GET /admin/ledger`: the ledger's digest and totals and every account that moved, as JSON.
/// Balances are credits − debits posted: cash received minus paid (ticks), units bought minus
/// sold.
#[must_use]
pub fn admin_json(shared: &Shared) -> String {
    use std::fmt::Write as _;
    let ledger = shared.lock();
    let digest: String = ledger
        .state_digest()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut out = format!(
        "{{\"digest\":\"{digest}\",\"last_trade\":{},\"posted\":{},\"ledgers\":[",
        shared.last_match.load(Ordering::Relaxed),
        shared.posted.load(Ordering::Relaxed)
    );
    let ledgers = 1 + shared.symbols.len() as u32;
    for ledger_id in 1..=ledgers {
        let (debits, credits) = Shared::totals(&ledger, ledger_id);
        let name = if ledger_id == CASH_LEDGER {
            "cash"
        } else {
            shared.symbols[(ledger_id - 2) as usize].as_str()
        };
        let _ = write!(
            out,
            "{}{{\"ledger\":{ledger_id},\"name\":\"{name}\",\"debits\":{debits},\"credits\":{credits}}}",
            if ledger_id == 1 { "" } else { "," }
        );
    }
    out.push_str("],\"accounts\":[");
    let mut first = true;
    for state in ledger.accounts() {
        let b = state.balances;
        if b.debits_posted == 0 && b.credits_posted == 0 {
            continue;
        }
        let balance = b.credits_posted as i128 - b.debits_posted as i128;
        let _ = write!(
            out,
            "{}{{\"account\":{},\"ledger\":{},\"balance\":{balance}}}",
            if first { "" } else { "," },
            state.account.id as u64,
            state.account.ledger,
        );
        first = false;
    }
    out.push_str("]}\n");
    out
}

/// Reads a ledger journal directory's last trade number without opening it for writing (0 when
/// empty or absent): for tools and tests.
pub fn last_trade_in(dir: &Path) -> anyhow::Result<u64> {
    if !dir.exists() {
        return Ok(0);
    }
    let mut reader = Reader::from_sequence(dir, 1)?;
    let mut last = 0;
    while let Some(entry) = reader.next()? {
        last = decode_record(entry.sequence, entry.kind, entry.payload)?
            .1
            .match_number;
    }
    Ok(last)
}
