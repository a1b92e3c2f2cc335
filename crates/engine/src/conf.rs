//! Engine and torrent settings.

use std::net::{Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use cratetorrent_storage::StorageConfig;
use cratetorrent_wire::PeerId;

/// Engine-wide settings. [`Conf::new`] gives defaults that suit a desktop client.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Conf {
    /// Where torrents are downloaded to (each torrent's files go under its name).
    pub download_dir: PathBuf,
    /// The listening socket shared by all torrents. The default, `[::]:6881`, takes IPv4 and
    /// IPv6; port 0 picks a free port (see [`EngineHandle::listen_addr`](crate::EngineHandle::listen_addr)).
    pub listen_addr: SocketAddr,
    /// Our peer id (BEP 20 style, `-CT0100-…`).
    pub peer_id: PeerId,
    /// Connections across all torrents.
    pub max_connections: usize,
    /// Outgoing connections still connecting, across all torrents.
    pub max_half_open: usize,
    /// Download limit across all torrents, bytes per second (0 = none).
    pub download_rate_limit: u64,
    /// Upload limit across all torrents, bytes per second (0 = none).
    pub upload_rate_limit: u64,
    /// Defaults for each torrent.
    pub torrent: TorrentConf,
    /// Disk settings for each torrent.
    pub storage: StorageConfig,
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
            download_rate_limit: 0,
            upload_rate_limit: 0,
            torrent: TorrentConf::default(),
            storage: StorageConfig::default(),
        }
    }
}

/// Per-torrent settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TorrentConf {
    /// Connections for this torrent.
    pub max_connections: usize,
    /// Upload slots (the last one is the optimistic unchoke).
    pub unchoke_slots: usize,
    /// How much time's worth of data to keep requested from a peer (libtorrent's
    /// `request_queue_time`).
    pub request_queue_time: Duration,
    /// Most requests outstanding to one peer.
    pub max_out_requests: usize,
    /// Most requests from one peer we queue (advertised as `reqq`).
    pub max_in_requests: usize,
    /// Bytes read for a peer and not yet on its socket before we stop reading more for it.
    pub send_watermark: usize,
    /// How long an outgoing connection may take to connect and handshake.
    pub connect_timeout: Duration,
    /// A peer that sends nothing (not even a keep-alive) for this long is dropped.
    pub idle_timeout: Duration,
    /// How often a stats alert is posted.
    pub stats_interval: Duration,
    /// Strikes before a peer is banned: a piece that fails its hash with every block from one
    /// peer gives it two (a piece shared by several peers is retried from one peer instead).
    pub max_strikes: u32,
    /// Download pieces in order instead of rarest first.
    pub sequential: bool,
    /// Download limit for this torrent, bytes per second (0 = none).
    pub download_rate_limit: u64,
    /// Upload limit for this torrent, bytes per second (0 = none).
    pub upload_rate_limit: u64,
}

impl Default for TorrentConf {
    fn default() -> Self {
        Self {
            max_connections: 100,
            unchoke_slots: 8,
            request_queue_time: Duration::from_secs(3),
            max_out_requests: 500,
            max_in_requests: 2000,
            send_watermark: 4 << 20,
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            stats_interval: Duration::from_secs(1),
            max_strikes: 3,
            sequential: false,
            download_rate_limit: 0,
            upload_rate_limit: 0,
        }
    }
}
