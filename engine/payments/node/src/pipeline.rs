//! The sequenced pipeline around `Payments`:
//!
//! ```text
//! HTTP threads, connectors, timer, re-entry ─▶ Sequencer (seq + ts, once) ─▶ [input ring]
//!     ─┬▶ journal stage (appends every input; group commit)
//!      └▶ core stage (Payments::handle) ─▶ [output ring] ─▶ dispatcher
//! dispatcher: waits until the causing input is durable, then Reply/Reconciliation → the waiting
//! request, ToAcquirer → its connector, ToThreeDs → the ACS simulator (answers re-enter),
//! ArmTimer → the timer thread (Ticks re-enter).
//! ```
//!
//! The sequencer is a mutex around the input ring's single producer: whoever holds it stamps the
//! next sequence and a timestamp (wall clock, never behind the previous one) and publishes. A
//! caller that wants the engine's answer registers a waiter under its sequence first; the
//! dispatcher hands the answer over by sequence, so correlation never depends on keys. Every
//! wait in the pipeline blocks (condition variables, futexes, channel receives): no thread spins.

use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender};
use sequent_journal::{DurableWatch, Writer};
use sequent_payments::sim::acs::AcsSim;
use sequent_payments::{
    AcquirerId, Input, Output, PaymentId, Payments, ReconReport, ThreeDsRequest,
};
use sequent_ring::{EventHandler, Producer, SingleProducer};

use crate::connector::Job;

/// Journal record kind of a payments input (`Input::encode` bytes).
pub const RECORD_KIND_INPUT: u8 = 1;
/// Payment updates kept for `GET /payments/{id}/events`-style inspection and tests.
pub const UPDATES_KEPT: usize = 4096;

/// Locks, riding over a poisoned mutex: a panicking HTTP thread must not stop the node.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Wall-clock nanoseconds since the epoch (only the sequencer and the timer read it).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A slot of the input ring.
#[derive(Debug, Clone)]
pub struct InputSlot {
    /// Journal sequence, from the sequencer.
    pub seq: u64,
    /// Sequenced time, ns.
    pub ts: u64,
    /// The input.
    pub input: Input,
    /// Ask the core stage for its digest after this input.
    pub want_digest: bool,
}

impl Default for InputSlot {
    fn default() -> Self {
        InputSlot {
            seq: 0,
            ts: 0,
            input: Input::Tick,
            want_digest: false,
        }
    }
}

/// What the core stage emits.
#[derive(Debug, Clone)]
pub enum Emitted {
    /// An engine output.
    Engine(Output),
    /// The engine's digest after the input (asked for with `want_digest`).
    Digest([u8; 32]),
}

/// A slot of the output ring.
#[derive(Debug, Clone)]
pub struct OutputSlot {
    /// The input that caused it.
    pub input_seq: u64,
    /// That input's sequenced time.
    pub input_ts: u64,
    /// What.
    pub emitted: Emitted,
}

impl Default for OutputSlot {
    fn default() -> Self {
        OutputSlot {
            input_seq: 0,
            input_ts: 0,
            emitted: Emitted::Digest([0; 32]),
        }
    }
}

