//! One torrent's protocol state, sans I/O: messages, time and disk results go in, actions come
//! out (frames queued in each peer's outbox, disk writes and reads, connects, disconnects,
//! alerts). The I/O shell in `torrent.rs` performs the actions; tests drive this directly.
//!
//! The download side (picking, pipelining, end-game, timeouts) is in `download.rs`, the upload
//! side (serving requests, choking) in `upload.rs`.

use std::collections::VecDeque;
use std::time::Instant;

use cratetorrent_metainfo::{InfoHash, Metainfo, PieceIndex};
use cratetorrent_wire::{
    Bitfield, EXTENDED_HANDSHAKE_ID, ExtendedHandshake, Extension, Extensions, Geometry, Message,
    PeerId,
};

use crate::TorrentId;
use crate::alert::Alert;
use crate::conf::TorrentConf;
use crate::extensions::{self, ExtMessage, PeerExtensions};
use crate::picker::Picker;
use crate::rate::RateMeter;
use crate::smart_ban::SmartBans;

mod bans;
mod disk_results;
mod door;
mod download;
mod fast;
mod hashes;
mod in_progress;
mod known;
mod lifecycle;
mod metadata;
mod metadata_fetch;
mod peers;
mod pex;
mod stats;
#[cfg(test)]
mod tests;
mod timers;
mod upload;

use bans::Bans;
pub(crate) use door::{Action, AnnounceState, Command, Handled, Input, Reject};
use in_progress::InProgress;
use known::KnownPeers;
pub(crate) use metadata::priority_of;
use metadata_fetch::MetadataFetch;
use peers::PeerTable;
use timers::Timers;

/// Index of a connected peer in its torrent.
pub(crate) type PeerKey = usize;

/// One torrent's state machine.
pub(crate) struct Core {
    id: TorrentId,
    metainfo: Option<Metainfo>,
    info_hash: InfoHash,
    our_id: PeerId,
    listen_port: u16,
    dht_port: Option<u16>,
    geometry: Geometry,
    /// While the metadata of a torrent added by magnet link is fetched: the link's parts and
    /// the fetch. `metainfo` is `None` until it is verified.
    magnet: Option<MagnetSource>,
    fetch: Option<MetadataFetch>,
    /// The storage is open (at once for a `.torrent`, after the metadata for a magnet link):
    /// nothing is requested before.
    storage_ready: bool,
    /// File priorities asked for before the metadata came, applied once it does.
    pending_priorities: Option<Vec<u8>>,
    /// The file priorities last set (None: every file wanted).
    file_priorities: Option<Vec<u8>>,
    conf: TorrentConf,
    /// `Mode::Seed`: upload only, never request.
    seed_only: bool,
    paused: bool,

    have: Bitfield,
    /// Wanted pieces not yet verified.
    wanted_missing: u32,
    picker: Picker,
    in_progress: InProgress,
    smart_bans: SmartBans,
    /// BEP 52 hash requests from peers, served from the piece layers.
    hash_server: hashes::HashServer,

    peers: PeerTable,
    known: KnownPeers,
    bans: Bans,
    optimistic: Option<PeerKey>,
    timers: Timers,
    completed_alerted: bool,
    /// What the last periodic stats showed (see `stats.rs`).
    last_stats: Option<stats::StatsMark>,
    /// Bumped at each change of file priorities, which changes the bytes wanted.
    priority_changes: u64,

    downloaded: RateMeter,
    uploaded: RateMeter,
    wasted: u64,
    hash_failures: u32,
    rng: fastrand::Rng,
    /// The storage is full: the shell reads nothing from peers until it has room.
    disk_full: bool,
    actions: VecDeque<Action>,
    alerts: VecDeque<Alert>,
}

/// Where a torrent's metadata comes from.
pub(crate) enum Source {
    /// A `.torrent`.
    Metainfo(Box<Metainfo>),
    /// A magnet link: the metadata is fetched from peers (BEP 9).
    Magnet(MagnetSource),
}

/// What a core needs of a magnet link.
#[derive(Debug, Clone)]
pub(crate) struct MagnetSource {
    pub(crate) info_hash: InfoHash,
    /// Tracker tiers.
    pub(crate) trackers: Vec<Vec<String>>,
    pub(crate) web_seeds: Vec<String>,
    /// BEP 53 `so`: the files to download (all when empty), applied once the metadata says
    /// which files there are, unless file priorities were set meanwhile.
    pub(crate) select_only: Vec<std::ops::RangeInclusive<usize>>,
}

