//! The ITCH 5.0 sample (`tests/data/itch`, see its README) replayed into the venue.
//!
//! ITCH publishes a book of resting orders and reports executions *against* them; the aggressing
//! side is not in the feed. So the replay maps each message onto the venue's API as follows
//! (one account; **each side of a stock is its own book**, symbol `2 × locate + side`, because
//! this made-up sample's book is crossed: 4,504 of the 5,010 adds it applies land at or through the other
//! side's best price in the file's own order, which a real matching book cannot hold and which would make the venue
//! print trades the file does not report):
//! - A / F (add): a post-only GTC limit order with the ITCH order reference as id (post-only, so
//!   the venue could never invent a trade; the test requires every add to be accepted).
//! - E / C (executed, executed with price): a reduction of the resting order by the executed
//!   shares: `Replace` to the smaller quantity at the same price (keeps priority), or `Cancel`
//!   when nothing is left.
//! - X (partial cancel): the same reduction. D (delete): `Cancel`.
//! - U (replace): `Cancel` of the original reference and a new post-only order with the new
//!   reference, shares and price (ITCH gives a replace a new reference and no priority).
//! - P (trade, non-displayed) and every other type: not applied; they must not touch the book.
//!
//! The sample is a window of a longer day: 117 messages (D 94, E 18, X 3, U 2) name order
//! references that no add in the file created. They are counted, checked never to have been
//! added, and skipped (a U whose original is unknown cannot be re-added: its side is unknown).
//!
//! Checked: every A/F/U add is accepted; every other E/C/X/D/U names a resting order with enough
//! shares; the venue emits no trade; at the end the venue's book equals an independent mirror
//! (a `BTreeMap` of open orders), each stock's open shares equal adds − executed − cancelled −
//! deleted computed from the messages alone, no book is crossed, and a second replay gives the
//! same digest.

use std::collections::{BTreeMap, BTreeSet};

use sequent_feed::itch::message_len;
use sequent_matching::{Command, Event, NewOrder, Side, Stp, Tif, Venue, VenueConfig};

const SAMPLE: &[u8] = include_bytes!("data/itch/ex20101224.TEST_ITCH_50");

fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |acc, &b| (acc << 8) | u64::from(b))
}

/// Splits the file into messages: 2 prefix bytes (zero in this file), then a body framed by its type.
fn messages(data: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let kind = *data
            .get(at + 2)
            .ok_or_else(|| format!("truncated prefix at {at}"))?;
        let len = message_len(kind).ok_or_else(|| {
            format!(
                "unknown message type {:?} at offset {}",
                kind as char,
                at + 2
            )
        })?;
        let body = data
            .get(at + 2..at + 2 + len)
            .ok_or_else(|| format!("truncated {:?} message at offset {}", kind as char, at + 2))?;
        out.push(body);
        at += 2 + len;
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy)]
struct Mirror {
    symbol: u16,
    side: Side,
    price: i64,
    open: u64,
}

struct Replay {
    venue: Venue,
    mirror: BTreeMap<u64, Mirror>,
    events: Vec<Event>,
    /// Per stock locate: shares added, executed, cancelled (X), deleted (D, U's original).
    totals: BTreeMap<u16, [u64; 4]>,
    counts: BTreeMap<u8, usize>,
    /// Every reference an add created.
    added: BTreeSet<u64>,
    /// Per message type, references that no add in the file created.
    unknown: BTreeMap<char, usize>,
    kind: char,
    crossing_adds: usize,
}

/// The venue book of one side of a stock.
fn book(locate: u16, side: Side) -> u16 {
    2 * locate + u16::from(side == Side::Sell)
}

impl Replay {
    fn apply(&mut self, now: u64, command: Command) {
        self.events.clear();
        self.venue.apply(now, &command, &mut self.events);
        assert!(
            !self
                .events
                .iter()
                .any(|e| matches!(e, Event::Trade { .. } | Event::Rejected { .. })),
            "{command:?} gave {:?}",
            self.events
        );
    }

