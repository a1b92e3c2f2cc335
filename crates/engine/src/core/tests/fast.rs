//! The BEP 6 fast extension through the core: have-all/none, rejects, allowed-fast sets both
//! ways, suggestions.

use super::*;
use cratetorrent_wire::allowed_fast_set;

const BLOCK: u32 = 16 * 1024;

/// Peer `n` speaking the fast extension (and BEP 10), connected by us.
fn fast_peer(core: &mut Core, n: u8, now: Instant) -> PeerKey {
    let addr: SocketAddr = format!("10.0.{n}.1:6881").parse().unwrap();
    core.on_handshake(
        addr,
        PeerId::new([n; 20]),
        crate::core::our_extensions(false),
        true,
        now,
    )
    .unwrap()
}

fn request(piece: u32) -> BlockInfo {
    BlockInfo {
        piece,
        offset: 0,
        len: BLOCK,
    }
}

fn reads(core: &Core) -> Vec<BlockInfo> {
    core.actions
        .iter()
        .filter_map(|a| match a {
            Action::Read { block, .. } => Some(*block),
            _ => None,
        })
        .collect()
}

#[test]
fn the_greeting_is_have_all_or_have_none_and_a_leecher_grants_its_allowed_fast_set() {
    let now = Instant::now();
    let mut seed = core(8, Bitfield::full(8), false);
    let key = fast_peer(&mut seed, 1, now);
    let greeting = sent(&mut seed, key);
    assert!(greeting.contains(&Message::HaveAll), "{greeting:?}");
    assert!(
        !greeting
            .iter()
            .any(|m| matches!(m, Message::Bitfield(_) | Message::AllowedFast(_))),
        "a seed sends no bitfield and grants no allowed-fast set: {greeting:?}"
    );

    let mut empty = core(8, Bitfield::new(8), false);
    let key = fast_peer(&mut empty, 2, now);
    let greeting = sent(&mut empty, key);
    assert!(greeting.contains(&Message::HaveNone), "{greeting:?}");
    let granted: Vec<u32> = greeting
        .iter()
        .filter_map(|m| match m {
            Message::AllowedFast(p) => Some(*p),
            _ => None,
        })
        .collect();
    let ip = empty.peers[key].addr.ip();
    let expected = allowed_fast_set(ip, &empty.info_hash, 8, 5);
    assert_eq!(granted, expected, "the BEP 6 set for its address");

    let mut partial = Bitfield::new(8);
    partial.set(3);
    let mut some = core(8, partial, false);
    let key = fast_peer(&mut some, 3, now);
    let greeting = sent(&mut some, key);
    assert!(matches!(greeting.first(), Some(Message::Extended { .. })));
    assert!(matches!(greeting.get(1), Some(Message::Bitfield(_))));

    let plain = connect(&mut some, 4);
    assert!(
        sent(&mut some, plain)
            .iter()
            .all(|m| matches!(m, Message::Bitfield(_))),
        "a peer without the extension hears none of it"
    );
}

#[test]
fn have_all_makes_a_seed_and_only_as_the_first_word_on_pieces() {
    let now = Instant::now();
    let mut core = core(8, Bitfield::new(8), false);
    let key = fast_peer(&mut core, 1, now);
    core.on_message(key, Message::HaveAll, now);
    assert!(core.peers[key].is_seed);
    assert!(sent(&mut core, key).contains(&Message::Interested));
    core.check_availability();
    core.on_message(key, Message::HaveAll, now);
    assert!(!core.is_open(key), "a second have-all");

    let late = fast_peer(&mut core, 2, now);
    core.on_message(late, Message::Have(1), now);
    core.on_message(late, Message::HaveNone, now);
    assert!(!core.is_open(late), "have-none after a have");

    let plain = connect(&mut core, 3);
    core.on_message(plain, Message::HaveAll, now);
    assert!(!core.is_open(plain), "not negotiated");
}

