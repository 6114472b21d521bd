//! Snapshot round trip of the throttle: drive it with random limit changes, kill switches,
//! reference prices, checks, commits and releases; snapshot at a random step, restore, then feed
//! the rest of the stream to both: every decision and alert is the same, the snapshots are
//! byte-identical, and restoring a snapshot then writing it again gives the same bytes.
//!
//! A failure prints the seed; `PROPTEST_RNG_SEED=<seed> cargo test -p sequent-throttle --test
//! snapshot` replays it.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use sequent_throttle::snapshot::Problem;
use sequent_throttle::{Limits, OrderCheck, Side, Throttle};

const ACCOUNTS: u32 = 4;
const SYMBOLS: u16 = 3;

#[derive(Debug, Clone, Copy)]
enum Op {
    Limits(Option<u32>, Limits),
    Kill(Option<u32>, bool),
    Reference(u16, i64),
    /// Check (and commit when accepted); replacing the hold at this index of the open holds.
    Order(OrderCheck, Option<usize>),
    /// Release part (or all) of the open hold at this index.
    Release(usize, bool),
}

fn limits() -> impl Strategy<Value = Limits> {
    (
        prop::option::of(1u64..30),
        prop::option::of(500u128..20_000),
        prop::option::of(100u32..3_000),
        prop::option::of(1u32..6),
        prop::option::of(500u128..40_000),
        prop::option::of(1u32..20),
        prop::option::of(1u8..=100),
    )
        .prop_map(|(q, n, c, o, cr, r, a)| Limits {
            max_qty: q,
            max_notional: n,
            collar_bps: c,
            max_open_orders: o,
            credit_limit: cr,
            orders_per_sec: r,
            alert_pct: a,
        })
}

fn op() -> impl Strategy<Value = Op> {
    let account = prop::option::of(0..ACCOUNTS);
    prop_oneof![
        2 => (account.clone(), limits()).prop_map(|(a, l)| Op::Limits(a, l)),
        1 => (account, prop::bool::weighted(0.6)).prop_map(|(a, k)| Op::Kill(a, k)),
        1 => (0..SYMBOLS, 90i64..110).prop_map(|(s, p)| Op::Reference(s, p)),
        12 => (
            0..ACCOUNTS,
            0..SYMBOLS,
            any::<bool>(),
            1u64..30,
            prop_oneof![4 => (90i64..110).prop_map(Some), 1 => Just(None)],
            prop::option::weighted(0.2, any::<usize>()),
        )
            .prop_map(|(account, symbol, buy, qty, price, replacing)| {
                let side = if buy { Side::Buy } else { Side::Sell };
                Op::Order(OrderCheck { account, symbol, side, qty, price }, replacing)
            }),
        4 => (any::<usize>(), any::<bool>()).prop_map(|(i, all)| Op::Release(i, all)),
    ]
}

/// The open holds the test has committed: (account, notional), so releases never exceed them.
type Holds = Vec<(u32, u128)>;

/// Applies one op and records what the throttle decided.
fn step(t: &mut Throttle, holds: &mut Holds, now: u64, op: &Op, log: &mut Vec<String>) {
    match *op {
        Op::Limits(account, limits) => t.set_limits(account, limits),
        Op::Kill(account, killed) => t.set_killed(account, killed),
        Op::Reference(symbol, price) => t.set_reference(symbol, price),
        Op::Order(order, replacing) => {
            let replacing = replacing
                .filter(|_| !holds.is_empty())
                .map(|i| i % holds.len())
                .filter(|&i| holds[i].0 == order.account);
            let old = replacing.map(|i| sequent_throttle::Hold {
                price: 0,
                notional: holds[i].1,
            });
            let decision = t.check(now, &order, old);
            log.push(format!("{decision:?}"));
            if let Ok(hold) = decision {
                if let Some(i) = replacing {
                    t.release(order.account, holds[i].1, false);
                    holds[i].1 = hold.notional;
                } else {
                    holds.push((order.account, hold.notional));
                }
                t.commit(order.account, hold, replacing.is_none(), &mut |a| {
                    log.push(format!("{a:?}"));
                });
            }
        }
        Op::Release(i, all) => {
            if holds.is_empty() {
                return;
            }
            let i = i % holds.len();
            let (account, held) = holds[i];
            if all {
                t.release(account, held, true);
                holds.swap_remove(i);
            } else {
                t.release(account, held / 2, false);
                holds[i].1 -= held / 2;
            }
        }
    }
}

