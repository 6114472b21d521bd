//! Unit behaviour of the venue, one rule per test: order types, time in force, replace, STP, mass
//! cancel, DAY expiry, every rejection reason, every throttle check through the venue, holds and
//! releases, the kill switch and admin limit changes.

use sequent_matching::{
    CancelReason, Command, Event, LimitKind, Limits, NewOrder, Reject, Side, Stp, ThrottleReject,
    Tif, Venue, VenueConfig,
};

const BUY: Side = Side::Buy;
const SELL: Side = Side::Sell;

fn limit(id: u64, account: u32, side: Side, price: i64, qty: u64) -> NewOrder {
    NewOrder {
        id,
        account,
        symbol: 0,
        side,
        price: Some(price),
        qty,
        tif: Tif::Gtc,
        post_only: false,
        stp: Stp::Off,
    }
}

fn market(id: u64, account: u32, side: Side, qty: u64) -> NewOrder {
    NewOrder {
        price: None,
        ..limit(id, account, side, 1, qty)
    }
}

struct T {
    venue: Venue,
    now: u64,
    /// Every order sent, by id: (account, side), to check what trades name.
    orders: std::collections::HashMap<u64, (u32, Side)>,
}

impl T {
    fn new() -> Self {
        Self {
            venue: Venue::new(VenueConfig::SMALL),
            now: 0,
            orders: std::collections::HashMap::new(),
        }
    }

    fn with(config: VenueConfig) -> Self {
        Self {
            venue: Venue::new(config),
            now: 0,
            orders: std::collections::HashMap::new(),
        }
    }

    /// Applies `command`; every trade must name both orders' accounts and the taker's side
    /// (checked here), which are then cleared so that the expected lists stay short.
    fn run(&mut self, command: Command) -> Vec<Event> {
        if let Command::New(order) = command {
            self.orders.insert(order.id, (order.account, order.side));
        }
        let mut out = Vec::new();
        self.venue.apply(self.now, &command, &mut out);
        for event in &mut out {
            if let Event::Trade {
                taker,
                maker,
                taker_account,
                maker_account,
                taker_side,
                ..
            } = event
            {
                let (account, side) = self.orders[taker];
                assert_eq!(
                    (*taker_account, *taker_side),
                    (account, side),
                    "taker {taker}"
                );
                let (account, maker_side) = self.orders[maker];
                assert_eq!(*maker_account, account, "maker {maker}");
                assert_ne!(maker_side, side, "a trade is between opposite sides");
                (*taker_account, *maker_account, *taker_side) = (0, 0, Side::Buy);
            }
        }
        out
    }

    fn new_order(&mut self, order: NewOrder) -> Vec<Event> {
        self.run(Command::New(order))
    }

    fn book(&self, side: Side) -> Vec<(u64, i64, u64)> {
        self.venue
            .resting(0, side)
            .map(|r| (r.id, r.price, r.qty))
            .collect()
    }
}

fn accepted(id: u64) -> Event {
    Event::Accepted { id }
}
fn trade(taker: u64, maker: u64, price: i64, qty: u64) -> Event {
    Event::Trade {
        symbol: 0,
        taker,
        maker,
        taker_account: 0,
        maker_account: 0,
        taker_side: Side::Buy,
        price,
        qty,
    }
}
fn cancelled(id: u64, qty: u64, reason: CancelReason) -> Event {
    Event::Cancelled { id, qty, reason }
}
fn rejected(id: u64, reason: Reject) -> Event {
    Event::Rejected { id, reason }
}

#[test]
fn price_time_priority_and_resting_price() {
    let mut t = T::new();
    t.new_order(limit(1, 1, SELL, 101, 10));
    t.new_order(limit(2, 2, SELL, 100, 10));
    t.new_order(limit(3, 3, SELL, 100, 10));
    let out = t.new_order(limit(4, 4, BUY, 102, 25));
    assert_eq!(
        out,
        [
            accepted(4),
            trade(4, 2, 100, 10),
            trade(4, 3, 100, 10),
            trade(4, 1, 101, 5)
        ]
    );
    assert_eq!(t.book(SELL), [(1, 101, 5)]);
    assert_eq!(t.book(BUY), []);
}

