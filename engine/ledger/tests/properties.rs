//! Property tests: random workloads (duplicates, linked chains, pending/post/void/expiry,
//! balancing, reversals, closed and missing accounts, a hierarchy) run through the ledger and,
//! side by side, through a naive model written here from the documented rules (BTreeMaps, chains
//! by cloning the whole state and restoring it). After every batch:
//!
//! - every outcome equals the model's, and so does every balance;
//! - per ledger, Σ debits posted = Σ credits posted and Σ debits pending = Σ credits pending;
//! - no limit flag is violated; every roll-up is the account plus its children's roll-ups;
//! - a batch whose events all failed (or answered `exists`) changed no account nor transfer;
//! - a linked chain's outcomes are all successes or all failures;
//! - for `history` accounts, the balance rebuilt at the current sequence equals the live one, and
//!   at the end every earlier sequence's recorded balance is rebuilt exactly.
//!
//! At the end, replaying the inputs into a fresh ledger gives the same `state_digest()`.
//!
//! The seed is printed; `PROPTEST_RNG_SEED=<seed> cargo test -p sequent-ledger --test
//! properties` replays a failure. `PROPTEST_CASES` sets the number of cases (default 96).

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, RngSeed, TestCaseError, TestRunner};
use sequent_ledger::{
    Account, AccountFlags, Balances, Config, Ledger, Outcome, Transfer, TransferFlags,
};

// ------------------------------------------------------------------------------------ model

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Not,
    Pending,
    Posted,
    Voided,
    Expired,
}

#[derive(Clone, Debug)]
struct MAccount {
    ledger: u32,
    flags: AccountFlags,
    closed: bool,
    b: Balances,
}

#[derive(Clone, Debug)]
struct MTransfer {
    req: Transfer,
    debit: u128,
    credit: u128,
    amount: u128,
    ledger: u32,
    code: u16,
    state: St,
    expires_at: u64,
    reversed: u128,
}

#[derive(Clone, Debug, Default)]
struct Model {
    accounts: BTreeMap<u128, MAccount>,
    transfers: BTreeMap<u128, MTransfer>,
    failed: BTreeMap<u128, Outcome>,
    now: u64,
}

fn has(f: TransferFlags, x: TransferFlags) -> bool {
    f.0 & x.0 != 0
}

impl Model {
    fn create_account(&mut self, a: &Account) -> Outcome {
        // Only well-formed accounts are generated; parents exist and share the ledger.
        if self.accounts.contains_key(&a.id) {
            return Outcome::Exists;
        }
        self.accounts.insert(
            a.id,
            MAccount {
                ledger: a.ledger,
                flags: a.flags,
                closed: a.flags.contains(AccountFlags::CLOSED),
                b: Balances::default(),
            },
        );
        Outcome::Ok
    }

    fn expire(&mut self) {
        let now = self.now;
        let due: Vec<u128> = self
            .transfers
            .values()
            .filter(|t| t.state == St::Pending && t.expires_at != 0 && t.expires_at <= now)
            .map(|t| t.req.id)
            .collect();
        for id in due {
            let t = self.transfers[&id].clone();
            self.accounts.get_mut(&t.debit).unwrap().b.debits_pending -= t.amount;
            self.accounts.get_mut(&t.credit).unwrap().b.credits_pending -= t.amount;
            self.transfers.get_mut(&id).unwrap().state = St::Expired;
        }
    }

