//! sequent-throttle: the pre-trade risk throttle that checks every order before it reaches the book.
//!
//! It owns, per account, the limits in force and the usage they are checked against: open orders,
//! the credit **held** for open orders, an orders-per-second token bucket on sequenced time, the
//! kill switch and the pre-alert flags; globally, the default limits, the global kill switch and
//! a reference price per symbol for the price collar. The checks follow the controls exchanges
//! run in the same sequenced stream as matching (CME credit controls, Nasdaq's risk settings, SEC
//! rule 15c3-5): maximum order quantity and notional, price collar, maximum open orders, credit
//! limit, message rate, kill switch.
//!
//! It must not touch the book, a clock, threads or I/O: time arrives as [`Nanos`] with each call,
//! every table is sized at construction, and nothing allocates after [`Throttle::new`]. The caller
//! (`sequent_matching::Venue`) calls [`Throttle::check`] before matching, [`Throttle::commit`] when it
//! accepts the order, and [`Throttle::release`] on every fill, cancel or expiry, so that an
//! account's [`Throttle::held`] always equals the notional of its open orders.
//!
//! ```
//! use sequent_throttle::{Limits, OrderCheck, Side, Throttle, ThrottleReject};
//!
//! let mut throttle = Throttle::new(4, 1);
//! throttle.set_limits(None, Limits { credit_limit: Some(10_000), ..Limits::NONE });
//! let order = OrderCheck { account: 0, symbol: 0, side: Side::Buy, qty: 50, price: Some(100) };
//! let hold = throttle.check(0, &order, None).unwrap();
//! throttle.commit(0, hold, true, &mut |_alert| {});
//! assert_eq!(throttle.held(0), 5_000);
//! let bigger = OrderCheck { qty: 51, ..order };
//! assert_eq!(throttle.check(0, &bigger, None), Err(ThrottleReject::CreditLimit));
//! throttle.release(0, 5_000, true);
//! assert_eq!(throttle.held(0), 0);
//! ```

#![forbid(unsafe_code)]

pub mod snapshot;

use crate::snapshot::{Problem, SnapshotError, SnapshotReader, write_option};

/// Sequenced time in nanoseconds, stamped once by the sequencer; never read from a clock here.
pub type Nanos = u64;

/// Nanoseconds per second: the token bucket refills `rate` tokens per this many nanoseconds.
const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Basis points in one: a collar of 500 bps is ±5 % around the reference price.
const BPS_PER_ONE: i128 = 10_000;

/// The side of an order; sells and buys both hold credit (gross open notional).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Bid.
    Buy,
    /// Offer.
    Sell,
}

/// Why the throttle refused an order. Plain values; the names in [`ThrottleReject::as_str`] are
/// the `reason` strings of `sequent match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThrottleReject {
    /// The account, or the whole venue, is killed.
    KillSwitch,
    /// The account's token bucket is empty (orders per second on sequenced time).
    RateLimit,
    /// Quantity above `max_qty`.
    MaxQty,
    /// Notional (price × quantity) above `max_notional`.
    MaxNotional,
    /// Limit price outside the collar around the symbol's reference price.
    PriceCollar,
    /// The account already has `max_open_orders` open orders.
    MaxOpenOrders,
    /// Held credit plus this order's notional would exceed `credit_limit`.
    CreditLimit,
    /// A market order cannot be priced (no reference price) while a notional or credit limit applies.
    NoReferencePrice,
}

impl ThrottleReject {
    /// The reason string used in events.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::KillSwitch => "kill_switch",
            Self::RateLimit => "rate_limit",
            Self::MaxQty => "max_qty",
            Self::MaxNotional => "max_notional",
            Self::PriceCollar => "price_collar",
            Self::MaxOpenOrders => "max_open_orders",
            Self::CreditLimit => "credit_limit",
            Self::NoReferencePrice => "no_reference_price",
        }
    }
}

/// The limits of one account (or the default for accounts without their own). `None` is "no limit".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Largest quantity of one order.
    pub max_qty: Option<u64>,
    /// Largest notional (price × quantity, in price ticks × units) of one order.
    pub max_notional: Option<u128>,
    /// Collar half-width in basis points around the symbol's reference price.
    pub collar_bps: Option<u32>,
    /// Most open orders at once (resting, or being matched).
    pub max_open_orders: Option<u32>,
    /// Most credit held at once: the sum of the notional of the account's open orders.
    pub credit_limit: Option<u128>,
    /// Orders (new and replace) per second of sequenced time; the bucket holds one second's worth.
    pub orders_per_sec: Option<u32>,
    /// Pre-alert when usage of credit, open orders or rate reaches this percentage of the limit.
    pub alert_pct: Option<u8>,
}

