//! BEP 14 local service discovery between two network namespaces joined by a veth pair (a
//! local network with multicast, which loopback lacks): with no peer given and no tracker, our
//! engines find each other, we find a libtorrent seed, and libtorrent finds our seed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use cratetorrent::prelude::*;
use cratetorrent_tests::clients::LibtorrentLsd;
use cratetorrent_tests::netns::NetnsPair;
use cratetorrent_tests::{Payload, params};

const TIMEOUT: Duration = Duration::from_secs(60);

/// Our engine inside namespace `ns`, accepting peers on every address there, with discovery
/// by LSD only.
fn engine_in(ns: &str, dir: &std::path::Path) -> (EngineHandle, Alerts) {
    let mut conf = Conf::new(dir);
    conf.listen_addr = SocketAddr::from(([0, 0, 0, 0], 0));
    conf.tracker.enabled = false;
    conf.lsd = true;
    NetnsPair::run_in(ns, move || engine::spawn(conf).unwrap())
}

async fn wait_complete(alerts: &mut Alerts, id: TorrentId) {
    cratetorrent_tests::wait_complete(alerts, id, TIMEOUT).await;
}

/// Downloads `payload` in namespace `ns` with no peer given.
async fn we_download_in(ns: &str, payload: &Payload) {
    let out = tempfile::tempdir().unwrap();
    let (leech, mut alerts) = engine_in(ns, out.path());
    let mode = Mode::Download { seeds: Vec::new() };
    let id = leech
        .create_torrent(params(&payload.metainfo, mode))
        .unwrap();
    wait_complete(&mut alerts, id).await;
    leech.shutdown().await.unwrap();
    assert!(payload.same_in(out.path()), "our copy differs");
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn two_of_our_engines_find_each_other_on_the_local_network() {
    let net = NetnsPair::new("lsd1");
    let payload = Payload::single_file(4 << 20, 256 * 1024, 14);
    let (seed, _alerts) = engine_in(&net.a, payload.dir.path());
    seed.create_torrent(params(&payload.metainfo, Mode::Seed))
        .unwrap();
    we_download_in(&net.b, &payload).await;
    seed.shutdown().await.unwrap();
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn libtorrent_and_our_engine_find_each_other_on_the_local_network() {
    let net = NetnsPair::new("lsd2");
    let payload = Payload::single_file(4 << 20, 256 * 1024, 15);
    // Its seed announces; we hear it.
    let lt_seed = LibtorrentLsd::start(
        &net.a,
        true,
        &payload.torrent,
        payload.dir.path(),
        net.ip_a.into(),
    );
    we_download_in(&net.b, &payload).await;
    drop(lt_seed);
    // Our seed announces; it hears us.
    let (seed, _alerts) = engine_in(&net.a, payload.dir.path());
    seed.create_torrent(params(&payload.metainfo, Mode::Seed))
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let lt_leech =
        LibtorrentLsd::start(&net.b, false, &payload.torrent, out.path(), net.ip_b.into());
    lt_leech.wait_done(TIMEOUT);
    assert!(payload.same_in(out.path()), "libtorrent's copy differs");
    seed.shutdown().await.unwrap();
}
