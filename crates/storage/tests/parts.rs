//! Files the user does not want are parked: the bytes of them that shared pieces carry go to a
//! part file, the files themselves never appear, a restart finds those pieces again, and a file
//! wanted again gets its bytes back.

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
use cratetorrent_metainfo::{Metainfo, TorrentBuilder};
use cratetorrent_storage::{BackendKind, Storage, StorageConfig, StorageEvent};

const WAIT: Duration = Duration::from_secs(20);
const PIECE: usize = 16 << 10;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn wait_verified(events: &Receiver<StorageEvent>, mut count: u32) {
    while count > 0 {
        match events.recv_timeout(WAIT).expect("storage event") {
            StorageEvent::PieceVerified(_) => count -= 1,
            StorageEvent::HashFailed { piece, .. } => panic!("piece {piece} failed"),
            StorageEvent::WriteFailed { error, .. } => panic!("write failed: {error}"),
            _ => {}
        }
    }
}

fn open(
    metainfo: &Metainfo,
    dir: &Path,
    backend: BackendKind,
) -> (Storage, Receiver<StorageEvent>) {
    let config = StorageConfig {
        backend,
        resume_interval: Duration::from_secs(3600),
        ..StorageConfig::default()
    };
    Storage::open(metainfo, dir, config, || {}).unwrap()
}

/// Writes piece `piece` of `payload` in 16 KiB blocks.
fn write_piece(storage: &Storage, payload: &[u8], piece: u32) {
    let start = piece as usize * PIECE;
    let end = (start + PIECE).min(payload.len());
    storage
        .write_block(piece, 0, Bytes::copy_from_slice(&payload[start..end]), 1)
        .unwrap();
}

#[test]
fn unwanted_files_stay_off_disk_and_come_back_when_wanted() {
    for backend in [BackendKind::IoUring, BackendKind::Portable] {
        let source = tempfile::tempdir().unwrap();
        let root = source.path().join("tree");
        std::fs::create_dir(&root).unwrap();
        // a: 100,000 bytes (pieces 0-6, the last shared with b); b: 40,000 bytes (pieces 6-8,
        // the last shared with c); c: 70,000 bytes, larger than two pieces.
        let (a, b, c) = (pattern(100_000, 1), pattern(40_000, 2), pattern(70_000, 3));
        std::fs::write(root.join("a"), &a).unwrap();
        std::fs::write(root.join("b"), &b).unwrap();
        std::fs::write(root.join("c"), &c).unwrap();
        let bytes = TorrentBuilder::new(&root)
            .piece_length(PIECE as u32)
            .build()
            .unwrap();
        let metainfo = Metainfo::from_bytes(&bytes).unwrap();
        let payload = [a.clone(), b.clone(), c.clone()].concat();
        let dir = tempfile::tempdir().unwrap();

        // Only b is wanted: pieces 6, 7 and 8 (6 shares a's tail, 8 shares c's head).
        let (storage, events) = open(&metainfo, dir.path(), backend);
        storage.set_wanted_files(vec![false, true, false]).unwrap();
        for piece in [6, 7, 8] {
            write_piece(&storage, &payload, piece);
        }
        wait_verified(&events, 3);
        storage.shutdown().unwrap();
        let tree = dir.path().join("tree");
        assert_eq!(std::fs::read(tree.join("b")).unwrap(), b);
        assert!(!tree.join("a").exists() && !tree.join("c").exists());
        let parts = dir
            .path()
            .join(format!(".cratetorrent/{}.parts", metainfo.info_hash()));
        for part in ["0", "2"] {
            let len = std::fs::metadata(parts.join(part)).unwrap().len();
            assert!(len <= 2 * PIECE as u64, "part {part}: {len} bytes");
        }

        // A restart finds the shared pieces in the parts.
        let (storage, events) = open(&metainfo, dir.path(), backend);
        let have: Vec<u32> = (0..metainfo.piece_count())
            .filter(|&p| storage.have().get(p))
            .collect();
        assert_eq!(have, [6, 7, 8]);

        // Everything wanted: the parts' bytes move into a and c, and the rest downloads.
        storage.set_wanted_files(vec![true, true, true]).unwrap();
        let rest: Vec<u32> = (0..metainfo.piece_count())
            .filter(|p| ![6, 7, 8].contains(p))
            .collect();
        for &piece in &rest {
            write_piece(&storage, &payload, piece);
        }
        wait_verified(&events, rest.len() as u32);
        storage.shutdown().unwrap();
        assert_eq!(std::fs::read(tree.join("a")).unwrap(), a, "{backend:?}");
        assert_eq!(std::fs::read(tree.join("c")).unwrap(), c, "{backend:?}");
        assert!(!parts.join("0").exists() && !parts.join("2").exists());
        let (storage, _events) = open(&metainfo, dir.path(), backend);
        assert_eq!(storage.have().count_ones(), metainfo.piece_count());
        storage.shutdown().unwrap();
    }
}