    fn batch(&mut self, ts: u64, batch: &[Transfer]) -> Vec<Outcome> {
        self.now = self.now.max(ts);
        self.expire();
        let mut out = Vec::new();
        let mut i = 0;
        while i < batch.len() {
            let mut end = i;
            while end < batch.len() && has(batch[end].flags, TransferFlags::LINKED) {
                end += 1;
            }
            if end == batch.len() {
                for _ in i..end - 1 {
                    out.push(Outcome::LinkedEventFailed);
                }
                out.push(Outcome::LinkedEventChainOpen);
                break;
            }
            let saved = self.clone();
            let mut chain = Vec::new();
            let mut failed = None;
            for (k, t) in batch.iter().enumerate().take(end + 1).skip(i) {
                let o = self.transfer(t);
                chain.push(o);
                if o != Outcome::Ok && o != Outcome::Exists {
                    failed = Some((k, o));
                    break;
                }
            }
            if let Some((k, o)) = failed {
                *self = saved;
                if (Outcome::PendingNotFound as u8..=Outcome::ExceedsDebits as u8)
                    .contains(&(o as u8))
                {
                    self.failed.entry(batch[k].id).or_insert(o);
                }
                for j in i..=end {
                    out.push(if j == k {
                        o
                    } else {
                        Outcome::LinkedEventFailed
                    });
                }
            } else {
                out.extend(chain);
            }
            i = end + 1;
        }
        out
    }

