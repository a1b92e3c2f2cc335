//! Engine and torrent settings.

use std::net::{Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use cratetorrent_storage::StorageConfig;
use cratetorrent_wire::PeerId;
use cratetorrent_wire::mse::CryptoMethods;

use crate::encryption::Encryption;
use crate::transport::Transport;

/// Engine-wide settings. [`Conf::new`] gives defaults that suit a desktop client.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Conf {
    /// Where torrents are downloaded to (each torrent's files go under its name).
    pub download_dir: PathBuf,
    /// The listening socket shared by all torrents. The default, `[::]:6881`, takes IPv4 and
    /// IPv6; port 0 picks a free port (see [`EngineHandle::listen_addr`](crate::EngineHandle::listen_addr)).
    pub listen_addr: SocketAddr,
    /// Our peer id (BEP 20 style, `-CR0100-…`).
    pub peer_id: PeerId,
    /// Connections across all torrents.
    pub max_connections: usize,
    /// Outgoing connections still connecting, across all torrents.
    pub max_half_open: usize,
    /// How long an incoming connection may take to send its handshake (default 10 s).
    pub handshake_timeout: Duration,
    /// Incoming connections allowed in their handshake at once (default 64): more are closed.
    pub max_handshaking: usize,
    /// Of those, from one IP address or IPv6 /64, loopback exempt (default 4), so that one host
    /// cannot hold every slot and shut other peers out of every torrent.
    pub max_handshaking_per_ip: usize,
    /// Download limit across all torrents, bytes per second (0 = none).
    pub download_rate_limit: u64,
    /// Upload limit across all torrents, bytes per second (0 = none).
    pub upload_rate_limit: u64,
    /// Local service discovery (BEP 14): torrents that are not private are announced to the
    /// local network by multicast (`239.192.152.143:6771` and `[ff15::efc0:152:143]:6771`, each
    /// every 5 minutes, at most one datagram a second) and peers announcing them there are
    /// dialled. Default on, as in libtorrent.
    pub lsd: bool,
    /// The DHT (BEP 5) node.
    pub dht: DhtConf,
    /// Defaults for each torrent.
    pub torrent: TorrentConf,
    /// Disk settings for each torrent. Unless `storage.pool` names one, the engine starts one
    /// [`DiskPool`](cratetorrent_storage::DiskPool) that every torrent's storage shares.
    pub storage: StorageConfig,
    /// Torrents whose files are opened and checked at once (default 2): a check reads and
    /// hashes every piece not vouched for by resume data on all cores, so a thousand torrents
    /// added together are checked a few at a time, as libtorrent's `active_checking` does,
    /// not all at once.
    pub checking_at_once: usize,
    /// Tracker settings.
    pub tracker: TrackerConf,
    /// Message stream encryption of peer connections (default [`Encryption::Prefer`]: dial
    /// encrypted, fall back to plain, accept both).
    pub encryption: Encryption,
    /// What an encrypted connection's payload may travel as after its handshake (default
    /// both: [`CryptoMethods::ALL`]; [`CryptoMethods::RC4`] insists on RC4), as libtorrent's
    /// `allowed_enc_level`.
    pub encryption_levels: CryptoMethods,
    /// When a peer dialling us offers both, choose RC4 over plaintext (default false, as
    /// libtorrent's `prefer_rc4`: the handshake is obfuscated either way, and RC4 costs CPU).
    pub prefer_rc4: bool,
    /// The transports of peer connections (default [`Transport::Both`]: dial uTP first and TCP
    /// after a second without an answer; accept both). uTP runs on the UDP port the DHT and
    /// UDP trackers share, the listen port's number.
    pub transport: Transport,
    /// uTP's settings (windows, buffers, LEDBAT's target; see [`cratetorrent_utp::Config`]).
    pub utp: cratetorrent_utp::Config,
    /// The largest send buffer asked of the kernel for a peer socket, in bytes (default 4 MiB,
    /// which the kernel doubles for its bookkeeping; it caps the request at
    /// `net.core.wmem_max`). Sockets start on the kernel's autotuning, which stops at
    /// `net.ipv4.tcp_wmem`'s maximum (4 MiB: under 3 MB in flight, short of a 10 MB/s path at
    /// 300 ms); one that the kernel reports bound by its buffer for a quarter of the time it
    /// was sending gets a fixed buffer: 2.5 MiB, or nine tenths of the bandwidth-delay product
    /// it measured when larger, grown as its rate grows, up to this. Used only where it can
    /// exceed autotuning's cap; 0 never does.
    pub send_buffer: usize,
    /// Bytes written to a peer socket but not yet sent that the kernel holds, in bytes
    /// (`TCP_NOTSENT_LOWAT`; default 256 KiB; 0 leaves the kernel's default, no limit), so that
    /// a send buffer holds data in flight rather than a queue in front of our next message to a
    /// slow peer, and so that BBR, which a seeder's gaps keep in its start-up (pacing at 2.9
    /// times its estimate), cannot burst much into a short path's bottleneck queue (1 MiB lost
    /// 6 % of the packets at 20 ms and 100 MB/s). A connection that loses packets with no queue
    /// standing (random loss) is given four times this until a queue stands again.
    pub unsent_limit: u32,
    /// The system interface the network runs on (default: io_uring when the kernel allows it,
    /// else epoll with one warning).
    pub io_backend: IoBackend,
    /// Seeds every random choice the engine makes (each torrent's piece picking and choking,
    /// tracker order, the tracker `key`), so that a run can be replayed; `None` (the default)
    /// seeds from the operating system.
    pub rng_seed: Option<u64>,
}

