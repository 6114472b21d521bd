//! sequent-node: the `sequent-engine` binary and what it is made of.
//!
//! - [`protocol`]: the binary order-entry protocol (`docs/order-entry.md`): fixed-layout frames,
//!   a decoder that never panics and names the field and offset of what is wrong.
//! - [`core`]: the deterministic core: sessions (login, sequence numbers, resend duplicates,
//!   gaps, cancel on disconnect, the history of replies resent on login) in front of the venue. Sans-IO; replaying its journaled inputs
//!   gives the same outputs and digest.
//! - [`record`]: how inputs are written to the journal.
//! - [`engine`]: the running engine: recovery by replay, the input ring (journal ∥ core), the
//!   output ring, the gateway thread (mio) that sequences inputs and writes replies, held until
//!   durable when configured.
//! - [`posting`]: the ledger posting hook: a second consumer of the output ring that posts every
//!   trade into a double-entry ledger with its own journal (`docs/engine-ledger-posting.md`).
//! - [`config`]: `engine.toml`. [`metrics`]: the Prometheus endpoint. [`client`]: a blocking
//!   client for tests. [`load`]: the open-loop load of `sequent demo` and `sequent-bench engine`.

#![forbid(unsafe_code)]

pub mod client;
pub mod config;
pub mod core;
pub mod engine;
pub mod load;
pub mod metrics;
pub mod posting;
pub mod protocol;
pub mod record;
pub mod replication;
pub mod standby;