    fn transfer(&mut self, t: &Transfer) -> Outcome {
        use Outcome as O;
        let f = t.flags;
        let pending = has(f, TransferFlags::PENDING);
        let post = has(f, TransferFlags::POST_PENDING);
        let void = has(f, TransferFlags::VOID_PENDING);
        let rev = has(f, TransferFlags::REVERSAL);
        let bal_d = has(f, TransferFlags::BALANCING_DEBIT);
        let bal_c = has(f, TransferFlags::BALANCING_CREDIT);
        let refers = post || void || rev;
        if t.id == 0 {
            return O::IdMustNotBeZero;
        }
        if [pending, post, void, rev].iter().filter(|b| **b).count() > 1
            || ((bal_d || bal_c) && refers)
        {
            return O::FlagsAreMutuallyExclusive;
        }
        if refers && t.pending_id == 0 {
            return O::PendingIdMustNotBeZero;
        }
        if refers && t.pending_id == t.id {
            return O::PendingIdMustBeDifferent;
        }
        if !refers && t.pending_id != 0 {
            return O::PendingIdMustBeZero;
        }
        if t.timeout_ns != 0 && !pending {
            return O::TimeoutReservedForPendingTransfer;
        }
        if refers {
            if t.debit_account_id != 0 && t.debit_account_id == t.credit_account_id {
                return O::AccountsMustBeDifferent;
            }
        } else {
            if t.amount == 0 {
                return O::AmountMustNotBeZero;
            }
            if t.debit_account_id == 0 {
                return O::DebitAccountIdMustNotBeZero;
            }
            if t.credit_account_id == 0 {
                return O::CreditAccountIdMustNotBeZero;
            }
            if t.debit_account_id == t.credit_account_id {
                return O::AccountsMustBeDifferent;
            }
            if t.ledger == 0 {
                return O::LedgerMustNotBeZero;
            }
            if t.code == 0 {
                return O::CodeMustNotBeZero;
            }
        }
        if let Some(s) = self.transfers.get(&t.id) {
            let s = s.req;
            return if s.flags != t.flags {
                O::ExistsWithDifferentFlags
            } else if s.debit_account_id != t.debit_account_id {
                O::ExistsWithDifferentDebitAccountId
            } else if s.credit_account_id != t.credit_account_id {
                O::ExistsWithDifferentCreditAccountId
            } else if s.amount != t.amount {
                O::ExistsWithDifferentAmount
            } else if s.pending_id != t.pending_id {
                O::ExistsWithDifferentPendingId
            } else if s.timeout_ns != t.timeout_ns {
                O::ExistsWithDifferentTimeout
            } else if s.ledger != t.ledger {
                O::ExistsWithDifferentLedger
            } else if s.code != t.code {
                O::ExistsWithDifferentCode
            } else if s.user_data != t.user_data {
                O::ExistsWithDifferentUserData
            } else {
                O::Exists
            };
        }
        if let Some(&o) = self.failed.get(&t.id) {
            return o;
        }
        let (debit, credit, ledger, code, reference) = if refers {
            let Some(r) = self.transfers.get(&t.pending_id).cloned() else {
                return if rev {
                    O::ReversedNotFound
                } else {
                    O::PendingNotFound
                };
            };
            let (d, c) = if rev {
                if has(
                    r.req.flags,
                    TransferFlags::PENDING
                        .with(TransferFlags::VOID_PENDING)
                        .with(TransferFlags::REVERSAL),
                ) {
                    return O::ReversedNotPosted;
                }
                (r.credit, r.debit)
            } else {
                if !has(r.req.flags, TransferFlags::PENDING) {
                    return O::PendingNotPending;
                }
                (r.debit, r.credit)
            };
            let bad = |given: u128, actual: u128| given != 0 && given != actual;
            if bad(t.debit_account_id, d)
                || bad(t.credit_account_id, c)
                || bad(t.ledger.into(), r.ledger.into())
                || (!rev && bad(t.code.into(), r.code.into()))
            {
                return O::ReferenceFieldMismatch;
            }
            let code = if t.code == 0 { r.code } else { t.code };
            (d, c, r.ledger, code, Some(r))
        } else {
            (
                t.debit_account_id,
                t.credit_account_id,
                t.ledger,
                t.code,
                None,
            )
        };
        let Some(dr) = self.accounts.get(&debit).cloned() else {
            return O::DebitAccountNotFound;
        };
        let Some(cr) = self.accounts.get(&credit).cloned() else {
            return O::CreditAccountNotFound;
        };
        if !void && (dr.closed || cr.closed) {
            return O::AccountClosed;
        }
        if dr.ledger != cr.ledger {
            return O::AccountsMustHaveTheSameLedger;
        }
        if ledger != dr.ledger {
            return O::TransferLedgerMismatch;
        }
        // (pending add, pending sub, posted add)
        let (amount, padd, psub, post_add, state, expires_at) = match &reference {
            Some(r) if rev => {
                let left = r.amount - r.reversed;
                let a = if t.amount == 0 { left } else { t.amount };
                if a == 0 || a > left {
                    return O::AmountExceedsReversible;
                }
                (a, 0, 0, a, St::Not, 0)
            }
            Some(r) => {
                match r.state {
                    St::Posted => return O::PendingAlreadyPosted,
                    St::Voided => return O::PendingAlreadyVoided,
                    St::Expired => return O::PendingExpired,
                    _ => {}
                }
                if t.amount > r.amount {
                    return O::AmountExceedsPending;
                }
                if post {
                    let a = if t.amount == 0 { r.amount } else { t.amount };
                    (a, 0, r.amount, a, St::Not, 0)
                } else {
                    (r.amount, 0, r.amount, 0, St::Not, 0)
                }
            }
            None => {
                let mut a = t.amount;
                if bal_d {
                    a = a.min(
                        dr.b.credits_posted
                            .saturating_sub(dr.b.debits_posted + dr.b.debits_pending),
                    );
                }
                if bal_c {
                    a = a.min(
                        cr.b.debits_posted
                            .saturating_sub(cr.b.credits_posted + cr.b.credits_pending),
                    );
                }
                if pending {
                    let exp = if t.timeout_ns > 0 {
                        self.now + t.timeout_ns
                    } else {
                        0
                    };
                    (a, a, 0, 0, St::Pending, exp)
                } else {
                    (a, 0, 0, a, St::Not, 0)
                }
            }
        };
        // Amounts in this test stay far below u128::MAX: no overflow answers.
        let grow = (padd + post_add).saturating_sub(psub);
        if grow > 0 {
            if dr
                .flags
                .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
                && dr.b.debits_posted + dr.b.debits_pending + grow > dr.b.credits_posted
            {
                return O::ExceedsCredits;
            }
            if cr
                .flags
                .contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
                && cr.b.credits_posted + cr.b.credits_pending + grow > cr.b.debits_posted
            {
                return O::ExceedsDebits;
            }
        }
        {
            let d = &mut self.accounts.get_mut(&debit).unwrap().b;
            d.debits_pending = d.debits_pending + padd - psub;
            d.debits_posted += post_add;
            let c = &mut self.accounts.get_mut(&credit).unwrap().b;
            c.credits_pending = c.credits_pending + padd - psub;
            c.credits_posted += post_add;
        }
        if let Some(r) = reference {
            let r = self.transfers.get_mut(&r.req.id).unwrap();
            if rev {
                r.reversed += amount;
            } else {
                r.state = if post { St::Posted } else { St::Voided };
            }
        }
        self.transfers.insert(
            t.id,
            MTransfer {
                req: *t,
                debit,
                credit,
                amount,
                ledger,
                code,
                state,
                expires_at,
                reversed: 0,
            },
        );
        O::Ok
    }
}

