//! Merkle trees of RFC 9162 (Certificate Transparency version 2.0), §2.1, used by the journal as
//! tamper evidence: a journal commits to the root of a tree over its records, an inclusion proof
//! shows that one record is in a committed tree, and a consistency proof shows that a later tree
//! only appended records to an earlier one.
//!
//! # Hashing and domain separation (RFC 9162 §2.1.1)
//!
//! The hash is SHA-256 and every input is prefixed by one byte saying what it is, so that a leaf
//! can never be passed off as an interior node or the reverse (second-preimage resistance):
//!
//! - leaf: `SHA-256(0x00 || data)` ([`leaf_hash`]);
//! - interior node: `SHA-256(0x01 || left || right)` ([`node_hash`]);
//! - the tree of no leaves: `SHA-256("")` ([`empty_root`]).
//!
//! The Merkle Tree Hash of `n > 1` leaves splits them at `k`, the largest power of two smaller
//! than `n`, and hashes the roots of the two parts: `MTH(D[n]) = node(MTH(D[0:k]), MTH(D[k:n]))`.
//! The tree is therefore left-full: every left subtree is perfect and only the right edge is
//! ragged.
//!
//! # What this module takes and gives
//!
//! Every function here takes *leaf hashes* (already passed through [`leaf_hash`]), never raw
//! records, so the journal decides once what bytes a record contributes. Proof generation
//! ([`inclusion_proof`], [`consistency_proof`]) recomputes the subtree roots it needs from the
//! leaf hashes: O(n) hashes per proof and O(log n) memory. Verification
//! ([`verify_inclusion`], [`verify_consistency`]) runs the iterative algorithms of RFC 9162
//! §2.1.3.2 and §2.1.4.2 over the proof, O(log n) hashes, and never sees the leaves.
//! [`MerkleBuilder`] keeps the root of a growing log in O(log n) memory.
//!
//! # Edge cases (decisions)
//!
//! - An inclusion proof for `index >= tree_size` is an error, including every index of the empty
//!   tree.
//! - A consistency proof between equal sizes is empty, and verifies only if the two roots are
//!   equal (and, for size 0, equal to [`empty_root`]).
//! - RFC 9162 §2.1.4 defines consistency proofs only for `0 < old_size < new_size`; every tree
//!   extends the empty tree, so a proof from size 0 carries no information. Here it is the empty
//!   proof, and [`verify_consistency`] accepts it only if `old_root` is [`empty_root`]: it checks
//!   the claim about the old tree and authenticates nothing about `new_root`.
//! - A proof with one hash too many or too few is rejected with
//!   [`ProofError::WrongProofLength`] before any hashing.

use sha2::{Digest, Sha256};

/// A SHA-256 digest: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; HASH_LEN];

/// Length in bytes of a [`Hash`](type@Hash).
pub const HASH_LEN: usize = 32;

/// Most hashes an inclusion proof can hold: a tree of at most `u64::MAX` leaves has depth 64.
pub const INCLUSION_PROOF_HASHES_MAX: usize = 64;

/// Most hashes a consistency proof can hold: a path of up to 64 siblings plus the seed node
/// (e.g. `old_size = 3`, `new_size = 2^63 + 1`).
pub const CONSISTENCY_PROOF_HASHES_MAX: usize = 65;

/// Domain-separation prefix of a leaf hash (RFC 9162 §2.1.1).
const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix of an interior node hash (RFC 9162 §2.1.1).
const NODE_PREFIX: u8 = 0x01;

/// Why a proof could not be produced or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not inside the tree (`index >= tree_size`).
    #[error("leaf index {index} is out of range for a tree of size {tree_size}")]
    IndexOutOfRange {
        /// The requested leaf index.
        index: u64,
        /// The size of the tree the index was checked against.
        tree_size: u64,
    },
    /// The old tree is larger than the new one (`old_size > new_size`).
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    OldSizeOutOfRange {
        /// The claimed size of the old tree.
        old_size: u64,
        /// The claimed size of the new tree.
        new_size: u64,
    },
    /// The proof does not hold exactly the number of hashes the sizes call for.
    #[error("proof holds {got} hashes, but the tree sizes call for {expected}")]
    WrongProofLength {
        /// Hashes a proof for these sizes must hold.
        expected: usize,
        /// Hashes the proof holds.
        got: usize,
    },
    /// The root computed from an inclusion proof differs from the given root, or two roots that
    /// must be equal (consistency between equal sizes) differ.
    #[error("computed root does not match the expected root")]
    RootMismatch,
    /// The old-tree root computed from a consistency proof differs from the given old root (for
    /// `old_size == 0`: the given old root is not the empty-tree root).
    #[error("consistency proof does not reproduce the old root")]
    OldRootMismatch,
    /// The new-tree root computed from a consistency proof differs from the given new root.
    #[error("consistency proof does not reproduce the new root")]
    NewRootMismatch,
}

/// `SHA-256(0x00 || data)`: the hash of one leaf (RFC 9162 §2.1.1).
pub fn leaf_hash(data: &[u8]) -> Hash {
    Sha256::new()
        .chain_update([LEAF_PREFIX])
        .chain_update(data)
        .finalize()
        .into()
}

