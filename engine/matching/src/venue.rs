//! The venue: the throttle in front of one order book per symbol, applied one command at a time.
//!
//! Memory, all allocated in [`Venue::new`]:
//! - an order pool of `orders_max` 48-byte slots, free slots chained through `next`;
//! - a level pool of `levels_max` price levels (FIFO of order slots, total open quantity);
//! - per book side a *ladder*: a sorted array of `(key, level)` with the best price at the end,
//!   so the touch is the last element, a trade that empties it pops it, and a new level near the
//!   touch is inserted after a short move of the elements behind it (no tree walk);
//! - the [`IdTable`] (id → slot), for O(1) cancel and replace by id and duplicate detection.
//!
//! Price-time priority: levels by price, orders within a level in arrival order; every trade
//! prints at the resting order's price.

mod snapshot;

use sequent_throttle::{Hold, OrderCheck, Throttle, notional};

use crate::ids::{DONE, EMPTY, IdTable};
use crate::types::{
    AccountId, CancelReason, Command, Event, Limits, Nanos, NewOrder, OrderId, PRICE_MAX, QTY_MAX,
    Reject, Resting, Side, Stp, SymbolId, Tif,
};

/// End of a chain of order slots or levels.
const NIL: u32 = u32::MAX;

const FLAG_DAY: u8 = 1;
const FLAG_POST_ONLY: u8 = 2;
const STP_SHIFT: u8 = 2;

/// The capacity of a venue, fixed at construction. Running out is a rejection, never an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VenueConfig {
    /// Resting orders, all books together.
    pub orders_max: u32,
    /// Price levels, all books and sides together.
    pub levels_max: u32,
    /// Price levels on one side of one book.
    pub levels_per_side_max: u32,
    /// Books; symbols are `0..symbols_max`.
    pub symbols_max: SymbolId,
    /// Accounts are `0..accounts_max`.
    pub accounts_max: AccountId,
    /// Ids accepted over the whole run.
    pub ids_max: u32,
}

impl VenueConfig {
    /// A small venue for tests and examples: 4 symbols, 64 accounts, 64k orders and ids.
    pub const SMALL: Self = Self {
        orders_max: 1 << 16,
        levels_max: 1 << 14,
        levels_per_side_max: 1 << 12,
        symbols_max: 4,
        accounts_max: 64,
        ids_max: 1 << 16,
    };
}

/// One order slot. 48 bytes: the figure `sequent-bench matching` reports per resting order.
#[derive(Debug, Clone, Copy)]
struct Order {
    id: OrderId,
    price: i64,
    /// Open quantity; > 0 while resting.
    open: u64,
    account: AccountId,
    /// Neighbours in the level's FIFO; `next` also chains free slots.
    prev: u32,
    next: u32,
    level: u32,
    symbol: SymbolId,
    side: Side,
    flags: u8,
}

const _: () = assert!(size_of::<Order>() <= 48);

impl Order {
    const FREE: Self = Self {
        id: EMPTY,
        price: 0,
        open: 0,
        account: 0,
        prev: NIL,
        next: NIL,
        level: NIL,
        symbol: 0,
        side: Side::Buy,
        flags: 0,
    };

    fn tif(&self) -> Tif {
        if self.flags & FLAG_DAY == 0 {
            Tif::Gtc
        } else {
            Tif::Day
        }
    }

    fn stp(&self) -> Stp {
        match self.flags >> STP_SHIFT {
            0 => Stp::Off,
            1 => Stp::CancelNewest,
            2 => Stp::CancelOldest,
            _ => Stp::CancelBoth,
        }
    }
}

fn flags(tif: Tif, post_only: bool, stp: Stp) -> u8 {
    let stp = match stp {
        Stp::Off => 0,
        Stp::CancelNewest => 1,
        Stp::CancelOldest => 2,
        Stp::CancelBoth => 3,
    };
    u8::from(tif == Tif::Day) | (u8::from(post_only) << 1) | (stp << STP_SHIFT)
}

/// A price level: a FIFO of order slots. Free levels chain through `head`.
#[derive(Debug, Clone, Copy)]
struct Level {
    price: i64,
    /// Σ open quantity of its orders.
    qty: u64,
    head: u32,
    tail: u32,
    count: u32,
}

