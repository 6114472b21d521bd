//! The little-endian snapshot codec shared by the trading engines (this throttle, the venue of
//! `sequent-matching` and the session core of `sequent-node`): a bounds-checked reader that
//! tracks its absolute offset, and the error that names the field, the item and the offset of
//! what is wrong. Writing needs no helper: `out.extend_from_slice(&x.to_le_bytes())`.
//!
//! It lives in the lowest engine crate so that a venue snapshot can embed the throttle's and a
//! core snapshot the venue's, and an error deep inside still reports the offset in the whole
//! snapshot. Sans-IO like the engines: bytes in, values or an error out; it never panics on any
//! input and allocates nothing.

use std::fmt;

/// What is wrong at a [`SnapshotError`]'s offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// The snapshot ends inside this field.
    Truncated {
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left.
        left: usize,
    },
    /// Bytes after the end of the snapshot.
    Trailing {
        /// How many.
        left: usize,
    },
    /// The snapshot does not start with the expected magic.
    BadMagic,
    /// Written by a newer format version than this reader knows.
    NewerVersion {
        /// The snapshot's version.
        found: u32,
        /// The newest this reader supports.
        supported: u32,
    },
    /// A capacity or configuration value differs from the configuration given to the reader.
    ConfigMismatch {
        /// The snapshot's value.
        snapshot: u64,
        /// The configuration's value.
        config: u64,
    },
    /// A value out of range, or inconsistent with the rest of the snapshot.
    Invalid {
        /// Why.
        reason: &'static str,
    },
}

/// A snapshot refused: where (byte offset from the start of the snapshot), which field (and which
/// item of a table, when there is one), and what is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotError {
    /// Byte offset of the field (or of the item the check is about) in the snapshot.
    pub offset: usize,
    /// The field, as `section.field`.
    pub field: &'static str,
    /// The table index (slot, level, account, session, ...) when the field is in a table.
    pub index: Option<u64>,
    /// What is wrong.
    pub problem: Problem,
}

impl SnapshotError {
    /// An error about `field` (item `index`, if any) at `offset`.
    pub const fn new(
        offset: usize,
        field: &'static str,
        index: Option<u64>,
        problem: Problem,
    ) -> Self {
        Self {
            offset,
            field,
            index,
            problem,
        }
    }

    /// An inconsistent or out-of-range value.
    pub const fn invalid(
        offset: usize,
        field: &'static str,
        index: Option<u64>,
        reason: &'static str,
    ) -> Self {
        Self::new(offset, field, index, Problem::Invalid { reason })
    }
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "snapshot offset {}: {}", self.offset, self.field)?;
        if let Some(index) = self.index {
            write!(f, "[{index}]")?;
        }
        match self.problem {
            Problem::Truncated { needed, left } => {
                write!(f, ": truncated (needs {needed} bytes, {left} left)")
            }
            Problem::Trailing { left } => write!(f, ": {left} trailing bytes after the snapshot"),
            Problem::BadMagic => write!(f, ": bad magic (not a snapshot of this kind)"),
            Problem::NewerVersion { found, supported } => write!(
                f,
                ": format version {found} is newer than this reader (supports up to {supported})"
            ),
            Problem::ConfigMismatch { snapshot, config } => write!(
                f,
                ": the snapshot has {snapshot}, the configuration {config}"
            ),
            Problem::Invalid { reason } => write!(f, ": {reason}"),
        }
    }
}

impl std::error::Error for SnapshotError {}

