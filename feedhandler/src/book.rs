//! The book builder: per-symbol order books rebuilt from add / execute / cancel / delete /
//! replace messages, shared by `sequent-feedsub`, the publisher's snapshot server and the ITCH
//! replay. Sans-IO and deterministic: the same messages give the same [`Books::digest`].
//!
//! A message naming an order the builder never saw (a feed joined mid-day, like the ITCH
//! sample) is counted in [`SymbolStats::unknown_refs`] and skipped, never an error: a book
//! builder must keep going on a real feed.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use crate::proto::{Message, Side};

/// One resting order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    pub locate: u16,
    pub side: Side,
    pub price: i64,
    pub shares: u64,
}

/// Counts per symbol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SymbolStats {
    pub adds: u64,
    pub executions: u64,
    pub executed_shares: u64,
    pub cancels: u64,
    pub deletes: u64,
    pub replaces: u64,
    pub trades: u64,
    pub traded_shares: u64,
    /// Messages naming an order reference the builder never saw (skipped).
    pub unknown_refs: u64,
    /// Executions or cancels of more shares than the order had (clamped to what it had).
    pub oversized_reductions: u64,
}

/// One side of a price level: total shares and order count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Level {
    pub shares: u64,
    pub orders: u64,
}

/// One symbol's book and statistics.
#[derive(Debug, Clone, Default)]
pub struct SymbolBook {
    /// 8-byte name from the symbol directory (spaces if none was seen).
    pub name: [u8; 8],
    pub bids: BTreeMap<i64, Level>,
    pub asks: BTreeMap<i64, Level>,
    pub stats: SymbolStats,
}

impl SymbolBook {
    pub fn name(&self) -> String {
        String::from_utf8_lossy(&self.name).trim_end().to_string()
    }

    pub fn best_bid(&self) -> Option<(i64, Level)> {
        self.bids.iter().next_back().map(|(p, l)| (*p, *l))
    }

    pub fn best_ask(&self) -> Option<(i64, Level)> {
        self.asks.iter().next().map(|(p, l)| (*p, *l))
    }
}

/// Every book, by locate code.
#[derive(Debug, Clone, Default)]
pub struct Books {
    symbols: BTreeMap<u16, SymbolBook>,
    orders: HashMap<u64, Order>,
}

impl Books {
    pub fn new() -> Books {
        Books::default()
    }

    pub fn symbols(&self) -> &BTreeMap<u16, SymbolBook> {
        &self.symbols
    }

    pub fn order(&self, order_ref: u64) -> Option<&Order> {
        self.orders.get(&order_ref)
    }

    pub fn orders_len(&self) -> usize {
        self.orders.len()
    }

    /// Resting orders sorted by reference (deterministic order, for snapshots and digests).
    pub fn sorted_orders(&self) -> Vec<(u64, Order)> {
        let mut orders: Vec<(u64, Order)> = self.orders.iter().map(|(r, o)| (*r, *o)).collect();
        orders.sort_unstable_by_key(|(r, _)| *r);
        orders
    }

    pub fn clear(&mut self) {
        self.symbols.clear();
        self.orders.clear();
    }

    fn symbol(&mut self, locate: u16) -> &mut SymbolBook {
        self.symbols.entry(locate).or_insert_with(|| SymbolBook {
            name: [b' '; 8],
            ..SymbolBook::default()
        })
    }

    fn level_add(&mut self, order: Order) {
        let book = self.symbol(order.locate);
        let side = match order.side {
            Side::Buy => &mut book.bids,
            Side::Sell => &mut book.asks,
        };
        let level = side.entry(order.price).or_default();
        level.shares += order.shares;
        level.orders += 1;
    }

    /// Takes `shares` off a level; `removed` says whether the order left it.
    fn level_sub(&mut self, order: Order, shares: u64, removed: bool) {
        let book = self.symbol(order.locate);
        let side = match order.side {
            Side::Buy => &mut book.bids,
            Side::Sell => &mut book.asks,
        };
        if let Some(level) = side.get_mut(&order.price) {
            level.shares -= shares.min(level.shares);
            if removed {
                level.orders -= 1;
            }
            if level.orders == 0 {
                assert_eq!(level.shares, 0, "an empty level holds no shares");
                side.remove(&order.price);
            }
        }
    }

    /// Adds a resting order; a duplicate reference replaces the older order (counted unknown).
    pub fn add(&mut self, order_ref: u64, order: Order) {
        if let Some(old) = self.orders.remove(&order_ref) {
            self.level_sub(old, old.shares, true);
            self.symbol(order.locate).stats.unknown_refs += 1;
        }
        if order.shares == 0 {
            return;
        }
        self.level_add(order);
        self.orders.insert(order_ref, order);
        self.symbol(order.locate).stats.adds += 1;
    }

