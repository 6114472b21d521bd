//! `sequent-payments-node`: the running gateway around the deterministic `sequent-payments`
//! engine (issue 9). It owns everything with a socket, a thread, a file or a clock on the card
//! acquiring path: the merchant HTTP API, tokenisation at the edge (`sequent-vault`), the
//! sequencer, the input and output rings (`sequent-ring`), the journal (`sequent-journal`),
//! the ISO 8583 acquirer connectors (the only code that sees a PAN, to put it in field 2), the
//! 3-D Secure ACS simulator at the edge, timers, settlement file fetching and recovery by replay.
//!
//! It must not make a business decision: every decision is the engine's, taken on sequenced
//! inputs, so replaying the journal reproduces the engine's state. And it must not let a PAN
//! reach the journal, the rings, logs, metrics or responses: the HTTP handler tokenises and
//! passes on the token, BIN, last four and expiry only.

#![forbid(unsafe_code)]

pub mod config;
pub mod connector;
pub mod edge;
pub mod http;
pub mod node;
pub mod pipeline;
pub mod settlement;

pub use config::NodeConfig;
pub use node::{Node, Recovered, replay};
