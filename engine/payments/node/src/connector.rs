//! One acquirer connector: ISO 8583 over TCP (`sequent_iso8583::AcquirerClient`), the only code
//! that sees a PAN, detokenised with the vault's `DetokeniseGrant` just before a message is
//! written and wiped with it. Rules (docs/payments.md, "The payments node"):
//!
//! - sign on (0800/001) after every connect; reconnect with doubling back-off;
//! - `Authorise` → 0100 with STAN and RRN derived from (payment, attempt); the answer becomes an
//!   `AcquirerReply` input (00 approved, 10 partial with field 54, 91/96 `Error`, anything else a
//!   decline); no answer within `response_timeout_ms` becomes `AcquirerTimeout`; a later answer is
//!   still reported (the engine calls it a late reply, the reversal stands);
//! - no connection (refused, back-off running) → `AcquirerReply { Error }` at once: the request
//!   was never written, so the card cannot have been authorised;
//! - `Reverse`, `Capture`, `Refund` go into a store-and-forward queue: written, then written again
//!   every `forward_retry_ms` with the same STAN and RRN (a duplicate the acquirer recognises)
//!   until the acquirer answers (0410 with 00 or 25 for a reversal; any 0210 for the others).
//!   ISO 8583:1987 has the 0401 repeat MTI; our codec speaks 0400 only, and docs/iso8583.md
//!   makes the retransmitted 0400 (same STAN and RRN) the repeat.
//!
//! Threads: one per connector, blocking reads of at most [`POLL`], never spinning.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use sequent_iso8583::{
    AcquirerClient, Message, Mti, PanField, PrivateData, ResponseCode, network, processing,
};
use sequent_payments::{
    AcquirerId, AcquirerRequest, AcquirerResult, Expiry, Input, MerchantId, PaymentId,
    ThreeDsResult, Token,
};
use sequent_vault::{DetokeniseGrant, OsRng, Vault};

use crate::config::AcquirerLink;
use crate::edge;
use crate::pipeline::{Metrics, Sequencer, lock};

/// Longest blocking read before the connector looks at its queue and deadlines again.
pub const POLL: Duration = Duration::from_millis(2);
/// Time a sign-on may take.
const SIGN_ON_TIMEOUT: Duration = Duration::from_secs(1);
/// Timed-out authorisations remembered for a late answer.
const LATE_KEPT: Duration = Duration::from_secs(600);

/// What the dispatcher hands a connector.
#[derive(Debug, Clone, Copy)]
pub enum Job {
    /// An engine `ToAcquirer` output.
    Send {
        /// Payment.
        payment: PaymentId,
        /// Attempt.
        attempt: u8,
        /// What.
        msg: AcquirerRequest,
        /// Sequenced time of the input that caused it (field 7).
        ts: u64,
    },
    /// Recovery: an output replayed from the journal. Authorisations are remembered (captures
    /// and refunds need the card), reversals re-queued (a duplicate is harmless), nothing else.
    Replayed {
        /// Payment.
        payment: PaymentId,
        /// Attempt.
        attempt: u8,
        /// What.
        msg: AcquirerRequest,
        /// Sequenced time.
        ts: u64,
    },
}

/// The detokeniser: the vault and its grant, shared by the connectors and nothing else.
pub struct Detokeniser {
    /// The vault (shared with the tokenising HTTP side, which has no grant).
    pub vault: Arc<Mutex<Vault<OsRng>>>,
    /// The grant.
    pub grant: DetokeniseGrant,
}

impl std::fmt::Debug for Detokeniser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Detokeniser")
    }
}

impl Detokeniser {
    fn pan(&self, token: Token) -> Option<PanField> {
        let vault_token = edge::vault_token(token)?;
        let digits = lock(&self.vault)
            .detokenise(&self.grant, &vault_token)
            .ok()?;
        PanField::new(&digits).ok()
    }
}