#[test]
fn gtc_remainder_rests_behind_earlier_orders() {
    let mut t = T::new();
    t.new_order(limit(1, 1, BUY, 100, 5));
    let out = t.new_order(limit(2, 2, BUY, 100, 7));
    assert_eq!(out, [accepted(2)]);
    t.new_order(limit(3, 3, SELL, 99, 6));
    assert_eq!(t.book(BUY), [(2, 100, 6)]);
}

#[test]
fn market_remainder_is_cancelled() {
    let mut t = T::new();
    t.new_order(limit(1, 1, SELL, 100, 5));
    let out = t.new_order(market(2, 2, BUY, 8));
    assert_eq!(
        out,
        [
            accepted(2),
            trade(2, 1, 100, 5),
            cancelled(2, 3, CancelReason::Market)
        ]
    );
    let out = t.new_order(market(3, 2, SELL, 1));
    assert_eq!(out, [accepted(3), cancelled(3, 1, CancelReason::Market)]);
}

#[test]
fn ioc_fills_what_it_can() {
    let mut t = T::new();
    t.new_order(limit(1, 1, SELL, 100, 5));
    t.new_order(limit(2, 1, SELL, 102, 5));
    let out = t.new_order(NewOrder {
        tif: Tif::Ioc,
        ..limit(3, 2, BUY, 101, 8)
    });
    assert_eq!(
        out,
        [
            accepted(3),
            trade(3, 1, 100, 5),
            cancelled(3, 3, CancelReason::Ioc)
        ]
    );
    assert_eq!(t.book(SELL), [(2, 102, 5)]);
    assert_eq!(t.book(BUY), []);
}

#[test]
fn fok_is_all_or_nothing_at_the_limit_or_better() {
    let mut t = T::new();
    t.new_order(limit(1, 1, SELL, 100, 5));
    t.new_order(limit(2, 1, SELL, 101, 5));
    t.new_order(limit(3, 1, SELL, 103, 50));
    let fok = |id, price, qty| NewOrder {
        tif: Tif::Fok,
        ..limit(id, 2, BUY, price, qty)
    };
    // 10 available at or below 102: 11 cannot fill, nothing trades.
    let out = t.new_order(fok(4, 102, 11));
    assert_eq!(out, [accepted(4), cancelled(4, 11, CancelReason::Fok)]);
    assert_eq!(t.book(SELL).len(), 3);
    let out = t.new_order(fok(5, 102, 10));
    assert_eq!(out, [accepted(5), trade(5, 1, 100, 5), trade(5, 2, 101, 5)]);
    // A market FOK too.
    let out = t.new_order(NewOrder {
        tif: Tif::Fok,
        ..market(6, 2, BUY, 51)
    });
    assert_eq!(out, [accepted(6), cancelled(6, 51, CancelReason::Fok)]);
}

#[test]
fn day_orders_expire_at_end_of_day() {
    let mut t = T::new();
    t.new_order(NewOrder {
        tif: Tif::Day,
        ..limit(1, 1, BUY, 100, 5)
    });
    t.new_order(limit(2, 1, BUY, 99, 5));
    t.new_order(NewOrder {
        tif: Tif::Day,
        ..limit(3, 1, SELL, 105, 5)
    });
    let out = t.run(Command::EndOfDay);
    assert_eq!(
        out,
        [
            cancelled(1, 5, CancelReason::Expired),
            cancelled(3, 5, CancelReason::Expired)
        ]
    );
    assert_eq!(t.book(BUY), [(2, 99, 5)]);
    assert_eq!(t.venue.throttle().open_orders(1), 1);
}

