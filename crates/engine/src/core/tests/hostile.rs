//! What one hostile peer can do to the core, each attack from issue 15's review driven without
//! sockets: every test here failed before its fix.

use super::*;

/// A torrent of `pieces` pieces of 16 KiB whose hashes are never checked here: built as
/// bencode, so a 200k-piece torrent costs no hashing.
fn large_metainfo(pieces: u32) -> Metainfo {
    let piece_length = 16 * 1024u64;
    let mut info = format!(
        "d6:lengthi{}e4:name1:t12:piece lengthi{piece_length}e6:pieces{}:",
        u64::from(pieces) * piece_length,
        pieces as usize * 20
    )
    .into_bytes();
    info.extend(std::iter::repeat_n(7u8, pieces as usize * 20));
    info.push(b'e');
    let mut torrent = b"d4:info".to_vec();
    torrent.extend(info);
    torrent.push(b'e');
    Metainfo::from_bytes(&torrent).unwrap()
}

fn large_core(pieces: u32) -> Core {
    large_core_with(pieces, false, TorrentConf::default())
}

fn large_core_with(pieces: u32, seed_only: bool, conf: TorrentConf) -> Core {
    let have = if seed_only {
        Bitfield::full(pieces)
    } else {
        Bitfield::new(pieces)
    };
    core_of(large_metainfo(pieces), have, seed_only, conf)
}

fn bitfield_message(bitfield: &Bitfield) -> Message {
    Message::Bitfield(Bytes::copy_from_slice(bitfield.as_bytes()))
}

#[test]
fn a_repeated_have_counts_once() {
    let mut core = core(8, Bitfield::new(8), false);
    let key = connect(&mut core, 1);
    let now = Instant::now();
    for _ in 0..5 {
        core.on_message(key, Message::Have(5), now);
    }
    assert_eq!(core.picker.availability(5), 1);
    assert_eq!(core.peers[key].interesting, 1);
    core.on_closed(key, now);
    assert_eq!(core.picker.availability(5), 0, "given back exactly once");
}

#[test]
fn late_bitfields_after_haves_count_each_piece_once() {
    // Big enough that the old per-bit scan of the whole bitfield (N²/64 word operations per
    // message) would take minutes here; the count is what is asserted.
    let pieces = 200_000;
    let mut core = large_core(pieces);
    let key = connect(&mut core, 1);
    let now = Instant::now();
    let mut almost = Bitfield::full(pieces);
    almost.clear(pieces - 1);
    core.on_message(key, Message::Have(0), now);
    for _ in 0..3 {
        core.on_message(key, bitfield_message(&almost), now);
    }
    assert_eq!(core.picker.availability(0), 1);
    assert_eq!(core.picker.availability(pieces - 2), 1);
    assert_eq!(core.picker.availability(pieces - 1), 0);
    assert_eq!(core.peers[key].interesting, pieces - 1);
    assert!(!core.peers[key].is_seed);
    // The last piece makes it a seed, counted apart from the per-piece availability.
    core.on_message(key, Message::Have(pieces - 1), now);
    assert!(core.peers[key].is_seed);
    assert_eq!(core.picker.availability(pieces - 1), 1);
    assert_eq!(core.picker.availability(0), 1);
    core.on_closed(key, now);
    assert_eq!(core.picker.availability(0), 0);
}

#[test]
fn a_choke_refills_no_other_peer_until_the_tick() {
    let mut core = core(8, Bitfield::new(8), false);
    let a = full_seed_peer(&mut core, 1);
    assert_eq!(requests(&sent(&mut core, a)).len(), 4);
    let b = full_seed_peer(&mut core, 2);
    assert_eq!(requests(&sent(&mut core, b)).len(), 4);
    core.peers[b].queue_target = 8;
    let now = Instant::now();
    core.on_message(a, Message::Choke, now);
    assert!(
        requests(&sent(&mut core, b)).is_empty(),
        "a 5-byte choke must not walk every other peer's pipeline"
    );
    core.tick_at(now + Duration::from_millis(1));
    assert_eq!(
        requests(&sent(&mut core, b)).len(),
        4,
        "the tick tops the other peer up"
    );
}