impl Conf {
    /// Defaults, downloading into `download_dir`.
    pub fn new(download_dir: impl Into<PathBuf>) -> Self {
        Self {
            download_dir: download_dir.into(),
            listen_addr: SocketAddr::from((Ipv6Addr::UNSPECIFIED, 6881)),
            peer_id: PeerId::generate(),
            max_connections: 500,
            max_half_open: 32,
            handshake_timeout: Duration::from_secs(10),
            max_handshaking: 64,
            max_handshaking_per_ip: 4,
            download_rate_limit: 0,
            upload_rate_limit: 0,
            lsd: true,
            dht: DhtConf::default(),
            torrent: TorrentConf::default(),
            storage: StorageConfig::default(),
            checking_at_once: 2,
            tracker: TrackerConf::default(),
            encryption: Encryption::default(),
            encryption_levels: CryptoMethods::ALL,
            prefer_rc4: false,
            transport: Transport::default(),
            utp: cratetorrent_utp::Config::default(),
            send_buffer: 4 << 20,
            unsent_limit: 256 << 10,
            io_backend: IoBackend::Auto,
            rng_seed: None,
        }
    }
}

/// Per-torrent settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TorrentConf {
    /// Connections for this torrent.
    pub max_connections: usize,
    /// Connections for this torrent from or to one IP address, and dials to it at once, so
    /// that one host cannot take every slot (libtorrent allows 1); 0 = no limit. Loopback
    /// addresses are exempt: a local swarm puts every peer on 127.0.0.1.
    pub max_connections_per_ip: usize,
    /// Peer addresses kept per torrent for dialling (default 2,000); when full, the least
    /// useful idle address makes room.
    pub max_known_peers: usize,
    /// A connection that ends sooner than this counts as a failure of its address for the
    /// reconnection back-off (default 30 s).
    pub short_connection: Duration,
    /// Consecutive failures (dial refused or timed out, handshake rejected, connection closed
    /// within `short_connection`) after which a peer address is forgotten until a tracker gives it again;
    /// 0 = never. With the back-off (1 s doubling to 5 min) 8 failures take about 4 minutes.
    pub max_peer_failures: u32,
    /// Upload slots (the last one is the optimistic unchoke); 0 unchokes every interested peer
    /// (libtorrent's `unchoke_slots_limit = -1`, as in its `high_performance_seed`).
    pub unchoke_slots: usize,
    /// How often who is unchoked is revisited (default 10 s).
    pub rechoke_interval: Duration,
    /// How long the optimistic unchoke stays with one peer (default 30 s).
    pub optimistic_unchoke_interval: Duration,
    /// How much time's worth of data to keep requested from a peer at least (default 1 s). When
    /// the peer's mean request-to-block time exceeds one and a half times this, the queue
    /// covers that time instead, up to `max_request_queue_time` (not below this).
    pub request_queue_time: Duration,
    /// The most time's worth of data kept requested from a slow-to-answer peer (default 3 s,
    /// libtorrent's `request_queue_time`).
    pub max_request_queue_time: Duration,
    /// Most requests outstanding to one peer.
    pub max_out_requests: usize,
    /// Requests outstanding to a new peer before slow start grows the queue (default 4).
    pub initial_request_queue: usize,
    /// The bounds of a request's timeout, which follows the peer's block round trips (mean + 4
    /// deviations; default 3 s to 30 s). A peer that lets one pass is snubbed.
    pub min_request_timeout: Duration,
    /// See `min_request_timeout`.
    pub max_request_timeout: Duration,
    /// In end-game, how many peers one block may be requested from at once (default 2).
    pub max_end_game_requests: u8,
    /// Blocks a peer may send that we never asked for (nor withdrew) before it is dropped
    /// (default 64: a megabyte of slack for clients that send what they guess we want).
    pub max_unasked_blocks: usize,
    /// Most requests from one peer we queue (advertised as `reqq`).
    pub max_in_requests: usize,
    /// Bytes read for a peer and not yet on its socket before we stop reading more for it.
    pub send_watermark: usize,
    /// Exchange peers with peers (BEP 11 `ut_pex`; never for a private torrent). Default on.
    pub pex: bool,
    /// How often each peer is told whom we connected to and dropped since (default 60 s, as
    /// libtorrent and BEP 11; peers drop senders that go faster).
    pub pex_interval: Duration,
    /// Pieces each peer may download from us while we choke it (the BEP 6 allowed-fast set,
    /// generated from its address; default 5, as libtorrent): a newcomer gets something to
    /// trade before its first unchoke. 0 sends none.
    pub allowed_fast_set_size: usize,
    /// Send `have` for each verified piece to peers that have it too (default on, as
    /// libtorrent's `send_redundant_have`): seeds' interfaces (rtorrent, Transmission,
    /// qBittorrent) show our progress from them, which they cannot without.
    pub send_redundant_have: bool,
    /// Largest info dictionary fetched for a magnet link (default 16 MiB, bytes): peers
    /// announcing a larger `metadata_size` are not asked.
    pub max_metadata_size: u64,
    /// How long a peer may take to answer a metadata request before it is asked no more and
    /// the piece goes to another (default 5 s).
    pub metadata_request_timeout: Duration,
    /// How long an outgoing connection may take to connect and handshake.
    pub connect_timeout: Duration,
    /// A peer that sends nothing (not even a keep-alive) for this long is dropped.
    pub idle_timeout: Duration,
    /// A keep-alive goes to a peer we have sent nothing for this long (default 120 s).
    pub keep_alive_interval: Duration,
    /// A peer whose socket takes none of our data for this long while data waits for it is
    /// dropped (default 60 s): it would keep that data and the read buffers behind it.
    pub send_timeout: Duration,
    /// How often a stats alert is posted while the torrent has peers or traffic (default 1 s);
    /// an idle torrent posts one only when its stats changed.
    pub stats_interval: Duration,
    /// How often the torrent's timers are looked at (rates, request and idle timeouts,
    /// keep-alives, choking, reconnections); default 1 s.
    pub tick_interval: Duration,
    /// Strikes before a peer is banned: a piece that fails its hash with every block from one
    /// peer gives it two (a piece shared by several peers is retried from one peer instead).
    pub max_strikes: u32,
    /// Whom a seeding torrent's upload slots go to (default: those we upload to fastest).
    pub seed_choking: SeedChoking,
    /// Seeding in turn, a peer keeps its slot until it has been sent this many pieces' worth
    /// since it was unchoked (libtorrent's `seeding_piece_quota`, default 20).
    pub seeding_piece_quota: u32,
    /// Download pieces in order instead of rarest first.
    pub sequential: bool,
    /// Download limit for this torrent, bytes per second (0 = none).
    pub download_rate_limit: u64,
    /// Upload limit for this torrent, bytes per second (0 = none).
    pub upload_rate_limit: u64,
    /// BEP 19: how many of a torrent's web seeds (its `url-list`, or a magnet link's `ws`)
    /// are used at once; 0 turns web seeds off. Each takes a connection slot while joined.
    pub max_web_seeds: usize,
    /// The longest a web seed may take to answer a request, or between two parts of a body
    /// (libtorrent's `urlseed_timeout`, also 20 s).
    pub web_seed_timeout: Duration,
    /// The wait before asking a failed web seed again, doubled for each failure in a row up
    /// to 16 times as long (libtorrent's `urlseed_wait_retry`, also 30 s).
    pub web_seed_retry: Duration,
    /// The most one HTTP request asks of a web seed, bytes: a run of requested blocks that
    /// follow each other in the torrent, across pieces and files, goes in one request.
    pub web_seed_fetch_size: u64,
}

