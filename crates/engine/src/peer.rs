//! What we know about one connected peer, both directions.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cratetorrent_metainfo::PieceIndex;
use cratetorrent_storage::PeerTag;
use cratetorrent_wire::{Bitfield, BlockInfo, Extension, Extensions, PeerId};

use crate::block_queue::BlockQueue;
use crate::extensions::PeerExtensions;
use crate::outbox::Outbox;
use crate::rate::RateMeter;

/// Requests a peer that never told us its `reqq` is assumed to accept.
pub(crate) const DEFAULT_PEER_REQQ: usize = 250;
/// Queue depth a new peer starts with (the core sets its `initial_request_queue`).
const INITIAL_QUEUE: usize = 4;

/// What a peer said of its pieces before we had the metadata to read it (a torrent added by
/// magnet link): replayed once the metadata is verified.
#[derive(Debug, Default)]
pub(crate) struct EarlyPieces {
    /// It sent `have all` (BEP 6).
    pub(crate) all: bool,
    pub(crate) bitfield: Option<Bytes>,
    pub(crate) haves: Vec<PieceIndex>,
}

/// `have`s kept per peer before the metadata; later ones are dropped (they only make the
/// peer look poorer until its next bitfield or `have`).
const MAX_EARLY_HAVES: usize = 65_536;

impl EarlyPieces {
    /// Keeps a `bitfield`, `have all` or `have` to replay once the metadata is known
    /// (`have none` says nothing to keep).
    pub(crate) fn keep(&mut self, message: cratetorrent_wire::Message) {
        match message {
            // A copy: the payload is a view of the receive buffer, which it would keep
            // allocated for as long as the metadata takes.
            cratetorrent_wire::Message::Bitfield(payload) => {
                self.bitfield = Some(Bytes::copy_from_slice(&payload));
            }
            cratetorrent_wire::Message::HaveAll => self.all = true,
            cratetorrent_wire::Message::Have(piece) if self.haves.len() < MAX_EARLY_HAVES => {
                self.haves.push(piece);
            }
            _ => {}
        }
    }
}

/// Our BEP 11 peer exchange with the peer.
#[derive(Debug, Default)]
pub(crate) struct PexPeer {
    /// When its last PEX message came.
    pub(crate) received_at: Option<Instant>,
    /// When we last sent one, and the peers it has been told of (and not dropped since).
    pub(crate) sent_at: Option<Instant>,
    pub(crate) told: HashSet<SocketAddr>,
}

/// The BEP 6 fast extension with the peer, when both sides announced it.
#[derive(Debug, Default)]
pub(crate) struct FastPeer {
    /// Pieces it lets us request while it chokes us (its `allowed fast`), at most
    /// [`MAX_ALLOWED_IN`].
    pub(crate) allowed_in: Vec<PieceIndex>,
    /// Pieces we let it request while we choke it (the BEP 6 set for its address).
    pub(crate) allowed_out: Vec<PieceIndex>,
    /// Blocks we served it while choking it: past a few pieces' worth, the set is spent.
    pub(crate) served_choked: u32,
    /// Pieces it suggested, newest last, at most [`MAX_SUGGESTED`].
    pub(crate) suggested: VecDeque<PieceIndex>,
    /// Rejects of requests we never made: a peer that keeps sending them is dropped.
    pub(crate) stray_rejects: usize,
}

/// `allowed fast` pieces kept per peer (libtorrent sends 5, BEP 6 suggests 10).
pub(crate) const MAX_ALLOWED_IN: usize = 64;
/// `suggest piece` hints kept per peer; older ones make room.
pub(crate) const MAX_SUGGESTED: usize = 16;

impl FastPeer {
    /// Whether we let the peer have `piece` while choked.
    pub(crate) fn allows(&self, piece: PieceIndex) -> bool {
        self.allowed_out.contains(&piece)
    }
}

/// The peer's side of the BEP 9 metadata exchange, while we fetch the metadata.
#[derive(Debug, Default)]
pub(crate) struct MetadataPeer {
    /// `metadata_size` from its extended handshake.
    pub(crate) size: Option<u64>,
    /// It rejected a request or let one time out: it is asked no more.
    pub(crate) refused: bool,
}

/// One request we sent and have not been answered yet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outstanding {
    pub(crate) block: BlockInfo,
    pub(crate) sent: Instant,
}

