//! `sequent-acquirer-sim`: a **simulated** external acquirer / card network, run as a separate
//! process on loopback, so the payments node's PSP routing, timeouts, reversals, outages and
//! clearing reconciliation can be exercised without a real acquirer. It is not the hot path and
//! not production code: plain threads and blocking sockets.
//!
//! It speaks the framed ISO 8583 of `docs/iso8583.md` (through `sequent-iso8583`): 0800 sign-on,
//! echo and sign-off; 0100 and 0200 by configurable rules (decline by BIN range → 05, over a
//! limit → 51, partial approval over an amount → 10 with field 54, a seeded share of 96, a seeded
//! share processed but never answered, amounts that are never answered, partial acknowledgement —
//! only the first N of each burst of M requests answered); 0400 reversals of what
//! it approved (by RRN and field 90's STAN; unknown → 25). A retransmitted request (same MTI, STAN
//! and RRN) gets the first answer again, never a second authorisation. Outages are scheduled
//! (refuse connections, or drop requests silently, between times after start) or switched at run
//! time by a control line on stdin or the admin port.
//!
//! **Clearing file** (CSV, RFC 4180, header line):
//! `acquirer,rrn,payment_id,amount_minor,currency,type,date` — one row per approved 0100 (`auth`,
//! the approved amount), approved 0200 purchase (`capture`) or refund (`refund`), and accepted
//! 0400 (`reversal`, the reversed amount), in the order they happened; `currency` is ISO 4217
//! numeric, `date` the business date `YYYY-MM-DD`. Written by `clearing [PATH]` and at
//! `shutdown`; `[mismatch]` in the config drops, duplicates or alters a seeded share of rows.
//!
//! **Control lines** (stdin or `--admin-listen`), one reply line each (`ok …` / `error …`):
//! `outage refuse|drop|off|auto`, `clearing [PATH]`, `stats`, `shutdown`.

#![forbid(unsafe_code)]

pub mod acquirer;
pub mod cli;
pub mod config;
pub mod server;

pub use acquirer::{Acquirer, ClearingRow, Decision, RowKind, Session, Stats};
pub use config::{ConfigError, Mismatch, Outage, OutageMode, SimConfig};
