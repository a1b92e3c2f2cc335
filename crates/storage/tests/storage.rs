//! The storage against both backends: boundaries, arrival order, hash failures, short writes,
//! reads, back-pressure, resume and errors.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use bytes::Bytes;
use cratetorrent_storage::{
    BackendKind, Storage, StorageConfig, StorageError, StorageEvent, WriteStatus,
};
use cratetorrent_wire::{BlockInfo, Geometry};

const BACKENDS: [BackendKind; 2] = [BackendKind::IoUring, BackendKind::Portable];
const WAIT: Duration = Duration::from_secs(20);

mod common;
use common::{Fixture, block_data, blocks, fixture};

fn config(backend: BackendKind) -> StorageConfig {
    StorageConfig {
        backend,
        resume_interval: Duration::from_secs(3600),
        ..StorageConfig::default()
    }
}

fn open(fixture: &Fixture, dir: &Path, config: StorageConfig) -> (Storage, Receiver<StorageEvent>) {
    Storage::open(&fixture.metainfo, dir, config, || {}).unwrap()
}

/// Pieces not yet had: a piece made only of padding is had from the start.
fn to_verify(storage: &Storage) -> u32 {
    storage.have().len() - storage.have().count_ones()
}

/// Waits until `count` pieces are verified; returns the hash failures seen on the way.
fn wait_verified(events: &Receiver<StorageEvent>, count: u32) -> Vec<(u32, Vec<u64>)> {
    let (mut verified, mut failed) = (0, Vec::new());
    while verified < count {
        match events.recv_timeout(WAIT).expect("storage event") {
            StorageEvent::PieceVerified(_) => verified += 1,
            StorageEvent::HashFailed { piece, peers } => failed.push((piece, peers)),
            StorageEvent::WriteFailed { error, .. } => panic!("write failed: {error}"),
            _ => {}
        }
    }
    failed
}

fn assert_files(fixture: &Fixture, dir: &Path) {
    let mut at = 0;
    for (name, len, padding) in &fixture.files {
        let path = dir.join("t").join(name);
        if *padding {
            assert!(!path.exists(), "padding file {name} was written");
        } else {
            assert_eq!(
                std::fs::read(&path).unwrap(),
                fixture.payload[at..at + len],
                "{name}"
            );
        }
        at += len;
    }
}

fn boundary_fixture() -> Fixture {
    // 16 KiB pieces: a block spans `one` (1 byte), `empty`, `small` and into `big`; a padding
    // file aligns `aligned`; the last piece is short.
    fixture(
        &[
            ("a/one", 1, false),
            ("a/empty", 0, false),
            ("a/small", 5000, false),
            ("big", 40_000, false),
            (".pad/x", 20_535, true),
            ("aligned", 16_384 * 2 + 77, false),
            ("z", 1, false),
        ],
        16_384,
    )
}

#[test]
fn boundaries_in_any_order_on_both_backends() {
    for backend in BACKENDS {
        for seed in [1, 2, 3] {
            let fixture = boundary_fixture();
            let dir = tempfile::tempdir().unwrap();
            let (storage, events) = open(&fixture, dir.path(), config(backend));
            for block in blocks(&fixture, seed) {
                storage
                    .write_block(block.piece, block.offset, block_data(&fixture, block), 1)
                    .unwrap();
            }
            let expected = to_verify(&storage);
            assert_eq!(
                expected,
                fixture.metainfo.piece_count() - 1,
                "the padding-only piece is had"
            );
            assert!(wait_verified(&events, expected).is_empty());
            storage.shutdown().unwrap();
            assert_files(&fixture, dir.path());
        }
    }
}

#[test]
fn short_writes_resume_at_the_right_offset() {
    for backend in BACKENDS {
        let fixture = boundary_fixture();
        let dir = tempfile::tempdir().unwrap();
        let (storage, events) = open(
            &fixture,
            dir.path(),
            StorageConfig {
                max_write_len: Some(1000),
                ..config(backend)
            },
        );
        for block in blocks(&fixture, 9) {
            storage
                .write_block(block.piece, block.offset, block_data(&fixture, block), 1)
                .unwrap();
        }
        wait_verified(&events, to_verify(&storage));
        storage.shutdown().unwrap();
        assert_files(&fixture, dir.path());
    }
}

