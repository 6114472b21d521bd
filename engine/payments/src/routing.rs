//! Stage 4, routing: which acquirer gets an authorisation, and each acquirer's circuit breaker.
//!
//! Eligible acquirers take the card's BIN and the currency, were not tried for this payment yet,
//! have room in flight (back-pressure: `in_flight_max`) and a breaker that lets traffic through.
//! Among them the highest score wins, `approval‰ × route_approval_weight − cost_bps ×
//! route_cost_weight` (integers), ties to the lower acquirer id. The approval rate counts the
//! outcomes of the last `approval_window` of sequenced time (at most 128 of them).
//!
//! Breaker (on sequenced time): `Closed` counts consecutive failures (errors and timeouts);
//! `breaker_failures` of them open it until `now + breaker_open`. When that time has come, the
//! next authorisation routed there is the single probe (`HalfOpen`): an answer (approved or
//! declined) closes the breaker, a failure opens it again.

use std::collections::VecDeque;

use crate::config::{AcquirerConfig, Config};
use crate::screen::bin8;
use crate::types::{AcquirerId, Bin, Nanos};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breaker {
    Closed { failures: u32 },
    Open { until: Nanos },
    HalfOpen,
}

/// The approval rate starts from a prior of this many samples at `PRIOR_PERMILLE`. The prior is
/// optimistic on purpose: an acquirer whose bad samples have aged out of the window (after an
/// outage) scores as good as new and gets traffic again, which is how it earns a real rate back;
/// a pessimistic prior would starve it forever behind the acquirer that served meanwhile.
const PRIOR_SAMPLES: u64 = 8;
const PRIOR_PERMILLE: u64 = 1000;
/// Most outcomes remembered per acquirer.
pub const APPROVAL_SAMPLES_MAX: usize = 128;

#[derive(Clone)]
pub struct AcquirerState {
    pub config: AcquirerConfig,
    pub breaker: Breaker,
    /// Authorisations sent and not yet answered or timed out.
    pub in_flight: u32,
    /// The last outcomes (at most `APPROVAL_SAMPLES_MAX`), oldest first: when, and whether
    /// approved (declines, errors and timeouts are not).
    outcomes: VecDeque<(Nanos, bool)>,
}

/// Outcomes print as a count: their raw nanosecond timestamps would read as long numbers.
impl std::fmt::Debug for AcquirerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcquirerState")
            .field("id", &self.config.id)
            .field("breaker", &self.breaker)
            .field("in_flight", &self.in_flight)
            .field("samples", &self.outcomes.len())
            .finish()
    }
}

impl AcquirerState {
    /// Approval rate per mille over the outcomes younger than `window` at `now`, with the prior.
    pub fn approval_permille(&self, window: Nanos, now: Nanos) -> u64 {
        let (mut n, mut approved) = (0u64, 0u64);
        for &(at, ok) in self.outcomes.iter().rev() {
            if at.0.saturating_add(window.0) <= now.0 {
                break;
            }
            n += 1;
            approved += u64::from(ok);
        }
        (approved * 1000 + PRIOR_SAMPLES * PRIOR_PERMILLE) / (n + PRIOR_SAMPLES)
    }

    fn takes(&self, bin: Bin, currency: u16) -> bool {
        let b = bin8(bin);
        self.config.currencies.contains(&currency)
            && (self.config.bin_ranges.is_empty()
                || self
                    .config
                    .bin_ranges
                    .iter()
                    .any(|&(lo, hi)| lo <= b && b <= hi))
    }

