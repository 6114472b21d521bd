//! Core snapshots (`docs/engine-snapshot.md`): a core restored from a snapshot taken at any point
//! of a random session stream (logins, orders, cancels, replaces, mass cancels, resends and gaps,
//! disconnects with cancel-on-disconnect, restarts, end of day) continues exactly like the
//! original: the same outputs for every later input and the same digest, and it snapshots to the
//! same bytes. And the reader never panics: arbitrary bytes, every truncation and random bit
//! flips of a real snapshot give an error naming the field and offset, or (a flip into another
//! valid state) a core that writes exactly those bytes back.
//!
//! The seed is printed; `PROPTEST_RNG_SEED=<seed>` replays a run.

mod common;

use common::{inputs, new_core, runner, trading};
use proptest::prelude::*;
use sequent_matching::{Problem, VenueConfig};
use sequent_node::core::{CORE_SNAPSHOT_VERSION, Core, CoreConfig, Input};

fn config() -> CoreConfig {
    CoreConfig {
        sessions_max: 8,
        symbols: vec!["ABC".into(), "XYZ".into()],
        venue: VenueConfig::SMALL,
        // Small, so that the random streams wrap it and snapshots hold partial histories.
        resend_history: 8,
    }
}

fn snapshot(core: &Core) -> Vec<u8> {
    let mut bytes = Vec::new();
    core.write_snapshot(&mut bytes);
    bytes
}

/// A well-formed trading day, then the messier stream (resends, gaps, logins on busy
/// connections, disconnects), with restarts inserted at random places.
fn stream() -> impl Strategy<Value = Vec<Input>> {
    (
        trading(),
        inputs(),
        prop::collection::vec(any::<usize>(), 0..4),
    )
        .prop_map(|(mut day, messy, restarts)| {
            day.extend(messy);
            for at in restarts {
                let at = at % (day.len() + 1);
                day.insert(at, Input::Restart);
            }
            day
        })
}

#[test]
fn a_restored_core_continues_like_the_original() {
    let busiest = std::cell::Cell::new(0u32);
    runner(128)
        .run(
            &(stream(), prop::collection::vec(any::<usize>(), 1..4)),
            |(inputs, cuts)| {
                let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (inputs.len() + 1)).collect();
                cuts.sort_unstable();
                let mut original = new_core();
                let mut restored: Vec<Core> = Vec::new();
                let (mut want, mut got) = (Vec::new(), Vec::new());
                for (t, input) in inputs.iter().enumerate() {
                    for _ in cuts.iter().filter(|&&c| c == t) {
                        let bytes = snapshot(&original);
                        let core = Core::read_snapshot(&config(), &bytes).map_err(|e| {
                            TestCaseError::fail(format!("restore before input {t}: {e}"))
                        })?;
                        prop_assert_eq!(core.state_digest(), original.state_digest());
                        prop_assert_eq!(core.counters(), original.counters());
                        prop_assert!(snapshot(&core) == bytes, "restore then snapshot differs");
                        restored.push(core);
                    }
                    want.clear();
                    original.apply(t as u64, input, &mut want);
                    busiest.set(busiest.get().max(original.venue().resting_orders()));
                    for core in &mut restored {
                        got.clear();
                        core.apply(t as u64, input, &mut got);
                        prop_assert_eq!(&got, &want, "input {} ({:?})", t, input);
                    }
                }
                for core in &restored {
                    prop_assert_eq!(core.state_digest(), original.state_digest());
                    prop_assert_eq!(core.counters(), original.counters());
                    prop_assert!(
                        snapshot(core) == snapshot(&original),
                        "final snapshots differ"
                    );
                }
                Ok(())
            },
        )
        .unwrap();
    // The streams must really build books, or the property says little.
    assert!(
        busiest.get() >= 10,
        "never more than {} resting orders",
        busiest.get()
    );
}

/// A small venue, so that the thousands of reads below stay quick (each builds its tables).
fn small_config() -> CoreConfig {
    CoreConfig {
        venue: VenueConfig {
            orders_max: 256,
            levels_max: 64,
            levels_per_side_max: 32,
            symbols_max: 2,
            accounts_max: 8,
            ids_max: 512,
        },
        ..config()
    }
}

/// The snapshot of a small core after `inputs`.
fn busy_snapshot(inputs: &[Input]) -> Vec<u8> {
    let mut core = Core::new(&small_config());
    let mut out = Vec::new();
    for (t, input) in inputs.iter().enumerate() {
        core.apply(t as u64, input, &mut out);
    }
    snapshot(&core)
}

