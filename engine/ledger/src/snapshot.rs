//! Snapshots of a [`Ledger`]: its whole state as bytes, and back.
//!
//! The encoding is little-endian, fixed-width and canonical (one ledger state has exactly one
//! encoding), so snapshot → restore → snapshot yields the same bytes. The layout is in
//! `docs/ledger-format.md` ("Snapshots"); in short:
//!
//! ```text
//! magic "SQLEDGER" | version u32 | reserved u32 | accounts_max u32 | transfers_max u32
//! seq u64 | now_ns u64 | expired_total u64
//! accounts  u32 count, then ACCOUNT_BYTES each (creation order)
//! transfers u32 count, then TRANSFER_BYTES each (apply order)
//! failed    u32 count, then FAILED_BYTES each (order of failure)
//! expiries  u32 count, then EXPIRY_BYTES each (ascending (expires_at, index))
//! checksum [u8; 32]: SHA-256 of every byte before it
//! ```
//!
//! Decoding trusts nothing: every count is checked against the bytes left before anything is
//! allocated, every reference (parent, debit and credit accounts, expiry entries) against what it
//! names, balances and roll-ups are recomputed from the stored transfers and compared, and the
//! trailing SHA-256 must match. The checks are independent: the checksum catches damage, the
//! structural checks keep crafted bytes (with a valid checksum) from building a ledger that would
//! later panic or misbehave. Bad bytes give a [`SnapshotError`]
//! naming the field and its byte offset, never a panic (a fuzz target holds it to that). Derived
//! fields (the id indexes, parents' indexes, depths) are rebuilt, not stored.

use std::cmp::Reverse;

use sha2::{Digest, Sha256};

use crate::{
    Account, AccountFlags, AccountState, Balances, Config, HIERARCHY_DEPTH_MAX, Ledger, Outcome,
    PendingState, Slot, StoredTransfer, Transfer, TransferFlags,
};

/// First 8 bytes of a ledger snapshot.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"SQLEDGER";
/// The state format this build writes and the newest it reads.
pub const SNAPSHOT_VERSION: u32 = 1;
/// Bytes before the first account.
pub const HEADER_BYTES: usize = 8 + 4 + 4 + 4 + 4 + 8 + 8 + 8;
/// id, user_data, parent; ledger, code, flags, closed; balances and roll-up.
pub const ACCOUNT_BYTES: usize = 3 * 16 + 4 + 2 + 1 + 1 + 2 * 4 * 16;
/// The request (six u128, timeout, ledger, code, flags), then the resolved debit, credit, amount
/// and reversed total, ledger, code, state, a zero byte, and five u64 (seq, ts, resolved seq and
/// time, expiry).
pub const TRANSFER_BYTES: usize = 6 * 16 + 8 + 4 + 2 + 2 + 4 * 16 + 4 + 2 + 1 + 1 + 5 * 8;
/// Transfer id and outcome.
pub const FAILED_BYTES: usize = 16 + 1;
/// Expiry time and transfer index.
pub const EXPIRY_BYTES: usize = 8 + 4;
/// The trailing SHA-256.
pub const CHECKSUM_BYTES: usize = 32;