    fn add(&mut self, now: u64, id: u64, symbol: u16, side: Side, shares: u64, price: i64) {
        let (bid, ask) = self.best(symbol);
        if match side {
            Side::Buy => ask.is_some_and(|ask| price >= ask),
            Side::Sell => bid.is_some_and(|bid| price <= bid),
        } {
            self.crossing_adds += 1;
        }
        self.added.insert(id);
        self.apply(
            now,
            Command::New(NewOrder {
                id,
                account: 0,
                symbol: book(symbol, side),
                side,
                price: Some(price),
                qty: shares,
                tif: Tif::Gtc,
                post_only: true,
                stp: Stp::Off,
            }),
        );
        assert_eq!(self.events, [Event::Accepted { id }]);
        assert!(
            self.mirror
                .insert(
                    id,
                    Mirror {
                        symbol,
                        side,
                        price,
                        open: shares
                    }
                )
                .is_none()
        );
        self.totals.entry(symbol).or_default()[0] += shares;
    }

    /// Reduces a resting order by `shares` (an execution or a partial cancel).
    fn reduce(&mut self, now: u64, id: u64, shares: u64, column: usize) {
        let Some(order) = self.mirror.get_mut(&id) else {
            return self.unknown(id);
        };
        assert!(
            order.open >= shares,
            "order {id} has {} shares, {shares} taken",
            order.open
        );
        order.open -= shares;
        let (left, symbol) = (order.open, order.symbol);
        self.totals.entry(symbol).or_default()[column] += shares;
        if left == 0 {
            self.mirror.remove(&id);
            self.apply(now, Command::Cancel { id });
        } else {
            self.apply(
                now,
                Command::Replace {
                    id,
                    qty: left,
                    price: None,
                },
            );
            assert_eq!(
                self.events,
                [Event::Replaced {
                    id,
                    price: self.mirror[&id].price,
                    qty: left
                }]
            );
        }
    }

    fn delete(&mut self, now: u64, id: u64) -> Option<Mirror> {
        let Some(order) = self.mirror.remove(&id) else {
            self.unknown(id);
            return None;
        };
        self.totals.entry(order.symbol).or_default()[3] += order.open;
        self.apply(now, Command::Cancel { id });
        assert_eq!(self.events.len(), 1);
        Some(order)
    }

    /// A reference no add in the file created: allowed (the file is a window), never one that
    /// was added and has left the book.
    fn unknown(&mut self, id: u64) {
        assert!(
            !self.added.contains(&id),
            "order {id} was added, then used after it left"
        );
        *self.unknown.entry(self.kind).or_default() += 1;
    }

    /// Best bid and ask of a stock, from the mirror (independent of the venue).
    fn best(&self, symbol: u16) -> (Option<i64>, Option<i64>) {
        let prices = |side| {
            self.mirror
                .values()
                .filter(move |m| m.symbol == symbol && m.side == side)
                .map(|m| m.price)
        };
        (prices(Side::Buy).max(), prices(Side::Sell).min())
    }

    fn message(&mut self, m: &[u8]) {
        *self.counts.entry(m[0]).or_default() += 1;
        self.kind = m[0] as char;
        let symbol = be(&m[1..3]) as u16;
        let now = be(&m[5..11]);
        let side = |b: u8| if b == b'B' { Side::Buy } else { Side::Sell };
        match m[0] {
            b'A' | b'F' => {
                self.add(
                    now,
                    be(&m[11..19]),
                    symbol,
                    side(m[19]),
                    be(&m[20..24]),
                    be(&m[32..36]) as i64,
                );
            }
            b'E' | b'C' => self.reduce(now, be(&m[11..19]), be(&m[19..23]), 1),
            b'X' => self.reduce(now, be(&m[11..19]), be(&m[19..23]), 2),
            b'D' => {
                self.delete(now, be(&m[11..19]));
            }
            b'U' => {
                let Some(old) = self.delete(now, be(&m[11..19])) else {
                    return;
                };
                self.add(
                    now,
                    be(&m[19..27]),
                    old.symbol,
                    old.side,
                    be(&m[27..31]),
                    be(&m[31..35]) as i64,
                );
            }
            _ => {}
        }
    }
}

