//! Hostile encrypted (MSE) handshakes against a seeding engine: garbage, a key followed by an
//! endless pad, a wrong verification constant, an unknown torrent and a slowloris are each
//! closed within their bound, and an honest encrypted handshake still completes after them.

use cratetorrent::Encryption;
use cratetorrent_wire::mse::{CryptoMethods, Initiator, Progress};

use super::*;

/// The public key's length: 768 bits.
const KEY_LEN: usize = 96;

/// An initiator for `info_hash` whose first flight went out on `attacker`.
fn start_handshake(attacker: &mut Attacker, info_hash: InfoHash, seed: u8) -> Initiator {
    let mut plain = BytesMut::new();
    Handshake {
        extensions: Extensions::NONE,
        info_hash,
        peer_id: PeerId::generate(),
    }
    .encode(&mut plain);
    let mut initiator = Initiator::new(info_hash, CryptoMethods::ALL, &plain, [seed; 32]).unwrap();
    attacker.send(&initiator.output());
    initiator
}

/// Reads at least `len` bytes of the engine's answer (within the handshake deadline).
fn read_at_least(attacker: &mut Attacker, len: usize) -> Vec<u8> {
    let deadline = Instant::now() + HANDSHAKE_DEADLINE;
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while got.len() < len {
        assert!(Instant::now() < deadline, "no answer from the engine");
        match attacker.stream.read(&mut chunk) {
            Ok(0) => panic!("closed after {} bytes", got.len()),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("{e}"),
        }
    }
    got
}

#[tokio::test]
async fn hostile_encrypted_handshakes_are_closed_within_bounds() {
    let _serial = SERIAL.lock().await;
    let torrent = Torrent::new(4 * PIECE as usize, PIECE, 31);
    let info_hash = torrent.metainfo.info_hash();
    let (engine, _alerts, id) = start_engine(
        torrent.source.path(),
        &torrent.metainfo,
        Mode::Seed,
        |conf| conf.encryption = Encryption::Prefer,
    )
    .await;
    // Peers are taken once the data is checked.
    cratetorrent_tests::wait_seeding(&engine, id, TIMEOUT).await;
    let addr = engine.listen_addr();
    let attacks = tokio::task::spawn_blocking(move || {
        // Garbage: no synchronisation hash can turn up within the pad the protocol allows.
        let mut garbage = Attacker::raw(addr);
        garbage.send(&pseudo_random(100 * 1024, 32));
        assert!(
            garbage.closed_within(Duration::from_secs(10)),
            "garbage kept"
        );

        // A valid-looking key, then an endless pad.
        let mut padder = Attacker::raw(addr);
        padder.send(&pseudo_random(KEY_LEN, 33));
        for chunk in 0..64u64 {
            padder.send(&pseudo_random(1024, 34 + chunk));
        }
        assert!(
            padder.closed_within(Duration::from_secs(10)),
            "endless pad kept"
        );

        // A real exchange whose verification constant is corrupted on the way.
        let mut wrong_vc = Attacker::raw(addr);
        let mut initiator = start_handshake(&mut wrong_vc, info_hash, 1);
        let answer = read_at_least(&mut wrong_vc, KEY_LEN);
        assert!(matches!(initiator.receive(&answer), Ok(Progress::Pending)));
        let mut proof = initiator.output();
        // Two 20-byte hashes, then the encrypted constant.
        proof[40] ^= 0x01;
        wrong_vc.send(&proof);
        assert!(
            wrong_vc.closed_within(Duration::from_secs(10)),
            "wrong verification constant kept"
        );

        // A torrent the engine does not have.
        let mut stranger = Attacker::raw(addr);
        let mut initiator = start_handshake(&mut stranger, InfoHash::from([0x77; 20]), 2);
        let answer = read_at_least(&mut stranger, KEY_LEN);
        let _ = initiator.receive(&answer);
        stranger.send(&initiator.output());
        assert!(
            stranger.closed_within(Duration::from_secs(10)),
            "unknown torrent kept"
        );

        // Slowloris: half a key, then silence.
        let mut slow = Attacker::raw(addr);
        slow.send(&pseudo_random(KEY_LEN / 2, 35));
        assert!(slow.closed_within(HANDSHAKE_DEADLINE), "slowloris kept");

        // After all that, an honest encrypted handshake completes.
        let mut honest = Attacker::raw(addr);
        let mut initiator = start_handshake(&mut honest, info_hash, 3);
        let mut answer = read_at_least(&mut honest, KEY_LEN);
        let deadline = Instant::now() + HANDSHAKE_DEADLINE;
        loop {
            match initiator.receive(&answer).unwrap() {
                Progress::Done(_) => break,
                _ => honest.send(&initiator.output()),
            }
            assert!(
                Instant::now() < deadline,
                "the honest handshake never ended"
            );
            answer = read_at_least(&mut honest, 1);
        }
    });
    tokio::time::timeout(Duration::from_secs(120), attacks)
        .await
        .expect("attacks took too long")
        .unwrap();
    engine.shutdown().await.unwrap();
}
