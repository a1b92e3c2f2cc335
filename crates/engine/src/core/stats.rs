//! The torrent's stats: the snapshot the user sees, and when a periodic one is worth posting.
//!
//! A torrent with peers or traffic posts its stats at every `stats_interval`; an idle one only
//! when something the user sees has changed (as libtorrent posts state updates for changed
//! torrents only), so a thousand idle seeds cost no alert, and no JSON line, a second.

use crate::alert::{Alert, PeerStats, TorrentState, TorrentStats};

use super::Core;

/// What an idle torrent's stats show, to tell whether they changed since the last post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StatsMark {
    state: TorrentState,
    pieces_had: u32,
    downloaded: u64,
    uploaded: u64,
    wasted: u64,
    hash_failures: u32,
    peers_known: usize,
    priority_changes: u64,
}

impl Core {
    /// Posts the periodic stats unless the torrent is idle and shows what it showed last time.
    pub(super) fn post_periodic_stats(&mut self) {
        let busy = self.peers.len() > 0 || self.downloaded.rate() > 0 || self.uploaded.rate() > 0;
        let mark = self.stats_mark();
        if !busy && self.last_stats.as_ref() == Some(&mark) {
            return;
        }
        self.last_stats = Some(mark);
        let stats = self.stats();
        self.alerts.push_back(Alert::TorrentStats(Box::new(stats)));
    }

    fn stats_mark(&self) -> StatsMark {
        StatsMark {
            state: self.state(),
            pieces_had: self.have.count_ones(),
            downloaded: self.downloaded.total(),
            uploaded: self.uploaded.total(),
            wasted: self.wasted,
            hash_failures: self.hash_failures,
            peers_known: self.known.len(),
            priority_changes: self.priority_changes,
        }
    }

    fn state(&self) -> TorrentState {
        if self.paused {
            TorrentState::Paused
        } else if self.metainfo.is_none() {
            TorrentState::Metadata
        } else if self.is_finished() {
            TorrentState::Seeding
        } else {
            TorrentState::Downloading
        }
    }

    /// Bytes of the pieces still wanted, and of every selected piece (had or not): one pass,
    /// linear in the piece count, so for stats and announces and not the hot path.
    pub(super) fn stats_left_and_wanted(&self) -> (u64, u64) {
        let (mut left, mut wanted) = (0, 0);
        for piece in 0..self.geometry.piece_count() {
            let len = u64::from(self.geometry.piece_len(piece).unwrap_or(0));
            if self.seed_only || self.picker.priority(piece) > 0 {
                wanted += len;
            }
            if self.wants(piece) {
                left += len;
            }
        }
        (left, wanted)
    }

    /// The torrent's stats now.
    pub(crate) fn stats(&self) -> TorrentStats {
        let state = self.state();
        let (bytes_left, bytes_wanted) = self.stats_left_and_wanted();
        TorrentStats {
            id: self.id,
            info_hash: self.info_hash,
            state,
            pieces_had: self.have.count_ones(),
            piece_count: self.geometry.piece_count(),
            bytes_left,
            bytes_wanted,
            downloaded: self.downloaded.total(),
            uploaded: self.uploaded.total(),
            wasted: self.wasted,
            hash_failures: self.hash_failures,
            download_rate: self.downloaded.rate(),
            upload_rate: self.uploaded.rate(),
            peers: self
                .peers
                .iter()
                .map(|(_, p)| PeerStats {
                    addr: p.addr,
                    client: p.client.clone(),
                    outgoing: p.outgoing,
                    utp: p.link.utp,
                    encrypted: p.link.encrypted,
                    downloaded: p.downloaded.total(),
                    uploaded: p.uploaded.total(),
                    download_rate: p.downloaded.rate(),
                    upload_rate: p.uploaded.rate(),
                    pieces: if p.is_seed {
                        self.geometry.piece_count()
                    } else {
                        p.bitfield.count_ones()
                    },
                    am_choking: p.am_choking,
                    am_interested: p.am_interested,
                    peer_choking: p.peer_choking,
                    peer_interested: p.peer_interested,
                })
                .collect(),
            peers_known: self.known.len(),
            dht_nodes: 0,
            dht_peers: 0,
            dht_datagrams: (0, 0),
        }
    }
}
