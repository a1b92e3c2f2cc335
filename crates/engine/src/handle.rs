//! The user's side of the engine: a cheap, thread-safe handle that sends commands.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use cratetorrent_metainfo::{InfoHash, Magnet, Metainfo};
use tokio::sync::{mpsc, oneshot};

use crate::TorrentId;
use crate::alert::TorrentStats;
use crate::conf::TorrentConf;
use crate::counters::EngineCounters;
use crate::error::EngineError;

/// Commands queued for the engine thread, at most.
pub(crate) const COMMAND_QUEUE: usize = 1024;

/// How a torrent starts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Mode {
    /// Download, dialling these peers (more can be added with
    /// [`EngineHandle::add_peers`]); keeps seeding once complete.
    Download {
        /// Peers to dial.
        seeds: Vec<SocketAddr>,
    },
    /// Verify the data already in the download directory and upload it; never download.
    Seed,
}

/// What a torrent is added from.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "one value per torrent added, moved once; boxing would only add an allocation"
)]
pub enum TorrentSource {
    /// A parsed `.torrent`.
    Metainfo(Metainfo),
    /// A magnet link: the metadata is fetched from peers (BEP 9) — those it names (`x.pe`),
    /// its trackers' (`tr`), and any given with the torrent — then the download starts on the
    /// same connections.
    Magnet(Magnet),
}

impl TorrentSource {
    /// The v1 info-hash (`None` for a magnet link without one).
    pub fn info_hash(&self) -> Option<InfoHash> {
        match self {
            Self::Metainfo(metainfo) => Some(metainfo.info_hash()),
            Self::Magnet(magnet) => magnet.info_hash,
        }
    }
}

impl From<Metainfo> for TorrentSource {
    fn from(metainfo: Metainfo) -> Self {
        Self::Metainfo(metainfo)
    }
}

impl From<Magnet> for TorrentSource {
    fn from(magnet: Magnet) -> Self {
        Self::Magnet(magnet)
    }
}

/// A torrent to add.
#[derive(Debug, Clone)]
pub struct TorrentParams {
    /// A `.torrent` or a magnet link (`Metainfo` and `Magnet` convert into it).
    pub source: TorrentSource,
    /// An extra address to listen on for this torrent (the engine's own listener always
    /// accepts it too).
    pub listen_addr: Option<SocketAddr>,
    /// Download or seed.
    pub mode: Mode,
    /// Settings; `None` takes the engine's [`Conf::torrent`](crate::Conf::torrent).
    pub conf: Option<TorrentConf>,
}

impl TorrentParams {
    /// A torrent from `source` (a [`Metainfo`] or a [`Magnet`]) in `mode`, with the engine's
    /// listener and settings.
    pub fn new(source: impl Into<TorrentSource>, mode: Mode) -> Self {
        Self {
            source: source.into(),
            listen_addr: None,
            mode,
            conf: None,
        }
    }
}

/// Rate limits in bytes per second; 0 means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Download limit.
    pub download: u64,
    /// Upload limit.
    pub upload: u64,
}

pub(crate) enum Command {
    Add {
        id: TorrentId,
        params: Box<TorrentParams>,
    },
    Pause(TorrentId),
    Resume(TorrentId),
    Remove {
        id: TorrentId,
        delete_files: bool,
    },
    AddPeers {
        id: TorrentId,
        peers: Vec<SocketAddr>,
    },
    FilePriorities {
        id: TorrentId,
        priorities: Vec<u8>,
    },
    Sequential {
        id: TorrentId,
        on: bool,
    },
    Limits {
        id: Option<TorrentId>,
        limits: RateLimits,
    },
    Stats {
        id: TorrentId,
        reply: oneshot::Sender<Option<TorrentStats>>,
    },
    Counters {
        reply: oneshot::Sender<EngineCounters>,
    },
    Shutdown {
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
}

impl Command {
    /// The torrent a command is about, if any.
    pub(crate) fn torrent(&self) -> Option<TorrentId> {
        match self {
            Self::Add { id, .. }
            | Self::Pause(id)
            | Self::Resume(id)
            | Self::Remove { id, .. }
            | Self::AddPeers { id, .. }
            | Self::FilePriorities { id, .. }
            | Self::Sequential { id, .. }
            | Self::Stats { id, .. } => Some(*id),
            Self::Limits { id, .. } => *id,
            Self::Shutdown { .. } | Self::Counters { .. } => None,
        }
    }
}

/// A handle to a running engine: `Send + Sync + Clone`, usable from any thread or runtime.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    commands: mpsc::Sender<Command>,
    next_id: AtomicU32,
    listen_addr: SocketAddr,
}