impl Default for TorrentConf {
    fn default() -> Self {
        Self {
            max_connections: 100,
            max_connections_per_ip: 1,
            max_known_peers: 2000,
            short_connection: Duration::from_secs(30),
            max_peer_failures: 8,
            unchoke_slots: 8,
            rechoke_interval: Duration::from_secs(10),
            optimistic_unchoke_interval: Duration::from_secs(30),
            request_queue_time: Duration::from_secs(1),
            max_request_queue_time: Duration::from_secs(3),
            max_out_requests: 500,
            initial_request_queue: 4,
            min_request_timeout: Duration::from_secs(3),
            max_request_timeout: Duration::from_secs(30),
            max_end_game_requests: 2,
            max_unasked_blocks: 64,
            max_in_requests: 2000,
            send_watermark: 4 << 20,
            pex: true,
            pex_interval: Duration::from_secs(60),
            allowed_fast_set_size: 5,
            send_redundant_have: true,
            max_metadata_size: 16 << 20,
            metadata_request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            keep_alive_interval: Duration::from_secs(120),
            send_timeout: Duration::from_secs(60),
            stats_interval: Duration::from_secs(1),
            tick_interval: Duration::from_secs(1),
            max_strikes: 3,
            seed_choking: SeedChoking::FastestUpload,
            seeding_piece_quota: 20,
            sequential: false,
            download_rate_limit: 0,
            upload_rate_limit: 0,
            max_web_seeds: 8,
            web_seed_timeout: Duration::from_secs(20),
            web_seed_retry: Duration::from_secs(30),
            web_seed_fetch_size: 4 << 20,
        }
    }
}

