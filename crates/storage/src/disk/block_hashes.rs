//! A piece's block hashes as it is on disk, read back on request: the evidence for smart bans.
//! When a piece sent by several peers fails, the engine asks for the hashes of what each peer
//! sent before the piece is fetched again; when the piece later passes, it asks again and bans
//! the peer whose block differed. Failed pieces are rare and this costs one piece read each, so
//! it is a plain positioned read on the disk thread, past the seeding cache (which must never
//! hold data that failed its hash).

use std::os::unix::fs::FileExt;

use cratetorrent_metainfo::PieceIndex;
use cratetorrent_wire::BLOCK_SIZE;
use sha1::{Digest, Sha1};

use super::Disk;
use crate::{StorageError, StorageEvent};

impl Disk {
    pub(super) fn block_hashes(&mut self, piece: PieceIndex) {
        let result = self.read_back(piece).map(|data| {
            data.chunks(BLOCK_SIZE as usize)
                .map(|block| <[u8; 20]>::from(Sha1::digest(block)))
                .collect()
        });
        self.emit(StorageEvent::BlockHashes { piece, result });
    }

    fn read_back(&mut self, piece: PieceIndex) -> Result<Vec<u8>, StorageError> {
        let len = self
            .layout
            .metainfo()
            .piece_len(piece)
            .ok_or(StorageError::PieceMissing(piece))?;
        self.read_range(piece, 0, len)
    }

    /// `len` bytes of `piece` from `offset`, as they are on disk now (padding reads as zeros).
    pub(super) fn read_range(
        &mut self,
        piece: PieceIndex,
        offset: u32,
        len: u32,
    ) -> Result<Vec<u8>, StorageError> {
        let start = self.layout.offset(piece, offset);
        let slices: Vec<_> = self.layout.slices(start, u64::from(len)).collect();
        let mut data = vec![0u8; len as usize];
        let mut at = 0;
        for slice in slices {
            let part = &mut data[at..at + slice.len as usize];
            at += slice.len as usize;
            if self.layout.file(slice.file_index).padding {
                continue;
            }
            let path = &self.layout.file(slice.file_index).path;
            let file = self.files.get(&self.layout, slice.file_index, false)?;
            file.read_exact_at(part, slice.offset)
                .map_err(|error| StorageError::from_io(error, path.clone(), "read back"))?;
        }
        Ok(data)
    }
}
