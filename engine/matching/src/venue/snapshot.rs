//! Venue snapshots: the physical state, byte-exact, so that a restored venue is not only equal
//! by digest but takes the same slots and levels from its free lists, probes the same id-table
//! entries, and so gives the same events for every later command.
//!
//! Layout (little-endian; `docs/engine-snapshot.md` has the whole picture):
//!
//! | section | bytes |
//! |---|---|
//! | config: orders_max, levels_max, levels_per_side_max u32, symbols_max u16, accounts_max, ids_max u32 | 22 |
//! | counters: resting, free_order, free_level u32 | 12 |
//! | orders_used u32, then slots `0..orders_used`: tag 1 + id u64, price i64, open u64, account u32, prev, next, level u32, symbol u16, side u8, flags u8 (resting), or tag 0 + next u32 (free) | 4 + 45 per resting order + 5 per free slot below orders_used |
//! | levels_used u32, then levels `0..levels_used`: tag 1 + price i64, qty u64, head, tail, count u32 (in use), or tag 0 + next u32 (free) | 4 + 29 per level in use + 5 per free level below levels_used |
//! | per book (symbol order), bids then asks: len u32, then (key i64, level u32) best price last | 8 per symbol + 12 per level in use |
//! | id table: count u32, then (position u64, id u64, slot u32) | 4 + 20 per id accepted in the run |
//! | throttle ([`Throttle::write_snapshot`]) | 13 + 1..9 per symbol + 45..105 per account in use |
//!
//! `orders_used` (and `levels_used`) is the smallest `k` such that slots `k..` are free, chained
//! in ascending order to the end of the free list: the slots never taken since start-up (free
//! lists are stacks, so the untouched slots stay at the end in their initial order). They are
//! rebuilt as [`Venue::new`] builds them, which keeps a snapshot proportional to what was used,
//! not to the configured capacity. A resting order costs 45 bytes of slot, 20 of id entry and
//! its share of a level (41 bytes per price level); an order that has left the book costs 20
//! bytes of id entry (ids are remembered for the whole run) plus 5 while its slot is below
//! `orders_used`.

use sequent_throttle::Throttle;
use sequent_throttle::snapshot::{Problem, SnapshotError, SnapshotReader};

use super::{IdTable, LEVEL_FREE, Ladder, Level, LevelRef, NIL, Order, Venue, VenueConfig, key};
use crate::ids::{DONE, EMPTY};
use crate::types::{PRICE_MAX, QTY_MAX, Side};

const TAG_FREE: u8 = 0;
const TAG_USED: u8 = 1;
/// Flags use four bits: DAY, post-only and two of self-trade prevention.
const FLAGS_END: u8 = 1 << 4;

/// The smallest `k` such that items `k..len` are free and chained `k → k+1 → … → len-1 → NIL`.
/// Every free item is on its free list, so such a run is the list's tail.
fn untouched_from(len: u32, is_free: impl Fn(u32) -> bool, next: impl Fn(u32) -> u32) -> u32 {
    let mut k = len;
    while k > 0 && is_free(k - 1) && next(k - 1) == if k == len { NIL } else { k } {
        k -= 1;
    }
    k
}

fn side_byte(side: Side) -> u8 {
    match side {
        Side::Buy => 0,
        Side::Sell => 1,
    }
}

