//! The id indexes: 128-bit ids to `u32` positions in a store the ledger owns (accounts, stored
//! transfers, remembered failures).
//!
//! An open-addressing table with linear probing over 8-byte buckets, sized at construction to at
//! least twice the ids it may hold, so it is at most half full and never grows. A bucket holds a
//! 31-bit tag of the id's hash and the value; the id itself stays in the store and is compared
//! there only when the tag matches. Compared with a general map of `(u128, value)` entries this
//! is a quarter of the memory (the transfer index of a 2M-transfer ledger is 32 MiB rather than
//! 264 MiB), so a probe touches one cache line of a table that the TLB and the caches can hold.
//!
//! There are no tombstones: the only removal is undoing the latest insertion (a linked chain
//! rolled back, last member first), and with linear probing emptying that bucket restores the
//! table exactly as it was before the insertion: the id went to the first empty bucket of its
//! probe run, and every id inserted after it has already been removed.

use std::hash::{BuildHasher, RandomState};

/// Hashes 128-bit ids: a folded multiply (as in foldhash) keyed per index from the process's
/// random source, so ids chosen by clients cannot be aimed at collisions in advance. The key
/// changes only where entries sit in the table, never an output: nothing iterates the indexes.
#[derive(Clone, Copy, Debug)]
struct IdHash {
    key: u64,
}

/// The odd constant of the folded multiply (the golden ratio in 64 bits).
const MIX: u64 = 0x9e37_79b9_7f4a_7c15;
/// The finishing constant (foldhash's).
const FINISH: u64 = 0x2d35_8dcc_aa6c_78a5;

/// The multiply of two words folded to one: high half xor low half.
fn fold(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product >> 64) as u64 ^ product as u64
}

impl IdHash {
    fn new() -> Self {
        Self {
            key: RandomState::new().hash_one(0x005e_9ee7_u64) | 1,
        }
    }

    fn hash(self, id: u128) -> u64 {
        let state = fold(self.key ^ id as u64, (id >> 64) as u64 ^ self.key ^ MIX);
        fold(state, FINISH)
    }
}

/// An id index of fixed capacity; see the module documentation.
#[derive(Debug)]
pub(crate) struct IdIndex {
    hash: IdHash,
    /// 0 is empty; otherwise the high half is the tag (the hash's high 32 bits with the lowest
    /// of them set, so an occupied bucket is never 0) and the low half the value.
    buckets: Vec<u64>,
    /// `buckets.len() - 1`; the length is a power of two.
    mask: usize,
    /// Occupied buckets: always fewer than `buckets.len()`, so every probe run ends at an empty
    /// bucket.
    len: usize,
}

impl IdIndex {
    /// An index for up to `ids_max` ids (plus one: a snapshot reader inserts before it checks
    /// the count), at most half full at that count. The buckets are zeroed memory that the
    /// operating system maps on first touch.
    pub(crate) fn with_capacity(ids_max: usize) -> Self {
        let buckets = ids_max
            .checked_mul(2)
            .and_then(usize::checked_next_power_of_two)
            .expect("index size fits usize")
            .max(4);
        assert!(buckets > ids_max + 1, "an index keeps an empty bucket");
        Self {
            hash: IdHash::new(),
            buckets: vec![0; buckets],
            mask: buckets - 1,
            len: 0,
        }
    }

    /// The tag bucket position of `id`.
    fn locate(&self, id: u128) -> (u64, usize) {
        let h = self.hash.hash(id);
        ((h >> 32 | 1) << 32, h as usize & self.mask)
    }

    /// The value stored for `id`; `id_of` gives the id stored under a value (read from the store
    /// the value points into), to confirm a tag match.
    #[inline]
    pub(crate) fn get(&self, id: u128, id_of: impl Fn(u32) -> u128) -> Option<u32> {
        let (tag, mut at) = self.locate(id);
        loop {
            let bucket = self.buckets[at];
            if bucket == 0 {
                return None;
            }
            if bucket & 0xffff_ffff_0000_0000 == tag {
                let value = bucket as u32;
                if id_of(value) == id {
                    return Some(value);
                }
            }
            at = (at + 1) & self.mask;
        }
    }