/// `SHA-256(0x01 || left || right)`: the hash of an interior node (RFC 9162 §2.1.1).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new()
        .chain_update([NODE_PREFIX])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// `SHA-256("")`: the root of the tree with no leaves (RFC 9162 §2.1.1).
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The Merkle Tree Hash (RFC 9162 §2.1.1) of `leaves`, which are leaf hashes already (see
/// [`leaf_hash`]): [`empty_root`] for none, the leaf hash itself for one, and otherwise the node
/// over the roots of the first `k` and the remaining leaves, `k` the largest power of two below
/// the count. Runs in O(n) hashes and O(log n) memory.
pub fn root_from_leaves(leaves: &[Hash]) -> Hash {
    let mut builder = MerkleBuilder::new();
    for leaf in leaves {
        builder.push(*leaf);
    }
    builder.root()
}

/// Number of hashes in the inclusion proof of leaf `index` in a tree of `tree_size` leaves.
///
/// Below level `inner` (where the paths to `index` and to the last leaf join) every level has a
/// sibling; above it, only levels where the path turns left have one (the "border" nodes).
pub fn inclusion_proof_len(index: u64, tree_size: u64) -> Result<usize, ProofError> {
    if index >= tree_size {
        return Err(ProofError::IndexOutOfRange { index, tree_size });
    }
    let (inner, border) = decompose_path(index, tree_size);
    let len = to_usize(u64::from(inner + border));
    assert!(len <= INCLUSION_PROOF_HASHES_MAX);
    Ok(len)
}

/// Number of hashes in the consistency proof between trees of `old_size` and `new_size` leaves:
/// 0 when the sizes are equal or `old_size` is 0 (see the module documentation).
pub fn consistency_proof_len(old_size: u64, new_size: u64) -> Result<usize, ProofError> {
    if old_size > new_size {
        return Err(ProofError::OldSizeOutOfRange { old_size, new_size });
    }
    if old_size == 0 || old_size == new_size {
        return Ok(0);
    }
    // The proof is the path from the old tree's last perfect subtree (height `shift`) to the new
    // root, preceded by that subtree's root unless it is the whole old tree (old_size = 2^shift),
    // whose root the verifier already has.
    let shift = old_size.trailing_zeros();
    let (inner, border) = decompose_path(old_size - 1, new_size);
    // `inner > shift`: the paths to old_size - 1 and new_size - 1 must part above the perfect
    // subtree, or new_size - 1 would lie inside it, i.e. new_size <= old_size.
    assert!(inner > shift);
    let seed = u32::from(!old_size.is_power_of_two());
    let len = to_usize(u64::from(inner - shift + border + seed));
    assert!(len <= CONSISTENCY_PROOF_HASHES_MAX);
    Ok(len)
}

/// PATH(m, D\[n\]) of RFC 9162 §2.1.3.1: the audit path of leaf `index`, sibling hashes from the
/// leaf upwards. Errors if `index` is not below `leaves.len()`.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Result<Vec<Hash>, ProofError> {
    let tree_size = len_u64(leaves);
    let expected = inclusion_proof_len(index, tree_size)?;
    let mut proof = Vec::with_capacity(expected);
    push_path_siblings(leaves, 0, index, &mut proof);
    assert_eq!(proof.len(), expected);
    Ok(proof)
}

/// Checks that `leaf` (a leaf hash) is leaf `index` of the tree of `tree_size` leaves whose root
/// is `root`, using the iterative algorithm of RFC 9162 §2.1.3.2.
pub fn verify_inclusion(
    index: u64,
    tree_size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    // RFC 9162 §2.1.3.2 step 1.
    let expected = inclusion_proof_len(index, tree_size)?;
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    let computed =
        rfc_inclusion_root(index, tree_size, leaf, proof).ok_or(ProofError::WrongProofLength {
            expected,
            got: proof.len(),
        })?;
    if computed != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// PROOF(m, D\[n\]) of RFC 9162 §2.1.4.1 (SUBPROOF with `b = true`): the consistency proof from
/// the tree of the first `old_size` leaves to the tree of all `leaves`. Empty for
/// `old_size == 0` and `old_size == leaves.len()`; errors if `old_size > leaves.len()`.
pub fn consistency_proof(leaves: &[Hash], old_size: u64) -> Result<Vec<Hash>, ProofError> {
    let new_size = len_u64(leaves);
    let expected = consistency_proof_len(old_size, new_size)?;
    let mut proof = Vec::with_capacity(expected);
    if expected == 0 {
        return Ok(proof);
    }
    // The old tree's last perfect subtree spans [old_size - 2^shift, old_size); its node index at
    // level `shift` is `(old_size - 1) >> shift`, zero exactly when old_size is a power of two.
    let shift = old_size.trailing_zeros();
    let node_index = (old_size - 1) >> shift;
    if node_index != 0 {
        let start = to_usize(node_index << shift);
        proof.push(root_from_leaves(&leaves[start..to_usize(old_size)]));
    }
    push_path_siblings(leaves, shift, node_index, &mut proof);
    assert_eq!(proof.len(), expected);
    Ok(proof)
}

/// Checks that the tree of `new_size` leaves with root `new_root` extends the tree of `old_size`
/// leaves with root `old_root`, using the algorithm of RFC 9162 §2.1.4.2. Equal sizes need an
/// empty proof and equal roots; `old_size == 0` needs an empty proof and `old_root ==`
/// [`empty_root`] (see the module documentation).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    let expected = consistency_proof_len(old_size, new_size)?;
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    if old_size == 0 && *old_root != empty_root() {
        return Err(ProofError::OldRootMismatch);
    }
    if old_size == new_size {
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    if old_size == 0 {
        return Ok(());
    }
    let (old_computed, new_computed) = rfc_consistency_roots(old_size, new_size, old_root, proof)
        .ok_or(ProofError::WrongProofLength {
        expected,
        got: proof.len(),
    })?;
    if old_computed != *old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if new_computed != *new_root {
        return Err(ProofError::NewRootMismatch);
    }
    Ok(())
}

/// A growing tree that keeps only the roots of its perfect subtrees (a compact range), so
/// [`root`](Self::root) is `root_from_leaves` of everything pushed in O(log n) memory.
#[derive(Debug, Clone)]
pub struct MerkleBuilder {
    /// Roots of the perfect subtrees that tile the leaves pushed so far, largest (leftmost) first;
    /// one per set bit of `len`, the subtree for bit `h` having `2^h` leaves. Never more than 64,
    /// and allocated for 64 up front so that `push` never allocates.
    stack: Vec<Hash>,
    /// Number of leaves pushed.
    len: u64,
}

impl Default for MerkleBuilder {
    /// Same as [`MerkleBuilder::new`], so that a defaulted builder never allocates either.
    fn default() -> Self {
        Self::new()
    }
}

impl MerkleBuilder {
    /// The builder of the empty tree.
    pub fn new() -> Self {
        Self {
            stack: Vec::with_capacity(u64::BITS as usize),
            len: 0,
        }
    }

    /// Appends one leaf hash (see [`leaf_hash`]). O(log n) hashes in the worst case, O(1)
    /// amortized.
    pub fn push(&mut self, leaf: Hash) {
        assert!(
            self.len < u64::MAX,
            "a Merkle tree holds at most u64::MAX leaves"
        );
        debug_assert_eq!(self.stack.len(), self.len.count_ones() as usize);
        // Each trailing set bit of `len` is a perfect subtree the same height as `node`: merge it
        // with the new node, as binary addition carries.
        let mut node = leaf;
        let mut carry = self.len;
        while carry & 1 == 1 {
            let left = self
                .stack
                .pop()
                .expect("stack holds one subtree root per set bit of len");
            node = node_hash(&left, &node);
            carry >>= 1;
        }
        self.stack.push(node);
        self.len += 1;
    }

    /// Number of leaves pushed.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no leaf has been pushed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The root over all leaves pushed, equal to [`root_from_leaves`] of them. O(log n) hashes.
    pub fn root(&self) -> Hash {
        // The RFC tree hangs each smaller perfect subtree off the right of the larger ones, so
        // fold from the right: root = node(s0, node(s1, ... node(s_{k-2}, s_{k-1}))).
        let mut subtrees = self.stack.iter().rev();
        let Some(&last) = subtrees.next() else {
            return empty_root();
        };
        subtrees.fold(last, |right, left| node_hash(left, &right))
    }
}

/// Lowercase hex of a hash, 64 characters.
pub fn to_hex(h: &Hash) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * HASH_LEN);
    for byte in h {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Parses the 64-character lowercase hex that [`to_hex`] writes. `None` for any other length or
/// character; uppercase is rejected too, so that every hash has exactly one spelling.
pub fn from_hex(s: &str) -> Option<Hash> {
    let digits = s.as_bytes();
    if digits.len() != 2 * HASH_LEN {
        return None;
    }
    let mut out = [0u8; HASH_LEN];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
    }
    Some(out)
}

