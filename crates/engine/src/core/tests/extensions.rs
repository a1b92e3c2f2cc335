//! BEP 10 extensions through the core: the registry's ids, and what each extension does.

use super::*;
use std::net::IpAddr;

use crate::core::our_extensions;
use cratetorrent_wire::{EXTENDED_HANDSHAKE_ID, ExtendedHandshake, MetadataMessage};

#[test]
fn lt_donthave_takes_a_piece_off_a_peer_and_withdraws_our_requests_for_it() {
    let mut core = core(4, Bitfield::new(4), false);
    let now = Instant::now();
    let addr: SocketAddr = "10.0.0.9:6881".parse().unwrap();
    let id = PeerId::new([9; 20]);
    let key = core
        .on_handshake(addr, id, crate::core::our_extensions(false), true, now)
        .unwrap();
    has_all_and_unchokes(&mut core, key);
    let asked = requests(&sent(&mut core, key));
    let piece = asked[0].piece;
    let ours = crate::extensions::our_map(false, true)["lt_donthave"];
    let donthave = |payload: &[u8]| Message::Extended {
        id: ours,
        payload: Bytes::copy_from_slice(payload),
    };
    core.on_message(
        key,
        Message::Extended {
            id: 200,
            payload: Bytes::new(),
        },
        now,
    );
    assert!(
        core.is_open(key),
        "an extension id we never assigned is ignored"
    );
    core.on_message(key, donthave(&piece.to_be_bytes()), now);
    assert_eq!(core.picker.availability(piece), 0);
    let other = (piece + 1) % 4;
    assert_eq!(core.picker.availability(other), 1, "a seed until then");
    assert!(
        core.peers[key]
            .requests
            .iter()
            .all(|r| r.block.piece != piece),
        "our requests for it are withdrawn"
    );
    assert!(
        sent(&mut core, key)
            .iter()
            .any(|m| matches!(m, Message::Cancel(b) if b.piece == piece))
    );
    core.check_availability();
    core.on_message(key, donthave(&99u32.to_be_bytes()), now);
    assert!(!core.is_open(key), "a piece past the end");
    let other: SocketAddr = "10.0.0.8:6881".parse().unwrap();
    let key = core
        .on_handshake(
            other,
            PeerId::new([8; 20]),
            crate::core::our_extensions(false),
            true,
            now,
        )
        .unwrap();
    core.on_message(key, donthave(b"abc"), now);
    assert!(!core.is_open(key), "a malformed payload");
}

#[test]
fn ut_metadata_requests_are_answered_with_views_of_the_info_dictionary() {
    let mut core = core(4, Bitfield::full(4), false);
    let now = Instant::now();
    let addr: SocketAddr = "10.0.0.9:6881".parse().unwrap();
    let key = core
        .on_handshake(
            addr,
            PeerId::new([9; 20]),
            crate::core::our_extensions(false),
            false,
            now,
        )
        .unwrap();
    let info = core.metainfo.as_ref().unwrap().info_bytes().clone();
    let greeting = sent(&mut core, key);
    let Some(Message::Extended { payload, .. }) = greeting
        .iter()
        .find(|m| matches!(m, Message::Extended { id: 0, .. }))
    else {
        panic!("no extended handshake in {greeting:?}");
    };
    let ours = ExtendedHandshake::decode(payload).unwrap();
    assert_eq!(ours.metadata_size, Some(info.len() as u64));
    let theirs = ExtendedHandshake {
        extensions: [("ut_metadata".to_string(), 5)].into(),
        ..ExtendedHandshake::default()
    };
    core.on_message(
        key,
        Message::Extended {
            id: 0,
            payload: theirs.encode(),
        },
        now,
    );
    let ask = |piece| Message::Extended {
        id: ours.extensions["ut_metadata"],
        payload: MetadataMessage::Request { piece }.encode(),
    };
    core.on_message(key, ask(0), now);
    core.on_message(key, ask(1), now);
    let answers: Vec<MetadataMessage> = sent(&mut core, key)
        .into_iter()
        .filter_map(|m| match m {
            Message::Extended { id: 5, payload } => MetadataMessage::decode(&payload).unwrap(),
            _ => None,
        })
        .collect();
    assert_eq!(
        answers,
        [
            MetadataMessage::Data {
                piece: 0,
                total_size: info.len() as u64,
                data: info.clone(),
            },
            MetadataMessage::Reject { piece: 1 },
        ],
        "the whole (small) dictionary, then past its end"
    );
    core.on_message(
        key,
        Message::Extended {
            id: ours.extensions["ut_metadata"],
            payload: Bytes::from_static(b"d8:msg_typei0ee"),
        },
        now,
    );
    assert!(!core.is_open(key), "a malformed request");
}

#[test]
fn dht_port_messages_go_both_ways_once_and_yourip_is_a_vote() {
    let mut core = core(4, Bitfield::new(4), false);
    core.dht_port = Some(7000);
    let now = Instant::now();
    let addr: SocketAddr = "10.0.0.9:6881".parse().unwrap();
    let key = core
        .on_handshake(addr, PeerId::new([9; 20]), our_extensions(true), true, now)
        .unwrap();
    assert!(
        sent(&mut core, key).contains(&Message::Port(7000)),
        "we tell a DHT peer our node's port"
    );
    while core.poll_action().is_some() {}
    core.on_message(key, Message::Port(9000), now);
    core.on_message(key, Message::Port(9001), now);
    let nodes: Vec<SocketAddr> = std::iter::from_fn(|| core.poll_action())
        .filter_map(|a| match a {
            Action::DhtNode(node) => Some(node),
            _ => None,
        })
        .collect();
    assert_eq!(nodes, ["10.0.0.9:9000".parse::<SocketAddr>().unwrap()]);
    let handshake = ExtendedHandshake {
        your_ip: Some("1.2.3.4".parse().unwrap()),
        ..ExtendedHandshake::default()
    };
    core.on_message(
        key,
        Message::Extended {
            id: EXTENDED_HANDSHAKE_ID,
            payload: handshake.encode(),
        },
        now,
    );
    assert!(std::iter::from_fn(|| core.poll_action()).any(|a| matches!(
        a,
        Action::ExternalIp { ip, voter } if ip == IpAddr::from([1, 2, 3, 4]) && voter == addr.ip()
    )));
    // Without the DHT bit, a port message is ignored.
    let other: SocketAddr = "10.0.0.8:6881".parse().unwrap();
    let key = core
        .on_handshake(
            other,
            PeerId::new([8; 20]),
            our_extensions(false),
            true,
            now,
        )
        .unwrap();
    assert!(!sent(&mut core, key).contains(&Message::Port(7000)));
    core.on_message(key, Message::Port(9000), now);
    assert!(!std::iter::from_fn(|| core.poll_action()).any(|a| matches!(a, Action::DhtNode(_))));
}
