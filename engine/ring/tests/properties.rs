//! Property: over random topologies, ring sizes, batch sizes, producer counts and wait strategies,
//! every handler and poller sees every published event exactly once, in sequence order, after all
//! of its upstream consumers, with each producer's events in that producer's order.
//!
//! A failure prints the seed; `PROPTEST_RNG_SEED=<seed> cargo test -p sequent-ring --test
//! properties` replays it. `PROPTEST_CASES` changes the number of cases (default 256).

#![allow(clippy::unwrap_in_result)] // a broken ring may panic the case; proptest reports it the same way

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use sequent_ring::{
    Builder, EventPoller, PollState, Producer, TryPublishError, WaitStrategy, build_multi_producer,
    build_single_producer,
};

#[derive(Clone, Copy, Debug)]
enum Kind {
    Handler,
    Mutating,
    Poller,
}

#[derive(Clone, Debug)]
struct Topology {
    ring_log2: u32,
    /// Per stage, its consumers.
    stages: Vec<Vec<(Kind, WaitStrategy)>>,
    producers: usize,
    multi: bool,
    events_per_producer: u32,
    batch: usize,
    use_try: bool,
}

fn wait_strategy() -> impl Strategy<Value = WaitStrategy> {
    prop_oneof![
        Just(WaitStrategy::Yielding),
        Just(WaitStrategy::blocking()),
        (0u32..50, 0u32..5).prop_map(|(s, y)| WaitStrategy::PhasedBackoff {
            spin_tries: s,
            yield_tries: y
        }),
        Just(WaitStrategy::Blocking {
            timeout: Some(Duration::from_micros(200))
        }),
    ]
}

fn stage() -> impl Strategy<Value = Vec<(Kind, WaitStrategy)>> {
    prop_oneof![
        // A mutating handler must be alone in its stage.
        wait_strategy().prop_map(|w| vec![(Kind::Mutating, w)]),
        prop::collection::vec(
            (
                prop_oneof![4 => Just(Kind::Handler), 1 => Just(Kind::Poller)],
                wait_strategy()
            ),
            1..=3
        ),
    ]
}

fn topology() -> impl Strategy<Value = Topology> {
    (
        1u32..=8,
        prop::collection::vec(stage(), 1..=4),
        1usize..=3,
        any::<bool>(),
        0u32..1_500,
        1usize..=16,
        any::<bool>(),
    )
        .prop_map(
            |(ring_log2, stages, producers, multi, events_per_producer, batch, use_try)| Topology {
                ring_log2,
                stages,
                producers,
                multi: multi || producers > 1,
                events_per_producer,
                batch: batch.min(1 << ring_log2),
                use_try,
            },
        )
}

#[derive(Default, Debug)]
struct Event {
    /// `producer << 32 | n`.
    value: i64,
    /// Each mutating stage adds 1, so a later stage can check it ran after all of them.
    touched: i64,
}

/// What every consumer checks per event, and its count at the end.
struct Checker {
    name: String,
    next: i64,
    per_producer: Vec<i64>,
    /// Progress of each consumer of the previous stage.
    upstream: Vec<Arc<AtomicI64>>,
    /// How many mutating stages come before this consumer (inclusive if it mutates).
    mutations_before: i64,
    progress: Arc<AtomicI64>,
    failure: Arc<Mutex<Option<String>>>,
}

impl Checker {
    fn check(&mut self, event: &Event, seq: i64) {
        let fail = |what: String| {
            self.failure.lock().unwrap().get_or_insert(what);
        };
        if seq != self.next {
            fail(format!(
                "{}: got sequence {seq}, expected {}",
                self.name, self.next
            ));
        }
        let (who, n) = ((event.value >> 32) as usize, event.value & 0xffff_ffff);
        if who >= self.per_producer.len() || self.per_producer[who] + 1 != n {
            fail(format!(
                "{}: seq {seq}: producer {who} event {n} out of order",
                self.name
            ));
        } else {
            self.per_producer[who] = n;
        }
        for (i, up) in self.upstream.iter().enumerate() {
            if up.load(Ordering::Acquire) < seq {
                fail(format!(
                    "{}: seq {seq} seen before upstream consumer {i} finished it",
                    self.name
                ));
            }
        }
        if event.touched != self.mutations_before {
            fail(format!(
                "{}: seq {seq} carries {} mutations, expected {}",
                self.name, event.touched, self.mutations_before
            ));
        }
        self.next += 1;
        self.progress.store(seq, Ordering::Release);
    }
}

