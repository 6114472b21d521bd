//! `sequent-ledger`: a double-entry ledger, sans-IO and deterministic.
//!
//! One [`Ledger`] is one shard: a single writer that applies account and transfer events in the
//! order given, at the sequenced time given (no clock is read). Every store is sized at
//! construction ([`Config`]); a full store answers [`Outcome::LedgerFull`], it never allocates on
//! the event path nor panics.
//!
//! Semantics follow TigerBeetle (ids as idempotency keys, two-phase transfers, linked chains,
//! balancing transfers, limits that count pending amounts) and add a chart-of-accounts hierarchy
//! with rolled-up balances, reversals and the rule that a failed transfer id keeps its answer.
//! The order of precedence of the answers is the order of [`Outcome`]'s variants and is written
//! out in `engine/ledger/README.md` and `docs/ledger-format.md`.
//!
//! Linked chains are applied tentatively with an undo log: each applied member records what it
//! changed; when a member fails, the log is unwound in reverse, so the ledger is exactly as before
//! the chain (the property tests compare digests).

#![forbid(unsafe_code)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use sha2::{Digest, Sha256};

pub mod cross_shard;
mod index;
pub mod reconcile;
pub mod snapshot;
mod types;

use index::IdIndex;
pub use snapshot::SnapshotError;
pub use types::{
    Account, AccountFlags, Balances, Outcome, PendingState, StoredTransfer, Transfer, TransferFlags,
};

/// Deepest chart-of-accounts path, root included.
pub const HIERARCHY_DEPTH_MAX: usize = 8;
/// Most transfers in one linked chain (TigerBeetle's batch is 8189 events).
pub const LINKED_CHAIN_MAX: usize = 8190;
/// Transfers whose cache lines `create_transfers` loads together, ahead of applying them.
const WARM_AHEAD: usize = 32;

/// Capacities, fixed at construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub accounts_max: u32,
    /// Transfer ids the ledger can hold: stored transfers plus remembered failures.
    pub transfers_max: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            accounts_max: 1 << 16,
            transfers_max: 1 << 20,
        }
    }
}

/// An account as the ledger holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountState {
    /// As created (idempotency compares against it).
    pub account: Account,
    /// Closed by `close_account` or created with the `closed` flag.
    pub closed: bool,
    /// This account's own balances.
    pub balances: Balances,
    /// This account's balances plus every descendant's in the chart of accounts.
    pub rollup: Balances,
    /// Index of the parent in the account table.
    parent_index: Option<u32>,
    /// 1 for a root.
    depth: u8,
}

/// What an id in the transfer index stands for.
#[derive(Clone, Copy, Debug)]
enum Slot {
    /// Position in `Ledger::transfers`.
    Stored(u32),
    /// Position in `Ledger::failed`.
    Failed(u32),
}

/// The transfer index's value for a remembered failure: the position in `failed` with this bit.
const SLOT_FAILED: u32 = 1 << 31;
/// Transfer ids (stored and failed) a ledger can hold: positions must leave `SLOT_FAILED` free.
pub const TRANSFERS_MAX: u32 = SLOT_FAILED;

impl Slot {
    fn from_value(value: u32) -> Self {
        if value & SLOT_FAILED == 0 {
            Self::Stored(value)
        } else {
            Self::Failed(value & !SLOT_FAILED)
        }
    }

    fn value(self) -> u32 {
        match self {
            Self::Stored(i) => {
                assert!(i < SLOT_FAILED, "a position leaves the failure bit free");
                i
            }
            Self::Failed(i) => {
                assert!(i < SLOT_FAILED, "a position leaves the failure bit free");
                i | SLOT_FAILED
            }
        }
    }
}

/// The balance change one transfer makes, identical on both sides: the debit account's debits and
/// the credit account's credits each gain `pending_add` pending and `posted_add` posted and lose
/// `pending_sub` pending.
#[derive(Clone, Copy, Debug)]
struct Movement {
    debit: u32,
    credit: u32,
    pending_add: u128,
    pending_sub: u128,
    posted_add: u128,
}

/// What a referenced transfer looked like before this transfer changed it.
#[derive(Clone, Copy, Debug)]
enum Previous {
    None,
    Pending {
        index: u32,
        state: PendingState,
        resolved_seq: u64,
        resolved_ts: u64,
    },
    Reversed {
        index: u32,
        reversed: u128,
    },
}

/// One applied transfer in the undo log of the current chain.
#[derive(Clone, Copy, Debug)]
struct Undo {
    movement: Movement,
    previous: Previous,
}

/// Why a query has no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryError {
    AccountNotFound,
    /// Balance-at and statements need the `history` flag.
    NoHistory,
}

/// One line of an account statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatementLine {
    pub seq: u64,
    pub ts: u64,
    pub transfer_id: u128,
    /// True when the account is the debit side.
    pub debit: bool,
    pub flags: TransferFlags,
    pub amount: u128,
}

/// An account statement between two sequences (inclusive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    pub opening: Balances,
    pub lines: Vec<StatementLine>,
    pub closing: Balances,
}

/// One row of a trial balance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrialRow {
    pub account_id: u128,
    pub code: u16,
    pub debits_posted: u128,
    pub credits_posted: u128,
}

