//! Peers from HTTP trackers: BEP 12 tiers past failing, garbage, slow and missing trackers, a
//! redirect, `peers6`, and the started / completed / stopped events; a torrent whose trackers
//! are all down keeps working with the peers it has; a torrent with thousands of tiers
//! announces to a bounded few.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use std::collections::HashSet;
use std::time::Duration;

use cratetorrent::prelude::*;
use cratetorrent_metainfo::TorrentBuilder;

mod common;
use common::test_tracker::{TestTracker, query_value};
use common::*;

const TIMEOUT: Duration = Duration::from_secs(60);

/// Rebuilds the payload's torrent with these tracker tiers.
fn with_tiers(payload: &Payload, tiers: Vec<Vec<String>>) -> Metainfo {
    let mut builder =
        TorrentBuilder::new(payload.dir.path().join(payload.metainfo.name())).piece_length(65536);
    for tier in tiers {
        builder = builder.tier(tier);
    }
    Metainfo::from_bytes(&builder.build().unwrap()).unwrap()
}

fn quick_trackers(conf: &mut Conf) {
    conf.tracker.request_timeout = Duration::from_secs(1);
    conf.tracker.connect_timeout = Duration::from_secs(1);
    conf.tracker.udp_timeout = Duration::from_millis(200);
    conf.tracker.udp_retries = 1;
}

