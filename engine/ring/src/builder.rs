//! Building a ring: the builder reads like the dependency graph it creates.
//!
//! ```text
//! build_single_producer(1024, Event::default, WaitStrategy::BusySpin)
//!     .handle_events_with(a)          // stage 0: a and b both see every event, in parallel
//!     .handle_events_with(b)
//!     .and_then()
//!     .handle_events_with(c)          // stage 1: c sees an event after both a and b did
//!     .build()?                        // the producer is gated by c, the last stage
//! ```
//! A pipeline is one handler per stage; a fan-out is one stage of several; a diamond is a fan-out
//! followed by a stage of one.

use std::fmt;
use std::marker::PhantomData;

use crate::affinity::{NoSuchCore, online_cores};
use crate::barrier::Barrier;
use crate::core::Core;
use crate::handler::{EventHandler, EventHandlerMut};
use crate::pipeline::Pipeline;
use crate::processor::{EventPoller, Exclusive, Processor, Shared};
use crate::producer::{Gating, MultiProducer, SingleProducer};
use crate::sequence::{SEQUENCE_INITIAL, Sequence};
use crate::sync::Arc;
use crate::wait::WaitStrategy;

/// Why a ring could not be built.
#[derive(Debug)]
pub enum BuildError {
    /// A handler was pinned to a core that is not online.
    NoSuchCore {
        /// The handler's thread name.
        handler: String,
        /// The core it was pinned to, and the online ones.
        core: NoSuchCore,
    },
    /// A stage has no handler and no poller (`and_then` twice, or `and_then` before `build`).
    EmptyStage {
        /// Its index, from 0.
        stage: usize,
    },
    /// The ring has no consumer at all, so nothing would ever gate the producer.
    NoConsumers,
    /// The graph has more stages than [`STAGES_MAX`](crate::STAGES_MAX).
    TooManyStages {
        /// How many it has.
        stages: usize,
    },
    /// A handler with `&mut` access shares its stage with another consumer, which could read the
    /// event while it is being written.
    ExclusiveNotAlone {
        /// The stage, from 0.
        stage: usize,
        /// The mutating handler's thread name.
        handler: String,
    },
    /// The kernel refused to pin a handler to an online core (it is outside this process's
    /// allowed CPUs, as under `taskset` or a cgroup cpuset).
    PinRefused {
        /// The handler's thread name.
        handler: String,
        /// The core.
        core: usize,
    },
    /// The operating system refused a thread.
    Spawn {
        /// The handler's thread name.
        handler: String,
        /// The error from the OS.
        source: std::io::Error,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSuchCore { handler, core } => write!(f, "handler `{handler}`: {core}"),
            Self::EmptyStage { stage } => write!(f, "stage {stage} has no handler or poller"),
            Self::NoConsumers => f.write_str("the ring has no handler or poller"),
            Self::TooManyStages { stages } => {
                write!(
                    f,
                    "{stages} stages; at most {} are supported",
                    crate::STAGES_MAX
                )
            }
            Self::ExclusiveNotAlone { stage, handler } => write!(
                f,
                "handler `{handler}` mutates events, so it must be alone in stage {stage}"
            ),
            Self::PinRefused { handler, core } => write!(
                f,
                "handler `{handler}`: the kernel refused to pin it to core {core} \
                 (online, but not in this process's allowed CPUs?)"
            ),
            Self::Spawn { handler, source } => {
                write!(
                    f,
                    "could not start thread for handler `{handler}`: {source}"
                )
            }
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::NoSuchCore { core, .. } => Some(core),
            Self::Spawn { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Marker: the ring has one publishing thread.
#[derive(Debug)]
pub enum Single {}
/// Marker: the ring has cloneable producer handles.
#[derive(Debug)]
pub enum Multi {}

type Run = Box<dyn FnOnce() + Send>;

struct Member {
    name: String,
    pin: Option<usize>,
    wait: WaitStrategy,
    exclusive: bool,
    /// The thread body; `None` for an event poller, which the owner drives.
    run: Option<Run>,
}

#[derive(Default)]
struct Stage {
    members: Vec<Member>,
    sequences: Vec<Arc<Sequence>>,
}

/// Builds a ring and its handler graph; see the [module documentation](self).
pub struct Builder<E, P> {
    core: Arc<Core<E>>,
    default_wait: WaitStrategy,
    /// Finished stages; each depends on all consumers of the one before.
    stages: Vec<Stage>,
    current: Stage,
    next_pin: Option<usize>,
    next_wait: Option<WaitStrategy>,
    next_name: Option<String>,
    /// The first misuse, reported by `build` so that the chain of calls stays a chain.
    error: Option<BuildError>,
    _producer: PhantomData<P>,
}

impl<E, P> fmt::Debug for Builder<E, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("size", &self.core.size())
            .field("stages", &(self.stages.len() + 1))
            .finish_non_exhaustive()
    }
}

/// Starts a ring of `size` slots (a power of two) for one publishing thread. `factory` fills every
/// slot now; nothing is allocated per event later. `wait` is the default wait strategy of the
/// handlers and the producer's strategy when the ring is full.
pub fn build_single_producer<E, F>(
    size: usize,
    factory: F,
    wait: WaitStrategy,
) -> Builder<E, Single>
where
    E: Send + Sync + 'static,
    F: FnMut() -> E,
{
    Builder::new(Core::new(size, factory, false), wait)
}

/// Like [`build_single_producer`] for any number of publishing threads (clone the producer).
pub fn build_multi_producer<E, F>(size: usize, factory: F, wait: WaitStrategy) -> Builder<E, Multi>
where
    E: Send + Sync + 'static,
    F: FnMut() -> E,
{
    Builder::new(Core::new(size, factory, true), wait)
}

impl<E: Send + Sync + 'static, P> Builder<E, P> {
    fn new(core: Core<E>, default_wait: WaitStrategy) -> Self {
        Self {
            core: Arc::new(core),
            default_wait,
            stages: Vec::new(),
            current: Stage::default(),
            next_pin: None,
            next_wait: None,
            next_name: None,
            error: None,
            _producer: PhantomData,
        }
    }