    /// Records `value` for `id`, which must be absent (the caller looked it up).
    #[inline]
    pub(crate) fn insert(&mut self, id: u128, value: u32) {
        assert!(
            self.len + 1 < self.buckets.len(),
            "an index keeps an empty bucket"
        );
        let (tag, mut at) = self.locate(id);
        while self.buckets[at] != 0 {
            at = (at + 1) & self.mask;
        }
        self.buckets[at] = tag | u64::from(value);
        self.len += 1;
    }

    /// Undoes the latest insertion, of `id` with `value` (see the module documentation for why
    /// emptying its bucket is exact).
    pub(crate) fn remove_latest(&mut self, id: u128, value: u32) {
        let (tag, mut at) = self.locate(id);
        let entry = tag | u64::from(value);
        while self.buckets[at] != entry {
            assert!(self.buckets[at] != 0, "the removed id is in the index");
            at = (at + 1) & self.mask;
        }
        self.buckets[at] = 0;
        self.len -= 1;
    }

    /// Rewrites one bucket per page with its own value, so the operating system maps every
    /// page now (zeroed memory is mapped on first write); the table does not change.
    pub(crate) fn prefault(&mut self) {
        let step = 4096 / std::mem::size_of::<u64>();
        for at in (0..self.buckets.len()).step_by(step) {
            // `black_box`: the compiler may not drop the write of a value it just read.
            self.buckets[at] = std::hint::black_box(self.buckets[at]);
        }
    }

    /// Touches the cache line where a probe for `id` starts, so that a later `get` or `insert`
    /// finds it in cache: the load has no dependants, so it overlaps with other work.
    #[inline]
    pub(crate) fn warm(&self, id: u128) -> u64 {
        let (_, at) = self.locate(id);
        self.buckets[at]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Against a map, with a table small enough that probe runs collide and wrap around its
    /// end: inserts, lookups of present and absent ids, and undoing the latest insertions
    /// (several in a row, as a rolled-back chain does) leave exactly the model's contents.
    #[test]
    fn agrees_with_a_map_through_inserts_and_undone_inserts() {
        let ids_max = 48;
        let mut index = IdIndex::with_capacity(ids_max);
        assert_eq!(index.buckets.len(), 128);
        // The store the values point into, as the ledger's `transfers`.
        let mut store: Vec<u128> = Vec::new();
        let mut model: HashMap<u128, u32> = HashMap::new();
        let mut s = 0x1234_5678_u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for round in 0..2_000 {
            let r = next();
            if r % 4 != 0 && store.len() < ids_max {
                let id = u128::from(next() % 200 + 1) << (64 * (round % 2));
                let found = index.get(id, |v| store[v as usize]);
                assert_eq!(found, model.get(&id).copied());
                if found.is_none() {
                    index.insert(id, store.len() as u32);
                    model.insert(id, store.len() as u32);
                    store.push(id);
                }
            } else {
                for _ in 0..(r % 5) {
                    let Some(id) = store.pop() else { break };
                    index.remove_latest(id, store.len() as u32);
                    model.remove(&id);
                }
            }
            assert_eq!(index.len, model.len());
            for probe in 1..=200u128 {
                for id in [probe, probe << 64] {
                    assert_eq!(
                        index.get(id, |v| store[v as usize]),
                        model.get(&id).copied()
                    );
                }
            }
        }
        index.prefault();
        for (&id, &value) in &model {
            assert_eq!(index.get(id, |v| store[v as usize]), Some(value));
        }
    }

    #[test]
    fn keeps_an_empty_bucket_at_one_over_its_limit() {
        for ids_max in 1..=9 {
            let index = IdIndex::with_capacity(ids_max);
            assert!(index.buckets.len() > ids_max + 1);
            assert!(index.buckets.len() >= 2 * ids_max);
        }
    }
}
