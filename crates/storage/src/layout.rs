//! Where a torrent's bytes live: its files under the download directory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use cratetorrent_metainfo::{FileSlice, Metainfo, PieceIndex};

use crate::beneath::Beneath;

/// The directory, in the download directory, that holds resume data.
pub(crate) const RESUME_DIR: &str = ".cratetorrent";

/// One file of the torrent on disk.
#[derive(Debug, Clone)]
pub(crate) struct LayoutFile {
    pub(crate) path: PathBuf,
    /// The path below the download directory, which every file operation resolves (see
    /// [`crate::beneath`]); `path` is for messages.
    pub(crate) rel: PathBuf,
    pub(crate) length: u64,
    /// BEP 47 padding: never written, reads as zeros.
    pub(crate) padding: bool,
}

/// A torrent mapped onto a download directory.
///
/// A file the user does not want is *parked*: the bytes of it that pieces shared with wanted
/// files carry go to its part file, `.cratetorrent/<info-hash>.parts/<file index>`, so the file
/// itself never appears (libtorrent's part file does the same). Those bytes are at most a piece
/// at the file's start and a piece at its end, so a part file holds the first piece length of
/// the file and then its last (`part_offset`): at most two pieces, whatever the file's size.
/// Slices of a parked file map to its part, which has the index `files.len() + file index`.
#[derive(Debug)]
pub struct Layout {
    metainfo: Metainfo,
    root: PathBuf,
    pub(crate) files: Vec<LayoutFile>,
    parts: Vec<LayoutFile>,
    parked: Vec<AtomicBool>,
}

impl Clone for Layout {
    fn clone(&self) -> Self {
        Self {
            metainfo: self.metainfo.clone(),
            root: self.root.clone(),
            files: self.files.clone(),
            parts: self.parts.clone(),
            parked: self
                .parked
                .iter()
                .map(|p| AtomicBool::new(p.load(Ordering::Relaxed)))
                .collect(),
        }
    }
}

impl Layout {
    /// Maps `metainfo` under `download_dir`. Paths were checked by the metainfo parser to be relative
    /// and free of `..`; the storage resolves them without following links, so every file lies
    /// inside `download_dir`.
    pub fn new(metainfo: &Metainfo, download_dir: &Path) -> Self {
        let files: Vec<LayoutFile> = metainfo
            .files()
            .iter()
            .map(|file| LayoutFile {
                path: download_dir.join(file.path()),
                rel: file.path(),
                length: file.length(),
                padding: file.is_padding(),
            })
            .collect();
        let piece_length = u64::from(metainfo.piece_length());
        let parts_dir = Path::new(RESUME_DIR).join(format!("{}.parts", metainfo.info_hash()));
        let parts = files
            .iter()
            .enumerate()
            .map(|(index, file)| {
                let rel = parts_dir.join(index.to_string());
                LayoutFile {
                    path: download_dir.join(&rel),
                    rel,
                    length: file.length.min(2 * piece_length),
                    padding: file.padding,
                }
            })
            .collect();
        let parked = files.iter().map(|_| AtomicBool::new(false)).collect();
        Self {
            metainfo: metainfo.clone(),
            root: download_dir.to_path_buf(),
            files,
            parts,
            parked,
        }
    }

    /// File `index` of the torrent, or (from `files.len()` on) the part of a parked file.
    pub(crate) fn file(&self, index: usize) -> &LayoutFile {
        match index.checked_sub(self.files.len()) {
            Some(part) => &self.parts[part],
            None => &self.files[index],
        }
    }

    /// The index [`file`](Self::file) knows file `index`'s part by.
    pub(crate) fn part_index(&self, index: usize) -> usize {
        self.files.len() + index
    }

    /// Whether file `index` is parked.
    pub(crate) fn is_parked(&self, index: usize) -> bool {
        self.parked
            .get(index)
            .is_some_and(|p| p.load(Ordering::Relaxed))
    }

    /// Parks or unparks file `index`. The caller makes sure no I/O is in flight on what it
    /// moves away from.
    pub(crate) fn set_parked(&self, index: usize, parked: bool) {
        if let Some(flag) = self.parked.get(index) {
            flag.store(parked, Ordering::Relaxed);
        }
    }

    /// Parks the files whose part exists and whose own file does not: how a restart finds
    /// what an earlier run parked.
    pub(crate) fn detect_parked(&self, root: &Beneath) {
        for (index, file) in self.files.iter().enumerate() {
            if file.padding || file.length == 0 {
                continue;
            }
            let part = root.stat(&self.parts[index].rel).is_ok();
            let own = root.stat(&file.rel).is_ok();
            self.set_parked(index, part && !own);
        }
    }

    /// Where byte `offset` of file `index` is kept in its part: the first piece length of the
    /// file at the same offset, the last piece length after it. Bytes between those are never
    /// wanted while the file is parked (only the file itself covers them); they map past the
    /// part's end.
    pub(crate) fn part_offset(&self, index: usize, offset: u64) -> u64 {
        let piece_length = u64::from(self.metainfo.piece_length());
        let length = self.files[index].length;
        if length <= 2 * piece_length || offset < piece_length {
            return offset;
        }
        let tail = length - piece_length;
        if offset >= tail {
            piece_length + (offset - tail)
        } else {
            2 * piece_length + offset
        }
    }

    /// The torrent.
    pub fn metainfo(&self) -> &Metainfo {
        &self.metainfo
    }

    /// The download directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the torrent's resume data is kept (`.cratetorrent/<info-hash>.resume` in the download
    /// directory).
    pub fn resume_path(&self) -> PathBuf {
        self.root.join(self.resume_rel())
    }

    /// The resume file's path below the download directory.
    pub(crate) fn resume_rel(&self) -> PathBuf {
        Path::new(RESUME_DIR).join(self.resume_name())
    }

    pub(crate) fn resume_name(&self) -> String {
        format!("{}.resume", self.metainfo().info_hash())
    }

    /// The on-disk path of file `index`.
    pub fn path(&self, index: usize) -> Option<&Path> {
        self.files.get(index).map(|f| f.path.as_path())
    }

    /// Torrent offset of a byte in `piece`.
    pub(crate) fn offset(&self, piece: PieceIndex, in_piece: u32) -> u64 {
        u64::from(piece) * u64::from(self.metainfo.piece_length()) + u64::from(in_piece)
    }

    /// The file slices covering `len` bytes at torrent offset `offset`, a parked file's mapped
    /// to its part.
    pub(crate) fn slices(&self, offset: u64, len: u64) -> impl Iterator<Item = FileSlice> + '_ {
        self.metainfo.byte_range_slices(offset, len).map(|slice| {
            if self.is_parked(slice.file_index) {
                FileSlice {
                    file_index: self.part_index(slice.file_index),
                    offset: self.part_offset(slice.file_index, slice.offset),
                    len: slice.len,
                }
            } else {
                slice
            }
        })
    }
}