/// Counters for `GET /metrics` (Relaxed: each is written by one owner, read for display only).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Inputs sequenced.
    pub inputs: AtomicU64,
    /// Last sequence appended to the journal.
    pub journal_written: AtomicU64,
    /// Last sequence applied by the engine.
    pub applied: AtomicU64,
    /// Answers handed to waiting requests.
    pub replies: AtomicU64,
    /// Authorisations written to an acquirer.
    pub auth_sent: AtomicU64,
    /// Approvals (full or partial) received.
    pub approvals: AtomicU64,
    /// Partial approvals received.
    pub partial_approvals: AtomicU64,
    /// Declines received.
    pub declines: AtomicU64,
    /// 91/96 answers, refused connections and failed sends.
    pub acquirer_errors: AtomicU64,
    /// Connector timeouts reported.
    pub timeouts: AtomicU64,
    /// Answers after the connector's timeout.
    pub late_answers: AtomicU64,
    /// Reversals queued.
    pub reversals_queued: AtomicU64,
    /// Reversals acknowledged (0410).
    pub reversals_acknowledged: AtomicU64,
    /// Retransmissions of reversals, captures and refunds.
    pub retransmissions: AtomicU64,
    /// Captures and refunds acknowledged.
    pub forwards_acknowledged: AtomicU64,
    /// Connections made to acquirers.
    pub connects: AtomicU64,
    /// Connection attempts that failed.
    pub connect_failures: AtomicU64,
    /// `LateReply` outputs from the engine.
    pub engine_late_replies: AtomicU64,
    /// `PaymentUpdate` outputs.
    pub payment_updates: AtomicU64,
    /// `Ignored` outputs.
    pub ignored: AtomicU64,
    /// HTTP requests served.
    pub http_requests: AtomicU64,
    /// HTTP 4xx answers.
    pub http_4xx: AtomicU64,
    /// HTTP 5xx answers.
    pub http_5xx: AtomicU64,
}

impl Metrics {
    /// Prometheus-style text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let rows: [(&str, &AtomicU64); 23] = [
            ("inputs", &self.inputs),
            ("journal_written", &self.journal_written),
            ("applied", &self.applied),
            ("replies", &self.replies),
            ("auth_sent", &self.auth_sent),
            ("approvals", &self.approvals),
            ("partial_approvals", &self.partial_approvals),
            ("declines", &self.declines),
            ("acquirer_errors", &self.acquirer_errors),
            ("timeouts", &self.timeouts),
            ("late_answers", &self.late_answers),
            ("reversals_queued", &self.reversals_queued),
            ("reversals_acknowledged", &self.reversals_acknowledged),
            ("retransmissions", &self.retransmissions),
            ("forwards_acknowledged", &self.forwards_acknowledged),
            ("connects", &self.connects),
            ("connect_failures", &self.connect_failures),
            ("engine_late_replies", &self.engine_late_replies),
            ("payment_updates", &self.payment_updates),
            ("ignored", &self.ignored),
            ("http_requests", &self.http_requests),
            ("http_4xx", &self.http_4xx),
            ("http_5xx", &self.http_5xx),
        ];
        for (name, v) in rows {
            out.push_str(&format!(
                "sequent_payments_{name} {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
        out
    }
}

/// Why the pipeline cannot take an input.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Shutting down, or a stage panicked.
    #[error("the pipeline is stopped")]
    Stopped,
    /// No answer in time.
    #[error("no answer from the engine in time")]
    Timeout,
}

type Waiters = Mutex<HashMap<u64, Sender<Emitted>>>;

struct SeqInner {
    producer: Option<SingleProducer<InputSlot>>,
    next_seq: u64,
    last_ts: u64,
}

/// The sequencer: the input ring's single producer behind a mutex.
pub struct Sequencer {
    inner: Mutex<SeqInner>,
    waiters: Waiters,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Sequencer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sequencer").finish_non_exhaustive()
    }
}

