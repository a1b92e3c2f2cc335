//! Creating `.torrent` files (v1, v2 or hybrid) from a file or a directory.

mod hashing;
mod tree;

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use thiserror::Error;

use crate::MetaVersion;
use crate::bencode::{DictBuilder, Encode, Raw};
use crate::metainfo::MAX_PIECE_LENGTH;
use crate::path::check_component;
use hashing::{Wanted, hash_payload};

/// Smallest piece length chosen automatically (one block).
const MIN_AUTO_PIECE_LENGTH: u64 = 16 << 10;
/// Largest piece length chosen automatically.
const MAX_AUTO_PIECE_LENGTH: u64 = 16 << 20;
/// Automatic piece lengths aim for at most this many pieces (and more than half as many).
const TARGET_PIECES: u64 = 2000;

/// Why a torrent could not be created.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CreateError {
    /// Reading the payload failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A file shrank while it was being hashed.
    #[error("{0}: file changed while hashing")]
    FileChanged(PathBuf),
    /// The payload holds no bytes.
    #[error("nothing to share: the payload is empty")]
    Empty,
    /// A file name that is not UTF-8 or that the torrent format cannot carry safely.
    #[error("{path}: {reason}")]
    InvalidName {
        /// The file.
        path: PathBuf,
        /// What is wrong with its name.
        reason: String,
    },
    /// A requested piece length that is not a power of two between 16 KiB and 256 MiB.
    #[error("invalid piece length {0}: use a power of two from 16 KiB to 256 MiB")]
    InvalidPieceLength(u32),
    /// More pieces than a 32-bit index can count.
    #[error("too many pieces; use a larger piece length")]
    TooManyPieces,
}

/// Hashing progress, reported after each piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Payload bytes hashed so far.
    pub hashed: u64,
    /// Payload bytes in all.
    pub total: u64,
}

/// Directory entries a [`TorrentBuilder`] leaves out ([`TorrentBuilder::skipped`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Skipped {
    /// Files and directories whose names start with `.` (a hidden directory counts once).
    pub hidden: usize,
    /// Symbolic links.
    pub symlinks: usize,
}

/// Builds a `.torrent` from a file or a directory: v1 by default, or v2 or hybrid v1 + v2
/// (BEP 52) with [`meta_version`](Self::meta_version).
///
/// Files of a directory are listed in byte order of their path components, as mktorrent and
/// libtorrent do (v2 requires this order); hidden files
/// (names starting with `.`) are left out unless [`include_hidden`](Self::include_hidden) is set,
/// and so are symbolic links inside the folder unless [`follow_symlinks`](Self::follow_symlinks)
/// is set (a link in a shared folder can point anywhere, such as `~/.ssh/id_rsa`).
/// Pieces are hashed on all cores while streaming: memory is one piece buffer per thread.
///
/// ```
/// use cratetorrent_metainfo::{Metainfo, TorrentBuilder};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("hello.txt");
/// std::fs::write(&path, b"hello, swarm")?;
/// let bytes = TorrentBuilder::new(&path).tracker("http://127.0.0.1:6969/announce").build()?;
/// let torrent = Metainfo::from_bytes(&bytes)?;
/// assert_eq!(torrent.name(), "hello.txt");
/// assert_eq!(torrent.total_length(), 12);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct TorrentBuilder {
    root: PathBuf,
    piece_length: Option<u32>,
    tiers: Vec<Vec<String>>,
    web_seeds: Vec<String>,
    private: bool,
    comment: Option<String>,
    created_by: Option<String>,
    creation_date: Option<i64>,
    source: Option<String>,
    include_hidden: bool,
    follow_symlinks: bool,
    threads: usize,
    version: MetaVersion,
}

/// A file of the payload, or a padding entry (zeros) that makes the next file start on a piece
/// boundary.
struct PayloadFile {
    path: PathBuf,
    /// The path below the torrent's root; for padding `.pad/<length>`, as libtorrent names it.
    components: Vec<String>,
    length: u64,
    offset: u64,
    executable: bool,
    pad: bool,
}

