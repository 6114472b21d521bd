//! `sequent-bench ring`: the sequent ring beside its peers, in one process and one run.
//!
//! Every implementation runs the same scenarios ([`Scenario`]) with the same event payload,
//! the same capacity per ring or queue, the same batch size and the same waiting discipline
//! (busy-spin when every thread has a core, spin-then-yield when threads outnumber cores).
//! Every consumer checks that it saw every event exactly once and in order (per producer for
//! `3p1c`); a run that breaks the check is an error, never a number.

mod event;
mod harness;
mod peers;
mod sequent;
pub mod suite;
mod wait;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use hdrhistogram::Histogram;
use quanta::Clock;

pub use suite::{Progress, SuiteConfig, run_suite};

/// One implementation under test. `name()` is the `impl` field of the JSON output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Impl {
    /// This workspace's ring (engine/ring).
    SequentRing,
    /// The `disruptor` crate 4.4 from crates.io.
    Disruptor,
    /// `crossbeam_channel::bounded`.
    CrossbeamChannel,
    /// `crossbeam_queue::ArrayQueue`.
    CrossbeamArrayQueue,
    /// `rtrb` 0.4, a wait-free SPSC ring buffer.
    Rtrb,
    /// `std::sync::mpsc::sync_channel`.
    StdMpsc,
}

impl Impl {
    /// Every implementation, in table order.
    pub const ALL: [Impl; 6] = [
        Impl::SequentRing,
        Impl::Disruptor,
        Impl::CrossbeamChannel,
        Impl::CrossbeamArrayQueue,
        Impl::Rtrb,
        Impl::StdMpsc,
    ];

    /// The stable name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Impl::SequentRing => "sequent-ring",
            Impl::Disruptor => "disruptor",
            Impl::CrossbeamChannel => "crossbeam-channel",
            Impl::CrossbeamArrayQueue => "crossbeam-arrayqueue",
            Impl::Rtrb => "rtrb",
            Impl::StdMpsc => "std-mpsc",
        }
    }

    /// True for everything but the ring under test: ratios are taken against the best peer.
    pub fn is_peer(self) -> bool {
        self != Impl::SequentRing
    }
}

impl fmt::Display for Impl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Impl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Impl::ALL
            .into_iter()
            .find(|imp| imp.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Impl::ALL.iter().map(|imp| imp.name()).collect();
                format!("unknown impl `{s}` (expected one of: {})", names.join(", "))
            })
    }
}

/// The shape of the event flow between threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topology {
    /// One producer, one consumer.
    OneToOne,
    /// One producer; every event passes through consumers A, then B, then C, in order.
    Pipeline,
    /// One producer; A and B handle each event in parallel, C handles it after both.
    Diamond,
    /// Three producers, one consumer; order is checked per producer.
    ThreeToOne,
}

impl Topology {
    /// Producer threads.
    pub fn producers(self) -> usize {
        match self {
            Topology::ThreeToOne => 3,
            Topology::OneToOne | Topology::Pipeline | Topology::Diamond => 1,
        }
    }

    /// Consumer threads.
    pub fn consumers(self) -> usize {
        match self {
            Topology::Pipeline | Topology::Diamond => 3,
            Topology::OneToOne | Topology::ThreeToOne => 1,
        }
    }
}

/// One benchmark scenario; `name()` is the `scenario` field of the JSON output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scenario {
    /// A closed-loop throughput run: producers publish as fast as the consumers release slots.
    Throughput {
        /// Which threads pass events to which.
        topology: Topology,
        /// Publish in batches of [`RingConfig::batch`] (native batch API where there is one).
        batch: bool,
    },
    /// `1p1c-latency`: an open-loop, fixed-rate one-way latency run.
    Latency,
}

impl Scenario {
    /// Every scenario, in table order.
    pub const ALL: [Scenario; 9] = [
        Scenario::Throughput {
            topology: Topology::OneToOne,
            batch: false,
        },
        Scenario::Throughput {
            topology: Topology::OneToOne,
            batch: true,
        },
        Scenario::Throughput {
            topology: Topology::Pipeline,
            batch: false,
        },
        Scenario::Throughput {
            topology: Topology::Pipeline,
            batch: true,
        },
        Scenario::Throughput {
            topology: Topology::Diamond,
            batch: false,
        },
        Scenario::Throughput {
            topology: Topology::Diamond,
            batch: true,
        },
        Scenario::Throughput {
            topology: Topology::ThreeToOne,
            batch: false,
        },
        Scenario::Throughput {
            topology: Topology::ThreeToOne,
            batch: true,
        },
        Scenario::Latency,
    ];

