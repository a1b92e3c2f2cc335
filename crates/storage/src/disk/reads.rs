//! Reads for seeding: windows of pieces into the memory-bounded cache, blocks served from it.

use cratetorrent_wire::BlockInfo;

use super::{Deferred, Disk, OpMeta};
use crate::backend::{Op, OpKind};
use crate::read_cache::{ReadPlan, WindowKey};
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
        let piece_len = self.layout.metainfo().piece_len(block.piece).unwrap_or(0);
        match self.read_cache.lookup(block, token, piece_len) {
            ReadPlan::Hit(data) => self.emit(StorageEvent::BlockRead {
                token,
                block,
                result: Ok(data),
            }),
            ReadPlan::Waiting | ReadPlan::Deferred => {}
            ReadPlan::Fetch(window) => self.fetch_window(window, piece_len),
        }
    }

    /// Looks up again the reads that waited for memory, in order, while they fit.
    pub(super) fn retry_pending_reads(&mut self) {
        if !self.read_cache.has_pending() {
            return;
        }
        let mut pending = self.read_cache.take_pending();
        while let Some((token, block)) = pending.pop_front() {
            self.read(block, token);
            if self.read_cache.has_pending() {
                // Deferred again: the rest keeps its place behind it.
                for (token, block) in pending {
                    self.read_cache.defer(token, block);
                }
                return;
            }
        }
    }

    fn fetch_window(&mut self, window: WindowKey, piece_len: u32) {
        let (in_piece, len) = self.read_cache.range(window, piece_len);
        let start = self.layout.offset(window.piece, in_piece);
        let slices: Vec<_> = self.layout.slices(start, u64::from(len)).collect();
        let chunks = self
            .read_cache
            .start_fetch(window, slices.iter().map(|s| s.len as usize));
        for (chunk, (slice, buf)) in slices.iter().zip(chunks).enumerate() {
            if self.layout.files[slice.file_index].padding {
                self.read_cache
                    .chunk_done(window, chunk, zeroed(buf, slice.len as usize));
                continue;
            }
            let read = Deferred::Read {
                window,
                chunk,
                file: slice.file_index,
                offset: slice.offset,
                buf,
                len: slice.len as usize,
            };
            self.start_or_defer(read);
        }
        self.serve(window);
    }

    pub(super) fn read_done(
        &mut self,
        window: WindowKey,
        chunk: usize,
        op: Op,
        result: std::io::Result<usize>,
    ) {
        let OpKind::Read { buf, len } = op.kind else {
            return;
        };
        match result {
            Ok(read) if read >= len => self.read_cache.chunk_done(window, chunk, buf),
            Ok(read) if read > 0 => {
                let id = self.next_id();
                self.ops.insert(id, OpMeta::Read { window, chunk });
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
                let piece_len = self.layout.metainfo().piece_len(window.piece).unwrap_or(0);
                let (in_piece, window_len) = self.read_cache.range(window, piece_len);
                let start = self.layout.offset(window.piece, in_piece);
                let path = self
                    .layout
                    .slices(start, u64::from(window_len))
                    .nth(chunk)
                    .map(|s| self.layout.files[s.file_index].path.clone())
                    .unwrap_or_default();
                self.read_cache.chunk_failed(window, chunk, buf);
                self.read_failed(window, StorageError::from_io(error, path, "read"));
            }
        }
        self.serve(window);
    }

    pub(super) fn read_failed(&mut self, window: WindowKey, error: StorageError) {
        for (token, block) in self.read_cache.fail(window) {
            self.emit(StorageEvent::BlockRead {
                token,
                block,
                result: Err(error.clone()),
            });
        }
    }

    pub(super) fn serve(&mut self, window: WindowKey) {
        for (token, block, data) in self.read_cache.finish(window) {
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
