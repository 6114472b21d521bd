//! `sequent-bench matching`: the sequent venue (throttle + book) beside a peer order book from
//! crates.io, on one seeded exchange-core-like stream, single-threaded.
//!
//! The stream ([`generate`]): a prefill of resting orders around a fixed mid price, then a mix of
//! 9 % GTC limit orders (one in ten aggressive), 3 % IOC orders that cross, 6 % cancels and 82 %
//! moves (a resting order to a new price on its own side, same open quantity), the mix of
//! exchange-core's benchmarks. The generator drives a sequent venue of its own while it
//! generates, so cancels and moves name orders that are resting at that moment; both engines
//! implement price-time priority at the resting price, so they stay on the same book, which
//! every run checks by comparing the total traded quantity.
//!
//! The peer is `lobster` 0.7 (crates.io): one book, limit/market/cancel only. A move is a cancel
//! and a new limit order there (what sequent's price-changing replace does inside), and an IOC
//! is a limit order followed by a cancel when a remainder rested. sequent runs with its
//! pre-trade throttle active (limits set high enough never to trip, so every check executes).
//!
//! Measured per engine: throughput at full speed (the whole stream back to back), and open-loop
//! latency at fixed rates: operation *i* is due at start + *i*/rate; the loop waits until then
//! (or starts at once when behind), and latency = completion − **intended** start, so a stall
//! is charged to every operation queued behind it (no coordinated omission). Allocations per
//! operation come from the binary's counting allocator. Each open-loop rate runs `repeats`
//! times on a fresh prefilled book and reports the median run by p99.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Instant;

use hdrhistogram::Histogram;
use sequent_matching::{Command, Event, Limits, NewOrder, Side, Stp, Tif, Venue, VenueConfig};
use serde::Serialize;

use crate::machine::Machine;
use crate::report::{format_ns, format_rate};

/// The mid price of the generated book, in ticks.
pub const MID: i64 = 100_000;
/// Levels each side of the mid that passive orders use.
const LEVELS: u64 = 50;

/// One operation of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A limit order: GTC, or IOC.
    Place {
        id: u64,
        account: u32,
        side: Side,
        price: i64,
        qty: u64,
        ioc: bool,
    },
    /// Cancel a resting order.
    Cancel { id: u64 },
    /// Move a resting order to a new price with the same open quantity.
    Move {
        id: u64,
        side: Side,
        price: i64,
        qty: u64,
    },
}

/// The generated stream.
#[derive(Debug, Clone)]
pub struct Stream {
    pub prefill: Vec<Op>,
    pub ops: Vec<Op>,
    /// GTC, IOC, cancel, move counts of `ops`.
    pub mix: [usize; 4],
    /// Resting orders after the prefill and at the end (in the generator's venue).
    pub resting_after_prefill: u32,
    pub resting_at_end: u32,
}

/// xorshift64*: seeded, reproducible.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn side(&mut self) -> Side {
        if self.below(2) == 0 {
            Side::Buy
        } else {
            Side::Sell
        }
    }
}

/// A passive price on `side`: 1..=LEVELS ticks away from the mid.
fn passive(rng: &mut Rng, side: Side) -> i64 {
    let away = 1 + rng.below(LEVELS) as i64;
    match side {
        Side::Buy => MID - away,
        Side::Sell => MID + away,
    }
}

/// A price through the mid on `side` (0..3 ticks past it): likely to trade.
fn aggressive(rng: &mut Rng, side: Side) -> i64 {
    let past = rng.below(3) as i64;
    match side {
        Side::Buy => MID + past,
        Side::Sell => MID - past,
    }
}

/// A live order in the generator's view.
#[derive(Debug, Clone, Copy)]
struct Live {
    side: Side,
    price: i64,
    open: u64,
    /// Index in the `live` vector.
    pos: usize,
}

