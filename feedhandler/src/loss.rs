//! Seeded loss injection for tests, and the random session generator the tests, the bench and
//! `sequent-feedsub --demo-publish` share. Deterministic: the same seed gives the same faults and
//! the same session.

use crate::book::Books;
use crate::proto::{Message, Side, build};

/// SplitMix64 (Steele, Lea, Flood 2014): small, fast, good enough for test faults.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `ppm` / 1,000,000.
    pub fn chance_ppm(&mut self, ppm: u32) -> bool {
        self.below(1_000_000) < u64::from(ppm)
    }
}

/// Shares of packets to drop, duplicate and reorder, in parts per million.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LossConfig {
    pub drop_ppm: u32,
    pub duplicate_ppm: u32,
    pub reorder_ppm: u32,
    pub seed: u64,
}

impl LossConfig {
    pub fn is_off(&self) -> bool {
        self.drop_ppm == 0 && self.duplicate_ppm == 0 && self.reorder_ppm == 0
    }
}

/// What a loss injector did, for test output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LossStats {
    pub packets: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub reordered: u64,
}

/// Drops, duplicates and reorders packets on one line. A reordered packet is held back and goes
/// out after the next packet (or at [`LossInjector::flush`]).
#[derive(Debug)]
pub struct LossInjector {
    config: LossConfig,
    rng: Rng,
    held: Option<Vec<u8>>,
    pub stats: LossStats,
}

impl LossInjector {
    pub fn new(config: LossConfig) -> LossInjector {
        LossInjector {
            config,
            rng: Rng::new(config.seed),
            held: None,
            stats: LossStats::default(),
        }
    }

    /// Decides the fate of one packet; appends what goes on the wire now to `out`.
    pub fn handle_packet(&mut self, packet: &[u8], out: &mut Vec<Vec<u8>>) {
        self.stats.packets += 1;
        if self.rng.chance_ppm(self.config.drop_ppm) {
            self.stats.dropped += 1;
            return;
        }
        if self.held.is_none() && self.rng.chance_ppm(self.config.reorder_ppm) {
            self.stats.reordered += 1;
            self.held = Some(packet.to_vec());
            return;
        }
        out.push(packet.to_vec());
        if self.rng.chance_ppm(self.config.duplicate_ppm) {
            self.stats.duplicated += 1;
            out.push(packet.to_vec());
        }
        if let Some(held) = self.held.take() {
            out.push(held);
        }
    }

    /// Releases a held packet.
    pub fn flush(&mut self, out: &mut Vec<Vec<u8>>) {
        if let Some(held) = self.held.take() {
            out.push(held);
        }
    }
}

/// A random but valid session: symbol directory, then adds, executions, partial cancels,
/// deletes, replaces and trades against orders that rest at that moment. Prices stay near 100.00
/// so books grow levels; ~`resting_target` orders rest at any time.
#[derive(Debug)]
pub struct SessionGenerator {
    rng: Rng,
    books: Books,
    live: Vec<u64>,
    next_ref: u64,
    next_match: u64,
    symbols: u16,
    time_ns: u64,
    resting_target: usize,
    started: bool,
}

impl SessionGenerator {
    pub fn new(seed: u64, symbols: u16, resting_target: usize) -> SessionGenerator {
        assert!(symbols >= 1);
        SessionGenerator {
            rng: Rng::new(seed),
            books: Books::new(),
            live: Vec::new(),
            next_ref: 1,
            next_match: 1,
            symbols,
            time_ns: 34_200_000_000_000,
            resting_target,
            started: false,
        }
    }

    /// Appends the next message(s) (the first call emits the system event and directory).
    pub fn next_message(&mut self, out: &mut Vec<Message>) {
        self.time_ns += 1 + self.rng.below(2_000);
        let t = self.time_ns;
        if !self.started {
            self.started = true;
            out.push(build::system(t, b'O'));
            for locate in 1..=self.symbols {
                let message = build::symbol(t, locate, &format!("SYM{locate}"));
                self.books.apply(&message);
                out.push(message);
            }
            return;
        }
        let roll = self.rng.below(100);
        let grow = self.live.len() < self.resting_target;
        let mut touched = None;
        let message = if self.live.is_empty() || (grow && roll < 55) || (!grow && roll < 30) {
            let locate = 1 + self.rng.below(u64::from(self.symbols)) as u16;
            let side = if self.rng.below(2) == 0 {
                Side::Buy
            } else {
                Side::Sell
            };
            let offset = self.rng.below(40) as i64;
            let price = match side {
                Side::Buy => 1_000_000 - 100 * offset,
                Side::Sell => 1_000_100 + 100 * offset,
            };
            let shares = 100 * (1 + self.rng.below(20) as u32);
            let order_ref = self.next_ref;
            self.next_ref += 1;
            self.live.push(order_ref);
            build::add(t, order_ref, locate, side, shares, price)
        } else {
            let index = self.rng.below(self.live.len() as u64) as usize;
            let order_ref = self.live[index];
            touched = Some(index);
            let order = *self.books.order(order_ref).expect("live orders rest");
            let shares = u32::try_from(order.shares).expect("generated sizes fit");
            let kind = self.rng.below(100);
            let partial = 1 + self.rng.below(u64::from(shares)) as u32;
            if kind < 25 {
                self.next_match += 1;
                build::executed(
                    t,
                    order_ref,
                    order.locate,
                    partial,
                    self.next_match,
                    order.price,
                )
            } else if kind < 45 {
                build::cancelled(t, order_ref, order.locate, partial)
            } else if kind < 75 {
                build::deleted(t, order_ref, order.locate)
            } else if kind < 92 {
                let new_ref = self.next_ref;
                self.next_ref += 1;
                self.live.push(new_ref);
                build::replaced(
                    t,
                    order_ref,
                    new_ref,
                    order.locate,
                    partial,
                    order.price + 100,
                )
            } else {
                self.next_match += 1;
                build::trade(
                    t,
                    0,
                    order.locate,
                    order.side,
                    partial,
                    order.price,
                    self.next_match,
                )
            }
        };
        self.books.apply(&message);
        if let Some(index) = touched {
            if self.books.order(self.live[index]).is_none() {
                self.live.swap_remove(index);
            }
        }
        out.push(message);
    }

    pub fn books(&self) -> &Books {
        &self.books
    }
}
