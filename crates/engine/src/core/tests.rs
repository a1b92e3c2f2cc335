//! The torrent state machine driven without sockets: messages and time in, frames and actions
//! out.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use cratetorrent_metainfo::{Metainfo, TorrentBuilder};
use cratetorrent_wire::{Bitfield, Block, BlockInfo, Decoder, Extensions, Message, PeerId};

use crate::TorrentId;
use crate::alert::Alert;
use crate::conf::TorrentConf;
use crate::core::{Action, Core, CoreInit, Input, PeerKey, Source};

const PIECE: u32 = 64 * 1024;

/// A torrent of `pieces` pieces of 64 KiB (4 blocks each).
fn metainfo(pieces: u32) -> Metainfo {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.bin");
    std::fs::write(&path, vec![1u8; (pieces * PIECE) as usize]).unwrap();
    Metainfo::from_bytes(
        &TorrentBuilder::new(&path)
            .piece_length(PIECE)
            .build()
            .unwrap(),
    )
    .unwrap()
}

fn core(pieces: u32, have: Bitfield, seed_only: bool) -> Core {
    let conf = TorrentConf {
        max_strikes: 3,
        ..TorrentConf::default()
    };
    core_of(metainfo(pieces), have, seed_only, conf)
}

/// A torrent's core for `metainfo`, having `have`.
fn core_of(metainfo: Metainfo, have: Bitfield, seed_only: bool, conf: TorrentConf) -> Core {
    Core::new(init_of(metainfo, have, seed_only, conf), Instant::now())
}

/// What [`core_of`] starts a core with (our id all zeros).
fn init_of(metainfo: Metainfo, have: Bitfield, seed_only: bool, conf: TorrentConf) -> CoreInit {
    CoreInit {
        id: TorrentId(1),
        source: Source::Metainfo(Box::new(metainfo)),
        our_id: PeerId::new([0; 20]),
        listen_port: 6881,
        dht_port: None,
        conf,
        seed_only,
        have,
        seed: 1,
    }
}

fn connect(core: &mut Core, n: u8) -> PeerKey {
    let addr: SocketAddr = format!("10.0.0.{n}:6881").parse().unwrap();
    core.on_handshake(
        addr,
        PeerId::new([n; 20]),
        Extensions::NONE,
        true,
        Instant::now(),
    )
    .unwrap()
}

/// Everything queued for `key`, decoded.
fn sent(core: &mut Core, key: PeerKey) -> Vec<Message> {
    let mut frames = Vec::new();
    core.peers[key].outbox.take(&mut frames, usize::MAX);
    let mut wire = BytesMut::new();
    for frame in frames {
        wire.extend_from_slice(&frame);
    }
    let decoder = Decoder::default();
    std::iter::from_fn(|| decoder.decode(&mut wire).unwrap()).collect()
}

/// Peer `n` at `addr` speaking BEP 10, connected (`outgoing`: by us) and past its extended
/// handshake `theirs`.
fn extended_peer(
    core: &mut Core,
    n: u8,
    addr: SocketAddr,
    outgoing: bool,
    theirs: &cratetorrent_wire::ExtendedHandshake,
    now: Instant,
) -> PeerKey {
    let key = core
        .on_handshake(
            addr,
            PeerId::new([n; 20]),
            crate::core::our_extensions(false),
            outgoing,
            now,
        )
        .unwrap();
    core.on_message(
        key,
        Message::Extended {
            id: 0,
            payload: theirs.encode(),
        },
        now,
    );
    key
}

fn requests(messages: &[Message]) -> Vec<BlockInfo> {
    messages
        .iter()
        .filter_map(|m| match m {
            Message::Request(b) => Some(*b),
            _ => None,
        })
        .collect()
}

fn block(info: BlockInfo) -> Message {
    Message::Piece(Block {
        piece: info.piece,
        offset: info.offset,
        data: Bytes::from(vec![0u8; info.len as usize]),
    })
}

fn full_seed_peer(core: &mut Core, n: u8) -> PeerKey {
    let key = connect(core, n);
    has_all_and_unchokes(core, key);
    key
}

/// Peer `key` says it has every piece and unchokes us (so we request of it).
fn has_all_and_unchokes(core: &mut Core, key: PeerKey) {
    let count = core.geometry.piece_count();
    let now = Instant::now();
    core.on_message(
        key,
        Message::Bitfield(Bytes::copy_from_slice(Bitfield::full(count).as_bytes())),
        now,
    );
    core.on_message(key, Message::Unchoke, now);
}

