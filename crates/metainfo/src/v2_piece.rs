//! How each piece of a v2 or hybrid torrent is checked against its file's merkle tree.

use crate::merkle::{BLOCK_LEN, Hash};
use crate::{Metainfo, PieceIndex};

/// What verifies one piece of a v2 or hybrid torrent (BEP 52): the root of the subtree over
/// its data's 16 KiB blocks, padded with zero leaves to `width`, must equal `expected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V2Piece {
    /// The file the piece's data belongs to (index in [`Metainfo::files`]).
    pub file_index: usize,
    /// The piece's index among its file's pieces.
    pub index_in_file: u32,
    /// Bytes of file data in the piece; the rest, if any, is padding.
    pub data_len: u32,
    /// The subtree's width in leaves: `piece_length / 16 KiB`, or for a file of one piece its
    /// blocks rounded up to a power of two (its whole tree is that narrow).
    pub width: u32,
    /// The hash to match: the file's piece-layer entry, or the file's root for a file of one
    /// piece. `None` while the layer is unknown (a magnet link, or a `.torrent` without it):
    /// peers supply it.
    pub expected: Option<Hash>,
}

impl Metainfo {
    /// How `piece` is verified against v2 hashes; `None` for v1-only torrents, out-of-range
    /// pieces, and pieces that hold only padding.
    ///
    /// ```
    /// use cratetorrent_metainfo::{MetaVersion, Metainfo, TorrentBuilder, merkle};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("f.bin");
    /// std::fs::write(&path, vec![5u8; 20_000])?;
    /// let bytes = TorrentBuilder::new(&path).meta_version(MetaVersion::V2).piece_length(16 * 1024).build()?;
    /// let torrent = Metainfo::from_bytes(&bytes)?;
    ///
    /// // The second piece: 3,616 bytes, one leaf of a two-piece file, checked against the layer.
    /// let piece = torrent.v2_piece(1).unwrap();
    /// assert_eq!((piece.index_in_file, piece.data_len, piece.width), (1, 3_616, 1));
    /// let leaf = merkle::block_hash(&vec![5u8; 3_616]);
    /// assert_eq!(Some(merkle::root(&[leaf], piece.width as usize)), piece.expected);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn v2_piece(&self, piece: PieceIndex) -> Option<V2Piece> {
        if !self.meta_version().has_v2() || piece >= self.piece_count() {
            return None;
        }
        let piece_length = u64::from(self.piece_length());
        let start = u64::from(piece) * piece_length;
        let files = self.files();
        // The first file that ends after `start`: empty files there are passed over.
        let file_index = files.partition_point(|f| f.offset() + f.length() <= start);
        let file = files.get(file_index).filter(|f| !f.is_padding())?;
        let root = file.pieces_root()?;
        let index_in_file = u32::try_from((start - file.offset()) / piece_length).ok()?;
        let data_len = (file.offset() + file.length() - start).min(piece_length);
        let data_len = u32::try_from(data_len).ok()?;
        let blocks = u64::from(data_len).div_ceil(BLOCK_LEN as u64);
        let (width, expected) = if file.length() <= piece_length {
            (blocks.next_power_of_two(), Some(*root))
        } else {
            let layer = self.piece_layer(file_index);
            let at = index_in_file as usize * 32;
            let entry = layer
                .and_then(|layer| layer.get(at..at + 32))
                .and_then(|hash| hash.try_into().ok());
            (piece_length / BLOCK_LEN as u64, entry)
        };
        Some(V2Piece {
            file_index,
            index_in_file,
            data_len,
            width: u32::try_from(width).ok()?,
            expected,
        })
    }
}