fn digest(t: &Throttle) -> Vec<u8> {
    let mut d = Vec::new();
    t.digest_into(|b| d.extend_from_slice(b));
    d
}

fn round_trip(ops: &[Op], cut: usize) -> Result<(), TestCaseError> {
    let cut = cut % (ops.len() + 1);
    let mut original = Throttle::new(ACCOUNTS, SYMBOLS);
    let mut holds = Holds::new();
    let mut log = Vec::new();
    let now = |i: usize| i as u64 * 150_000_000;
    for (i, op) in ops[..cut].iter().enumerate() {
        step(&mut original, &mut holds, now(i), op, &mut log);
    }
    let mut bytes = Vec::new();
    original.write_snapshot(&mut bytes);
    bytes.extend_from_slice(b"tail");
    let (mut restored, used) = Throttle::read_snapshot(ACCOUNTS, SYMBOLS, &bytes)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(used, bytes.len() - 4, "bytes used");
    let mut again = Vec::new();
    restored.write_snapshot(&mut again);
    prop_assert_eq!(&again[..], &bytes[..used], "snapshot → restore → snapshot");
    prop_assert_eq!(digest(&restored), digest(&original));

    let mut holds_restored = holds.clone();
    for (i, op) in ops.iter().enumerate().skip(cut) {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        step(&mut original, &mut holds, now(i), op, &mut a);
        step(&mut restored, &mut holds_restored, now(i), op, &mut b);
        prop_assert_eq!(a, b, "step {} ({:?})", i, op);
    }
    prop_assert_eq!(digest(&restored), digest(&original));
    let (mut x, mut y) = (Vec::new(), Vec::new());
    original.write_snapshot(&mut x);
    restored.write_snapshot(&mut y);
    prop_assert_eq!(x, y, "final snapshots");

    // Every proper prefix is refused as truncated, never a panic.
    for len in 0..used {
        let err = Throttle::read_snapshot(ACCOUNTS, SYMBOLS, &bytes[..len]).unwrap_err();
        prop_assert!(
            matches!(err.problem, Problem::Truncated { .. }),
            "prefix {}: {}",
            len,
            err
        );
    }
    Ok(())
}

fn seed() -> u64 {
    std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

#[test]
fn a_restored_throttle_decides_like_the_original() {
    let seed = seed();
    println!("seed = {seed} (replay with PROPTEST_RNG_SEED={seed})");
    let mut runner = TestRunner::new(Config {
        cases: 256,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    });
    let stream = (prop::collection::vec(op(), 0..200), any::<usize>());
    if let Err(e) = runner.run(&stream, |(ops, cut)| round_trip(&ops, cut)) {
        panic!("{e}\nseed = {seed} (replay with PROPTEST_RNG_SEED={seed})");
    }
}

#[test]
fn other_dimensions_and_bad_flags_are_refused_by_field() {
    let mut t = Throttle::new(ACCOUNTS, SYMBOLS);
    t.set_killed(Some(2), true);
    let mut bytes = Vec::new();
    t.write_snapshot(&mut bytes);
    let err = Throttle::read_snapshot(ACCOUNTS + 1, SYMBOLS, &bytes).unwrap_err();
    assert_eq!((err.offset, err.field), (0, "throttle.accounts_max"));
    assert_eq!(
        err.to_string(),
        "snapshot offset 0: throttle.accounts_max: the snapshot has 4, the configuration 5"
    );
    let err = Throttle::read_snapshot(ACCOUNTS, SYMBOLS - 1, &bytes).unwrap_err();
    assert_eq!((err.offset, err.field), (4, "throttle.symbols_max"));
    let mut flipped = bytes.clone();
    flipped[6] = 2; // killed_all
    let err = Throttle::read_snapshot(ACCOUNTS, SYMBOLS, &flipped).unwrap_err();
    assert_eq!((err.offset, err.field), (6, "throttle.killed_all"));
    // The killed account is restored.
    let (restored, used) = Throttle::read_snapshot(ACCOUNTS, SYMBOLS, &bytes).unwrap();
    assert_eq!(used, bytes.len());
    assert!(restored.is_killed(2) && !restored.is_killed(1));
}