#[test]
fn a_choke_keeps_our_requests_until_rejected_and_rejected_blocks_go_back_to_the_pool() {
    let now = Instant::now();
    let mut core = core(8, Bitfield::new(8), false);
    let key = fast_peer(&mut core, 1, now);
    core.on_message(key, Message::HaveAll, now);
    core.on_message(key, Message::Unchoke, now);
    let asked = requests(&sent(&mut core, key));
    assert!(!asked.is_empty());
    core.on_message(key, Message::Choke, now);
    assert_eq!(
        core.peers[key].requests.len(),
        asked.len(),
        "a fast peer's choke rejects nothing by itself"
    );
    let rejected = asked[0];
    core.on_message(key, Message::RejectRequest(rejected), now);
    assert_eq!(core.peers[key].requests.len(), asked.len() - 1);
    let other = fast_peer(&mut core, 2, now);
    core.on_message(other, Message::HaveAll, now);
    core.on_message(other, Message::Unchoke, now);
    assert!(
        requests(&sent(&mut core, other)).contains(&rejected),
        "the rejected block is free for others"
    );
    // A block it still sends after all is taken.
    core.on_message(key, block(asked[1]), now);
    assert!(
        core.actions
            .iter()
            .any(|a| matches!(a, Action::Write { piece, offset, .. }
                if *piece == asked[1].piece && *offset == asked[1].offset))
    );
}

#[test]
fn rejects_of_requests_never_made_are_bounded() {
    let now = Instant::now();
    let conf = TorrentConf {
        max_in_requests: 10,
        ..TorrentConf::default()
    };
    let mut core = core_of(metainfo(8), Bitfield::new(8), false, conf);
    let key = fast_peer(&mut core, 1, now);
    for _ in 0..10 {
        core.on_message(key, Message::RejectRequest(request(7)), now);
    }
    assert!(core.is_open(key), "a few stray rejects are tolerated");
    core.on_message(key, Message::RejectRequest(request(7)), now);
    assert!(!core.is_open(key));
}

#[test]
fn a_choked_fast_peer_is_rejected_except_for_its_allowed_pieces() {
    let now = Instant::now();
    // A leecher holding everything but the last piece: it grants an allowed-fast set.
    let mut have = Bitfield::full(8);
    have.clear(7);
    let mut core = core(8, have, false);
    let key = fast_peer(&mut core, 1, now);
    let allowed = core.peers[key].fast.allowed_out.clone();
    assert_eq!(allowed.len(), 5);
    let held = *allowed.iter().find(|&&p| p != 7).unwrap();
    let outside = (0..7).find(|p| !allowed.contains(p)).unwrap();
    sent(&mut core, key);
    core.on_message(key, Message::Request(request(outside)), now);
    assert_eq!(
        sent(&mut core, key),
        [Message::RejectRequest(request(outside))]
    );
    core.on_message(key, Message::Request(request(held)), now);
    assert_eq!(reads(&core), [request(held)], "allowed while choked");
    if allowed.contains(&7) {
        core.on_message(key, Message::Request(request(7)), now);
        assert!(
            sent(&mut core, key).contains(&Message::RejectRequest(request(7))),
            "allowed but not had"
        );
    }

    // The allowance is a few pieces' worth (two per allowed piece), not a free slot.
    let budget = 5 * (PIECE / BLOCK) * 2;
    for _ in 1..budget {
        core.on_block_read(core.peers[key].tag, request(held), Ok(Bytes::new()));
        core.on_message(key, Message::Request(request(held)), now);
    }
    assert!(
        !sent(&mut core, key).contains(&Message::RejectRequest(request(held))),
        "within the allowance"
    );
    core.on_block_read(core.peers[key].tag, request(held), Ok(Bytes::new()));
    core.on_message(key, Message::Request(request(held)), now);
    assert!(
        sent(&mut core, key).contains(&Message::RejectRequest(request(held))),
        "past {budget} blocks the set is spent"
    );
}

