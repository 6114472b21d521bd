//! Behaviour of the ring's graphs, back-pressure, lifecycle and build errors, through the public API.
//! Every handler uses a parking or yielding wait: CI has two cores.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use sequent_ring::{
    BuildError, EventHandler, PollState, Producer, TryPublishError, WaitStrategy,
    build_multi_producer, build_single_producer,
};

#[derive(Default, Debug)]
struct Event {
    value: i64,
    /// Written by a mutating stage, read by the next one.
    stamped: i64,
}

const WAIT: WaitStrategy = WaitStrategy::Blocking { timeout: None };

/// Event counts shrink under Miri, which interprets every instruction.
const fn scaled(n: i64) -> i64 {
    if cfg!(miri) { n / 100 + 10 } else { n }
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn pipeline_passes_each_event_through_every_stage_in_order_and_sees_earlier_writes() {
    let seen_c = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&seen_c);
    let mut next_b = 0;
    let mut producer = build_single_producer(8, Event::default, WAIT)
        .handle_events_mut(|e: &mut Event, seq: i64, _| {
            assert_eq!(e.value, seq);
            e.stamped = e.value * 10;
        })
        .and_then()
        .handle_events_with(move |e: &Event, seq: i64, _| {
            assert_eq!(seq, next_b, "B skipped or repeated");
            assert_eq!(
                e.stamped,
                e.value * 10,
                "B ran before A's write was visible"
            );
            next_b += 1;
        })
        .and_then()
        .handle_events_with(move |e: &Event, seq: i64, _| {
            seen.lock().unwrap().push((seq, e.stamped))
        })
        .build()
        .unwrap();
    for i in 0..scaled(1_000) {
        producer.publish(|e| e.value = i).unwrap();
    }
    producer.shutdown().unwrap();
    let seen = seen_c.lock().unwrap();
    assert_eq!(seen.len() as i64, scaled(1_000));
    for (i, &(seq, stamped)) in seen.iter().enumerate() {
        assert_eq!(seq, i as i64);
        assert_eq!(stamped, i as i64 * 10);
    }
}

#[test]
fn diamond_runs_the_join_only_after_both_branches() {
    let a = Arc::new(AtomicI64::new(-1));
    let b = Arc::new(AtomicI64::new(-1));
    let joined = Arc::new(AtomicI64::new(-1));
    let (a1, b1, a2, b2, j) = (a.clone(), b.clone(), a.clone(), b.clone(), joined.clone());
    let mut producer = build_single_producer(16, Event::default, WAIT)
        .handle_events_with(move |_: &Event, seq, _| a1.store(seq, Ordering::Release))
        .wait_strategy(WaitStrategy::Yielding)
        .handle_events_with(move |_: &Event, seq, _| {
            if seq % 7 == 0 {
                std::thread::yield_now(); // let A run ahead sometimes
            }
            b1.store(seq, Ordering::Release)
        })
        .and_then()
        .handle_events_with(move |_: &Event, seq, _| {
            assert!(
                a2.load(Ordering::Acquire) >= seq,
                "join ran before A at {seq}"
            );
            assert!(
                b2.load(Ordering::Acquire) >= seq,
                "join ran before B at {seq}"
            );
            assert_eq!(j.load(Ordering::Relaxed), seq - 1);
            j.store(seq, Ordering::Relaxed);
        })
        .build()
        .unwrap();
    for i in 0..scaled(5_000) {
        producer.publish(|e| e.value = i).unwrap();
    }
    producer.shutdown().unwrap();
    assert_eq!(joined.load(Ordering::Relaxed), scaled(5_000) - 1);
    assert_eq!(a.load(Ordering::Relaxed), scaled(5_000) - 1);
    assert_eq!(b.load(Ordering::Relaxed), scaled(5_000) - 1);
}

