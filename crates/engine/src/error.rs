//! The engine's errors.

use std::net::SocketAddr;
use std::sync::Arc;

use cratetorrent_storage::StorageError;

use crate::TorrentId;

/// Why a v2-only torrent without its piece layers (a magnet link's, or a `.torrent` lacking
/// them) is refused, until the layers can be fetched from peers with hash requests.
pub(crate) const V2_ONLY: &str = "BitTorrent v2-only torrents (BEP 52) without their piece \
     layers (from magnet links); v2-only .torrent files and hybrid torrents download";

/// What can go wrong when talking to the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The engine thread could not be started.
    #[error("cannot start the engine thread")]
    Spawn(#[source] std::io::Error),
    /// The network's runtime could not be created: with `IoBackend::IoUring`, io_uring is
    /// disabled by the kernel or a seccomp profile, or `RLIMIT_MEMLOCK` is too low (`Auto`
    /// falls back to epoll instead).
    #[error("cannot start the network runtime")]
    Runtime(#[source] std::io::Error),
    /// The engine has shut down (or its thread died).
    #[error("the engine has shut down")]
    Closed,
    /// Too many commands are queued; try again.
    #[error("the engine's command queue is full")]
    Busy,
    /// No torrent has this id.
    #[error("no torrent with id {0}")]
    UnknownTorrent(TorrentId),
    /// Flushing a torrent's data on shutdown failed.
    #[error("saving torrent {id} on shutdown failed")]
    Storage {
        /// The torrent.
        id: TorrentId,
        /// Why.
        #[source]
        source: StorageError,
    },
}

/// What went wrong with one torrent, as carried by [`Alert::TorrentError`](crate::Alert).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TorrentError {
    /// A torrent with this info-hash is already added.
    #[error("torrent {0} is already added")]
    Duplicate(cratetorrent_metainfo::InfoHash),
    /// Another torrent of the engine already uses this root (file or directory) in the download
    /// directory: the two would overwrite each other's files.
    #[error("torrent {other} already uses {root:?} in the download directory")]
    SameRoot {
        /// The root's name.
        root: String,
        /// The torrent using it.
        other: TorrentId,
    },
    /// The metadata fetched for a magnet link hashes to its info-hash but is not a valid
    /// torrent: there is nothing to download.
    #[error("the metadata is not a valid torrent: {0}")]
    Metadata(#[source] cratetorrent_metainfo::MetainfoError),
    /// A torrent the engine cannot download yet (the reason says what it lacks).
    #[error("not supported yet: {0}")]
    Unsupported(&'static str),
    /// A magnet link without a v1 (`btih`) info-hash: v2-only links are not supported yet.
    #[error("the magnet link has no v1 info-hash (btih)")]
    MagnetWithoutV1,
    /// The torrent's files could not be opened or checked.
    #[error("opening storage: {0}")]
    Open(#[source] StorageError),
    /// The torrent's own listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// Writing received data failed. On a full disk ([`StorageError::NoSpace`]) the torrent
    /// pauses itself: free space, then resume it. Otherwise the pieces are downloaded again.
    #[error("writing: {0}")]
    Write(#[source] StorageError),
    /// Reading a piece to upload failed; the peer that asked for it is disconnected.
    #[error("reading piece {piece} to upload: {source}")]
    Read {
        /// The piece.
        piece: u32,
        /// Why.
        #[source]
        source: StorageError,
    },
    /// Saving resume data failed (the data itself is unaffected).
    #[error("saving resume data: {0}")]
    ResumeSave(#[source] StorageError),
    /// Flushing the torrent's data when it was removed failed.
    #[error("removing: {0}")]
    Remove(#[source] StorageError),
    /// Deleting the torrent's files when it was removed failed (a link in the way is left
    /// alone: [`StorageError::Symlink`]).
    #[error("deleting files: {0}")]
    Delete(#[source] StorageError),
    /// Errors merged while nobody read the alerts: the latest, and how many came before it.
    #[error("{latest} (and {earlier} more errors while alerts went unread)")]
    Merged {
        /// The latest error.
        latest: Box<TorrentError>,
        /// Errors dropped before it.
        earlier: u32,
    },
}

impl TorrentError {
    /// The disk error behind this one, if it came from the disk.
    pub fn storage(&self) -> Option<&StorageError> {
        match self {
            Self::Open(error)
            | Self::Write(error)
            | Self::Read { source: error, .. }
            | Self::ResumeSave(error)
            | Self::Remove(error)
            | Self::Delete(error) => Some(error),
            Self::Merged { latest, .. } => latest.storage(),
            Self::Duplicate(_)
            | Self::SameRoot { .. }
            | Self::Listen { .. }
            | Self::Metadata(_)
            | Self::Unsupported(_)
            | Self::MagnetWithoutV1 => None,
        }
    }

    /// Whether the disk is full: the torrent has paused itself until space is freed and it is
    /// resumed.
    pub fn is_no_space(&self) -> bool {
        matches!(self.storage(), Some(StorageError::NoSpace { .. }))
    }
}
