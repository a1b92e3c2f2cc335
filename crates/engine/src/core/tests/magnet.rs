//! A torrent added by magnet link, without sockets: the metadata from peers (one of them
//! lying), what peers said meanwhile, and the download after.

use super::*;
use crate::core::{Handled, Input, MagnetSource};
use cratetorrent_wire::{ExtendedHandshake, MetadataMessage};

fn magnet_core(info_hash: cratetorrent_metainfo::InfoHash) -> Core {
    magnet_core_selecting(info_hash, Vec::new())
}

/// A magnet link's core whose link has `so` = `select_only`.
fn magnet_core_selecting(
    info_hash: cratetorrent_metainfo::InfoHash,
    select_only: Vec<std::ops::RangeInclusive<usize>>,
) -> Core {
    Core::new(
        CoreInit {
            id: TorrentId(1),
            source: Source::Magnet(MagnetSource {
                info_hash,
                trackers: vec![vec!["http://t/announce".into()]],
                web_seeds: Vec::new(),
                select_only,
            }),
            our_id: PeerId::new([0; 20]),
            listen_port: 6881,
            dht_port: None,
            conf: TorrentConf::default(),
            seed_only: false,
            have: Bitfield::new(0),
            seed: 1,
        },
        Instant::now(),
    )
}

/// A peer speaking BEP 10 that announces ut_metadata (as id 3) and `size`.
fn metadata_peer(core: &mut Core, n: u8, size: u64, now: Instant) -> PeerKey {
    let addr: SocketAddr = format!("10.0.0.{n}:6881").parse().unwrap();
    let theirs = ExtendedHandshake {
        extensions: [("ut_metadata".to_string(), 3)].into(),
        metadata_size: Some(size),
        ..ExtendedHandshake::default()
    };
    extended_peer(core, n, addr, true, &theirs, now)
}

/// The ut_metadata requests in what the core sent the peer.
fn metadata_requests(core: &mut Core, key: PeerKey) -> Vec<u32> {
    sent(core, key)
        .into_iter()
        .filter_map(|m| match m {
            Message::Extended { id: 3, payload } => match MetadataMessage::decode(&payload) {
                Ok(Some(MetadataMessage::Request { piece })) => Some(piece),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn data(piece: u32, info: &Bytes, data: Bytes) -> Message {
    let ours = crate::extensions::our_map(false, true)["ut_metadata"];
    Message::Extended {
        id: ours,
        payload: MetadataMessage::Data {
            piece,
            total_size: info.len() as u64,
            data,
        }
        .encode(),
    }
}

#[test]
fn metadata_from_a_liar_is_refetched_elsewhere_and_the_torrent_takes_shape() {
    let metainfo = metainfo(8);
    let info = metainfo.info_bytes().clone();
    let size = info.len() as u64;
    let mut core = magnet_core(metainfo.info_hash());
    let now = Instant::now();
    assert_eq!(core.stats().state, crate::TorrentState::Metadata);
    assert_eq!(core.trackers(), [["http://t/announce"]]);
    assert!(core.announce_state().left > 0, "not a seed to trackers");
    let liar = metadata_peer(&mut core, 1, size, now);
    assert_eq!(metadata_requests(&mut core, liar), [0]);
    let honest = metadata_peer(&mut core, 2, size, now);
    assert!(
        metadata_requests(&mut core, honest).is_empty(),
        "one piece, asked once"
    );
    // Before the metadata, the honest peer says it has everything and unchokes us.
    core.on_message(
        honest,
        Message::Bitfield(Bytes::copy_from_slice(Bitfield::full(8).as_bytes())),
        now,
    );
    core.on_message(honest, Message::Unchoke, now);
    assert!(
        core.is_open(honest),
        "kept for later, not a malformed bitfield"
    );
    let garbage = Bytes::from(vec![b'x'; info.len()]);
    core.on_message(liar, data(0, &info, garbage), now);
    assert!(
        !core.is_open(liar),
        "a lone sender of bad metadata is banned"
    );
    assert_eq!(metadata_requests(&mut core, honest), [0], "asked elsewhere");
    core.on_message(honest, data(0, &info, info.clone()), now);
    let alerts: Vec<Alert> = std::iter::from_fn(|| core.poll_alert()).collect();
    assert!(alerts.iter().any(|a| matches!(
        a,
        Alert::MetadataReceived { metainfo: m, .. } if m.name() == "t.bin" && m.piece_count() == 8
    )));
    let actions: Vec<Action> = std::iter::from_fn(|| core.poll_action()).collect();
    assert!(
        actions.iter().any(
            |a| matches!(a, Action::MetadataReady(m) if m.info_hash() == metainfo.info_hash())
        )
    );
    // The early bitfield now counts, and we are interested, but ask nothing until the
    // storage is open.
    assert_eq!(core.picker.availability(5), 1);
    let greeting = sent(&mut core, honest);
    assert!(greeting.contains(&Message::Interested));
    assert!(requests(&greeting).is_empty());
    assert_eq!(
        core.handle(Input::StorageReady(Bitfield::new(8)), now),
        Handled::Done
    );
    assert!(
        !requests(&sent(&mut core, honest)).is_empty(),
        "downloading"
    );
    assert_eq!(core.stats().state, crate::TorrentState::Downloading);
}

#[test]
fn peers_announcing_a_size_over_the_limit_or_another_size_are_not_asked() {
    let metainfo = metainfo(4);
    let size = metainfo.info_bytes().len() as u64;
    let mut core = magnet_core(metainfo.info_hash());
    let now = Instant::now();
    let huge = metadata_peer(&mut core, 1, 1 << 40, now);
    assert!(metadata_requests(&mut core, huge).is_empty());
    let first = metadata_peer(&mut core, 2, size, now);
    assert_eq!(metadata_requests(&mut core, first), [0]);
    let other = metadata_peer(&mut core, 3, size + 1, now);
    // The first piece goes elsewhere when its peer leaves, but not to a peer of another size.
    let _ = core.handle(Input::Closed(first), now);
    assert!(metadata_requests(&mut core, other).is_empty());
    let again = metadata_peer(&mut core, 4, size, now);
    assert_eq!(metadata_requests(&mut core, again), [0]);
    // Unanswered for the timeout: asked of another peer.
    let later = metadata_peer(&mut core, 5, size, now);
    let after = now + core.conf.metadata_request_timeout + Duration::from_secs(1);
    core.tick_at(after);
    assert_eq!(metadata_requests(&mut core, later), [0]);
}

#[test]
fn a_magnet_links_so_selects_the_files_once_the_metadata_comes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");
    std::fs::create_dir(&root).unwrap();
    for name in ["a", "b", "c"] {
        std::fs::write(root.join(name), vec![1u8; PIECE as usize]).unwrap();
    }
    let bytes = TorrentBuilder::new(&root)
        .piece_length(PIECE)
        .build()
        .unwrap();
    let metainfo = Metainfo::from_bytes(&bytes).unwrap();
    assert_eq!(metainfo.files().len(), 3);
    let info = metainfo.info_bytes().clone();
    let mut core = magnet_core_selecting(metainfo.info_hash(), vec![1..=1, 7..=9]);
    let now = Instant::now();
    let peer = metadata_peer(&mut core, 1, info.len() as u64, now);
    assert_eq!(metadata_requests(&mut core, peer), [0]);
    core.on_message(peer, data(0, &info, info.clone()), now);
    let priorities: Vec<u8> = (0..3).map(|p| core.picker.priority(p)).collect();
    assert_eq!(
        priorities,
        [0, crate::picker::DEFAULT_PRIORITY, 0],
        "only file 1"
    );
}
