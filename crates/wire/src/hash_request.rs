//! BEP 52 hash messages: `hash request`, `hashes` and `hash reject` name a run of hashes in one
//! layer of a file's merkle tree, plus the uncle hashes that prove them up to its root.

use bytes::{BufMut, BytesMut};

/// The bytes a hash request takes on the wire (after the message id).
pub const HASH_REQUEST_LEN: usize = 32 + 4 * 4;

/// The largest run of hashes BEP 52 says a request should ask for.
pub const MAX_HASH_RUN: u32 = 512;

/// Which hashes of a file's merkle tree a `hash request`, `hashes` or `hash reject` message is
/// about.
///
/// ```
/// use cratetorrent_wire::HashRequest;
///
/// // The piece layer of a file with 32 KiB pieces (two layers above the 16 KiB leaves),
/// // hashes 0..512, with the uncles that prove them up to the root.
/// let request = HashRequest { pieces_root: [7; 32], base_layer: 1, index: 0, length: 512, proof_layers: 20 };
/// assert!(request.is_well_formed());
/// assert!(!HashRequest { index: 3, ..request }.is_well_formed());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashRequest {
    /// The root of the file's tree (its `pieces root`).
    pub pieces_root: [u8; 32],
    /// The layer the hashes are in: 0 is the leaves, one per 16 KiB block.
    pub base_layer: u32,
    /// The index of the first hash in that layer.
    pub index: u32,
    /// How many hashes.
    pub length: u32,
    /// How many layers of uncle hashes above the run to add, to prove it against the root.
    pub proof_layers: u32,
}

impl HashRequest {
    /// Whether the request has the shape BEP 52 requires: a run of at least two hashes whose
    /// length is a power of two, starting at a multiple of it. Whether the file has such
    /// hashes is for the torrent to say.
    pub fn is_well_formed(&self) -> bool {
        self.length >= 2 && self.length.is_power_of_two() && self.index.is_multiple_of(self.length)
    }

    pub(crate) fn decode(body: &[u8; HASH_REQUEST_LEN]) -> Self {
        let (root, rest) = body.split_at(32);
        let field =
            |at: usize| u32::from_be_bytes([rest[at], rest[at + 1], rest[at + 2], rest[at + 3]]);
        let mut pieces_root = [0; 32];
        pieces_root.copy_from_slice(root);
        Self {
            pieces_root,
            base_layer: field(0),
            index: field(4),
            length: field(8),
            proof_layers: field(12),
        }
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) {
        buf.put_slice(&self.pieces_root);
        buf.put_u32(self.base_layer);
        buf.put_u32(self.index);
        buf.put_u32(self.length);
        buf.put_u32(self.proof_layers);
    }
}
