//! Criterion micro-benchmark: one producer, one busy-spinning consumer, a 40-byte event and a
//! trivial handler (a running sum), `sequent-ring` beside the `disruptor` crate in the same run.
//! It isolates the ring from `sequent-bench ring`'s per-event bookkeeping (order checks,
//! timestamps), which changes which of the two settles into the "consumer right behind the
//! producer" regime. Time per iteration = publishing `EVENTS` events and seeing the consumer
//! finish them; criterion's throughput line gives events/s.
//!
//! `cargo bench -p sequent-bench --bench ring_1p1c`
//! With fewer than 2 cores the consumer and producer share one and the figure means little.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use disruptor::ProcessorSettings;

const EVENTS: u64 = 1_000_000;
const SLOTS: usize = 16_384;

#[derive(Default, Clone, Copy)]
struct Event {
    value: u64,
    _payload: [u64; 4],
}

fn wait_for(seen: &AtomicU64, n: u64) {
    while seen.load(Ordering::Acquire) < n {
        std::hint::spin_loop();
    }
}

/// A handler that sums values and tells the producer how far it got at each batch end.
fn summing(seen: &Arc<AtomicU64>) -> impl FnMut(&Event, i64, bool) + Send + 'static {
    let seen = Arc::clone(seen);
    let mut sum = 0u64;
    move |e: &Event, seq: i64, end_of_batch: bool| {
        sum = sum.wrapping_add(e.value);
        if end_of_batch {
            seen.store(seq as u64 + 1, Ordering::Release);
        }
    }
}

fn bench(c: &mut Criterion) {
    let cores = sequent_ring::online_cores();
    let consumer_core = match cores[..] {
        [_, q, ..] => Some(q),
        _ => None,
    };
    eprintln!(
        "ring_1p1c: {} cores online{}",
        cores.len(),
        if consumer_core.is_none() {
            " — WARNING: oversubscribed, producer and consumer share a core"
        } else {
            ""
        }
    );

    // Each sample builds its ring on a fresh, unpinned thread (the `disruptor` crate checks
    // cores against the calling thread's mask), then pins that thread as the producer to the
    // first core and the consumer to the second, as `sequent-bench ring` does. One ring exists
    // at a time, so no idle busy-spinning consumer shares the measured one's core.
    let producer_core = cores.first().copied().filter(|_| consumer_core.is_some());
    let mut group = c.benchmark_group("ring_1p1c");
    group.throughput(Throughput::Elements(EVENTS));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("disruptor", |b| {
        b.iter_custom(|iters| {
            on_fresh_thread(|| {
                use disruptor::Producer;
                let seen = Arc::new(AtomicU64::new(0));
                let builder = disruptor::build_single_producer(
                    SLOTS,
                    Event::default,
                    disruptor::BusySpinWithSpinLoopHint,
                );
                let builder = match consumer_core {
                    Some(core) => builder.pin_at_core(core),
                    None => builder,
                };
                let mut producer = builder.handle_events_with(summing(&seen)).build();
                pin(producer_core);
                let start = Instant::now();
                let mut published = 0u64;
                for _ in 0..iters * EVENTS {
                    producer.publish(|e| e.value = published);
                    published += 1;
                }
                wait_for(&seen, published);
                start.elapsed()
            })
        });
    });
    group.bench_function("sequent-ring", |b| {
        b.iter_custom(|iters| {
            on_fresh_thread(|| {
                use sequent_ring::Producer;
                let seen = Arc::new(AtomicU64::new(0));
                let builder = sequent_ring::build_single_producer(
                    SLOTS,
                    Event::default,
                    sequent_ring::WaitStrategy::BusySpin,
                );
                let builder = match consumer_core {
                    Some(core) => builder.pin_at_core(core),
                    None => builder,
                };
                let mut producer = builder
                    .handle_events_with(summing(&seen))
                    .build()
                    .expect("ring builds");
                pin(producer_core);
                let start = Instant::now();
                let mut published = 0u64;
                for _ in 0..iters * EVENTS {
                    producer
                        .publish(|e| e.value = published)
                        .expect("no handler panics");
                    published += 1;
                }
                wait_for(&seen, published);
                let elapsed = start.elapsed();
                producer.shutdown().expect("clean shutdown");
                elapsed
            })
        });
    });
    group.finish();
}

fn on_fresh_thread(f: impl FnOnce() -> Duration + Send) -> Duration {
    std::thread::scope(|s| s.spawn(f).join().expect("benchmark thread"))
}

fn pin(core: Option<usize>) {
    if let Some(core) = core {
        sequent_ring::pin_current_thread(core).expect("core is online");
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
