//! Fetching a torrent's info dictionary from peers by BEP 9 (a torrent added by magnet link):
//! which metadata pieces are wanted, asked of whom and since when, what arrived and from whom,
//! and the check of the whole against the info-hash.
//!
//! The size is the first `metadata_size` a peer announces within the limit; peers announcing
//! another size are not asked. Each peer has at most [`PER_PEER`] pieces asked of it, so several
//! peers fetch at once. When the assembled dictionary does not hash to the info-hash, a single
//! sender is the culprit; with several, the next attempt takes every piece from one peer, so a
//! second failure names one.

use std::time::{Duration, Instant};

use bytes::Bytes;
use cratetorrent_metainfo::InfoHash;
use cratetorrent_wire::{METADATA_PIECE_LEN, metadata_piece_count, metadata_piece_len};

use super::PeerKey;
use crate::peer_addr::BanKey;

/// Metadata pieces asked of one peer at a time.
pub(super) const PER_PEER: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Wanted,
    Asked { peer: PeerKey, at: Instant },
    Received,
}

/// What a data message did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Arrival {
    /// Not asked of this peer, or of the wrong size: ignored (the sender may be misbehaving).
    Unasked,
    /// Stored; pieces are still missing.
    Stored,
    /// The last piece: the whole dictionary hashes to the info-hash.
    Complete(Bytes),
    /// The last piece, but the whole does not hash to the info-hash; `culprit` when one peer
    /// sent all of it. Everything is wanted again.
    Mismatch { culprit: Option<BanKey> },
}

/// The fetch of one torrent's metadata.
#[derive(Debug)]
pub(super) struct MetadataFetch {
    info_hash: InfoHash,
    max_size: u64,
    size: Option<u64>,
    buffer: Vec<u8>,
    slots: Vec<Slot>,
    senders: Vec<Option<BanKey>>,
    /// After a mismatch with several senders: every piece from the peer that sends first.
    single_source: Option<Option<PeerKey>>,
}

impl MetadataFetch {
    pub(super) fn new(info_hash: InfoHash, max_size: u64) -> Self {
        Self {
            info_hash,
            max_size,
            size: None,
            buffer: Vec::new(),
            slots: Vec::new(),
            senders: Vec::new(),
            single_source: None,
        }
    }

    /// A peer announced `size`; returns whether it may be asked (its size is the one we fetch).
    pub(super) fn offer_size(&mut self, size: u64) -> bool {
        if size == 0 || size > self.max_size {
            return false;
        }
        match self.size {
            Some(ours) => ours == size,
            None => {
                let pieces = metadata_piece_count(size) as usize;
                self.size = Some(size);
                self.slots = vec![Slot::Wanted; pieces];
                self.senders = vec![None; pieces];
                true
            }
        }
    }

    /// The size being fetched, once known.
    #[cfg(test)]
    pub(super) fn size(&self) -> Option<u64> {
        self.size
    }

    /// The next piece to ask `peer` for (marked asked), if it may have one more.
    pub(super) fn next_request(&mut self, peer: PeerKey, now: Instant) -> Option<u32> {
        if let Some(Some(source)) = self.single_source
            && source != peer
        {
            return None;
        }
        let asked = self
            .slots
            .iter()
            .filter(|s| matches!(s, Slot::Asked { peer: p, .. } if *p == peer))
            .count();
        if asked >= PER_PEER {
            return None;
        }
        let index = self.slots.iter().position(|s| *s == Slot::Wanted)?;
        self.slots[index] = Slot::Asked { peer, at: now };
        if self.single_source == Some(None) {
            self.single_source = Some(Some(peer));
        }
        u32::try_from(index).ok()
    }

    /// Piece `piece` arrived from `peer` (`sender` for blame).
    pub(super) fn on_data(
        &mut self,
        peer: PeerKey,
        sender: BanKey,
        piece: u32,
        total_size: u64,
        data: &[u8],
    ) -> Arrival {
        let Some(size) = self.size.filter(|&size| size == total_size) else {
            return Arrival::Unasked;
        };
        let index = piece as usize;
        let asked =
            matches!(self.slots.get(index), Some(Slot::Asked { peer: p, .. }) if *p == peer);
        if !asked || metadata_piece_len(size, piece) != Some(data.len() as u32) {
            return Arrival::Unasked;
        }
        if self.buffer.is_empty() {
            // Only now, once a peer actually sends: a size alone allocates nothing.
            self.buffer = vec![0; size as usize];
        }
        let start = index * METADATA_PIECE_LEN as usize;
        self.buffer[start..start + data.len()].copy_from_slice(data);
        self.slots[index] = Slot::Received;
        self.senders[index] = Some(sender);
        if self.slots.iter().any(|s| *s != Slot::Received) {
            return Arrival::Stored;
        }
        if InfoHash::of_info(&self.buffer) == self.info_hash {
            return Arrival::Complete(Bytes::from(std::mem::take(&mut self.buffer)));
        }
        let first = self.senders.first().copied().flatten();
        let culprit = first.filter(|f| self.senders.iter().all(|s| *s == Some(*f)));
        self.single_source = culprit.is_none().then_some(None);
        self.slots.fill(Slot::Wanted);
        self.senders.fill(None);
        Arrival::Mismatch { culprit }
    }

