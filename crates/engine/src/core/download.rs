//! The download side of a torrent: which blocks to request from whom, and what to do when they
//! arrive or do not.
//!
//! A peer's pipeline is refilled after every block, from (in order) the pieces already in
//! progress, a newly picked piece, and in end-game the blocks others are still fetching. A piece
//! started by a fast peer is left to it (whole pieces for fast peers), so slow peers do not hold
//! the last blocks of many pieces.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use cratetorrent_metainfo::PieceIndex;
use cratetorrent_wire::{BLOCK_SIZE, Block, BlockInfo, Message};

use super::in_progress::{Arrival, EndGame};
use super::{Action, Core, PeerKey};
use crate::peer_addr::BanKey;

/// Withdrawn requests remembered per peer, as a multiple of the most we keep outstanding.
const WITHDRAWN_MEMORY: usize = 2;
/// The shortest a request may wait while later ones are answered before it counts as skipped.
const MIN_SKIP_TIMEOUT: Duration = Duration::from_secs(10);
/// A pipeline is refilled once this fraction of it (1/n) is free...
const REFILL_FRACTION: usize = 8;
/// ...or this many requests, whichever is fewer.
const MAX_REFILL_BATCH: usize = 16;
/// In end-game, a peer tops its pipeline up to this many requests with blocks that peers at
/// least half its speed are fetching (as libtorrent, which asks for a busy block only of a
/// peer with nothing outstanding): each such duplicate most likely arrives second, wasted.
/// Blocks held by slower, choking or snubbed peers it takes to its full pipeline.
const END_GAME_TOP_UP: usize = 4;

/// Which pieces in progress a peer's pipeline may be refilled from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Partials {
    /// Free blocks of pieces ranked (by priority, then rarity) no later than the rarest
    /// piece the peer could start instead (any, when it could start none).
    RankedUpTo(Option<u32>),
    /// Free blocks of any piece.
    Any,
    /// Blocks others are still fetching too.
    EndGame,
}

impl Core {
    /// Tops up the pipelines of every peer.
    pub(crate) fn fill_all(&mut self, now: Instant) {
        let keys = self.peers.keys();
        for key in keys {
            self.fill_requests(key, now);
        }
    }

    /// Tops up one peer's pipeline to its target depth.
    pub(crate) fn fill_requests(&mut self, key: PeerKey, now: Instant) {
        if self.seed_only || self.paused || !self.storage_ready {
            return;
        }
        let Some(peer) = self.peers.get(key) else {
            return;
        };
        if !peer.am_interested || peer.closing {
            return;
        }
        let target = peer.request_target(self.conf.max_out_requests);
        let mut need = target.saturating_sub(peer.requests.len());
        if need == 0 {
            return;
        }
        if peer.peer_choking {
            if peer.speaks_fast() && self.request_allowed_fast(key, need, now) > 0 {
                self.actions.push_back(Action::Wake(key));
            }
            return;
        }
        let before = need;
        // Pieces in progress go first, unless this peer has a rarer piece to start: blocks of
        // a piece others already hold, asked of the only peer with a rare one (the first seed,
        // typically), are that peer's upload spent on a copy the swarm did not need. With more
        // pieces in progress than 1.5 per peer, finishing them wins again (as in libtorrent),
        // so they do not pile up.
        let partials = self.in_progress.partial_count();
        let crowded = partials > self.peers.len() * 3 / 2;
        let cutoff = if self.conf.sequential || partials == 0 || crowded {
            None
        } else {
            self.picker.best_rank(|p| peer.has_piece(p))
        };
        need -= self.request_from_partials(key, need, Partials::RankedUpTo(cutoff), now);
        while need > 0 {
            let Some(piece) = self.pick_piece(key) else {
                break;
            };
            self.picker.take(piece);
            let blocks = self.geometry.block_count(piece).unwrap_or(0);
            let peer = &mut self.peers[key];
            let download = self.in_progress.start(piece, blocks, peer.tag);
            need -= download.request(peer, &self.geometry, piece, need, None, now);
        }
        if need > 0 && cutoff.is_some() {
            need -= self.request_from_partials(key, need, Partials::Any, now);
        }
        if need > 0 && !self.picker.has_pickable() {
            need -= self.request_from_partials(key, need, Partials::EndGame, now);
        }
        if need < before {
            self.actions.push_back(Action::Wake(key));
        }
    }

