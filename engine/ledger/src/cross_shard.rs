//! Transfers between ledger shards: a two-phase commit driven by a coordinator whose decisions
//! are records (the caller journals them before it sends any message they cause), and a shard
//! wrapper that turns coordinator messages into ledger transfers. Both are sans-IO state
//! machines: `handle_*` takes inputs, `poll_*` hands out what to journal and what to send.
//!
//! A transfer of `amount` from account D (shard d) to account C (shard c) is two legs:
//! on shard d, debit D and credit d's clearing account for c; on shard c, debit c's clearing
//! account for d and credit C. Both legs start `pending` without a timeout (a prepared shard never
//! resolves a leg on its own, so no clock, skewed or not, can half-post a transfer), and are then
//! both posted or both voided on the coordinator's journaled decision:
//!
//! 1. `Begin` is recorded, then `Prepare` goes to both shards.
//! 2. When both answer `Prepared { ok: true }`, `Commit` is recorded, then `Post` goes to both.
//!    When one answers `ok: false`, or the transfer has been preparing for `timeout_ns` of the
//!    coordinator's time, `Abort` is recorded, then `Void` goes to both.
//! 3. `Resolve` messages are resent on every tick until both shards acknowledge; then `Done`.
//!
//! Recovery ([`Coordinator::recover`]) rebuilds the state from the records: a transfer with
//! `Begin` and no decision is aborted (presumed abort); a decided one resends its decision.
//! Every message is idempotent by (transfer id, leg, phase): shards turn them into transfers with
//! derived ids, so a duplicate answers `exists`. A `Void` that reaches a shard before its
//! `Prepare` fences the leg: the late `Prepare` is refused, so it can never be left pending.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::{Ledger, Outcome, Transfer, TransferFlags};

/// Which side of a cross-shard transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Leg {
    Debit = 1,
    Credit = 2,
}

/// A transfer between two shards, as the client asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrossTransfer {
    /// Below 2^120: leg ids are derived from it.
    pub id: u128,
    pub debit_account_id: u128,
    pub credit_account_id: u128,
    pub amount: u128,
    pub ledger: u32,
    pub code: u16,
}

/// A coordinator decision, journaled before any message it causes is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    Begin { transfer: CrossTransfer, at_ns: u64 },
    Commit { id: u128 },
    Abort { id: u128 },
    Done { id: u128 },
}

impl Record {
    /// Bytes of an encoded record: a tag, then fixed little-endian fields (see `encode`).
    pub const ENCODED_LEN: usize = 1 + 16 * 4 + 4 + 2 + 8;

    /// Fixed layout, little-endian: tag (1 Begin, 2 Commit, 3 Abort, 4 Done), id (16), then for
    /// `Begin` debit (16), credit (16), amount (16), ledger (4), code (2), at_ns (8); zeros for
    /// the others. This is the payload the caller journals.
    pub fn encode(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        let (tag, id) = match *self {
            Record::Begin { transfer, .. } => (1, transfer.id),
            Record::Commit { id } => (2, id),
            Record::Abort { id } => (3, id),
            Record::Done { id } => (4, id),
        };
        out[0] = tag;
        out[1..17].copy_from_slice(&id.to_le_bytes());
        if let Record::Begin { transfer, at_ns } = *self {
            out[17..33].copy_from_slice(&transfer.debit_account_id.to_le_bytes());
            out[33..49].copy_from_slice(&transfer.credit_account_id.to_le_bytes());
            out[49..65].copy_from_slice(&transfer.amount.to_le_bytes());
            out[65..69].copy_from_slice(&transfer.ledger.to_le_bytes());
            out[69..71].copy_from_slice(&transfer.code.to_le_bytes());
            out[71..79].copy_from_slice(&at_ns.to_le_bytes());
        }
        out
    }

    /// The inverse of `encode`; `None` for a payload of another length, an unknown tag, or
    /// non-zero padding after the id of `Commit`, `Abort` and `Done` (one record, one encoding).
    pub fn decode(bytes: &[u8]) -> Option<Record> {
        if bytes.len() != Self::ENCODED_LEN {
            return None;
        }
        if bytes[0] != 1 && bytes[17..].iter().any(|&b| b != 0) {
            return None;
        }
        let u128_at =
            |at: usize| u128::from_le_bytes(bytes[at..at + 16].try_into().unwrap_or([0; 16]));
        let id = u128_at(1);
        Some(match bytes[0] {
            1 => Record::Begin {
                transfer: CrossTransfer {
                    id,
                    debit_account_id: u128_at(17),
                    credit_account_id: u128_at(33),
                    amount: u128_at(49),
                    ledger: u32::from_le_bytes(bytes[65..69].try_into().ok()?),
                    code: u16::from_le_bytes(bytes[69..71].try_into().ok()?),
                },
                at_ns: u64::from_le_bytes(bytes[71..79].try_into().ok()?),
            },
            2 => Record::Commit { id },
            3 => Record::Abort { id },
            4 => Record::Done { id },
            _ => return None,
        })
    }
}