// ------------------------------------------------------------------------------- workload

fn accounts() -> Vec<Account> {
    let acc = |id: u128, ledger: u32, flags: AccountFlags, parent: u128| Account {
        id,
        ledger,
        code: 10,
        flags,
        parent,
        user_data: 0,
    };
    let h = AccountFlags::HISTORY;
    vec![
        acc(1, 1, h, 0),
        acc(
            2,
            1,
            h.with(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS),
            1,
        ),
        acc(3, 1, AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS, 1),
        acc(4, 1, h, 2),
        acc(5, 2, AccountFlags::default(), 0),
        acc(6, 1, AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS, 0),
        acc(8, 1, AccountFlags::CLOSED, 0),
    ]
}

/// (kind, id, debit, credit, amount, pending_id, timeout, linked, ledger, user_data)
type Op = (u8, u8, u8, u8, u8, u8, u8, bool, u8, u8);

fn transfer(op: &Op) -> Transfer {
    let (kind, id, debit, credit, amount, pending_id, timeout, linked, ledger, user_data) = *op;
    let mut flags = match kind {
        0..=2 => TransferFlags::default(),
        3 => TransferFlags::PENDING,
        4 => TransferFlags::POST_PENDING,
        5 => TransferFlags::VOID_PENDING,
        6 => TransferFlags::BALANCING_DEBIT,
        7 => TransferFlags::BALANCING_CREDIT,
        8 => TransferFlags::REVERSAL,
        // Rarely: flags that exclude each other.
        _ => TransferFlags::PENDING.with(TransferFlags::REVERSAL),
    };
    if linked {
        flags = flags.with(TransferFlags::LINKED);
    }
    let refers = matches!(kind, 4 | 5 | 8);
    Transfer {
        id: u128::from(id),
        debit_account_id: if refers && debit > 1 {
            0
        } else {
            u128::from(debit)
        },
        credit_account_id: if refers && credit > 1 {
            0
        } else {
            u128::from(credit)
        },
        // Post, void and reversal mostly take the whole amount (0).
        amount: if refers && amount < 40 {
            0
        } else {
            u128::from(amount)
        },
        pending_id: if refers || pending_id == 0 {
            u128::from(pending_id)
        } else {
            0
        },
        user_data: u128::from(user_data),
        // Half never expire; the rest within a few batches.
        timeout_ns: if kind == 3 && timeout >= 20 {
            u64::from(timeout)
        } else {
            0
        },
        ledger: if refers { 0 } else { u32::from(ledger) },
        code: 1,
        flags,
    }
}

fn op() -> impl Strategy<Value = Op> {
    (
        prop::sample::select(vec![0u8, 1, 2, 3, 3, 3, 4, 4, 5, 6, 7, 8, 8, 9]),
        1u8..250,
        1u8..9,
        1u8..9,
        0u8..60,
        0u8..40,
        0u8..40,
        prop::bool::weighted(0.25),
        prop::sample::select(vec![1u8, 1, 1, 1, 2]),
        0u8..2,
    )
}