/// What a new torrent starts from.
pub(crate) struct CoreInit {
    pub(crate) id: TorrentId,
    pub(crate) source: Source,
    pub(crate) our_id: PeerId,
    pub(crate) listen_port: u16,
    /// Our DHT node's UDP port, if it runs (BEP 5 `port` messages).
    pub(crate) dht_port: Option<u16>,
    pub(crate) conf: TorrentConf,
    pub(crate) seed_only: bool,
    pub(crate) have: Bitfield,
    /// Seeds every random choice the core makes (picking ties, optimistic unchokes).
    pub(crate) seed: u64,
}

impl Core {
    pub(crate) fn new(init: CoreInit, now: Instant) -> Self {
        let (metainfo, magnet) = match init.source {
            Source::Metainfo(metainfo) => (Some(*metainfo), None),
            Source::Magnet(magnet) => (None, Some(magnet)),
        };
        let info_hash = match (&metainfo, &magnet) {
            (Some(metainfo), _) => metainfo.info_hash(),
            (None, Some(magnet)) => magnet.info_hash,
            (None, None) => InfoHash::new([0; 20]),
        };
        let fetch = magnet
            .as_ref()
            .map(|m| MetadataFetch::new(m.info_hash, init.conf.max_metadata_size));
        let geometry = metainfo.as_ref().map_or(Geometry::empty(), Geometry::of);
        let piece_count = geometry.piece_count();
        let picker = Picker::new(piece_count, &init.have);
        let wanted_missing = piece_count - init.have.count_ones();
        let max_failures = init.conf.max_peer_failures;
        let max_known = init.conf.max_known_peers;
        let max_strikes = init.conf.max_strikes;
        let starts_complete = metainfo.is_some() && wanted_missing == 0;
        Self {
            id: init.id,
            info_hash,
            storage_ready: metainfo.is_some(),
            metainfo,
            magnet,
            fetch,
            pending_priorities: None,
            file_priorities: None,
            our_id: init.our_id,
            listen_port: init.listen_port,
            dht_port: init.dht_port,
            geometry,
            conf: init.conf,
            seed_only: init.seed_only,
            paused: false,
            have: init.have,
            wanted_missing,
            picker,
            in_progress: InProgress::default(),
            smart_bans: SmartBans::default(),
            hash_server: hashes::HashServer::default(),
            peers: PeerTable::new(),
            known: KnownPeers::new(max_known, max_failures),
            bans: Bans::new(max_strikes),
            optimistic: None,
            timers: Timers::new(now),
            // A torrent that starts complete has nothing to announce.
            completed_alerted: starts_complete,
            last_stats: None,
            priority_changes: 0,
            downloaded: RateMeter::default(),
            uploaded: RateMeter::default(),
            wasted: 0,
            hash_failures: 0,
            rng: fastrand::Rng::with_seed(init.seed),
            disk_full: false,
            actions: VecDeque::new(),
            alerts: VecDeque::new(),
        }
    }

    pub(crate) fn id(&self) -> TorrentId {
        self.id
    }

    pub(crate) fn info_hash(&self) -> InfoHash {
        self.info_hash
    }

    /// The torrent's metadata (`None` while a magnet link's is fetched).
    pub(crate) fn metainfo(&self) -> Option<&Metainfo> {
        self.metainfo.as_ref()
    }

    /// The tracker tiers: the metadata's, or the magnet link's until it comes.
    pub(crate) fn trackers(&self) -> Vec<Vec<String>> {
        match (&self.metainfo, &self.magnet) {
            (Some(metainfo), _) => metainfo.trackers(),
            (None, Some(magnet)) => magnet.trackers.clone(),
            (None, None) => Vec::new(),
        }
    }

    pub(crate) fn conf(&self) -> &TorrentConf {
        &self.conf
    }

    /// A seed for the torrent's tracker order, from its own randomness.
    pub(crate) fn tracker_seed(&mut self) -> u64 {
        self.rng.u64(..)
    }

    /// Every wanted piece is verified.
    pub(crate) fn is_finished(&self) -> bool {
        self.metainfo.is_some() && self.wanted_missing == 0
    }

