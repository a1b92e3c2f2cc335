//! Interrupted downloads resume without fetching verified pieces again: after a clean
//! shutdown, and after the process is killed with SIGKILL.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use cratetorrent::prelude::*;

mod common;
use common::*;

const TIMEOUT: Duration = Duration::from_secs(90);
const PIECE: u32 = 64 * 1024;
const CHILD_ENV: &str = "CT_RESUME_CHILD";

fn slow_seed(payload: &Payload) -> EngineHandle {
    let mut conf = conf(payload.dir.path());
    conf.upload_rate_limit = 3 * 1024 * 1024;
    let (seed, alerts) = engine::spawn(conf).unwrap();
    // Nobody reads the seed's alerts: that must not matter.
    std::mem::forget(alerts);
    seed.create_torrent(params(&payload.metainfo, Mode::Seed))
        .unwrap();
    seed
}

/// Restarts in `dir`, checks the pieces found, finishes, and returns the payload bytes fetched.
async fn finish(payload: &Payload, seed: &EngineHandle, dir: &Path, had_before: u32) -> u64 {
    let (leech, mut alerts) = engine::spawn(conf(dir)).unwrap();
    let id = leech
        .create_torrent(params(
            &payload.metainfo,
            Mode::Download {
                seeds: vec![seed.listen_addr()],
            },
        ))
        .unwrap();
    let started = wait_for(&mut alerts, TIMEOUT, |a| {
        matches!(a, Alert::TorrentStarted { .. })
    })
    .await;
    let Alert::TorrentStarted { pieces_had, .. } = started else {
        unreachable!()
    };
    assert!(
        pieces_had >= had_before,
        "{pieces_had} pieces found, {had_before} were verified"
    );
    wait_complete(&mut alerts, id, TIMEOUT).await;
    let downloaded = leech.stats(id).await.unwrap().downloaded;
    leech.shutdown().await.unwrap();
    assert_same_files(&payload.metainfo, payload.dir.path(), dir);
    let missing = u64::from(payload.metainfo.piece_count() - pieces_had);
    // Each missing piece once; end-game may duplicate a few blocks.
    assert!(
        downloaded <= missing * u64::from(PIECE) + 4 * 16 * 1024,
        "fetched {downloaded} bytes for {missing} missing pieces"
    );
    downloaded
}

#[tokio::test]
async fn stopped_download_resumes_without_refetching() {
    let payload = payload("resume.bin", &[("", 8 * 1024 * 1024)], PIECE);
    let seed = slow_seed(&payload);
    let (dir, leech, mut alerts, id) = leecher(&payload.metainfo, vec![seed.listen_addr()]);
    let half = payload.metainfo.piece_count() / 2;
    wait_for(
        &mut alerts,
        TIMEOUT,
        |a| matches!(a, Alert::TorrentStats(s) if s.pieces_had >= half / 2),
    )
    .await;
    let had = leech.stats(id).await.unwrap().pieces_had;
    leech.shutdown().await.unwrap();
    assert!(
        had < payload.metainfo.piece_count(),
        "stopped before the end"
    );
    finish(&payload, &seed, dir.path(), had).await;
    seed.shutdown().await.unwrap();
}

/// In the child process: download until killed, printing the verified piece count.
async fn child(torrent: &Path, dir: &Path, seed: &str) {
    let metainfo = Metainfo::from_bytes(&std::fs::read(torrent).unwrap()).unwrap();
    let (leech, mut alerts) = engine::spawn(conf(dir)).unwrap();
    leech
        .create_torrent(params(
            &metainfo,
            Mode::Download {
                seeds: vec![seed.parse().unwrap()],
            },
        ))
        .unwrap();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while let Ok(Some(alert)) = tokio::time::timeout_at(deadline, alerts.next()).await {
        if let Alert::TorrentStats(stats) = alert {
            println!("HAVE {}", stats.pieces_had);
        }
    }
}

#[tokio::test]
async fn killed_download_resumes_without_refetching() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let parts: Vec<&str> = spec.split('|').collect();
        child(Path::new(parts[0]), Path::new(parts[1]), parts[2]).await;
        return;
    }
    let payload = payload("killed.bin", &[("", 8 * 1024 * 1024)], PIECE);
    let seed = slow_seed(&payload);
    let dir = tempfile::tempdir().unwrap();
    let torrent = dir.path().join("killed.torrent");
    std::fs::write(&torrent, &payload.torrent).unwrap();
    let download = dir.path().join("download");
    let spec = format!(
        "{}|{}|{}",
        torrent.display(),
        download.display(),
        seed.listen_addr()
    );
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "killed_download_resumes_without_refetching",
            "--nocapture",
        ])
        .env(CHILD_ENV, spec)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("HAVE ") {
                let _ = tx.send(n.trim().parse::<u32>().unwrap_or(0));
            }
        }
    });
    let target = payload.metainfo.piece_count() / 3;
    let mut had = 0;
    while had < target {
        had = rx.recv_timeout(TIMEOUT).expect("child progress");
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        had < payload.metainfo.piece_count(),
        "killed before the end"
    );
    finish(&payload, &seed, &download, had).await;
    seed.shutdown().await.unwrap();
}