    /// Whether the breaker lets one more authorisation through at `now`.
    pub fn breaker_allows(&self, now: Nanos) -> bool {
        match self.breaker {
            Breaker::Closed { .. } => true,
            Breaker::Open { until } => now >= until,
            // One probe at a time: the probe is the only thing in flight.
            Breaker::HalfOpen => self.in_flight == 0,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Router {
    pub acquirers: Vec<AcquirerState>,
}

impl Router {
    pub fn new(config: &Config) -> Self {
        let mut acquirers: Vec<AcquirerState> = config
            .acquirers
            .iter()
            .map(|a| AcquirerState {
                config: a.clone(),
                breaker: Breaker::Closed { failures: 0 },
                in_flight: 0,
                outcomes: VecDeque::with_capacity(APPROVAL_SAMPLES_MAX),
            })
            .collect();
        acquirers.sort_by_key(|a| a.config.id);
        Self { acquirers }
    }

    pub fn get(&self, id: AcquirerId) -> Option<&AcquirerState> {
        self.acquirers.iter().find(|a| a.config.id == id)
    }

    fn get_mut(&mut self, id: AcquirerId) -> Option<&mut AcquirerState> {
        self.acquirers.iter_mut().find(|a| a.config.id == id)
    }

    /// The best acquirer for a card at `now`, skipping `tried`; `None` when no route is open.
    pub fn choose(
        &self,
        config: &Config,
        bin: Bin,
        currency: u16,
        tried: impl Fn(AcquirerId) -> bool,
        now: Nanos,
    ) -> Option<AcquirerId> {
        let mut best: Option<(i64, AcquirerId)> = None;
        for a in &self.acquirers {
            if !a.takes(bin, currency)
                || tried(a.config.id)
                || a.in_flight >= a.config.in_flight_max
                || !a.breaker_allows(now)
            {
                continue;
            }
            let score = a.approval_permille(config.approval_window, now) as i64
                * config.route_approval_weight
                - i64::from(a.config.cost_bps) * config.route_cost_weight;
            // Acquirers are in id order: strictly greater keeps the lower id on a tie.
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, a.config.id));
            }
        }
        best.map(|(_, id)| id)
    }

    /// When a card that found no route may find one: the earliest of the reopening times of
    /// open breakers and, for acquirers that are busy (full, or probing), `now + auth_timeout`
    /// (by then an attempt in flight has been answered or timed out). `None` when no acquirer
    /// takes the card at all.
    pub fn retry_at(&self, config: &Config, bin: Bin, currency: u16, now: Nanos) -> Option<Nanos> {
        self.acquirers
            .iter()
            .filter(|a| a.takes(bin, currency))
            .map(|a| match a.breaker {
                Breaker::Open { until } if until > now => until,
                _ => Nanos(now.0.saturating_add(config.auth_timeout.0)),
            })
            .min()
    }

    /// An authorisation went out to `id` at `now`.
    pub fn on_send(&mut self, id: AcquirerId, now: Nanos) {
        let a = self.get_mut(id).expect("routed to a configured acquirer");
        if let Breaker::Open { until } = a.breaker {
            assert!(now >= until, "routed through an open breaker");
            a.breaker = Breaker::HalfOpen;
        }
        a.in_flight += 1;
    }

    /// An attempt at `id` left flight with an answer (`approved` or declined) or a failure
    /// (`answered == false`: error or timeout).
    pub fn on_outcome(
        &mut self,
        config: &Config,
        id: AcquirerId,
        answered: bool,
        approved: bool,
        now: Nanos,
    ) {
        let a = self.get_mut(id).expect("attempt on a configured acquirer");
        assert!(a.in_flight > 0, "outcome without an attempt in flight");
        a.in_flight -= 1;
        if a.outcomes.len() == APPROVAL_SAMPLES_MAX {
            a.outcomes.pop_front();
        }
        a.outcomes.push_back((now, approved));
        a.breaker = match (a.breaker, answered) {
            (_, true) => Breaker::Closed { failures: 0 },
            (Breaker::Closed { failures }, false) if failures + 1 < config.breaker_failures => {
                Breaker::Closed {
                    failures: failures + 1,
                }
            }
            // An attempt sent before the breaker opened can still fail while it is open: that
            // pushes the reopening further out.
            (_, false) => Breaker::Open {
                until: Nanos(now.0.saturating_add(config.breaker_open.0)),
            },
        };
    }

