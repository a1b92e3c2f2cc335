//! What the engine tells its user, as a stream that a slow reader cannot turn into a leak.
//!
//! Stats are coalesced: only the latest per torrent is kept until read. Other alerts are queued
//! up to [`MAX_QUEUED`]; past that, errors are merged per torrent (the latest kept, with a count)
//! and bans and tracker alerts are dropped (they are logged too), so the queue stays bounded even if nobody reads
//! it. Started, metadata, complete and removed alerts are always kept: there is one per torrent
//! command.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use cratetorrent_metainfo::InfoHash;

use crate::TorrentId;

/// An event from the engine.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Alert {
    /// The torrent's existing data was checked; it is now downloading or seeding.
    TorrentStarted {
        /// The torrent.
        id: TorrentId,
        /// Pieces found complete on disk.
        pieces_had: u32,
        /// Pieces in the torrent.
        piece_count: u32,
    },
    /// The metadata of a torrent added by magnet link arrived and hashes to its info-hash; its
    /// files are opened next ([`Alert::TorrentStarted`] follows).
    MetadataReceived {
        /// The torrent.
        id: TorrentId,
        /// The metadata (with the magnet link's trackers and web seeds), e.g. to save as a
        /// `.torrent` ([`Metainfo::to_torrent_bytes`](cratetorrent_metainfo::Metainfo::to_torrent_bytes)).
        metainfo: Box<cratetorrent_metainfo::Metainfo>,
    },
    /// Periodic statistics: every `stats_interval` while the torrent has peers or traffic,
    /// and when they change while it has none (only the latest per torrent is kept until read).
    TorrentStats(Box<TorrentStats>),
    /// Every wanted piece is downloaded and verified.
    TorrentComplete(TorrentId),
    /// A peer was disconnected and banned for sending data that failed hash checks.
    PeerBanned {
        /// The torrent.
        id: TorrentId,
        /// The peer.
        addr: SocketAddr,
    },
    /// Something went wrong with a torrent (it may keep running, e.g. after a write error the
    /// affected pieces are downloaded again).
    TorrentError {
        /// The torrent.
        id: TorrentId,
        /// What happened, with its cause.
        error: crate::TorrentError,
    },
    /// The torrent was removed (and its data deleted if asked).
    TorrentRemoved(TorrentId),
    /// A tracker answered an announce.
    TrackerReply {
        /// The torrent.
        id: TorrentId,
        /// The tracker's announce URL.
        url: String,
        /// Peers it gave us (ourselves left out).
        peers: usize,
        /// Seeders it reports, if any.
        seeders: Option<u32>,
        /// Leechers it reports, if any.
        leechers: Option<u32>,
    },
    /// A tracker answered with a warning message.
    TrackerWarning {
        /// The torrent.
        id: TorrentId,
        /// The tracker's announce URL.
        url: String,
        /// What it said.
        message: String,
    },
    /// An announce failed (the torrent keeps going with the peers it has and retries later).
    TrackerError {
        /// The torrent.
        id: TorrentId,
        /// The tracker's announce URL.
        url: String,
        /// Why, with its cause.
        error: String,
    },
}

/// What a torrent is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TorrentState {
    /// Fetching the metadata from peers (a torrent added by magnet link).
    Metadata,
    /// Checking existing data.
    Checking,
    /// Downloading.
    Downloading,
    /// Has every wanted piece; uploading.
    Seeding,
    /// Paused by the user, or by the engine when the disk is full.
    Paused,
}

