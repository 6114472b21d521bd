//! What every adapter shares: the run context (event counts, thread plan, abort flag, start
//! gate, completion signals), the producer loops and the assembly of a [`RunOutcome`].
//!
//! Threads are scoped to one run. Each thread the harness spawns holds a [`DoneGuard`] that
//! signals the main thread when it ends (normally or by panic); the main thread waits for
//! those signals with a deadline and, past it, raises the abort flag so that every waiting
//! loop gives up. A run therefore never hangs, even when an implementation loses an event.

use std::hint::spin_loop;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use hdrhistogram::Histogram;

use super::event::{Checker, ConsumerReport, Msg, Stamper};
use super::{Impl, RingConfig, RunError, RunOutcome, Scenario, ThreadPlan};

/// One run's shared state; borrowed by every thread of the run.
#[derive(Debug)]
pub(crate) struct RunCtx<'a> {
    pub imp: Impl,
    pub scenario: Scenario,
    pub config: &'a RingConfig,
    pub plan: ThreadPlan,
    /// Producer threads.
    pub producers: usize,
    /// Events each producer publishes.
    pub per_producer: u64,
    /// Raised by the main thread past the deadline; every waiting loop polls it.
    abort: AtomicBool,
    done_tx: Sender<()>,
    done_rx: Receiver<()>,
    /// Producers start together, after every one of them is pinned.
    start_gate: Barrier,
}

impl<'a> RunCtx<'a> {
    pub fn new(imp: Impl, scenario: Scenario, config: &'a RingConfig) -> Self {
        let producers = scenario.topology().producers();
        let per_producer = match scenario {
            Scenario::Latency => config.latency_events,
            // Both twins of a scenario publish the same count: a multiple of the batch.
            Scenario::Throughput { .. } => {
                let unit = (producers * config.batch) as u64;
                (config.events / unit).max(1) * unit / producers as u64
            }
        };
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        Self {
            imp,
            scenario,
            config,
            plan: config.plan(scenario),
            producers,
            per_producer,
            abort: AtomicBool::new(false),
            done_tx,
            done_rx,
            start_gate: Barrier::new(producers),
        }
    }

    /// Events over all producers.
    pub fn total(&self) -> u64 {
        self.per_producer * self.producers as u64
    }

    /// Whether the main thread gave up on this run.
    #[inline]
    pub fn aborted(&self) -> bool {
        // Relaxed: a flag with no data attached; the threads only need to see it eventually.
        self.abort.load(Ordering::Relaxed)
    }

    /// A guard that tells the main thread this thread has finished, when dropped.
    pub fn done_guard(&self) -> DoneGuard {
        DoneGuard(self.done_tx.clone())
    }

