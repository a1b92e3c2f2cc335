//! Disk faults during a download: a full file system (a size-limited tmpfs) and a file replaced
//! by a directory. Each gives a typed error naming the path, no panic; a full disk pauses the torrent
//! while the engine keeps seeding another, and after space is freed a restart resumes from the
//! pieces that were verified (resume data never claims more).
//!
//! Mounting needs root; where mounting is refused the full-disk test says so and passes without
//! checking anything else.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cratetorrent::prelude::*;
use cratetorrent::{EngineError, TorrentError, TorrentState};
use cratetorrent_storage::StorageError;

mod common;
use common::*;

const TIMEOUT: Duration = Duration::from_secs(60);
const PIECE: u32 = 64 * 1024;

/// A tmpfs of `size` bytes at `dir/mnt`, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: u64) -> Option<Self> {
        let point = dir.join("mnt");
        std::fs::create_dir_all(&point).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&point)
            .status()
            .ok()?;
        if !status.success() {
            eprintln!("cannot mount a tmpfs here (needs root): disk fault test not run");
            return None;
        }
        Some(Self(point))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Waits for the torrent's first error.
async fn first_error(alerts: &mut Alerts, id: TorrentId) -> TorrentError {
    let alert = wait_for_any(
        alerts,
        TIMEOUT,
        |a| matches!(a, Alert::TorrentError { id: i, .. } if *i == id),
    )
    .await;
    let Alert::TorrentError { error, .. } = alert else {
        unreachable!()
    };
    error
}

/// Like `wait_for`, but torrent errors are what we are waiting for, not failures.
async fn wait_for_any(
    alerts: &mut Alerts,
    timeout: Duration,
    want: impl Fn(&Alert) -> bool,
) -> Alert {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, alerts.next()).await {
            Ok(Some(alert)) if want(&alert) => return alert,
            Ok(Some(_)) => {}
            Ok(None) => panic!("alert stream ended"),
            Err(_) => panic!("timed out after {timeout:?}"),
        }
    }
}

#[tokio::test]
async fn a_full_disk_pauses_the_torrent_and_a_restart_after_freeing_space_completes() {
    let work = tempfile::tempdir().unwrap();
    let Some(tmpfs) = Tmpfs::mount(work.path(), 5 << 20) else {
        return;
    };
    // Ballast that the test frees later.
    let ballast = tmpfs.0.join("ballast");
    std::fs::write(&ballast, vec![0u8; 3 << 19]).unwrap();
    // A small torrent the engine seeds from the same file system, complete before it fills.
    let small = payload("small.bin", &[("", 256 * 1024)], PIECE);
    std::fs::copy(
        small.dir.path().join("small.bin"),
        tmpfs.0.join("small.bin"),
    )
    .unwrap();
    // The big one does not fit: 4 MiB into the ~3.2 MiB left.
    let big = payload("big.bin", &[("", 4 << 20)], PIECE);
    let (seed, _seed_alerts, _) = seeder(&big);

    let (engine, mut alerts) = engine::spawn(conf(&tmpfs.0)).unwrap();
    let small_id = engine
        .create_torrent(params(&small.metainfo, Mode::Seed))
        .unwrap();
    let id = engine
        .create_torrent(params(
            &big.metainfo,
            Mode::Download {
                seeds: vec![seed.listen_addr()],
            },
        ))
        .unwrap();
    let error = first_error(&mut alerts, id).await;
    assert!(error.is_no_space(), "{error}");
    let Some(StorageError::NoSpace { path }) = error.storage() else {
        panic!("{error:?}")
    };
    assert!(
        path.starts_with(&tmpfs.0),
        "{} outside the download dir",
        path.display()
    );
    assert!(error.to_string().contains("no space left"), "{error}");
    let stats = engine.stats(id).await.unwrap();
    assert_eq!(
        stats.state,
        TorrentState::Paused,
        "a full disk pauses the torrent"
    );
    let verified = stats.pieces_had;
    assert!(verified < big.metainfo.piece_count());

    // The engine still serves its other torrent from the full file system.
    let (_small_dir, other, mut other_alerts, other_id) =
        leecher(&small.metainfo, vec![engine.listen_addr()]);
    wait_complete(&mut other_alerts, other_id, TIMEOUT).await;
    other.shutdown().await.unwrap();
    let _ = small_id;

    // Free space, restart: verified pieces are kept, the rest is fetched, the data is whole.
    match engine.shutdown().await {
        // Saving resume data needs space too: the error says so, the old resume data stays.
        Ok(())
        | Err(EngineError::Storage {
            source: StorageError::NoSpace { .. },
            ..
        }) => {}
        Err(other) => panic!("shutdown: {other}"),
    }
    std::fs::remove_file(&ballast).unwrap();
    resume_and_finish(
        &big.metainfo,
        &tmpfs.0,
        seed.listen_addr(),
        verified,
        TIMEOUT,
    )
    .await;
    seed.shutdown().await.unwrap();
    assert_same_files(&big.metainfo, big.dir.path(), &tmpfs.0);
}

#[tokio::test]
async fn a_file_replaced_by_a_directory_mid_download_is_a_typed_error() {
    let source = payload("two", &[("a.bin", 2 << 20), ("b.bin", 2 << 20)], PIECE);
    let mut seed_conf = conf(source.dir.path());
    seed_conf.upload_rate_limit = 2 << 20;
    let (seed, _seed_alerts) = engine::spawn(seed_conf).unwrap();
    seed.create_torrent(params(&source.metainfo, Mode::Seed))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (engine, mut alerts) = engine::spawn(conf(dir.path())).unwrap();
    let id = engine
        .create_torrent(params(
            &source.metainfo,
            Mode::Download {
                seeds: vec![seed.listen_addr()],
            },
        ))
        .unwrap();
    engine.set_sequential(id, true).unwrap();
    wait_for(&mut alerts, TIMEOUT, |a| {
        matches!(a, Alert::TorrentStarted { .. })
    })
    .await;
    // b.bin is opened when its first block arrives; by then a directory stands there.
    let b = dir.path().join("two").join("b.bin");
    let _ = std::fs::remove_file(&b);
    std::fs::create_dir_all(&b).unwrap();
    let error = first_error(&mut alerts, id).await;
    let Some(StorageError::NotAFile { path }) = error.storage() else {
        panic!("{error:?}")
    };
    assert_eq!(path, &b);
    // The engine is alive, the first file's pieces are kept.
    let stats = engine.stats(id).await.unwrap();
    assert!(stats.pieces_had < source.metainfo.piece_count());
    engine.shutdown().await.unwrap();
    seed.shutdown().await.unwrap();
}