#[test]
fn post_only_is_rejected_if_it_would_cross() {
    let mut t = T::new();
    t.new_order(limit(1, 1, SELL, 100, 5));
    let post = |id, price| NewOrder {
        post_only: true,
        ..limit(id, 2, BUY, price, 5)
    };
    assert_eq!(
        t.new_order(post(2, 100)),
        [rejected(2, Reject::PostOnlyWouldCross)]
    );
    assert_eq!(t.new_order(post(3, 99)), [accepted(3)]);
    // Post-only makes no sense on market, IOC or FOK orders.
    for order in [
        NewOrder {
            post_only: true,
            ..market(4, 2, BUY, 1)
        },
        NewOrder {
            tif: Tif::Ioc,
            ..post(5, 90)
        },
    ] {
        assert_eq!(t.new_order(order), [rejected(order.id, Reject::Invalid)]);
    }
    // A replace of a post-only order that would cross is refused and leaves it alone.
    let out = t.run(Command::Replace {
        id: 3,
        qty: 5,
        price: Some(100),
    });
    assert_eq!(out, [rejected(3, Reject::PostOnlyWouldCross)]);
    assert_eq!(t.book(BUY), [(3, 99, 5)]);
}

#[test]
fn cancel_and_unknown_orders() {
    let mut t = T::new();
    t.new_order(limit(1, 1, BUY, 100, 5));
    assert_eq!(
        t.run(Command::Cancel { id: 1 }),
        [cancelled(1, 5, CancelReason::User)]
    );
    assert_eq!(
        t.run(Command::Cancel { id: 1 }),
        [rejected(1, Reject::UnknownOrder)]
    );
    assert_eq!(
        t.run(Command::Cancel { id: 9 }),
        [rejected(9, Reject::UnknownOrder)]
    );
    assert_eq!(
        t.run(Command::Replace {
            id: 9,
            qty: 1,
            price: None
        }),
        [rejected(9, Reject::UnknownOrder)]
    );
}

#[test]
fn ids_are_unique_for_the_whole_run() {
    let mut t = T::new();
    t.new_order(limit(1, 1, BUY, 100, 5));
    assert_eq!(
        t.new_order(limit(1, 1, BUY, 100, 5)),
        [rejected(1, Reject::DuplicateId)]
    );
    t.run(Command::Cancel { id: 1 });
    assert_eq!(
        t.new_order(limit(1, 1, BUY, 100, 5)),
        [rejected(1, Reject::DuplicateId)]
    );
    // A rejected order never existed: its id may be used later.
    assert_eq!(
        t.new_order(limit(2, 1, BUY, 0, 5)),
        [rejected(2, Reject::Invalid)]
    );
    assert_eq!(t.new_order(limit(2, 1, BUY, 100, 5)), [accepted(2)]);
}

#[test]
fn invalid_quantities_prices_and_ranges() {
    let mut t = T::new();
    for order in [
        limit(1, 1, BUY, 100, 0),
        limit(2, 1, BUY, 0, 1),
        limit(3, 1, BUY, -5, 1),
        limit(4, 1, BUY, 1 << 60, 1),
        limit(5, 999, BUY, 100, 1),
        NewOrder {
            symbol: 99,
            ..limit(6, 1, BUY, 100, 1)
        },
        limit(u64::MAX, 1, BUY, 100, 1),
    ] {
        assert_eq!(t.new_order(order), [rejected(order.id, Reject::Invalid)]);
    }
    t.new_order(limit(7, 1, BUY, 100, 5));
    assert_eq!(
        t.run(Command::Replace {
            id: 7,
            qty: 0,
            price: None
        }),
        [rejected(7, Reject::Invalid)]
    );
}

#[test]
fn replace_smaller_at_the_same_price_keeps_priority() {
    let mut t = T::new();
    t.new_order(limit(1, 1, BUY, 100, 10));
    t.new_order(limit(2, 2, BUY, 100, 10));
    let out = t.run(Command::Replace {
        id: 1,
        qty: 4,
        price: None,
    });
    assert_eq!(
        out,
        [Event::Replaced {
            id: 1,
            price: 100,
            qty: 4
        }]
    );
    assert_eq!(t.book(BUY), [(1, 100, 4), (2, 100, 10)]);
    assert_eq!(t.venue.throttle().held(1), 400);
}

