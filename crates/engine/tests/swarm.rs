//! Our engines on loopback: seed to leech, several leeches sharing, multi-file layouts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use std::time::Duration;

use cratetorrent::IoBackend;
use cratetorrent::prelude::*;

mod common;
use common::*;

const TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn seed_to_leech_single_file() {
    let payload = payload("single.bin", &[("", 8 * 1024 * 1024 + 12_345)], 256 * 1024);
    let (seed, _seed_alerts, _) = seeder(&payload);
    let (dir, leech, mut alerts, id) = leecher(&payload.metainfo, vec![seed.listen_addr()]);
    wait_complete(&mut alerts, id, TIMEOUT).await;
    let stats = leech.stats(id).await.unwrap();
    assert_eq!(stats.pieces_had, stats.piece_count);
    assert_eq!(stats.bytes_left, 0);
    assert!(stats.downloaded >= payload.metainfo.total_length());
    leech.shutdown().await.unwrap();
    seed.shutdown().await.unwrap();
    assert_same_files(&payload.metainfo, payload.dir.path(), dir.path());
}

#[tokio::test]
async fn engines_forced_onto_epoll_trade_like_io_uring_ones() {
    let payload = payload("epoll.bin", &[("", 8 * 1024 * 1024 + 777)], 256 * 1024);
    let epoll = |dir: &std::path::Path| {
        let mut conf = conf(dir);
        conf.io_backend = IoBackend::Epoll;
        engine::spawn(conf).unwrap()
    };
    let (seed, _seed_alerts) = epoll(payload.dir.path());
    seed.create_torrent(params(&payload.metainfo, Mode::Seed))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (leech, mut alerts) = epoll(dir.path());
    let id = leech
        .create_torrent(params(
            &payload.metainfo,
            Mode::Download {
                seeds: vec![seed.listen_addr()],
            },
        ))
        .unwrap();
    wait_complete(&mut alerts, id, TIMEOUT).await;
    leech.shutdown().await.unwrap();
    seed.shutdown().await.unwrap();
    assert_same_files(&payload.metainfo, payload.dir.path(), dir.path());
}

#[tokio::test]
async fn multi_file_with_nested_dirs_an_empty_file_and_a_one_byte_last_piece() {
    let piece = 64 * 1024;
    let files = [
        ("a/b/deep.bin", 100_000),
        ("empty.txt", 0),
        ("a/mid.bin", 3 * piece - 100_000),
        ("z/last.bin", 2 * piece + 1),
    ];
    let payload = payload("tree", &files, piece as u32);
    assert_eq!(payload.metainfo.total_length() % piece as u64, 1);
    let (seed, _seed_alerts, _) = seeder(&payload);
    let (dir, leech, mut alerts, id) = leecher(&payload.metainfo, vec![seed.listen_addr()]);
    wait_complete(&mut alerts, id, TIMEOUT).await;
    leech.shutdown().await.unwrap();
    seed.shutdown().await.unwrap();
    assert_same_files(&payload.metainfo, payload.dir.path(), dir.path());
    assert_eq!(
        std::fs::metadata(dir.path().join("tree/empty.txt"))
            .unwrap()
            .len(),
        0
    );
}

#[tokio::test]
async fn leeches_share_pieces_with_each_other() {
    let payload = payload("shared.bin", &[("", 6 * 1024 * 1024)], 64 * 1024);
    // A slow seed: the leeches finish sooner by trading among themselves.
    let (seed, _seed_alerts) = {
        let mut conf = conf(payload.dir.path());
        conf.upload_rate_limit = 2 * 1024 * 1024;
        engine::spawn(conf).unwrap()
    };
    let seed_id = seed
        .create_torrent(params(&payload.metainfo, Mode::Seed))
        .unwrap();
    let mut leeches = Vec::new();
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let (engine, alerts) = engine::spawn(conf(dir.path())).unwrap();
        leeches.push((dir, engine, alerts));
    }
    let addrs: Vec<_> = leeches.iter().map(|(_, e, _)| e.listen_addr()).collect();
    let mut ids = Vec::new();
    for (i, (_, engine, _)) in leeches.iter().enumerate() {
        let mut peers = vec![seed.listen_addr()];
        peers.extend(addrs.iter().take(i).copied());
        let id = engine
            .create_torrent(params(&payload.metainfo, Mode::Download { seeds: peers }))
            .unwrap();
        ids.push(id);
    }
    for ((_, _, alerts), id) in leeches.iter_mut().zip(&ids) {
        wait_complete(alerts, *id, Duration::from_secs(90)).await;
    }
    let mut uploaded_by_leeches = 0;
    for ((dir, engine, _), id) in leeches.iter().zip(&ids) {
        let stats = engine.stats(*id).await.unwrap();
        uploaded_by_leeches += stats.uploaded;
        assert_same_files(&payload.metainfo, payload.dir.path(), dir.path());
    }
    let seed_stats = seed.stats(seed_id).await.unwrap();
    assert!(
        uploaded_by_leeches > 1024 * 1024,
        "leeches uploaded only {uploaded_by_leeches} bytes to each other (seed sent {})",
        seed_stats.uploaded
    );
    for (_, engine, _) in &leeches {
        engine.shutdown().await.unwrap();
    }
    seed.shutdown().await.unwrap();
}

#[tokio::test]
async fn selective_download_writes_only_the_chosen_file() {
    let piece = 64 * 1024;
    // In torrent order (sorted by path): a-first, b-chosen, c-last.
    let files = [
        ("a-first.bin", 300_000),
        ("b-chosen.bin", 500_000),
        ("c-last.bin", 300_000),
    ];
    let payload = payload("selective", &files, piece as u32);
    let (seed, _seed_alerts, _) = seeder(&payload);
    let dir = tempfile::tempdir().unwrap();
    let (leech, mut alerts) = engine::spawn(conf(dir.path())).unwrap();
    let id = leech
        .create_torrent(params(
            &payload.metainfo,
            Mode::Download { seeds: Vec::new() },
        ))
        .unwrap();
    // The builder sorts files by path; find where ours went.
    let priorities = payload
        .metainfo
        .files()
        .iter()
        .map(|f| {
            if f.path().ends_with("b-chosen.bin") {
                4
            } else {
                0
            }
        })
        .collect();
    leech.set_file_priorities(id, priorities).unwrap();
    leech.add_peers(id, vec![seed.listen_addr()]).unwrap();
    wait_complete(&mut alerts, id, TIMEOUT).await;
    let stats = leech.stats(id).await.unwrap();
    leech.shutdown().await.unwrap();
    seed.shutdown().await.unwrap();

    let chosen = std::fs::read(dir.path().join("selective/b-chosen.bin")).unwrap();
    let want = std::fs::read(payload.dir.path().join("selective/b-chosen.bin")).unwrap();
    assert!(chosen == want);
    // Pieces 4..=12 overlap the chosen file; nothing else is fetched.
    let overlapping = (300_000 / piece..=(800_000 - 1) / piece).count() as u64;
    assert_eq!(stats.pieces_had as u64, overlapping);
    assert!(
        stats.downloaded <= overlapping * piece as u64,
        "{}",
        stats.downloaded
    );
    let first = std::fs::read(dir.path().join("selective/a-first.bin")).unwrap_or_default();
    assert!(
        first.len() < 300_000 || first[..piece].iter().all(|&b| b == 0),
        "the skipped file's first piece was not downloaded"
    );
}
