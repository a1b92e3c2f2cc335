//! The disk layer of cratetorrent: verified pieces on disk, blocks back for seeding.
//!
//! [`Storage::open`] maps a torrent onto files under a download directory, checks what is
//! already there (trusting fast-resume data for files unchanged since it was saved, hashing the
//! rest on all cores), and hands the torrent to a disk thread: its own, or one that many
//! storages share ([`DiskPool`], [`StorageConfig::pool`]). Then:
//!
//! - [`Storage::write_block`] queues a received block and returns at once. The disk thread
//!   coalesces contiguous blocks into one vectored write per file slice (io_uring `writev`, or
//!   `pwritev` on the fallback backend); hash workers feed the same buffers to SHA-1 in order, so a
//!   piece is verified from memory, never read back. [`StorageEvent::PieceVerified`] or
//!   [`StorageEvent::HashFailed`] (with the peers that sent its blocks) follow.
//! - Blocks held in memory are capped ([`StorageConfig::max_memory`]); when the cap is reached
//!   `write_block` says [`WriteStatus::Full`] and the caller stops reading sockets until
//!   [`StorageEvent::MemoryAvailable`].
//! - [`Storage::read_block`] serves a block of a verified piece: the piece is read once into a
//!   pooled buffer and kept in a cache bounded in bytes; blocks are zero-copy slices of it.
//! - Resume data (pieces had, each file's size and mtime) is saved atomically after the files
//!   are synced, periodically and on [`Storage::shutdown`].
//!
//! ```
//! use bytes::Bytes;
//! use cratetorrent_metainfo::{Metainfo, TorrentBuilder};
//! use cratetorrent_storage::{Storage, StorageConfig, StorageEvent};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let source = tempfile::tempdir()?;
//! std::fs::write(source.path().join("a.bin"), vec![7u8; 20_000])?;
//! let torrent = Metainfo::from_bytes(&TorrentBuilder::new(source.path().join("a.bin")).build()?)?;
//!
//! let downloads = tempfile::tempdir()?;
//! let (storage, events) = Storage::open(&torrent, downloads.path(), StorageConfig::default(), || {})?;
//! assert_eq!(storage.have().count_ones(), 0);
//! storage.write_block(1, 0, Bytes::from(vec![7u8; 20_000 - 16_384]), 1)?;
//! storage.write_block(0, 0, Bytes::from(vec![7u8; 16_384]), 1)?;
//! let mut verified = 0;
//! while verified < 2 {
//!     if let StorageEvent::PieceVerified(_) = events.recv_timeout(std::time::Duration::from_secs(10))? {
//!         verified += 1;
//!     }
//! }
//! storage.shutdown()?;
//! assert_eq!(std::fs::read(downloads.path().join("a.bin"))?, vec![7u8; 20_000]);
//! # Ok(())
//! # }
//! ```

// Lengths cast here are bounded by the piece length, a u32 that the metainfo parser capped at
// 256 MiB, so narrowing casts cannot truncate.
#![allow(clippy::cast_possible_truncation)]

mod backend;
mod beneath;
mod delete;
mod disk;
mod error;
mod file_cache;
mod hasher;
mod layout;
mod memory;
mod oversized;
mod piece_check;
mod pool;
mod read_cache;
mod read_memory;
mod resume;
mod saved_metadata;
mod sha1x16;
mod sync_backend;
mod uring_backend;
mod writeback;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cratetorrent_metainfo::{Metainfo, PieceIndex};
use cratetorrent_wire::{BLOCK_SIZE, Bitfield, BlockInfo, Geometry};

pub use delete::delete_files;
pub use error::StorageError;
pub use layout::Layout;
pub use memory::SharedBuffer;
pub use oversized::{Oversized, oversized_files, truncate_oversized};
pub use pool::DiskPool;
pub use resume::{CheckProgress, verify};
pub use saved_metadata::{load_metadata, load_session_file, save_metadata, save_session_file};