#[test]
fn replace_larger_or_repriced_loses_priority_and_may_trade() {
    let mut t = T::new();
    t.new_order(limit(1, 1, BUY, 100, 10));
    t.new_order(limit(2, 2, BUY, 100, 10));
    t.run(Command::Replace {
        id: 1,
        qty: 11,
        price: None,
    });
    assert_eq!(t.book(BUY), [(2, 100, 10), (1, 100, 11)]);
    t.new_order(limit(3, 3, SELL, 105, 4));
    let out = t.run(Command::Replace {
        id: 2,
        qty: 10,
        price: Some(105),
    });
    assert_eq!(
        out,
        [
            Event::Replaced {
                id: 2,
                price: 105,
                qty: 10
            },
            trade(2, 3, 105, 4)
        ]
    );
    assert_eq!(t.book(BUY), [(2, 105, 6), (1, 100, 11)]);
    assert_eq!(t.venue.throttle().held(2), 630);
}

#[test]
fn self_trade_prevention_modes() {
    let setup = || {
        let mut t = T::new();
        t.new_order(limit(1, 7, SELL, 100, 5)); // own, first in time
        t.new_order(limit(2, 8, SELL, 100, 5));
        t
    };
    let taker = |stp| NewOrder {
        stp,
        ..limit(10, 7, BUY, 100, 8)
    };

    let mut t = setup();
    let out = t.new_order(taker(Stp::Off));
    assert_eq!(
        out,
        [accepted(10), trade(10, 1, 100, 5), trade(10, 2, 100, 3)]
    );

    let mut t = setup();
    let out = t.new_order(taker(Stp::CancelNewest));
    assert_eq!(
        out,
        [accepted(10), cancelled(10, 8, CancelReason::SelfTrade)]
    );
    assert_eq!(t.book(SELL), [(1, 100, 5), (2, 100, 5)]);

    let mut t = setup();
    let out = t.new_order(taker(Stp::CancelOldest));
    assert_eq!(
        out,
        [
            accepted(10),
            cancelled(1, 5, CancelReason::SelfTrade),
            trade(10, 2, 100, 5)
        ]
    );
    assert_eq!(t.book(BUY), [(10, 100, 3)]);

    let mut t = setup();
    let out = t.new_order(taker(Stp::CancelBoth));
    assert_eq!(
        out,
        [
            accepted(10),
            cancelled(1, 5, CancelReason::SelfTrade),
            cancelled(10, 8, CancelReason::SelfTrade)
        ]
    );
    assert_eq!(t.book(SELL), [(2, 100, 5)]);
}

#[test]
fn fok_with_self_trade_prevention() {
    let mut t = T::new();
    t.new_order(limit(1, 7, SELL, 100, 5));
    t.new_order(limit(2, 8, SELL, 100, 5));
    let fok = |id, stp| NewOrder {
        tif: Tif::Fok,
        stp,
        ..limit(id, 7, BUY, 100, 5)
    };
    // Cancel-newest would stop at its own order before filling: nothing happens.
    assert_eq!(
        t.new_order(fok(10, Stp::CancelNewest)),
        [accepted(10), cancelled(10, 5, CancelReason::Fok)]
    );
    // Cancel-oldest skips (and cancels) it and fills against order 2.
    assert_eq!(
        t.new_order(fok(11, Stp::CancelOldest)),
        [
            accepted(11),
            cancelled(1, 5, CancelReason::SelfTrade),
            trade(11, 2, 100, 5)
        ]
    );
}

#[test]
fn mass_cancel_per_account_and_per_symbol() {
    let mut t = T::new();
    t.new_order(limit(1, 1, BUY, 100, 1));
    t.new_order(limit(2, 2, BUY, 101, 1));
    t.new_order(limit(3, 1, SELL, 110, 1));
    t.new_order(NewOrder {
        symbol: 1,
        ..limit(4, 1, BUY, 100, 1)
    });
    t.new_order(NewOrder {
        symbol: 1,
        ..limit(5, 2, BUY, 100, 1)
    });
    let out = t.run(Command::MassCancel {
        account: Some(1),
        symbol: Some(0),
    });
    assert_eq!(
        out,
        [
            cancelled(1, 1, CancelReason::MassCancel),
            cancelled(3, 1, CancelReason::MassCancel)
        ]
    );
    let out = t.run(Command::MassCancel {
        account: Some(1),
        symbol: None,
    });
    assert_eq!(out, [cancelled(4, 1, CancelReason::MassCancel)]);
    let out = t.run(Command::MassCancel {
        account: None,
        symbol: Some(1),
    });
    assert_eq!(out, [cancelled(5, 1, CancelReason::MassCancel)]);
    assert_eq!(t.book(BUY), [(2, 101, 1)]);
}

