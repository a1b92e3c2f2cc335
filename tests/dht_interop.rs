//! Our DHT node against real ones on loopback: a small DHT of libtorrent sessions on
//! 127.{1,2,…}.0.1 (libtorrent starts no DHT on an address it takes for a local network, so each
//! gets an explicit one), our engine on 127.200.0.1. With nothing but the info-hash we download
//! from a libtorrent seed found through the DHT; libtorrent and aria2 download from our seed
//! after finding it there.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use cratetorrent::prelude::*;
use cratetorrent_tests::clients::{Aria2, LibtorrentDht, free_port};
use cratetorrent_tests::{Payload, loopback_conf, params};

const TIMEOUT: Duration = Duration::from_secs(90);

/// Our engine on 127.200.0.1 (its own /24), with no tracker and only the DHT (bootstrapped
/// from `bootstrap`) to find peers.
fn spawn_dht_engine(dir: &Path, bootstrap: SocketAddr) -> (EngineHandle, Alerts) {
    let mut conf = loopback_conf(dir);
    conf.listen_addr = SocketAddr::from(([127, 200, 0, 1], 0));
    conf.tracker.enabled = false;
    conf.dht.enabled = true;
    conf.dht.bootstrap = vec![bootstrap.to_string()];
    engine::spawn(conf).unwrap()
}

fn magnet_of(payload: &Payload) -> String {
    format!("magnet:?xt=urn:btih:{}", payload.metainfo.info_hash())
}

/// Asks libtorrent's DHT for the torrent until our seed at `ours` is among the peers.
fn wait_announced(lt: &mut LibtorrentDht, payload: &Payload, ours: SocketAddr) {
    let hex = payload.metainfo.info_hash().to_hex();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let peers = lt.get_peers(&hex, Duration::from_secs(3));
        if peers.contains(&ours) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "libtorrent's DHT never gave our seed {ours}: {peers:?}"
        );
    }
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn a_magnet_with_only_the_info_hash_downloads_through_a_dht_of_libtorrent_nodes() {
    let payload = Payload::single_file(8 << 20, 256 * 1024, 18);
    let port = free_port();
    let dir = payload.dir.path().as_os_str();
    let seed_args = [OsStr::new("seed"), payload.torrent.as_os_str(), dir];
    let lt = LibtorrentDht::start(4, port, &seed_args);
    let out = tempfile::tempdir().unwrap();
    let (leech, mut alerts) = spawn_dht_engine(out.path(), lt.node(0));
    let started = Instant::now();
    let magnet = Magnet::parse(&magnet_of(&payload)).unwrap();
    let id = leech
        .create_torrent(TorrentParams::new(magnet, Mode::Download { seeds: vec![] }))
        .unwrap();
    let mut metadata_at = None;
    let mut first_byte_at = None;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let alert = tokio::time::timeout_at(deadline, alerts.next())
            .await
            .expect("the download did not finish in time")
            .expect("alerts end only at shutdown");
        match alert {
            Alert::MetadataReceived { id: of, .. } if of == id => {
                metadata_at = Some(started.elapsed());
            }
            Alert::TorrentStats(stats) if stats.id == id && stats.downloaded > 0 => {
                first_byte_at.get_or_insert(started.elapsed());
                assert!(stats.dht_nodes > 0, "stats report the DHT's nodes");
                assert!(stats.dht_peers > 0, "stats report the peers it gave");
            }
            Alert::TorrentComplete(of) if of == id => break,
            Alert::TorrentError { id: of, error } if of == id => panic!("{error}"),
            _ => {}
        }
    }
    println!(
        "DHT-only magnet, 8 MiB from a libtorrent seed: metadata after {:?}, payload seen by \
         {:?}, complete after {:?}",
        metadata_at.unwrap(),
        first_byte_at,
        started.elapsed()
    );
    leech.shutdown().await.unwrap();
    assert!(payload.same_in(out.path()), "our copy differs");
    drop(lt);
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn libtorrent_finds_our_seed_through_the_dht() {
    let payload = Payload::single_file(8 << 20, 256 * 1024, 19);
    let port = free_port();
    let (seed, _alerts) =
        spawn_dht_engine(payload.dir.path(), SocketAddr::from(([127, 1, 0, 1], port)));
    seed.create_torrent(params(&payload.metainfo, Mode::Seed))
        .unwrap();
    let ours = seed.listen_addr();
    let out = tempfile::tempdir().unwrap();
    let magnet = magnet_of(&payload);
    let ours_arg = ours.to_string();
    let args = [
        OsStr::new("leech"),
        OsStr::new(&magnet),
        out.path().as_os_str(),
        OsStr::new("bootstrap"),
        OsStr::new(&ours_arg),
    ];
    let mut lt = LibtorrentDht::start(3, port, &args);
    let (first, done) = lt.wait_leech(TIMEOUT);
    println!("libtorrent, DHT-only magnet from our seed: first byte {first} s, done {done} s");
    assert!(payload.same_in(out.path()), "libtorrent's copy differs");
    // Our announce is stored in libtorrent's DHT, under our address.
    wait_announced(&mut lt, &payload, ours);
    seed.shutdown().await.unwrap();
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn aria2_finds_our_seed_through_the_dht() {
    let payload = Payload::single_file(4 << 20, 256 * 1024, 20);
    let port = free_port();
    let mut lt = LibtorrentDht::start(3, port, &[]);
    let (seed, _alerts) = spawn_dht_engine(payload.dir.path(), lt.node(0));
    seed.create_torrent(params(&payload.metainfo, Mode::Seed))
        .unwrap();
    wait_announced(&mut lt, &payload, seed.listen_addr());
    let out = tempfile::tempdir().unwrap();
    let mut aria2 =
        Aria2::leech_magnet_by_dht(&magnet_of(&payload), out.path(), lt.node(1), free_port());
    aria2.wait_exit(TIMEOUT);
    assert!(payload.same_in(out.path()), "aria2's copy differs");
    seed.shutdown().await.unwrap();
}
