//! One torrent's disk state, run on the pool's thread ([`crate::pool`]): its open files and the
//! state of pieces being written; it turns commands into coalesced vectored operations.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cratetorrent_metainfo::PieceIndex;
use cratetorrent_wire::{BLOCK_SIZE, Bitfield, BlockInfo};

use crate::backend::{Completion, Op, OpKind, OpQueue};
use crate::beneath::Beneath;
use crate::file_cache::FileCache;
use crate::hasher::{Attempt, HashJob, Hashers};
use crate::layout::Layout;
use crate::memory::{Charged, HeldBlock, MemoryGauge};
use crate::read_cache::{ReadCache, WindowKey};
use crate::writeback::Writeback;
use crate::{PeerTag, StorageError, StorageEvent};

mod block_hashes;
mod flush;
mod parking;
mod reads;
mod shed;
#[cfg(test)]
mod tests;

/// Most iovecs in one vectored write (Linux's IOV_MAX).
const MAX_IOVECS: usize = 1024;

pub(crate) enum Command {
    Write {
        piece: PieceIndex,
        offset: u32,
        block: Arc<HeldBlock>,
        peer: PeerTag,
    },
    Read {
        block: BlockInfo,
        token: u64,
    },
    Hashed {
        piece: PieceIndex,
        attempt: Attempt,
        ok: bool,
    },
    BlockHashes {
        piece: PieceIndex,
    },
    ForgetReads {
        token: u64,
    },
    Flush {
        done: Option<Sender<Result<(), StorageError>>>,
    },
    /// Which files are wanted (index by index; missing entries are wanted).
    Wanted(Vec<bool>),
    Shutdown {
        done: Sender<Result<(), StorageError>>,
    },
}

pub(crate) struct PieceProgress {
    /// Tags this attempt's hash jobs, so a verdict on an attempt dropped after a write error
    /// cannot settle a later one.
    attempt: Attempt,
    received: Vec<bool>,
    /// What each received block counts against the memory cap (see [`HeldBlock::charge`]).
    charges: Vec<Charged>,
    missing: u32,
    unwritten: u32,
    hash: Option<bool>,
    failed: bool,
    peers: Vec<PeerTag>,
}

pub(crate) struct PendingWrite {
    file: usize,
    offset: u64,
    data: Bytes,
    piece: PieceIndex,
    held: Arc<HeldBlock>,
}

/// An operation waiting for a file descriptor (the open-file cap is reached and every open file
/// has an operation in flight).
pub(crate) enum Deferred {
    Write(Vec<PendingWrite>),
    Read {
        window: WindowKey,
        chunk: usize,
        file: usize,
        offset: u64,
        buf: bytes::BytesMut,
        len: usize,
    },
    Sync(usize),
}

impl Deferred {
    fn file(&self) -> usize {
        match self {
            Deferred::Write(run) => run.first().map_or(0, |w| w.file),
            Deferred::Read { file, .. } | Deferred::Sync(file) => *file,
        }
    }
}

pub(crate) enum OpMeta {
    Write {
        file: usize,
        pieces: Vec<PieceIndex>,
        held: Vec<Arc<HeldBlock>>,
    },
    Read {
        window: WindowKey,
        chunk: usize,
    },
    Sync(usize),
    Writeback,
}

pub(crate) struct Disk {
    pub(crate) layout: Arc<Layout>,
    /// Operations started, for the pool to run.
    pub(crate) io: OpQueue,
    pub(crate) files: FileCache,
    /// The download directory, which resume data is saved beneath.
    pub(crate) root: Arc<Beneath>,
    pub(crate) events: Sender<StorageEvent>,
    pub(crate) notify: Arc<dyn Fn() + Send + Sync>,
    pub(crate) hashers: Hashers,
    pub(crate) gauge: Arc<MemoryGauge>,
    pub(crate) have: Bitfield,
    pub(crate) read_cache: ReadCache,
    pub(crate) resume_interval: Duration,
    pub(crate) pieces: HashMap<PieceIndex, PieceProgress>,
    /// Attempts started so far (see [`PieceProgress::attempt`]).
    pub(crate) attempts: Attempt,
    pub(crate) waiting: Vec<PendingWrite>,
    pub(crate) deferred: std::collections::VecDeque<Deferred>,
    pub(crate) ops: HashMap<u64, OpMeta>,
    pub(crate) next_op: u64,
    pub(crate) dirty: HashSet<usize>,
    pub(crate) writeback: Writeback,
    pub(crate) unsaved: bool,
    pub(crate) last_save: Instant,
    pub(crate) syncs_left: usize,
    pub(crate) flush_waiters: Vec<Option<Sender<Result<(), StorageError>>>>,
    pub(crate) flush_error: Option<StorageError>,
    /// A flush is waiting for the writes it started before syncing.
    pub(crate) draining: bool,
    pub(crate) shutdown: Option<Sender<Result<(), StorageError>>>,
    /// The pieces verified when the running flush started: only their data is covered by its syncs.
    pub(crate) flush_snapshot: Option<Bitfield>,
    /// Files whose sync failed this session. After a failed fsync the kernel may have dropped
    /// the dirty pages (marked clean, data lost), so no later sync can vouch for them: resume
    /// data claims none of their pieces and records no stamp for them, so the next open hashes
    /// them.
    pub(crate) tainted: HashSet<usize>,
    /// Fault injection: the first sync of this file fails ([`crate::StorageConfig::fail_sync`]).
    pub(crate) fail_sync: Option<usize>,
    /// Parked files wanted again, moved out of their parts once nothing uses them.
    pub(crate) unparking: BTreeSet<usize>,
}

