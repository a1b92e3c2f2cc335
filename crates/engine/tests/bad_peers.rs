//! Peers that misbehave beside honest ones: the download still completes, correctly.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use cratetorrent::prelude::*;
use cratetorrent_wire::Bitfield;

mod common;
use common::fake_peer::{Behaviour, FakePeer};
use common::*;

const TIMEOUT: Duration = Duration::from_secs(90);

fn small_payload() -> Payload {
    payload("payload.bin", &[("", 4 * 1024 * 1024)], 64 * 1024)
}

#[tokio::test]
async fn corrupt_peer_is_banned_and_the_download_completes() {
    let payload = small_payload();
    let count = payload.metainfo.piece_count();
    let corrupt = FakePeer::start(
        &payload.metainfo,
        torrent_bytes(&payload),
        Bitfield::full(count),
        Behaviour::Corrupt,
    );
    // 4 MiB at 4 MiB/s: the honest seed cannot finish before the other peer has served pieces.
    let (seed, _seed_alerts, _) = seeder_limited(&payload, 4 << 20);
    // The corrupt peer is dialled first, so it gets pieces before the seed is even connected.
    let (dir, leech, mut alerts, id) =
        leecher(&payload.metainfo, vec![corrupt.addr, seed.listen_addr()]);
    let mut banned = Vec::new();
    wait_for(&mut alerts, TIMEOUT, |alert| {
        if let Alert::PeerBanned { addr, .. } = alert {
            banned.push(*addr);
        }
        matches!(alert, Alert::TorrentComplete(done) if *done == id)
    })
    .await;
    let stats = leech.stats(id).await.unwrap();
    leech.shutdown().await.unwrap();
    seed.shutdown().await.unwrap();
    assert_same_files(&payload.metainfo, payload.dir.path(), dir.path());
    assert!(
        corrupt.served.load(Ordering::Relaxed) > 0,
        "the corrupt peer was used"
    );
    assert!(stats.hash_failures >= 1);
    assert_eq!(
        banned,
        vec![corrupt.addr],
        "only the corrupt peer is banned"
    );
}

#[tokio::test]
async fn peer_hanging_up_mid_piece_does_not_stop_the_download() {
    let payload = small_payload();
    let count = payload.metainfo.piece_count();
    // Serves 2 blocks of a 4-block piece per connection, then hangs up.
    let flaky = FakePeer::start(
        &payload.metainfo,
        torrent_bytes(&payload),
        Bitfield::full(count),
        Behaviour::HangUpAfter(2),
    );
    // 4 MiB at 4 MiB/s: the honest seed cannot finish before the other peer has served pieces.
    let (seed, _seed_alerts, _) = seeder_limited(&payload, 4 << 20);
    let (dir, leech, mut alerts, id) =
        leecher(&payload.metainfo, vec![flaky.addr, seed.listen_addr()]);
    wait_complete(&mut alerts, id, TIMEOUT).await;
    leech.shutdown().await.unwrap();
    seed.shutdown().await.unwrap();
    assert_same_files(&payload.metainfo, payload.dir.path(), dir.path());
    assert!(
        flaky.served.load(Ordering::Relaxed) > 0,
        "the flaky peer was used"
    );
}

#[tokio::test]
async fn peers_with_half_the_pieces_each_are_asked_only_for_what_they_have() {
    let payload = small_payload();
    let count = payload.metainfo.piece_count();
    let mut even = Bitfield::new(count);
    let mut odd = Bitfield::new(count);
    for piece in 0..count {
        if piece % 2 == 0 {
            even.set(piece);
        } else {
            odd.set(piece);
        }
    }
    let data = torrent_bytes(&payload);
    let evens = FakePeer::start(&payload.metainfo, data.clone(), even, Behaviour::Honest);
    let odds = FakePeer::start(&payload.metainfo, data, odd, Behaviour::Honest);
    let (dir, leech, mut alerts, id) = leecher(&payload.metainfo, vec![evens.addr, odds.addr]);
    wait_complete(&mut alerts, id, TIMEOUT).await;
    leech.shutdown().await.unwrap();
    assert_same_files(&payload.metainfo, payload.dir.path(), dir.path());
    assert!(!evens.asked_for_missing.load(Ordering::Relaxed));
    assert!(!odds.asked_for_missing.load(Ordering::Relaxed));
    let half = u64::from(count / 2) * 4;
    assert_eq!(evens.served.load(Ordering::Relaxed), half);
    assert_eq!(odds.served.load(Ordering::Relaxed), half);
}
