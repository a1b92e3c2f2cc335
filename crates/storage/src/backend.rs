//! The I/O backends: io_uring, or a `pwritev`/`preadv` thread pool where io_uring is unavailable.
//! Both take owned buffers and hand them back with the result, so data is never copied.

use std::fs::File;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Bytes, BytesMut};

/// What an operation does. Buffers are owned by the operation until it completes.
pub(crate) enum OpKind {
    /// Write the buffers, in order, at the offset (one vectored write).
    Write(Vec<Bytes>),
    /// Read `len` bytes at the offset, appending to the buffer.
    Read { buf: BytesMut, len: usize },
    /// Flush the file's data to stable storage.
    Sync,
    /// Start write-out of the dirty pages in `len` bytes from the offset, without waiting for it
    /// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`), so a later sync has little left to do.
    Writeback { len: u64 },
}

/// One disk operation on one file.
pub(crate) struct Op {
    pub(crate) id: u64,
    pub(crate) file: Arc<File>,
    pub(crate) offset: u64,
    pub(crate) kind: OpKind,
}

/// A finished operation: the byte count (or error) and the operation with its buffers.
pub(crate) struct Completion {
    pub(crate) result: io::Result<usize>,
    pub(crate) op: Op,
}

/// Wakes a backend blocked in [`Backend::wait`] from another thread.
pub(crate) trait Wake: Send + Sync {
    fn wake(&self);
}

/// A way to run disk operations asynchronously from the disk thread.
pub(crate) trait Backend {
    /// Starts `op`; its completion comes back from a later [`wait`](Self::wait).
    fn start(&mut self, op: Op);
    /// Blocks until at least one operation completes or [`Wake::wake`] is called, then appends
    /// the completions to `out`.
    fn wait(&mut self, out: &mut Vec<Completion>);
    /// Collects finished operations without blocking.
    fn poll(&mut self, out: &mut Vec<Completion>);
    /// The handle other threads use to interrupt [`wait`](Self::wait).
    fn waker(&self) -> Arc<dyn Wake>;
    /// A short name for logs and benchmarks.
    fn name(&self) -> &'static str;
}

/// The parts of `bufs` a write covers when capped at `max` bytes (fault injection: forces partial
/// writes); without a cap, all of them. Borrows the buffers: nothing is copied or allocated.
pub(crate) fn capped(bufs: &[Bytes], max: Option<usize>) -> impl Iterator<Item = &[u8]> {
    let mut room = max.unwrap_or(usize::MAX);
    bufs.iter().map_while(move |buf| {
        let take = buf.len().min(room);
        room -= take;
        (take > 0).then(|| &buf[..take])
    })
}

/// Wakes the disk thread at most once per drain of its queue.
pub(crate) struct Doorbell {
    pub(crate) rung: AtomicBool,
    pub(crate) wake: Arc<dyn Wake>,
}

impl Doorbell {
    pub(crate) fn ring(&self) {
        if !self.rung.swap(true, Ordering::AcqRel) {
            self.wake.wake();
        }
    }
}

/// Operations one torrent's disk state started, for the pool's thread to hand to the backend.
#[derive(Default)]
pub(crate) struct OpQueue {
    started: Vec<Op>,
    in_flight: usize,
}

impl OpQueue {
    pub(crate) fn start(&mut self, op: Op) {
        self.in_flight += 1;
        self.started.push(op);
    }

    /// Operations started and not yet completed.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The operations started since the last call, for the backend.
    pub(crate) fn drain_started(&mut self) -> std::vec::Drain<'_, Op> {
        self.started.drain(..)
    }

    /// One of them completed.
    pub(crate) fn completed(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }
}