impl Sequencer {
    /// Continues after `last_seq` / `last_ts` (what recovery found); takes inputs once the
    /// ring is [installed](Sequencer::install) (the ring's stages need the sequencer first).
    pub fn new(last_seq: u64, last_ts: u64, metrics: Arc<Metrics>) -> Sequencer {
        Sequencer {
            inner: Mutex::new(SeqInner {
                producer: None,
                next_seq: last_seq + 1,
                last_ts,
            }),
            waiters: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// Hands the sequencer the input ring's producer.
    pub fn install(&self, producer: SingleProducer<InputSlot>) {
        lock(&self.inner).producer = Some(producer);
    }

    fn publish(
        &self,
        input: Input,
        want_digest: bool,
        waiter: Option<Sender<Emitted>>,
    ) -> Result<u64, PipelineError> {
        let mut inner = lock(&self.inner);
        let seq = inner.next_seq;
        // Sequenced time never goes backwards, even when the wall clock does.
        let ts = now_ns().max(inner.last_ts);
        if let Some(waiter) = waiter {
            lock(&self.waiters).insert(seq, waiter);
        }
        let producer = inner.producer.as_mut().ok_or(PipelineError::Stopped)?;
        // Blocks while the ring is full: back-pressure onto the callers, never loss.
        let published = producer.publish(|slot| {
            slot.seq = seq;
            slot.ts = ts;
            slot.input = input;
            slot.want_digest = want_digest;
        });
        if published.is_err() {
            lock(&self.waiters).remove(&seq);
            return Err(PipelineError::Stopped);
        }
        inner.next_seq = seq + 1;
        inner.last_ts = ts;
        self.metrics.inputs.fetch_add(1, Ordering::Relaxed);
        Ok(seq)
    }

    /// Sequences an input; nobody waits for an answer.
    pub fn submit(&self, input: Input) -> Result<u64, PipelineError> {
        self.publish(input, false, None)
    }

    /// Sequences an input and waits for its answer (`Reply`, `Reconciliation`, or the digest
    /// when `want_digest`), released only once the input is durable.
    pub fn call(
        &self,
        input: Input,
        want_digest: bool,
        timeout: Duration,
    ) -> Result<(u64, Emitted), PipelineError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let seq = self.publish(input, want_digest, Some(tx))?;
        match rx.recv_timeout(timeout) {
            Ok(answer) => Ok((seq, answer)),
            Err(_) => {
                lock(&self.waiters).remove(&seq);
                Err(PipelineError::Timeout)
            }
        }
    }

    fn answer(&self, seq: u64, emitted: Emitted) -> bool {
        match lock(&self.waiters).remove(&seq) {
            Some(tx) => tx.send(emitted).is_ok(),
            None => false,
        }
    }

    /// Stops taking inputs and drains the rings (the stages' threads are joined).
    pub fn shutdown(&self) {
        let producer = lock(&self.inner).producer.take();
        if let Some(producer) = producer {
            if let Err(halted) = producer.shutdown() {
                eprintln!("sequent-payments-gateway: a stage stopped: {halted}");
            }
        }
    }
}

/// Appends every input to the journal. A failed append panics the stage, which halts the ring:
/// an input not on record must never be acknowledged.
#[derive(Debug)]
pub struct JournalStage {
    /// The writer (taken at shutdown).
    pub writer: Option<Writer>,
    /// Reused encode buffer.
    pub buf: Vec<u8>,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

impl EventHandler<InputSlot> for JournalStage {
    fn on_event(&mut self, slot: &InputSlot, _sequence: i64, _end_of_batch: bool) {
        let Some(writer) = self.writer.as_mut() else {
            return;
        };
        self.buf.clear();
        slot.input.encode(&mut self.buf);
        let appended = writer
            .append(RECORD_KIND_INPUT, slot.ts, &self.buf)
            .unwrap_or_else(|e| panic!("journal append failed: {e}"));
        assert_eq!(appended, slot.seq, "the journal and the sequencer disagree");
        self.metrics
            .journal_written
            .store(appended, Ordering::Relaxed);
    }

