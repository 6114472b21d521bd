//! Scenario tests: each drives the engine through one story and checks its outcome; the harness
//! checks every invariant after every step.

mod common;

use common::*;
use sequent_payments::sim::acs::{AcsRules, AcsSim};
use sequent_payments::*;

fn capture(h: &mut Harness, key: u128, id: PaymentId, amount: u64) -> Vec<Output> {
    let merchant = h.p.payment(id).unwrap().request.merchant;
    h.step(
        SEC,
        Input::Capture {
            merchant,
            key: IdemKey(key),
            body_hash: hash_of(2, key, id, amount),
            payment_id: id,
            amount,
        },
    )
}

fn refund(h: &mut Harness, key: u128, id: PaymentId, amount: u64) -> Vec<Output> {
    let merchant = h.p.payment(id).unwrap().request.merchant;
    h.step(
        SEC,
        Input::Refund {
            merchant,
            key: IdemKey(key),
            body_hash: hash_of(4, key, id, amount),
            payment_id: id,
            amount,
        },
    )
}

fn reply(
    h: &mut Harness,
    (acquirer, payment_id, attempt): (AcquirerId, PaymentId, u8),
    result: AcquirerResult,
) -> Vec<Output> {
    h.step(
        1_000_000,
        Input::AcquirerReply {
            acquirer,
            payment_id,
            attempt,
            result,
        },
    )
}

fn last_reply(out: &[Output]) -> Reply {
    out.iter()
        .rev()
        .find_map(|o| match o {
            Output::Reply { reply, .. } => Some(*reply),
            _ => None,
        })
        .expect("a reply")
}

fn row(id: PaymentId, kind: ClearingKind, reference: u8, amount: u64) -> ClearingRow {
    ClearingRow {
        payment_id: id,
        reference,
        kind,
        amount,
        currency: 978,
        date: 20231114,
    }
}

fn report(out: &[Output]) -> ReconReport {
    out.iter()
        .find_map(|o| match o {
            Output::Reconciliation(r) => Some(r.clone()),
            _ => None,
        })
        .expect("a report")
}

/// Posted balance of an account: debits − credits (signed).
fn net(h: &Harness, account: u128) -> i128 {
    let b = h.p.ledger().account(account).unwrap().balances;
    b.debits_posted as i128 - b.credits_posted as i128
}

/// Creates and authorises one payment on whatever acquirer the engine picks.
fn authorised(h: &mut Harness, key: u128, amount: u64) -> (PaymentId, AcquirerId) {
    let out = h.step(
        SEC,
        Input::CreatePayment(create(2, key, amount, (key % 200) as u8)),
    );
    let id = created_id(&out);
    let (acq, _, attempt, _) = to_acquirer(&out)[0];
    reply(h, (acq, id, attempt), approve(amount));
    assert_eq!(h.status(id), Status::Authorised);
    (id, acq)
}

#[test]
fn capture_refund_settle_balances() {
    let mut h = Harness::new(Config::example());
    let out = h.step(SEC, Input::CreatePayment(create(2, 1, 10_000, 1)));
    let id = created_id(&out);
    let sent = to_acquirer(&out);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].0,
        AcquirerId(1),
        "the cheaper acquirer wins at equal approval"
    );
    assert!(matches!(last_reply(&out), Reply::Ok(v) if v.status == Status::Authorising));
    let out = reply(&mut h, (AcquirerId(1), id, 1), approve(10_000));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::PaymentUpdate(v) if v.status == Status::Authorised))
    );
    let hold = h.p.payment(id).unwrap().hold.unwrap();
    assert_eq!(
        h.p.ledger().transfer(hold).unwrap().state,
        sequent_ledger::PendingState::Pending
    );

    let out = capture(&mut h, 2, id, 8_000);
    assert!(
        matches!(last_reply(&out), Reply::Ok(v) if v.status == Status::Captured && v.captured == 8_000)
    );
    assert_eq!(
        to_acquirer(&out)[0].3,
        AcquirerRequest::Capture { amount: 8_000 }
    );
    let out = refund(&mut h, 3, id, 3_000);
    assert!(matches!(last_reply(&out), Reply::Ok(v) if v.status == Status::PartiallyRefunded));
    let out = refund(&mut h, 4, id, 5_001);
    assert_eq!(
        last_reply(&out),
        Reply::Rejected {
            payment_id: id,
            reason: Reason::AmountExceedsRefundable,
            retry_at: Nanos(0),
        }
    );

    let out = h.step(
        SEC,
        Input::ClearingFile {
            acquirer: AcquirerId(1),
            rows: vec![
                row(id, ClearingKind::Auth, 1, 10_000),
                row(id, ClearingKind::Capture, 1, 8_000),
                row(id, ClearingKind::Refund, 1, 3_000),
            ],
        },
    );
    let r = report(&out);
    assert_eq!(r.count(ReconCategory::Matched), 3, "{r:?}");
    assert_eq!(r.lines.len(), 3);
    // 120 bps of 8_000 = 96.
    assert_eq!(
        (r.settled_net, r.fees, r.refunds_settled),
        (7_904, 96, 3_000)
    );
    assert_eq!(
        net(&h, chart::scheme_receivable(978)),
        0,
        "receivable cleared"
    );
    assert_eq!(net(&h, chart::bank(1, 978)), 7_904 - 3_000);
    assert_eq!(net(&h, chart::fees(978)), 96);
    assert_eq!(
        net(&h, chart::merchant_payable(2, 978)),
        -5_000,
        "we owe the merchant 5_000"
    );
}

