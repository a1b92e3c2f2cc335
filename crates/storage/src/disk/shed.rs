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
use std::collections::HashMap;

use cratetorrent_metainfo::PieceIndex;
use cratetorrent_wire::BLOCK_SIZE;

use super::Disk;
use crate::StorageEvent;
use crate::hasher::HashJob;
use crate::memory::Charged;

impl Disk {
    /// While the gauge is over its cap: if blocks waiting behind gaps keep more than half of it
    /// (counted as the gauge counts them: a shared receive buffer once, whole), gives up the
    /// largest gaps until they keep at most a quarter.
    pub(super) fn shed_blocks_behind_gaps(&mut self) {
        if !self.gauge.is_over() {
            return;
        }
        let cap = self.gauge.cap();
        // Per piece: its first missing block and the charges of the blocks after it.
        let mut gaps: Vec<(PieceIndex, usize, Vec<Charged>)> = Vec::new();
        for (&piece, state) in &self.pieces {
            // Only pieces whose writes are done: a dropped block is written again when it comes
            // back, and two writes of one range in flight could land in either order.
            if state.unwritten > 0 {
                continue;
            }
            let Some(first_missing) = state.received.iter().position(|received| !received) else {
                continue;
            };
            let charges: Vec<Charged> = (first_missing + 1..state.received.len())
                .filter(|&index| state.received[index])
                .map(|index| state.charges[index])
                .collect();
            if !charges.is_empty() {
                gaps.push((piece, first_missing, charges));
            }
        }
        // A buffer counts once, and is freed only when none of its blocks is held any more.
        let mut users: HashMap<usize, (u64, usize)> = HashMap::new();
        let mut behind_gaps = 0u64;
        for charge in gaps.iter().flat_map(|(_, _, charges)| charges) {
            match charge.buffer {
                Some(buffer) => {
                    let entry = users.entry(buffer).or_insert((charge.bytes, 0));
                    if entry.1 == 0 {
                        behind_gaps += charge.bytes;
                    }
                    entry.1 += 1;
                }
                None => behind_gaps += charge.bytes,
            }
        }
        if behind_gaps <= cap / 2 {
            return;
        }
        let weight = |charges: &[Charged]| -> u64 { charges.iter().map(|c| c.bytes).sum() };
        gaps.sort_unstable_by_key(|(piece, _, charges)| (Reverse(weight(charges)), *piece));
        for (piece, first_missing, charges) in gaps {
            if behind_gaps <= cap / 4 {
                break;
            }
            for charge in &charges {
                match charge.buffer {
                    Some(buffer) => {
                        if let Some(entry) = users.get_mut(&buffer) {
                            entry.1 -= 1;
                            if entry.1 == 0 {
                                behind_gaps = behind_gaps.saturating_sub(entry.0);
                            }
                        }
                    }
                    None => behind_gaps = behind_gaps.saturating_sub(charge.bytes),
                }
            }
            let Some(state) = self.pieces.get_mut(&piece) else {
                continue;
            };
            let mut offsets = Vec::new();
            for index in first_missing + 1..state.received.len() {
                if state.received[index] {
                    state.received[index] = false;
                    state.charges[index] = Charged::default();
                    state.missing += 1;
                    offsets.push(index as u32 * BLOCK_SIZE);
                }
            }
            tracing::debug!(
                piece,
                blocks = offsets.len(),
                "giving up blocks waiting behind a gap"
            );
            self.hashers.push(HashJob::Shed {
                piece,
                from: (first_missing as u32 + 1) * BLOCK_SIZE,
            });
            self.emit(StorageEvent::BlocksDropped { piece, offsets });
        }
    }
}