    fn on_shutdown(&mut self) {
        if let Some(mut writer) = self.writer.take() {
            if let Err(e) = writer.sync() {
                eprintln!("sequent-payments-gateway: journal sync at shutdown: {e}");
            }
            if let Err(e) = writer.close() {
                eprintln!("sequent-payments-gateway: journal close: {e}");
            }
        }
    }
}

/// The last sequence and the engine's digest, written by the core stage when it stops.
pub type FinalDigest = Arc<Mutex<Option<(u64, [u8; 32])>>>;

/// Runs `Payments::handle` and publishes its outputs.
#[derive(Debug)]
pub struct CoreStage {
    /// The engine.
    pub engine: Payments,
    /// The output ring (taken at shutdown).
    pub out: Option<SingleProducer<OutputSlot>>,
    /// Reused output buffer.
    pub scratch: Vec<Output>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The digest when the stage stopped.
    pub final_digest: FinalDigest,
    /// Last sequence applied.
    pub last_seq: u64,
}

impl EventHandler<InputSlot> for CoreStage {
    fn on_event(&mut self, slot: &InputSlot, _sequence: i64, _end_of_batch: bool) {
        self.scratch.clear();
        self.engine
            .handle(slot.seq, slot.ts, &slot.input, &mut self.scratch);
        self.last_seq = slot.seq;
        self.metrics.applied.store(slot.seq, Ordering::Relaxed);
        let Some(out) = self.out.as_mut() else {
            return;
        };
        for output in self.scratch.drain(..) {
            // Blocks while the dispatcher is behind: back-pressure, never loss.
            let _ = out.publish(|o| {
                o.input_seq = slot.seq;
                o.input_ts = slot.ts;
                o.emitted = Emitted::Engine(output);
            });
        }
        if slot.want_digest {
            let digest = self.engine.state_digest();
            let _ = out.publish(|o| {
                o.input_seq = slot.seq;
                o.input_ts = slot.ts;
                o.emitted = Emitted::Digest(digest);
            });
        }
    }

