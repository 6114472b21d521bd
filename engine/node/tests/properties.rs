//! Properties of the protocol and the core, on random input. The seed is printed;
//! `PROPTEST_RNG_SEED=<seed>` replays a run.

mod common;

use common::{client_message, inputs, new_core, runner, trading};
use proptest::prelude::*;
use sequent_node::core::Output;
use sequent_node::protocol::{
    Decoded, EngineMessage, FRAME_LEN_MAX, decode_client, decode_engine, encode_client,
};

#[test]
fn replay_gives_the_same_outputs_and_digest() {
    runner(128)
        .run(&inputs(), |inputs| {
            let mut a = new_core();
            let mut b = new_core();
            let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
            for (t, input) in inputs.iter().enumerate() {
                a.apply(t as u64, input, &mut out_a);
                b.apply(t as u64, input, &mut out_b);
                prop_assert_eq!(a.state_digest(), b.state_digest());
            }
            prop_assert_eq!(&out_a, &out_b);
            // Outbound order replies on one login carry strictly increasing sequences (the
            // generator reuses connection numbers, the gateway never does: a login starts over).
            let mut last = std::collections::BTreeMap::new();
            for output in &out_a {
                if let Output::Send {
                    connection,
                    message: EngineMessage::LoginAccepted(_),
                    ..
                } = output
                {
                    last.remove(connection);
                }
                if let Output::Send {
                    connection,
                    sequence,
                    ..
                } = output
                    && *sequence > 0
                {
                    let previous = last.insert(*connection, *sequence).unwrap_or(0);
                    prop_assert!(*sequence > previous, "sequence went back on {connection}");
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn encode_then_decode_is_identity() {
    runner(512)
        .run(&(client_message(), any::<u32>()), |(message, sequence)| {
            let mut buf = [0u8; FRAME_LEN_MAX];
            let len = encode_client(&mut buf, sequence, &message);
            match decode_client(&buf[..len]) {
                Decoded::Frame(frame, used) => {
                    prop_assert_eq!(used, len);
                    prop_assert_eq!(frame.sequence, sequence);
                    prop_assert_eq!(frame.message, message);
                }
                other => prop_assert!(false, "{:?}", other),
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn arbitrary_bytes_never_panic_and_errors_say_how_far_to_skip() {
    runner(2048)
        .run(&proptest::collection::vec(any::<u8>(), 0..200), |bytes| {
            // Walk the stream the way the gateway does.
            let mut at = 0;
            while at < bytes.len() {
                match decode_client(&bytes[at..]) {
                    Decoded::Frame(_, len) => at += len,
                    Decoded::Incomplete => break,
                    Decoded::Error(error, len) => {
                        if error.is_fatal() {
                            break;
                        }
                        prop_assert!(len >= 8, "a non-fatal error skips a whole frame");
                        at += len;
                    }
                }
            }
            let _ = decode_engine(&bytes);
            Ok(())
        })
        .unwrap();
}

/// The feed's book, built from the core's market-data messages alone, equals the venue's resting
/// orders after every input: same orders, books, sides, prices and quantities. This is what makes
/// a subscriber's book trustworthy.
#[test]
fn the_market_data_rebuilds_the_venue_book() {
    use sequent_feed::book::Books;
    use sequent_matching::Side;
    let busiest = std::cell::Cell::new(0usize);
    runner(256)
        .run(&trading(), |inputs| {
            let mut core = new_core();
            let mut books = Books::new();
            let mut out = Vec::new();
            for (t, input) in inputs.iter().enumerate() {
                out.clear();
                core.apply(t as u64, input, &mut out);
                for output in &out {
                    if let Output::Market(message) = output {
                        books.apply(message);
                    }
                }
                let mut venue: Vec<(u64, u16, bool, i64, u64)> = Vec::new();
                for symbol in 0..2u16 {
                    for side in [Side::Buy, Side::Sell] {
                        for resting in core.venue().resting(symbol, side) {
                            venue.push((
                                resting.id,
                                symbol + 1,
                                side == Side::Buy,
                                resting.price,
                                resting.qty,
                            ));
                        }
                    }
                }
                venue.sort_unstable();
                let feed: Vec<(u64, u16, bool, i64, u64)> = books
                    .sorted_orders()
                    .into_iter()
                    .map(|(id, o)| {
                        (
                            id,
                            o.locate,
                            o.side == sequent_feed::proto::Side::Buy,
                            o.price,
                            o.shares,
                        )
                    })
                    .collect();
                prop_assert_eq!(&feed, &venue, "after input {} ({:?})", t, input);
                busiest.set(busiest.get().max(venue.len()));
            }
            Ok(())
        })
        .unwrap();
    // The stream must really build books, or the property says nothing.
    assert!(
        busiest.get() >= 20,
        "the generator never rested more than {} orders",
        busiest.get()
    );
}

/// Every execution is reported once to the ledger hook (`Output::Trade`), right after the feed's
/// `OrderExecuted` of the same execution, numbered 1, 2, 3… like the feed's match numbers, with
/// the feed's book, price and quantity, and with the buyer and seller accounts of the orders (the
/// maker's as it rested before the input, the taker's from the input that traded).
#[test]
fn every_execution_is_one_trade_naming_buyer_and_seller() {
    use sequent_feed::proto::Message;
    use sequent_node::core::Input;
    use sequent_node::protocol::ClientMessage;
    let most = std::cell::Cell::new(0u64);
    runner(256)
        .run(&trading(), |inputs| {
            let mut core = new_core();
            let mut out = Vec::new();
            let mut sessions = std::collections::HashMap::new();
            // Resting order id → (account, buy), before each input.
            let mut orders = std::collections::HashMap::new();
            let mut trades = 0u64;
            for (t, input) in inputs.iter().enumerate() {
                orders.clear();
                for symbol in 0..2u16 {
                    for side in [sequent_matching::Side::Buy, sequent_matching::Side::Sell] {
                        for r in core.venue().resting(symbol, side) {
                            orders.insert(r.id, (r.account, side == sequent_matching::Side::Buy));
                        }
                    }
                }
                let mut taker = None;
                if let Input::Frame {
                    connection,
                    message,
                    ..
                } = input
                {
                    match message {
                        ClientMessage::Login(login) => {
                            sessions.insert(*connection, login.session.get());
                        }
                        ClientMessage::NewOrder(order) => {
                            taker = Some((order.account.get(), order.side == b'B'));
                        }
                        ClientMessage::Replace(replace) => {
                            let id = (u64::from(sessions[connection]) << 32)
                                | u64::from(replace.client_order_id.get());
                            taker = orders.get(&id).copied();
                        }
                        _ => {}
                    }
                }
                out.clear();
                core.apply(t as u64, input, &mut out);
                let mut executed = None;
                for output in &out {
                    match output {
                        Output::Market(Message::OrderExecuted(e)) => {
                            prop_assert!(executed.is_none(), "two executions, one trade");
                            executed = Some(*e);
                        }
                        Output::Trade(trade) => {
                            let e = executed.take();
                            prop_assert!(e.is_some(), "a trade without its execution");
                            let e = e.unwrap();
                            trades += 1;
                            prop_assert_eq!(trade.match_number, trades);
                            prop_assert_eq!(e.match_no.get(), trades);
                            prop_assert_eq!(trade.symbol + 1, e.locate.get());
                            prop_assert_eq!(trade.price, e.price.get());
                            prop_assert_eq!(trade.qty, u64::from(e.shares.get()));
                            let (maker_account, maker_buys) = orders[&e.order_ref.get()];
                            let taker = taker.expect("only orders and replaces trade");
                            prop_assert_ne!(maker_buys, taker.1, "a trade is buy against sell");
                            let (buyer, seller) = if maker_buys {
                                (maker_account, taker.0)
                            } else {
                                (taker.0, maker_account)
                            };
                            prop_assert_eq!(
                                (trade.buyer_account, trade.seller_account),
                                (buyer, seller),
                                "input {} ({:?})",
                                t,
                                input
                            );
                        }
                        _ => {}
                    }
                }
                prop_assert!(executed.is_none(), "an execution without its trade");
            }
            most.set(most.get().max(trades));
            Ok(())
        })
        .unwrap();
    assert!(
        most.get() >= 5,
        "the streams traded too little: at most {} trades",
        most.get()
    );
}

/// On random trading streams (session 3 drops, its orders are cancelled while it is away, and it
/// logs in again asking for everything from sequence 1), every resend is: a gap for what the
/// history (8 replies) no longer holds, then the held replies with consecutive sequences, each
/// equal to the reply first sent with that sequence when there was one, and the session's next
/// reply follows the last one resent: nothing is lost or doubled.
#[test]
fn resends_repeat_the_replies_and_lose_or_double_none() {
    use std::collections::BTreeMap;
    runner(128)
        .run(&trading(), |inputs| {
            let mut core = new_core();
            let mut out = Vec::new();
            // (session, sequence) → the reply first sent with it.
            let mut first_sent: BTreeMap<(u32, u32), EngineMessage> = BTreeMap::new();
            let mut owner: BTreeMap<u64, u32> = BTreeMap::new();
            // Per connection: the sequence its next reply must carry, once a resend ended.
            let mut must_follow: BTreeMap<u64, u32> = BTreeMap::new();
            for (t, input) in inputs.iter().enumerate() {
                out.clear();
                core.apply(t as u64, input, &mut out);
                if let sequent_node::core::Input::Frame {
                    connection,
                    message: sequent_node::protocol::ClientMessage::Login(login),
                    ..
                } = input
                    && let Some(Output::Send {
                        message: EngineMessage::LoginAccepted(_),
                        ..
                    }) = out.first()
                {
                    let session = login.session.get();
                    owner.insert(*connection, session);
                    let asked = login.next_expected.get();
                    let resent: Vec<(u32, EngineMessage)> = out[1..]
                        .iter()
                        .filter_map(|o| match o {
                            Output::Send {
                                connection: c,
                                sequence,
                                message,
                            } if c == connection => Some((*sequence, *message)),
                            _ => None,
                        })
                        .collect();
                    let mut expect_from = asked;
                    let mut rest = &resent[..];
                    if let Some((0, EngineMessage::ResendGap(gap))) = resent.first() {
                        prop_assert_eq!(gap.from.get(), asked);
                        expect_from = gap.to.get() + 1;
                        rest = &resent[1..];
                        // A gap only for what the history cannot hold.
                        prop_assert_eq!(rest.len(), 8, "a gap while the history is not full");
                    }
                    for (k, (sequence, message)) in rest.iter().enumerate() {
                        prop_assert_eq!(*sequence, expect_from + k as u32);
                        if let Some(first) = first_sent.get(&(session, *sequence)) {
                            prop_assert_eq!(first, message, "resent differently");
                        }
                    }
                    let next = rest.last().map_or(expect_from, |(s, _)| s + 1);
                    must_follow.insert(*connection, next);
                    continue;
                }
                for output in &out {
                    if let Output::Send {
                        connection,
                        sequence,
                        message,
                    } = output
                        && *sequence > 0
                    {
                        let session = owner[connection];
                        first_sent.entry((session, *sequence)).or_insert(*message);
                        if let Some(next) = must_follow.remove(connection) {
                            prop_assert_eq!(*sequence, next, "the reply after a resend");
                        }
                    }
                }
            }
            Ok(())
        })
        .unwrap();
}