const LEVEL_FREE: Level = Level {
    price: 0,
    qty: 0,
    head: NIL,
    tail: NIL,
    count: 0,
};

/// A level in a ladder; `key` ascends towards the best price (bids: price; asks: −price).
#[derive(Debug, Clone, Copy)]
struct LevelRef {
    key: i64,
    level: u32,
}

fn key(side: Side, price: i64) -> i64 {
    match side {
        Side::Buy => price,
        Side::Sell => -price,
    }
}

/// One side of a book, best price last. Capacity `levels_per_side_max`, never exceeded.
#[derive(Debug, Clone)]
struct Ladder {
    entries: Vec<LevelRef>,
}

impl Ladder {
    fn find(&self, key: i64) -> Result<usize, usize> {
        // Near the touch (the end) first: the common case costs a comparison or two.
        let n = self.entries.len();
        if n == 0 || key > self.entries[n - 1].key {
            return Err(n);
        }
        if key == self.entries[n - 1].key {
            return Ok(n - 1);
        }
        self.entries.binary_search_by(|e| e.key.cmp(&key))
    }
}

#[derive(Debug, Clone)]
struct Book {
    bids: Ladder,
    asks: Ladder,
}

impl Book {
    fn side(&self, side: Side) -> &Ladder {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    fn side_mut(&mut self, side: Side) -> &mut Ladder {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }
}

fn opposite(side: Side) -> Side {
    match side {
        Side::Buy => Side::Sell,
        Side::Sell => Side::Buy,
    }
}

/// An incoming order while it matches.
#[derive(Debug, Clone, Copy)]
struct Taker {
    id: OrderId,
    account: AccountId,
    symbol: SymbolId,
    side: Side,
    limit: Option<i64>,
    remaining: u64,
    tif: Tif,
    flags: u8,
    stp: Stp,
    /// The price its credit hold was computed at; fills release at this price.
    hold_price: i64,
}

/// The throttle and the books, driven by [`Venue::apply`].
#[derive(Debug, Clone)]
pub struct Venue {
    config: VenueConfig,
    orders: Vec<Order>,
    free_order: u32,
    resting: u32,
    levels: Vec<Level>,
    free_level: u32,
    books: Vec<Book>,
    ids: IdTable,
    throttle: Throttle,
}

impl Venue {
    /// A venue with every table allocated; nothing allocates after this.
    pub fn new(config: VenueConfig) -> Self {
        assert!(config.orders_max > 0 && config.orders_max < NIL);
        assert!(config.levels_max > 0 && config.levels_max < NIL);
        assert!(config.levels_per_side_max > 0);
        assert!(config.symbols_max > 0 && config.accounts_max > 0);
        let mut orders = vec![Order::FREE; config.orders_max as usize];
        for (i, order) in orders.iter_mut().enumerate() {
            order.next = if i + 1 < config.orders_max as usize {
                i as u32 + 1
            } else {
                NIL
            };
        }
        let mut levels = vec![LEVEL_FREE; config.levels_max as usize];
        for (i, level) in levels.iter_mut().enumerate() {
            level.head = if i + 1 < config.levels_max as usize {
                i as u32 + 1
            } else {
                NIL
            };
        }
        let ladder = || Ladder {
            entries: Vec::with_capacity(config.levels_per_side_max as usize),
        };
        Self {
            config,
            orders,
            free_order: 0,
            resting: 0,
            levels,
            free_level: 0,
            books: (0..config.symbols_max)
                .map(|_| Book {
                    bids: ladder(),
                    asks: ladder(),
                })
                .collect(),
            ids: IdTable::new(config.ids_max as usize),
            throttle: Throttle::new(config.accounts_max, config.symbols_max),
        }
    }

    /// The capacity it was built with.
    pub fn config(&self) -> VenueConfig {
        self.config
    }

    /// The throttle, for reading usage and limits.
    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }

    /// Orders resting in all books.
    pub fn resting_orders(&self) -> u32 {
        self.resting
    }

