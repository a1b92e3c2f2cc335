//! Message stream encryption on loopback: RC4 and obfuscated-plaintext transfers both ways
//! with a libtorrent that forces encryption, RC4 with an aria2 (both ways) and an rtorrent
//! that require it, our fall back to plain against a libtorrent that refuses it, and our
//! policy refusing the connections it must.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use cratetorrent::prelude::*;
use cratetorrent::{CryptoMethods, Encryption};
use cratetorrent_metainfo::{Metainfo, TorrentBuilder};
use cratetorrent_tests::clients::{Aria2, Rtorrent};
use cratetorrent_tests::transfers::{counter, download_from_libtorrent, seed_to_libtorrent};
use cratetorrent_tests::{Payload, loopback_conf, params, pseudo_random};
use cratetorrent_wire::mse::{Initiator, is_plain_handshake};
use cratetorrent_wire::{Extensions, Handshake, PeerId};

const TIMEOUT: Duration = Duration::from_secs(60);
const PIECE: u32 = 256 * 1024;

/// libtorrent's `pe_forced` both ways, with the payload levels given (1 plaintext, 2 RC4).
fn forced(level: &str) -> [String; 3] {
    [
        "out_enc_policy=0".into(),
        "in_enc_policy=0".into(),
        format!("allowed_enc_level={level}"),
    ]
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn rc4_both_ways_with_a_libtorrent_that_forces_it() {
    let counters =
        download_from_libtorrent(&forced("2"), 21, |c| c.encryption = Encryption::Prefer).await;
    assert_eq!(counter(&counters, "peers_rc4"), 1, "{counters}");
    let counters =
        seed_to_libtorrent(&forced("2"), 22, |c| c.encryption = Encryption::Require).await;
    assert_eq!(counter(&counters, "peers_rc4"), 1, "{counters}");
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn an_obfuscated_handshake_with_plaintext_payload_both_ways() {
    let counters =
        download_from_libtorrent(&forced("1"), 21, |c| c.encryption = Encryption::Require).await;
    assert_eq!(counter(&counters, "peers_obfuscated"), 1, "{counters}");
    assert_eq!(counter(&counters, "peers_rc4"), 0, "{counters}");
    let counters =
        seed_to_libtorrent(&forced("1"), 22, |c| c.encryption = Encryption::Prefer).await;
    assert_eq!(counter(&counters, "peers_obfuscated"), 1, "{counters}");
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn we_fall_back_to_plain_against_a_libtorrent_that_refuses_encryption() {
    let plain = [
        "out_enc_policy=2".to_string(),
        "in_enc_policy=2".to_string(),
    ];
    let counters =
        download_from_libtorrent(&plain, 21, |c| c.encryption = Encryption::Prefer).await;
    assert_eq!(counter(&counters, "peers_rc4"), 0, "{counters}");
    assert_eq!(counter(&counters, "peers_obfuscated"), 0, "{counters}");
    // And a libtorrent dialling us in the clear is accepted.
    seed_to_libtorrent(&plain, 22, |c| c.encryption = Encryption::Prefer).await;
}

/// We download `metainfo` into `dir` from `seed` with encryption required; asserts that the
/// peer's payload was RC4 while it was connected, and that the download completed.
async fn download_over_rc4(metainfo: &Metainfo, seed: SocketAddr, dir: &std::path::Path) {
    let mut conf = loopback_conf(dir);
    conf.encryption = Encryption::Require;
    // Two seconds or so, for the peer to be seen connected.
    conf.download_rate_limit = 2_000_000;
    let (engine, mut alerts) = engine::spawn(conf).unwrap();
    let id = engine
        .create_torrent(params(metainfo, Mode::Download { seeds: vec![seed] }))
        .unwrap();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let mut rc4 = false;
    loop {
        assert!(tokio::time::Instant::now() < deadline, "no RC4 peer seen");
        if let Ok(stats) = engine.stats(id).await {
            rc4 |= stats.peers.iter().any(|p| p.encrypted);
            if rc4 || stats.state == TorrentState::Seeding {
                // (Seeding with no RC4 peer seen fails below.)
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cratetorrent_tests::wait_complete(&mut alerts, id, TIMEOUT).await;
    assert!(rc4, "the download was not RC4-encrypted");
    engine.shutdown().await.unwrap();
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn rc4_both_ways_with_an_aria2_that_requires_it() {
    let payload = Payload::single_file(16 * PIECE as usize, PIECE, 24);
    let aria2 = Aria2::seed_requiring_rc4(&payload.torrent, payload.dir.path());
    let ours = tempfile::tempdir().unwrap();
    download_over_rc4(&payload.metainfo, aria2.addr(), ours.path()).await;
    assert!(payload.same_in(ours.path()));
    drop(aria2);

    // aria2 downloads from our seed, which dials it (aria2 waits for peers to come).
    let save = tempfile::tempdir().unwrap();
    let mut leecher = Aria2::leech_requiring_rc4(&payload.torrent, save.path());
    let mut conf = loopback_conf(payload.dir.path());
    conf.encryption = Encryption::Require;
    let (engine, _alerts) = engine::spawn(conf).unwrap();
    let id = engine
        .create_torrent(params(&payload.metainfo, Mode::Seed))
        .unwrap();
    engine.add_peers(id, vec![leecher.addr()]).unwrap();
    leecher.wait_exit(TIMEOUT);
    assert!(payload.same_in(save.path()));
    engine.shutdown().await.unwrap();
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn rc4_with_an_rtorrent_that_requires_it() {
    // rtorrent loads no torrent without a tracker; this one answers nothing.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("payload.bin");
    std::fs::write(&path, pseudo_random(16 * PIECE as usize, 25)).unwrap();
    let bytes = TorrentBuilder::new(&path)
        .piece_length(PIECE)
        .tracker("http://127.0.0.1:1/announce")
        .build()
        .unwrap();
    let torrent = dir.path().join("payload.torrent");
    std::fs::write(&torrent, &bytes).unwrap();
    let metainfo = Metainfo::from_bytes(&bytes).unwrap();
    let rtorrent = Rtorrent::seed_requiring_rc4(&torrent, dir.path());
    let ours = tempfile::tempdir().unwrap();
    download_over_rc4(&metainfo, rtorrent.addr, ours.path()).await;
    assert_eq!(
        std::fs::read(ours.path().join("payload.bin")).unwrap(),
        std::fs::read(&path).unwrap()
    );
}

/// Whether our engine at `at` closes a connection that sent `first`, within the timeout.
fn closes_after(at: SocketAddr, first: &[u8]) -> bool {
    let mut stream = TcpStream::connect(at).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(first).unwrap();
    let mut sink = [0u8; 4096];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn each_policy_refuses_the_connections_it_must_and_answers_the_others() {
    let payload = Payload::single_file(4 * PIECE as usize, PIECE, 23);
    let info_hash = payload.metainfo.info_hash();
    let mut plain = bytes::BytesMut::new();
    Handshake {
        extensions: Extensions::NONE,
        info_hash,
        peer_id: PeerId::generate(),
    }
    .encode(&mut plain);
    let encrypted = || {
        Initiator::new(info_hash, CryptoMethods::ALL, &plain, [9; 32])
            .unwrap()
            .output()
    };
    assert!(is_plain_handshake(&plain) && !is_plain_handshake(&encrypted()));
    for (policy, refuses_plain, refuses_encrypted) in [
        (Encryption::Require, true, false),
        (Encryption::Off, false, true),
    ] {
        let mut conf = loopback_conf(payload.dir.path());
        conf.encryption = policy;
        let (engine, _alerts) = engine::spawn(conf).unwrap();
        let id = engine
            .create_torrent(params(&payload.metainfo, Mode::Seed))
            .unwrap();
        // Until its data is checked the torrent takes no peers at all, whatever the policy.
        cratetorrent_tests::wait_seeding(&engine, id, TIMEOUT).await;
        let at = engine.listen_addr();
        if refuses_plain {
            assert!(closes_after(at, &plain), "{policy:?} let a plain peer in");
        }
        if refuses_encrypted {
            assert!(
                closes_after(at, &encrypted()),
                "{policy:?} let an encrypted peer in"
            );
        }
        // The other kind gets an answer: our handshake, or our key.
        let mut stream = TcpStream::connect(at).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let first = if refuses_plain {
            encrypted()
        } else {
            plain.to_vec()
        };
        stream.write_all(&first).unwrap();
        let mut answer = [0u8; 20];
        stream
            .read_exact(&mut answer)
            .unwrap_or_else(|error| panic!("{policy:?} did not answer: {error}"));
        engine.shutdown().await.unwrap();
    }
}
