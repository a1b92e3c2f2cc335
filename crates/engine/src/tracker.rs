//! Trackers: HTTP(S) (BEP 3, 7, 23) and UDP (BEP 15) announce clients, their response parsers,
//! and the BEP 12 tier logic the engine runs for every torrent.
//!
//! The parsers and packet codecs are sans-IO and public, so they can be reused and fuzzed on
//! their own; [`HttpTracker`] and [`UdpTracker`] are the clients the engine uses, on plain
//! `tokio::net` sockets (tokio-uring sockets have no `AsyncRead`/`AsyncWrite`).
//!
//! ```
//! use cratetorrent::tracker::{AnnounceRequest, Event, http};
//! use cratetorrent_metainfo::InfoHash;
//! use cratetorrent_wire::PeerId;
//!
//! let request = AnnounceRequest {
//!     event: Event::Started,
//!     left: 1 << 20,
//!     ..AnnounceRequest::new(InfoHash::new([0x20; 20]), PeerId::new(*b"-CR0100-abcdefghijkl"), 6881)
//! };
//! let url = http::announce_url("http://tracker.example/announce", &request);
//! // Raw bytes are percent-encoded byte by byte: 0x20 is `%20`, never `+`.
//! assert!(url.starts_with("http://tracker.example/announce?info_hash=%20%20"));
//! assert!(url.contains("&event=started"));
//!
//! let reply = http::parse_announce_response(b"d8:intervali900e5:peers6:\x7f\x00\x00\x01\x1a\xe1e")?;
//! assert_eq!(reply.interval.as_secs(), 900);
//! assert_eq!(reply.peers, ["127.0.0.1:6881".parse()?]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub(crate) mod announcer;
mod error;
pub mod http;
mod http_client;
mod tiers;
pub mod udp;
mod udp_client;

use std::net::SocketAddr;
use std::time::Duration;

use cratetorrent_metainfo::InfoHash;
use cratetorrent_wire::PeerId;

pub use error::TrackerError;
pub use http_client::HttpTracker;
pub use udp_client::UdpTracker;

/// Most peers taken from one tracker response; the rest are ignored.
pub const MAX_PEERS_PER_RESPONSE: usize = 2000;

/// The interval used when a tracker gives none.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1800);

/// Intervals a tracker asks for are clamped to at most this (a day).
pub const MAX_INTERVAL: Duration = Duration::from_secs(86_400);

/// The `event` of an announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A regular re-announce.
    None,
    /// The first announce of a torrent.
    Started,
    /// The download completed (sent once).
    Completed,
    /// The torrent stops (sent on removal and shutdown).
    Stopped,
}

impl Event {
    /// The value of the HTTP `event` parameter, if any.
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            Event::None => None,
            Event::Started => Some("started"),
            Event::Completed => Some("completed"),
            Event::Stopped => Some("stopped"),
        }
    }
}

/// What we tell a tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceRequest {
    /// The torrent.
    pub info_hash: InfoHash,
    /// Our peer id.
    pub peer_id: PeerId,
    /// The port we accept peers on.
    pub port: u16,
    /// Payload bytes sent this session.
    pub uploaded: u64,
    /// Payload bytes received this session.
    pub downloaded: u64,
    /// Bytes we still need (0 for a seed).
    pub left: u64,
    /// Why we announce.
    pub event: Event,
    /// How many peers we would like.
    pub numwant: u32,
    /// A random key that identifies us across IP changes.
    pub key: u32,
    /// The `tracker id` the tracker gave us last time, to be sent back.
    pub tracker_id: Option<Vec<u8>>,
}

impl AnnounceRequest {
    /// A regular announce with zero counters and a `numwant` of 200.
    pub fn new(info_hash: InfoHash, peer_id: PeerId, port: u16) -> Self {
        Self {
            info_hash,
            peer_id,
            port,
            uploaded: 0,
            downloaded: 0,
            left: 0,
            event: Event::None,
            numwant: 200,
            key: 0,
            tracker_id: None,
        }
    }
}

/// What a tracker answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceResponse {
    /// How long to wait before the next regular announce.
    pub interval: Duration,
    /// How long we must wait at least before announcing again, if the tracker says.
    pub min_interval: Option<Duration>,
    /// Peers, IPv4 and IPv6 (at most [`MAX_PEERS_PER_RESPONSE`]).
    pub peers: Vec<SocketAddr>,
    /// Seeders in the swarm, if reported.
    pub complete: Option<u32>,
    /// Leechers in the swarm, if reported.
    pub incomplete: Option<u32>,
    /// A `warning message`: the announce worked but the tracker has something to say.
    pub warning: Option<String>,
    /// A `tracker id` to send back on later announces.
    pub tracker_id: Option<Vec<u8>>,
}

impl AnnounceResponse {
    pub(crate) fn empty(interval: Duration) -> Self {
        Self {
            interval,
            min_interval: None,
            peers: Vec::new(),
            complete: None,
            incomplete: None,
            warning: None,
            tracker_id: None,
        }
    }
}

/// One torrent's swarm counts from a scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrapeStats {
    /// Seeders.
    pub complete: u32,
    /// Completed downloads ever reported.
    pub downloaded: u32,
    /// Leechers.
    pub incomplete: u32,
}

/// Clamps a tracker-given interval in seconds to `1 s ..= MAX_INTERVAL`.
pub(crate) fn clamp_interval(seconds: u64) -> Duration {
    Duration::from_secs(seconds.max(1)).min(MAX_INTERVAL)
}