    pub(crate) fn digest(&self, h: &mut crate::digest::H) {
        h.u64(self.acquirers.len() as u64);
        for a in &self.acquirers {
            h.u64(u64::from(a.config.id.0));
            match a.breaker {
                Breaker::Closed { failures } => {
                    h.u8(0);
                    h.u64(u64::from(failures));
                }
                Breaker::Open { until } => {
                    h.u8(1);
                    h.u64(until.0);
                }
                Breaker::HalfOpen => h.u8(2),
            }
            h.u64(u64::from(a.in_flight));
            h.u64(a.outcomes.len() as u64);
            for &(at, ok) in &a.outcomes {
                h.u64(at.0);
                h.u8(u8::from(ok));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_half_opens_and_closes() {
        let config = Config::example();
        let mut r = Router::new(&config);
        let a = AcquirerId(1);
        let pick = |r: &Router, now| r.choose(&config, Bin(41_234_567), 978, |_| false, Nanos(now));
        assert_eq!(
            pick(&r, 0),
            Some(a),
            "cheaper acquirer wins at equal approval"
        );
        for _ in 0..config.breaker_failures {
            r.on_send(a, Nanos(0));
            r.on_outcome(&config, a, false, false, Nanos(5));
        }
        assert_eq!(
            r.get(a).unwrap().breaker,
            Breaker::Open {
                until: Nanos(5 + config.breaker_open.0)
            }
        );
        assert_eq!(pick(&r, 6), Some(AcquirerId(2)), "traffic fails over");
        let reopen = 5 + config.breaker_open.0;
        // Its approval rate fell with the failures, so it competes with a lower score.
        let only_a =
            |r: &Router, now| r.choose(&config, Bin(41_234_567), 978, |x| x != a, Nanos(now));
        assert_eq!(only_a(&r, reopen - 1), None, "still open");
        assert_eq!(
            only_a(&r, reopen),
            Some(a),
            "half-open lets a probe through"
        );
        r.on_send(a, Nanos(reopen));
        assert_eq!(r.get(a).unwrap().breaker, Breaker::HalfOpen);
        assert!(
            !r.get(a).unwrap().breaker_allows(Nanos(reopen)),
            "one probe at a time"
        );
        r.on_outcome(&config, a, true, true, Nanos(reopen + 1));
        assert_eq!(r.get(a).unwrap().breaker, Breaker::Closed { failures: 0 });
    }

    #[test]
    fn approval_rate_moves_routing() {
        let config = Config::example();
        let mut r = Router::new(&config);
        let a = AcquirerId(1);
        for _ in 0..50 {
            r.on_send(a, Nanos(0));
            r.on_outcome(&config, a, true, false, Nanos(0));
        }
        assert!(
            r.get(a)
                .unwrap()
                .approval_permille(config.approval_window, Nanos(0))
                < 200
        );
        assert_eq!(
            r.choose(&config, Bin(41_234_567), 978, |_| false, Nanos(0)),
            Some(AcquirerId(2))
        );
    }

    #[test]
    fn bin_ranges_and_currencies_decide_eligibility() {
        let mut config = Config::example();
        // Acquirer 2 takes only 4-series cards, and is the cheaper one now.
        config.acquirers[1].bin_ranges = vec![(40_000_000, 49_999_999)];
        config.acquirers[1].cost_bps = 50;
        let r = Router::new(&config);
        let pick = |bin, currency| r.choose(&config, Bin(bin), currency, |_| false, Nanos(0));
        assert_eq!(
            pick(412_345, 978),
            Some(AcquirerId(2)),
            "a 6-digit BIN is scaled to 8"
        );
        assert_eq!(
            pick(51_234_567, 978),
            Some(AcquirerId(1)),
            "outside acquirer 2's range"
        );
        assert_eq!(
            pick(41_234_567, 840),
            Some(AcquirerId(1)),
            "acquirer 2 takes no USD"
        );
        assert_eq!(pick(41_234_567, 826), None, "nobody takes GBP");
    }

    #[test]
    fn in_flight_cap_is_back_pressure() {
        let mut config = Config::example();
        config.acquirers.truncate(1);
        config.acquirers[0].in_flight_max = 2;
        let mut r = Router::new(&config);
        r.on_send(AcquirerId(1), Nanos(0));
        r.on_send(AcquirerId(1), Nanos(0));
        assert_eq!(
            r.choose(&config, Bin(41_234_567), 978, |_| false, Nanos(0)),
            None
        );
    }
}
