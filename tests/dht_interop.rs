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

/// A flood of queries and junk at our engine's UDP port from one address: at most 50 answers
/// (then that address is ignored for 5 minutes), junk is dropped, and another address is still
/// answered at once.
#[tokio::test]
async fn a_query_flood_at_our_udp_port_is_throttled_and_junk_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut conf = loopback_conf(dir.path());
    conf.listen_addr = SocketAddr::from(([127, 200, 0, 2], 0));
    conf.tracker.enabled = false;
    conf.dht.enabled = true;
    conf.dht.bootstrap = Vec::new();
    let (engine, _alerts) = engine::spawn(conf).unwrap();
    let target = engine.listen_addr();
    let ping = |t: u16| {
        let mut q = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:".to_vec();
        q.extend_from_slice(&t.to_be_bytes());
        q.extend_from_slice(b"1:y1:qe");
        q
    };
    let flooder = std::net::UdpSocket::bind("127.0.0.9:0").unwrap();
    flooder
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    for t in 0..5_000u16 {
        flooder.send_to(&ping(t), target).unwrap();
        if t % 500 == 0 {
            // Junk of every kind in between: oversized, not bencode, bencode but not KRPC.
            flooder.send_to(&[b'd'; 3000], target).unwrap();
            flooder.send_to(b"d1:y1:ze", target).unwrap();
            flooder.send_to(&[0xff; 40], target).unwrap();
            // Pace the flood so that the kernel's receive buffer does not drop it for us.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let mut answers = 0;
    let mut buf = [0u8; 2048];
    while let Ok((len, _)) = flooder.recv_from(&mut buf) {
        // Answers end with `y` = `r` (the node's own ping to learn about us, `y` = `q`).
        if buf[..len].ends_with(b"1:y1:re") {
            answers += 1;
        }
    }
    assert!(
        answers > 0 && answers <= 50,
        "{answers} answers to the flood"
    );
    let other = std::net::UdpSocket::bind("127.0.0.10:0").unwrap();
    other
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    other.send_to(&ping(1), target).unwrap();
    let (len, _) = other
        .recv_from(&mut buf)
        .expect("another address is answered");
    assert!(buf[..len].starts_with(b"d"), "a KRPC answer");
    engine.shutdown().await.unwrap();
}

/// Waits until the engine's DHT node knows `at_least` nodes (read from a torrent's stats).
async fn wait_dht_nodes(engine: &EngineHandle, id: TorrentId, at_least: usize) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let known = engine.stats(id).await.map_or(0, |s| s.dht_nodes);
        if known >= at_least {
            return;
        }
        assert!(Instant::now() < deadline, "the DHT knows {known} nodes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn the_routing_table_is_saved_at_shutdown_and_a_restart_needs_no_router() {
    let payload = Payload::single_file(1 << 20, 256 * 1024, 22);
    let lt = LibtorrentDht::start(4, free_port(), &[]);
    let (engine, _alerts) = spawn_dht_engine(payload.dir.path(), lt.node(0));
    let id = engine
        .create_torrent(params(&payload.metainfo, Mode::Seed))
        .unwrap();
    wait_dht_nodes(&engine, id, 4).await;
    engine.shutdown().await.unwrap();
    let saved = std::fs::read(payload.dir.path().join(".cratetorrent/dht.dat")).unwrap();
    let state = cratetorrent::cratetorrent_dht::SavedState::decode(&saved).unwrap();
    assert!(state.nodes.len() >= 4, "saved {:?}", state.nodes);

    // No router this time: the saved nodes are enough.
    let mut conf = loopback_conf(payload.dir.path());
    conf.listen_addr = SocketAddr::from(([127, 200, 0, 1], 0));
    conf.tracker.enabled = false;
    conf.dht.enabled = true;
    conf.dht.bootstrap = Vec::new();
    let (engine, _alerts) = engine::spawn(conf).unwrap();
    let id = engine
        .create_torrent(params(&payload.metainfo, Mode::Seed))
        .unwrap();
    wait_dht_nodes(&engine, id, 4).await;
    engine.shutdown().await.unwrap();
    drop(lt);
}
