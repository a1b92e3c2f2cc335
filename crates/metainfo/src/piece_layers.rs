//! BEP 52 piece layers: for each file larger than one piece, the hashes of its merkle tree's
//! layer where one hash covers one piece. A `.torrent` carries them outside the info
//! dictionary; each is checked against its file's `pieces root` before it is kept.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use bytes::Bytes;

use crate::MetainfoError;
use crate::bencode::Value;
use crate::files::FileEntry;
use crate::merkle::{self, Hash};

/// The verified piece layers of a torrent's files, by file index.
#[derive(Debug, Clone, Default)]
pub(crate) struct PieceLayers {
    hashes: Bytes,
    /// Where each file's layer is in `hashes`, by ascending file index.
    spans: Vec<(usize, Range<usize>)>,
}

impl PieceLayers {
    /// Reads the `piece layers` dictionary for `files`. A file larger than one piece whose
    /// layer is absent gets none (peers can supply it); a layer present with the wrong length
    /// or hashing to another root is an error. Layers no file names are ignored. Each distinct
    /// layer is hashed once, however many files share its root.
    pub(crate) fn parse(
        value: Value<'_>,
        files: &[FileEntry],
        piece_length: u32,
    ) -> Result<Self, MetainfoError> {
        let dict = value.as_dict().ok_or(MetainfoError::InvalidField {
            field: "piece layers",
            reason: "not a dictionary",
        })?;
        let mut by_root: HashMap<&[u8], &[u8]> = HashMap::new();
        for (root, layer) in dict {
            let layer = layer.as_bytes().ok_or(MetainfoError::InvalidField {
                field: "piece layers",
                reason: "a layer is not a string",
            })?;
            by_root.insert(root, layer);
        }
        let piece = u64::from(piece_length);
        let mut hashes = Vec::new();
        let mut spans = Vec::new();
        let mut verified: HashMap<&Hash, Range<usize>> = HashMap::new();
        for (index, file) in files.iter().enumerate() {
            let Some(root) = &file.pieces_root else {
                continue;
            };
            let Some(&layer) = by_root.get(&root[..]).filter(|_| file.length > piece) else {
                continue;
            };
            let bad = |reason| MetainfoError::InvalidPieceLayer {
                path: file.components.join("/"),
                reason,
            };
            if layer.len() as u64 != file.length.div_ceil(piece) * 32 {
                return Err(bad("its length does not match the file's"));
            }
            let span = match verified.get(root) {
                Some(span) => span.clone(),
                None => {
                    let (layer_hashes, _) = layer.as_chunks::<32>();
                    if merkle::root_of_layer(layer_hashes, piece_length) != Some(*root) {
                        return Err(bad("it does not hash to the file's `pieces root`"));
                    }
                    let span = hashes.len()..hashes.len() + layer.len();
                    hashes.extend_from_slice(layer);
                    verified.insert(root, span.clone());
                    span
                }
            };
            spans.push((index, span));
        }
        Ok(Self {
            hashes: Bytes::from(hashes),
            spans,
        })
    }

    /// The layer of file `index`, 32 bytes per piece of the file.
    pub(crate) fn get(&self, index: usize) -> Option<&[u8]> {
        let at = self.spans.binary_search_by_key(&index, |(i, _)| *i).ok()?;
        self.hashes.get(self.spans[at].1.clone())
    }

    /// Whether no file has a layer.
    pub(crate) fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The layers as the `piece layers` dictionary of a `.torrent`: root to layer.
    pub(crate) fn to_dict<'s>(&'s self, files: &'s [FileEntry]) -> BTreeMap<&'s [u8], &'s [u8]> {
        self.spans
            .iter()
            .filter_map(|(index, span)| {
                let root = files.get(*index)?.pieces_root.as_ref()?;
                Some((&root[..], self.hashes.get(span.clone())?))
            })
            .collect()
    }
}