#[test]
fn duplicate_requests_replay_the_first_answer() {
    let mut h = Harness::new(Config::example());
    let c = create(2, 77, 5_000, 3);
    let c_first = c;
    let first = h.step(SEC, Input::CreatePayment(c));
    let again = h.step(SEC, Input::CreatePayment(c));
    assert_eq!(
        again,
        vec![first.last().unwrap().clone()],
        "only the stored reply, nothing sent"
    );
    assert_eq!(h.p.payments().len(), 1);
    let mut other = c;
    other.amount = 6_000;
    other.body_hash[0] ^= 1;
    let conflict = h.step(SEC, Input::CreatePayment(other));
    assert_eq!(last_reply(&conflict), Reply::Conflict);
    assert_eq!(h.authorise_at.len(), 1, "one authorisation for the key");

    let id = created_id(&first);
    reply(&mut h, (AcquirerId(1), id, 1), approve(5_000));
    let a = capture(&mut h, 78, id, 5_000);
    let b = capture(&mut h, 78, id, 5_000);
    assert_eq!(last_reply(&a), last_reply(&b));
    assert_eq!(to_acquirer(&b).len(), 0, "a replayed capture sends nothing");
    assert_eq!(h.p.payment(id).unwrap().captured, 5_000);
    let c = capture(&mut h, 78, id, 4_000);
    assert_eq!(last_reply(&c), Reply::Conflict);
    // After the retention window (24 h of sequenced time) a key is new again.
    let late = h.step(86_400 * SEC, Input::CreatePayment(c_first));
    assert!(matches!(
        last_reply(&late),
        Reply::Rejected {
            reason: Reason::CardVelocity,
            ..
        } | Reply::Ok(_)
    ));
    assert_eq!(
        h.p.payments().len(),
        2,
        "a second payment for the expired key"
    );
}

#[test]
fn partial_approval_holds_what_was_approved() {
    let mut h = Harness::new(Config::example());
    let id = created_id(&h.step(SEC, Input::CreatePayment(create(2, 1, 10_000, 1))));
    let out = reply(&mut h, (AcquirerId(1), id, 1), approve(6_000));
    assert!(out.iter().any(|o| matches!(o, Output::PaymentUpdate(v) if v.authorised == 6_000 && v.status == Status::Authorised)));
    let hold = h.p.payment(id).unwrap().hold.unwrap();
    assert_eq!(h.p.ledger().transfer(hold).unwrap().amount, 6_000);
    assert_eq!(
        last_reply(&capture(&mut h, 2, id, 6_001)),
        Reply::Rejected {
            payment_id: id,
            reason: Reason::AmountExceedsAuthorised,
            retry_at: Nanos(0),
        }
    );
    assert!(
        matches!(last_reply(&capture(&mut h, 3, id, 6_000)), Reply::Ok(v) if v.captured == 6_000)
    );
    // An approval above the request never holds more than requested.
    let id = created_id(&h.step(SEC, Input::CreatePayment(create(2, 9, 1_000, 2))));
    reply(&mut h, (AcquirerId(1), id, 1), approve(5_000));
    assert_eq!(h.p.payment(id).unwrap().authorised, 1_000);
}

