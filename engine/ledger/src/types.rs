//! Inputs, stored records and result codes of the ledger.

/// Flags of an account: a bit set with named constants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AccountFlags(pub u8);

impl AccountFlags {
    /// `debits_pending + debits_posted` never exceeds `credits_posted`.
    pub const DEBITS_MUST_NOT_EXCEED_CREDITS: Self = Self(1);
    /// `credits_pending + credits_posted` never exceeds `debits_posted`.
    pub const CREDITS_MUST_NOT_EXCEED_DEBITS: Self = Self(2);
    /// The account answers balance-at-sequence/time queries and statements.
    pub const HISTORY: Self = Self(4);
    /// The account is created closed: it rejects new transfers (`account_closed`).
    pub const CLOSED: Self = Self(8);
    /// Every defined bit.
    pub const ALL: Self = Self(15);

    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// Flags of a transfer: a bit set with named constants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TransferFlags(pub u16);

impl TransferFlags {
    /// This transfer and the next succeed or fail as one (see the crate docs on chains).
    pub const LINKED: Self = Self(1);
    /// Two-phase, first phase: the amount goes to the pending balances.
    pub const PENDING: Self = Self(2);
    /// Second phase: post the pending transfer `pending_id` (its full amount or a part).
    pub const POST_PENDING: Self = Self(4);
    /// Second phase: release the pending transfer `pending_id`.
    pub const VOID_PENDING: Self = Self(8);
    /// Move at most what the debit account's credits allow.
    pub const BALANCING_DEBIT: Self = Self(16);
    /// Move at most what the credit account's debits allow.
    pub const BALANCING_CREDIT: Self = Self(32);
    /// A compensating transfer for the posted transfer `pending_id`: accounts swapped, at most the
    /// amount not yet reversed. The original is never edited.
    pub const REVERSAL: Self = Self(64);
    /// Every defined bit.
    pub const ALL: Self = Self(127);

    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// An account as created. Ids are non-zero; `parent` is 0 for a root of the chart of accounts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Account {
    pub id: u128,
    pub user_data: u128,
    /// Parent in the chart of accounts; 0 for none.
    pub parent: u128,
    /// Currency or asset: transfers move value only between accounts of one ledger.
    pub ledger: u32,
    /// Account type (chart-of-accounts code).
    pub code: u16,
    pub flags: AccountFlags,
}

/// The four balances of an account, in minor units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Balances {
    pub debits_pending: u128,
    pub debits_posted: u128,
    pub credits_pending: u128,
    pub credits_posted: u128,
}

/// A transfer as requested. For `post_pending`, `void_pending` and `reversal`, `pending_id` names
/// the referenced transfer and `debit_account_id`, `credit_account_id`, `ledger` and `code` may be
/// 0 (taken from the reference; for a reversal with debit and credit swapped); `amount` 0 means the
/// whole pending (or not yet reversed) amount.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transfer {
    /// The idempotency key.
    pub id: u128,
    pub debit_account_id: u128,
    pub credit_account_id: u128,
    pub amount: u128,
    pub pending_id: u128,
    pub user_data: u128,
    /// Only with `pending`: expires when sequenced time reaches its timestamp + this; 0 never.
    pub timeout_ns: u64,
    pub ledger: u32,
    pub code: u16,
    pub flags: TransferFlags,
}

/// Where a pending transfer stands. Transfers that are not pending are `NotPending`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PendingState {
    NotPending = 0,
    Pending = 1,
    Posted = 2,
    Voided = 3,
    Expired = 4,
}

/// A transfer that succeeded: the request as sent and what it resolved to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredTransfer {
    /// The request exactly as sent (idempotency compares against it).
    pub request: Transfer,
    /// Resolved debit account (from the reference for post/void/reversal).
    pub debit_account_id: u128,
    pub credit_account_id: u128,
    /// Amount moved (after balancing; the posted part for `post_pending`; the released pending
    /// amount for `void_pending`).
    pub amount: u128,
    pub ledger: u32,
    pub code: u16,
    /// Event sequence that applied it.
    pub seq: u64,
    /// Sequenced time that applied it.
    pub ts: u64,
    pub state: PendingState,
    /// For a pending transfer resolved by post, void or expiry: the sequence and time of that.
    pub resolved_seq: u64,
    pub resolved_ts: u64,
    /// For a pending transfer with a timeout: the time it expires; else 0.
    pub expires_at_ns: u64,
    /// For a posted transfer: how much has been reversed so far.
    pub reversed: u128,
}