#[test]
fn capacity_is_a_rejection() {
    let mut t = T::with(VenueConfig {
        orders_max: 2,
        levels_max: 2,
        levels_per_side_max: 2,
        symbols_max: 1,
        accounts_max: 2,
        ids_max: 5,
    });
    t.new_order(limit(1, 1, BUY, 100, 1));
    t.new_order(limit(2, 1, BUY, 99, 1));
    assert_eq!(
        t.new_order(limit(3, 1, BUY, 98, 1)),
        [rejected(3, Reject::OrderPoolFull)]
    );
    // An IOC needs no slot.
    assert_eq!(
        t.new_order(NewOrder {
            tif: Tif::Ioc,
            ..limit(3, 1, BUY, 98, 1)
        }),
        [accepted(3), cancelled(3, 1, CancelReason::Ioc)]
    );
    t.run(Command::Cancel { id: 2 });
    // One slot free, but both levels are taken by... only one: level 99 was freed.
    assert_eq!(t.new_order(limit(4, 1, SELL, 120, 1)), [accepted(4)]);
    t.run(Command::Cancel { id: 4 });
    t.new_order(limit(5, 1, BUY, 97, 1));
    assert_eq!(
        t.new_order(limit(6, 1, BUY, 96, 1)),
        [rejected(6, Reject::IdTableFull)]
    );
}

#[test]
fn price_levels_full_is_a_rejection() {
    let mut t = T::with(VenueConfig {
        orders_max: 8,
        levels_max: 8,
        levels_per_side_max: 2,
        symbols_max: 1,
        accounts_max: 2,
        ids_max: 100,
    });
    t.new_order(limit(1, 1, BUY, 100, 1));
    t.new_order(limit(2, 1, BUY, 99, 1));
    assert_eq!(
        t.new_order(limit(3, 1, BUY, 98, 1)),
        [rejected(3, Reject::PriceLevelsFull)]
    );
    assert_eq!(t.new_order(limit(4, 1, BUY, 99, 1)), [accepted(4)]);
}

fn throttled(limits: Limits) -> T {
    let mut t = T::new();
    t.run(Command::SetLimits {
        account: Some(1),
        limits,
    });
    t
}

#[test]
fn throttle_reasons_reach_the_events() {
    let cases = [
        (
            Limits {
                max_qty: Some(5),
                ..Limits::NONE
            },
            ThrottleReject::MaxQty,
        ),
        (
            Limits {
                max_notional: Some(599),
                ..Limits::NONE
            },
            ThrottleReject::MaxNotional,
        ),
        (
            Limits {
                credit_limit: Some(599),
                ..Limits::NONE
            },
            ThrottleReject::CreditLimit,
        ),
        (
            Limits {
                max_open_orders: Some(0),
                ..Limits::NONE
            },
            ThrottleReject::MaxOpenOrders,
        ),
        (
            Limits {
                orders_per_sec: Some(0),
                ..Limits::NONE
            },
            ThrottleReject::RateLimit,
        ),
    ];
    for (limits, reason) in cases {
        let mut t = throttled(limits);
        assert_eq!(
            t.new_order(limit(1, 1, BUY, 100, 6)),
            [rejected(1, Reject::Throttle(reason))],
            "{limits:?}"
        );
        // Other accounts are not limited.
        assert_eq!(t.new_order(limit(2, 2, BUY, 100, 6)), [accepted(2)]);
    }
}