#[test]
fn a_bad_piece_names_its_peers_and_is_rewritten() {
    for backend in BACKENDS {
        let fixture = fixture(&[("f", 3 * 32_768, false)], 32_768);
        let dir = tempfile::tempdir().unwrap();
        let (storage, events) = open(&fixture, dir.path(), config(backend));
        let geometry = Geometry::of(&fixture.metainfo);
        for (index, block) in geometry.blocks(1).enumerate() {
            let mut bad = block_data(&fixture, block).to_vec();
            bad[0] ^= 0xff;
            storage
                .write_block(1, block.offset, Bytes::from(bad), 10 + index as u64)
                .unwrap();
        }
        let failure = loop {
            if let StorageEvent::HashFailed { piece, peers } = events.recv_timeout(WAIT).unwrap() {
                break (piece, peers);
            }
        };
        assert_eq!(failure, (1, vec![10, 11]));
        for block in blocks(&fixture, 4) {
            storage
                .write_block(block.piece, block.offset, block_data(&fixture, block), 3)
                .unwrap();
        }
        assert!(wait_verified(&events, 3).is_empty());
        storage.shutdown().unwrap();
        assert_files(&fixture, dir.path());
    }
}

#[test]
fn invalid_blocks_are_refused() {
    let fixture = boundary_fixture();
    let dir = tempfile::tempdir().unwrap();
    let (storage, _events) = open(&fixture, dir.path(), config(BackendKind::Portable));
    for (piece, offset, len) in [
        (0, 1, 16_384),
        (0, 0, 100),
        (99, 0, 16_384),
        (0, 16_384, 16_384),
    ] {
        let result = storage.write_block(piece, offset, Bytes::from(vec![0; len]), 1);
        assert!(
            matches!(result, Err(StorageError::InvalidBlock(_))),
            "{piece} {offset} {len}"
        );
    }
}