/// Why snapshot bytes cannot be restored. Each names the field and the byte offset it starts at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotError {
    /// The bytes end before `field` (which needs `need` bytes at `offset`).
    Truncated {
        field: &'static str,
        offset: usize,
        need: usize,
    },
    /// The first 8 bytes are not [`SNAPSHOT_MAGIC`].
    BadMagic,
    /// Written by a newer (or unknown) state format.
    UnsupportedVersion { found: u32 },
    /// A field holds a value it cannot hold.
    Invalid {
        field: &'static str,
        offset: usize,
        reason: String,
    },
    /// The state does not fit the capacities the ledger is restored with.
    OverCapacity {
        what: &'static str,
        count: u64,
        max: u64,
    },
    /// Bytes left after the checksum.
    TrailingBytes { offset: usize, len: usize },
    /// The SHA-256 at `offset` is not that of the bytes before it.
    ChecksumMismatch { offset: usize },
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Truncated {
                field,
                offset,
                need,
            } => write!(
                f,
                "ledger snapshot truncated: {field} needs {need} bytes at offset {offset}"
            ),
            Self::BadMagic => write!(f, "not a ledger snapshot (bad magic at offset 0)"),
            Self::UnsupportedVersion { found } => write!(
                f,
                "ledger snapshot version {found} at offset 8: this build reads up to {SNAPSHOT_VERSION}"
            ),
            Self::Invalid {
                field,
                offset,
                reason,
            } => write!(f, "ledger snapshot: {field} at offset {offset}: {reason}"),
            Self::OverCapacity { what, count, max } => write!(
                f,
                "ledger snapshot holds {count} {what}, the configured capacity is {max}"
            ),
            Self::TrailingBytes { offset, len } => write!(
                f,
                "ledger snapshot: {len} unexpected bytes after the checksum at offset {offset}"
            ),
            Self::ChecksumMismatch { offset } => write!(
                f,
                "ledger snapshot: checksum mismatch (SHA-256 at offset {offset}): the bytes are damaged"
            ),
        }
    }
}

impl std::error::Error for SnapshotError {}

