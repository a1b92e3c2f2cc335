//! The upload side of a torrent: validating and queueing requests, reading blocks for them, and
//! deciding whom to serve (choking).

use std::time::Instant;

use bytes::Bytes;
use cratetorrent_storage::{PeerTag, StorageError};
use cratetorrent_wire::{BLOCK_SIZE, BlockInfo, Message};

use super::{Action, Core, PeerKey};
use crate::choker::{Candidate, Ranking, rechoke};

impl Core {
    pub(crate) fn on_interested(&mut self, key: PeerKey, now: Instant) {
        let slots = self.conf.unchoke_slots;
        let peer = &mut self.peers[key];
        peer.peer_interested = true;
        // Don't make a newcomer wait for the next rechoke when a slot is free (peers are
        // counted only then, not for every `interested` a peer repeats).
        if peer.am_choking
            && (slots == 0 || self.peers.iter().filter(|(_, p)| !p.am_choking).count() < slots)
        {
            self.unchoke(key, now);
        }
    }

    pub(crate) fn on_request(&mut self, key: PeerKey, block: BlockInfo) {
        if self.geometry.validate(&block).is_err() {
            self.disconnect(key, "invalid request");
            return;
        }
        let max_in = self.conf.max_in_requests;
        let have = self.have.get(block.piece);
        let choked = self.peers[key].am_choking && !self.allowed_while_choked(key, block.piece);
        let peer = &mut self.peers[key];
        // Requests while choked (outside the allowed-fast set), for pieces we lack, or beyond
        // the advertised queue are rejected to a fast peer and dropped silently otherwise, as
        // libtorrent does. A well-behaved peer has at most its queue in flight when we choke
        // it; one that keeps going is flooding.
        let duplicate = peer.incoming.contains(&block) || peer.reading.contains(&block);
        if choked || !have || duplicate || peer.incoming.len() >= max_in {
            peer.dropped_requests += 1;
            if peer.dropped_requests > max_in {
                self.disconnect(key, "request flood");
            } else if !duplicate {
                self.reject(key, block);
            }
            return;
        }
        if peer.am_choking {
            peer.fast.served_choked += 1;
        }
        peer.incoming.push(block);
        self.serve(key);
    }

    pub(crate) fn on_cancel(&mut self, key: PeerKey, block: BlockInfo) {
        let peer = &mut self.peers[key];
        // A read in flight that is forgotten has its result dropped; a block read and still
        // queued is not sent (a leecher that found the piece nearer cancels what it asked of
        // us, and our upload goes to what it still needs).
        // A fast peer hears that the block will not come (BEP 6 answers every request).
        if peer.incoming.remove(&block) || peer.reading.remove(&block) {
            self.reject(key, block);
            return;
        }
        if let Some(len) = peer.outbox.cancel_block(block.piece, block.offset) {
            // Counted as uploaded when queued; it never will be.
            peer.uploaded.take_back(len);
            self.uploaded.take_back(len);
            self.reject(key, block);
        }
    }

    /// Starts disk reads for queued requests while the peer's unsent data is under the watermark.
    pub(crate) fn serve(&mut self, key: PeerKey) {
        let watermark = self.conf.send_watermark;
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        while peer.outbox.len() + peer.writing + peer.reading.len() * (BLOCK_SIZE as usize)
            < watermark
        {
            let Some(block) = peer.incoming.pop_front() else {
                break;
            };
            peer.reading.insert(block);
            self.actions.push_back(Action::Read {
                block,
                token: peer.tag,
            });
        }
    }

