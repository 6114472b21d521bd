//! Stage 1, screening: fraud rules and velocity over sliding windows of sequenced time.
//!
//! Each rule yields one [`Reason`]; the rules run in the order of [`Screen::check`] and the first
//! that fails is the answer (the order is the order of precedence in `docs/payments.md`). Every
//! attempt that reaches screening counts toward velocity, rejected or not: card testing is a run
//! of attempts, most of them refused.

use std::collections::{BTreeMap, VecDeque};

use crate::config::{Config, MerchantConfig};
use crate::types::{Bin, CreatePayment, MerchantId, Nanos, Reason, Token};

/// Sliding-window counters keyed by card token and by merchant. Each window keeps at most its
/// limit of timestamps (the newest), which is all a "more than N in W" check needs, so memory is
/// bounded per key; keys with empty windows are pruned by [`Screen::prune`].
#[derive(Clone, Default)]
pub struct Screen {
    card_attempts: BTreeMap<Token, VecDeque<u64>>,
    merchant_attempts: BTreeMap<MerchantId, VecDeque<u64>>,
    card_declines: BTreeMap<Token, VecDeque<u64>>,
}

/// Counts only: the windows hold raw nanosecond timestamps, which print as long digit runs.
impl std::fmt::Debug for Screen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Screen")
            .field("cards", &self.card_attempts.len())
            .field("merchants", &self.merchant_attempts.len())
            .field("cards_with_declines", &self.card_declines.len())
            .finish()
    }
}

/// Drops timestamps older than `window` before `now` and says how many remain.
fn live(q: &mut VecDeque<u64>, now: u64, window: u64) -> usize {
    while q.front().is_some_and(|&t| t.saturating_add(window) <= now) {
        q.pop_front();
    }
    q.len()
}

fn record(q: &mut VecDeque<u64>, now: u64, keep: usize) {
    q.push_back(now);
    while q.len() > keep.max(1) {
        q.pop_front();
    }
}

/// Normalises a 6- or 8-digit BIN to 8 digits (`412345` → `41234500`), the form BIN ranges in the
/// configuration use.
pub fn bin8(bin: Bin) -> u32 {
    if bin.0 < 10_000_000 {
        bin.0.saturating_mul(100)
    } else {
        bin.0
    }
}

/// `YYMM` of sequenced time (UTC), from the days-since-epoch civil calendar algorithm
/// (H. Hinnant, "chrono-compatible low-level date algorithms"): integers only.
pub fn yymm(now: Nanos) -> u16 {
    let days = (now.0 / 86_400_000_000_000) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    ((year % 100) * 100 + month) as u16
}

impl Screen {
    /// Runs the rules for `req` at `now` and records the attempt. `None` means it passed.
    pub fn check(
        &mut self,
        config: &Config,
        merchant: &MerchantConfig,
        req: &CreatePayment,
        now: Nanos,
    ) -> Option<Reason> {
        let card = self.card_attempts.entry(req.token).or_default();
        let card_recent = live(card, now.0, config.card_velocity_window.0);
        record(card, now.0, config.card_velocity_max as usize);
        let m = self.merchant_attempts.entry(req.merchant).or_default();
        let merchant_recent = live(m, now.0, config.merchant_velocity_window.0);
        record(m, now.0, merchant.velocity_max as usize);
        let declines = self
            .card_declines
            .get_mut(&req.token)
            .map_or(0, |q| live(q, now.0, config.card_declines_window.0));

        if req.currency != merchant.currency {
            return Some(Reason::CurrencyMismatch);
        }
        if !expiry_valid(req.expiry.0, yymm(now)) {
            return Some(Reason::CardExpired);
        }
        if req.amount > merchant.payment_max {
            return Some(Reason::AmountAboveMerchantLimit);
        }
        let b = bin8(req.bin);
        let country = config
            .bin_countries
            .iter()
            .find(|r| r.lo <= b && b <= r.hi)
            .map(|r| r.country);
        if country.is_some_and(|c| config.blocked_countries.contains(&c)) {
            return Some(Reason::BinCountryBlocked);
        }
        if declines >= config.card_declines_max as usize {
            return Some(Reason::TooManyDeclines);
        }
        if card_recent >= config.card_velocity_max as usize {
            return Some(Reason::CardVelocity);
        }
        if merchant_recent >= merchant.velocity_max as usize {
            return Some(Reason::MerchantVelocity);
        }
        None
    }

    /// An issuer declined this card at `now`.
    pub fn record_decline(&mut self, config: &Config, token: Token, now: Nanos) {
        let q = self.card_declines.entry(token).or_default();
        record(q, now.0, config.card_declines_max as usize);
    }

    /// Forgets keys whose windows are empty at `now`.
    pub fn prune(&mut self, config: &Config, now: Nanos) {
        self.card_attempts
            .retain(|_, q| live(q, now.0, config.card_velocity_window.0) > 0);
        self.merchant_attempts
            .retain(|_, q| live(q, now.0, config.merchant_velocity_window.0) > 0);
        self.card_declines
            .retain(|_, q| live(q, now.0, config.card_declines_window.0) > 0);
    }

    pub(crate) fn digest(&self, h: &mut crate::digest::H) {
        h.u64(self.card_attempts.len() as u64);
        for (k, q) in &self.card_attempts {
            h.u128(k.0);
            h.list(q);
        }
        h.u64(self.merchant_attempts.len() as u64);
        for (k, q) in &self.merchant_attempts {
            h.u64(u64::from(k.0));
            h.list(q);
        }
        h.u64(self.card_declines.len() as u64);
        for (k, q) in &self.card_declines {
            h.u128(k.0);
            h.list(q);
        }
    }
}

/// A card is valid through the last day of its expiry month. An impossible month is expired.
fn expiry_valid(expiry: u16, now: u16) -> bool {
    let month = expiry % 100;
    (1..=12).contains(&month) && expiry >= now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yymm_of_known_dates() {
        assert_eq!(yymm(Nanos(0)), 7001);
        // 2023-11-14T22:13:20Z
        assert_eq!(yymm(Nanos(1_700_000_000_000_000_000)), 2311);
        // 2024-02-29T00:00:00Z
        assert_eq!(yymm(Nanos(1_709_164_800_000_000_000)), 2402);
    }

    #[test]
    fn expiry_rules() {
        assert!(expiry_valid(2311, 2311));
        assert!(!expiry_valid(2310, 2311));
        assert!(!expiry_valid(2313, 2311));
        assert!(expiry_valid(2801, 2311));
    }

    #[test]
    fn bins_normalise_to_eight_digits() {
        assert_eq!(bin8(Bin(412_345)), 41_234_500);
        assert_eq!(bin8(Bin(41_234_567)), 41_234_567);
    }
}