/// Trial balance of one ledger: every account in id order, and the totals (equal by
/// construction; a test checks it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrialBalance {
    pub rows: Vec<TrialRow>,
    pub total_debits_posted: u128,
    pub total_credits_posted: u128,
}

/// One node of a balance sheet: the account, its depth below the queried node (0) and its
/// rolled-up balances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SheetRow {
    pub account_id: u128,
    pub depth: u8,
    pub code: u16,
    pub rollup: Balances,
}

/// One ledger shard.
#[derive(Debug)]
pub struct Ledger {
    config: Config,
    accounts: Vec<AccountState>,
    /// Account id to position in `accounts`.
    account_index: IdIndex,
    transfers: Vec<StoredTransfer>,
    /// Transfer id to `Slot::value`: stored transfers and remembered failures.
    transfer_index: IdIndex,
    /// Failed ids in the order they failed (for the digest).
    failed: Vec<(u128, Outcome)>,
    /// (expires at, transfer index) of committed pending transfers with a timeout; entries whose
    /// transfer was resolved are skipped when popped.
    expiries: BinaryHeap<Reverse<(u64, u32)>>,
    undo: Vec<Undo>,
    /// Last event sequence handed out (events are numbered from 1).
    seq: u64,
    /// Sequenced time: never decreases.
    now_ns: u64,
    expired_total: u64,
}

impl Ledger {
    /// A ledger with every store allocated for `config`.
    pub fn new(config: Config) -> Self {
        assert!(config.accounts_max > 0, "accounts_max must be positive");
        assert!(config.transfers_max > 0, "transfers_max must be positive");
        assert!(
            config.transfers_max <= TRANSFERS_MAX,
            "transfers_max must leave the index's failure bit free"
        );
        let transfers = config.transfers_max as usize;
        Self {
            config,
            accounts: Vec::with_capacity(config.accounts_max as usize),
            account_index: IdIndex::with_capacity(config.accounts_max as usize),
            transfers: Vec::with_capacity(transfers),
            transfer_index: IdIndex::with_capacity(transfers),
            failed: Vec::with_capacity(transfers),
            expiries: BinaryHeap::with_capacity(transfers),
            undo: Vec::with_capacity(LINKED_CHAIN_MAX),
            seq: 0,
            now_ns: 0,
            expired_total: 0,
        }
    }

    /// Writes to every page of every store, so that the operating system maps the memory now,
    /// at start-up, rather than with a page fault (and a page cleared) every 18 stored
    /// transfers on the event path: `new` reserves the memory, but the system maps a page only
    /// when it is first written. Changes no state: it writes only to the stores' spare capacity
    /// and rewrites index buckets with their own value. O(memory); for a long-lived ledger (a
    /// node, a benchmark), not for a short one (a test, a one-off replay).
    pub fn prefault(&mut self) {
        let account = AccountState {
            account: Account::default(),
            closed: false,
            balances: Balances::default(),
            rollup: Balances::default(),
            parent_index: None,
            depth: 0,
        };
        prefault_spare(&mut self.accounts, account);
        self.account_index.prefault();
        let transfer = StoredTransfer {
            request: Transfer::default(),
            debit_account_id: 0,
            credit_account_id: 0,
            amount: 0,
            ledger: 0,
            code: 0,
            seq: 0,
            ts: 0,
            state: PendingState::NotPending,
            resolved_seq: 0,
            resolved_ts: 0,
            expires_at_ns: 0,
            reversed: 0,
        };
        prefault_spare(&mut self.transfers, transfer);
        self.transfer_index.prefault();
        prefault_spare(&mut self.failed, (0, Outcome::Ok));
        // The heap's order is rebuilt from its entries (unique pairs, so pops come out the same).
        let mut expiries = std::mem::take(&mut self.expiries).into_vec();
        prefault_spare(&mut expiries, Reverse((0, 0)));
        self.expiries = BinaryHeap::from(expiries);
        let movement = Movement {
            debit: 0,
            credit: 0,
            pending_add: 0,
            pending_sub: 0,
            posted_add: 0,
        };
        let undo = Undo {
            movement,
            previous: Previous::None,
        };
        prefault_spare(&mut self.undo, undo);
    }

    pub fn config(&self) -> Config {
        self.config
    }

    /// Last event sequence handed out.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Sequenced time.
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// Pending transfers expired so far.
    pub fn expired_total(&self) -> u64 {
        self.expired_total
    }

    /// Advances sequenced time to `ts` (never backwards: an earlier `ts` counts as now) and
    /// expires every pending transfer whose deadline it reaches. `seq` is recorded as the
    /// sequence the expiry happened before.
    fn advance(&mut self, ts: u64, seq: u64) {
        self.now_ns = self.now_ns.max(ts);
        while let Some(&Reverse((expires_at, index))) = self.expiries.peek() {
            if expires_at > self.now_ns {
                break;
            }
            self.expiries.pop();
            let t = self.transfers[index as usize];
            if t.state != PendingState::Pending {
                continue;
            }
            let movement = Movement {
                debit: self
                    .account_position(t.debit_account_id)
                    .expect("stored account"),
                credit: self
                    .account_position(t.credit_account_id)
                    .expect("stored account"),
                pending_add: 0,
                pending_sub: t.amount,
                posted_add: 0,
            };
            self.apply_movement(&movement);
            let stored = &mut self.transfers[index as usize];
            stored.state = PendingState::Expired;
            stored.resolved_seq = seq;
            stored.resolved_ts = self.now_ns;
            self.expired_total += 1;
        }
    }

