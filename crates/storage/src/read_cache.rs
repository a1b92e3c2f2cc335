//! Data read for seeding: pieces are read in windows (a whole piece up to `read_window`, larger
//! ones in aligned windows of that size), blocks are served as zero-copy slices of a window,
//! and every window buffer alive — cached, being read, or sliced into blocks still queued to
//! peers — counts against one bound, `max_read_memory`, shared by every torrent of the disk
//! pool ([`ReadMemory`]).
//!
//! A block keeps its whole window allocated until it is sent, so the bound has to follow the
//! buffers, not the cache: each window is a `Bytes` whose owner gives its bytes back to the
//! count (and its buffer to a small pool) when the last slice of it is dropped, on whatever
//! thread. A read that would go over the bound waits in `pending` until a window is freed; the
//! freeing rings the disk thread's doorbell, so nothing waits for a timer. Peers that stop
//! reading their socket are disconnected by the engine, which frees what they kept.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use cratetorrent_metainfo::PieceIndex;
use cratetorrent_wire::{BLOCK_SIZE, BlockInfo};

use crate::read_memory::{ReadMemory, WindowBuf};

/// One window of a piece: `index` counts windows of `size` bytes from the piece's start (the
/// window size when it was read: it adapts, see [`ReadCache::adapt`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct WindowKey {
    pub(crate) piece: PieceIndex,
    pub(crate) index: u32,
    pub(crate) size: u32,
}

/// Bytes read between two looks at how much of what was read was served.
const ADAPT_EVERY: u64 = 32 << 20;

pub(crate) enum ReadPlan {
    /// The block, from a cached window.
    Hit(Bytes),
    /// The window is being read; the block is served when it arrives.
    Waiting,
    /// The window must be read: call `start_fetch`.
    Fetch(WindowKey),
    /// No memory for another window now (or reads wait before it): the caller queues it.
    Deferred,
}

struct Fetch {
    len: usize,
    /// What it counts for in `alive`.
    charged: usize,
    chunks: Vec<Option<BytesMut>>,
    failed: bool,
    waiters: Vec<(u64, BlockInfo)>,
}

struct Cached {
    data: Bytes,
    last_used: u64,
}

pub(crate) struct ReadCache {
    cached: HashMap<WindowKey, Cached>,
    fetching: HashMap<WindowKey, Fetch>,
    /// Reads waiting for memory, oldest first.
    pending: VecDeque<(u64, BlockInfo)>,
    /// The size of windows read now, a multiple of 16 KiB up to `max_window`.
    window: u32,
    max_window: u32,
    /// Bytes read into windows, and bytes of blocks served from them, since the last adapt.
    fetched: u64,
    served: u64,
    memory: Arc<ReadMemory>,
    /// How many windows the pool had freed when the waiting reads were last looked at.
    seen_freed: u64,
    /// The waiting reads are looked at again without a window freed (one just got room).
    retry: bool,
}

impl ReadCache {
    /// A cache of windows of `window` bytes (a multiple of 16 KiB, at most what `memory`
    /// lets be alive) in the pool's `memory`.
    pub(crate) fn new(window: u32, memory: Arc<ReadMemory>) -> Self {
        let most = u32::try_from(memory.max_alive()).unwrap_or(u32::MAX);
        let window = (window.min(most) / BLOCK_SIZE).max(1) * BLOCK_SIZE;
        Self {
            cached: HashMap::new(),
            fetching: HashMap::new(),
            pending: VecDeque::new(),
            window,
            max_window: window,
            fetched: 0,
            served: 0,
            seen_freed: memory.freed_count(),
            memory,
            retry: false,
        }
    }

    /// The window holding `block`.
    pub(crate) fn window_of(&self, block: BlockInfo) -> WindowKey {
        WindowKey {
            piece: block.piece,
            index: block.offset / self.window,
            size: self.window,
        }
    }

    /// Where window `key` starts in its piece, and its length in a piece of `piece_len` bytes.
    pub(crate) fn range(&self, key: WindowKey, piece_len: u32) -> (u32, u32) {
        let start = key.index.saturating_mul(key.size).min(piece_len);
        (start, (piece_len - start).min(key.size))
    }

