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
