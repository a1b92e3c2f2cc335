//! The files of a torrent and the mapping from torrent byte ranges to file slices.

use std::path::PathBuf;

/// One file of a torrent, in torrent order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub(crate) components: Vec<String>,
    pub(crate) length: u64,
    pub(crate) offset: u64,
    pub(crate) attributes: FileAttributes,
    /// BEP 52: the root of the file's merkle tree, for the non-empty files of v2 and hybrid
    /// torrents.
    pub(crate) pieces_root: Option<[u8; 32]>,
}

/// BEP 47 file attributes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileAttributes {
    /// A padding file: its bytes are zeros, never written to disk.
    pub padding: bool,
    /// The executable bit should be set.
    pub executable: bool,
    /// A hidden file.
    pub hidden: bool,
    /// A symbolic link (its target is not supported yet; the entry is kept as a regular file).
    pub symlink: bool,
}

impl FileAttributes {
    pub(crate) fn parse(attr: &[u8]) -> Self {
        Self {
            padding: attr.contains(&b'p'),
            executable: attr.contains(&b'x'),
            hidden: attr.contains(&b'h'),
            symlink: attr.contains(&b'l'),
        }
    }
}

impl FileEntry {
    /// The path relative to the download directory, checked to stay inside it: for a multi-file
    /// torrent it starts with the torrent's name, for a single-file torrent it is the name.
    pub fn path(&self) -> PathBuf {
        self.components.iter().collect()
    }

    /// The checked path components, from the download directory down.
    pub fn components(&self) -> &[String] {
        &self.components
    }

    /// The file's size in bytes.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// Where the file starts in the torrent's concatenated data.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// BEP 47 attributes.
    pub fn attributes(&self) -> FileAttributes {
        self.attributes
    }

    /// Whether this is a BEP 47 padding file, whose bytes are never stored.
    pub fn is_padding(&self) -> bool {
        self.attributes.padding
    }

    /// BEP 52: the root of the file's merkle tree over 16 KiB blocks (v2 and hybrid torrents,
    /// non-empty files).
    pub fn pieces_root(&self) -> Option<&[u8; 32]> {
        self.pieces_root.as_ref()
    }
}

/// The part of one file that a byte range of the torrent covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSlice {
    /// Index of the file in [`Metainfo::files`](crate::Metainfo::files).
    pub file_index: usize,
    /// Offset inside the file.
    pub offset: u64,
    /// Number of bytes.
    pub len: u64,
}

/// Iterator over the file slices covering a byte range; zero-length files are skipped.
#[derive(Debug, Clone)]
pub struct FileSlices<'m> {
    files: &'m [FileEntry],
    next_file: usize,
    offset: u64,
    remaining: u64,
}

impl<'m> FileSlices<'m> {
    /// Slices of `files` covering `len` bytes from torrent offset `offset`; a range past the end is
    /// cut at the end of the last file.
    pub(crate) fn new(files: &'m [FileEntry], offset: u64, len: u64) -> Self {
        // Binary search: the first file that ends after `offset`.
        let next_file = files.partition_point(|f| f.offset + f.length <= offset);
        Self {
            files,
            next_file,
            offset,
            remaining: len,
        }
    }
}

impl Iterator for FileSlices<'_> {
    type Item = FileSlice;

    fn next(&mut self) -> Option<FileSlice> {
        while self.remaining > 0 {
            let file_index = self.next_file;
            let file = self.files.get(file_index)?;
            self.next_file += 1;
            if file.length == 0 {
                continue;
            }
            let offset = self.offset - file.offset;
            let len = self.remaining.min(file.length - offset);
            self.offset += len;
            self.remaining -= len;
            return Some(FileSlice {
                file_index,
                offset,
                len,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(lengths: &[u64]) -> Vec<FileEntry> {
        let mut offset = 0;
        lengths
            .iter()
            .enumerate()
            .map(|(i, &length)| {
                let entry = FileEntry {
                    components: vec![format!("f{i}")],
                    length,
                    offset,
                    attributes: FileAttributes::default(),
                    pieces_root: None,
                };
                offset += length;
                entry
            })
            .collect()
    }

    fn slices(files: &[FileEntry], offset: u64, len: u64) -> Vec<(usize, u64, u64)> {
        FileSlices::new(files, offset, len)
            .map(|s| (s.file_index, s.offset, s.len))
            .collect()
    }

    #[test]
    fn spans_boundaries_and_skips_empty_files() {
        let files = files(&[10, 0, 5, 0, 0, 20]);
        assert_eq!(slices(&files, 0, 10), vec![(0, 0, 10)]);
        assert_eq!(slices(&files, 8, 10), vec![(0, 8, 2), (2, 0, 5), (5, 0, 3)]);
        assert_eq!(slices(&files, 15, 20), vec![(5, 0, 20)]);
        assert_eq!(slices(&files, 30, 100), vec![(5, 15, 5)]);
        assert_eq!(slices(&files, 35, 1), vec![]);
        assert_eq!(slices(&files, 3, 0), vec![]);
    }
}
