//! Identifiers, inputs, outputs and reason codes of the payments engine.
//!
//! Every number that could be long enough to look like a card number (13–19 digits) is a newtype
//! whose `Debug` breaks its digits into short groups, so logs and state dumps can never carry
//! something a PAN scanner (or a human) would mistake for a card number. The engine never sees a
//! PAN: the edge tokenises it before sequencing.

use std::fmt;

/// Writes `v` in decimal with `_` every three digits, so no run of digits is longer than three.
pub(crate) fn fmt_grouped(f: &mut fmt::Formatter<'_>, v: u128) -> fmt::Result {
    let digits = v.to_string();
    let first = digits.len() % 3;
    let mut out = String::with_capacity(digits.len() * 4 / 3 + 1);
    for (i, c) in digits.chars().enumerate() {
        if i != 0 && (i + 3 - first) % 3 == 0 {
            out.push('_');
        }
        out.push(c);
    }
    f.write_str(&out)
}

/// Writes `v` as 32 hex digits in groups of four separated by `-`.
fn fmt_hex_grouped(f: &mut fmt::Formatter<'_>, v: u128) -> fmt::Result {
    let hex = format!("{v:032x}");
    for (i, chunk) in hex.as_bytes().chunks(4).enumerate() {
        if i != 0 {
            f.write_str("-")?;
        }
        // Chunks of an ASCII hex string are ASCII.
        f.write_str(std::str::from_utf8(chunk).map_err(|_| fmt::Error)?)?;
    }
    Ok(())
}

/// Sequenced time in nanoseconds since the Unix epoch, stamped by the sequencer.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Nanos(pub u64);

impl fmt::Debug for Nanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_grouped(f, u128::from(self.0))?;
        f.write_str("ns")
    }
}

/// A merchant, as authenticated by the merchant API at the edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MerchantId(pub u32);

/// A configured acquirer (connector).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct AcquirerId(pub u16);

/// A payment, numbered by the engine from 1 in sequence order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PaymentId(pub u64);

impl fmt::Debug for PaymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("pay:")?;
        fmt_grouped(f, u128::from(self.0))
    }
}

/// A merchant's idempotency key (scoped per merchant).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct IdemKey(pub u128);

impl fmt::Debug for IdemKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("key:")?;
        fmt_hex_grouped(f, self.0)
    }
}

/// The vault's token for a card: opaque 128 bits, never a PAN (format-preserving tokens are
/// decoded to this at the edge). `Debug` prints grouped hex, which can never read as a PAN.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Token(pub u128);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tok:")?;
        fmt_hex_grouped(f, self.0)
    }
}

/// Issuer identification number: the first 6–8 digits of the card, as a number (≤ 99_999_999).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Bin(pub u32);

/// Card expiry: two-digit year and month as `YYMM` (e.g. 2812 for December 2028).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Expiry(pub u16);

/// SHA-256 of the canonical request body, computed at the edge.
pub type BodyHash = [u8; 32];

/// The result of a 3-D Secure authentication, carried into the authorisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ThreeDsResult {
    /// Electronic commerce indicator (e.g. 05 / 02 fully authenticated, 06 / 01 attempted).
    pub eci: u8,
    /// Cardholder authentication verification value (20 bytes, EMV 3DS `authenticationValue`).
    pub cavv: [u8; 20],
}

/// A merchant's request for a new payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreatePayment {
    pub merchant: MerchantId,
    pub key: IdemKey,
    pub body_hash: BodyHash,
    /// Minor units of `currency`.
    pub amount: u64,
    /// ISO 4217 numeric code (978 EUR, 840 USD, 826 GBP).
    pub currency: u16,
    pub token: Token,
    pub bin: Bin,
    pub last4: u16,
    pub expiry: Expiry,
    /// Authentication done by the merchant's own 3DS server, if any.
    pub three_ds: Option<ThreeDsResult>,
}

/// What an acquirer answered to an authorisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcquirerResult {
    /// `approved_amount` < requested is a partial approval.
    Approved {
        auth_code: [u8; 6],
        approved_amount: u64,
    },
    /// ISO 8583 response code (e.g. 05, 51).
    Declined { code: u16 },
    /// The acquirer could not say (format error, system malfunction): treated like a timeout.
    Error,
}

/// 3DS `transStatus` (EMV 3DS 2.2 table A.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TransStatus {
    /// Authenticated.
    Y = b'Y',
    /// Attempted (issuer not participating; liability shift with ECI 06/01).
    A = b'A',
    /// Challenge required.
    C = b'C',
    /// Not authenticated.
    N = b'N',
    /// Could not be performed.
    U = b'U',
    /// Rejected by the issuer.
    R = b'R',
}