/// The venue both the generator and the measured sequent engine use.
pub fn venue_config(orders: usize, resting_target: usize, accounts: u32) -> VenueConfig {
    VenueConfig {
        orders_max: (resting_target * 4).max(1 << 14) as u32,
        levels_max: 1 << 12,
        levels_per_side_max: 1 << 11,
        symbols_max: 1,
        accounts_max: accounts,
        ids_max: (orders + resting_target + 16) as u32,
    }
}

/// The throttle's limits in the benchmark: every check runs, none trips.
pub fn bench_limits() -> Limits {
    Limits {
        max_qty: Some(1_000_000),
        max_notional: Some(1 << 60),
        collar_bps: Some(5_000),
        max_open_orders: Some(1 << 20),
        credit_limit: Some(1 << 80),
        orders_per_sec: Some(1 << 30),
        alert_pct: Some(99),
    }
}

fn to_command(op: &Op) -> Command {
    match *op {
        Op::Place {
            id,
            account,
            side,
            price,
            qty,
            ioc,
        } => Command::New(NewOrder {
            id,
            account,
            symbol: 0,
            side,
            price: Some(price),
            qty,
            tif: if ioc { Tif::Ioc } else { Tif::Gtc },
            post_only: false,
            stp: Stp::Off,
        }),
        Op::Cancel { id } => Command::Cancel { id },
        Op::Move { id, price, qty, .. } => Command::Replace {
            id,
            qty,
            price: Some(price),
        },
    }
}

/// Generates the prefill and `ops` operations from `seed`.
pub fn generate(seed: u64, ops: usize, resting_target: usize, accounts: u32) -> Stream {
    let mut rng = Rng(seed | 1);
    let mut venue = SequentEngine::new(ops, resting_target, accounts);
    // Live orders: ids in a Vec for O(1) random choice, positions and (side, open) by id.
    let mut live: Vec<u64> = Vec::new();
    let mut info: HashMap<u64, Live> = HashMap::new();
    let mut next_id = 0u64;
    let mut events = Vec::new();
    let mut track =
        |op: &Op, venue: &mut SequentEngine, live: &mut Vec<u64>, info: &mut HashMap<u64, Live>| {
            events.clear();
            venue.venue.apply(0, &to_command(op), &mut events);
            let remove = |id: u64, live: &mut Vec<u64>, info: &mut HashMap<u64, Live>| {
                if let Some(Live { pos, .. }) = info.remove(&id) {
                    live.swap_remove(pos);
                    if let Some(&moved) = live.get(pos) {
                        info.get_mut(&moved).expect("live ids are in info").pos = pos;
                    }
                }
            };
            for event in &events {
                match *event {
                    Event::Trade { maker, qty, .. } => {
                        let open = &mut info.get_mut(&maker).expect("a maker rests").open;
                        *open -= qty;
                        if *open == 0 {
                            remove(maker, live, info);
                        }
                    }
                    Event::Cancelled { id, .. } => remove(id, live, info),
                    Event::Replaced { id, .. } => remove(id, live, info),
                    _ => {}
                }
            }
            let (id, side, price, qty) = match *op {
                Op::Place {
                    id,
                    side,
                    price,
                    qty,
                    ioc: false,
                    ..
                }
                | Op::Move {
                    id,
                    side,
                    price,
                    qty,
                } => (id, side, price, qty),
                _ => return,
            };
            let filled: u64 = events
                .iter()
                .map(|e| match *e {
                    Event::Trade { taker, qty, .. } if taker == id => qty,
                    _ => 0,
                })
                .sum();
            let accepted = events
                .iter()
                .any(|e| matches!(e, Event::Accepted { .. } | Event::Replaced { .. }));
            if accepted && filled < qty {
                info.insert(
                    id,
                    Live {
                        side,
                        price,
                        open: qty - filled,
                        pos: live.len(),
                    },
                );
                live.push(id);
            }
        };
    let mut prefill = Vec::with_capacity(resting_target);
    for _ in 0..resting_target {
        next_id += 1;
        let side = rng.side();
        let op = Op::Place {
            id: next_id,
            account: rng.below(u64::from(accounts)) as u32,
            side,
            price: passive(&mut rng, side),
            qty: 1 + rng.below(100),
            ioc: false,
        };
        track(&op, &mut venue, &mut live, &mut info);
        prefill.push(op);
    }
    let resting_after_prefill = venue.venue.resting_orders();
    let mut stream = Vec::with_capacity(ops);
    let mut mix = [0usize; 4];
    let (low, high) = (resting_target * 4 / 5, resting_target * 6 / 5);
    while stream.len() < ops {
        let roll = rng.below(100);
        let kind = match roll {
            0..9 if live.len() > high => 2,
            0..9 => 0,
            9..12 => 1,
            12..18 if live.len() < low => 0,
            12..18 => 2,
            _ => 3,
        };
        let kind = if kind >= 2 && live.is_empty() {
            0
        } else {
            kind
        };
        let op = match kind {
            0 | 1 => {
                next_id += 1;
                let side = rng.side();
                let ioc = kind == 1;
                let price = if ioc || rng.below(10) == 0 {
                    aggressive(&mut rng, side)
                } else {
                    passive(&mut rng, side)
                };
                Op::Place {
                    id: next_id,
                    account: rng.below(u64::from(accounts)) as u32,
                    side,
                    price,
                    qty: 1 + rng.below(100),
                    ioc,
                }
            }
            2 => Op::Cancel {
                id: live[rng.below(live.len() as u64) as usize],
            },
            _ => {
                let id = live[rng.below(live.len() as u64) as usize];
                let Live {
                    side, price, open, ..
                } = info[&id];
                // A move always changes the price (as in exchange-core): at the same price and
                // size, sequent would keep the order's priority where a cancel-and-add peer
                // cannot.
                let mut to = passive(&mut rng, side);
                while to == price {
                    to = passive(&mut rng, side);
                }
                Op::Move {
                    id,
                    side,
                    price: to,
                    qty: open,
                }
            }
        };
        mix[kind] += 1;
        track(&op, &mut venue, &mut live, &mut info);
        stream.push(op);
    }
    Stream {
        prefill,
        ops: stream,
        mix,
        resting_after_prefill,
        resting_at_end: venue.venue.resting_orders(),
    }
}

