//! What the storage reports: verified and failed pieces (with blame and bans), failed writes,
//! and file priorities, which change what is wanted.

use std::net::SocketAddr;
use std::time::Instant;

use cratetorrent_metainfo::PieceIndex;
use cratetorrent_storage::StorageError;
use cratetorrent_wire::Message;

use super::{Action, Core, PeerKey};
use crate::TorrentError;
use crate::alert::Alert;
use crate::peer_addr::BanKey;
use crate::smart_ban::Outcome;

impl Core {
    /// A piece was written and its hash matched.
    pub(crate) fn on_piece_verified(&mut self, piece: PieceIndex, now: Instant) {
        self.in_progress.finish(piece);
        let wanted = self.wants(piece);
        if !self.have.set(piece) {
            return;
        }
        if self.smart_bans.on_verified(piece) {
            self.actions.push_back(Action::HashBlocks(piece));
        }
        self.picker.take(piece);
        if wanted {
            self.wanted_missing = self.wanted_missing.saturating_sub(1);
        }
        let keys = self.peers.keys();
        let redundant = self.conf.send_redundant_have;
        for &key in &keys {
            let peer = &mut self.peers[key];
            let has = peer.has_piece(piece);
            if !has || redundant {
                peer.outbox.push(&Message::Have(piece));
                self.actions.push_back(Action::Wake(key));
            }
            if has && wanted {
                let peer = &mut self.peers[key];
                peer.interesting = peer.interesting.saturating_sub(1);
                self.update_interest(key, now);
            }
        }
        if self.is_finished() && !self.completed_alerted {
            self.completed_alerted = true;
            tracing::info!(torrent = %self.info_hash, "download complete");
            self.alerts.push_back(Alert::TorrentComplete(self.id));
            if self.have.is_full() {
                for key in keys {
                    if self.peers[key].is_seed {
                        self.disconnect(key, "both seeding");
                    }
                }
            }
        }
    }

    /// A piece failed its hash: download it again and hold its senders to account.
    pub(crate) fn on_hash_failed(&mut self, piece: PieceIndex, now: Instant) {
        self.hash_failures += 1;
        self.wasted += u64::from(self.geometry.piece_len(piece).unwrap_or(0));
        let Some(download) = self.in_progress.remove(piece) else {
            return;
        };
        if let [culprit] = download.contributors()[..] {
            if self.bans.strike(culprit) {
                self.ban(culprit, "sending corrupt data");
            }
        } else {
            // Blaming everyone would eventually ban honest peers that shared a piece with a
            // bad one; instead the retry comes from a single peer, and what each peer sent is
            // kept on record (smart ban) until the good data shows who differed.
            self.in_progress.put_on_parole(piece);
            if self.smart_bans.on_failed(piece, download.senders()) {
                // Fetched again once the failed data is on record, so no new block can be
                // written over it first.
                self.actions.push_back(Action::HashBlocks(piece));
                return;
            }
        }
        self.picker.restore(piece);
        self.fill_all(now);
    }

    /// The storage read back a piece's block hashes (after it failed, or after it passed).
    pub(crate) fn on_block_hashes(
        &mut self,
        piece: PieceIndex,
        hashes: Result<Vec<[u8; 20]>, StorageError>,
        now: Instant,
    ) {
        let hashes = hashes
            .map_err(|error| tracing::warn!(piece, %error, "reading a piece back failed"))
            .ok();
        match self.smart_bans.on_hashes(piece, hashes) {
            Outcome::Recorded => {
                if !self.have.get(piece) && !self.in_progress.contains(piece) {
                    self.picker.restore(piece);
                }
                self.fill_all(now);
            }
            Outcome::Culprits(culprits) => {
                for culprit in culprits {
                    tracing::info!(piece, ?culprit, "smart ban: sent a block that differs");
                    self.ban(culprit, "sending corrupt data");
                }
            }
            Outcome::Ignored => {}
        }
    }