    /// Halves the window size when less than half of what was read was served, and doubles it
    /// back (up to `read_window`) when nearly all of it was. Many peers each working through
    /// a different piece need more windows than the cache holds: a whole-piece window is then
    /// evicted before its peer asks for the rest, and read again and again (500 peers on
    /// 256 KiB pieces read 3.4 bytes per byte sent); smaller windows read what is asked.
    fn adapt(&mut self) {
        if self.fetched < ADAPT_EVERY {
            return;
        }
        let (fetched, served) = (self.fetched, self.served.max(1));
        if fetched > 2 * served {
            self.window = (self.window / 2 / BLOCK_SIZE).max(1) * BLOCK_SIZE;
        } else if 4 * fetched < 5 * served {
            self.window = (self.window * 2).min(self.max_window);
        }
        self.fetched = 0;
        self.served = 0;
    }

    /// Bytes of window buffers alive now (cached, being read, or sliced into unsent blocks).
    pub(crate) fn alive(&self) -> usize {
        self.memory.alive()
    }

    /// Whether `block` lies across a window boundary (only a request not aligned to 16 KiB
    /// can): it is read on its own, not through the cache.
    pub(crate) fn straddles(&self, block: BlockInfo) -> bool {
        block.offset % self.window + block.len > self.window
    }

    /// How to serve `block`. A read that needs a window waits (`Deferred`, for the caller to
    /// queue) when memory is short, and also behind reads already waiting unless it is the
    /// first of them (`first_in_line`): new reads must not take every freed window.
    pub(crate) fn lookup(
        &mut self,
        block: BlockInfo,
        token: u64,
        piece_len: u32,
        first_in_line: bool,
    ) -> ReadPlan {
        let key = self.window_of(block);
        if let Some(cached) = self.cached.get_mut(&key) {
            cached.last_used = self.memory.tick();
            self.served += u64::from(block.len);
            return ReadPlan::Hit(slice(&cached.data, block.offset % key.size, block.len));
        }
        if let Some(fetch) = self.fetching.get_mut(&key) {
            fetch.waiters.push((token, block));
            return ReadPlan::Waiting;
        }
        if !first_in_line && !self.pending.is_empty() {
            return ReadPlan::Deferred;
        }
        let (_, len) = self.range(key, piece_len);
        if !self.make_room(len as usize) {
            self.memory.starve();
            // A window freed between the check and the flag would have found it unset.
            if !self.make_room(len as usize) {
                // Other torrents' idle caches may hold the memory.
                self.memory.press_for_room();
                return ReadPlan::Deferred;
            }
        }
        self.memory.charge(len as usize);
        self.fetched += u64::from(len);
        self.adapt();
        self.fetching.insert(
            key,
            Fetch {
                len: len as usize,
                charged: len as usize,
                chunks: Vec::new(),
                failed: false,
                waiters: vec![(token, block)],
            },
        );
        ReadPlan::Fetch(key)
    }

    /// Whether another `len` bytes fit under the bound, evicting cached windows (oldest first)
    /// to make them fit. Evicting a window that unsent blocks still slice frees nothing until
    /// they are sent, but keeps the cache from holding it on top.
    fn make_room(&mut self, len: usize) -> bool {
        while self.alive() + len > self.memory.max_alive() {
            if !self.evict_oldest() {
                return false;
            }
        }
        true
    }

    fn evict_oldest(&mut self) -> bool {
        let Some(oldest) = self
            .cached
            .iter()
            .min_by_key(|(_, c)| c.last_used)
            .map(|(k, _)| *k)
        else {
            return false;
        };
        self.evict(oldest);
        true
    }

    /// Drops window `key` from the cache (its memory is freed once its unsent blocks are sent).
    pub(crate) fn evict(&mut self, key: WindowKey) {
        if let Some(evicted) = self.cached.remove(&key) {
            self.memory.remove_cached(evicted.data.len());
        }
    }