/// An engine under test.
pub trait Engine {
    /// Applies one operation; returns the quantity it traded (for the cross-check).
    fn apply(&mut self, now_ns: u64, op: &Op) -> u64;
}

/// The sequent venue: throttle and book, events into a reused `Vec`.
#[derive(Debug)]
pub struct SequentEngine {
    venue: Venue,
    events: Vec<Event>,
}

impl SequentEngine {
    pub fn new(ops: usize, resting_target: usize, accounts: u32) -> Self {
        let mut venue = Venue::new(venue_config(ops, resting_target, accounts));
        let mut events = Vec::with_capacity(1 << 12);
        venue.apply(
            0,
            &Command::SetLimits {
                account: None,
                limits: bench_limits(),
            },
            &mut events,
        );
        venue.apply(
            0,
            &Command::SetReference {
                symbol: 0,
                price: MID,
            },
            &mut events,
        );
        Self { venue, events }
    }
}

impl Engine for SequentEngine {
    fn apply(&mut self, now_ns: u64, op: &Op) -> u64 {
        self.events.clear();
        self.venue.apply(now_ns, &to_command(op), &mut self.events);
        self.events
            .iter()
            .map(|e| match *e {
                Event::Trade { qty, .. } => qty,
                _ => 0,
            })
            .sum()
    }
}

/// The `lobster` crate's order book.
#[derive(Debug)]
pub struct LobsterEngine {
    book: lobster::OrderBook,
}

impl LobsterEngine {
    pub fn new(resting_target: usize) -> Self {
        Self {
            book: lobster::OrderBook::new(resting_target * 4, 16, false),
        }
    }
}

fn lobster_side(side: Side) -> lobster::Side {
    match side {
        Side::Buy => lobster::Side::Bid,
        Side::Sell => lobster::Side::Ask,
    }
}