/// The answer to one account or transfer event. Numbering and names are stable (pinned by a
/// test); the order of the variants after `Exists` is the order of precedence: the first failing
/// check is the answer (engine/ledger/README.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Outcome {
    Ok = 0,
    Exists = 1,
    // 1. Checks on the event alone.
    IdMustNotBeZero = 2,
    FlagsAreMutuallyExclusive = 3,
    PendingIdMustBeZero = 4,
    PendingIdMustNotBeZero = 5,
    PendingIdMustBeDifferent = 6,
    TimeoutReservedForPendingTransfer = 7,
    AmountMustNotBeZero = 8,
    DebitAccountIdMustNotBeZero = 9,
    CreditAccountIdMustNotBeZero = 10,
    AccountsMustBeDifferent = 11,
    LedgerMustNotBeZero = 12,
    CodeMustNotBeZero = 13,
    ParentMustBeDifferent = 14,
    // 2. Idempotency (transfers: flags, debit, credit, amount, pending_id, timeout, ledger,
    //    code, user data; accounts: flags, ledger, code, parent, user data), or the stored answer
    //    of an earlier failed attempt with this id.
    ExistsWithDifferentFlags = 15,
    ExistsWithDifferentDebitAccountId = 16,
    ExistsWithDifferentCreditAccountId = 17,
    ExistsWithDifferentAmount = 18,
    ExistsWithDifferentPendingId = 19,
    ExistsWithDifferentTimeout = 20,
    ExistsWithDifferentLedger = 21,
    ExistsWithDifferentCode = 22,
    ExistsWithDifferentParent = 23,
    ExistsWithDifferentUserData = 24,
    // 3. Capacity.
    LedgerFull = 25,
    LinkedChainTooLong = 26,
    // 4. References (post/void/reversal: the accounts come from the referenced transfer).
    PendingNotFound = 27,
    PendingNotPending = 28,
    ReversedNotFound = 29,
    ReversedNotPosted = 30,
    ReferenceFieldMismatch = 31,
    ParentNotFound = 32,
    ParentLedgerMismatch = 33,
    HierarchyTooDeep = 34,
    // 5. Accounts.
    DebitAccountNotFound = 35,
    CreditAccountNotFound = 36,
    AccountClosed = 37,
    // 6. Ledgers.
    AccountsMustHaveTheSameLedger = 38,
    TransferLedgerMismatch = 39,
    // 7. Pending and reversal state.
    PendingAlreadyPosted = 40,
    PendingAlreadyVoided = 41,
    PendingExpired = 42,
    AmountExceedsPending = 43,
    AmountExceedsReversible = 44,
    // 8. Arithmetic: u128 never wraps.
    OverflowsTimeout = 45,
    OverflowsDebits = 46,
    OverflowsCredits = 47,
    // 9. Limits (pending amounts count).
    ExceedsCredits = 48,
    ExceedsDebits = 49,
    // 10. Chains.
    LinkedEventFailed = 50,
    LinkedEventChainOpen = 51,
    // Close-account answers.
    AccountNotFound = 52,
    AccountAlreadyClosed = 53,
}

impl Outcome {
    /// Every outcome, in numbering order.
    pub const ALL: [Outcome; 54] = [
        Self::Ok,
        Self::Exists,
        Self::IdMustNotBeZero,
        Self::FlagsAreMutuallyExclusive,
        Self::PendingIdMustBeZero,
        Self::PendingIdMustNotBeZero,
        Self::PendingIdMustBeDifferent,
        Self::TimeoutReservedForPendingTransfer,
        Self::AmountMustNotBeZero,
        Self::DebitAccountIdMustNotBeZero,
        Self::CreditAccountIdMustNotBeZero,
        Self::AccountsMustBeDifferent,
        Self::LedgerMustNotBeZero,
        Self::CodeMustNotBeZero,
        Self::ParentMustBeDifferent,
        Self::ExistsWithDifferentFlags,
        Self::ExistsWithDifferentDebitAccountId,
        Self::ExistsWithDifferentCreditAccountId,
        Self::ExistsWithDifferentAmount,
        Self::ExistsWithDifferentPendingId,
        Self::ExistsWithDifferentTimeout,
        Self::ExistsWithDifferentLedger,
        Self::ExistsWithDifferentCode,
        Self::ExistsWithDifferentParent,
        Self::ExistsWithDifferentUserData,
        Self::LedgerFull,
        Self::LinkedChainTooLong,
        Self::PendingNotFound,
        Self::PendingNotPending,
        Self::ReversedNotFound,
        Self::ReversedNotPosted,
        Self::ReferenceFieldMismatch,
        Self::ParentNotFound,
        Self::ParentLedgerMismatch,
        Self::HierarchyTooDeep,
        Self::DebitAccountNotFound,
        Self::CreditAccountNotFound,
        Self::AccountClosed,
        Self::AccountsMustHaveTheSameLedger,
        Self::TransferLedgerMismatch,
        Self::PendingAlreadyPosted,
        Self::PendingAlreadyVoided,
        Self::PendingExpired,
        Self::AmountExceedsPending,
        Self::AmountExceedsReversible,
        Self::OverflowsTimeout,
        Self::OverflowsDebits,
        Self::OverflowsCredits,
        Self::ExceedsCredits,
        Self::ExceedsDebits,
        Self::LinkedEventFailed,
        Self::LinkedEventChainOpen,
        Self::AccountNotFound,
        Self::AccountAlreadyClosed,
    ];