    /// Waits until `threads` guards have signalled, or raises the abort flag past the deadline.
    pub fn wait_for_done(&self, threads: usize) -> Result<(), RunError> {
        let deadline = Instant::now() + self.config.run_timeout;
        for _ in 0..threads {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.done_rx.recv_timeout(left) {
                Ok(()) => {}
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    // Relaxed: see `aborted`.
                    self.abort.store(true, Ordering::Relaxed);
                    return Err(RunError::Timeout {
                        imp: self.imp,
                        scenario: self.scenario,
                        timeout: self.config.run_timeout,
                    });
                }
            }
        }
        Ok(())
    }

    /// The core of thread `index` (producers first, then consumers in stage order).
    pub fn core_for(&self, index: usize) -> Option<usize> {
        self.plan.core_for(index)
    }

    /// A checker for a consumer; `records_latency` for the last stage only.
    pub fn checker(&self, consumer: &'static str, records_latency: bool) -> Checker {
        let every = match self.scenario {
            Scenario::Latency => 1,
            Scenario::Throughput { .. } => self.config.sample_every,
        };
        Checker::new(
            consumer,
            self.producers,
            self.per_producer,
            &self.config.clock,
            records_latency.then_some(every),
        )
    }

    /// Runs producer `producer`'s whole loop for this scenario; returns the raw start time,
    /// or `None` when publication stopped early (abort or a halted ring).
    pub fn produce<P: Publish>(&self, producer: u32, publisher: &mut P) -> Option<u64> {
        self.start_gate.wait();
        let clock = &self.config.clock;
        let start_raw = clock.raw();
        let completed = match self.scenario {
            Scenario::Latency => self.produce_paced(start_raw, publisher),
            Scenario::Throughput { batch: false, .. } => {
                let stamper = Stamper::new(clock.clone(), self.config.sample_every);
                (0..self.per_producer).all(|seq| publisher.publish(stamper.msg(producer, seq)))
            }
            Scenario::Throughput { batch: true, .. } => {
                let stamper = Stamper::new(clock.clone(), self.config.sample_every);
                let batch = self.config.batch as u64;
                (0..self.per_producer / batch).all(|chunk| {
                    let first = chunk * batch;
                    publisher.publish_batch(
                        self.config.batch,
                        (first..first + batch).map(|seq| stamper.msg(producer, seq)),
                    )
                })
            }
        };
        completed.then_some(start_raw)
    }

    /// The open-loop latency producer: event `i` is due `i / rate` after the start, whether
    /// or not earlier events have left yet, so a stall is charged to every event behind it.
    fn produce_paced<P: Publish>(&self, start_raw: u64, publisher: &mut P) -> bool {
        let clock = &self.config.clock;
        let rate = u128::from(self.config.latency_rate_per_sec);
        for seq in 0..self.per_producer {
            let intended_ns = (u128::from(seq) * 1_000_000_000 / rate) as u64;
            while clock.delta_as_nanos(start_raw, clock.raw()) < intended_ns {
                if self.aborted() {
                    return false;
                }
                spin_loop();
            }
            let msg = Msg {
                producer: 0,
                seq,
                stamp_raw: start_raw,
                intended_ns,
            };
            if !publisher.publish(msg) {
                return false;
            }
        }
        true
    }

    /// Assembles the outcome: verifies every consumer, then takes the elapsed time from the
    /// earliest producer start to the last consumer's last event.
    pub fn outcome(
        &self,
        starts: &[Option<u64>],
        reports: &[Option<ConsumerReport>],
        wait: &'static str,
        native_batch: bool,
    ) -> Result<RunOutcome, RunError> {
        let mut latency: Option<Histogram<u64>> = None;
        let mut end_raw = 0;
        for (index, report) in reports.iter().enumerate() {
            let report = report.as_ref().ok_or_else(|| RunError::Verification {
                imp: self.imp,
                scenario: self.scenario,
                consumer: ["A", "B", "C"].get(index).copied().unwrap_or("consumer"),
                detail: "the consumer never reported (its thread died)".to_owned(),
            })?;
            report.verify().map_err(|detail| RunError::Verification {
                imp: self.imp,
                scenario: self.scenario,
                consumer: report.consumer,
                detail,
            })?;
            end_raw = end_raw.max(report.end_raw);
            if let Some(hist) = &report.latency {
                match &mut latency {
                    None => latency = Some(hist.clone()),
                    Some(merged) => merged.add(hist).map_err(|err| RunError::Ring {
                        imp: self.imp,
                        scenario: self.scenario,
                        detail: format!("merging latency histograms: {err}"),
                    })?,
                }
            }
        }
        let start_raw = starts
            .iter()
            .copied()
            .collect::<Option<Vec<u64>>>()
            .and_then(|s| s.into_iter().min());
        let start_raw = start_raw.ok_or_else(|| RunError::Ring {
            imp: self.imp,
            scenario: self.scenario,
            detail: "a producer stopped before publishing every event".to_owned(),
        })?;
        Ok(RunOutcome {
            imp: self.imp,
            scenario: self.scenario,
            events: self.total(),
            threads: self.plan.threads,
            pinned: self.plan.pin.is_some(),
            wait,
            native_batch,
            elapsed_ns: self.config.clock.delta_as_nanos(start_raw, end_raw),
            latency_ns: latency.unwrap_or_else(super::event::new_histogram),
        })
    }
}

/// Signals the main thread when dropped; see the module docs.
#[derive(Debug)]
pub(crate) struct DoneGuard(Sender<()>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        // The receiver lives in the run context, which outlives every scoped thread.
        let _ = self.0.send(());
    }
}

/// The producer side of one implementation, as the producer loops drive it.
///
/// Every implementation marks its `publish` and `publish_batch` `#[inline(always)]`, so that
/// each producer loop is one loop with the queue's own code in it, for every implementation
/// alike. Left to the compiler, `disruptor`'s small body was inlined and `sequent-ring`'s stayed
/// a call per event, with the `Msg` passed through memory; measured, that alone kept
/// `sequent-ring` `1p1c` on a near-empty ring at about 30M events/s (docs/BENCHMARKS.md#reading-the-figures).
pub(crate) trait Publish {
    /// Publishes one event, waiting while full; false if the run was aborted or the ring halted.
    fn publish(&mut self, msg: Msg) -> bool;

    /// Publishes `n` events as one batch where the implementation has a batch API; the
    /// default publishes them singly in a burst. False as for [`Publish::publish`].
    /// `msgs` is `Clone` so that an implementation whose `try_` call consumes its closure can
    /// retry; cloning it does not stamp anything.
    fn publish_batch(&mut self, n: usize, msgs: impl Iterator<Item = Msg> + Clone) -> bool {
        debug_assert!(n > 0);
        msgs.into_iter().all(|msg| self.publish(msg))
    }
}
