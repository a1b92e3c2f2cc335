//! Helpers for the engine's loopback tests: payloads, engines, and waiting on alerts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    dead_code,
    unreachable_pub
)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use cratetorrent::prelude::*;
use cratetorrent_metainfo::TorrentBuilder;
use tempfile::TempDir;

/// A payload on disk and its torrent.
pub struct Payload {
    /// Holds the payload (the torrent's root is `dir/name`).
    pub dir: TempDir,
    pub metainfo: Metainfo,
    /// The `.torrent` file's bytes.
    pub torrent: Vec<u8>,
}

/// Deterministic pseudo-random bytes.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A multi-file payload named `name` with the given relative paths and sizes (a single entry
/// with an empty path makes a single-file torrent named `name`).
pub fn payload(name: &str, files: &[(&str, usize)], piece_length: u32) -> Payload {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join(name);
    for (i, (path, len)) in files.iter().enumerate() {
        let file = if path.is_empty() {
            root.clone()
        } else {
            root.join(path)
        };
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, pseudo_random(*len, i as u64 + 1)).unwrap();
    }
    let bytes = TorrentBuilder::new(&root)
        .piece_length(piece_length)
        .build()
        .unwrap();
    let metainfo = Metainfo::from_bytes(&bytes).unwrap();
    Payload {
        dir,
        metainfo,
        torrent: bytes,
    }
}

/// Engine settings for loopback tests.
pub fn conf(download_dir: &Path) -> Conf {
    let mut conf = Conf::new(download_dir);
    conf.listen_addr = "127.0.0.1:0".parse().unwrap();
    // Engines of other tests on this host would hear each other's multicast announces.
    conf.lsd = false;
    conf.dht.enabled = false;
    conf
}

pub fn params(metainfo: &Metainfo, mode: Mode) -> TorrentParams {
    TorrentParams {
        source: metainfo.clone().into(),
        listen_addr: None,
        mode,
        conf: None,
    }
}

/// An engine seeding `payload` from where it was created.
pub fn seeder(payload: &Payload) -> (EngineHandle, Alerts, TorrentId) {
    seeder_limited(payload, 0)
}

/// A seeder uploading at most `upload_rate` bytes per second (0: unlimited), so that other peers
/// of a test get their share however fast the machine is.
pub fn seeder_limited(payload: &Payload, upload_rate: u64) -> (EngineHandle, Alerts, TorrentId) {
    let mut conf = conf(payload.dir.path());
    conf.upload_rate_limit = upload_rate;
    let (engine, alerts) = engine::spawn(conf).unwrap();
    let id = engine
        .create_torrent(params(&payload.metainfo, Mode::Seed))
        .unwrap();
    (engine, alerts, id)
}

/// An engine downloading `metainfo` from `seeds` into a fresh directory.
pub fn leecher(
    metainfo: &Metainfo,
    seeds: Vec<std::net::SocketAddr>,
) -> (TempDir, EngineHandle, Alerts, TorrentId) {
    let dir = tempfile::tempdir().unwrap();
    let (engine, alerts) = engine::spawn(conf(dir.path())).unwrap();
    let id = engine
        .create_torrent(params(metainfo, Mode::Download { seeds }))
        .unwrap();
    (dir, engine, alerts, id)
}

/// Waits for an alert matching `want`, failing on a torrent error or after `timeout`.
pub async fn wait_for(
    alerts: &mut Alerts,
    timeout: Duration,
    mut want: impl FnMut(&Alert) -> bool,
) -> Alert {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let next = tokio::time::timeout_at(deadline, alerts.next()).await;
        match next {
            Ok(Some(alert)) => {
                if want(&alert) {
                    return alert;
                }
                if let Alert::TorrentError { error, .. } = &alert {
                    panic!("torrent error: {error}");
                }
            }
            Ok(None) => panic!("alert stream ended"),
            Err(_) => panic!("timed out after {timeout:?}"),
        }
    }
}

/// Waits for `id` to complete.
pub async fn wait_complete(alerts: &mut Alerts, id: TorrentId, timeout: Duration) {
    wait_for(
        alerts,
        timeout,
        |a| matches!(a, Alert::TorrentComplete(done) if *done == id),
    )
    .await;
}

/// Asserts every file of the torrent under `got` equals the one under `want`.
pub fn assert_same_files(metainfo: &Metainfo, want: &Path, got: &Path) {
    for file in metainfo.files() {
        let path: PathBuf = file.path();
        let expected = std::fs::read(want.join(&path)).unwrap();
        let actual = std::fs::read(got.join(&path))
            .unwrap_or_else(|e| panic!("{}: {e}", got.join(&path).display()));
        assert!(expected == actual, "{} differs", path.display());
    }
}

pub mod fake_peer;
pub mod test_tracker;

/// The torrent's bytes, files concatenated in order.
pub fn torrent_bytes(payload: &Payload) -> Vec<u8> {
    let mut all = Vec::new();
    for file in payload.metainfo.files() {
        all.extend(std::fs::read(payload.dir.path().join(file.path())).unwrap());
    }
    all
}

/// Restarts a download of `metainfo` in `dir` from `seed`, checks that at least `verified`
/// pieces are found on disk, downloads the rest and shuts down. Returns the pieces found at
/// start and the payload bytes fetched.
pub async fn resume_and_finish(
    metainfo: &Metainfo,
    dir: &Path,
    seed: std::net::SocketAddr,
    verified: u32,
    timeout: Duration,
) -> (u32, u64) {
    let (engine, mut alerts) = engine::spawn(conf(dir)).unwrap();
    let id = engine
        .create_torrent(params(metainfo, Mode::Download { seeds: vec![seed] }))
        .unwrap();
    let started = wait_for(&mut alerts, timeout, |a| {
        matches!(a, Alert::TorrentStarted { .. })
    })
    .await;
    let Alert::TorrentStarted { pieces_had, .. } = started else {
        unreachable!()
    };
    assert!(
        pieces_had >= verified,
        "{pieces_had} pieces found on restart, {verified} were verified"
    );
    wait_complete(&mut alerts, id, timeout).await;
    let downloaded = engine.stats(id).await.unwrap().downloaded;
    engine.shutdown().await.unwrap();
    (pieces_had, downloaded)
}
