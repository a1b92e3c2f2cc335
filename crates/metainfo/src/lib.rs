//! Torrent metadata for BitTorrent: strict zero-copy bencode, `.torrent` parsing with the exact
//! info-hash, magnet links, and torrent creation.
//!
//! - [`bencode`]: a strict decoder whose values borrow the input and know their byte spans, and a
//!   canonical encoder.
//! - [`Metainfo`]: a validated v1, v2 or hybrid torrent (BEP 3, 12, 19, 27, 47, 52). The
//!   info-hashes are SHA-1 and SHA-256 over the `info` dictionary's bytes exactly as they appear in
//!   the file; every file path is checked so that a hostile torrent cannot name a file outside
//!   the download directory; v2 piece layers are checked against their files' merkle roots.
//! - [`merkle`]: BEP 52's per-file SHA-256 merkle trees.
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
mod file_list;
mod file_tree;
mod files;
mod info_hash;
mod magnet;
pub mod merkle;
mod metainfo;
mod path;
mod piece_layers;
mod v2_layout;
mod v2_piece;

pub use create::{CreateError, Progress, Skipped, TorrentBuilder, auto_piece_length};
pub use error::MetainfoError;
pub use files::{FileAttributes, FileEntry, FileSlice, FileSlices};
pub use info_hash::{InfoHash, InfoHashError, InfoHashV2, InfoHashes};
pub use magnet::{Magnet, MagnetError};
pub use metainfo::{Limits, MAX_PIECE_LENGTH, MetaVersion, Metainfo};
pub use v2_piece::V2Piece;

/// The index of a piece in a torrent.
pub type PieceIndex = u32;