#[test]
fn producer_never_overwrites_a_slot_the_slowest_handler_still_holds() {
    // A slow handler on a tiny ring: if the producer lapped it, it would read a later value.
    let mut producer = build_single_producer(4, Event::default, WAIT)
        .handle_events_with(|e: &Event, seq, _| {
            if seq % 3 == 0 {
                std::thread::sleep(Duration::from_micros(50));
            }
            assert_eq!(e.value, seq, "slot overwritten before release");
        })
        .handle_events_with(|e: &Event, seq, _| assert_eq!(e.value, seq))
        .build()
        .unwrap();
    for i in 0..scaled(2_000) {
        producer.publish(|e| e.value = i).unwrap();
        assert!(producer.free_slots() <= 4);
    }
    producer.shutdown().unwrap();
}

#[test]
fn try_publish_reports_full_and_free_slots_show_back_pressure() {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let mut producer = build_single_producer(8, Event::default, WAIT)
        .handle_events_with(move |_: &Event, seq, _| {
            if seq == 0 {
                release_rx.lock().unwrap().recv().unwrap();
            }
        })
        .build()
        .unwrap();
    assert_eq!(producer.capacity(), 8);
    assert_eq!(producer.free_slots(), 8);
    for i in 0..8 {
        producer.try_publish(|e| e.value = i).unwrap();
    }
    assert_eq!(producer.free_slots(), 0);
    assert_eq!(
        producer.try_publish(|e| e.value = 99),
        Err(TryPublishError::Full)
    );
    assert_eq!(
        producer.try_batch_publish(2, |it| it.for_each(|e| e.value = 99)),
        Err(TryPublishError::Full)
    );
    release_tx.send(()).unwrap();
    wait_until("the handler to drain", || producer.free_slots() == 8);
    assert_eq!(producer.try_publish(|e| e.value = 8), Ok(8));
    producer.shutdown().unwrap();
}

#[test]
fn batches_publish_contiguous_sequences_and_mark_the_end_of_batch() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    let mut producer = build_single_producer(64, Event::default, WAIT)
        .handle_events_with(move |e: &Event, seq, eob| {
            sink.lock().unwrap().push((seq, e.value, eob))
        })
        .build()
        .unwrap();
    let mut value = 0;
    for n in [1usize, 5, 64, 3, 17] {
        let last = producer
            .batch_publish(n, |slots| {
                assert_eq!(slots.len(), n);
                for slot in slots {
                    slot.value = value;
                    value += 1;
                }
            })
            .unwrap();
        assert_eq!(last, value - 1);
    }
    producer.shutdown().unwrap();
    let log = log.lock().unwrap();
    assert_eq!(log.len() as i64, value);
    for (i, &(seq, v, _)) in log.iter().enumerate() {
        assert_eq!((seq, v), (i as i64, i as i64));
    }
    assert!(log.last().unwrap().2, "the last event ends a batch");
}

#[test]
#[should_panic(expected = "does not fit")]
fn a_batch_larger_than_the_ring_is_refused() {
    let mut producer = build_single_producer(8, Event::default, WAIT)
        .handle_events_with(|_: &Event, _, _| {})
        .build()
        .unwrap();
    let _ = producer.batch_publish(9, |_| {});
}