#[test]
fn pipeline_fills_and_refills_with_each_block() {
    let mut core = core(8, Bitfield::new(8), false);
    let key = full_seed_peer(&mut core, 1);
    let first = sent(&mut core, key);
    assert!(first.contains(&Message::Interested));
    let asked = requests(&first);
    assert_eq!(asked.len(), 4, "slow start begins with 4 requests");
    core.actions.clear();
    core.on_message(key, block(asked[0]), Instant::now());
    assert!(
        core.actions.iter().any(
            |a| matches!(a, Action::Write { piece, offset: 0, .. } if *piece == asked[0].piece)
        )
    );
    // One block received: one more in flight (slow start) plus its replacement.
    assert_eq!(requests(&sent(&mut core, key)).len(), 2);
}

#[test]
fn an_idle_torrent_posts_its_stats_only_when_they_change() {
    let mut core = core(4, Bitfield::new(4), false);
    let start = Instant::now();
    let stats_posted = |core: &mut Core, second: u64| {
        core.handle(Input::Timeout, start + Duration::from_secs(second));
        let mut posted = 0;
        while let Some(alert) = core.poll_alert() {
            posted += usize::from(matches!(alert, Alert::TorrentStats(_)));
        }
        posted
    };
    assert_eq!(stats_posted(&mut core, 1), 1, "the first stats");
    assert_eq!(stats_posted(&mut core, 2), 0, "nothing changed");
    core.set_file_priorities(&[0], start + Duration::from_secs(2));
    assert_eq!(stats_posted(&mut core, 3), 1, "the bytes wanted changed");
    assert_eq!(stats_posted(&mut core, 4), 0);
    // A torrent with a peer posts at every interval, changed or not.
    let _peer = connect(&mut core, 1);
    assert_eq!(stats_posted(&mut core, 5), 1);
    assert_eq!(stats_posted(&mut core, 6), 1);
}

#[test]
fn a_peer_completed_by_haves_counts_as_one_seed() {
    // Found by the swarm simulator: the `have` that completed a peer's bitfield was taken off
    // the piece's availability without having been added.
    let mut core = core(4, Bitfield::new(4), false);
    let partial = connect(&mut core, 1);
    let now = Instant::now();
    core.on_message(partial, Message::Have(3), now);
    let haves = connect(&mut core, 2);
    for piece in 0..4 {
        core.on_message(haves, Message::Have(piece), now);
    }
    assert_eq!(core.picker.availability(3), 2);
    assert_eq!(core.picker.availability(0), 1);
    core.check_availability();
}

#[test]
fn a_deep_pipeline_refills_in_batches() {
    let mut core = core(64, Bitfield::new(64), false);
    let key = full_seed_peer(&mut core, 1);
    core.peers[key].slow_start = false;
    core.peers[key].queue_target = 128;
    let now = Instant::now();
    core.fill_requests(key, now);
    let asked = requests(&sent(&mut core, key));
    assert_eq!(asked.len(), 128, "filled to the target");
    // 128 / 8 = 16 free slots make a batch: 15 blocks send nothing, the 16th sends 16.
    for (index, info) in asked.iter().take(16).enumerate() {
        core.on_message(key, block(*info), now);
        let more = requests(&sent(&mut core, key));
        let expected = if index == 15 { 16 } else { 0 };
        assert_eq!(more.len(), expected, "after block {}", index + 1);
    }
    assert_eq!(core.peers[key].requests.len(), 128);
}

#[test]
fn choke_gives_requests_to_another_peer() {
    let mut core = core(1, Bitfield::new(1), false);
    let a = full_seed_peer(&mut core, 1);
    let asked = requests(&sent(&mut core, a));
    assert_eq!(asked.len(), 4, "the whole piece from the first peer");
    let b = full_seed_peer(&mut core, 2);
    // In end-game at once (nothing left to pick), but never more than two peers per block.
    let duplicates = requests(&sent(&mut core, b));
    assert_eq!(duplicates.len(), 4);
    core.on_message(a, Message::Choke, Instant::now());
    core.on_message(b, block(asked[0]), Instant::now());
    assert!(
        requests(&sent(&mut core, a)).is_empty(),
        "choked peers get no requests"
    );
}

#[test]
fn end_game_cancels_a_duplicate_when_the_block_arrives() {
    let mut core = core(1, Bitfield::new(1), false);
    let a = full_seed_peer(&mut core, 1);
    let asked = requests(&sent(&mut core, a));
    let b = full_seed_peer(&mut core, 2);
    assert_eq!(requests(&sent(&mut core, b)), asked);
    core.on_message(a, block(asked[2]), Instant::now());
    assert!(sent(&mut core, b).contains(&Message::Cancel(asked[2])));
}

