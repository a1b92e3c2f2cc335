//! `shutdown()` in the middle of a download with 50 connected peers and writes in flight: it
//! finishes within a bound, keeps every verified piece, and leaves no thread behind. Alone in
//! its test binary, so the process's thread count is this test's.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use cratetorrent::prelude::*;
use cratetorrent_wire::{Extensions, HANDSHAKE_LEN, Handshake, Message, PeerId};

mod common;
use common::*;

const TIMEOUT: Duration = Duration::from_secs(60);
const SHUTDOWN_BOUND: Duration = Duration::from_secs(10);

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// A peer that handshakes, says it is interested, and then only listens.
fn idle_peer(addr: std::net::SocketAddr, info_hash: cratetorrent_metainfo::InfoHash) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut out = BytesMut::new();
    Handshake {
        extensions: Extensions::NONE,
        info_hash,
        peer_id: PeerId::generate(),
    }
    .encode(&mut out);
    Message::Interested.encode(&mut out);
    stream.write_all(&out).unwrap();
    let mut theirs = [0u8; HANDSHAKE_LEN];
    stream.read_exact(&mut theirs).unwrap();
    stream
}

#[test]
fn shutdown_with_50_peers_and_writes_in_flight() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let payload = payload("shutdown.bin", &[("", 32 << 20)], 256 * 1024);
    let mut seed_conf = conf(payload.dir.path());
    seed_conf.upload_rate_limit = 8 << 20;
    let baseline = threads();
    let (seed, _seed_alerts) = engine::spawn(seed_conf).unwrap();
    seed.create_torrent(params(&payload.metainfo, Mode::Seed))
        .unwrap();
    let (dir, leech, mut alerts, id) = leecher(&payload.metainfo, vec![seed.listen_addr()]);
    let info_hash = payload.metainfo.info_hash();
    runtime.block_on(wait_for(&mut alerts, TIMEOUT, |a| {
        matches!(a, Alert::TorrentStarted { .. })
    }));
    let peers: Vec<TcpStream> = (0..50)
        .map(|_| idle_peer(leech.listen_addr(), info_hash))
        .collect();
    let verified =
        runtime.block_on(async {
            wait_for(&mut alerts, TIMEOUT, |a| {
            matches!(a, Alert::TorrentStats(s) if s.pieces_had >= 16 && s.peers.len() >= 51)
        })
        .await;
            let counters = leech.counters().await.unwrap();
            assert!(counters.connections >= 51, "{counters:?}");
            let verified = leech.stats(id).await.unwrap().pieces_had;
            let started = Instant::now();
            tokio::time::timeout(SHUTDOWN_BOUND, leech.shutdown())
                .await
                .expect("shutdown took too long")
                .unwrap();
            println!("shutdown with 51 peers took {:?}", started.elapsed());
            verified
        });
    drop(peers);

    // Nothing written is lost: a restart finds at least every piece verified before.
    runtime.block_on(async {
        resume_and_finish(
            &payload.metainfo,
            dir.path(),
            seed.listen_addr(),
            verified,
            TIMEOUT,
        )
        .await;
        seed.shutdown().await.unwrap();
    });
    assert_same_files(&payload.metainfo, payload.dir.path(), dir.path());

    // Every engine thread (network, disk, hashers, io_uring workers) is gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    while threads() > baseline && Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert_eq!(threads(), baseline, "threads left behind");
}