fn replay() -> Replay {
    let mut r = Replay {
        venue: Venue::new(VenueConfig {
            orders_max: 8_192,
            levels_max: 8_192,
            levels_per_side_max: 4_096,
            symbols_max: 16,
            accounts_max: 1,
            ids_max: 16_384,
        }),
        mirror: BTreeMap::new(),
        events: Vec::new(),
        totals: BTreeMap::new(),
        counts: BTreeMap::new(),
        added: BTreeSet::new(),
        unknown: BTreeMap::new(),
        kind: ' ',
        crossing_adds: 0,
    };
    for m in messages(SAMPLE).unwrap() {
        r.message(m);
    }
    r
}

#[test]
fn the_sample_frames_into_the_documented_message_counts() {
    let r = replay();
    let counts: Vec<(char, usize)> = r.counts.iter().map(|(k, v)| (*k as char, *v)).collect();
    assert_eq!(
        counts,
        [
            ('A', 4_997),
            ('D', 1_745),
            ('E', 198),
            ('F', 3),
            ('H', 3),
            ('P', 5_000),
            ('R', 3),
            ('S', 6),
            ('U', 12),
            ('X', 45)
        ]
    );
}

#[test]
fn the_replayed_book_agrees_with_the_files_executions() {
    let r = replay();
    let mut executed = 0;
    for (&symbol, &[added, exec, cancelled, deleted]) in &r.totals {
        executed += exec;
        let open: u64 = [Side::Buy, Side::Sell]
            .iter()
            .flat_map(|&side| r.venue.resting(book(symbol, side), side))
            .map(|o| o.qty)
            .sum();
        assert_eq!(
            open,
            added - exec - cancelled - deleted,
            "stock locate {symbol}"
        );
        // The venue's book is the mirror, order by order, in price-time order.
        for side in [Side::Buy, Side::Sell] {
            let mut got: Vec<(u64, i64, u64)> = r
                .venue
                .resting(book(symbol, side), side)
                .map(|o| (o.id, o.price, o.qty))
                .collect();
            let mut want: Vec<(u64, i64, u64)> = r
                .mirror
                .iter()
                .filter(|(_, m)| m.symbol == symbol && m.side == side)
                .map(|(&id, m)| (id, m.price, m.open))
                .collect();
            let by_price = |v: &[(u64, i64, u64)]| {
                v.windows(2).all(|w| match side {
                    Side::Buy => w[0].1 >= w[1].1,
                    Side::Sell => w[0].1 <= w[1].1,
                })
            };
            assert!(by_price(&got), "best price first");
            got.sort_unstable();
            want.sort_unstable();
            assert_eq!(got, want);
        }
    }
    assert!(executed > 0, "the sample has executions");
    let unknown: Vec<(char, usize)> = r.unknown.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(unknown, [('D', 94), ('E', 18), ('U', 2), ('X', 3)]);
    assert_eq!(r.crossing_adds, 4_504, "the sample's own crossed adds");
    assert_eq!(r.venue.resting_orders() as usize, r.mirror.len());
    assert!(!r.mirror.is_empty());
    // Replay determinism on real data.
    assert_eq!(r.venue.state_digest(), replay().venue.state_digest());
}

#[test]
fn framing_errors_name_the_offset() {
    assert_eq!(
        messages(&[0, 0, b'Z', 1]).unwrap_err(),
        "unknown message type 'Z' at offset 2"
    );
    assert!(
        messages(&SAMPLE[..100])
            .unwrap_err()
            .starts_with("truncated")
    );
}
