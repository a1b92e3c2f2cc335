//! Symbolic links under the download directory are never followed: a link planted where the
//! torrent's root, a directory or a file belongs makes the operation fail with
//! `StorageError::Symlink` naming the link, and nothing outside the download directory changes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use cratetorrent_storage::{
    BackendKind, Layout, Storage, StorageConfig, StorageError, StorageEvent, delete_files,
};

mod common;
use common::{Fixture, block_data, blocks, fixture, single_fixture};

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

/// The error of the first `WriteFailed`; panics if every piece is verified instead.
fn first_write_error(events: &Receiver<StorageEvent>) -> StorageError {
    loop {
        match events.recv_timeout(WAIT).expect("storage event") {
            StorageEvent::WriteFailed { error, .. } => return error,
            StorageEvent::PieceVerified(piece) => panic!("piece {piece} went through a link"),
            _ => {}
        }
    }
}

fn assert_symlink_error(error: &StorageError, link: &Path) {
    assert!(
        matches!(error, StorageError::Symlink { path } if path == link),
        "expected Symlink({}), got {error:?}",
        link.display()
    );
}

#[test]
fn a_symlinked_single_file_root_is_not_written_through() {
    for backend in BACKENDS {
        let fixture = single_fixture("t", 40_000, 16_384);
        let (dl, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let victim = outside.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        symlink(&victim, dl.path().join("t")).unwrap();

        let (storage, events) =
            Storage::open(&fixture.metainfo, dl.path(), config(backend), || {}).unwrap();
        write_all(&storage, &fixture);
        assert_symlink_error(&first_write_error(&events), &dl.path().join("t"));
        let _ = storage.shutdown();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious", "{backend:?}");
    }
}

#[test]
fn a_symlinked_subdirectory_is_not_written_through() {
    for backend in BACKENDS {
        let fixture = fixture(&[("sub/a", 20_000, false), ("b", 20_000, false)], 16_384);
        let (dl, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::create_dir(dl.path().join("t")).unwrap();
        symlink(outside.path(), dl.path().join("t/sub")).unwrap();

        let (storage, events) =
            Storage::open(&fixture.metainfo, dl.path(), config(backend), || {}).unwrap();
        write_all(&storage, &fixture);
        assert_symlink_error(&first_write_error(&events), &dl.path().join("t/sub"));
        let _ = storage.shutdown();
        assert_eq!(
            std::fs::read_dir(outside.path()).unwrap().count(),
            0,
            "{backend:?}: a file was created outside the download directory"
        );
    }
}

#[test]
fn a_dangling_link_named_like_a_file_creates_nothing_at_its_target() {
    let fixture = fixture(&[("empty", 0, false), ("a", 20_000, false)], 16_384);
    let (dl, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::create_dir(dl.path().join("t")).unwrap();
    // A zero-length file is created when the storage opens; a data file on first write.
    symlink(outside.path().join("made-empty"), dl.path().join("t/empty")).unwrap();
    let error = Storage::open(
        &fixture.metainfo,
        dl.path(),
        config(BackendKind::Auto),
        || {},
    )
    .err()
    .expect("opening through a dangling link must fail");
    assert_symlink_error(&error, &dl.path().join("t/empty"));
    assert!(!outside.path().join("made-empty").exists());

    std::fs::remove_file(dl.path().join("t/empty")).unwrap();
    symlink(outside.path().join("made-a"), dl.path().join("t/a")).unwrap();
    let (storage, events) = Storage::open(
        &fixture.metainfo,
        dl.path(),
        config(BackendKind::Auto),
        || {},
    )
    .unwrap();
    write_all(&storage, &fixture);
    assert_symlink_error(&first_write_error(&events), &dl.path().join("t/a"));
    let _ = storage.shutdown();
    assert!(!outside.path().join("made-a").exists());
}

#[test]
fn delete_with_data_does_not_follow_links_or_touch_padding() {
    let fixture = fixture(
        &[
            ("sub/a", 20_000, false),
            (".pad/12768", 12_768, true),
            ("b", 20_000, false),
        ],
        16_384,
    );
    let (dl, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let t = dl.path().join("t");
    std::fs::create_dir_all(t.join(".pad")).unwrap();
    std::fs::write(t.join("b"), b"ours").unwrap();
    // Someone else's file at a padding path: we never wrote it, so it is not ours to delete.
    std::fs::write(t.join(".pad/12768"), b"not ours").unwrap();
    std::fs::write(outside.path().join("a"), b"outside").unwrap();
    symlink(outside.path(), t.join("sub")).unwrap();

    let error = delete_files(&Layout::new(&fixture.metainfo, dl.path()))
        .expect_err("a link in the way is reported");
    assert_symlink_error(&error, &t.join("sub"));
    assert_eq!(std::fs::read(outside.path().join("a")).unwrap(), b"outside");
    assert!(!t.join("b").exists(), "the torrent's own file is deleted");
    assert_eq!(std::fs::read(t.join(".pad/12768")).unwrap(), b"not ours");
}