    /// Bytes of one order slot.
    pub const ORDER_SLOT_BYTES: usize = size_of::<Order>();
    /// Bytes of one price level plus its ladder entry.
    pub const LEVEL_BYTES: usize = size_of::<Level>() + size_of::<LevelRef>();
    /// Bytes of the id table per id it can remember (the table is at most half full).
    pub const ID_ENTRY_BYTES: usize = IdTable::BYTES_PER_ENTRY;

    /// Entries of the id table.
    pub fn id_table_entries(&self) -> usize {
        self.ids.entries()
    }

    /// Applies one sequenced command at sequenced time `now`, appending its events to `out`.
    pub fn apply(&mut self, now: Nanos, command: &Command, out: &mut Vec<Event>) {
        match *command {
            Command::New(order) => self.handle_new(now, &order, out),
            Command::Cancel { id } => self.handle_cancel(id, out),
            Command::Replace { id, qty, price } => self.handle_replace(now, id, qty, price, out),
            Command::MassCancel { account, symbol } => {
                self.cancel_where(
                    symbol,
                    |o| account.is_none_or(|a| o.account == a),
                    CancelReason::MassCancel,
                    out,
                );
            }
            Command::EndOfDay => {
                self.cancel_where(
                    None,
                    |o| o.flags & FLAG_DAY != 0,
                    CancelReason::Expired,
                    out,
                );
            }
            Command::SetLimits { account, limits } => self.handle_limits(account, limits),
            Command::Kill { account } => {
                if account.is_some_and(|a| a >= self.config.accounts_max) {
                    return;
                }
                self.throttle.set_killed(account, true);
                self.cancel_where(
                    None,
                    |o| account.is_none_or(|a| o.account == a),
                    CancelReason::KillSwitch,
                    out,
                );
            }
            Command::Resume { account } => {
                if account.is_none_or(|a| a < self.config.accounts_max) {
                    self.throttle.set_killed(account, false);
                }
            }
            Command::SetReference { symbol, price } => {
                if symbol < self.config.symbols_max && (1..=PRICE_MAX).contains(&price) {
                    self.throttle.set_reference(symbol, price);
                }
            }
        }
    }

    fn handle_limits(&mut self, account: Option<AccountId>, limits: Limits) {
        if account.is_none_or(|a| a < self.config.accounts_max) {
            self.throttle.set_limits(account, limits);
        }
    }

    fn handle_new(&mut self, now: Nanos, o: &NewOrder, out: &mut Vec<Event>) {
        let reject = |out: &mut Vec<Event>, reason| {
            out.push(Event::Rejected { id: o.id, reason });
        };
        let valid = o.symbol < self.config.symbols_max
            && o.account < self.config.accounts_max
            && o.id != EMPTY
            && (1..=QTY_MAX).contains(&o.qty)
            && o.price.is_none_or(|p| (1..=PRICE_MAX).contains(&p))
            && !(o.post_only && (o.price.is_none() || matches!(o.tif, Tif::Ioc | Tif::Fok)));
        if !valid {
            return reject(out, Reject::Invalid);
        }
        if self.ids.get(o.id).is_some() {
            return reject(out, Reject::DuplicateId);
        }
        if self.ids.is_full() {
            return reject(out, Reject::IdTableFull);
        }
        let check = OrderCheck {
            account: o.account,
            symbol: o.symbol,
            side: o.side,
            qty: o.qty,
            price: o.price,
        };
        let hold = match self.throttle.check(now, &check, None) {
            Ok(hold) => hold,
            Err(reason) => return reject(out, Reject::Throttle(reason)),
        };
        if let Some(price) = o.price {
            if o.post_only && self.would_cross(o.symbol, o.side, price) {
                return reject(out, Reject::PostOnlyWouldCross);
            }
            if matches!(o.tif, Tif::Gtc | Tif::Day) {
                if self.free_order == NIL {
                    return reject(out, Reject::OrderPoolFull);
                }
                if !self.level_fits(o.symbol, o.side, price, None) {
                    return reject(out, Reject::PriceLevelsFull);
                }
            }
        }
        self.ids.insert(o.id, DONE);
        out.push(Event::Accepted { id: o.id });
        self.throttle
            .commit(o.account, hold, true, &mut |a| out.push(Event::Alert(a)));
        let taker = Taker {
            id: o.id,
            account: o.account,
            symbol: o.symbol,
            side: o.side,
            limit: o.price,
            remaining: o.qty,
            tif: o.tif,
            flags: flags(o.tif, o.post_only, o.stp),
            stp: o.stp,
            hold_price: hold.price,
        };
        self.execute(taker, out);
    }

