//! `sequent-payments`: the deterministic core of card acquiring (issue 9).
//!
//! This crate owns the payment state machine: screening and velocity, daily limits, the
//! authorisation hold in an embedded `sequent_ledger::Ledger`, 3-D Secure 2 as the 3DS server,
//! routing across acquirers with per-acquirer circuit breakers, safe retries (reverse first,
//! retry elsewhere after), captures, voids, refunds, hold expiry, clearing-file reconciliation
//! with settlement postings, and the chargeback lifecycle. It must not touch a clock, randomness,
//! threads, I/O or floating point, and it never iterates a hash table (every map is a `BTreeMap`
//! or a `Vec`). Time and sequence arrive with each input ([`Payments::handle`]); everything the
//! engine wants done outside (acquirer messages, 3DS messages, merchant answers, timers) is an
//! [`Output`] pushed to a `Vec` the caller owns.
//!
//! The card number never reaches this crate: the edge (`sequent-vault`) tokenises it before
//! sequencing, and inputs carry a [`Token`], the BIN and the last four digits only.
//!
//! ```
//! use sequent_payments::*;
//! let mut p = Payments::new(Config::example());
//! let mut out = Vec::new();
//! let create = CreatePayment {
//!     merchant: MerchantId(2), key: IdemKey(1), body_hash: [7; 32], amount: 1_000,
//!     currency: 978, token: Token(42), bin: Bin(41_234_567), last4: 1234,
//!     expiry: Expiry(9912), three_ds: None,
//! };
//! p.handle(1, 1_700_000_000_000_000_000, &Input::CreatePayment(create), &mut out);
//! assert!(out.iter().any(|o| matches!(o, Output::ToAcquirer { .. })));
//! p.check_invariants().unwrap();
//! ```

#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use sequent_ledger::{
    Account, AccountFlags, Ledger, Outcome, PendingState, Transfer, TransferFlags,
};

pub mod chart;
pub mod config;
mod digest;
pub mod limits;
pub mod routing;
pub mod screen;
pub mod sim;
pub mod threeds;
mod types;
pub mod wire;

pub use config::{AcquirerConfig, BinCountry, Config, MerchantConfig};
pub use types::*;
pub use wire::DecodeError;

use chart::kind;
use limits::{Limits, day_of};
use routing::Router;
use screen::Screen;
use threeds::{Stage, Step};

/// Most refunds per payment.
pub const REFUNDS_MAX: usize = 16;
/// Most chargebacks per payment (one open at a time).
pub const DISPUTES_MAX: u8 = 8;

/// Where one authorisation attempt stands. `Pending` and `Approved` are *live*: the card may be
/// (or is) authorised. A payment never has two live attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptState {
    /// Sent; no answer yet.
    Pending,
    Approved {
        auth_code: [u8; 6],
        amount: u64,
    },
    Declined {
        code: u16,
    },
    /// No usable answer (timeout or error): a reversal was sent; nothing may revive it.
    Reversed,
    /// Approved, then released (void or expiry): a reversal was sent.
    Released {
        amount: u64,
    },
}

impl AttemptState {
    pub fn is_live(self) -> bool {
        matches!(self, Self::Pending | Self::Approved { .. })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub acquirer: AcquirerId,
    pub sent_at: Nanos,
    pub state: AttemptState,
    /// An answer that came after the attempt was given up (recorded, never acted on).
    pub late: Option<AcquirerResult>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dispute {
    pub number: u8,
    pub state: DisputeState,
    pub amount: u64,
    pub reason: u16,
}

/// One payment as the engine holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    pub id: PaymentId,
    pub request: CreatePayment,
    pub created: Nanos,
    pub status: Status,
    pub reason: Option<Reason>,
    pub decline_code: Option<u16>,
    /// 3DS result used for the authorisation (the request's, or ours).
    pub three_ds: Option<ThreeDsResult>,
    pub three_ds_stage: Option<Stage>,
    pub three_ds_deadline: Nanos,
    pub attempts: Vec<Attempt>,
    /// Amount reserved against the daily limits (given back when not authorised).
    pub reserved: u64,
    pub authorised: u64,
    pub captured: u64,
    pub refunds: Vec<u64>,
    /// Ledger id of the current hold, and the number of holds made (a partial approval re-holds).
    pub hold: Option<u128>,
    pub holds: u8,
    pub hold_expires_at: Nanos,
    pub capture_settled: bool,
    /// Bit `n - 1` set: refund `n` settled.
    pub refunds_settled: u32,
    pub dispute: Option<Dispute>,
    pub charged_back: u64,
}

impl Payment {
    pub fn refunded(&self) -> u64 {
        self.refunds.iter().sum()
    }

    /// The live attempt (number from 1), if any.
    pub fn live_attempt(&self) -> Option<(u8, &Attempt)> {
        self.attempts
            .iter()
            .enumerate()
            .find(|(_, a)| a.state.is_live())
            .map(|(i, a)| (i as u8 + 1, a))
    }

    /// The approved attempt (number from 1), whether still live or released.
    pub fn approved_attempt(&self) -> Option<(u8, &Attempt)> {
        self.attempts
            .iter()
            .enumerate()
            .find(|(_, a)| {
                matches!(
                    a.state,
                    AttemptState::Approved { .. } | AttemptState::Released { .. }
                )
            })
            .map(|(i, a)| (i as u8 + 1, a))
    }

    fn open_dispute_amount(&self) -> u64 {
        self.dispute
            .filter(|d| !d.state.is_final())
            .map_or(0, |d| d.amount)
    }

    pub fn view(&self) -> PaymentView {
        let live = self.live_attempt();
        PaymentView {
            payment_id: self.id,
            merchant: self.request.merchant,
            status: self.status,
            reason: self.reason,
            decline_code: self.decline_code,
            amount: self.request.amount,
            currency: self.request.currency,
            authorised: self.authorised,
            captured: self.captured,
            refunded: self.refunded(),
            charged_back: self.charged_back,
            last4: self.request.last4,
            acquirer: live.map(|(_, a)| a.acquirer),
            attempt: live.map_or(0, |(n, _)| n),
        }
    }
}

/// Deadline kinds in the deadline table.
const DEADLINE_AUTH: u8 = 1;
const DEADLINE_THREE_DS: u8 = 2;
const DEADLINE_HOLD: u8 = 3;

/// The payments engine: one instance per shard, a single writer.
pub struct Payments {
    config: Config,
    ledger: Ledger,
    screen: Screen,
    limits: Limits,
    router: Router,
    /// Payment `n` at index `n - 1`.
    payments: Vec<Payment>,
    /// (merchant, key) → (body hash, first answer).
    idempotency: BTreeMap<(MerchantId, IdemKey), (BodyHash, Reply)>,
    /// The same keys by the time they were first used: they are forgotten once
    /// `idempotency_window` of sequenced time has passed.
    idempotency_by_time: BTreeSet<(Nanos, MerchantId, IdemKey)>,
    /// (due, kind, payment, attempt): fired in this order once sequenced time reaches `due`.
    deadlines: BTreeSet<(Nanos, u8, PaymentId, u8)>,
    last_seq: u64,
    now: Nanos,
    late_replies: u64,
    /// Scratch for ledger outcomes (reused).
    outcomes: Vec<Outcome>,
}

impl fmt::Debug for Payments {
    /// The whole payments state; the embedded ledger is summarised (its own `Debug` prints raw
    /// nanosecond timestamps).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Payments")
            .field("last_seq", &self.last_seq)
            .field("now", &self.now)
            .field("payments", &self.payments)
            .field("idempotency", &self.idempotency)
            .field("deadlines", &self.deadlines)
            .field("router", &self.router)
            .field("screen", &self.screen)
            .field("limits", &self.limits)
            .field("late_replies", &self.late_replies)
            .field("ledger_accounts", &self.ledger.accounts().len())
            .field("ledger_transfers", &self.ledger.transfers().len())
            .finish()
    }
}

