//! BEP 52 merkle trees: each file of a v2 torrent is hashed as a binary SHA-256 tree over 16 KiB
//! blocks.
//!
//! A file of `n` blocks has a tree `n.next_power_of_two()` leaves wide. A leaf is the SHA-256 of
//! its block (the last block of a file hashed at its real length); leaves past the end of the
//! file are 32 zero bytes, so a subtree made only of them has a fixed hash, [`pad_hash`] of its
//! height. The root of a file's tree is its `pieces root`. The *piece layer* is the layer whose
//! hashes each cover one piece; a `.torrent` carries it (`piece layers`) for every file larger
//! than one piece, and peers exchange parts of it with the hash messages.
//!
//! ```
//! use cratetorrent_metainfo::merkle::{self, BLOCK_LEN};
//!
//! // A 40 KiB file with 32 KiB pieces: three blocks, two pieces.
//! let file = vec![7u8; 40 * 1024];
//! let leaves: Vec<_> = file.chunks(BLOCK_LEN).map(merkle::block_hash).collect();
//! let root = merkle::root(&leaves, 4);
//!
//! // The piece layer: each piece's subtree root, the last piece padded with zero leaves.
//! let layer = [merkle::root(&leaves[..2], 2), merkle::root(&leaves[2..], 2)];
//! assert_eq!(merkle::root_of_layer(&layer, 32 * 1024), Some(root));
//! ```

use sha2::{Digest, Sha256};

/// The size of a merkle leaf's block.
pub const BLOCK_LEN: usize = 16 * 1024;

/// A SHA-256 digest: a leaf, a node, or a root.
pub type Hash = [u8; 32];

/// The hash of a leaf block.
pub fn block_hash(block: &[u8]) -> Hash {
    Sha256::digest(block).into()
}