    fn handle_cancel(&mut self, id: OrderId, out: &mut Vec<Event>) {
        match self.ids.get(id) {
            Some(slot) if slot != DONE => self.cancel_resting(slot, CancelReason::User, out),
            _ => out.push(Event::Rejected {
                id,
                reason: Reject::UnknownOrder,
            }),
        }
    }

    fn handle_replace(
        &mut self,
        now: Nanos,
        id: OrderId,
        qty: u64,
        price: Option<i64>,
        out: &mut Vec<Event>,
    ) {
        let reject = |out: &mut Vec<Event>, reason| out.push(Event::Rejected { id, reason });
        let slot = match self.ids.get(id) {
            Some(slot) if slot != DONE => slot,
            _ => return reject(out, Reject::UnknownOrder),
        };
        let order = self.orders[slot as usize];
        let new_price = price.unwrap_or(order.price);
        if !(1..=QTY_MAX).contains(&qty) || !(1..=PRICE_MAX).contains(&new_price) {
            return reject(out, Reject::Invalid);
        }
        if new_price == order.price && qty <= order.open {
            // Risk-reducing: keeps time priority and skips the throttle, like a cancel.
            let reduced = order.open - qty;
            self.orders[slot as usize].open = qty;
            self.levels[order.level as usize].qty -= reduced;
            self.throttle
                .release(order.account, notional(order.price, reduced), false);
            out.push(Event::Replaced {
                id,
                price: new_price,
                qty,
            });
            return;
        }
        let old_hold = Hold {
            price: order.price,
            notional: notional(order.price, order.open),
        };
        let check = OrderCheck {
            account: order.account,
            symbol: order.symbol,
            side: order.side,
            qty,
            price: Some(new_price),
        };
        let hold = match self.throttle.check(now, &check, Some(old_hold)) {
            Ok(hold) => hold,
            Err(reason) => return reject(out, Reject::Throttle(reason)),
        };
        if order.flags & FLAG_POST_ONLY != 0
            && self.would_cross(order.symbol, order.side, new_price)
        {
            return reject(out, Reject::PostOnlyWouldCross);
        }
        if !self.level_fits(order.symbol, order.side, new_price, Some(order.level)) {
            return reject(out, Reject::PriceLevelsFull);
        }
        // Loses priority: leaves the book (its hold released, still one open order) and re-enters.
        self.remove_resting(slot, false);
        out.push(Event::Replaced {
            id,
            price: new_price,
            qty,
        });
        self.throttle.commit(order.account, hold, false, &mut |a| {
            out.push(Event::Alert(a))
        });
        let taker = Taker {
            id,
            account: order.account,
            symbol: order.symbol,
            side: order.side,
            limit: Some(new_price),
            remaining: qty,
            tif: order.tif(),
            flags: order.flags,
            stp: order.stp(),
            hold_price: new_price,
        };
        self.execute(taker, out);
    }

    /// Matches an accepted order, then rests or cancels its remainder.
    fn execute(&mut self, mut taker: Taker, out: &mut Vec<Event>) {
        if taker.tif == Tif::Fok && !self.fok_fillable(&taker) {
            return self.close_taker(&taker, CancelReason::Fok, out);
        }
        let stopped = self.match_taker(&mut taker, out);
        if taker.remaining == 0 {
            self.throttle.release(taker.account, 0, true);
        } else if stopped {
            self.close_taker(&taker, CancelReason::SelfTrade, out);
        } else if taker.limit.is_none() {
            let reason = if taker.tif == Tif::Fok {
                CancelReason::Fok
            } else {
                CancelReason::Market
            };
            self.close_taker(&taker, reason, out);
        } else if matches!(taker.tif, Tif::Ioc | Tif::Fok) {
            self.close_taker(&taker, CancelReason::Ioc, out);
        } else {
            self.rest(&taker);
        }
    }