    fn on_shutdown(&mut self) {
        *lock(&self.final_digest) = Some((self.last_seq, self.engine.state_digest()));
        if let Some(out) = self.out.take() {
            let _ = out.shutdown();
        }
    }
}

/// What the dispatcher shares with the HTTP side.
#[derive(Debug, Default)]
pub struct Views {
    /// The latest reconciliation report per acquirer.
    pub reports: Mutex<BTreeMap<u16, ReconReport>>,
    /// Open 3DS challenges: payment → ACS transaction id.
    pub challenges: Mutex<HashMap<u64, u64>>,
    /// The latest payment updates (webhooks), oldest first.
    pub updates: Mutex<VecDeque<sequent_payments::PaymentView>>,
}

/// Consumes the output ring.
#[derive(Debug)]
pub struct Dispatcher {
    /// Holds everything until its input is durable.
    pub durable: DurableWatch,
    /// Waiters.
    pub sequencer: Arc<Sequencer>,
    /// One job queue per acquirer id.
    pub connectors: BTreeMap<u16, Sender<Job>>,
    /// Inputs that re-enter (ACS answers): fed by another thread so the dispatcher never blocks
    /// on the input ring (the core could be blocked on the output ring: a cycle).
    pub reentry: Sender<Input>,
    /// The timer thread.
    pub timer: Sender<u64>,
    /// The 3-D Secure ACS simulator at the edge.
    pub acs: Arc<Mutex<AcsSim>>,
    /// Shared views.
    pub views: Arc<Views>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Highest input known durable.
    pub durable_seen: u64,
}

impl EventHandler<OutputSlot> for Dispatcher {
    fn on_event(&mut self, slot: &OutputSlot, _sequence: i64, _end_of_batch: bool) {
        // Nothing leaves before its cause is on disk, as in the trading node: a crash can then
        // never have told a merchant or an acquirer something replay will not reproduce.
        while self.durable_seen < slot.input_seq {
            if self
                .durable
                .wait_durable(slot.input_seq, Duration::from_secs(1))
            {
                self.durable_seen = self.durable.durable_sequence();
            } else if self.durable.durable_sequence() < slot.input_seq {
                eprintln!(
                    "sequent-payments-gateway: waiting for the journal to make {} durable",
                    slot.input_seq
                );
            }
        }
        let output = match &slot.emitted {
            Emitted::Digest(_) => {
                self.sequencer.answer(slot.input_seq, slot.emitted.clone());
                return;
            }
            Emitted::Engine(output) => output,
        };
        self.dispatch(slot, output);
    }
}

impl Dispatcher {
    fn dispatch(&mut self, slot: &OutputSlot, output: &Output) {
        match output {
            Output::Reply { .. } => {
                if self.sequencer.answer(slot.input_seq, slot.emitted.clone()) {
                    self.metrics.replies.fetch_add(1, Ordering::Relaxed);
                }
            }
            Output::Reconciliation(report) => {
                lock(&self.views.reports).insert(report.acquirer.0, report.clone());
                self.sequencer.answer(slot.input_seq, slot.emitted.clone());
            }
            Output::PaymentUpdate(view) => {
                self.metrics.payment_updates.fetch_add(1, Ordering::Relaxed);
                let mut updates = lock(&self.views.updates);
                if updates.len() == UPDATES_KEPT {
                    updates.pop_front();
                }
                updates.push_back(*view);
                if view.status != sequent_payments::Status::Authenticating {
                    lock(&self.views.challenges).remove(&view.payment_id.0);
                }
            }
            Output::ToAcquirer {
                acquirer,
                payment_id,
                attempt,
                msg,
            } => {
                let job = Job::Send {
                    payment: *payment_id,
                    attempt: *attempt,
                    msg: *msg,
                    ts: slot.input_ts,
                };
                match self.connectors.get(&acquirer.0) {
                    Some(tx) => {
                        let _ = tx.send(job);
                    }
                    None => eprintln!(
                        "sequent-payments-gateway: no connector for acquirer {}",
                        acquirer.0
                    ),
                }
            }
            Output::ToThreeDs(request) => {
                if let ThreeDsRequest::AReq { .. } = request {
                    let ares = lock(&self.acs).handle(request);
                    if let Some(ares) = ares {
                        let _ = self.reentry.send(Input::ThreeDsARes(ares));
                    }
                }
                // RRes acknowledges an RReq: nothing to send to the simulator.
            }
            Output::ChallengeRequired {
                payment_id,
                acs_trans_id,
                ..
            } => {
                lock(&self.views.challenges).insert(payment_id.0, *acs_trans_id);
            }
            Output::ArmTimer { at } => {
                let _ = self.timer.send(at.0);
            }
            Output::LateReply {
                acquirer,
                payment_id,
                attempt,
                ..
            } => {
                self.metrics
                    .engine_late_replies
                    .fetch_add(1, Ordering::Relaxed);
                eprintln!(
                    "sequent-payments-gateway: late answer from acquirer {} for {payment_id:?} attempt {attempt}; its reversal stands",
                    acquirer.0
                );
            }
            Output::Ignored { .. } => {
                self.metrics.ignored.fetch_add(1, Ordering::Relaxed);
            }
            Output::Dispute { .. } => {}
        }
    }
}

/// Feeds re-entering inputs (ACS answers) into the sequencer from its own thread.
pub fn run_reentry(rx: Receiver<Input>, sequencer: Arc<Sequencer>) {
    while let Ok(input) = rx.recv() {
        if sequencer.submit(input).is_err() {
            return;
        }
    }
}

/// The timer thread: keeps the armed deadlines (wall-clock ns, as sequenced time is) and sends
/// one `Tick` once the earliest is due (the sequencer stamps it at or after the deadline).
pub fn run_timer(rx: Receiver<u64>, sequencer: Arc<Sequencer>, stop: Arc<AtomicBool>) {
    let mut armed: BinaryHeap<std::cmp::Reverse<u64>> = BinaryHeap::new();
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let now = now_ns();
        let mut due = false;
        while armed.peek().is_some_and(|r| r.0 <= now) {
            armed.pop();
            due = true;
        }
        if due && sequencer.submit(Input::Tick).is_err() {
            return;
        }
        let wait = armed.peek().map_or(Duration::from_millis(200), |r| {
            Duration::from_nanos(r.0.saturating_sub(now)).min(Duration::from_millis(200))
        });
        match rx.recv_timeout(wait) {
            Ok(at) => armed.push(std::cmp::Reverse(at)),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// The acquirer ids the engine knows, for the HTTP side.
pub fn acquirer_ids(engine: &Payments) -> Vec<AcquirerId> {
    engine.config().acquirers.iter().map(|a| a.id).collect()
}

/// Finds the payment a challenge belongs to (for the HTTP side).
pub fn challenge_of(views: &Views, payment: PaymentId) -> Option<u64> {
    lock(&views.challenges).get(&payment.0).copied()
}
