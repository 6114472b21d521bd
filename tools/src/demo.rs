//! `sequent demo`: a four-handler ring pipeline shaped like the trading pipeline, on pinned threads.
//!
//! ```text
//! producer ─▶ [ring] ─▶ validate (&mut: stamps a checksum) ─┬─▶ audit (hash chain over every event)
//!                                                           └─▶ stats (per-symbol volume)
//!                                                                 └──┬──▶ egress (latency, HdrHistogram)
//! ```
//! Two phases: a burst (batched publication as fast as the ring takes it: throughput) and an open
//! loop at a fixed rate (latency from each event's *intended* send time, so a stall is charged in
//! full rather than hidden by a producer that waits). The business stages are stand-ins with real
//! work and real checks; the engine part that follows (`demo_engine.rs`) runs the real ones.

use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use clap::ValueEnum;
use hdrhistogram::Histogram;
use quanta::{Clock, Instant};
use sequent_ring::{EventHandler, Producer, WaitStrategy, build_single_producer, online_cores};

/// Symbols the generator cycles through (the stats stage keeps one counter per symbol).
const SYMBOLS: usize = 8;
/// Events per batch in the burst phase.
const BATCH: usize = 64;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Events in the burst (throughput) phase.
    #[arg(long, default_value_t = 5_000_000)]
    burst_events: u64,
    /// Events in the open-loop (latency) phase.
    #[arg(long, default_value_t = 1_000_000)]
    latency_events: u64,
    /// Target rate of the open-loop phase, events per second.
    #[arg(long, default_value_t = 500_000)]
    rate: u64,
    /// Ring size in slots (a power of two).
    #[arg(long, default_value_t = 1 << 16)]
    ring_size: usize,
    /// Wait strategy of every handler; `auto` busy-spins when every thread has a core and parks
    /// when they do not (on a shared core, spinning or yielding handlers steal each other's time).
    #[arg(long, value_enum, default_value_t = Wait::Auto)]
    wait: Wait,
    /// Do not pin threads to cores.
    #[arg(long)]
    no_pin: bool,
    /// Skip the ring pipeline part and run only the engine.
    #[arg(long)]
    skip_ring: bool,
    #[command(flatten)]
    engine: crate::demo_engine::EngineArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Wait {
    Auto,
    Spin,
    Yield,
    Block,
    Phased,
}

#[derive(Clone, Copy)]
struct Event {
    /// When the producer meant to send it (open loop) or did send it (burst).
    intended: Instant,
    symbol: u32,
    qty: u64,
    price: i64,
    /// Written by `validate`, checked by `audit`.
    checksum: u64,
}

