//! Reads for seeding: large pieces are read in windows, and the buffers of every window alive
//! (cached, being read, or sliced into blocks not yet sent) stay within `max_read_memory`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use bytes::Bytes;
use cratetorrent_storage::{BackendKind, DiskPool, Storage, StorageConfig, StorageEvent};
use cratetorrent_wire::{BlockInfo, Geometry};

mod common;
use common::{Fixture, block_data, fixture, fixture_named};

const WAIT: Duration = Duration::from_secs(20);
const KIB: u32 = 1024;

fn block(piece: u32, offset: u32) -> BlockInfo {
    BlockInfo {
        piece,
        offset,
        len: 16 * KIB,
    }
}

fn next_read(events: &Receiver<StorageEvent>) -> (u64, Bytes) {
    loop {
        match events.recv_timeout(WAIT).expect("a read") {
            StorageEvent::BlockRead { token, result, .. } => return (token, result.unwrap()),
            StorageEvent::PieceVerified(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn windows_of_large_pieces_and_a_bound_on_what_unsent_blocks_keep() {
    // Four pieces of 256 KiB, read in windows of 64 KiB, with room for two windows at a time.
    let fixture = fixture(&[("f", 1024 * KIB as usize, false)], 256 * KIB);
    let geometry = Geometry::of(&fixture.metainfo);
    for backend in [BackendKind::IoUring, BackendKind::Portable] {
        let dir = tempfile::tempdir().unwrap();
        let config = StorageConfig {
            backend,
            read_window: 64 * KIB,
            max_read_memory: 128 * KIB as usize,
            resume_interval: Duration::from_secs(3600),
            ..StorageConfig::default()
        };
        let (storage, events): (Storage, _) =
            Storage::open(&fixture.metainfo, dir.path(), config, || {}).unwrap();
        for piece in 0..4 {
            for info in geometry.blocks(piece) {
                storage
                    .write_block(piece, info.offset, block_data(&fixture, info), 1)
                    .unwrap();
            }
        }
        let mut verified = 0;
        while verified < 4 {
            if let StorageEvent::PieceVerified(_) = events.recv_timeout(WAIT).unwrap() {
                verified += 1;
            }
        }
        // Two blocks from two windows, kept (as a peer's unsent queue keeps them).
        storage.read_block(block(0, 0), 1).unwrap();
        storage.read_block(block(1, 192 * KIB), 2).unwrap();
        let first = next_read(&events);
        let second = next_read(&events);
        for (token, data) in [&first, &second] {
            let info = if *token == 1 {
                block(0, 0)
            } else {
                block(1, 192 * KIB)
            };
            assert_eq!(data[..], block_data(&fixture, info)[..], "{backend:?}");
        }
        // A third window does not fit while they are kept...
        storage.read_block(block(2, 64 * KIB), 3).unwrap();
        match events.recv_timeout(Duration::from_millis(300)) {
            Err(RecvTimeoutError::Timeout) => {}
            other => panic!("{backend:?}: read past the bound: {other:?}"),
        }
        // ...nor a fourth behind it. The third's peer goes away: its read is forgotten.
        storage.read_block(block(3, 0), 4).unwrap();
        storage.forget_reads(3).unwrap();
        // Once one of the kept blocks is sent (dropped), the fourth is read, never the third.
        drop(first);
        let (token, data) = next_read(&events);
        assert_eq!(token, 4, "{backend:?}");
        assert_eq!(data[..], block_data(&fixture, block(3, 0))[..]);
        match events.recv_timeout(Duration::from_millis(300)) {
            Err(RecvTimeoutError::Timeout) => {}
            other => panic!("{backend:?}: a forgotten read was answered: {other:?}"),
        }
        drop((second, data));
        storage.shutdown().unwrap();
    }
}

#[test]
fn a_request_across_a_window_boundary_is_served_whole() {
    // Not aligned to 16 KiB (legal, if rare): it spans two windows of 64 KiB.
    let fixture = fixture(&[("f", 256 * KIB as usize, false)], 256 * KIB);
    let geometry = Geometry::of(&fixture.metainfo);
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig {
        read_window: 64 * KIB,
        resume_interval: Duration::from_secs(3600),
        ..StorageConfig::default()
    };
    let (storage, events) = Storage::open(&fixture.metainfo, dir.path(), config, || {}).unwrap();
    for info in geometry.blocks(0) {
        storage
            .write_block(0, info.offset, block_data(&fixture, info), 1)
            .unwrap();
    }
    while !matches!(
        events.recv_timeout(WAIT).unwrap(),
        StorageEvent::PieceVerified(0)
    ) {}
    let across = BlockInfo {
        piece: 0,
        offset: 64 * KIB - 100,
        len: 16 * KIB,
    };
    storage.read_block(across, 7).unwrap();
    let (token, data) = next_read(&events);
    assert_eq!(token, 7);
    let start = across.offset as usize;
    assert_eq!(data[..], fixture.payload[start..start + 16 * KIB as usize]);
    storage.shutdown().unwrap();
}

/// Opens `fixture` in `dir` with `config` and writes all of it, verified.
fn seeded(
    fixture: &Fixture,
    dir: &std::path::Path,
    config: StorageConfig,
) -> (Storage, Receiver<StorageEvent>) {
    let geometry = Geometry::of(&fixture.metainfo);
    let (storage, events) = Storage::open(&fixture.metainfo, dir, config, || {}).unwrap();
    let pieces = fixture.metainfo.piece_count();
    for piece in 0..pieces {
        for info in geometry.blocks(piece) {
            storage
                .write_block(piece, info.offset, block_data(fixture, info), 1)
                .unwrap();
        }
    }
    let mut verified = 0;
    while verified < pieces {
        if let StorageEvent::PieceVerified(_) = events.recv_timeout(WAIT).unwrap() {
            verified += 1;
        }
    }
    (storage, events)
}

#[test]
fn torrents_of_one_pool_share_its_read_bound_and_idle_caches_give_way() {
    // Windows of 64 KiB, two alive at most in the whole pool, two cached.
    let config = StorageConfig {
        backend: BackendKind::Portable,
        read_window: 64 * KIB,
        max_read_memory: 128 * KIB as usize,
        read_cache: 128 * KIB as usize,
        resume_interval: Duration::from_secs(3600),
        ..StorageConfig::default()
    };
    let pool = DiskPool::new(&config).unwrap();
    let shared = StorageConfig {
        pool: Some(pool),
        ..config
    };
    let a = fixture_named("a", &[("f", 256 * KIB as usize, false)], 64 * KIB);
    let b = fixture_named("b", &[("f", 256 * KIB as usize, false)], 64 * KIB);
    let dir = tempfile::tempdir().unwrap();
    let (first, first_events) = seeded(&a, dir.path(), shared.clone());
    let (second, second_events) = seeded(&b, dir.path(), shared);
    // The first torrent's peers keep two blocks of two windows: the pool's whole bound.
    first.read_block(block(0, 0), 1).unwrap();
    first.read_block(block(1, 0), 2).unwrap();
    let kept = [next_read(&first_events), next_read(&first_events)];
    // So the second torrent's read waits, though it has read nothing itself.
    second.read_block(block(2, 16 * KIB), 3).unwrap();
    match second_events.recv_timeout(Duration::from_millis(300)) {
        Err(RecvTimeoutError::Timeout) => {}
        other => panic!("read past the pool's bound: {other:?}"),
    }
    // The blocks are sent: their windows stay in the first torrent's idle cache, which gives
    // them up for the second torrent's read.
    drop(kept);
    let (token, data) = next_read(&second_events);
    assert_eq!(token, 3);
    assert_eq!(data[..], block_data(&b, block(2, 16 * KIB))[..]);
    drop(data);
    first.shutdown().unwrap();
    second.shutdown().unwrap();
}