/// Batches of (time step, transfers).
/// Each op with a die: on 0 the op is replaced by an exact repeat of an earlier transfer.
fn workload() -> impl Strategy<Value = Vec<(u8, Vec<(Op, u8)>)>> {
    prop::collection::vec(
        (0u8..12, prop::collection::vec((op(), 0u8..4), 1..5)),
        1..60,
    )
}

/// The workload as (sequenced time, batch) pairs: repeats and references resolved against the
/// transfers sent before.
fn materialize(batches: &[(u8, Vec<(Op, u8)>)]) -> Vec<(u64, Vec<Transfer>)> {
    let mut ts = 0u64;
    let mut inputs = Vec::new();
    let mut sent: Vec<Transfer> = Vec::new();
    let mut last_reference = 0u128;
    for (step, ops) in batches {
        ts += u64::from(*step);
        let batch: Vec<Transfer> = ops
            .iter()
            .map(|(op, die)| {
                if *die == 0 && !sent.is_empty() {
                    sent[usize::from(op.1) % sent.len()]
                } else {
                    let mut t = transfer(op);
                    // References mostly name an earlier transfer of this run.
                    if t.pending_id != 0 && !sent.is_empty() && op.5 % 8 != 0 {
                        t.pending_id = if op.5 % 8 == 1 && last_reference != 0 {
                            // Resolve the same pending transfer a second time.
                            last_reference
                        } else {
                            let back = usize::from(op.5) % sent.len().min(12);
                            sent[sent.len() - 1 - back].id
                        };
                        last_reference = t.pending_id;
                    }
                    t
                }
            })
            .collect();
        sent.extend(batch.iter().copied());
        inputs.push((ts, batch));
    }
    inputs
}

// ------------------------------------------------------------------------------- checks

fn check_invariants(ledger: &Ledger) -> Result<(), TestCaseError> {
    let mut sums: BTreeMap<u32, [u128; 4]> = BTreeMap::new();
    for a in ledger.accounts() {
        let b = a.balances;
        let s = sums.entry(a.account.ledger).or_default();
        s[0] += b.debits_posted;
        s[1] += b.credits_posted;
        s[2] += b.debits_pending;
        s[3] += b.credits_pending;
        if a.account
            .flags
            .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
        {
            prop_assert!(b.debits_posted + b.debits_pending <= b.credits_posted);
        }
        if a.account
            .flags
            .contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
        {
            prop_assert!(b.credits_posted + b.credits_pending <= b.debits_posted);
        }
        // Roll-up = own + children's roll-ups.
        let mut want = b;
        for c in ledger.accounts() {
            if c.account.parent == a.account.id {
                want.debits_pending += c.rollup.debits_pending;
                want.debits_posted += c.rollup.debits_posted;
                want.credits_pending += c.rollup.credits_pending;
                want.credits_posted += c.rollup.credits_posted;
            }
        }
        prop_assert_eq!(a.rollup, want, "roll-up of {}", a.account.id);
        if a.account.flags.contains(AccountFlags::HISTORY) {
            prop_assert_eq!(
                ledger.balance_at_seq(a.account.id, ledger.seq()),
                Ok(b),
                "history of {}",
                a.account.id
            );
        }
    }
    for (l, s) in &sums {
        prop_assert_eq!(s[0], s[1], "ledger {} posted", l);
        prop_assert_eq!(s[2], s[3], "ledger {} pending", l);
    }
    let tb = ledger.trial_balance(1);
    prop_assert_eq!(tb.total_debits_posted, tb.total_credits_posted);
    Ok(())
}