    /// Each cached window: when it was last used, its key and its length.
    pub(crate) fn cached_windows(&self) -> impl Iterator<Item = (u64, WindowKey)> + '_ {
        self.cached.iter().map(|(key, c)| (c.last_used, *key))
    }

    /// Forgets the reads of `token` still waiting (for memory, or for their window).
    pub(crate) fn forget(&mut self, token: u64) {
        self.pending.retain(|&(waiting, _)| waiting != token);
        for fetch in self.fetching.values_mut() {
            fetch.waiters.retain(|&(waiting, _)| waiting != token);
        }
    }

    /// Whether reads wait for memory.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Queues a read behind those waiting for memory.
    pub(crate) fn defer(&mut self, token: u64, block: BlockInfo) {
        self.pending.push_back((token, block));
    }

    /// The first read waiting for memory, if it may fit now: a window was freed since the last
    /// look, or cached windows could be evicted for it (a read that still does not fit goes
    /// back with [`Self::defer_first`], having emptied the cache at most once).
    pub(crate) fn next_pending(&mut self) -> Option<(u64, BlockInfo)> {
        if self.pending.is_empty() {
            return None;
        }
        let count = self.memory.freed_count();
        let freed = count != self.seen_freed || std::mem::take(&mut self.retry);
        self.seen_freed = count;
        if !freed && self.cached.is_empty() {
            return None;
        }
        self.pending.pop_front()
    }

    /// Puts back the first waiting read, which still does not fit.
    pub(crate) fn defer_first(&mut self, token: u64, block: BlockInfo) {
        self.pending.push_front((token, block));
    }

    /// Waiting reads are looked at again without waiting for a window to be freed (the one
    /// at the front just got one).
    pub(crate) fn keep_going(&mut self) {
        self.retry = true;
    }

    /// A buffer for the whole window, split into one empty chunk per file slice (each with the
    /// capacity of its slice), so that reads land in place and join again without copying.
    pub(crate) fn start_fetch(
        &mut self,
        key: WindowKey,
        chunk_lens: impl Iterator<Item = usize>,
    ) -> Vec<BytesMut> {
        let Some(fetch) = self.fetching.get_mut(&key) else {
            return Vec::new();
        };
        let len = fetch.len;
        let reused = self.memory.reuse(len);
        let mut whole = reused.unwrap_or_else(|| BytesMut::with_capacity(len));
        whole.clear();
        // A spare buffer may be larger than the window: it counts for all of it.
        let extra = whole.capacity().saturating_sub(len);
        self.memory.charge(extra);
        fetch.charged = len + extra;
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
        fetch.chunks = (0..chunks.len()).map(|_| None).collect();
        chunks
    }

    pub(crate) fn chunk_done(&mut self, key: WindowKey, chunk: usize, buf: BytesMut) {
        if let Some(slot) = self
            .fetching
            .get_mut(&key)
            .and_then(|f| f.chunks.get_mut(chunk))
        {
            *slot = Some(buf);
        }
    }

    pub(crate) fn chunk_failed(&mut self, key: WindowKey, _chunk: usize, _buf: BytesMut) {
        if let Some(fetch) = self.fetching.get_mut(&key) {
            fetch.failed = true;
        }
    }

    /// Abandons a failed fetch and returns its waiters.
    pub(crate) fn fail(&mut self, key: WindowKey) -> Vec<(u64, BlockInfo)> {
        let Some(fetch) = self.fetching.remove(&key) else {
            return Vec::new();
        };
        self.memory.release(fetch.charged);
        fetch.waiters
    }

    /// Once every chunk of the window is in: caches it and returns its waiters' blocks.
    pub(crate) fn finish(&mut self, key: WindowKey) -> Vec<(u64, BlockInfo, Bytes)> {
        let complete = self.fetching.get(&key).is_some_and(|f| {
            !f.failed && !f.chunks.is_empty() && f.chunks.iter().all(Option::is_some)
        });
        if !complete {
            return Vec::new();
        }
        let Some(fetch) = self.fetching.remove(&key) else {
            return Vec::new();
        };
        let mut chunks = fetch.chunks.into_iter().flatten();
        let Some(mut whole) = chunks.next() else {
            self.memory.release(fetch.charged);
            return Vec::new();
        };
        for chunk in chunks {
            // Chunks were split from one buffer in order, so this only moves a length.
            whole.unsplit(chunk);
        }
        let data = Bytes::from_owner(WindowBuf {
            data: whole,
            charged: fetch.charged,
            memory: self.memory.clone(),
        });
        let served = fetch
            .waiters
            .into_iter()
            .map(|(token, block)| {
                let data = slice(&data, block.offset % key.size, block.len);
                (token, block, data)
            })
            .collect::<Vec<_>>();
        self.served += served
            .iter()
            .map(|(_, block, _)| u64::from(block.len))
            .sum::<u64>();
        self.insert(key, data);
        served
    }

    /// Caches a window. Past the pool's bound on cached windows, the pool's next sweep evicts
    /// the least recently used ones of every torrent (see [`ReadMemory`]).
    fn insert(&mut self, key: WindowKey, data: Bytes) {
        if data.len() > self.memory.max_cached() {
            return;
        }
        self.memory.add_cached(data.len());
        if self.memory.cached() > self.memory.max_cached() {
            self.memory.press();
        }
        let replaced = self.cached.insert(
            key,
            Cached {
                data,
                last_used: self.memory.tick(),
            },
        );
        if let Some(old) = replaced {
            self.memory.remove_cached(old.data.len());
        }
    }
}