#[test]
fn collar_follows_admin_reference_and_last_trade() {
    let mut t = throttled(Limits {
        collar_bps: Some(1_000),
        ..Limits::NONE
    });
    t.run(Command::SetReference {
        symbol: 0,
        price: 100,
    });
    assert_eq!(
        t.new_order(limit(1, 1, BUY, 111, 1)),
        [rejected(1, Reject::Throttle(ThrottleReject::PriceCollar))]
    );
    assert_eq!(t.new_order(limit(2, 1, BUY, 110, 1)), [accepted(2)]);
    // A trade at 120 between unlimited accounts moves the reference.
    t.new_order(limit(3, 2, SELL, 120, 1));
    t.new_order(limit(4, 3, BUY, 120, 1));
    assert_eq!(t.venue.throttle().reference(0), Some(120));
    assert_eq!(t.new_order(limit(5, 1, BUY, 131, 1)).len(), 1);
    assert_eq!(t.new_order(limit(6, 1, BUY, 111, 1)), [accepted(6)]);
}

#[test]
fn holds_follow_fills_cancels_and_expiry() {
    let mut t = throttled(Limits {
        credit_limit: Some(2_000),
        ..Limits::NONE
    });
    t.new_order(NewOrder {
        tif: Tif::Day,
        ..limit(1, 1, BUY, 100, 10)
    });
    t.new_order(limit(2, 1, SELL, 200, 5));
    assert_eq!(t.venue.throttle().held(1), 2_000);
    assert_eq!(
        t.new_order(limit(3, 1, BUY, 1, 1)),
        [rejected(3, Reject::Throttle(ThrottleReject::CreditLimit))]
    );
    t.new_order(limit(4, 2, SELL, 100, 4)); // fills 4 of order 1
    assert_eq!(t.venue.throttle().held(1), 1_600);
    assert_eq!(t.new_order(limit(5, 1, BUY, 100, 4)), [accepted(5)]);
    t.run(Command::Cancel { id: 2 });
    assert_eq!(t.venue.throttle().held(1), 1_000);
    t.run(Command::EndOfDay);
    assert_eq!(t.venue.throttle().held(1), 400);
    t.run(Command::Cancel { id: 5 });
    assert_eq!(t.venue.throttle().held(1), 0);
    assert_eq!(t.venue.throttle().open_orders(1), 0);
}

#[test]
fn market_order_holds_at_the_collar_bound() {
    let mut t = throttled(Limits {
        credit_limit: Some(1_000),
        collar_bps: Some(1_000),
        ..Limits::NONE
    });
    assert_eq!(
        t.new_order(market(1, 1, BUY, 1)),
        [rejected(
            1,
            Reject::Throttle(ThrottleReject::NoReferencePrice)
        )]
    );
    t.run(Command::SetReference {
        symbol: 0,
        price: 100,
    });
    // 10 × 110 = 1,100 > 1,000.
    assert_eq!(
        t.new_order(market(2, 1, BUY, 10)),
        [rejected(2, Reject::Throttle(ThrottleReject::CreditLimit))]
    );
    t.new_order(limit(3, 2, SELL, 100, 5));
    let out = t.new_order(market(4, 1, BUY, 9));
    assert_eq!(
        out,
        [
            accepted(4),
            trade(4, 3, 100, 5),
            cancelled(4, 4, CancelReason::Market)
        ]
    );
    assert_eq!(t.venue.throttle().held(1), 0);
}

#[test]
fn rate_limit_on_sequenced_time() {
    let mut t = throttled(Limits {
        orders_per_sec: Some(2),
        ..Limits::NONE
    });
    t.now = 5_000_000_000;
    assert_eq!(t.new_order(limit(1, 1, BUY, 100, 1)), [accepted(1)]);
    assert_eq!(t.new_order(limit(2, 1, BUY, 100, 1)), [accepted(2)]);
    assert_eq!(
        t.new_order(limit(3, 1, BUY, 100, 1)),
        [rejected(3, Reject::Throttle(ThrottleReject::RateLimit))]
    );
    // Cancels are never throttled.
    assert_eq!(t.run(Command::Cancel { id: 1 }).len(), 1);
    t.now += 500_000_000;
    assert_eq!(t.new_order(limit(3, 1, BUY, 100, 1)), [accepted(3)]);
}