/// A torrent's counters and rates.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TorrentStats {
    /// The torrent.
    pub id: TorrentId,
    /// Its info-hash.
    pub info_hash: InfoHash,
    /// What it is doing.
    pub state: TorrentState,
    /// Pieces verified.
    pub pieces_had: u32,
    /// Pieces in the torrent.
    pub piece_count: u32,
    /// Bytes still needed of the wanted pieces.
    pub bytes_left: u64,
    /// Bytes of the wanted pieces, had or not (the whole torrent unless files were deselected;
    /// 0 before a magnet link's metadata arrives).
    pub bytes_wanted: u64,
    /// Payload bytes received this session (wasted ones included).
    pub downloaded: u64,
    /// Payload bytes sent this session.
    pub uploaded: u64,
    /// Payload bytes received that were not needed or failed their hash.
    pub wasted: u64,
    /// Pieces that failed their hash check.
    pub hash_failures: u32,
    /// Receive rate, bytes per second.
    pub download_rate: u64,
    /// Send rate, bytes per second.
    pub upload_rate: u64,
    /// Connected peers.
    pub peers: Vec<PeerStats>,
    /// Peer addresses known (connected, connecting or to dial later; from trackers, the DHT,
    /// PEX, LSD and the user).
    pub peers_known: usize,
    /// Nodes in the engine's DHT routing tables (0 with the DHT off).
    pub dht_nodes: usize,
    /// Peers the DHT has given this torrent so far.
    pub dht_peers: u64,
    /// Datagrams the engine's DHT node has sent and received since it started (engine-wide).
    pub dht_datagrams: (u64, u64),
}

/// One connected peer's counters.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PeerStats {
    /// Its address.
    pub addr: SocketAddr,
    /// Its client, from the peer id or the extended handshake.
    pub client: Option<String>,
    /// Whether we dialled it.
    pub outgoing: bool,
    /// Connected over uTP (else TCP).
    pub utp: bool,
    /// Its payload is RC4-encrypted (MSE).
    pub encrypted: bool,
    /// Payload bytes received from it.
    pub downloaded: u64,
    /// Payload bytes sent to it.
    pub uploaded: u64,
    /// Receive rate, bytes per second.
    pub download_rate: u64,
    /// Send rate, bytes per second.
    pub upload_rate: u64,
    /// Pieces it has.
    pub pieces: u32,
    /// We are choking it.
    pub am_choking: bool,
    /// We want something it has.
    pub am_interested: bool,
    /// It is choking us.
    pub peer_choking: bool,
    /// It wants something we have.
    pub peer_interested: bool,
}

/// Alerts queued before errors are merged and bans dropped.
pub(crate) const MAX_QUEUED: usize = 4096;

#[derive(Debug, Default)]
struct Queue {
    events: VecDeque<Alert>,
    /// Errors merged while the queue was full: count and latest, per torrent.
    merged_errors: BTreeMap<TorrentId, (u32, crate::TorrentError)>,
    stats: BTreeMap<TorrentId, Box<TorrentStats>>,
    waker: Option<Waker>,
    closed: bool,
}

/// The engine's side of the alert stream.
#[derive(Debug, Clone, Default)]
pub(crate) struct AlertSender {
    queue: Arc<Mutex<Queue>>,
}

impl AlertSender {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A poisoned lock only means a panic elsewhere; the queue itself is always consistent.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn post(&self, alert: Alert) {
        let mut queue = self.lock();
        match alert {
            Alert::TorrentStats(stats) => {
                queue.stats.insert(stats.id, stats);
            }
            Alert::TorrentError { id, error } if queue.events.len() >= MAX_QUEUED => {
                match queue.merged_errors.entry(id) {
                    std::collections::btree_map::Entry::Vacant(entry) => {
                        entry.insert((0, error));
                    }
                    std::collections::btree_map::Entry::Occupied(mut entry) => {
                        let merged = entry.get_mut();
                        merged.0 += 1;
                        merged.1 = error;
                    }
                }
            }
            // Logged where they happen, and repeated on the next announce: safe to drop.
            Alert::PeerBanned { .. }
            | Alert::TrackerReply { .. }
            | Alert::TrackerWarning { .. }
            | Alert::TrackerError { .. }
                if queue.events.len() >= MAX_QUEUED => {}
            other => queue.events.push_back(other),
        }
        if let Some(waker) = queue.waker.take() {
            waker.wake();
        }
    }

