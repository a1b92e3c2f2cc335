//! What resume data may claim, and how a hostile resume file is read.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use cratetorrent_metainfo::bencode;
use cratetorrent_storage::{BackendKind, Layout, Storage, StorageConfig, StorageEvent};

mod common;
use common::{Fixture, block_data, blocks, fixture};

const BACKENDS: [BackendKind; 2] = [BackendKind::IoUring, BackendKind::Portable];
const WAIT: Duration = Duration::from_secs(20);

fn config(backend: BackendKind) -> StorageConfig {
    StorageConfig {
        backend,
        resume_interval: Duration::from_secs(3600),
        ..StorageConfig::default()
    }
}

fn write_all(storage: &Storage, fixture: &Fixture) {
    for block in blocks(fixture, 1) {
        storage
            .write_block(block.piece, block.offset, block_data(fixture, block), 1)
            .unwrap();
    }
}

fn wait_verified(events: &Receiver<StorageEvent>, count: u32) {
    let mut verified = 0;
    while verified < count {
        if let StorageEvent::PieceVerified(_) = events.recv_timeout(WAIT).expect("storage event") {
            verified += 1;
        }
    }
}

/// The pieces the saved resume data claims.
fn claimed(fixture: &Fixture, dir: &Path) -> Vec<u32> {
    let path = Layout::new(&fixture.metainfo, dir).resume_path();
    let bytes = std::fs::read(path).unwrap();
    let value = bencode::decode(&bytes).unwrap();
    let pieces = value
        .as_dict()
        .unwrap()
        .get(b"pieces")
        .unwrap()
        .as_bytes()
        .unwrap()
        .to_vec();
    (0..fixture.metainfo.piece_count())
        .filter(|&p| pieces[p as usize / 8] & (0x80 >> (p % 8)) != 0)
        .collect()
}

#[test]
fn resume_data_never_claims_a_piece_of_a_file_whose_sync_failed() {
    for backend in BACKENDS {
        // Pieces 0 and 1 lie in `a`, 2 and 3 in `b`.
        let fixture = fixture(&[("a", 32_768, false), ("b", 32_768, false)], 16_384);
        let dir = tempfile::tempdir().unwrap();
        let failing = StorageConfig {
            fail_sync: Some(0),
            ..config(backend)
        };
        let (storage, events) =
            Storage::open(&fixture.metainfo, dir.path(), failing, || {}).unwrap();
        write_all(&storage, &fixture);
        wait_verified(&events, 4);
        let first = storage.flush().unwrap().recv_timeout(WAIT).unwrap();
        assert!(first.is_err(), "{backend:?}: the failed sync is reported");
        // Nothing was written since: a flush that syncs nothing must still not claim `a`.
        storage
            .flush()
            .unwrap()
            .recv_timeout(WAIT)
            .unwrap()
            .unwrap();
        assert_eq!(claimed(&fixture, dir.path()), [2, 3], "{backend:?}");
        // Nor at shutdown: after a failed fsync the kernel may have dropped the dirty pages, so
        // nothing later in the session can vouch for them.
        storage.shutdown().unwrap();
        assert_eq!(claimed(&fixture, dir.path()), [2, 3], "{backend:?}");

        // The next open hashes `a` rather than trusting it, and finds what is really there.
        let (storage, _events) =
            Storage::open(&fixture.metainfo, dir.path(), config(backend), || {}).unwrap();
        assert_eq!(storage.have().count_ones(), 4);
    }
}