#[test]
fn kill_switch_cancels_resting_orders_and_refuses_new_ones() {
    let mut t = T::new();
    t.new_order(limit(1, 1, BUY, 100, 1));
    t.new_order(limit(2, 2, BUY, 100, 1));
    t.new_order(limit(3, 1, SELL, 105, 2));
    let out = t.run(Command::Kill { account: Some(1) });
    assert_eq!(
        out,
        [
            cancelled(1, 1, CancelReason::KillSwitch),
            cancelled(3, 2, CancelReason::KillSwitch)
        ]
    );
    assert_eq!(
        t.new_order(limit(4, 1, BUY, 100, 1)),
        [rejected(4, Reject::Throttle(ThrottleReject::KillSwitch))]
    );
    assert_eq!(t.new_order(limit(5, 2, BUY, 100, 1)), [accepted(5)]);
    let out = t.run(Command::Kill { account: None });
    assert_eq!(
        out,
        [
            cancelled(2, 1, CancelReason::KillSwitch),
            cancelled(5, 1, CancelReason::KillSwitch)
        ]
    );
    t.run(Command::Resume { account: None });
    assert_eq!(
        t.new_order(limit(6, 1, BUY, 100, 1)),
        [rejected(6, Reject::Throttle(ThrottleReject::KillSwitch))]
    );
    t.run(Command::Resume { account: Some(1) });
    assert_eq!(t.new_order(limit(7, 1, BUY, 100, 1)), [accepted(7)]);
}

#[test]
fn pre_alert_is_an_event() {
    let mut t = throttled(Limits {
        max_open_orders: Some(4),
        alert_pct: Some(50),
        ..Limits::NONE
    });
    assert_eq!(t.new_order(limit(1, 1, BUY, 100, 1)), [accepted(1)]);
    let out = t.new_order(limit(2, 1, BUY, 100, 1));
    assert_eq!(out.len(), 2);
    let Event::Alert(alert) = out[1] else {
        panic!("{out:?}")
    };
    assert_eq!(
        (alert.account, alert.kind, alert.used, alert.limit),
        (1, LimitKind::MaxOpenOrders, 2, 4)
    );
    assert_eq!(t.new_order(limit(3, 1, BUY, 100, 1)), [accepted(3)]);
}

#[test]
fn admin_limits_change_at_run_time() {
    let mut t = T::new();
    assert_eq!(t.new_order(limit(1, 1, BUY, 100, 10)), [accepted(1)]);
    t.run(Command::SetLimits {
        account: None,
        limits: Limits {
            max_qty: Some(5),
            ..Limits::NONE
        },
    });
    assert_eq!(
        t.new_order(limit(2, 3, BUY, 100, 10)),
        [rejected(2, Reject::Throttle(ThrottleReject::MaxQty))]
    );
    // A replace is checked against the limits in force now; the order stays as it was.
    assert_eq!(
        t.run(Command::Replace {
            id: 1,
            qty: 10,
            price: Some(101)
        }),
        [rejected(1, Reject::Throttle(ThrottleReject::MaxQty))]
    );
    assert_eq!(t.book(BUY), [(1, 100, 10)]);
    t.run(Command::SetLimits {
        account: None,
        limits: Limits::NONE,
    });
    assert_eq!(t.new_order(limit(2, 3, BUY, 100, 10)), [accepted(2)]);
}

#[test]
fn digest_is_a_function_of_the_book() {
    let mut a = T::new();
    let mut b = T::new();
    // Different histories, same resting orders in the same priority.
    a.new_order(limit(1, 1, BUY, 100, 5));
    a.new_order(limit(2, 1, SELL, 101, 5));
    b.new_order(limit(9, 1, BUY, 90, 5));
    b.new_order(limit(1, 1, BUY, 100, 5));
    b.run(Command::Cancel { id: 9 });
    b.new_order(limit(2, 1, SELL, 101, 5));
    assert_eq!(a.venue.state_digest(), b.venue.state_digest());
    b.run(Command::Replace {
        id: 1,
        qty: 4,
        price: None,
    });
    assert_ne!(a.venue.state_digest(), b.venue.state_digest());
}