impl Limits {
    /// No limit at all: the permissive default.
    pub const NONE: Self = Self {
        max_qty: None,
        max_notional: None,
        collar_bps: None,
        max_open_orders: None,
        credit_limit: None,
        orders_per_sec: None,
        alert_pct: None,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::NONE
    }
}

/// Which limit a pre-alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    /// Held credit against `credit_limit`.
    CreditLimit,
    /// Open orders against `max_open_orders`.
    MaxOpenOrders,
    /// Tokens used against `orders_per_sec`.
    RateLimit,
}

impl LimitKind {
    /// The name used in `alert` events.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CreditLimit => "credit_limit",
            Self::MaxOpenOrders => "max_open_orders",
            Self::RateLimit => "rate_limit",
        }
    }
}

/// A pre-alert: usage of `kind` reached `alert_pct` of its limit. Edge-triggered: raised once when
/// usage crosses the threshold upwards, re-armed when it falls back below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Alert {
    /// The account.
    pub account: u32,
    /// The limit.
    pub kind: LimitKind,
    /// Usage after the order was accepted.
    pub used: u128,
    /// The limit in force.
    pub limit: u128,
}

/// What the throttle needs to know about an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderCheck {
    /// Dense account index, `< accounts_max`.
    pub account: u32,
    /// Dense symbol index, `< symbols_max`.
    pub symbol: u16,
    /// Side.
    pub side: Side,
    /// Quantity (for a replace: the new open quantity).
    pub qty: u64,
    /// Limit price in ticks; `None` for a market order.
    pub price: Option<i64>,
}

/// The price a hold is computed at: the limit price, or for a market order the collar bound on
/// its side (buy: upper, sell: lower) around the reference price, or the reference itself
/// without a collar. Returned by [`Throttle::check`]; release fills at the same price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    /// Price per unit the hold is computed at (0 when nothing is held).
    pub price: i64,
    /// `price × qty`.
    pub notional: u128,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Account {
    /// Own limits; `None` follows the default.
    limits: Option<Limits>,
    /// Orders committed and not yet filled, cancelled or expired.
    open_orders: u32,
    /// Σ hold price × open quantity over the open orders. Never exceeds `credit_limit` through an
    /// acceptance (a limit lowered at run time may leave it above until orders leave the book).
    held: u128,
    /// Tokens × 1e9; `u64::MAX` means "full" (refilled to the bucket's size on next use).
    tokens_nano: u64,
    /// Sequenced time of the last refill.
    refilled_at: Nanos,
    killed: bool,
    alerted: [bool; 3],
}

const ACCOUNT_INIT: Account = Account {
    limits: None,
    open_orders: 0,
    held: 0,
    tokens_nano: u64::MAX,
    refilled_at: 0,
    killed: false,
    alerted: [false; 3],
};

/// The throttle: per-account usage and limits, default limits, kill switches, reference prices.
#[derive(Debug, Clone)]
pub struct Throttle {
    default_limits: Limits,
    accounts: Vec<Account>,
    /// Per symbol: the collar's reference price (last trade or admin input), `None` until known.
    reference: Vec<Option<i64>>,
    killed_all: bool,
}

impl Throttle {
    /// A permissive throttle (no limits) for `accounts_max` accounts and `symbols_max` symbols.
    /// All memory is allocated here.
    pub fn new(accounts_max: u32, symbols_max: u16) -> Self {
        Self {
            default_limits: Limits::NONE,
            accounts: vec![ACCOUNT_INIT; accounts_max as usize],
            reference: vec![None; usize::from(symbols_max)],
            killed_all: false,
        }
    }

    /// Number of accounts.
    pub fn accounts_max(&self) -> u32 {
        self.accounts.len() as u32
    }

    /// Limits in force for `account`.
    pub fn limits(&self, account: u32) -> Limits {
        self.accounts[account as usize]
            .limits
            .unwrap_or(self.default_limits)
    }