    /// `peer` rejected `piece`, or is gone (`piece` `None`: everything asked of it).
    pub(super) fn release(&mut self, peer: PeerKey, piece: Option<u32>) {
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if matches!(slot, Slot::Asked { peer: p, .. } if *p == peer)
                && piece.is_none_or(|piece| piece as usize == index)
            {
                *slot = Slot::Wanted;
            }
        }
        if self.single_source == Some(Some(peer)) {
            self.single_source = Some(None);
        }
    }

    /// Peers with a piece asked longer than `timeout` ago: their pieces are wanted again.
    pub(super) fn expire(&mut self, now: Instant, timeout: Duration) -> Vec<PeerKey> {
        let mut late: Vec<PeerKey> = self
            .slots
            .iter()
            .filter_map(|slot| match *slot {
                Slot::Asked { peer, at } if now.saturating_duration_since(at) >= timeout => {
                    Some(peer)
                }
                _ => None,
            })
            .collect();
        late.sort_unstable();
        late.dedup();
        for &peer in &late {
            self.release(peer, None);
        }
        late
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn key(n: u8) -> BanKey {
        BanKey::of(
            std::net::SocketAddr::from(([10, 0, 0, n], 6881)),
            cratetorrent_wire::PeerId::new([n; 20]),
        )
    }

    fn info(len: usize) -> Vec<u8> {
        // A byte string is as good as a dictionary here: only the hash is checked.
        let mut info = format!("{}:", len - 6).into_bytes();
        info.resize(len, b'x');
        info
    }

    #[test]
    fn pieces_come_from_several_peers_and_the_whole_is_checked() {
        let info = info(40_000);
        let mut fetch = MetadataFetch::new(InfoHash::of_info(&info), 1 << 20);
        let now = Instant::now();
        assert!(fetch.offer_size(40_000));
        assert!(!fetch.offer_size(39_999), "another size is not asked");
        assert_eq!(fetch.next_request(0, now), Some(0));
        assert_eq!(fetch.next_request(0, now), Some(1));
        assert_eq!(fetch.next_request(0, now), None, "two at a time");
        assert_eq!(fetch.next_request(1, now), Some(2));
        let piece = |i: usize| &info[i * 16384..((i + 1) * 16384).min(info.len())];
        assert_eq!(
            fetch.on_data(1, key(1), 0, 40_000, piece(0)),
            Arrival::Unasked
        );
        assert_eq!(
            fetch.on_data(1, key(1), 2, 40_000, &piece(2)[1..]),
            Arrival::Unasked
        );
        assert_eq!(
            fetch.on_data(1, key(1), 2, 40_000, piece(2)),
            Arrival::Stored
        );
        fetch.release(0, Some(1));
        assert_eq!(
            fetch.next_request(1, now),
            Some(1),
            "a rejected piece goes elsewhere"
        );
        assert_eq!(
            fetch.on_data(0, key(0), 0, 40_000, piece(0)),
            Arrival::Stored
        );
        assert_eq!(
            fetch.on_data(1, key(1), 1, 40_000, piece(1)),
            Arrival::Complete(Bytes::from(info.clone()))
        );
    }

    #[test]
    fn a_mismatch_blames_a_lone_sender_or_refetches_from_one_peer() {
        let info = info(20_000);
        let mut fetch = MetadataFetch::new(InfoHash::of_info(&info), 1 << 20);
        let now = Instant::now();
        assert!(fetch.offer_size(20_000));
        let bad = vec![b'y'; 16384];
        fetch.next_request(0, now);
        fetch.next_request(1, now);
        fetch.on_data(0, key(0), 0, 20_000, &bad);
        assert_eq!(
            fetch.on_data(1, key(1), 1, 20_000, &info[16384..]),
            Arrival::Mismatch { culprit: None }
        );
        // Now from one peer only: whoever is asked first gets every piece.
        assert_eq!(fetch.next_request(1, now), Some(0));
        assert_eq!(fetch.next_request(0, now), None);
        assert_eq!(fetch.next_request(1, now), Some(1));
        fetch.on_data(1, key(1), 0, 20_000, &bad);
        assert_eq!(
            fetch.on_data(1, key(1), 1, 20_000, &info[16384..]),
            Arrival::Mismatch {
                culprit: Some(key(1))
            }
        );
    }

    #[test]
    fn sizes_out_of_bounds_are_refused_and_late_peers_expire() {
        let mut fetch = MetadataFetch::new(InfoHash::new([0; 20]), 1000);
        assert!(!fetch.offer_size(0));
        assert!(!fetch.offer_size(1001));
        assert_eq!(fetch.size(), None);
        assert!(fetch.offer_size(1000));
        let now = Instant::now();
        assert_eq!(fetch.next_request(3, now), Some(0));
        assert!(fetch.expire(now, Duration::from_secs(5)).is_empty());
        assert_eq!(
            fetch.expire(now + Duration::from_secs(5), Duration::from_secs(5)),
            [3]
        );
        assert_eq!(fetch.next_request(4, now), Some(0));
    }
}