/// What the second phase does to a leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Decision {
    Post,
    Void,
}

/// Coordinator to shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToShard {
    Prepare {
        transfer: CrossTransfer,
        leg: Leg,
    },
    Resolve {
        transfer: CrossTransfer,
        leg: Leg,
        decision: Decision,
    },
}

/// Shard to coordinator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToCoordinator {
    Prepared { id: u128, leg: Leg, ok: bool },
    Resolved { id: u128, leg: Leg },
}

/// A message with the shard it goes to (or comes from).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Envelope<M> {
    pub shard: u32,
    pub message: M,
}

/// The shard that holds an account: `id % shards`.
pub fn shard_of(account: u128, shards: u32) -> u32 {
    (account % u128::from(shards)) as u32
}

/// The id of the clearing account on `shard` for transfers with `other`. Clearing ids live
/// above 2^127 so they never meet client account ids; each is on its own shard.
pub fn clearing_account(shard: u32, other: u32, shards: u32) -> u128 {
    let base = (1u128 << 127) + u128::from(other) * u128::from(shards) * 1_000_000;
    // Smallest id ≥ base on `shard`.
    base + u128::from((shard + shards - shard_of(base, shards)) % shards)
}

/// Derived transfer ids of a leg: prepare, post, void.
pub fn leg_id(transfer: u128, leg: Leg, decision: Option<Decision>) -> u128 {
    let phase = match decision {
        None => 0,
        Some(Decision::Post) => 2,
        Some(Decision::Void) => 4,
    };
    (transfer << 8) | (phase + leg as u128)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Preparing {
        debit: Option<bool>,
        credit: Option<bool>,
    },
    Decided {
        decision: Decision,
        debit_done: bool,
        credit_done: bool,
    },
    Done(Decision),
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    transfer: CrossTransfer,
    began_at_ns: u64,
    phase: Phase,
}

/// The two-phase-commit coordinator.
#[derive(Debug)]
pub struct Coordinator {
    shards: u32,
    timeout_ns: u64,
    now_ns: u64,
    entries: BTreeMap<u128, Entry>,
    records: VecDeque<Record>,
    messages: VecDeque<Envelope<ToShard>>,
}

impl Coordinator {
    pub fn new(shards: u32, timeout_ns: u64) -> Self {
        assert!(shards > 0);
        Self {
            shards,
            timeout_ns,
            now_ns: 0,
            entries: BTreeMap::new(),
            records: VecDeque::new(),
            messages: VecDeque::new(),
        }
    }

    /// Rebuilds a coordinator from its journaled records; transfers without a decision are
    /// aborted (presumed abort) and every undecided or unfinished resolution is resent.
    pub fn recover(shards: u32, timeout_ns: u64, records: &[Record]) -> Self {
        let mut c = Self::new(shards, timeout_ns);
        for record in records {
            match *record {
                Record::Begin { transfer, at_ns } => {
                    c.now_ns = c.now_ns.max(at_ns);
                    c.entries.insert(
                        transfer.id,
                        Entry {
                            transfer,
                            began_at_ns: at_ns,
                            phase: Phase::Preparing {
                                debit: None,
                                credit: None,
                            },
                        },
                    );
                }
                Record::Commit { id } | Record::Abort { id } => {
                    let decision = if matches!(record, Record::Commit { .. }) {
                        Decision::Post
                    } else {
                        Decision::Void
                    };
                    if let Some(e) = c.entries.get_mut(&id) {
                        e.phase = Phase::Decided {
                            decision,
                            debit_done: false,
                            credit_done: false,
                        };
                    }
                }
                Record::Done { id } => {
                    if let Some(e) = c.entries.get_mut(&id) {
                        if let Phase::Decided { decision, .. } = e.phase {
                            e.phase = Phase::Done(decision);
                        }
                    }
                }
            }
        }
        let undecided: Vec<u128> = c
            .entries
            .iter()
            .filter(|(_, e)| matches!(e.phase, Phase::Preparing { .. }))
            .map(|(&id, _)| id)
            .collect();
        for id in undecided {
            c.decide(id, Decision::Void);
        }
        c.resend();
        c
    }

