//! Parsing arbitrary bytes as a torrent never panics, and an accepted torrent is self-consistent.
#![no_main]

use cratetorrent_metainfo::Metainfo;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(torrent) = Metainfo::from_bytes(data) {
        let mut covered = 0u64;
        for piece in 0..torrent.piece_count() {
            assert!(torrent.piece_hash(piece).is_some());
            let len: u64 = torrent.piece_slices(piece).map(|s| s.len).sum();
            assert_eq!(len, u64::from(torrent.piece_len(piece).unwrap()));
            covered += len;
            if piece > 64 {
                break;
            }
        }
        assert!(covered <= torrent.total_length());
        for file in torrent.files() {
            let path = file.path();
            assert!(path.is_relative());
            assert!(path.components().all(|c| matches!(c, std::path::Component::Normal(_))));
        }
    }
});