/// What one ledger batch answered: `Ok` or the first failure.
fn first_failure(outcomes: &[Outcome]) -> Result<(), Outcome> {
    match outcomes.iter().find(|o| !o.is_success()) {
        None => Ok(()),
        Some(&o) => Err(o),
    }
}

impl Payments {
    /// An engine with its ledger accounts opened (chart in [`chart`]).
    pub fn new(config: Config) -> Self {
        config.validate();
        let currencies = config.currencies();
        let accounts_max =
            (currencies.len() * (2 + config.acquirers.len() + config.merchants.len())) as u32;
        // Per payment: holds (2), their voids (2), capture, settlement (2), refunds and their
        // settlement (2 × 16), chargebacks and their resolution (2 × 8).
        let per_payment = 7 + 2 * REFUNDS_MAX as u32 + 2 * u32::from(DISPUTES_MAX);
        let mut ledger = Ledger::new(sequent_ledger::Config {
            accounts_max: accounts_max.max(1),
            transfers_max: config.payments_max.saturating_mul(per_payment),
        });
        let open = |id: u128, ledger_no: u16, code: u16, ledger: &mut Ledger| {
            let outcome = ledger.create_account(
                0,
                &Account {
                    id,
                    user_data: 0,
                    parent: 0,
                    ledger: u32::from(ledger_no),
                    code,
                    flags: AccountFlags::default(),
                },
            );
            assert_eq!(outcome, Outcome::Ok, "opening account {id:x}");
        };
        for &c in &currencies {
            open(
                chart::scheme_receivable(c),
                c,
                chart::CODE_SCHEME_RECEIVABLE,
                &mut ledger,
            );
            open(chart::fees(c), c, chart::CODE_FEES, &mut ledger);
            for a in &config.acquirers {
                open(chart::bank(a.id.0, c), c, chart::CODE_BANK, &mut ledger);
            }
            for m in config.merchants.iter().filter(|m| m.currency == c) {
                open(
                    chart::merchant_payable(m.id.0, c),
                    c,
                    chart::CODE_MERCHANT_PAYABLE,
                    &mut ledger,
                );
            }
        }
        Self {
            router: Router::new(&config),
            ledger,
            screen: Screen::default(),
            limits: Limits::default(),
            payments: Vec::with_capacity(config.payments_max as usize),
            idempotency: BTreeMap::new(),
            idempotency_by_time: BTreeSet::new(),
            deadlines: BTreeSet::new(),
            last_seq: 0,
            now: Nanos(0),
            late_replies: 0,
            outcomes: Vec::with_capacity(4),
            config,
        }
    }

    // ------------------------------------------------------------------ queries

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    pub fn now(&self) -> Nanos {
        self.now
    }

    pub fn payment(&self, id: PaymentId) -> Option<&Payment> {
        let i = usize::try_from(id.0).ok()?.checked_sub(1)?;
        self.payments.get(i)
    }

    /// Payments in id order.
    pub fn payments(&self) -> &[Payment] {
        &self.payments
    }

    /// Answers that came after their attempt was given up.
    pub fn late_replies(&self) -> u64 {
        self.late_replies
    }

    /// The earliest pending deadline (what the node's timer should be armed for).
    pub fn next_deadline(&self) -> Option<Nanos> {
        self.deadlines.first().map(|d| d.0)
    }

    /// SHA-256 over the ledger's digest and the whole payments state in canonical order.
    pub fn state_digest(&self) -> [u8; 32] {
        let mut h = digest::H::new();
        h.fixed(&self.ledger.state_digest());
        h.u64(self.last_seq);
        h.u64(self.now.0);
        h.u64(self.late_replies);
        h.u64(self.payments.len() as u64);
        for p in &self.payments {
            let mut bytes = Vec::with_capacity(128);
            Input::CreatePayment(p.request).encode(&mut bytes);
            h.bytes(&bytes);
            let view = Output::PaymentUpdate(p.view()).to_bytes();
            h.bytes(&view);
            h.u64(p.created.0);
            match p.three_ds {
                None => h.u8(0),
                Some(t) => {
                    h.u8(1);
                    h.u8(t.eci);
                    h.fixed(&t.cavv);
                }
            }
            match p.three_ds_stage {
                None => h.u8(0),
                Some(Stage::AwaitingARes) => h.u8(1),
                Some(Stage::AwaitingChallenge { acs_trans_id }) => {
                    h.u8(2);
                    h.u64(acs_trans_id);
                }
                Some(Stage::AwaitingRReq { acs_trans_id }) => {
                    h.u8(3);
                    h.u64(acs_trans_id);
                }
            }
            h.u64(p.three_ds_deadline.0);
            h.u64(p.attempts.len() as u64);
            for a in &p.attempts {
                h.u64(u64::from(a.acquirer.0));
                h.u64(a.sent_at.0);
                match a.state {
                    AttemptState::Pending => h.u8(1),
                    AttemptState::Approved { auth_code, amount } => {
                        h.u8(2);
                        h.fixed(&auth_code);
                        h.u64(amount);
                    }
                    AttemptState::Declined { code } => {
                        h.u8(3);
                        h.u64(u64::from(code));
                    }
                    AttemptState::Reversed => h.u8(4),
                    AttemptState::Released { amount } => {
                        h.u8(5);
                        h.u64(amount);
                    }
                }
                match a.late {
                    None => h.u8(0),
                    Some(r) => {
                        let b = Output::LateReply {
                            acquirer: a.acquirer,
                            payment_id: p.id,
                            attempt: 0,
                            result: r,
                        }
                        .to_bytes();
                        h.bytes(&b);
                    }
                }
            }
            h.u64(p.reserved);
            h.list(&p.refunds);
            h.u128(p.hold.unwrap_or(0));
            h.u8(p.holds);
            h.u64(p.hold_expires_at.0);
            h.u8(u8::from(p.capture_settled));
            h.u64(u64::from(p.refunds_settled));
            match p.dispute {
                None => h.u8(0),
                Some(d) => {
                    h.u8(1);
                    h.u8(d.number);
                    h.u8(d.state as u8);
                    h.u64(d.amount);
                    h.u64(u64::from(d.reason));
                }
            }
        }
        h.u64(self.idempotency.len() as u64);
        for ((m, k), (body, reply)) in &self.idempotency {
            h.u64(u64::from(m.0));
            h.u128(k.0);
            h.fixed(body);
            let b = Output::Reply {
                merchant: *m,
                key: *k,
                reply: *reply,
            }
            .to_bytes();
            h.bytes(&b);
        }
        h.u64(self.idempotency_by_time.len() as u64);
        for &(at, m, k) in &self.idempotency_by_time {
            h.u64(at.0);
            h.u64(u64::from(m.0));
            h.u128(k.0);
        }
        h.u64(self.deadlines.len() as u64);
        for &(at, k, p, a) in &self.deadlines {
            h.u64(at.0);
            h.u8(k);
            h.u64(p.0);
            h.u8(a);
        }
        self.router.digest(&mut h);
        self.screen.digest(&mut h);
        self.limits.digest(&mut h);
        h.finish()
    }