impl Disk {
    pub(crate) fn new_piece_state(&mut self, piece: PieceIndex) -> PieceProgress {
        self.attempts += 1;
        let blocks = self
            .layout
            .metainfo()
            .piece_len(piece)
            .unwrap_or(0)
            .div_ceil(BLOCK_SIZE);
        PieceProgress {
            attempt: self.attempts,
            received: vec![false; blocks as usize],
            charges: vec![Charged::default(); blocks as usize],
            missing: blocks,
            unwritten: 0,
            hash: None,
            failed: false,
            peers: Vec::new(),
        }
    }

    /// The upkeep after commands and completions: writes to start, hash jobs to hand over,
    /// deferred and waiting work to retry, and resume data to save when due.
    pub(crate) fn turn(&mut self) {
        self.submit_writes(false);
        self.retry_deferred();
        self.try_unpark();
        self.retry_pending_reads();
        self.shed_blocks_behind_gaps();
        self.finish_draining();
        if self.unsaved && self.syncs_left == 0 && self.last_save.elapsed() >= self.resume_interval
        {
            self.start_flush(None);
        }
        self.hashers.flush();
    }

    /// Whether the torrent needs turns without a new command or completion: work waiting (for
    /// memory, a descriptor, a file to be free), pieces in progress, unsaved resume data, or a
    /// shutdown under way.
    pub(crate) fn has_work(&self) -> bool {
        !self.waiting.is_empty()
            || !self.deferred.is_empty()
            || self.read_cache.has_pending()
            || !self.unparking.is_empty()
            || !self.pieces.is_empty()
            || self.draining
            || self.unsaved
            || self.syncs_left > 0
            || self.shutdown.is_some()
    }

    /// Whether a shutdown was asked and everything it waits for is done.
    pub(crate) fn is_done(&self) -> bool {
        self.shutdown.is_some()
            && self.io.in_flight() == 0
            && self.syncs_left == 0
            && !self.draining
            && self.waiting.is_empty()
    }

    /// Answers the shutdown once its files are closed and its hash workers have ended, so the
    /// caller of `Storage::shutdown` never races them.
    pub(crate) fn finish(mut self) {
        let result = self.flush_error.take().map_or(Ok(()), Err);
        let done = self.shutdown.take();
        drop(self);
        if let Some(done) = done {
            let _ = done.send(result);
        }
    }

    fn emit(&self, event: StorageEvent) {
        if self.events.send(event).is_ok() {
            (self.notify)();
        }
    }

    pub(crate) fn handle(&mut self, command: Command) {
        match command {
            Command::Write {
                piece,
                offset,
                block,
                peer,
            } => self.write(piece, offset, block, peer),
            Command::Read { block, token } => self.read(block, token),
            Command::Hashed { piece, attempt, ok } => {
                if let Some(state) = self.pieces.get_mut(&piece)
                    && state.attempt == attempt
                {
                    state.hash = Some(ok);
                }
                self.check_piece(piece);
            }
            Command::BlockHashes { piece } => self.block_hashes(piece),
            Command::ForgetReads { token } => self.read_cache.forget(token),
            Command::Flush { done } => self.start_flush(Some(done)),
            Command::Wanted(wanted) => self.set_wanted(&wanted),
            Command::Shutdown { done } => {
                self.shutdown = Some(done);
                self.start_flush(None);
            }
        }
    }

