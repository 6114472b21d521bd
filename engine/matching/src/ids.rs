//! The id table: every id accepted in the run, mapped to its order slot while it rests.
//!
//! Open addressing with linear probing over one preallocated array of 16-byte entries (key and
//! slot in one cache line). Ids are unique for the whole run, so an entry is never removed: when
//! its order leaves the book its slot becomes [`DONE`], which still answers "duplicate". That
//! keeps lookups O(1) without tombstones or backward shifts. The table never holds more than half
//! its capacity, so probes stay short.
//!
//! The hash keeps runs of 64 consecutive ids together and scatters the runs with a fixed
//! Fibonacci multiplier: sequential ids (the common case) land in consecutive entries, so a new
//! id's insert touches a cache line its predecessor already brought in, while strided or
//! clustered ids still spread over the table. The table holds every id of the run (megabytes);
//! scattering each id to its own line made every new order a DRAM miss. Deterministic, and
//! nothing iterates the table.

use sequent_throttle::snapshot::{SnapshotError, SnapshotReader};

use crate::types::OrderId;

/// Slot value of an id whose order has left the book.
pub const DONE: u32 = u32::MAX;
/// Key of an empty entry; that id is refused as invalid.
pub const EMPTY: OrderId = u64::MAX;
/// 2^64 / φ: spreads sequential ids over the table.
const FIBONACCI: u64 = 0x9E37_79B9_7F4A_7C15;

/// Ids per run kept together by the hash.
const RUN_BITS: u32 = 6;

#[derive(Debug, Clone, Copy)]
struct Entry {
    key: OrderId,
    slot: u32,
}

#[derive(Debug, Clone)]
pub struct IdTable {
    entries: Vec<Entry>,
    /// `keys.len() - 1`; the length is a power of two.
    mask: usize,
    shift: u32,
    len: usize,
    /// Most ids the table accepts: half its entries.
    ids_max: usize,
}

impl IdTable {
    /// A table for `ids_max` ids (rounded so that it is at most half full).
    pub fn new(ids_max: usize) -> Self {
        let entries = (ids_max.max(1) * 2).next_power_of_two().max(1 << RUN_BITS);
        Self {
            entries: vec![
                Entry {
                    key: EMPTY,
                    slot: DONE
                };
                entries
            ],
            mask: entries - 1,
            // Keeps as many high bits of the product as the table has runs (none for one run).
            shift: 64 - (entries.trailing_zeros() - RUN_BITS),
            len: 0,
            ids_max,
        }
    }

    /// Bytes the table takes per id it can hold.
    pub const BYTES_PER_ENTRY: usize = size_of::<Entry>();

    /// Entries (twice the ids it can hold, rounded up to a power of two).
    pub fn entries(&self) -> usize {
        self.entries.len()
    }

    fn home(&self, id: OrderId) -> usize {
        // The run number is scattered (the shift keeps the high bits, which the multiplication
        // mixes best); the position within the run is kept.
        let run = (id >> RUN_BITS)
            .wrapping_mul(FIBONACCI)
            .checked_shr(self.shift)
            .unwrap_or(0);
        ((run << RUN_BITS) as usize | (id as usize & ((1 << RUN_BITS) - 1))) & self.mask
    }