    /// Sets the limits of one account, or the default (and clears every account's own limits)
    /// when `account` is `None`. Token buckets of the affected accounts start full at the new rate.
    pub fn set_limits(&mut self, account: Option<u32>, limits: Limits) {
        match account {
            Some(a) => {
                let acc = &mut self.accounts[a as usize];
                acc.limits = Some(limits);
                acc.tokens_nano = u64::MAX;
                acc.alerted = [false; 3];
            }
            None => {
                self.default_limits = limits;
                for acc in &mut self.accounts {
                    acc.limits = None;
                    acc.tokens_nano = u64::MAX;
                    acc.alerted = [false; 3];
                }
            }
        }
    }

    /// Engages (`true`) or lifts the kill switch of one account, or the global one for `None`.
    /// Cancelling the resting orders is the venue's job; the throttle refuses new orders.
    pub fn set_killed(&mut self, account: Option<u32>, killed: bool) {
        match account {
            Some(a) => self.accounts[a as usize].killed = killed,
            None => self.killed_all = killed,
        }
    }

    /// Whether orders of `account` are refused by a kill switch (its own or the global one).
    pub fn is_killed(&self, account: u32) -> bool {
        self.killed_all || self.accounts[account as usize].killed
    }

    /// Sets the collar's reference price of a symbol (admin input, or the last trade).
    pub fn set_reference(&mut self, symbol: u16, price: i64) {
        self.reference[usize::from(symbol)] = Some(price);
    }

    /// The collar's reference price of a symbol.
    pub fn reference(&self, symbol: u16) -> Option<i64> {
        self.reference[usize::from(symbol)]
    }

    /// Credit held by `account`: Σ hold price × open quantity of its open orders.
    pub fn held(&self, account: u32) -> u128 {
        self.accounts[account as usize].held
    }

    /// Open orders of `account`.
    pub fn open_orders(&self, account: u32) -> u32 {
        self.accounts[account as usize].open_orders
    }

    /// Checks an order at sequenced time `now`. `replacing` is the hold of the order a replace
    /// takes over (its credit is counted as released; the open-order count does not change).
    /// Consumes one token of the rate limit when the account has one, even if a later check
    /// fails: every order message counts. Checks in this order, first failure wins: kill switch,
    /// rate, quantity, notional, collar, open orders, credit.
    pub fn check(
        &mut self,
        now: Nanos,
        order: &OrderCheck,
        replacing: Option<Hold>,
    ) -> Result<Hold, ThrottleReject> {
        let limits = self.limits(order.account);
        if self.is_killed(order.account) {
            return Err(ThrottleReject::KillSwitch);
        }
        let reference = self.reference[usize::from(order.symbol)];
        let acc = &mut self.accounts[order.account as usize];
        if let Some(rate) = limits.orders_per_sec {
            refill(acc, now, rate);
            if acc.tokens_nano < NANOS_PER_SEC {
                return Err(ThrottleReject::RateLimit);
            }
            acc.tokens_nano -= NANOS_PER_SEC;
        }
        if limits.max_qty.is_some_and(|max| order.qty > max) {
            return Err(ThrottleReject::MaxQty);
        }
        let hold_price = match order.price {
            Some(price) => price,
            None => match reference {
                Some(reference) => match (limits.collar_bps, order.side) {
                    (Some(bps), Side::Buy) => collar(reference, bps).1,
                    (Some(bps), Side::Sell) => collar(reference, bps).0,
                    (None, _) => reference,
                },
                None if limits.max_notional.is_some() || limits.credit_limit.is_some() => {
                    return Err(ThrottleReject::NoReferencePrice);
                }
                None => 0,
            },
        };
        let notional = notional(hold_price, order.qty);
        if limits.max_notional.is_some_and(|max| notional > max) {
            return Err(ThrottleReject::MaxNotional);
        }
        if let (Some(price), Some(bps), Some(reference)) =
            (order.price, limits.collar_bps, reference)
        {
            let (low, high) = collar(reference, bps);
            if price < low || price > high {
                return Err(ThrottleReject::PriceCollar);
            }
        }
        if replacing.is_none()
            && limits
                .max_open_orders
                .is_some_and(|max| acc.open_orders >= max)
        {
            return Err(ThrottleReject::MaxOpenOrders);
        }
        if let Some(limit) = limits.credit_limit {
            let released = replacing.map_or(0, |h| h.notional);
            if acc.held - released + notional > limit {
                return Err(ThrottleReject::CreditLimit);
            }
        }
        Ok(Hold {
            price: hold_price,
            notional,
        })
    }