    /// Pins the next handler's thread to `core` (checked against the online cores at `build`).
    pub fn pin_at_core(mut self, core: usize) -> Self {
        self.next_pin = Some(core);
        self
    }

    /// Gives the next handler its own wait strategy instead of the ring's default.
    pub fn wait_strategy(mut self, wait: WaitStrategy) -> Self {
        self.next_wait = Some(wait);
        self
    }

    /// Names the next handler's thread (kept to 15 bytes by the OS); the default is `ring-sS-hH`.
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.next_name = Some(name.into());
        self
    }

    /// Adds a handler with shared access to the current stage, on its own thread.
    pub fn handle_events_with<H: EventHandler<E>>(self, handler: H) -> Self {
        self.add(false, move |processor: ProcessorParts<E>| {
            processor.into_processor(Shared(handler)).run()
        })
    }

    /// Adds a handler with exclusive (`&mut`) access to the current stage; it must be the stage's
    /// only consumer, so later stages see what it wrote.
    pub fn handle_events_mut<H: EventHandlerMut<E>>(self, handler: H) -> Self {
        self.add(true, move |processor: ProcessorParts<E>| {
            processor.into_processor(Exclusive(handler)).run()
        })
    }

    /// Adds an event poller to the current stage and returns it: a consumer with no thread, driven
    /// by [`EventPoller::poll`] from the owner's loop.
    pub fn event_poller(mut self) -> (Self, EventPoller<E>) {
        let (barrier, sequence) = self.position();
        let name = self.next_name.take().unwrap_or_else(|| {
            format!(
                "poller-s{}-{}",
                self.stages.len(),
                self.current.members.len()
            )
        });
        self.next_pin = None;
        self.next_wait = None;
        self.current.sequences.push(Arc::clone(&sequence));
        self.current.members.push(Member {
            name,
            pin: None,
            wait: self.default_wait,
            exclusive: false,
            run: None,
        });
        let poller = EventPoller::new(barrier, sequence);
        (self, poller)
    }

    /// Ends the current stage: consumers added from now on see an event only after every consumer
    /// of this stage has.
    pub fn and_then(mut self) -> Self {
        if self.current.members.is_empty() {
            self.error.get_or_insert(BuildError::EmptyStage {
                stage: self.stages.len(),
            });
        }
        let stage = std::mem::take(&mut self.current);
        self.stages.push(stage);
        self
    }

    /// The barrier and a fresh sequence for a consumer joining the current stage.
    fn position(&self) -> (Barrier<E>, Arc<Sequence>) {
        let upstream: Box<[Arc<Sequence>]> = self
            .stages
            .last()
            .map(|s| s.sequences.iter().map(Arc::clone).collect())
            .unwrap_or_default();
        let barrier = Barrier::new(Arc::clone(&self.core), upstream, self.stages.len());
        (barrier, Arc::new(Sequence::new(SEQUENCE_INITIAL)))
    }

    fn add(
        mut self,
        exclusive: bool,
        body: impl FnOnce(ProcessorParts<E>) + Send + 'static,
    ) -> Self {
        let (barrier, sequence) = self.position();
        let name = self.next_name.take().unwrap_or_else(|| {
            format!(
                "ring-s{}-h{}",
                self.stages.len(),
                self.current.members.len()
            )
        });
        let wait = self.next_wait.take().unwrap_or(self.default_wait);
        let parts = ProcessorParts {
            name: name.clone(),
            barrier,
            sequence: Arc::clone(&sequence),
            wait,
        };
        self.current.sequences.push(sequence);
        self.current.members.push(Member {
            name,
            pin: self.next_pin.take(),
            wait,
            exclusive,
            run: Some(Box::new(move || body(parts))),
        });
        self
    }

    /// Checks the graph, starts the handler threads, and returns the gating sequences and the
    /// pipeline that owns the threads.
    fn start(mut self) -> Result<Started<E>, BuildError> {
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        if !self.current.members.is_empty() {
            let stage = std::mem::take(&mut self.current);
            self.stages.push(stage);
        } else if !self.stages.is_empty() {
            return Err(BuildError::EmptyStage {
                stage: self.stages.len(),
            });
        }
        if self.stages.is_empty() {
            return Err(BuildError::NoConsumers);
        }
        if self.stages.len() > crate::STAGES_MAX {
            return Err(BuildError::TooManyStages {
                stages: self.stages.len(),
            });
        }
        for (index, stage) in self.stages.iter().enumerate() {
            if stage.members.len() > 1
                && let Some(m) = stage.members.iter().find(|m| m.exclusive)
            {
                return Err(BuildError::ExclusiveNotAlone {
                    stage: index,
                    handler: m.name.clone(),
                });
            }
        }
        let online = online_cores();
        let members = || self.stages.iter().flat_map(|s| s.members.iter());
        for m in members() {
            if let Some(core) = m.pin
                && !online.contains(&core)
            {
                return Err(BuildError::NoSuchCore {
                    handler: m.name.clone(),
                    core: NoSuchCore {
                        core,
                        online: online.clone(),
                    },
                });
            }
        }
        let threads = members().filter(|m| m.run.is_some()).count() + 1;
        let spinning = members()
            .filter(|m| m.run.is_some() && m.wait.spins())
            .count()
            + usize::from(self.default_wait.spins());
        if threads > online.len() {
            tracing::warn!(
                threads,
                cores = online.len(),
                spinning,
                "ring oversubscribed: more threads (handlers + producer) than cores; \
                 latency will include scheduler delays"
            );
        }
        // A notifier costs a fence per signal, so only boundaries where someone may park get one.
        for (index, stage) in self.stages.iter().enumerate() {
            if stage
                .members
                .iter()
                .any(|m| m.run.is_some() && m.wait.parks())
            {
                self.core.notifier(index).enable();
            }
        }
        if self.default_wait.parks() {
            self.core.notifier(self.stages.len()).enable();
        }
        let gating = Gating {
            sequences: self
                .stages
                .last()
                .map(|s| s.sequences.iter().map(Arc::clone).collect())
                .unwrap_or_default(),
            boundary: self.stages.len(),
        };
        let mut pipeline = Pipeline::new(Arc::clone(&self.core));
        // Each thread pins itself first and says whether the kernel agreed, so that a core that
        // is online but outside this process's allowed set fails `build` instead of leaving a
        // handler silently unpinned.
        let (pinned_tx, pinned_rx) = std::sync::mpsc::channel::<Option<(String, usize)>>();
        let mut spawned = 0usize;
        for member in self.stages.iter_mut().flat_map(|s| s.members.iter_mut()) {
            let Some(run) = member.run.take() else {
                continue;
            };
            let pin = member.pin;
            let pinned_tx = pinned_tx.clone();
            let name = member.name.clone();
            let thread = std::thread::Builder::new()
                .name(member.name.clone())
                .spawn(move || {
                    let refused = pin.filter(|&core| {
                        !core_affinity::set_for_current(core_affinity::CoreId { id: core })
                    });
                    let _ = pinned_tx.send(refused.map(|core| (name, core)));
                    drop(pinned_tx);
                    if refused.is_none() {
                        run();
                    }
                });
            match thread {
                Ok(handle) => {
                    pipeline.push(handle);
                    spawned += 1;
                }
                // Dropping `pipeline` stops and joins the threads already started.
                Err(source) => {
                    return Err(BuildError::Spawn {
                        handler: member.name.clone(),
                        source,
                    });
                }
            }
        }
        drop(pinned_tx);
        for _ in 0..spawned {
            match pinned_rx.recv() {
                Ok(None) => {}
                // Dropping `pipeline` stops and joins the threads already started.
                Ok(Some((handler, core))) => return Err(BuildError::PinRefused { handler, core }),
                // Every thread answers before anything else, so the senders cannot all be gone.
                Err(_) => break,
            }
        }
        Ok(Started {
            core: Arc::clone(&self.core),
            gating,
            wait: self.default_wait,
            pipeline,
        })
    }
}