impl Venue {
    /// Appends the snapshot of the venue's physical state (books, order and level pools with
    /// their free lists, id table, counters, throttle) to `out`; see the module's layout table
    /// for sizes. Runs only when called and leaves the venue untouched; [`Venue::apply`] is
    /// unchanged.
    pub fn write_snapshot(&self, out: &mut Vec<u8>) {
        let c = &self.config;
        for value in [c.orders_max, c.levels_max, c.levels_per_side_max] {
            out.extend_from_slice(&value.to_le_bytes());
        }
        out.extend_from_slice(&c.symbols_max.to_le_bytes());
        for value in [c.accounts_max, c.ids_max] {
            out.extend_from_slice(&value.to_le_bytes());
        }
        for value in [self.resting, self.free_order, self.free_level] {
            out.extend_from_slice(&value.to_le_bytes());
        }

        let orders_used = self.orders_untouched_from();
        out.extend_from_slice(&orders_used.to_le_bytes());
        for order in &self.orders[..orders_used as usize] {
            if order.id == EMPTY {
                out.push(TAG_FREE);
                out.extend_from_slice(&order.next.to_le_bytes());
                continue;
            }
            out.push(TAG_USED);
            out.extend_from_slice(&order.id.to_le_bytes());
            out.extend_from_slice(&order.price.to_le_bytes());
            out.extend_from_slice(&order.open.to_le_bytes());
            for value in [order.account, order.prev, order.next, order.level] {
                out.extend_from_slice(&value.to_le_bytes());
            }
            out.extend_from_slice(&order.symbol.to_le_bytes());
            out.push(side_byte(order.side));
            out.push(order.flags);
        }

        let levels_used = self.levels_untouched_from();
        out.extend_from_slice(&levels_used.to_le_bytes());
        for level in &self.levels[..levels_used as usize] {
            if level.count == 0 {
                out.push(TAG_FREE);
                out.extend_from_slice(&level.head.to_le_bytes());
                continue;
            }
            out.push(TAG_USED);
            out.extend_from_slice(&level.price.to_le_bytes());
            out.extend_from_slice(&level.qty.to_le_bytes());
            for value in [level.head, level.tail, level.count] {
                out.extend_from_slice(&value.to_le_bytes());
            }
        }

        for book in &self.books {
            for ladder in [&book.bids, &book.asks] {
                out.extend_from_slice(&(ladder.entries.len() as u32).to_le_bytes());
                for entry in &ladder.entries {
                    out.extend_from_slice(&entry.key.to_le_bytes());
                    out.extend_from_slice(&entry.level.to_le_bytes());
                }
            }
        }
        self.ids.write_snapshot(out);
        self.throttle.write_snapshot(out);
    }

    fn orders_untouched_from(&self) -> u32 {
        untouched_from(
            self.config.orders_max,
            |i| self.orders[i as usize].id == EMPTY,
            |i| self.orders[i as usize].next,
        )
    }

    fn levels_untouched_from(&self) -> u32 {
        untouched_from(
            self.config.levels_max,
            |i| self.levels[i as usize].count == 0,
            |i| self.levels[i as usize].head,
        )
    }

    /// Reads a snapshot written by [`Venue::write_snapshot`] from the start of `bytes` into a
    /// venue built for `config`. A snapshot of another capacity is refused with the field named.
    /// Everything is checked before the venue is returned, so that no later command can meet a
    /// broken structure: ranges, both free lists (no cycle, every free item on them), every
    /// level's FIFO (links, counts, quantities, prices), the ladders (sorted, keys match their
    /// levels, no level twice), the id table against the resting orders (both ways), and the
    /// throttle's held credit and open orders against the resting orders. Returns the venue and
    /// the bytes used; what follows is the caller's. Never panics; allocates what `config` sizes.
    pub fn read_snapshot(
        config: VenueConfig,
        bytes: &[u8],
    ) -> Result<(Self, usize), SnapshotError> {
        let mut reader = SnapshotReader::new(bytes);
        let venue = Self::read_snapshot_from(&mut reader, config)?;
        Ok((venue, reader.position()))
    }

