//! Files on disk larger than the torrent says they are: their pieces can all verify, yet the
//! file is not the torrent's. Found for `verify`, and cut to size after a download's check,
//! without following links (see [`crate::beneath`]).

use std::path::PathBuf;

use rustix::fs::FileType;

use crate::StorageError;
use crate::beneath::{Access, Beneath};
use crate::layout::{Layout, LayoutFile};

/// A file longer than the torrent says.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Oversized {
    /// Its path (the download directory joined with the torrent's path).
    pub path: PathBuf,
    /// Its size on disk.
    pub size: u64,
    /// Its size in the torrent.
    pub expected: u64,
}

/// The torrent's regular files that are longer on disk than the torrent says (links and
/// missing files are not).
pub fn oversized_files(layout: &Layout) -> Vec<Oversized> {
    let Ok(root) = Beneath::open(layout.root(), false) else {
        return Vec::new();
    };
    oversized(layout, &root).map(|(_, over)| over).collect()
}

fn oversized<'a>(
    layout: &'a Layout,
    root: &'a Beneath,
) -> impl Iterator<Item = (&'a LayoutFile, Oversized)> + 'a {
    layout
        .files
        .iter()
        .filter(|f| !f.padding)
        .filter_map(|file| {
            let stat = root.stat(&file.rel).ok()?;
            if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
                return None;
            }
            let size = u64::try_from(stat.st_size).ok()?;
            let over = Oversized {
                path: file.path.clone(),
                size,
                expected: file.length,
            };
            (size > file.length).then_some((file, over))
        })
}

/// Cuts every oversized file to the torrent's size; returns what it cut. The first failure
/// ends it (the files cut before it stay cut).
pub fn truncate_oversized(layout: &Layout) -> Result<Vec<Oversized>, StorageError> {
    let root = match Beneath::open(layout.root(), false) {
        Ok(root) => root,
        Err(error) if crate::beneath::is_not_found(&error) => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut cut = Vec::new();
    for (file, over) in oversized(layout, &root) {
        let handle = root.open_file(&file.rel, Access::ReadWrite)?;
        handle
            .set_len(over.expected)
            .map_err(|e| StorageError::from_io(e, over.path.clone(), "truncate"))?;
        cut.push(over);
    }
    Ok(cut)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cratetorrent_metainfo::{Metainfo, TorrentBuilder};

    #[test]
    fn larger_files_are_found_and_cut_and_links_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("a"), vec![1u8; 40_000]).unwrap();
        std::fs::write(root.join("b"), vec![2u8; 10_000]).unwrap();
        let metainfo = Metainfo::from_bytes(&TorrentBuilder::new(&root).build().unwrap()).unwrap();
        let layout = Layout::new(&metainfo, dir.path());
        assert!(oversized_files(&layout).is_empty());
        std::fs::write(root.join("a"), vec![1u8; 50_000]).unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, vec![3u8; 20_000]).unwrap();
        std::fs::remove_file(root.join("b")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("b")).unwrap();
        let cut = truncate_oversized(&layout).unwrap();
        assert_eq!(
            cut,
            [Oversized {
                path: root.join("a"),
                size: 50_000,
                expected: 40_000
            }]
        );
        assert_eq!(std::fs::metadata(root.join("a")).unwrap().len(), 40_000);
        assert_eq!(std::fs::metadata(&outside).unwrap().len(), 20_000);
        assert!(oversized_files(&layout).is_empty());
    }
}