#[test]
fn truncations_trailing_bytes_and_bit_flips_never_panic() {
    runner(64)
        .run(
            &(
                stream(),
                prop::collection::vec(any::<usize>(), 1..64),
                prop::collection::vec((any::<usize>(), 0u8..8), 1..64),
            ),
            |(inputs, cuts, flips)| {
                let config = small_config();
                let bytes = busy_snapshot(&inputs);
                prop_assert!(Core::read_snapshot(&config, &bytes).is_ok());
                // Proper prefixes (the header's all, then random ones) are refused as truncated.
                let lens = (0..64).chain(cuts.iter().map(|c| c % bytes.len()));
                for len in lens.filter(|&len| len < bytes.len()) {
                    let err = Core::read_snapshot(&config, &bytes[..len]).unwrap_err();
                    prop_assert!(
                        matches!(err.problem, Problem::Truncated { .. }),
                        "prefix {}: {}",
                        len,
                        err
                    );
                    prop_assert!(err.offset <= len);
                }
                let mut longer = bytes.clone();
                longer.push(0);
                let err = Core::read_snapshot(&config, &longer).unwrap_err();
                prop_assert_eq!(err.problem, Problem::Trailing { left: 1 });
                prop_assert_eq!(err.offset, bytes.len());
                // One bit flipped: refused with an offset inside the snapshot (cross-checks may
                // report the item that disagrees, before or after the flip), or a valid other
                // state that encodes to exactly those bytes.
                for (at, bit) in flips {
                    let mut flipped = bytes.clone();
                    let at = at % flipped.len();
                    flipped[at] ^= 1 << bit;
                    match Core::read_snapshot(&config, &flipped) {
                        Err(err) => prop_assert!(err.offset < flipped.len(), "{}", err),
                        Ok(core) => prop_assert!(
                            snapshot(&core) == flipped,
                            "accepted a flip at {} but writes other bytes",
                            at
                        ),
                    }
                }
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn arbitrary_bytes_never_panic() {
    let header = {
        let mut h = sequent_node::core::CORE_SNAPSHOT_MAGIC.to_vec();
        h.extend_from_slice(&CORE_SNAPSHOT_VERSION.to_le_bytes());
        h.extend_from_slice(&8u32.to_le_bytes());
        h
    };
    runner(2048)
        .run(
            &(any::<bool>(), prop::collection::vec(any::<u8>(), 0..400)),
            |(with_header, body)| {
                let bytes = if with_header {
                    [header.clone(), body].concat()
                } else {
                    body
                };
                if let Err(err) = Core::read_snapshot(&config(), &bytes) {
                    prop_assert!(err.offset <= bytes.len());
                    prop_assert!(!err.to_string().is_empty());
                }
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn another_configuration_magic_or_newer_version_is_refused_by_name() {
    let bytes = snapshot(&new_core());
    let mut other = config();
    other.venue.orders_max /= 2;
    let err = Core::read_snapshot(&other, &bytes).unwrap_err();
    assert_eq!(err.field, "venue.orders_max");
    assert!(matches!(
        err.problem,
        Problem::ConfigMismatch {
            snapshot: 65_536,
            config: 32_768
        }
    ));
    let mut other = config();
    other.symbols[1] = "XYW".into();
    assert_eq!(
        Core::read_snapshot(&other, &bytes).unwrap_err().field,
        "core.symbol"
    );
    let mut other = config();
    other.sessions_max = 9;
    assert_eq!(
        Core::read_snapshot(&other, &bytes).unwrap_err().field,
        "core.sessions_max"
    );

    let mut newer = bytes.clone();
    newer[8..12].copy_from_slice(&(CORE_SNAPSHOT_VERSION + 1).to_le_bytes());
    let err = Core::read_snapshot(&config(), &newer).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "snapshot offset 8: core.version: format version {} is newer than this reader (supports up to {})",
            CORE_SNAPSHOT_VERSION + 1,
            CORE_SNAPSHOT_VERSION
        )
    );
    let mut magic = bytes.clone();
    magic[0] ^= 1;
    assert_eq!(
        Core::read_snapshot(&config(), &magic).unwrap_err().problem,
        Problem::BadMagic
    );
}

/// Session 1 rests an order and sees its `a`, then drops; a login from `next_expected` on the
/// core restored from `bytes` (under `history`) returns what it would resend.
fn resend_after_restore(
    bytes: &[u8],
    history: u32,
    next_expected: u32,
) -> Vec<sequent_node::protocol::EngineMessage> {
    let config = CoreConfig {
        resend_history: history,
        ..config()
    };
    let mut core = Core::read_snapshot(&config, bytes).unwrap();
    let mut out = Vec::new();
    core.apply(
        0,
        &Input::Frame {
            connection: 99,
            sequence: 0,
            message: sequent_node::protocol::ClientMessage::Login(
                sequent_node::protocol::LoginBody {
                    session: 1.into(),
                    next_expected: next_expected.into(),
                    flags: 0,
                    reserved: [0; 7],
                },
            ),
        },
        &mut out,
    );
    out.iter()
        .filter_map(|o| match o {
            sequent_node::core::Output::Send { message, .. } => Some(*message),
            _ => None,
        })
        .collect()
}

/// Session 1 sends five orders (five `a` replies, sequences 1..=5) and drops.
fn five_replies(history: u32) -> Core {
    use sequent_node::protocol::{ClientMessage, LoginBody};
    let mut core = Core::new(&CoreConfig {
        resend_history: history,
        ..config()
    });
    let mut out = Vec::new();
    let login = Input::Frame {
        connection: 1,
        sequence: 0,
        message: ClientMessage::Login(LoginBody {
            session: 1.into(),
            next_expected: 0.into(),
            flags: 0,
            reserved: [0; 7],
        }),
    };
    core.apply(0, &login, &mut out);
    for id in 1..=5u32 {
        let order = sequent_node::client::limit_order(id, 1, "ABC", true, 90 + i64::from(id), 1);
        core.apply(
            0,
            &Input::Frame {
                connection: 1,
                sequence: id,
                message: ClientMessage::NewOrder(order),
            },
            &mut out,
        );
    }
    core.apply(0, &Input::Disconnected { connection: 1 }, &mut out);
    core
}

#[test]
fn the_history_survives_a_snapshot_under_a_smaller_history_and_from_version_1() {
    use sequent_node::protocol::EngineMessage;
    let bytes = snapshot(&five_replies(8));
    let all = resend_after_restore(&bytes, 8, 1);
    assert_eq!(all.len(), 6, "login accepted and five replies: {all:?}");
    assert!(
        all[1..]
            .iter()
            .all(|m| matches!(m, EngineMessage::Accepted(_)))
    );
    // Under a history of 2 the newest two are kept and the rest is a gap.
    let short = resend_after_restore(&bytes, 2, 1);
    assert!(
        matches!(short[..], [EngineMessage::LoginAccepted(_), EngineMessage::ResendGap(g), _, _] if g.from.get() == 1 && g.to.get() == 3),
        "{short:?}"
    );
    assert_eq!(&short[2..], &all[4..]);
    // Version 1 had no history section and two counters fewer: written by a core with no
    // history, it is version 2 less one empty count per session (one session here) and less
    // `resent` and `resend_gaps` (both 0), found after applied = 5, duplicates, session_rejects
    // and before the 15 reject reasons.
    let mut v1 = snapshot(&five_replies(0));
    v1.truncate(v1.len() - 4);
    let mut counters = Vec::new();
    for value in [5u64, 0, 0, 0, 0] {
        counters.extend_from_slice(&value.to_le_bytes());
    }
    counters.extend_from_slice(&15u32.to_le_bytes());
    let at: Vec<usize> = (0..v1.len() - counters.len())
        .filter(|&i| v1[i..i + counters.len()] == counters[..])
        .collect();
    assert_eq!(at.len(), 1, "the counters are found once");
    v1.drain(at[0] + 24..at[0] + 40);
    v1[8..12].copy_from_slice(&1u32.to_le_bytes());
    let old = resend_after_restore(&v1, 8, 1);
    assert!(
        matches!(old[..], [EngineMessage::LoginAccepted(_), EngineMessage::ResendGap(g)] if g.from.get() == 1 && g.to.get() == 5),
        "{old:?}"
    );
    // A reply frame in the history that is not the next sequence is refused by name.
    let mut bad = bytes.clone();
    let frames_at = bad.len() - 5 * 16;
    bad[frames_at + 4] = 9;
    let err = Core::read_snapshot(&config(), &bad).unwrap_err();
    assert_eq!(err.field, "core.history.frame", "{err}");
}
