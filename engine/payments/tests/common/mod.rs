//! The test harness: drives a `Payments` engine in virtual (sequenced) time and checks, after
//! every step, the engine's invariants plus what only the outputs can show (a reversal precedes
//! every retry, replays answer identically, encodings round-trip, nothing looks like a PAN).

#![allow(dead_code)]

use std::collections::BTreeMap;

use sequent_payments::*;

/// 2023-11-14T22:13:20Z.
pub const T0: u64 = 1_700_000_000_000_000_000;
pub const SEC: u64 = 1_000_000_000;

/// Luhn check of a digit string.
pub fn luhn_valid(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum % 10 == 0
}

/// Panics if `bytes` holds a maximal run of 13–19 ASCII digits that passes Luhn (a PAN shape).
pub fn assert_no_pan(bytes: &[u8], what: &str) {
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let run = &bytes[start..i];
        assert!(
            !((13..=19).contains(&run.len()) && luhn_valid(run)),
            "{what} holds a Luhn-valid {}-digit run at byte {start}: {}",
            run.len(),
            String::from_utf8_lossy(run)
        );
    }
}

pub fn create(merchant: u32, key: u128, amount: u64, card: u8) -> CreatePayment {
    let mut body_hash = [0u8; 32];
    body_hash[..16].copy_from_slice(&key.to_le_bytes());
    body_hash[16..24].copy_from_slice(&amount.to_le_bytes());
    body_hash[24] = card;
    CreatePayment {
        merchant: MerchantId(merchant),
        key: IdemKey(key),
        body_hash,
        amount,
        currency: 978,
        token: Token(0x7e57_0000_0000_0000_0000_0000_0000_0000 | u128::from(card)),
        bin: Bin(41_234_567),
        last4: 4242,
        expiry: Expiry(9912),
        three_ds: None,
    }
}

pub fn hash_of(tag: u8, key: u128, payment: PaymentId, amount: u64) -> BodyHash {
    let mut h = [tag; 32];
    h[..16].copy_from_slice(&key.to_le_bytes());
    h[16..24].copy_from_slice(&payment.0.to_le_bytes());
    h[24..32].copy_from_slice(&amount.to_le_bytes());
    h
}

pub struct Harness {
    pub p: Payments,
    pub config: Config,
    pub seq: u64,
    pub ts: u64,
    /// Every input as journaled: (seq, ts, bytes).
    pub log: Vec<(u64, u64, Vec<u8>)>,
    /// Every output, in order.
    pub outputs: Vec<Output>,
    /// Output index of each Authorise and each Reverse, per (payment, attempt).
    pub authorise_at: BTreeMap<(PaymentId, u8), usize>,
    pub reverse_at: BTreeMap<(PaymentId, u8), usize>,
    /// First answer per (merchant, key), and when it was given.
    pub first_reply: BTreeMap<(MerchantId, IdemKey), (Reply, u64)>,
    /// Scan the whole state's Debug for PAN shapes every this many steps (0 never).
    pub scan_state_every: u64,
    /// Scan inputs and outputs for PAN shapes (off only for arbitrary garbage inputs, whose
    /// random 64-bit fields can spell anything).
    pub scan_io: bool,
}

impl Harness {
    pub fn new(config: Config) -> Self {
        Self {
            p: Payments::new(config.clone()),
            config,
            seq: 0,
            ts: T0,
            log: Vec::new(),
            outputs: Vec::new(),
            authorise_at: BTreeMap::new(),
            reverse_at: BTreeMap::new(),
            first_reply: BTreeMap::new(),
            scan_state_every: 1,
            scan_io: true,
        }
    }