fn run(t: &Topology) -> Result<(), TestCaseError> {
    let failure = Arc::new(Mutex::new(None::<String>));
    let total = i64::from(t.events_per_producer) * t.producers as i64;
    let mut pollers: Vec<(EventPoller<Event>, Checker)> = Vec::new();
    let mut all_progress = Vec::new();

    fn wire<P>(
        t: &Topology,
        mut b: Builder<Event, P>,
        failure: &Arc<Mutex<Option<String>>>,
        pollers: &mut Vec<(EventPoller<Event>, Checker)>,
        all_progress: &mut Vec<Arc<AtomicI64>>,
    ) -> Builder<Event, P> {
        let mut upstream: Vec<Arc<AtomicI64>> = Vec::new();
        let mut mutations = 0i64;
        for (s, stage) in t.stages.iter().enumerate() {
            if s > 0 {
                b = b.and_then();
            }
            if matches!(stage[0].0, Kind::Mutating) {
                mutations += 1;
            }
            let mut this_stage = Vec::new();
            for (h, &(kind, wait)) in stage.iter().enumerate() {
                let progress = Arc::new(AtomicI64::new(-1));
                this_stage.push(Arc::clone(&progress));
                all_progress.push(Arc::clone(&progress));
                let mut checker = Checker {
                    name: format!("stage {s} consumer {h} ({kind:?})"),
                    next: 0,
                    per_producer: vec![-1; t.producers],
                    upstream: upstream.clone(),
                    mutations_before: mutations,
                    progress,
                    failure: Arc::clone(failure),
                };
                b = match kind {
                    Kind::Handler => b
                        .wait_strategy(wait)
                        .handle_events_with(move |e: &Event, seq, _| checker.check(e, seq)),
                    Kind::Mutating => {
                        b.wait_strategy(wait)
                            .handle_events_mut(move |e: &mut Event, seq, _| {
                                e.touched += 1;
                                checker.check(e, seq);
                            })
                    }
                    Kind::Poller => {
                        let (next, poller) = b.event_poller();
                        pollers.push((poller, checker));
                        next
                    }
                };
            }
            upstream = this_stage;
        }
        b
    }

    fn publish_all(t: &Topology, p: &mut impl Producer<Event>, who: i64) {
        let mut n = 0i64;
        let end = i64::from(t.events_per_producer);
        while n < end {
            let k = t.batch.min((end - n) as usize);
            let fill = |slots: sequent_ring::BatchIterMut<'_, Event>| {
                for (i, slot) in slots.enumerate() {
                    slot.value = (who << 32) | (n + i as i64);
                    slot.touched = 0;
                }
            };
            if t.use_try {
                loop {
                    match p.try_batch_publish(k, fill) {
                        Ok(_) => break,
                        Err(TryPublishError::Full) => std::thread::yield_now(),
                        Err(e) => panic!("{e}"),
                    }
                }
            } else if k == 1 {
                p.publish(|slot| {
                    slot.value = (who << 32) | n;
                    slot.touched = 0;
                })
                .unwrap();
            } else {
                p.batch_publish(k, fill).unwrap();
            }
            n += k as i64;
        }
    }

    let size = 1usize << t.ring_log2;
    let producer_wait = WaitStrategy::Yielding;
    // Pollers are driven by their own threads, as an I/O loop would drive them.
    let drive = |pollers: Vec<(EventPoller<Event>, Checker)>| {
        pollers
            .into_iter()
            .map(|(mut poller, mut checker)| {
                std::thread::spawn(move || {
                    let deadline = Instant::now() + Duration::from_secs(60);
                    loop {
                        match poller.poll_limit(7, |e, seq, _| checker.check(e, seq)) {
                            PollState::Processed(_) => {}
                            PollState::Idle => std::thread::yield_now(),
                            PollState::Closed => return checker.next,
                        }
                        assert!(Instant::now() < deadline, "poller stuck");
                    }
                })
            })
            .collect::<Vec<_>>()
    };
    if t.multi {
        let b = build_multi_producer(size, Event::default, producer_wait);
        let b = wire(t, b, &failure, &mut pollers, &mut all_progress);
        let producer = b.build().unwrap();
        let poll_threads = drive(std::mem::take(&mut pollers));
        let threads: Vec<_> = (0..t.producers)
            .map(|who| {
                let mut p = producer.clone();
                let t = t.clone();
                std::thread::spawn(move || {
                    publish_all(&t, &mut p, who as i64);
                    p.shutdown().unwrap();
                })
            })
            .collect();
        threads.into_iter().for_each(|h| h.join().unwrap());
        producer.shutdown().unwrap();
        for h in poll_threads {
            prop_assert_eq!(h.join().unwrap(), total);
        }
    } else {
        let b = build_single_producer(size, Event::default, producer_wait);
        let b = wire(t, b, &failure, &mut pollers, &mut all_progress);
        let mut producer = b.build().unwrap();
        let poll_threads = drive(std::mem::take(&mut pollers));
        publish_all(t, &mut producer, 0);
        producer.shutdown().unwrap();
        for h in poll_threads {
            prop_assert_eq!(h.join().unwrap(), total);
        }
    }
    if let Some(f) = failure.lock().unwrap().take() {
        return Err(TestCaseError::fail(f));
    }
    for (i, p) in all_progress.iter().enumerate() {
        prop_assert_eq!(
            p.load(Ordering::Acquire),
            total - 1,
            "consumer {} did not see every event",
            i
        );
    }
    Ok(())
}

#[test]
fn every_consumer_sees_every_event_once_in_order_after_its_upstream() {
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    println!("seed = {seed} (replay with PROPTEST_RNG_SEED={seed})");
    let config = Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    if let Err(e) = runner.run(&topology(), |t| run(&t)) {
        panic!("{e}\nseed = {seed} (replay with PROPTEST_RNG_SEED={seed})");
    }
}