    fn pick_piece(&mut self, key: PeerKey) -> Option<PieceIndex> {
        if !self.conf.sequential
            && let Some(piece) = self.pick_suggested(key)
        {
            return Some(piece);
        }
        let peer = &self.peers[key];
        let has = |p| peer.has_piece(p);
        if self.conf.sequential {
            self.picker.pick_sequential(has)
        } else {
            self.picker.pick_rarest(has, &mut self.rng)
        }
    }

    fn request_from_partials(
        &mut self,
        key: PeerKey,
        need: usize,
        which: Partials,
        now: Instant,
    ) -> usize {
        let end_game = which == Partials::EndGame;
        let max_rank = match which {
            Partials::RankedUpTo(Some(rank)) => rank,
            _ => u32::MAX,
        };
        let mut sent = 0;
        let own_tag = self.peers[key].tag;
        // End-game skips blocks this peer already has outstanding: a set, not a scan of its
        // whole pipeline for every block considered.
        let asked: Option<HashSet<BlockInfo>> =
            end_game.then(|| self.peers[key].requests.iter().map(|r| r.block).collect());
        let max_requests = self.conf.max_end_game_requests;
        let game = asked.as_ref().map(|asked| EndGame {
            asked,
            max_requests,
        });
        let (rate, queued) = {
            let peer = &self.peers[key];
            (peer.downloaded.rate(), peer.requests.len())
        };
        for i in 0..self.in_progress.partial_count() {
            if sent == need {
                break;
            }
            let Some(piece) = self.in_progress.partial(i) else {
                break;
            };
            let Some(download) = self.in_progress.get(piece) else {
                continue;
            };
            let peer = &self.peers[key];
            if !peer.has_piece(piece) || (!end_game && !download.has_free()) {
                continue;
            }
            if max_rank != u32::MAX && self.picker.rank(piece).is_none_or(|rank| rank > max_rank) {
                continue;
            }
            if self.kept_by_owner(piece, download.owner(), own_tag, end_game) {
                continue;
            }
            let mut budget = need - sent;
            if end_game && !self.owner_is_slow(download.owner(), own_tag, rate) {
                budget = budget.min(END_GAME_TOP_UP.saturating_sub(queued + sent));
                if budget == 0 {
                    continue;
                }
            }
            let Some(download) = self.in_progress.get_mut(piece) else {
                continue;
            };
            sent += download.request(
                &mut self.peers[key],
                &self.geometry,
                piece,
                budget,
                game.as_ref(),
                now,
            );
        }
        sent
    }

    /// Whether a piece in progress stays with its `owner` instead of taking requests from the
    /// peer with `own_tag`: it is on parole with its owner still connected, or (outside
    /// end-game) its owner is fast enough to finish it alone.
    pub(super) fn kept_by_owner(
        &self,
        piece: PieceIndex,
        owner: u64,
        own_tag: u64,
        end_game: bool,
    ) -> bool {
        owner != own_tag
            && ((self.in_progress.on_parole(piece) && self.peers.by_tag(owner).is_some())
                || (!end_game && self.is_fast(owner)))
    }

    /// Whether blocks of a piece started by `owner` are worth asking for again in end-game by
    /// the peer with `own_tag`, downloading at `rate`: its owner is gone, chokes us, is
    /// snubbed, or is less than half as fast (the slow peer whose blocks make the tail).
    fn owner_is_slow(&self, owner: u64, own_tag: u64, rate: u64) -> bool {
        if owner == own_tag {
            return false;
        }
        let Some(peer) = self.peers.by_tag(owner).and_then(|k| self.peers.get(k)) else {
            return true;
        };
        peer.snubbed || peer.peer_choking || peer.downloaded.rate().saturating_mul(2) < rate
    }

    /// Whether the peer with `tag` downloads a whole piece within the request queue time.
    fn is_fast(&self, tag: u64) -> bool {
        let Some(peer) = self.peers.by_tag(tag).and_then(|k| self.peers.get(k)) else {
            return false;
        };
        let piece_length = f64::from(self.geometry.piece_len(0).unwrap_or(0));
        !peer.snubbed
            && !peer.peer_choking
            && peer.downloaded.rate() as f64 * self.conf.request_queue_time.as_secs_f64()
                >= piece_length
    }

