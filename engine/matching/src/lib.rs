//! sequent-matching: one order book per symbol, price-time matching, and the [`Venue`] that puts
//! the pre-trade throttle (`sequent-throttle`) in front of the books in the same single-threaded
//! step.
//!
//! This crate owns the books: resting orders in price-time priority, matching at the resting
//! order's price, time in force (GTC, IOC, FOK, DAY), post-only, replace, cancel, mass cancel,
//! self-trade prevention, and the canonical [`Venue::state_digest`]. It must not touch a clock,
//! randomness, threads or I/O, and it never iterates a hash table: time arrives with each
//! command, outputs go into a `Vec` the caller owns and reuses, and every table is sized by
//! [`VenueConfig`] at construction, so a full table is a rejection, never an allocation.
//!
//! Why the throttle glue lives here: the throttle must see every order before matching and every
//! fill, cancel and expiry after it, inside the same step, so that held credit always equals the
//! notional of the open orders. The venue is the one place that knows both; `sequent-throttle`
//! stays independent of the book.
//!
//! ```
//! use sequent_matching::{Command, Event, NewOrder, Side, Stp, Tif, Venue, VenueConfig};
//!
//! let mut venue = Venue::new(VenueConfig::SMALL);
//! let mut out = Vec::new();
//! let order = |id, side, price, qty| Command::New(NewOrder {
//!     id, account: id as u32, symbol: 0, side, price: Some(price), qty,
//!     tif: Tif::Gtc, post_only: false, stp: Stp::Off,
//! });
//! venue.apply(1, &order(1, Side::Sell, 10_050, 100), &mut out);
//! venue.apply(2, &order(2, Side::Buy, 10_060, 40), &mut out);
//! assert_eq!(out[2], Event::Trade {
//!     symbol: 0, taker: 2, maker: 1, taker_account: 2, maker_account: 1, taker_side: Side::Buy,
//!     price: 10_050, qty: 40,
//! });
//! assert_eq!(venue.resting(0, Side::Sell).next().unwrap().qty, 60);
//! ```

#![forbid(unsafe_code)]

mod ids;
mod types;
mod venue;

pub use crate::types::{
    AccountId, Alert, CancelReason, Command, Event, LimitKind, Limits, Nanos, NewOrder, OrderId,
    PRICE_MAX, QTY_MAX, Reject, Resting, Side, Stp, SymbolId, ThrottleReject, Tif,
};
pub use crate::venue::{Venue, VenueConfig};
/// The snapshot codec shared with the throttle (and the node's core): reader, error, helpers.
pub use sequent_throttle::snapshot;
pub use sequent_throttle::snapshot::{Problem, SnapshotError, SnapshotReader};