    fn find(&self, id: OrderId) -> Result<usize, usize> {
        let mut i = self.home(id);
        loop {
            let key = self.entries[i].key;
            if key == id {
                return Ok(i);
            }
            if key == EMPTY {
                return Err(i);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// `Some(slot)` (or `Some(DONE)`) if the id was accepted before.
    pub fn get(&self, id: OrderId) -> Option<u32> {
        self.find(id).ok().map(|i| self.entries[i].slot)
    }

    /// Whether another id fits.
    pub fn is_full(&self) -> bool {
        self.len >= self.ids_max
    }

    /// Records a new id. The caller has checked that it is new and that the table is not full.
    pub fn insert(&mut self, id: OrderId, slot: u32) {
        assert!(!self.is_full(), "id table full");
        let i = self.find(id).expect_err("id inserted twice");
        self.entries[i] = Entry { key: id, slot };
        self.len += 1;
    }

    /// Points a known id at a slot (or [`DONE`]).
    pub fn set(&mut self, id: OrderId, slot: u32) {
        let i = self.find(id).expect("set on an unknown id");
        self.entries[i].slot = slot;
    }
}

/// Snapshots: the non-empty entries at their physical positions, so that a restored table probes
/// exactly like the original. Layout: count u32, then per entry in ascending position: position
/// u64, id u64, slot u32 (20 bytes per id the run has accepted).
impl IdTable {
    /// Appends the table's snapshot to `out`.
    pub fn write_snapshot(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.len as u32).to_le_bytes());
        for (position, entry) in self.entries.iter().enumerate() {
            if entry.key != EMPTY {
                out.extend_from_slice(&(position as u64).to_le_bytes());
                out.extend_from_slice(&entry.key.to_le_bytes());
                out.extend_from_slice(&entry.slot.to_le_bytes());
            }
        }
    }

    /// Reads a table for `ids_max` ids. `slot_ok(id, slot)` says whether an entry may point at
    /// `slot` (the venue checks it against its order slots). Refuses entries out of order or out
    /// of range, duplicates, and entries a lookup would not find from their id's home position.
    pub fn read_snapshot_from(
        r: &mut SnapshotReader<'_>,
        ids_max: usize,
        slot_ok: impl Fn(OrderId, u32) -> bool,
    ) -> Result<Self, SnapshotError> {
        let mut table = Self::new(ids_max);
        let at = r.position();
        let len = r.u32("venue.ids.count", None)? as usize;
        if len > ids_max {
            return Err(SnapshotError::invalid(
                at,
                "venue.ids.count",
                None,
                "more ids than ids_max",
            ));
        }
        let mut placed = Vec::with_capacity(len);
        let mut next_position = 0u64;
        for _ in 0..len {
            let at = r.position();
            let position = r.u64("venue.ids.position", None)?;
            let i = Some(position);
            let key = r.u64("venue.ids.id", i)?;
            let slot = r.u32("venue.ids.slot", i)?;
            if position < next_position || position >= table.entries.len() as u64 {
                return Err(SnapshotError::invalid(
                    at,
                    "venue.ids.position",
                    i,
                    "positions must ascend and be inside the table",
                ));
            }
            next_position = position + 1;
            if key == EMPTY {
                return Err(SnapshotError::invalid(
                    at,
                    "venue.ids.id",
                    i,
                    "the empty key is not an id",
                ));
            }
            if !slot_ok(key, slot) {
                return Err(SnapshotError::invalid(
                    at,
                    "venue.ids.slot",
                    i,
                    "neither done nor the slot of a resting order with this id",
                ));
            }
            table.entries[position as usize] = Entry { key, slot };
            placed.push((at, position as usize, key));
        }
        table.len = len;
        // At most half full (len <= ids_max), so every probe meets an empty entry and ends.
        for (at, position, key) in placed {
            if table.find(key) != Ok(position) {
                return Err(SnapshotError::invalid(
                    at,
                    "venue.ids.position",
                    Some(position as u64),
                    "a lookup of this id would not find it here (duplicate or misplaced)",
                ));
            }
        }
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_strided_and_scattered_ids_all_round_trip() {
        for ids in [
            (1..=1_000u64).collect::<Vec<_>>(),
            (1..=1_000u64).map(|i| i * 64).collect(),
            (1..=1_000u64).map(|i| i << 32).collect(),
            (1..=1_000u64)
                .map(|i| i.wrapping_mul(0xD6E8_FEB8_6659_FD93))
                .collect(),
        ] {
            let mut table = IdTable::new(1_000);
            for (slot, &id) in ids.iter().enumerate() {
                assert_eq!(table.get(id), None);
                table.insert(id, slot as u32);
            }
            assert!(table.is_full());
            for (slot, &id) in ids.iter().enumerate() {
                assert_eq!(table.get(id), Some(slot as u32));
            }
            table.set(ids[0], DONE);
            assert_eq!(table.get(ids[0]), Some(DONE));
            assert_eq!(table.get(0), None);
        }
    }

    #[test]
    fn a_table_smaller_than_one_run_works() {
        let mut table = IdTable::new(1);
        table.insert(7, 3);
        assert_eq!(table.get(7), Some(3));
        assert!(table.is_full());
    }
}
