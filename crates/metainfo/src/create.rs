//! Creating `.torrent` files from a file or a directory.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sha1::{Digest, Sha1};
use thiserror::Error;

use crate::bencode::{DictBuilder, Encode, Raw};
use crate::metainfo::MAX_PIECE_LENGTH;
use crate::path::check_component;

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

/// Builds a v1 `.torrent` from a file or a directory.
///
/// Files of a directory are listed in byte order of their paths, as mktorrent does; hidden files
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
}

struct PayloadFile {
    path: PathBuf,
    components: Vec<String>,
    length: u64,
    offset: u64,
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
        }
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
        let pieces = hash_pieces(&files, total, piece_length, self.threads, progress)?;

        let mut info = DictBuilder::new();
        info.insert("name", name.as_str())
            .insert("piece length", piece_length)
            .insert("pieces", pieces.as_slice());
        if single_file {
            info.insert("length", total_i64(total)?);
        } else {
            let mut list = Vec::with_capacity(files.len());
            for file in &files {
                let mut entry = DictBuilder::new();
                entry
                    .insert("length", total_i64(file.length)?)
                    .insert("path", &file.components);
                list.push(entry);
            }
            info.insert("files", list);
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

/// Hashes all pieces on `threads` threads, each taking the next piece from a shared counter.
fn hash_pieces(
    files: &[PayloadFile],
    total: u64,
    piece_length: u32,
    threads: usize,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Vec<u8>, CreateError> {
    let piece_count = u32::try_from(total.div_ceil(u64::from(piece_length)))
        .map_err(|_| CreateError::TooManyPieces)?;
    let next = AtomicU32::new(0);
    let hashed = AtomicU64::new(0);
    let threads = threads.min(piece_count as usize).max(1);
    type Hashes = Result<Vec<(u32, [u8; 20])>, CreateError>;
    let results: Vec<Hashes> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut reader = PieceReader::new(files);
                    let mut buffer = vec![0u8; piece_length as usize];
                    let mut out = Vec::new();
                    loop {
                        let piece = next.fetch_add(1, Ordering::Relaxed);
                        if piece >= piece_count {
                            return Ok(out);
                        }
                        let start = u64::from(piece) * u64::from(piece_length);
                        let len = u32::try_from(total - start)
                            .map_or(piece_length, |rest| rest.min(piece_length))
                            as usize;
                        let data = &mut buffer[..len];
                        reader
                            .read(start, data)
                            .inspect_err(|_| next.store(piece_count, Ordering::Relaxed))?;
                        out.push((piece, Sha1::digest(&*data).into()));
                        let done = hashed.fetch_add(len as u64, Ordering::Relaxed) + len as u64;
                        progress(Progress {
                            hashed: done,
                            total,
                        });
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut pieces = vec![0u8; piece_count as usize * 20];
    for result in results {
        for (piece, hash) in result? {
            let at = piece as usize * 20;
            pieces[at..at + 20].copy_from_slice(&hash);
        }
    }
    Ok(pieces)
}

/// Reads torrent byte ranges across file boundaries, keeping the last file open.
struct PieceReader<'f> {
    files: &'f [PayloadFile],
    open: Option<(usize, File)>,
}

impl<'f> PieceReader<'f> {
    fn new(files: &'f [PayloadFile]) -> Self {
        Self { files, open: None }
    }

    fn read(&mut self, offset: u64, mut buffer: &mut [u8]) -> Result<(), CreateError> {
        let mut index = self
            .files
            .partition_point(|f| f.offset + f.length <= offset);
        let mut position = offset;
        while !buffer.is_empty() {
            let Some(file) = self.files.get(index) else {
                return Err(CreateError::FileChanged(
                    self.files
                        .last()
                        .map(|f| f.path.clone())
                        .unwrap_or_default(),
                ));
            };
            let in_file = position - file.offset;
            let take = usize::try_from(file.length - in_file)
                .map_or(buffer.len(), |rest| rest.min(buffer.len()));
            if take > 0 {
                let handle = self.file(index)?;
                let (head, rest) = buffer.split_at_mut(take);
                handle
                    .read_exact_at(head, in_file)
                    .map_err(|source| match source.kind() {
                        io::ErrorKind::UnexpectedEof => CreateError::FileChanged(file.path.clone()),
                        _ => CreateError::Io {
                            path: file.path.clone(),
                            source,
                        },
                    })?;
                buffer = rest;
                position += take as u64;
            }
            index += 1;
        }
        Ok(())
    }

    fn file(&mut self, index: usize) -> Result<&File, CreateError> {
        if self.open.as_ref().is_none_or(|(open, _)| *open != index) {
            self.open = None;
        }
        let path = &self.files[index].path;
        let open = match self.open.take() {
            Some(open) => open,
            None => (
                index,
                File::open(path).map_err(|source| CreateError::Io {
                    path: path.clone(),
                    source,
                })?,
            ),
        };
        Ok(&self.open.insert(open).1)
    }
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