    fn close_taker(&mut self, taker: &Taker, reason: CancelReason, out: &mut Vec<Event>) {
        out.push(Event::Cancelled {
            id: taker.id,
            qty: taker.remaining,
            reason,
        });
        self.throttle.release(
            taker.account,
            notional(taker.hold_price, taker.remaining),
            true,
        );
    }

    fn would_cross(&self, symbol: SymbolId, side: Side, price: i64) -> bool {
        self.books[usize::from(symbol)]
            .side(opposite(side))
            .entries
            .last()
            .is_some_and(|best| crosses(side, price, self.levels[best.level as usize].price))
    }

    /// Whether an order resting at `price` finds a level: an existing one, a free one, or the one
    /// `freed` (the level of the order a replace takes out, if it is alone there).
    fn level_fits(&self, symbol: SymbolId, side: Side, price: i64, freed: Option<u32>) -> bool {
        let ladder = self.books[usize::from(symbol)].side(side);
        ladder.find(key(side, price)).is_ok()
            || (self.free_level != NIL
                && ladder.entries.len() < self.config.levels_per_side_max as usize)
            || freed.is_some_and(|level| self.levels[level as usize].count == 1)
    }

    /// A FOK fills completely iff the crossing liquidity it can reach covers it. Resting orders of
    /// its own account are skipped under cancel-oldest (they would be cancelled) and end the walk
    /// under cancel-newest or cancel-both (matching would stop there).
    fn fok_fillable(&self, taker: &Taker) -> bool {
        let ladder = self.books[usize::from(taker.symbol)].side(opposite(taker.side));
        let mut need = taker.remaining;
        for entry in ladder.entries.iter().rev() {
            let level = &self.levels[entry.level as usize];
            if taker
                .limit
                .is_some_and(|limit| !crosses(taker.side, limit, level.price))
            {
                break;
            }
            if taker.stp == Stp::Off {
                need -= need.min(level.qty);
            } else {
                let mut o = level.head;
                while o != NIL && need > 0 {
                    let maker = &self.orders[o as usize];
                    if maker.account == taker.account {
                        if taker.stp != Stp::CancelOldest {
                            return false;
                        }
                    } else {
                        need -= need.min(maker.open);
                    }
                    o = maker.next;
                }
            }
            if need == 0 {
                return true;
            }
        }
        need == 0
    }

    /// Trades `taker` against the opposite side while it crosses. Returns true when self-trade
    /// prevention stopped it (its remainder is then cancelled).
    fn match_taker(&mut self, taker: &mut Taker, out: &mut Vec<Event>) -> bool {
        let book = usize::from(taker.symbol);
        let maker_side = opposite(taker.side);
        while taker.remaining > 0 {
            let Some(best) = self.books[book].side(maker_side).entries.last().copied() else {
                return false;
            };
            let price = self.levels[best.level as usize].price;
            if taker
                .limit
                .is_some_and(|limit| !crosses(taker.side, limit, price))
            {
                return false;
            }
            let mut o = self.levels[best.level as usize].head;
            while o != NIL && taker.remaining > 0 {
                let maker = self.orders[o as usize];
                let next = maker.next;
                if taker.stp != Stp::Off && maker.account == taker.account {
                    if taker.stp == Stp::CancelNewest {
                        return true;
                    }
                    self.cancel_resting(o, CancelReason::SelfTrade, out);
                    if taker.stp == Stp::CancelBoth {
                        return true;
                    }
                    o = next;
                    continue;
                }
                let qty = taker.remaining.min(maker.open);
                out.push(Event::Trade {
                    symbol: taker.symbol,
                    taker: taker.id,
                    maker: maker.id,
                    taker_account: taker.account,
                    maker_account: maker.account,
                    taker_side: taker.side,
                    price,
                    qty,
                });
                taker.remaining -= qty;
                self.throttle
                    .release(taker.account, notional(taker.hold_price, qty), false);
                if qty == maker.open {
                    self.remove_resting(o, true);
                } else {
                    self.orders[o as usize].open -= qty;
                    self.levels[best.level as usize].qty -= qty;
                    self.throttle
                        .release(maker.account, notional(price, qty), false);
                }
                o = next;
            }
            self.throttle.set_reference(taker.symbol, price);
        }
        false
    }