/// Mean and deviation of the time from request to block, as in TCP's RTO estimate.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RoundTrip {
    mean: f64,
    deviation: f64,
    samples: u32,
}

impl RoundTrip {
    pub(crate) fn sample(&mut self, rtt: Duration) {
        let x = rtt.as_secs_f64();
        if self.samples == 0 {
            self.mean = x;
            self.deviation = x / 2.0;
        } else {
            self.deviation = 0.75 * self.deviation + 0.25 * (x - self.mean).abs();
            self.mean = 0.875 * self.mean + 0.125 * x;
        }
        self.samples = self.samples.saturating_add(1);
    }

    /// The smoothed time from request to block, once there is a sample.
    pub(crate) fn mean(&self) -> Option<Duration> {
        (self.samples > 0).then(|| Duration::from_secs_f64(self.mean))
    }

    /// `mean + 4 · deviation`, between `min` and `max` (half of `max` before any sample).
    pub(crate) fn timeout(&self, min: Duration, max: Duration) -> Duration {
        let max = max.max(min);
        if self.samples == 0 {
            return (max / 2).max(min);
        }
        Duration::from_secs_f64(self.mean + 4.0 * self.deviation).clamp(min, max)
    }
}

/// How a peer is connected, as PEX tells others (BEP 11 flags 0x04 and 0x01).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Link {
    /// Over uTP.
    pub(crate) utp: bool,
    /// Through an MSE handshake.
    pub(crate) encrypted: bool,
}

/// How much time's worth of data to keep requested from a peer: at least `min`, and the peer's
/// request latency up to `max`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueTime {
    pub(crate) min: Duration,
    pub(crate) max: Duration,
}

/// A connected peer.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) addr: SocketAddr,
    pub(crate) id: PeerId,
    pub(crate) tag: PeerTag,
    pub(crate) outgoing: bool,
    pub(crate) link: Link,
    pub(crate) extensions: Extensions,
    pub(crate) client: Option<String>,
    /// The ids it assigned to the BEP 10 extensions we speak.
    pub(crate) ext: PeerExtensions,
    pub(crate) early: EarlyPieces,
    pub(crate) metadata: MetadataPeer,
    /// `p` from its extended handshake: where it accepts connections.
    pub(crate) listen_port: Option<u16>,
    /// Its BEP 5 `port` message was taken (later ones are ignored).
    pub(crate) dht_port_taken: bool,
    pub(crate) pex: PexPeer,
    pub(crate) fast: FastPeer,

    pub(crate) bitfield: Bitfield,
    /// The peer has every piece (counted in the picker's seed count, not per piece).
    pub(crate) is_seed: bool,
    /// Pieces the peer has that we want and lack.
    pub(crate) interesting: u32,
    /// Whether a bitfield or `have` was received (a later bitfield is merged, not taken whole).
    pub(crate) got_first_message: bool,

    pub(crate) am_choking: bool,
    /// When we last unchoked it, and what we had uploaded to it then (for seeding in turn).
    pub(crate) last_unchoke: Option<Instant>,
    pub(crate) uploaded_at_unchoke: u64,
    /// What we had received from and sent to it at the previous rechoke.
    pub(crate) downloaded_at_rechoke: u64,
    pub(crate) uploaded_at_rechoke: u64,
    pub(crate) am_interested: bool,
    pub(crate) peer_choking: bool,
    pub(crate) peer_interested: bool,

    /// Our requests to the peer, oldest first.
    pub(crate) requests: VecDeque<Outstanding>,
    pub(crate) queue_target: usize,
    pub(crate) slow_start: bool,
    pub(crate) peer_reqq: usize,
    pub(crate) snubbed: bool,
    pub(crate) round_trip: RoundTrip,
    previous_rate: u64,

    /// The peer's requests to us that we have not started reading.
    pub(crate) incoming: BlockQueue,
    /// Requests dropped since we last unchoked it (sent while choked, for a piece we lack, or
    /// past its queue): a flood past `max_in_requests` disconnects it.
    pub(crate) dropped_requests: usize,
    /// Requests we withdrew (cancelled, choked, timed out) whose blocks it may still send: the
    /// only blocks we did not ask for that are still accepted from it (the newest few hundred).
    pub(crate) withdrawn: BlockQueue,
    /// Blocks it sent that we never asked for (nor withdrew): dropped, and counted.
    pub(crate) unasked: usize,
    /// Blocks being read from disk for the peer.
    pub(crate) reading: HashSet<BlockInfo>,
    pub(crate) outbox: Outbox,
    /// Bytes handed to the socket and not yet confirmed written.
    pub(crate) writing: usize,

    pub(crate) downloaded: RateMeter,
    pub(crate) uploaded: RateMeter,
    pub(crate) connected_at: Instant,
    pub(crate) last_received: Instant,
    pub(crate) last_sent: Instant,
    /// When its socket last took some of our data, or had nothing waiting.
    pub(crate) send_progress: Instant,
    pub(crate) last_block: Instant,
    pub(crate) closing: bool,
}

