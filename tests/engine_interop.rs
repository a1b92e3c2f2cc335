//! Our engine against real clients on loopback, both directions each: libtorrent,
//! Transmission and aria2 (and an rtorrent seed, by magnet link), then all of them in one
//! swarm. Every download is compared byte for byte with its source.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cratetorrent::prelude::*;
use cratetorrent_metainfo::{MetaVersion, TorrentBuilder};
use cratetorrent_tests::clients::{Aria2, LibtorrentLeecher, Rtorrent, Transmission};
use cratetorrent_tests::{
    LibtorrentSeeder, libtorrent_create_hybrid, libtorrent_create_v2, loopback_conf, params,
    pseudo_random, write_tree,
};
use tempfile::TempDir;

const TIMEOUT: Duration = Duration::from_secs(120);

/// A payload under `dir/name` with its `.torrent` next to it.
struct Source {
    dir: TempDir,
    torrent: PathBuf,
    metainfo: Metainfo,
}

fn single_file(size: usize) -> Source {
    let dir = tempfile::tempdir().unwrap();
    let name = "payload.bin".to_string();
    std::fs::write(dir.path().join(&name), pseudo_random(size, 11)).unwrap();
    finish_source(dir, name, 256 * 1024)
}

fn tree() -> Source {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), "tree");
    finish_source(dir, "tree".into(), 16 * 1024)
}

/// The same files as `source`, described by a v2-only torrent from libtorrent's creator.
fn v2_only(source: Source, piece_length: u32) -> Source {
    let torrent = source.dir.path().join("v2-only.torrent");
    let name = source.metainfo.name().to_string();
    libtorrent_create_v2(&source.dir.path().join(name), &torrent, piece_length);
    let metainfo = Metainfo::from_bytes(&std::fs::read(&torrent).unwrap()).unwrap();
    assert_eq!(metainfo.meta_version(), MetaVersion::V2);
    Source {
        dir: source.dir,
        torrent,
        metainfo,
    }
}

/// v2-only sources: one file of an odd size (its last piece padded), and the tree.
fn v2_sources() -> [Source; 2] {
    let single = {
        let dir = tempfile::tempdir().unwrap();
        let name = "v2.bin".to_string();
        std::fs::write(dir.path().join(&name), pseudo_random((5 << 20) + 1234, 13)).unwrap();
        finish_source(dir, name, 256 * 1024)
    };
    [v2_only(single, 256 * 1024), v2_only(tree(), 16 * 1024)]
}

fn finish_source(dir: TempDir, name: String, piece_length: u32) -> Source {
    finish_source_announcing(dir, name, piece_length, None)
}

/// As [`finish_source`], the torrent naming `tracker`.
fn finish_source_announcing(
    dir: TempDir,
    name: String,
    piece_length: u32,
    tracker: Option<&str>,
) -> Source {
    let mut builder = TorrentBuilder::new(dir.path().join(&name)).piece_length(piece_length);
    if let Some(url) = tracker {
        builder = builder.tracker(url);
    }
    let bytes = builder.build().unwrap();
    let torrent = dir.path().join(format!("{name}.torrent"));
    std::fs::write(&torrent, &bytes).unwrap();
    let metainfo = Metainfo::from_bytes(&bytes).unwrap();
    Source {
        dir,
        torrent,
        metainfo,
    }
}

/// Byte-for-byte comparison of every file of the torrent.
fn assert_same(source: &Source, got: &Path) {
    // Pad files (BEP 47) are nobody's data: not on disk on either side.
    for file in source.metainfo.files().iter().filter(|f| !f.is_padding()) {
        let want = std::fs::read(source.dir.path().join(file.path())).unwrap();
        if want.is_empty() && !got.join(file.path()).exists() {
            // Transmission does not create empty files.
            continue;
        }
        let have = std::fs::read(got.join(file.path()))
            .unwrap_or_else(|e| panic!("{}: {e}", file.path().display()));
        assert!(want == have, "{} differs", file.path().display());
    }
}

/// Downloads `source` with our engine from `peers`, and checks the result.
async fn we_download(source: &Source, peers: Vec<SocketAddr>) {
    let dir = tempfile::tempdir().unwrap();
    let (engine, mut alerts) = engine::spawn(loopback_conf(dir.path())).unwrap();
    let id = engine
        .create_torrent(params(&source.metainfo, Mode::Download { seeds: peers }))
        .unwrap();
    wait_complete(&mut alerts, id).await;
    engine.shutdown().await.unwrap();
    assert_same(source, dir.path());
}

