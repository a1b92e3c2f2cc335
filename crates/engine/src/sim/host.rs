//! One simulated host: a torrent's core, its access link and its storage (in memory: a piece
//! whose blocks were all written verifies, unless the host corrupts what it receives).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cratetorrent_metainfo::{Metainfo, PieceIndex};
use cratetorrent_wire::{Bitfield, Geometry, PeerId};

use super::LinkId;
use crate::TorrentId;
use crate::conf::TorrentConf;
use crate::core::{Core, CoreInit, PeerKey, Source};

/// A host's access link; `delay` is one way, to the core of the network (a path between two
/// hosts takes the sum of theirs).
#[derive(Debug, Clone, Copy)]
pub struct Link {
    /// Bytes per second out.
    pub up: u64,
    /// Bytes per second in.
    pub down: u64,
    /// One-way delay to the middle of the network.
    pub delay: Duration,
    /// Chance that a batch of segments loses one (it then arrives a retransmission later).
    pub loss: f64,
}

/// What a host is and does.
#[derive(Debug, Clone)]
pub struct HostSpec {
    pub link: Link,
    /// Starts with every piece.
    pub seed: bool,
    /// Never serves a block (it unchokes, then lets requests time out): a free-rider.
    pub free_rider: bool,
    /// The host's torrent settings.
    pub conf: TorrentConf,
}

impl HostSpec {
    /// A leecher (or with `seed`, a seed) with default settings on `link`.
    pub fn new(link: Link, seed: bool) -> Self {
        let conf = TorrentConf {
            max_connections: 40,
            ..TorrentConf::default()
        };
        Self {
            link,
            seed,
            free_rider: false,
            conf,
        }
    }
}

/// The storage of a simulated host: which blocks of each piece arrived, which pieces it has.
pub(super) struct Disk {
    pub(super) have: Bitfield,
    /// Bit `i` set: block `i` of the piece was written (pieces of at most 64 blocks).
    written: HashMap<PieceIndex, u64>,
}

impl Disk {
    /// The blocks of a piece in progress that were written (bit `i`: block `i`).
    pub(super) fn written(&self, piece: PieceIndex) -> u64 {
        self.written.get(&piece).copied().unwrap_or(0)
    }

    /// Records a written block; returns true when the piece is complete (and forgets it).
    pub(super) fn write(&mut self, geometry: &Geometry, piece: PieceIndex, offset: u32) -> bool {
        if self.have.get(piece) {
            return false;
        }
        let blocks = geometry.block_count(piece).unwrap_or(0);
        let mask = self.written.entry(piece).or_insert(0);
        *mask |= 1 << (offset / cratetorrent_wire::BLOCK_SIZE);
        if mask.count_ones() == blocks {
            self.written.remove(&piece);
            true
        } else {
            false
        }
    }
}

pub(super) struct Host {
    pub(super) spec: HostSpec,
    pub(super) addr: SocketAddr,
    pub(super) id: PeerId,
    /// `None` while the host is offline.
    pub(super) core: Option<Core>,
    /// Bumped each time the host goes offline, so that its old events are dropped.
    pub(super) generation: u32,
    pub(super) disk: Disk,
    /// Ordered, so that walking them (when the host leaves) is the same in every run.
    pub(super) links: BTreeMap<PeerKey, LinkId>,
    /// Peers with frames to send, in the order they asked.
    ready: VecDeque<PeerKey>,
    queued: HashSet<PeerKey>,
    /// The uplink is busy with a batch until the matching `Sent` event.
    pub(super) sending: bool,
    /// The downlink is busy until then.
    pub(super) downlink_free: Instant,
    pub(super) bytes_sent: u64,
    pub(super) bytes_received: u64,
    pub(super) completed_at: Option<Instant>,
    /// When each 1 % of the pieces was had, for the end-game figure.
    pub(super) progress: Vec<Instant>,
}

impl Host {
    pub(super) fn new(spec: HostSpec, index: usize, piece_count: u32, now: Instant) -> Self {
        let have = if spec.seed {
            Bitfield::full(piece_count)
        } else {
            Bitfield::new(piece_count)
        };
        let [a, b] = (index as u16).to_be_bytes();
        let mut id = [b'S'; 20];
        id[18] = a;
        id[19] = b;
        Self {
            addr: SocketAddr::from(([10, a, b, 1], 6881)),
            id: PeerId::new(id),
            spec,
            core: None,
            generation: 0,
            disk: Disk {
                have,
                written: HashMap::new(),
            },
            links: BTreeMap::new(),
            ready: VecDeque::new(),
            queued: HashSet::new(),
            sending: false,
            downlink_free: now,
            bytes_sent: 0,
            bytes_received: 0,
            completed_at: None,
            progress: Vec::new(),
        }
    }

    /// Brings the host online with a fresh core over what its disk has.
    pub(super) fn start(&mut self, metainfo: &Metainfo, seed: u64, now: Instant) {
        let mut conf = self.spec.conf.clone();
        if self.spec.free_rider {
            // No read ever starts: it never has room under this watermark.
            conf.send_watermark = 0;
        }
        self.core = Some(Core::new(
            CoreInit {
                id: TorrentId(1),
                source: Source::Metainfo(Box::new(metainfo.clone())),
                our_id: self.id,
                listen_port: self.addr.port(),
                dht_port: None,
                conf,
                seed_only: false,
                have: self.disk.have.clone(),
                seed,
            },
            now,
        ));
    }

    /// Takes the host offline: its core and connections are gone.
    pub(super) fn stop(&mut self) {
        self.core = None;
        self.generation += 1;
        self.links.clear();
        self.ready.clear();
        self.queued.clear();
        self.sending = false;
    }

    /// The peer has frames to send.
    pub(super) fn wake(&mut self, key: PeerKey) {
        if self.queued.insert(key) {
            self.ready.push_back(key);
        }
    }

    /// The next peer with frames to send.
    pub(super) fn next_ready(&mut self) -> Option<PeerKey> {
        let key = self.ready.pop_front()?;
        self.queued.remove(&key);
        Some(key)
    }

    /// Records that the disk now has `piece`.
    pub(super) fn verified(&mut self, piece: PieceIndex, now: Instant) {
        if self.disk.have.set(piece) {
            let count = self.disk.have.len();
            let step = (count / 100).max(1);
            if self.disk.have.count_ones().is_multiple_of(step) {
                self.progress.push(now);
            }
            if self.disk.have.is_full() && self.completed_at.is_none() {
                self.completed_at = Some(now);
            }
        }
    }
}