    /// [`Venue::read_snapshot`] from a cursor, for snapshots that embed the venue's: errors carry
    /// offsets in the whole snapshot.
    ///
    /// # Panics
    /// Only where [`Venue::new`] does: on a `config` no venue can be built with (the caller's
    /// configuration, never the snapshot's bytes).
    pub fn read_snapshot_from(
        r: &mut SnapshotReader<'_>,
        config: VenueConfig,
    ) -> Result<Self, SnapshotError> {
        // The capacities first, before anything is allocated.
        r.expect_u32("venue.orders_max", config.orders_max)?;
        r.expect_u32("venue.levels_max", config.levels_max)?;
        r.expect_u32("venue.levels_per_side_max", config.levels_per_side_max)?;
        let at = r.position();
        let symbols_max = r.u16("venue.symbols_max", None)?;
        if symbols_max != config.symbols_max {
            return Err(SnapshotError::new(
                at,
                "venue.symbols_max",
                None,
                Problem::ConfigMismatch {
                    snapshot: u64::from(symbols_max),
                    config: u64::from(config.symbols_max),
                },
            ));
        }
        r.expect_u32("venue.accounts_max", config.accounts_max)?;
        r.expect_u32("venue.ids_max", config.ids_max)?;

        let mut v = Self::new(config);
        let counters_at = r.position();
        v.resting = r.u32("venue.resting", None)?;
        v.free_order = r.u32("venue.free_order", None)?;
        v.free_level = r.u32("venue.free_level", None)?;

        // Order slots below orders_used; the rest stay as `new` built them.
        let orders_at = r.position();
        let orders_used = r.u32("venue.orders_used", None)?;
        if orders_used > config.orders_max {
            return Err(SnapshotError::invalid(
                orders_at,
                "venue.orders_used",
                None,
                "more slots than orders_max",
            ));
        }
        let mut order_at = Vec::with_capacity(orders_used as usize);
        for slot in 0..orders_used {
            let i = Some(u64::from(slot));
            let at = r.position();
            order_at.push(at);
            let order = match r.u8("venue.order.tag", i)? {
                TAG_FREE => Order {
                    next: r.u32("venue.order.next", i)?,
                    ..Order::FREE
                },
                TAG_USED => read_order(r, &config, i)?,
                _ => {
                    return Err(SnapshotError::invalid(
                        at,
                        "venue.order.tag",
                        i,
                        "a slot is 0 (free) or 1 (resting)",
                    ));
                }
            };
            v.orders[slot as usize] = order;
        }

        let levels_at = r.position();
        let levels_used = r.u32("venue.levels_used", None)?;
        if levels_used > config.levels_max {
            return Err(SnapshotError::invalid(
                levels_at,
                "venue.levels_used",
                None,
                "more levels than levels_max",
            ));
        }
        let mut level_at = Vec::with_capacity(levels_used as usize);
        for index in 0..levels_used {
            let i = Some(u64::from(index));
            let at = r.position();
            level_at.push(at);
            let level = match r.u8("venue.level.tag", i)? {
                TAG_FREE => Level {
                    head: r.u32("venue.level.next", i)?,
                    ..LEVEL_FREE
                },
                TAG_USED => {
                    let level = Level {
                        price: r.i64("venue.level.price", i)?,
                        qty: r.u64("venue.level.qty", i)?,
                        head: r.u32("venue.level.head", i)?,
                        tail: r.u32("venue.level.tail", i)?,
                        count: r.u32("venue.level.count", i)?,
                    };
                    if level.count == 0 {
                        return Err(SnapshotError::invalid(
                            at,
                            "venue.level.count",
                            i,
                            "a level in use holds at least one order",
                        ));
                    }
                    level
                }
                _ => {
                    return Err(SnapshotError::invalid(
                        at,
                        "venue.level.tag",
                        i,
                        "a level is 0 (free) or 1 (in use)",
                    ));
                }
            };
            v.levels[index as usize] = level;
        }

        // The ladders, each level's FIFO walked as it is met.
        let mut level_seen = vec![false; levels_used as usize];
        let mut order_seen = vec![false; orders_used as usize];
        let mut resting_seen = 0u32;
        for symbol in 0..config.symbols_max {
            for side in [Side::Buy, Side::Sell] {
                let at = r.position();
                let len = r.u32("venue.book.len", Some(u64::from(symbol)))?;
                if len > config.levels_per_side_max {
                    return Err(SnapshotError::invalid(
                        at,
                        "venue.book.len",
                        Some(u64::from(symbol)),
                        "more levels than levels_per_side_max",
                    ));
                }
                let mut entries = Vec::with_capacity(config.levels_per_side_max as usize);
                for _ in 0..len {
                    let at = r.position();
                    let entry = LevelRef {
                        key: r.i64("venue.book.key", Some(u64::from(symbol)))?,
                        level: r.u32("venue.book.level", Some(u64::from(symbol)))?,
                    };
                    let i = Some(u64::from(entry.level));
                    let fail =
                        |reason| Err(SnapshotError::invalid(at, "venue.book.level", i, reason));
                    if entry.level >= levels_used || v.levels[entry.level as usize].count == 0 {
                        return fail("not a level in use");
                    }
                    if std::mem::replace(&mut level_seen[entry.level as usize], true) {
                        return fail("level listed twice");
                    }
                    let level = v.levels[entry.level as usize];
                    if !(1..=PRICE_MAX).contains(&level.price)
                        || entry.key != key(side, level.price)
                    {
                        return fail("key does not match the level's price and side");
                    }
                    if entries
                        .last()
                        .is_some_and(|last: &LevelRef| last.key >= entry.key)
                    {
                        return fail("levels must ascend towards the best price");
                    }
                    // The FIFO: linked both ways, every order of this book, side and price.
                    let (mut o, mut prev, mut count, mut qty) = (level.head, NIL, 0u32, 0u64);
                    while o != NIL {
                        if o >= orders_used || v.orders[o as usize].id == EMPTY {
                            return fail("links to a slot that is not a resting order");
                        }
                        if std::mem::replace(&mut order_seen[o as usize], true) {
                            return fail("an order is linked twice");
                        }
                        let order = v.orders[o as usize];
                        if order.prev != prev
                            || order.level != entry.level
                            || order.symbol != symbol
                            || order.side != side
                            || order.price != level.price
                        {
                            return fail("an order's links, level, book, side or price disagree");
                        }
                        count += 1;
                        let Some(sum) = qty.checked_add(order.open) else {
                            return fail("quantity overflows");
                        };
                        qty = sum;
                        prev = o;
                        o = order.next;
                    }
                    if prev != level.tail || count != level.count || qty != level.qty {
                        return fail("tail, count or quantity disagrees with its orders");
                    }
                    resting_seen += count;
                    entries.push(entry);
                }
                *v.books[usize::from(symbol)].side_mut(side) = Ladder { entries };
            }
        }
        for (index, seen) in level_seen.iter().enumerate() {
            if !seen && v.levels[index].count > 0 {
                return Err(SnapshotError::invalid(
                    level_at[index],
                    "venue.level",
                    Some(index as u64),
                    "in use but in no book",
                ));
            }
        }
        for (slot, seen) in order_seen.iter().enumerate() {
            if !seen && v.orders[slot].id != EMPTY {
                return Err(SnapshotError::invalid(
                    order_at[slot],
                    "venue.order",
                    Some(slot as u64),
                    "resting but in no level",
                ));
            }
        }
        if resting_seen != v.resting {
            return Err(SnapshotError::invalid(
                counters_at,
                "venue.resting",
                None,
                "differs from the orders in the books",
            ));
        }

        // Free lists: every free item on them once, nothing else, and the untouched tail minimal.
        let free_orders = walk_free(
            v.free_order,
            orders_used,
            config.orders_max,
            |i| v.orders[i as usize].id == EMPTY,
            |i| v.orders[i as usize].next,
        );
        if free_orders != Some(config.orders_max - v.resting) {
            return Err(SnapshotError::invalid(
                counters_at + 4,
                "venue.free_order",
                None,
                "the free list of order slots is broken (cycle, resting slot, or a free slot missing)",
            ));
        }
        if v.orders_untouched_from() != orders_used {
            return Err(SnapshotError::invalid(
                orders_at,
                "venue.orders_used",
                None,
                "not minimal (the writer stops at the untouched slots)",
            ));
        }
        let levels_in_use = level_seen.iter().filter(|s| **s).count() as u32;
        let free_levels = walk_free(
            v.free_level,
            levels_used,
            config.levels_max,
            |i| v.levels[i as usize].count == 0,
            |i| v.levels[i as usize].head,
        );
        if free_levels != Some(config.levels_max - levels_in_use) {
            return Err(SnapshotError::invalid(
                counters_at + 8,
                "venue.free_level",
                None,
                "the free list of levels is broken (cycle, level in use, or a free level missing)",
            ));
        }
        if v.levels_untouched_from() != levels_used {
            return Err(SnapshotError::invalid(
                levels_at,
                "venue.levels_used",
                None,
                "not minimal (the writer stops at the untouched levels)",
            ));
        }

        // The id table, both ways against the resting orders.
        let orders = &v.orders;
        v.ids = IdTable::read_snapshot_from(r, config.ids_max as usize, |id, slot| {
            slot == DONE || (slot < orders_used && orders[slot as usize].id == id)
        })?;
        for (slot, order) in v.orders[..orders_used as usize].iter().enumerate() {
            if order.id != EMPTY && v.ids.get(order.id) != Some(slot as u32) {
                return Err(SnapshotError::invalid(
                    order_at[slot],
                    "venue.order.id",
                    Some(slot as u64),
                    "the id table does not point at this resting order",
                ));
            }
        }

        // The throttle, whose held credit and open orders are the resting orders'.
        let throttle_at = r.position();
        v.throttle = Throttle::read_snapshot_from(r, config.accounts_max, config.symbols_max)?;
        let mut exposure = vec![(0u128, 0u32); config.accounts_max as usize];
        for order in &v.orders[..orders_used as usize] {
            if order.id != EMPTY {
                let e = &mut exposure[order.account as usize];
                e.0 =
                    e.0.saturating_add(sequent_throttle::notional(order.price, order.open));
                e.1 += 1;
            }
        }
        for (account, (held, open)) in exposure.into_iter().enumerate() {
            let account_u32 = account as u32;
            if v.throttle.held(account_u32) != held || v.throttle.open_orders(account_u32) != open {
                return Err(SnapshotError::invalid(
                    throttle_at,
                    "throttle.account",
                    Some(account as u64),
                    "held credit or open orders differ from the account's resting orders",
                ));
            }
        }
        Ok(v)
    }
}

