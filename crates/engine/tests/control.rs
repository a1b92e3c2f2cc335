//! The handle's controls on live torrents: pause and resume, removal with data, rate limits,
//! IPv6 listening.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use std::time::{Duration, Instant};

use cratetorrent::prelude::*;

mod common;
use common::*;

const TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn remove_with_delete_leaves_nothing_behind() {
    let payload = payload(
        "removed",
        &[("a/one.bin", 200_000), ("two.bin", 50_000)],
        32 * 1024,
    );
    let (seed, _seed_alerts, _) = seeder(&payload);
    let (dir, leech, mut alerts, id) = leecher(&payload.metainfo, vec![seed.listen_addr()]);
    wait_complete(&mut alerts, id, TIMEOUT).await;
    assert!(dir.path().join("removed/a/one.bin").exists());
    leech.remove(id, true).unwrap();
    wait_for(
        &mut alerts,
        TIMEOUT,
        |a| matches!(a, Alert::TorrentRemoved(r) if *r == id),
    )
    .await;
    assert!(matches!(
        leech.stats(id).await,
        Err(EngineError::UnknownTorrent(_))
    ));
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    leech.shutdown().await.unwrap();
    seed.shutdown().await.unwrap();
}

#[tokio::test]
async fn pause_disconnects_and_resume_finishes() {
    let payload = payload("paused.bin", &[("", 6 * 1024 * 1024)], 64 * 1024);
    let (seed, _seed_alerts) = {
        let mut conf = conf(payload.dir.path());
        conf.upload_rate_limit = 1024 * 1024;
        engine::spawn(conf).unwrap()
    };
    seed.create_torrent(params(&payload.metainfo, Mode::Seed))
        .unwrap();
    let (dir, leech, mut alerts, id) = leecher(&payload.metainfo, vec![seed.listen_addr()]);
    wait_for(
        &mut alerts,
        TIMEOUT,
        |a| matches!(a, Alert::TorrentStats(s) if s.pieces_had > 5),
    )
    .await;
    leech.pause(id).unwrap();
    let paused = wait_for(&mut alerts, TIMEOUT, |a| {
        matches!(a, Alert::TorrentStats(s) if s.state == TorrentState::Paused && s.peers.is_empty())
    })
    .await;
    let Alert::TorrentStats(paused) = paused else {
        unreachable!()
    };
    assert!(paused.pieces_had < paused.piece_count, "{paused:?}");
    leech.resume(id).unwrap();
    wait_complete(&mut alerts, id, TIMEOUT).await;
    leech.shutdown().await.unwrap();
    seed.shutdown().await.unwrap();
    assert_same_files(&payload.metainfo, payload.dir.path(), dir.path());
}

#[tokio::test]
async fn download_rate_limit_is_honoured() {
    let payload = payload("limited.bin", &[("", 3 * 1024 * 1024)], 64 * 1024);
    let (seed, _seed_alerts, _) = seeder(&payload);
    let dir = tempfile::tempdir().unwrap();
    let (leech, mut alerts) = engine::spawn(conf(dir.path())).unwrap();
    leech
        .set_rate_limits(
            None,
            RateLimits {
                download: 1024 * 1024,
                upload: 0,
            },
        )
        .unwrap();
    let start = Instant::now();
    let id = leech
        .create_torrent(params(
            &payload.metainfo,
            Mode::Download {
                seeds: vec![seed.listen_addr()],
            },
        ))
        .unwrap();
    wait_complete(&mut alerts, id, TIMEOUT).await;
    let elapsed = start.elapsed();
    leech.shutdown().await.unwrap();
    seed.shutdown().await.unwrap();
    // 3 MiB at 1 MiB/s, less the burst allowance.
    assert!(
        elapsed >= Duration::from_millis(2500),
        "took only {elapsed:?}"
    );
}

#[tokio::test]
async fn transfers_over_ipv6_loopback() {
    let payload = payload("six.bin", &[("", 1024 * 1024)], 64 * 1024);
    let mut seed_conf = conf(payload.dir.path());
    seed_conf.listen_addr = "[::1]:0".parse().unwrap();
    let (seed, _seed_alerts) = engine::spawn(seed_conf).unwrap();
    seed.create_torrent(params(&payload.metainfo, Mode::Seed))
        .unwrap();
    assert!(seed.listen_addr().is_ipv6());
    let (dir, leech, mut alerts, id) = leecher(&payload.metainfo, vec![seed.listen_addr()]);
    wait_complete(&mut alerts, id, TIMEOUT).await;
    let stats = leech.stats(id).await.unwrap();
    assert!(stats.downloaded >= payload.metainfo.total_length());
    leech.shutdown().await.unwrap();
    seed.shutdown().await.unwrap();
    assert_same_files(&payload.metainfo, payload.dir.path(), dir.path());
}

