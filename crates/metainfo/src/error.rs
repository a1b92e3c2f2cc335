//! Errors of `.torrent` parsing.

use thiserror::Error;

use crate::bencode::DecodeError;

/// Why a `.torrent` file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MetainfoError {
    /// The file is not strict bencode.
    #[error("invalid bencode: {0}")]
    Bencode(#[from] DecodeError),
    /// The file is bencode but not a dictionary.
    #[error("a torrent must be a dictionary")]
    NotADictionary,
    /// A required field is absent.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A field has the wrong bencode type or an impossible value.
    #[error("field `{field}` is invalid: {reason}")]
    InvalidField {
        /// The field's key.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The piece length is zero, too large, or neither a power of two nor a multiple of 16 KiB.
    #[error("invalid piece length {0}")]
    InvalidPieceLength(i64),
    /// The `pieces` string does not hold one 20-byte hash per piece.
    #[error("`pieces` is {actual} bytes but the torrent's length needs {expected}")]
    PiecesLengthMismatch {
        /// 20 × the piece count implied by the total length.
        expected: u64,
        /// The length found.
        actual: u64,
    },
    /// The torrent's files add up to zero bytes.
    #[error("the torrent has no data (total length 0)")]
    ZeroLength,
    /// File lengths add up past the largest supported size.
    #[error("file lengths overflow")]
    LengthOverflow,
    /// More pieces than a 32-bit piece index can address.
    #[error("too many pieces: {0}")]
    TooManyPieces(u64),
    /// Both or neither of `length` and `files` are present.
    #[error("the info dictionary must have exactly one of `length` and `files`")]
    AmbiguousLayout,
    /// More files than the configured limit.
    #[error("{count} files exceed the limit of {limit}")]
    TooManyFiles {
        /// Files in the torrent.
        count: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A file name that could escape the download directory or cannot be created.
    #[error("unsafe path {path:?}: {reason}")]
    UnsafePath {
        /// The offending path, lossily converted for display.
        path: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// Two files with the same path, or a file where another needs a directory.
    #[error("conflicting file paths: {0:?}")]
    ConflictingPaths(String),
    /// A hybrid torrent whose v1 file list and v2 file tree differ (at this path).
    #[error("the v1 and v2 file lists of a hybrid torrent differ at {0:?}")]
    InconsistentHybrid(String),
    /// A `piece layers` entry that does not belong to its file.
    #[error("the piece layer of {path:?} is invalid: {reason}")]
    InvalidPieceLayer {
        /// The file's path.
        path: String,
        /// What is wrong with the layer.
        reason: &'static str,
    },
    /// A torrent format this crate does not read yet.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
}
