//! Torrent metadata for BitTorrent: strict zero-copy bencode, `.torrent` parsing with the exact
//! info-hash, magnet links, and torrent creation.
//!
//! - [`bencode`]: a strict decoder whose values borrow the input and know their byte spans, and a
//!   canonical encoder.
//! - [`Metainfo`]: a validated v1 torrent (BEP 3, 12, 19, 27, 47; hybrid v2 torrents read as v1).
//!   The info-hash is SHA-1 over the `info` dictionary's bytes exactly as they appear in the file;
//!   every file path is checked so that a hostile torrent cannot name a file outside the download
//!   directory.
//! - [`Magnet`]: magnet links, parsed and printed.
//! - [`TorrentBuilder`]: creates `.torrent` files, hashing on all cores.
//!
//! ```
//! use cratetorrent_metainfo::{Metainfo, TorrentBuilder};
//!
//! // Make a two-file torrent, then read it back.
//! let dir = tempfile::tempdir()?;
//! let payload = dir.path().join("album");
//! std::fs::create_dir(&payload)?;
//! std::fs::write(payload.join("01.flac"), vec![1u8; 40_000])?;
//! std::fs::write(payload.join("02.flac"), vec![2u8; 30_000])?;
//! let bytes = TorrentBuilder::new(&payload).piece_length(16 * 1024).build()?;
//!
//! let torrent = Metainfo::from_bytes(&bytes)?;
//! assert_eq!(torrent.name(), "album");
//! assert_eq!(torrent.piece_count(), 5);
//! assert_eq!(torrent.files()[1].path(), std::path::Path::new("album/02.flac"));
//! // Piece 2 (bytes 32768..49152) straddles both files.
//! let slices: Vec<_> = torrent.piece_slices(2).map(|s| (s.file_index, s.offset, s.len)).collect();
//! assert_eq!(slices, [(0, 32768, 7232), (1, 0, 9152)]);
//! println!("{}", torrent.info_hash());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod bencode;
mod create;
mod error;
mod files;
mod info_hash;
mod magnet;
mod metainfo;
mod path;

pub use create::{CreateError, Progress, Skipped, TorrentBuilder, auto_piece_length};
pub use error::MetainfoError;
pub use files::{FileAttributes, FileEntry, FileSlice, FileSlices};
pub use info_hash::{InfoHash, InfoHashError};
pub use magnet::{Magnet, MagnetError};
pub use metainfo::{Limits, MAX_PIECE_LENGTH, Metainfo};

/// The index of a piece in a torrent.
pub type PieceIndex = u32;