    /// Commits an accepted order's hold. `new_order` counts it as one more open order (false for
    /// a replace, whose old hold the caller has released first). Emits pre-alerts through `alert`.
    pub fn commit(
        &mut self,
        account: u32,
        hold: Hold,
        new_order: bool,
        alert: &mut impl FnMut(Alert),
    ) {
        let limits = self.limits(account);
        let acc = &mut self.accounts[account as usize];
        acc.held += hold.notional;
        if new_order {
            acc.open_orders += 1;
        }
        let Some(pct) = limits.alert_pct else {
            return;
        };
        let rate_used = limits.orders_per_sec.map(|rate| {
            let cap = u64::from(rate) * NANOS_PER_SEC;
            let left = acc.tokens_nano.min(cap);
            (u128::from((cap - left) / NANOS_PER_SEC), u128::from(rate))
        });
        let usage = [
            (
                LimitKind::CreditLimit,
                limits.credit_limit.map(|l| (acc.held, l)),
            ),
            (
                LimitKind::MaxOpenOrders,
                limits
                    .max_open_orders
                    .map(|l| (u128::from(acc.open_orders), u128::from(l))),
            ),
            (LimitKind::RateLimit, rate_used),
        ];
        for (i, (kind, usage)) in usage.into_iter().enumerate() {
            let Some((used, limit)) = usage else { continue };
            let over = used * 100 >= limit * u128::from(pct);
            if over && !acc.alerted[i] {
                alert(Alert {
                    account,
                    kind,
                    used,
                    limit,
                });
            }
            acc.alerted[i] = over;
        }
    }

    /// Releases `notional` of held credit (a fill, cancel or expiry); `order_done` when the order
    /// left the book for good. Re-arms the credit and open-order pre-alerts below their threshold.
    pub fn release(&mut self, account: u32, notional: u128, order_done: bool) {
        let limits = self.limits(account);
        let acc = &mut self.accounts[account as usize];
        assert!(acc.held >= notional, "released more credit than held");
        acc.held -= notional;
        if order_done {
            assert!(acc.open_orders > 0, "closed an order that was not open");
            acc.open_orders -= 1;
        }
        if let Some(pct) = limits.alert_pct {
            let pct = u128::from(pct);
            if let Some(limit) = limits.credit_limit {
                acc.alerted[0] &= acc.held * 100 >= limit * pct;
            }
            if let Some(limit) = limits.max_open_orders {
                acc.alerted[1] &= u128::from(acc.open_orders) * 100 >= u128::from(limit) * pct;
            }
        }
    }

    /// Feeds the throttle's state into a digest, in a canonical order (accounts ascending).
    pub fn digest_into(&self, mut write: impl FnMut(&[u8])) {
        write(&[u8::from(self.killed_all)]);
        for (symbol, reference) in self.reference.iter().enumerate() {
            if let Some(price) = reference {
                write(&(symbol as u64).to_le_bytes());
                write(&price.to_le_bytes());
            }
        }
        for (index, acc) in self.accounts.iter().enumerate() {
            if acc.held == 0 && acc.open_orders == 0 && !acc.killed && acc.limits.is_none() {
                continue;
            }
            write(&(index as u64).to_le_bytes());
            write(&acc.held.to_le_bytes());
            write(&acc.open_orders.to_le_bytes());
            write(&[u8::from(acc.killed), u8::from(acc.limits.is_some())]);
        }
    }
}

