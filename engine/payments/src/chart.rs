//! The chart of accounts in the embedded ledger, and the ids of the transfers the engine makes.
//!
//! One ledger (in the `sequent_ledger` sense) per currency: its number is the ISO 4217 numeric
//! code. Per currency:
//!
//! | account | code | kind | per | debit means | credit means |
//! |---|---|---|---|---|---|
//! | scheme receivable | 1100 | asset | currency | card schemes owe us (holds, captures) | settled, refunded, charged back |
//! | bank (settlement) | 1000 | asset | acquirer | an acquirer paid us out | we paid a refund out |
//! | merchant payable | 2100 | liability | merchant | refunds, chargebacks | captures we owe the merchant |
//! | acquirer fees | 5100 | expense | currency | fees deducted at settlement | — |
//!
//! Account ids carry a tag in bit 127 and transfer ids one in bit 126, so every id is at least
//! 38 decimal digits long: no id can print as something a PAN scanner would flag.

/// Account codes (chart-of-accounts types).
pub const CODE_BANK: u16 = 1000;
pub const CODE_SCHEME_RECEIVABLE: u16 = 1100;
pub const CODE_MERCHANT_PAYABLE: u16 = 2100;
pub const CODE_FEES: u16 = 5100;

const ACCOUNT_TAG: u128 = 1 << 127;
const TRANSFER_TAG: u128 = 1 << 126;

fn account(kind: u128, currency: u16, entity: u64) -> u128 {
    ACCOUNT_TAG | kind << 80 | u128::from(currency) << 64 | u128::from(entity)
}

pub fn scheme_receivable(currency: u16) -> u128 {
    account(1, currency, 0)
}

pub fn bank(acquirer: u16, currency: u16) -> u128 {
    account(2, currency, u64::from(acquirer))
}

pub fn merchant_payable(merchant: u32, currency: u16) -> u128 {
    account(3, currency, u64::from(merchant))
}

pub fn fees(currency: u16) -> u128 {
    account(4, currency, 0)
}

/// Transfer kinds; also the transfer's `code` in the ledger.
pub mod kind {
    /// Pending: receivable → merchant payable, the authorisation hold (`n` = hold number).
    pub const HOLD: u8 = 1;
    /// Void of hold `n` (void, decline, failure, partial-approval re-hold).
    pub const HOLD_VOID: u8 = 2;
    /// Post of the hold (capture, full or partial).
    pub const CAPTURE: u8 = 3;
    /// Merchant payable → receivable, refund number `n`.
    pub const REFUND: u8 = 4;
    /// Bank ← receivable, the captured amount less fees.
    pub const SETTLE_NET: u8 = 5;
    /// Fees ← receivable.
    pub const SETTLE_FEE: u8 = 6;
    /// Receivable ← bank, refund `n` paid out.
    pub const SETTLE_REFUND: u8 = 7;
    /// Pending: merchant payable → receivable, chargeback `n`.
    pub const CHARGEBACK_HOLD: u8 = 8;
    pub const CHARGEBACK_VOID: u8 = 9;
    pub const CHARGEBACK_POST: u8 = 10;
}

pub fn transfer_id(payment: u64, kind: u8, n: u8) -> u128 {
    TRANSFER_TAG | u128::from(payment) << 16 | u128::from(kind) << 8 | u128::from(n)
}
