//! Interrupted downloads resume without fetching verified pieces again: after a clean
//! shutdown, and after the process is killed with SIGKILL at five random moments in a row.

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

fn slow_seed(payload: &Payload, rate: u64) -> EngineHandle {
    let mut conf = conf(payload.dir.path());
    conf.upload_rate_limit = rate;
    let (seed, alerts) = engine::spawn(conf).unwrap();
    // Nobody reads the seed's alerts: that must not matter.
    std::mem::forget(alerts);
    seed.create_torrent(params(&payload.metainfo, Mode::Seed))
        .unwrap();
    seed
}

/// Restarts in `dir`, checks the pieces found, finishes, and returns the pieces found at start
/// and the payload bytes fetched.
async fn finish(payload: &Payload, seed: &EngineHandle, dir: &Path, had_before: u32) -> (u32, u64) {
    let (pieces_had, downloaded) = resume_and_finish(
        &payload.metainfo,
        dir,
        seed.listen_addr(),
        had_before,
        TIMEOUT,
    )
    .await;
    assert_same_files(&payload.metainfo, payload.dir.path(), dir);
    let missing = u64::from(payload.metainfo.piece_count() - pieces_had);
    // Each missing piece once; end-game may duplicate a few blocks.
    assert!(
        downloaded <= missing * u64::from(PIECE) + 4 * 16 * 1024,
        "fetched {downloaded} bytes for {missing} missing pieces"
    );
    (pieces_had, downloaded)
}

#[tokio::test]
async fn stopped_download_resumes_without_refetching() {
    let payload = payload("resume.bin", &[("", 8 * 1024 * 1024)], PIECE);
    let seed = slow_seed(&payload, 3 << 20);
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

/// In the child process: download until killed, printing the pieces found at start, then the
/// verified piece count and the payload bytes fetched with every stats alert.
async fn child(torrent: &Path, dir: &Path, seed: &str) {
    let metainfo = Metainfo::from_bytes(&std::fs::read(torrent).unwrap()).unwrap();
    let mut conf = conf(dir);
    conf.torrent.stats_interval = Duration::from_millis(100);
    let (leech, mut alerts) = engine::spawn(conf).unwrap();
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
        match alert {
            Alert::TorrentStarted { pieces_had, .. } => println!("START {pieces_had}"),
            Alert::TorrentStats(stats) => {
                println!("HAVE {} {}", stats.pieces_had, stats.downloaded);
            }
            _ => {}
        }
    }
}

/// What a child reported: pieces found at start, then (verified pieces, bytes fetched).
enum Report {
    Start(u32),
    Have(u32, u64),
}

/// Runs a child download and kills it (SIGKILL) once it has verified `step` pieces more than it
/// found at start; returns the pieces it found at start, and its last report before the kill.
fn run_and_kill(spec: &str, step: u32) -> (u32, u32, u64) {
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
            let mut words = line.split_whitespace();
            let report = match (words.next(), words.next(), words.next()) {
                (Some("START"), Some(n), _) => Report::Start(n.parse().unwrap_or(0)),
                (Some("HAVE"), Some(n), Some(bytes)) => {
                    Report::Have(n.parse().unwrap_or(0), bytes.parse().unwrap_or(0))
                }
                _ => continue,
            };
            if tx.send(report).is_err() {
                break;
            }
        }
    });
    let (mut start, mut had, mut fetched) = (None, 0, 0);
    while start.is_none_or(|start| had < start + step) {
        match rx.recv_timeout(TIMEOUT).expect("child progress") {
            Report::Start(n) => start = Some(n),
            Report::Have(n, bytes) => (had, fetched) = (n, bytes),
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    (start.unwrap_or(0), had, fetched)
}

#[tokio::test]
async fn killed_download_resumes_without_refetching() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let parts: Vec<&str> = spec.split('|').collect();
        child(Path::new(parts[0]), Path::new(parts[1]), parts[2]).await;
        return;
    }
    let payload = payload("killed.bin", &[("", 32 * 1024 * 1024)], PIECE);
    let seed = slow_seed(&payload, 2 << 20);
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
    // Five kill points, each a random number of pieces (1 to 40 of 512) past what the run
    // started with. Progress is reported once a second (about 32 pieces at 2 MiB/s), so a run
    // verifies at most about 72 pieces before its kill and five runs stay short of the end.
    let count = payload.metainfo.piece_count();
    let seed_value = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let mut rng = fastrand::Rng::with_seed(seed_value);
    let steps: Vec<u32> = (0..5).map(|_| rng.u32(1..=40)).collect();
    println!("kill points (pieces past each start, rng seed {seed_value}): {steps:?}");
    // Bytes a run fetched that the next run did not find verified on disk: what was in flight
    // (requested, received, not yet hashed) at the kill. Pieces are 64 KiB and arrive in order
    // from one seed, so that is a few pieces at most.
    let in_flight = |previous: Option<(u32, u64)>, found: u32| {
        previous.map_or(0, |(started, fetched): (u32, u64)| {
            fetched.saturating_sub(u64::from(found.saturating_sub(started)) * u64::from(PIECE))
        })
    };
    let (mut verified_before_kill, mut previous, mut fetched_total, mut lost) = (0, None, 0, 0);
    for step in steps {
        let (start, had, fetched) = run_and_kill(&spec, step);
        println!("restart found {start} pieces; killed at {had} verified, {fetched} bytes fetched");
        assert!(
            start >= verified_before_kill,
            "{start} pieces found after a kill at {verified_before_kill} verified"
        );
        assert!(had < count, "killed before the end");
        lost += in_flight(previous, start);
        (verified_before_kill, previous) = (had, Some((start, fetched)));
        fetched_total += fetched;
    }
    let (start, fetched) = finish(&payload, &seed, &download, verified_before_kill).await;
    lost += in_flight(previous, start);
    fetched_total += fetched;
    let size = payload.metainfo.total_length();
    println!(
        "fetched {fetched_total} bytes over six runs for a {size}-byte torrent; \
         {lost} were in flight at the five kills"
    );
    // The sum balances: every byte fetched was either kept or in flight at a kill (end-game
    // may duplicate a few blocks in the last run).
    assert!(
        fetched_total <= size + lost + 4 * 16 * 1024,
        "{fetched_total} > {size} + {lost}"
    );
    assert!(lost <= 5 * 1024 * 1024, "{lost} bytes lost over five kills");
    seed.shutdown().await.unwrap();
}