    /// Bans `key` for `offence` and drops its connections.
    pub(crate) fn ban(&mut self, key: BanKey, offence: &'static str) {
        if !self.bans.insert(key) {
            return;
        }
        let matching: Vec<(PeerKey, SocketAddr)> = self
            .peers
            .iter()
            .filter(|(_, p)| BanKey::of(p.addr, p.id) == key)
            .map(|(k, p)| (k, p.addr))
            .collect();
        for (peer, addr) in matching {
            tracing::warn!(%addr, "banning peer for {offence}");
            self.known.update(addr, |known| known.banned = true);
            self.alerts
                .push_back(Alert::PeerBanned { id: self.id, addr });
            self.disconnect(peer, "banned");
        }
    }

    /// Writing failed; the pieces will be downloaded again. A full disk pauses the torrent
    /// (downloading on would only fetch data to throw away) until the user resumes it.
    pub(crate) fn on_write_failed(
        &mut self,
        pieces: &[PieceIndex],
        error: StorageError,
        now: Instant,
    ) {
        for &piece in pieces {
            if self.in_progress.remove(piece).is_some() {
                self.picker.restore(piece);
            }
        }
        let no_space = matches!(error, StorageError::NoSpace { .. });
        if no_space && self.paused {
            // Writes queued before the pause report the same full disk: one alert is enough.
            return;
        }
        self.alerts.push_back(Alert::TorrentError {
            id: self.id,
            error: TorrentError::Write(error),
        });
        if no_space {
            self.set_paused(true, now);
        } else {
            self.fill_all(now);
        }
    }

    // ---- settings ----

    /// Which files are wanted, if priorities were set (for the storage to park the others).
    pub(crate) fn wanted_files(&self) -> Option<Vec<bool>> {
        let priorities = self.file_priorities.as_ref()?;
        let count = self.metainfo.as_ref()?.files().len();
        Some(
            (0..count)
                .map(|index| priorities.get(index).is_none_or(|&p| p > 0))
                .collect(),
        )
    }

    /// Sets file priorities (0 = skip); missing entries keep the default.
    pub(crate) fn set_file_priorities(&mut self, priorities: &[u8], now: Instant) {
        let Some(metainfo) = &self.metainfo else {
            // The files are not known yet (a magnet link's metadata is being fetched).
            self.pending_priorities = Some(priorities.to_vec());
            return;
        };
        let piece_length = u64::from(metainfo.piece_length());
        let mut piece_priority = vec![0u8; self.geometry.piece_count() as usize];
        for (index, file) in metainfo.files().iter().enumerate() {
            if file.length() == 0 || file.is_padding() {
                continue;
            }
            let priority = priorities
                .get(index)
                .copied()
                .unwrap_or(crate::picker::DEFAULT_PRIORITY)
                .min(crate::picker::MAX_PRIORITY);
            let first = file.offset() / piece_length;
            let last = (file.offset() + file.length() - 1) / piece_length;
            for p in &mut piece_priority[first as usize..=last as usize] {
                *p = (*p).max(priority);
            }
        }
        for (piece, &priority) in piece_priority.iter().enumerate() {
            self.picker.set_priority(piece as PieceIndex, priority);
        }
        self.file_priorities = Some(priorities.to_vec());
        self.priority_changes += 1;
        if let Some(wanted) = self.wanted_files() {
            self.actions.push_back(Action::WantedFiles(wanted));
        }
        self.wanted_missing = (0..self.geometry.piece_count())
            .filter(|&p| self.wants(p))
            .count() as u32;
        let keys = self.peers.keys();
        for key in keys {
            let peer = &self.peers[key];
            let interesting = (0..self.geometry.piece_count())
                .filter(|&p| peer.has_piece(p) && self.wants(p))
                .count() as u32;
            self.peers[key].interesting = interesting;
            self.update_interest(key, now);
        }
        if self.is_finished() && !self.completed_alerted {
            self.completed_alerted = true;
            self.alerts.push_back(Alert::TorrentComplete(self.id));
        } else if !self.is_finished() {
            self.completed_alerted = false;
        }
    }
}