fn put_balances(out: &mut Vec<u8>, b: &Balances) {
    for v in [
        b.debits_pending,
        b.debits_posted,
        b.credits_pending,
        b.credits_posted,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

impl Ledger {
    /// Appends the whole state to `out` (see the module docs for the layout). Call it between
    /// events: no chain is ever open then. The bytes depend only on the state, not on the
    /// capacity `out` had nor on the hash key of the indexes.
    pub fn write_snapshot(&self, out: &mut Vec<u8>) {
        assert!(self.undo.is_empty(), "a snapshot is taken between events");
        let start = out.len();
        out.reserve(
            HEADER_BYTES
                + 16
                + self.accounts.len() * ACCOUNT_BYTES
                + self.transfers.len() * TRANSFER_BYTES
                + self.failed.len() * FAILED_BYTES
                + self.expiries.len() * EXPIRY_BYTES
                + CHECKSUM_BYTES,
        );
        out.extend_from_slice(&SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&self.config.accounts_max.to_le_bytes());
        out.extend_from_slice(&self.config.transfers_max.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.now_ns.to_le_bytes());
        out.extend_from_slice(&self.expired_total.to_le_bytes());

        out.extend_from_slice(&(self.accounts.len() as u32).to_le_bytes());
        for s in &self.accounts {
            let a = &s.account;
            out.extend_from_slice(&a.id.to_le_bytes());
            out.extend_from_slice(&a.user_data.to_le_bytes());
            out.extend_from_slice(&a.parent.to_le_bytes());
            out.extend_from_slice(&a.ledger.to_le_bytes());
            out.extend_from_slice(&a.code.to_le_bytes());
            out.push(a.flags.0);
            out.push(u8::from(s.closed));
            put_balances(out, &s.balances);
            put_balances(out, &s.rollup);
        }

        out.extend_from_slice(&(self.transfers.len() as u32).to_le_bytes());
        for t in &self.transfers {
            let r = &t.request;
            for v in [
                r.id,
                r.debit_account_id,
                r.credit_account_id,
                r.amount,
                r.pending_id,
                r.user_data,
            ] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&r.timeout_ns.to_le_bytes());
            out.extend_from_slice(&r.ledger.to_le_bytes());
            out.extend_from_slice(&r.code.to_le_bytes());
            out.extend_from_slice(&r.flags.0.to_le_bytes());
            for v in [
                t.debit_account_id,
                t.credit_account_id,
                t.amount,
                t.reversed,
            ] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&t.ledger.to_le_bytes());
            out.extend_from_slice(&t.code.to_le_bytes());
            out.push(t.state as u8);
            out.push(0);
            for v in [t.seq, t.ts, t.resolved_seq, t.resolved_ts, t.expires_at_ns] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }

        out.extend_from_slice(&(self.failed.len() as u32).to_le_bytes());
        for (id, outcome) in &self.failed {
            out.extend_from_slice(&id.to_le_bytes());
            out.push(*outcome as u8);
        }

        // The heap's internal order depends on its history; the canonical form is sorted. Pop
        // order is a function of the set alone (entries are distinct), so nothing observable
        // changes.
        let mut expiries: Vec<(u64, u32)> = self.expiries.iter().map(|e| e.0).collect();
        expiries.sort_unstable();
        out.extend_from_slice(&(expiries.len() as u32).to_le_bytes());
        for (expires_at, index) in expiries {
            out.extend_from_slice(&expires_at.to_le_bytes());
            out.extend_from_slice(&index.to_le_bytes());
        }

        let checksum: [u8; 32] = Sha256::digest(&out[start..]).into();
        out.extend_from_slice(&checksum);
    }

    /// Restores a ledger from [`Ledger::write_snapshot`]'s bytes, with the capacities of
    /// `config` (which must hold the state; the capacities written in the snapshot are
    /// informational). Restored with the config it was taken with, the ledger answers every later
    /// input exactly as the original would.
    pub fn read_snapshot(config: Config, bytes: &[u8]) -> Result<Ledger, SnapshotError> {
        if config.accounts_max == 0 || config.transfers_max == 0 {
            return Err(SnapshotError::Invalid {
                field: "config",
                offset: 0,
                reason: "capacities must be positive".into(),
            });
        }
        let mut r = Cursor { bytes, at: 0 };
        if r.take("magic", 8)? != SNAPSHOT_MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let version = r.u32("version")?;
        if version != SNAPSHOT_VERSION {
            return Err(SnapshotError::UnsupportedVersion { found: version });
        }
        let at = r.at;
        if r.u32("reserved")? != 0 {
            return Err(invalid("reserved", at, "must be zero"));
        }
        let _accounts_max_written = r.u32("accounts_max")?;
        let _transfers_max_written = r.u32("transfers_max")?;
        let seq = r.u64("seq")?;
        let now_ns = r.u64("now_ns")?;
        let expired_total = r.u64("expired_total")?;

        // Accounts.
        let accounts_len = r.count("accounts count", ACCOUNT_BYTES)?;
        if accounts_len > config.accounts_max as usize {
            return Err(SnapshotError::OverCapacity {
                what: "accounts",
                count: accounts_len as u64,
                max: config.accounts_max.into(),
            });
        }
        let mut ledger = Ledger::new(config);
        for index in 0..accounts_len {
            let at = r.at;
            let id = r.u128("account id")?;
            let user_data = r.u128("account user_data")?;
            let parent = r.u128("account parent")?;
            let ledger_id = r.u32("account ledger")?;
            let code = r.u16("account code")?;
            let flags = AccountFlags(r.u8("account flags")?);
            let closed_at = r.at;
            let closed = match r.u8("account closed")? {
                0 => false,
                1 => true,
                _ => return Err(invalid("account closed", closed_at, "must be 0 or 1")),
            };
            let balances = r.balances("account balances")?;
            let rollup = r.balances("account rollup")?;
            if id == 0 {
                return Err(invalid("account id", at, "must not be zero"));
            }
            if flags.0 & !AccountFlags::ALL.0 != 0 {
                return Err(invalid("account flags", at + 54, "unknown bits"));
            }
            if ledger_id == 0 || code == 0 {
                return Err(invalid(
                    "account ledger",
                    at + 48,
                    "ledger and code are non-zero",
                ));
            }
            if flags.contains(AccountFlags::CLOSED) && !closed {
                return Err(invalid(
                    "account closed",
                    closed_at,
                    "created closed but open",
                ));
            }
            let (parent_index, depth) = if parent == 0 {
                (None, 1)
            } else {
                let Some(p) = ledger.account_position(parent) else {
                    return Err(invalid(
                        "account parent",
                        at + 32,
                        "names no earlier account",
                    ));
                };
                let ps = &ledger.accounts[p as usize];
                if ps.account.ledger != ledger_id {
                    return Err(invalid("account parent", at + 32, "on another ledger"));
                }
                if ps.depth as usize >= HIERARCHY_DEPTH_MAX {
                    return Err(invalid("account parent", at + 32, "hierarchy too deep"));
                }
                (Some(p), ps.depth + 1)
            };
            if ledger.account_position(id).is_some() {
                return Err(invalid("account id", at, "duplicate"));
            }
            ledger.account_index.insert(id, index as u32);
            ledger.accounts.push(AccountState {
                account: Account {
                    id,
                    user_data,
                    parent,
                    ledger: ledger_id,
                    code,
                    flags,
                },
                closed,
                balances,
                rollup,
                parent_index,
                depth,
            });
        }

        // Transfers.
        let transfers_len = r.count("transfers count", TRANSFER_BYTES)?;
        for index in 0..transfers_len {
            let at = r.at;
            let request = Transfer {
                id: r.u128("transfer id")?,
                debit_account_id: r.u128("transfer debit_account_id")?,
                credit_account_id: r.u128("transfer credit_account_id")?,
                amount: r.u128("transfer amount")?,
                pending_id: r.u128("transfer pending_id")?,
                user_data: r.u128("transfer user_data")?,
                timeout_ns: r.u64("transfer timeout_ns")?,
                ledger: r.u32("transfer ledger")?,
                code: r.u16("transfer code")?,
                flags: TransferFlags(r.u16("transfer flags")?),
            };
            let resolved_at = r.at;
            let debit_account_id = r.u128("transfer resolved debit")?;
            let credit_account_id = r.u128("transfer resolved credit")?;
            let amount = r.u128("transfer resolved amount")?;
            let reversed = r.u128("transfer reversed")?;
            let ledger_id = r.u32("transfer resolved ledger")?;
            let code = r.u16("transfer resolved code")?;
            let state_at = r.at;
            let state = match r.u8("transfer state")? {
                0 => PendingState::NotPending,
                1 => PendingState::Pending,
                2 => PendingState::Posted,
                3 => PendingState::Voided,
                4 => PendingState::Expired,
                _ => return Err(invalid("transfer state", state_at, "not a pending state")),
            };
            if r.u8("transfer padding")? != 0 {
                return Err(invalid("transfer padding", state_at + 1, "must be zero"));
            }
            let stored = StoredTransfer {
                request,
                debit_account_id,
                credit_account_id,
                amount,
                ledger: ledger_id,
                code,
                seq: r.u64("transfer seq")?,
                ts: r.u64("transfer ts")?,
                state,
                resolved_seq: r.u64("transfer resolved_seq")?,
                resolved_ts: r.u64("transfer resolved_ts")?,
                expires_at_ns: r.u64("transfer expires_at_ns")?,
                reversed,
            };
            if request.id == 0 {
                return Err(invalid("transfer id", at, "must not be zero"));
            }
            if request.flags.0 & !TransferFlags::ALL.0 != 0 {
                return Err(invalid("transfer flags", resolved_at - 2, "unknown bits"));
            }
            let is_pending = request.flags.contains(TransferFlags::PENDING);
            if is_pending == (state == PendingState::NotPending) {
                return Err(invalid(
                    "transfer state",
                    state_at,
                    "disagrees with the pending flag",
                ));
            }
            if reversed > amount {
                return Err(invalid(
                    "transfer reversed",
                    resolved_at + 48,
                    "exceeds the amount",
                ));
            }
            if stored.seq > seq {
                return Err(invalid("transfer seq", state_at + 2, "after the ledger's"));
            }
            for (field, id, offset) in [
                ("transfer resolved debit", debit_account_id, resolved_at),
                (
                    "transfer resolved credit",
                    credit_account_id,
                    resolved_at + 16,
                ),
            ] {
                if ledger.account_position(id).is_none() {
                    return Err(invalid(field, offset, "names no account"));
                }
            }
            if ledger.transfer_slot(request.id).is_some() {
                return Err(invalid("transfer id", at, "duplicate"));
            }
            ledger
                .transfer_index
                .insert(request.id, Slot::Stored(index as u32).value());
            ledger.transfers.push(stored);
            if ledger.transfers.len() > config.transfers_max as usize {
                return Err(SnapshotError::OverCapacity {
                    what: "transfers",
                    count: transfers_len as u64,
                    max: config.transfers_max.into(),
                });
            }
        }

        // Remembered failures.
        let failed_len = r.count("failed count", FAILED_BYTES)?;
        if transfers_len + failed_len > config.transfers_max as usize {
            return Err(SnapshotError::OverCapacity {
                what: "transfer ids (stored and failed)",
                count: (transfers_len + failed_len) as u64,
                max: config.transfers_max.into(),
            });
        }
        for _ in 0..failed_len {
            let at = r.at;
            let id = r.u128("failed id")?;
            let code = r.u8("failed outcome")?;
            let Some(&outcome) = Outcome::ALL.get(usize::from(code)) else {
                return Err(invalid("failed outcome", at + 16, "not an outcome"));
            };
            if id == 0 || !outcome.is_stored_failure() {
                return Err(invalid(
                    "failed outcome",
                    at,
                    "not a remembered failure of a non-zero id",
                ));
            }
            if ledger.transfer_slot(id).is_some() {
                return Err(invalid("failed id", at, "duplicate"));
            }
            let index = ledger.failed.len() as u32;
            ledger
                .transfer_index
                .insert(id, Slot::Failed(index).value());
            ledger.failed.push((id, outcome));
        }

        // Expiries.
        let expiries_len = r.count("expiries count", EXPIRY_BYTES)?;
        if expiries_len > transfers_len {
            return Err(invalid(
                "expiries count",
                r.at - 4,
                "more than the stored transfers",
            ));
        }
        let mut previous = None;
        for _ in 0..expiries_len {
            let at = r.at;
            let entry = (r.u64("expiry time")?, r.u32("expiry index")?);
            if previous.is_some_and(|p| p >= entry) {
                return Err(invalid("expiry", at, "not in ascending order"));
            }
            previous = Some(entry);
            let t = ledger.transfers.get(entry.1 as usize);
            if entry.0 == 0 || t.is_none_or(|t| t.expires_at_ns != entry.0) {
                return Err(invalid(
                    "expiry",
                    at,
                    "names no transfer expiring at that time",
                ));
            }
            ledger.expiries.push(Reverse(entry));
        }

        // Balances and roll-ups must be what the transfers add up to.
        check_balances(&ledger)?;

        ledger.seq = seq;
        ledger.now_ns = now_ns;
        ledger.expired_total = expired_total;
        let checksum_at = r.at;
        let checksum = r.take("checksum", CHECKSUM_BYTES)?;
        if r.at != bytes.len() {
            return Err(SnapshotError::TrailingBytes {
                offset: r.at,
                len: bytes.len() - r.at,
            });
        }
        if checksum != Sha256::digest(&bytes[..checksum_at]).as_slice() {
            return Err(SnapshotError::ChecksumMismatch {
                offset: checksum_at,
            });
        }
        Ok(ledger)
    }
}

