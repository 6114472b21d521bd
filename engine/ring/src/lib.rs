//! sequent-ring: an LMAX-style disruptor for pinned cores.
//!
//! A ring of preallocated slots of a user type, filled once by a factory. Producers claim slots by
//! sequence, write events in place and publish them; handlers (each on its own thread, pinned if
//! asked) see every event in sequence order, in batches, arranged in a dependency graph of stages:
//! pipeline (A→B→C), fan-out (A ∥ B) and diamond (C after A and B). The producer never overwrites a
//! slot that the last stage has not released. Consumers without a thread ([`EventPoller`]) fit into
//! the same graph for threads that run their own I/O loop.
//!
//! This crate owns the concurrency: the sequences, barriers, wait strategies, pinning and the
//! lifecycle (drain on shutdown, report a panicking handler). It knows nothing of what the events
//! mean and does no I/O besides reading the list of online cores.
//!
//! ```
//! use sequent_ring::{build_single_producer, Producer, WaitStrategy};
//! use std::sync::{Arc, atomic::{AtomicI64, Ordering}};
//!
//! let total = Arc::new(AtomicI64::new(0));
//! let sum = Arc::clone(&total);
//! let mut producer = build_single_producer(64, || 0i64, WaitStrategy::blocking())
//!     .handle_events_with(move |value: &i64, _seq: i64, _end_of_batch: bool| {
//!         sum.fetch_add(*value, Ordering::Relaxed);
//!     })
//!     .build()
//!     .unwrap();
//! for i in 1..=100 {
//!     producer.publish(|slot| *slot = i).unwrap();
//! }
//! producer.shutdown().unwrap(); // drains, then joins the handler thread
//! assert_eq!(total.load(Ordering::Relaxed), 5050);
//! ```

mod affinity;
mod barrier;
mod builder;
mod core;
mod handler;
mod pipeline;
mod processor;
mod producer;
mod sequence;
mod sync;
mod wait;

pub use crate::affinity::{NoSuchCore, online_cores, parse_cpu_list, pin_current_thread};
pub use crate::builder::{
    BuildError, Builder, Multi, Single, build_multi_producer, build_single_producer,
};
pub use crate::core::{RING_SLOTS_MAX, STAGES_MAX};
pub use crate::handler::{EventHandler, EventHandlerMut};
pub use crate::processor::{EventPoller, PollState};
pub use crate::producer::{
    BatchIterMut, Halted, MultiProducer, Producer, SingleProducer, TryPublishError,
};
pub use crate::sequence::SEQUENCE_INITIAL;
pub use crate::wait::{WaitStrategy, YIELD_AFTER_SPINS};
