//! The session core: logins, sequence numbers, resend duplicates, gaps, cancel on disconnect,
//! replies to the right sessions, and replay determinism.

use sequent_matching::VenueConfig;
use sequent_node::core::{Core, CoreConfig, Input, Output};
use sequent_node::protocol::{
    CancelBody, ClientMessage, EngineMessage, LoginBody, MassCancelBody, NewOrderBody,
    SessionRejectReason, symbol_bytes,
};

fn core() -> Core {
    Core::new(&CoreConfig {
        sessions_max: 8,
        symbols: vec!["ABC".into(), "XYZ".into()],
        venue: VenueConfig::SMALL,
        resend_history: 64,
    })
}

fn login(connection: u64, session: u32, cancel_on_disconnect: bool) -> Input {
    Input::Frame {
        connection,
        sequence: 0,
        message: ClientMessage::Login(LoginBody {
            session: session.into(),
            next_expected: 1.into(),
            flags: u8::from(cancel_on_disconnect),
            reserved: [0; 7],
        }),
    }
}

fn order(connection: u64, sequence: u32, id: u32, side: u8, price: i64, qty: u64) -> Input {
    Input::Frame {
        connection,
        sequence,
        message: ClientMessage::NewOrder(NewOrderBody {
            client_order_id: id.into(),
            account: 1.into(),
            symbol: symbol_bytes("ABC").unwrap(),
            side,
            order_type: b'L',
            tif: b'G',
            flags: 0,
            reserved: 0.into(),
            price: price.into(),
            qty: qty.into(),
        }),
    }
}

fn run(core: &mut Core, inputs: &[Input]) -> Vec<Output> {
    let mut out = Vec::new();
    for (t, input) in inputs.iter().enumerate() {
        core.apply(t as u64, input, &mut out);
    }
    out
}

fn messages_to(out: &[Output], to: u64) -> Vec<(u32, EngineMessage)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send {
                connection,
                sequence,
                message,
            } if *connection == to => Some((*sequence, *message)),
            _ => None,
        })
        .collect()
}

fn session_reject(message: &EngineMessage) -> Option<SessionRejectReason> {
    match message {
        EngineMessage::SessionReject(body) => SessionRejectReason::from_code(body.reason.get()),
        _ => None,
    }
}

#[test]
fn orders_are_acknowledged_and_fills_reach_both_sessions() {
    let mut core = core();
    let out = run(
        &mut core,
        &[
            login(10, 1, false),
            login(20, 2, false),
            order(10, 1, 1, b'S', 100, 50),
            order(20, 1, 1, b'B', 101, 30),
        ],
    );
    let seller = messages_to(&out, 10);
    let buyer = messages_to(&out, 20);
    assert!(
        matches!(seller[0], (0, EngineMessage::LoginAccepted(b)) if b.next_expected.get() == 1)
    );
    assert!(matches!(seller[1], (1, EngineMessage::Accepted(b)) if b.client_order_id.get() == 1));
    // The resting seller added liquidity at its own price.
    assert!(
        matches!(seller[2], (2, EngineMessage::Fill(f)) if f.liquidity == b'A' && f.price.get() == 100 && f.qty.get() == 30)
    );
    assert!(matches!(buyer[1], (1, EngineMessage::Accepted(_))));
    assert!(
        matches!(buyer[2], (2, EngineMessage::Fill(f)) if f.liquidity == b'R' && f.price.get() == 100 && f.qty.get() == 30)
    );
    assert_eq!(core.counters().applied, 2);
}

#[test]
fn a_reconnecting_client_resends_and_nothing_is_applied_twice() {
    let mut once = core();
    let mut twice = core();
    let first = [
        login(10, 1, false),
        order(10, 1, 1, b'B', 99, 10),
        order(10, 2, 2, b'B', 98, 10),
    ];
    run(&mut once, &first);
    run(&mut twice, &first);
    // The connection drops; the client logs in again, learns where to resume, but resends
    // everything since its last *seen* acknowledgement, which it lost.
    let out = run(
        &mut twice,
        &[Input::Disconnected { connection: 10 }, login(11, 1, false)],
    );
    let accepted = messages_to(&out, 11);
    assert!(matches!(accepted[0].1, EngineMessage::LoginAccepted(b) if b.next_expected.get() == 3));
    let out = run(
        &mut twice,
        &[
            order(11, 1, 1, b'B', 99, 10),
            order(11, 2, 2, b'B', 98, 10),
            order(11, 3, 3, b'B', 97, 10),
        ],
    );
    // Only the third is new.
    let replies = messages_to(&out, 11);
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert!(matches!(replies[0].1, EngineMessage::Accepted(b) if b.client_order_id.get() == 3));
    assert_eq!(twice.counters().duplicates, 2);
    run(&mut once, &[order(10, 3, 3, b'B', 97, 10)]);
    assert_eq!(once.venue().state_digest(), twice.venue().state_digest());
}