/// Snapshots: the whole state, byte-exact, so that a restored throttle takes every later decision
/// the original would have.
///
/// Layout (little-endian; `opt<T>` is a tag byte 0/1 then `T` when 1; `limits` is seven `opt`s:
/// max_qty u64, max_notional u128, collar_bps u32, max_open_orders u32, credit_limit u128,
/// orders_per_sec u32, alert_pct u8 — 7 to 60 bytes):
///
/// | field | bytes |
/// |---|---|
/// | accounts_max u32, symbols_max u16 | 6 |
/// | killed_all | 1 |
/// | default limits | 7..=60 |
/// | reference price per symbol: `opt<i64>` | 1 or 9 each |
/// | count u32 of accounts not in their initial state, then per account ascending: index u32, `opt<limits>`, open_orders u32, held u128, tokens_nano u64, refilled_at u64, killed, alerted ×3 | 4, then 45..=105 each |
///
/// An account never touched (no own limits, nothing open or held, full bucket, never refilled,
/// not killed, no alert raised) is not written: the size grows with the accounts in use and the
/// symbols configured, not with `accounts_max`.
impl Throttle {
    /// Appends the snapshot of the whole throttle to `out`. Runs only when called; the decision
    /// path is untouched.
    pub fn write_snapshot(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.accounts_max().to_le_bytes());
        out.extend_from_slice(&(self.reference.len() as u16).to_le_bytes());
        out.push(u8::from(self.killed_all));
        write_limits(out, &self.default_limits);
        for reference in &self.reference {
            write_option(out, *reference, |out, price| {
                out.extend_from_slice(&price.to_le_bytes());
            });
        }
        let touched = || {
            self.accounts
                .iter()
                .enumerate()
                .filter(|(_, acc)| **acc != ACCOUNT_INIT)
        };
        out.extend_from_slice(&(touched().count() as u32).to_le_bytes());
        for (index, acc) in touched() {
            out.extend_from_slice(&(index as u32).to_le_bytes());
            write_option(out, acc.limits, |out, limits| write_limits(out, &limits));
            out.extend_from_slice(&acc.open_orders.to_le_bytes());
            out.extend_from_slice(&acc.held.to_le_bytes());
            out.extend_from_slice(&acc.tokens_nano.to_le_bytes());
            out.extend_from_slice(&acc.refilled_at.to_le_bytes());
            out.push(u8::from(acc.killed));
            out.extend(acc.alerted.map(u8::from));
        }
    }

    /// Reads a snapshot written by [`Throttle::write_snapshot`] from the start of `bytes` for a
    /// throttle of `accounts_max` accounts and `symbols_max` symbols (the caller's configuration;
    /// a snapshot of other dimensions is refused by field). Returns the throttle and the bytes
    /// used; what follows is the caller's. Never panics; allocates only what the given dimensions
    /// size.
    pub fn read_snapshot(
        accounts_max: u32,
        symbols_max: u16,
        bytes: &[u8],
    ) -> Result<(Self, usize), SnapshotError> {
        let mut reader = SnapshotReader::new(bytes);
        let throttle = Self::read_snapshot_from(&mut reader, accounts_max, symbols_max)?;
        Ok((throttle, reader.position()))
    }

    /// [`Throttle::read_snapshot`] from a cursor, for snapshots that embed the throttle's: errors
    /// carry offsets in the whole snapshot.
    pub fn read_snapshot_from(
        r: &mut SnapshotReader<'_>,
        accounts_max: u32,
        symbols_max: u16,
    ) -> Result<Self, SnapshotError> {
        r.expect_u32("throttle.accounts_max", accounts_max)?;
        let at = r.position();
        let symbols = r.u16("throttle.symbols_max", None)?;
        if symbols != symbols_max {
            return Err(SnapshotError::new(
                at,
                "throttle.symbols_max",
                None,
                Problem::ConfigMismatch {
                    snapshot: u64::from(symbols),
                    config: u64::from(symbols_max),
                },
            ));
        }
        let mut throttle = Self::new(accounts_max, symbols_max);
        throttle.killed_all = r.bool("throttle.killed_all", None)?;
        throttle.default_limits = read_limits(r, "throttle.default_limits", None)?;
        for (symbol, reference) in throttle.reference.iter_mut().enumerate() {
            let index = Some(symbol as u64);
            *reference = r.option("throttle.reference", index, |r| {
                r.i64("throttle.reference", index)
            })?;
        }
        let at = r.position();
        let touched = r.u32("throttle.accounts", None)?;
        if touched > accounts_max {
            return Err(SnapshotError::invalid(
                at,
                "throttle.accounts",
                None,
                "more accounts than accounts_max",
            ));
        }
        let mut next_index = 0u32;
        for _ in 0..touched {
            let at = r.position();
            let index = r.u32("throttle.account.index", None)?;
            if index < next_index || index >= accounts_max {
                return Err(SnapshotError::invalid(
                    at,
                    "throttle.account.index",
                    Some(u64::from(index)),
                    "accounts must ascend and be below accounts_max",
                ));
            }
            next_index = index + 1;
            let i = Some(u64::from(index));
            let acc = Account {
                limits: r.option("throttle.account.limits", i, |r| {
                    read_limits(r, "throttle.account.limits", i)
                })?,
                open_orders: r.u32("throttle.account.open_orders", i)?,
                held: r.u128("throttle.account.held", i)?,
                tokens_nano: r.u64("throttle.account.tokens_nano", i)?,
                refilled_at: r.u64("throttle.account.refilled_at", i)?,
                killed: r.bool("throttle.account.killed", i)?,
                alerted: [
                    r.bool("throttle.account.alerted", i)?,
                    r.bool("throttle.account.alerted", i)?,
                    r.bool("throttle.account.alerted", i)?,
                ],
            };
            if acc == ACCOUNT_INIT {
                // The writer leaves these out; accepting one would give two encodings of a state.
                return Err(SnapshotError::invalid(
                    at,
                    "throttle.account",
                    i,
                    "an account in its initial state is not written",
                ));
            }
            throttle.accounts[index as usize] = acc;
        }
        Ok(throttle)
    }
}

