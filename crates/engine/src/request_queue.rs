//! A peer's requests to us that we have not started reading: first in, first out, and a
//! `cancel` found and removed in O(log n), so a stream of 17-byte cancels against a queue of
//! thousands costs the network thread nothing more than the queue's own upkeep.

use std::collections::{BTreeMap, HashMap};

use cratetorrent_wire::BlockInfo;

#[derive(Debug, Default)]
pub(crate) struct RequestQueue {
    /// Arrival number → request, so the oldest is first.
    order: BTreeMap<u64, BlockInfo>,
    /// Request → its arrival number, to find it for a cancel.
    index: HashMap<BlockInfo, u64>,
    next: u64,
}

impl RequestQueue {
    /// Queues `block`; false (and nothing queued) if it is queued already.
    pub(crate) fn push(&mut self, block: BlockInfo) -> bool {
        if self.index.contains_key(&block) {
            return false;
        }
        self.index.insert(block, self.next);
        self.order.insert(self.next, block);
        self.next += 1;
        true
    }

    pub(crate) fn pop_front(&mut self) -> Option<BlockInfo> {
        let (_, block) = self.order.pop_first()?;
        self.index.remove(&block);
        Some(block)
    }

    /// Removes `block` if queued; returns whether it was.
    pub(crate) fn remove(&mut self, block: &BlockInfo) -> bool {
        match self.index.remove(block) {
            Some(number) => self.order.remove(&number).is_some(),
            None => false,
        }
    }

    pub(crate) fn contains(&self, block: &BlockInfo) -> bool {
        self.index.contains_key(block)
    }

    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    pub(crate) fn clear(&mut self) {
        self.order.clear();
        self.index.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(piece: u32) -> BlockInfo {
        BlockInfo {
            piece,
            offset: 0,
            len: 16384,
        }
    }

    #[test]
    fn first_in_first_out_with_removal_and_no_duplicates() {
        let mut queue = RequestQueue::default();
        for piece in 0..5 {
            assert!(queue.push(block(piece)));
        }
        assert!(!queue.push(block(2)), "a duplicate is not queued twice");
        assert!(queue.remove(&block(2)));
        assert!(!queue.remove(&block(2)));
        assert!(queue.push(block(2)), "queued again, now last");
        let order: Vec<u32> = std::iter::from_fn(|| queue.pop_front())
            .map(|b| b.piece)
            .collect();
        assert_eq!(order, [0, 1, 3, 4, 2]);
        assert_eq!(queue.len(), 0);
    }
}