    fn wants(&self, piece: PieceIndex) -> bool {
        !self.seed_only && !self.have.get(piece) && self.picker.priority(piece) > 0
    }

    // ---- messages ----

    /// A message arrived from a peer.
    fn on_message(&mut self, key: PeerKey, message: Message, now: Instant) {
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        if peer.closing {
            return;
        }
        peer.last_received = now;
        tracing::trace!(?message, "received");
        let about_pieces = matches!(
            message,
            Message::Bitfield(_) | Message::Have(_) | Message::HaveAll | Message::HaveNone
        );
        if self.fetch.is_some() && about_pieces {
            // Not readable before the metadata says how many pieces there are.
            peer.early.keep(message);
            return;
        }
        // BEP 3 wants the bitfield first, but aria2 sends `have`s first and its bitfield later:
        // a late bitfield is merged like a batch of `have`s.
        let first = !peer.got_first_message;
        if about_pieces {
            peer.got_first_message = true;
        }
        match message {
            Message::KeepAlive | Message::Unknown { .. } => {}
            // BEP 52: we serve piece layers; we never ask for hashes (a v2 torrent is taken
            // only with its piece layers).
            Message::HashRequest(request) => self.on_hash_request(key, request),
            Message::Hashes { .. } | Message::HashReject(_) => {}
            Message::Port(port) => {
                // The first one only: a peer repeating it cannot make us flood its node.
                let dht = peer.extensions.contains(Extension::Dht);
                if dht && port != 0 && !peer.dht_port_taken {
                    peer.dht_port_taken = true;
                    let node = std::net::SocketAddr::new(peer.addr.ip(), port);
                    self.actions.push_back(Action::DhtNode(node));
                }
            }
            Message::Choke => {
                peer.peer_choking = true;
                // Without the fast extension a choke discards every pending request; with it,
                // the peer rejects those it will not serve (and serves its allowed-fast ones).
                // Other peers take the freed blocks at their next refill (or the tick), not
                // here: a 5-byte message must not cost a walk over every peer.
                if !peer.speaks_fast() {
                    self.release_requests(key, false);
                }
            }
            Message::Unchoke => {
                peer.peer_choking = false;
                // Rejects of requests it forgot (cancelled long ago) are forgiven each round.
                peer.fast.stray_rejects = 0;
                self.fill_requests(key, now);
            }
            Message::Interested => self.on_interested(key, now),
            Message::NotInterested => peer.peer_interested = false,
            Message::Have(piece) => self.on_have(key, piece, now),
            Message::Bitfield(payload) if first => self.on_bitfield(key, &payload, now),
            Message::Bitfield(payload) => self.on_late_bitfield(key, &payload, now),
            Message::Request(block) => self.on_request(key, block),
            Message::Piece(block) => self.on_piece(key, block, now),
            Message::Cancel(block) => self.on_cancel(key, block),
            Message::Extended { id, payload } => {
                if !peer.extensions.contains(Extension::ExtensionProtocol) {
                    self.disconnect(key, "extended message without BEP 10");
                } else if id == EXTENDED_HANDSHAKE_ID {
                    self.on_extended_handshake(key, &payload, now);
                } else {
                    match extensions::decode(id, &payload) {
                        Some(Ok(ExtMessage::DontHave(piece))) => {
                            self.on_dont_have(key, piece, now);
                        }
                        Some(Ok(ExtMessage::Metadata(message))) => {
                            self.on_metadata_message(key, message, now);
                        }
                        Some(Ok(ExtMessage::Pex(message))) => self.on_pex(key, message, now),
                        Some(Err(error)) => self.disconnect(key, &error.to_string()),
                        None => {}
                    }
                }
            }
            Message::SuggestPiece(_)
            | Message::HaveAll
            | Message::HaveNone
            | Message::RejectRequest(_)
            | Message::AllowedFast(_) => {
                if peer.speaks_fast() {
                    self.on_fast_message(key, message, first, now);
                } else {
                    self.disconnect(key, "fast extension message without negotiating it");
                }
            }
        }
    }