fn write_limits(out: &mut Vec<u8>, limits: &Limits) {
    write_option(out, limits.max_qty, |out, v| {
        out.extend_from_slice(&v.to_le_bytes())
    });
    write_option(out, limits.max_notional, |out, v| {
        out.extend_from_slice(&v.to_le_bytes());
    });
    write_option(out, limits.collar_bps, |out, v| {
        out.extend_from_slice(&v.to_le_bytes())
    });
    write_option(out, limits.max_open_orders, |out, v| {
        out.extend_from_slice(&v.to_le_bytes());
    });
    write_option(out, limits.credit_limit, |out, v| {
        out.extend_from_slice(&v.to_le_bytes());
    });
    write_option(out, limits.orders_per_sec, |out, v| {
        out.extend_from_slice(&v.to_le_bytes());
    });
    write_option(out, limits.alert_pct, |out, v| out.push(v));
}

fn read_limits(
    r: &mut SnapshotReader<'_>,
    field: &'static str,
    index: Option<u64>,
) -> Result<Limits, SnapshotError> {
    Ok(Limits {
        max_qty: r.option(field, index, |r| r.u64(field, index))?,
        max_notional: r.option(field, index, |r| r.u128(field, index))?,
        collar_bps: r.option(field, index, |r| r.u32(field, index))?,
        max_open_orders: r.option(field, index, |r| r.u32(field, index))?,
        credit_limit: r.option(field, index, |r| r.u128(field, index))?,
        orders_per_sec: r.option(field, index, |r| r.u32(field, index))?,
        alert_pct: r.option(field, index, |r| r.u8(field, index))?,
    })
}

/// Price × quantity, exact: prices are at most 2^63 and quantities 2^64, so it fits in u128.
pub fn notional(price: i64, qty: u64) -> u128 {
    u128::from(price.unsigned_abs()) * u128::from(qty)
}

/// The collar `[low, high]` of `bps` basis points around `reference`, rounded towards it.
fn collar(reference: i64, bps: u32) -> (i64, i64) {
    let width = i128::from(reference) * i128::from(bps) / BPS_PER_ONE;
    let low = i128::from(reference) - width;
    let high = i128::from(reference) + width;
    (
        low.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
        high.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
    )
}