#[test]
fn late_approval_after_timeout_stays_reversed() {
    let mut h = Harness::new(Config::example());
    let id = created_id(&h.step(SEC, Input::CreatePayment(create(2, 1, 10_000, 1))));
    // The node's timer: the acquirer did not answer.
    let out = h.step(
        10 * SEC,
        Input::AcquirerTimeout {
            acquirer: AcquirerId(1),
            payment_id: id,
            attempt: 1,
        },
    );
    let sent = to_acquirer(&out);
    assert_eq!(
        sent[0],
        (
            AcquirerId(1),
            id,
            1,
            AcquirerRequest::Reverse { amount: 10_000 }
        )
    );
    assert!(
        matches!(
            sent[1],
            (AcquirerId(2), _, 2, AcquirerRequest::Authorise { .. })
        ),
        "retried elsewhere after the reversal"
    );
    // The first acquirer's approval arrives late: recorded, nothing authorised.
    let out = reply(&mut h, (AcquirerId(1), id, 1), approve(10_000));
    assert!(matches!(out[..], [Output::LateReply { attempt: 1, .. }]));
    assert_eq!(
        h.p.payment(id).unwrap().attempts[0].state,
        AttemptState::Reversed
    );
    assert_eq!(h.p.late_replies(), 1);
    reply(&mut h, (AcquirerId(2), id, 2), approve(10_000));
    assert_eq!(h.status(id), Status::Authorised);
    let approved =
        h.p.payment(id)
            .unwrap()
            .attempts
            .iter()
            .filter(|a| a.state.is_live())
            .count();
    assert_eq!(approved, 1);
    // A duplicate answer to the live attempt changes nothing.
    let out = reply(&mut h, (AcquirerId(2), id, 2), approve(10_000));
    assert!(matches!(
        out[..],
        [Output::Ignored {
            why: Ignored::DuplicateReply,
            ..
        }]
    ));
    // The engine's own deadline does the same without the node's timeout.
    let id = created_id(&h.step(SEC, Input::CreatePayment(create(2, 2, 500, 2))));
    let out = h.step(10 * SEC, Input::Tick);
    assert!(
        to_acquirer(&out)
            .iter()
            .any(|s| (s.1, s.2, s.3) == (id, 1, AcquirerRequest::Reverse { amount: 500 }))
    );
}

#[test]
fn error_replies_are_reversed_and_retry_runs_out() {
    let mut h = Harness::new(Config::example());
    let id = created_id(&h.step(SEC, Input::CreatePayment(create(2, 1, 700, 1))));
    let out = reply(&mut h, (AcquirerId(1), id, 1), AcquirerResult::Error);
    assert_eq!(
        to_acquirer(&out)[0].3,
        AcquirerRequest::Reverse { amount: 700 }
    );
    let out = reply(&mut h, (AcquirerId(2), id, 2), AcquirerResult::Error);
    assert_eq!(to_acquirer(&out).len(), 1, "no acquirer left to try");
    assert!(out.iter().any(
        |o| matches!(o, Output::PaymentUpdate(v) if v.reason == Some(Reason::AcquirersUnavailable))
    ));
    let hold = h.p.payment(id).unwrap().hold.unwrap();
    assert_eq!(
        h.p.ledger().transfer(hold).unwrap().state,
        sequent_ledger::PendingState::Voided
    );
}

#[test]
fn declines_end_the_payment_and_count_against_the_card() {
    let mut config = Config::example();
    config.card_declines_max = 2;
    let mut h = Harness::new(config);
    for k in 1..=2 {
        let out = h.step(SEC, Input::CreatePayment(create(2, k, 700, 1)));
        let (acq, id, attempt, _) = to_acquirer(&out)[0];
        let out = reply(
            &mut h,
            (acq, id, attempt),
            AcquirerResult::Declined { code: 51 },
        );
        assert!(
            to_acquirer(&out).is_empty(),
            "a decline is an answer: no retry"
        );
        assert_eq!(h.p.payment(id).unwrap().view().decline_code, Some(51));
    }
    let out = h.step(SEC, Input::CreatePayment(create(2, 3, 700, 1)));
    assert!(matches!(
        last_reply(&out),
        Reply::Rejected {
            reason: Reason::TooManyDeclines,
            ..
        }
    ));
}

#[test]
fn screen_and_limit_reasons_in_precedence_order() {
    let mut config = Config::example();
    config.card_velocity_max = 3;
    config.card_daily_max = 600_000;
    let mut h = Harness::new(config);
    let reason = |out: &[Output]| match last_reply(out) {
        Reply::Rejected { reason, .. } => Some(reason),
        _ => None,
    };
    // Everything wrong at once: the currency is reported first.
    let mut c = create(2, 1, 600_000, 9);
    c.currency = 840;
    c.expiry = Expiry(2001);
    c.bin = Bin(660_001);
    assert_eq!(
        reason(&h.step(SEC, Input::CreatePayment(c))),
        Some(Reason::CurrencyMismatch)
    );
    c.key = IdemKey(2);
    c.currency = 978;
    assert_eq!(
        reason(&h.step(SEC, Input::CreatePayment(c))),
        Some(Reason::CardExpired)
    );
    c.key = IdemKey(3);
    c.expiry = Expiry(2312);
    assert_eq!(
        reason(&h.step(SEC, Input::CreatePayment(c))),
        Some(Reason::AmountAboveMerchantLimit)
    );
    c.key = IdemKey(4);
    c.amount = 100;
    assert_eq!(
        reason(&h.step(SEC, Input::CreatePayment(c))),
        Some(Reason::BinCountryBlocked)
    );
    // Card velocity: three attempts already on card 9 within the minute.
    c.key = IdemKey(5);
    c.bin = Bin(41_234_567);
    assert_eq!(
        reason(&h.step(SEC, Input::CreatePayment(c))),
        Some(Reason::CardVelocity)
    );
    // A minute later the window has moved.
    c.key = IdemKey(6);
    assert_eq!(reason(&h.step(60 * SEC, Input::CreatePayment(c))), None);
    // Daily limits. The 100 was never answered: its attempts timed out within the minute and
    // the reservation came back. Card 9 takes 400_000; 200_001 more breaks its 600_000.
    let mut d = create(2, 7, 400_000, 9);
    d.token = c.token;
    assert_eq!(reason(&h.step(60 * SEC, Input::CreatePayment(d))), None);
    d.key = IdemKey(8);
    d.amount = 200_001;
    assert_eq!(
        reason(&h.step(SEC, Input::CreatePayment(d))),
        Some(Reason::CardDailyLimit)
    );
    // The merchant has 400_000 of its 2_000_000: three of 500_000 fit, a fourth does not.
    let big = create(2, 8, 500_000, 10);
    for k in 0..3 {
        let mut b = big;
        b.key = IdemKey(100 + k);
        b.token = Token(1_000 + k);
        assert_eq!(
            reason(&h.step(SEC, Input::CreatePayment(b))),
            None,
            "within the merchant's 2_000_000"
        );
    }
    let mut b = big;
    b.key = IdemKey(200);
    b.token = Token(2_000);
    assert_eq!(
        reason(&h.step(SEC, Input::CreatePayment(b))),
        Some(Reason::MerchantDailyLimit)
    );
    // Unknown merchant and zero amount are refused before a payment is recorded.
    let n = h.p.payments().len();
    assert_eq!(
        reason(&h.step(SEC, Input::CreatePayment(create(99, 1, 1, 1)))),
        Some(Reason::UnknownMerchant)
    );
    assert_eq!(
        reason(&h.step(SEC, Input::CreatePayment(create(2, 300, 0, 1)))),
        Some(Reason::AmountZero)
    );
    assert_eq!(h.p.payments().len(), n);
}

