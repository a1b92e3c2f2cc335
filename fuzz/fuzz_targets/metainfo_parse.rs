//! Parsing arbitrary bytes as a torrent (v1, v2 or hybrid) never panics, and an accepted torrent
//! is self-consistent and survives being written back.
#![no_main]

use cratetorrent_metainfo::Metainfo;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(torrent) = Metainfo::from_bytes(data) {
        let mut covered = 0u64;
        for piece in 0..torrent.piece_count() {
            assert_eq!(
                torrent.piece_hash(piece).is_some(),
                torrent.meta_version().has_v1()
            );
            let len: u64 = torrent.piece_slices(piece).map(|s| s.len).sum();
            assert_eq!(len, u64::from(torrent.piece_len(piece).unwrap()));
            covered += len;
            if piece > 64 {
                break;
            }
        }
        assert!(covered <= torrent.total_length());
        let piece = u64::from(torrent.piece_length());
        for (index, file) in torrent.files().iter().enumerate() {
            let path = file.path();
            assert!(path.is_relative());
            assert!(path.components().all(|c| matches!(c, std::path::Component::Normal(_))));
            let v2_file = torrent.meta_version().has_v2() && !file.is_padding() && file.length() > 0;
            assert_eq!(file.pieces_root().is_some(), v2_file);
            if let Some(layer) = torrent.piece_layer(index) {
                assert_eq!(layer.len() as u64, file.length().div_ceil(piece) * 32);
            }
        }
        let again = Metainfo::from_bytes(&torrent.to_torrent_bytes()).unwrap();
        assert_eq!(again.info_hashes(), torrent.info_hashes());
    }
});