    fn write(&mut self, piece: PieceIndex, offset: u32, block: Arc<HeldBlock>, peer: PeerTag) {
        if self.have.get(piece) || self.shutdown.is_some() {
            return;
        }
        let index = (offset / BLOCK_SIZE) as usize;
        if !self.pieces.contains_key(&piece) {
            let state = self.new_piece_state(piece);
            self.pieces.insert(piece, state);
        }
        let Some(state) = self.pieces.get_mut(&piece) else {
            return;
        };
        if state.received.get(index).copied().unwrap_or(true) || state.hash.is_some() {
            return;
        }
        state.received[index] = true;
        state.charges[index] = block.charge();
        state.missing -= 1;
        if !state.peers.contains(&peer) {
            state.peers.push(peer);
        }
        let start = self.layout.offset(piece, offset);
        let mut consumed = 0usize;
        for slice in self.layout.slices(start, block.data.len() as u64) {
            let len = slice.len as usize;
            if !self.layout.file(slice.file_index).padding {
                let data = block.data.slice(consumed..consumed + len);
                self.waiting.push(PendingWrite {
                    file: slice.file_index,
                    offset: slice.offset,
                    data,
                    piece,
                    held: block.clone(),
                });
                state.unwritten += 1;
            }
            consumed += len;
        }
        let attempt = state.attempt;
        self.hashers.push(HashJob::Block {
            piece,
            attempt,
            offset,
            block,
        });
    }

    /// Issues the queued writes of pieces whose blocks have all arrived, merging runs that are
    /// contiguous in one file into one writev. Blocks of a piece still arriving wait, so a piece
    /// costs one write (one hand-off to the kernel's I/O workers) instead of one per burst of
    /// blocks; everything goes out when `all` is set, under memory pressure (a quarter of the
    /// cap, so readers never stall on blocks that only wait for their siblings) and at shutdown.
    fn submit_writes(&mut self, all: bool) {
        if self.waiting.is_empty() || (self.draining && !all) {
            return;
        }
        let mut waiting = std::mem::take(&mut self.waiting);
        let all = all || self.shutdown.is_some() || self.gauge.held() >= self.gauge.cap() / 4;
        if !all {
            let pieces = &self.pieces;
            let (ready, arriving): (Vec<_>, Vec<_>) = waiting
                .into_iter()
                .partition(|w| pieces.get(&w.piece).is_none_or(|state| state.missing == 0));
            self.waiting = arriving;
            waiting = ready;
        }
        waiting.sort_by_key(|w| (w.file, w.offset));
        let mut run: Vec<PendingWrite> = Vec::new();
        for write in waiting {
            let contiguous = run.last().is_some_and(|last| {
                last.file == write.file && last.offset + last.data.len() as u64 == write.offset
            });
            if !contiguous || run.len() == MAX_IOVECS {
                self.start_write(std::mem::take(&mut run));
            }
            run.push(write);
        }
        self.start_write(run);
    }

    fn start_write(&mut self, run: Vec<PendingWrite>) {
        if run.is_empty() {
            return;
        }
        self.start_or_defer(Deferred::Write(run));
    }

    /// Starts an operation, or queues it until a descriptor is free.
    fn start_or_defer(&mut self, op: Deferred) {
        if !self.deferred.is_empty() || !self.files.can_open(op.file()) {
            self.deferred.push_back(op);
            return;
        }
        self.start(op);
    }

    fn retry_deferred(&mut self) {
        while let Some(op) = self.deferred.front() {
            if !self.files.can_open(op.file()) {
                return;
            }
            if let Some(op) = self.deferred.pop_front() {
                self.start(op);
            }
        }
    }

    fn start(&mut self, op: Deferred) {
        match op {
            Deferred::Write(run) => {
                let (file_index, offset) = (run[0].file, run[0].offset);
                let mut pieces = Vec::with_capacity(run.len());
                let mut bufs = Vec::with_capacity(run.len());
                let mut held = Vec::with_capacity(run.len());
                for write in run {
                    pieces.push(write.piece);
                    bufs.push(write.data);
                    held.push(write.held);
                }
                match self.files.get(&self.layout, file_index, true) {
                    Ok(file) => {
                        self.dirty.insert(file_index);
                        let id = self.next_id();
                        self.ops.insert(
                            id,
                            OpMeta::Write {
                                file: file_index,
                                pieces,
                                held,
                            },
                        );
                        self.io.start(Op {
                            id,
                            file,
                            offset,
                            kind: OpKind::Write(bufs),
                        });
                    }
                    Err(error) => self.fail_pieces(&pieces, error),
                }
            }
            Deferred::Read {
                window,
                chunk,
                file: file_index,
                offset,
                buf,
                len,
            } => match self.files.get(&self.layout, file_index, false) {
                Ok(file) => {
                    let id = self.next_id();
                    self.ops.insert(id, OpMeta::Read { window, chunk });
                    self.io.start(Op {
                        id,
                        file,
                        offset,
                        kind: OpKind::Read { buf, len },
                    });
                }
                Err(error) => {
                    self.read_cache.chunk_failed(window, chunk, buf);
                    self.read_failed(window, error);
                }
            },
            Deferred::Sync(index) => match self.files.get(&self.layout, index, true) {
                Ok(file) => {
                    let id = self.next_id();
                    self.ops.insert(id, OpMeta::Sync(index));
                    self.io.start(Op {
                        id,
                        file,
                        offset: 0,
                        kind: OpKind::Sync,
                    });
                }
                Err(error) => {
                    self.flush_error = Some(error);
                    self.tainted.insert(index);
                    self.sync_finished();
                }
            },
        }
    }