#[test]
fn no_route_is_an_immediate_rejection() {
    let mut config = Config::example();
    config.acquirers.truncate(1);
    config.acquirers[0].in_flight_max = 2;
    let mut h = Harness::new(config);
    let a = created_id(&h.step(SEC, Input::CreatePayment(create(2, 1, 100, 1))));
    let _b = created_id(&h.step(SEC, Input::CreatePayment(create(2, 2, 100, 2))));
    let out = h.step(SEC, Input::CreatePayment(create(2, 3, 100, 3)));
    assert!(
        matches!(
            last_reply(&out),
            Reply::Rejected {
                reason: Reason::NoRouteAvailable,
                ..
            }
        ),
        "in-flight cap is back-pressure"
    );
    let Reply::Rejected { retry_at, .. } = last_reply(&out) else {
        unreachable!()
    };
    assert_eq!(
        retry_at,
        Nanos(h.ts + 10 * SEC),
        "retry once an attempt in flight has timed out"
    );
    assert!(to_acquirer(&out).is_empty());
    reply(&mut h, (AcquirerId(1), a, 1), AcquirerResult::Error);
    // Three consecutive failures open the breaker: every new payment is refused at once.
    let c = created_id(&h.step(SEC, Input::CreatePayment(create(2, 4, 100, 4))));
    reply(&mut h, (AcquirerId(1), c, 1), AcquirerResult::Error);
    h.step(10 * SEC, Input::Tick);
    assert!(matches!(
        h.p.router().get(AcquirerId(1)).unwrap().breaker,
        routing::Breaker::Open { .. }
    ));
    let routing::Breaker::Open { until } = h.p.router().get(AcquirerId(1)).unwrap().breaker else {
        unreachable!()
    };
    let out = h.step(SEC, Input::CreatePayment(create(2, 5, 100, 5)));
    assert_eq!(
        last_reply(&out),
        Reply::Rejected {
            payment_id: PaymentId(5),
            reason: Reason::NoRouteAvailable,
            retry_at: until,
        },
        "retry when the breaker lets a probe through"
    );
    let held =
        h.p.ledger()
            .transfers()
            .iter()
            .filter(|t| t.state == sequent_ledger::PendingState::Pending)
            .count();
    assert_eq!(held, 0, "nothing held for refused payments");
}