impl TorrentBuilder {
    /// A builder for the file or directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_secs()).ok());
        Self {
            root: root.into(),
            piece_length: None,
            tiers: Vec::new(),
            web_seeds: Vec::new(),
            private: false,
            comment: None,
            created_by: Some(concat!("cratetorrent ", env!("CARGO_PKG_VERSION")).to_string()),
            creation_date: now,
            source: None,
            include_hidden: false,
            follow_symlinks: false,
            threads,
            version: MetaVersion::V1,
        }
    }

    /// Which formats the torrent describes its files in (default [`MetaVersion::V1`], which
    /// every client reads). [`MetaVersion::Hybrid`] is what libtorrent and qBittorrent make, and
    /// what the `cratetorrent create` command defaults to: every v1 client can join and v2
    /// clients verify per file, at the cost of padding files between files in the v1 list and
    /// SHA-256 hashing beside SHA-1. A v2-only torrent shuts v1-only clients out.
    pub fn meta_version(mut self, version: MetaVersion) -> Self {
        self.version = version;
        self
    }

    /// Uses this piece length instead of choosing one (a power of two, 16 KiB to 256 MiB).
    pub fn piece_length(mut self, length: u32) -> Self {
        self.piece_length = Some(length);
        self
    }

    /// Adds a tracker in a tier of its own.
    pub fn tracker(mut self, url: impl Into<String>) -> Self {
        self.tiers.push(vec![url.into()]);
        self
    }

    /// Adds a BEP 12 tier of trackers.
    pub fn tier(mut self, urls: Vec<String>) -> Self {
        if !urls.is_empty() {
            self.tiers.push(urls);
        }
        self
    }

    /// Adds a BEP 19 web seed.
    pub fn web_seed(mut self, url: impl Into<String>) -> Self {
        self.web_seeds.push(url.into());
        self
    }

    /// Marks the torrent private (BEP 27).
    pub fn private(mut self, private: bool) -> Self {
        self.private = private;
        self
    }

    /// Sets the comment.
    pub fn comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }

    /// Sets `created by` (default: this crate's name and version), or leaves it out with `None`.
    pub fn created_by(mut self, created_by: Option<String>) -> Self {
        self.created_by = created_by;
        self
    }

    /// Sets the creation date in seconds since the epoch (default: now), or leaves it out with `None`.
    pub fn creation_date(mut self, date: Option<i64>) -> Self {
        self.creation_date = date;
        self
    }

    /// Sets the `source` field, which private trackers use to give a torrent its own info-hash.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Includes files and directories whose names start with `.`.
    pub fn include_hidden(mut self, include: bool) -> Self {
        self.include_hidden = include;
        self
    }

    /// Includes the files that symbolic links inside a folder point to, wherever they are
    /// (default false: links are skipped, so nothing outside the folder is published by
    /// accident). Links to directories are never followed, so loops cannot form. The root
    /// itself is the caller's choice and is followed if it is a link.
    pub fn follow_symlinks(mut self, follow: bool) -> Self {
        self.follow_symlinks = follow;
        self
    }

    /// Hashes on this many threads (default: one per core).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Hashes the payload and returns the `.torrent` bytes.
    pub fn build(&self) -> Result<Vec<u8>, CreateError> {
        self.build_with_progress(&|_| {})
    }

    /// Like [`build`](Self::build), calling `progress` after each piece (from any hashing thread).
    pub fn build_with_progress(
        &self,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Vec<u8>, CreateError> {
        let io_error = |source| CreateError::Io {
            path: self.root.clone(),
            source,
        };
        let metadata = fs::metadata(&self.root).map_err(io_error)?;
        let name = file_name(&self.root)?;
        let single_file = metadata.is_file();
        let files = if single_file {
            vec![PayloadFile {
                path: self.root.clone(),
                components: Vec::new(),
                length: metadata.len(),
                offset: 0,
                executable: is_executable(&metadata),
                pad: false,
            }]
        } else {
            self.list_directory()?.0
        };
        let total = files.last().map_or(0, |f| f.offset + f.length);
        if total == 0 {
            return Err(CreateError::Empty);
        }
        let piece_length = match self.piece_length {
            Some(length)
                if length.is_power_of_two() && (16 << 10..=MAX_PIECE_LENGTH).contains(&length) =>
            {
                length
            }
            Some(length) => return Err(CreateError::InvalidPieceLength(length)),
            None => auto_piece_length(total),
        };
        // v2 files start on piece boundaries; a single file needs no padding.
        let layout = if self.version.has_v2() && !single_file {
            pad_to_pieces(files, piece_length)?
        } else {
            files
        };
        let wanted = Wanted {
            v1: self.version.has_v1(),
            v2: self.version.has_v2(),
        };
        let hashes = hash_payload(&layout, piece_length, wanted, self.threads, progress)?;
        let total = layout.last().map_or(0, |f| f.offset + f.length);

        let mut info = DictBuilder::new();
        info.insert("name", name.as_str())
            .insert("piece length", piece_length);
        if wanted.v1 {
            info.insert("pieces", hashes.pieces.as_slice());
            if single_file {
                info.insert("length", total_i64(total)?);
            } else {
                info.insert("files", v1_file_list(&layout)?);
            }
        }
        if wanted.v2 {
            info.insert("meta version", 2i64).insert(
                "file tree",
                tree::file_tree(&layout, &hashes.trees, single_file.then_some(&name))?,
            );
        }
        if self.private {
            info.insert("private", 1i64);
        }
        if let Some(source) = &self.source {
            info.insert("source", source);
        }
        let info = info.to_bencode();

        let mut torrent = DictBuilder::new();
        torrent.insert("info", Raw(&info));
        if wanted.v2 {
            torrent.insert("piece layers", tree::piece_layers(&hashes.trees));
        }
        if let Some(first) = self.tiers.first().and_then(|tier| tier.first()) {
            torrent.insert("announce", first);
        }
        if self.tiers.len() > 1 || self.tiers.first().is_some_and(|tier| tier.len() > 1) {
            torrent.insert("announce-list", &self.tiers);
        }
        if !self.web_seeds.is_empty() {
            torrent.insert("url-list", &self.web_seeds);
        }
        if let Some(comment) = &self.comment {
            torrent.insert("comment", comment);
        }
        if let Some(created_by) = &self.created_by {
            torrent.insert("created by", created_by);
        }
        if let Some(date) = self.creation_date {
            torrent.insert("creation date", date);
        }
        Ok(torrent.to_bencode())
    }

    /// What a build leaves out of a directory: hidden entries (unless included) and symbolic
    /// links (unless followed). Walks the directory again; a single file skips nothing.
    pub fn skipped(&self) -> Result<Skipped, CreateError> {
        if !self.root.is_dir() {
            return Ok(Skipped::default());
        }
        Ok(self.list_directory()?.1)
    }

    /// Every regular file under the root, sorted by path bytes, with torrent offsets; and what
    /// was left out.
    fn list_directory(&self) -> Result<(Vec<PayloadFile>, Skipped), CreateError> {
        let mut files = Vec::new();
        let mut skipped = Skipped::default();
        let mut pending = vec![(self.root.clone(), Vec::<String>::new())];
        while let Some((dir, components)) = pending.pop() {
            let io_error = |source| CreateError::Io {
                path: dir.clone(),
                source,
            };
            for entry in fs::read_dir(&dir).map_err(io_error)? {
                let entry = entry.map_err(io_error)?;
                let path = entry.path();
                let name = file_name(&path)?;
                if name.starts_with('.') && !self.include_hidden {
                    skipped.hidden += 1;
                    continue;
                }
                let link = entry.file_type().map_err(io_error)?.is_symlink();
                if link && !self.follow_symlinks {
                    skipped.symlinks += 1;
                    continue;
                }
                let metadata = fs::metadata(&path).map_err(|source| CreateError::Io {
                    path: path.clone(),
                    source,
                })?;
                let mut child = components.clone();
                child.push(name);
                if metadata.is_dir() && !link {
                    pending.push((path, child));
                } else if metadata.is_file() {
                    files.push(PayloadFile {
                        path,
                        components: child,
                        length: metadata.len(),
                        offset: 0,
                        executable: is_executable(&metadata),
                        pad: false,
                    });
                }
            }
        }
        files.sort_unstable_by(|a, b| a.components.cmp(&b.components));
        let mut offset = 0u64;
        for file in &mut files {
            file.offset = offset;
            offset = offset
                .checked_add(file.length)
                .ok_or(CreateError::TooManyPieces)?;
        }
        Ok((files, skipped))
    }
}