fn lobster_filled(event: &lobster::OrderEvent) -> (u64, bool) {
    match event {
        lobster::OrderEvent::Filled { filled_qty, .. } => (*filled_qty, false),
        lobster::OrderEvent::PartiallyFilled { filled_qty, .. } => (*filled_qty, true),
        lobster::OrderEvent::Placed { .. } => (0, true),
        _ => (0, false),
    }
}

impl Engine for LobsterEngine {
    fn apply(&mut self, _now_ns: u64, op: &Op) -> u64 {
        use lobster::OrderType;
        match *op {
            Op::Place {
                id,
                side,
                price,
                qty,
                ioc,
                ..
            } => {
                let event = self.book.execute(OrderType::Limit {
                    id: u128::from(id),
                    side: lobster_side(side),
                    qty,
                    price: price as u64,
                });
                let (filled, rested) = lobster_filled(&event);
                if ioc && rested {
                    self.book.execute(OrderType::Cancel { id: u128::from(id) });
                }
                filled
            }
            Op::Cancel { id } => {
                self.book.execute(OrderType::Cancel { id: u128::from(id) });
                0
            }
            Op::Move {
                id,
                side,
                price,
                qty,
            } => {
                self.book.execute(OrderType::Cancel { id: u128::from(id) });
                let event = self.book.execute(OrderType::Limit {
                    id: u128::from(id),
                    side: lobster_side(side),
                    qty,
                    price: price as u64,
                });
                lobster_filled(&event).0
            }
        }
    }
}

/// Which engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    Sequent,
    Lobster,
}

impl Impl {
    pub const ALL: [Self; 2] = [Self::Sequent, Self::Lobster];

    pub fn name(self) -> &'static str {
        match self {
            Self::Sequent => "sequent-matching",
            Self::Lobster => "lobster",
        }
    }

    fn build(self, ops: usize, resting_target: usize, accounts: u32) -> Box<dyn Engine> {
        match self {
            Self::Sequent => Box::new(SequentEngine::new(ops, resting_target, accounts)),
            Self::Lobster => Box::new(LobsterEngine::new(resting_target)),
        }
    }
}

impl std::str::FromStr for Impl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|i| i.name() == s || (s == "sequent" && *i == Self::Sequent))
            .ok_or_else(|| format!("unknown impl {s:?}: sequent-matching or lobster"))
    }
}

/// What a run needs besides the stream.
#[derive(Debug, Clone)]
pub struct MatchingConfig {
    pub impls: Vec<Impl>,
    /// Open-loop rates, operations per second.
    pub rates: Vec<u64>,
    /// Seconds of stream per open-loop rate (capped by the stream's length).
    pub seconds_per_rate: f64,
    pub resting_target: usize,
    pub accounts: u32,
    /// Open-loop runs per (impl, rate); the median by p99 is reported.
    pub repeats: usize,
    /// Reads the binary's counting allocator: allocations so far, and bytes live now.
    pub allocations: fn() -> (u64, i64),
}

/// One (impl, scenario) result. The field names are the JSON keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatchingRow {
    #[serde(rename = "impl")]
    pub imp: String,
    /// `throughput` or `open-loop@RATE`.
    pub scenario: String,
    /// Operations per second achieved.
    pub ops_per_sec: u64,
    /// Intended rate (0 for throughput).
    pub rate: u64,
    pub ops: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub p9999_ns: u64,
    pub max_ns: u64,
    pub allocs_per_op: f64,
    /// Total traded quantity (must be equal between engines on the same stream).
    pub traded_qty: u64,
    /// Throughput: ops/s ratio to the peer; latency: peer p99 / this p99. >1 is better.
    pub vs_peer: Option<f64>,
    pub cores: usize,
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid bounds")
}

fn prefilled(imp: Impl, stream: &Stream, config: &MatchingConfig) -> Box<dyn Engine> {
    let mut engine = imp.build(stream.ops.len(), config.resting_target, config.accounts);
    for op in &stream.prefill {
        engine.apply(0, op);
    }
    engine
}

