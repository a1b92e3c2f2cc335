//! BEP 11 peer exchange through the core: what we learn, what we tell, and the limits.

use super::*;
use cratetorrent_wire::{ExtendedHandshake, PexFlags, PexMessage};

/// A peer that speaks ut_pex (as id 5) and listens on `port`.
fn pex_peer(core: &mut Core, n: u8, outgoing: bool, port: Option<u16>, now: Instant) -> PeerKey {
    let addr: SocketAddr = format!("10.0.0.{n}:{}", 40000 + u16::from(n))
        .parse()
        .unwrap();
    let theirs = ExtendedHandshake {
        extensions: [("ut_pex".to_string(), 5)].into(),
        listen_port: port,
        ..ExtendedHandshake::default()
    };
    extended_peer(core, n, addr, outgoing, &theirs, now)
}

fn pex(message: &PexMessage) -> Message {
    Message::Extended {
        id: crate::extensions::our_map(false, true)["ut_pex"],
        payload: message.encode(),
    }
}

fn pex_sent(core: &mut Core, key: PeerKey) -> Vec<PexMessage> {
    sent(core, key)
        .into_iter()
        .filter_map(|m| match m {
            Message::Extended { id: 5, payload } => PexMessage::decode(&payload).ok(),
            _ => None,
        })
        .collect()
}

fn addrs(range: std::ops::Range<u32>) -> Vec<(SocketAddr, PexFlags)> {
    range
        .map(|i| {
            let ip = std::net::Ipv4Addr::from(0x0a01_0000 + i);
            (SocketAddr::new(ip.into(), 6881), PexFlags::default())
        })
        .collect()
}

#[test]
fn peers_we_hear_of_are_dialled_and_floods_are_dropped() {
    let mut core = core(4, Bitfield::new(4), false);
    let now = Instant::now();
    let key = pex_peer(&mut core, 1, true, None, now);
    let _ = std::iter::from_fn(|| core.poll_action()).count();
    // The first message may list many peers; junk addresses are not dialled.
    let mut first = PexMessage {
        added: addrs(0..120),
        dropped: Vec::new(),
    };
    first
        .added
        .push(("0.0.0.0:6881".parse().unwrap(), PexFlags::default()));
    first
        .added
        .push(("10.9.9.9:0".parse().unwrap(), PexFlags::SEED));
    core.on_message(key, pex(&first), now);
    let dials = std::iter::from_fn(|| core.poll_action())
        .filter(|a| matches!(a, Action::Connect(_)))
        .count();
    assert!(dials > 0, "new peers are dialled");
    assert_eq!(
        core.known.len(),
        120,
        "every dialable address known, junk left out"
    );
    // Too soon after the first: the sender is dropped.
    let again = PexMessage {
        added: addrs(200..201),
        dropped: Vec::new(),
    };
    core.on_message(key, pex(&again), now + Duration::from_secs(10));
    assert!(!core.is_open(key), "a PEX flood");
    // A minute later, more than 50 added is over the limit.
    let key = pex_peer(&mut core, 2, true, None, now);
    core.on_message(key, pex(&again), now);
    let big = PexMessage {
        added: addrs(300..351),
        dropped: Vec::new(),
    };
    core.on_message(key, pex(&big), now + Duration::from_secs(61));
    assert!(!core.is_open(key), "51 added after the first message");
}

#[test]
fn each_peer_hears_of_the_others_at_most_once_a_minute_then_of_who_left() {
    let mut core = core(4, Bitfield::new(4), false);
    let now = Instant::now();
    let a = pex_peer(&mut core, 1, true, None, now);
    let b = pex_peer(&mut core, 2, false, Some(7000), now);
    // Connected to us and never said where it listens: not advertised.
    let c = pex_peer(&mut core, 3, false, None, now);
    for key in [a, b, c] {
        let _ = sent(&mut core, key);
    }
    core.tick_at(now + Duration::from_secs(1));
    let to_c = pex_sent(&mut core, c);
    assert_eq!(to_c.len(), 1);
    let told: Vec<SocketAddr> = to_c[0].added.iter().map(|&(addr, _)| addr).collect();
    assert_eq!(told.len(), 2);
    assert!(told.contains(&"10.0.0.1:40001".parse().unwrap()));
    assert!(
        told.contains(&"10.0.0.2:7000".parse().unwrap()),
        "at its listen port"
    );
    let flags_of_a = to_c[0]
        .added
        .iter()
        .find(|(addr, _)| addr.port() == 40001)
        .unwrap()
        .1;
    assert!(flags_of_a.contains(PexFlags::REACHABLE), "we dialled it");
    let to_a = pex_sent(&mut core, a);
    assert_eq!(to_a[0].added.len(), 1, "not itself, not the silent one");
    // B leaves: nobody hears before a minute has passed, then A hears it dropped.
    let _ = core.handle(crate::core::Input::Closed(b), now + Duration::from_secs(2));
    core.tick_at(now + Duration::from_secs(30));
    assert!(pex_sent(&mut core, a).is_empty(), "at most once a minute");
    core.tick_at(now + Duration::from_secs(62));
    let later = pex_sent(&mut core, a);
    assert_eq!(later.len(), 1);
    assert_eq!(
        later[0].dropped,
        ["10.0.0.2:7000".parse::<SocketAddr>().unwrap()]
    );
    assert!(later[0].added.is_empty());
}

#[test]
fn a_private_torrent_or_pex_turned_off_exchanges_no_peers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.bin");
    std::fs::write(&path, vec![1u8; 4 * PIECE as usize]).unwrap();
    let bytes = cratetorrent_metainfo::TorrentBuilder::new(&path)
        .piece_length(PIECE)
        .private(true)
        .build()
        .unwrap();
    let private = Metainfo::from_bytes(&bytes).unwrap();
    let off = TorrentConf {
        pex: false,
        ..TorrentConf::default()
    };
    for mut core in [
        core_of(private, Bitfield::new(4), false, TorrentConf::default()),
        core_of(metainfo(4), Bitfield::new(4), false, off),
    ] {
        let now = Instant::now();
        let a = pex_peer(&mut core, 1, true, None, now);
        let _b = pex_peer(&mut core, 2, true, None, now);
        let greeting = sent(&mut core, a);
        let Some(Message::Extended { payload, .. }) = greeting.first() else {
            panic!("no extended handshake");
        };
        let ours = ExtendedHandshake::decode(payload).unwrap();
        assert!(!ours.extensions.contains_key("ut_pex"), "not offered");
        core.on_message(
            a,
            pex(&PexMessage {
                added: addrs(0..3),
                dropped: Vec::new(),
            }),
            now,
        );
        assert_eq!(core.known.len(), 0, "ignored");
        core.tick_at(now + Duration::from_secs(1));
        assert!(pex_sent(&mut core, a).is_empty(), "nothing sent");
    }
}
