//! sequent-node: what the `sequent-engine` binary is made of.
//!
//! - [`protocol`]: the binary order-entry protocol (`docs/order-entry.md`): fixed-layout frames,
//!   a decoder that never panics and names the field and offset of what is wrong.
//! - [`core`]: the deterministic core: sessions (login, sequence numbers, resend duplicates,
//!   gaps, cancel on disconnect) in front of the venue. Sans-IO; replaying its journaled inputs
//!   gives the same outputs and digest.
//!
//! The binary itself (gateway thread, pipeline on the ring, journal, metrics, restart by replay)
//! is the rest of issue 5 and not built yet.

#![forbid(unsafe_code)]

pub mod core;
pub mod protocol;