/// Value of one lowercase hex digit.
fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Splits the audit path of leaf `index` in a tree of `tree_size` leaves (`index < tree_size`)
/// into `inner`, the levels below the point where the paths to `index` and to the last leaf join
/// (each has a sibling), and `border`, the levels above it where the path is a right child.
fn decompose_path(index: u64, tree_size: u64) -> (u32, u32) {
    debug_assert!(index < tree_size);
    let inner = u64::BITS - (index ^ (tree_size - 1)).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner, border)
}

/// Appends the sibling hashes on the path from the node at (`level`, `index`) up to the root of
/// the tree over `leaves`, lowest first. The node at (level `l`, index `j`) spans leaves
/// `[j * 2^l, min((j + 1) * 2^l, n))`: the RFC's split at the largest power of two keeps every
/// subtree aligned this way. A level where the sibling would start past the last leaf has no node
/// in the RFC tree (the node is carried up unchanged) and contributes nothing.
fn push_path_siblings(leaves: &[Hash], mut level: u32, mut index: u64, out: &mut Vec<Hash>) {
    let tree_size = len_u64(leaves);
    // The walk stops at the first level whose node spans all leaves: the root.
    while level < u64::BITS && (1u64 << level) < tree_size {
        let sibling_start = (index ^ 1) << level;
        if sibling_start < tree_size {
            let sibling_end = sibling_start.saturating_add(1u64 << level).min(tree_size);
            out.push(root_from_leaves(
                &leaves[to_usize(sibling_start)..to_usize(sibling_end)],
            ));
        }
        index >>= 1;
        level += 1;
    }
}

/// RFC 9162 §2.1.3.2 steps 2 to 5 for `index < tree_size` (step 1 is the caller's): the root
/// that `proof` yields for `leaf`, or `None` if the proof is too long (`sn` reaches 0 early) or
/// too short (`sn` is not 0 at the end). The variables keep the RFC's names `fn`/`sn`/`r`.
fn rfc_inclusion_root(index: u64, tree_size: u64, leaf: &Hash, proof: &[Hash]) -> Option<Hash> {
    debug_assert!(index < tree_size);
    let mut f_n = index;
    let mut s_n = tree_size - 1;
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return None;
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    (s_n == 0).then_some(r)
}

