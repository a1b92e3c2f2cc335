//! Reads for seeding: whole pieces into the byte-bounded cache, blocks served from it.

use cratetorrent_metainfo::PieceIndex;
use cratetorrent_wire::BlockInfo;

use super::{Deferred, Disk, OpMeta};
use crate::backend::{Op, OpKind};
use crate::read_cache::ReadPlan;
use crate::{StorageError, StorageEvent};

impl Disk {
    pub(super) fn read(&mut self, block: BlockInfo, token: u64) {
        if !self.have.get(block.piece) {
            self.emit(StorageEvent::BlockRead {
                token,
                block,
                result: Err(StorageError::PieceMissing(block.piece)),
            });
            return;
        }
        match self.read_cache.lookup(block, token) {
            ReadPlan::Hit(data) => self.emit(StorageEvent::BlockRead {
                token,
                block,
                result: Ok(data),
            }),
            ReadPlan::Waiting => {}
            ReadPlan::Fetch => self.fetch_piece(block.piece),
        }
    }

    pub(super) fn fetch_piece(&mut self, piece: PieceIndex) {
        let len = self.layout.metainfo().piece_len(piece).unwrap_or(0);
        let start = self.layout.offset(piece, 0);
        let slices: Vec<_> = self.layout.slices(start, u64::from(len)).collect();
        let chunks =
            self.read_cache
                .start_fetch(piece, len as usize, slices.iter().map(|s| s.len as usize));
        for (chunk, (slice, buf)) in slices.iter().zip(chunks).enumerate() {
            if self.layout.files[slice.file_index].padding {
                self.read_cache
                    .chunk_done(piece, chunk, zeroed(buf, slice.len as usize));
                continue;
            }
            let read = Deferred::Read {
                piece,
                chunk,
                file: slice.file_index,
                offset: slice.offset,
                buf,
                len: slice.len as usize,
            };
            self.start_or_defer(read);
        }
        self.serve(piece);
    }

    pub(super) fn read_done(
        &mut self,
        piece: PieceIndex,
        chunk: usize,
        op: Op,
        result: std::io::Result<usize>,
    ) {
        let OpKind::Read { buf, len } = op.kind else {
            return;
        };
        match result {
            Ok(read) if read >= len => self.read_cache.chunk_done(piece, chunk, buf),
            Ok(read) if read > 0 => {
                let id = self.next_id();
                self.ops.insert(id, OpMeta::Read { piece, chunk });
                self.backend.start(Op {
                    id,
                    file: op.file,
                    offset: op.offset + read as u64,
                    kind: OpKind::Read {
                        buf,
                        len: len - read,
                    },
                });
            }
            other => {
                let error = other
                    .err()
                    .unwrap_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
                let path = self
                    .layout
                    .metainfo()
                    .piece_slices(piece)
                    .nth(chunk)
                    .map(|s| self.layout.files[s.file_index].path.clone())
                    .unwrap_or_default();
                self.read_cache.chunk_failed(piece, chunk, buf);
                self.read_failed(piece, StorageError::from_io(error, path, "read"));
            }
        }
        self.serve(piece);
    }

    pub(super) fn read_failed(&mut self, piece: PieceIndex, error: StorageError) {
        for (token, block) in self.read_cache.fail(piece) {
            self.emit(StorageEvent::BlockRead {
                token,
                block,
                result: Err(error.clone()),
            });
        }
    }

    pub(super) fn serve(&mut self, piece: PieceIndex) {
        for (token, block, data) in self.read_cache.finish(piece) {
            self.emit(StorageEvent::BlockRead {
                token,
                block,
                result: Ok(data),
            });
        }
    }
}

fn zeroed(mut buf: bytes::BytesMut, len: usize) -> bytes::BytesMut {
    buf.resize(buf.len() + len, 0);
    buf
}
