//! Inputs, outputs and reasons: the venue's whole vocabulary. Every outcome is a `Copy` value.

pub use sequent_throttle::{Alert, LimitKind, Limits, Nanos, Side, ThrottleReject};

/// A client's order id, unique for the whole run. `u64::MAX` is reserved (the id table's empty key).
pub type OrderId = u64;
/// Dense account index, `< VenueConfig::accounts_max`.
pub type AccountId = u32;
/// Dense symbol index, `< VenueConfig::symbols_max`.
pub type SymbolId = u16;

/// Largest accepted limit price in ticks (prices are `1..=PRICE_MAX`).
pub const PRICE_MAX: i64 = 1 << 53;
/// Largest accepted order quantity.
pub const QTY_MAX: u64 = 1 << 53;

/// Time in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Tif {
    /// Good till cancelled.
    #[default]
    Gtc,
    /// Immediate or cancel: what does not fill at once is cancelled.
    Ioc,
    /// Fill or kill: fills completely at once or not at all.
    Fok,
    /// Rests until the next end-of-day input, which expires it.
    Day,
}

/// Self-trade prevention, decided by the incoming (taker) order's mode when it meets a resting
/// order of the same account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Stp {
    /// Off: orders of one account may trade with each other.
    #[default]
    Off,
    /// Cancel the incoming order's remainder; the resting order stays.
    CancelNewest,
    /// Cancel the resting order and keep matching.
    CancelOldest,
    /// Cancel both.
    CancelBoth,
}

/// A new order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewOrder {
    /// Order id, unique for the run.
    pub id: OrderId,
    /// Owner.
    pub account: AccountId,
    /// Book.
    pub symbol: SymbolId,
    /// Side.
    pub side: Side,
    /// Limit price in ticks; `None` is a market order.
    pub price: Option<i64>,
    /// Quantity.
    pub qty: u64,
    /// Time in force.
    pub tif: Tif,
    /// Rejected if it would trade on arrival (limit GTC/DAY only).
    pub post_only: bool,
    /// Self-trade prevention.
    pub stp: Stp,
}

/// One sequenced input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// A new order.
    New(NewOrder),
    /// Cancel a resting order.
    Cancel {
        /// The order.
        id: OrderId,
    },
    /// Replace a resting order: `qty` is the new open quantity, `price` the new price (`None`:
    /// unchanged). Same price and no larger quantity keeps time priority; anything else re-enters
    /// the order as a new aggressive limit order with the same id.
    Replace {
        /// The order.
        id: OrderId,
        /// New open quantity.
        qty: u64,
        /// New price, or unchanged.
        price: Option<i64>,
    },
    /// Cancel every resting order of an account, of a symbol, of both, or (both `None`) all.
    MassCancel {
        /// Only this account's orders.
        account: Option<AccountId>,
        /// Only this symbol's orders.
        symbol: Option<SymbolId>,
    },
    /// End of the trading day: every resting DAY order expires.
    EndOfDay,
    /// Sets one account's limits, or the default limits (`None`).
    SetLimits {
        /// The account, or `None` for the default.
        account: Option<AccountId>,
        /// The new limits.
        limits: Limits,
    },
    /// Kill switch on: cancels the resting orders of the account (or all) and refuses new ones.
    Kill {
        /// The account, or `None` for the global switch.
        account: Option<AccountId>,
    },
    /// Kill switch off.
    Resume {
        /// The account, or `None` for the global switch.
        account: Option<AccountId>,
    },
    /// Sets a symbol's reference price for the collar (trades update it too).
    SetReference {
        /// The symbol.
        symbol: SymbolId,
        /// Price in ticks.
        price: i64,
    },
}

/// Why an order left the book (or never rested) without filling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancelReason {
    /// A cancel input.
    User,
    /// An IOC's unfilled remainder.
    Ioc,
    /// A FOK that could not fill completely (no trade happened).
    Fok,
    /// A market order's unfilled remainder.
    Market,
    /// Self-trade prevention.
    SelfTrade,
    /// A kill switch.
    KillSwitch,
    /// A DAY order at end of day.
    Expired,
    /// A mass cancel.
    MassCancel,
}

impl CancelReason {
    /// The reason string of `cancelled` events.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Ioc => "ioc",
            Self::Fok => "fok",
            Self::Market => "market",
            Self::SelfTrade => "self_trade",
            Self::KillSwitch => "kill_switch",
            Self::Expired => "expired",
            Self::MassCancel => "mass_cancel",
        }
    }
}

/// Why an input was refused. The order (or the order a cancel or replace names) is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reject {
    /// The id was already accepted in this run.
    DuplicateId,
    /// No resting order has this id.
    UnknownOrder,
    /// Quantity or price out of range, an unknown account or symbol, or flags that do not go
    /// together (post-only market or IOC/FOK orders).
    Invalid,
    /// A post-only order would have traded.
    PostOnlyWouldCross,
    /// The order would rest and every order slot is taken.
    OrderPoolFull,
    /// The order would open a price level and the level pool or the book side is full.
    PriceLevelsFull,
    /// The run has used every id the id table can remember.
    IdTableFull,
    /// The pre-trade throttle refused it.
    Throttle(ThrottleReject),
}

impl Reject {
    /// The reason string of `rejected` events.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::DuplicateId => "duplicate_id",
            Self::UnknownOrder => "unknown_order",
            Self::Invalid => "invalid",
            Self::PostOnlyWouldCross => "post_only_would_cross",
            Self::OrderPoolFull => "order_pool_full",
            Self::PriceLevelsFull => "price_levels_full",
            Self::IdTableFull => "id_table_full",
            Self::Throttle(reason) => reason.as_str(),
        }
    }
}

/// One output, in the order it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A new order passed every check; trades and cancels for it may follow.
    Accepted {
        /// The order.
        id: OrderId,
    },
    /// A replace passed every check; the order now has this price and open quantity (before any
    /// trade the re-entry makes).
    Replaced {
        /// The order.
        id: OrderId,
        /// Its price.
        price: i64,
        /// Its open quantity.
        qty: u64,
    },
    /// A trade at the resting (maker) order's price.
    Trade {
        /// The book.
        symbol: SymbolId,
        /// The incoming order.
        taker: OrderId,
        /// The resting order.
        maker: OrderId,
        /// The incoming order's account.
        taker_account: AccountId,
        /// The resting order's account.
        maker_account: AccountId,
        /// The incoming order's side (the resting order's is the other): who bought.
        taker_side: Side,
        /// Price in ticks.
        price: i64,
        /// Quantity.
        qty: u64,
    },
    /// An order (or its remainder) left without trading.
    Cancelled {
        /// The order.
        id: OrderId,
        /// Quantity cancelled.
        qty: u64,
        /// Why.
        reason: CancelReason,
    },
    /// An input was refused.
    Rejected {
        /// The order the input named.
        id: OrderId,
        /// Why.
        reason: Reject,
    },
    /// A throttle pre-alert.
    Alert(Alert),
}

/// A resting order as the book shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resting {
    /// Id.
    pub id: OrderId,
    /// Owner.
    pub account: AccountId,
    /// Price in ticks.
    pub price: i64,
    /// Open quantity.
    pub qty: u64,
    /// GTC or DAY.
    pub tif: Tif,
}
