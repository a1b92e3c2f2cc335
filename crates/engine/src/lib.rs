//! cratetorrent: a fast BitTorrent engine on io_uring.
//!
//! [`engine::spawn`] starts an engine on its own thread, running a tokio-uring runtime: one
//! listening socket for all torrents, every peer connection, piece picking and choking. Each
//! torrent's disk work (vectored writes, SHA-1, reads for seeding) runs on the threads of
//! [`cratetorrent_storage`]. You get back an [`EngineHandle`] (`Send + Sync + Clone`) and the
//! engine's [`Alerts`], a [`futures::Stream`] that a slow reader cannot make grow without bound.
//! Peers come from [`Mode::Download`]'s seeds, [`EngineHandle::add_peers`], incoming
//! connections, and the torrent's HTTP(S) and UDP trackers ([`tracker`], BEP 12 tiers).
//!
//! ```
//! use cratetorrent::prelude::*;
//! use cratetorrent_metainfo::TorrentBuilder;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A payload to share, and its torrent.
//! let seed_dir = tempfile::tempdir()?;
//! std::fs::write(seed_dir.path().join("hello.bin"), vec![42u8; 100_000])?;
//! let metainfo = Metainfo::from_bytes(&TorrentBuilder::new(seed_dir.path().join("hello.bin")).build()?)?;
//!
//! // One engine seeds it, on loopback.
//! let mut conf = Conf::new(seed_dir.path());
//! conf.listen_addr = "127.0.0.1:0".parse()?;
//! let (seeder, _seeder_alerts) = engine::spawn(conf)?;
//! seeder.create_torrent(TorrentParams {
//!     source: metainfo.clone().into(),
//!     listen_addr: None,
//!     mode: Mode::Seed,
//!     conf: None,
//! })?;
//!
//! // Another downloads it from the first.
//! let download_dir = tempfile::tempdir()?;
//! let mut conf = Conf::new(download_dir.path());
//! conf.listen_addr = "127.0.0.1:0".parse()?;
//! let (leecher, mut alerts) = engine::spawn(conf)?;
//! let id = leecher.create_torrent(TorrentParams {
//!     source: metainfo.into(),
//!     listen_addr: None,
//!     mode: Mode::Download { seeds: vec![seeder.listen_addr()] },
//!     conf: None,
//! })?;
//!
//! futures::executor::block_on(async {
//!     while let Some(alert) = alerts.next().await {
//!         match alert {
//!             Alert::TorrentComplete(done) if done == id => break,
//!             Alert::TorrentError { error, .. } => panic!("{error}"),
//!             _ => {}
//!         }
//!     }
//!     leecher.shutdown().await?;
//!     seeder.shutdown().await
//! })?;
//! assert_eq!(std::fs::read(download_dir.path().join("hello.bin"))?, vec![42u8; 100_000]);
//! # Ok(())
//! # }
//! ```

// Counts and indices cast here are bounded by the piece count (a u32) or the piece length (at
// most 256 MiB, checked by the metainfo parser), so narrowing casts cannot truncate.
#![allow(clippy::cast_possible_truncation)]

mod alert;
mod block_queue;
mod blocking;
mod choker;
mod chunk_pool;
mod conf;
mod connection;
mod core;
mod counters;
mod datagram;
mod dht_node;
mod encryption;
pub mod engine;
mod error;
mod extensions;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod handle;
mod https;
mod lsd;
mod net;
mod outbox;
mod peer;
mod peer_addr;
mod picker;
mod rate;
mod send_buffer;
mod session;
#[cfg(any(test, feature = "sim"))]
#[doc(hidden)]
pub mod sim;
mod smart_ban;
mod torrent;
pub mod tracker;
mod transport;
mod udp_port;
mod utp_socket;
mod wake_grid;
mod web_seed;

pub use alert::{Alert, Alerts, PeerStats, TorrentState, TorrentStats};
pub use conf::{Conf, DhtConf, IoBackend, SeedChoking, TorrentConf, TrackerConf};
pub use counters::EngineCounters;
pub use cratetorrent_dht;
pub use cratetorrent_utp;
pub use cratetorrent_wire::mse::CryptoMethods;
pub use encryption::Encryption;
pub use error::{EngineError, TorrentError};
pub use handle::{EngineHandle, Mode, RateLimits, TorrentParams, TorrentSource};
pub use transport::Transport;

/// Identifies a torrent in an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TorrentId(pub(crate) u32);

impl std::fmt::Display for TorrentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Everything needed to run an engine: `use cratetorrent::prelude::*;`.
pub mod prelude {
    pub use crate::engine;
    pub use crate::{
        Alert, Alerts, Conf, EngineError, EngineHandle, Mode, RateLimits, TorrentConf, TorrentId,
        TorrentParams, TorrentSource, TorrentState, TorrentStats,
    };
    pub use cratetorrent_metainfo::{Magnet, Metainfo};
    pub use futures::StreamExt;
}