    fn on_extended_handshake(&mut self, key: PeerKey, payload: &[u8], now: Instant) {
        let max = self.conf.max_out_requests;
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        match ExtendedHandshake::decode(payload) {
            Ok(handshake) => {
                if let Some(reqq) = handshake.request_queue {
                    peer.peer_reqq = (reqq as usize).clamp(1, max);
                }
                if let Some(client) = &handshake.client {
                    peer.client = Some(client.chars().take(64).collect());
                }
                peer.ext = PeerExtensions::from_handshake(&handshake);
                // One vote per host (an IPv6 /64 counts as one); loopback peers have no say.
                if let (Some(ip), Some(voter)) =
                    (handshake.your_ip, crate::peer_addr::limited_ip(peer.addr))
                {
                    self.actions.push_back(Action::ExternalIp { ip, voter });
                }
                peer.metadata.size = handshake.metadata_size;
                peer.listen_port = handshake.listen_port.filter(|&port| port != 0);
                self.request_metadata(key, now);
            }
            Err(error) => {
                tracing::debug!(%error, "bad extended handshake");
                self.disconnect(key, "malformed extended handshake");
            }
        }
    }

    /// BEP 54: the peer no longer has `piece`.
    fn on_dont_have(&mut self, key: PeerKey, piece: PieceIndex, now: Instant) {
        if piece >= self.geometry.piece_count() {
            self.disconnect(key, "lt_donthave for a piece past the end");
            return;
        }
        let wanted = self.wants(piece);
        let peer = &mut self.peers[key];
        if peer.is_seed {
            // It counted as a seed; from now on it counts piece by piece.
            peer.is_seed = false;
            self.picker.seed(false);
            let bitfield = std::mem::replace(&mut peer.bitfield, Bitfield::new(0));
            self.picker.add_bitfield(&bitfield, true);
            self.peers[key].bitfield = bitfield;
        }
        let peer = &mut self.peers[key];
        if !peer.bitfield.clear(piece) {
            return;
        }
        self.picker.decrement(piece);
        if wanted {
            peer.interesting = peer.interesting.saturating_sub(1);
            self.update_interest(key, now);
        }
        // Whatever we asked of it for that piece will not come.
        self.withdraw_piece(key, piece, now);
    }

    fn on_have(&mut self, key: PeerKey, piece: PieceIndex, now: Instant) {
        if piece >= self.geometry.piece_count() {
            self.disconnect(key, "have for a piece past the end");
            return;
        }
        let wanted = self.wants(piece);
        let peer = &mut self.peers[key];
        if peer.is_seed || !peer.bitfield.set(piece) {
            return;
        }
        self.picker.increment(piece);
        if peer.bitfield.is_full() {
            // From now on it counts as a seed, not piece by piece.
            peer.is_seed = true;
            let bitfield = std::mem::replace(&mut peer.bitfield, Bitfield::new(0));
            self.picker.add_bitfield(&bitfield, false);
            self.picker.seed(true);
            self.peers[key].bitfield = bitfield;
        }
        if wanted {
            self.peers[key].interesting += 1;
            self.update_interest(key, now);
        }
        self.on_piece_found(key, piece, now);
    }

    fn on_bitfield(&mut self, key: PeerKey, payload: &[u8], now: Instant) {
        match Bitfield::from_payload(payload, self.geometry.piece_count()) {
            Ok(bitfield) => self.on_pieces(key, bitfield, now),
            Err(_) => self.disconnect(key, "malformed bitfield"),
        }
    }

    /// The peer's first word on its pieces (a bitfield or `have all`).
    fn on_pieces(&mut self, key: PeerKey, bitfield: Bitfield, now: Instant) {
        let interesting = if self.seed_only {
            0
        } else {
            bitfield.iter_ones().filter(|&p| self.wants(p)).count() as u32
        };
        if bitfield.is_full() {
            self.picker.seed(true);
        } else {
            self.picker.add_bitfield(&bitfield, true);
        }
        let peer = &mut self.peers[key];
        peer.is_seed = bitfield.is_full();
        peer.bitfield = bitfield;
        peer.interesting = interesting;
        if peer.is_seed && self.have.is_full() {
            self.disconnect(key, "both seeding");
            return;
        }
        self.update_interest(key, now);
    }

    fn on_late_bitfield(&mut self, key: PeerKey, payload: &[u8], now: Instant) {
        let Ok(bitfield) = Bitfield::from_payload(payload, self.geometry.piece_count()) else {
            self.disconnect(key, "malformed bitfield");
            return;
        };
        for piece in bitfield.iter_ones() {
            self.on_have(key, piece, now);
        }
    }