    /// Puts the remainder of `taker` at the back of its price level.
    fn rest(&mut self, taker: &Taker) {
        let price = taker.limit.expect("only limit orders rest");
        let slot = self.free_order;
        assert!(slot != NIL, "checked before acceptance");
        self.free_order = self.orders[slot as usize].next;
        let ladder_key = key(taker.side, price);
        let level = match self.books[usize::from(taker.symbol)]
            .side(taker.side)
            .find(ladder_key)
        {
            Ok(i) => {
                self.books[usize::from(taker.symbol)]
                    .side(taker.side)
                    .entries[i]
                    .level
            }
            Err(i) => {
                let level = self.free_level;
                assert!(level != NIL, "checked before acceptance");
                self.free_level = self.levels[level as usize].head;
                self.levels[level as usize] = Level {
                    price,
                    ..LEVEL_FREE
                };
                let ladder = self.books[usize::from(taker.symbol)].side_mut(taker.side);
                assert!(ladder.entries.len() < ladder.entries.capacity());
                ladder.entries.insert(
                    i,
                    LevelRef {
                        key: ladder_key,
                        level,
                    },
                );
                level
            }
        };
        let lv = &mut self.levels[level as usize];
        let prev = lv.tail;
        self.orders[slot as usize] = Order {
            id: taker.id,
            price,
            open: taker.remaining,
            account: taker.account,
            prev,
            next: NIL,
            level,
            symbol: taker.symbol,
            side: taker.side,
            flags: taker.flags,
        };
        if prev == NIL {
            lv.head = slot;
        } else {
            self.orders[prev as usize].next = slot;
        }
        lv.tail = slot;
        lv.qty += taker.remaining;
        lv.count += 1;
        self.resting += 1;
        self.ids.set(taker.id, slot);
    }

    fn cancel_resting(&mut self, slot: u32, reason: CancelReason, out: &mut Vec<Event>) {
        let order = &self.orders[slot as usize];
        out.push(Event::Cancelled {
            id: order.id,
            qty: order.open,
            reason,
        });
        self.remove_resting(slot, true);
    }

    /// Takes a resting order out of its level (and the level out of its ladder when it empties),
    /// frees the slot and releases its hold; `close` when it stops being an open order.
    fn remove_resting(&mut self, slot: u32, close: bool) {
        let order = self.orders[slot as usize];
        let lv = &mut self.levels[order.level as usize];
        if order.prev == NIL {
            lv.head = order.next;
        } else {
            self.orders[order.prev as usize].next = order.next;
        }
        if order.next == NIL {
            lv.tail = order.prev;
        } else {
            self.orders[order.next as usize].prev = order.prev;
        }
        lv.qty -= order.open;
        lv.count -= 1;
        if lv.count == 0 {
            let ladder = self.books[usize::from(order.symbol)].side_mut(order.side);
            let i = ladder
                .find(key(order.side, order.price))
                .expect("a resting order's level is in its ladder");
            ladder.entries.remove(i);
            self.levels[order.level as usize] = Level {
                head: self.free_level,
                ..LEVEL_FREE
            };
            self.free_level = order.level;
        }
        self.orders[slot as usize] = Order {
            next: self.free_order,
            ..Order::FREE
        };
        self.free_order = slot;
        self.resting -= 1;
        self.ids.set(order.id, DONE);
        self.throttle
            .release(order.account, notional(order.price, order.open), close);
    }

    /// Cancels every resting order of `symbol` (or all books) that `pred` selects, in canonical
    /// order: books ascending, bids then asks, best price first, time priority within a price.
    fn cancel_where(
        &mut self,
        symbol: Option<SymbolId>,
        pred: impl Fn(&Order) -> bool,
        reason: CancelReason,
        out: &mut Vec<Event>,
    ) {
        let books = match symbol {
            Some(s) if s < self.config.symbols_max => s..s + 1,
            Some(_) => return,
            None => 0..self.config.symbols_max,
        };
        for book in books {
            for side in [Side::Buy, Side::Sell] {
                let mut i = self.books[usize::from(book)].side(side).entries.len();
                while i > 0 {
                    i -= 1;
                    let level = self.books[usize::from(book)].side(side).entries[i].level;
                    let mut o = self.levels[level as usize].head;
                    while o != NIL {
                        let next = self.orders[o as usize].next;
                        if pred(&self.orders[o as usize]) {
                            self.cancel_resting(o, reason, out);
                        }
                        o = next;
                    }
                }
            }
        }
    }