    /// Starts a transfer at coordinator time `now_ns`. A repeat of a known id changes nothing.
    pub fn handle_begin(&mut self, now_ns: u64, transfer: CrossTransfer) {
        self.now_ns = self.now_ns.max(now_ns);
        assert!(
            transfer.id < 1 << 120,
            "cross-shard ids leave room for leg ids"
        );
        if self.entries.contains_key(&transfer.id) {
            return;
        }
        self.records.push_back(Record::Begin {
            transfer,
            at_ns: self.now_ns,
        });
        self.entries.insert(
            transfer.id,
            Entry {
                transfer,
                began_at_ns: self.now_ns,
                phase: Phase::Preparing {
                    debit: None,
                    credit: None,
                },
            },
        );
        for leg in [Leg::Debit, Leg::Credit] {
            self.send(transfer, leg, None);
        }
    }

    /// A shard's reply; duplicates and late replies change nothing.
    pub fn handle_reply(&mut self, reply: ToCoordinator) {
        match reply {
            ToCoordinator::Prepared { id, leg, ok } => {
                let Some(e) = self.entries.get_mut(&id) else {
                    return;
                };
                let Phase::Preparing { debit, credit } = &mut e.phase else {
                    return;
                };
                match leg {
                    Leg::Debit => *debit = Some(ok),
                    Leg::Credit => *credit = Some(ok),
                }
                match (*debit, *credit) {
                    (Some(false), _) | (_, Some(false)) => self.decide(id, Decision::Void),
                    (Some(true), Some(true)) => self.decide(id, Decision::Post),
                    _ => {}
                }
            }
            ToCoordinator::Resolved { id, leg } => {
                let Some(e) = self.entries.get_mut(&id) else {
                    return;
                };
                let Phase::Decided {
                    decision,
                    debit_done,
                    credit_done,
                } = &mut e.phase
                else {
                    return;
                };
                match leg {
                    Leg::Debit => *debit_done = true,
                    Leg::Credit => *credit_done = true,
                }
                if *debit_done && *credit_done {
                    e.phase = Phase::Done(*decision);
                    self.records.push_back(Record::Done { id });
                }
            }
        }
    }

    /// Advances coordinator time: aborts transfers preparing for `timeout_ns` or more, and resends
    /// every unacknowledged prepare and resolution (messages may have been lost).
    pub fn handle_tick(&mut self, now_ns: u64) {
        self.now_ns = self.now_ns.max(now_ns);
        let expired: Vec<u128> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                matches!(e.phase, Phase::Preparing { .. })
                    && self.now_ns >= e.began_at_ns.saturating_add(self.timeout_ns)
            })
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            self.decide(id, Decision::Void);
        }
        self.resend();
    }

    fn decide(&mut self, id: u128, decision: Decision) {
        let e = self
            .entries
            .get_mut(&id)
            .expect("decided transfers are known");
        e.phase = Phase::Decided {
            decision,
            debit_done: false,
            credit_done: false,
        };
        let transfer = e.transfer;
        self.records.push_back(match decision {
            Decision::Post => Record::Commit { id },
            Decision::Void => Record::Abort { id },
        });
        for leg in [Leg::Debit, Leg::Credit] {
            self.send(transfer, leg, Some(decision));
        }
    }

    fn resend(&mut self) {
        let mut out = Vec::new();
        for e in self.entries.values() {
            match e.phase {
                Phase::Preparing { debit, credit } => {
                    if debit.is_none() {
                        out.push((e.transfer, Leg::Debit, None));
                    }
                    if credit.is_none() {
                        out.push((e.transfer, Leg::Credit, None));
                    }
                }
                Phase::Decided {
                    decision,
                    debit_done,
                    credit_done,
                } => {
                    if !debit_done {
                        out.push((e.transfer, Leg::Debit, Some(decision)));
                    }
                    if !credit_done {
                        out.push((e.transfer, Leg::Credit, Some(decision)));
                    }
                }
                Phase::Done(_) => {}
            }
        }
        for (transfer, leg, decision) in out {
            self.send(transfer, leg, decision);
        }
    }

    fn send(&mut self, transfer: CrossTransfer, leg: Leg, decision: Option<Decision>) {
        let account = match leg {
            Leg::Debit => transfer.debit_account_id,
            Leg::Credit => transfer.credit_account_id,
        };
        let message = match decision {
            None => ToShard::Prepare { transfer, leg },
            Some(decision) => ToShard::Resolve {
                transfer,
                leg,
                decision,
            },
        };
        self.messages.push_back(Envelope {
            shard: shard_of(account, self.shards),
            message,
        });
    }

    /// The next record to journal. The caller journals every record before sending any message.
    pub fn poll_record(&mut self) -> Option<Record> {
        self.records.pop_front()
    }

    /// The next message to send.
    pub fn poll_message(&mut self) -> Option<Envelope<ToShard>> {
        self.messages.pop_front()
    }

    /// Transfers not yet done, with their decision if any (the in-doubt report).
    pub fn in_doubt(&self) -> Vec<(u128, Option<Decision>)> {
        self.entries
            .iter()
            .filter_map(|(&id, e)| match e.phase {
                Phase::Preparing { .. } => Some((id, None)),
                Phase::Decided { decision, .. } => Some((id, Some(decision))),
                Phase::Done(_) => None,
            })
            .collect()
    }

    /// The final decision of a transfer, once made.
    pub fn decision(&self, id: u128) -> Option<Decision> {
        self.entries.get(&id).and_then(|e| match e.phase {
            Phase::Preparing { .. } => None,
            Phase::Decided { decision, .. } | Phase::Done(decision) => Some(decision),
        })
    }
}