/// Fetches `source` with our engine given only a magnet link naming `peer` (`x.pe`), and
/// checks the result.
async fn we_fetch_by_magnet(source: &Source, peer: SocketAddr) {
    let magnet = format!(
        "magnet:?xt=urn:btih:{}&x.pe={peer}",
        source.metainfo.info_hash()
    );
    let dir = tempfile::tempdir().unwrap();
    let (engine, mut alerts) = engine::spawn(loopback_conf(dir.path())).unwrap();
    let id = engine
        .create_torrent(TorrentParams::new(
            Magnet::parse(&magnet).unwrap(),
            Mode::Download { seeds: Vec::new() },
        ))
        .unwrap();
    wait_complete(&mut alerts, id).await;
    engine.shutdown().await.unwrap();
    assert_same(source, dir.path());
}

async fn wait_complete(alerts: &mut Alerts, id: TorrentId) {
    cratetorrent_tests::wait_complete(alerts, id, TIMEOUT).await;
}

/// Our engine seeding `source`, dialling `peers`.
fn we_seed(source: &Source, peers: Vec<SocketAddr>) -> EngineHandle {
    let (engine, alerts) = engine::spawn(loopback_conf(source.dir.path())).unwrap();
    // Alerts are not read: the engine must not care.
    drop(alerts);
    let id = engine
        .create_torrent(params(&source.metainfo, Mode::Seed))
        .unwrap();
    if !peers.is_empty() {
        engine.add_peers(id, peers).unwrap();
    }
    engine
}