    /// A block arrived.
    pub(crate) fn on_piece(&mut self, key: PeerKey, block: Block, now: Instant) {
        let info = block.info();
        let len = u64::from(info.len);
        let max_requests = self.conf.max_out_requests;
        let peer = &mut self.peers[key];
        peer.last_block = now;
        peer.downloaded.add(len);
        self.downloaded.add(len);
        if let Some(position) = peer.requests.iter().position(|r| r.block == info) {
            if let Some(request) = peer.requests.remove(position) {
                peer.round_trip
                    .sample(now.saturating_duration_since(request.sent));
            }
            peer.on_block(max_requests);
        } else if !peer.withdrawn.remove(&info) {
            // Only blocks we asked this peer for are used: anything else could be junk sprayed
            // into pieces others are fetching, failing them with blame spread over everyone.
            peer.unasked += 1;
            self.wasted += len;
            if peer.unasked > self.conf.max_unasked_blocks {
                // A megabyte of blocks nobody asked for is an attack (spraying junk into
                // pieces), not a guess at what we want: it may not come back.
                let ban_key = BanKey::of(peer.addr, peer.id);
                self.disconnect(key, "sent blocks we never asked for");
                self.ban(ban_key, "sending blocks we never asked for");
            }
            return;
        }
        let (tag, ban_key) = (peer.tag, BanKey::of(peer.addr, peer.id));
        let index = info.offset / BLOCK_SIZE;
        let valid = self.geometry.block(info.piece, index) == Some(info);
        let Some(download) = self.in_progress.get_mut(info.piece).filter(|_| valid) else {
            // Not in progress (already had, or cancelled and then done): wasted, not wrong.
            self.wasted += len;
            self.fill_requests(key, now);
            return;
        };
        let Arrival::Fresh { asked, complete } = download.receive(index as usize, ban_key) else {
            self.wasted += len;
            self.fill_requests(key, now);
            return;
        };
        if complete {
            self.in_progress.all_received(info.piece);
        }
        self.actions.push_back(Action::Write {
            piece: info.piece,
            offset: info.offset,
            data: block.data,
            tag,
        });
        if asked > 1 || (asked == 1 && !self.picker.has_pickable()) {
            self.cancel_elsewhere(key, info);
        }
        self.refill_after_block(key, now);
    }

    /// Tops up a peer's pipeline once it has room for a batch of requests, not after every block:
    /// a deep pipeline (hundreds of requests at loopback rates) then costs one walk over the
    /// pieces in progress per batch instead of one per 16 KiB. Shallow pipelines (slow start,
    /// slow peers) still refill at once, so the batch never leaves a peer idle.
    fn refill_after_block(&mut self, key: PeerKey, now: Instant) {
        let Some(peer) = self.peers.get(key) else {
            return;
        };
        let target = peer.request_target(self.conf.max_out_requests);
        let batch = (target / REFILL_FRACTION).clamp(1, MAX_REFILL_BATCH);
        if target.saturating_sub(peer.requests.len()) >= batch {
            self.fill_requests(key, now);
        }
    }

    /// End-game: the block came from `from`; withdraw it from everyone else.
    fn cancel_elsewhere(&mut self, from: PeerKey, block: cratetorrent_wire::BlockInfo) {
        let memory = WITHDRAWN_MEMORY * self.conf.max_out_requests;
        for (key, peer) in self.peers.iter_mut() {
            if key == from {
                continue;
            }
            if let Some(position) = peer.requests.iter().position(|r| r.block == block) {
                peer.requests.remove(position);
                peer.withdrawn.push_bounded(block, memory);
                peer.outbox.push(&Message::Cancel(block));
                self.actions.push_back(Action::Wake(key));
            }
        }
    }