    /// The stable name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Throughput { topology, batch } => match (topology, batch) {
                (Topology::OneToOne, false) => "1p1c",
                (Topology::OneToOne, true) => "1p1c-batch",
                (Topology::Pipeline, false) => "1p3c-pipeline",
                (Topology::Pipeline, true) => "1p3c-pipeline-batch",
                (Topology::Diamond, false) => "1p3c-diamond",
                (Topology::Diamond, true) => "1p3c-diamond-batch",
                (Topology::ThreeToOne, false) => "3p1c",
                (Topology::ThreeToOne, true) => "3p1c-batch",
            },
            Scenario::Latency => "1p1c-latency",
        }
    }

    /// The thread topology this scenario runs.
    pub fn topology(self) -> Topology {
        match self {
            Scenario::Throughput { topology, .. } => topology,
            Scenario::Latency => Topology::OneToOne,
        }
    }

    /// True for the `-batch` twins.
    pub fn is_batch(self) -> bool {
        matches!(self, Scenario::Throughput { batch: true, .. })
    }

    /// Threads the scenario runs (producers plus consumers; the idle main thread is not counted).
    pub fn threads(self) -> usize {
        let topology = self.topology();
        topology.producers() + topology.consumers()
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scenario {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::ALL
            .into_iter()
            .find(|scenario| scenario.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Scenario::ALL.iter().map(|s| s.name()).collect();
                format!(
                    "unknown scenario `{s}` (expected one of: {})",
                    names.join(", ")
                )
            })
    }
}

/// Largest number of producers any scenario uses; consumers keep one order check per producer.
pub const PRODUCERS_MAX: usize = 3;
/// Events per batch in the `-batch` scenarios.
pub const BATCH_DEFAULT: usize = 64;
/// Throughput runs time-stamp every 1024th event of each producer (a power of two, so the
/// check is a mask).
pub const SAMPLE_EVERY_DEFAULT: u64 = 1024;
/// Slots per ring or queue.
pub const CAPACITY_DEFAULT: usize = 16 * 1024;
const _: () = assert!(CAPACITY_DEFAULT.is_power_of_two());
const _: () = assert!(CAPACITY_DEFAULT >= 4 * BATCH_DEFAULT);
const _: () = assert!(SAMPLE_EVERY_DEFAULT.is_power_of_two());

/// Everything one run needs besides the implementation and the scenario.
#[derive(Debug, Clone)]
pub struct RingConfig {
    /// Events per throughput run, over all producers (rounded down to a multiple of
    /// producers × batch).
    pub events: u64,
    /// Events in the `1p1c-latency` run.
    pub latency_events: u64,
    /// Send rate of the `1p1c-latency` run, events per second.
    pub latency_rate_per_sec: u64,
    /// Slots per ring or queue (a power of two; every queue of a topology gets this many).
    pub capacity: usize,
    /// Events per batch in the `-batch` scenarios.
    pub batch: usize,
    /// Throughput runs record the latency of every `sample_every`-th event (a power of two).
    pub sample_every: u64,
    /// A run that has not finished after this long is aborted and reported as lost events.
    pub run_timeout: Duration,
    /// `available_parallelism()`: decides whether a scenario is oversubscribed.
    pub cores: usize,
    /// Core ids to pin threads to, read once from the unpinned main thread.
    pub core_ids: Vec<usize>,
    /// The TSC clock shared by every thread (calibrated once).
    pub clock: Clock,
}

impl RingConfig {
    /// A configuration with the defaults and this machine's cores.
    pub fn new(cores: usize, core_ids: Vec<usize>) -> Self {
        Self {
            events: 20_000_000,
            latency_events: 2_000_000,
            latency_rate_per_sec: 1_000_000,
            capacity: CAPACITY_DEFAULT,
            batch: BATCH_DEFAULT,
            sample_every: SAMPLE_EVERY_DEFAULT,
            run_timeout: Duration::from_secs(120),
            cores,
            core_ids,
            clock: Clock::new(),
        }
    }

    /// Checks the limits that the scenarios rely on.
    pub fn validate(&self) -> Result<(), RunError> {
        let fail = |why: String| Err(RunError::Config(why));
        if !self.capacity.is_power_of_two() || self.capacity < 4 * self.batch.max(1) {
            return fail(format!(
                "capacity {} must be a power of two and at least 4 × batch ({})",
                self.capacity, self.batch
            ));
        }
        if self.batch == 0 {
            return fail("batch must be at least 1".to_owned());
        }
        if !self.sample_every.is_power_of_two() {
            return fail(format!(
                "sample_every {} must be a power of two",
                self.sample_every
            ));
        }
        if self.latency_rate_per_sec == 0 || self.latency_rate_per_sec > 1_000_000_000 {
            return fail(format!(
                "latency rate {}/s must be between 1 and 1e9",
                self.latency_rate_per_sec
            ));
        }
        let events_min = (PRODUCERS_MAX * self.batch) as u64;
        if self.events < events_min || self.latency_events == 0 {
            return fail(format!(
                "events ({}) must be at least {events_min} and latency events ({}) at least 1",
                self.events, self.latency_events
            ));
        }
        Ok(())
    }

    /// How `scenario` places its threads on this machine.
    pub fn plan(&self, scenario: Scenario) -> ThreadPlan {
        let threads = scenario.threads();
        let oversubscribed = threads > self.cores;
        let pin = (!oversubscribed && threads <= self.core_ids.len())
            .then(|| self.core_ids[..threads].to_vec());
        ThreadPlan {
            threads,
            oversubscribed,
            pin,
        }
    }
}

