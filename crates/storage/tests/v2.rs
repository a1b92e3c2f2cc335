//! v2-only torrents (BEP 52) have no SHA-1 piece hashes: downloaded pieces and data already on
//! disk are checked against the files' merkle trees alone.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use std::path::Path;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use bytes::Bytes;
use cratetorrent_metainfo::{MetaVersion, Metainfo, TorrentBuilder};
use cratetorrent_storage::{Storage, StorageConfig, StorageEvent};

const PIECE: u32 = 32 * 1024;
const FILES: [(&str, usize); 3] = [("a.bin", 40_000), ("b.txt", 5), ("sub/c.bin", 70_000)];

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(29).wrapping_add(seed))
        .collect()
}

/// The files under `root/v2`, and their v2-only torrent.
fn source(root: &Path) -> Metainfo {
    for (seed, (path, len)) in FILES.iter().enumerate() {
        let path = root.join("v2").join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data(*len, seed as u8)).unwrap();
    }
    let bytes = TorrentBuilder::new(root.join("v2"))
        .meta_version(MetaVersion::V2)
        .piece_length(PIECE)
        .build()
        .unwrap();
    Metainfo::from_bytes(&bytes).unwrap()
}

/// Piece `piece` as the wire carries it: file data, padding as zeros.
fn piece_bytes(metainfo: &Metainfo, root: &Path, piece: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for slice in metainfo.piece_slices(piece) {
        let file = &metainfo.files()[slice.file_index];
        let (start, len) = (slice.offset as usize, slice.len as usize);
        if file.is_padding() {
            out.resize(out.len() + len, 0);
        } else {
            let bytes = std::fs::read(root.join(file.path())).unwrap();
            out.extend_from_slice(&bytes[start..start + len]);
        }
    }
    out
}

fn verdicts(events: &Receiver<StorageEvent>, count: usize) -> Vec<(u32, bool)> {
    let mut seen = Vec::new();
    while seen.len() < count {
        match events
            .recv_timeout(Duration::from_secs(20))
            .expect("an event")
        {
            StorageEvent::PieceVerified(piece) => seen.push((piece, true)),
            StorageEvent::HashFailed { piece, .. } => seen.push((piece, false)),
            StorageEvent::WriteFailed { error, .. } => panic!("{error}"),
            _ => {}
        }
    }
    seen.sort_unstable();
    seen
}

#[test]
fn downloaded_pieces_are_checked_against_the_trees_alone() {
    let dir = tempfile::tempdir().unwrap();
    let metainfo = source(dir.path());
    // Every file is padded to a piece boundary, the last one too.
    assert_eq!(metainfo.piece_count(), 2 + 1 + 3);
    assert_eq!(metainfo.total_length(), 6 * u64::from(PIECE));
    let out = tempfile::tempdir().unwrap();
    let (storage, events) =
        Storage::open(&metainfo, out.path(), StorageConfig::default(), || {}).unwrap();
    for piece in 0..metainfo.piece_count() {
        let mut bytes = piece_bytes(&metainfo, dir.path(), piece);
        if piece == 4 {
            // Corrupt file data in a piece of the last file.
            bytes[100] ^= 1;
        }
        for (index, block) in bytes.chunks(16 * 1024).enumerate() {
            let offset = (index * 16 * 1024) as u32;
            storage
                .write_block(piece, offset, Bytes::copy_from_slice(block), 1)
                .unwrap();
        }
    }
    let expected: Vec<(u32, bool)> = (0..6).map(|p| (p, p != 4)).collect();
    assert_eq!(verdicts(&events, 6), expected);
    storage.shutdown().unwrap();
    for (path, len) in FILES {
        let got = std::fs::read(out.path().join("v2").join(path)).unwrap();
        assert_eq!(got.len(), len, "{path}");
    }
}

#[test]
fn data_on_disk_is_checked_against_the_trees() {
    let dir = tempfile::tempdir().unwrap();
    let metainfo = source(dir.path());
    let (storage, _events) =
        Storage::open(&metainfo, dir.path(), StorageConfig::default(), || {}).unwrap();
    assert!(
        storage.have().is_full(),
        "every piece of data on disk checks"
    );
    storage.shutdown().unwrap();
    // One byte of the middle of c.bin changes: its second piece (piece 4) no longer checks.
    let c = dir.path().join("v2/sub/c.bin");
    let mut bytes = std::fs::read(&c).unwrap();
    bytes[40_000] ^= 0x80;
    std::fs::write(&c, bytes).unwrap();
    std::fs::remove_dir_all(dir.path().join(".cratetorrent")).ok();
    let (storage, _events) =
        Storage::open(&metainfo, dir.path(), StorageConfig::default(), || {}).unwrap();
    let missing: Vec<u32> = storage.have().iter_zeros().collect();
    assert_eq!(missing, [4]);
    storage.shutdown().unwrap();
}