#[tokio::test]
async fn two_torrents_with_the_same_root_are_refused() {
    // Same name, different content: different info-hashes, one path on disk.
    let first = payload("shared", &[("a.bin", 100_000)], 32 * 1024);
    let second = payload("shared", &[("b.bin", 70_000)], 32 * 1024);
    assert_ne!(first.metainfo.info_hash(), second.metainfo.info_hash());
    let dir = tempfile::tempdir().unwrap();
    let (engine, mut alerts) = engine::spawn(conf(dir.path())).unwrap();
    let one = engine
        .create_torrent(params(&first.metainfo, Mode::Download { seeds: vec![] }))
        .unwrap();
    let two = engine
        .create_torrent(params(&second.metainfo, Mode::Download { seeds: vec![] }))
        .unwrap();
    let refused = wait_for(&mut alerts, TIMEOUT, |a| {
        matches!(a, Alert::TorrentError { id, .. } | Alert::TorrentStarted { id, .. } if *id == two)
    })
    .await;
    assert!(
        matches!(&refused, Alert::TorrentError { error: cratetorrent::TorrentError::SameRoot { root, other }, .. }
            if root == "shared" && *other == one),
        "{refused:?}"
    );
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_peer_waiting_on_our_upload_limit_is_not_dropped_as_stalled() {
    // 32 KiB/s and writes of 64 KiB: each write waits about 2 s in our own limiter, longer
    // than the 1 s stall timeout. Before, that wait counted as the peer taking nothing, and the
    // seed dropped the leecher again and again.
    let payload = payload("throttled.bin", &[("", 192 * 1024)], 64 * 1024);
    let mut seed_conf = conf(payload.dir.path());
    seed_conf.upload_rate_limit = 32 * 1024;
    seed_conf.torrent.send_timeout = Duration::from_secs(1);
    let (seed, _seed_alerts) = engine::spawn(seed_conf).unwrap();
    let seed_id = seed
        .create_torrent(params(&payload.metainfo, Mode::Seed))
        .unwrap();
    let (_dir, leech, mut alerts, id) = leecher(&payload.metainfo, vec![seed.listen_addr()]);
    let (mut connected, mut dropped) = (false, false);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match tokio::time::timeout(Duration::from_millis(50), alerts.next()).await {
            Ok(Some(Alert::TorrentComplete(done))) if done == id => break,
            Ok(Some(Alert::TorrentError { error, .. })) => panic!("{error}"),
            Ok(Some(_)) | Err(_) => {}
            Ok(None) => panic!("alerts ended"),
        }
        assert!(Instant::now() < deadline, "the download did not complete");
        if let Ok(stats) = seed.stats(seed_id).await {
            let peers = stats.peers.len();
            dropped |= connected && peers == 0;
            connected |= peers > 0;
        }
    }
    leech.shutdown().await.unwrap();
    seed.shutdown().await.unwrap();
    assert!(
        connected && !dropped,
        "the leecher was dropped mid-download"
    );
}

#[tokio::test]
async fn a_v2_only_torrent_seeds_and_downloads_between_two_engines() {
    use cratetorrent_metainfo::{MetaVersion, Metainfo, TorrentBuilder};
    let src = tempfile::tempdir().unwrap();
    let files = [
        ("a.bin", 100_003usize, 3u8),
        ("sub/b.bin", 7, 5),
        ("c.bin", 40_000, 9),
    ];
    for (path, len, byte) in files {
        let path = src.path().join("v2set").join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(byte)).collect();
        std::fs::write(path, data).unwrap();
    }
    let bytes = TorrentBuilder::new(src.path().join("v2set"))
        .meta_version(MetaVersion::V2)
        .piece_length(32 * 1024)
        .build()
        .unwrap();
    let metainfo = Metainfo::from_bytes(&bytes).unwrap();
    let (seed, _seed_alerts) = engine::spawn(conf(src.path())).unwrap();
    seed.create_torrent(params(&metainfo, Mode::Seed)).unwrap();
    let (dir, leech, mut alerts, id) = leecher(&metainfo, vec![seed.listen_addr()]);
    wait_complete(&mut alerts, id, TIMEOUT).await;
    for (path, _, _) in files {
        let want = std::fs::read(src.path().join("v2set").join(path)).unwrap();
        let got = std::fs::read(dir.path().join("v2set").join(path)).unwrap();
        assert!(want == got, "{path} differs");
    }
    leech.shutdown().await.unwrap();
    seed.shutdown().await.unwrap();
}