    fn next_id(&mut self) -> u64 {
        self.next_op += 1;
        self.next_op
    }

    fn fail_pieces(&mut self, pieces: &[PieceIndex], error: StorageError) {
        let mut failed: Vec<PieceIndex> = Vec::new();
        for &piece in pieces {
            if let Some(state) = self.pieces.get_mut(&piece) {
                state.unwritten -= 1;
                if !state.failed {
                    state.failed = true;
                    failed.push(piece);
                }
            }
        }
        if !failed.is_empty() {
            self.emit(StorageEvent::WriteFailed {
                pieces: failed,
                error,
            });
        }
        for &piece in pieces {
            self.check_piece(piece);
        }
    }

    pub(crate) fn complete(&mut self, completion: Completion) {
        let Completion { result, op } = completion;
        let Some(meta) = self.ops.remove(&op.id) else {
            return;
        };
        match meta {
            OpMeta::Write { file, pieces, held } => self.write_done(file, pieces, held, op, result),
            OpMeta::Read { window, chunk } => self.read_done(window, chunk, op, result),
            OpMeta::Sync(file) => self.sync_done(file, op, result),
            // Write-out only makes the next sync shorter; that sync reports any error.
            OpMeta::Writeback => {}
        }
    }

    fn write_done(
        &mut self,
        file: usize,
        pieces: Vec<PieceIndex>,
        held: Vec<Arc<HeldBlock>>,
        op: Op,
        result: std::io::Result<usize>,
    ) {
        let OpKind::Write(bufs) = op.kind else { return };
        let total: usize = bufs.iter().map(Bytes::len).sum();
        match result {
            Ok(written) if written >= total => {
                drop(held);
                if self.writeback.record(file, op.offset, total as u64) {
                    self.start_writeback();
                }
                for piece in pieces {
                    if let Some(state) = self.pieces.get_mut(&piece) {
                        state.unwritten -= 1;
                    }
                    self.check_piece(piece);
                }
            }
            Ok(0) => {
                let path = self.layout.file(file).path.clone();
                let error = StorageError::from_io(
                    std::io::Error::from(std::io::ErrorKind::WriteZero),
                    path,
                    "write",
                );
                self.fail_pieces(&pieces, error);
            }
            Ok(written) => {
                // A partial write: resubmit exactly what is left, at the offset where it starts.
                let mut rest = Vec::with_capacity(bufs.len());
                let mut skip = written;
                for buf in bufs {
                    if skip >= buf.len() {
                        skip -= buf.len();
                    } else {
                        rest.push(buf.slice(skip..));
                        skip = 0;
                    }
                }
                let id = self.next_id();
                self.ops.insert(id, OpMeta::Write { file, pieces, held });
                self.io.start(Op {
                    id,
                    file: op.file,
                    offset: op.offset + written as u64,
                    kind: OpKind::Write(rest),
                });
            }
            Err(error) => {
                let path = self.layout.file(file).path.clone();
                self.fail_pieces(&pieces, StorageError::from_io(error, path, "write"));
            }
        }
    }

    /// Asks the kernel to start writing out what was written since the last round (files closed
    /// since are skipped: closing did not sync them, the next flush will).
    fn start_writeback(&mut self) {
        for (index, offset, len) in self.writeback.take() {
            if let Some(file) = self.files.get_open(index) {
                let id = self.next_id();
                self.ops.insert(id, OpMeta::Writeback);
                self.io.start(Op {
                    id,
                    file,
                    offset,
                    kind: OpKind::Writeback { len },
                });
            }
        }
    }

    /// Finishes a piece once every block is in, written, and hashed.
    fn check_piece(&mut self, piece: PieceIndex) {
        let Some(state) = self.pieces.get(&piece) else {
            return;
        };
        let settled =
            state.unwritten == 0 && (state.failed || (state.missing == 0 && state.hash.is_some()));
        if !settled {
            return;
        }
        let Some(state) = self.pieces.remove(&piece) else {
            return;
        };
        if state.failed {
            self.hashers.push(HashJob::Forget {
                piece,
                attempt: state.attempt,
            });
            return;
        }
        if state.hash == Some(true) {
            self.have.set(piece);
            self.unsaved = true;
            self.emit(StorageEvent::PieceVerified(piece));
        } else {
            self.emit(StorageEvent::HashFailed {
                piece,
                peers: state.peers,
            });
        }
    }
}
