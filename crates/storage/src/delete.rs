//! Deleting a removed torrent's files, the directories they leave empty, and its resume data.

use std::path::Path;

use crate::layout::Layout;

/// Deletes the files of `layout`, the directories they leave empty, and its resume data.
pub fn delete_files(layout: &Layout) -> std::io::Result<()> {
    let root = layout.root().to_path_buf();
    let mut dirs = Vec::new();
    let mut index = 0;
    while let Some(path) = layout.path(index) {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| d.starts_with(&root) && *d != root) {
            dirs.push(d.to_path_buf());
            dir = d.parent();
        }
        index += 1;
    }
    // Deepest first; a directory that still holds other files stays.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    dirs.dedup();
    for dir in dirs {
        let _ = std::fs::remove_dir(&dir);
    }
    let resume = layout.resume_path();
    let _ = std::fs::remove_file(&resume);
    if let Some(parent) = resume.parent().filter(|p| p != &Path::new("")) {
        let _ = std::fs::remove_dir(parent);
    }
    Ok(())
}