/// The card and context of an authorisation, kept for its capture, refunds and reversal.
#[derive(Debug, Clone, Copy)]
struct Auth {
    merchant: MerchantId,
    amount: u64,
    currency: u16,
    token: Token,
    expiry: Expiry,
    three_ds: Option<ThreeDsResult>,
    stan: u32,
    ts: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ForwardKind {
    Reversal,
    Capture,
    Refund(u8),
}

/// A queued reversal, capture or refund.
#[derive(Debug)]
struct Forward {
    kind: ForwardKind,
    payment: PaymentId,
    attempt: u8,
    amount: u64,
    stan: u32,
    ts: u64,
    next_at: Instant,
    sent: u32,
}

#[derive(Debug)]
struct Pending {
    payment: PaymentId,
    attempt: u8,
    amount: u64,
    deadline: Instant,
    timed_out: bool,
}

/// One connector's state, driven by [`Connector::run`].
pub struct Connector {
    link: AcquirerLink,
    jobs: Receiver<Job>,
    sequencer: Arc<Sequencer>,
    detokeniser: Arc<Detokeniser>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    client: Option<AcquirerClient>,
    backoff: Duration,
    connect_at: Instant,
    auths: HashMap<(PaymentId, u8), Auth>,
    /// Authorisations written, by RRN.
    pending: HashMap<String, Pending>,
    queue: VecDeque<Forward>,
    next_stan: u32,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("acquirer", &self.link.name)
            .field("queued", &self.queue.len())
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// A connector for `link`.
    pub fn new(
        link: AcquirerLink,
        jobs: Receiver<Job>,
        sequencer: Arc<Sequencer>,
        detokeniser: Arc<Detokeniser>,
        metrics: Arc<Metrics>,
        stop: Arc<AtomicBool>,
    ) -> Connector {
        let backoff = Duration::from_millis(link.reconnect_min_ms);
        Connector {
            link,
            jobs,
            sequencer,
            detokeniser,
            metrics,
            stop,
            client: None,
            backoff,
            connect_at: Instant::now(),
            auths: HashMap::new(),
            pending: HashMap::new(),
            queue: VecDeque::new(),
            // STANs for reversals, captures and refunds count down from 999_999; authorisations
            // take theirs from (payment, attempt), counting up, so the two rarely meet (and the
            // RRN tells them apart anyway).
            next_stan: 999_999,
        }
    }

    fn id(&self) -> AcquirerId {
        AcquirerId(self.link.id)
    }

    /// Runs until the stop flag is set and the job channel is closed.
    pub fn run(mut self) {
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            loop {
                match self.jobs.try_recv() {
                    Ok(job) => self.handle_job(job),
                    Err(crossbeam_channel::TryRecvError::Empty) => break,
                    Err(crossbeam_channel::TryRecvError::Disconnected) => return,
                }
            }
            if self.client.is_none() && Instant::now() >= self.connect_at {
                self.connect();
            }
            self.send_due();
            self.check_deadlines();
            match self.client.as_mut() {
                Some(client) => match client.recv_timeout(POLL) {
                    Ok(Some(message)) => self.handle_message(&message),
                    Ok(None) => {}
                    Err(e) => self.disconnect(&format!("{e}")),
                },
                None => match self.jobs.recv_timeout(POLL) {
                    Ok(job) => self.handle_job(job),
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
                },
            }
        }
    }

    fn connect(&mut self) {
        let attempt = AcquirerClient::connect_timeout(&self.link.address, SIGN_ON_TIMEOUT)
            .and_then(|mut client| {
                let mut m = Message::new(Mti::NetworkRequest);
                let stan = self.take_stan();
                let _ = m
                    .set(7, edge::transmission(crate::pipeline::now_ns()))
                    .and_then(|m| m.set(11, format!("{stan:06}")))
                    .and_then(|m| m.set(70, network::SIGN_ON));
                client.send(&m)?;
                let deadline = Instant::now() + SIGN_ON_TIMEOUT;
                while Instant::now() < deadline {
                    if let Some(r) = client.recv_timeout(deadline - Instant::now())? {
                        if r.mti() == Mti::NetworkResponse {
                            return if r.get_str(39) == Some("00") {
                                Ok(client)
                            } else {
                                Err(sequent_iso8583::ClientError::Closed)
                            };
                        }
                    }
                }
                Err(sequent_iso8583::ClientError::Closed)
            });
        match attempt {
            Ok(client) => {
                self.client = Some(client);
                self.backoff = Duration::from_millis(self.link.reconnect_min_ms);
                self.metrics.connects.fetch_add(1, Ordering::Relaxed);
                eprintln!(
                    "sequent-payments-gateway: connector {}: signed on",
                    self.link.name
                );
            }
            Err(e) => {
                self.metrics
                    .connect_failures
                    .fetch_add(1, Ordering::Relaxed);
                self.connect_at = Instant::now() + self.backoff;
                self.backoff =
                    (self.backoff * 2).min(Duration::from_millis(self.link.reconnect_max_ms));
                if self.backoff.as_millis() as u64 == self.link.reconnect_max_ms {
                    // Logged once the back-off is at its ceiling, not on every try.
                    eprintln!(
                        "sequent-payments-gateway: connector {}: cannot connect: {e}",
                        self.link.name
                    );
                }
            }
        }
    }

