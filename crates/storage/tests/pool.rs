//! Several storages on one shared disk thread: interleaved writes of three torrents all verify
//! and land in their own files, reads are answered while others write, each shuts down on its
//! own, and the thread ends once the pool and its storages are gone. Alone in its test binary,
//! so that counting the process's disk threads sees this test's only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::mpsc::Receiver;
use std::time::Duration;

use cratetorrent_storage::{
    BackendKind, DiskPool, Storage, StorageConfig, StorageEvent, WriteStatus,
};
use cratetorrent_wire::BlockInfo;

mod common;
use common::{Fixture, block_data, blocks, fixture_named};

const WAIT: Duration = Duration::from_secs(20);

/// Threads of this process named `ct-disk`.
fn disk_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "ct-disk")
        .count()
}

fn wait_for(events: &Receiver<StorageEvent>, mut want: impl FnMut(&StorageEvent) -> bool) {
    loop {
        let event = events.recv_timeout(WAIT).expect("storage event");
        if let StorageEvent::WriteFailed { error, .. } = &event {
            panic!("write failed: {error}");
        }
        if want(&event) {
            return;
        }
    }
}

#[test]
fn torrents_share_one_disk_thread_and_keep_their_own_files() {
    for backend in [BackendKind::IoUring, BackendKind::Portable] {
        let before = disk_threads();
        let config = StorageConfig {
            backend,
            resume_interval: Duration::from_secs(3600),
            ..StorageConfig::default()
        };
        let pool = DiskPool::new(&config).unwrap();
        let shared = StorageConfig {
            pool: Some(pool.clone()),
            ..config
        };
        let fixtures: Vec<Fixture> = [70_000, 130_001, 16_384]
            .iter()
            .enumerate()
            .map(|(i, &len)| fixture_named(&format!("t{i}"), &[("f", len, false)], 16_384))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let opened: Vec<(Storage, Receiver<StorageEvent>)> = fixtures
            .iter()
            .map(|f| Storage::open(&f.metainfo, dir.path(), shared.clone(), || {}).unwrap())
            .collect();
        assert_eq!(
            disk_threads(),
            before + 1,
            "{backend:?}: one thread for all"
        );
        assert_eq!(opened[0].0.backend(), pool.backend());

        // Every torrent's blocks, interleaved.
        let lists: Vec<Vec<BlockInfo>> = fixtures.iter().map(|f| blocks(f, 3)).collect();
        let longest = lists.iter().map(Vec::len).max().unwrap_or(0);
        for index in 0..longest {
            for ((fixture, list), (storage, _)) in fixtures.iter().zip(&lists).zip(&opened) {
                if let Some(&block) = list.get(index) {
                    let data = block_data(fixture, block);
                    let status = storage
                        .write_block(block.piece, block.offset, data, 1)
                        .unwrap();
                    assert_eq!(status, WriteStatus::Accepted);
                }
            }
        }
        for (fixture, (_, events)) in fixtures.iter().zip(&opened) {
            let mut verified = 0;
            wait_for(events, |event| {
                verified += u32::from(matches!(event, StorageEvent::PieceVerified(_)));
                verified == fixture.metainfo.piece_count()
            });
        }

        // A read from the second torrent's data, served by the shared thread.
        let (second, events) = &opened[1];
        let block = BlockInfo {
            piece: 1,
            offset: 0,
            len: 16_384,
        };
        second.read_block(block, 9).unwrap();
        wait_for(events, |event| match event {
            StorageEvent::BlockRead { token, result, .. } => {
                let data = result.as_ref().expect("read");
                assert_eq!(*token, 9);
                assert_eq!(data[..], fixtures[1].payload[16_384..32_768]);
                true
            }
            _ => false,
        });

        // Shutting one down leaves the others running.
        let mut opened = opened.into_iter();
        let (first, _) = opened.next().unwrap();
        first.shutdown().unwrap();
        for (storage, _) in opened {
            storage
                .flush()
                .unwrap()
                .recv_timeout(WAIT)
                .unwrap()
                .unwrap();
            storage.shutdown().unwrap();
        }
        for (i, fixture) in fixtures.iter().enumerate() {
            let on_disk = std::fs::read(dir.path().join(format!("t{i}")).join("f")).unwrap();
            assert_eq!(on_disk, fixture.payload, "{backend:?}: torrent {i}");
        }
        drop(pool);
        drop(shared);
        // The thread ends once it has seen the last handle go; it may take a moment to exit.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while disk_threads() != before && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(disk_threads(), before, "{backend:?}: the thread ended");
    }
}