    /// Sends `interested`/`not interested` when our interest in the peer changed.
    pub(crate) fn update_interest(&mut self, key: PeerKey, now: Instant) {
        let paused = self.paused || self.seed_only;
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        let interested = !paused && peer.interesting > 0;
        if interested == peer.am_interested {
            return;
        }
        peer.am_interested = interested;
        peer.outbox.push(if interested {
            &Message::Interested
        } else {
            &Message::NotInterested
        });
        self.actions.push_back(Action::Wake(key));
        if interested {
            self.fill_requests(key, now);
        }
    }

    // ---- time ----

    /// Once a second: rates, timeouts, keep-alives, choking, reconnections.
    /// The periodic look at rates and every peer's deadlines.
    fn tick(&mut self, elapsed: std::time::Duration, now: Instant) {
        self.downloaded.tick(elapsed);
        self.uploaded.tick(elapsed);
        let block_len = cratetorrent_wire::BLOCK_SIZE;
        let keys = self.peers.keys();
        for &key in &keys {
            let peer = &mut self.peers[key];
            peer.downloaded.tick(elapsed);
            peer.uploaded.tick(elapsed);
            peer.retarget(
                crate::peer::QueueTime {
                    min: self.conf.request_queue_time,
                    max: self.conf.max_request_queue_time,
                },
                block_len,
                self.conf.max_out_requests,
            );
            if now.saturating_duration_since(peer.last_received) > self.conf.idle_timeout {
                self.disconnect(key, "idle");
                continue;
            }
            self.check_send_stall(key, now);
            let Some(peer) = self.peers.get_mut(key) else {
                continue;
            };
            if now.saturating_duration_since(peer.last_sent) > self.conf.keep_alive_interval
                && peer.outbox.is_empty()
            {
                peer.outbox.push(&Message::KeepAlive);
                peer.last_sent = now;
                self.actions.push_back(Action::Wake(key));
            }
            self.check_request_timeout(key, now);
        }
        self.expire_metadata_requests(now);
        self.send_pex(now);
        self.fill_all(now);
        self.connect_more(now);
    }
}

impl Core {
    /// Adds this torrent's share to `counters`.
    pub(crate) fn add_counters(&self, counters: &mut crate::EngineCounters) {
        for (_, peer) in self.peers.iter() {
            counters.send_buffered += (peer.outbox.len() + peer.writing) as u64;
            counters.requests_queued += peer.incoming.len();
            counters.reads_in_flight += peer.reading.len();
            counters.requests_outstanding += peer.requests.len();
        }
        counters.banned += self.bans.len();
    }
}

impl Core {
    /// Panics if the core holds more than its limits allow (for fuzzing and the simulator).
    #[cfg(any(test, feature = "fuzzing", feature = "sim"))]
    pub(crate) fn check_bounds(&self) {
        // A dial we started may still complete when incoming peers filled the table meanwhile.
        assert!(self.peers.len() <= self.conf.max_connections + 1);
        for (_, peer) in self.peers.iter() {
            assert!(peer.requests.len() <= self.conf.max_out_requests);
            assert!(peer.incoming.len() <= self.conf.max_in_requests);
            assert!(peer.reading.len() <= self.conf.max_in_requests);
            assert!(peer.withdrawn.len() <= 2 * self.conf.max_out_requests);
            // Control messages (at most a bitfield and one `have` per piece) ride above the
            // watermark that gates block reads.
            assert!(peer.outbox.len() <= self.conf.send_watermark + 64 * 1024);
        }
    }
}

impl Core {
    /// Panics unless each piece's availability is the number of connected peers that have it.
    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn check_availability(&self) {
        for piece in 0..self.geometry.piece_count() {
            let holders = self
                .peers
                .iter()
                .filter(|(_, peer)| peer.is_seed || peer.bitfield.get(piece))
                .count();
            assert_eq!(
                self.picker.availability(piece) as usize,
                holders,
                "availability of piece {piece}"
            );
        }
    }
}

/// The extensions we implement and announce (the DHT's when our node runs).
pub(crate) fn our_extensions(dht: bool) -> Extensions {
    let ours = Extensions::NONE
        .with(Extension::ExtensionProtocol)
        .with(Extension::Fast);
    if dht { ours.with(Extension::Dht) } else { ours }
}
