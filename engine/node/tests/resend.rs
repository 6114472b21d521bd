//! Resending missed replies on login (docs/order-entry.md, "Resending replies"), over loopback
//! TCP with replies held until their input is durable: a client that drops without reading its
//! replies logs in again with the next outbound sequence it expects and is resent exactly the
//! rest, the same frames a twin session that never dropped was sent; the same after a graceful
//! restart and after kill -9 of the `sequent-engine` binary (replay rebuilds the history); a range
//! older than the history is answered with a gap; a `next_expected` above what the engine sent is
//! refused without disturbing another session.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sequent_node::client::Client;
use sequent_node::config::EngineConfig;
use sequent_node::engine::Engine;
use sequent_node::protocol::{
    ClientMessage, EngineMessage, FRAME_LEN_MAX, Frame, SessionRejectReason, encode_engine,
};

mod support;
use support::{TempDir, start_binary};

const TIMEOUT: Duration = Duration::from_secs(20);

fn config(dir: &Path, resend_history: u32) -> EngineConfig {
    let mut config = EngineConfig::loopback(dir, true);
    config.sessions.resend_history = resend_history;
    config.snapshots.on_stop = false;
    config
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn wait_applied(engine: &Engine, applied: u64) {
    wait_until(&format!("{applied} messages are applied"), || {
        engine.metrics().applied.load(Ordering::Relaxed) >= applied
    });
}

fn login(address: SocketAddr, session: u32, next_expected: u32) -> (Client, EngineMessage) {
    let mut client = Client::connect(address, TIMEOUT).unwrap();
    let answer = client.login_from(session, false, next_expected).unwrap();
    (client, answer)
}

/// Every frame the engine sends this connection before its answer to a heartbeat sent now: all
/// it produced for the session up to the inputs applied so far (replies leave in the order the
/// core produced them, and the heartbeat is answered after them). No timing involved.
fn drain(client: &mut Client) -> Vec<Frame<EngineMessage>> {
    client.send(0, &ClientMessage::Heartbeat).unwrap();
    let mut frames = Vec::new();
    loop {
        let frame = client.receive().unwrap();
        if frame.message == EngineMessage::Heartbeat {
            return frames;
        }
        frames.push(frame);
    }
}

/// The frames as the wire carries them.
fn wire(frames: &[Frame<EngineMessage>]) -> Vec<Vec<u8>> {
    frames
        .iter()
        .map(|frame| {
            let mut buf = [0u8; FRAME_LEN_MAX];
            let len = encode_engine(&mut buf, frame.sequence, &frame.message);
            buf[..len].to_vec()
        })
        .collect()
}

fn sequences(frames: &[Frame<EngineMessage>]) -> Vec<u32> {
    frames.iter().map(|f| f.sequence).collect()
}

/// Session 1 rests `count` sells from client order id `first` on (one `a` each).
fn sells(client: &mut Client, first: u32, count: u32) {
    for id in first..first + count {
        client
            .new_limit(id, 1, "ABC", false, 100 + i64::from(id % 5), 10)
            .unwrap();
    }
}

/// Session 2 buys through session 1's sells: fills for both.
fn buys(client: &mut Client, count: u32) {
    for id in 1..=count {
        client.new_limit(id, 2, "ABC", true, 105, 15).unwrap();
    }
}

/// Session 1 sends 10 sells, reads the first 3 replies, sends 10 more; once they are applied
/// either drops without reading (`drop_it`) or stays; then session 2 trades 8 buys against them.
/// Returns session 1's client when it stayed.
fn first_half(engine: &Engine, drop_it: bool) -> Option<Client> {
    let (mut one, _) = login(engine.address(), 1, 0);
    sells(&mut one, 1, 10);
    let seen = one.receive_n(3).unwrap();
    assert_eq!(sequences(&seen), [1, 2, 3]);
    assert_eq!(one.next_expected_out, 4);
    sells(&mut one, 11, 10);
    wait_applied(engine, 20);
    let one = if drop_it {
        drop(one);
        wait_until("the drop is seen", || {
            engine.metrics().connections.load(Ordering::Relaxed) == 0
        });
        None
    } else {
        Some(one)
    };
    let (mut two, _) = login(engine.address(), 2, 0);
    buys(&mut two, 8);
    wait_applied(engine, 28);
    drain(&mut two);
    one
}

#[test]
fn a_client_that_drops_unread_is_resent_exactly_what_a_connected_twin_got() {
    let (dir, twin_dir) = (TempDir::new("resend-drop"), TempDir::new("resend-twin"));
    let engine = Engine::start(&config(&dir.0, 1024)).unwrap();
    let twin_engine = Engine::start(&config(&twin_dir.0, 1024)).unwrap();

    let mut twin = first_half(&twin_engine, false).unwrap();
    let twin_rest = drain(&mut twin);
    assert!(
        twin_rest
            .iter()
            .any(|f| matches!(f.message, EngineMessage::Fill(_))),
        "session 1 traded: {twin_rest:?}"
    );
    assert!(first_half(&engine, true).is_none());

    // Back, with the next outbound sequence it expects: 4.
    let (mut one, answer) = login(engine.address(), 1, 4);
    assert!(
        matches!(answer, EngineMessage::LoginAccepted(a) if a.next_expected.get() == 21),
        "{answer:?}"
    );
    let resent = drain(&mut one);
    assert_eq!(wire(&resent), wire(&twin_rest), "byte for byte, in order");
    let last = resent.last().unwrap().sequence;
    assert_eq!(
        sequences(&resent),
        (4..=last).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
    assert_eq!(one.next_expected_out, last + 1);

    // Both go on alike: the next reply follows the resend.
    one.new_limit(21, 1, "ABC", false, 110, 1).unwrap();
    twin.new_limit(21, 1, "ABC", false, 110, 1).unwrap();
    let (next, twin_next) = (drain(&mut one), drain(&mut twin));
    assert_eq!(sequences(&next), [last + 1]);
    assert_eq!(wire(&next), wire(&twin_next));
    engine.shutdown().unwrap();
    twin_engine.shutdown().unwrap();
}

#[test]
fn a_bad_next_expected_is_refused_and_another_session_never_notices() {
    let dir = TempDir::new("resend-bad");
    let engine = Engine::start(&config(&dir.0, 1024)).unwrap();
    let (mut one, _) = login(engine.address(), 1, 0);
    sells(&mut one, 1, 5);
    assert_eq!(one.receive_n(5).unwrap().len(), 5);
    drop(one);
    wait_until("the drop is seen", || {
        engine.metrics().connections.load(Ordering::Relaxed) == 0
    });
    let (mut two, _) = login(engine.address(), 2, 0);
    two.new_limit(1, 2, "ABC", true, 90, 1).unwrap();

    // Session 1 sent 5 replies: 7 is beyond anything it ever sent.
    let (mut bad, answer) = login(engine.address(), 1, 7);
    let EngineMessage::SessionReject(reject) = answer else {
        panic!("accepted: {answer:?}")
    };
    assert_eq!(
        SessionRejectReason::from_code(reject.reason.get()),
        Some(SessionRejectReason::NextExpectedTooHigh)
    );
    assert_eq!(
        reject.ref_sequence.get(),
        6,
        "the engine's next outbound sequence"
    );
    let closed = bad.receive().unwrap_err();
    assert_eq!(closed.kind(), std::io::ErrorKind::UnexpectedEof, "{closed}");

    // Session 2 saw nothing of it and trades on; session 1 logs in properly afterwards.
    two.new_limit(2, 2, "ABC", true, 91, 1).unwrap();
    let frames = drain(&mut two);
    assert_eq!(sequences(&frames), [1, 2]);
    assert!(
        frames
            .iter()
            .all(|f| matches!(f.message, EngineMessage::Accepted(_)))
    );
    let (mut one, answer) = login(engine.address(), 1, 6);
    assert!(matches!(answer, EngineMessage::LoginAccepted(_)));
    assert!(drain(&mut one).is_empty(), "nothing was missed");
    engine.shutdown().unwrap();
}

#[test]
fn a_range_older_than_the_history_is_answered_with_a_gap_then_the_rest() {
    let dir = TempDir::new("resend-gap");
    let engine = Engine::start(&config(&dir.0, 4)).unwrap();
    let (mut one, _) = login(engine.address(), 1, 0);
    sells(&mut one, 1, 10);
    let all = one.receive_n(10).unwrap();
    drop(one);
    wait_until("the drop is seen", || {
        engine.metrics().connections.load(Ordering::Relaxed) == 0
    });
    let (mut one, _) = login(engine.address(), 1, 2);
    let frames = drain(&mut one);
    let EngineMessage::ResendGap(gap) = frames[0].message else {
        panic!("no gap first: {frames:?}")
    };
    assert_eq!(frames[0].sequence, 0);
    assert_eq!(
        (gap.from.get(), gap.to.get()),
        (2, 6),
        "exactly what is lost"
    );
    assert_eq!(wire(&frames[1..]), wire(&all[6..]), "then the four held");
    let metrics = engine.metrics();
    wait_until("the counters are published", || {
        metrics.resend_gaps.load(Ordering::Relaxed) == 1
    });
    assert_eq!(metrics.replies_resent.load(Ordering::Relaxed), 4);
    engine.shutdown().unwrap();
}

/// Session 1 rests 20 sells, session 2 trades 8 buys against them; session 1 reads every reply
/// (what was released to it) and returns them. The test then pretends it saw only the first 3.
fn trade_and_read_all(address: SocketAddr) -> Vec<Frame<EngineMessage>> {
    let (mut one, _) = login(address, 1, 0);
    sells(&mut one, 1, 20);
    let mut all = one.receive_n(20).unwrap();
    let (mut two, _) = login(address, 2, 0);
    buys(&mut two, 8);
    drain(&mut two);
    all.extend(drain(&mut one));
    assert!(
        all.iter()
            .any(|f| matches!(f.message, EngineMessage::Fill(_)))
    );
    assert_eq!(sequences(&all), (1..=all.len() as u32).collect::<Vec<_>>());
    all
}

#[test]
fn after_a_graceful_restart_the_missed_replies_are_resent_from_the_snapshot() {
    let dir = TempDir::new("resend-restart");
    // A snapshot at the stop: recovery restores the history from it (the kill -9 test below
    // covers the replay of the journal).
    let mut config = config(&dir.0, 1024);
    config.snapshots.on_stop = true;
    let engine = Engine::start(&config).unwrap();
    let all = trade_and_read_all(engine.address());
    engine.shutdown().unwrap();

    let engine = Engine::start(&config).unwrap();
    assert!(
        engine.recovered().snapshot > 0,
        "recovered from the stop's snapshot"
    );
    assert_eq!(engine.recovered().replayed, 0);
    let (mut one, answer) = login(engine.address(), 1, 4);
    assert!(matches!(answer, EngineMessage::LoginAccepted(_)));
    let resent = drain(&mut one);
    assert_eq!(
        wire(&resent),
        wire(&all[3..]),
        "the replies 4.. as first released"
    );
    // Outbound sequences go on across the restart.
    one.new_limit(21, 1, "ABC", false, 110, 1).unwrap();
    assert_eq!(sequences(&drain(&mut one)), [all.len() as u32 + 1]);
    engine.shutdown().unwrap();
}

#[test]
fn after_kill_9_the_replies_released_before_the_crash_are_resent() {
    let dir = TempDir::new("resend-kill");
    let path = dir.0.join("engine.toml");
    std::fs::write(
        &path,
        format!(
            r#"
symbols = ["ABC"]
sessions_max = 8
[sessions]
resend_history = 64
[venue]
orders_max = 4096
levels_max = 256
levels_per_side_max = 128
accounts_max = 8
ids_max = 4096
[rings]
input_slots = 1024
output_slots = 1024
[journal]
dir = "{}"
durability = "group"
group_records = 32
interval_us = 300
segment_mib = 1
[gateway]
listen = "127.0.0.1:0"
connections_max = 8
[snapshots]
every_records = 0
on_stop = false
"#,
            dir.0.join("journal").display()
        ),
    )
    .unwrap();
    let mut engine = start_binary(&path);
    let all = trade_and_read_all(engine.address);
    engine.child.kill().unwrap(); // SIGKILL: no stop, no snapshot, no goodbye
    engine.child.wait().unwrap();
    drop(engine);

    let engine = start_binary(&path);
    let (mut one, answer) = login(engine.address, 1, 4);
    assert!(matches!(answer, EngineMessage::LoginAccepted(a) if a.next_expected.get() == 21));
    let resent = drain(&mut one);
    assert_eq!(
        wire(&resent),
        wire(&all[3..]),
        "every reply released before the kill, byte for byte"
    );
    one.new_limit(21, 1, "ABC", false, 110, 1).unwrap();
    assert_eq!(sequences(&drain(&mut one)), [all.len() as u32 + 1]);
}
