//! Properties of the protocol and the core, on random input. The seed is printed;
//! `PROPTEST_RNG_SEED=<seed>` replays a run.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use sequent_matching::VenueConfig;
use sequent_node::core::{Core, CoreConfig, Input, Output};
use sequent_node::protocol::{
    CancelBody, ClientMessage, Decoded, EngineMessage, FRAME_LEN_MAX, LoginBody, NewOrderBody,
    ReplaceBody, decode_client, decode_engine, encode_client, symbol_bytes,
};

fn runner(cases: u32) -> TestRunner {
    let mut config = Config::with_cases(cases);
    config.failure_persistence = None;
    if let Ok(seed) = std::env::var("PROPTEST_RNG_SEED") {
        config.rng_seed = RngSeed::Fixed(seed.parse().expect("PROPTEST_RNG_SEED is a u64"));
    }
    eprintln!("rng seed {:?}", config.rng_seed);
    TestRunner::new(config)
}

fn client_message() -> impl Strategy<Value = ClientMessage> {
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
fn inputs() -> impl Strategy<Value = Vec<Input>> {
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

fn new_core() -> Core {
    Core::new(&CoreConfig {
        sessions_max: 8,
        symbols: vec!["ABC".into(), "XYZ".into()],
        venue: VenueConfig::SMALL,
    })
}

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