#[tokio::test]
async fn tiers_skip_bad_trackers_and_find_the_seed_through_a_redirect_and_peers6() {
    let payload = payload("tracked.bin", &[("", 3 * 65536 + 77)], 65536);
    // The seed listens on IPv6 loopback; only the tracker tells the leech where.
    let mut seed_conf = conf(payload.dir.path());
    seed_conf.listen_addr = "[::1]:0".parse().unwrap();
    seed_conf.tracker.enabled = false;
    let (seed, _seed_alerts) = engine::spawn(seed_conf).unwrap();
    let tracker = TestTracker::start(vec![seed.listen_addr()]);
    let metainfo = with_tiers(
        &payload,
        vec![
            vec![
                tracker.url("garbage"),
                tracker.url("fail"),
                tracker.url("slow"),
                tracker.url("missing"),
                "wss://nowhere.invalid/announce".into(),
            ],
            vec![tracker.url("redirect")],
        ],
    );
    seed.create_torrent(params(&metainfo, Mode::Seed)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut leech_conf = conf(dir.path());
    quick_trackers(&mut leech_conf);
    let (leech, mut alerts) = engine::spawn(leech_conf).unwrap();
    let id = leech
        .create_torrent(params(&metainfo, Mode::Download { seeds: vec![] }))
        .unwrap();

    let mut errors = Vec::new();
    let mut replies = 0;
    let mut warned = false;
    let mut complete = false;
    // Collect until complete and every tracker of the first tier has failed once.
    wait_for(&mut alerts, TIMEOUT, |alert| {
        match alert {
            Alert::TrackerError { url, error, .. } => errors.push((url.clone(), error.clone())),
            Alert::TrackerReply { url, peers, .. } => {
                assert_eq!(url, &tracker.url("redirect"));
                assert_eq!(*peers, 1);
                replies += 1;
            }
            Alert::TrackerWarning { message, .. } => warned = message == "test only",
            Alert::TorrentComplete(done) => complete = *done == id,
            _ => {}
        }
        // Two replies: to `started`, and to `completed`.
        complete && errors.len() >= 5 && replies >= 2
    })
    .await;
    assert!(warned);
    let why = |route: &str| {
        errors
            .iter()
            .find(|(url, _)| url.contains(route))
            .map(|(_, e)| e.clone())
            .unwrap()
    };
    assert!(why("garbage").contains("not bencode"), "{errors:?}");
    assert!(why("fail").contains("unregistered torrent"), "{errors:?}");
    assert!(why("slow").contains("timed out"), "{errors:?}");
    assert!(why("missing").contains("404"), "{errors:?}");
    assert!(why("wss://").contains("unsupported"), "{errors:?}");

    leech.shutdown().await.unwrap();
    seed.shutdown().await.unwrap();
    assert_same_files(&metainfo, payload.dir.path(), dir.path());

    // The redirected tracker saw started, then completed once, then stopped, with the raw
    // info-hash percent-encoded and our real port.
    let events = tracker.events();
    assert_eq!(events.first().map(String::as_str), Some("started"));
    assert_eq!(events.last().map(String::as_str), Some("stopped"));
    assert_eq!(events.iter().filter(|e| *e == "completed").count(), 1);
    let announces = tracker.announces.lock().unwrap().clone();
    let encoded: String = metainfo
        .info_hash()
        .as_bytes()
        .iter()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(b) {
                (*b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let ports: HashSet<String> = announces
        .iter()
        .map(|q| query_value(q, "port").unwrap())
        .collect();
    assert_eq!(ports.len(), 1);
    for query in &announces {
        assert_eq!(query_value(query, "info_hash").unwrap(), encoded);
        assert_eq!(query_value(query, "compact").as_deref(), Some("1"));
    }
    let first_left = query_value(&announces[0], "left").unwrap();
    assert_eq!(first_left, metainfo.total_length().to_string());
    let last_left = query_value(announces.last().unwrap(), "left").unwrap();
    assert_eq!(last_left, "0");
}

#[tokio::test]
async fn with_every_tracker_down_a_torrent_keeps_its_given_peers() {
    let payload = payload("untracked.bin", &[("", 5 * 65536)], 65536);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let metainfo = with_tiers(
        &payload,
        vec![
            vec![format!("http://127.0.0.1:{closed_port}/announce")],
            vec![format!("udp://{}", silent.local_addr().unwrap())],
        ],
    );
    let mut seed_conf = conf(payload.dir.path());
    seed_conf.tracker.enabled = false;
    let (seed, _seed_alerts) = engine::spawn(seed_conf).unwrap();
    seed.create_torrent(params(&metainfo, Mode::Seed)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut leech_conf = conf(dir.path());
    quick_trackers(&mut leech_conf);
    let (leech, mut alerts) = engine::spawn(leech_conf).unwrap();
    let id = leech
        .create_torrent(params(
            &metainfo,
            Mode::Download {
                seeds: vec![seed.listen_addr()],
            },
        ))
        .unwrap();
    let mut failed = HashSet::new();
    let mut complete = false;
    wait_for(&mut alerts, TIMEOUT, |alert| {
        match alert {
            Alert::TrackerError { url, .. } => {
                failed.insert(url.clone());
            }
            Alert::TorrentComplete(done) => complete = *done == id,
            _ => {}
        }
        complete && failed.len() == 2
    })
    .await;
    leech.shutdown().await.unwrap();
    seed.shutdown().await.unwrap();
    assert_same_files(&metainfo, payload.dir.path(), dir.path());
}

#[tokio::test]
async fn lying_and_dead_trackers_back_off_instead_of_spinning() {
    let payload = payload("lied.bin", &[("", 5 * 65536)], 65536);
    let tracker = TestTracker::start(Vec::new());
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let metainfo = with_tiers(
        &payload,
        vec![
            vec![tracker.url("lie")],
            vec![tracker.url("garbage")],
            vec![tracker.url("slow")],
            vec![format!("http://127.0.0.1:{closed_port}/announce")],
        ],
    );
    let mut seed_conf = conf(payload.dir.path());
    seed_conf.tracker.enabled = false;
    let (seed, _seed_alerts) = engine::spawn(seed_conf).unwrap();
    seed.create_torrent(params(&metainfo, Mode::Seed)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut leech_conf = conf(dir.path());
    quick_trackers(&mut leech_conf);
    leech_conf.tracker.retry_interval = Duration::from_secs(1);
    let (leech, mut alerts) = engine::spawn(leech_conf).unwrap();
    // The lying tracker hands the leech its own address.
    tracker.lie_with(vec![leech.listen_addr()]);
    let id = leech
        .create_torrent(params(
            &metainfo,
            Mode::Download {
                seeds: vec![seed.listen_addr()],
            },
        ))
        .unwrap();
    let (mut complete, mut garbage_errors, mut lie_peers) = (false, 0, None);
    wait_for(&mut alerts, TIMEOUT, |alert| {
        match alert {
            Alert::TrackerError { url, .. } if url.contains("/garbage/") => garbage_errors += 1,
            Alert::TrackerReply { url, peers, .. } if url.contains("/lie/") => {
                lie_peers = Some(*peers);
            }
            Alert::TorrentComplete(done) => complete = *done == id,
            _ => {}
        }
        // Three failures of the garbage tracker take 1 + 2 s of back-off.
        complete && garbage_errors >= 3 && lie_peers.is_some()
    })
    .await;
    assert_eq!(
        lie_peers,
        Some(0),
        "our own address must not count as a peer"
    );
    let counters = leech.counters().await.unwrap();
    assert!(
        counters.connections <= 1,
        "connected to itself? {counters:?}"
    );
    // A busy loop would have sent hundreds by now.
    let (lie, garbage, slow) = (
        tracker.hits("lie"),
        tracker.hits("garbage"),
        tracker.hits("slow"),
    );
    println!("announces: lie {lie}, garbage {garbage}, slow {slow}");
    // `started`, then `completed`: its 30-minute interval allows no regular announce.
    assert_eq!(lie, 2, "the lying tracker was announced to {lie} times");
    assert!(
        (3..=5).contains(&garbage),
        "garbage tracker announced {garbage} times"
    );
    assert!(slow <= 4, "slow tracker announced {slow} times");
    leech.shutdown().await.unwrap();
    seed.shutdown().await.unwrap();
    assert_same_files(&metainfo, payload.dir.path(), dir.path());
}

#[tokio::test]
async fn thousands_of_tiers_announce_to_a_bounded_number_of_trackers() {
    let payload = payload("many_tiers.bin", &[("", 65536)], 65536);
    let tracker = TestTracker::start(Vec::new());
    // Every tier is a distinct URL of the same tracker, so each announce says which tier sent it.
    let tiers = (0..5000)
        .map(|i| vec![format!("{}?tier={i}", tracker.url("good"))])
        .collect();
    let metainfo = with_tiers(&payload, tiers);
    let dir = tempfile::tempdir().unwrap();
    let mut leech_conf = conf(dir.path());
    quick_trackers(&mut leech_conf);
    let cap = leech_conf.tracker.max_tiers;
    let (leech, mut alerts) = engine::spawn(leech_conf).unwrap();
    leech
        .create_torrent(params(&metainfo, Mode::Download { seeds: vec![] }))
        .unwrap();
    let mut replies = 0;
    wait_for(&mut alerts, TIMEOUT, |alert| {
        if matches!(alert, Alert::TrackerReply { .. }) {
            replies += 1;
        }
        replies >= cap
    })
    .await;
    // Shutting down lets any announce in flight land, then sends `stopped` to each started tier.
    leech.shutdown().await.unwrap();
    let announces = tracker.announces.lock().unwrap().clone();
    let tiers: HashSet<String> = announces
        .iter()
        .map(|q| query_value(q, "tier").unwrap())
        .collect();
    assert!(
        tiers.len() <= cap,
        "{} tiers announced, {} announces",
        tiers.len(),
        announces.len()
    );
    assert!(announces.len() <= 2 * cap, "{} announces", announces.len());
}
