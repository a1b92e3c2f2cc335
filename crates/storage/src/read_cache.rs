//! Pieces read for seeding: one read per piece, blocks served as zero-copy slices, a cache
//! bounded in bytes, and buffers reused when their last slice is gone.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use cratetorrent_metainfo::PieceIndex;
use cratetorrent_wire::BlockInfo;

/// Spare piece buffers kept for reuse.
const POOL_SIZE: usize = 16;

pub(crate) enum ReadPlan {
    /// The block, from a cached piece.
    Hit(Bytes),
    /// The piece is being read; the block is served when it arrives.
    Waiting,
    /// The piece must be read: call `start_fetch`.
    Fetch,
}

struct Fetch {
    chunks: Vec<Option<BytesMut>>,
    failed: bool,
    waiters: Vec<(u64, BlockInfo)>,
}

struct Cached {
    data: Bytes,
    last_used: u64,
}

pub(crate) struct ReadCache {
    cached: HashMap<PieceIndex, Cached>,
    fetching: HashMap<PieceIndex, Fetch>,
    bytes: usize,
    cap: usize,
    clock: u64,
    pool: Vec<BytesMut>,
}

impl ReadCache {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cached: HashMap::new(),
            fetching: HashMap::new(),
            bytes: 0,
            cap,
            clock: 0,
            pool: Vec::new(),
        }
    }

    pub(crate) fn lookup(&mut self, block: BlockInfo, token: u64) -> ReadPlan {
        self.clock += 1;
        if let Some(cached) = self.cached.get_mut(&block.piece) {
            cached.last_used = self.clock;
            return ReadPlan::Hit(slice(&cached.data, block));
        }
        if let Some(fetch) = self.fetching.get_mut(&block.piece) {
            fetch.waiters.push((token, block));
            return ReadPlan::Waiting;
        }
        self.fetching.insert(
            block.piece,
            Fetch {
                chunks: Vec::new(),
                failed: false,
                waiters: vec![(token, block)],
            },
        );
        ReadPlan::Fetch
    }

    /// A buffer for the whole piece, split into one empty chunk per file slice (each with the
    /// capacity of its slice), so that reads land in place and join again without copying.
    pub(crate) fn start_fetch(
        &mut self,
        piece: PieceIndex,
        len: usize,
        chunk_lens: impl Iterator<Item = usize>,
    ) -> Vec<BytesMut> {
        let mut whole = match self.pool.iter().position(|b| b.capacity() >= len) {
            Some(index) => self.pool.swap_remove(index),
            None => BytesMut::with_capacity(len),
        };
        whole.clear();
        let lens: Vec<usize> = chunk_lens.collect();
        let chunks = if lens.len() == 1 {
            // One file slice (the common case): read straight into the spare capacity.
            vec![whole]
        } else {
            // Splitting needs initialised length; the reads then refill each chunk from empty.
            whole.resize(len, 0);
            lens.iter()
                .map(|&chunk_len| {
                    let mut chunk = whole.split_to(chunk_len.min(whole.len()));
                    chunk.clear();
                    chunk
                })
                .collect()
        };
        if let Some(fetch) = self.fetching.get_mut(&piece) {
            fetch.chunks = (0..chunks.len()).map(|_| None).collect();
        }
        chunks
    }

    pub(crate) fn chunk_done(&mut self, piece: PieceIndex, chunk: usize, buf: BytesMut) {
        if let Some(slot) = self
            .fetching
            .get_mut(&piece)
            .and_then(|f| f.chunks.get_mut(chunk))
        {
            *slot = Some(buf);
        }
    }

    pub(crate) fn chunk_failed(&mut self, piece: PieceIndex, _chunk: usize, _buf: BytesMut) {
        if let Some(fetch) = self.fetching.get_mut(&piece) {
            fetch.failed = true;
        }
    }

    /// Abandons a failed fetch and returns its waiters.
    pub(crate) fn fail(&mut self, piece: PieceIndex) -> Vec<(u64, BlockInfo)> {
        self.fetching
            .remove(&piece)
            .map(|f| f.waiters)
            .unwrap_or_default()
    }

    /// Once every chunk of the piece is in: caches the piece and returns its waiters' blocks.
    pub(crate) fn finish(&mut self, piece: PieceIndex) -> Vec<(u64, BlockInfo, Bytes)> {
        let complete = self.fetching.get(&piece).is_some_and(|f| {
            !f.failed && !f.chunks.is_empty() && f.chunks.iter().all(Option::is_some)
        });
        if !complete {
            return Vec::new();
        }
        let Some(fetch) = self.fetching.remove(&piece) else {
            return Vec::new();
        };
        let mut chunks = fetch.chunks.into_iter().flatten();
        let Some(mut whole) = chunks.next() else {
            return Vec::new();
        };
        for chunk in chunks {
            // Chunks were split from one buffer in order, so this only moves a length.
            whole.unsplit(chunk);
        }
        let data = whole.freeze();
        let served = fetch
            .waiters
            .into_iter()
            .map(|(token, block)| (token, block, slice(&data, block)))
            .collect();
        self.insert(piece, data);
        served
    }

    fn insert(&mut self, piece: PieceIndex, data: Bytes) {
        if data.len() > self.cap {
            return;
        }
        while self.bytes + data.len() > self.cap {
            let Some(oldest) = self
                .cached
                .iter()
                .min_by_key(|(_, c)| c.last_used)
                .map(|(p, _)| *p)
            else {
                break;
            };
            if let Some(evicted) = self.cached.remove(&oldest) {
                self.bytes -= evicted.data.len();
                if let Ok(buf) = evicted.data.try_into_mut()
                    && self.pool.len() < POOL_SIZE
                {
                    self.pool.push(buf);
                }
            }
        }
        self.bytes += data.len();
        self.cached.insert(
            piece,
            Cached {
                data,
                last_used: self.clock,
            },
        );
    }
}

fn slice(data: &Bytes, block: BlockInfo) -> Bytes {
    let start = (block.offset as usize).min(data.len());
    let end = (start + block.len as usize).min(data.len());
    data.slice(start..end)
}