impl TransStatus {
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            b'Y' => Self::Y,
            b'A' => Self::A,
            b'C' => Self::C,
            b'N' => Self::N,
            b'U' => Self::U,
            b'R' => Self::R,
            _ => return None,
        })
    }
}

/// ARes from the ACS (through the directory server).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ARes {
    pub payment_id: PaymentId,
    pub acs_trans_id: u64,
    pub trans_status: TransStatus,
    /// Present with Y / A.
    pub result: Option<ThreeDsResult>,
}

/// RReq: the ACS's final result of a challenge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RReq {
    pub payment_id: PaymentId,
    pub acs_trans_id: u64,
    pub trans_status: TransStatus,
    pub result: Option<ThreeDsResult>,
}

/// Category of a clearing-file row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ClearingKind {
    Auth = 1,
    Capture = 2,
    Refund = 3,
    Reversal = 4,
}

/// One row of an acquirer's end-of-day clearing file, parsed at the edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClearingRow {
    pub payment_id: PaymentId,
    /// Authorisation attempt for auth / capture / reversal rows (the RRN maps to it at the edge);
    /// the refund number (1-based) for refund rows.
    pub reference: u8,
    pub kind: ClearingKind,
    pub amount: u64,
    pub currency: u16,
    /// Business date `YYYYMMDD`.
    pub date: u32,
}

/// A sequenced input. Time and sequence come in the envelope of [`crate::Payments::handle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    CreatePayment(CreatePayment),
    /// Capture an authorised payment, fully or partly (one capture per payment; the rest of the
    /// hold is released).
    Capture {
        merchant: MerchantId,
        key: IdemKey,
        body_hash: BodyHash,
        payment_id: PaymentId,
        amount: u64,
    },
    /// Cancel an authorised, uncaptured payment.
    Void {
        merchant: MerchantId,
        key: IdemKey,
        body_hash: BodyHash,
        payment_id: PaymentId,
    },
    /// Return captured money to the card, fully or partly (several refunds allowed).
    Refund {
        merchant: MerchantId,
        key: IdemKey,
        body_hash: BodyHash,
        payment_id: PaymentId,
        amount: u64,
    },
    /// Answered from state; no idempotency key, changes nothing.
    GetStatus {
        merchant: MerchantId,
        payment_id: PaymentId,
    },
    AcquirerReply {
        acquirer: AcquirerId,
        payment_id: PaymentId,
        attempt: u8,
        result: AcquirerResult,
    },
    /// The node's timer for an authorisation attempt fired.
    AcquirerTimeout {
        acquirer: AcquirerId,
        payment_id: PaymentId,
        attempt: u8,
    },
    ThreeDsARes(ARes),
    /// The cardholder's browser came back from the challenge (CRes relayed by the merchant).
    ThreeDsCRes {
        payment_id: PaymentId,
        acs_trans_id: u64,
    },
    ThreeDsRReq(RReq),
    /// Sequenced time passes: deadlines due at the envelope's time fire.
    Tick,
    ClearingFile {
        acquirer: AcquirerId,
        rows: Vec<ClearingRow>,
    },
    ChargebackOpened {
        payment_id: PaymentId,
        amount: u64,
        /// Scheme reason code (e.g. Visa 10.4, stored as 1004).
        reason: u16,
    },
    DisputeEvidenceSubmitted {
        payment_id: PaymentId,
    },
    /// The merchant accepts the chargeback without contesting it.
    DisputeAccepted {
        payment_id: PaymentId,
    },
    /// The scheme's decision after evidence.
    DisputeResolved {
        payment_id: PaymentId,
        won: bool,
    },
}

/// Why a merchant command or a payment was refused. Numbering is stable (the wire carries it);
/// for a new payment the checks run in this order and the first failing one is the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Reason {
    // Validation.
    CapacityExceeded = 1,
    UnknownMerchant = 2,
    AmountZero = 3,
    // Screen.
    CurrencyMismatch = 10,
    CardExpired = 11,
    AmountAboveMerchantLimit = 12,
    BinCountryBlocked = 13,
    TooManyDeclines = 14,
    CardVelocity = 15,
    MerchantVelocity = 16,
    // Limits.
    MerchantDailyLimit = 20,
    CardDailyLimit = 21,
    // 3-D Secure.
    ThreeDsNotAuthenticated = 30,
    ThreeDsRejected = 31,
    ThreeDsUnavailable = 32,
    ThreeDsChallengeFailed = 33,
    ThreeDsTimeout = 34,
    // Routing.
    NoRouteAvailable = 40,
    /// Every attempt failed without an answer (each was reversed).
    AcquirersUnavailable = 41,
    // Ledger (a bug or a capacity limit; never expected).
    LedgerRejected = 50,
    // Commands on an existing payment.
    PaymentNotFound = 60,
    InvalidState = 61,
    AmountExceedsAuthorised = 62,
    AmountExceedsRefundable = 63,
    TooManyRefunds = 64,
}

