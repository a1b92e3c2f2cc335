//! A 20,000-file torrent downloads and seeds under `ulimit -n 1024`: the file cache keeps the
//! number of open descriptors bounded.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cratetorrent_storage::{Storage, StorageConfig, StorageEvent};
use cratetorrent_wire::{BlockInfo, Geometry};

mod common;
use common::{CHILD_BACKEND, Fixture, block_data, child_backend, fixture};

const CHILD_DIR: &str = "CT_FD_CHILD_DIR";
const TEST: &str = "twenty_thousand_files_under_ulimit_1024";

fn torrent() -> Fixture {
    let names: Vec<String> = (0..20_000)
        .map(|i| format!("d{:02}/f{i:05}", i % 50))
        .collect();
    let files: Vec<(&str, usize, bool)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), 50 + i % 150, false))
        .collect();
    fixture(&files, 64 * 1024)
}

fn child(dir: &Path) {
    let fixture = torrent();
    let (storage, events) = Storage::open(
        &fixture.metainfo,
        dir,
        StorageConfig {
            backend: child_backend(),
            ..StorageConfig::default()
        },
        || {},
    )
    .unwrap();
    let geometry = Geometry::of(&fixture.metainfo);
    for piece in 0..geometry.piece_count() {
        for block in geometry.blocks(piece) {
            storage
                .write_block(piece, block.offset, block_data(&fixture, block), 1)
                .unwrap();
        }
    }
    let mut verified = 0;
    while verified < geometry.piece_count() {
        match events
            .recv_timeout(Duration::from_secs(60))
            .expect("storage event")
        {
            StorageEvent::PieceVerified(_) => verified += 1,
            StorageEvent::WriteFailed { error, .. } => panic!("{error}"),
            _ => {}
        }
    }
    let blocks: Vec<BlockInfo> = (0..geometry.piece_count())
        .filter_map(|p| geometry.block(p, 0))
        .collect();
    for (token, block) in blocks.iter().enumerate() {
        storage.read_block(*block, token as u64).unwrap();
    }
    let mut read = 0;
    while read < blocks.len() {
        if let StorageEvent::BlockRead { block, result, .. } =
            events.recv_timeout(Duration::from_secs(60)).unwrap()
        {
            assert_eq!(result.unwrap(), block_data(&fixture, block));
            read += 1;
        }
    }
    storage.shutdown().unwrap();
}

#[test]
fn twenty_thousand_files_under_ulimit_1024() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        child(Path::new(&dir));
        return;
    }
    for backend in ["io_uring", "portable"] {
        run_under_limit(backend);
    }
}

fn run_under_limit(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 1024 && exec \"$0\" --exact {TEST} --test-threads=1"
        ))
        .arg(&exe)
        .env(CHILD_DIR, dir.path())
        .env(CHILD_BACKEND, backend)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "{backend}: the download failed under ulimit -n 1024"
    );
    let fixture = torrent();
    let mut at = 0;
    for (name, len, _) in fixture.files.iter().step_by(997) {
        let on_disk = std::fs::read(dir.path().join("t").join(name)).unwrap();
        let start = fixture
            .files
            .iter()
            .take_while(|(n, _, _)| n != name)
            .map(|(_, l, _)| l)
            .sum::<usize>();
        assert_eq!(on_disk, fixture.payload[start..start + len], "{name}");
        at += 1;
    }
    assert!(at > 10);
}
