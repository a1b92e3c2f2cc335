//! Accounting of block bytes held in memory, for back-pressure.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

/// Counts the bytes of received blocks that are not yet both written and hashed.
pub(crate) struct MemoryGauge {
    held: AtomicU64,
    cap: u64,
    /// Set when the cap was reached; cleared (with a notification) once below half of it.
    over: AtomicBool,
    notify: Box<dyn Fn() + Send + Sync>,
}

impl MemoryGauge {
    pub(crate) fn new(cap: u64, notify: Box<dyn Fn() + Send + Sync>) -> Self {
        Self {
            held: AtomicU64::new(0),
            cap,
            over: AtomicBool::new(false),
            notify,
        }
    }

    /// Takes `len` bytes into account; returns true when the cap is now reached.
    pub(crate) fn hold(&self, len: u64) -> bool {
        let held = self.held.fetch_add(len, Ordering::AcqRel) + len;
        if held >= self.cap {
            self.over.store(true, Ordering::Release);
            // A release on another thread may have fallen to half the cap between the add and
            // the store, seen `over` unset and notified nobody: then notify here.
            if self.held.load(Ordering::Acquire) <= self.cap / 2
                && self.over.swap(false, Ordering::AcqRel)
            {
                (self.notify)();
            }
            return true;
        }
        false
    }

    fn release(&self, len: u64) {
        let held = self.held.fetch_sub(len, Ordering::AcqRel) - len;
        if held <= self.cap / 2 && self.over.swap(false, Ordering::AcqRel) {
            (self.notify)();
        }
    }

    pub(crate) fn held(&self) -> u64 {
        self.held.load(Ordering::Acquire)
    }

    pub(crate) fn is_over(&self) -> bool {
        self.over.load(Ordering::Acquire)
    }

    pub(crate) fn cap(&self) -> u64 {
        self.cap
    }
}

/// The receive buffer blocks were sliced from. A held block keeps its whole buffer allocated,
/// not just its own 16 KiB, so blocks handed over with their buffer are counted against the cap
/// as the buffer's whole size, once, for as long as any of them is held: the cap then bounds
/// the memory really kept, whatever a peer puts between its blocks.
///
/// The caller keeps only a [`std::sync::Weak`] to it between blocks, so the buffer stops
/// counting as soon as storage has released its last block.
#[derive(Debug)]
pub struct SharedBuffer {
    start: usize,
    len: usize,
    charged: OnceLock<Arc<MemoryGauge>>,
}

impl std::fmt::Debug for MemoryGauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MemoryGauge({}/{})", self.held(), self.cap)
    }
}

impl SharedBuffer {
    /// The buffer at addresses `start..start + len` (e.g. a `BytesMut`'s `as_ptr() as usize`
    /// and `capacity()` when it was allocated): blocks split off it are slices of that memory.
    pub fn new(start: usize, len: usize) -> Arc<Self> {
        Arc::new(Self {
            start,
            len,
            charged: OnceLock::new(),
        })
    }

    /// Whether `data` lies inside the buffer.
    pub fn contains(&self, data: &[u8]) -> bool {
        let at = data.as_ptr() as usize;
        at >= self.start && at + data.len() <= self.start + self.len
    }

    /// The buffer's size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for SharedBuffer {
    fn drop(&mut self) {
        if let Some(gauge) = self.charged.get() {
            gauge.release(self.len as u64);
        }
    }
}

/// What a held block is counted as.
enum Charge {
    /// Its own bytes.
    Own,
    /// Its buffer's, shared with the other blocks of that buffer (released when the last of
    /// them lets go of the buffer).
    Buffer(#[allow(dead_code, reason = "held for its Drop")] Arc<SharedBuffer>),
}

/// A received block, counted against the gauge until the last reference (the write or the hash,
/// whichever finishes last) drops it.
pub(crate) struct HeldBlock {
    pub(crate) data: Bytes,
    gauge: Arc<MemoryGauge>,
    charge: Charge,
}

impl HeldBlock {
    #[cfg(test)]
    pub(crate) fn new(data: Bytes, gauge: Arc<MemoryGauge>) -> (Arc<Self>, bool) {
        Self::new_in(data, gauge, None)
    }

    /// A block that is a slice of `buffer` (counted as the whole buffer, once); a block outside
    /// it, or without one, counts its own bytes.
    pub(crate) fn new_in(
        data: Bytes,
        gauge: Arc<MemoryGauge>,
        buffer: Option<&Arc<SharedBuffer>>,
    ) -> (Arc<Self>, bool) {
        let shared = buffer.filter(|b| b.contains(&data));
        let mut full = gauge.is_over();
        let charged = shared.filter(|buffer| {
            let charged_to = buffer.charged.get_or_init(|| {
                full = gauge.hold(buffer.len as u64);
                gauge.clone()
            });
            // A buffer counts against one torrent's cap; another's blocks count their own.
            Arc::ptr_eq(charged_to, &gauge)
        });
        let charge = match charged {
            Some(buffer) => Charge::Buffer(buffer.clone()),
            None => {
                full = gauge.hold(data.len() as u64);
                Charge::Own
            }
        };
        (
            Arc::new(Self {
                data,
                gauge,
                charge,
            }),
            full,
        )
    }
}

/// What a held block counts against the cap: its own bytes (`buffer == None`), or its share of
/// a buffer (by address) counted once for all the blocks that share it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Charged {
    pub(crate) buffer: Option<usize>,
    pub(crate) bytes: u64,
}

impl HeldBlock {
    pub(crate) fn charge(&self) -> Charged {
        match &self.charge {
            Charge::Own => Charged {
                buffer: None,
                bytes: self.data.len() as u64,
            },
            Charge::Buffer(buffer) => Charged {
                buffer: Some(buffer.start),
                bytes: buffer.len as u64,
            },
        }
    }
}

impl Drop for HeldBlock {
    fn drop(&mut self) {
        if matches!(self.charge, Charge::Own) {
            self.gauge.release(self.data.len() as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn blocks_of_one_buffer_count_the_whole_buffer_once_while_any_is_held() {
        let gauge = Arc::new(MemoryGauge::new(1 << 20, Box::new(|| {})));
        let mut chunk = bytes::BytesMut::with_capacity(256 * 1024);
        let buffer = SharedBuffer::new(chunk.as_ptr() as usize, chunk.capacity());
        chunk.resize(3 * 16_384, 7);
        let first = chunk.split_to(16_384).freeze();
        let second = chunk.split_to(16_384).freeze();
        let (a, _) = HeldBlock::new_in(first, gauge.clone(), Some(&buffer));
        let (b, _) = HeldBlock::new_in(second, gauge.clone(), Some(&buffer));
        drop(buffer);
        assert_eq!(gauge.held(), 256 * 1024, "the whole chunk, once");
        let (own, _) = HeldBlock::new_in(Bytes::from(vec![1u8; 100]), gauge.clone(), None);
        assert_eq!(gauge.held(), 256 * 1024 + 100);
        drop(own);
        drop(a);
        assert_eq!(gauge.held(), 256 * 1024, "kept while one block is held");
        drop(b);
        assert_eq!(gauge.held(), 0);
    }
}
