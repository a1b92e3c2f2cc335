//! The simulator's events, in the order they happen: by time, then by when they were
//! scheduled (so equal times replay in the same order).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use cratetorrent_storage::StorageEvent;

use super::{HostId, LinkId};
use crate::core::PeerKey;

/// Something that happens at a time.
#[derive(Debug)]
pub(super) enum Event {
    Timeout(HostId),
    /// A batch is on the wire: the sender's uplink is free again.
    Sent {
        host: HostId,
        key: PeerKey,
        bytes: usize,
    },
    Deliver {
        link: LinkId,
        side: usize,
        frames: Vec<Bytes>,
    },
    /// A dial reaches its target.
    Dial {
        from: HostId,
        to: HostId,
    },
    DialFailed {
        host: HostId,
        addr: SocketAddr,
    },
    Storage {
        host: HostId,
        event: StorageEvent,
    },
    Closed {
        host: HostId,
        key: PeerKey,
    },
    Join(HostId),
    Leave(HostId),
}

pub(super) struct Scheduled {
    pub(super) at: Instant,
    seq: u64,
    /// The host's generation the event was made in (stale events of a host that left are
    /// dropped).
    pub(super) generation: u32,
    pub(super) event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Events waiting for their time.
#[derive(Default)]
pub(super) struct Queue {
    heap: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
}

impl Queue {
    pub(super) fn push(&mut self, at: Instant, generation: u32, event: Event) {
        self.seq += 1;
        self.heap.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            generation,
            event,
        }));
    }

    /// The next event if it is due by `end`.
    pub(super) fn pop_until(&mut self, end: Instant) -> Option<Scheduled> {
        if self.heap.peek()?.0.at > end {
            return None;
        }
        self.heap.pop().map(|Reverse(scheduled)| scheduled)
    }
}