#[test]
fn multi_producers_interleave_but_each_keeps_its_order() {
    const PER_PRODUCER: i64 = scaled(20_000);
    let last_seen = Arc::new(Mutex::new([-1i64; 3]));
    let count = Arc::new(AtomicUsize::new(0));
    let (seen, counted) = (Arc::clone(&last_seen), Arc::clone(&count));
    let producer = build_multi_producer(64, Event::default, WaitStrategy::Yielding)
        .handle_events_with(move |e: &Event, _, _| {
            let (who, n) = ((e.value >> 32) as usize, e.value & 0xffff_ffff);
            let mut seen = seen.lock().unwrap();
            assert_eq!(seen[who] + 1, n, "producer {who} out of order");
            seen[who] = n;
            counted.fetch_add(1, Ordering::Relaxed);
        })
        .build()
        .unwrap();
    let threads: Vec<_> = (0..3i64)
        .map(|who| {
            let mut p = producer.clone();
            std::thread::spawn(move || {
                for n in 0..PER_PRODUCER {
                    if n % 5 == 0 {
                        p.batch_publish(1, |mut it| it.next().unwrap().value = (who << 32) | n)
                            .unwrap();
                    } else if n % 3 == 0 {
                        loop {
                            match p.try_publish(|e| e.value = (who << 32) | n) {
                                Ok(_) => break,
                                Err(TryPublishError::Full) => std::thread::yield_now(),
                                Err(e) => panic!("{e}"),
                            }
                        }
                    } else {
                        p.publish(|e| e.value = (who << 32) | n).unwrap();
                    }
                }
                p.shutdown().unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    producer.shutdown().unwrap();
    assert_eq!(count.load(Ordering::Relaxed), 3 * PER_PRODUCER as usize);
    assert_eq!(*last_seen.lock().unwrap(), [PER_PRODUCER - 1; 3]);
}

#[test]
fn shutdown_drains_everything_published_then_runs_on_shutdown() {
    struct Counting {
        count: Arc<AtomicI64>,
        started: Arc<AtomicBool>,
        stopped: Arc<AtomicBool>,
    }
    impl EventHandler<Event> for Counting {
        fn on_start(&mut self) {
            self.started.store(true, Ordering::Relaxed);
        }
        fn on_event(&mut self, _: &Event, seq: i64, _: bool) {
            if seq % 1000 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        fn on_shutdown(&mut self) {
            self.stopped.store(true, Ordering::Relaxed);
        }
    }
    let count = Arc::new(AtomicI64::new(0));
    let started = Arc::new(AtomicBool::new(false));
    let stopped = Arc::new(AtomicBool::new(false));
    let mut producer = build_single_producer(1024, Event::default, WaitStrategy::phased())
        .handle_events_with(Counting {
            count: Arc::clone(&count),
            started: Arc::clone(&started),
            stopped: Arc::clone(&stopped),
        })
        .build()
        .unwrap();
    for i in 0..10_000 {
        producer.publish(|e| e.value = i).unwrap();
    }
    producer.shutdown().unwrap();
    assert!(started.load(Ordering::Relaxed));
    assert_eq!(
        count.load(Ordering::Relaxed),
        10_000,
        "shutdown returned before the drain"
    );
    assert!(stopped.load(Ordering::Relaxed));
}

#[test]
fn a_panicking_handler_halts_the_ring_and_is_reported_to_the_owner() {
    let mut producer = build_single_producer(4, Event::default, WAIT)
        .thread_name("risk-check")
        .handle_events_with(|e: &Event, _, _| assert!(e.value != 5, "bad event {}", e.value))
        .and_then()
        .handle_events_with(|_: &Event, _, _| {})
        .build()
        .unwrap();
    let mut halted = None;
    for i in 0..1_000 {
        if let Err(h) = producer.publish(|e| e.value = i) {
            halted = Some((i, h));
            break;
        }
    }
    let (at, report) = halted.expect("publish must fail within a lap of the ring after the panic");
    assert!(at <= 5 + 4 + 1, "reported only at {at}");
    assert_eq!(report.handler(), "risk-check");
    assert!(report.message().contains("bad event 5"), "{report}");
    assert!(matches!(
        producer.try_publish(|_| {}),
        Err(TryPublishError::Halted(_))
    ));
    let err = producer.shutdown().expect_err("shutdown reports the panic");
    assert_eq!(err, report);
}

#[test]
fn a_poller_in_the_graph_gates_later_stages_and_sees_everything() {
    let later = Arc::new(AtomicI64::new(-1));
    let later_seen = Arc::clone(&later);
    let (builder, mut poller) = build_single_producer(16, Event::default, WAIT).event_poller();
    let mut producer = builder
        .and_then()
        .handle_events_with(move |_: &Event, seq, _| later_seen.store(seq, Ordering::Release))
        .build()
        .unwrap();
    assert_eq!(poller.poll(|_, _, _| unreachable!()), PollState::Idle);
    for i in 0..10 {
        producer.publish(|e| e.value = i).unwrap();
    }
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(
        later.load(Ordering::Acquire),
        -1,
        "a later stage ran ahead of the poller"
    );
    let mut got = Vec::new();
    assert_eq!(
        poller.poll_limit(4, |e, seq, eob| got.push((e.value, seq, eob))),
        PollState::Processed(4)
    );
    assert_eq!(got.last(), Some(&(3, 3, true)));
    assert_eq!(
        poller.poll(|e, _, _| got.push((e.value, 0, false))),
        PollState::Processed(6)
    );
    assert_eq!(poller.sequence(), 9);
    wait_until("the later stage", || later.load(Ordering::Acquire) == 9);
    let closer = std::thread::spawn(move || producer.shutdown());
    wait_until("the poller to see the close", || {
        poller.poll(|_, _, _| {}) == PollState::Closed
    });
    closer.join().unwrap().unwrap();
}

#[test]
fn blocking_with_a_timeout_calls_on_timeout_when_idle() {
    struct Ticks(Arc<AtomicUsize>);
    impl EventHandler<Event> for Ticks {
        fn on_event(&mut self, _: &Event, _: i64, _: bool) {}
        fn on_timeout(&mut self, sequence: i64) {
            assert_eq!(sequence, -1);
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    let ticks = Arc::new(AtomicUsize::new(0));
    let producer = build_single_producer(
        8,
        Event::default,
        WaitStrategy::Blocking {
            timeout: Some(Duration::from_millis(1)),
        },
    )
    .handle_events_with(Ticks(Arc::clone(&ticks)))
    .build()
    .unwrap();
    wait_until("two timeouts", || ticks.load(Ordering::Relaxed) >= 2);
    producer.shutdown().unwrap();
}

#[test]
fn build_errors_name_what_is_wrong() {
    let err = build_single_producer(8, Event::default, WAIT)
        .pin_at_core(100_000)
        .thread_name("matcher")
        .handle_events_with(|_: &Event, _, _| {})
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, BuildError::NoSuchCore { handler, core } if handler == "matcher" && core.core == 100_000)
    );
    assert!(
        err.to_string().contains("core 100000 does not exist"),
        "{err}"
    );

    let err = build_single_producer(8, Event::default, WAIT)
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::NoConsumers));

    let err = build_single_producer(8, Event::default, WAIT)
        .handle_events_with(|_: &Event, _, _| {})
        .and_then()
        .and_then()
        .handle_events_with(|_: &Event, _, _| {})
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::EmptyStage { stage: 1 }), "{err}");

    let err = build_single_producer(8, Event::default, WAIT)
        .handle_events_with(|_: &Event, _, _| {})
        .and_then()
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::EmptyStage { stage: 1 }), "{err}");

    let err = build_multi_producer(8, Event::default, WAIT)
        .handle_events_with(|_: &Event, _, _| {})
        .thread_name("stamper")
        .handle_events_mut(|_: &mut Event, _, _| {})
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, BuildError::ExclusiveNotAlone { stage: 0, handler } if handler == "stamper")
    );
}

#[test]
#[should_panic(expected = "not a power of two")]
fn ring_size_must_be_a_power_of_two() {
    let _ = build_single_producer(12, Event::default, WAIT);
}

#[test]
#[cfg_attr(miri, ignore = "Miri does not model sched_setaffinity")]
fn pinned_handlers_run_on_their_core() {
    let core = sequent_ring::online_cores()[0];
    let observed = Arc::new(AtomicI64::new(-1));
    let o = Arc::clone(&observed);
    let mut producer = build_single_producer(8, Event::default, WAIT)
        .pin_at_core(core)
        .handle_events_with(move |_: &Event, _, _| {
            // SAFETY-free check through the kernel: which CPU this thread is on now.
            let cpu = std::fs::read_to_string("/proc/thread-self/stat")
                .ok()
                .and_then(|s| {
                    s.rsplit(')')
                        .next()
                        .and_then(|f| f.split_whitespace().nth(36)?.parse().ok())
                })
                .unwrap_or(-1);
            o.store(cpu, Ordering::Relaxed);
        })
        .build()
        .unwrap();
    producer.publish(|_| {}).unwrap();
    producer.shutdown().unwrap();
    assert_eq!(observed.load(Ordering::Relaxed), core as i64);
}