/// Recomputes every account's balances from the stored transfers (the rule of
/// `Ledger::balance_where`: open pending amounts are pending; voids move nothing; everything else
/// is posted) and every roll-up from the hierarchy, with checked arithmetic.
fn check_balances(ledger: &Ledger) -> Result<(), SnapshotError> {
    let overflow = || invalid("transfer amount", 0, "balances overflow");
    let mut own = vec![Balances::default(); ledger.accounts.len()];
    for t in &ledger.transfers {
        let f = t.request.flags;
        let pending = if f.contains(TransferFlags::PENDING) {
            if t.state != PendingState::Pending {
                continue;
            }
            true
        } else if f.contains(TransferFlags::VOID_PENDING) {
            continue;
        } else {
            false
        };
        let d = ledger
            .account_position(t.debit_account_id)
            .expect("checked on reading") as usize;
        let c = ledger
            .account_position(t.credit_account_id)
            .expect("checked on reading") as usize;
        let b = &mut own[d];
        let slot = if pending {
            &mut b.debits_pending
        } else {
            &mut b.debits_posted
        };
        *slot = slot.checked_add(t.amount).ok_or_else(overflow)?;
        let b = &mut own[c];
        let slot = if pending {
            &mut b.credits_pending
        } else {
            &mut b.credits_posted
        };
        *slot = slot.checked_add(t.amount).ok_or_else(overflow)?;
    }
    let mut rollup = own.clone();
    // Children come after their parents: add each account's roll-up into its parent's, last first.
    for index in (0..ledger.accounts.len()).rev() {
        if let Some(p) = ledger.accounts[index].parent_index {
            let child = rollup[index];
            let parent = &mut rollup[p as usize];
            for (sum, add) in [
                (&mut parent.debits_pending, child.debits_pending),
                (&mut parent.debits_posted, child.debits_posted),
                (&mut parent.credits_pending, child.credits_pending),
                (&mut parent.credits_posted, child.credits_posted),
            ] {
                *sum = sum.checked_add(add).ok_or_else(overflow)?;
            }
        }
    }
    let at = |index: usize| HEADER_BYTES + 4 + index * ACCOUNT_BYTES;
    for (index, s) in ledger.accounts.iter().enumerate() {
        if s.balances != own[index] {
            return Err(invalid(
                "account balances",
                at(index) + 56,
                "disagree with the stored transfers",
            ));
        }
        if s.rollup != rollup[index] {
            return Err(invalid(
                "account rollup",
                at(index) + 120,
                "disagrees with the hierarchy",
            ));
        }
    }
    Ok(())
}