#[test]
fn cancels_against_a_long_queue_are_cheap_and_exact() {
    // 50,000 queued requests cancelled newest first: a scan per cancel was 1.25e9 comparisons.
    let pieces = 50_000;
    let conf = TorrentConf {
        max_in_requests: pieces as usize,
        ..TorrentConf::default()
    };
    let mut core = large_core_with(pieces, true, conf);
    let key = connect(&mut core, 1);
    let now = Instant::now();
    core.on_message(key, Message::Interested, now);
    let blocks: Vec<BlockInfo> = (0..pieces)
        .map(|piece| BlockInfo {
            piece,
            offset: 0,
            len: 16384,
        })
        .collect();
    for &block in &blocks {
        core.on_message(key, Message::Request(block), now);
    }
    // A duplicate is dropped, not queued twice.
    core.on_message(key, Message::Request(blocks[pieces as usize - 1]), now);
    let reading = core.peers[key].reading.len();
    assert!(reading > 0);
    assert_eq!(core.peers[key].incoming.len() + reading, pieces as usize);
    for block in blocks.iter().rev() {
        core.on_message(key, Message::Cancel(*block), now);
    }
    assert_eq!(core.peers[key].incoming.len(), 0);
    assert_eq!(core.peers[key].reading.len(), 0);
    assert!(!core.peers[key].closing);
}

fn writes(core: &Core) -> usize {
    core.actions
        .iter()
        .filter(|a| matches!(a, Action::Write { .. }))
        .count()
}

#[test]
fn blocks_nobody_asked_that_peer_for_are_never_used() {
    let mut core = core(4, Bitfield::new(4), false);
    let owner = full_seed_peer(&mut core, 1);
    let asked = requests(&sent(&mut core, owner));
    // The sprayer has nothing we want, so we never ask it for anything.
    let sprayer = connect(&mut core, 2);
    core.actions.clear();
    let now = Instant::now();
    core.on_message(sprayer, block(asked[3]), now);
    assert_eq!(writes(&core), 0, "a junk block in another peer's piece");
    core.on_message(owner, block(asked[3]), now);
    assert_eq!(writes(&core), 1, "the owner's block is still wanted");
}

#[test]
fn a_choke_cycle_earns_no_allowance_for_other_blocks() {
    let mut core = core(1, Bitfield::new(1), false);
    let a = full_seed_peer(&mut core, 1);
    let asked = requests(&sent(&mut core, a));
    let now = Instant::now();
    core.on_message(a, Message::Choke, now);
    core.on_message(a, Message::Unchoke, now);
    core.on_message(a, Message::Choke, now);
    // A block it was asked for and then withdrawn from it is still taken as asked for...
    core.on_message(a, block(asked[0]), now);
    assert_eq!(core.peers[a].unasked, 0);
    // ...but the same block again, or cycles of choking, earn nothing more.
    core.on_message(a, block(asked[0]), now);
    assert_eq!(core.peers[a].unasked, 1);
}

#[test]
fn smart_ban_finds_the_peer_whose_block_differed() {
    let mut core = core(1, Bitfield::new(1), false);
    let honest = full_seed_peer(&mut core, 1);
    let asked = requests(&sent(&mut core, honest));
    assert_eq!(asked.len(), 4);
    // End-game: the sprayer is asked for the same blocks and answers one with junk first.
    let sprayer = full_seed_peer(&mut core, 2);
    assert_eq!(requests(&sent(&mut core, sprayer)), asked);
    let now = Instant::now();
    core.on_message(sprayer, block(asked[3]), now);
    for info in &asked[..3] {
        core.on_message(honest, block(*info), now);
    }
    core.actions.clear();
    core.on_hash_failed(0, now);
    assert!(
        core.actions
            .iter()
            .any(|a| matches!(a, Action::HashBlocks(0))),
        "what each peer sent is read back"
    );
    sent(&mut core, honest);
    sent(&mut core, sprayer);
    core.on_block_hashes(0, Ok(vec![[1; 20], [2; 20], [3; 20], [0xee; 20]]), now);
    let again = requests(&sent(&mut core, honest));
    assert_eq!(again.len(), 4, "the retry comes from one peer");
    assert!(requests(&sent(&mut core, sprayer)).is_empty());
    for info in again {
        core.on_message(honest, block(info), now);
    }
    core.actions.clear();
    core.on_piece_verified(0, now);
    assert!(
        core.actions
            .iter()
            .any(|a| matches!(a, Action::HashBlocks(0)))
    );
    core.actions.clear();
    core.on_block_hashes(0, Ok(vec![[1; 20], [2; 20], [3; 20], [4; 20]]), now);
    let banned: Vec<SocketAddr> = core
        .alerts
        .iter()
        .filter_map(|a| match a {
            Alert::PeerBanned { addr, .. } => Some(*addr),
            _ => None,
        })
        .collect();
    assert_eq!(banned, [core.peers[sprayer].addr]);
    assert_eq!(core.bans.len(), 1, "the honest peer is not banned");
}