/// What a shard applies, in order: its journaled input. Replaying a shard's inputs rebuilds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardInput {
    pub ts: u64,
    pub message: ToShard,
}

/// One ledger shard answering coordinator messages.
#[derive(Debug)]
pub struct Shard {
    pub index: u32,
    shards: u32,
    pub ledger: Ledger,
    /// Legs voided before their prepare arrived: a late prepare is refused.
    fenced: BTreeSet<(u128, Leg)>,
    outcomes: Vec<Outcome>,
}

impl Shard {
    /// A shard over `ledger` (whose accounts, clearing accounts included, the caller created).
    pub fn new(index: u32, shards: u32, ledger: Ledger) -> Self {
        Self {
            index,
            shards,
            ledger,
            fenced: BTreeSet::new(),
            outcomes: Vec::with_capacity(1),
        }
    }

    fn apply(&mut self, ts: u64, t: Transfer) -> Outcome {
        self.outcomes.clear();
        self.ledger.create_transfers(ts, &[t], &mut self.outcomes);
        self.outcomes[0]
    }

    /// Applies one coordinator message at this shard's time `ts`; returns the reply.
    pub fn handle(&mut self, input: &ShardInput) -> ToCoordinator {
        match input.message {
            ToShard::Prepare { transfer, leg } => {
                let id = leg_id(transfer.id, leg, None);
                if self.fenced.contains(&(transfer.id, leg)) {
                    return ToCoordinator::Prepared {
                        id: transfer.id,
                        leg,
                        ok: false,
                    };
                }
                let (debit, credit) = self.leg_accounts(&transfer, leg);
                let outcome = self.apply(
                    input.ts,
                    Transfer {
                        id,
                        debit_account_id: debit,
                        credit_account_id: credit,
                        amount: transfer.amount,
                        ledger: transfer.ledger,
                        code: transfer.code,
                        flags: TransferFlags::PENDING,
                        user_data: transfer.id,
                        ..Transfer::default()
                    },
                );
                ToCoordinator::Prepared {
                    id: transfer.id,
                    leg,
                    ok: outcome.is_success(),
                }
            }
            ToShard::Resolve {
                transfer,
                leg,
                decision,
            } => {
                let pending_id = leg_id(transfer.id, leg, None);
                if self.ledger.transfer(pending_id).is_none() {
                    // Never prepared here (or its prepare failed): nothing to post or void.
                    // A post cannot reach here (commit needs both prepared); fence a void.
                    if decision == Decision::Void {
                        self.fenced.insert((transfer.id, leg));
                    }
                    return ToCoordinator::Resolved {
                        id: transfer.id,
                        leg,
                    };
                }
                let flags = match decision {
                    Decision::Post => TransferFlags::POST_PENDING,
                    Decision::Void => TransferFlags::VOID_PENDING,
                };
                let outcome = self.apply(
                    input.ts,
                    Transfer {
                        id: leg_id(transfer.id, leg, Some(decision)),
                        pending_id,
                        flags,
                        ..Transfer::default()
                    },
                );
                assert!(
                    outcome.is_success(),
                    "a leg resolves once, as decided: {outcome:?}"
                );
                ToCoordinator::Resolved {
                    id: transfer.id,
                    leg,
                }
            }
        }
    }

    /// Debit and credit accounts of a leg on this shard.
    fn leg_accounts(&self, t: &CrossTransfer, leg: Leg) -> (u128, u128) {
        let debit_shard = shard_of(t.debit_account_id, self.shards);
        let credit_shard = shard_of(t.credit_account_id, self.shards);
        match leg {
            Leg::Debit => (
                t.debit_account_id,
                clearing_account(self.index, credit_shard, self.shards),
            ),
            Leg::Credit => (
                clearing_account(self.index, debit_shard, self.shards),
                t.credit_account_id,
            ),
        }
    }
}