/// The system interface the engine's sockets use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum IoBackend {
    /// io_uring when a ring can be created, else epoll (one warning): containers under Docker's
    /// default seccomp profile and kernels with `kernel.io_uring_disabled` refuse io_uring.
    #[default]
    Auto,
    /// io_uring or nothing: `engine::spawn` fails with `EngineError::Runtime` without it.
    IoUring,
    /// epoll (tokio's sockets), even where io_uring works.
    Epoll,
}

/// Whom a seed unchokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SeedChoking {
    /// Every interested peer in turn: a peer keeps its slot for
    /// [`TorrentConf::seeding_piece_quota`] pieces, then those unchoked longest ago come
    /// first (libtorrent's `round_robin`). A seed's upload is spread evenly over the swarm.
    RoundRobin,
    /// The peers we upload to fastest (libtorrent's `fastest_upload`): the default, since a
    /// first seed that feeds the fastest peers gets a whole copy into the swarm soonest.
    #[default]
    FastestUpload,
}

/// The DHT node: one per engine, on the listen port over UDP (shared with the UDP tracker
/// client). Torrents that are not private are announced to it and search it for peers.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DhtConf {
    /// Whether the node runs (default on, as in libtorrent and Transmission).
    pub enabled: bool,
    /// Routers to start from, `host:port`, resolved when the engine starts. Default: the
    /// well-known public ones (`router.bittorrent.com:6881`, `dht.transmissionbt.com:6881`,
    /// `router.utorrent.com:6881`, `dht.libtorrent.org:25401`). Nodes saved by the last run are
    /// asked too.
    pub bootstrap: Vec<String>,
    /// How often each torrent is announced again (default 15 minutes, as libtorrent).
    pub announce_interval: Duration,
    /// How often a torrent that is not finished and has fewer than `want_peers` peers searches
    /// again between announces (default 1 minute).
    pub search_interval: Duration,
    /// Peers below which an unfinished torrent keeps searching (default 10).
    pub want_peers: usize,
    /// How often the routing table is saved (to `.cratetorrent/dht.dat` in the download
    /// directory), besides at shutdown (default 30 minutes).
    pub save_interval: Duration,
    /// The node's own settings: lookup width, timeouts, flood limit, storage bounds, BEP 42
    /// enforcement, read-only mode, IP diversity (see [`cratetorrent_dht::Config`] for each
    /// default). Its `bootstrap`, `saved`, `ipv4` and `ipv6` are filled in by the engine.
    pub node: cratetorrent_dht::Config,
}