/// RFC 9162 §2.1.4.2 steps 1 to 6 for `0 < first < second`: the old and new roots (`fr`, `sr`)
/// that `path` yields, or `None` if the path is empty, too long or too short. Step 7 (comparing
/// the roots) is the caller's.
fn rfc_consistency_roots(
    first: u64,
    second: u64,
    first_hash: &Hash,
    path: &[Hash],
) -> Option<(Hash, Hash)> {
    debug_assert!(0 < first && first < second);
    // Step 1.
    if path.is_empty() {
        return None;
    }
    // Step 2: for a power of two the old root is the seed, as if prepended to the path.
    let (seed, rest) = if first.is_power_of_two() {
        (first_hash, path)
    } else {
        path.split_first()?
    };
    // Steps 3 and 4.
    let mut f_n = first - 1;
    let mut s_n = second - 1;
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    // Step 5.
    let mut f_r = *seed;
    let mut s_r = *seed;
    // Step 6.
    for c in rest {
        if s_n == 0 {
            return None;
        }
        if f_n & 1 == 1 || f_n == s_n {
            f_r = node_hash(c, &f_r);
            s_r = node_hash(c, &s_r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            s_r = node_hash(&s_r, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    // Step 7, the part about the path's length.
    (s_n == 0).then_some((f_r, s_r))
}

/// Leaf count as `u64`: lossless, as `usize` is at most 64 bits on every target Rust supports.
fn len_u64(leaves: &[Hash]) -> u64 {
    leaves.len() as u64
}

/// A position that is bounded by a slice length, as `usize`.
fn to_usize(x: u64) -> usize {
    usize::try_from(x).expect("value is bounded by a slice length")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // ---------------------------------------------------------------------------------------
    // Naive reference, straight from the recursive definitions of RFC 9162 §2.1.1 (MTH),
    // §2.1.3.1 (PATH) and §2.1.4.1 (PROOF/SUBPROOF). It hashes with `sha2` directly so that it
    // shares no code with the module under test.
    // ---------------------------------------------------------------------------------------

    fn ref_node(left: &Hash, right: &Hash) -> Hash {
        let mut bytes = vec![0x01];
        bytes.extend_from_slice(left);
        bytes.extend_from_slice(right);
        Sha256::digest(&bytes).into()
    }

    /// Largest power of two strictly smaller than `n` (n > 1).
    fn ref_split(n: usize) -> usize {
        assert!(n > 1);
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    fn ref_mth(d: &[Hash]) -> Hash {
        match d.len() {
            0 => Sha256::digest(b"").into(),
            1 => d[0],
            n => {
                let k = ref_split(n);
                ref_node(&ref_mth(&d[..k]), &ref_mth(&d[k..]))
            }
        }
    }

    fn ref_path(m: usize, d: &[Hash]) -> Vec<Hash> {
        let n = d.len();
        assert!(m < n);
        if n == 1 {
            return Vec::new();
        }
        let k = ref_split(n);
        if m < k {
            let mut p = ref_path(m, &d[..k]);
            p.push(ref_mth(&d[k..]));
            p
        } else {
            let mut p = ref_path(m - k, &d[k..]);
            p.push(ref_mth(&d[..k]));
            p
        }
    }

    fn ref_subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
        let n = d.len();
        if m == n {
            return if b { Vec::new() } else { vec![ref_mth(d)] };
        }
        let k = ref_split(n);
        if m <= k {
            let mut p = ref_subproof(m, &d[..k], b);
            p.push(ref_mth(&d[k..]));
            p
        } else {
            let mut p = ref_subproof(m - k, &d[k..], false);
            p.push(ref_mth(&d[..k]));
            p
        }
    }

    fn ref_proof(m: usize, d: &[Hash]) -> Vec<Hash> {
        assert!(0 < m && m <= d.len());
        ref_subproof(m, d, true)
    }

    // ---------------------------------------------------------------------------------------
    // Fixtures.
    // ---------------------------------------------------------------------------------------

    fn h(hex: &str) -> Hash {
        from_hex(hex).expect("test vector is 64 lowercase hex digits")
    }

    /// Distinct leaf hashes; `salt` varies them between proptest cases.
    fn leaves(n: usize, salt: u64) -> Vec<Hash> {
        (0..n as u64)
            .map(|i| leaf_hash(&[salt.to_le_bytes(), i.to_le_bytes()].concat()))
            .collect()
    }

    /// Leaves and the roots of some of their prefixes, so that claims about other tree sizes
    /// can be checked against real roots cheaply (SHA-256 is slow in unoptimized test builds).
    struct Fixture {
        all: Vec<Hash>,
        /// `roots[s]` is the root of the first `s` leaves, where it was asked for.
        roots: Vec<Option<Hash>>,
    }

    impl Fixture {
        /// Roots of every prefix.
        fn new(all: Vec<Hash>) -> Self {
            Self::with_roots_at(all, |_| true)
        }

        /// Roots of the prefixes of the sizes `wanted` accepts, in one pass.
        fn with_roots_at(all: Vec<Hash>, wanted: impl Fn(usize) -> bool) -> Self {
            let mut builder = MerkleBuilder::new();
            let mut roots = vec![wanted(0).then(|| builder.root())];
            for (i, leaf) in all.iter().enumerate() {
                builder.push(*leaf);
                roots.push(wanted(i + 1).then(|| builder.root()));
            }
            Self { all, roots }
        }

        fn root(&self, size: usize) -> Hash {
            self.roots[size].expect("the test asked for the root of this size")
        }
    }

    fn flip(hash: &Hash, bit: usize) -> Hash {
        let mut out = *hash;
        out[bit / 8] ^= 1 << (bit % 8);
        out
    }

    /// Bits flipped where flipping all 256 of every hash would take too long.
    const SAMPLE_BITS: &[usize] = &[0, 255];

    fn all_bits() -> Vec<usize> {
        (0..8 * HASH_LEN).collect()
    }

    // ---------------------------------------------------------------------------------------
    // Known-answer vectors.
    //
    // Source: transparency-dev/merkle, `proof/verify_test.go` (the RFC 6962 reference test tree
    // inherited from google/certificate-transparency-go `merkle/log_verifier_test.go`): the 8
    // leaf inputs, the roots of sizes 1..=8, and the inclusion and consistency proofs
    // (`inclusionProofs`, whose leaf numbers there are 1-based, and `consistencyProofs`). Hash
    // vectors: transparency-dev/merkle `rfc6962/rfc6962_test.go`. Proof lengths:
    // transparency-dev/merkle `proof/proof_test.go` (`TestInclusion`, `TestConsistency`).
    // ---------------------------------------------------------------------------------------

    const KAT_INPUTS: [&[u8]; 8] = [
        b"",
        &[0x00],
        &[0x10],
        &[0x20, 0x21],
        &[0x30, 0x31],
        &[0x40, 0x41, 0x42, 0x43],
        &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
        &[
            0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d,
            0x6e, 0x6f,
        ],
    ];

    const KAT_ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    /// (0-based leaf index, tree size, proof).
    const KAT_INCLUSION: [(u64, u64, &[&str]); 4] = [
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
        (
            1,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];

    /// (old size, new size, proof).
    const KAT_CONSISTENCY: [(u64, u64, &[&str]); 5] = [
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
        (
            6,
            7,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];

    fn kat_leaves() -> Vec<Hash> {
        KAT_INPUTS.iter().map(|d| leaf_hash(d)).collect()
    }

    /// The test tree and two more leaves, for claims about larger trees.
    fn kat_fixture() -> Fixture {
        let mut all = kat_leaves();
        all.push(leaf_hash(b"ninth"));
        all.push(leaf_hash(b"tenth"));
        Fixture::new(all)
    }

    #[test]
    fn kat_hashes() {
        // echo -n | sha256sum
        assert_eq!(
            to_hex(&empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // The empty leaf is not the empty tree: SHA-256(0x00).
        assert_eq!(
            to_hex(&leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        assert_eq!(
            to_hex(&leaf_hash(b"L123456")),
            "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
        );
        // Node of leaves 0 and 1 of the test tree is the root of size 2.
        let l = kat_leaves();
        assert_eq!(node_hash(&l[0], &l[1]), h(KAT_ROOTS[1]));
        // Domain separation: a node is not the leaf hash of its children's concatenation, and
        // order matters.
        assert_ne!(node_hash(&l[0], &l[1]), leaf_hash(&[l[0], l[1]].concat()));
        assert_ne!(node_hash(&l[0], &l[1]), node_hash(&l[1], &l[0]));
    }

    #[test]
    fn kat_roots() {
        let l = kat_leaves();
        assert_eq!(root_from_leaves(&[]), empty_root());
        let mut builder = MerkleBuilder::new();
        for (size, want) in (1..=8).zip(KAT_ROOTS) {
            builder.push(l[size - 1]);
            assert_eq!(to_hex(&root_from_leaves(&l[..size])), want, "size {size}");
            assert_eq!(to_hex(&builder.root()), want, "builder size {size}");
            assert_eq!(to_hex(&ref_mth(&l[..size])), want, "reference size {size}");
        }
    }

    #[test]
    fn kat_inclusion_proofs() {
        let l = kat_leaves();
        for (index, size, want) in KAT_INCLUSION {
            let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
            let tree = &l[..to_usize(size)];
            let root = h(KAT_ROOTS[to_usize(size) - 1]);
            assert_eq!(
                inclusion_proof(tree, index),
                Ok(want.clone()),
                "{index}/{size}"
            );
            let leaf = l[to_usize(index)];
            assert_eq!(verify_inclusion(index, size, &leaf, &want, &root), Ok(()));
            check_inclusion_tampering(&kat_fixture(), to_usize(size), index, &want, &exhaustive());
        }
    }

    #[test]
    fn kat_consistency_proofs() {
        let l = kat_leaves();
        for (old, new, want) in KAT_CONSISTENCY {
            let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
            let tree = &l[..to_usize(new)];
            let old_root = h(KAT_ROOTS[to_usize(old) - 1]);
            let new_root = h(KAT_ROOTS[to_usize(new) - 1]);
            assert_eq!(
                consistency_proof(tree, old),
                Ok(want.clone()),
                "{old}/{new}"
            );
            assert_eq!(
                verify_consistency(old, new, &old_root, &new_root, &want),
                Ok(())
            );
            let fx = kat_fixture();
            check_consistency_tampering(&fx, to_usize(new), to_usize(old), &want, &exhaustive());
        }
    }

    #[test]
    fn kat_proof_lengths() {
        // transparency-dev/merkle proof/proof_test.go lists node IDs; `rehash(begin, end, ..)`
        // folds the IDs in [begin, end) into one hash, so length = IDs - (end - begin) + 1.
        for (index, size, want) in [(0, 1, 0), (1, 3, 2), (0, 7, 3), (4, 7, 3), (6, 7, 2)] {
            assert_eq!(inclusion_proof_len(index, size), Ok(want), "{index}/{size}");
        }
        for (index, size, want) in [(10, 15, 4), (24, 31, 5), (81, 95, 6), (3, 6, 3)] {
            assert_eq!(inclusion_proof_len(index, size), Ok(want), "{index}/{size}");
        }
        for (old, new, want) in [
            (1, 2, 1),
            (1, 6, 3),
            (2, 8, 2),
            (3, 7, 4),
            (4, 7, 1),
            (5, 7, 4),
            (7, 8, 4),
            (3, 6, 4),
            (1, 7, 3),
            (10, 15, 4),
            (24, 31, 3),
            (81, 95, 7),
        ] {
            assert_eq!(consistency_proof_len(old, new), Ok(want), "{old}/{new}");
        }
        // The limits are reached and never exceeded.
        assert_eq!(
            inclusion_proof_len(0, u64::MAX),
            Ok(INCLUSION_PROOF_HASHES_MAX)
        );
        assert_eq!(
            consistency_proof_len(3, (1 << 63) + 1),
            Ok(CONSISTENCY_PROOF_HASHES_MAX)
        );
        // The last leaf of the largest tree: one sibling per set bit of u64::MAX - 1.
        assert_eq!(inclusion_proof_len(u64::MAX - 1, u64::MAX), Ok(63));
    }

    // ---------------------------------------------------------------------------------------
    // Tampering checks shared by the exhaustive and the property tests.
    // ---------------------------------------------------------------------------------------

    /// How hard the tampering checks try.
    struct Effort {
        /// Bits flipped, one at a time, in every hash of the proof, the leaf and the roots.
        bits: Vec<usize>,
        /// Try every other index and every other size (pair of sizes) up to the fixture's
        /// length, not just a sample around the true ones.
        all_claims: bool,
    }

    fn exhaustive() -> Effort {
        Effort {
            bits: all_bits(),
            all_claims: true,
        }
    }

    /// Tree sizes an inclusion claim about a tree of `n` leaves is moved to; `len` is the
    /// fixture's length.
    fn inclusion_claim_sizes(n: usize, len: usize, all_claims: bool) -> Vec<usize> {
        if all_claims {
            (0..=len).collect()
        } else {
            vec![0, n - 1, n + 1, n + 2, n / 2, len]
        }
    }

    /// (old, new) sizes a consistency claim about (`old`, `n`) is moved to.
    fn consistency_claim_pairs(
        old: usize,
        n: usize,
        len: usize,
        all_claims: bool,
    ) -> Vec<(usize, usize)> {
        if all_claims {
            return (0..=len)
                .flat_map(|s| (0..=s).map(move |o| (o, s)))
                .collect();
        }
        let olds = [0, 1, old.saturating_sub(1), old + 1, old / 2, old ^ 2, n];
        let news = [n - 1, n, n + 1, n + 2, n / 2, len];
        olds.iter()
            .flat_map(|&o| news.iter().map(move |&s| (o, s.min(len))))
            .filter(|&(o, s)| o <= s)
            .collect()
    }

    /// The tree is the first `n` leaves of `fx`, which holds at least two more so that claims
    /// about larger trees have real roots. Every corruption of the valid claim (`index`, `n`,
    /// leaf, `proof`, root) must be rejected.
    fn check_inclusion_tampering(
        fx: &Fixture,
        n: usize,
        index: u64,
        proof: &[Hash],
        effort: &Effort,
    ) {
        let all = &fx.all;
        assert!(all.len() >= n + 2);
        let size = n as u64;
        let leaf = all[to_usize(index)];
        let root = fx.root(n);
        let rejects = |i: u64, s: u64, lf: &Hash, p: &[Hash], r: &Hash, what: &str| {
            assert!(
                verify_inclusion(i, s, lf, p, r).is_err(),
                "accepted {what}: index {index}, size {n}"
            );
        };
        assert_eq!(verify_inclusion(index, size, &leaf, proof, &root), Ok(()));
        for &bit in &effort.bits {
            for pos in 0..proof.len() {
                let mut p = proof.to_vec();
                p[pos] = flip(&p[pos], bit);
                rejects(index, size, &leaf, &p, &root, "flipped proof bit");
            }
            rejects(index, size, &flip(&leaf, bit), proof, &root, "flipped leaf");
            rejects(index, size, &leaf, proof, &flip(&root, bit), "flipped root");
        }
        for pos in 0..proof.len() {
            let mut p = proof.to_vec();
            p.remove(pos);
            rejects(index, size, &leaf, &p, &root, "dropped hash");
        }
        for pos in 0..=proof.len() {
            for extra in [leaf_hash(b"extra"), root, leaf, empty_root()] {
                let mut p = proof.to_vec();
                p.insert(pos, extra);
                rejects(index, size, &leaf, &p, &root, "added hash");
            }
        }
        rejects(index, size, &leaf, proof, &empty_root(), "empty root");
        rejects(
            index,
            size,
            &leaf,
            proof,
            &leaf_hash(b"other"),
            "other root",
        );
        rejects(
            index,
            size,
            &leaf,
            proof,
            &fx.root(n - 1),
            "root of size n - 1",
        );
        rejects(
            index,
            size,
            &leaf,
            proof,
            &fx.root(n + 1),
            "root of size n + 1",
        );
        // Another index in the same tree: the left/right turns of the path identify the leaf,
        // so no other index can reproduce the root.
        let indices: Vec<u64> = if effort.all_claims {
            (0..size + 2).collect()
        } else {
            let i = index;
            vec![
                0,
                i.wrapping_sub(1),
                i + 1,
                i ^ 1,
                i ^ 2,
                size - 1,
                size,
                u64::MAX,
            ]
        };
        for other in indices {
            if other != index {
                rejects(other, size, &leaf, proof, &root, "other index");
                if let Some(other_leaf) = all.get(to_usize(other.min(size + 1))) {
                    rejects(
                        other,
                        size,
                        other_leaf,
                        proof,
                        &root,
                        "other index and leaf",
                    );
                }
            }
        }
        // Another size, claimed against that size's real root. The same hashes can legitimately
        // prove a leaf in a tree of another shape (e.g. (0, 3) and (0, 4) take the same turns),
        // so acceptance is only allowed where the proof *is* that tree's proof.
        let sizes = inclusion_claim_sizes(n, all.len(), effort.all_claims);
        for other in sizes {
            if other == n {
                continue;
            }
            let claim = verify_inclusion(index, other as u64, &leaf, proof, &fx.root(other));
            if claim.is_ok() {
                assert_eq!(
                    inclusion_proof(&all[..other], index).as_deref(),
                    Ok(proof),
                    "accepted another size: index {index}, size {n} as size {other}"
                );
            }
            // With the true root kept, only a size whose path has the same shape can pass.
            if verify_inclusion(index, other as u64, &leaf, proof, &root).is_ok() {
                assert_eq!(inclusion_proof_len(index, other as u64), Ok(proof.len()));
            }
        }
    }

    /// The new tree is the first `n` leaves of `fx`, which holds at least two more. Every
    /// corruption of the valid claim (`old`, `n`, roots, `proof`) must be rejected.
    fn check_consistency_tampering(
        fx: &Fixture,
        n: usize,
        old: usize,
        proof: &[Hash],
        effort: &Effort,
    ) {
        let all = &fx.all;
        assert!(all.len() >= n + 2);
        let (old_size, new_size) = (old as u64, n as u64);
        let old_root = fx.root(old);
        let new_root = fx.root(n);
        let rejects = |o: u64, s: u64, ro: &Hash, rn: &Hash, p: &[Hash], what: &str| {
            assert!(
                verify_consistency(o, s, ro, rn, p).is_err(),
                "accepted {what}: old {old}, new {n}"
            );
        };
        assert_eq!(
            verify_consistency(old_size, new_size, &old_root, &new_root, proof),
            Ok(())
        );
        for &bit in &effort.bits {
            for pos in 0..proof.len() {
                let mut p = proof.to_vec();
                p[pos] = flip(&p[pos], bit);
                rejects(
                    old_size,
                    new_size,
                    &old_root,
                    &new_root,
                    &p,
                    "flipped proof bit",
                );
            }
            let flipped_old = flip(&old_root, bit);
            rejects(
                old_size,
                new_size,
                &flipped_old,
                &new_root,
                proof,
                "flipped old root",
            );
            if old > 0 {
                // From size 0 nothing is claimed about the new root (module documentation).
                let flipped_new = flip(&new_root, bit);
                rejects(
                    old_size,
                    new_size,
                    &old_root,
                    &flipped_new,
                    proof,
                    "flipped new root",
                );
            }
        }
        if old > 0 && old_root != new_root {
            rejects(
                old_size,
                new_size,
                &new_root,
                &old_root,
                proof,
                "swapped roots",
            );
        }
        if !proof.is_empty() {
            rejects(old_size, new_size, &old_root, &new_root, &[], "empty proof");
        }
        for pos in 0..proof.len() {
            let mut p = proof.to_vec();
            p.remove(pos);
            rejects(old_size, new_size, &old_root, &new_root, &p, "dropped hash");
        }
        for pos in 0..=proof.len() {
            for extra in [leaf_hash(b"extra"), old_root, new_root, empty_root()] {
                let mut p = proof.to_vec();
                p.insert(pos, extra);
                rejects(old_size, new_size, &old_root, &new_root, &p, "added hash");
            }
        }
        // Other pairs of sizes, each claimed against its real roots: acceptance is only allowed
        // where the proof is exactly that pair's proof.
        let pairs = consistency_claim_pairs(old, n, all.len(), effort.all_claims);
        for (o, s) in pairs {
            if (o, s) == (old, n) {
                continue;
            }
            let (ro, rs) = (&fx.root(o), &fx.root(s));
            if verify_consistency(o as u64, s as u64, ro, rs, proof).is_ok() {
                assert_eq!(
                    consistency_proof(&all[..s], o as u64).as_deref(),
                    Ok(proof),
                    "old {old}, new {n} accepted as old {o}, new {s}"
                );
            }
            // With the true roots kept, a non-trivial proof fixes the shape: only sizes whose
            // proofs have the same shape can pass.
            if !proof.is_empty()
                && verify_consistency(o as u64, s as u64, &old_root, &new_root, proof).is_ok()
            {
                assert_eq!(consistency_proof_len(o as u64, s as u64), Ok(proof.len()));
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Differential and exhaustive tests.
    // ---------------------------------------------------------------------------------------

    /// Sizes compared with the naive reference for every index and old size.
    const DIFFERENTIAL_SIZE_MAX: usize = 70;
    /// Sizes tampered exhaustively: every bit of every hash, every other index, every other
    /// size or pair of sizes. The limits assume the workspace's `[profile.test] opt-level = 2`
    /// (the whole module's tests take about a second); unoptimized SHA-256 is ~60 times slower.
    const EXHAUSTIVE_SIZE_MAX: usize = 16;
    /// Sizes above that whose every proof is tampered with sampled bits and claims.
    const SAMPLED_SIZE_MAX: usize = DIFFERENTIAL_SIZE_MAX;

    #[test]
    fn differential_against_reference() {
        let all = leaves(DIFFERENTIAL_SIZE_MAX, 7);
        let mut builder = MerkleBuilder::new();
        assert!(builder.is_empty());
        assert_eq!(builder.root(), ref_mth(&[]));
        for n in 1..=DIFFERENTIAL_SIZE_MAX {
            let tree = &all[..n];
            builder.push(tree[n - 1]);
            let root = ref_mth(tree);
            assert_eq!(root_from_leaves(tree), root, "root of size {n}");
            assert_eq!(builder.root(), root, "builder root of size {n}");
            assert_eq!(builder.len(), n as u64);
            assert!(!builder.is_empty());
            for m in 0..n {
                let proof = inclusion_proof(tree, m as u64).expect("index is in range");
                assert_eq!(proof, ref_path(m, tree), "PATH({m}, D[{n}])");
                assert_eq!(inclusion_proof_len(m as u64, n as u64), Ok(proof.len()));
                assert_eq!(
                    verify_inclusion(m as u64, n as u64, &tree[m], &proof, &root),
                    Ok(())
                );
            }
            for m in 1..=n {
                let proof = consistency_proof(tree, m as u64).expect("old size is in range");
                assert_eq!(proof, ref_proof(m, tree), "PROOF({m}, D[{n}])");
                assert_eq!(consistency_proof_len(m as u64, n as u64), Ok(proof.len()));
                let old_root = ref_mth(&tree[..m]);
                assert_eq!(
                    verify_consistency(m as u64, n as u64, &old_root, &root, &proof),
                    Ok(())
                );
            }
        }
    }

    #[test]
    fn tampering_rejected_exhaustively_for_small_trees() {
        let fx = Fixture::new(leaves(EXHAUSTIVE_SIZE_MAX + 2, 11));
        let effort = exhaustive();
        for n in 1..=EXHAUSTIVE_SIZE_MAX {
            let tree = &fx.all[..n];
            for index in 0..n as u64 {
                let proof = inclusion_proof(tree, index).expect("index is in range");
                check_inclusion_tampering(&fx, n, index, &proof, &effort);
            }
            for old in 0..=n {
                let proof = consistency_proof(tree, old as u64).expect("old size is in range");
                check_consistency_tampering(&fx, n, old, &proof, &effort);
            }
        }
    }

    #[test]
    fn tampering_rejected_with_sampled_bits_for_medium_trees() {
        let fx = Fixture::new(leaves(SAMPLED_SIZE_MAX + 2, 13));
        let effort = Effort {
            bits: SAMPLE_BITS.to_vec(),
            all_claims: false,
        };
        for n in EXHAUSTIVE_SIZE_MAX + 1..=SAMPLED_SIZE_MAX {
            let tree = &fx.all[..n];
            for index in 0..n as u64 {
                let proof = inclusion_proof(tree, index).expect("index is in range");
                check_inclusion_tampering(&fx, n, index, &proof, &effort);
            }
            for old in 0..=n {
                let proof = consistency_proof(tree, old as u64).expect("old size is in range");
                check_consistency_tampering(&fx, n, old, &proof, &effort);
            }
        }
    }

    /// The public verifiers check the length before running the RFC loops; these must reject a
    /// wrong length on their own too, or a bug in the length formula would go unseen.
    #[test]
    fn rfc_loops_reject_wrong_lengths_without_the_length_check() {
        let all = leaves(40, 17);
        for n in 1..=all.len() {
            let tree = &all[..n];
            let root = root_from_leaves(tree);
            for index in 0..n as u64 {
                let proof = inclusion_proof(tree, index).expect("index is in range");
                let leaf = &tree[to_usize(index)];
                assert_eq!(
                    rfc_inclusion_root(index, n as u64, leaf, &proof),
                    Some(root)
                );
                let mut longer = proof.clone();
                longer.push(root);
                assert_eq!(rfc_inclusion_root(index, n as u64, leaf, &longer), None);
                if let Some((_, shorter)) = proof.split_last() {
                    assert_eq!(rfc_inclusion_root(index, n as u64, leaf, shorter), None);
                }
            }
            for old in 1..n as u64 {
                let proof = consistency_proof(tree, old).expect("old size is in range");
                let old_root = root_from_leaves(&tree[..to_usize(old)]);
                assert_eq!(
                    rfc_consistency_roots(old, n as u64, &old_root, &proof),
                    Some((old_root, root))
                );
                let mut longer = proof.clone();
                longer.push(root);
                assert_eq!(
                    rfc_consistency_roots(old, n as u64, &old_root, &longer),
                    None
                );
                let shorter = &proof[..proof.len() - 1];
                assert_eq!(
                    rfc_consistency_roots(old, n as u64, &old_root, shorter),
                    None
                );
            }
        }
    }

    #[test]
    fn edge_cases() {
        let l = kat_leaves();
        let some = leaf_hash(b"some");
        // Empty tree: no leaf to prove.
        for index in [0, 1, u64::MAX] {
            assert_eq!(
                inclusion_proof(&[], index),
                Err(ProofError::IndexOutOfRange {
                    index,
                    tree_size: 0
                })
            );
            assert_eq!(
                verify_inclusion(index, 0, &some, &[], &empty_root()),
                Err(ProofError::IndexOutOfRange {
                    index,
                    tree_size: 0
                })
            );
        }
        assert_eq!(
            inclusion_proof(&l, 8),
            Err(ProofError::IndexOutOfRange {
                index: 8,
                tree_size: 8
            })
        );
        // One leaf: the empty proof, root = leaf.
        assert_eq!(inclusion_proof(&l[..1], 0), Ok(vec![]));
        assert_eq!(verify_inclusion(0, 1, &l[0], &[], &l[0]), Ok(()));
        assert_eq!(
            verify_inclusion(0, 1, &l[0], &[], &l[1]),
            Err(ProofError::RootMismatch)
        );
        assert_eq!(
            verify_inclusion(0, 1, &l[0], &[l[0]], &l[0]),
            Err(ProofError::WrongProofLength {
                expected: 0,
                got: 1
            })
        );
        // Old tree larger than the new one.
        assert_eq!(
            consistency_proof(&l[..3], 4),
            Err(ProofError::OldSizeOutOfRange {
                old_size: 4,
                new_size: 3
            })
        );
        assert_eq!(
            verify_consistency(2, 1, &l[0], &l[0], &[]),
            Err(ProofError::OldSizeOutOfRange {
                old_size: 2,
                new_size: 1
            })
        );
        // Equal sizes: empty proof, roots must be equal.
        let r3 = root_from_leaves(&l[..3]);
        assert_eq!(consistency_proof(&l[..3], 3), Ok(vec![]));
        assert_eq!(verify_consistency(3, 3, &r3, &r3, &[]), Ok(()));
        assert_eq!(
            verify_consistency(3, 3, &r3, &some, &[]),
            Err(ProofError::RootMismatch)
        );
        assert_eq!(
            verify_consistency(3, 3, &r3, &r3, &[r3]),
            Err(ProofError::WrongProofLength {
                expected: 0,
                got: 1
            })
        );
        // Old size 0: empty proof; the old root must be the empty root; nothing is said about
        // the new root.
        assert_eq!(consistency_proof(&l, 0), Ok(vec![]));
        assert_eq!(consistency_proof(&[], 0), Ok(vec![]));
        let e = empty_root();
        assert_eq!(verify_consistency(0, 8, &e, &some, &[]), Ok(()));
        assert_eq!(verify_consistency(0, 0, &e, &e, &[]), Ok(()));
        assert_eq!(
            verify_consistency(0, 8, &some, &some, &[]),
            Err(ProofError::OldRootMismatch)
        );
        assert_eq!(
            verify_consistency(0, 0, &some, &some, &[]),
            Err(ProofError::OldRootMismatch)
        );
        assert_eq!(
            verify_consistency(0, 0, &e, &some, &[]),
            Err(ProofError::RootMismatch)
        );
        assert_eq!(
            verify_consistency(0, 8, &e, &some, &[e]),
            Err(ProofError::WrongProofLength {
                expected: 0,
                got: 1
            })
        );
        // A non-trivial proof cannot be empty (RFC 9162 §2.1.4.2 step 1).
        let r8 = root_from_leaves(&l);
        assert_eq!(
            verify_consistency(4, 8, &root_from_leaves(&l[..4]), &r8, &[]),
            Err(ProofError::WrongProofLength {
                expected: 1,
                got: 0
            })
        );
        // Which root is wrong is reported.
        let proof = consistency_proof(&l, 5).expect("old size is in range");
        let r5 = root_from_leaves(&l[..5]);
        assert_eq!(
            verify_consistency(5, 8, &some, &r8, &proof),
            Err(ProofError::OldRootMismatch)
        );
        assert_eq!(
            verify_consistency(5, 8, &r5, &some, &proof),
            Err(ProofError::NewRootMismatch)
        );
        // Huge sizes are handled without overflow.
        assert!(verify_inclusion(u64::MAX - 1, u64::MAX, &some, &[some; 64], &some).is_err());
        assert!(verify_consistency(3, u64::MAX, &some, &some, &[some; 65]).is_err());
        assert!(verify_consistency(u64::MAX - 1, u64::MAX, &some, &some, &[some; 2]).is_err());
    }

    #[test]
    fn error_messages_name_the_numbers() {
        let e = ProofError::IndexOutOfRange {
            index: 9,
            tree_size: 8,
        };
        assert_eq!(
            e.to_string(),
            "leaf index 9 is out of range for a tree of size 8"
        );
        let e = ProofError::WrongProofLength {
            expected: 3,
            got: 4,
        };
        assert_eq!(
            e.to_string(),
            "proof holds 4 hashes, but the tree sizes call for 3"
        );
    }

    #[test]
    fn builder_never_reallocates() {
        let mut builder = MerkleBuilder::default();
        let capacity = builder.stack.capacity();
        assert!(capacity >= 64);
        for i in 0..5000u64 {
            builder.push(leaf_hash(&i.to_le_bytes()));
            assert_eq!(builder.stack.len(), builder.len().count_ones() as usize);
        }
        assert_eq!(builder.stack.capacity(), capacity);
        assert_eq!(builder.root(), root_from_leaves(&leaves_from_counter(5000)));
        let clone = builder.clone();
        assert_eq!(clone.root(), builder.root());
    }

    fn leaves_from_counter(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_le_bytes())).collect()
    }

    #[test]
    fn hex_round_trip_and_rejects() {
        let hash = h(KAT_ROOTS[7]);
        assert_eq!(to_hex(&hash), KAT_ROOTS[7]);
        assert_eq!(from_hex(&to_hex(&hash)), Some(hash));
        assert_eq!(to_hex(&[0xab; HASH_LEN]), "ab".repeat(HASH_LEN));
        assert_eq!(from_hex(""), None);
        assert_eq!(from_hex(&KAT_ROOTS[7][..62]), None);
        assert_eq!(from_hex(&format!("{}00", KAT_ROOTS[7])), None);
        assert_eq!(from_hex(&KAT_ROOTS[7].to_uppercase()), None);
        assert_eq!(from_hex(&format!("g{}", &KAT_ROOTS[7][1..])), None);
        assert_eq!(from_hex(&format!("é{}", &KAT_ROOTS[7][2..])), None);
    }

    // ---------------------------------------------------------------------------------------
    // Property tests on larger trees. A failure prints the minimal input; PROPTEST_RNG_SEED
    // fixes the generator's seed to reproduce a run.
    // ---------------------------------------------------------------------------------------

    /// Largest tree the property tests build.
    const PROPTEST_SIZE_MAX: usize = 5000;

    /// Every bit flipped; claims moved to a sample of other indices and sizes.
    fn proptest_effort() -> Effort {
        Effort {
            bits: all_bits(),
            all_claims: false,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn inclusion_matches_reference_and_resists_tampering(
            (n, index) in (1..=PROPTEST_SIZE_MAX).prop_flat_map(|n| (Just(n), 0..n)),
            salt in any::<u64>(),
        ) {
            let len = n + 2;
            let sizes = inclusion_claim_sizes(n, len, false);
            let fx = Fixture::with_roots_at(leaves(len, salt), |s| {
                s + 1 >= n && s <= n + 1 || sizes.contains(&s)
            });
            let tree = &fx.all[..n];
            prop_assert_eq!(fx.root(n), ref_mth(tree));
            prop_assert_eq!(root_from_leaves(tree), fx.root(n));
            let proof = inclusion_proof(tree, index as u64).expect("index is in range");
            prop_assert_eq!(&proof, &ref_path(index, tree));
            check_inclusion_tampering(&fx, n, index as u64, &proof, &proptest_effort());
        }

        #[test]
        fn consistency_matches_reference_and_resists_tampering(
            (n, old) in (2..=PROPTEST_SIZE_MAX).prop_flat_map(|n| (Just(n), 1..n)),
            salt in any::<u64>(),
        ) {
            let len = n + 2;
            let pairs = consistency_claim_pairs(old, n, len, false);
            let fx = Fixture::with_roots_at(leaves(len, salt), |s| {
                s == old || s == n || pairs.iter().any(|&(o, t)| o == s || t == s)
            });
            let tree = &fx.all[..n];
            let proof = consistency_proof(tree, old as u64).expect("old size is in range");
            prop_assert_eq!(&proof, &ref_proof(old, tree));
            check_consistency_tampering(&fx, n, old, &proof, &proptest_effort());
        }
    }
}