fn run(batches: &[(u8, Vec<(Op, u8)>)]) -> Result<(), TestCaseError> {
    let config = Config {
        accounts_max: 16,
        transfers_max: 4096,
    };
    let mut ledger = Ledger::new(config);
    let mut model = Model::default();
    for a in accounts() {
        prop_assert_eq!(ledger.create_account(0, &a), Outcome::Ok);
        model.create_account(&a);
    }
    let mut outcomes = Vec::new();
    let mut inputs = Vec::new();
    let mut history: Vec<(u64, u128, Balances)> = Vec::new();
    for (ts, batch) in materialize(batches) {
        ledger.handle_tick(ts);
        let accounts_before = ledger.accounts().to_vec();
        let transfers_before = ledger.transfers().to_vec();
        outcomes.clear();
        ledger.create_transfers(ts, &batch, &mut outcomes);
        let want = model.batch(ts, &batch);
        prop_assert_eq!(&outcomes, &want, "batch {:?}", batch);
        SEEN.with(|seen| seen.borrow_mut().extend(outcomes.iter().map(|o| *o as u8)));
        if outcomes.iter().all(|o| *o != Outcome::Ok) {
            prop_assert_eq!(
                ledger.accounts(),
                &accounts_before[..],
                "a rejected batch changed accounts"
            );
            prop_assert_eq!(
                ledger.transfers(),
                &transfers_before[..],
                "a rejected batch changed transfers"
            );
        }
        // Chains: all successes or all failures.
        let mut start = 0;
        for (k, t) in batch.iter().enumerate() {
            if !t.flags.contains(TransferFlags::LINKED) || k + 1 == batch.len() {
                let chain = &outcomes[start..=k];
                let ok = chain.iter().filter(|o| o.is_success()).count();
                prop_assert!(ok == 0 || ok == chain.len(), "chain {:?}", chain);
                start = k + 1;
            }
        }
        for a in ledger.accounts() {
            let m = &model.accounts[&a.account.id];
            prop_assert_eq!(a.balances, m.b, "balances of {}", a.account.id);
            if a.account.flags.contains(AccountFlags::HISTORY) {
                history.push((ledger.seq(), a.account.id, a.balances));
            }
        }
        check_invariants(&ledger)?;
        inputs.push((ts, batch));
    }
    for (seq, id, b) in history {
        prop_assert_eq!(
            ledger.balance_at_seq(id, seq),
            Ok(b),
            "history of {} at {}",
            id,
            seq
        );
    }
    // Replay gives the same digest.
    let mut replay = Ledger::new(config);
    for a in accounts() {
        replay.create_account(0, &a);
    }
    for (ts, batch) in &inputs {
        replay.handle_tick(*ts);
        outcomes.clear();
        replay.create_transfers(*ts, batch, &mut outcomes);
    }
    prop_assert_eq!(replay.state_digest(), ledger.state_digest());
    Ok(())
}

thread_local! {
    /// Every outcome the workloads produced, to show they reach what they should.
    static SEEN: std::cell::RefCell<std::collections::BTreeSet<u8>> =
        const { std::cell::RefCell::new(std::collections::BTreeSet::new()) };
}

#[test]
fn ledger_matches_the_model_and_keeps_its_invariants() {
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(768);
    println!("seed = {seed} (replay with PROPTEST_RNG_SEED={seed})");
    let config = RunnerConfig {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..RunnerConfig::default()
    };
    let mut runner = TestRunner::new(config);
    if let Err(e) = runner.run(&workload(), |w| run(&w)) {
        panic!("{e}\nseed = {seed} (replay with PROPTEST_RNG_SEED={seed})");
    }
    let seen = SEEN.with(|seen| seen.borrow().clone());
    println!("outcomes seen: {seen:?}");
    for must in [
        Outcome::Ok,
        Outcome::Exists,
        Outcome::ExistsWithDifferentFlags,
        Outcome::PendingNotFound,
        Outcome::PendingExpired,
        Outcome::ExceedsCredits,
        Outcome::AccountClosed,
        Outcome::LinkedEventFailed,
        Outcome::LinkedEventChainOpen,
        Outcome::AmountExceedsReversible,
        Outcome::FlagsAreMutuallyExclusive,
    ] {
        if cases >= 512 {
            assert!(
                seen.contains(&(must as u8)),
                "no workload produced {must:?}"
            );
        }
    }
}

