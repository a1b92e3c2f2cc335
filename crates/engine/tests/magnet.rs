//! Torrents added by magnet link between our engines: the metadata comes from peers (BEP 9),
//! then the data, on the same connections.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use cratetorrent::prelude::*;

mod common;
use common::*;

const TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_magnet_link_fetches_the_metadata_from_its_peers_then_the_data() {
    // 24 MiB in 16 KiB pieces and two files: 30 KiB of info dictionary, two metadata pieces.
    let payload = payload(
        "magnet",
        &[("a.bin", 16 << 20), ("sub/b.bin", (8 << 20) + 77)],
        16 * 1024,
    );
    let (seed_a, _alerts_a, _) = seeder(&payload);
    let (seed_b, _alerts_b, _) = seeder(&payload);
    let magnet = format!(
        "magnet:?xt=urn:btih:{}&dn=shown%20until%20then&x.pe={}&x.pe={}",
        payload.metainfo.info_hash(),
        seed_a.listen_addr(),
        seed_b.listen_addr(),
    );
    let dir = tempfile::tempdir().unwrap();
    let (leech, mut alerts) = engine::spawn(conf(dir.path())).unwrap();
    let id = leech
        .create_torrent(TorrentParams::new(
            Magnet::parse(&magnet).unwrap(),
            Mode::Download { seeds: Vec::new() },
        ))
        .unwrap();
    let Alert::MetadataReceived { metainfo, .. } = wait_for(
        &mut alerts,
        TIMEOUT,
        |a| matches!(a, Alert::MetadataReceived { id: got, .. } if *got == id),
    )
    .await
    else {
        unreachable!()
    };
    assert_eq!(metainfo.name(), "magnet");
    assert_eq!(metainfo.info_hash(), payload.metainfo.info_hash());
    assert_eq!(metainfo.files(), payload.metainfo.files());
    let piece_count = metainfo.piece_count();
    let started = wait_for(&mut alerts, TIMEOUT, |a| {
        matches!(a, Alert::TorrentStarted { .. })
    })
    .await;
    assert!(matches!(
        started,
        Alert::TorrentStarted { pieces_had: 0, piece_count: n, .. } if n == piece_count
    ));
    wait_complete(&mut alerts, id, TIMEOUT).await;
    let stats = leech.stats(id).await.unwrap();
    assert_eq!(stats.state, TorrentState::Seeding);
    leech.shutdown().await.unwrap();
    seed_a.shutdown().await.unwrap();
    seed_b.shutdown().await.unwrap();
    assert_same_files(&payload.metainfo, payload.dir.path(), dir.path());
}

#[tokio::test]
async fn a_magnet_link_without_peers_waits_for_them_and_can_be_removed() {
    let payload = payload("lonely.bin", &[("", 100_000)], 16 * 1024);
    let dir = tempfile::tempdir().unwrap();
    let (leech, mut alerts) = engine::spawn(conf(dir.path())).unwrap();
    let magnet = format!("magnet:?xt=urn:btih:{}", payload.metainfo.info_hash());
    let id = leech
        .create_torrent(TorrentParams::new(
            Magnet::parse(&magnet).unwrap(),
            Mode::Download { seeds: Vec::new() },
        ))
        .unwrap();
    // Running once the download directory has been looked at for saved metadata.
    let stats = loop {
        if let Ok(stats) = leech.stats(id).await {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(stats.state, TorrentState::Metadata);
    assert_eq!(stats.piece_count, 0);
    // A peer given later serves it.
    let (seed, _seed_alerts, _) = seeder(&payload);
    leech.add_peers(id, vec![seed.listen_addr()]).unwrap();
    wait_complete(&mut alerts, id, TIMEOUT).await;
    leech.remove(id, true).unwrap();
    wait_for(&mut alerts, TIMEOUT, |a| {
        matches!(a, Alert::TorrentRemoved(_))
    })
    .await;
    assert!(!dir.path().join("lonely.bin").exists(), "its file deleted");
    leech.shutdown().await.unwrap();
    seed.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_restart_finds_the_metadata_it_fetched_and_needs_no_peer() {
    let payload = payload("again.bin", &[("", 300_000)], 16 * 1024);
    let (seed, _seed_alerts, _) = seeder(&payload);
    let magnet = format!(
        "magnet:?xt=urn:btih:{}&x.pe={}",
        payload.metainfo.info_hash(),
        seed.listen_addr()
    );
    let dir = tempfile::tempdir().unwrap();
    let download = Mode::Download { seeds: Vec::new() };
    let (leech, mut alerts) = engine::spawn(conf(dir.path())).unwrap();
    let id = leech
        .create_torrent(TorrentParams::new(
            Magnet::parse(&magnet).unwrap(),
            download.clone(),
        ))
        .unwrap();
    wait_complete(&mut alerts, id, TIMEOUT).await;
    leech.shutdown().await.unwrap();
    seed.shutdown().await.unwrap();
    // The seed is gone: the metadata can only come from the download directory.
    let (leech, mut alerts) = engine::spawn(conf(dir.path())).unwrap();
    let id = leech
        .create_torrent(TorrentParams::new(
            Magnet::parse(&magnet).unwrap(),
            download,
        ))
        .unwrap();
    let first = wait_for(&mut alerts, TIMEOUT, |a| {
        matches!(
            a,
            Alert::TorrentStarted { .. } | Alert::MetadataReceived { .. }
        )
    })
    .await;
    let Alert::TorrentStarted {
        pieces_had,
        piece_count,
        ..
    } = first
    else {
        panic!("fetched again: {first:?}");
    };
    assert_eq!((pieces_had, piece_count), (19, 19), "all verified on disk");
    wait_complete(&mut alerts, id, TIMEOUT).await;
    leech.shutdown().await.unwrap();
    assert_same_files(&payload.metainfo, payload.dir.path(), dir.path());
}