/// A resting order slot's fields after its tag, with their ranges checked.
fn read_order(
    r: &mut SnapshotReader<'_>,
    config: &VenueConfig,
    i: Option<u64>,
) -> Result<Order, SnapshotError> {
    let at = r.position();
    let id = r.u64("venue.order.id", i)?;
    let price = r.i64("venue.order.price", i)?;
    let open = r.u64("venue.order.open", i)?;
    let account = r.u32("venue.order.account", i)?;
    let prev = r.u32("venue.order.prev", i)?;
    let next = r.u32("venue.order.next", i)?;
    let level = r.u32("venue.order.level", i)?;
    let symbol = r.u16("venue.order.symbol", i)?;
    let side_at = r.position();
    let side = match r.u8("venue.order.side", i)? {
        0 => Side::Buy,
        1 => Side::Sell,
        _ => {
            return Err(SnapshotError::invalid(
                side_at,
                "venue.order.side",
                i,
                "0 (buy) or 1 (sell)",
            ));
        }
    };
    let flags = r.u8("venue.order.flags", i)?;
    let valid = id != EMPTY
        && (1..=PRICE_MAX).contains(&price)
        && (1..=QTY_MAX).contains(&open)
        && account < config.accounts_max
        && symbol < config.symbols_max
        && flags < FLAGS_END;
    if !valid {
        return Err(SnapshotError::invalid(
            at,
            "venue.order",
            i,
            "id, price, quantity, account, symbol or flags out of range",
        ));
    }
    Ok(Order {
        id,
        price,
        open,
        account,
        prev,
        next,
        level,
        symbol,
        side,
        flags,
    })
}