use crate::backend::Backend;
use crate::backend::OpQueue;
use crate::beneath::{Access, Beneath};
use crate::disk::{Command, Disk};
use crate::file_cache::FileCache;
use crate::hasher::Hashers;
use crate::memory::{HeldBlock, MemoryGauge};
use crate::pool::Port;
use crate::read_cache::ReadCache;

/// Identifies the peer a block came from, so a failed piece can name who sent it.
pub type PeerTag = u64;

/// Which I/O backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// io_uring where the kernel allows it, else the portable backend (with one log line).
    #[default]
    Auto,
    /// io_uring or an error.
    IoUring,
    /// `pwritev`/`preadv` on a thread pool.
    Portable,
}

/// Settings of a [`Storage`].
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// Most bytes of received blocks held before they are written and hashed (default 32 MiB).
    pub max_memory: u64,
    /// Bytes of pieces kept cached for seeding (default 32 MiB), across every storage of the
    /// disk pool: the pool's own setting counts when one is given.
    pub read_cache: usize,
    /// Seeding reads go to the disk in windows of at most this many bytes (a multiple of
    /// 16 KiB; default 1 MiB): a piece up to it is read whole, a larger one a window at a time.
    pub read_window: u32,
    /// Most bytes of read buffers alive at once for seeding, whether cached, being read, or
    /// sliced into blocks still queued to peers (default 64 MiB, at least one window), across
    /// every storage of the disk pool (the pool's own setting counts when one is given). Reads
    /// past it wait until sent blocks free their buffers.
    pub max_read_memory: usize,
    /// Most files kept open (default 256), across every storage of the disk pool: the pool's
    /// own setting counts when one is given.
    pub max_open_files: usize,
    /// Allocate files in full when first written (`fallocate`) instead of leaving them sparse.
    pub preallocate: bool,
    /// The I/O backend.
    pub backend: BackendKind,
    /// Threads hashing pieces (default: one per core). With lanes in use, one thread hashes.
    pub hash_threads: usize,
    /// Hash up to sixteen pieces at once with AVX-512 where the CPU has it (default true);
    /// otherwise, or when false, each piece is hashed alone (SHA-NI where available).
    pub hash_lanes: bool,
    /// Threads of the portable backend (default 4).
    pub io_threads: usize,
    /// How often resume data is saved while pieces are being verified (default 30 s).
    pub resume_interval: Duration,
    /// The disk thread to run on, shared with other storages opened with the same pool
    /// (default none: the storage starts a disk thread of its own). An engine with many
    /// torrents shares one, so that each costs no thread, io_uring or descriptor of its own.
    pub pool: Option<DiskPool>,
    /// Fault injection for tests: cut every write to at most this many bytes.
    #[doc(hidden)]
    pub max_write_len: Option<usize>,
    /// Fault injection for tests: the first sync of this file (its index in the torrent) fails
    /// with EIO after it ran.
    #[doc(hidden)]
    pub fail_sync: Option<usize>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            max_memory: 32 << 20,
            read_cache: 32 << 20,
            read_window: 1 << 20,
            max_read_memory: 64 << 20,
            max_open_files: file_cache::DEFAULT_MAX_OPEN_FILES,
            preallocate: false,
            backend: BackendKind::Auto,
            hash_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            hash_lanes: true,
            io_threads: 4,
            resume_interval: Duration::from_secs(30),
            pool: None,
            max_write_len: None,
            fail_sync: None,
        }
    }
}

