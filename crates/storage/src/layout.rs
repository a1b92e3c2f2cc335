//! Where a torrent's bytes live: its files under the download directory.

use std::path::{Path, PathBuf};

use cratetorrent_metainfo::{FileSlice, Metainfo, PieceIndex};

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
#[derive(Debug, Clone)]
pub struct Layout {
    metainfo: Metainfo,
    root: PathBuf,
    pub(crate) files: Vec<LayoutFile>,
}

impl Layout {
    /// Maps `metainfo` under `download_dir`. Paths were checked by the metainfo parser to be relative
    /// and free of `..`; the storage resolves them without following links, so every file lies
    /// inside `download_dir`.
    pub fn new(metainfo: &Metainfo, download_dir: &Path) -> Self {
        let files = metainfo
            .files()
            .iter()
            .map(|file| LayoutFile {
                path: download_dir.join(file.path()),
                rel: file.path(),
                length: file.length(),
                padding: file.is_padding(),
            })
            .collect();
        Self {
            metainfo: metainfo.clone(),
            root: download_dir.to_path_buf(),
            files,
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

    /// The file slices covering `len` bytes at torrent offset `offset`.
    pub(crate) fn slices(&self, offset: u64, len: u64) -> impl Iterator<Item = FileSlice> + '_ {
        self.metainfo.byte_range_slices(offset, len)
    }
}