// ------------------------------------------------------------------------------- snapshots

fn seed_from_env() -> u64 {
    std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

fn runner(seed: u64, cases_default: u32) -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(cases_default);
    TestRunner::new(RunnerConfig {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..RunnerConfig::default()
    })
}

const SNAPSHOT_CONFIG: Config = Config {
    accounts_max: 16,
    transfers_max: 4096,
};

fn ledger_with_accounts() -> Ledger {
    let mut ledger = Ledger::new(SNAPSHOT_CONFIG);
    for a in accounts() {
        ledger.create_account(0, &a);
    }
    ledger
}

fn snapshot(ledger: &Ledger) -> Vec<u8> {
    let mut bytes = Vec::new();
    ledger.write_snapshot(&mut bytes);
    bytes
}

/// Runs the workload up to batch `cut`, snapshots, restores, and drives the original and the
/// restored ledger through the rest side by side.
fn run_snapshot(batches: &[(u8, Vec<(Op, u8)>)], cut: usize) -> Result<(), TestCaseError> {
    let inputs = materialize(batches);
    let cut = cut % (inputs.len() + 1);
    let mut original = ledger_with_accounts();
    let mut outcomes = Vec::new();
    for (ts, batch) in &inputs[..cut] {
        original.handle_tick(*ts);
        outcomes.clear();
        original.create_transfers(*ts, batch, &mut outcomes);
    }
    let bytes = snapshot(&original);
    let mut restored = Ledger::read_snapshot(SNAPSHOT_CONFIG, &bytes)
        .map_err(|e| TestCaseError::fail(format!("restore at batch {cut}: {e}")))?;
    prop_assert_eq!(restored.state_digest(), original.state_digest());
    prop_assert!(
        snapshot(&restored) == bytes,
        "snapshot → restore → snapshot"
    );
    let mut theirs = Vec::new();
    for (k, (ts, batch)) in inputs[cut..].iter().enumerate() {
        // Now and then a close and a late account, so those paths run after a restore too.
        if k == 3 {
            prop_assert_eq!(
                original.close_account(*ts, 3),
                restored.close_account(*ts, 3)
            );
            let late = Account {
                id: 9,
                ledger: 1,
                code: 10,
                parent: 4,
                ..Account::default()
            };
            prop_assert_eq!(
                original.create_account(*ts, &late),
                restored.create_account(*ts, &late)
            );
        }
        original.handle_tick(*ts);
        restored.handle_tick(*ts);
        outcomes.clear();
        theirs.clear();
        original.create_transfers(*ts, batch, &mut outcomes);
        restored.create_transfers(*ts, batch, &mut theirs);
        prop_assert_eq!(&outcomes, &theirs, "batch {} after the cut at {}", k, cut);
        prop_assert_eq!(restored.state_digest(), original.state_digest());
    }
    prop_assert_eq!(restored.expired_total(), original.expired_total());
    prop_assert_eq!(restored.accounts(), original.accounts());
    prop_assert_eq!(restored.transfers(), original.transfers());
    prop_assert!(snapshot(&restored) == snapshot(&original));
    Ok(())
}

#[test]
fn a_restored_snapshot_behaves_like_the_original() {
    let seed = seed_from_env();
    println!("seed = {seed} (replay with PROPTEST_RNG_SEED={seed})");
    let mut runner = runner(seed, 512);
    if let Err(e) = runner.run(&(workload(), any::<usize>()), |(w, cut)| {
        run_snapshot(&w, cut)
    }) {
        panic!("{e}\nseed = {seed} (replay with PROPTEST_RNG_SEED={seed})");
    }
}

