//! Pieces being downloaded: the state of each block (free, asked of some peers, received) and
//! who sent it, which pieces still have blocks to receive (oldest first), and which are on
//! parole (the next attempt after a failure with several senders comes from one peer).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use cratetorrent_metainfo::PieceIndex;
use cratetorrent_wire::{BLOCK_SIZE, BlockInfo, Geometry, Message};

use crate::peer::{Outstanding, Peer};
use crate::peer_addr::BanKey;

/// Block state: 0 = free, 1..RECEIVED = requested from that many peers.
const RECEIVED: u8 = u8::MAX;
/// `PieceDownload::senders` of a block nobody has sent.
const NO_SENDER: u16 = u16::MAX;

/// A piece being downloaded.
#[derive(Debug)]
pub(super) struct PieceDownload {
    states: Vec<u8>,
    /// No block before this index is free: where the next scan for free blocks starts.
    first_free: usize,
    free: u32,
    received: u32,
    /// The peer that started it (by tag).
    owner: u64,
    /// Who sent its blocks, for blame if it fails its hash.
    contributors: Vec<BanKey>,
    /// Per block, the index in `contributors` of its sender, for a smart ban.
    senders: Vec<u16>,
}

/// What became of a block that arrived, from [`PieceDownload::receive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Arrival {
    /// Already received from someone else: wasted.
    Duplicate,
    /// New: `asked` is how many peers it was requested from (0 when it had been given back),
    /// `complete` whether it was the piece's last missing block.
    Fresh { asked: u8, complete: bool },
}

/// End-game: what the peer has outstanding, and how many peers one block may be asked of.
pub(super) struct EndGame<'a> {
    pub(super) asked: &'a HashSet<BlockInfo>,
    pub(super) max_requests: u8,
}

impl PieceDownload {
    fn new(blocks: u32, owner: u64) -> Self {
        Self {
            states: vec![0; blocks as usize],
            first_free: 0,
            free: blocks,
            received: 0,
            owner,
            contributors: Vec::new(),
            senders: vec![NO_SENDER; blocks as usize],
        }
    }

    /// The tag of the peer that started it.
    pub(super) fn owner(&self) -> u64 {
        self.owner
    }

    /// Whether some block is neither asked for nor received.
    pub(super) fn has_free(&self) -> bool {
        self.free > 0
    }

    /// Everyone who sent a block of it.
    pub(super) fn contributors(&self) -> &[BanKey] {
        &self.contributors
    }

    /// Who sent each block (`None` for a block never received).
    pub(super) fn senders(&self) -> Vec<Option<BanKey>> {
        self.senders
            .iter()
            .map(|&sender| self.contributors.get(usize::from(sender)).copied())
            .collect()
    }

    fn is_untouched(&self) -> bool {
        self.received == 0 && self.free as usize == self.states.len()
    }

    /// Requests up to `need` blocks of `piece` from `peer`: free ones, or in end-game ones
    /// requested elsewhere (fewer than `max_requests` times, and not of this peer); returns
    /// how many.
    pub(super) fn request(
        &mut self,
        peer: &mut Peer,
        geometry: &Geometry,
        piece: PieceIndex,
        need: usize,
        end_game: Option<&EndGame<'_>>,
        now: Instant,
    ) -> usize {
        let mut sent = 0;
        let asked = end_game.map(|e| e.asked);
        let max_duplicates = end_game.map_or(1, |e| e.max_requests.max(1));
        let end_game = end_game.is_some();
        let start = if end_game { 0 } else { self.first_free };
        for (index, state) in self.states.iter_mut().enumerate().skip(start) {
            if sent == need {
                break;
            }
            if !end_game && *state != 0 && index == self.first_free {
                self.first_free += 1;
            }
            let eligible = if end_game {
                (1..max_duplicates).contains(state)
            } else {
                *state == 0
            };
            if !eligible {
                continue;
            }
            let Some(block) = geometry.block(piece, index as u32) else {
                continue;
            };
            if asked.is_some_and(|asked| asked.contains(&block)) {
                continue;
            }
            if *state == 0 {
                self.free -= 1;
                if index == self.first_free {
                    self.first_free += 1;
                }
            }
            *state += 1;
            peer.requests.push_back(Outstanding { block, sent: now });
            peer.outbox.push(&Message::Request(block));
            sent += 1;
        }
        sent
    }