    fn disconnect(&mut self, why: &str) {
        if self.client.take().is_some() {
            eprintln!(
                "sequent-payments-gateway: connector {}: connection lost: {why}",
                self.link.name
            );
        }
        self.connect_at = Instant::now() + self.backoff;
    }

    fn take_stan(&mut self) -> u32 {
        let stan = self.next_stan;
        self.next_stan = if stan <= 500_001 { 999_999 } else { stan - 1 };
        stan
    }

    fn handle_job(&mut self, job: Job) {
        match job {
            Job::Send {
                payment,
                attempt,
                msg,
                ts,
            } => match msg {
                AcquirerRequest::Authorise { .. } => {
                    self.remember(payment, attempt, msg, ts);
                    self.authorise(payment, attempt);
                }
                AcquirerRequest::Reverse { amount } => {
                    self.enqueue(ForwardKind::Reversal, payment, attempt, amount, ts)
                }
                AcquirerRequest::Capture { amount } => {
                    self.enqueue(ForwardKind::Capture, payment, attempt, amount, ts)
                }
                AcquirerRequest::Refund { amount, refund_no } => {
                    self.enqueue(ForwardKind::Refund(refund_no), payment, attempt, amount, ts)
                }
            },
            Job::Replayed {
                payment,
                attempt,
                msg,
                ts,
            } => match msg {
                AcquirerRequest::Authorise { .. } => self.remember(payment, attempt, msg, ts),
                AcquirerRequest::Reverse { amount } => {
                    self.enqueue(ForwardKind::Reversal, payment, attempt, amount, ts)
                }
                _ => {}
            },
        }
    }

    fn remember(&mut self, payment: PaymentId, attempt: u8, msg: AcquirerRequest, ts: u64) {
        if let AcquirerRequest::Authorise {
            merchant,
            amount,
            currency,
            token,
            expiry,
            three_ds,
            ..
        } = msg
        {
            let stan = ((payment.0 * 8 + u64::from(attempt)) % 500_000) as u32;
            self.auths.insert(
                (payment, attempt),
                Auth {
                    merchant,
                    amount,
                    currency,
                    token,
                    expiry,
                    three_ds,
                    stan,
                    ts,
                },
            );
        }
    }

    fn enqueue(
        &mut self,
        kind: ForwardKind,
        payment: PaymentId,
        attempt: u8,
        amount: u64,
        ts: u64,
    ) {
        if kind == ForwardKind::Reversal {
            // A timed-out authorisation stays in `pending`: its late answer is still reported
            // (the engine records it as a late reply; the reversal stands).
            self.metrics
                .reversals_queued
                .fetch_add(1, Ordering::Relaxed);
        }
        let stan = self.take_stan();
        self.queue.push_back(Forward {
            kind,
            payment,
            attempt,
            amount,
            stan,
            ts,
            next_at: Instant::now(),
            sent: 0,
        });
    }

    fn reply(&self, payment: PaymentId, attempt: u8, result: AcquirerResult) {
        let _ = self.sequencer.submit(Input::AcquirerReply {
            acquirer: self.id(),
            payment_id: payment,
            attempt,
            result,
        });
    }

    /// The common fields of a request about authorisation `auth` (the PAN included).
    fn base(&self, mti: Mti, auth: &Auth, amount: u64, stan: u32, ts: u64) -> Option<Message> {
        let mut m = Message::new(mti);
        m.set_pan(self.detokeniser.pan(auth.token)?);
        let t = edge::transmission(ts);
        let merchant = format!("{:<15}", format!("M{}", auth.merchant.0));
        m.set(3, processing::PURCHASE)
            .ok()?
            .set(4, format!("{amount:012}"))
            .ok()?
            .set(7, &t)
            .ok()?
            .set(11, format!("{stan:06}"))
            .ok()?
            .set(12, &t[4..])
            .ok()?
            .set(13, &t[..4])
            .ok()?
            .set(14, format!("{:04}", auth.expiry.0))
            .ok()?
            .set(18, "5999")
            .ok()?
            .set(22, "812")
            .ok()?
            .set(25, "59")
            .ok()?
            .set(32, &self.link.institution_id)
            .ok()?
            .set(41, "SEQNT001")
            .ok()?
            .set(42, merchant)
            .ok()?
            .set(43, format!("{:<40}", "sequent payments node"))
            .ok()?
            .set(49, format!("{:03}", auth.currency))
            .ok()?;
        Some(m)
    }