/// A libtorrent leecher downloads `source` from our engine seeding it; checks the result.
async fn libtorrent_downloads_from_us(source: &Source) {
    let seed = we_seed(source, Vec::new());
    let dir = tempfile::tempdir().unwrap();
    let leecher = LibtorrentLeecher::start(&source.torrent, dir.path(), &[seed.listen_addr()]);
    leecher.wait_done(TIMEOUT);
    seed.shutdown().await.unwrap();
    assert_same(source, dir.path());
}

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn libtorrent_seeds_a_v2_only_torrent_we_download() {
    for source in v2_sources() {
        let seeder = LibtorrentSeeder::start(&source.torrent, source.dir.path());
        we_download(&source, vec![localhost(seeder.port)]).await;
    }
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn we_seed_a_v2_only_torrent_libtorrent_downloads() {
    for source in v2_sources() {
        libtorrent_downloads_from_us(&source).await;
    }
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn libtorrent_seeds_we_download() {
    for source in [single_file(16 << 20), tree()] {
        let seeder = LibtorrentSeeder::start(&source.torrent, source.dir.path());
        we_download(&source, vec![localhost(seeder.port)]).await;
    }
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn we_seed_libtorrent_downloads() {
    for source in [single_file(16 << 20), tree()] {
        libtorrent_downloads_from_us(&source).await;
    }
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn libtorrent_fetches_metadata_and_data_from_our_seed_by_magnet() {
    // 24 MiB in 16 KiB pieces: 30 KiB of info dictionary, two metadata pieces.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big.bin"), pseudo_random(24 << 20, 5)).unwrap();
    for source in [finish_source(dir, "big.bin".into(), 16 * 1024), tree()] {
        let xt = format!("urn:btih:{}", source.metainfo.info_hash());
        libtorrent_fetches_by_magnet(&source, &xt).await;
    }
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn libtorrent_fetches_a_v2_only_torrent_from_our_seed_by_magnet() {
    // libtorrent gets the info dictionary by BEP 9, then each file's piece layer from our hash
    // replies (proved against the file's root), then the data.
    for source in v2_sources() {
        let v2 = source.metainfo.info_hashes().v2.unwrap();
        libtorrent_fetches_by_magnet(&source, &format!("urn:btmh:1220{}", v2.to_hex())).await;
    }
}

/// A libtorrent leecher given only a magnet link (`xt`, and our seed as `x.pe`) fetches
/// `source` from our engine seeding it; checks the result.
async fn libtorrent_fetches_by_magnet(source: &Source, xt: &str) {
    let seed = we_seed(source, Vec::new());
    let leech_dir = tempfile::tempdir().unwrap();
    // The magnet names no tracker: the seed is given as a peer (`x.pe`) and dialled too.
    let magnet = format!("magnet:?xt={xt}&x.pe={}", seed.listen_addr());
    let leecher = LibtorrentLeecher::start(&magnet, leech_dir.path(), &[seed.listen_addr()]);
    leecher.wait_done(TIMEOUT);
    seed.shutdown().await.unwrap();
    assert_same(source, leech_dir.path());
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn we_fetch_metadata_and_data_from_libtorrent_by_magnet() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big.bin"), pseudo_random(24 << 20, 6)).unwrap();
    for source in [finish_source(dir, "big.bin".into(), 16 * 1024), tree()] {
        let seeder = LibtorrentSeeder::start(&source.torrent, source.dir.path());
        we_fetch_by_magnet(&source, localhost(seeder.port)).await;
    }
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn we_fetch_a_libtorrent_hybrid_torrent_with_pad_files_by_magnet() {
    // libtorrent's default creator: v1 and v2 in one info dictionary, pad files between
    // files. We join with the v1 (SHA-1) hash, as a v1 peer.
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), "tree");
    let torrent = dir.path().join("tree.torrent");
    libtorrent_create_hybrid(&dir.path().join("tree"), &torrent, 16 * 1024);
    let metainfo = Metainfo::from_bytes(&std::fs::read(&torrent).unwrap()).unwrap();
    assert!(metainfo.is_hybrid());
    assert!(metainfo.files().iter().any(|f| f.is_padding()), "pad files");
    let source = Source {
        dir,
        torrent,
        metainfo,
    };
    let seeder = LibtorrentSeeder::start(&source.torrent, source.dir.path());
    we_fetch_by_magnet(&source, localhost(seeder.port)).await;
    // (`assert_same` skips pad files; our storage never writes them.)
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn we_fetch_metadata_and_data_from_rtorrent_by_magnet() {
    // rtorrent loads no torrent without a tracker; this one answers nothing, and is outside
    // the info dictionary (the magnet link names only the seed).
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("payload.bin"), pseudo_random(6 << 20, 17)).unwrap();
    let tracker = Some("http://127.0.0.1:1/announce");
    let source = finish_source_announcing(dir, "payload.bin".into(), 256 * 1024, tracker);
    let rtorrent = Rtorrent::seed(&source.torrent, source.dir.path());
    we_fetch_by_magnet(&source, rtorrent.addr).await;
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn transmission_seeds_we_download() {
    let source = single_file(8 << 20);
    let mut transmission = Transmission::start();
    transmission.add(&source.torrent, source.dir.path());
    transmission.wait_seeding(TIMEOUT);
    we_download(&source, vec![transmission.addr()]).await;
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn we_seed_transmission_downloads() {
    let source = tree();
    let mut transmission = Transmission::start();
    let dir = tempfile::tempdir().unwrap();
    transmission.add(&source.torrent, dir.path());
    // Transmission ignores loopback peers from trackers and cannot be told peers: we dial it.
    let seed = we_seed(&source, vec![transmission.addr()]);
    transmission.wait_seeding(TIMEOUT);
    seed.shutdown().await.unwrap();
    assert_same(&source, dir.path());
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn aria2_seeds_we_download() {
    let source = tree();
    let aria2 = Aria2::seed(&source.torrent, source.dir.path());
    we_download(&source, vec![aria2.addr()]).await;
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn we_fetch_metadata_and_data_from_aria2_by_magnet() {
    let source = tree();
    let aria2 = Aria2::seed(&source.torrent, source.dir.path());
    we_fetch_by_magnet(&source, aria2.addr()).await;
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn we_seed_aria2_downloads() {
    let source = single_file(16 << 20);
    let dir = tempfile::tempdir().unwrap();
    let mut aria2 = Aria2::leech(&source.torrent, dir.path());
    let seed = we_seed(&source, vec![aria2.addr()]);
    aria2.wait_exit(TIMEOUT);
    seed.shutdown().await.unwrap();
    assert_same(&source, dir.path());
}

/// libtorrent seeds; two of our engines download from it and from each other, and pass the
/// data on to Transmission and aria2 (which only accept connections, so ours dial them).
#[tokio::test]
#[ignore = "needs reference peers"]
async fn mixed_swarm() {
    let source = single_file(8 << 20);
    let seeder = LibtorrentSeeder::start(&source.torrent, source.dir.path());
    let mut transmission = Transmission::start();
    let transmission_dir = tempfile::tempdir().unwrap();
    transmission.add(&source.torrent, transmission_dir.path());
    let aria2_dir = tempfile::tempdir().unwrap();
    let mut aria2 = Aria2::leech(&source.torrent, aria2_dir.path());

    let mut ours: Vec<(TempDir, EngineHandle, Alerts)> = (0..2)
        .map(|_| {
            let dir = tempfile::tempdir().unwrap();
            let (engine, alerts) = engine::spawn(loopback_conf(dir.path())).unwrap();
            (dir, engine, alerts)
        })
        .collect();
    let first = ours[0].1.listen_addr();
    let mut ids = Vec::new();
    for (i, (_, engine, _)) in ours.iter().enumerate() {
        let mut peers = vec![localhost(seeder.port)];
        if i == 1 {
            peers.push(first);
        }
        peers.push(if i == 0 {
            transmission.addr()
        } else {
            aria2.addr()
        });
        ids.push(
            engine
                .create_torrent(params(&source.metainfo, Mode::Download { seeds: peers }))
                .unwrap(),
        );
    }
    for ((_, _, alerts), id) in ours.iter_mut().zip(&ids) {
        wait_complete(alerts, *id).await;
    }
    aria2.wait_exit(TIMEOUT);
    transmission.wait_seeding(TIMEOUT);
    for (dir, engine, _) in &ours {
        engine.shutdown().await.unwrap();
        assert_same(&source, dir.path());
    }
    assert_same(&source, transmission_dir.path());
    assert_same(&source, aria2_dir.path());
}