    /// Advances sequenced time without an event (expiring what is due).
    pub fn handle_tick(&mut self, ts: u64) {
        self.advance(ts, self.seq + 1);
    }

    /// Creates one account at sequenced time `ts`.
    pub fn create_account(&mut self, ts: u64, account: &Account) -> Outcome {
        self.seq += 1;
        self.advance(ts, self.seq);
        let a = account;
        // 1. The event alone.
        if a.id == 0 {
            return Outcome::IdMustNotBeZero;
        }
        if a.flags.0 & !AccountFlags::ALL.0 != 0
            || (a
                .flags
                .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
                && a.flags
                    .contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS))
        {
            return Outcome::FlagsAreMutuallyExclusive;
        }
        if a.ledger == 0 {
            return Outcome::LedgerMustNotBeZero;
        }
        if a.code == 0 {
            return Outcome::CodeMustNotBeZero;
        }
        if a.parent == a.id {
            return Outcome::ParentMustBeDifferent;
        }
        // 2. Idempotency.
        if let Some(index) = self.account_position(a.id) {
            let e = self.accounts[index as usize].account;
            return if e.flags != a.flags {
                Outcome::ExistsWithDifferentFlags
            } else if e.ledger != a.ledger {
                Outcome::ExistsWithDifferentLedger
            } else if e.code != a.code {
                Outcome::ExistsWithDifferentCode
            } else if e.parent != a.parent {
                Outcome::ExistsWithDifferentParent
            } else if e.user_data != a.user_data {
                Outcome::ExistsWithDifferentUserData
            } else {
                Outcome::Exists
            };
        }
        // 3. Capacity.
        if self.accounts.len() >= self.config.accounts_max as usize {
            return Outcome::LedgerFull;
        }
        // 4. The parent.
        let (parent_index, depth) = if a.parent == 0 {
            (None, 1)
        } else {
            let Some(p) = self.account_position(a.parent) else {
                return Outcome::ParentNotFound;
            };
            let parent = &self.accounts[p as usize];
            if parent.account.ledger != a.ledger {
                return Outcome::ParentLedgerMismatch;
            }
            if parent.depth as usize >= HIERARCHY_DEPTH_MAX {
                return Outcome::HierarchyTooDeep;
            }
            (Some(p), parent.depth + 1)
        };
        let index = self.accounts.len() as u32;
        self.accounts.push(AccountState {
            account: *a,
            closed: a.flags.contains(AccountFlags::CLOSED),
            balances: Balances::default(),
            rollup: Balances::default(),
            parent_index,
            depth,
        });
        self.account_index.insert(a.id, index);
        Outcome::Ok
    }

    /// Closes an account: it rejects new transfers from now on but still accepts the void of
    /// pending transfers and keeps its history.
    pub fn close_account(&mut self, ts: u64, id: u128) -> Outcome {
        self.seq += 1;
        self.advance(ts, self.seq);
        let Some(index) = self.account_position(id) else {
            return Outcome::AccountNotFound;
        };
        let state = &mut self.accounts[index as usize];
        if state.closed {
            return Outcome::AccountAlreadyClosed;
        }
        state.closed = true;
        Outcome::Ok
    }

    /// Applies a batch of transfers at sequenced time `ts`, pushing one outcome per transfer to
    /// `outcomes` (which the caller owns and clears). Pending transfers due at `ts` expire first.
    /// A run of transfers flagged `linked` plus the first one after them without the flag is a
    /// chain: later members see the effects of earlier ones; if one fails, it reports its own
    /// outcome, every other member `linked_event_failed`, and none applies. A chain still open at
    /// the end of the batch fails with `linked_event_chain_open` on its last member.
    pub fn create_transfers(&mut self, ts: u64, batch: &[Transfer], outcomes: &mut Vec<Outcome>) {
        let base = self.seq;
        self.seq += batch.len() as u64;
        if batch.is_empty() {
            return;
        }
        self.advance(ts, base + 1);
        // Transfers before this one have had their cache lines loaded (`warm`).
        let mut warmed_end = 0;
        let mut start = 0;
        while start < batch.len() {
            let mut end = start;
            while end < batch.len() && batch[end].flags.contains(TransferFlags::LINKED) {
                end += 1;
            }
            if end == batch.len() {
                // Open chain: nothing applies.
                for _ in start..end - 1 {
                    outcomes.push(Outcome::LinkedEventFailed);
                }
                outcomes.push(Outcome::LinkedEventChainOpen);
                break;
            }
            let first_outcome = outcomes.len();
            let mut failed_at = None;
            for (k, t) in batch.iter().enumerate().take(end + 1).skip(start) {
                if k >= warmed_end {
                    warmed_end = batch.len().min(k + WARM_AHEAD);
                    std::hint::black_box(self.warm(&batch[k..warmed_end]));
                }
                let seq = base + 1 + k as u64;
                let outcome = self.transfer_one(t, seq);
                outcomes.push(outcome);
                if !outcome.is_success() {
                    failed_at = Some(k);
                    break;
                }
            }
            match failed_at {
                None => self.commit(),
                Some(k) => {
                    self.rollback();
                    let failure = outcomes[first_outcome + k - start];
                    self.remember_failure(batch[k].id, failure);
                    for (j, o) in outcomes[first_outcome..].iter_mut().enumerate() {
                        if j != k - start {
                            *o = Outcome::LinkedEventFailed;
                        }
                    }
                    for _ in k + 1..=end {
                        outcomes.push(Outcome::LinkedEventFailed);
                    }
                }
            }
            start = end + 1;
        }
    }

    /// Loads the cache lines that applying `transfers` will read first: the transfer index's
    /// bucket for each id (and the referenced id), and for plain transfers the account index's
    /// buckets and the account records. These loads are independent of each other, so the core
    /// overlaps their misses, where `transfer_one` would meet them one by one at the head of a
    /// long dependent chain. Reads only; the result is there to be kept (`black_box`) so the
    /// loads are not removed. The random account and transfer ids of a large ledger miss every
    /// cache level: this is most of the time an apply takes.
    fn warm(&self, transfers: &[Transfer]) -> u64 {
        let mut sink = 0;
        // The index buckets first, then (found through them) the records: two rounds of
        // independent misses rather than one dependent pair per account.
        for t in transfers {
            sink ^= self.transfer_index.warm(t.id);
            if t.pending_id != 0 {
                sink ^= self.transfer_index.warm(t.pending_id);
            } else {
                sink ^= self.account_index.warm(t.debit_account_id);
                sink ^= self.account_index.warm(t.credit_account_id);
            }
        }
        for t in transfers.iter().filter(|t| t.pending_id == 0) {
            for id in [t.debit_account_id, t.credit_account_id] {
                if let Some(p) = self.account_position(id) {
                    // One field from each cache line the record spans.
                    let s = &self.accounts[p as usize];
                    sink ^= s.balances.debits_pending as u64
                        ^ s.rollup.debits_pending as u64
                        ^ u64::from(s.closed);
                }
            }
        }
        sink
    }

    /// One transfer at its own sequence `seq`, within the current chain: on success it is applied
    /// and recorded in the undo log; on failure nothing changed.
    fn transfer_one(&mut self, t: &Transfer, seq: u64) -> Outcome {
        if let Some(outcome) = validate(t) {
            return outcome;
        }
        // 2. Idempotency.
        match self.transfer_slot(t.id) {
            Some(Slot::Stored(index)) => {
                return compare(&self.transfers[index as usize].request, t);
            }
            Some(Slot::Failed(index)) => return self.failed[index as usize].1,
            None => {}
        }
        // 3. Capacity: the id must fit in the index, as a success or as a remembered failure.
        if self.transfers.len() + self.failed.len() >= self.config.transfers_max as usize {
            return Outcome::LedgerFull;
        }
        if self.undo.len() >= LINKED_CHAIN_MAX {
            return Outcome::LinkedChainTooLong;
        }
        let flags = t.flags;
        let post = flags.contains(TransferFlags::POST_PENDING);
        let void = flags.contains(TransferFlags::VOID_PENDING);
        let reversal = flags.contains(TransferFlags::REVERSAL);
        // 4. References.
        let mut reference = None;
        let (debit_id, credit_id, ledger, code) = if post || void || reversal {
            let found = match self.transfer_slot(t.pending_id) {
                Some(Slot::Stored(index)) => Some(index),
                _ => None,
            };
            let Some(r_index) = found else {
                return if reversal {
                    Outcome::ReversedNotFound
                } else {
                    Outcome::PendingNotFound
                };
            };
            let r = &self.transfers[r_index as usize];
            let (debit, credit) = if reversal {
                let not_posted = r.request.flags.contains(TransferFlags::PENDING)
                    || r.request.flags.contains(TransferFlags::VOID_PENDING)
                    || r.request.flags.contains(TransferFlags::REVERSAL);
                if not_posted {
                    return Outcome::ReversedNotPosted;
                }
                (r.credit_account_id, r.debit_account_id)
            } else {
                if !r.request.flags.contains(TransferFlags::PENDING) {
                    return Outcome::PendingNotPending;
                }
                (r.debit_account_id, r.credit_account_id)
            };
            let differs = |given: u128, actual: u128| given != 0 && given != actual;
            if differs(t.debit_account_id, debit)
                || differs(t.credit_account_id, credit)
                || differs(u128::from(t.ledger), u128::from(r.ledger))
                || (!reversal && differs(u128::from(t.code), u128::from(r.code)))
            {
                return Outcome::ReferenceFieldMismatch;
            }
            reference = Some(r_index);
            let code = if t.code == 0 { r.code } else { t.code };
            (debit, credit, r.ledger, code)
        } else {
            (t.debit_account_id, t.credit_account_id, t.ledger, t.code)
        };
        // 5. Accounts.
        let Some(debit) = self.account_position(debit_id) else {
            return Outcome::DebitAccountNotFound;
        };
        let Some(credit) = self.account_position(credit_id) else {
            return Outcome::CreditAccountNotFound;
        };
        let dr = &self.accounts[debit as usize];
        let cr = &self.accounts[credit as usize];
        if !void && (dr.closed || cr.closed) {
            return Outcome::AccountClosed;
        }
        // 6. Ledgers.
        if dr.account.ledger != cr.account.ledger {
            return Outcome::AccountsMustHaveTheSameLedger;
        }
        if ledger != dr.account.ledger {
            return Outcome::TransferLedgerMismatch;
        }
        // 7. Pending and reversal state; the movement.
        let mut movement = Movement {
            debit,
            credit,
            pending_add: 0,
            pending_sub: 0,
            posted_add: 0,
        };
        let mut previous = Previous::None;
        let mut state = PendingState::NotPending;
        let mut expires_at_ns = 0;
        let amount;
        if let Some(r_index) = reference {
            let r = &self.transfers[r_index as usize];
            if reversal {
                let reversible = r.amount - r.reversed;
                amount = if t.amount == 0 { reversible } else { t.amount };
                if amount == 0 || amount > reversible {
                    return Outcome::AmountExceedsReversible;
                }
                movement.posted_add = amount;
                previous = Previous::Reversed {
                    index: r_index,
                    reversed: r.reversed,
                };
            } else {
                match r.state {
                    PendingState::Posted => return Outcome::PendingAlreadyPosted,
                    PendingState::Voided => return Outcome::PendingAlreadyVoided,
                    PendingState::Expired => return Outcome::PendingExpired,
                    PendingState::Pending | PendingState::NotPending => {}
                }
                if t.amount > r.amount {
                    return Outcome::AmountExceedsPending;
                }
                movement.pending_sub = r.amount;
                if post {
                    amount = if t.amount == 0 { r.amount } else { t.amount };
                    movement.posted_add = amount;
                } else {
                    amount = r.amount;
                }
                previous = Previous::Pending {
                    index: r_index,
                    state: r.state,
                    resolved_seq: r.resolved_seq,
                    resolved_ts: r.resolved_ts,
                };
            }
        } else {
            let mut a = t.amount;
            if flags.contains(TransferFlags::BALANCING_DEBIT) {
                let b = dr.balances;
                let used = b.debits_posted.saturating_add(b.debits_pending);
                a = a.min(b.credits_posted.saturating_sub(used));
            }
            if flags.contains(TransferFlags::BALANCING_CREDIT) {
                let b = cr.balances;
                let used = b.credits_posted.saturating_add(b.credits_pending);
                a = a.min(b.debits_posted.saturating_sub(used));
            }
            amount = a;
            if flags.contains(TransferFlags::PENDING) {
                movement.pending_add = amount;
                state = PendingState::Pending;
                if t.timeout_ns > 0 {
                    let Some(at) = self.now_ns.checked_add(t.timeout_ns) else {
                        return Outcome::OverflowsTimeout;
                    };
                    expires_at_ns = at;
                }
            } else {
                movement.posted_add = amount;
            }
        }
        // 8. Arithmetic, on the accounts and every ancestor's roll-up.
        let add = movement.pending_add + movement.posted_add;
        if add > 0 {
            if !self.fits(debit, add, true) {
                return Outcome::OverflowsDebits;
            }
            if !self.fits(credit, add, false) {
                return Outcome::OverflowsCredits;
            }
        }
        // 9. Limits, counting pending amounts.
        if add > movement.pending_sub {
            let grow = add - movement.pending_sub;
            let b = dr.balances;
            if dr
                .account
                .flags
                .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
                && b.debits_posted + b.debits_pending + grow > b.credits_posted
            {
                return Outcome::ExceedsCredits;
            }
            let b = cr.balances;
            if cr
                .account
                .flags
                .contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
                && b.credits_posted + b.credits_pending + grow > b.debits_posted
            {
                return Outcome::ExceedsDebits;
            }
        }
        // Apply.
        self.apply_movement(&movement);
        let index = self.transfers.len() as u32;
        self.transfers.push(StoredTransfer {
            request: *t,
            debit_account_id: debit_id,
            credit_account_id: credit_id,
            amount,
            ledger,
            code,
            seq,
            ts: self.now_ns,
            state,
            resolved_seq: 0,
            resolved_ts: 0,
            expires_at_ns,
            reversed: 0,
        });
        self.transfer_index
            .insert(t.id, Slot::Stored(index).value());
        match previous {
            Previous::None => {}
            Previous::Pending { index: r, .. } => {
                let r = &mut self.transfers[r as usize];
                r.state = if post {
                    PendingState::Posted
                } else {
                    PendingState::Voided
                };
                r.resolved_seq = seq;
                r.resolved_ts = self.now_ns;
            }
            Previous::Reversed { index: r, .. } => {
                self.transfers[r as usize].reversed += amount;
            }
        }
        self.undo.push(Undo { movement, previous });
        Outcome::Ok
    }

    /// Whether adding `add` to one side's pending-plus-posted total of `account` and of each
    /// ancestor's roll-up stays within u128.
    fn fits(&self, account: u32, add: u128, debit: bool) -> bool {
        let total = |b: &Balances| {
            if debit {
                b.debits_posted.checked_add(b.debits_pending)
            } else {
                b.credits_posted.checked_add(b.credits_pending)
            }
        };
        let own = &self.accounts[account as usize];
        if total(&own.balances)
            .and_then(|v| v.checked_add(add))
            .is_none()
        {
            return false;
        }
        let mut node = Some(account);
        while let Some(n) = node {
            let s = &self.accounts[n as usize];
            if total(&s.rollup).and_then(|v| v.checked_add(add)).is_none() {
                return false;
            }
            node = s.parent_index;
        }
        true
    }

    fn apply_movement(&mut self, m: &Movement) {
        let step = |b: &mut Balances, debit: bool| {
            let (pending, posted) = if debit {
                (&mut b.debits_pending, &mut b.debits_posted)
            } else {
                (&mut b.credits_pending, &mut b.credits_posted)
            };
            *pending = *pending + m.pending_add - m.pending_sub;
            *posted += m.posted_add;
        };
        self.walk(m.debit, |s| step(s, true));
        self.walk(m.credit, |s| step(s, false));
    }

    fn revert_movement(&mut self, m: &Movement) {
        let step = |b: &mut Balances, debit: bool| {
            let (pending, posted) = if debit {
                (&mut b.debits_pending, &mut b.debits_posted)
            } else {
                (&mut b.credits_pending, &mut b.credits_posted)
            };
            *pending = *pending + m.pending_sub - m.pending_add;
            *posted -= m.posted_add;
        };
        self.walk(m.debit, |s| step(s, true));
        self.walk(m.credit, |s| step(s, false));
    }

    /// Calls `f` on the account's own balances, then on the roll-up of it and each ancestor.
    fn walk(&mut self, account: u32, mut f: impl FnMut(&mut Balances)) {
        f(&mut self.accounts[account as usize].balances);
        let mut node = Some(account);
        let mut steps = 0;
        while let Some(n) = node {
            let s = &mut self.accounts[n as usize];
            f(&mut s.rollup);
            node = s.parent_index;
            steps += 1;
            assert!(
                steps <= HIERARCHY_DEPTH_MAX,
                "hierarchy deeper than its limit"
            );
        }
    }

    /// The chain succeeded: schedule the expiry of its pending transfers and forget the log.
    fn commit(&mut self) {
        let first = self.transfers.len() - self.undo.len();
        for index in first..self.transfers.len() {
            let t = &self.transfers[index];
            if t.expires_at_ns > 0 {
                self.expiries.push(Reverse((t.expires_at_ns, index as u32)));
            }
        }
        self.undo.clear();
    }

    /// The chain failed: undo its members, last first.
    fn rollback(&mut self) {
        while let Some(undo) = self.undo.pop() {
            self.revert_movement(&undo.movement);
            match undo.previous {
                Previous::None => {}
                Previous::Pending {
                    index,
                    state,
                    resolved_seq,
                    resolved_ts,
                } => {
                    let r = &mut self.transfers[index as usize];
                    r.state = state;
                    r.resolved_seq = resolved_seq;
                    r.resolved_ts = resolved_ts;
                }
                Previous::Reversed { index, reversed } => {
                    self.transfers[index as usize].reversed = reversed;
                }
            }
            let t = self.transfers.pop().expect("undo log and store agree");
            let index = self.transfers.len() as u32;
            self.transfer_index
                .remove_latest(t.request.id, Slot::Stored(index).value());
        }
    }

    fn remember_failure(&mut self, id: u128, outcome: Outcome) {
        if outcome.is_stored_failure() && self.transfer_slot(id).is_none() {
            let index = self.failed.len() as u32;
            self.transfer_index.insert(id, Slot::Failed(index).value());
            self.failed.push((id, outcome));
        }
    }

    /// Position of account `id` in `accounts`.
    #[inline]
    fn account_position(&self, id: u128) -> Option<u32> {
        self.account_index
            .get(id, |i| self.accounts[i as usize].account.id)
    }

    /// What transfer id `id` stands for, if anything.
    #[inline]
    fn transfer_slot(&self, id: u128) -> Option<Slot> {
        self.transfer_index
            .get(id, |value| match Slot::from_value(value) {
                Slot::Stored(i) => self.transfers[i as usize].request.id,
                Slot::Failed(i) => self.failed[i as usize].0,
            })
            .map(Slot::from_value)
    }

    // ---------------------------------------------------------------- queries

    pub fn account(&self, id: u128) -> Option<&AccountState> {
        self.account_position(id)
            .map(|i| &self.accounts[i as usize])
    }

    /// Accounts in creation order.
    pub fn accounts(&self) -> &[AccountState] {
        &self.accounts
    }

    pub fn transfer(&self, id: u128) -> Option<&StoredTransfer> {
        match self.transfer_slot(id) {
            Some(Slot::Stored(i)) => Some(&self.transfers[i as usize]),
            _ => None,
        }
    }

    /// Stored transfers in the order they applied.
    pub fn transfers(&self) -> &[StoredTransfer] {
        &self.transfers
    }

    /// The remembered answer of a failed transfer id.
    pub fn failure(&self, id: u128) -> Option<Outcome> {
        match self.transfer_slot(id) {
            Some(Slot::Failed(i)) => Some(self.failed[i as usize].1),
            _ => None,
        }
    }

    fn history_account(&self, id: u128) -> Result<&AccountState, QueryError> {
        let a = self.account(id).ok_or(QueryError::AccountNotFound)?;
        if a.account.flags.contains(AccountFlags::HISTORY) {
            Ok(a)
        } else {
            Err(QueryError::NoHistory)
        }
    }

    /// Balances of a `history` account after every event up to sequence `seq`, rebuilt from the
    /// stored transfers (a query, not the hot path: O(transfers)).
    pub fn balance_at_seq(&self, id: u128, seq: u64) -> Result<Balances, QueryError> {
        self.history_account(id)?;
        Ok(self.balance_where(id, |t| t.seq <= seq, |t| t.resolved_seq <= seq))
    }

    /// Balances of a `history` account as of sequenced time `ts` (every event applied at or
    /// before `ts`).
    pub fn balance_at_ts(&self, id: u128, ts: u64) -> Result<Balances, QueryError> {
        self.history_account(id)?;
        Ok(self.balance_where(id, |t| t.ts <= ts, |t| t.resolved_ts <= ts))
    }

    fn balance_where(
        &self,
        id: u128,
        applied: impl Fn(&StoredTransfer) -> bool,
        resolved: impl Fn(&StoredTransfer) -> bool,
    ) -> Balances {
        let mut b = Balances::default();
        for t in self.transfers.iter().take_while(|t| applied(t)) {
            let debit = t.debit_account_id == id;
            if !debit && t.credit_account_id != id {
                continue;
            }
            let (pending, posted) = if debit {
                (&mut b.debits_pending, &mut b.debits_posted)
            } else {
                (&mut b.credits_pending, &mut b.credits_posted)
            };
            let f = t.request.flags;
            if f.contains(TransferFlags::PENDING) {
                let open = t.state == PendingState::Pending || !resolved(t);
                if open {
                    *pending += t.amount;
                }
            } else if !f.contains(TransferFlags::VOID_PENDING) {
                *posted += t.amount;
            }
        }
        b
    }

    /// Statement of a `history` account for sequences `from..=to`.
    pub fn statement(&self, id: u128, from: u64, to: u64) -> Result<Statement, QueryError> {
        self.history_account(id)?;
        let opening = self.balance_at_seq(id, from.saturating_sub(1))?;
        let closing = self.balance_at_seq(id, to)?;
        let lines = self
            .transfers
            .iter()
            .filter(|t| t.seq >= from && t.seq <= to)
            .filter(|t| t.debit_account_id == id || t.credit_account_id == id)
            .map(|t| StatementLine {
                seq: t.seq,
                ts: t.ts,
                transfer_id: t.request.id,
                debit: t.debit_account_id == id,
                flags: t.request.flags,
                amount: t.amount,
            })
            .collect();
        Ok(Statement {
            opening,
            lines,
            closing,
        })
    }

    /// Trial balance of `ledger`: posted balances of each account in id order, and totals.
    pub fn trial_balance(&self, ledger: u32) -> TrialBalance {
        let mut rows: Vec<TrialRow> = self
            .accounts
            .iter()
            .filter(|a| a.account.ledger == ledger)
            .map(|a| TrialRow {
                account_id: a.account.id,
                code: a.account.code,
                debits_posted: a.balances.debits_posted,
                credits_posted: a.balances.credits_posted,
            })
            .collect();
        rows.sort_by_key(|r| r.account_id);
        TrialBalance {
            total_debits_posted: rows.iter().map(|r| r.debits_posted).sum(),
            total_credits_posted: rows.iter().map(|r| r.credits_posted).sum(),
            rows,
        }
    }

    /// Balance sheet under hierarchy node `id`: the node and its descendants depth-first,
    /// children in id order, each with its rolled-up balances.
    pub fn balance_sheet(&self, id: u128) -> Result<Vec<SheetRow>, QueryError> {
        let root = self
            .account_position(id)
            .ok_or(QueryError::AccountNotFound)?;
        let mut rows = Vec::new();
        let mut stack = vec![(root, 0u8)];
        while let Some((node, depth)) = stack.pop() {
            let s = &self.accounts[node as usize];
            rows.push(SheetRow {
                account_id: s.account.id,
                depth,
                code: s.account.code,
                rollup: s.rollup,
            });
            let mut children: Vec<u32> = (0..self.accounts.len() as u32)
                .filter(|&c| self.accounts[c as usize].parent_index == Some(node))
                .collect();
            children.sort_by_key(|&c| Reverse(self.accounts[c as usize].account.id));
            stack.extend(children.into_iter().map(|c| (c, depth + 1)));
        }
        Ok(rows)
    }

    /// SHA-256 over the whole state in canonical order: sequence and time, accounts (creation
    /// order, which replay reproduces) with balances, roll-ups and parents, stored transfers in
    /// apply order with their state, and remembered failures in the order they failed.
    pub fn state_digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.seq.to_le_bytes());
        h.update(self.now_ns.to_le_bytes());
        h.update((self.accounts.len() as u64).to_le_bytes());
        for s in &self.accounts {
            let a = &s.account;
            h.update(a.id.to_le_bytes());
            h.update(a.user_data.to_le_bytes());
            h.update(a.parent.to_le_bytes());
            h.update(a.ledger.to_le_bytes());
            h.update(a.code.to_le_bytes());
            h.update([a.flags.0, u8::from(s.closed), s.depth]);
            for b in [&s.balances, &s.rollup] {
                h.update(b.debits_pending.to_le_bytes());
                h.update(b.debits_posted.to_le_bytes());
                h.update(b.credits_pending.to_le_bytes());
                h.update(b.credits_posted.to_le_bytes());
            }
        }
        h.update((self.transfers.len() as u64).to_le_bytes());
        for t in &self.transfers {
            let r = &t.request;
            for v in [
                r.id,
                r.debit_account_id,
                r.credit_account_id,
                r.amount,
                r.pending_id,
                r.user_data,
                t.debit_account_id,
                t.credit_account_id,
                t.amount,
                t.reversed,
            ] {
                h.update(v.to_le_bytes());
            }
            for v in [
                r.timeout_ns,
                t.seq,
                t.ts,
                t.resolved_seq,
                t.resolved_ts,
                t.expires_at_ns,
            ] {
                h.update(v.to_le_bytes());
            }
            h.update(r.ledger.to_le_bytes());
            h.update(t.ledger.to_le_bytes());
            h.update(r.code.to_le_bytes());
            h.update(t.code.to_le_bytes());
            h.update(r.flags.0.to_le_bytes());
            h.update([t.state as u8]);
        }
        h.update((self.failed.len() as u64).to_le_bytes());
        for (id, outcome) in &self.failed {
            h.update(id.to_le_bytes());
            h.update([*outcome as u8]);
        }
        h.finalize().into()
    }
}