/// The hash of an inner node from its two children.
pub fn parent(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The hash of a subtree `2^height` leaves wide that lies wholly past the end of a file: zeros
/// at height 0, each level above the parent of two of the level below.
pub fn pad_hash(height: u32) -> Hash {
    let mut hash = [0; 32];
    for _ in 0..height {
        hash = parent(&hash, &hash);
    }
    hash
}

/// The root of a tree whose leaves are `leaves` followed by zero leaves up to `width`, which is
/// rounded up to a power of two no smaller than `leaves.len()`. Linear in the width's
/// logarithm plus the leaves.
pub fn root(leaves: &[Hash], width: usize) -> Hash {
    root_above(leaves, width, 0)
}

/// The root of a file's tree from its piece layer, each hash covering `piece_length` bytes
/// (a power of two of at least [`BLOCK_LEN`]). `None` when `piece_length` is not such a power.
pub fn root_of_layer(layer: &[Hash], piece_length: u32) -> Option<Hash> {
    let height = piece_height(piece_length)?;
    Some(root_above(layer, layer.len(), height))
}

/// How many levels a piece's subtree has above its leaves: `log2(piece_length / 16 KiB)`.
pub fn piece_height(piece_length: u32) -> Option<u32> {
    let blocks = usize::try_from(piece_length).ok()? / BLOCK_LEN;
    (piece_length.is_power_of_two() && blocks > 0).then(|| blocks.trailing_zeros())
}

/// A file's merkle tree from one layer up to its root, padded as BEP 52 pads it: what answers
/// `hash request`s for that layer and above.
///
/// ```
/// use cratetorrent_metainfo::merkle::{self, Subtree};
///
/// // Five 16 KiB blocks: a tree eight leaves wide.
/// let leaves: Vec<_> = (0..5u8).map(|i| merkle::block_hash(&[i; 10])).collect();
/// let tree = Subtree::new(&leaves, 0, 8);
/// assert_eq!(tree.root(), merkle::root(&leaves, 8));
/// // Leaves 2 and 3, then the two uncles proving them up to the root.
/// let reply = tree.hashes(0, 2, 2, 2).unwrap();
/// assert_eq!(reply.len(), 4);
/// assert!(merkle::verify_hashes(&tree.root(), 8, 0, 2, 2, 2, &reply));
/// ```
#[derive(Debug, Clone)]
pub struct Subtree {
    /// The height of `layers[0]` above the leaves.
    base: u32,
    /// Each layer padded to its full width, from `base` up to the root.
    layers: Vec<Vec<Hash>>,
}

impl Subtree {
    /// The tree above `nodes`, the hashes at `base` levels above the leaves of a file whose
    /// tree is `leaves_width` leaves wide (its blocks rounded up to a power of two).
    pub fn new(nodes: &[Hash], base: u32, leaves_width: usize) -> Self {
        let width = (leaves_width.max(1).next_power_of_two() >> base).max(1);
        let mut level: Vec<Hash> = nodes.iter().take(width).copied().collect();
        level.resize(width, pad_hash(base));
        let mut layers = vec![level];
        while let Some(below) = layers.last().filter(|l| l.len() > 1) {
            let above = below
                .chunks(2)
                .map(|pair| parent(&pair[0], &pair[1]))
                .collect();
            layers.push(above);
        }
        Self { base, layers }
    }

    /// The file's root.
    pub fn root(&self) -> Hash {
        self.layers
            .last()
            .and_then(|l| l.first())
            .copied()
            .unwrap_or(pad_hash(self.base))
    }

    /// The reply to a hash request, as libtorrent gives it: `count` hashes of layer `base`
    /// from `index`, then the uncles proving them, bottom up: one at each height from the
    /// run's own subtree root (`base + log2(count)`) to `base + proof_layers`. `None` for a
    /// request outside the tree, below the layer kept, or not a BEP 52 run (`count` a power of
    /// two of at least 2, `index` a multiple of it).
    pub fn hashes(
        &self,
        base: u32,
        index: u32,
        count: u32,
        proof_layers: u32,
    ) -> Option<Vec<Hash>> {
        if count < 2 || !count.is_power_of_two() || !index.is_multiple_of(count) {
            return None;
        }
        let relative = base.checked_sub(self.base)? as usize;
        let layer = self.layers.get(relative)?;
        let (index, count) = (index as usize, count as usize);
        let mut out = layer.get(index..index.checked_add(count)?)?.to_vec();
        let own = count.trailing_zeros() as usize;
        let top = relative.checked_add(usize::try_from(proof_layers).ok()?)?;
        // The root has no sibling: the proof ends below it.
        if top >= self.layers.len() - 1 && top >= relative + own {
            return None;
        }
        for height in relative + own..=top {
            let at = index >> (height - relative);
            out.push(*self.layers.get(height)?.get(at ^ 1)?);
        }
        Some(out)
    }
}

/// Checks a `hashes` reply against the file's root: the `count` hashes of layer `base` from
/// `index`, then the uncles from the run's subtree up to the root (`proof_layers` reaching
/// it: `log2(leaves_width) - 1 - base`), of a tree `leaves_width` leaves wide. On success the
/// first `count` hashes are proven.
pub fn verify_hashes(
    root: &Hash,
    leaves_width: usize,
    base: u32,
    index: u32,
    count: u32,
    proof_layers: u32,
    hashes: &[Hash],
) -> bool {
    let height = leaves_width.max(1).next_power_of_two().trailing_zeros();
    if count < 2 || !count.is_power_of_two() || !index.is_multiple_of(count) {
        return false;
    }
    let own = count.trailing_zeros();
    if base.checked_add(own).is_none_or(|top| top > height)
        || base.checked_add(proof_layers).map(|top| top + 1) != Some(height.max(base + own))
    {
        return false;
    }
    let uncles = height - base - own;
    if hashes.len() != count as usize + uncles as usize {
        return false;
    }
    let (run, uncles) = hashes.split_at(count as usize);
    let mut node = root_above(run, run.len(), base);
    let mut at = index >> own;
    for uncle in uncles {
        node = if at & 1 == 0 {
            parent(&node, uncle)
        } else {
            parent(uncle, &node)
        };
        at >>= 1;
    }
    node == *root && at == 0
}

/// The root of a tree over `nodes` at `height` (their own subtrees are `2^height` leaves wide),
/// padded to `width` nodes with subtrees of zero leaves.
fn root_above(nodes: &[Hash], width: usize, height: u32) -> Hash {
    let width = width.max(nodes.len()).max(1).next_power_of_two();
    let mut pad = pad_hash(height);
    if nodes.is_empty() {
        return pad_hash(height + width.trailing_zeros());
    }
    let mut level: Vec<Hash> = nodes.to_vec();
    let mut level_width = width;
    while level_width > 1 {
        let next_len = level.len().div_ceil(2);
        for i in 0..next_len {
            let left = level[2 * i];
            let right = level.get(2 * i + 1).copied().unwrap_or(pad);
            level[i] = parent(&left, &right);
        }
        level.truncate(next_len);
        pad = parent(&pad, &pad);
        level_width /= 2;
    }
    level[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_root(mut level: Vec<Hash>) -> Hash {
        while level.len() > 1 {
            level = level.chunks(2).map(|p| parent(&p[0], &p[1])).collect();
        }
        level[0]
    }

    #[test]
    fn padding_matches_explicit_zero_leaves() {
        let leaves: Vec<Hash> = (0..5u8).map(|i| block_hash(&[i; 100])).collect();
        let mut padded = leaves.clone();
        padded.resize(8, [0; 32]);
        assert_eq!(root(&leaves, 8), naive_root(padded.clone()));
        // A width below the leaf count is widened to hold them.
        assert_eq!(root(&leaves, 2), naive_root(padded));
        let mut wide = leaves.clone();
        wide.resize(32, [0; 32]);
        assert_eq!(root(&leaves, 32), naive_root(wide));
        assert_eq!(root(&[], 4), pad_hash(2));
        assert_eq!(root(&leaves[..1], 1), leaves[0]);
    }

    #[test]
    fn a_layer_hashes_to_the_same_root_as_its_leaves() {
        // 11 blocks, 64 KiB pieces (4 blocks): 3 pieces, the last one padded.
        let leaves: Vec<Hash> = (0..11u8).map(|i| block_hash(&[i; 16])).collect();
        let layer: Vec<Hash> = leaves.chunks(4).map(|piece| root(piece, 4)).collect();
        assert_eq!(root_of_layer(&layer, 64 * 1024), Some(root(&leaves, 16)));
        assert_eq!(root_of_layer(&layer, 48 * 1024), None);
        assert_eq!(root_of_layer(&layer, 8 * 1024), None);
    }

    #[test]
    fn replies_prove_every_run_against_the_root() {
        // A 11-block file with 64 KiB pieces: 16 leaves wide, a piece layer of 4 (3 real).
        let leaves: Vec<Hash> = (0..11u8).map(|i| block_hash(&[i; 33])).collect();
        let root = root(&leaves, 16);
        let layer: Vec<Hash> = leaves
            .chunks(4)
            .map(|piece| super::root(piece, 4))
            .collect();
        for (tree, base) in [
            (Subtree::new(&leaves, 0, 16), 0),
            (Subtree::new(&layer, 2, 16), 2),
        ] {
            assert_eq!(tree.root(), root);
            let width = 16u32 >> base;
            let mut count = 2;
            while count <= width {
                for index in (0..width).step_by(count as usize) {
                    let proof = 3 - base;
                    let reply = tree.hashes(base, index, count, proof).unwrap();
                    assert!(verify_hashes(&root, 16, base, index, count, proof, &reply));
                    let mut forged = reply.clone();
                    forged[0][0] ^= 1;
                    assert!(!verify_hashes(
                        &root, 16, base, index, count, proof, &forged
                    ));
                }
                count *= 2;
            }
            // Out of the tree, misaligned, one hash, a proof past the root.
            assert_eq!(tree.hashes(base, width, 2, 0), None);
            assert_eq!(tree.hashes(base, 1, 2, 0), None);
            assert_eq!(tree.hashes(base, 0, 1, 0), None);
            assert_eq!(tree.hashes(base, 0, 2, 4 - base), None);
        }
        assert_eq!(Subtree::new(&layer, 2, 16).hashes(0, 0, 2, 1), None);
    }

    #[test]
    fn known_digest() {
        // SHA-256 of "abc" (FIPS 180-2).
        assert_eq!(
            block_hash(b"abc")[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "block hashes are plain SHA-256"
        );
    }
}
