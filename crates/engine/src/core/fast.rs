//! The BEP 6 fast extension: `have all` / `have none` in place of a bitfield, explicit
//! `reject request`s (a choke no longer drops requests silently), the allowed-fast sets that
//! let a choked peer fetch a few pieces, and `suggest piece` hints.
//!
//! Both sides must announce the extension in the handshake's reserved bits; a peer that sends
//! these messages without it is dropped (see `Core::on_message`).

use std::time::Instant;

use bytes::Bytes;
use cratetorrent_metainfo::PieceIndex;
use cratetorrent_wire::{Bitfield, BlockInfo, Message, allowed_fast_set};

use super::{Action, Core, PeerKey};
use crate::peer::{MAX_ALLOWED_IN, MAX_SUGGESTED};

/// Blocks served to a choked peer, per allowed piece, before its set counts as spent (a peer
/// re-requesting the same allowed pieces forever would otherwise get a free upload slot).
const CHOKED_BLOCKS_PER_ALLOWED_PIECE: u32 = 2;
/// Control bytes queued for a peer past which it gets no more rejects: one that requests and
/// cancels without reading what we send would otherwise grow its queue 17 bytes at a time.
const MAX_REJECT_BACKLOG: usize = 32 * 1024;

impl Core {
    /// A fast-extension message from a peer that negotiated it. `first`: nothing was said of
    /// its pieces before.
    pub(super) fn on_fast_message(
        &mut self,
        key: PeerKey,
        message: Message,
        first: bool,
        now: Instant,
    ) {
        match message {
            Message::HaveAll if first => {
                let full = Bitfield::full(self.geometry.piece_count());
                self.on_pieces(key, full, now);
            }
            // BEP 6: in place of the bitfield, never after pieces were announced.
            Message::HaveAll | Message::HaveNone if !first => {
                self.disconnect(key, "have all/none after other piece messages");
            }
            Message::HaveNone => {}
            Message::RejectRequest(block) => self.on_reject(key, block),
            Message::AllowedFast(piece) => self.on_allowed_fast(key, piece, now),
            Message::SuggestPiece(piece) => self.on_suggest(key, piece),
            _ => {}
        }
    }

    /// What we say of our pieces once the handshake is done: `have all` or `have none` when
    /// the peer speaks the fast extension and they fit, else the bitfield (nothing when we
    /// have no piece); then the allowed-fast set.
    pub(super) fn greet(&mut self, key: PeerKey) {
        let known = self.metainfo.is_some();
        let have = self.have.count_ones();
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        let fast = peer.speaks_fast();
        if fast && known && self.have.is_full() {
            peer.outbox.push(&Message::HaveAll);
        } else if fast && have == 0 {
            peer.outbox.push(&Message::HaveNone);
        } else if have > 0 {
            peer.outbox.push(&Message::Bitfield(Bytes::copy_from_slice(
                self.have.as_bytes(),
            )));
        }
        if known {
            self.send_allowed_set(key);
        }
        self.actions.push_back(Action::Wake(key));
    }

    /// Tells a fast peer which pieces it may request while we choke it (once the metadata is
    /// known: the set depends on the piece count). A complete seed grants none: its upload is
    /// the swarm's scarcest, and every choked peer's allowed pieces are random copies that
    /// rarest first would not have sent (in the simulator, 40 leechers each granted 5 of a
    /// 200-piece torrent's pieces by its first seed spread its first copy over 80 % of the
    /// pieces instead of 89 %). Transmission grants none at all.
    pub(super) fn send_allowed_set(&mut self, key: PeerKey) {
        let k = if self.have.is_full() {
            0
        } else {
            self.conf.allowed_fast_set_size
        };
        let pieces = self.geometry.piece_count();
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        if !peer.speaks_fast() || k == 0 || pieces == 0 || !peer.fast.allowed_out.is_empty() {
            return;
        }
        let set = allowed_fast_set(peer.addr.ip(), &self.info_hash, pieces, k);
        for &piece in &set {
            peer.outbox.push(&Message::AllowedFast(piece));
        }
        peer.fast.allowed_out = set;
        self.actions.push_back(Action::Wake(key));
    }

    /// Whether a request from a peer we choke may be served: the piece is in its allowed-fast
    /// set, and the set is not spent (`FastPeer::served_choked` counts what was).
    pub(super) fn allowed_while_choked(&self, key: PeerKey, piece: PieceIndex) -> bool {
        let blocks_per_piece = self.geometry.block_count(0).unwrap_or(1);
        let Some(peer) = self.peers.get(key) else {
            return false;
        };
        let budget = (peer.fast.allowed_out.len() as u32)
            .saturating_mul(blocks_per_piece)
            .saturating_mul(CHOKED_BLOCKS_PER_ALLOWED_PIECE);
        peer.fast.allows(piece) && peer.fast.served_choked < budget
    }

