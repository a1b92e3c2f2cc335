//! Two of our engines find each other through a real tracker (opentracker), over HTTP and
//! over UDP, and transfer a torrent; aria2 finds our seed there from a magnet link. Every
//! download is compared byte for byte.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use cratetorrent::TrackerConf;
use cratetorrent::prelude::*;
use cratetorrent::tracker::{HttpTracker, UdpTracker};
use cratetorrent_metainfo::TorrentBuilder;
use cratetorrent_tests::clients::Aria2;
use cratetorrent_tests::opentracker::Opentracker;
use cratetorrent_tests::{loopback_conf, params, pseudo_random};

const TIMEOUT: Duration = Duration::from_secs(60);

/// Waits for an alert about `id` that `want` accepts, with a timeout.
async fn wait(alerts: &mut Alerts, mut want: impl FnMut(&Alert) -> bool) -> Alert {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, alerts.next()).await {
            Ok(Some(alert)) if want(&alert) => return alert,
            Ok(Some(Alert::TorrentError { error, .. })) => panic!("torrent error: {error}"),
            Ok(Some(_)) => {}
            Ok(None) => panic!("alert stream ended"),
            Err(_) => panic!("timed out"),
        }
    }
}

/// A payload, its torrent announcing to an opentracker that tracks it, and our engine seeding
/// it, registered with the tracker.
struct TrackedSeed {
    _source: tempfile::TempDir,
    payload: Vec<u8>,
    metainfo: Metainfo,
    _tracker: Opentracker,
    url: String,
    seed: EngineHandle,
}

const NAME: &str = "tracked.bin";

impl TrackedSeed {
    async fn start(url: impl Fn(&Opentracker) -> String) -> Self {
        let source = tempfile::tempdir().unwrap();
        let payload = pseudo_random(3 * 1024 * 1024 + 1234, 5);
        std::fs::write(source.path().join(NAME), &payload).unwrap();
        // The info-hash covers only the info dictionary, so a placeholder announce URL gives
        // the hash the tracker must whitelist before its real URL is known.
        let builder = TorrentBuilder::new(source.path().join(NAME)).piece_length(256 * 1024);
        let hash = Metainfo::from_bytes(&builder.build().unwrap())
            .unwrap()
            .info_hash();
        let tracker = Opentracker::start(&[hash.to_hex()]);
        let url = url(&tracker);
        let bytes = builder.tracker(url.clone()).build().unwrap();
        let metainfo = Metainfo::from_bytes(&bytes).unwrap();
        assert_eq!(metainfo.info_hash(), hash);
        let (seed, mut seed_alerts) = engine::spawn(loopback_conf(source.path())).unwrap();
        let seed_id = seed.create_torrent(params(&metainfo, Mode::Seed)).unwrap();
        // The seed is registered with the tracker before a leech asks it for peers.
        wait(
            &mut seed_alerts,
            |a| matches!(a, Alert::TrackerReply { id, .. } if *id == seed_id),
        )
        .await;
        Self {
            _source: source,
            payload,
            metainfo,
            _tracker: tracker,
            url,
            seed,
        }
    }

    /// A magnet link naming only the info-hash and the tracker (`tr`).
    fn magnet(&self) -> String {
        format!(
            "magnet:?xt=urn:btih:{}&tr={}",
            self.metainfo.info_hash(),
            self.url
        )
    }
}

/// A seed and a leech of ours meet through opentracker at `url`; the leech is given the
/// `.torrent`, or with `by_magnet` only a magnet link naming the tracker (`tr`).
async fn swarm_through(url: impl Fn(&Opentracker) -> String, by_magnet: bool) {
    let tracked = TrackedSeed::start(&url).await;
    let (hash, metainfo, payload) = (
        tracked.metainfo.info_hash(),
        &tracked.metainfo,
        &tracked.payload,
    );
    let dir = tempfile::tempdir().unwrap();
    let mut conf = loopback_conf(dir.path());
    if tracked.url.starts_with("udp") {
        // With a DHT node running, UDP announces go out on the engine's shared port and the
        // answers come back through its demultiplexer.
        conf.dht.enabled = true;
        conf.dht.bootstrap = Vec::new();
    }
    let (leech, mut alerts) = engine::spawn(conf).unwrap();
    let download = Mode::Download { seeds: vec![] };
    let id = if by_magnet {
        let magnet = Magnet::parse(&tracked.magnet()).unwrap();
        leech.create_torrent(TorrentParams::new(magnet, download))
    } else {
        leech.create_torrent(params(metainfo, download))
    }
    .unwrap();
    let reply = wait(
        &mut alerts,
        |a| matches!(a, Alert::TrackerReply { id: of, .. } if *of == id),
    )
    .await;
    let Alert::TrackerReply { peers, seeders, .. } = reply else {
        unreachable!()
    };
    assert_eq!(
        peers, 1,
        "the tracker gives the seed (and we leave ourselves out)"
    );
    assert_eq!(seeders, Some(1));
    wait(
        &mut alerts,
        |a| matches!(a, Alert::TorrentComplete(done) if *done == id),
    )
    .await;

    // Scrape (BEP 48 over HTTP, BEP 15 over UDP) sees the seed.
    let conf = TrackerConf::default();
    let seeders = if tracked.url.starts_with("udp") {
        let stats = UdpTracker::new(&conf)
            .scrape(&tracked.url, &[hash])
            .await
            .unwrap();
        stats[0].complete
    } else {
        HttpTracker::new(&conf)
            .unwrap()
            .scrape(&tracked.url, &hash)
            .await
            .unwrap()
            .complete
    };
    assert!(seeders >= 1, "scrape reports {seeders} seeders");
    leech.shutdown().await.unwrap();
    tracked.seed.shutdown().await.unwrap();
    assert!(std::fs::read(dir.path().join(NAME)).unwrap() == *payload);
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn aria2_fetches_a_magnet_from_our_seed_through_opentracker() {
    let tracked = TrackedSeed::start(Opentracker::http_url).await;
    let dir = tempfile::tempdir().unwrap();
    let mut aria2 = Aria2::leech_magnet(&tracked.magnet(), dir.path());
    aria2.wait_exit(TIMEOUT);
    assert!(std::fs::read(dir.path().join(NAME)).unwrap() == tracked.payload);
    tracked.seed.shutdown().await.unwrap();
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn two_engines_find_each_other_through_opentracker_over_http() {
    swarm_through(Opentracker::http_url, false).await;
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn a_magnet_link_finds_its_seed_through_opentracker() {
    swarm_through(Opentracker::http_url, true).await;
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn two_engines_find_each_other_through_opentracker_over_udp() {
    swarm_through(Opentracker::udp_url, false).await;
}