/// Rewrites the trailing checksum of `bytes` to match the rest: for fuzzing and tests that
/// craft damaged states to exercise the structural checks behind the checksum.
pub fn reseal(bytes: &mut [u8]) {
    if let Some(body) = bytes.len().checked_sub(CHECKSUM_BYTES) {
        let checksum: [u8; 32] = Sha256::digest(&bytes[..body]).into();
        bytes[body..].copy_from_slice(&checksum);
    }
}

fn invalid(field: &'static str, offset: usize, reason: &str) -> SnapshotError {
    SnapshotError::Invalid {
        field,
        offset,
        reason: reason.to_owned(),
    }
}

/// Reads fixed-width little-endian fields, failing with the field's name and offset.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, field: &'static str, need: usize) -> Result<&'a [u8], SnapshotError> {
        let truncated = SnapshotError::Truncated {
            field,
            offset: self.at,
            need,
        };
        let end = self.at.checked_add(need).ok_or(truncated.clone())?;
        let slice = self.bytes.get(self.at..end).ok_or(truncated)?;
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], SnapshotError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(field, N)?);
        Ok(a)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, SnapshotError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, SnapshotError> {
        self.array(field).map(u16::from_le_bytes)
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, SnapshotError> {
        self.array(field).map(u32::from_le_bytes)
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, SnapshotError> {
        self.array(field).map(u64::from_le_bytes)
    }

    fn u128(&mut self, field: &'static str) -> Result<u128, SnapshotError> {
        self.array(field).map(u128::from_le_bytes)
    }

    fn balances(&mut self, field: &'static str) -> Result<Balances, SnapshotError> {
        Ok(Balances {
            debits_pending: self.u128(field)?,
            debits_posted: self.u128(field)?,
            credits_pending: self.u128(field)?,
            credits_posted: self.u128(field)?,
        })
    }

    /// A count of records of `size` bytes, checked against the bytes left before anything is
    /// allocated for them.
    fn count(&mut self, field: &'static str, size: usize) -> Result<usize, SnapshotError> {
        let at = self.at;
        let count = self.u32(field)? as usize;
        let left = self.bytes.len() - self.at;
        if count > left / size {
            return Err(SnapshotError::Truncated {
                field,
                offset: at,
                need: count.saturating_mul(size),
            });
        }
        Ok(count)
    }
}