impl EngineHandle {
    pub(crate) fn new(commands: mpsc::Sender<Command>, listen_addr: SocketAddr) -> Self {
        Self {
            inner: Arc::new(Inner {
                commands,
                next_id: AtomicU32::new(1),
                listen_addr,
            }),
        }
    }

    fn send(&self, command: Command) -> Result<(), EngineError> {
        self.inner.commands.try_send(command).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => EngineError::Busy,
            mpsc::error::TrySendError::Closed(_) => EngineError::Closed,
        })
    }

    /// The address the engine listens on (with the port picked if the configured one was 0).
    pub fn listen_addr(&self) -> SocketAddr {
        self.inner.listen_addr
    }

    /// Adds a torrent. Its existing data is checked first ([`Alert::TorrentStarted`] follows);
    /// failures arrive as [`Alert::TorrentError`].
    ///
    /// [`Alert::TorrentStarted`]: crate::Alert::TorrentStarted
    /// [`Alert::TorrentError`]: crate::Alert::TorrentError
    pub fn create_torrent(&self, params: TorrentParams) -> Result<TorrentId, EngineError> {
        let id = TorrentId(self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        self.send(Command::Add {
            id,
            params: Box::new(params),
        })?;
        Ok(id)
    }

    /// Disconnects the torrent's peers and stops downloading and uploading.
    pub fn pause(&self, id: TorrentId) -> Result<(), EngineError> {
        self.send(Command::Pause(id))
    }

    /// Undoes [`pause`](Self::pause).
    pub fn resume(&self, id: TorrentId) -> Result<(), EngineError> {
        self.send(Command::Resume(id))
    }

    /// Removes the torrent, deleting its files if `delete_files`.
    pub fn remove(&self, id: TorrentId, delete_files: bool) -> Result<(), EngineError> {
        self.send(Command::Remove { id, delete_files })
    }

    /// Gives the torrent more peers to dial.
    pub fn add_peers(&self, id: TorrentId, peers: Vec<SocketAddr>) -> Result<(), EngineError> {
        self.send(Command::AddPeers { id, peers })
    }

    /// Sets file priorities by file index (0 = don't download, 1–7, default 4).
    pub fn set_file_priorities(
        &self,
        id: TorrentId,
        priorities: Vec<u8>,
    ) -> Result<(), EngineError> {
        self.send(Command::FilePriorities { id, priorities })
    }

    /// Downloads pieces in order (for streaming) instead of rarest first.
    pub fn set_sequential(&self, id: TorrentId, on: bool) -> Result<(), EngineError> {
        self.send(Command::Sequential { id, on })
    }

    /// Sets rate limits for one torrent, or for the whole engine with `None`.
    pub fn set_rate_limits(
        &self,
        id: Option<TorrentId>,
        limits: RateLimits,
    ) -> Result<(), EngineError> {
        self.send(Command::Limits { id, limits })
    }

    /// What the engine holds right now: connections, buffered bytes, queued requests, bans.
    pub async fn counters(&self) -> Result<EngineCounters, EngineError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Counters { reply })
            .await
            .map_err(|_| EngineError::Closed)?;
        answer.await.map_err(|_| EngineError::Closed)
    }

    /// The torrent's current stats.
    pub async fn stats(&self, id: TorrentId) -> Result<TorrentStats, EngineError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Stats { id, reply })
            .await
            .map_err(|_| EngineError::Closed)?;
        answer
            .await
            .map_err(|_| EngineError::Closed)?
            .ok_or(EngineError::UnknownTorrent(id))
    }

    /// Closes every peer connection, flushes data and saves resume data, then stops the engine.
    pub async fn shutdown(&self) -> Result<(), EngineError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Shutdown { reply })
            .await
            .map_err(|_| EngineError::Closed)?;
        answer.await.map_err(|_| EngineError::Closed)?
    }
}
