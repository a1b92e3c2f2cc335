//! uTP against real clients on loopback: libtorrent with TCP off both ways (we download from
//! it, it downloads from us), libtorrent with both transports (ours dials uTP first) and
//! without uTP (ours falls back to TCP), Transmission accepting our uTP connection (with
//! encryption required), two of our engines with the default transports, and a peer without
//! uTP whose "port unreachable" sends our dial straight to TCP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use futures::StreamExt;

use cratetorrent::prelude::*;
use cratetorrent::{Encryption, Transport};
use cratetorrent_tests::clients::Transmission;
use cratetorrent_tests::transfers::{counter, download_from_libtorrent, seed_to_libtorrent};
use cratetorrent_tests::{Payload, loopback_conf, params, wait_complete};

const TIMEOUT: Duration = Duration::from_secs(60);
const PIECE: u32 = 256 * 1024;

/// libtorrent settings: uTP only, or both transports (the listen socket carries both).
fn libtorrent(tcp: bool, utp: bool) -> Vec<String> {
    let on = |yes: bool| u8::from(yes);
    vec![
        format!("enable_outgoing_tcp={}", on(tcp)),
        format!("enable_incoming_tcp={}", on(tcp)),
        format!("enable_outgoing_utp={}", on(utp)),
        format!("enable_incoming_utp={}", on(utp)),
    ]
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn utp_both_ways_with_a_libtorrent_that_has_tcp_off() {
    let counters = download_from_libtorrent(&libtorrent(false, true), 31, |c| {
        c.transport = Transport::Utp
    })
    .await;
    assert_eq!(counter(&counters, "peers_utp"), 1, "{counters}");
    // libtorrent dials us over uTP; our default transports accept it.
    let counters = seed_to_libtorrent(&libtorrent(false, true), 32, |c| {
        c.transport = Transport::Both
    })
    .await;
    assert_eq!(counter(&counters, "peers_utp"), 1, "{counters}");
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn both_transports_dial_utp_first_and_fall_back_to_tcp() {
    let counters = download_from_libtorrent(&libtorrent(true, true), 33, |c| {
        c.transport = Transport::Both
    })
    .await;
    assert_eq!(counter(&counters, "peers_utp"), 1, "{counters}");
    let counters = download_from_libtorrent(&libtorrent(true, false), 34, |c| {
        c.transport = Transport::Both
    })
    .await;
    assert_eq!(counter(&counters, "peers"), 1, "{counters}");
    assert_eq!(counter(&counters, "peers_utp"), 0, "{counters}");
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn transmission_takes_our_utp_connection_with_encryption_required() {
    let payload = Payload::single_file(16 * PIECE as usize, PIECE, 35);
    let mut transmission = Transmission::start_with(serde_json::json!({
        "utp-enabled": true,
        "encryption": 2,
    }));
    transmission.add(&payload.torrent, payload.dir.path());
    transmission.wait_seeding(TIMEOUT);
    let ours = tempfile::tempdir().unwrap();
    let mut conf = loopback_conf(ours.path());
    conf.transport = Transport::Utp;
    conf.encryption = Encryption::Require;
    let (engine, mut alerts) = engine::spawn(conf).unwrap();
    let id = engine
        .create_torrent(params(
            &payload.metainfo,
            Mode::Download {
                seeds: vec![transmission.addr()],
            },
        ))
        .unwrap();
    wait_complete(&mut alerts, id, TIMEOUT).await;
    assert!(payload.same_in(ours.path()));
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn two_engines_with_the_default_transports_connect_over_utp() {
    let payload = Payload::single_file(64 * PIECE as usize, PIECE, 36);
    let mut seed_conf = loopback_conf(payload.dir.path());
    seed_conf.transport = Transport::default();
    let (seed, _seed_alerts) = engine::spawn(seed_conf).unwrap();
    seed.create_torrent(params(&payload.metainfo, Mode::Seed))
        .unwrap();
    let ours = tempfile::tempdir().unwrap();
    let mut conf = loopback_conf(ours.path());
    conf.transport = Transport::default();
    let (leech, mut alerts) = engine::spawn(conf).unwrap();
    let id = leech
        .create_torrent(params(
            &payload.metainfo,
            Mode::Download {
                seeds: vec![seed.listen_addr()],
            },
        ))
        .unwrap();
    // Seen over uTP while connected, then complete and identical.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let mut over_utp = false;
    while !over_utp {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never connected over uTP"
        );
        if let Ok(stats) = leech.stats(id).await {
            over_utp = stats.peers.iter().any(|p| p.utp);
            if stats.state == TorrentState::Seeding {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_complete(&mut alerts, id, TIMEOUT).await;
    assert!(over_utp, "the peers connected over TCP");
    assert!(payload.same_in(ours.path()));
    leech.shutdown().await.unwrap();
    seed.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_peer_without_utp_is_dialled_over_tcp_without_waiting_out_the_utp_head_start() {
    // A TCP listener on a port no UDP socket has: the uTP SYN draws an ICMP "port unreachable".
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let payload = Payload::single_file(4 * PIECE as usize, PIECE, 37);
    let ours = tempfile::tempdir().unwrap();
    let mut conf = loopback_conf(ours.path());
    conf.transport = Transport::Both;
    let (engine, mut alerts) = engine::spawn(conf).unwrap();
    let id = engine
        .create_torrent(params(
            &payload.metainfo,
            Mode::Download {
                seeds: vec![listener.local_addr().unwrap()],
            },
        ))
        .unwrap();
    let started = loop {
        match tokio::time::timeout(TIMEOUT, alerts.next()).await {
            Ok(Some(Alert::TorrentStarted { id: started, .. })) if started == id => {
                break Instant::now();
            }
            Ok(Some(_)) => {}
            other => panic!("no TorrentStarted: {other:?}"),
        }
    };
    tokio::time::timeout(TIMEOUT, listener.accept())
        .await
        .expect("never dialled over TCP")
        .unwrap();
    // Without the ICMP error, TCP starts only once uTP has had its 1 s head start.
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_millis(900),
        "TCP came after {waited:?}"
    );
    engine.shutdown().await.unwrap();
}