/// Walks a free list from `head`: items below `used` are checked one by one (free, not seen
/// before); the first item at or above `used` starts the untouched tail, chained in order to the
/// end. The number of free items, or `None` when the list is broken.
fn walk_free(
    head: u32,
    used: u32,
    len: u32,
    is_free: impl Fn(u32) -> bool,
    next: impl Fn(u32) -> u32,
) -> Option<u32> {
    let mut seen = vec![false; used as usize];
    let (mut i, mut count) = (head, 0u32);
    while i != NIL {
        if i >= len {
            return None;
        }
        if i >= used {
            return Some(count + (len - i));
        }
        if !is_free(i) || std::mem::replace(&mut seen[i as usize], true) {
            return None;
        }
        count += 1;
        i = next(i);
    }
    Some(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_untouched_tail_is_the_ascending_end_of_the_free_list() {
        // 0..4 untouched.
        assert_eq!(
            untouched_from(4, |_| true, |i| if i == 3 { NIL } else { i + 1 }),
            0
        );
        // Slot 1 taken: 2, 3 still untouched.
        let next = [1, NIL, 3, NIL];
        assert_eq!(untouched_from(4, |i| i != 1, |i| next[i as usize]), 2);
        // All taken.
        assert_eq!(untouched_from(4, |_| false, |_| NIL), 4);
    }

    #[test]
    fn a_fresh_venue_snapshot_is_small_and_round_trips() {
        let venue = Venue::new(VenueConfig::SMALL);
        let mut bytes = Vec::new();
        venue.write_snapshot(&mut bytes);
        let (restored, used) = Venue::read_snapshot(VenueConfig::SMALL, &bytes).unwrap();
        assert_eq!(used, bytes.len());
        let mut again = Vec::new();
        restored.write_snapshot(&mut again);
        assert_eq!(again, bytes);
        assert!(
            bytes.len() < 256,
            "{} bytes for an empty venue",
            bytes.len()
        );
    }

    /// Prints the snapshot size for N resting orders (100 per price level, both sides), so the
    /// per-order cost in the module's table can be checked: `cargo test -p sequent-matching --lib
    /// snapshot_size -- --nocapture`. Asserts only the exact layout arithmetic, no timing.
    #[test]
    fn snapshot_size_per_resting_order() {
        use crate::types::{Command, NewOrder, Stp, Tif};
        let mut empty = Vec::new();
        Venue::new(VenueConfig::SMALL).write_snapshot(&mut empty);
        for n in [1_000u64, 10_000] {
            let mut venue = Venue::new(VenueConfig::SMALL);
            let mut out = Vec::new();
            for id in 1..=n {
                let side = if id % 2 == 0 { Side::Buy } else { Side::Sell };
                let level = (id / 2) % (n / 200);
                let price = match side {
                    Side::Buy => 10_000 - level as i64,
                    Side::Sell => 10_001 + level as i64,
                };
                let order = NewOrder {
                    id,
                    account: (id % 64) as u32,
                    symbol: 0,
                    side,
                    price: Some(price),
                    qty: 10,
                    tif: Tif::Gtc,
                    post_only: false,
                    stp: Stp::Off,
                };
                venue.apply(id, &Command::New(order), &mut out);
            }
            assert_eq!(venue.resting_orders() as u64, n);
            let mut bytes = Vec::new();
            venue.write_snapshot(&mut bytes);
            let levels = n / 100;
            println!(
                "{n} resting orders on {levels} levels: {} bytes ({:.1} per order; empty venue {} bytes)",
                bytes.len(),
                (bytes.len() - empty.len()) as f64 / n as f64,
                empty.len()
            );
            // 45 (slot) + 20 (id) per order, 29 + 12 per level, 64 accounts × 45 (index, no own
            // limits, open orders, held, bucket, flags).
            let expected = empty.len() as u64 + n * 65 + levels * 41 + 64 * 45;
            assert_eq!(bytes.len() as u64, expected);
        }
    }
}
