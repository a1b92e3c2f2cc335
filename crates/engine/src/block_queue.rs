//! An ordered set of blocks: first in, first out, and any block found and removed in O(log n).
//! It holds a peer's requests to us that we have not started reading (a stream of 17-byte
//! cancels against thousands of them costs nothing more than the set's upkeep) and the requests
//! we withdrew from a peer (the only unrequested blocks we still accept from it).

use std::collections::{BTreeMap, HashMap};

use cratetorrent_wire::BlockInfo;

#[derive(Debug, Default)]
pub(crate) struct BlockQueue {
    /// Arrival number → request, so the oldest is first.
    order: BTreeMap<u64, BlockInfo>,
    /// Request → its arrival number, to find it for a cancel.
    index: HashMap<BlockInfo, u64>,
    next: u64,
}

impl BlockQueue {
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

    /// Queues `block` at the back (moving it there if queued), dropping the oldest entries
    /// while more than `cap` are queued.
    pub(crate) fn push_bounded(&mut self, block: BlockInfo, cap: usize) {
        self.remove(&block);
        self.push(block);
        while self.len() > cap {
            self.pop_front();
        }
    }

    /// Empties the queue, returning its blocks oldest first.
    pub(crate) fn take_all(&mut self) -> Vec<BlockInfo> {
        self.index.clear();
        std::mem::take(&mut self.order).into_values().collect()
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
        let mut queue = BlockQueue::default();
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
        for piece in 0..10 {
            queue.push_bounded(block(piece), 3);
        }
        queue.push_bounded(block(7), 3);
        let kept: Vec<u32> = std::iter::from_fn(|| queue.pop_front())
            .map(|b| b.piece)
            .collect();
        assert_eq!(kept, [8, 9, 7], "the newest three, a repeat moved last");
    }
}