    /// The stable snake_case name used in JSON.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Exists => "exists",
            Self::IdMustNotBeZero => "id_must_not_be_zero",
            Self::FlagsAreMutuallyExclusive => "flags_are_mutually_exclusive",
            Self::PendingIdMustBeZero => "pending_id_must_be_zero",
            Self::PendingIdMustNotBeZero => "pending_id_must_not_be_zero",
            Self::PendingIdMustBeDifferent => "pending_id_must_be_different",
            Self::TimeoutReservedForPendingTransfer => "timeout_reserved_for_pending_transfer",
            Self::AmountMustNotBeZero => "amount_must_not_be_zero",
            Self::DebitAccountIdMustNotBeZero => "debit_account_id_must_not_be_zero",
            Self::CreditAccountIdMustNotBeZero => "credit_account_id_must_not_be_zero",
            Self::AccountsMustBeDifferent => "accounts_must_be_different",
            Self::LedgerMustNotBeZero => "ledger_must_not_be_zero",
            Self::CodeMustNotBeZero => "code_must_not_be_zero",
            Self::ParentMustBeDifferent => "parent_must_be_different",
            Self::ExistsWithDifferentFlags => "exists_with_different_flags",
            Self::ExistsWithDifferentDebitAccountId => "exists_with_different_debit_account_id",
            Self::ExistsWithDifferentCreditAccountId => "exists_with_different_credit_account_id",
            Self::ExistsWithDifferentAmount => "exists_with_different_amount",
            Self::ExistsWithDifferentPendingId => "exists_with_different_pending_id",
            Self::ExistsWithDifferentTimeout => "exists_with_different_timeout",
            Self::ExistsWithDifferentLedger => "exists_with_different_ledger",
            Self::ExistsWithDifferentCode => "exists_with_different_code",
            Self::ExistsWithDifferentParent => "exists_with_different_parent",
            Self::ExistsWithDifferentUserData => "exists_with_different_user_data",
            Self::LedgerFull => "ledger_full",
            Self::LinkedChainTooLong => "linked_chain_too_long",
            Self::PendingNotFound => "pending_not_found",
            Self::PendingNotPending => "pending_not_pending",
            Self::ReversedNotFound => "reversed_not_found",
            Self::ReversedNotPosted => "reversed_not_posted",
            Self::ReferenceFieldMismatch => "reference_field_mismatch",
            Self::ParentNotFound => "parent_not_found",
            Self::ParentLedgerMismatch => "parent_ledger_mismatch",
            Self::HierarchyTooDeep => "hierarchy_too_deep",
            Self::DebitAccountNotFound => "debit_account_not_found",
            Self::CreditAccountNotFound => "credit_account_not_found",
            Self::AccountClosed => "account_closed",
            Self::AccountsMustHaveTheSameLedger => "accounts_must_have_the_same_ledger",
            Self::TransferLedgerMismatch => "transfer_ledger_mismatch",
            Self::PendingAlreadyPosted => "pending_already_posted",
            Self::PendingAlreadyVoided => "pending_already_voided",
            Self::PendingExpired => "pending_expired",
            Self::AmountExceedsPending => "amount_exceeds_pending",
            Self::AmountExceedsReversible => "amount_exceeds_reversible",
            Self::OverflowsTimeout => "overflows_timeout",
            Self::OverflowsDebits => "overflows_debits",
            Self::OverflowsCredits => "overflows_credits",
            Self::ExceedsCredits => "exceeds_credits",
            Self::ExceedsDebits => "exceeds_debits",
            Self::LinkedEventFailed => "linked_event_failed",
            Self::LinkedEventChainOpen => "linked_event_chain_open",
            Self::AccountNotFound => "account_not_found",
            Self::AccountAlreadyClosed => "account_already_closed",
        }
    }

    /// `ok` or `exists`: the event changed nothing it should not have.
    pub const fn is_success(self) -> bool {
        matches!(self, Self::Ok | Self::Exists)
    }

    /// A failure judged against ledger state (references, accounts, ledgers, pending state,
    /// arithmetic, limits): the engine keeps it under the transfer id so a retry answers the same.
    /// Failures of the event alone need no storing (a retry fails the same way by itself);
    /// idempotency, capacity and chain answers are not about this transfer.
    pub const fn is_stored_failure(self) -> bool {
        (self as u8) >= (Self::PendingNotFound as u8) && (self as u8) <= (Self::ExceedsDebits as u8)
    }
}
