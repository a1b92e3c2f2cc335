//! Giving up blocks that wait behind a gap, so memory held at the cap can never stall a torrent.
//!
//! The hasher keeps a piece's blocks that arrive after a missing one until the gap fills. At the
//! memory cap the engine stops reading sockets, so if those blocks alone keep the gauge above
//! half the cap, the blocks that would fill the gaps are never read and nothing moves again (a
//! peer that withholds the first block of every piece it sends causes exactly that, and slow
//! peers can by accident). Then the largest gaps are given up: the hasher drops the blocks, the
//! piece forgets it received them, and [`StorageEvent::BlocksDropped`] tells the engine to fetch
//! them again. Their data is already on disk and is simply written again.

use std::cmp::Reverse;

use cratetorrent_metainfo::PieceIndex;
use cratetorrent_wire::BLOCK_SIZE;

use super::Disk;
use crate::StorageEvent;
use crate::hasher::HashJob;

impl Disk {
    /// While the gauge is over its cap: if blocks waiting behind gaps hold more than half of
    /// it, gives up the largest gaps until they hold at most a quarter.
    pub(super) fn shed_blocks_behind_gaps(&mut self) {
        if !self.gauge.is_over() {
            return;
        }
        let cap = self.gauge.cap();
        let mut gaps: Vec<(PieceIndex, u64, usize)> = Vec::new();
        for (&piece, state) in &self.pieces {
            let Some(first_missing) = state.received.iter().position(|received| !received) else {
                continue;
            };
            let piece_len = self.layout.metainfo().piece_len(piece).unwrap_or(0);
            let bytes: u64 = (first_missing + 1..state.received.len())
                .filter(|&index| state.received[index])
                .map(|index| block_len(piece_len, index))
                .sum();
            // Only pieces whose writes are done: a dropped block is written again when it comes
            // back, and two writes of one range in flight could land in either order.
            if bytes > 0 && state.unwritten == 0 {
                gaps.push((piece, bytes, first_missing));
            }
        }
        let behind_gaps: u64 = gaps.iter().map(|&(_, bytes, _)| bytes).sum();
        if behind_gaps <= cap / 2 {
            return;
        }
        gaps.sort_unstable_by_key(|&(piece, bytes, _)| (Reverse(bytes), piece));
        let mut excess = behind_gaps - cap / 4;
        for (piece, bytes, first_missing) in gaps {
            if excess == 0 {
                break;
            }
            let Some(state) = self.pieces.get_mut(&piece) else {
                continue;
            };
            let mut offsets = Vec::new();
            for index in first_missing + 1..state.received.len() {
                if state.received[index] {
                    state.received[index] = false;
                    state.missing += 1;
                    offsets.push(index as u32 * BLOCK_SIZE);
                }
            }
            tracing::debug!(piece, bytes, "giving up blocks waiting behind a gap");
            self.hashers.push(HashJob::Shed {
                piece,
                from: (first_missing as u32 + 1) * BLOCK_SIZE,
            });
            self.emit(StorageEvent::BlocksDropped { piece, offsets });
            excess = excess.saturating_sub(bytes);
        }
    }
}

fn block_len(piece_len: u32, index: usize) -> u64 {
    let start = (index as u64) * u64::from(BLOCK_SIZE);
    u64::from(piece_len)
        .saturating_sub(start)
        .min(u64::from(BLOCK_SIZE))
}
