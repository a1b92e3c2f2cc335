//! Where a v2 torrent's files lie in the piece space (BEP 52), and the check that a hybrid
//! torrent's v1 file list and v2 file tree describe the same files.
//!
//! Every non-empty v2 file starts on a piece boundary. The wire protocol numbers pieces as if
//! the files were concatenated with padding between them, so a v2-only torrent is laid out with
//! padding files (never stored; zeros) in those gaps, as a hybrid torrent's v1 list has them
//! explicitly (BEP 47). The last file is padded too, as libtorrent (2.0.8) lays a v2 torrent
//! out: every piece, the last included, is a whole piece on the wire, so both sides agree on
//! which blocks the last piece has.

use crate::MetainfoError;
use crate::file_tree::TreeFile;
use crate::files::{FileAttributes, FileEntry};

/// Whether a v2 tree (of a torrent with no v1 `files` list) describes a single-file torrent: one
/// file, at the top of the tree.
pub(crate) fn is_single_file(tree: &[TreeFile]) -> bool {
    matches!(tree, [file] if file.path.len() == 1)
}

/// The files of a v2-only torrent named `name`, in tree order, each followed by the padding
/// that takes it to a piece boundary.
pub(crate) fn v2_files(
    name: &str,
    tree: Vec<TreeFile>,
    single_file: bool,
    piece_length: u32,
) -> Result<Vec<FileEntry>, MetainfoError> {
    let piece_length = u64::from(piece_length);
    let mut entries = Vec::with_capacity(2 * tree.len());
    let mut offset = 0u64;
    for file in tree {
        let components = if single_file {
            file.path
        } else {
            std::iter::once(name.to_string()).chain(file.path).collect()
        };
        entries.push(FileEntry {
            components,
            length: file.length,
            offset,
            attributes: file.attributes,
            pieces_root: file.pieces_root,
        });
        offset = offset
            .checked_add(file.length)
            .ok_or(MetainfoError::LengthOverflow)?;
        let gap = (piece_length - offset % piece_length) % piece_length;
        if gap > 0 {
            // Never stored; under the torrent's folder as libtorrent names them.
            let mut components = vec![".pad".to_string(), gap.to_string()];
            if !single_file {
                components.insert(0, name.to_string());
            }
            entries.push(FileEntry {
                components,
                length: gap,
                offset,
                attributes: FileAttributes {
                    padding: true,
                    ..FileAttributes::default()
                },
                pieces_root: None,
            });
            offset = offset
                .checked_add(gap)
                .ok_or(MetainfoError::LengthOverflow)?;
        }
    }
    Ok(entries)
}

/// Checks that a hybrid torrent's v1 `files` describe the files of its v2 tree: the same
/// non-empty files in the same order, with the same paths and lengths, each on a piece boundary
/// (padding files and empty files aside, as libtorrent compares them). The v1 entries get the
/// merkle roots.
pub(crate) fn attach_tree(
    files: &mut [FileEntry],
    tree: Vec<TreeFile>,
    single_file: bool,
    piece_length: u32,
) -> Result<(), MetainfoError> {
    let mut tree_files = tree.into_iter().filter(|f| f.length > 0);
    for entry in files.iter_mut().filter(|f| !f.is_padding() && f.length > 0) {
        let inconsistent = || MetainfoError::InconsistentHybrid(entry.components.join("/"));
        let file = tree_files.next().ok_or_else(inconsistent)?;
        let v1_path = if single_file {
            &entry.components[..]
        } else {
            entry.components.get(1..).unwrap_or_default()
        };
        if v1_path != file.path.as_slice()
            || entry.length != file.length
            || entry.offset % u64::from(piece_length) != 0
        {
            return Err(inconsistent());
        }
        entry.pieces_root = file.pieces_root;
    }
    match tree_files.next() {
        Some(extra) => Err(MetainfoError::InconsistentHybrid(extra.path.join("/"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, u64)]) -> Vec<TreeFile> {
        files
            .iter()
            .map(|&(path, length)| TreeFile {
                path: path.split('/').map(String::from).collect(),
                length,
                pieces_root: (length > 0).then_some([length.to_le_bytes()[0]; 32]),
                attributes: FileAttributes::default(),
            })
            .collect()
    }

    fn layout(files: &[FileEntry]) -> Vec<(String, u64, u64, bool)> {
        files
            .iter()
            .map(|f| (f.components.join("/"), f.offset, f.length, f.is_padding()))
            .collect()
    }

    #[test]
    fn v2_files_start_on_piece_boundaries() {
        let files = v2_files(
            "t",
            tree(&[("a", 5), ("b", 0), ("d/c", 16384), ("e", 20000)]),
            false,
            16384,
        )
        .unwrap();
        assert_eq!(
            layout(&files),
            [
                ("t/a".into(), 0, 5, false),
                ("t/.pad/16379".into(), 5, 16379, true),
                ("t/b".into(), 16384, 0, false),
                ("t/d/c".into(), 16384, 16384, false),
                ("t/e".into(), 32768, 20000, false),
                ("t/.pad/12768".into(), 52768, 12768, true),
            ]
        );
        let single = tree(&[("only", 7)]);
        assert!(is_single_file(&single));
        assert_eq!(
            layout(&v2_files("name", single, true, 16384).unwrap()),
            [
                ("only".into(), 0, 7, false),
                (".pad/16377".into(), 7, 16377, true)
            ]
        );
    }

    #[test]
    fn a_hybrid_must_describe_the_same_files_twice() {
        let v2 = tree(&[("a", 5), ("c", 20000)]);
        let mut v1 = v2_files("t", v2.clone(), false, 16384).unwrap();
        for file in &mut v1 {
            file.pieces_root = None;
        }
        attach_tree(&mut v1, v2.clone(), false, 16384).unwrap();
        assert_eq!(v1[2].pieces_root, Some([32; 32]));

        let mut renamed = v1.clone();
        renamed[2].components[1] = "d".into();
        let error = attach_tree(&mut renamed, v2.clone(), false, 16384);
        assert!(matches!(error, Err(MetainfoError::InconsistentHybrid(p)) if p == "t/d"));

        // Without the padding the second file starts inside a piece.
        let mut unpadded = vec![v1[0].clone(), v1[2].clone()];
        unpadded[1].offset = 5;
        assert!(attach_tree(&mut unpadded, v2.clone(), false, 16384).is_err());

        let mut short = vec![v1[0].clone()];
        assert!(attach_tree(&mut short, v2, false, 16384).is_err());
    }
}