    fn with_private(m: &mut Message, payment: PaymentId, auth: &Auth) -> Option<()> {
        let private = PrivateData {
            payment_id: Some(payment.0.to_string()),
            eci: auth.three_ds.map(|r| format!("{:02}", r.eci % 100)),
            cavv: auth.three_ds.map(|r| edge::base64(&r.cavv)),
        };
        if let Some(text) = private.encode().ok()? {
            m.set(48, text).ok()?;
        }
        Some(())
    }

    fn write(&mut self, m: &Message) -> bool {
        let Some(client) = self.client.as_mut() else {
            return false;
        };
        match client.send(m) {
            Ok(()) => true,
            Err(e) => {
                self.disconnect(&format!("{e}"));
                false
            }
        }
    }

    fn authorise(&mut self, payment: PaymentId, attempt: u8) {
        let Some(auth) = self.auths.get(&(payment, attempt)).copied() else {
            return;
        };
        if self.client.is_none() && Instant::now() >= self.connect_at {
            self.connect();
        }
        if self.client.is_none() {
            // Never written: the card cannot have been authorised here.
            self.metrics.acquirer_errors.fetch_add(1, Ordering::Relaxed);
            self.reply(payment, attempt, AcquirerResult::Error);
            return;
        }
        let rrn = edge::auth_rrn(payment, attempt);
        let message = self
            .base(
                Mti::AuthorisationRequest,
                &auth,
                auth.amount,
                auth.stan,
                auth.ts,
            )
            .and_then(|mut m| {
                m.set(37, &rrn).ok()?;
                Self::with_private(&mut m, payment, &auth)?;
                Some(m)
            });
        let Some(message) = message else {
            eprintln!(
                "sequent-payments-gateway: connector {}: cannot build the authorisation of {payment:?} (token not in the vault?)",
                self.link.name
            );
            self.reply(payment, attempt, AcquirerResult::Error);
            return;
        };
        // Registered before the write: an answer (or a lost connection) after a write that may
        // have reached the acquirer must end in an answer or a timeout, never in silence.
        self.pending.insert(
            rrn,
            Pending {
                payment,
                attempt,
                amount: auth.amount,
                deadline: Instant::now() + Duration::from_millis(self.link.response_timeout_ms),
                timed_out: false,
            },
        );
        if self.write(&message) {
            self.metrics.auth_sent.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn send_due(&mut self) {
        if self.client.is_none() {
            return;
        }
        let now = Instant::now();
        for i in 0..self.queue.len() {
            if self.queue[i].next_at > now {
                continue;
            }
            let f = &self.queue[i];
            let Some(auth) = self.auths.get(&(f.payment, f.attempt)).copied() else {
                eprintln!(
                    "sequent-payments-gateway: connector {}: no authorisation on record for {:?} attempt {}; dropped",
                    self.link.name, f.payment, f.attempt
                );
                self.queue[i].next_at = now + Duration::from_secs(3600);
                continue;
            };
            let message = self.forward_message(f, &auth);
            let retry = Duration::from_millis(self.link.forward_retry_ms);
            let Some(message) = message else { continue };
            if !self.write(&message) {
                return;
            }
            let f = &mut self.queue[i];
            if f.sent > 0 {
                self.metrics.retransmissions.fetch_add(1, Ordering::Relaxed);
            }
            f.sent += 1;
            f.next_at = now + retry;
        }
    }

    fn forward_message(&self, f: &Forward, auth: &Auth) -> Option<Message> {
        let auth_rrn = edge::auth_rrn(f.payment, f.attempt);
        match f.kind {
            ForwardKind::Reversal => {
                let mut original = self.base(
                    Mti::AuthorisationRequest,
                    auth,
                    auth.amount,
                    auth.stan,
                    auth.ts,
                )?;
                original.set(37, &auth_rrn).ok()?;
                Self::with_private(&mut original, f.payment, auth)?;
                let mut m = Message::reversal_of(
                    &original,
                    &format!("{:06}", f.stan),
                    &edge::transmission(f.ts),
                )
                .ok()?;
                m.set(4, format!("{:012}", f.amount)).ok()?;
                Some(m)
            }
            ForwardKind::Capture => {
                let mut m = self.base(Mti::FinancialRequest, auth, f.amount, f.stan, f.ts)?;
                m.set(37, &auth_rrn).ok()?;
                Self::with_private(&mut m, f.payment, auth)?;
                Some(m)
            }
            ForwardKind::Refund(n) => {
                let mut m = self.base(Mti::FinancialRequest, auth, f.amount, f.stan, f.ts)?;
                m.set(3, processing::REFUND).ok()?;
                m.set(37, edge::refund_rrn(f.payment, n)).ok()?;
                Self::with_private(&mut m, f.payment, auth)?;
                Some(m)
            }
        }
    }

    fn check_deadlines(&mut self) {
        let now = Instant::now();
        let mut timed_out = Vec::new();
        self.pending.retain(|_, p| {
            if !p.timed_out && now >= p.deadline {
                p.timed_out = true;
                timed_out.push((p.payment, p.attempt));
            }
            !(p.timed_out && now >= p.deadline + LATE_KEPT)
        });
        for (payment, attempt) in timed_out {
            self.metrics.timeouts.fetch_add(1, Ordering::Relaxed);
            let _ = self.sequencer.submit(Input::AcquirerTimeout {
                acquirer: self.id(),
                payment_id: payment,
                attempt,
            });
        }
    }

    fn handle_message(&mut self, m: &Message) {
        let rrn = m.get_str(37).unwrap_or_default().to_owned();
        let stan: Option<u32> = m.get_str(11).and_then(|s| s.parse().ok());
        let code = m.get_str(39).and_then(ResponseCode::from_code);
        match m.mti() {
            Mti::AuthorisationResponse => {
                let Some(p) = self.pending.remove(&rrn) else {
                    return;
                };
                let result = match code {
                    Some(ResponseCode::Approved) => AcquirerResult::Approved {
                        auth_code: auth_code(m),
                        approved_amount: p.amount,
                    },
                    Some(ResponseCode::PartialApproval) => {
                        self.metrics
                            .partial_approvals
                            .fetch_add(1, Ordering::Relaxed);
                        AcquirerResult::Approved {
                            auth_code: auth_code(m),
                            approved_amount: m
                                .get_str(54)
                                .and_then(|f| f.get(8..))
                                .and_then(|a| a.get(a.len().saturating_sub(12)..))
                                .and_then(|a| a.parse().ok())
                                .unwrap_or(0),
                        }
                    }
                    Some(c) if c.is_retryable_elsewhere() => AcquirerResult::Error,
                    Some(c) => AcquirerResult::Declined {
                        code: c.code().parse().unwrap_or(0),
                    },
                    None => AcquirerResult::Error,
                };
                match result {
                    AcquirerResult::Approved { .. } => &self.metrics.approvals,
                    AcquirerResult::Declined { .. } => &self.metrics.declines,
                    AcquirerResult::Error => &self.metrics.acquirer_errors,
                }
                .fetch_add(1, Ordering::Relaxed);
                if p.timed_out {
                    self.metrics.late_answers.fetch_add(1, Ordering::Relaxed);
                }
                self.reply(p.payment, p.attempt, result);
            }
            Mti::ReversalResponse | Mti::FinancialResponse => {
                let Some(i) = self.queue.iter().position(|f| Some(f.stan) == stan) else {
                    return;
                };
                let f = &self.queue[i];
                let done = match f.kind {
                    // 25: the acquirer never saw the original (a dropped request): nothing to undo.
                    ForwardKind::Reversal => matches!(
                        code,
                        Some(ResponseCode::Approved | ResponseCode::OriginalNotFound)
                    ),
                    _ => code.is_some(),
                };
                if done {
                    if f.kind == ForwardKind::Reversal {
                        self.metrics
                            .reversals_acknowledged
                            .fetch_add(1, Ordering::Relaxed);
                    } else {
                        self.metrics
                            .forwards_acknowledged
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    self.queue.remove(i);
                }
            }
            _ => {}
        }
    }
}

fn auth_code(m: &Message) -> [u8; 6] {
    let mut code = [b' '; 6];
    if let Some(text) = m.get(38) {
        for (o, b) in code.iter_mut().zip(text) {
            *o = *b;
        }
    }
    code
}
