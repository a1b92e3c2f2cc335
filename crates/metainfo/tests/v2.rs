//! BEP 52: v2-only and hybrid torrents made by libtorrent's creator (`data/make_v2_fixtures.py`),
//! checked against this crate's own merkle hashing of the same payload.

// Test helpers outside #[test] functions may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use cratetorrent_metainfo::merkle::{self, BLOCK_LEN, Hash};
use cratetorrent_metainfo::{InfoHash, InfoHashV2, MetaVersion, Metainfo, MetainfoError};

const HYBRID_MULTI: &[u8] = include_bytes!("data/hybrid-multi.torrent");
const V2_MULTI: &[u8] = include_bytes!("data/v2-multi.torrent");
const HYBRID_SINGLE: &[u8] = include_bytes!("data/hybrid-single.torrent");
const V2_SINGLE: &[u8] = include_bytes!("data/v2-single.torrent");
const PIECE: usize = 32 * 1024;

/// The fixture payload: byte `i` of file number `seed` (in the script's list) is
/// `(i * 7 + seed) % 251`.
fn payload(seed: usize, length: usize) -> Vec<u8> {
    (0..length).map(|i| ((i * 7 + seed) % 251) as u8).collect()
}

/// The file's merkle root and, when it spans more than one piece, its piece layer.
fn hash_file(data: &[u8]) -> (Hash, Option<Vec<u8>>) {
    let leaves: Vec<Hash> = data.chunks(BLOCK_LEN).map(merkle::block_hash).collect();
    let root = merkle::root(&leaves, leaves.len());
    let per_piece = PIECE / BLOCK_LEN;
    let layer = (data.len() > PIECE).then(|| {
        leaves
            .chunks(per_piece)
            .flat_map(|piece| merkle::root(piece, per_piece))
            .collect()
    });
    (root, layer)
}

fn layout(torrent: &Metainfo) -> Vec<(String, u64, u64, bool)> {
    torrent
        .files()
        .iter()
        .map(|f| {
            (
                f.components().join("/"),
                f.offset(),
                f.length(),
                f.is_padding(),
            )
        })
        .collect()
}

fn check_multi(torrent: &Metainfo) {
    let files = [
        ("a.bin", 0, 40000),
        ("c.txt", 1, 5),
        ("sub/b.bin", 3, 70000),
    ];
    for (path, seed, length) in files {
        let (index, file) = torrent
            .files()
            .iter()
            .enumerate()
            .find(|(_, f)| f.components()[1..].join("/") == path)
            .unwrap();
        let (root, layer) = hash_file(&payload(seed, length));
        assert_eq!(file.pieces_root(), Some(&root), "{path}");
        assert_eq!(torrent.piece_layer(index), layer.as_deref(), "{path}");
    }
    let empty = torrent.files().iter().find(|f| f.length() == 0).unwrap();
    assert_eq!(empty.pieces_root(), None);
}

#[test]
fn hybrid_multi_file() {
    let torrent = Metainfo::from_bytes(HYBRID_MULTI).unwrap();
    assert_eq!(torrent.meta_version(), MetaVersion::Hybrid);
    let v1 = InfoHash::from_hex("68527f9bc8eaf4049df8a95a536b5ea446a76ddd").unwrap();
    let v2 =
        InfoHashV2::from_hex("43342307c8719f7376961519f087d9a2e0d6e313e7dbf4f4453b64d71d674820")
            .unwrap();
    assert_eq!(torrent.info_hashes().v1, Some(v1));
    assert_eq!(torrent.info_hashes().v2, Some(v2));
    assert_eq!(torrent.info_hash(), v1);
    // libtorrent's own layout, tail padding included.
    let expected = [
        ("multi/a.bin", 0, 40000, false),
        ("multi/.pad/25536", 40000, 25536, true),
        ("multi/c.txt", 65536, 5, false),
        ("multi/.pad/32763", 65541, 32763, true),
        ("multi/empty", 98304, 0, false),
        ("multi/sub/b.bin", 98304, 70000, false),
        ("multi/.pad/28304", 168304, 28304, true),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|&(p, o, l, pad)| (p.to_string(), o, l, pad))
        .collect();
    assert_eq!(layout(&torrent), expected);
    assert_eq!(torrent.piece_count(), 6);
    assert!(torrent.piece_hash(5).is_some());
    check_multi(&torrent);
    let magnet = torrent.magnet();
    assert_eq!(
        (magnet.info_hash, magnet.info_hash_v2),
        (Some(v1), Some(v2))
    );
}