/// A seed whose send watermark is 0 (requests stay queued, never read), with a fast peer it
/// unchoked.
fn seed_with_no_room_to_read(now: Instant) -> (Core, PeerKey) {
    let conf = TorrentConf {
        send_watermark: 0,
        ..TorrentConf::default()
    };
    let mut core = core_of(metainfo(8), Bitfield::full(8), false, conf);
    let key = fast_peer(&mut core, 1, now);
    core.on_message(key, Message::Interested, now);
    (core, key)
}

#[test]
fn our_choke_rejects_what_is_queued_and_a_cancel_is_answered() {
    let now = Instant::now();
    let (mut core, key) = seed_with_no_room_to_read(now);
    sent(&mut core, key);
    // No room to read (watermark 0): the requests stay queued.
    for piece in 0..3 {
        core.on_message(key, Message::Request(request(piece)), now);
    }
    core.on_message(key, Message::Cancel(request(0)), now);
    assert_eq!(
        sent(&mut core, key),
        [Message::RejectRequest(request(0))],
        "BEP 6: a cancelled request is answered"
    );
    core.choke(key);
    assert_eq!(
        sent(&mut core, key),
        [
            Message::Choke,
            Message::RejectRequest(request(1)),
            Message::RejectRequest(request(2)),
        ]
    );
    assert_eq!(core.peers[key].incoming.len(), 0);
}

#[test]
fn allowed_fast_pieces_are_fetched_while_choked_and_suggestions_first_when_unchoked() {
    let now = Instant::now();
    let mut core = core(8, Bitfield::new(8), false);
    let key = fast_peer(&mut core, 1, now);
    core.on_message(key, Message::HaveAll, now);
    sent(&mut core, key);
    core.on_message(key, Message::AllowedFast(5), now);
    core.on_message(key, Message::AllowedFast(99), now);
    let asked = requests(&sent(&mut core, key));
    assert!(!asked.is_empty(), "requested while choked");
    assert!(asked.iter().all(|b| b.piece == 5), "{asked:?}");
    assert_eq!(
        core.peers[key].fast.allowed_in,
        [5],
        "past the end: ignored"
    );

    let other = fast_peer(&mut core, 2, now);
    core.on_message(other, Message::HaveAll, now);
    core.on_message(other, Message::SuggestPiece(6), now);
    core.on_message(other, Message::Unchoke, now);
    let asked = requests(&sent(&mut core, other));
    assert_eq!(asked.first().map(|b| b.piece), Some(6), "{asked:?}");
}

#[test]
fn a_peer_that_requests_and_cancels_without_reading_gets_a_bounded_backlog_of_rejects() {
    let now = Instant::now();
    let (mut core, key) = seed_with_no_room_to_read(now);
    for _ in 0..100_000 {
        core.on_message(key, Message::Request(request(1)), now);
        core.on_message(key, Message::Cancel(request(1)), now);
    }
    assert!(core.is_open(key));
    assert!(core.peers[key].outbox.control_len() < 33 * 1024);
    core.check_bounds();
}

#[test]
fn an_allowed_piece_rejected_while_choked_is_not_asked_again() {
    let now = Instant::now();
    let mut core = core(8, Bitfield::new(8), false);
    let key = fast_peer(&mut core, 1, now);
    core.on_message(key, Message::HaveAll, now);
    core.on_message(key, Message::AllowedFast(5), now);
    let asked = requests(&sent(&mut core, key));
    assert!(!asked.is_empty());
    core.on_message(key, Message::RejectRequest(asked[0]), now);
    assert!(core.peers[key].fast.allowed_in.is_empty());
    core.tick_at(now + Duration::from_secs(1));
    assert!(
        !requests(&sent(&mut core, key)).contains(&asked[0]),
        "not asked again while choked"
    );
}