/// Damaged snapshot bytes give an error, never a panic: every truncation, single-byte flips
/// (caught), and flips behind a recomputed checksum (the structural checks; whatever they accept
/// re-encodes to the same bytes).
fn damage(batches: &[(u8, Vec<(Op, u8)>)], picks: &[(usize, u8)]) -> Result<(), TestCaseError> {
    let mut ledger = ledger_with_accounts();
    let mut outcomes = Vec::new();
    for (ts, batch) in materialize(batches) {
        ledger.handle_tick(ts);
        outcomes.clear();
        ledger.create_transfers(ts, &batch, &mut outcomes);
    }
    let bytes = snapshot(&ledger);
    for &(pick, xor) in picks {
        let cut = pick % bytes.len();
        prop_assert!(Ledger::read_snapshot(SNAPSHOT_CONFIG, &bytes[..cut]).is_err());
        let at = pick % bytes.len();
        let mut flipped = bytes.clone();
        flipped[at] ^= xor.max(1);
        prop_assert!(
            Ledger::read_snapshot(SNAPSHOT_CONFIG, &flipped).is_err(),
            "a flip at {} went unnoticed",
            at
        );
        sequent_ledger::snapshot::reseal(&mut flipped);
        if let Ok(restored) = Ledger::read_snapshot(SNAPSHOT_CONFIG, &flipped) {
            // The capacities written (offsets 16..24) are informational and rewritten (and so
            // is the checksum over them).
            let again = snapshot(&restored);
            prop_assert_eq!(again.len(), flipped.len());
            let body = again.len() - sequent_ledger::snapshot::CHECKSUM_BYTES;
            let differs: Vec<usize> = (0..body).filter(|&i| again[i] != flipped[i]).collect();
            prop_assert!(
                differs.iter().all(|&i| (16..24).contains(&i)),
                "accepted bytes are not canonical at {:?}",
                differs
            );
        }
    }
    let mut longer = bytes.clone();
    longer.push(0);
    prop_assert!(Ledger::read_snapshot(SNAPSHOT_CONFIG, &longer).is_err());
    let small = Config {
        accounts_max: 2,
        transfers_max: 4096,
    };
    prop_assert!(Ledger::read_snapshot(small, &bytes).is_err());
    Ok(())
}

#[test]
fn damaged_snapshots_are_errors_never_panics() {
    let seed = seed_from_env();
    println!("seed = {seed} (replay with PROPTEST_RNG_SEED={seed})");
    let mut runner = runner(seed, 64);
    let picks = prop::collection::vec((any::<usize>(), any::<u8>()), 200);
    if let Err(e) = runner.run(&(workload(), picks), |(w, picks)| damage(&w, &picks)) {
        panic!("{e}\nseed = {seed} (replay with PROPTEST_RNG_SEED={seed})");
    }
}

#[test]
fn an_empty_ledger_round_trips_and_errors_name_the_field() {
    let empty = Ledger::new(SNAPSHOT_CONFIG);
    let bytes = snapshot(&empty);
    let restored = Ledger::read_snapshot(SNAPSHOT_CONFIG, &bytes).unwrap();
    assert_eq!(restored.state_digest(), empty.state_digest());
    assert!(snapshot(&restored) == bytes);
    let e = Ledger::read_snapshot(SNAPSHOT_CONFIG, b"SQLEDGER\x01\0\0\0").unwrap_err();
    assert_eq!(
        e.to_string(),
        "ledger snapshot truncated: reserved needs 4 bytes at offset 12"
    );
    assert!(matches!(
        Ledger::read_snapshot(SNAPSHOT_CONFIG, b"not a snapshot at all"),
        Err(sequent_ledger::SnapshotError::BadMagic)
    ));
    let mut newer = bytes.clone();
    newer[8] = 2;
    assert!(matches!(
        Ledger::read_snapshot(SNAPSHOT_CONFIG, &newer),
        Err(sequent_ledger::SnapshotError::UnsupportedVersion { found: 2 })
    ));
}