/// Full speed, one timestamp per operation (the per-operation cost of reading the clock is
/// included, as it is for both engines).
fn throughput(imp: Impl, stream: &Stream, config: &MatchingConfig, cores: usize) -> MatchingRow {
    let mut engine = prefilled(imp, stream, config);
    let clock = quanta::Clock::new();
    let mut hist = new_histogram();
    let (allocs_before, _) = (config.allocations)();
    let mut traded = 0;
    let started = Instant::now();
    let mut last = clock.raw();
    for (i, op) in stream.ops.iter().enumerate() {
        traded += engine.apply(i as u64 * 100, op);
        let now = clock.raw();
        let _ = hist.record(clock.delta_as_nanos(last, now).max(1));
        last = now;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (allocs_after, _) = (config.allocations)();
    row(
        imp,
        "throughput".to_owned(),
        0,
        stream.ops.len() as u64,
        elapsed,
        &hist,
        allocs_after - allocs_before,
        traded,
        cores,
    )
}

/// Open loop at `rate`: latency from each operation's intended start.
fn open_loop(
    imp: Impl,
    stream: &Stream,
    config: &MatchingConfig,
    rate: u64,
    cores: usize,
) -> MatchingRow {
    let n = ((rate as f64 * config.seconds_per_rate) as usize).clamp(1, stream.ops.len());
    let mut engine = prefilled(imp, stream, config);
    let clock = quanta::Clock::new();
    let mut hist = new_histogram();
    let (allocs_before, _) = (config.allocations)();
    let mut traded = 0;
    let started = Instant::now();
    let start = clock.raw();
    for (i, op) in stream.ops[..n].iter().enumerate() {
        let intended_ns = (i as u128 * 1_000_000_000 / u128::from(rate)) as u64;
        while clock.delta_as_nanos(start, clock.raw()) < intended_ns {
            std::hint::spin_loop();
        }
        traded += engine.apply(intended_ns, op);
        let done_ns = clock.delta_as_nanos(start, clock.raw());
        let _ = hist.record(done_ns.saturating_sub(intended_ns).max(1));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (allocs_after, _) = (config.allocations)();
    row(
        imp,
        format!("open-loop@{}", format_rate(rate)),
        rate,
        n as u64,
        elapsed,
        &hist,
        allocs_after - allocs_before,
        traded,
        cores,
    )
}

#[allow(clippy::too_many_arguments)]
fn row(
    imp: Impl,
    scenario: String,
    rate: u64,
    ops: u64,
    elapsed_s: f64,
    hist: &Histogram<u64>,
    allocs: u64,
    traded: u64,
    cores: usize,
) -> MatchingRow {
    MatchingRow {
        imp: imp.name().to_owned(),
        scenario,
        ops_per_sec: (ops as f64 / elapsed_s) as u64,
        rate,
        ops,
        p50_ns: hist.value_at_quantile(0.50),
        p99_ns: hist.value_at_quantile(0.99),
        p999_ns: hist.value_at_quantile(0.999),
        p9999_ns: hist.value_at_quantile(0.9999),
        max_ns: hist.max(),
        allocs_per_op: allocs as f64 / ops as f64,
        traded_qty: traded,
        vs_peer: None,
        cores,
    }
}

/// Memory figures printed with the table.
#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    /// sequent: bytes of one order slot (a resting order's whole record).
    pub sequent_order_slot_bytes: usize,
    /// sequent: bytes of the id table per id of the run (it remembers every id for duplicate
    /// detection, at most half full).
    pub sequent_id_index_bytes_per_id: usize,
    /// sequent: bytes per price level (level record plus its ladder entry).
    pub sequent_level_bytes: usize,
    /// lobster: heap bytes that the prefill added, per resting order.
    pub lobster_heap_bytes_per_resting_order: Option<f64>,
}

/// Runs every (impl, scenario); `progress` sees each row as it completes.
pub fn run_suite(
    stream: &Stream,
    config: &MatchingConfig,
    cores: usize,
    mut progress: impl FnMut(&MatchingRow),
) -> Result<(Vec<MatchingRow>, Memory), String> {
    let mut rows = Vec::new();
    for &imp in &config.impls {
        let r = throughput(imp, stream, config, cores);
        progress(&r);
        rows.push(r);
        for &rate in &config.rates {
            // The median run by p99: one descheduling on a shared machine moves a tail by
            // milliseconds, so a single run says more about the neighbours than the engine.
            let mut runs: Vec<MatchingRow> = (0..config.repeats.max(1))
                .map(|_| open_loop(imp, stream, config, rate, cores))
                .collect();
            runs.sort_by_key(|r| r.p99_ns);
            let r = runs.swap_remove((runs.len() - 1) / 2);
            progress(&r);
            rows.push(r);
        }
    }
    // Same stream, same rules: the engines must trade the same quantity in every scenario.
    for r in &rows {
        if let Some(other) = rows
            .iter()
            .find(|o| o.scenario == r.scenario && o.imp != r.imp)
        {
            if other.traded_qty != r.traded_qty {
                return Err(format!(
                    "{}: {} traded {} but {} traded {}: the engines disagree",
                    r.scenario, r.imp, r.traded_qty, other.imp, other.traded_qty
                ));
            }
        }
    }
    let peer = Impl::Lobster.name();
    let snapshot = rows.clone();
    for r in rows.iter_mut().filter(|r| r.imp != peer) {
        if let Some(p) = snapshot
            .iter()
            .find(|p| p.imp == peer && p.scenario == r.scenario)
        {
            r.vs_peer = Some(if r.rate == 0 {
                r.ops_per_sec as f64 / p.ops_per_sec.max(1) as f64
            } else {
                p.p99_ns as f64 / r.p99_ns.max(1) as f64
            });
        }
    }
    let lobster_heap = config.impls.contains(&Impl::Lobster).then(|| {
        let (_, before) = (config.allocations)();
        let engine = prefilled(Impl::Lobster, stream, config);
        let (_, after) = (config.allocations)();
        drop(engine);
        (after - before) as f64 / f64::from(stream.resting_after_prefill.max(1))
    });
    // The id table has twice as many entries as ids, rounded up to a power of two.
    let ids_max =
        venue_config(stream.ops.len(), config.resting_target, config.accounts).ids_max as usize;
    let memory = Memory {
        sequent_order_slot_bytes: Venue::ORDER_SLOT_BYTES,
        sequent_id_index_bytes_per_id: Venue::ID_ENTRY_BYTES * (ids_max * 2).next_power_of_two()
            / ids_max,
        sequent_level_bytes: Venue::LEVEL_BYTES,
        lobster_heap_bytes_per_resting_order: lobster_heap,
    };
    Ok((rows, memory))
}

const HEADERS: [&str; 11] = [
    "impl",
    "scenario",
    "ops/s",
    "vs peer",
    "p50",
    "p99",
    "p99.9",
    "p99.99",
    "max",
    "allocs/op",
    "ops",
];

fn cells(r: &MatchingRow) -> [String; 11] {
    [
        r.imp.clone(),
        r.scenario.clone(),
        format_rate(r.ops_per_sec),
        r.vs_peer
            .map_or_else(|| "-".to_owned(), |v| format!("{v:.2}x")),
        format_ns(r.p50_ns),
        format_ns(r.p99_ns),
        format_ns(r.p999_ns),
        format_ns(r.p9999_ns),
        format_ns(r.max_ns),
        format!("{:.2}", r.allocs_per_op),
        format_rate(r.ops),
    ]
}

/// A plain-text table.
pub fn render_table(rows: &[MatchingRow], memory: &Memory) -> String {
    let body: Vec<[String; 11]> = rows.iter().map(cells).collect();
    let mut widths = HEADERS.map(str::len);
    for line in &body {
        for (w, c) in widths.iter_mut().zip(line) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut write_line = |line: &[String]| {
        for (i, (cell, w)) in line.iter().zip(widths).enumerate() {
            let pad = " ".repeat(w - cell.chars().count());
            if i < 2 {
                let _ = write!(out, "{cell}{pad}  ");
            } else {
                let _ = write!(out, "{pad}{cell}  ");
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    };
    write_line(&HEADERS.map(str::to_owned));
    for line in &body {
        write_line(line);
    }
    let _ = writeln!(out, "\n{}", memory_line(memory));
    out
}

fn memory_line(m: &Memory) -> String {
    format!(
        "memory: sequent {} B per resting order (slot) + {} B id index per id of the run + {} B per price level; lobster {}",
        m.sequent_order_slot_bytes,
        m.sequent_id_index_bytes_per_id,
        m.sequent_level_bytes,
        m.lobster_heap_bytes_per_resting_order.map_or_else(
            || "not run".to_owned(),
            |b| format!("{b:.0} B of heap per resting order (measured over the prefill)")
        )
    )
}

/// Machine, stream and a GitHub table, for docs/BENCHMARKS.md.
pub fn render_markdown(
    machine: &Machine,
    command: &str,
    stream: &Stream,
    rows: &[MatchingRow],
    memory: &Memory,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Command: `{command}`\n");
    let _ = writeln!(out, "| machine | |\n|---|---|");
    let _ = writeln!(out, "| cores (available_parallelism) | {} |", machine.cores);
    let _ = writeln!(out, "| CPU | {} |", machine.cpu_model);
    let _ = writeln!(out, "| kernel | {} |", machine.kernel);
    let _ = writeln!(out, "| commit | {} |", machine.git_commit);
    let _ = writeln!(
        out,
        "| cores busy just before the run | {} |",
        machine.busy_text()
    );
    let _ = writeln!(
        out,
        "| stream | {} ops: {} GTC, {} IOC, {} cancel, {} move; {} resting after prefill, {} at end |\n",
        stream.ops.len(),
        stream.mix[0],
        stream.mix[1],
        stream.mix[2],
        stream.mix[3],
        stream.resting_after_prefill,
        stream.resting_at_end
    );
    let _ = writeln!(out, "| {} |", HEADERS.join(" | "));
    let _ = writeln!(
        out,
        "|---|---|{}|",
        vec!["---:"; HEADERS.len() - 2].join("|")
    );
    for r in rows {
        let mut line = cells(r);
        if r.imp == Impl::Sequent.name() {
            line[0] = format!("**{}**", line[0]);
        }
        let _ = writeln!(out, "| {} |", line.join(" | "));
    }
    let _ = writeln!(out, "\n{}", memory_line(memory));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_allocations() -> (u64, i64) {
        (0, 0)
    }

    #[test]
    fn the_stream_has_the_mix_and_is_reproducible() {
        let a = generate(7, 20_000, 2_000, 16);
        let b = generate(7, 20_000, 2_000, 16);
        assert_eq!(a.ops, b.ops);
        let pct = |n: usize| n * 100 / a.ops.len();
        assert!((7..=11).contains(&pct(a.mix[0])), "{:?}", a.mix);
        assert!((2..=4).contains(&pct(a.mix[1])), "{:?}", a.mix);
        assert!((4..=8).contains(&pct(a.mix[2])), "{:?}", a.mix);
        assert!((78..=86).contains(&pct(a.mix[3])), "{:?}", a.mix);
        assert!(a.resting_at_end > 1_000, "{}", a.resting_at_end);
    }

    #[test]
    fn both_engines_trade_the_same_quantity() {
        let stream = generate(11, 20_000, 1_000, 8);
        let config = MatchingConfig {
            impls: Impl::ALL.to_vec(),
            rates: vec![1_000_000_000],
            seconds_per_rate: 1e-3,
            resting_target: 1_000,
            accounts: 8,
            repeats: 1,
            allocations: no_allocations,
        };
        let (rows, memory) = run_suite(&stream, &config, 2, |_| {}).unwrap();
        assert_eq!(rows.len(), 4);
        assert!(rows[0].traded_qty > 0);
        assert_eq!(rows[0].traded_qty, rows[2].traded_qty);
        assert!(rows[0].vs_peer.is_some());
        assert_eq!(memory.sequent_order_slot_bytes, 48);
        assert!(render_table(&rows, &memory).contains("sequent-matching"));
    }
}