    /// Reduces a resting order by `shares`; returns the order as it was, or `None` if unknown.
    fn reduce(&mut self, locate: u16, order_ref: u64, shares: u64) -> Option<Order> {
        let Some(order) = self.orders.get_mut(&order_ref) else {
            self.symbol(locate).stats.unknown_refs += 1;
            return None;
        };
        let before = *order;
        let taken = shares.min(order.shares);
        order.shares -= taken;
        let removed = order.shares == 0;
        if removed {
            self.orders.remove(&order_ref);
        }
        self.level_sub(before, taken, removed);
        if shares > before.shares {
            self.symbol(before.locate).stats.oversized_reductions += 1;
        }
        Some(before)
    }

    /// Applies one message. Snapshot messages are not book updates: [`Books::apply_snapshot`]
    /// handles them; here they are ignored.
    pub fn apply(&mut self, message: &Message) {
        match message {
            Message::SystemEvent(_) => {}
            Message::SymbolDirectory(m) => self.symbol(m.locate.get()).name = m.symbol,
            Message::AddOrder(m) => {
                let side = Side::from_byte(m.side).unwrap_or(Side::Buy);
                self.add(
                    m.order_ref.get(),
                    Order {
                        locate: m.locate.get(),
                        side,
                        price: m.price.get(),
                        shares: u64::from(m.shares.get()),
                    },
                );
            }
            Message::OrderExecuted(m) => {
                let shares = u64::from(m.shares.get());
                if self
                    .reduce(m.locate.get(), m.order_ref.get(), shares)
                    .is_some()
                {
                    let stats = &mut self.symbol(m.locate.get()).stats;
                    stats.executions += 1;
                    stats.executed_shares += shares;
                }
            }
            Message::OrderCancelled(m) => {
                if self
                    .reduce(m.locate.get(), m.order_ref.get(), u64::from(m.shares.get()))
                    .is_some()
                {
                    self.symbol(m.locate.get()).stats.cancels += 1;
                }
            }
            Message::OrderDeleted(m) => {
                if self
                    .reduce(m.locate.get(), m.order_ref.get(), u64::MAX)
                    .is_some()
                {
                    self.symbol(m.locate.get()).stats.deletes += 1;
                }
            }
            Message::OrderReplaced(m) => {
                if let Some(old) = self.reduce(m.locate.get(), m.orig_ref.get(), u64::MAX) {
                    self.symbol(m.locate.get()).stats.replaces += 1;
                    self.add(
                        m.new_ref.get(),
                        Order {
                            locate: old.locate,
                            side: old.side,
                            price: m.price.get(),
                            shares: u64::from(m.shares.get()),
                        },
                    );
                    // The add above counted itself; a replace is not an add.
                    self.symbol(old.locate).stats.adds -= u64::from(m.shares.get() > 0);
                }
            }
            Message::Trade(m) => {
                let stats = &mut self.symbol(m.locate.get()).stats;
                stats.trades += 1;
                stats.traded_shares += u64::from(m.shares.get());
            }
            Message::SnapshotBegin(_) | Message::SnapshotLevel(_) | Message::SnapshotEnd(_) => {}
        }
    }

    /// The snapshot of every book: begin, the symbol directory, each resting order, end.
    pub fn snapshot(&self, last_seq: u64, out: &mut Vec<Message>) {
        use crate::proto::{SnapshotBegin, SnapshotEnd, SnapshotLevel, build};
        use zerocopy::little_endian::{I64, U16, U32, U64};
        let orders = self.sorted_orders();
        let orders_len = u32::try_from(orders.len()).expect("fewer than 2^32 resting orders");
        out.push(Message::SnapshotBegin(SnapshotBegin {
            last_seq: U64::new(last_seq),
            symbols: U32::new(u32::try_from(self.symbols.len()).expect("locates are u16")),
            orders: U32::new(orders_len),
        }));
        for (locate, book) in &self.symbols {
            let name = String::from_utf8_lossy(&book.name).into_owned();
            out.push(build::symbol(0, *locate, &name));
        }
        for (order_ref, order) in orders {
            out.push(Message::SnapshotLevel(SnapshotLevel {
                order_ref: U64::new(order_ref),
                locate: U16::new(order.locate),
                side: order.side.to_byte(),
                shares: U32::new(u32::try_from(order.shares).unwrap_or(u32::MAX)),
                price: I64::new(order.price),
            }));
        }
        out.push(Message::SnapshotEnd(SnapshotEnd {
            last_seq: U64::new(last_seq),
            orders: U32::new(orders_len),
        }));
    }