/// One acquirer is down for ten minutes of sequenced time: traffic fails over, nothing is
/// authorised twice, every timed-out authorisation is reversed, late answers stay reversed, and
/// the end-of-day files reconcile and settle everything.
#[test]
fn acquirer_down_for_ten_minutes() {
    let mut h = Harness::new(Config::example());
    h.scan_state_every = 50;
    let start = h.ts;
    let outage = |ts: u64| ts >= start && ts < start + 600 * SEC;
    let mut ids = Vec::new();
    let mut unanswered: Vec<(AcquirerId, PaymentId, u8)> = Vec::new();
    let mut key = 0u128;
    // 15 minutes, a payment every 3 seconds, a tick every second.
    for s in 0..900u64 {
        let out = if s % 3 == 0 {
            key += 1;
            let out = h.step(
                SEC,
                Input::CreatePayment(create(2, key, 1_000 + s, (key % 50) as u8)),
            );
            ids.push(created_id(&out));
            out
        } else {
            h.step(SEC, Input::Tick)
        };
        // Acquirers answer what they received, unless down.
        let mut queue: Vec<_> = to_acquirer(&out);
        while let Some((acq, id, attempt, msg)) = queue.pop() {
            if !matches!(msg, AcquirerRequest::Authorise { .. }) {
                continue;
            }
            if acq == AcquirerId(1) && outage(h.ts) {
                unanswered.push((acq, id, attempt));
                continue;
            }
            let amount = h.p.payment(id).unwrap().request.amount;
            let out = reply(&mut h, (acq, id, attempt), approve(amount));
            queue.extend(to_acquirer(&out));
        }
        if s == 300 {
            let b = h.p.router().get(AcquirerId(1)).unwrap().breaker;
            assert!(
                !matches!(b, routing::Breaker::Closed { .. }),
                "the breaker opened: {b:?}"
            );
        }
        if s == 700 {
            // After the outage, acquirer 1 flushes approvals for some requests it sat on.
            for &(acq, id, attempt) in unanswered.iter().take(5) {
                let out = reply(&mut h, (acq, id, attempt), approve(1));
                assert!(matches!(out[..], [Output::LateReply { .. }]));
            }
        }
    }
    h.step(20 * SEC, Input::Tick);
    assert_eq!(ids.len(), 300);
    let mut via = [0usize; 3];
    for &id in &ids {
        let p = h.p.payment(id).unwrap();
        assert_eq!(p.status, Status::Authorised, "{id:?} {p:?}");
        let (_, a) = p.live_attempt().unwrap();
        via[usize::from(a.acquirer.0)] += 1;
    }
    assert!(
        via[2] >= 190,
        "the outage's payments went to acquirer 2: {via:?}"
    );
    assert!(
        via[1] >= 50,
        "acquirer 1 took traffic again after the outage: {via:?}"
    );
    assert!(!unanswered.is_empty());
    for &(_, id, attempt) in &unanswered {
        assert!(
            h.reverse_at.contains_key(&(id, attempt)),
            "timed-out attempt reversed"
        );
    }
    assert_eq!(h.p.late_replies(), 5);

    // Capture everything, then the two acquirers' end-of-day files.
    for (k, &id) in ids.iter().enumerate() {
        let amount = h.p.payment(id).unwrap().authorised;
        capture(&mut h, 10_000 + k as u128, id, amount);
    }
    for acq in [AcquirerId(1), AcquirerId(2)] {
        let mut rows = Vec::new();
        for p in h.p.payments() {
            for (k, a) in p.attempts.iter().enumerate() {
                if a.acquirer != acq {
                    continue;
                }
                let n = k as u8 + 1;
                match a.state {
                    AttemptState::Approved { amount, .. } => {
                        rows.push(row(p.id, ClearingKind::Auth, n, amount));
                        rows.push(row(p.id, ClearingKind::Capture, n, p.captured));
                    }
                    AttemptState::Reversed => {
                        rows.push(row(p.id, ClearingKind::Reversal, n, p.request.amount))
                    }
                    _ => {}
                }
            }
        }
        let r = report(&h.step(
            3_600 * SEC,
            Input::ClearingFile {
                acquirer: acq,
                rows: rows.clone(),
            },
        ));
        assert_eq!(
            r.count(ReconCategory::Matched),
            rows.len(),
            "{:?}",
            r.lines
                .iter()
                .find(|l| l.category != ReconCategory::Matched)
        );
        assert_eq!(
            r.lines.len(),
            rows.len(),
            "nothing missing, unexpected or duplicated"
        );
    }
    assert_eq!(
        net(&h, chart::scheme_receivable(978)),
        0,
        "every capture settled"
    );
    let captured: u64 = h.p.payments().iter().map(|p| p.captured).sum();
    let settled =
        net(&h, chart::bank(1, 978)) + net(&h, chart::bank(2, 978)) + net(&h, chart::fees(978));
    assert_eq!(settled, captured as i128);
    assert_eq!(h.replay_digest(), h.p.state_digest());
}