impl Reason {
    pub const ALL: [Reason; 25] = [
        Self::CapacityExceeded,
        Self::UnknownMerchant,
        Self::AmountZero,
        Self::CurrencyMismatch,
        Self::CardExpired,
        Self::AmountAboveMerchantLimit,
        Self::BinCountryBlocked,
        Self::TooManyDeclines,
        Self::CardVelocity,
        Self::MerchantVelocity,
        Self::MerchantDailyLimit,
        Self::CardDailyLimit,
        Self::ThreeDsNotAuthenticated,
        Self::ThreeDsRejected,
        Self::ThreeDsUnavailable,
        Self::ThreeDsChallengeFailed,
        Self::ThreeDsTimeout,
        Self::NoRouteAvailable,
        Self::AcquirersUnavailable,
        Self::LedgerRejected,
        Self::PaymentNotFound,
        Self::InvalidState,
        Self::AmountExceedsAuthorised,
        Self::AmountExceedsRefundable,
        Self::TooManyRefunds,
    ];

    pub fn from_u8(b: u8) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| *r as u8 == b)
    }
}

/// Where a payment stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Status {
    /// Waiting for 3-D Secure (ARes, challenge or RReq).
    Authenticating = 1,
    /// An authorisation is out at an acquirer.
    Authorising = 2,
    /// Approved and held; capturable.
    Authorised = 3,
    /// The issuer declined (see `decline_code`).
    Declined = 4,
    /// Refused by the engine (see `reason`).
    Rejected = 5,
    Captured = 6,
    PartiallyRefunded = 7,
    Refunded = 8,
    Voided = 9,
    /// The authorisation hold ran out before capture.
    Expired = 10,
}

impl Status {
    pub const ALL: [Status; 10] = [
        Self::Authenticating,
        Self::Authorising,
        Self::Authorised,
        Self::Declined,
        Self::Rejected,
        Self::Captured,
        Self::PartiallyRefunded,
        Self::Refunded,
        Self::Voided,
        Self::Expired,
    ];

    pub fn from_u8(b: u8) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| *s as u8 == b)
    }
}

/// A payment as merchants see it (fixed size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PaymentView {
    pub payment_id: PaymentId,
    pub merchant: MerchantId,
    pub status: Status,
    /// Set when `status` is `Rejected`.
    pub reason: Option<Reason>,
    /// Set when `status` is `Declined`.
    pub decline_code: Option<u16>,
    pub amount: u64,
    pub currency: u16,
    pub authorised: u64,
    pub captured: u64,
    pub refunded: u64,
    pub charged_back: u64,
    pub last4: u16,
    /// The acquirer and attempt holding the live authorisation, if any.
    pub acquirer: Option<AcquirerId>,
    pub attempt: u8,
}

/// The first answer to a merchant command (replayed byte for byte for a repeated key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The command was taken; the payment is as shown (for a new payment usually
    /// `Authenticating` or `Authorising`; the outcome follows as [`Output::PaymentUpdate`]).
    Ok(PaymentView),
    /// Refused; `payment_id` is that of the payment created (rejected payments are recorded) or
    /// 0 when none was. `retry_at` is set (non-zero) only with `NoRouteAvailable`: the earliest
    /// sequenced time a route may be open again (a breaker's reopening, or an in-flight slot
    /// freeing by timeout at the latest): the merchant API's `Retry-After`.
    Rejected {
        payment_id: PaymentId,
        reason: Reason,
        retry_at: Nanos,
    },
    /// The key was used before with a different body.
    Conflict,
    /// The answer to `GetStatus`.
    Status(PaymentView),
}

/// A message for an acquirer connector (ISO 8583 at the edge).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcquirerRequest {
    /// 0100/0200 authorisation.
    Authorise {
        merchant: MerchantId,
        amount: u64,
        currency: u16,
        token: Token,
        bin: Bin,
        last4: u16,
        expiry: Expiry,
        three_ds: Option<ThreeDsResult>,
    },
    /// 0400 reversal of the authorisation `attempt` (the output's `attempt`). Connectors deliver
    /// it at least once (store and forward, 0401 repeats).
    Reverse { amount: u64 },
    /// Capture (completion / clearing advice) of the approved attempt.
    Capture { amount: u64 },
    /// Refund number `refund_no` (1-based) of the approved attempt.
    Refund { amount: u64, refund_no: u8 },
}

