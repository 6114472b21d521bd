//! Bounded model checks of the sequencers and barriers under every interleaving loom explores.
//! loom also checks each slot access against concurrent writes (`UnsafeCell` tracking), so a
//! producer overwriting a slot a consumer still reads is reported as a data race.
//!
//! Run (about a minute on two cores):
//! `RUSTFLAGS="--cfg loom" cargo test -p sequent-ring --test loom --release --target-dir target/loom`
#![cfg(loom)]

use loom::thread;
use sequent_ring::{
    EventPoller, PollState, Producer, TryPublishError, WaitStrategy, build_multi_producer,
    build_single_producer,
};

/// Runs a model with a preemption bound (default 2; `LOOM_MAX_PREEMPTIONS` overrides) so that
/// the spin-then-yield loops of producers and pollers stay within the branch budget.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    builder.max_branches = 100_000;
    builder.check(f);
}

/// Polls until `n` events arrived, returning them.
fn drain(poller: &mut EventPoller<u64>, n: usize) -> Vec<(i64, u64)> {
    let mut got = Vec::new();
    while got.len() < n {
        match poller.poll(|v, seq, _| got.push((seq, *v))) {
            PollState::Processed(_) => {}
            PollState::Idle => thread::yield_now(),
            PollState::Closed => panic!("closed early"),
        }
    }
    got
}

fn publish_spin(p: &mut impl Producer<u64>, value: u64) {
    loop {
        match p.try_publish(|slot| *slot = value) {
            Ok(_) => return,
            Err(TryPublishError::Full) => thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn single_producer_wraps_a_one_slot_ring_without_overwriting_unread_slots() {
    model(|| {
        let (b, mut poller) =
            build_single_producer(1, || 0u64, WaitStrategy::Yielding).event_poller();
        let mut producer = b.build().unwrap();
        let t = thread::spawn(move || {
            for v in 10..12 {
                publish_spin(&mut producer, v);
            }
            producer
        });
        let got = drain(&mut poller, 2);
        assert_eq!(got, vec![(0, 10), (1, 11)]);
        t.join().unwrap().shutdown().unwrap();
    });
}

/// The consumer finds slot 0 flagged and then reads the cursor to take the rest of the batch
/// (loom builds check one flag before the cursor): the cursor must never cover a slot the
/// producer is still writing.
#[test]
fn single_producer_cursor_never_covers_a_slot_being_written() {
    model(|| {
        let (b, mut poller) =
            build_single_producer(2, || 0u64, WaitStrategy::Yielding).event_poller();
        let mut producer = b.build().unwrap();
        let t = thread::spawn(move || {
            for v in 10..13 {
                publish_spin(&mut producer, v);
            }
            producer
        });
        let got = drain(&mut poller, 3);
        assert_eq!(got, vec![(0, 10), (1, 11), (2, 12)]);
        t.join().unwrap().shutdown().unwrap();
    });
}

#[test]
fn multi_producer_claims_never_collide_and_publish_without_gaps() {
    model(|| {
        let (b, mut poller) =
            build_multi_producer(2, || 0u64, WaitStrategy::Yielding).event_poller();
        let producer = b.build().unwrap();
        let handles: Vec<_> = [1u64, 2]
            .into_iter()
            .map(|v| {
                let mut p = producer.clone();
                thread::spawn(move || {
                    publish_spin(&mut p, v);
                    p.shutdown().unwrap();
                })
            })
            .collect();
        let mut got = drain(&mut poller, 2);
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!((got[0].0, got[1].0), (0, 1));
        got.sort_by_key(|&(_, v)| v);
        assert_eq!((got[0].1, got[1].1), (1, 2));
        producer.shutdown().unwrap();
    });
}

#[test]
fn multi_producer_availability_rounds_survive_a_wrap() {
    // One slot, so the second event reuses it: its availability flag must move to the next round
    // before the consumer may read, and the consumer must not see the old round as published.
    model(|| {
        let (b, mut poller) =
            build_multi_producer(1, || 0u64, WaitStrategy::Yielding).event_poller();
        let mut producer = b.build().unwrap();
        let t = thread::spawn(move || {
            publish_spin(&mut producer, 1);
            publish_spin(&mut producer, 2);
            producer
        });
        assert_eq!(drain(&mut poller, 2), vec![(0, 1), (1, 2)]);
        t.join().unwrap().shutdown().unwrap();
    });
}

#[test]
fn diamond_join_waits_for_both_branches() {
    // Two threads keep the model tractable: the right branch runs concurrently; the producer, the
    // left branch and the join share the main thread, so the join's wait on `right` is the race.
    model(|| {
        let b = build_single_producer(1, || 0u64, WaitStrategy::Yielding);
        let (b, mut left) = b.event_poller();
        let (b, mut right) = b.event_poller();
        let (b, mut join) = b.and_then().event_poller();
        let mut producer = b.build().unwrap();
        let r = thread::spawn(move || drain(&mut right, 1));
        publish_spin(&mut producer, 7);
        assert_eq!(drain(&mut left, 1), vec![(0, 7)]);
        assert_eq!(drain(&mut join, 1), vec![(0, 7)]);
        assert_eq!(r.join().unwrap(), vec![(0, 7)]);
        producer.shutdown().unwrap();
    });
}

#[test]
fn pipeline_stage_reads_only_what_its_upstream_released_across_a_wrap() {
    // One slot and two events: the producer may reuse the slot only after the second stage
    // released it, and the second stage may read only what the first (another thread) released.
    model(|| {
        let (b, mut first) =
            build_single_producer(1, || 0u64, WaitStrategy::Yielding).event_poller();
        let (b, mut second) = b.and_then().event_poller();
        let mut producer = b.build().unwrap();
        let f = thread::spawn(move || drain(&mut first, 2));
        publish_spin(&mut producer, 5);
        assert_eq!(drain(&mut second, 1), vec![(0, 5)]);
        publish_spin(&mut producer, 6);
        assert_eq!(drain(&mut second, 1), vec![(1, 6)]);
        assert_eq!(f.join().unwrap(), vec![(0, 5), (1, 6)]);
        producer.shutdown().unwrap();
    });
}
