//! The id table: every id accepted in the run, mapped to its order slot while it rests.
//!
//! Open addressing with linear probing over two preallocated arrays. Ids are unique for the
//! whole run, so an entry is never removed: when its order leaves the book its slot becomes
//! [`DONE`], which still answers "duplicate". That keeps lookups O(1) without tombstones or
//! backward shifts. The table never holds more than half its capacity, so probes stay short.
//! The hash is a fixed Fibonacci multiplier: deterministic, and nothing iterates the table.

use crate::types::OrderId;

/// Slot value of an id whose order has left the book.
pub const DONE: u32 = u32::MAX;
/// Key of an empty entry; that id is refused as invalid.
pub const EMPTY: OrderId = u64::MAX;
/// 2^64 / φ: spreads sequential ids over the table.
const FIBONACCI: u64 = 0x9E37_79B9_7F4A_7C15;

#[derive(Debug, Clone)]
pub struct IdTable {
    keys: Vec<OrderId>,
    slots: Vec<u32>,
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
        let entries = (ids_max.max(1) * 2).next_power_of_two();
        Self {
            keys: vec![EMPTY; entries],
            slots: vec![DONE; entries],
            mask: entries - 1,
            shift: 64 - entries.trailing_zeros(),
            len: 0,
            ids_max,
        }
    }

    /// Bytes the table takes per id it can hold.
    pub const BYTES_PER_ENTRY: usize = size_of::<OrderId>() + size_of::<u32>();

    /// Entries (twice the ids it can hold, rounded up to a power of two).
    pub fn entries(&self) -> usize {
        self.keys.len()
    }

    fn home(&self, id: OrderId) -> usize {
        // The shift keeps the high bits, which the multiplication mixes best.
        (id.wrapping_mul(FIBONACCI) >> self.shift) as usize & self.mask
    }

    fn find(&self, id: OrderId) -> Result<usize, usize> {
        let mut i = self.home(id);
        loop {
            let key = self.keys[i];
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
        self.find(id).ok().map(|i| self.slots[i])
    }

    /// Whether another id fits.
    pub fn is_full(&self) -> bool {
        self.len >= self.ids_max
    }

    /// Records a new id. The caller has checked that it is new and that the table is not full.
    pub fn insert(&mut self, id: OrderId, slot: u32) {
        assert!(!self.is_full(), "id table full");
        let i = self.find(id).expect_err("id inserted twice");
        self.keys[i] = id;
        self.slots[i] = slot;
        self.len += 1;
    }

    /// Points a known id at a slot (or [`DONE`]).
    pub fn set(&mut self, id: OrderId, slot: u32) {
        let i = self.find(id).expect("set on an unknown id");
        self.slots[i] = slot;
    }
}