    /// Replaces every book with a snapshot's content; returns the sequence it reflects.
    /// Statistics restart from zero: a snapshot carries books, not history.
    pub fn apply_snapshot(messages: &[Message]) -> Result<(Books, u64), SnapshotError> {
        let mut books = Books::new();
        let Some(Message::SnapshotBegin(begin)) = messages.first() else {
            return Err(SnapshotError::NoBegin);
        };
        let Some(Message::SnapshotEnd(end)) = messages.last() else {
            return Err(SnapshotError::NoEnd);
        };
        if begin.last_seq != end.last_seq {
            return Err(SnapshotError::Mismatch);
        }
        let mut orders = 0u32;
        for message in &messages[1..messages.len() - 1] {
            match message {
                Message::SymbolDirectory(_) => books.apply(message),
                Message::SnapshotLevel(m) => {
                    orders += 1;
                    books.add(
                        m.order_ref.get(),
                        Order {
                            locate: m.locate.get(),
                            side: Side::from_byte(m.side).unwrap_or(Side::Buy),
                            price: m.price.get(),
                            shares: u64::from(m.shares.get()),
                        },
                    );
                }
                _ => return Err(SnapshotError::Unexpected(message.kind())),
            }
        }
        if orders != begin.orders.get() || orders != end.orders.get() {
            return Err(SnapshotError::Mismatch);
        }
        for book in books.symbols.values_mut() {
            book.stats = SymbolStats::default();
        }
        Ok((books, begin.last_seq.get()))
    }

    /// Puts back per-symbol statistics (a snapshot carries books, not history).
    pub fn restore_stats(&mut self, stats: &[(u16, SymbolStats)]) {
        for (locate, kept) in stats {
            self.symbol(*locate).stats = *kept;
        }
    }

    /// SHA-256 over every symbol's name and every resting order in reference order: two
    /// builders hold the same books exactly when their digests match (statistics excluded).
    pub fn digest(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        for (locate, book) in &self.symbols {
            if book.bids.is_empty() && book.asks.is_empty() && book.name == [b' '; 8] {
                continue;
            }
            hash.update(b"sym");
            hash.update(locate.to_le_bytes());
            hash.update(book.name);
        }
        for (order_ref, order) in self.sorted_orders() {
            hash.update(b"ord");
            hash.update(order_ref.to_le_bytes());
            hash.update(order.locate.to_le_bytes());
            hash.update([order.side.to_byte()]);
            hash.update(order.price.to_le_bytes());
            hash.update(order.shares.to_le_bytes());
        }
        hash.finalize().into()
    }

    /// Checks the level aggregates against the orders (a test and debug aid).
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut levels: BTreeMap<(u16, Side, i64), Level> = BTreeMap::new();
        for order in self.orders.values() {
            let level = levels
                .entry((order.locate, order.side, order.price))
                .or_default();
            level.shares += order.shares;
            level.orders += 1;
        }
        let mut seen = 0;
        for (locate, book) in &self.symbols {
            for (side, map) in [(Side::Buy, &book.bids), (Side::Sell, &book.asks)] {
                for (price, level) in map {
                    seen += 1;
                    if levels.get(&(*locate, side, *price)) != Some(level) {
                        return Err(format!("level {locate} {side:?} {price} is {level:?}"));
                    }
                }
            }
        }
        if seen != levels.len() {
            return Err(format!(
                "{} levels from orders, {seen} in books",
                levels.len()
            ));
        }
        Ok(())
    }

    /// A text rendering of one book: the top `depth` levels of each side.
    pub fn render(&self, locate: u16, depth: usize) -> String {
        let Some(book) = self.symbols.get(&locate) else {
            return String::new();
        };
        let mut out = format!(
            "{} (locate {locate}): {} bid levels, {} ask levels\n",
            book.name(),
            book.bids.len(),
            book.asks.len()
        );
        let bids: Vec<_> = book.bids.iter().rev().take(depth).collect();
        let asks: Vec<_> = book.asks.iter().take(depth).collect();
        for i in 0..bids.len().max(asks.len()) {
            let bid = bids
                .get(i)
                .map(|(p, l)| format!("{:>10} {:>12}", l.shares, format_price(**p)))
                .unwrap_or_else(|| format!("{:>23}", ""));
            let ask = asks
                .get(i)
                .map(|(p, l)| format!("{:<12} {:<10}", format_price(**p), l.shares))
                .unwrap_or_default();
            out.push_str(&format!("  {bid} | {ask}\n"));
        }
        out
    }
}

/// Prices are 1/10,000 ticks (ITCH's four implied decimals).
pub fn format_price(price: i64) -> String {
    let sign = if price < 0 { "-" } else { "" };
    let abs = price.unsigned_abs();
    format!("{sign}{}.{:04}", abs / 10_000, abs % 10_000)
}

pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a snapshot could not be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot does not start with a begin message")]
    NoBegin,
    #[error("snapshot does not end with an end message")]
    NoEnd,
    #[error("snapshot's begin, end and order count disagree")]
    Mismatch,
    #[error("message type {:?} inside a snapshot", *.0 as char)]
    Unexpected(u8),
}
