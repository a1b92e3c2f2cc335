//! What resume data may claim, and how a hostile resume file is read.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use cratetorrent_metainfo::bencode;
use cratetorrent_storage::{
    BackendKind, Layout, Storage, StorageConfig, StorageError, StorageEvent,
};

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

/// A torrent downloaded and shut down (resume data saved), then one byte of its first file
/// changed with the mtime put back: resume data that is trusted claims a piece that is not there.
fn downloaded_then_tampered(dir: &Path) -> Fixture {
    let fixture = fixture(&[("a", 32_768, false), ("b", 32_768, false)], 16_384);
    let (storage, events) =
        Storage::open(&fixture.metainfo, dir, config(BackendKind::Auto), || {}).unwrap();
    write_all(&storage, &fixture);
    wait_verified(&events, 4);
    storage.shutdown().unwrap();
    let path = dir.join("t/a");
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    fixture
}

/// Opens on another thread, so that a hang fails the test instead of stalling it.
fn open_within_deadline(fixture: &Fixture, dir: &Path) -> Result<Storage, String> {
    let (metainfo, dir) = (fixture.metainfo.clone(), dir.to_path_buf());
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let opened = Storage::open(&metainfo, &dir, config(BackendKind::Auto), || {});
        let _ = done.send(
            opened
                .map(|(storage, _)| storage)
                .map_err(|e| e.to_string()),
        );
    });
    result.recv_timeout(WAIT).expect("Storage::open hung")
}

#[test]
fn trusted_resume_data_is_the_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = downloaded_then_tampered(dir.path());
    let storage = open_within_deadline(&fixture, dir.path()).unwrap();
    // The tampering is invisible to resume data: this is what the tests below must not see.
    assert_eq!(storage.have().count_ones(), 4);
}

#[test]
fn a_symlinked_resume_file_is_not_followed() {
    let (dir, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let fixture = downloaded_then_tampered(dir.path());
    let resume = Layout::new(&fixture.metainfo, dir.path()).resume_path();
    std::fs::rename(&resume, outside.path().join("planted")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("planted"), &resume).unwrap();
    let storage = open_within_deadline(&fixture, dir.path()).unwrap();
    assert_eq!(
        storage.have().count_ones(),
        3,
        "piece 0 is hashed, not trusted"
    );
}

#[test]
fn a_fifo_resume_file_does_not_hang_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = downloaded_then_tampered(dir.path());
    let resume = Layout::new(&fixture.metainfo, dir.path()).resume_path();
    std::fs::remove_file(&resume).unwrap();
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &resume,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    let storage = open_within_deadline(&fixture, dir.path()).unwrap();
    assert_eq!(storage.have().count_ones(), 3);
}

/// The peak resident memory of this process.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

#[test]
fn an_oversized_resume_file_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = downloaded_then_tampered(dir.path());
    let resume = Layout::new(&fixture.metainfo, dir.path()).resume_path();
    // Sparse: costs no disk, but reading it whole would take 1 GiB of memory.
    std::fs::File::create(&resume)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let storage = open_within_deadline(&fixture, dir.path()).unwrap();
    assert_eq!(storage.have().count_ones(), 3);
    assert!(peak_rss() < 512 << 20, "peak RSS {} bytes", peak_rss());
}

#[test]
fn a_torrent_named_like_the_resume_directory_is_refused() {
    for files in [
        &[("x.resume", 16_384, false)][..],
        &[("a", 16_384, false)][..],
    ] {
        let fixture = common::fixture_named(".cratetorrent", files, 16_384);
        let dir = tempfile::tempdir().unwrap();
        let error = Storage::open(
            &fixture.metainfo,
            dir.path(),
            config(BackendKind::Auto),
            || {},
        )
        .err()
        .expect("the reserved root is refused");
        assert!(
            matches!(&error, StorageError::ReservedName { path } if *path == dir.path().join(".cratetorrent")),
            "{error:?}"
        );
    }
    let single = common::single_fixture(".cratetorrent", 16_384, 16_384);
    let dir = tempfile::tempdir().unwrap();
    assert!(
        Storage::open(
            &single.metainfo,
            dir.path(),
            config(BackendKind::Auto),
            || {}
        )
        .is_err()
    );
    assert!(!dir.path().join(".cratetorrent").exists());
}