impl Peer {
    pub(crate) fn new(
        addr: SocketAddr,
        id: PeerId,
        tag: PeerTag,
        outgoing: bool,
        extensions: Extensions,
        piece_count: u32,
        now: Instant,
    ) -> Self {
        Self {
            addr,
            id,
            tag,
            outgoing,
            link: Link::default(),
            extensions,
            client: id.client().map(|c| format!("{} {}", c.name, c.version)),
            ext: PeerExtensions::default(),
            early: EarlyPieces::default(),
            metadata: MetadataPeer::default(),
            listen_port: None,
            dht_port_taken: false,
            pex: PexPeer::default(),
            fast: FastPeer::default(),
            bitfield: Bitfield::new(piece_count),
            is_seed: false,
            interesting: 0,
            got_first_message: false,
            am_choking: true,
            last_unchoke: None,
            uploaded_at_unchoke: 0,
            downloaded_at_rechoke: 0,
            uploaded_at_rechoke: 0,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            requests: VecDeque::new(),
            queue_target: INITIAL_QUEUE,
            slow_start: true,
            peer_reqq: DEFAULT_PEER_REQQ,
            snubbed: false,
            round_trip: RoundTrip::default(),
            previous_rate: 0,
            incoming: BlockQueue::default(),
            dropped_requests: 0,
            withdrawn: BlockQueue::default(),
            unasked: 0,
            reading: HashSet::new(),
            outbox: Outbox::default(),
            writing: 0,
            downloaded: RateMeter::default(),
            uploaded: RateMeter::default(),
            connected_at: now,
            last_received: now,
            last_sent: now,
            send_progress: now,
            last_block: now,
            closing: false,
        }
    }

    /// How many requests to keep outstanding now.
    pub(crate) fn request_target(&self, max_requests: usize) -> usize {
        if self.snubbed {
            return 1;
        }
        self.queue_target
            .min(self.peer_reqq)
            .min(max_requests)
            .max(1)
    }

    /// A requested block arrived.
    pub(crate) fn on_block(&mut self, max_requests: usize) {
        self.snubbed = false;
        if self.slow_start {
            // One more per block received doubles the window every round trip.
            self.queue_target = (self.queue_target + 1).min(max_requests);
        }
    }

    /// Once per tick: leave slow start when the rate stops growing, then size the queue to
    /// cover the measured rate for `queue.min`, or, when the peer takes over half as long
    /// again to answer a request, for that long, up to `queue.max`.
    ///
    /// The latency matters where a peer serves its requesters in proportion to what each keeps
    /// queued (libtorrent over uTP does, near enough): every request there waits about as long
    /// as the others' queues take to drain, and a requester whose queue covers less than that
    /// wait gets less each round, requests less, and ends on two blocks a round trip. In the
    /// WAN flash crowd our leechers 300 ms away took 90 s where libtorrent's, which keep 3 s
    /// queued, took 50. A fixed 3 s queue leaves more behind slow peers in end-game; following
    /// every latency lets queues drift up where peers serve fairly (a queue of rate × latency
    /// is a queue that keeps its size), which blurred tit-for-tat in the simulator. Hence the
    /// threshold: a latency near what a queue of `queue.min` takes to drain is left alone, so
    /// queues stay at `queue.min` where peers serve fairly (a queue pushed past the threshold,
    /// by a slow-start overshoot or a falling rate, can keep itself there, up to `queue.max`).
    pub(crate) fn retarget(&mut self, queue: QueueTime, block_len: u32, max_requests: usize) {
        let rate = self.downloaded.rate();
        if self.slow_start {
            if rate > 0 && rate < self.previous_rate + self.previous_rate / 10 {
                self.slow_start = false;
            }
            self.previous_rate = rate;
        }
        if !self.slow_start {
            let latency = self.round_trip.mean().unwrap_or_default();
            let time = if latency > queue.min.saturating_mul(3) / 2 {
                latency.min(queue.max).max(queue.min)
            } else {
                queue.min
            };
            let bdp = (rate as f64 * time.as_secs_f64()) / f64::from(block_len);
            self.queue_target = (bdp as usize).max(2).min(max_requests);
        }
    }