#[test]
fn settlement_file_mismatches() {
    let mut h = Harness::new(Config::example());
    let mut ids = Vec::new();
    for k in 1..=4 {
        let (id, acq) = authorised(&mut h, k, 1_000 * k as u64);
        assert_eq!(acq, AcquirerId(1));
        capture(&mut h, 100 + k, id, 1_000 * k as u64);
        ids.push(id);
    }
    refund(&mut h, 200, ids[3], 400);
    let rows = vec![
        row(ids[0], ClearingKind::Capture, 1, 1_000),
        row(ids[1], ClearingKind::Capture, 1, 2_500),
        row(ids[0], ClearingKind::Capture, 1, 1_000),
        row(PaymentId(99), ClearingKind::Capture, 1, 5_000),
        row(ids[3], ClearingKind::Capture, 2, 4_000),
    ];
    let r = report(&h.step(
        SEC,
        Input::ClearingFile {
            acquirer: AcquirerId(1),
            rows,
        },
    ));
    let cats: Vec<_> = r.lines.iter().map(|l| (l.category, l.payment_id)).collect();
    use ReconCategory::*;
    assert_eq!(
        cats,
        vec![
            (Matched, ids[0]),
            (AmountMismatch, ids[1]),
            (Duplicated, ids[0]),
            (Unexpected, PaymentId(99)),
            (Unexpected, ids[3]),
            (Missing, ids[2]),
            (Missing, ids[3]),
            (Missing, ids[3]),
        ],
        "{r:?}"
    );
    assert_eq!(r.lines[1].expected, 2_000);
    assert_eq!(r.lines[7].kind, ClearingKind::Refund);
    // The next day's file: the corrected rows match; the one settled already is a duplicate.
    let rows = vec![
        row(ids[0], ClearingKind::Capture, 1, 1_000),
        row(ids[1], ClearingKind::Capture, 1, 2_000),
        row(ids[2], ClearingKind::Capture, 1, 3_000),
        row(ids[3], ClearingKind::Capture, 1, 4_000),
        row(ids[3], ClearingKind::Refund, 1, 400),
    ];
    let r = report(&h.step(
        SEC,
        Input::ClearingFile {
            acquirer: AcquirerId(1),
            rows,
        },
    ));
    let cats: Vec<_> = r.lines.iter().map(|l| l.category).collect();
    assert_eq!(cats, vec![Duplicated, Matched, Matched, Matched, Matched]);
    assert_eq!(net(&h, chart::scheme_receivable(978)), 0);
    // A file from the other acquirer for these payments is all unexpected.
    let rows = vec![row(ids[0], ClearingKind::Capture, 1, 1_000)];
    let r = report(&h.step(
        SEC,
        Input::ClearingFile {
            acquirer: AcquirerId(2),
            rows,
        },
    ));
    assert_eq!(r.count(Unexpected), 1);
}

fn three_ds_harness() -> (Harness, AcsSim) {
    (
        Harness::new(Config::example()),
        AcsSim::new(AcsRules::default()),
    )
}

fn areq(out: &[Output]) -> ThreeDsRequest {
    out.iter()
        .find_map(|o| match o {
            Output::ToThreeDs(r @ ThreeDsRequest::AReq { .. }) => Some(*r),
            _ => None,
        })
        .expect("an AReq")
}

#[test]
fn three_ds_frictionless() {
    let (mut h, mut acs) = three_ds_harness();
    // Merchant 1 authenticates from 50_000; the ACS challenges from 100_000.
    let out = h.step(SEC, Input::CreatePayment(create(1, 1, 60_000, 1)));
    let id = created_id(&out);
    assert_eq!(h.status(id), Status::Authenticating);
    assert!(
        to_acquirer(&out).is_empty(),
        "nothing goes to an acquirer before 3DS"
    );
    let ares = acs.handle(&areq(&out)).unwrap();
    assert_eq!(ares.trans_status, TransStatus::Y);
    let out = h.step(SEC, Input::ThreeDsARes(ares));
    let sent = to_acquirer(&out);
    let AcquirerRequest::Authorise { three_ds, .. } = sent[0].3 else {
        panic!()
    };
    assert_eq!(
        three_ds, ares.result,
        "ECI and CAVV carried into the authorisation"
    );
    assert_eq!(three_ds.unwrap().eci, 5);
    // A merchant that authenticated itself skips ours.
    let mut c = create(1, 2, 60_000, 2);
    c.three_ds = Some(ThreeDsResult {
        eci: 2,
        cavv: [9; 20],
    });
    let out = h.step(SEC, Input::CreatePayment(c));
    assert_eq!(to_acquirer(&out).len(), 1);
}

#[test]
fn three_ds_challenge_passed_and_failed() {
    let (mut h, mut acs) = three_ds_harness();
    for (key, answer, expected) in [
        (1u128, 123_456u32, Status::Authorising),
        (2, 111_111, Status::Rejected),
    ] {
        let out = h.step(
            SEC,
            Input::CreatePayment(create(1, key, 150_000, key as u8)),
        );
        let id = created_id(&out);
        let ares = acs.handle(&areq(&out)).unwrap();
        assert_eq!(ares.trans_status, TransStatus::C);
        let out = h.step(SEC, Input::ThreeDsARes(ares));
        assert!(
            matches!(out[0], Output::ChallengeRequired { acs_trans_id, .. } if acs_trans_id == ares.acs_trans_id)
        );
        let rreq = acs.answer_challenge(ares.acs_trans_id, answer).unwrap();
        let out = h.step(30 * SEC, Input::ThreeDsRReq(rreq));
        assert!(out.contains(&Output::ToThreeDs(ThreeDsRequest::RRes {
            payment_id: id,
            acs_trans_id: ares.acs_trans_id
        })));
        // The browser's return after the result changes nothing.
        h.step(
            SEC,
            Input::ThreeDsCRes {
                payment_id: id,
                acs_trans_id: ares.acs_trans_id,
            },
        );
        assert_eq!(h.status(id), expected);
        if expected == Status::Rejected {
            assert_eq!(
                h.p.payment(id).unwrap().reason,
                Some(Reason::ThreeDsChallengeFailed)
            );
        } else {
            let sent = to_acquirer(&out);
            assert!(
                matches!(sent[0].3, AcquirerRequest::Authorise { three_ds: Some(t), .. } if t == rreq.result.unwrap())
            );
        }
    }
}