    /// Applies `input` `dt` nanoseconds after the previous one and checks everything.
    pub fn step(&mut self, dt: u64, input: Input) -> Vec<Output> {
        self.seq += 1;
        self.ts += dt;
        let bytes = input.to_bytes();
        assert_eq!(
            Input::decode(&bytes).as_ref(),
            Ok(&input),
            "input round trip"
        );
        if self.scan_io {
            assert_no_pan(&bytes, "an encoded input");
            assert_no_pan(format!("{input:?}").as_bytes(), "an input's Debug");
        }
        self.log.push((self.seq, self.ts, bytes));
        let mut out = Vec::new();
        self.p.handle(self.seq, self.ts, &input, &mut out);
        if let Err(e) = self.p.check_invariants() {
            panic!("invariant broken after step {} ({input:?}): {e}", self.seq);
        }
        for o in &out {
            let b = o.to_bytes();
            assert_eq!(Output::decode(&b).as_ref(), Ok(o), "output round trip");
            if self.scan_io {
                assert_no_pan(&b, "an encoded output");
                assert_no_pan(format!("{o:?}").as_bytes(), "an output's Debug");
            }
            let at = self.outputs.len();
            match o {
                Output::ToAcquirer {
                    payment_id,
                    attempt,
                    msg,
                    ..
                } => match msg {
                    AcquirerRequest::Authorise { .. } => {
                        assert!(
                            self.authorise_at
                                .insert((*payment_id, *attempt), at)
                                .is_none(),
                            "attempt sent twice"
                        );
                        for earlier in 1..*attempt {
                            let r = self.reverse_at.get(&(*payment_id, earlier));
                            assert!(
                                r.is_some_and(|&r| r < at),
                                "{payment_id:?} attempt {attempt} sent before attempt {earlier} was reversed"
                            );
                        }
                    }
                    AcquirerRequest::Reverse { .. } => {
                        self.reverse_at.entry((*payment_id, *attempt)).or_insert(at);
                    }
                    _ => {}
                },
                Output::Reply {
                    merchant,
                    key,
                    reply,
                } if key.0 != 0 && *reply != Reply::Conflict => {
                    let window = self.config.idempotency_window.0;
                    let first = self
                        .first_reply
                        .entry((*merchant, *key))
                        .or_insert((*reply, self.ts));
                    if first.1 + window <= self.ts {
                        // The key was forgotten: this is a new first answer.
                        *first = (*reply, self.ts);
                    }
                    assert_eq!(&first.0, reply, "a repeated key answered differently");
                }
                _ => {}
            }
            self.outputs.push(o.clone());
        }
        // Every attempt given up or released had its reversal sent.
        for p in self.p.payments() {
            for (k, a) in p.attempts.iter().enumerate() {
                if matches!(
                    a.state,
                    AttemptState::Reversed | AttemptState::Released { .. }
                ) {
                    assert!(
                        self.reverse_at.contains_key(&(p.id, k as u8 + 1)),
                        "{:?} attempt {} was given up without a reversal",
                        p.id,
                        k + 1
                    );
                }
            }
        }
        if self.scan_state_every != 0 && self.seq % self.scan_state_every == 0 {
            assert_no_pan(format!("{:?}", self.p).as_bytes(), "the state's Debug");
        }
        out
    }

    /// Replays the journaled input bytes into a fresh engine: the digest must match.
    pub fn replay_digest(&self) -> [u8; 32] {
        let mut p = Payments::new(self.config.clone());
        let mut out = Vec::new();
        for (seq, ts, bytes) in &self.log {
            let input = Input::decode(bytes).expect("journaled inputs decode");
            out.clear();
            p.handle(*seq, *ts, &input, &mut out);
        }
        p.state_digest()
    }

    /// All outputs, encoded, concatenated.
    pub fn output_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        for o in &self.outputs {
            o.encode(&mut v);
        }
        v
    }

    /// Authorisations sent and not yet answered (by what the engine holds).
    pub fn pending_attempts(&self) -> Vec<(AcquirerId, PaymentId, u8)> {
        let mut v = Vec::new();
        for p in self.p.payments() {
            for (k, a) in p.attempts.iter().enumerate() {
                if a.state == AttemptState::Pending {
                    v.push((a.acquirer, p.id, k as u8 + 1));
                }
            }
        }
        v
    }

    pub fn status(&self, id: PaymentId) -> Status {
        self.p.payment(id).expect("payment exists").status
    }
}

/// The payment id in a reply to a create.
pub fn created_id(out: &[Output]) -> PaymentId {
    for o in out {
        if let Output::Reply { reply, .. } = o {
            return match reply {
                Reply::Ok(v) => v.payment_id,
                Reply::Rejected { payment_id, .. } => *payment_id,
                _ => PaymentId(0),
            };
        }
    }
    PaymentId(0)
}

pub fn to_acquirer(out: &[Output]) -> Vec<(AcquirerId, PaymentId, u8, AcquirerRequest)> {
    out.iter()
        .filter_map(|o| match o {
            Output::ToAcquirer {
                acquirer,
                payment_id,
                attempt,
                msg,
            } => Some((*acquirer, *payment_id, *attempt, *msg)),
            _ => None,
        })
        .collect()
}

pub fn approve(amount: u64) -> AcquirerResult {
    AcquirerResult::Approved {
        auth_code: *b"A1B2C3",
        approved_amount: amount,
    }
}
