//! Deleting a removed torrent's files, the directories they leave empty, and its resume data
//! (and saved metadata),
//! without following links (see [`crate::beneath`]).

use std::path::{Path, PathBuf};

use crate::StorageError;
use crate::beneath::Beneath;
use crate::layout::Layout;
use crate::layout::RESUME_DIR;

/// Deletes the files of `layout` (never padding files: we never create those, so a file at
/// such a path is someone else's), the directories they leave empty, and its resume data.
/// Nothing is deleted through a link; a link where a file or directory belongs is left alone,
/// the other files are still deleted, and the first such problem is returned.
pub fn delete_files(layout: &Layout) -> Result<(), StorageError> {
    let root = match Beneath::open(layout.root(), false) {
        Ok(root) => root,
        Err(StorageError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(());
        }
        Err(error) => return Err(error),
    };
    let mut first_error = None;
    let mut dirs: Vec<PathBuf> = Vec::new();
    for file in layout.files.iter().filter(|f| !f.padding) {
        if let Err(error) = root.remove_file(&file.rel) {
            first_error.get_or_insert(error);
        }
        dirs.extend(file.rel.ancestors().skip(1).map(Path::to_path_buf));
    }
    // Deepest first; a directory that still holds other files stays.
    dirs.retain(|d| !d.as_os_str().is_empty());
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    dirs.dedup();
    for dir in dirs {
        root.remove_empty_dir(&dir);
    }
    for index in 0..layout.files.len() {
        let _ = root.remove_file(&layout.file(layout.part_index(index)).rel);
    }
    if let Some(parts) = (!layout.files.is_empty())
        .then(|| layout.file(layout.part_index(0)).rel.parent())
        .flatten()
    {
        root.remove_empty_dir(parts);
    }
    let resume = Path::new(RESUME_DIR).join(layout.resume_path().file_name().unwrap_or_default());
    let _ = root.remove_file(&resume);
    crate::saved_metadata::remove(&root, layout.metainfo().info_hash());
    root.remove_empty_dir(Path::new(RESUME_DIR));
    first_error.map_or(Ok(()), Err)
}