#[test]
fn three_ds_rejections_and_timeouts() {
    let (mut h, mut acs) = three_ds_harness();
    // The issuer rejects this BIN range.
    let mut c = create(1, 1, 60_000, 1);
    c.bin = Bin(55_551_234);
    let out = h.step(SEC, Input::CreatePayment(c));
    let id = created_id(&out);
    h.step(SEC, Input::ThreeDsARes(acs.handle(&areq(&out)).unwrap()));
    assert_eq!(
        h.p.payment(id).unwrap().reason,
        Some(Reason::ThreeDsRejected)
    );
    // No ARes in time.
    let id = created_id(&h.step(SEC, Input::CreatePayment(create(1, 2, 60_000, 2))));
    let out = h.step(10 * SEC, Input::Tick);
    assert!(out.iter().any(
        |o| matches!(o, Output::PaymentUpdate(v) if v.reason == Some(Reason::ThreeDsTimeout))
    ));
    assert_eq!(h.status(id), Status::Rejected);
    // A challenge never completed.
    let out = h.step(SEC, Input::CreatePayment(create(1, 3, 150_000, 3)));
    let id = created_id(&out);
    let ares = acs.handle(&areq(&out)).unwrap();
    h.step(SEC, Input::ThreeDsARes(ares));
    h.step(
        SEC,
        Input::ThreeDsCRes {
            payment_id: id,
            acs_trans_id: ares.acs_trans_id,
        },
    );
    h.step(598 * SEC, Input::Tick);
    assert_eq!(h.status(id), Status::Authenticating);
    h.step(SEC, Input::Tick);
    assert_eq!(
        h.p.payment(id).unwrap().reason,
        Some(Reason::ThreeDsTimeout)
    );
    // A late RReq for it is ignored.
    let rreq = acs.answer_challenge(ares.acs_trans_id, 123_456).unwrap();
    let out = h.step(SEC, Input::ThreeDsRReq(rreq));
    assert!(matches!(
        out[..],
        [Output::Ignored {
            why: Ignored::UnexpectedThreeDs,
            ..
        }]
    ));
    // Attempted authentication (issuer not enrolled) passes with ECI 06.
    let mut c = create(1, 4, 60_000, 4);
    c.bin = Bin(37_000_001);
    let out = h.step(SEC, Input::CreatePayment(c));
    let out = h.step(SEC, Input::ThreeDsARes(acs.handle(&areq(&out)).unwrap()));
    assert!(matches!(
        to_acquirer(&out)[0].3,
        AcquirerRequest::Authorise {
            three_ds: Some(ThreeDsResult { eci: 6, .. }),
            ..
        }
    ));
}

#[test]
fn void_and_hold_expiry_release_the_hold() {
    let mut config = Config::example();
    config.auth_validity = Nanos(3_600 * SEC);
    let mut h = Harness::new(config);
    let (id, acq) = authorised(&mut h, 1, 900);
    let out = h.step(
        SEC,
        Input::Void {
            merchant: MerchantId(2),
            key: IdemKey(2),
            body_hash: [3; 32],
            payment_id: id,
        },
    );
    assert!(matches!(last_reply(&out), Reply::Ok(v) if v.status == Status::Voided));
    assert_eq!(
        to_acquirer(&out),
        vec![(acq, id, 1, AcquirerRequest::Reverse { amount: 900 })]
    );
    let (id, _) = authorised(&mut h, 3, 800);
    h.step(3_598 * SEC, Input::Tick);
    assert_eq!(h.status(id), Status::Authorised);
    let out = h.step(2 * SEC, Input::Tick);
    assert_eq!(h.status(id), Status::Expired);
    assert!(
        to_acquirer(&out)
            .iter()
            .any(|s| s.3 == AcquirerRequest::Reverse { amount: 800 })
    );
    let hold = h.p.payment(id).unwrap().hold.unwrap();
    assert_eq!(
        h.p.ledger().transfer(hold).unwrap().state,
        sequent_ledger::PendingState::Expired
    );
    let out = capture(&mut h, 4, id, 800);
    assert_eq!(
        last_reply(&out),
        Reply::Rejected {
            payment_id: id,
            reason: Reason::InvalidState,
            retry_at: Nanos(0),
        }
    );
}

