//! sequent-bench: the latency and throughput harness of sequent.
//!
//! This crate owns the measurement side of the project: it drives the sequent ring and its
//! peers (the `disruptor` crate, crossbeam-channel, crossbeam `ArrayQueue`, `rtrb` and
//! `std::sync::mpsc::sync_channel`) through the same topologies, verifies that every consumer
//! saw every event exactly once and in order, and reports throughput and latency percentiles
//! recorded in HdrHistogram. It must not change what it measures: it uses the ring only
//! through its public API and never reaches into its internals.
//!
//! The [`journal`] module measures the sequent journal (appends, group commit, replay, tailing
//! readers, resident memory) beside plain-file and in-memory baselines, through the journal's
//! public API only.
//!
//! It also runs the matching benchmark: the sequent venue (`sequent-matching`, throttle included)
//! beside the `lobster` order book on one seeded exchange-core-like stream ([`matching`]).
//!
//! The [`feed`] module measures market data: ITCH decoding beside the `itchy` crate, the feed
//! protocol, send and receive paths on loopback, and one-way publish-to-book latency.
//!
//! The [`failover`] module measures the hot standby: kill -9 to first acknowledgement on the new
//! primary, and the order-to-ack cost of the standby's acknowledgement.
//!
//! The [`payments`] module measures the payments gateway end to end over loopback (two acquirer
//! simulators), its merchant-API latency open loop, and vault tokenisation, beside the engine's
//! `Payments::handle` in memory.
//!
//! Layout: [`ring`] holds the scenarios, the adapters for each implementation and the suite
//! runner; [`report`] turns runs into rows, tables, Markdown and JSON lines; [`machine`]
//! describes the machine a run happened on. The `sequent-bench` binary is a thin clap front end.

#![forbid(unsafe_code)]

pub mod compare;
pub mod engine;
pub mod failover;
pub mod feed;
pub mod journal;
pub mod ledger;
pub mod machine;
pub mod matching;
pub mod overhead;
pub mod payments;
pub mod plot;
pub mod recorder;
pub mod report;
pub mod results;
pub mod ring;
pub mod suite;