    pub(crate) fn close(&self) {
        let mut queue = self.lock();
        queue.closed = true;
        if let Some(waker) = queue.waker.take() {
            waker.wake();
        }
    }

    pub(crate) fn receiver(&self) -> Alerts {
        Alerts {
            sender: self.clone(),
        }
    }
}

/// The stream of [`Alert`]s; it ends after the engine shuts down.
#[derive(Debug)]
pub struct Alerts {
    sender: AlertSender,
}

impl futures::Stream for Alerts {
    type Item = Alert;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Alert>> {
        let mut queue = self.sender.lock();
        if let Some(alert) = queue.events.pop_front() {
            return Poll::Ready(Some(alert));
        }
        if let Some((id, (count, latest))) = queue.merged_errors.pop_first() {
            return Poll::Ready(Some(Alert::TorrentError {
                id,
                error: crate::TorrentError::Merged {
                    latest: Box::new(latest),
                    earlier: count,
                },
            }));
        }
        if let Some((_, stats)) = queue.stats.pop_first() {
            return Poll::Ready(Some(Alert::TorrentStats(stats)));
        }
        if queue.closed {
            return Poll::Ready(None);
        }
        queue.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn stats(id: u32, downloaded: u64) -> Alert {
        Alert::TorrentStats(Box::new(TorrentStats {
            id: TorrentId(id),
            info_hash: InfoHash::new([0; 20]),
            state: TorrentState::Downloading,
            pieces_had: 0,
            piece_count: 1,
            bytes_left: 1,
            bytes_wanted: 1,
            downloaded,
            uploaded: 0,
            wasted: 0,
            hash_failures: 0,
            download_rate: 0,
            upload_rate: 0,
            peers: Vec::new(),
            peers_known: 0,
            dht_nodes: 0,
            dht_peers: 0,
            dht_datagrams: (0, 0),
        }))
    }

    #[test]
    fn stats_coalesce_and_events_are_kept() {
        let sender = AlertSender::default();
        let mut alerts = sender.receiver();
        for i in 0..10_000 {
            sender.post(stats(1, i));
        }
        sender.post(Alert::TorrentComplete(TorrentId(1)));
        sender.close();
        let all: Vec<Alert> = futures::executor::block_on(alerts.by_ref().collect());
        assert_eq!(all.len(), 2, "{all:?}");
        assert!(matches!(all[0], Alert::TorrentComplete(TorrentId(1))));
        assert!(matches!(&all[1], Alert::TorrentStats(s) if s.downloaded == 9_999));
    }

    #[test]
    fn an_unread_queue_stays_bounded_and_keeps_every_error_counted() {
        let sender = AlertSender::default();
        let mut alerts = sender.receiver();
        for i in 0..MAX_QUEUED + 1000 {
            sender.post(Alert::TorrentError {
                id: TorrentId(1),
                error: crate::TorrentError::Duplicate(cratetorrent_metainfo::InfoHash::new(
                    [(i % 251) as u8; 20],
                )),
            });
        }
        sender.post(Alert::TorrentComplete(TorrentId(1)));
        sender.close();
        let all: Vec<Alert> = futures::executor::block_on(alerts.by_ref().collect());
        assert_eq!(all.len(), MAX_QUEUED + 2);
        assert!(matches!(all[MAX_QUEUED], Alert::TorrentComplete(_)));
        let Alert::TorrentError { error, .. } = &all[MAX_QUEUED + 1] else {
            panic!("{:?}", all[MAX_QUEUED + 1]);
        };
        let last = crate::TorrentError::Duplicate(cratetorrent_metainfo::InfoHash::new(
            [((MAX_QUEUED + 999) % 251) as u8; 20],
        ));
        assert_eq!(
            error.to_string(),
            format!("{last} (and 999 more errors while alerts went unread)")
        );
    }
}
