//! Errors of the disk layer: every one names the path it concerns.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;

/// A disk error, classified so the engine can tell the user what to do.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The file system is full (ENOSPC, EDQUOT, EFBIG).
    #[error("{}: no space left on device", path.display())]
    NoSpace {
        /// The file being written.
        path: PathBuf,
    },
    /// Access was denied (EACCES, EPERM).
    #[error("{}: permission denied", path.display())]
    PermissionDenied {
        /// The file or directory.
        path: PathBuf,
    },
    /// The file system is mounted read-only (EROFS).
    #[error("{}: read-only file system", path.display())]
    ReadOnly {
        /// The file or directory.
        path: PathBuf,
    },
    /// A directory (or something else) stands where a file of the torrent belongs.
    #[error("{}: not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// A symbolic link stands where the torrent's path goes: it is never followed, so nothing
    /// outside the download directory is written, truncated or deleted through it.
    #[error("{}: is a symbolic link, which is not followed", path.display())]
    Symlink {
        /// The link.
        path: PathBuf,
    },
    /// The torrent's root has a name the storage keeps for itself (`.cratetorrent`, where
    /// resume data lives): such a torrent could overwrite other torrents' resume data.
    #[error("{}: this name is reserved for cratetorrent's resume data", path.display())]
    ReservedName {
        /// The path the torrent's root would take.
        path: PathBuf,
    },
    /// A resume file larger than resume data for the torrent can be; it is not read (its pieces
    /// are hashed instead).
    #[error("{}: larger than the {max} bytes resume data can take", path.display())]
    ResumeTooLarge {
        /// The resume file.
        path: PathBuf,
        /// The most bytes resume data for this torrent can take.
        max: u64,
    },
    /// Any other I/O error (EIO, …).
    #[error("{}: {op}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The operating system's error.
        source: Arc<io::Error>,
    },
    /// A read asked for a piece that is not verified on disk.
    #[error("piece {0} is not available")]
    PieceMissing(u32),
    /// A block that does not fit the torrent's geometry.
    #[error("invalid block: piece {}, offset {}, length {}", .0.piece, .0.offset, .0.len)]
    InvalidBlock(cratetorrent_wire::BlockInfo),
    /// The storage was shut down.
    #[error("storage is shut down")]
    Closed,
}

impl StorageError {
    /// Classifies an I/O error on `path`.
    pub(crate) fn from_io(error: io::Error, path: impl Into<PathBuf>, op: &'static str) -> Self {
        let path = path.into();
        match error.raw_os_error() {
            Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG) => Self::NoSpace { path },
            Some(libc::EACCES | libc::EPERM) => Self::PermissionDenied { path },
            Some(libc::EROFS) => Self::ReadOnly { path },
            Some(libc::EISDIR | libc::ENOTDIR) => Self::NotAFile { path },
            _ => Self::Io {
                path,
                op,
                source: Arc::new(error),
            },
        }
    }

    /// The path the error concerns, if any.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Self::NoSpace { path }
            | Self::PermissionDenied { path }
            | Self::ReadOnly { path }
            | Self::NotAFile { path }
            | Self::Symlink { path }
            | Self::ReservedName { path }
            | Self::ResumeTooLarge { path, .. }
            | Self::Io { path, .. } => Some(path),
            Self::Closed | Self::PieceMissing(_) | Self::InvalidBlock(_) => None,
        }
    }
}
