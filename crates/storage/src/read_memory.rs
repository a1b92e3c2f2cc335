//! The read memory every torrent of a disk pool shares: one count of the window buffers alive
//! (cached, being read, or sliced into blocks still queued to peers) under `max_read_memory`,
//! and one count of cached windows under `read_cache`, whatever the number of torrents. A
//! thousand seeding torrents hold what one would, not a thousand times it.
//!
//! Each torrent's [`ReadCache`](crate::read_cache::ReadCache) evicts its own windows first;
//! when that is not enough (its cache is empty and the memory is held by other torrents' idle
//! caches), or when the cached windows pass their bound, it raises `pressure`, and the pool's
//! thread then evicts the least recently used windows of every torrent, down to three quarters
//! of the cached bound (and of the memory bound when a read waits for room), so a sweep is
//! paid for by many reads.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::BytesMut;

use crate::backend::Doorbell;

/// Spare window buffers kept for reuse (reading into warm pages instead of faulting in new ones).
const POOL_SIZE: usize = 16;

/// What every window buffer of a pool shares.
pub(crate) struct ReadMemory {
    alive: AtomicUsize,
    max_alive: usize,
    /// Bytes of windows held by caches.
    cached: AtomicUsize,
    max_cached: usize,
    /// The clock of every cache's least-recently-used order, so that windows of different
    /// torrents compare.
    clock: AtomicU64,
    /// Reads wait for memory: a freed window rings the doorbell.
    starved: AtomicBool,
    /// Counts windows freed, so each cache sees whether one was freed since it last looked.
    freed: AtomicU64,
    /// A cache could not make room from its own windows, or the cached windows passed their
    /// bound: the pool should sweep every cache.
    pressure: AtomicBool,
    /// A read could not fit: the sweep also brings the memory alive down.
    short: AtomicBool,
    spare: Mutex<Vec<BytesMut>>,
    doorbell: Arc<Doorbell>,
}

impl ReadMemory {
    /// Room for `max_alive` bytes of window buffers, `max_cached` of them cached.
    pub(crate) fn new(max_cached: usize, max_alive: usize, doorbell: Arc<Doorbell>) -> Arc<Self> {
        Arc::new(Self {
            alive: AtomicUsize::new(0),
            max_alive,
            cached: AtomicUsize::new(0),
            max_cached,
            clock: AtomicU64::new(0),
            starved: AtomicBool::new(false),
            freed: AtomicU64::new(0),
            pressure: AtomicBool::new(false),
            short: AtomicBool::new(false),
            spare: Mutex::new(Vec::new()),
            doorbell,
        })
    }

    pub(crate) fn alive(&self) -> usize {
        self.alive.load(Ordering::Acquire)
    }

    pub(crate) fn max_alive(&self) -> usize {
        self.max_alive
    }

    pub(crate) fn charge(&self, len: usize) {
        self.alive.fetch_add(len, Ordering::AcqRel);
    }

    /// Gives back `len` bytes that were charged and says so to waiting reads.
    pub(crate) fn release(&self, len: usize) {
        self.alive.fetch_sub(len, Ordering::AcqRel);
        self.freed();
    }

    pub(crate) fn cached(&self) -> usize {
        self.cached.load(Ordering::Acquire)
    }

    pub(crate) fn max_cached(&self) -> usize {
        self.max_cached
    }

    pub(crate) fn add_cached(&self, len: usize) {
        self.cached.fetch_add(len, Ordering::AcqRel);
    }

    pub(crate) fn remove_cached(&self, len: usize) {
        self.cached.fetch_sub(len, Ordering::AcqRel);
    }

    /// The next tick of the shared least-recently-used clock.
    pub(crate) fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Reads will wait for memory: the next freed window rings the doorbell.
    pub(crate) fn starve(&self) {
        self.starved.store(true, Ordering::Release);
    }

    /// How many windows were freed so far (compare with an earlier value).
    pub(crate) fn freed_count(&self) -> u64 {
        self.freed.load(Ordering::Acquire)
    }

    /// Memory came back: waiting reads may fit now.
    pub(crate) fn freed(&self) {
        self.freed.fetch_add(1, Ordering::AcqRel);
        if self.starved.swap(false, Ordering::AcqRel) {
            self.doorbell.ring();
        }
    }

    /// The cached windows passed their bound: the least recently used of every torrent go.
    pub(crate) fn press(&self) {
        if !self.pressure.swap(true, Ordering::AcqRel) {
            self.doorbell.ring();
        }
    }

    /// A read does not fit, and its torrent has no window of its own to give up: other
    /// torrents' caches must give theirs.
    pub(crate) fn press_for_room(&self) {
        self.short.store(true, Ordering::Release);
        self.press();
    }

    /// Whether a sweep was asked for since the last call, and whether for room to read.
    pub(crate) fn take_pressure(&self) -> Option<bool> {
        self.pressure
            .swap(false, Ordering::AcqRel)
            .then(|| self.short.swap(false, Ordering::AcqRel))
    }

    /// Whether a sweep should evict more: the cached windows above three quarters of their
    /// bound, or, when a read waits for room, the memory alive above three quarters of its.
    pub(crate) fn above_low_water(&self, for_room: bool) -> bool {
        self.cached() > self.max_cached / 4 * 3
            || (for_room && self.alive() > self.max_alive / 4 * 3)
    }

    /// A spare buffer of at least `len` bytes' capacity, if one is kept.
    pub(crate) fn reuse(&self, len: usize) -> Option<BytesMut> {
        let mut spare = self.spare.lock().ok()?;
        let index = spare.iter().position(|b| b.capacity() >= len)?;
        Some(spare.swap_remove(index))
    }

    fn keep_spare(&self, mut buf: BytesMut) {
        buf.clear();
        if let Ok(mut spare) = self.spare.lock()
            && spare.len() < POOL_SIZE
        {
            spare.push(buf);
        }
    }
}

/// The owner of one window's bytes: frees them from the count when its last slice drops.
pub(crate) struct WindowBuf {
    pub(crate) data: BytesMut,
    /// What it counts for in `alive` (its allocation, which may be more than it shows).
    pub(crate) charged: usize,
    pub(crate) memory: Arc<ReadMemory>,
}

impl AsRef<[u8]> for WindowBuf {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for WindowBuf {
    fn drop(&mut self) {
        // Spare buffers are capacity, not data anyone waits on: they do not count.
        self.memory.keep_spare(std::mem::take(&mut self.data));
        self.memory.release(self.charged);
    }
}