/// A message for the 3DS directory server (the engine is the 3DS server).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreeDsRequest {
    AReq {
        payment_id: PaymentId,
        merchant: MerchantId,
        amount: u64,
        currency: u16,
        token: Token,
        bin: Bin,
    },
    /// Acknowledges an RReq.
    RRes {
        payment_id: PaymentId,
        acs_trans_id: u64,
    },
}

/// Settlement categories.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ReconCategory {
    /// In the file and in our books with the same amount and currency (captures and refunds
    /// settle in the ledger).
    Matched = 1,
    /// We captured or refunded through this acquirer; the file lacks it.
    Missing = 2,
    /// The file has it; we do not.
    Unexpected = 3,
    /// The file repeats a row already seen (in this file or settled before).
    Duplicated = 4,
    /// Same reference, different amount or currency.
    AmountMismatch = 5,
}

impl ReconCategory {
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Matched,
            2 => Self::Missing,
            3 => Self::Unexpected,
            4 => Self::Duplicated,
            5 => Self::AmountMismatch,
            _ => return None,
        })
    }
}

/// One line of a reconciliation report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReconLine {
    pub category: ReconCategory,
    pub payment_id: PaymentId,
    pub kind: ClearingKind,
    pub reference: u8,
    /// The file's amount (ours for `Missing`).
    pub amount: u64,
    /// Our amount (the file's for `Unexpected`).
    pub expected: u64,
}

/// The result of reconciling one clearing file.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ReconReport {
    pub acquirer: AcquirerId,
    /// File rows first, in file order; then missing items in payment order.
    pub lines: Vec<ReconLine>,
    /// Captured amount settled to the bank account by this file (after fees) and the fees.
    pub settled_net: u64,
    pub fees: u64,
    pub refunds_settled: u64,
}

impl ReconReport {
    pub fn count(&self, c: ReconCategory) -> usize {
        self.lines.iter().filter(|l| l.category == c).count()
    }
}

/// Dispute lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DisputeState {
    Opened = 1,
    EvidenceSubmitted = 2,
    Won = 3,
    Lost = 4,
    Accepted = 5,
}

impl DisputeState {
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Opened,
            2 => Self::EvidenceSubmitted,
            3 => Self::Won,
            4 => Self::Lost,
            5 => Self::Accepted,
            _ => return None,
        })
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Won | Self::Lost | Self::Accepted)
    }
}

/// Why a non-merchant input changed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Ignored {
    UnknownPayment = 1,
    UnknownAcquirer = 2,
    UnknownAttempt = 3,
    /// A second answer to an attempt already answered.
    DuplicateReply = 4,
    /// A 3DS message that does not fit the payment's 3DS state.
    UnexpectedThreeDs = 5,
    /// A dispute input that does not fit the dispute's state or amounts.
    InvalidDispute = 6,
    /// A timeout for an attempt no longer waiting.
    StaleTimeout = 7,
}

impl Ignored {
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::UnknownPayment,
            2 => Self::UnknownAcquirer,
            3 => Self::UnknownAttempt,
            4 => Self::DuplicateReply,
            5 => Self::UnexpectedThreeDs,
            6 => Self::InvalidDispute,
            7 => Self::StaleTimeout,
            _ => return None,
        })
    }
}

/// What the engine emits while handling one input, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// The answer to a merchant command (`key` is 0 for `GetStatus`).
    Reply {
        merchant: MerchantId,
        key: IdemKey,
        reply: Reply,
    },
    /// A payment changed status asynchronously (webhook to the merchant).
    PaymentUpdate(PaymentView),
    ToAcquirer {
        acquirer: AcquirerId,
        payment_id: PaymentId,
        attempt: u8,
        msg: AcquirerRequest,
    },
    ToThreeDs(ThreeDsRequest),
    /// The merchant must send the cardholder's browser to the ACS (CReq).
    ChallengeRequired {
        merchant: MerchantId,
        payment_id: PaymentId,
        acs_trans_id: u64,
    },
    /// The node must deliver a `Tick` at or after `at` (a deadline is due then).
    ArmTimer {
        at: Nanos,
    },
    /// An acquirer answered an attempt that had already timed out and been reversed; the
    /// reversal stands. Recorded for operations.
    LateReply {
        acquirer: AcquirerId,
        payment_id: PaymentId,
        attempt: u8,
        result: AcquirerResult,
    },
    Reconciliation(ReconReport),
    Dispute {
        payment_id: PaymentId,
        state: DisputeState,
        amount: u64,
    },
    Ignored {
        payment_id: PaymentId,
        why: Ignored,
    },
}