    /// The resting orders of one side of a book: best price first, time priority within a price.
    pub fn resting(&self, symbol: SymbolId, side: Side) -> impl Iterator<Item = Resting> + '_ {
        let entries: &[LevelRef] = self
            .books
            .get(usize::from(symbol))
            .map_or(&[], |b| &b.side(side).entries);
        entries.iter().rev().flat_map(move |entry| {
            let mut o = self.levels[entry.level as usize].head;
            std::iter::from_fn(move || {
                (o != NIL).then(|| {
                    let order = &self.orders[o as usize];
                    o = order.next;
                    Resting {
                        id: order.id,
                        account: order.account,
                        price: order.price,
                        qty: order.open,
                        tif: order.tif(),
                    }
                })
            })
        })
    }

    /// The resting order with this id: its book, side and state; `None` when it is not resting
    /// (never accepted, filled, cancelled or expired). O(1), through the id table.
    pub fn resting_order(&self, id: OrderId) -> Option<(SymbolId, Side, Resting)> {
        let slot = self.ids.get(id)?;
        if slot == DONE {
            return None;
        }
        let order = self.orders.get(slot as usize)?;
        (order.id == id && order.open > 0).then(|| {
            (
                order.symbol,
                order.side,
                Resting {
                    id,
                    account: order.account,
                    price: order.price,
                    qty: order.open,
                    tif: order.tif(),
                },
            )
        })
    }

    /// Best bid and best ask of a book.
    pub fn best(&self, symbol: SymbolId) -> (Option<i64>, Option<i64>) {
        let book = &self.books[usize::from(symbol)];
        let price = |l: &Ladder| {
            l.entries
                .last()
                .map(|e| self.levels[e.level as usize].price)
        };
        (price(&book.bids), price(&book.asks))
    }

    /// FNV-1a (64-bit) over the canonical state: for each book in symbol order, bids then asks,
    /// best price first, each level's price and its orders in time priority (id, account, open
    /// quantity, flags); then the throttle's accounts in index order (held credit, open orders,
    /// kill switch), the global kill switch and the reference prices. Independent of slot
    /// numbers, the id table's layout and free lists, so two venues that hold the same orders in
    /// the same priority agree.
    pub fn state_digest(&self) -> u64 {
        let mut hash = Fnv1a::new();
        for (symbol, book) in self.books.iter().enumerate() {
            for ladder in [&book.bids, &book.asks] {
                hash.write(&(symbol as u64).to_le_bytes());
                hash.write(&(ladder.entries.len() as u64).to_le_bytes());
                for entry in ladder.entries.iter().rev() {
                    let level = &self.levels[entry.level as usize];
                    hash.write(&level.price.to_le_bytes());
                    hash.write(&level.count.to_le_bytes());
                    let mut o = level.head;
                    while o != NIL {
                        let order = &self.orders[o as usize];
                        hash.write(&order.id.to_le_bytes());
                        hash.write(&order.account.to_le_bytes());
                        hash.write(&order.open.to_le_bytes());
                        hash.write(&[order.flags]);
                        o = order.next;
                    }
                }
            }
        }
        self.throttle.digest_into(|bytes| hash.write(bytes));
        hash.finish()
    }
}

/// Whether an order on `side` with limit `limit` trades against a resting price `resting`.
fn crosses(side: Side, limit: i64, resting: i64) -> bool {
    match side {
        Side::Buy => resting <= limit,
        Side::Sell => resting >= limit,
    }
}

/// FNV-1a, 64-bit (offset basis 0xcbf29ce484222325, prime 0x100000001b3): tiny, fixed, and the
/// same on every platform, which is all a replay digest needs (it is not a MAC).
#[derive(Debug, Clone, Copy)]
struct Fnv1a(u64);

impl Fnv1a {
    const fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    const fn finish(self) -> u64 {
        self.0
    }
}