#[test]
fn reads_serve_verified_blocks_across_files_and_padding() {
    for backend in BACKENDS {
        let fixture = boundary_fixture();
        let dir = tempfile::tempdir().unwrap();
        let (storage, events) = open(&fixture, dir.path(), config(backend));
        let all = blocks(&fixture, 5);
        let missing = BlockInfo {
            piece: 0,
            offset: 0,
            len: 16_384,
        };
        storage.read_block(missing, 99).unwrap();
        for block in &all {
            storage
                .write_block(block.piece, block.offset, block_data(&fixture, *block), 1)
                .unwrap();
        }
        let mut reads = 0;
        let mut verified = 0;
        let mut saw_missing = false;
        let expected = to_verify(&storage);
        for (token, block) in all
            .iter()
            .enumerate()
            .filter(|(_, b)| storage.have().get(b.piece))
        {
            storage.read_block(*block, token as u64).unwrap();
        }
        while verified < expected || reads < all.len() {
            match events.recv_timeout(WAIT).unwrap() {
                StorageEvent::PieceVerified(piece) => {
                    verified += 1;
                    for (token, block) in all.iter().enumerate().filter(|(_, b)| b.piece == piece) {
                        storage.read_block(*block, token as u64).unwrap();
                    }
                }
                StorageEvent::BlockRead {
                    token: 99, result, ..
                } => {
                    saw_missing = matches!(result, Err(StorageError::PieceMissing(0)));
                }
                StorageEvent::BlockRead {
                    token,
                    block,
                    result,
                } => {
                    assert_eq!(block, all[token as usize]);
                    assert_eq!(result.unwrap(), block_data(&fixture, block));
                    reads += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(saw_missing);
        storage.shutdown().unwrap();
    }
}

#[test]
fn memory_is_capped_and_blocks_stuck_behind_gaps_are_given_up() {
    // A peer that withholds the first block of every piece: the rest waits in the hasher,
    // counted against the cap, and the engine stops reading sockets at the cap, so the missing
    // blocks would never arrive. Before, MemoryAvailable never came: the torrent stalled for good.
    let fixture = fixture(&[("f", 128 * 16_384, false)], 4 * 16_384);
    let geometry = Geometry::of(&fixture.metainfo);
    let cap = 1 << 20;
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let (storage, events) = open(
            &fixture,
            dir.path(),
            StorageConfig {
                max_memory: cap,
                ..config(backend)
            },
        );
        let mut full = false;
        for piece in 0..32 {
            for block in geometry.blocks(piece).skip(1) {
                full |= storage
                    .write_block(piece, block.offset, block_data(&fixture, block), 1)
                    .unwrap()
                    == WriteStatus::Full;
            }
        }
        assert!(full, "{backend:?}: 1.5 MiB against a 1 MiB cap");
        let mut dropped: Vec<BlockInfo> = Vec::new();
        loop {
            match events.recv_timeout(WAIT) {
                Ok(StorageEvent::BlocksDropped { piece, offsets }) => {
                    for offset in offsets {
                        dropped.push(geometry.block(piece, offset / 16_384).unwrap());
                    }
                }
                Ok(StorageEvent::MemoryAvailable) => break,
                other => panic!("{backend:?}: memory never became available: {other:?}"),
            }
        }
        assert!(!storage.is_full());
        let held = storage.held_bytes();
        assert!(held <= cap / 2, "{backend:?}: {held} bytes still held");
        let given_up = dropped.len() as u64 * 16_384;
        assert!(
            given_up >= cap / 4,
            "{backend:?}: only {given_up} bytes given up"
        );
        // The engine fetches the first blocks and the given-up ones: every piece passes.
        for piece in 0..32 {
            let first = geometry.block(piece, 0).unwrap();
            storage
                .write_block(piece, 0, block_data(&fixture, first), 2)
                .unwrap();
        }
        for block in dropped {
            storage
                .write_block(block.piece, block.offset, block_data(&fixture, block), 2)
                .unwrap();
        }
        let failed = wait_verified(&events, 32);
        assert!(failed.is_empty(), "{backend:?}: {failed:?}");
        storage.shutdown().unwrap();
    }
}

#[test]
fn blocks_of_an_unfinished_piece_reach_the_file_on_flush() {
    for backend in BACKENDS {
        let fixture = fixture(&[("f", 8 * 16_384, false)], 4 * 16_384);
        let dir = tempfile::tempdir().unwrap();
        let (storage, _events) = open(&fixture, dir.path(), config(backend));
        // Two of piece 1's four blocks: the piece waits for the rest before it is written.
        let geometry = Geometry::of(&fixture.metainfo);
        for block in geometry.blocks(1).take(2) {
            storage
                .write_block(1, block.offset, block_data(&fixture, block), 1)
                .unwrap();
        }
        storage
            .flush()
            .unwrap()
            .recv_timeout(WAIT)
            .unwrap()
            .unwrap();
        let on_disk = std::fs::read(dir.path().join("t").join("f")).unwrap();
        let start = 4 * 16_384;
        assert_eq!(
            &on_disk[start..start + 2 * 16_384],
            &fixture.payload[start..start + 2 * 16_384],
            "{backend:?}"
        );
        storage.shutdown().unwrap();
    }
}

/// Bytes of `path` still waiting for ext4 to allocate them (dirty pages never written out), as
/// `filefrag -v` reports them; `None` where that cannot be told (no filefrag, not ext4).
fn delalloc_bytes(path: &Path) -> Option<u64> {
    let output = std::process::Command::new("filefrag")
        .arg("-v")
        .arg(path)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || !text.contains("ef53") {
        return None;
    }
    // "File size of f is 4194304 (1024 blocks of 4096 bytes)", then extent lines such as
    // "  0:   0..  1023:   0..   0:   0:   last,unknown_loc,delalloc,eof".
    let block: u64 = text
        .split("blocks of ")
        .nth(1)?
        .split(' ')
        .next()?
        .parse()
        .ok()?;
    let delalloc: u64 = text
        .lines()
        .filter(|line| line.contains("delalloc"))
        .filter_map(|line| {
            let logical = line.split(':').nth(1)?;
            let (start, end) = logical.split_once("..")?;
            let (start, end): (u64, u64) = (start.trim().parse().ok()?, end.trim().parse().ok()?);
            Some(end - start + 1)
        })
        .sum();
    Some(delalloc * block)
}

#[test]
fn written_data_is_written_out_before_any_sync() {
    // 24 MiB in 1 MiB pieces: at least the first 8 MiB batch must be handed to the device while
    // the download runs, not left dirty until the flush (the kernel alone would wait 30 s).
    const SIZE: usize = 24 << 20;
    for backend in BACKENDS {
        let fixture = fixture(&[("big", SIZE, false)], 1 << 20);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t").join("big");
        let (storage, events) = open(&fixture, dir.path(), config(backend));
        write_pieces(
            &storage,
            &fixture,
            &(0..fixture.metainfo.piece_count()).collect::<Vec<_>>(),
        );
        wait_verified(&events, fixture.metainfo.piece_count());
        let Some(mut delalloc) = delalloc_bytes(&path) else {
            eprintln!(
                "skipped: {} is not on ext4 or filefrag is missing",
                path.display()
            );
            return;
        };
        let deadline = std::time::Instant::now() + WAIT;
        // Write-out runs in the background: poll, with a deadline, until it has allocated blocks.
        let most = (SIZE - (8 << 20)) as u64;
        while delalloc > most && std::time::Instant::now() < deadline {
            std::thread::yield_now();
            delalloc = delalloc_bytes(&path).unwrap_or(0);
        }
        assert!(
            delalloc <= most,
            "{backend:?}: {delalloc} bytes still dirty and unallocated"
        );
        storage.shutdown().unwrap();
        assert_eq!(
            delalloc_bytes(&path),
            Some(0),
            "{backend:?}: shutdown syncs"
        );
    }
}

fn write_pieces(storage: &Storage, fixture: &Fixture, pieces: &[u32]) {
    let geometry = Geometry::of(&fixture.metainfo);
    for &piece in pieces {
        for block in geometry.blocks(piece) {
            storage
                .write_block(piece, block.offset, block_data(fixture, block), 1)
                .unwrap();
        }
    }
}

#[test]
fn resume_trusts_unchanged_files_and_rechecks_changed_ones() {
    for backend in BACKENDS {
        let fixture = fixture(
            &[("a", 3 * 16_384, false), ("b", 3 * 16_384, false)],
            16_384,
        );
        let dir = tempfile::tempdir().unwrap();
        let (storage, events) = open(&fixture, dir.path(), config(backend));
        write_pieces(&storage, &fixture, &[0, 2, 4]);
        wait_verified(&events, 3);
        storage.shutdown().unwrap();

        let (storage, _) = open(&fixture, dir.path(), config(backend));
        assert_eq!(storage.have().iter_ones().collect::<Vec<_>>(), [0, 2, 4]);
        storage.shutdown().unwrap();

        // Corrupt piece 4 (in file b); the changed mtime forces a recheck of b only.
        let path = dir.path().join("t/b");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[16_384 + 5] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let (storage, _) = open(&fixture, dir.path(), config(backend));
        assert_eq!(storage.have().iter_ones().collect::<Vec<_>>(), [0, 2]);
        storage.shutdown().unwrap();
    }
}

#[test]
fn without_resume_data_existing_files_are_hashed() {
    let fixture = fixture(&[("a", 5 * 16_384 + 3, false)], 16_384);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t/a");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut bytes = fixture.payload.clone();
    bytes[3 * 16_384] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let progress = std::sync::Mutex::new(Vec::new());
    let (storage, _) = Storage::open_with_progress(
        &fixture.metainfo,
        dir.path(),
        config(BackendKind::Auto),
        || {},
        &|p| progress.lock().unwrap().push(p.checked),
    )
    .unwrap();
    assert_eq!(
        storage.have().iter_ones().collect::<Vec<_>>(),
        [0, 1, 2, 4, 5]
    );
    assert_eq!(progress.lock().unwrap().iter().max(), Some(&6));
}

#[test]
fn a_directory_where_a_file_belongs_is_a_typed_error() {
    for backend in BACKENDS {
        let fixture = fixture(&[("a", 16_384, false), ("b", 16_384, false)], 16_384);
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("t/b/oops")).unwrap();
        let (storage, events) = open(&fixture, dir.path(), config(backend));
        write_pieces(&storage, &fixture, &[0, 1]);
        let mut verified = Vec::new();
        let mut failed = None;
        while verified.len() + usize::from(failed.is_some()) < 2 {
            match events.recv_timeout(WAIT).unwrap() {
                StorageEvent::PieceVerified(piece) => verified.push(piece),
                StorageEvent::WriteFailed { pieces, error } => failed = Some((pieces, error)),
                other => panic!("unexpected {other:?}"),
            }
        }
        let (pieces, error) = failed.unwrap();
        assert_eq!((verified, pieces), (vec![0], vec![1]));
        assert!(
            matches!(&error, StorageError::NotAFile { path } if path == &dir.path().join("t/b")),
            "{error:?}"
        );
        drop(storage);
    }
}

/// A small tmpfs mounted over a directory; unmounted on drop.
struct SmallFs(PathBuf);

impl SmallFs {
    fn mount(dir: &Path, options: &str) -> Self {
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success(), "mount failed");
        Self(dir.to_path_buf())
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
#[ignore = "needs root: mounts a size-limited tmpfs"]
fn a_full_disk_is_reported_with_its_path_and_resume_data_stays_true() {
    for backend in BACKENDS {
        let fixture = fixture(&[("big", 32 * 16_384, false)], 16_384);
        let dir = tempfile::tempdir().unwrap();
        let _guard = SmallFs::mount(dir.path(), "size=256k");
        let (storage, events) = open(&fixture, dir.path(), config(backend));
        write_pieces(&storage, &fixture, &(0..32).collect::<Vec<_>>());
        let mut verified = Vec::new();
        let error = loop {
            match events.recv_timeout(WAIT).unwrap() {
                StorageEvent::PieceVerified(piece) => verified.push(piece),
                StorageEvent::WriteFailed { error, .. } => break error,
                other => panic!("unexpected {other:?}"),
            }
        };
        assert!(
            matches!(&error, StorageError::NoSpace { path } if path.ends_with("t/big")),
            "{error:?}"
        );
        let _ = storage.shutdown();
        // Whatever resume data was saved must only claim pieces whose data is really there.
        let (storage, _) = open(&fixture, dir.path(), config(backend));
        for piece in storage.have().iter_ones() {
            let start = piece as usize * 16_384;
            let on_disk = std::fs::read(dir.path().join("t/big")).unwrap();
            assert_eq!(
                on_disk[start..start + 16_384],
                fixture.payload[start..start + 16_384]
            );
        }
        drop(storage);
    }
}

#[test]
#[ignore = "needs root: mounts a read-only tmpfs"]
fn a_read_only_download_directory_is_a_typed_error() {
    for backend in BACKENDS {
        let fixture = fixture(&[("a", 16_384, false)], 16_384);
        let dir = tempfile::tempdir().unwrap();
        let _guard = SmallFs::mount(dir.path(), "ro,size=64k");
        let (storage, events) = open(&fixture, dir.path(), config(backend));
        storage
            .write_block(
                0,
                0,
                block_data(
                    &fixture,
                    BlockInfo {
                        piece: 0,
                        offset: 0,
                        len: 16_384,
                    },
                ),
                1,
            )
            .unwrap();
        match events.recv_timeout(WAIT).unwrap() {
            StorageEvent::WriteFailed { pieces, error } => {
                assert_eq!(pieces, [0]);
                assert!(
                    matches!(&error, StorageError::ReadOnly { path } if path.starts_with(dir.path())),
                    "{error:?}"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        drop(storage);
    }
}

#[test]
fn a_full_check_finds_exactly_the_intact_pieces() {
    // 32 KiB pieces over ~2.1 MB in three files and a padding file: several batches of sixteen
    // pieces for the lanes (where the CPU has them), pieces across file boundaries, a short last
    // piece. Two pieces are corrupted (first and last lane of a batch) and file `c` is cut short.
    let piece = 32_768usize;
    let fixture = fixture(
        &[
            ("a", 700_000, false),
            (".pad/0", 20_000, true),
            ("b", 1_300_000, false),
            ("c", 150_000, false),
        ],
        piece as u32,
    );
    let dir = tempfile::tempdir().unwrap();
    let mut at = 0;
    for (name, len, padding) in &fixture.files {
        if !padding {
            let path = dir.path().join("t").join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &fixture.payload[at..at + len]).unwrap();
        }
        at += len;
    }
    let corrupt = [16u32, 31];
    for &p in &corrupt {
        let at = p as usize * piece + 100;
        let file = if at < 700_000 { "a" } else { "b" };
        let offset = if file == "a" { at } else { at - 720_000 };
        let path = dir.path().join("t").join(file);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[offset] ^= 0x40;
        std::fs::write(&path, bytes).unwrap();
    }
    let c = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("t/c"))
        .unwrap();
    c.set_len(100_000).unwrap();
    let c_index = 3;
    let expected: Vec<u32> = (0..fixture.metainfo.piece_count())
        .filter(|p| !corrupt.contains(p))
        .filter(|&p| {
            fixture
                .metainfo
                .piece_slices(p)
                .all(|s| s.file_index != c_index || s.offset + s.len <= 100_000)
        })
        .collect();
    assert_eq!(expected.len(), 62, "two corrupt, three past the end of `c`");
    let verified = cratetorrent_storage::verify(&fixture.metainfo, dir.path(), 2, &|_| {});
    assert_eq!(verified.iter_ones().collect::<Vec<_>>(), expected);
    let (storage, _) = open(&fixture, dir.path(), config(BackendKind::Auto));
    assert_eq!(storage.have().iter_ones().collect::<Vec<_>>(), expected);
    storage.shutdown().unwrap();
}
