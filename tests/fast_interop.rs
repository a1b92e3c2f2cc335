//! The BEP 6 fast extension against libtorrent on loopback: have-all and have-none, allowed-fast
//! sets both ways and their pieces fetched while choked, and rejects when we choke, each checked
//! on what libtorrent counts and logs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cratetorrent::SeedChoking;
use cratetorrent::prelude::*;
use cratetorrent_tests::clients::LibtorrentFast;
use cratetorrent_tests::{Payload, loopback_conf, params};
use tempfile::TempDir;

const TIMEOUT: Duration = Duration::from_secs(60);
const PIECE: u32 = 256 * 1024;

/// `pieces` pieces of payload in a directory, with its `.torrent`.
fn source(pieces: u32) -> (TempDir, PathBuf, Metainfo) {
    let payload = Payload::single_file((pieces * PIECE) as usize, PIECE, 6);
    (payload.dir, payload.torrent, payload.metainfo)
}

fn counter(counters: &serde_json::Value, name: &str) -> u64 {
    counters[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no {name} in {counters}"))
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn a_libtorrent_seed_that_never_unchokes_us_still_gives_its_allowed_fast_pieces() {
    let (dir, torrent, metainfo) = source(40);
    let mut seed = LibtorrentFast::seed(
        &torrent,
        dir.path(),
        &[
            "unchoke_slots_limit=0",
            "allowed_fast_set_size=5",
            "ignore_limits_on_local_network=0",
            "optimistic_unchoke_interval=3600",
        ],
    );
    let ours = tempfile::tempdir().unwrap();
    let (engine, _alerts) = engine::spawn(loopback_conf(ours.path())).unwrap();
    let at = SocketAddr::from(([127, 0, 0, 1], seed.port));
    let id = engine
        .create_torrent(params(&metainfo, Mode::Download { seeds: vec![at] }))
        .unwrap();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let stats = loop {
        // Unknown until its storage is open.
        let stats = engine.stats(id).await.ok();
        if let Some(stats) = stats.as_ref().filter(|s| s.pieces_had >= 5) {
            break stats.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "had {:?} pieces",
            stats.map(|s| s.pieces_had)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let counters = seed.counters();
    assert_eq!(counter(&counters, "outgoing_unchoke"), 0, "{counters}");
    assert!(counter(&counters, "outgoing_have_all") >= 1, "{counters}");
    assert_eq!(counter(&counters, "outgoing_allowed_fast"), 5, "{counters}");
    // And ours the other way: a leecher with nothing says so and grants its set.
    assert_eq!(counter(&counters, "incoming_have_none"), 1, "{counters}");
    assert_eq!(counter(&counters, "incoming_allowed_fast"), 5, "{counters}");
    assert!(stats.peers.iter().all(|p| p.peer_choking));
    assert_eq!(stats.pieces_had, 5, "only the allowed pieces, while choked");
    engine.shutdown().await.unwrap();
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn our_seed_rejects_what_it_will_not_serve_when_it_chokes_and_libtorrent_completes() {
    let (dir, torrent, metainfo) = source(32);
    let mut conf = loopback_conf(dir.path());
    // One regular slot passed round every second, a slow upload and a small send buffer:
    // chokes come while libtorrent's requests are still queued here.
    conf.torrent.unchoke_slots = 1;
    conf.torrent.rechoke_interval = Duration::from_secs(1);
    conf.torrent.seed_choking = SeedChoking::RoundRobin;
    conf.torrent.seeding_piece_quota = 1;
    // 8 MiB at 1 MiB/s: each leecher alone would take 8 s, so all three overlap however
    // slowly they start.
    conf.torrent.upload_rate_limit = 1 << 20;
    conf.torrent.send_watermark = 64 * 1024;
    let (engine, _alerts) = engine::spawn(conf).unwrap();
    engine
        .create_torrent(params(&metainfo, Mode::Seed))
        .unwrap();
    let at = engine.listen_addr();
    let saves: Vec<TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut leechers: Vec<LibtorrentFast> = saves
        .iter()
        .map(|save| LibtorrentFast::leech(&torrent, save.path(), at, &[]))
        .collect();
    for leecher in &leechers {
        leecher.wait_done(TIMEOUT);
    }
    let counters: Vec<serde_json::Value> = leechers.iter_mut().map(|l| l.counters()).collect();
    for c in &counters {
        assert!(counter(c, "incoming_have_all") >= 1, "{c}");
    }
    let chokes: u64 = counters.iter().map(|c| counter(c, "incoming_choke")).sum();
    let rejects: u64 = counters.iter().map(|c| counter(c, "incoming_reject")).sum();
    assert!(chokes >= 1 && rejects >= 1, "{counters:?}");
    // Seeding means every piece passed its hash, not that libtorrent's disk thread has put
    // every block in the file yet: the copy may lag a moment behind DONE.
    let want = std::fs::read(dir.path().join("payload.bin")).unwrap();
    for save in &saves {
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            let got = std::fs::read(save.path().join("payload.bin")).unwrap();
            if got == want {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "libtorrent's copy differs"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    engine.shutdown().await.unwrap();
}