/// A cursor over snapshot bytes. Every read is bounds-checked and names its field; offsets in
/// errors are absolute (from the start of the slice the reader was made with).
#[derive(Debug, Clone)]
pub struct SnapshotReader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> SnapshotReader<'a> {
    /// A reader at the start of `bytes`.
    pub const fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    /// Bytes consumed so far: the offset of the next read.
    pub const fn position(&self) -> usize {
        self.at
    }

    /// Bytes not yet read.
    pub const fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    /// Fails with [`Problem::Trailing`] unless every byte was read.
    pub fn finish(&self, field: &'static str) -> Result<(), SnapshotError> {
        match self.remaining() {
            0 => Ok(()),
            left => Err(SnapshotError::new(
                self.at,
                field,
                None,
                Problem::Trailing { left },
            )),
        }
    }

    /// The next `n` bytes.
    pub fn bytes(
        &mut self,
        n: usize,
        field: &'static str,
        index: Option<u64>,
    ) -> Result<&'a [u8], SnapshotError> {
        let left = self.remaining();
        if n > left {
            return Err(SnapshotError::new(
                self.at,
                field,
                index,
                Problem::Truncated { needed: n, left },
            ));
        }
        let taken = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(taken)
    }

    fn array<const N: usize>(
        &mut self,
        field: &'static str,
        index: Option<u64>,
    ) -> Result<[u8; N], SnapshotError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.bytes(N, field, index)?);
        Ok(array)
    }

    /// A `u8`.
    pub fn u8(&mut self, field: &'static str, index: Option<u64>) -> Result<u8, SnapshotError> {
        Ok(self.array::<1>(field, index)?[0])
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self, field: &'static str, index: Option<u64>) -> Result<u16, SnapshotError> {
        self.array(field, index).map(u16::from_le_bytes)
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self, field: &'static str, index: Option<u64>) -> Result<u32, SnapshotError> {
        self.array(field, index).map(u32::from_le_bytes)
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self, field: &'static str, index: Option<u64>) -> Result<u64, SnapshotError> {
        self.array(field, index).map(u64::from_le_bytes)
    }

    /// A little-endian `i64`.
    pub fn i64(&mut self, field: &'static str, index: Option<u64>) -> Result<i64, SnapshotError> {
        self.array(field, index).map(i64::from_le_bytes)
    }

    /// A little-endian `u128`.
    pub fn u128(&mut self, field: &'static str, index: Option<u64>) -> Result<u128, SnapshotError> {
        self.array(field, index).map(u128::from_le_bytes)
    }

    /// A boolean: exactly 0 or 1, so that a snapshot has one encoding of each state.
    pub fn bool(&mut self, field: &'static str, index: Option<u64>) -> Result<bool, SnapshotError> {
        let at = self.at;
        match self.u8(field, index)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(SnapshotError::invalid(
                at,
                field,
                index,
                "a flag must be 0 or 1",
            )),
        }
    }

    /// An option: a [`SnapshotReader::bool`] tag, then the value when it is 1.
    pub fn option<T>(
        &mut self,
        field: &'static str,
        index: Option<u64>,
        read: impl FnOnce(&mut Self) -> Result<T, SnapshotError>,
    ) -> Result<Option<T>, SnapshotError> {
        if self.bool(field, index)? {
            read(self).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A `u32` that must equal the configuration's `config`.
    pub fn expect_u32(&mut self, field: &'static str, config: u32) -> Result<(), SnapshotError> {
        let at = self.at;
        let snapshot = self.u32(field, None)?;
        if snapshot != config {
            return Err(SnapshotError::new(
                at,
                field,
                None,
                Problem::ConfigMismatch {
                    snapshot: u64::from(snapshot),
                    config: u64::from(config),
                },
            ));
        }
        Ok(())
    }
}

/// Appends an option: a tag byte (0 or 1), then the value's bytes when it is `Some`.
pub fn write_option<T: Copy>(
    out: &mut Vec<u8>,
    value: Option<T>,
    write: impl FnOnce(&mut Vec<u8>, T),
) {
    match value {
        None => out.push(0),
        Some(value) => {
            out.push(1);
            write(out, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounds_checked_and_name_the_field() {
        let mut r = SnapshotReader::new(&[1, 2, 0, 0, 0, 2]);
        assert_eq!(r.u16("a", None), Ok(0x0201));
        assert_eq!(
            r.u64("b", Some(3)),
            Err(SnapshotError::new(
                2,
                "b",
                Some(3),
                Problem::Truncated { needed: 8, left: 4 }
            ))
        );
        assert_eq!(r.u16("c", None), Ok(0));
        assert!(r.bool("d", None).is_ok());
        let err = r.bool("e", None).unwrap_err();
        assert_eq!(err.offset, 5);
        assert_eq!(
            err.to_string(),
            "snapshot offset 5: e: a flag must be 0 or 1"
        );
        assert_eq!(r.finish("end"), Ok(()));
    }
}
