//! Generators and helpers shared by the core's property tests (`properties.rs`, `snapshot.rs`).

#![allow(dead_code)] // each test file uses its own subset

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use sequent_matching::VenueConfig;
use sequent_node::core::{Core, CoreConfig, Input};
use sequent_node::protocol::{
    CancelBody, ClientMessage, LoginBody, NewOrderBody, ReplaceBody, symbol_bytes,
};

pub fn runner(cases: u32) -> TestRunner {
    let mut config = Config::with_cases(cases);
    config.failure_persistence = None;
    if let Ok(seed) = std::env::var("PROPTEST_RNG_SEED") {
        config.rng_seed = RngSeed::Fixed(seed.parse().expect("PROPTEST_RNG_SEED is a u64"));
    }
    eprintln!("rng seed {:?}", config.rng_seed);
    TestRunner::new(config)
}

pub fn client_message() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        (1u32..6, any::<bool>()).prop_map(|(session, cod)| ClientMessage::Login(LoginBody {
            session: session.into(),
            next_expected: 1.into(),
            flags: u8::from(cod),
            reserved: [0; 7],
        })),
        (
            1u32..40,
            0u32..4,
            prop_oneof![Just("ABC"), Just("XYZ"), Just("NOPE")],
            prop_oneof![Just(b'B'), Just(b'S')],
            prop_oneof![Just(b'L'), Just(b'L'), Just(b'M')],
            prop_oneof![Just(b'G'), Just(b'I'), Just(b'F'), Just(b'D')],
            0u8..8,
            95i64..106,
            1u64..50
        )
            .prop_map(
                |(id, account, symbol, side, order_type, tif, flags, price, qty)| {
                    ClientMessage::NewOrder(NewOrderBody {
                        client_order_id: id.into(),
                        account: account.into(),
                        symbol: symbol_bytes(symbol).unwrap(),
                        side,
                        order_type,
                        tif,
                        flags,
                        reserved: 0.into(),
                        price: price.into(),
                        qty: qty.into(),
                    })
                }
            ),
        (1u32..40).prop_map(|id| ClientMessage::Cancel(CancelBody {
            client_order_id: id.into(),
            reserved: 0.into()
        })),
        (1u32..40, any::<bool>(), 95i64..106, 1u64..50).prop_map(|(id, flag, price, qty)| {
            ClientMessage::Replace(ReplaceBody {
                client_order_id: id.into(),
                flags: u8::from(flag),
                reserved: [0; 3],
                price: price.into(),
                qty: qty.into(),
            })
        }),
        Just(ClientMessage::Heartbeat),
        Just(ClientMessage::Logout),
    ]
}

/// Inputs from a few connections: frames whose sequence is usually right, sometimes a resend or
/// a jump, and disconnects.
pub fn inputs() -> impl Strategy<Value = Vec<Input>> {
    proptest::collection::vec(
        prop_oneof![
            8 => (1u64..5, 0u32..4, client_message()).prop_map(|(c, jitter, m)| (c, jitter, Some(m))),
            1 => (1u64..5, Just(0u32)).prop_map(|(c, j)| (c, j, None)),
        ],
        1..200,
    )
    .prop_map(|raw| {
        // Give frames plausible sequences per connection: next, or a resend (−1, −2), or a gap.
        let mut next = [1u32; 5];
        raw.into_iter()
            .map(|(connection, jitter, message)| match message {
                None => {
                    next[connection as usize] = 1;
                    Input::Disconnected { connection }
                }
                Some(message) => {
                    let n = &mut next[connection as usize];
                    let sequence = match jitter {
                        0 | 1 => *n,
                        2 => n.saturating_sub(1),
                        _ => *n + 1,
                    };
                    if sequence == *n {
                        *n += 1;
                    }
                    Input::Frame {
                        connection,
                        sequence,
                        message,
                    }
                }
            })
            .collect()
    })
}

pub fn new_core() -> Core {
    Core::new(&CoreConfig {
        sessions_max: 8,
        symbols: vec!["ABC".into(), "XYZ".into()],
        venue: VenueConfig::SMALL,
        // Small, so that random streams wrap it and resends meet gaps.
        resend_history: 8,
    })
}