impl Default for DhtConf {
    fn default() -> Self {
        Self {
            enabled: true,
            bootstrap: [
                "router.bittorrent.com:6881",
                "dht.transmissionbt.com:6881",
                "router.utorrent.com:6881",
                "dht.libtorrent.org:25401",
            ]
            .map(String::from)
            .to_vec(),
            announce_interval: Duration::from_secs(15 * 60),
            search_interval: Duration::from_secs(60),
            want_peers: 10,
            save_interval: Duration::from_secs(30 * 60),
            node: cratetorrent_dht::Config::default(),
        }
    }
}

/// How the engine talks to trackers.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TrackerConf {
    /// Announce to the torrent's trackers at all.
    pub enabled: bool,
    /// How long an HTTP tracker may take to accept the connection (TLS included).
    pub connect_timeout: Duration,
    /// How long a whole HTTP announce may take, redirects included.
    pub request_timeout: Duration,
    /// Redirects followed per HTTP request.
    pub max_redirects: u32,
    /// Largest HTTP response body read.
    pub max_response_size: usize,
    /// The first UDP retransmission timeout; each retry doubles it (BEP 15: 15 s).
    pub udp_timeout: Duration,
    /// UDP retransmissions before giving up on a tracker (BEP 15 allows 8; 15+30+60+120 s with
    /// the default 3).
    pub udp_retries: u32,
    /// Peers asked for per announce.
    pub numwant: u32,
    /// The shortest time between two regular announces to one tier, whatever a tracker says.
    pub min_announce_interval: Duration,
    /// Below this many connected peers a downloading torrent re-announces as soon as the
    /// tracker's `min interval` allows.
    pub want_peers: usize,
    /// The first retry after a whole tier failed; each further failure doubles it, up to
    /// `max_retry_interval`.
    pub retry_interval: Duration,
    /// The longest wait between retries of a failing tier.
    pub max_retry_interval: Duration,
    /// How long the `stopped` announces on removal and shutdown may take.
    pub stop_timeout: Duration,
    /// Tracker tiers used per torrent; later tiers are ignored. Each tier runs its own
    /// announce task with at most one socket open, so this bounds a torrent's tracker sockets.
    pub max_tiers: usize,
    /// Tracker URLs used per torrent, across its tiers (after duplicates are dropped); the
    /// URLs past it are ignored.
    pub max_trackers: usize,
}

impl Default for TrackerConf {
    fn default() -> Self {
        Self {
            enabled: true,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_redirects: 5,
            max_response_size: 1 << 20,
            udp_timeout: Duration::from_secs(15),
            udp_retries: 3,
            numwant: 200,
            min_announce_interval: Duration::from_secs(60),
            want_peers: 30,
            retry_interval: Duration::from_secs(15),
            max_retry_interval: Duration::from_secs(1800),
            stop_timeout: Duration::from_secs(2),
            max_tiers: 32,
            max_trackers: 64,
        }
    }
}
