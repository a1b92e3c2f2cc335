//! The engine's errors.

use std::net::SocketAddr;

use crate::TorrentId;

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
    /// The io_uring runtime could not be created (io_uring disabled by the kernel or a seccomp
    /// profile, or `RLIMIT_MEMLOCK` too low).
    #[error("cannot start the io_uring runtime")]
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
        source: cratetorrent_storage::StorageError,
    },
}