    /// Whether both sides speak the BEP 6 fast extension.
    pub(crate) fn speaks_fast(&self) -> bool {
        self.extensions.contains(Extension::Fast)
    }

    pub(crate) fn has_piece(&self, piece: u32) -> bool {
        self.is_seed || self.bitfield.get(piece)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(3);
    const MAX: Duration = Duration::from_secs(30);
    const QUEUE_3S: QueueTime = QueueTime {
        min: Duration::from_secs(3),
        max: Duration::from_secs(3),
    };

    fn peer() -> Peer {
        Peer::new(
            "127.0.0.1:1".parse().expect("addr"),
            PeerId::new([1; 20]),
            1,
            true,
            Extensions::NONE,
            8,
            Instant::now(),
        )
    }

    #[test]
    fn slow_start_grows_then_follows_the_rate() {
        let mut peer = peer();
        peer.peer_reqq = 10_000;
        for _ in 0..100 {
            peer.on_block(500);
        }
        assert_eq!(peer.request_target(500), 104);
        peer.downloaded.add(16_384 * 100);
        peer.downloaded.tick(Duration::from_secs(1));
        peer.retarget(QUEUE_3S, 16_384, 500);
        assert!(peer.slow_start, "rate still growing");
        peer.downloaded.add(16_384 * 100);
        peer.downloaded.tick(Duration::from_secs(1));
        peer.retarget(QUEUE_3S, 16_384, 500);
        assert!(!peer.slow_start);
        assert_eq!(peer.request_target(500), 300, "100 blocks/s for 3 s");
        peer.peer_reqq = 50;
        assert_eq!(peer.request_target(500), 50, "capped by the peer's reqq");
        peer.snubbed = true;
        assert_eq!(peer.request_target(500), 1);
    }

    #[test]
    fn the_queue_covers_a_slow_answering_peers_latency_up_to_the_bound() {
        let queue = QueueTime {
            min: Duration::from_secs(1),
            max: Duration::from_secs(3),
        };
        let mut peer = peer();
        peer.peer_reqq = 10_000;
        peer.slow_start = false;
        let settle = |peer: &mut Peer, latency: Duration| {
            for _ in 0..50 {
                peer.round_trip.sample(latency);
            }
            peer.downloaded.add(16_384 * 10);
            peer.downloaded.tick(Duration::from_secs(1));
            peer.retarget(queue, 16_384, 500);
            peer.request_target(500) as f64 / (peer.downloaded.rate() as f64 / 16_384.0)
        };
        let seconds = settle(&mut peer, Duration::from_millis(50));
        assert!(
            (0.9..=1.1).contains(&seconds),
            "a quick peer: {seconds} s queued"
        );
        let seconds = settle(&mut peer, Duration::from_millis(2_000));
        assert!(
            (1.8..=2.2).contains(&seconds),
            "2 s to answer: {seconds} s queued"
        );
        let seconds = settle(&mut peer, Duration::from_secs(9));
        assert!((2.7..=3.3).contains(&seconds), "capped: {seconds} s queued");
    }

    #[test]
    fn request_timeout_follows_round_trips() {
        let mut rtt = RoundTrip::default();
        assert_eq!(rtt.timeout(MIN, MAX), Duration::from_secs(15));
        for _ in 0..20 {
            rtt.sample(Duration::from_millis(10));
        }
        assert_eq!(rtt.timeout(MIN, MAX), MIN);
        for _ in 0..50 {
            rtt.sample(Duration::from_secs(8));
        }
        assert!(rtt.timeout(MIN, MAX) >= Duration::from_secs(8));
    }
}