#[test]
fn a_sequence_gap_rejects_and_disconnects_that_session_only() {
    let mut core = core();
    let out = run(
        &mut core,
        &[
            login(10, 1, false),
            login(20, 2, false),
            order(10, 5, 1, b'B', 99, 10),
            order(20, 1, 1, b'B', 99, 10),
        ],
    );
    let bad = messages_to(&out, 10);
    assert_eq!(
        session_reject(&bad[1].1),
        Some(SessionRejectReason::SequenceGap)
    );
    assert!(out.contains(&Output::Disconnect { connection: 10 }));
    assert!(!out.contains(&Output::Disconnect { connection: 20 }));
    assert!(matches!(
        messages_to(&out, 20)[1].1,
        EngineMessage::Accepted(_)
    ));
    assert_eq!(
        core.next_expected(1),
        Some(1),
        "nothing of the gap was applied"
    );
}

#[test]
fn session_level_errors() {
    let mut core = core();
    let out = run(
        &mut core,
        &[
            order(10, 1, 1, b'B', 99, 10), // before login
            login(11, 0, false),           // session 0 does not exist
            login(12, 99, false),          // above sessions_max
            login(13, 1, false),
            login(14, 1, false), // session 1 is taken
            login(13, 2, false), // connection 13 is logged in already
        ],
    );
    let reason = |c| session_reject(&messages_to(&out, c)[0].1);
    assert_eq!(reason(10), Some(SessionRejectReason::NotLoggedIn));
    assert_eq!(reason(11), Some(SessionRejectReason::UnknownSession));
    assert_eq!(reason(12), Some(SessionRejectReason::UnknownSession));
    assert_eq!(reason(14), Some(SessionRejectReason::AlreadyLoggedIn));
    assert_eq!(
        session_reject(&messages_to(&out, 13)[1].1),
        Some(SessionRejectReason::AlreadyLoggedIn)
    );
    assert_eq!(core.counters().applied, 0);
}

#[test]
fn cancel_on_disconnect_is_per_session() {
    let mut core = core();
    run(
        &mut core,
        &[
            login(10, 1, true),
            login(20, 2, false),
            order(10, 1, 1, b'B', 99, 10),
            order(10, 2, 2, b'S', 105, 10),
            order(20, 1, 1, b'B', 98, 10),
        ],
    );
    assert_eq!(core.venue().resting_orders(), 3);
    let out = run(&mut core, &[Input::Disconnected { connection: 10 }]);
    assert_eq!(
        core.venue().resting_orders(),
        1,
        "session 1's two orders went"
    );
    assert!(
        out.iter().all(|o| matches!(o, Output::Market(_))),
        "its replies had nowhere to go, only the feed hears of it: {out:?}"
    );
    assert_eq!(out.len(), 2, "one feed cancel per order: {out:?}");
    run(&mut core, &[Input::Disconnected { connection: 20 }]);
    assert_eq!(core.venue().resting_orders(), 1, "session 2 did not ask");
}

#[test]
fn mass_cancel_touches_only_the_sessions_own_orders() {
    let mut core = core();
    run(
        &mut core,
        &[
            login(10, 1, false),
            login(20, 2, false),
            order(10, 1, 1, b'B', 99, 10),
            order(20, 1, 1, b'B', 98, 10),
        ],
    );
    let out = run(
        &mut core,
        &[Input::Frame {
            connection: 10,
            sequence: 2,
            message: ClientMessage::MassCancel(MassCancelBody {
                flags: 0,
                reserved: [0; 3],
                account: 0.into(),
                symbol: [0; 8],
            }),
        }],
    );
    assert_eq!(core.venue().resting_orders(), 1);
    assert!(matches!(messages_to(&out, 10)[0].1, EngineMessage::Cancelled(c) if c.qty.get() == 10));
    assert!(messages_to(&out, 20).is_empty());
}