    /// Block `index` arrived from `sender`.
    pub(super) fn receive(&mut self, index: usize, sender: BanKey) -> Arrival {
        let Some(&state) = self.states.get(index) else {
            return Arrival::Duplicate;
        };
        if state == RECEIVED {
            return Arrival::Duplicate;
        }
        if state == 0 {
            self.free -= 1;
        }
        self.states[index] = RECEIVED;
        self.received += 1;
        let sender = match self.contributors.iter().position(|&c| c == sender) {
            Some(sender) => sender,
            None => {
                self.contributors.push(sender);
                self.contributors.len() - 1
            }
        };
        self.senders[index] = u16::try_from(sender).unwrap_or(NO_SENDER);
        Arrival::Fresh {
            asked: state,
            complete: self.received as usize == self.states.len(),
        }
    }

    /// One request for block `index` was given back; returns whether nothing of the piece is
    /// asked for or received any more.
    fn release(&mut self, index: usize) -> bool {
        if let Some(state) = self.states.get_mut(index)
            && (1..RECEIVED).contains(state)
        {
            *state -= 1;
            if *state == 0 {
                self.free += 1;
                self.first_free = self.first_free.min(index);
            }
        }
        self.is_untouched()
    }

    /// A received block was lost before it reached the disk: it is free again.
    fn unreceive(&mut self, index: usize) {
        if self.states.get(index) == Some(&RECEIVED) {
            self.states[index] = 0;
            self.senders[index] = NO_SENDER;
            self.free += 1;
            self.received -= 1;
            self.first_free = self.first_free.min(index);
        }
    }
}

/// Every piece being downloaded.
#[derive(Debug, Default)]
pub(super) struct InProgress {
    downloads: HashMap<PieceIndex, PieceDownload>,
    /// Pieces with blocks still to receive, oldest first.
    partials: Vec<PieceIndex>,
    /// Pieces that failed with blocks from several peers: the next attempt comes from one peer
    /// only, so a second failure identifies the culprit.
    parole: HashSet<PieceIndex>,
}

impl InProgress {
    /// Starts `piece` of `blocks` blocks for the peer with tag `owner`.
    pub(super) fn start(
        &mut self,
        piece: PieceIndex,
        blocks: u32,
        owner: u64,
    ) -> &mut PieceDownload {
        // Started pieces come from the picker, which holds no piece in progress.
        self.partials.push(piece);
        self.downloads
            .entry(piece)
            .insert_entry(PieceDownload::new(blocks, owner))
            .into_mut()
    }

    pub(super) fn get(&self, piece: PieceIndex) -> Option<&PieceDownload> {
        self.downloads.get(&piece)
    }

    pub(super) fn get_mut(&mut self, piece: PieceIndex) -> Option<&mut PieceDownload> {
        self.downloads.get_mut(&piece)
    }

    pub(super) fn contains(&self, piece: PieceIndex) -> bool {
        self.downloads.contains_key(&piece)
    }

    /// Stops downloading `piece` (it failed, or cannot be written); its parole stays.
    pub(super) fn remove(&mut self, piece: PieceIndex) -> Option<PieceDownload> {
        self.partials.retain(|&p| p != piece);
        self.downloads.remove(&piece)
    }

    /// `piece` verified: it is done with, parole included.
    pub(super) fn finish(&mut self, piece: PieceIndex) {
        self.remove(piece);
        self.parole.remove(&piece);
    }

    /// Every block of `piece` arrived: nothing of it is left to ask for.
    pub(super) fn all_received(&mut self, piece: PieceIndex) {
        self.partials.retain(|&p| p != piece);
    }

    /// Number of pieces with blocks still to receive.
    pub(super) fn partial_count(&self) -> usize {
        self.partials.len()
    }

    /// The `i`th oldest piece with blocks still to receive.
    pub(super) fn partial(&self, i: usize) -> Option<PieceIndex> {
        self.partials.get(i).copied()
    }

    /// Gives back one request for `block`; returns whether its piece is now untouched (and
    /// was dropped, to go back to the picker).
    pub(super) fn release(&mut self, block: BlockInfo) -> bool {
        let piece = block.piece;
        let Some(download) = self.downloads.get_mut(&piece) else {
            return false;
        };
        let untouched = download.release((block.offset / BLOCK_SIZE) as usize);
        if untouched {
            self.remove(piece);
        }
        untouched
    }

    /// The storage dropped received blocks of `piece` (at `offsets`): they are free again.
    pub(super) fn unreceive(&mut self, piece: PieceIndex, offsets: &[u32]) {
        let Some(download) = self.downloads.get_mut(&piece) else {
            return;
        };
        for &offset in offsets {
            download.unreceive((offset / BLOCK_SIZE) as usize);
        }
        if download.has_free() && !self.partials.contains(&piece) {
            self.partials.push(piece);
        }
    }

    /// The next attempt at `piece` comes from one peer.
    pub(super) fn put_on_parole(&mut self, piece: PieceIndex) {
        self.parole.insert(piece);
    }

    pub(super) fn on_parole(&self, piece: PieceIndex) -> bool {
        self.parole.contains(&piece)
    }
}