/// Smallest page size of the systems sequent runs on: a write every this many bytes touches
/// every page (more often than needed where pages are larger).
const PAGE_BYTES_MIN: usize = 4096;

/// Writes `fill` into spare capacity of `store`, once per page (see `Ledger::prefault`). The
/// length, and so the store's contents, do not change.
fn prefault_spare<T: Copy>(store: &mut Vec<T>, fill: T) {
    let step = (PAGE_BYTES_MIN / std::mem::size_of::<T>().max(1)).max(1);
    let spare = store.spare_capacity_mut();
    for slot in spare.iter_mut().step_by(step) {
        slot.write(fill);
    }
    if let Some(last) = spare.last_mut() {
        last.write(fill);
    }
}

/// 1. Checks on the event alone, in order.
fn validate(t: &Transfer) -> Option<Outcome> {
    let f = t.flags;
    if t.id == 0 {
        return Some(Outcome::IdMustNotBeZero);
    }
    let pending = f.contains(TransferFlags::PENDING);
    let post = f.contains(TransferFlags::POST_PENDING);
    let void = f.contains(TransferFlags::VOID_PENDING);
    let reversal = f.contains(TransferFlags::REVERSAL);
    let balancing =
        f.contains(TransferFlags::BALANCING_DEBIT) || f.contains(TransferFlags::BALANCING_CREDIT);
    let phases = [pending, post, void, reversal]
        .iter()
        .filter(|&&b| b)
        .count();
    let referencing = post || void || reversal;
    if f.0 & !TransferFlags::ALL.0 != 0 || phases > 1 || (balancing && referencing) {
        return Some(Outcome::FlagsAreMutuallyExclusive);
    }
    if referencing {
        if t.pending_id == 0 {
            return Some(Outcome::PendingIdMustNotBeZero);
        }
        if t.pending_id == t.id {
            return Some(Outcome::PendingIdMustBeDifferent);
        }
    } else if t.pending_id != 0 {
        return Some(Outcome::PendingIdMustBeZero);
    }
    if t.timeout_ns != 0 && !pending {
        return Some(Outcome::TimeoutReservedForPendingTransfer);
    }
    if referencing {
        if t.debit_account_id != 0 && t.debit_account_id == t.credit_account_id {
            return Some(Outcome::AccountsMustBeDifferent);
        }
        return None;
    }
    if t.amount == 0 {
        return Some(Outcome::AmountMustNotBeZero);
    }
    if t.debit_account_id == 0 {
        return Some(Outcome::DebitAccountIdMustNotBeZero);
    }
    if t.credit_account_id == 0 {
        return Some(Outcome::CreditAccountIdMustNotBeZero);
    }
    if t.debit_account_id == t.credit_account_id {
        return Some(Outcome::AccountsMustBeDifferent);
    }
    if t.ledger == 0 {
        return Some(Outcome::LedgerMustNotBeZero);
    }
    if t.code == 0 {
        return Some(Outcome::CodeMustNotBeZero);
    }
    None
}

/// 2. A repeat of a stored transfer: `exists`, or the first field that differs.
fn compare(stored: &Transfer, t: &Transfer) -> Outcome {
    if stored.flags != t.flags {
        Outcome::ExistsWithDifferentFlags
    } else if stored.debit_account_id != t.debit_account_id {
        Outcome::ExistsWithDifferentDebitAccountId
    } else if stored.credit_account_id != t.credit_account_id {
        Outcome::ExistsWithDifferentCreditAccountId
    } else if stored.amount != t.amount {
        Outcome::ExistsWithDifferentAmount
    } else if stored.pending_id != t.pending_id {
        Outcome::ExistsWithDifferentPendingId
    } else if stored.timeout_ns != t.timeout_ns {
        Outcome::ExistsWithDifferentTimeout
    } else if stored.ledger != t.ledger {
        Outcome::ExistsWithDifferentLedger
    } else if stored.code != t.code {
        Outcome::ExistsWithDifferentCode
    } else if stored.user_data != t.user_data {
        Outcome::ExistsWithDifferentUserData
    } else {
        Outcome::Exists
    }
}