impl Drop for ReadCache {
    /// A torrent that goes takes its cached windows off the pool's count with it: they would
    /// otherwise count for ever, and every sweep after would empty the other torrents' caches.
    fn drop(&mut self) {
        let bytes = self.cached.values().map(|c| c.data.len()).sum();
        self.memory.remove_cached(bytes);
    }
}

fn slice(data: &Bytes, offset: u32, len: u32) -> Bytes {
    let start = (offset as usize).min(data.len());
    let end = (start + len as usize).min(data.len());
    data.slice(start..end)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::backend::{Doorbell, Wake};

    struct NoWake;

    impl Wake for NoWake {
        fn wake(&self) {}
    }

    const WINDOW: u32 = 256 * 1024;

    fn cache() -> ReadCache {
        let doorbell = Arc::new(Doorbell {
            rung: AtomicBool::new(false),
            wake: Arc::new(NoWake),
        });
        ReadCache::new(WINDOW, ReadMemory::new(32 << 20, 64 << 20, doorbell))
    }

    /// Reads `block` through the cache, completing its window's read at once if it needs one.
    fn read(cache: &mut ReadCache, block: BlockInfo) {
        if let ReadPlan::Fetch(key) = cache.lookup(block, 1, WINDOW, true) {
            let (_, len) = cache.range(key, WINDOW);
            for (chunk, mut buf) in cache
                .start_fetch(key, [len as usize].into_iter())
                .into_iter()
                .enumerate()
            {
                buf.resize(len as usize, 0);
                cache.chunk_done(key, chunk, buf);
            }
            drop(cache.finish(key));
        }
    }

    fn block(piece: u32, index: u32) -> BlockInfo {
        BlockInfo {
            piece,
            offset: index * BLOCK_SIZE,
            len: BLOCK_SIZE,
        }
    }

    #[test]
    fn a_dropped_cache_gives_its_windows_back_to_the_pools_count() {
        let first = cache();
        let memory = first.memory.clone();
        let mut second = ReadCache::new(WINDOW, memory.clone());
        drop(first);
        read(&mut second, block(0, 0));
        read(&mut second, block(1, 0));
        assert_eq!(memory.cached(), 2 * WINDOW as usize);
        drop(second);
        assert_eq!(memory.cached(), 0);
        assert_eq!(memory.alive(), 0, "the windows themselves are freed too");
    }

    #[test]
    fn windows_shrink_while_most_of_what_is_read_goes_unserved_and_grow_back() {
        let mut cache = cache();
        // One block of each of many pieces: a sixteenth of every window is served.
        for piece in 0..(2 * ADAPT_EVERY / u64::from(WINDOW)) as u32 + 1 {
            read(&mut cache, block(piece, 0));
        }
        assert!(cache.window < WINDOW, "the window shrank: {}", cache.window);
        let shrunk = cache.window;
        // Now whole pieces in order: everything read is served.
        for piece in 0..(8 * ADAPT_EVERY / u64::from(BLOCK_SIZE)) as u32 / 16 {
            for index in 0..16 {
                read(&mut cache, block(100_000 + piece, index));
            }
        }
        assert!(
            cache.window > shrunk,
            "the window grew back: {}",
            cache.window
        );
        assert!(cache.window <= WINDOW);
    }
}