#[test]
fn v2_only_multi_file() {
    let torrent = Metainfo::from_bytes(V2_MULTI).unwrap();
    assert_eq!(torrent.meta_version(), MetaVersion::V2);
    let v2 =
        InfoHashV2::from_hex("7a9a3c7431d907aad77360b1703ba89d7201b99df2496d5a1941c05cbb40d662")
            .unwrap();
    assert_eq!(torrent.info_hashes().v1, None);
    assert_eq!(torrent.info_hashes().v2, Some(v2));
    assert_eq!(torrent.info_hash(), v2.truncated());
    assert_eq!(torrent.piece_hash(0), None);
    // The same piece space as the hybrid's, tail padding included (libtorrent pads every file
    // of a v2 torrent, the last one too).
    let hybrid = Metainfo::from_bytes(HYBRID_MULTI).unwrap();
    assert_eq!(layout(&torrent), layout(&hybrid));
    assert_eq!(torrent.piece_count(), 6);
    assert_eq!(torrent.piece_len(5), Some(32768));
    assert_eq!(torrent.v2_piece(5).map(|p| p.data_len), Some(70000 - 65536));
    check_multi(&torrent);
    assert_eq!(torrent.magnet().info_hash, None);
}

#[test]
fn single_file_torrents() {
    // A hybrid's v1 list has no tail padding for one file; libtorrent pads a v2 one.
    for (bytes, padded) in [(HYBRID_SINGLE, false), (V2_SINGLE, true)] {
        let torrent = Metainfo::from_bytes(bytes).unwrap();
        assert!(torrent.is_single_file());
        let mut expected = vec![("single.bin".to_string(), 0, 50000, false)];
        if padded {
            expected.push((".pad/15536".to_string(), 50000, 15536, true));
        }
        assert_eq!(layout(&torrent), expected);
        let (root, layer) = hash_file(&payload(0, 50000));
        assert_eq!(torrent.files()[0].pieces_root(), Some(&root));
        assert_eq!(torrent.piece_layer(0), layer.as_deref());
    }
    let hybrid = Metainfo::from_bytes(HYBRID_SINGLE).unwrap();
    assert_eq!(
        hybrid.info_hashes().v2.map(|h| h.to_hex()).as_deref(),
        Some("ed1aad70ccb17fea4742ae63e756f050dc7d4c6e8e9fad0e631a1e5926197d80")
    );
}

#[test]
fn piece_layers_survive_a_round_trip() {
    let torrent = Metainfo::from_bytes(HYBRID_MULTI).unwrap();
    let again = Metainfo::from_bytes(&torrent.to_torrent_bytes()).unwrap();
    for index in 0..torrent.files().len() {
        assert_eq!(again.piece_layer(index), torrent.piece_layer(index));
    }
    assert_eq!(again.info_hashes(), torrent.info_hashes());
}

/// Replaces the `nth` occurrence of `from` (same length as `to`).
fn patch(bytes: &[u8], from: &[u8], to: &[u8], nth: usize) -> Vec<u8> {
    let at = bytes
        .windows(from.len())
        .enumerate()
        .filter(|(_, w)| *w == from)
        .nth(nth)
        .unwrap()
        .0;
    let mut out = bytes.to_vec();
    out[at..at + to.len()].copy_from_slice(to);
    out
}