    /// A peer announced `piece`. When it is the first peer besides seeds to have it and the
    /// piece is in progress here, what we still await of it from seeds moves to that peer: two
    /// leechers that picked the same piece nobody had would otherwise both take it whole from
    /// the seed, whose upload is the swarm's scarcest. The seed drops what we cancel before it
    /// goes out.
    pub(crate) fn on_piece_found(&mut self, holder: PeerKey, piece: PieceIndex, now: Instant) {
        if self.picker.availability_without_seeds(piece) != 1
            || !self.in_progress.contains(piece)
            || self.peers.get(holder).is_none_or(|p| p.peer_choking)
        {
            return;
        }
        let seeds: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(key, p)| {
                *key != holder && p.is_seed && p.requests.iter().any(|r| r.block.piece == piece)
            })
            .map(|(key, _)| key)
            .collect();
        for seed in seeds {
            self.withdraw_piece(seed, piece, now);
        }
        self.fill_requests(holder, now);
    }

    /// Cancels the peer's requests for blocks of `piece` and gives them back to the pool.
    pub(crate) fn withdraw_piece(&mut self, key: PeerKey, piece: PieceIndex, now: Instant) {
        if self.give_back(key, |block| block.piece == piece, true) {
            self.fill_requests(key, now);
        }
    }

    /// Gives a peer's outstanding requests back to the pool (on choke, timeout or disconnect).
    pub(crate) fn release_requests(&mut self, key: PeerKey, send_cancels: bool) {
        self.give_back(key, |_| true, send_cancels);
    }

    /// Takes the peer's requests for the blocks `which` picks, remembers them as withdrawn
    /// (their blocks may still come), optionally cancels them, and frees their blocks; returns
    /// whether there were any.
    fn give_back(
        &mut self,
        key: PeerKey,
        which: impl Fn(&BlockInfo) -> bool,
        send_cancels: bool,
    ) -> bool {
        let memory = WITHDRAWN_MEMORY * self.conf.max_out_requests;
        let Some(peer) = self.peers.get_mut(key) else {
            return false;
        };
        let mut given = Vec::new();
        peer.requests.retain(|request| {
            let give = which(&request.block);
            if give {
                given.push(request.block);
            }
            !give
        });
        for &block in &given {
            peer.withdrawn.push_bounded(block, memory);
            if send_cancels {
                peer.outbox.push(&Message::Cancel(block));
            }
        }
        if send_cancels && !given.is_empty() {
            self.actions.push_back(Action::Wake(key));
        }
        for &block in &given {
            self.free_block(block);
        }
        !given.is_empty()
    }

    /// A request given back: its block is free again (and the piece back in the picker if
    /// nothing of it remains).
    pub(super) fn free_block(&mut self, block: BlockInfo) {
        if self.in_progress.release(block) {
            self.picker.restore(block.piece);
        }
    }

    /// The storage gave up blocks that waited behind a missing one (they held its memory at
    /// the cap): they are free to be requested again.
    pub(crate) fn on_blocks_dropped(&mut self, piece: PieceIndex, offsets: &[u32]) {
        // Peers take them at their next refill or the tick: storage gives up many pieces at
        // once, and a walk over every peer per piece would be quadratic.
        self.in_progress.unreceive(piece, offsets);
    }

    /// A peer that has not sent a requested block for longer than its timeout is snubbed: its
    /// requests are cancelled and go to other peers, and it is left one request at a time.
    pub(crate) fn check_request_timeout(&mut self, key: PeerKey, now: Instant) {
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        let Some(oldest) = peer.requests.front() else {
            return;
        };
        let timeout = peer
            .round_trip
            .timeout(self.conf.min_request_timeout, self.conf.max_request_timeout);
        if now.saturating_duration_since(oldest.sent) > timeout
            && now.saturating_duration_since(peer.last_block) > timeout
        {
            tracing::debug!(addr = %peer.addr, ?timeout, "request timed out; peer snubbed");
            peer.snubbed = true;
            peer.slow_start = false;
            self.release_requests(key, true);
            return;
        }
        // Blocks keep coming but never the oldest one asked for: the peer skipped or withholds
        // it (answering requests in order is the rule). Give it to others rather than wait for
        // it forever; out-of-order answers within twice the timeout are tolerated.
        let skipped_after = (timeout * 2).max(MIN_SKIP_TIMEOUT);
        let memory = WITHDRAWN_MEMORY * self.conf.max_out_requests;
        let mut skipped = Vec::new();
        while let Some(oldest) = peer.requests.front()
            && now.saturating_duration_since(oldest.sent) > skipped_after
        {
            let block = oldest.block;
            peer.requests.pop_front();
            peer.withdrawn.push_bounded(block, memory);
            peer.outbox.push(&Message::Cancel(block));
            skipped.push(block);
        }
        if skipped.is_empty() {
            return;
        }
        tracing::debug!(addr = %peer.addr, skipped = skipped.len(), "requests skipped; peer snubbed");
        peer.snubbed = true;
        peer.slow_start = false;
        self.actions.push_back(Action::Wake(key));
        for block in skipped {
            self.free_block(block);
        }
    }
}
