//! Configuration: merchants, acquirers, rules and limits. Fixed at construction; part of what
//! replay needs (the node journals it or pins it by hash).

use crate::types::{AcquirerId, MerchantId, Nanos};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerchantConfig {
    pub id: MerchantId,
    /// The one currency the merchant sells in (ISO 4217 numeric); others are `CurrencyMismatch`.
    pub currency: u16,
    /// Largest single payment (minor units).
    pub payment_max: u64,
    /// Largest authorised-or-pending volume per UTC day.
    pub daily_volume_max: u64,
    /// Payments at or above this amount need 3-D Secure when the request carries no result;
    /// `u64::MAX` never.
    pub three_ds_from: u64,
    /// Most payment attempts in `Config::merchant_velocity_window`.
    pub velocity_max: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcquirerConfig {
    pub id: AcquirerId,
    /// Inclusive ranges of 8-digit BINs this acquirer takes; empty takes every BIN.
    pub bin_ranges: Vec<(u32, u32)>,
    pub currencies: Vec<u16>,
    /// What the acquirer charges, basis points of the captured amount (deducted at settlement).
    pub cost_bps: u32,
    /// Most authorisations waiting for an answer at once (back-pressure).
    pub in_flight_max: u32,
}

/// An inclusive range of 8-digit BINs issued in `country` (ISO 3166 numeric).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BinCountry {
    pub lo: u32,
    pub hi: u32,
    pub country: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub merchants: Vec<MerchantConfig>,
    pub acquirers: Vec<AcquirerConfig>,
    pub bin_countries: Vec<BinCountry>,
    pub blocked_countries: Vec<u16>,
    pub card_velocity_max: u32,
    pub card_velocity_window: Nanos,
    pub merchant_velocity_window: Nanos,
    /// Issuer declines on one card within the window that block further attempts.
    pub card_declines_max: u32,
    pub card_declines_window: Nanos,
    pub card_daily_max: u64,
    /// How long an authorisation may wait for its answer before it is reversed.
    pub auth_timeout: Nanos,
    /// How long an authorisation hold lives before it expires (ledger pending timeout).
    pub auth_validity: Nanos,
    /// Most authorisation attempts per payment (each on a different acquirer).
    pub attempts_max: u8,
    /// Consecutive errors or timeouts that open an acquirer's breaker.
    pub breaker_failures: u32,
    /// How long an open breaker stays open before one probe is let through (half-open).
    pub breaker_open: Nanos,
    /// How far back outcomes count toward an acquirer's approval rate.
    pub approval_window: Nanos,
    /// Routing score = approval per mille × this − cost bps × `route_cost_weight`.
    pub route_approval_weight: i64,
    pub route_cost_weight: i64,
    pub three_ds_ares_timeout: Nanos,
    pub three_ds_challenge_timeout: Nanos,
    /// Most payments the engine holds (and four times as many idempotency keys).
    pub payments_max: u32,
    /// How long a merchant's idempotency key is remembered (from its first use).
    pub idempotency_window: Nanos,
}

impl Config {
    /// One merchant (EUR), two acquirers, a sensible rule set: the configuration the tests build
    /// on.
    pub fn example() -> Self {
        const SEC: u64 = 1_000_000_000;
        Config {
            merchants: vec![
                MerchantConfig {
                    id: MerchantId(1),
                    currency: 978,
                    payment_max: 1_000_000,
                    daily_volume_max: 100_000_000,
                    three_ds_from: 50_000,
                    velocity_max: 10_000,
                },
                MerchantConfig {
                    id: MerchantId(2),
                    currency: 978,
                    payment_max: 500_000,
                    daily_volume_max: 2_000_000,
                    three_ds_from: u64::MAX,
                    velocity_max: 10_000,
                },
            ],
            acquirers: vec![
                AcquirerConfig {
                    id: AcquirerId(1),
                    bin_ranges: vec![],
                    currencies: vec![978, 840],
                    cost_bps: 120,
                    in_flight_max: 64,
                },
                AcquirerConfig {
                    id: AcquirerId(2),
                    bin_ranges: vec![],
                    currencies: vec![978],
                    cost_bps: 180,
                    in_flight_max: 64,
                },
            ],
            bin_countries: vec![BinCountry {
                lo: 66_000_000,
                hi: 66_999_999,
                country: 408,
            }],
            blocked_countries: vec![408],
            card_velocity_max: 20,
            card_velocity_window: Nanos(60 * SEC),
            merchant_velocity_window: Nanos(SEC),
            card_declines_max: 5,
            card_declines_window: Nanos(3_600 * SEC),
            card_daily_max: 5_000_000,
            auth_timeout: Nanos(10 * SEC),
            auth_validity: Nanos(7 * 86_400 * SEC),
            attempts_max: 3,
            breaker_failures: 3,
            breaker_open: Nanos(30 * SEC),
            approval_window: Nanos(300 * SEC),
            route_approval_weight: 10,
            route_cost_weight: 1,
            three_ds_ares_timeout: Nanos(10 * SEC),
            three_ds_challenge_timeout: Nanos(600 * SEC),
            payments_max: 1 << 16,
            idempotency_window: Nanos(86_400 * SEC),
        }
    }

    pub fn merchant(&self, id: MerchantId) -> Option<&MerchantConfig> {
        self.merchants.iter().find(|m| m.id == id)
    }

    /// Every currency some merchant or acquirer uses, ascending.
    pub fn currencies(&self) -> Vec<u16> {
        let mut c: Vec<u16> = self
            .merchants
            .iter()
            .map(|m| m.currency)
            .chain(
                self.acquirers
                    .iter()
                    .flat_map(|a| a.currencies.iter().copied()),
            )
            .collect();
        c.sort_unstable();
        c.dedup();
        c
    }

    /// Panics on a configuration the engine cannot run safely with (checked at start-up).
    pub fn validate(&self) {
        assert!(self.attempts_max >= 1, "attempts_max must be at least 1");
        assert!(
            self.approval_window.0 > 0,
            "approval_window must be positive"
        );
        assert!(self.auth_timeout.0 > 0, "auth_timeout must be positive");
        // A hold must outlive every authorisation attempt, or it could expire while the payment
        // is still being authorised.
        assert!(
            self.auth_validity.0 > u64::from(self.attempts_max) * self.auth_timeout.0,
            "auth_validity must exceed attempts_max × auth_timeout"
        );
        assert!(self.payments_max >= 1);
        for (i, a) in self.acquirers.iter().enumerate() {
            assert!(a.in_flight_max >= 1);
            assert!(a.cost_bps <= 10_000);
            assert!(
                self.acquirers[..i].iter().all(|b| b.id != a.id),
                "duplicate acquirer id"
            );
        }
        for (i, m) in self.merchants.iter().enumerate() {
            assert!(
                self.merchants[..i].iter().all(|n| n.id != m.id),
                "duplicate merchant id"
            );
        }
    }
}