/// Refills the bucket for the sequenced time since the last refill. The bucket holds one second's
/// worth of tokens; time that goes backwards refills nothing.
fn refill(acc: &mut Account, now: Nanos, rate: u32) {
    let cap = u64::from(rate) * NANOS_PER_SEC;
    let elapsed = now.saturating_sub(acc.refilled_at);
    acc.refilled_at = acc.refilled_at.max(now);
    let added = u64::try_from(u128::from(elapsed) * u128::from(rate)).unwrap_or(u64::MAX);
    acc.tokens_nano = acc.tokens_nano.saturating_add(added).min(cap);
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUY: OrderCheck = OrderCheck {
        account: 1,
        symbol: 0,
        side: Side::Buy,
        qty: 10,
        price: Some(100),
    };

    fn limited(limits: Limits) -> Throttle {
        let mut t = Throttle::new(4, 2);
        t.set_limits(Some(1), limits);
        t
    }

    #[test]
    fn permissive_by_default() {
        let mut t = Throttle::new(2, 1);
        let hold = t.check(0, &BUY, None).unwrap();
        assert_eq!(
            hold,
            Hold {
                price: 100,
                notional: 1_000
            }
        );
        let market = OrderCheck { price: None, ..BUY };
        assert_eq!(t.check(0, &market, None).unwrap().notional, 0);
    }

    #[test]
    fn max_qty_and_notional() {
        let mut t = limited(Limits {
            max_qty: Some(10),
            max_notional: Some(999),
            ..Limits::NONE
        });
        assert_eq!(
            t.check(0, &OrderCheck { qty: 11, ..BUY }, None),
            Err(ThrottleReject::MaxQty)
        );
        assert_eq!(t.check(0, &BUY, None), Err(ThrottleReject::MaxNotional));
        assert!(
            t.check(
                0,
                &OrderCheck {
                    price: Some(99),
                    ..BUY
                },
                None
            )
            .is_ok()
        );
        // Other accounts follow the (permissive) default.
        assert!(
            t.check(
                0,
                &OrderCheck {
                    account: 2,
                    qty: 11,
                    ..BUY
                },
                None
            )
            .is_ok()
        );
    }

    #[test]
    fn collar_around_the_reference() {
        let mut t = limited(Limits {
            collar_bps: Some(500),
            ..Limits::NONE
        });
        // No reference yet: the collar cannot apply.
        assert!(
            t.check(
                0,
                &OrderCheck {
                    price: Some(1),
                    ..BUY
                },
                None
            )
            .is_ok()
        );
        t.set_reference(0, 1_000);
        for (price, ok) in [(949, false), (950, true), (1_050, true), (1_051, false)] {
            let got = t.check(
                0,
                &OrderCheck {
                    price: Some(price),
                    ..BUY
                },
                None,
            );
            assert_eq!(got.is_ok(), ok, "{price}: {got:?}");
            if !ok {
                assert_eq!(got, Err(ThrottleReject::PriceCollar));
            }
        }
        // A market order holds at the collar bound of its side.
        let market = OrderCheck { price: None, ..BUY };
        assert_eq!(t.check(0, &market, None).unwrap().price, 1_050);
        let sell = OrderCheck {
            side: Side::Sell,
            ..market
        };
        assert_eq!(t.check(0, &sell, None).unwrap().price, 950);
    }

    #[test]
    fn market_orders_need_a_reference_under_credit_limits() {
        let mut t = limited(Limits {
            credit_limit: Some(1_000_000),
            ..Limits::NONE
        });
        let market = OrderCheck { price: None, ..BUY };
        assert_eq!(
            t.check(0, &market, None),
            Err(ThrottleReject::NoReferencePrice)
        );
        t.set_reference(0, 100);
        assert_eq!(t.check(0, &market, None).unwrap().notional, 1_000);
    }

    #[test]
    fn open_orders_limit_counts_commits_and_releases() {
        let mut t = limited(Limits {
            max_open_orders: Some(2),
            ..Limits::NONE
        });
        for _ in 0..2 {
            let hold = t.check(0, &BUY, None).unwrap();
            t.commit(1, hold, true, &mut |_| {});
        }
        assert_eq!(t.check(0, &BUY, None), Err(ThrottleReject::MaxOpenOrders));
        // A replace does not open another order.
        let old = Hold {
            price: 100,
            notional: 1_000,
        };
        assert!(t.check(0, &BUY, Some(old)).is_ok());
        t.release(1, 1_000, true);
        assert_eq!(t.open_orders(1), 1);
        assert!(t.check(0, &BUY, None).is_ok());
    }

    #[test]
    fn credit_hold_and_release() {
        let mut t = limited(Limits {
            credit_limit: Some(2_500),
            ..Limits::NONE
        });
        let hold = t.check(0, &BUY, None).unwrap();
        t.commit(1, hold, true, &mut |_| {});
        let hold = t.check(0, &BUY, None).unwrap();
        t.commit(1, hold, true, &mut |_| {});
        assert_eq!(t.held(1), 2_000);
        assert_eq!(t.check(0, &BUY, None), Err(ThrottleReject::CreditLimit));
        assert!(t.check(0, &OrderCheck { qty: 5, ..BUY }, None).is_ok());
        // A replace counts the old hold as released.
        let old = Hold {
            price: 100,
            notional: 1_000,
        };
        assert!(
            t.check(0, &OrderCheck { qty: 15, ..BUY }, Some(old))
                .is_ok()
        );
        assert_eq!(
            t.check(0, &OrderCheck { qty: 16, ..BUY }, Some(old)),
            Err(ThrottleReject::CreditLimit)
        );
        t.release(1, 400, false); // a partial fill of 4 at 100
        assert_eq!(t.held(1), 1_600);
        assert_eq!(t.open_orders(1), 2);
        t.release(1, 600, true);
        t.release(1, 1_000, true);
        assert_eq!((t.held(1), t.open_orders(1)), (0, 0));
    }

    #[test]
    fn token_bucket_on_sequenced_time() {
        let mut t = limited(Limits {
            orders_per_sec: Some(2),
            ..Limits::NONE
        });
        let at = |t: &mut Throttle, now| t.check(now, &BUY, None).map(|_| ());
        assert_eq!(at(&mut t, 0), Ok(()));
        assert_eq!(at(&mut t, 0), Ok(()));
        assert_eq!(at(&mut t, 0), Err(ThrottleReject::RateLimit));
        assert_eq!(at(&mut t, 499_999_999), Err(ThrottleReject::RateLimit));
        assert_eq!(at(&mut t, 500_000_000), Ok(())); // half a second: one token
        assert_eq!(at(&mut t, 500_000_000), Err(ThrottleReject::RateLimit));
        // Time going backwards refills nothing; ten idle seconds refill one second's worth.
        assert_eq!(at(&mut t, 1), Err(ThrottleReject::RateLimit));
        for _ in 0..2 {
            assert_eq!(at(&mut t, 10_500_000_000), Ok(()));
        }
        assert_eq!(at(&mut t, 10_500_000_000), Err(ThrottleReject::RateLimit));
    }

    #[test]
    fn kill_switch_per_account_and_global() {
        let mut t = Throttle::new(4, 1);
        t.set_killed(Some(1), true);
        assert_eq!(t.check(0, &BUY, None), Err(ThrottleReject::KillSwitch));
        assert!(t.check(0, &OrderCheck { account: 2, ..BUY }, None).is_ok());
        t.set_killed(None, true);
        assert_eq!(
            t.check(0, &OrderCheck { account: 2, ..BUY }, None),
            Err(ThrottleReject::KillSwitch)
        );
        t.set_killed(None, false);
        t.set_killed(Some(1), false);
        assert!(t.check(0, &BUY, None).is_ok());
    }

    #[test]
    fn pre_alerts_are_edge_triggered() {
        let mut t = limited(Limits {
            credit_limit: Some(10_000),
            max_open_orders: Some(10),
            alert_pct: Some(80),
            ..Limits::NONE
        });
        let mut alerts = Vec::new();
        let mut place = |t: &mut Throttle, qty| {
            let hold = t.check(0, &OrderCheck { qty, ..BUY }, None).unwrap();
            t.commit(1, hold, true, &mut |a| alerts.push(a));
        };
        place(&mut t, 70); // 7,000: below 80 %
        place(&mut t, 10); // 8,000: crosses
        place(&mut t, 5); // 8,500: already alerted
        t.release(1, 2_000, true); // 6,500: re-armed
        place(&mut t, 20); // 8,500: crosses again
        let credit: Vec<_> = alerts
            .iter()
            .filter(|a| a.kind == LimitKind::CreditLimit)
            .collect();
        assert_eq!(credit.len(), 2, "{alerts:?}");
        assert_eq!((credit[0].used, credit[0].limit), (8_000, 10_000));
        assert_eq!(credit[1].used, 8_500);
        assert!(alerts.iter().all(|a| a.kind == LimitKind::CreditLimit));
    }

    #[test]
    fn admin_limit_changes_apply_at_once() {
        let mut t = Throttle::new(4, 1);
        assert!(t.check(0, &BUY, None).is_ok());
        t.set_limits(
            None,
            Limits {
                max_qty: Some(5),
                ..Limits::NONE
            },
        );
        assert_eq!(t.check(0, &BUY, None), Err(ThrottleReject::MaxQty));
        t.set_limits(Some(1), Limits::NONE);
        assert!(t.check(0, &BUY, None).is_ok());
        assert_eq!(
            t.check(0, &OrderCheck { account: 2, ..BUY }, None),
            Err(ThrottleReject::MaxQty)
        );
        // A new default clears the accounts' own limits.
        t.set_limits(
            None,
            Limits {
                max_qty: Some(5),
                ..Limits::NONE
            },
        );
        assert_eq!(t.check(0, &BUY, None), Err(ThrottleReject::MaxQty));
    }
}
