//! Accounting of block bytes held in memory, for back-pressure.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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

/// A received block, counted against the gauge until the last reference (the write or the hash,
/// whichever finishes last) drops it.
pub(crate) struct HeldBlock {
    pub(crate) data: Bytes,
    gauge: Arc<MemoryGauge>,
}

impl HeldBlock {
    pub(crate) fn new(data: Bytes, gauge: Arc<MemoryGauge>) -> (Arc<Self>, bool) {
        let full = gauge.hold(data.len() as u64);
        (Arc::new(Self { data, gauge }), full)
    }
}

impl Drop for HeldBlock {
    fn drop(&mut self) {
        self.gauge.release(self.data.len() as u64);
    }
}
