//! Serving BEP 52 hash requests: a peer without a v2 file's piece layer (one that came by magnet
//! link) asks for runs of it, each with the uncle hashes proving it against the file's root.
//! Each file's tree above its piece layer is built once, on the first request for it, and kept.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use cratetorrent_metainfo::Metainfo;
use cratetorrent_metainfo::merkle::{self, BLOCK_LEN, Hash, Subtree};
use cratetorrent_wire::{HashRequest, Message};

use super::{Action, Core, PeerKey};

/// The longest run served in one reply (libtorrent refuses more, too).
const MAX_RUN: u32 = 8192;

/// The trees built so far, and which file each root names.
#[derive(Debug, Default)]
pub(super) struct HashServer {
    files: Option<HashMap<Hash, usize>>,
    trees: HashMap<usize, Subtree>,
}

impl HashServer {
    /// The reply to `request`: the run and its proof, or `None` for a root we do not know, a
    /// layer we do not hold (we keep piece layers, not leaves), or a malformed request.
    fn reply(&mut self, metainfo: &Metainfo, request: &HashRequest) -> Option<Bytes> {
        if !request.is_well_formed() || request.length > MAX_RUN {
            return None;
        }
        let files = self.files.get_or_insert_with(|| {
            metainfo
                .files()
                .iter()
                .enumerate()
                .filter_map(|(index, file)| Some((*file.pieces_root()?, index)))
                .collect()
        });
        let &index = files.get(&request.pieces_root)?;
        let tree = match self.trees.entry(index) {
            std::collections::hash_map::Entry::Occupied(tree) => tree.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(tree_of(metainfo, index)?)
            }
        };
        let hashes = tree.hashes(
            request.base_layer,
            request.index,
            request.length,
            request.proof_layers,
        )?;
        let mut out = BytesMut::with_capacity(hashes.len() * 32);
        for hash in &hashes {
            out.put_slice(hash);
        }
        Some(out.freeze())
    }
}

/// File `index`'s tree from its piece layer up (`None` for a file of one piece, whose only
/// hash is its root, or whose layer we lack).
fn tree_of(metainfo: &Metainfo, index: usize) -> Option<Subtree> {
    let file = metainfo.files().get(index)?;
    let layer = metainfo.piece_layer(index)?;
    let base = merkle::piece_height(metainfo.piece_length())?;
    let nodes: Vec<Hash> = layer
        .chunks_exact(32)
        .filter_map(|hash| hash.try_into().ok())
        .collect();
    let leaves = usize::try_from(file.length().div_ceil(BLOCK_LEN as u64)).ok()?;
    let tree = Subtree::new(&nodes, base, leaves);
    (tree.root() == *file.pieces_root()?).then_some(tree)
}

impl Core {
    /// Answers a hash request with the hashes, or rejects it; a peer whose outbox is full gets
    /// rejects, so requests cannot pile replies up without bound.
    pub(super) fn on_hash_request(&mut self, key: PeerKey, request: HashRequest) {
        let full = self
            .peers
            .get(key)
            .is_none_or(|peer| peer.outbox.len() >= self.conf.send_watermark);
        let reply = match &self.metainfo {
            Some(metainfo) if !full => self.hash_server.reply(metainfo, &request),
            _ => None,
        };
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        peer.outbox.push(&match reply {
            Some(hashes) => Message::Hashes { request, hashes },
            None => Message::HashReject(request),
        });
        self.actions.push_back(Action::Wake(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cratetorrent_metainfo::{MetaVersion, TorrentBuilder};

    #[test]
    fn a_piece_layer_run_is_served_with_its_proof_and_the_rest_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        // 11 pieces of 32 KiB (the last short): a layer of 11, a tree 16 pieces wide.
        let data: Vec<u8> = (0..11 * 32 * 1024 - 500).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let bytes = TorrentBuilder::new(&path)
            .meta_version(MetaVersion::V2)
            .piece_length(32 * 1024)
            .build()
            .unwrap();
        let metainfo = Metainfo::from_bytes(&bytes).unwrap();
        let root = *metainfo.files()[0].pieces_root().unwrap();
        let mut server = HashServer::default();
        // Layer 1 (32 KiB pieces), hashes 8..16, proved up to the root: one uncle.
        let request = HashRequest {
            pieces_root: root,
            base_layer: 1,
            index: 8,
            length: 8,
            proof_layers: 3,
        };
        let reply = server.reply(&metainfo, &request).unwrap();
        let hashes: Vec<Hash> = reply
            .chunks_exact(32)
            .map(|h| h.try_into().unwrap())
            .collect();
        assert_eq!(hashes.len(), 8 + 1);
        let leaves = data.len().div_ceil(BLOCK_LEN);
        assert!(merkle::verify_hashes(&root, leaves, 1, 8, 8, 3, &hashes));
        let layer = metainfo.piece_layer(0).unwrap();
        assert_eq!(&reply[..3 * 32], &layer[8 * 32..]);
        // Leaves (layer 0) are not kept; unknown roots and bad shapes are refused.
        let rejected = [
            HashRequest {
                base_layer: 0,
                ..request
            },
            HashRequest {
                pieces_root: [9; 32],
                ..request
            },
            HashRequest {
                index: 3,
                ..request
            },
            HashRequest {
                length: 16_384,
                index: 0,
                ..request
            },
        ];
        for request in rejected {
            assert!(server.reply(&metainfo, &request).is_none(), "{request:?}");
        }
    }
}