#[test]
fn hostile_v2_metadata_is_rejected() {
    // A piece layer with one bit flipped no longer hashes to its file's root.
    let layers_at = HYBRID_MULTI
        .windows(12)
        .position(|w| w == b"piece layers")
        .unwrap();
    let mut corrupt = HYBRID_MULTI.to_vec();
    let last = corrupt.len() - 3;
    assert!(last > layers_at);
    corrupt[last] ^= 1;
    assert!(matches!(
        Metainfo::from_bytes(&corrupt),
        Err(MetainfoError::InvalidPieceLayer { .. })
    ));

    // The v1 list names a file the tree does not (the first `a.bin` is the tree's: `file tree`
    // sorts before `files`).
    let renamed = patch(HYBRID_MULTI, b"5:a.bin", b"5:x.bin", 1);
    assert!(matches!(
        Metainfo::from_bytes(&renamed),
        Err(MetainfoError::InconsistentHybrid(path)) if path == "multi/x.bin"
    ));

    // v2 requires a power-of-two piece length.
    let odd = patch(V2_MULTI, b"i32768e", b"i49152e", 0);
    assert!(matches!(
        Metainfo::from_bytes(&odd),
        Err(MetainfoError::InvalidPieceLength(49152))
    ));

    let unknown = patch(V2_MULTI, b"12:meta versioni2e", b"12:meta versioni3e", 0);
    assert!(matches!(
        Metainfo::from_bytes(&unknown),
        Err(MetainfoError::Unsupported(_))
    ));
}

/// Writes the fixture payload under `dir`, as the script does.
fn write_payload(dir: &std::path::Path) {
    let multi = [
        ("a.bin", 40000),
        ("c.txt", 5),
        ("empty", 0),
        ("sub/b.bin", 70000),
    ];
    for (seed, (path, length)) in multi.iter().enumerate() {
        let full = dir.join("multi").join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, payload(seed, *length)).unwrap();
    }
    std::fs::write(dir.join("single.bin"), payload(0, 50000)).unwrap();
}

#[test]
fn created_torrents_match_libtorrents_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    write_payload(dir.path());
    let cases = [
        ("multi", MetaVersion::Hybrid, HYBRID_MULTI),
        ("multi", MetaVersion::V2, V2_MULTI),
        ("single.bin", MetaVersion::Hybrid, HYBRID_SINGLE),
        ("single.bin", MetaVersion::V2, V2_SINGLE),
    ];
    for (path, version, reference) in cases {
        let bytes = cratetorrent_metainfo::TorrentBuilder::new(dir.path().join(path))
            .meta_version(version)
            .piece_length(PIECE as u32)
            .created_by(None)
            .creation_date(None)
            .threads(2)
            .build()
            .unwrap();
        let ours = Metainfo::from_bytes(&bytes).unwrap();
        let theirs = Metainfo::from_bytes(reference).unwrap();
        assert_eq!(ours.info_bytes(), theirs.info_bytes(), "{path} {version:?}");
        for index in 0..ours.files().len() {
            assert_eq!(ours.piece_layer(index), theirs.piece_layer(index));
        }
    }
}

/// Every piece of the fixtures verifies: its data's leaves, padded to the piece's width, hash
/// to what `v2_piece` expects; and the padding-only and v1 cases say so.
#[test]
fn every_piece_verifies_against_its_file() {
    let multi = [
        ("a.bin", 0usize, 40000usize),
        ("c.txt", 1, 5),
        ("sub/b.bin", 3, 70000),
    ];
    for bytes in [HYBRID_MULTI, V2_MULTI] {
        let torrent = Metainfo::from_bytes(bytes).unwrap();
        let mut checked = 0;
        for piece in 0..torrent.piece_count() {
            let v2 = torrent.v2_piece(piece).unwrap();
            let file = &torrent.files()[v2.file_index];
            let path = file.components()[1..].join("/");
            let &(_, seed, length) = multi.iter().find(|(p, ..)| *p == path).unwrap();
            let data = payload(seed, length);
            let start = v2.index_in_file as usize * PIECE;
            let piece_data = &data[start..start + v2.data_len as usize];
            let leaves: Vec<Hash> = piece_data
                .chunks(BLOCK_LEN)
                .map(merkle::block_hash)
                .collect();
            let root = merkle::root(&leaves, v2.width as usize);
            assert_eq!(Some(root), v2.expected, "piece {piece}");
            checked += 1;
        }
        assert_eq!(checked, 6);
    }
    let single = Metainfo::from_bytes(V2_SINGLE).unwrap();
    assert_eq!(single.v2_piece(2), None);
}