#[test]
fn a_request_skipped_while_later_ones_are_answered_goes_to_another_peer() {
    let mut core = core(8, Bitfield::new(8), false);
    let withholder = full_seed_peer(&mut core, 1);
    let first = requests(&sent(&mut core, withholder))[0];
    let honest = full_seed_peer(&mut core, 2);
    sent(&mut core, honest);
    core.peers[honest].queue_target = 8;
    let start = Instant::now();
    // Every two seconds it answers its newest request, never the first: blocks keep coming,
    // so no plain timeout fires, and before this the first block waited forever.
    let mut now = start;
    for _ in 0..6 {
        now += Duration::from_secs(2);
        let newest = core.peers[withholder]
            .requests
            .iter()
            .rev()
            .map(|r| r.block)
            .find(|b| *b != first)
            .unwrap();
        core.on_message(withholder, block(newest), now);
    }
    sent(&mut core, withholder);
    core.tick_at(now);
    assert!(
        sent(&mut core, withholder).contains(&Message::Cancel(first)),
        "the skipped request is withdrawn"
    );
    assert!(core.peers[withholder].snubbed);
    let holds =
        |core: &Core, key: PeerKey| core.peers[key].requests.iter().any(|r| r.block == first);
    assert!(!holds(&core, withholder));
    assert!(holds(&core, honest), "someone else is asked for it");
}

#[test]
fn blocks_the_storage_gave_up_are_fetched_again() {
    let mut core = core(2, Bitfield::new(2), false);
    let key = full_seed_peer(&mut core, 1);
    let now = Instant::now();
    let asked = requests(&sent(&mut core, key));
    for info in &asked {
        core.on_message(key, block(*info), now);
    }
    let piece = asked[0].piece;
    let given_up: Vec<BlockInfo> = asked
        .iter()
        .filter(|b| b.piece == piece && b.offset > 0)
        .copied()
        .collect();
    assert_eq!(given_up.len(), 3);
    sent(&mut core, key);
    let offsets: Vec<u32> = given_up.iter().map(|b| b.offset).collect();
    core.on_blocks_dropped(piece, &offsets);
    core.fill_requests(key, now);
    let again = requests(&sent(&mut core, key));
    for block in given_up {
        assert!(again.contains(&block), "{block:?} not asked again");
    }
}

#[test]
fn a_peer_that_takes_nothing_we_send_is_dropped() {
    let mut core = core(2, Bitfield::full(2), true);
    let reader = connect(&mut core, 1);
    let stalled = connect(&mut core, 2);
    let start = Instant::now();
    // Both have data waiting (their greeting at least); the writer took it from the outbox.
    for key in [reader, stalled] {
        let waiting = core.peers[key].outbox.len();
        sent(&mut core, key);
        core.on_write_progress(key, waiting, false, start);
    }
    core.tick_at(start + Duration::from_secs(30));
    core.on_send_progress(reader, start + Duration::from_secs(50));
    core.tick_at(start + Duration::from_secs(61));
    assert!(
        core.peers[stalled].closing,
        "nothing taken for 61 s while data waited"
    );
    assert!(!core.peers[reader].closing, "it reads, however slowly");
    let idle = connect(&mut core, 3);
    sent(&mut core, idle);
    core.tick_at(start + Duration::from_secs(200));
    assert!(
        !core.peers[idle].closing,
        "nothing waiting for it: not stalled"
    );
}