#[test]
fn end_game_takes_over_a_slow_peers_blocks_but_not_a_fast_ones() {
    let mut core = core(3, Bitfield::new(3), false);
    let set_rate = |core: &mut Core, key, rate| {
        core.peers[key].downloaded.add(rate);
        core.peers[key].downloaded.tick(Duration::from_secs(1));
    };
    let fast = full_seed_peer(&mut core, 1);
    let fast_asked = requests(&sent(&mut core, fast));
    let slow = full_seed_peer(&mut core, 2);
    let slow_asked = requests(&sent(&mut core, slow));
    set_rate(&mut core, fast, 1 << 20);
    set_rate(&mut core, slow, 1 << 10);
    let helper = connect(&mut core, 3);
    set_rate(&mut core, helper, 1 << 20);
    core.peers[helper].queue_target = 12;
    has_all_and_unchokes(&mut core, helper);
    let asked = requests(&sent(&mut core, helper));
    // The last free piece, then the slow peer's blocks; none of the fast peer's.
    assert_eq!(asked.len(), 8, "{asked:?}");
    assert!(slow_asked.iter().all(|b| asked.contains(b)));
    assert!(!fast_asked.iter().any(|b| asked.contains(b)));
}

#[test]
fn invalid_and_choked_requests() {
    let mut core = core(2, Bitfield::full(2), true);
    let key = connect(&mut core, 1);
    let now = Instant::now();
    core.on_message(
        key,
        Message::Request(BlockInfo {
            piece: 0,
            offset: 0,
            len: 16384,
        }),
        now,
    );
    assert!(
        !core
            .actions
            .iter()
            .any(|a| matches!(a, Action::Read { .. })),
        "choked: dropped"
    );
    core.on_message(key, Message::Interested, now);
    assert!(
        sent(&mut core, key).contains(&Message::Unchoke),
        "a free slot is given at once"
    );
    core.on_message(
        key,
        Message::Request(BlockInfo {
            piece: 0,
            offset: 0,
            len: 16384,
        }),
        now,
    );
    assert!(
        core.actions
            .iter()
            .any(|a| matches!(a, Action::Read { block, .. } if block.piece == 0))
    );
    core.on_message(
        key,
        Message::Request(BlockInfo {
            piece: 1,
            offset: PIECE,
            len: 1,
        }),
        now,
    );
    assert!(
        core.actions
            .iter()
            .any(|a| matches!(a, Action::Disconnect(k) if *k == key))
    );
}

#[test]
fn a_peer_alone_in_two_failed_pieces_is_banned() {
    let mut core = core(4, Bitfield::new(4), false);
    let key = full_seed_peer(&mut core, 1);
    let now = Instant::now();
    for _ in 0..2 {
        let asked = requests(&sent(&mut core, key));
        let piece = asked[0].piece;
        for info in core.geometry.blocks(piece).collect::<Vec<_>>() {
            core.on_message(key, block(info), now);
        }
        core.on_hash_failed(piece, now);
    }
    assert!(
        core.alerts
            .iter()
            .any(|a| matches!(a, Alert::PeerBanned { .. }))
    );
    assert!(core.peers[key].closing);
}

#[test]
fn verified_pieces_are_announced_and_interest_ends_with_the_last_one() {
    let mut core = core(2, Bitfield::new(2), false);
    let seed = full_seed_peer(&mut core, 1);
    let leech = connect(&mut core, 2);
    sent(&mut core, seed);
    sent(&mut core, leech);
    let now = Instant::now() + Duration::from_millis(1);
    core.on_piece_verified(0, now);
    assert!(sent(&mut core, leech).contains(&Message::Have(0)));
    assert!(
        sent(&mut core, seed).contains(&Message::Have(0)),
        "seeds hear it too, so that their interfaces show our progress"
    );
    core.conf.send_redundant_have = false;
    core.on_piece_verified(1, now);
    assert!(
        core.alerts
            .iter()
            .any(|a| matches!(a, Alert::TorrentComplete(_)))
    );
    assert!(
        core.peers[seed].closing,
        "two seeds have nothing to say to each other"
    );
    assert!(
        !sent(&mut core, seed).contains(&Message::Have(1)),
        "without send_redundant_have, seeds hear nothing"
    );
}

#[test]
fn file_priorities_decide_interest() {
    let mut core = core(4, Bitfield::new(4), false);
    let key = connect(&mut core, 1);
    let mut bitfield = Bitfield::new(4);
    bitfield.set(3);
    core.on_message(
        key,
        Message::Bitfield(Bytes::copy_from_slice(bitfield.as_bytes())),
        Instant::now(),
    );
    assert!(sent(&mut core, key).contains(&Message::Interested));
    core.set_file_priorities(&[0], Instant::now());
    assert!(sent(&mut core, key).contains(&Message::NotInterested));
    assert!(core.is_finished());
}

mod hostile;

mod addresses;
mod extensions;
mod fast;
mod magnet;
mod pex;