/// Inserts a padding entry after each non-empty file that does not end on a piece boundary,
/// the last one included, as libtorrent 2.0.8 does (earlier versions left the tail unpadded).
fn pad_to_pieces(
    files: Vec<PayloadFile>,
    piece_length: u32,
) -> Result<Vec<PayloadFile>, CreateError> {
    let piece = u64::from(piece_length);
    let mut layout = Vec::with_capacity(files.len() * 2);
    let mut offset = 0u64;
    for mut file in files {
        file.offset = offset;
        offset = offset
            .checked_add(file.length)
            .ok_or(CreateError::TooManyPieces)?;
        layout.push(file);
        let gap = (piece - offset % piece) % piece;
        if gap > 0 {
            layout.push(PayloadFile {
                path: PathBuf::new(),
                components: vec![".pad".to_string(), gap.to_string()],
                length: gap,
                offset,
                executable: false,
                pad: true,
            });
            offset += gap;
        }
    }
    Ok(layout)
}

/// The v1 `files` list, padding entries marked `p` and executables `x` (BEP 47).
fn v1_file_list(layout: &[PayloadFile]) -> Result<Vec<DictBuilder>, CreateError> {
    let mut list = Vec::with_capacity(layout.len());
    for file in layout {
        let mut entry = DictBuilder::new();
        if let Some(attr) = attr(file) {
            entry.insert("attr", attr);
        }
        entry
            .insert("length", total_i64(file.length)?)
            .insert("path", &file.components);
        list.push(entry);
    }
    Ok(list)
}

