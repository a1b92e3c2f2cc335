//! Receive buffers that are reused once storage is done with them.
//!
//! Blocks are zero-copy slices of the chunk a socket read filled, so a chunk stays allocated
//! until its last block is written and hashed. Allocating a fresh chunk for every 256 KiB read
//! makes the kernel fault in and zero 64 new pages each time (about a tenth of the leecher's
//! CPU on loopback); recycling retired chunks keeps a download on the same warm pages.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::{Arc, Weak};

use bytes::BytesMut;
use cratetorrent_storage::SharedBuffer;

/// Each receive buffer allocation.
pub(crate) const READ_CHUNK: usize = 256 * 1024;
/// Retired chunks remembered per network thread (8 MiB); older ones are simply freed.
const POOL_CHUNKS: usize = 32;

thread_local! {
    static RETIRED: RefCell<VecDeque<BytesMut>> = const { RefCell::new(VecDeque::new()) };
}

/// Gives `buf` at least `room` bytes of spare capacity, keeping its unread bytes (a partial
/// message): in place when nothing else shares its allocation, otherwise by moving them to a
/// recycled or new chunk and retiring the old one.
pub(crate) fn make_room(buf: &mut BytesMut, room: usize) {
    if buf.capacity() - buf.len() >= room || buf.try_reclaim(room) {
        return;
    }
    let need = buf.len() + room;
    let reused = RETIRED.with_borrow_mut(|retired| {
        let index = retired
            .iter_mut()
            .position(|chunk| chunk.try_reclaim(need))?;
        retired.swap_remove_back(index)
    });
    let mut fresh = reused.unwrap_or_else(|| BytesMut::with_capacity(need.max(READ_CHUNK)));
    fresh.extend_from_slice(buf);
    let mut old = std::mem::replace(buf, fresh);
    old.clear();
    RETIRED.with_borrow_mut(|retired| {
        if retired.len() == POOL_CHUNKS {
            retired.pop_front();
        }
        retired.push_back(old);
    });
}

/// The chunk a connection reads into now, so storage counts its blocks as the whole chunk they
/// keep allocated (a peer that sends each block followed by 240 KiB of junk would otherwise pin
/// 256 KiB per 16 KiB counted).
#[derive(Debug, Default)]
pub(crate) struct ChunkCharge {
    start: usize,
    end: usize,
    shared: Weak<SharedBuffer>,
}

impl ChunkCharge {
    /// Notes the allocation `buf` reads into now (after `make_room` it may be a new one: its
    /// unread bytes then start it, so everything split off it later lies inside).
    pub(crate) fn track(&mut self, buf: &BytesMut) {
        let at = buf.as_ptr() as usize;
        if at < self.start || at >= self.end {
            self.start = at;
            self.end = at + buf.capacity();
            self.shared = Weak::new();
        }
    }

    /// The shared buffer to hand storage with a block of the current chunk: the one its other
    /// held blocks share, or a new one once storage has released them all.
    pub(crate) fn buffer(&mut self) -> Arc<SharedBuffer> {
        if let Some(shared) = self.shared.upgrade() {
            return shared;
        }
        let shared = SharedBuffer::new(self.start, self.end - self.start);
        self.shared = Arc::downgrade(&shared);
        shared
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_chunk_is_reused_once_its_blocks_are_gone() {
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        buf.resize(READ_CHUNK - 100, 7);
        let first = buf.as_ptr();
        let block = buf.split_to(READ_CHUNK - 110).freeze();
        make_room(&mut buf, 32 * 1024);
        assert_eq!(buf.len(), 10, "the partial message moved along");
        assert_ne!(
            buf.as_ptr(),
            first,
            "the chunk is still shared by the block"
        );
        let second = buf.as_ptr();
        drop(block);
        buf.resize(READ_CHUNK - 50, 1);
        let block = buf.split_to(READ_CHUNK - 50).freeze();
        make_room(&mut buf, 32 * 1024);
        assert_eq!(
            buf.as_ptr(),
            first,
            "the first chunk came back from the pool"
        );
        drop(block);
        buf.resize(READ_CHUNK, 2);
        let _hold = buf.split_to(READ_CHUNK).freeze();
        make_room(&mut buf, 32 * 1024);
        assert_eq!(buf.as_ptr(), second);
    }

    #[test]
    fn an_unshared_buffer_is_reclaimed_in_place() {
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        let start = buf.as_ptr();
        buf.resize(READ_CHUNK - 10, 0);
        drop(buf.split_to(READ_CHUNK - 20).freeze());
        make_room(&mut buf, 32 * 1024);
        assert_eq!(buf.as_ptr(), start);
        assert_eq!(buf.len(), 10);
    }
}