/// Thread placement for one scenario on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadPlan {
    /// Producer and consumer threads.
    pub threads: usize,
    /// More threads than cores: every spinning wait backs off to `yield_now`.
    pub oversubscribed: bool,
    /// Core id per thread (producers first, then consumers in stage order), when every
    /// thread gets a core of its own.
    pub pin: Option<Vec<usize>>,
}

impl ThreadPlan {
    /// The core for thread `index` (producers first, then consumers), if pinning.
    pub fn core_for(&self, index: usize) -> Option<usize> {
        self.pin.as_ref().map(|cores| cores[index])
    }
}

/// What one run of one implementation on one scenario measured.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The implementation.
    pub imp: Impl,
    /// The scenario.
    pub scenario: Scenario,
    /// Events published (over all producers).
    pub events: u64,
    /// Producer plus consumer threads.
    pub threads: usize,
    /// Whether every thread was pinned to its own core.
    pub pinned: bool,
    /// How threads waited, e.g. `busy-spin` or `spin64+yield`.
    pub wait: &'static str,
    /// Whether the `-batch` scenario used a native batch API.
    pub native_batch: bool,
    /// From the first producer's start to the last event leaving the last consumer.
    pub elapsed_ns: u64,
    /// Latency in ns: every event (latency run) or every `sample_every`-th (throughput runs).
    pub latency_ns: Histogram<u64>,
}

impl RunOutcome {
    /// Events per second over the whole run.
    pub fn ops_per_sec(&self) -> f64 {
        if self.elapsed_ns == 0 {
            return 0.0;
        }
        self.events as f64 * 1e9 / self.elapsed_ns as f64
    }
}

/// Why a run produced no figures.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A consumer missed, doubled or reordered an event: the implementation (or the adapter) is wrong.
    #[error(
        "{imp} {scenario}: consumer {consumer} failed the exactly-once, in-order check: {detail}"
    )]
    Verification {
        /// The implementation.
        imp: Impl,
        /// The scenario.
        scenario: Scenario,
        /// Which consumer (`A`, `B`, `C` or `consumer`).
        consumer: &'static str,
        /// What it saw.
        detail: String,
    },
    /// The run did not finish in time: events were lost or a thread stalled.
    #[error(
        "{imp} {scenario}: did not finish within {timeout:?}; aborted (lost events or a stalled thread)"
    )]
    Timeout {
        /// The implementation.
        imp: Impl,
        /// The scenario.
        scenario: Scenario,
        /// The limit that was exceeded.
        timeout: Duration,
    },
    /// The ring could not be built or reported a halted (panicked) handler.
    #[error("{imp} {scenario}: {detail}")]
    Ring {
        /// The implementation.
        imp: Impl,
        /// The scenario.
        scenario: Scenario,
        /// The ring's error.
        detail: String,
    },
    /// The configuration breaks a limit.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// An empty latency histogram with the bounds every run uses (1 ns to 100 s, 3 digits).
pub fn new_latency_histogram() -> Histogram<u64> {
    event::new_histogram()
}

/// Runs `imp` on `scenario` once.
pub fn run_one(imp: Impl, scenario: Scenario, config: &RingConfig) -> Result<RunOutcome, RunError> {
    config.validate()?;
    let ctx = harness::RunCtx::new(imp, scenario, config);
    match imp {
        Impl::SequentRing => sequent::run(&ctx),
        Impl::Disruptor => peers::disruptor::run(&ctx),
        Impl::CrossbeamChannel => peers::queues::run::<peers::CrossbeamChannel>(&ctx),
        Impl::CrossbeamArrayQueue => peers::queues::run::<peers::CrossbeamArrayQueue>(&ctx),
        Impl::Rtrb => peers::queues::run::<peers::Rtrb>(&ctx),
        Impl::StdMpsc => peers::queues::run::<peers::StdMpsc>(&ctx),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for imp in Impl::ALL {
            assert_eq!(imp.name().parse::<Impl>(), Ok(imp));
        }
        for scenario in Scenario::ALL {
            assert_eq!(scenario.name().parse::<Scenario>(), Ok(scenario));
        }
        assert!("ring".parse::<Impl>().is_err());
        assert!("1p2c".parse::<Scenario>().is_err());
    }

    #[test]
    fn plan_pins_only_when_every_thread_has_a_core() {
        let config = RingConfig::new(2, vec![0, 1]);
        let one = config.plan(Scenario::Latency);
        assert_eq!(
            one,
            ThreadPlan {
                threads: 2,
                oversubscribed: false,
                pin: Some(vec![0, 1])
            }
        );
        let pipeline = config.plan(Scenario::Throughput {
            topology: Topology::Pipeline,
            batch: false,
        });
        assert_eq!(
            pipeline,
            ThreadPlan {
                threads: 4,
                oversubscribed: true,
                pin: None
            }
        );
        // A mask narrower than available_parallelism claims: no pinning, no oversubscription.
        let narrow = RingConfig::new(2, vec![0]).plan(Scenario::Latency);
        assert_eq!(narrow.pin, None);
        assert!(!narrow.oversubscribed);
    }
}