/// What the storage reports, in order, through the receiver returned by [`Storage::open`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StorageEvent {
    /// A piece was written, hashed and found correct; it is now readable.
    PieceVerified(PieceIndex),
    /// A piece's hash did not match; its blocks came from `peers`. It is not marked as had.
    HashFailed {
        /// The piece.
        piece: PieceIndex,
        /// The peers that sent its blocks.
        peers: Vec<PeerTag>,
    },
    /// Writing failed; these pieces are dropped (they will have to be downloaded again).
    WriteFailed {
        /// The pieces affected.
        pieces: Vec<PieceIndex>,
        /// The error, with the path.
        error: StorageError,
    },
    /// The answer to [`Storage::read_block`].
    BlockRead {
        /// The caller's token.
        token: u64,
        /// The block.
        block: BlockInfo,
        /// Its data, a zero-copy slice of a cached piece.
        result: Result<Bytes, StorageError>,
    },
    /// Saving resume data failed; pieces stay verified in memory but a restart will recheck.
    ResumeSaveFailed(StorageError),
    /// Held memory fell back below half the cap after [`WriteStatus::Full`].
    MemoryAvailable,
    /// Blocks of `piece` that waited behind a missing block were given up to stay within the
    /// memory cap (they alone held more than half of it, so reading could never resume): they
    /// count as not received and must be fetched again.
    BlocksDropped {
        /// The piece.
        piece: PieceIndex,
        /// The offsets of the blocks given up.
        offsets: Vec<u32>,
    },
    /// The answer to [`Storage::block_hashes`]: the SHA-1 of each 16 KiB block of the piece as
    /// it is on disk now.
    BlockHashes {
        /// The piece.
        piece: PieceIndex,
        /// One hash per block, in order.
        result: Result<Vec<[u8; 20]>, StorageError>,
    },
}

/// Whether the caller may keep reading blocks from the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStatus {
    /// Keep going.
    Accepted,
    /// The memory cap is reached: stop reading from sockets until [`StorageEvent::MemoryAvailable`].
    Full,
}

/// A torrent's storage: a handle to its state on a disk thread (its own, or a [`DiskPool`]'s).
pub struct Storage {
    port: Port,
    /// Keeps the disk thread running while the storage is open.
    pool: DiskPool,
    gauge: Arc<MemoryGauge>,
    geometry: Geometry,
    have: Bitfield,
    stopped: bool,
}

impl Storage {
    /// Opens the storage of `metainfo` under `download_dir`: checks existing data, then starts
    /// the disk and hashing threads. `notify` is called (from storage threads) after each event is
    /// queued, so an async caller can wake the task that drains the receiver.
    pub fn open(
        metainfo: &Metainfo,
        download_dir: &Path,
        config: StorageConfig,
        notify: impl Fn() + Send + Sync + 'static,
    ) -> Result<(Self, Receiver<StorageEvent>), StorageError> {
        Self::open_with_progress(metainfo, download_dir, config, notify, &|_| {})
    }

    /// [`open`](Self::open), reporting the progress of the check of existing data.
    pub fn open_with_progress(
        metainfo: &Metainfo,
        download_dir: &Path,
        config: StorageConfig,
        notify: impl Fn() + Send + Sync + 'static,
        progress: &(dyn Fn(CheckProgress) + Sync),
    ) -> Result<(Self, Receiver<StorageEvent>), StorageError> {
        let layout = Arc::new(Layout::new(metainfo, download_dir));
        resume::check_reserved(&layout)?;
        let pool = match &config.pool {
            Some(pool) => pool.clone(),
            None => DiskPool::new(&config)?,
        };
        let root = pool.root(download_dir)?;
        layout.detect_parked(&root);
        let have = resume::check(&layout, &root, config.hash_threads, progress);
        create_empty_files(&layout, &root)?;
        let port = pool.port();
        let (events, receiver) = mpsc::channel();
        let notify: Arc<dyn Fn() + Send + Sync> = Arc::new(notify);
        let gauge = {
            let (events, notify) = (events.clone(), notify.clone());
            Arc::new(MemoryGauge::new(
                config.max_memory,
                Box::new(move || {
                    if events.send(StorageEvent::MemoryAvailable).is_ok() {
                        notify();
                    }
                }),
            ))
        };
        let hashers = {
            let port = port.clone();
            Hashers::start(
                config.hash_threads,
                config.hash_lanes,
                config.max_memory,
                metainfo.clone(),
                Box::new(move |piece, attempt, ok| {
                    let _ = port.send(Command::Hashed { piece, attempt, ok });
                }),
            )
        };
        let disk = Disk {
            layout,
            io: OpQueue::default(),
            files: FileCache::in_table(
                pool.open_files(),
                port.id(),
                config.preallocate,
                root.clone(),
            ),
            root,
            events,
            notify,
            hashers,
            gauge: gauge.clone(),
            have: have.clone(),
            read_cache: ReadCache::new(config.read_window, pool.read_memory()),
            resume_interval: config.resume_interval,
            pieces: HashMap::new(),
            attempts: 0,
            waiting: Vec::new(),
            deferred: std::collections::VecDeque::new(),
            ops: HashMap::new(),
            next_op: 0,
            dirty: HashSet::new(),
            writeback: writeback::Writeback::default(),
            unsaved: false,
            last_save: Instant::now(),
            syncs_left: 0,
            flush_waiters: Vec::new(),
            flush_error: None,
            draining: false,
            shutdown: None,
            flush_snapshot: None,
            tainted: HashSet::new(),
            fail_sync: config.fail_sync,
            unparking: std::collections::BTreeSet::new(),
        };
        pool.attach(&port, disk)?;
        let geometry = Geometry::of(metainfo);
        let storage = Self {
            port,
            pool,
            gauge,
            geometry,
            have,
            stopped: false,
        };
        Ok((storage, receiver))
    }