    /// A block read for the peer with `token` finished.
    pub(crate) fn on_block_read(
        &mut self,
        token: PeerTag,
        block: BlockInfo,
        result: Result<Bytes, StorageError>,
    ) {
        let Some(key) = self.peers.by_tag(token) else {
            return;
        };
        let peer = &mut self.peers[key];
        if !peer.reading.remove(&block) {
            return;
        }
        match result {
            // A block read while the peer was unchoked (or allowed fast) goes out even if it
            // was choked since: the choke's rejects named only what was not being read.
            Ok(data) if !peer.closing => {
                let len = data.len() as u64;
                peer.outbox.push_block(block.piece, block.offset, data);
                peer.uploaded.add(len);
                self.uploaded.add(len);
                self.actions.push_back(Action::Wake(key));
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, ?block, "reading a block to upload failed");
                self.alerts.push_back(crate::Alert::TorrentError {
                    id: self.id,
                    error: crate::TorrentError::Read {
                        piece: block.piece,
                        source: error,
                    },
                });
                self.disconnect(key, "could not read the requested block");
                return;
            }
        }
        self.serve(key);
    }

    /// The writer took `bytes` from the outbox (`written == false`) or finished writing them.
    pub(crate) fn on_write_progress(
        &mut self,
        key: PeerKey,
        bytes: usize,
        written: bool,
        now: Instant,
    ) {
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        if written {
            peer.writing = peer.writing.saturating_sub(bytes);
            peer.last_sent = now;
            peer.send_progress = now;
            self.serve(key);
        } else {
            peer.writing += bytes;
        }
    }

    /// The peer's socket took some of a write that is still going on (or, with a time to
    /// come, the write waits for our upload limit until then: not the peer's doing).
    pub(crate) fn on_send_progress(&mut self, key: PeerKey, at: Instant) {
        if let Some(peer) = self.peers.get_mut(key) {
            peer.send_progress = peer.send_progress.max(at);
        }
    }

    /// A peer whose socket has taken nothing for `send_timeout` while data waits for it
    /// keeps that data (and the read buffers its blocks slice) for nothing: it is dropped.
    pub(crate) fn check_send_stall(&mut self, key: PeerKey, now: Instant) {
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        if peer.outbox.is_empty() && peer.writing == 0 {
            peer.send_progress = now;
        } else if now.saturating_duration_since(peer.send_progress) > self.conf.send_timeout {
            self.disconnect(key, "not reading what we send");
        }
    }

    pub(crate) fn unchoke(&mut self, key: PeerKey, now: Instant) {
        let peer = &mut self.peers[key];
        peer.am_choking = false;
        peer.last_unchoke = Some(now);
        peer.uploaded_at_unchoke = peer.uploaded.total();
        peer.dropped_requests = 0;
        peer.outbox.push(&Message::Unchoke);
        self.actions.push_back(Action::Wake(key));
    }

    pub(super) fn choke(&mut self, key: PeerKey) {
        let peer = &mut self.peers[key];
        peer.am_choking = true;
        peer.outbox.push(&Message::Choke);
        self.actions.push_back(Action::Wake(key));
        if !peer.speaks_fast() {
            // Without the fast extension a choke drops every request, on both sides.
            peer.incoming.clear();
            peer.reading.clear();
            return;
        }
        // With it, requests in the allowed-fast set stay; the others are rejected. Reads
        // already started finish and go out: the peer still wants them.
        for block in peer.incoming.take_all() {
            if peer.fast.allows(block.piece) {
                peer.incoming.push(block);
            } else {
                peer.outbox.push(&Message::RejectRequest(block));
            }
        }
    }

    /// Revisits who is unchoked (every 10 s, and when the optimistic slot rotates).
    pub(crate) fn rechoke(&mut self, rotate: bool, now: Instant) {
        let quota = u64::from(self.conf.seeding_piece_quota)
            * u64::from(self.geometry.piece_len(0).unwrap_or(0));
        // Peers are ranked by what moved in the last round (since the previous rechoke), as
        // libtorrent does: a 10 s window is steadier than the rate meters' few seconds, so a
        // peer that sends in bursts is not ranked by where the burst happened to fall.
        let candidates: Vec<Candidate> = self
            .peers
            .iter_mut()
            .filter(|(_, p)| !p.closing)
            .map(|(key, p)| {
                let (down, up) = (p.downloaded.total(), p.uploaded.total());
                let candidate = Candidate {
                    key,
                    interested: p.peer_interested,
                    download_rate: down - p.downloaded_at_rechoke,
                    upload_rate: up.saturating_sub(p.uploaded_at_rechoke),
                    in_quota: !p.am_choking && up.saturating_sub(p.uploaded_at_unchoke) < quota,
                    last_unchoke: p.last_unchoke,
                };
                p.downloaded_at_rechoke = down;
                p.uploaded_at_rechoke = up;
                candidate
            })
            .collect();
        let ranking = if self.is_finished() {
            Ranking::Seeding(self.conf.seed_choking)
        } else {
            Ranking::Downloading
        };
        let (unchoked, optimistic) = rechoke(
            &candidates,
            self.conf.unchoke_slots,
            ranking,
            self.optimistic,
            rotate,
            &mut self.rng,
        );
        self.optimistic = optimistic;
        let unchoked: std::collections::HashSet<usize> = unchoked.into_iter().collect();
        for candidate in candidates {
            let should = unchoked.contains(&candidate.key);
            let choking = self.peers[candidate.key].am_choking;
            if should && choking {
                self.unchoke(candidate.key, now);
            } else if !should && !choking {
                self.choke(candidate.key);
            }
        }
    }
}