impl<E: Send + Sync + 'static> Builder<E, Single> {
    /// Starts the handler threads and returns the producer.
    pub fn build(self) -> Result<SingleProducer<E>, BuildError> {
        let Started {
            core,
            gating,
            wait,
            pipeline,
        } = self.start()?;
        Ok(SingleProducer::new(core, gating, wait, pipeline))
    }
}

impl<E: Send + Sync + 'static> Builder<E, Multi> {
    /// Starts the handler threads and returns the first producer handle (clone it for more).
    pub fn build(self) -> Result<MultiProducer<E>, BuildError> {
        let Started {
            core,
            gating,
            wait,
            pipeline,
        } = self.start()?;
        Ok(MultiProducer::new(core, gating, wait, pipeline))
    }
}

/// A ring whose handler threads are running, ready to hand to its producer.
struct Started<E> {
    core: Arc<Core<E>>,
    /// The last stage's sequences and the notifier they signal.
    gating: Gating,
    /// The producer's wait strategy when the ring is full.
    wait: WaitStrategy,
    pipeline: Pipeline<E>,
}

/// What a handler thread needs besides its handler.
struct ProcessorParts<E> {
    name: String,
    barrier: Barrier<E>,
    sequence: Arc<Sequence>,
    wait: WaitStrategy,
}

impl<E> ProcessorParts<E> {
    fn into_processor<A>(self, access: A) -> Processor<E, A> {
        Processor {
            name: self.name,
            access,
            barrier: self.barrier,
            sequence: self.sequence,
            wait: self.wait,
        }
    }
}