fn checksum(e: &Event) -> u64 {
    // FNV-1a over the business fields: cheap, deterministic, sensitive to every bit.
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for word in [u64::from(e.symbol), e.qty, e.price as u64] {
        for byte in word.to_le_bytes() {
            h = (h ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

struct Audit {
    chain: u64,
    seen: u64,
    bad: u64,
    done: mpsc::Sender<(u64, u64, u64)>,
}

impl EventHandler<Event> for Audit {
    fn on_event(&mut self, e: &Event, seq: i64, _: bool) {
        if e.checksum != checksum(e) {
            self.bad += 1;
        }
        self.chain = (self.chain ^ e.checksum ^ seq as u64)
            .rotate_left(5)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.seen += 1;
    }
    fn on_shutdown(&mut self) {
        let _ = self.done.send((self.seen, self.bad, self.chain));
    }
}

struct Stats {
    volume: [u64; SYMBOLS],
    done: mpsc::Sender<[u64; SYMBOLS]>,
}

impl EventHandler<Event> for Stats {
    fn on_event(&mut self, e: &Event, _: i64, _: bool) {
        self.volume[e.symbol as usize % SYMBOLS] += e.qty;
    }
    fn on_shutdown(&mut self) {
        let _ = self.done.send(self.volume);
    }
}

/// Records latency from `intended` to now for events of the current phase.
struct Egress {
    clock: Clock,
    /// Events before this sequence belong to the burst phase and are only counted.
    measure_from: std::sync::Arc<std::sync::atomic::AtomicI64>,
    histogram: Histogram<u64>,
    seen: u64,
    done: mpsc::Sender<(u64, Histogram<u64>)>,
}

impl EventHandler<Event> for Egress {
    fn on_event(&mut self, e: &Event, seq: i64, _: bool) {
        self.seen += 1;
        if seq >= self.measure_from.load(std::sync::atomic::Ordering::Relaxed) {
            let ns = self
                .clock
                .now()
                .saturating_duration_since(e.intended)
                .as_nanos() as u64;
            self.histogram.saturating_record(ns.max(1));
        }
    }
    fn on_shutdown(&mut self) {
        let histogram = std::mem::replace(&mut self.histogram, Histogram::new(1).expect("valid"));
        let _ = self.done.send((self.seen, histogram));
    }
}

pub fn run(args: &Args) -> Result<()> {
    if !args.skip_ring {
        // On a thread of its own: the ring part pins its producer thread, and threads spawned
        // later (the engine's) must not inherit that single-core affinity.
        std::thread::scope(|scope| {
            scope
                .spawn(|| run_ring(args))
                .join()
                .map_err(|_| anyhow::anyhow!("the ring demo panicked"))?
        })?;
    }
    crate::demo_engine::run(&args.engine)
}

fn run_ring(args: &Args) -> Result<()> {
    ensure!(
        args.ring_size.is_power_of_two() && args.ring_size >= BATCH,
        "--ring-size must be a power of two >= {BATCH}"
    );
    ensure!(args.rate > 0, "--rate must be positive");
    let cores = online_cores();
    let threads = 5; // producer + 4 handlers
    let wait = match args.wait {
        Wait::Auto if threads <= cores.len() => WaitStrategy::BusySpin,
        Wait::Auto => WaitStrategy::blocking(),
        Wait::Spin => WaitStrategy::BusySpin,
        Wait::Yield => WaitStrategy::Yielding,
        Wait::Block => WaitStrategy::blocking(),
        Wait::Phased => WaitStrategy::phased(),
    };
    // The producer gets the first core to itself (it spins to keep the open-loop schedule);
    // handlers share the others round-robin. With one core, everything shares it.
    let pin = |i: usize| -> Option<usize> {
        if args.no_pin {
            None
        } else if i == 0 || cores.len() == 1 {
            Some(cores[0])
        } else {
            Some(cores[1 + (i - 1) % (cores.len() - 1)])
        }
    };
    let show = |p: Option<usize>| p.map_or("-".to_owned(), |c| c.to_string());
    println!(
        "sequent demo: ring pipeline validate(&mut) → audit ∥ stats → egress, {} slots",
        args.ring_size
    );
    println!(
        "machine: {} cores online {:?}; threads: 1 producer + 4 handlers; wait: {wait:?}; pinning: {}",
        cores.len(),
        cores,
        if args.no_pin {
            "off".to_owned()
        } else {
            format!(
                "producer→{}, validate→{}, audit→{}, stats→{}, egress→{}",
                show(pin(0)),
                show(pin(1)),
                show(pin(2)),
                show(pin(3)),
                show(pin(4))
            )
        }
    );
    if threads > cores.len() {
        println!(
            "warning: {threads} threads on {} cores: oversubscribed. Figures include scheduler delays; compare only ratios measured in one run.",
            cores.len()
        );
    }

    let clock = Clock::new();
    let (audit_tx, audit_rx) = mpsc::channel();
    let (stats_tx, stats_rx) = mpsc::channel();
    let (egress_tx, egress_rx) = mpsc::channel();
    let measure_from = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(i64::MAX));
    let mut builder = build_single_producer(
        args.ring_size,
        || Event {
            intended: clock.now(),
            symbol: 0,
            qty: 0,
            price: 0,
            checksum: 0,
        },
        wait,
    );
    let handler_pins: Vec<Option<usize>> = (1..5).map(pin).collect();
    let with_pin = |b: sequent_ring::Builder<Event, sequent_ring::Single>, p: Option<usize>| match p
    {
        Some(core) => b.pin_at_core(core),
        None => b,
    };
    builder = with_pin(builder, handler_pins[0])
        .thread_name("validate")
        .handle_events_mut(|e: &mut Event, _, _| {
            e.checksum = checksum(e);
        });
    builder = with_pin(builder.and_then(), handler_pins[1])
        .thread_name("audit")
        .handle_events_with(Audit {
            chain: 0,
            seen: 0,
            bad: 0,
            done: audit_tx,
        });
    builder = with_pin(builder, handler_pins[2])
        .thread_name("stats")
        .handle_events_with(Stats {
            volume: [0; SYMBOLS],
            done: stats_tx,
        });
    builder = with_pin(builder.and_then(), handler_pins[3])
        .thread_name("egress")
        .handle_events_with(Egress {
            clock: clock.clone(),
            measure_from: std::sync::Arc::clone(&measure_from),
            histogram: Histogram::new_with_bounds(1, 60_000_000_000, 3)
                .context("histogram bounds")?,
            seen: 0,
            done: egress_tx,
        });
    let mut producer = builder.build().context("building the ring")?;
    if let Some(core) = pin(0) {
        sequent_ring::pin_current_thread(core).context("pinning the producer")?;
    }

    // Phase 1: burst, batched.
    let mut expected_volume = [0u64; SYMBOLS];
    let mut n = 0u64;
    let burst_start = clock.now();
    while n < args.burst_events {
        let k = (args.burst_events - n).min(BATCH as u64) as usize;
        let now = clock.now();
        producer.batch_publish(k, |slots| {
            for (i, e) in slots.enumerate() {
                let id = n + i as u64;
                *e = Event {
                    intended: now,
                    symbol: (id % SYMBOLS as u64) as u32,
                    qty: 1 + id % 100,
                    price: 10_000 + (id % 50) as i64,
                    checksum: 0,
                };
                expected_volume[(id % SYMBOLS as u64) as usize] += 1 + id % 100;
            }
        })?;
        n += k as u64;
    }
    // The burst ends when the last stage has it: wait for the ring to empty.
    while producer.free_slots() < producer.capacity() {
        std::thread::yield_now();
    }
    let burst_elapsed = clock.now().duration_since(burst_start);

    // Phase 2: open loop at a fixed rate.
    measure_from.store(n as i64, std::sync::atomic::Ordering::Relaxed);
    let interval_ns = 1_000_000_000f64 / args.rate as f64;
    let open_start = clock.now();
    let mut max_behind = Duration::ZERO;
    for i in 0..args.latency_events {
        let intended = open_start + Duration::from_nanos((i as f64 * interval_ns) as u64);
        let mut now = clock.now();
        while now < intended {
            std::hint::spin_loop();
            now = clock.now();
        }
        max_behind = max_behind.max(now.saturating_duration_since(intended));
        let id = n + i;
        producer.publish(|e| {
            *e = Event {
                intended,
                symbol: (id % SYMBOLS as u64) as u32,
                qty: 1 + id % 100,
                price: 10_000 + (id % 50) as i64,
                checksum: 0,
            };
        })?;
        expected_volume[(id % SYMBOLS as u64) as usize] += 1 + id % 100;
    }
    let open_elapsed = clock.now().duration_since(open_start);
    producer.shutdown().context("a pipeline stage failed")?;

    let (audited, bad, chain) = audit_rx.recv().context("audit stage did not report")?;
    let volume = stats_rx.recv().context("stats stage did not report")?;
    let (egressed, histogram) = egress_rx.recv().context("egress stage did not report")?;
    let total = args.burst_events + args.latency_events;
    if audited != total || egressed != total {
        bail!("lost events: published {total}, audit saw {audited}, egress saw {egressed}");
    }
    if bad != 0 {
        bail!("{bad} events reached audit without validate's checksum");
    }
    if volume != expected_volume {
        bail!("per-symbol volume differs from what was published");
    }

    let secs = burst_elapsed.as_secs_f64();
    println!(
        "throughput: {} events in {:.3} s = {:.1} M events/s (batches of {BATCH}, through all four handlers)",
        args.burst_events,
        secs,
        args.burst_events as f64 / secs / 1e6
    );
    println!(
        "latency: open loop at {} events/s for {} events ({:.2} s), intended send → egress:",
        args.rate,
        args.latency_events,
        open_elapsed.as_secs_f64()
    );
    let us = |ns: u64| ns as f64 / 1_000.0;
    let q = |p: f64| us(histogram.value_at_quantile(p));
    println!(
        "  p50 {:.1} µs   p99 {:.1} µs   p99.9 {:.1} µs   p99.99 {:.1} µs   max {:.1} µs   (producer behind schedule by up to {:.1} µs)",
        q(0.50),
        q(0.99),
        q(0.999),
        q(0.9999),
        us(histogram.max()),
        us(max_behind.as_nanos() as u64)
    );
    println!(
        "checks: every handler saw {total} events; checksums valid; per-symbol volume matches; audit chain {chain:016x}"
    );
    Ok(())
}