/// BEP 47 attributes of an entry.
fn attr(file: &PayloadFile) -> Option<&'static str> {
    if file.pad {
        Some("p")
    } else if file.executable {
        Some("x")
    } else {
        None
    }
}

fn is_executable(metadata: &fs::Metadata) -> bool {
    metadata.permissions().mode() & 0o100 != 0
}

fn total_i64(length: u64) -> Result<i64, CreateError> {
    i64::try_from(length).map_err(|_| CreateError::TooManyPieces)
}

fn file_name(path: &Path) -> Result<String, CreateError> {
    let invalid = |reason: &str| CreateError::InvalidName {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let canonical;
    let name = match path.file_name() {
        Some(name) => name,
        None => {
            // `.` or `..` as the root: name the torrent after the directory it resolves to.
            canonical = fs::canonicalize(path).map_err(|source| CreateError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            canonical
                .file_name()
                .ok_or_else(|| invalid("has no file name"))?
        }
    };
    let name = name
        .to_str()
        .ok_or_else(|| invalid("name is not UTF-8"))?
        .to_string();
    check_component(&name, &|| name.clone()).map_err(|e| invalid(&e.to_string()))?;
    Ok(name)
}

/// Chooses a power-of-two piece length giving 1,000–2,000 pieces, within 16 KiB..16 MiB.
pub fn auto_piece_length(total: u64) -> u32 {
    let wanted = total.div_ceil(TARGET_PIECES).next_power_of_two();
    let length = wanted.clamp(MIN_AUTO_PIECE_LENGTH, MAX_AUTO_PIECE_LENGTH);
    u32::try_from(length).unwrap_or(MAX_PIECE_LENGTH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_piece_length_aims_for_1000_to_2000_pieces() {
        for total in [1u64 << 25, 1 << 30, 3 << 30, 10_000_000_000, 123_456_789] {
            let pieces = total.div_ceil(u64::from(auto_piece_length(total)));
            assert!((1000..=2000).contains(&pieces), "{total}: {pieces}");
        }
        assert_eq!(auto_piece_length(1), 16 << 10);
        assert_eq!(auto_piece_length(1 << 50), 16 << 20);
    }
}