    /// Answers a request we will not serve: a `reject request` to a fast peer (nothing to
    /// others, as BEP 3 has it), unless it leaves [`MAX_REJECT_BACKLOG`] unread.
    pub(super) fn reject(&mut self, key: PeerKey, block: BlockInfo) {
        if let Some(peer) = self.peers.get_mut(key)
            && peer.speaks_fast()
            && peer.outbox.control_len() < MAX_REJECT_BACKLOG
        {
            peer.outbox.push(&Message::RejectRequest(block));
            self.actions.push_back(Action::Wake(key));
        }
    }

    /// The peer will not send `block`. Its blocks go back to the pool; this peer is not asked
    /// again before the next refill (asking at once could ping-pong with a peer that rejects
    /// everything).
    fn on_reject(&mut self, key: PeerKey, block: BlockInfo) {
        let limit = self.conf.max_in_requests;
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        if let Some(position) = peer.requests.iter().position(|r| r.block == block) {
            peer.requests.remove(position);
            if peer.peer_choking {
                // Not (or no longer) allowed while choked: asking again would only be
                // rejected again (libtorrent drops the piece from the set too).
                peer.fast.allowed_in.retain(|&p| p != block.piece);
            }
            self.free_block(block);
        } else if !peer.withdrawn.remove(&block) {
            // Neither asked for nor cancelled (or cancelled too long ago to remember).
            peer.fast.stray_rejects += 1;
            if peer.fast.stray_rejects > limit {
                self.disconnect(key, "rejects of requests never made");
            }
        }
    }

    fn on_allowed_fast(&mut self, key: PeerKey, piece: PieceIndex, now: Instant) {
        // Before the metadata the piece count is unknown: kept, and checked when used.
        if self.metainfo.is_some() && piece >= self.geometry.piece_count() {
            return;
        }
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        let allowed = &mut peer.fast.allowed_in;
        if allowed.len() < MAX_ALLOWED_IN && !allowed.contains(&piece) {
            allowed.push(piece);
            if peer.peer_choking {
                self.fill_requests(key, now);
            }
        }
    }

    fn on_suggest(&mut self, key: PeerKey, piece: PieceIndex) {
        if self.metainfo.is_some() && piece >= self.geometry.piece_count() {
            return;
        }
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        let suggested = &mut peer.fast.suggested;
        if !suggested.contains(&piece) {
            if suggested.len() == MAX_SUGGESTED {
                suggested.pop_front();
            }
            suggested.push_back(piece);
        }
    }

    /// The newest piece the peer suggested that it has and we may start now.
    pub(super) fn pick_suggested(&mut self, key: PeerKey) -> Option<PieceIndex> {
        let pieces = self.geometry.piece_count();
        let peer = self.peers.get_mut(key)?;
        while let Some(&piece) = peer.fast.suggested.back() {
            peer.fast.suggested.pop_back();
            if piece < pieces && peer.has_piece(piece) && self.picker.is_pickable(piece) {
                return Some(piece);
            }
        }
        None
    }

    /// While the peer chokes us: requests for blocks of the pieces it allows us (BEP 6),
    /// up to `need`; returns how many were sent.
    pub(super) fn request_allowed_fast(
        &mut self,
        key: PeerKey,
        need: usize,
        now: Instant,
    ) -> usize {
        let pieces = self.geometry.piece_count();
        let Some(peer) = self.peers.get_mut(key) else {
            return 0;
        };
        // Pieces we have since are of no more use.
        let have = &self.have;
        peer.fast.allowed_in.retain(|&p| p < pieces && !have.get(p));
        let own_tag = peer.tag;
        let mut sent = 0;
        // By index: nothing below changes the set, and it is not copied per refill.
        for i in 0..self.peers[key].fast.allowed_in.len() {
            let piece = self.peers[key].fast.allowed_in[i];
            if sent == need {
                break;
            }
            if !self.peers[key].has_piece(piece) || !self.wants(piece) {
                continue;
            }
            if let Some(download) = self.in_progress.get(piece) {
                // As for any peer: a piece on parole or a fast peer's stays with its owner.
                if self.kept_by_owner(piece, download.owner(), own_tag, false) {
                    continue;
                }
            } else {
                if !self.picker.is_pickable(piece) {
                    continue;
                }
                self.picker.take(piece);
                let blocks = self.geometry.block_count(piece).unwrap_or(0);
                self.in_progress.start(piece, blocks, own_tag);
            }
            if let Some(download) = self.in_progress.get_mut(piece) {
                sent += download.request(
                    &mut self.peers[key],
                    &self.geometry,
                    piece,
                    need - sent,
                    None,
                    now,
                );
            }
        }
        sent
    }
}
