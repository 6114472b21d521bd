//! Stage 2, limits: per-merchant daily volume and per-card daily spend, by UTC day of sequenced
//! time. An accepted payment reserves its amount on the day it was created; a payment that ends
//! without an authorisation (declined, rejected later, partially approved) gives back what it did
//! not use, so the counters hold what is authorised or still being authorised.

use std::collections::BTreeMap;

use crate::types::{MerchantId, Nanos, Reason, Token};

pub const DAY_NS: u64 = 86_400_000_000_000;

pub fn day_of(now: Nanos) -> u32 {
    (now.0 / DAY_NS) as u32
}

#[derive(Clone, Debug, Default)]
pub struct Limits {
    merchant_day: BTreeMap<(MerchantId, u32), u64>,
    card_day: BTreeMap<(Token, u32), u64>,
}

impl Limits {
    /// Checks both limits for `amount` on `day`; reserves it when both pass.
    pub fn check_and_reserve(
        &mut self,
        merchant: MerchantId,
        merchant_max: u64,
        token: Token,
        card_max: u64,
        day: u32,
        amount: u64,
    ) -> Option<Reason> {
        let m = self
            .merchant_day
            .get(&(merchant, day))
            .copied()
            .unwrap_or(0);
        if m.saturating_add(amount) > merchant_max {
            return Some(Reason::MerchantDailyLimit);
        }
        let c = self.card_day.get(&(token, day)).copied().unwrap_or(0);
        if c.saturating_add(amount) > card_max {
            return Some(Reason::CardDailyLimit);
        }
        *self.merchant_day.entry((merchant, day)).or_default() += amount;
        *self.card_day.entry((token, day)).or_default() += amount;
        None
    }

    /// Gives back `amount` reserved on `day`.
    pub fn release(&mut self, merchant: MerchantId, token: Token, day: u32, amount: u64) {
        if let Some(v) = self.merchant_day.get_mut(&(merchant, day)) {
            *v = v.saturating_sub(amount);
        }
        if let Some(v) = self.card_day.get_mut(&(token, day)) {
            *v = v.saturating_sub(amount);
        }
    }

    pub fn merchant_volume(&self, merchant: MerchantId, day: u32) -> u64 {
        self.merchant_day
            .get(&(merchant, day))
            .copied()
            .unwrap_or(0)
    }

    /// Forgets days before yesterday.
    pub fn prune(&mut self, today: u32) {
        let keep = today.saturating_sub(1);
        self.merchant_day.retain(|k, _| k.1 >= keep);
        self.card_day.retain(|k, _| k.1 >= keep);
    }

    pub(crate) fn digest(&self, h: &mut crate::digest::H) {
        h.u64(self.merchant_day.len() as u64);
        for ((m, d), v) in &self.merchant_day {
            h.u64(u64::from(m.0));
            h.u64(u64::from(*d));
            h.u64(*v);
        }
        h.u64(self.card_day.len() as u64);
        for ((t, d), v) in &self.card_day {
            h.u128(t.0);
            h.u64(u64::from(*d));
            h.u64(*v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merchant_limit_precedes_card_limit_and_release_restores() {
        let mut l = Limits::default();
        let (m, t) = (MerchantId(1), Token(7));
        assert_eq!(l.check_and_reserve(m, 100, t, 80, 0, 60), None);
        assert_eq!(
            l.check_and_reserve(m, 100, t, 80, 0, 50),
            Some(Reason::MerchantDailyLimit)
        );
        assert_eq!(
            l.check_and_reserve(m, 200, t, 80, 0, 30),
            Some(Reason::CardDailyLimit)
        );
        l.release(m, t, 0, 60);
        assert_eq!(l.check_and_reserve(m, 100, t, 80, 0, 80), None);
        assert_eq!(
            l.check_and_reserve(m, 100, t, 80, 1, 80),
            None,
            "a new day starts at 0"
        );
    }
}
