//! Reads for seeding: windows of pieces into the memory-bounded cache, blocks served from it.

use cratetorrent_wire::BlockInfo;

use super::{Deferred, Disk, OpMeta};
use crate::backend::{Op, OpKind};
use crate::read_cache::{ReadPlan, WindowKey};
use crate::{StorageError, StorageEvent};

impl Disk {
    pub(super) fn read(&mut self, block: BlockInfo, token: u64) {
        if !self.read_now(block, token, false) {
            self.read_cache.defer(token, block);
        }
    }

    /// Serves or starts reading `block`; false if it must wait for memory (the caller queues
    /// it). `first_in_line`: it is the first of the reads already waiting.
    fn read_now(&mut self, block: BlockInfo, token: u64, first_in_line: bool) -> bool {
        if !self.have.get(block.piece) {
            self.emit(StorageEvent::BlockRead {
                token,
                block,
                result: Err(StorageError::PieceMissing(block.piece)),
            });
            return true;
        }
        if self.read_cache.straddles(block) {
            // Only a request not aligned to 16 KiB crosses a window: rare, 16 KiB at most, read
            // on its own (its buffer is bounded by the peer's send watermark like any block).
            let result = self
                .read_range(block.piece, block.offset, block.len)
                .map(bytes::Bytes::from);
            self.emit(StorageEvent::BlockRead {
                token,
                block,
                result,
            });
            return true;
        }
        let piece_len = self.layout.metainfo().piece_len(block.piece).unwrap_or(0);
        match self
            .read_cache
            .lookup(block, token, piece_len, first_in_line)
        {
            ReadPlan::Hit(data) => self.emit(StorageEvent::BlockRead {
                token,
                block,
                result: Ok(data),
            }),
            ReadPlan::Waiting => {}
            ReadPlan::Deferred => return false,
            ReadPlan::Fetch(window) => self.fetch_window(window, piece_len),
        }
        true
    }

    /// Once a window was freed: starts the reads that waited for memory, in order, while they
    /// fit.
    pub(super) fn retry_pending_reads(&mut self) {
        while let Some((token, block)) = self.read_cache.next_pending() {
            if !self.read_now(block, token, true) {
                self.read_cache.defer_first(token, block);
                return;
            }
            self.read_cache.keep_going();
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
            if self.layout.file(slice.file_index).padding {
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
                self.io.start(Op {
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
                    .map(|s| self.layout.file(s.file_index).path.clone())
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