    /// Checks every invariant of the state; the tests call it after every step. `Err` names the
    /// first broken one.
    pub fn check_invariants(&self) -> Result<(), String> {
        let ledger_now = self.ledger.now_ns();
        for p in &self.payments {
            let id = p.id;
            let live = p.attempts.iter().filter(|a| a.state.is_live()).count();
            if live > 1 {
                return Err(format!("{id:?}: {live} live authorisations"));
            }
            if p.captured > p.authorised {
                return Err(format!(
                    "{id:?}: captured {} > authorised {}",
                    p.captured, p.authorised
                ));
            }
            if p.refunded() + p.charged_back > p.captured {
                return Err(format!("{id:?}: refunded + charged back > captured"));
            }
            let hold = p.hold.and_then(|h| self.ledger.transfer(h));
            let hold_state = hold.map(|t| t.state);
            let pending = hold_state == Some(PendingState::Pending);
            match p.status {
                Status::Authorising => {
                    let pending_attempts = p
                        .attempts
                        .iter()
                        .filter(|a| a.state == AttemptState::Pending)
                        .count();
                    if pending_attempts != 1
                        || !pending
                        || hold.map(|t| t.amount) != Some(u128::from(p.request.amount))
                    {
                        return Err(format!(
                            "{id:?}: authorising without one attempt and a hold"
                        ));
                    }
                }
                Status::Authorised => {
                    let ok = matches!(p.live_attempt(), Some((_, a)) if matches!(a.state, AttemptState::Approved { amount, .. } if amount == p.authorised));
                    if !ok || !pending || hold.map(|t| t.amount) != Some(u128::from(p.authorised)) {
                        return Err(format!("{id:?}: authorised without its approval and hold"));
                    }
                }
                Status::Captured | Status::PartiallyRefunded | Status::Refunded => {
                    if hold_state != Some(PendingState::Posted) {
                        return Err(format!("{id:?}: captured without a posted hold"));
                    }
                    let posted = self
                        .ledger
                        .transfer(chart::transfer_id(id.0, kind::CAPTURE, 0))
                        .map(|t| t.amount);
                    if posted != Some(u128::from(p.captured)) {
                        return Err(format!("{id:?}: capture posting differs from captured"));
                    }
                }
                Status::Authenticating
                | Status::Declined
                | Status::Rejected
                | Status::Voided
                | Status::Expired => {
                    if pending {
                        return Err(format!("{id:?}: {:?} with a pending hold", p.status));
                    }
                    if live != 0 {
                        return Err(format!("{id:?}: {:?} with a live authorisation", p.status));
                    }
                }
            }
            if p.status == Status::Expired && hold_state != Some(PendingState::Expired) {
                return Err(format!(
                    "{id:?}: expired but the ledger hold is {hold_state:?}"
                ));
            }
        }
        for a in &self.router.acquirers {
            let n = self
                .payments
                .iter()
                .flat_map(|p| &p.attempts)
                .filter(|t| t.acquirer == a.config.id && t.state == AttemptState::Pending)
                .count();
            if n as u32 != a.in_flight {
                return Err(format!(
                    "acquirer {:?}: in flight {} but {n} pending",
                    a.config.id, a.in_flight
                ));
            }
        }
        for c in self.config.currencies() {
            let tb = self.ledger.trial_balance(u32::from(c));
            if tb.total_debits_posted != tb.total_credits_posted {
                return Err(format!("ledger {c}: trial balance does not balance"));
            }
            let (mut dp, mut cp) = (0u128, 0u128);
            for a in self
                .ledger
                .accounts()
                .iter()
                .filter(|a| a.account.ledger == u32::from(c))
            {
                dp += a.balances.debits_pending;
                cp += a.balances.credits_pending;
            }
            if dp != cp {
                return Err(format!(
                    "ledger {c}: pending debits {dp} != pending credits {cp}"
                ));
            }
        }
        // Σ open holds = Σ (authorised, not captured or released) + Σ (being authorised).
        let held: u128 = self
            .ledger
            .transfers()
            .iter()
            .filter(|t| t.code == u16::from(kind::HOLD) && t.state == PendingState::Pending)
            .map(|t| t.amount)
            .sum();
        let owed: u128 = self
            .payments
            .iter()
            .map(|p| match p.status {
                Status::Authorised => u128::from(p.authorised),
                Status::Authorising => u128::from(p.request.amount),
                _ => 0,
            })
            .sum();
        if held != owed {
            return Err(format!(
                "open holds {held} != authorised or authorising {owed}"
            ));
        }
        for t in self.ledger.transfers() {
            if t.state == PendingState::Pending
                && t.expires_at_ns != 0
                && t.expires_at_ns <= ledger_now
            {
                return Err(format!(
                    "a hold is still pending past its deadline ({:x})",
                    t.request.id
                ));
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------ the step

    /// Applies one sequenced input at sequenced time `ts_ns`, pushing what it causes to `out`
    /// (which the caller owns and clears). Deadlines due at `ts_ns` fire first, in deadline order.
    /// A merchant command's [`Output::Reply`] is the last output it causes.
    pub fn handle(&mut self, seq: u64, ts_ns: u64, input: &Input, out: &mut Vec<Output>) {
        assert!(
            seq > self.last_seq,
            "sequence {seq} after {}",
            self.last_seq
        );
        self.last_seq = seq;
        self.fire_deadlines(Nanos(ts_ns), out);
        self.now = Nanos(self.now.0.max(ts_ns));
        self.ledger.handle_tick(self.now.0);
        self.forget_old_keys();
        match input {
            Input::CreatePayment(c) => {
                if self.replayed(c.merchant, c.key, &c.body_hash, out) {
                    return;
                }
                let reply = self.create(c, out);
                self.answer(c.merchant, c.key, c.body_hash, reply, out);
            }
            Input::Capture {
                merchant,
                key,
                body_hash,
                payment_id,
                amount,
            } => {
                if self.replayed(*merchant, *key, body_hash, out) {
                    return;
                }
                let reply = self.capture(*merchant, *payment_id, *amount, out);
                self.answer(*merchant, *key, *body_hash, reply, out);
            }
            Input::Void {
                merchant,
                key,
                body_hash,
                payment_id,
            } => {
                if self.replayed(*merchant, *key, body_hash, out) {
                    return;
                }
                let reply = self.void(*merchant, *payment_id, out);
                self.answer(*merchant, *key, *body_hash, reply, out);
            }
            Input::Refund {
                merchant,
                key,
                body_hash,
                payment_id,
                amount,
            } => {
                if self.replayed(*merchant, *key, body_hash, out) {
                    return;
                }
                let reply = self.refund(*merchant, *payment_id, *amount, out);
                self.answer(*merchant, *key, *body_hash, reply, out);
            }
            Input::GetStatus {
                merchant,
                payment_id,
            } => {
                let reply = match self.owned(*merchant, *payment_id) {
                    Some(i) => Reply::Status(self.payments[i].view()),
                    None => Reply::Rejected {
                        payment_id: PaymentId(0),
                        reason: Reason::PaymentNotFound,
                        retry_at: Nanos(0),
                    },
                };
                out.push(Output::Reply {
                    merchant: *merchant,
                    key: IdemKey(0),
                    reply,
                });
            }
            Input::AcquirerReply {
                acquirer,
                payment_id,
                attempt,
                result,
            } => self.handle_acquirer_reply(*acquirer, *payment_id, *attempt, *result, out),
            Input::AcquirerTimeout {
                acquirer,
                payment_id,
                attempt,
            } => match self.attempt_index(*acquirer, *payment_id, *attempt) {
                Err(why) => out.push(Output::Ignored {
                    payment_id: *payment_id,
                    why,
                }),
                Ok((i, a)) => {
                    if self.payments[i].attempts[a].state == AttemptState::Pending {
                        self.give_up_attempt(i, a, out);
                    } else {
                        out.push(Output::Ignored {
                            payment_id: *payment_id,
                            why: Ignored::StaleTimeout,
                        });
                    }
                }
            },
            Input::ThreeDsARes(a) => {
                self.handle_three_ds(a.payment_id, threeds::Event::ARes(*a), out)
            }
            Input::ThreeDsCRes {
                payment_id,
                acs_trans_id,
            } => self.handle_three_ds(
                *payment_id,
                threeds::Event::CRes {
                    acs_trans_id: *acs_trans_id,
                },
                out,
            ),
            Input::ThreeDsRReq(r) => {
                self.handle_three_ds(r.payment_id, threeds::Event::RReq(*r), out)
            }
            Input::Tick => {
                self.screen.prune(&self.config, self.now);
                self.limits.prune(day_of(self.now));
            }
            Input::ClearingFile { acquirer, rows } => self.reconcile(*acquirer, rows, out),
            Input::ChargebackOpened {
                payment_id,
                amount,
                reason,
            } => self.chargeback_opened(*payment_id, *amount, *reason, out),
            Input::DisputeEvidenceSubmitted { payment_id } => {
                self.dispute_step(*payment_id, DisputeState::EvidenceSubmitted, out)
            }
            Input::DisputeAccepted { payment_id } => {
                self.dispute_step(*payment_id, DisputeState::Accepted, out)
            }
            Input::DisputeResolved { payment_id, won } => self.dispute_step(
                *payment_id,
                if *won {
                    DisputeState::Won
                } else {
                    DisputeState::Lost
                },
                out,
            ),
        }
    }

    // ------------------------------------------------------------------ idempotency

    /// Forgets keys first used `idempotency_window` or longer ago.
    fn forget_old_keys(&mut self) {
        while let Some(&first) = self.idempotency_by_time.first() {
            if first.0.0.saturating_add(self.config.idempotency_window.0) > self.now.0 {
                break;
            }
            self.idempotency_by_time.remove(&first);
            self.idempotency.remove(&(first.1, first.2));
        }
    }

    /// Replays the stored answer for a repeated key (or answers `Conflict`); false when new.
    fn replayed(
        &mut self,
        merchant: MerchantId,
        key: IdemKey,
        body: &BodyHash,
        out: &mut Vec<Output>,
    ) -> bool {
        let Some((stored_body, reply)) = self.idempotency.get(&(merchant, key)) else {
            return false;
        };
        let reply = if stored_body == body {
            *reply
        } else {
            Reply::Conflict
        };
        out.push(Output::Reply {
            merchant,
            key,
            reply,
        });
        true
    }

    fn answer(
        &mut self,
        merchant: MerchantId,
        key: IdemKey,
        body: BodyHash,
        reply: Reply,
        out: &mut Vec<Output>,
    ) {
        // Remembered keys are bounded; past the bound the answer still goes out, unremembered
        // (only `CapacityExceeded` answers can reach this, as payments are bounded first).
        if self.idempotency.len() < 4 * self.config.payments_max as usize {
            self.idempotency.insert((merchant, key), (body, reply));
            self.idempotency_by_time.insert((self.now, merchant, key));
        }
        out.push(Output::Reply {
            merchant,
            key,
            reply,
        });
    }

    /// The index of `merchant`'s payment `id`.
    fn owned(&self, merchant: MerchantId, id: PaymentId) -> Option<usize> {
        let i = usize::try_from(id.0).ok()?.checked_sub(1)?;
        (self.payments.get(i)?.request.merchant == merchant).then_some(i)
    }

    // ------------------------------------------------------------------ deadlines

    fn arm(&mut self, at: Nanos, kind: u8, id: PaymentId, attempt: u8, out: &mut Vec<Output>) {
        self.deadlines.insert((at, kind, id, attempt));
        out.push(Output::ArmTimer { at });
    }

    /// Fires every deadline due by `until`, each at its own time: the engine's clock and the
    /// ledger's step to the deadline first. A long gap between inputs therefore plays out as it
    /// would have with a tick at every deadline (a retry sent at a timeout can itself time out
    /// within the gap, and an attempt times out before a later hold expiry), and replay sees the
    /// same sequence whatever the spacing of ticks.
    fn fire_deadlines(&mut self, until: Nanos, out: &mut Vec<Output>) {
        while let Some(&first) = self.deadlines.first() {
            let (at, kind, id, attempt) = first;
            if at > until {
                break;
            }
            self.deadlines.remove(&first);
            self.now = Nanos(self.now.0.max(at.0));
            self.ledger.handle_tick(self.now.0);
            let i = (id.0 - 1) as usize;
            match kind {
                DEADLINE_AUTH => {
                    let a = usize::from(attempt - 1);
                    if self.payments[i].attempts[a].state == AttemptState::Pending {
                        self.give_up_attempt(i, a, out);
                    }
                }
                DEADLINE_THREE_DS => {
                    let p = &self.payments[i];
                    if p.three_ds_stage.is_some() && p.three_ds_deadline == at {
                        self.handle_three_ds(id, threeds::Event::Timeout, out);
                    }
                }
                DEADLINE_HOLD => {
                    if self.payments[i].status == Status::Authorised {
                        self.expire(i, out);
                    }
                }
                _ => unreachable!("deadline kinds are the three above"),
            }
        }
    }

    // ------------------------------------------------------------------ new payments

    fn create(&mut self, c: &CreatePayment, out: &mut Vec<Output>) -> Reply {
        let rejected = |reason| Reply::Rejected {
            payment_id: PaymentId(0),
            reason,
            retry_at: Nanos(0),
        };
        if self.payments.len() >= self.config.payments_max as usize {
            return rejected(Reason::CapacityExceeded);
        }
        let Some(merchant) = self.config.merchant(c.merchant).cloned() else {
            return rejected(Reason::UnknownMerchant);
        };
        if c.amount == 0 {
            return rejected(Reason::AmountZero);
        }
        let id = PaymentId(self.payments.len() as u64 + 1);
        self.payments.push(Payment {
            id,
            request: *c,
            created: self.now,
            status: Status::Rejected,
            reason: None,
            decline_code: None,
            three_ds: c.three_ds,
            three_ds_stage: None,
            three_ds_deadline: Nanos(0),
            attempts: Vec::with_capacity(usize::from(self.config.attempts_max)),
            reserved: 0,
            authorised: 0,
            captured: 0,
            refunds: Vec::new(),
            hold: None,
            holds: 0,
            hold_expires_at: Nanos(0),
            capture_settled: false,
            refunds_settled: 0,
            dispute: None,
            charged_back: 0,
        });
        let i = self.payments.len() - 1;
        let reject = |this: &mut Self, reason| {
            this.payments[i].reason = Some(reason);
            Reply::Rejected {
                payment_id: id,
                reason,
                retry_at: Nanos(0),
            }
        };
        if let Some(reason) = self.screen.check(&self.config, &merchant, c, self.now) {
            return reject(self, reason);
        }
        if let Some(reason) = self.limits.check_and_reserve(
            c.merchant,
            merchant.daily_volume_max,
            c.token,
            self.config.card_daily_max,
            day_of(self.now),
            c.amount,
        ) {
            return reject(self, reason);
        }
        self.payments[i].reserved = c.amount;
        if c.three_ds.is_none() && c.amount >= merchant.three_ds_from {
            let deadline = Nanos(
                self.now
                    .0
                    .saturating_add(self.config.three_ds_ares_timeout.0),
            );
            let p = &mut self.payments[i];
            p.status = Status::Authenticating;
            p.three_ds_stage = Some(Stage::AwaitingARes);
            p.three_ds_deadline = deadline;
            out.push(Output::ToThreeDs(ThreeDsRequest::AReq {
                payment_id: id,
                merchant: c.merchant,
                amount: c.amount,
                currency: c.currency,
                token: c.token,
                bin: c.bin,
            }));
            self.arm(deadline, DEADLINE_THREE_DS, id, 0, out);
            return Reply::Ok(self.payments[i].view());
        }
        match self.start_authorisation(i, out) {
            Ok(()) => Reply::Ok(self.payments[i].view()),
            Err(reason) => {
                self.end_unauthorised(i, Status::Rejected, Some(reason), None, false, out);
                let retry_at = if reason == Reason::NoRouteAvailable {
                    self.router
                        .retry_at(&self.config, c.bin, c.currency, self.now)
                        .unwrap_or(Nanos(0))
                } else {
                    Nanos(0)
                };
                Reply::Rejected {
                    payment_id: id,
                    reason,
                    retry_at,
                }
            }
        }
    }

    /// Route, hold, send: the part of the pipeline after screening, limits and 3DS.
    fn start_authorisation(&mut self, i: usize, out: &mut Vec<Output>) -> Result<(), Reason> {
        let r = self.payments[i].request;
        let acquirer = self
            .router
            .choose(&self.config, r.bin, r.currency, |_| false, self.now)
            .ok_or(Reason::NoRouteAvailable)?;
        let id = self.payments[i].id;
        let hold = chart::transfer_id(id.0, kind::HOLD, 0);
        let expires_at = Nanos(self.now.0.saturating_add(self.config.auth_validity.0));
        self.ledger_apply(&[Transfer {
            id: hold,
            debit_account_id: chart::scheme_receivable(r.currency),
            credit_account_id: chart::merchant_payable(r.merchant.0, r.currency),
            amount: u128::from(r.amount),
            user_data: u128::from(id.0),
            timeout_ns: self.config.auth_validity.0,
            ledger: u32::from(r.currency),
            code: u16::from(kind::HOLD),
            flags: TransferFlags::PENDING,
            ..Transfer::default()
        }])
        .map_err(|_| Reason::LedgerRejected)?;
        let p = &mut self.payments[i];
        p.hold = Some(hold);
        p.holds = 1;
        p.hold_expires_at = expires_at;
        self.arm(expires_at, DEADLINE_HOLD, id, 0, out);
        self.send_attempt(i, acquirer, out);
        Ok(())
    }

    fn send_attempt(&mut self, i: usize, acquirer: AcquirerId, out: &mut Vec<Output>) {
        let now = self.now;
        let p = &mut self.payments[i];
        assert!(p.live_attempt().is_none(), "a second live authorisation");
        p.attempts.push(Attempt {
            acquirer,
            sent_at: now,
            state: AttemptState::Pending,
            late: None,
        });
        p.status = Status::Authorising;
        let attempt = p.attempts.len() as u8;
        let r = p.request;
        let msg = AcquirerRequest::Authorise {
            merchant: r.merchant,
            amount: r.amount,
            currency: r.currency,
            token: r.token,
            bin: r.bin,
            last4: r.last4,
            expiry: r.expiry,
            three_ds: p.three_ds,
        };
        let id = p.id;
        self.router.on_send(acquirer, now);
        out.push(Output::ToAcquirer {
            acquirer,
            payment_id: id,
            attempt,
            msg,
        });
        let due = Nanos(now.0.saturating_add(self.config.auth_timeout.0));
        self.arm(due, DEADLINE_AUTH, id, attempt, out);
    }

    /// Ends a payment that holds no authorisation: releases its hold and its limit reservation.
    fn end_unauthorised(
        &mut self,
        i: usize,
        status: Status,
        reason: Option<Reason>,
        decline_code: Option<u16>,
        notify: bool,
        out: &mut Vec<Output>,
    ) {
        self.release_hold(i);
        let p = &mut self.payments[i];
        debug_assert!(p.live_attempt().is_none());
        p.status = status;
        p.reason = reason;
        p.decline_code = decline_code;
        p.three_ds_stage = None;
        let (m, t, day, amount) = (
            p.request.merchant,
            p.request.token,
            day_of(p.created),
            p.reserved,
        );
        p.reserved = 0;
        self.limits.release(m, t, day, amount);
        if notify {
            out.push(Output::PaymentUpdate(self.payments[i].view()));
        }
    }

    /// Voids the current hold if it is still pending.
    fn release_hold(&mut self, i: usize) {
        let p = &self.payments[i];
        let Some(hold) = p.hold else { return };
        if self.ledger.transfer(hold).map(|t| t.state) != Some(PendingState::Pending) {
            return;
        }
        let void = Transfer {
            id: chart::transfer_id(p.id.0, kind::HOLD_VOID, p.holds - 1),
            pending_id: hold,
            user_data: u128::from(p.id.0),
            ledger: u32::from(p.request.currency),
            // Referencing transfers take the code from the hold.
            code: 0,
            flags: TransferFlags::VOID_PENDING,
            ..Transfer::default()
        };
        let outcome = self.ledger_apply(&[void]);
        assert_eq!(outcome, Ok(()), "voiding a pending hold");
    }

    fn ledger_apply(&mut self, batch: &[Transfer]) -> Result<(), Outcome> {
        self.outcomes.clear();
        self.ledger
            .create_transfers(self.now.0, batch, &mut self.outcomes);
        first_failure(&self.outcomes)
    }

    // ------------------------------------------------------------------ 3-D Secure

    fn handle_three_ds(&mut self, id: PaymentId, event: threeds::Event, out: &mut Vec<Output>) {
        let Some(i) = self.payment(id).map(|_| (id.0 - 1) as usize) else {
            out.push(Output::Ignored {
                payment_id: id,
                why: Ignored::UnknownPayment,
            });
            return;
        };
        let Some(stage) = self.payments[i].three_ds_stage else {
            out.push(Output::Ignored {
                payment_id: id,
                why: Ignored::UnexpectedThreeDs,
            });
            return;
        };
        if let threeds::Event::RReq(r) = event {
            // Every RReq that matches a challenge is acknowledged, whatever it says.
            if matches!(stage, Stage::AwaitingChallenge { acs_trans_id } | Stage::AwaitingRReq { acs_trans_id } if acs_trans_id == r.acs_trans_id)
            {
                out.push(Output::ToThreeDs(ThreeDsRequest::RRes {
                    payment_id: id,
                    acs_trans_id: r.acs_trans_id,
                }));
            }
        }
        match threeds::step(stage, event) {
            Step::Unexpected => out.push(Output::Ignored {
                payment_id: id,
                why: Ignored::UnexpectedThreeDs,
            }),
            Step::Wait(next) => self.payments[i].three_ds_stage = Some(next),
            Step::Challenge { acs_trans_id } => {
                let deadline = Nanos(
                    self.now
                        .0
                        .saturating_add(self.config.three_ds_challenge_timeout.0),
                );
                let p = &mut self.payments[i];
                p.three_ds_stage = Some(Stage::AwaitingChallenge { acs_trans_id });
                p.three_ds_deadline = deadline;
                out.push(Output::ChallengeRequired {
                    merchant: p.request.merchant,
                    payment_id: id,
                    acs_trans_id,
                });
                self.arm(deadline, DEADLINE_THREE_DS, id, 0, out);
            }
            Step::Failed(reason) => {
                self.end_unauthorised(i, Status::Rejected, Some(reason), None, true, out);
            }
            Step::Done(result) => {
                let p = &mut self.payments[i];
                p.three_ds = Some(result);
                p.three_ds_stage = None;
                match self.start_authorisation(i, out) {
                    Ok(()) => out.push(Output::PaymentUpdate(self.payments[i].view())),
                    Err(reason) => {
                        self.end_unauthorised(i, Status::Rejected, Some(reason), None, true, out)
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------------ acquirer answers

    /// (payment index, attempt index) for an acquirer's message.
    fn attempt_index(
        &self,
        acquirer: AcquirerId,
        id: PaymentId,
        attempt: u8,
    ) -> Result<(usize, usize), Ignored> {
        if self.router.get(acquirer).is_none() {
            return Err(Ignored::UnknownAcquirer);
        }
        let p = self.payment(id).ok_or(Ignored::UnknownPayment)?;
        let a = usize::from(attempt)
            .checked_sub(1)
            .filter(|&a| p.attempts.get(a).is_some_and(|t| t.acquirer == acquirer))
            .ok_or(Ignored::UnknownAttempt)?;
        Ok(((id.0 - 1) as usize, a))
    }

    fn handle_acquirer_reply(
        &mut self,
        acquirer: AcquirerId,
        id: PaymentId,
        attempt: u8,
        result: AcquirerResult,
        out: &mut Vec<Output>,
    ) {
        let (i, a) = match self.attempt_index(acquirer, id, attempt) {
            Ok(x) => x,
            Err(why) => {
                out.push(Output::Ignored {
                    payment_id: id,
                    why,
                });
                return;
            }
        };
        match self.payments[i].attempts[a].state {
            AttemptState::Pending => {}
            AttemptState::Reversed => {
                // Given up already: the reversal that went out stands, whatever this says.
                self.payments[i].attempts[a].late = Some(result);
                self.late_replies += 1;
                out.push(Output::LateReply {
                    acquirer,
                    payment_id: id,
                    attempt,
                    result,
                });
                return;
            }
            _ => {
                out.push(Output::Ignored {
                    payment_id: id,
                    why: Ignored::DuplicateReply,
                });
                return;
            }
        }
        let sent_at = self.payments[i].attempts[a].sent_at;
        let due = Nanos(sent_at.0.saturating_add(self.config.auth_timeout.0));
        self.deadlines.remove(&(due, DEADLINE_AUTH, id, attempt));
        match result {
            AcquirerResult::Error => {
                self.give_up_attempt(i, a, out);
            }
            AcquirerResult::Declined { code } => {
                self.router
                    .on_outcome(&self.config, acquirer, true, false, self.now);
                self.payments[i].attempts[a].state = AttemptState::Declined { code };
                let token = self.payments[i].request.token;
                self.screen.record_decline(&self.config, token, self.now);
                self.end_unauthorised(i, Status::Declined, None, Some(code), true, out);
            }
            AcquirerResult::Approved {
                auth_code,
                approved_amount,
            } => {
                self.router
                    .on_outcome(&self.config, acquirer, true, true, self.now);
                let requested = self.payments[i].request.amount;
                // Never hold more than was asked, whatever the acquirer says.
                let amount = approved_amount.min(requested);
                if amount == 0 {
                    // An approval of nothing is not an authorisation: reverse it, call it declined.
                    self.payments[i].attempts[a].state = AttemptState::Released { amount: 0 };
                    out.push(Output::ToAcquirer {
                        acquirer,
                        payment_id: id,
                        attempt,
                        msg: AcquirerRequest::Reverse { amount: 0 },
                    });
                    self.end_unauthorised(i, Status::Declined, None, Some(0), true, out);
                    return;
                }
                self.payments[i].attempts[a].state = AttemptState::Approved { auth_code, amount };
                if amount < requested && self.rehold(i, amount).is_err() {
                    // The ledger refused the smaller hold (capacity): give the approval back.
                    self.payments[i].attempts[a].state = AttemptState::Released { amount };
                    out.push(Output::ToAcquirer {
                        acquirer,
                        payment_id: id,
                        attempt,
                        msg: AcquirerRequest::Reverse { amount },
                    });
                    self.end_unauthorised(
                        i,
                        Status::Rejected,
                        Some(Reason::LedgerRejected),
                        None,
                        true,
                        out,
                    );
                    return;
                }
                let p = &mut self.payments[i];
                p.authorised = amount;
                p.status = Status::Authorised;
                let unused = p.reserved - amount;
                p.reserved = amount;
                let (m, t, day) = (p.request.merchant, p.request.token, day_of(p.created));
                self.limits.release(m, t, day, unused);
                out.push(Output::PaymentUpdate(self.payments[i].view()));
            }
        }
    }

    /// Partial approval: replace the hold by one of `amount`, expiring at the same time.
    fn rehold(&mut self, i: usize, amount: u64) -> Result<(), Outcome> {
        let p = &self.payments[i];
        let old = p.hold.expect("an authorising payment holds");
        let new = chart::transfer_id(p.id.0, kind::HOLD, p.holds);
        let r = p.request;
        let batch = [
            Transfer {
                id: chart::transfer_id(p.id.0, kind::HOLD_VOID, p.holds - 1),
                pending_id: old,
                user_data: u128::from(p.id.0),
                ledger: u32::from(r.currency),
                // Referencing transfers take the code from the hold.
                code: 0,
                flags: TransferFlags::VOID_PENDING.with(TransferFlags::LINKED),
                ..Transfer::default()
            },
            Transfer {
                id: new,
                debit_account_id: chart::scheme_receivable(r.currency),
                credit_account_id: chart::merchant_payable(r.merchant.0, r.currency),
                amount: u128::from(amount),
                user_data: u128::from(p.id.0),
                // The hold-expiry deadline is after now, so this is at least 1.
                timeout_ns: p.hold_expires_at.0 - self.now.0,
                ledger: u32::from(r.currency),
                code: u16::from(kind::HOLD),
                flags: TransferFlags::PENDING,
                ..Transfer::default()
            },
        ];
        self.ledger_apply(&batch)?;
        let p = &mut self.payments[i];
        p.hold = Some(new);
        p.holds += 1;
        Ok(())
    }

    /// Timeout or error: reverse the attempt at its acquirer, then retry elsewhere if allowed.
    /// The reversal goes out before any retry, so the card is never authorised twice.
    fn give_up_attempt(&mut self, i: usize, a: usize, out: &mut Vec<Output>) {
        let p = &mut self.payments[i];
        debug_assert_eq!(p.attempts[a].state, AttemptState::Pending);
        p.attempts[a].state = AttemptState::Reversed;
        let acquirer = p.attempts[a].acquirer;
        let (id, amount, attempt) = (p.id, p.request.amount, a as u8 + 1);
        let sent_at = p.attempts[a].sent_at;
        let due = Nanos(sent_at.0.saturating_add(self.config.auth_timeout.0));
        self.deadlines.remove(&(due, DEADLINE_AUTH, id, attempt));
        self.router
            .on_outcome(&self.config, acquirer, false, false, self.now);
        out.push(Output::ToAcquirer {
            acquirer,
            payment_id: id,
            attempt,
            msg: AcquirerRequest::Reverse { amount },
        });
        let p = &self.payments[i];
        let next = if p.attempts.len() < usize::from(self.config.attempts_max) {
            let tried: Vec<AcquirerId> = p.attempts.iter().map(|t| t.acquirer).collect();
            self.router.choose(
                &self.config,
                p.request.bin,
                p.request.currency,
                |x| tried.contains(&x),
                self.now,
            )
        } else {
            None
        };
        match next {
            Some(acq) => self.send_attempt(i, acq, out),
            None => self.end_unauthorised(
                i,
                Status::Rejected,
                Some(Reason::AcquirersUnavailable),
                None,
                true,
                out,
            ),
        }
    }

    /// The hold ran out before capture: the ledger has expired it; release the authorisation.
    fn expire(&mut self, i: usize, out: &mut Vec<Output>) {
        let p = &mut self.payments[i];
        let (n, attempt) = p
            .live_attempt()
            .map(|(n, a)| (n, *a))
            .expect("authorised payments have an approval");
        let AttemptState::Approved { amount, .. } = attempt.state else {
            unreachable!("the live attempt of an authorised payment is approved")
        };
        p.attempts[usize::from(n - 1)].state = AttemptState::Released { amount };
        p.status = Status::Expired;
        let (m, t, day, reserved, id) = (
            p.request.merchant,
            p.request.token,
            day_of(p.created),
            p.reserved,
            p.id,
        );
        p.reserved = 0;
        self.limits.release(m, t, day, reserved);
        out.push(Output::ToAcquirer {
            acquirer: attempt.acquirer,
            payment_id: id,
            attempt: n,
            msg: AcquirerRequest::Reverse { amount },
        });
        out.push(Output::PaymentUpdate(self.payments[i].view()));
    }

    // ------------------------------------------------------------------ merchant commands

    fn capture(
        &mut self,
        merchant: MerchantId,
        id: PaymentId,
        amount: u64,
        out: &mut Vec<Output>,
    ) -> Reply {
        let rejected = |reason| Reply::Rejected {
            payment_id: id,
            reason,
            retry_at: Nanos(0),
        };
        let Some(i) = self.owned(merchant, id) else {
            return Reply::Rejected {
                payment_id: PaymentId(0),
                reason: Reason::PaymentNotFound,
                retry_at: Nanos(0),
            };
        };
        let p = &self.payments[i];
        if p.status != Status::Authorised {
            return rejected(Reason::InvalidState);
        }
        if amount == 0 {
            return rejected(Reason::AmountZero);
        }
        if amount > p.authorised {
            return rejected(Reason::AmountExceedsAuthorised);
        }
        let post = Transfer {
            id: chart::transfer_id(id.0, kind::CAPTURE, 0),
            pending_id: p.hold.expect("authorised payments hold"),
            amount: u128::from(amount),
            user_data: u128::from(id.0),
            ledger: u32::from(p.request.currency),
            code: 0,
            flags: TransferFlags::POST_PENDING,
            ..Transfer::default()
        };
        if self.ledger_apply(&[post]).is_err() {
            return rejected(Reason::LedgerRejected);
        }
        let p = &mut self.payments[i];
        p.captured = amount;
        p.status = Status::Captured;
        let unused = p.reserved.saturating_sub(amount);
        p.reserved = amount;
        let (m, t, day, expires) = (
            p.request.merchant,
            p.request.token,
            day_of(p.created),
            p.hold_expires_at,
        );
        let (n, a) = p
            .live_attempt()
            .map(|(n, a)| (n, a.acquirer))
            .expect("approved attempt");
        self.limits.release(m, t, day, unused);
        self.deadlines.remove(&(expires, DEADLINE_HOLD, id, 0));
        out.push(Output::ToAcquirer {
            acquirer: a,
            payment_id: id,
            attempt: n,
            msg: AcquirerRequest::Capture { amount },
        });
        Reply::Ok(self.payments[i].view())
    }

    fn void(&mut self, merchant: MerchantId, id: PaymentId, out: &mut Vec<Output>) -> Reply {
        let Some(i) = self.owned(merchant, id) else {
            return Reply::Rejected {
                payment_id: PaymentId(0),
                reason: Reason::PaymentNotFound,
                retry_at: Nanos(0),
            };
        };
        if self.payments[i].status != Status::Authorised {
            return Reply::Rejected {
                payment_id: id,
                reason: Reason::InvalidState,
                retry_at: Nanos(0),
            };
        }
        let p = &mut self.payments[i];
        let (n, attempt) = p
            .live_attempt()
            .map(|(n, a)| (n, *a))
            .expect("approved attempt");
        let AttemptState::Approved { amount, .. } = attempt.state else {
            unreachable!("the live attempt of an authorised payment is approved")
        };
        p.attempts[usize::from(n - 1)].state = AttemptState::Released { amount };
        let expires = p.hold_expires_at;
        self.deadlines.remove(&(expires, DEADLINE_HOLD, id, 0));
        self.end_unauthorised(i, Status::Voided, None, None, false, out);
        out.push(Output::ToAcquirer {
            acquirer: attempt.acquirer,
            payment_id: id,
            attempt: n,
            msg: AcquirerRequest::Reverse { amount },
        });
        Reply::Ok(self.payments[i].view())
    }

    fn refund(
        &mut self,
        merchant: MerchantId,
        id: PaymentId,
        amount: u64,
        out: &mut Vec<Output>,
    ) -> Reply {
        let rejected = |reason| Reply::Rejected {
            payment_id: id,
            reason,
            retry_at: Nanos(0),
        };
        let Some(i) = self.owned(merchant, id) else {
            return Reply::Rejected {
                payment_id: PaymentId(0),
                reason: Reason::PaymentNotFound,
                retry_at: Nanos(0),
            };
        };
        let p = &self.payments[i];
        if !matches!(p.status, Status::Captured | Status::PartiallyRefunded) {
            return rejected(Reason::InvalidState);
        }
        if amount == 0 {
            return rejected(Reason::AmountZero);
        }
        let refundable = p.captured - p.refunded() - p.charged_back - p.open_dispute_amount();
        if amount > refundable {
            return rejected(Reason::AmountExceedsRefundable);
        }
        if p.refunds.len() >= REFUNDS_MAX {
            return rejected(Reason::TooManyRefunds);
        }
        let n = p.refunds.len() as u8 + 1;
        let r = p.request;
        let t = Transfer {
            id: chart::transfer_id(id.0, kind::REFUND, n),
            debit_account_id: chart::merchant_payable(r.merchant.0, r.currency),
            credit_account_id: chart::scheme_receivable(r.currency),
            amount: u128::from(amount),
            user_data: u128::from(id.0),
            ledger: u32::from(r.currency),
            code: u16::from(kind::REFUND),
            ..Transfer::default()
        };
        if self.ledger_apply(&[t]).is_err() {
            return rejected(Reason::LedgerRejected);
        }
        let p = &mut self.payments[i];
        p.refunds.push(amount);
        p.status = if p.refunded() == p.captured {
            Status::Refunded
        } else {
            Status::PartiallyRefunded
        };
        let (attempt, a) = p
            .approved_attempt()
            .map(|(n, a)| (n, a.acquirer))
            .expect("captured payments were approved");
        out.push(Output::ToAcquirer {
            acquirer: a,
            payment_id: id,
            attempt,
            msg: AcquirerRequest::Refund {
                amount,
                refund_no: n,
            },
        });
        Reply::Ok(self.payments[i].view())
    }

    // ------------------------------------------------------------------ settlement

    /// Reconciles an acquirer's clearing file against our captures and refunds through it;
    /// matched captures and refunds settle in the ledger. See `docs/payments.md` for the rules.
    fn reconcile(&mut self, acquirer: AcquirerId, rows: &[ClearingRow], out: &mut Vec<Output>) {
        let mut report = ReconReport {
            acquirer,
            ..ReconReport::default()
        };
        let Some(cost_bps) = self.router.get(acquirer).map(|a| a.config.cost_bps) else {
            out.push(Output::Ignored {
                payment_id: PaymentId(0),
                why: Ignored::UnknownAcquirer,
            });
            return;
        };
        let mut seen: BTreeSet<(PaymentId, ClearingKind, u8)> = BTreeSet::new();
        for row in rows {
            let key = (row.payment_id, row.kind, row.reference);
            let line = |category, expected| ReconLine {
                category,
                payment_id: row.payment_id,
                kind: row.kind,
                reference: row.reference,
                amount: row.amount,
                expected,
            };
            if !seen.insert(key) {
                report
                    .lines
                    .push(line(ReconCategory::Duplicated, row.amount));
                continue;
            }
            let Some(i) = self.payment(row.payment_id).map(|p| (p.id.0 - 1) as usize) else {
                report
                    .lines
                    .push(line(ReconCategory::Unexpected, row.amount));
                continue;
            };
            let p = &self.payments[i];
            let via_us = p
                .approved_attempt()
                .filter(|(_, a)| a.acquirer == acquirer)
                .map(|(n, a)| (n, *a));
            // What we expect for this row: (amount, already settled) or nothing.
            let expected: Option<(u64, bool)> = match row.kind {
                ClearingKind::Auth => p
                    .attempts
                    .get(usize::from(row.reference).wrapping_sub(1))
                    .filter(|a| a.acquirer == acquirer)
                    .and_then(|a| match a.state {
                        AttemptState::Approved { amount, .. }
                        | AttemptState::Released { amount } => Some((amount, false)),
                        _ => None,
                    }),
                ClearingKind::Reversal => p
                    .attempts
                    .get(usize::from(row.reference).wrapping_sub(1))
                    .filter(|a| a.acquirer == acquirer)
                    .and_then(|a| match a.state {
                        AttemptState::Reversed => Some((p.request.amount, false)),
                        AttemptState::Released { amount } => Some((amount, false)),
                        _ => None,
                    }),
                ClearingKind::Capture => via_us
                    .filter(|&(n, _)| n == row.reference && p.captured > 0)
                    .map(|_| (p.captured, p.capture_settled)),
                ClearingKind::Refund => via_us
                    .and_then(|_| p.refunds.get(usize::from(row.reference).wrapping_sub(1)))
                    .map(|&amount| (amount, p.refunds_settled & (1 << (row.reference - 1)) != 0)),
            };
            let Some((amount, settled)) = expected else {
                report
                    .lines
                    .push(line(ReconCategory::Unexpected, row.amount));
                continue;
            };
            if settled {
                report.lines.push(line(ReconCategory::Duplicated, amount));
                continue;
            }
            if row.amount != amount || row.currency != p.request.currency {
                report
                    .lines
                    .push(line(ReconCategory::AmountMismatch, amount));
                continue;
            }
            match row.kind {
                ClearingKind::Capture => {
                    let (net, fee) = self.settle_capture(i, acquirer, cost_bps);
                    report.settled_net += net;
                    report.fees += fee;
                }
                ClearingKind::Refund => {
                    self.settle_refund(i, acquirer, row.reference);
                    report.refunds_settled += amount;
                }
                ClearingKind::Auth | ClearingKind::Reversal => {}
            }
            report.lines.push(line(ReconCategory::Matched, amount));
        }
        // Missing: what we captured or refunded through this acquirer that is neither settled
        // nor in this file (it may come in a later file).
        for p in &self.payments {
            let Some((n, _)) = p.approved_attempt().filter(|(_, a)| a.acquirer == acquirer) else {
                continue;
            };
            if p.captured > 0
                && !p.capture_settled
                && !seen.contains(&(p.id, ClearingKind::Capture, n))
            {
                report.lines.push(ReconLine {
                    category: ReconCategory::Missing,
                    payment_id: p.id,
                    kind: ClearingKind::Capture,
                    reference: n,
                    amount: p.captured,
                    expected: p.captured,
                });
            }
            for (k, &amount) in p.refunds.iter().enumerate() {
                let r = k as u8 + 1;
                if p.refunds_settled & (1 << k) == 0
                    && !seen.contains(&(p.id, ClearingKind::Refund, r))
                {
                    report.lines.push(ReconLine {
                        category: ReconCategory::Missing,
                        payment_id: p.id,
                        kind: ClearingKind::Refund,
                        reference: r,
                        amount,
                        expected: amount,
                    });
                }
            }
        }
        out.push(Output::Reconciliation(report));
    }

    /// Bank ← receivable (captured less fee), fees ← receivable (fee), as one linked chain.
    fn settle_capture(&mut self, i: usize, acquirer: AcquirerId, cost_bps: u32) -> (u64, u64) {
        let p = &self.payments[i];
        let (id, cur, amount) = (p.id, p.request.currency, p.captured);
        // Integer basis points, rounded down: the fee never exceeds the amount.
        let fee = (u128::from(amount) * u128::from(cost_bps) / 10_000) as u64;
        let net = amount - fee;
        let mut batch = [Transfer::default(); 2];
        let mut n = 0;
        for (kind, debit, value) in [
            (kind::SETTLE_NET, chart::bank(acquirer.0, cur), net),
            (kind::SETTLE_FEE, chart::fees(cur), fee),
        ] {
            if value == 0 {
                continue;
            }
            batch[n] = Transfer {
                id: chart::transfer_id(id.0, kind, 0),
                debit_account_id: debit,
                credit_account_id: chart::scheme_receivable(cur),
                amount: u128::from(value),
                user_data: u128::from(id.0),
                ledger: u32::from(cur),
                code: u16::from(kind),
                flags: TransferFlags::LINKED,
                ..Transfer::default()
            };
            n += 1;
        }
        batch[n - 1].flags = TransferFlags::default();
        let outcome = self.ledger_apply(&batch[..n]);
        assert_eq!(outcome, Ok(()), "settling a capture");
        self.payments[i].capture_settled = true;
        (net, fee)
    }

    /// Receivable ← bank: the refund left our bank account.
    fn settle_refund(&mut self, i: usize, acquirer: AcquirerId, refund_no: u8) {
        let p = &self.payments[i];
        let cur = p.request.currency;
        let amount = p.refunds[usize::from(refund_no - 1)];
        let t = Transfer {
            id: chart::transfer_id(p.id.0, kind::SETTLE_REFUND, refund_no),
            debit_account_id: chart::scheme_receivable(cur),
            credit_account_id: chart::bank(acquirer.0, cur),
            amount: u128::from(amount),
            user_data: u128::from(p.id.0),
            ledger: u32::from(cur),
            code: u16::from(kind::SETTLE_REFUND),
            ..Transfer::default()
        };
        let outcome = self.ledger_apply(&[t]);
        assert_eq!(outcome, Ok(()), "settling a refund");
        self.payments[i].refunds_settled |= 1 << (refund_no - 1);
    }

    // ------------------------------------------------------------------ disputes

    fn chargeback_opened(
        &mut self,
        id: PaymentId,
        amount: u64,
        reason: u16,
        out: &mut Vec<Output>,
    ) {
        let invalid = |out: &mut Vec<Output>| {
            out.push(Output::Ignored {
                payment_id: id,
                why: Ignored::InvalidDispute,
            })
        };
        let Some(p) = self.payment(id) else {
            out.push(Output::Ignored {
                payment_id: id,
                why: Ignored::UnknownPayment,
            });
            return;
        };
        let open = p.dispute.is_some_and(|d| !d.state.is_final());
        let number = p.dispute.map_or(1, |d| d.number + 1);
        let disputable = p.captured - p.refunded() - p.charged_back;
        if p.captured == 0 || open || amount == 0 || amount > disputable || number > DISPUTES_MAX {
            invalid(out);
            return;
        }
        let cur = p.request.currency;
        let t = Transfer {
            id: chart::transfer_id(id.0, kind::CHARGEBACK_HOLD, number),
            debit_account_id: chart::merchant_payable(p.request.merchant.0, cur),
            credit_account_id: chart::scheme_receivable(cur),
            amount: u128::from(amount),
            user_data: u128::from(id.0),
            ledger: u32::from(cur),
            code: u16::from(kind::CHARGEBACK_HOLD),
            flags: TransferFlags::PENDING,
            ..Transfer::default()
        };
        if self.ledger_apply(&[t]).is_err() {
            invalid(out);
            return;
        }
        let i = (id.0 - 1) as usize;
        self.payments[i].dispute = Some(Dispute {
            number,
            state: DisputeState::Opened,
            amount,
            reason,
        });
        out.push(Output::Dispute {
            payment_id: id,
            state: DisputeState::Opened,
            amount,
        });
    }

    fn dispute_step(&mut self, id: PaymentId, to: DisputeState, out: &mut Vec<Output>) {
        let Some(d) = self.payment(id).and_then(|p| p.dispute) else {
            out.push(Output::Ignored {
                payment_id: id,
                why: Ignored::InvalidDispute,
            });
            return;
        };
        use DisputeState::*;
        let allowed = matches!(
            (d.state, to),
            (Opened, EvidenceSubmitted)
                | (Opened, Accepted)
                | (Opened, Lost)
                | (EvidenceSubmitted, Won)
                | (EvidenceSubmitted, Lost)
        );
        if !allowed {
            out.push(Output::Ignored {
                payment_id: id,
                why: Ignored::InvalidDispute,
            });
            return;
        }
        let i = (id.0 - 1) as usize;
        let cur = self.payments[i].request.currency;
        let hold = chart::transfer_id(id.0, kind::CHARGEBACK_HOLD, d.number);
        let resolve = |kind: u8, flags| Transfer {
            id: chart::transfer_id(id.0, kind, d.number),
            pending_id: hold,
            user_data: u128::from(id.0),
            ledger: u32::from(cur),
            code: 0,
            flags,
            ..Transfer::default()
        };
        match to {
            Won => {
                let outcome = self
                    .ledger_apply(&[resolve(kind::CHARGEBACK_VOID, TransferFlags::VOID_PENDING)]);
                assert_eq!(outcome, Ok(()), "voiding a chargeback hold");
            }
            Lost | Accepted => {
                let outcome = self
                    .ledger_apply(&[resolve(kind::CHARGEBACK_POST, TransferFlags::POST_PENDING)]);
                assert_eq!(outcome, Ok(()), "posting a chargeback hold");
                self.payments[i].charged_back += d.amount;
            }
            Opened | EvidenceSubmitted => {}
        }
        self.payments[i].dispute = Some(Dispute { state: to, ..d });
        out.push(Output::Dispute {
            payment_id: id,
            state: to,
            amount: d.amount,
        });
    }
}
