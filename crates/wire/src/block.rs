//! Blocks: the 16 KiB units in which pieces are requested and sent.

use cratetorrent_metainfo::{Metainfo, PieceIndex};
use thiserror::Error;

/// The size of a block; every block but the last of a torrent has it.
pub const BLOCK_SIZE: u32 = 16 * 1024;

/// A block of a piece: what `request`, `cancel` and `reject-request` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockInfo {
    /// The piece.
    pub piece: PieceIndex,
    /// Byte offset inside the piece.
    pub offset: u32,
    /// Length in bytes.
    pub len: u32,
}

impl BlockInfo {
    /// The index of the block inside its piece (for blocks aligned to [`BLOCK_SIZE`]).
    pub const fn index_in_piece(&self) -> u32 {
        self.offset / BLOCK_SIZE
    }
}

/// Why a block does not fit a torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum BlockError {
    /// The piece index is past the last piece.
    #[error("piece {0} is out of range")]
    PieceOutOfRange(PieceIndex),
    /// A zero-length block.
    #[error("empty block")]
    Empty,
    /// A block longer than [`BLOCK_SIZE`].
    #[error("block of {0} bytes is larger than 16 KiB")]
    TooLarge(u32),
    /// The block runs past the end of its piece.
    #[error("block runs past the end of its piece")]
    PastPieceEnd,
}

/// The piece and block layout of a torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    piece_length: u32,
    total_length: u64,
    piece_count: u32,
}

impl Geometry {
    /// The layout of `total_length` bytes in pieces of `piece_length`; `None` if either is zero or
    /// the piece count does not fit in 32 bits.
    pub fn new(piece_length: u32, total_length: u64) -> Option<Self> {
        if piece_length == 0 || total_length == 0 {
            return None;
        }
        let piece_count = u32::try_from(total_length.div_ceil(u64::from(piece_length))).ok()?;
        Some(Self {
            piece_length,
            total_length,
            piece_count,
        })
    }

    /// No pieces at all: the layout of a torrent whose metadata is not known yet (every block
    /// is out of range).
    pub const fn empty() -> Self {
        Self {
            piece_length: 0,
            total_length: 0,
            piece_count: 0,
        }
    }

    /// The layout of a parsed torrent.
    pub fn of(metainfo: &Metainfo) -> Self {
        Self {
            piece_length: metainfo.piece_length(),
            total_length: metainfo.total_length(),
            piece_count: metainfo.piece_count(),
        }
    }

    /// The number of pieces.
    pub const fn piece_count(&self) -> u32 {
        self.piece_count
    }

    /// The length of `piece` (the last one may be shorter).
    pub fn piece_len(&self, piece: PieceIndex) -> Option<u32> {
        if piece >= self.piece_count {
            return None;
        }
        let start = u64::from(piece) * u64::from(self.piece_length);
        let rest = self.total_length - start;
        Some(u32::try_from(rest).map_or(self.piece_length, |rest| rest.min(self.piece_length)))
    }

    /// The number of blocks in `piece`.
    pub fn block_count(&self, piece: PieceIndex) -> Option<u32> {
        self.piece_len(piece).map(|len| len.div_ceil(BLOCK_SIZE))
    }

    /// Block `index` of `piece` (the last block of the last piece may be shorter).
    pub fn block(&self, piece: PieceIndex, index: u32) -> Option<BlockInfo> {
        let piece_len = self.piece_len(piece)?;
        let offset = index.checked_mul(BLOCK_SIZE).filter(|&o| o < piece_len)?;
        Some(BlockInfo {
            piece,
            offset,
            len: (piece_len - offset).min(BLOCK_SIZE),
        })
    }

    /// All blocks of `piece`, in order (none if it is out of range).
    pub fn blocks(&self, piece: PieceIndex) -> impl Iterator<Item = BlockInfo> + '_ {
        (0..self.block_count(piece).unwrap_or(0)).filter_map(move |index| self.block(piece, index))
    }

    /// Checks a block a peer requested or sent against this layout.
    pub fn validate(&self, block: &BlockInfo) -> Result<(), BlockError> {
        let piece_len = self
            .piece_len(block.piece)
            .ok_or(BlockError::PieceOutOfRange(block.piece))?;
        if block.len == 0 {
            return Err(BlockError::Empty);
        }
        if block.len > BLOCK_SIZE {
            return Err(BlockError::TooLarge(block.len));
        }
        match block.offset.checked_add(block.len) {
            Some(end) if end <= piece_len => Ok(()),
            _ => Err(BlockError::PastPieceEnd),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_piece_and_last_block() {
        // Two full 32 KiB pieces and a 1000-byte tail.
        let geometry = Geometry::new(32 * 1024, 2 * 32 * 1024 + 1000).unwrap();
        assert_eq!(geometry.piece_count(), 3);
        assert_eq!(geometry.piece_len(2), Some(1000));
        assert_eq!(geometry.block_count(0), Some(2));
        assert_eq!(geometry.block_count(2), Some(1));
        assert_eq!(
            geometry.block(2, 0),
            Some(BlockInfo {
                piece: 2,
                offset: 0,
                len: 1000
            })
        );
        assert_eq!(geometry.block(2, 1), None);
        assert_eq!(geometry.block(3, 0), None);
        let blocks: Vec<_> = geometry.blocks(1).collect();
        assert_eq!(
            blocks,
            [
                BlockInfo {
                    piece: 1,
                    offset: 0,
                    len: BLOCK_SIZE
                },
                BlockInfo {
                    piece: 1,
                    offset: BLOCK_SIZE,
                    len: BLOCK_SIZE
                }
            ]
        );
        assert_eq!(blocks[1].index_in_piece(), 1);
    }

    #[test]
    fn validation() {
        let geometry = Geometry::new(32 * 1024, 2 * 32 * 1024 + 1000).unwrap();
        let ok = BlockInfo {
            piece: 0,
            offset: BLOCK_SIZE,
            len: BLOCK_SIZE,
        };
        assert_eq!(geometry.validate(&ok), Ok(()));
        let cases = [
            (BlockInfo { piece: 3, ..ok }, BlockError::PieceOutOfRange(3)),
            (BlockInfo { len: 0, ..ok }, BlockError::Empty),
            (
                BlockInfo {
                    len: BLOCK_SIZE + 1,
                    ..ok
                },
                BlockError::TooLarge(BLOCK_SIZE + 1),
            ),
            (
                BlockInfo {
                    offset: BLOCK_SIZE + 1,
                    ..ok
                },
                BlockError::PastPieceEnd,
            ),
            (
                BlockInfo {
                    offset: u32::MAX,
                    ..ok
                },
                BlockError::PastPieceEnd,
            ),
            (
                BlockInfo {
                    piece: 2,
                    offset: 0,
                    len: 1001,
                },
                BlockError::PastPieceEnd,
            ),
        ];
        for (block, error) in cases {
            assert_eq!(geometry.validate(&block), Err(error), "{block:?}");
        }
        assert_eq!(Geometry::new(0, 1), None);
        assert_eq!(Geometry::new(1, 1 << 40), None);
    }
}
