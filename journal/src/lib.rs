//! sequent-journal: the memory-mapped input journal, the system of record.
//!
//! Every sequenced input is appended here before its effects are released; recovery, the hot
//! standby, audit and regulatory reporting read it back. The format is in
//! `docs/journal-format.md`.
//!
//! - [`Writer`]: one appender per directory. An append is a copy into a mapped, preallocated
//!   segment file; a housekeeping thread syncs under the [`Durability`] policy and publishes the
//!   durable sequence ([`DurableWatch`]), and seals full segments (hash chain, RFC 9162 Merkle
//!   root, sparse index).
//! - [`Reader`]: a sequential scan from any sequence, or a tailing reader that follows a live
//!   writer in another thread or process.
//! - [`verify()`], [`prove_inclusion`] and [`prove_consistency`]: tamper evidence an auditor can
//!   check with the documented algorithm.
//! - [`snapshot`]: engine state at a sequence; [`recover`] finds the newest valid one.
//! - [`Writer::apply_retention`]: removes old segments and records the removal in the chain.
//!
//! ```
//! # let dir = std::env::temp_dir().join(format!("sequent-journal-doc-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! use sequent_journal::{Config, Reader, Writer};
//!
//! let mut writer = Writer::open(&dir, &Config::default())?;
//! let sequence = writer.append(1, 1_000, b"new order")?;
//! writer.sync()?; // or let the group commit do it, and watch `durable_sequence()`
//! assert!(writer.durable_sequence() >= sequence);
//!
//! let mut reader = Reader::open(&dir)?;
//! let record = reader.next()?.expect("one record");
//! assert_eq!((record.sequence, record.payload), (1, &b"new order"[..]));
//! # drop(reader); writer.close()?; std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), sequent_journal::Error>(())
//! ```

mod dir;
mod error;
pub mod format;
pub mod merkle;
mod reader;
mod recover;
mod seal;
mod segment;
pub mod snapshot;
mod verify;
mod writer;

pub use dir::Listing;
pub use error::{Error, Location};
pub use reader::Reader;
pub use recover::{Bounds, Recovery, bounds, recover};
pub use seal::{BadRecord, ScanEnd, Scanner, Seal, SegmentSummary, scan_segment};
pub use segment::{Peek, RecordRef, Segment, Slot};
pub use verify::{
    ConsistencyProof, InclusionProof, Progress, SegmentReport, VerifyReport, prove_consistency,
    prove_inclusion, verify,
};
pub use writer::{
    Config, Durability, DurableWatch, OpenReport, Retention, RetentionOutcome, Truncation, Writer,
};