/// A trading session's stream: three sessions log in (cancel on disconnect for session 3), then
/// well-sequenced orders, cancels, replaces (same price smaller, other price, larger), mass
/// cancels, a disconnect and re-login of session 3, and end of day, with self-trade prevention
/// and DAY orders mixed in. Every message is applied (no gaps), so the books fill up.
pub fn trading() -> impl Strategy<Value = Vec<Input>> {
    let step = prop_oneof![
        6 => (0u32..3, 1u32..60, 0u32..3, any::<bool>(), 96i64..105, 1u64..30, 0u8..8, 0u8..4)
            .prop_map(|(s, id, account, buy, price, qty, flags, tif)| (s, 0u8, id, account, buy, price, qty, flags, tif)),
        2 => (0u32..3, 1u32..60).prop_map(|(s, id)| (s, 1u8, id, 0, false, 0, 0, 0, 0)),
        3 => (0u32..3, 1u32..60, any::<bool>(), 96i64..105, 1u64..30)
            .prop_map(|(s, id, move_price, price, qty)| (s, 2u8, id, 0, move_price, price, qty, 0, 0)),
        1 => (0u32..3, 0u32..3, 0u8..4).prop_map(|(s, account, flags)| (s, 3u8, 0, account, false, 0, 0, flags, 0)),
        1 => Just((2u32, 4u8, 0, 0, false, 0, 0, 0, 0)),
        1 => Just((0u32, 5u8, 0, 0, false, 0, 0, 0, 0)),
    ];
    proptest::collection::vec(step, 1..250).prop_map(|steps| {
        let mut inputs = vec![Input::Restart];
        let mut connection = [1u64, 2, 3];
        let mut next = [1u32; 3];
        let login = |c: u64, session: u32| Input::Frame {
            connection: c,
            sequence: 0,
            message: ClientMessage::Login(LoginBody {
                session: session.into(),
                next_expected: 1.into(),
                flags: u8::from(session == 3),
                reserved: [0; 7],
            }),
        };
        for s in 0..3u32 {
            inputs.push(login(connection[s as usize], s + 1));
        }
        for (s, op, id, account, flag, price, qty, flags, tif) in steps {
            let i = s as usize;
            let message = match op {
                0 => ClientMessage::NewOrder(NewOrderBody {
                    client_order_id: id.into(),
                    account: account.into(),
                    symbol: symbol_bytes(if id % 3 == 0 { "XYZ" } else { "ABC" }).unwrap(),
                    side: if flag { b'B' } else { b'S' },
                    order_type: b'L',
                    tif: [b'G', b'G', b'D', b'I'][usize::from(tif)],
                    flags: if tif == 3 { flags & 0b110 } else { flags },
                    reserved: 0.into(),
                    // Bids 93..=101, offers 99..=107: books build up and still cross often.
                    price: (if flag { price - 3 } else { price + 3 }).into(),
                    qty: qty.into(),
                }),
                1 => ClientMessage::Cancel(CancelBody {
                    client_order_id: id.into(),
                    reserved: 0.into(),
                }),
                2 => ClientMessage::Replace(ReplaceBody {
                    client_order_id: id.into(),
                    flags: u8::from(flag),
                    reserved: [0; 3],
                    price: price.into(),
                    qty: qty.into(),
                }),
                3 => ClientMessage::MassCancel(sequent_node::protocol::MassCancelBody {
                    flags,
                    reserved: [0; 3],
                    account: account.into(),
                    symbol: symbol_bytes("ABC").unwrap(),
                }),
                4 => {
                    // Session 3 drops (its orders are cancelled) and logs in on a new connection.
                    inputs.push(Input::Disconnected {
                        connection: connection[2],
                    });
                    connection[2] += 10;
                    inputs.push(login(connection[2], 3));
                    continue;
                }
                _ => {
                    inputs.push(Input::EndOfDay);
                    continue;
                }
            };
            inputs.push(Input::Frame {
                connection: connection[i],
                sequence: next[i],
                message,
            });
            next[i] += 1;
        }
        inputs
    })
}