    /// The pieces found on disk when the storage was opened.
    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    /// The backend in use: `"io_uring"` or `"pwritev"`.
    pub fn backend(&self) -> &'static str {
        self.pool.backend()
    }

    /// Bytes of received blocks not yet both written and hashed.
    pub fn held_bytes(&self) -> u64 {
        self.gauge.held()
    }

    /// Whether the memory cap is reached (see [`WriteStatus::Full`]).
    pub fn is_full(&self) -> bool {
        self.gauge.is_over()
    }

    /// The memory cap.
    pub fn max_memory(&self) -> u64 {
        self.gauge.cap()
    }

    /// Queues block `offset` of `piece` for writing and hashing. The block must be a whole block
    /// of the torrent's geometry (16 KiB, aligned; shorter only at the end of the torrent).
    pub fn write_block(
        &self,
        piece: PieceIndex,
        offset: u32,
        data: Bytes,
        peer: PeerTag,
    ) -> Result<WriteStatus, StorageError> {
        self.write(piece, offset, data, peer, None)
    }

    /// [`write_block`](Self::write_block) for a block sliced from a receive buffer that other
    /// blocks may share: while any of them is held, the memory cap counts the whole buffer
    /// (which a held block keeps allocated), once.
    pub fn write_block_in(
        &self,
        piece: PieceIndex,
        offset: u32,
        data: Bytes,
        peer: PeerTag,
        buffer: &Arc<SharedBuffer>,
    ) -> Result<WriteStatus, StorageError> {
        self.write(piece, offset, data, peer, Some(buffer))
    }

    fn write(
        &self,
        piece: PieceIndex,
        offset: u32,
        data: Bytes,
        peer: PeerTag,
        buffer: Option<&Arc<SharedBuffer>>,
    ) -> Result<WriteStatus, StorageError> {
        let info = BlockInfo {
            piece,
            offset,
            len: u32::try_from(data.len()).unwrap_or(u32::MAX),
        };
        let expected = self.geometry.block(piece, offset / BLOCK_SIZE);
        if !offset.is_multiple_of(BLOCK_SIZE) || expected != Some(info) {
            return Err(StorageError::InvalidBlock(info));
        }
        let (block, full) = HeldBlock::new_in(data, self.gauge.clone(), buffer);
        self.send(Command::Write {
            piece,
            offset,
            block,
            peer,
        })?;
        Ok(if full {
            WriteStatus::Full
        } else {
            WriteStatus::Accepted
        })
    }

    /// Asks for the hash of every block of `piece` as it is on disk (verified or not), answered
    /// by [`StorageEvent::BlockHashes`]. Events keep their order, so asked right after a
    /// [`StorageEvent::HashFailed`] it sees the data that failed, before any new attempt is
    /// written: the evidence a smart ban compares with the good data once the piece passes.
    pub fn block_hashes(&self, piece: PieceIndex) -> Result<(), StorageError> {
        if piece >= self.geometry.piece_count() {
            return Err(StorageError::PieceMissing(piece));
        }
        self.send(Command::BlockHashes { piece })
    }

    /// Drops the reads asked with `token` that have not been answered yet (its peer is gone):
    /// those waiting for memory are never started, and those waiting for a window being read
    /// are not answered.
    pub fn forget_reads(&self, token: u64) -> Result<(), StorageError> {
        self.send(Command::ForgetReads { token })
    }

    /// Asks for a block of a verified piece; the answer is a [`StorageEvent::BlockRead`] with `token`.
    pub fn read_block(&self, block: BlockInfo, token: u64) -> Result<(), StorageError> {
        self.geometry
            .validate(&block)
            .map_err(|_| StorageError::InvalidBlock(block))?;
        self.send(Command::Read { block, token })
    }

    /// Says which files are wanted (`wanted[i]` for file `i`; missing entries are wanted). A file
    /// not wanted that has nothing on disk yet is *parked*: the bytes of it that pieces shared
    /// with wanted files carry are kept in `.cratetorrent/<info-hash>.parts/<i>` (at most two
    /// pieces' worth), so the file itself does not appear. Wanted again, its part's bytes are
    /// moved into it. A file with data on disk stays where it is either way.
    pub fn set_wanted_files(&self, wanted: Vec<bool>) -> Result<(), StorageError> {
        self.send(Command::Wanted(wanted))
    }

    /// Syncs written data and saves resume data; the receiver gets the result.
    pub fn flush(&self) -> Result<Receiver<Result<(), StorageError>>, StorageError> {
        let (done, result) = mpsc::channel();
        self.send(Command::Flush { done: Some(done) })?;
        Ok(result)
    }

    /// Finishes queued writes, syncs, saves resume data and stops the threads.
    pub fn shutdown(mut self) -> Result<(), StorageError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), StorageError> {
        if std::mem::replace(&mut self.stopped, true) {
            return Ok(());
        }
        let (done, result) = mpsc::channel();
        self.send(Command::Shutdown { done })?;
        result.recv().unwrap_or(Err(StorageError::Closed))
    }

    fn send(&self, command: Command) -> Result<(), StorageError> {
        self.port.send(command)
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Zero-length files are complete from the start, and no write would ever create them.
fn create_empty_files(layout: &Layout, root: &Beneath) -> Result<(), StorageError> {
    for file in layout.files.iter().filter(|f| f.length == 0 && !f.padding) {
        // Created if missing, never truncated, never through a link.
        root.open_file(&file.rel, Access::ReadWrite)?;
    }
    Ok(())
}

pub(crate) fn select_backend(
    config: &StorageConfig,
) -> Result<Box<dyn Backend + Send>, StorageError> {
    let portable = || {
        Box::new(sync_backend::SyncBackend::new(
            config.io_threads,
            config.max_write_len,
        ))
    };
    match config.backend {
        BackendKind::Portable => Ok(portable()),
        BackendKind::IoUring => uring_backend::UringBackend::new(256, config.max_write_len)
            .map(|b| Box::new(b) as Box<dyn Backend + Send>)
            .map_err(|e| StorageError::from_io(e, PathBuf::from("io_uring"), "set up")),
        BackendKind::Auto => match uring_backend::UringBackend::new(256, config.max_write_len) {
            Ok(backend) => Ok(Box::new(backend)),
            Err(error) => {
                tracing::warn!(%error, "io_uring is unavailable; using the portable pwritev/preadv backend");
                Ok(portable())
            }
        },
    }
}