#[test]
fn unknown_symbols_and_orders_are_rejected_not_fatal() {
    let mut core = core();
    let mut bad = order(10, 1, 1, b'B', 99, 10);
    if let Input::Frame {
        message: ClientMessage::NewOrder(o),
        ..
    } = &mut bad
    {
        o.symbol = symbol_bytes("NOPE").unwrap();
    }
    let out = run(
        &mut core,
        &[
            login(10, 1, false),
            bad,
            Input::Frame {
                connection: 10,
                sequence: 2,
                message: ClientMessage::Cancel(CancelBody {
                    client_order_id: 77.into(),
                    reserved: 0.into(),
                }),
            },
            order(10, 3, 3, b'B', 99, 10),
        ],
    );
    let replies = messages_to(&out, 10);
    assert!(matches!(replies[1].1, EngineMessage::Rejected(r) if r.reason.get() == 3));
    assert!(matches!(replies[2].1, EngineMessage::Rejected(r) if r.reason.get() == 2));
    assert!(matches!(replies[3].1, EngineMessage::Accepted(_)));
    // Outbound sequences count up by one per order reply.
    assert_eq!(
        replies[1..].iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}

fn login_from(connection: u64, session: u32, next_expected: u32) -> Input {
    Input::Frame {
        connection,
        sequence: 0,
        message: ClientMessage::Login(LoginBody {
            session: session.into(),
            next_expected: next_expected.into(),
            flags: 0,
            reserved: [0; 7],
        }),
    }
}

/// Session 1 (connection 10) rests five sells, session 2 (connection 20) buys into them.
fn five_rounds() -> Vec<Input> {
    let mut inputs = vec![login(10, 1, false), login(20, 2, false)];
    for i in 1..=5 {
        inputs.push(order(10, i, i, b'S', 100 + i64::from(i % 3), 10));
        inputs.push(order(20, i, i, b'B', 105, 4));
    }
    inputs
}

/// Session 2 buys `count` more times from its sequence 6: session 1's sells fill.
fn buys(count: u32) -> Vec<Input> {
    (6..6 + count)
        .map(|i| order(20, i, i, b'B', 105, 4))
        .collect()
}

fn sequences(messages: &[(u32, EngineMessage)]) -> Vec<u32> {
    messages.iter().map(|(sequence, _)| *sequence).collect()
}

#[test]
fn a_login_resends_exactly_the_missed_replies_in_order() {
    let before = five_rounds();
    let mut core = core();
    let seen = messages_to(&run(&mut core, &before), 10);
    let seen_last = seen.last().unwrap().0;
    run(&mut core, &[Input::Disconnected { connection: 10 }]);
    let away = messages_to(&run(&mut core, &buys(10)), 10);
    assert!(away.is_empty(), "nobody to send to while away");

    // The twin never disconnects: what it was sent is what the other must be resent.
    let mut twin = self::core();
    let twin_out = run(&mut twin, &[before, buys(10)].concat());
    let expected: Vec<_> = messages_to(&twin_out, 10)
        .into_iter()
        .filter(|(sequence, _)| *sequence > seen_last)
        .collect();
    assert!(expected.len() >= 5, "session 1 missed fills: {expected:?}");

    let got = messages_to(&run(&mut core, &[login_from(11, 1, seen_last + 1)]), 11);
    assert!(matches!(got[0], (0, EngineMessage::LoginAccepted(_))));
    assert_eq!(
        &got[1..],
        &expected[..],
        "the same replies, sequences and order"
    );
    let last = expected.last().unwrap().0;
    assert_eq!(
        sequences(&got[1..]),
        (seen_last + 1..=last).collect::<Vec<_>>()
    );
    // The next reply continues after the resend.
    let next = messages_to(&run(&mut core, &[order(11, 6, 100, b'S', 150, 1)]), 11);
    assert_eq!(next[0].0, last + 1);
    // Asking from further back gives the replies seen before the drop too, the same ones.
    let mut again = self::core();
    run(
        &mut again,
        &[
            five_rounds(),
            vec![Input::Disconnected { connection: 10 }],
            buys(10),
        ]
        .concat(),
    );
    let all = messages_to(&run(&mut again, &[login_from(12, 1, 1)]), 12);
    assert_eq!(
        &all[1..=seen.len() - 1],
        &seen[1..],
        "replies before the drop"
    );
    assert_eq!(&all[seen.len()..], &expected[..]);
}

#[test]
fn no_resend_when_asked_for_none_or_nothing_was_missed() {
    let mut core = core();
    let seen = messages_to(&run(&mut core, &five_rounds()), 10);
    let next_out = seen.last().unwrap().0 + 1;
    for (connection, next_expected) in [(11, 0), (12, next_out)] {
        run(
            &mut core,
            &[Input::Disconnected {
                connection: connection - 1,
            }],
        );
        let got = messages_to(
            &run(&mut core, &[login_from(connection, 1, next_expected)]),
            connection,
        );
        assert_eq!(got.len(), 1, "only the login's answer: {got:?}");
        assert!(matches!(got[0].1, EngineMessage::LoginAccepted(_)));
    }
}

#[test]
fn a_next_expected_above_what_was_sent_is_refused_and_nothing_else_moves() {
    let mut core = core();
    let seen = messages_to(&run(&mut core, &five_rounds()), 10);
    let next_out = seen.last().unwrap().0 + 1;
    run(&mut core, &[Input::Disconnected { connection: 10 }]);
    let digest = core.state_digest();
    let out = run(&mut core, &[login_from(11, 1, next_out + 1)]);
    let got = messages_to(&out, 11);
    assert_eq!(got.len(), 1);
    let EngineMessage::SessionReject(body) = got[0].1 else {
        panic!("{got:?}")
    };
    assert_eq!(
        SessionRejectReason::from_code(body.reason.get()),
        Some(SessionRejectReason::NextExpectedTooHigh)
    );
    assert_eq!(
        body.ref_sequence.get(),
        next_out,
        "says where the engine is"
    );
    assert!(out.contains(&Output::Disconnect { connection: 11 }));
    assert!(messages_to(&out, 20).is_empty(), "session 2 never notices");
    // Nothing changed but the reject counter: the session is still logged out and a good login
    // goes through.
    assert_eq!(core.counters().session_rejects, 1);
    assert_eq!(core.state_digest(), digest);
    let got = messages_to(&run(&mut core, &[login_from(12, 1, next_out)]), 12);
    assert!(matches!(got[..], [(0, EngineMessage::LoginAccepted(_))]));
    // Session 2 trades on undisturbed.
    let out = run(&mut core, &[order(20, 6, 6, b'B', 90, 1)]);
    assert!(matches!(
        messages_to(&out, 20)[..],
        [(_, EngineMessage::Accepted(_))]
    ));
}

#[test]
fn a_range_older_than_the_history_gets_a_gap_then_what_is_held() {
    let history = 4;
    let mut core = Core::new(&CoreConfig {
        sessions_max: 8,
        symbols: vec!["ABC".into(), "XYZ".into()],
        venue: VenueConfig::SMALL,
        resend_history: history,
    });
    let seen = messages_to(&run(&mut core, &five_rounds()), 10);
    let last = seen.last().unwrap().0;
    assert!(last > history + 2);
    run(&mut core, &[Input::Disconnected { connection: 10 }]);
    let got = messages_to(&run(&mut core, &[login_from(11, 1, 2)]), 11);
    assert!(matches!(got[0].1, EngineMessage::LoginAccepted(_)));
    let EngineMessage::ResendGap(gap) = got[1].1 else {
        panic!("{got:?}")
    };
    assert_eq!(got[1].0, 0, "a session message");
    assert_eq!((gap.from.get(), gap.to.get()), (2, last - history));
    assert_eq!(&got[2..], &seen[seen.len() - history as usize..]);
    assert_eq!(
        (core.counters().resent, core.counters().resend_gaps),
        (u64::from(history), 1)
    );
    // With no history at all, every resend is one gap.
    let mut bare = Core::new(&CoreConfig {
        sessions_max: 8,
        symbols: vec!["ABC".into(), "XYZ".into()],
        venue: VenueConfig::SMALL,
        resend_history: 0,
    });
    run(&mut bare, &five_rounds());
    run(&mut bare, &[Input::Disconnected { connection: 10 }]);
    let got = messages_to(&run(&mut bare, &[login_from(11, 1, 1)]), 11);
    assert!(
        matches!(got[..], [(0, EngineMessage::LoginAccepted(_)), (0, EngineMessage::ResendGap(g))] if g.from.get() == 1 && g.to.get() == last)
    );
}

#[test]
fn outbound_sequences_go_on_across_a_restart_and_replies_of_the_restart_are_held() {
    let mut core = core();
    // Session 1 asks for cancel on disconnect: the restart cancels its resting sell.
    let mut inputs = vec![login(10, 1, true), order(10, 1, 1, b'S', 100, 10)];
    inputs.push(Input::Restart);
    let out = run(&mut core, &inputs);
    let seen = messages_to(&out, 10);
    assert_eq!(sequences(&seen), [0, 1], "the cancel found no connection");
    let got = messages_to(&run(&mut core, &[login_from(11, 1, 2)]), 11);
    assert!(
        matches!(got[..], [(0, EngineMessage::LoginAccepted(a)), (2, EngineMessage::Cancelled(c))] if a.next_expected.get() == 2 && c.reason == 1),
        "{got:?}"
    );
}