#[test]
fn chargebacks_won_and_lost() {
    let mut h = Harness::new(Config::example());
    let (a, _) = authorised(&mut h, 1, 5_000);
    capture(&mut h, 2, a, 5_000);
    let (b, _) = authorised(&mut h, 3, 7_000);
    capture(&mut h, 4, b, 7_000);
    let payable = chart::merchant_payable(2, 978);
    let before = h.p.ledger().account(payable).unwrap().balances;

    let out = h.step(
        SEC,
        Input::ChargebackOpened {
            payment_id: a,
            amount: 5_000,
            reason: 1004,
        },
    );
    assert_eq!(
        out,
        vec![Output::Dispute {
            payment_id: a,
            state: DisputeState::Opened,
            amount: 5_000
        }]
    );
    assert_eq!(
        h.p.ledger()
            .account(payable)
            .unwrap()
            .balances
            .debits_pending,
        before.debits_pending + 5_000
    );
    // A refund cannot take what the dispute holds.
    assert!(matches!(
        last_reply(&refund(&mut h, 5, a, 1)),
        Reply::Rejected {
            reason: Reason::AmountExceedsRefundable,
            ..
        }
    ));
    // Won needs evidence first.
    let out = h.step(
        SEC,
        Input::DisputeResolved {
            payment_id: a,
            won: true,
        },
    );
    assert!(matches!(
        out[..],
        [Output::Ignored {
            why: Ignored::InvalidDispute,
            ..
        }]
    ));
    h.step(SEC, Input::DisputeEvidenceSubmitted { payment_id: a });
    h.step(
        SEC,
        Input::DisputeResolved {
            payment_id: a,
            won: true,
        },
    );
    assert_eq!(h.p.payment(a).unwrap().charged_back, 0);
    assert_eq!(
        h.p.ledger().account(payable).unwrap().balances,
        before,
        "won: the hold is voided"
    );

    h.step(
        SEC,
        Input::ChargebackOpened {
            payment_id: b,
            amount: 3_000,
            reason: 1302,
        },
    );
    h.step(SEC, Input::DisputeEvidenceSubmitted { payment_id: b });
    let out = h.step(
        SEC,
        Input::DisputeResolved {
            payment_id: b,
            won: false,
        },
    );
    assert_eq!(
        out,
        vec![Output::Dispute {
            payment_id: b,
            state: DisputeState::Lost,
            amount: 3_000
        }]
    );
    let after = h.p.ledger().account(payable).unwrap().balances;
    assert_eq!(
        after.debits_posted,
        before.debits_posted + 3_000,
        "lost: the hold is posted"
    );
    assert_eq!(h.p.payment(b).unwrap().charged_back, 3_000);
    // The merchant accepts a second chargeback on the rest.
    h.step(
        SEC,
        Input::ChargebackOpened {
            payment_id: b,
            amount: 4_000,
            reason: 1302,
        },
    );
    h.step(SEC, Input::DisputeAccepted { payment_id: b });
    assert_eq!(h.p.payment(b).unwrap().charged_back, 7_000);
    let out = h.step(
        SEC,
        Input::ChargebackOpened {
            payment_id: b,
            amount: 1,
            reason: 1302,
        },
    );
    assert!(
        matches!(
            out[..],
            [Output::Ignored {
                why: Ignored::InvalidDispute,
                ..
            }]
        ),
        "nothing left to dispute"
    );
    assert_eq!(h.replay_digest(), h.p.state_digest());
}

#[test]
fn get_status_answers_from_state_for_the_owner_only() {
    let mut h = Harness::new(Config::example());
    let (id, _) = authorised(&mut h, 1, 100);
    let out = h.step(
        SEC,
        Input::GetStatus {
            merchant: MerchantId(2),
            payment_id: id,
        },
    );
    assert!(
        matches!(last_reply(&out), Reply::Status(v) if v.status == Status::Authorised && v.last4 == 4242)
    );
    let out = h.step(
        SEC,
        Input::GetStatus {
            merchant: MerchantId(1),
            payment_id: id,
        },
    );
    assert!(matches!(
        last_reply(&out),
        Reply::Rejected {
            reason: Reason::PaymentNotFound,
            ..
        }
    ));
}

#[test]
fn the_pan_scan_can_fail() {
    assert!(luhn_valid(b"4111111111111111"));
    let caught = std::panic::catch_unwind(|| assert_no_pan(b"card=4111111111111111;", "probe"));
    assert!(caught.is_err(), "a PAN is caught");
    assert_no_pan(b"4111111111111112", "a Luhn-invalid run passes");
    assert_no_pan(b"41111111111111111111", "a 20-digit run is not a PAN");
    // Token debug output never forms long digit runs.
    let t = format!("{:?}", Token(4_111_111_111_111_111));
    assert!(t.starts_with("tok:"), "{t}");
    assert_no_pan(t.as_bytes(), "token");
    assert_no_pan(
        format!("{:?}", Nanos(4_111_111_111_111_111)).as_bytes(),
        "nanos",
    );
}
