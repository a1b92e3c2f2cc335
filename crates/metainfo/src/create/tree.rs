//! The BEP 52 parts of a new torrent: the `file tree` in the info dictionary and the
//! `piece layers` beside it.

use std::collections::BTreeMap;

use super::hashing::FileTree;
use super::{CreateError, PayloadFile, attr, total_i64};
use crate::bencode::OwnedValue;

/// The `file tree` of `layout` (padding left out: v2 has none). A single-file torrent's tree
/// holds the file under the torrent's `name`.
pub(super) fn file_tree(
    layout: &[PayloadFile],
    trees: &[Option<FileTree>],
    single_file_name: Option<&String>,
) -> Result<OwnedValue, CreateError> {
    let mut top = BTreeMap::new();
    'files: for (index, file) in layout.iter().enumerate().filter(|(_, f)| !f.pad) {
        let mut leaf = BTreeMap::new();
        if let Some(attr) = attr(file) {
            leaf.insert(b"attr".to_vec(), OwnedValue::from(attr));
        }
        leaf.insert(b"length".to_vec(), OwnedValue::Int(total_i64(file.length)?));
        if let Some(Some(tree)) = trees.get(index) {
            leaf.insert(
                b"pieces root".to_vec(),
                OwnedValue::Bytes(tree.root.to_vec()),
            );
        }
        let path = match single_file_name {
            Some(name) => std::slice::from_ref(name),
            None => &file.components[..],
        };
        let mut node = &mut top;
        for component in path {
            let child = node
                .entry(component.as_bytes().to_vec())
                .or_insert_with(|| OwnedValue::Dict(BTreeMap::new()));
            // A directory is always a dictionary: a file system cannot have a file and a
            // directory under one path.
            let OwnedValue::Dict(child) = child else {
                continue 'files;
            };
            node = child;
        }
        node.insert(Vec::new(), OwnedValue::Dict(leaf));
    }
    Ok(OwnedValue::Dict(top))
}

/// `piece layers`: each root of a file larger than one piece, mapped to its layer.
pub(super) fn piece_layers(trees: &[Option<FileTree>]) -> OwnedValue {
    let layers = trees
        .iter()
        .flatten()
        .filter(|tree| !tree.layer.is_empty())
        .map(|tree| (tree.root.to_vec(), OwnedValue::Bytes(tree.layer.concat())))
        .collect();
    OwnedValue::Dict(layers)
}
