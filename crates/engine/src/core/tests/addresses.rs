//! Connection and address limits (issue 15, item 9): one host cannot take every slot, bans
//! cover an IPv6 host's /64 and IPv4-mapped addresses, and a flood of dead addresses cannot
//! shut later peers out of the known-peer list. Every test here failed before its fix, except
//! where a comment says it guards the fix itself.

use std::collections::HashSet;

use super::*;
use crate::core::Reject;
use crate::peer_addr::BanKey;

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn handshake(core: &mut Core, at: &str, id: u8, outgoing: bool) -> Result<PeerKey, Reject> {
    let id = PeerId::new([id; 20]);
    core.on_handshake(addr(at), id, Extensions::NONE, outgoing, Instant::now())
}

fn incoming(core: &mut Core, from: &str, id: u8) -> Result<PeerKey, Reject> {
    handshake(core, from, id, false)
}

fn outgoing(core: &mut Core, to: &str, id: u8) -> Result<PeerKey, Reject> {
    handshake(core, to, id, true)
}

/// The addresses dialled since the last call.
fn dials(core: &mut Core) -> Vec<SocketAddr> {
    core.actions
        .drain(..)
        .filter_map(|a| match a {
            Action::Connect(addr) => Some(addr),
            _ => None,
        })
        .collect()
}

/// `n` distinct addresses in 10.1.0.0/16 (nothing listens there in these tests).
fn blackholed(n: usize) -> Vec<SocketAddr> {
    (0..n)
        .map(|i| SocketAddr::from(([10, 1, (i / 250) as u8, (i % 250) as u8 + 1], 6881)))
        .collect()
}

#[test]
fn one_ip_gets_one_connection_per_torrent() {
    let mut core = core(4, Bitfield::new(4), false);
    incoming(&mut core, "10.0.0.5:40000", 1).unwrap();
    assert_eq!(
        incoming(&mut core, "10.0.0.5:40001", 2),
        Err(Reject::TooManyFromIp)
    );
    // The same host over the dual-stack listener is the same IP.
    assert_eq!(
        incoming(&mut core, "[::ffff:10.0.0.5]:40002", 3),
        Err(Reject::TooManyFromIp)
    );
    let v6 = incoming(&mut core, "[2001:db8::1]:40000", 4).unwrap();
    assert_eq!(
        incoming(&mut core, "[2001:db8::1]:40001", 5),
        Err(Reject::TooManyFromIp)
    );
    incoming(&mut core, "10.0.0.6:40000", 6).unwrap();
    // Once the connection is gone the host may come back.
    core.on_closed(v6, Instant::now());
    incoming(&mut core, "[2001:db8::1]:40003", 7).unwrap();
}

#[test]
fn loopback_is_exempt_from_the_per_ip_limit() {
    // Guards the exemption: every peer of the integration tests is 127.0.0.1 or ::1.
    let mut core = core(4, Bitfield::new(4), false);
    for id in 1..=5 {
        incoming(
            &mut core,
            &format!("127.0.0.1:{}", 40000 + u16::from(id)),
            id,
        )
        .unwrap();
    }
    incoming(&mut core, "[::1]:40000", 6).unwrap();
    incoming(&mut core, "[::1]:40001", 7).unwrap();
}

#[test]
fn a_host_is_dialled_once_however_many_ports_it_lists() {
    let mut core = core(4, Bitfield::new(4), false);
    let ports: Vec<SocketAddr> = (1..=50)
        .map(|port| SocketAddr::from(([10, 0, 0, 9], 6000 + port)))
        .chain([addr("[::ffff:10.0.0.9]:7000"), addr("10.0.0.10:6881")])
        .collect();
    core.add_peers(&ports, Instant::now());
    let dialled = dials(&mut core);
    assert_eq!(dialled.len(), 2, "{dialled:?}");
    assert!(dialled.contains(&addr("10.0.0.10:6881")));
}

#[test]
fn mapped_addresses_are_known_once_as_ipv4() {
    let mut core = core(4, Bitfield::new(4), false);
    let now = Instant::now();
    core.add_peers(&[addr("[::ffff:10.0.0.11]:6881")], now);
    assert_eq!(dials(&mut core), vec![addr("10.0.0.11:6881")]);
    core.add_peers(&[addr("10.0.0.11:6881")], now);
    assert!(
        dials(&mut core).is_empty(),
        "the same address, already dialling"
    );
}

#[test]
fn an_ipv6_ban_covers_the_whole_64() {
    let mut core = core(4, Bitfield::new(4), false);
    let key = incoming(&mut core, "[2001:db8:0:7::1]:40000", 1).unwrap();
    let (peer_addr, id) = (core.peers[key].addr, core.peers[key].id);
    core.ban(BanKey::of(peer_addr, id), "test");
    assert!(core.peers[key].closing);
    assert_eq!(
        incoming(&mut core, "[2001:db8:0:7:aaaa:bbbb:cccc:dddd]:40000", 2),
        Err(Reject::Banned)
    );
    incoming(&mut core, "[2001:db8:0:8::1]:40000", 3).unwrap();
    // Dialling another address in the banned /64 is not even tried.
    core.actions.clear();
    core.add_peers(&[addr("[2001:db8:0:7::99]:6881")], Instant::now());
    assert!(dials(&mut core).is_empty());
}

#[test]
fn a_ban_covers_the_ipv4_mapped_form_of_an_address() {
    let mut core = core(4, Bitfield::new(4), false);
    let key = incoming(&mut core, "10.0.0.7:40000", 1).unwrap();
    let (peer_addr, id) = (core.peers[key].addr, core.peers[key].id);
    core.ban(BanKey::of(peer_addr, id), "test");
    core.on_closed(key, Instant::now());
    assert_eq!(
        incoming(&mut core, "[::ffff:10.0.0.7]:40001", 2),
        Err(Reject::Banned)
    );
}

#[test]
fn loopback_bans_stay_by_peer_id() {
    let mut core = core(4, Bitfield::new(4), false);
    let key = incoming(&mut core, "127.0.0.1:40000", 1).unwrap();
    let (peer_addr, id) = (core.peers[key].addr, core.peers[key].id);
    core.ban(BanKey::of(peer_addr, id), "test");
    incoming(&mut core, "127.0.0.1:40001", 2).unwrap();
    assert_eq!(
        incoming(&mut core, "[::ffff:127.0.0.1]:40002", 1),
        Err(Reject::Banned)
    );
}

#[test]
fn a_flood_of_dead_addresses_does_not_shut_out_later_peers() {
    let mut core = core(4, Bitfield::new(4), false);
    let mut now = Instant::now();
    core.add_peers(&blackholed(2000), now);
    let good: Vec<SocketAddr> = (1..=10)
        .map(|n| SocketAddr::from(([10, 2, 0, n], 6881)))
        .collect();
    core.add_peers(&good, now);
    // Every dial of a blackholed address times out after the connect timeout; the good ones
    // answer. Dials go oldest first, so the good ones are reached after the 2,000 dead ones
    // were each tried once: 20 rounds of 100 dials.
    let mut reached = HashSet::new();
    for _ in 0..25 {
        for dialled in dials(&mut core) {
            if good.contains(&dialled) {
                reached.insert(dialled);
            } else {
                core.on_connect_failed(dialled, now);
            }
        }
        if reached.len() == good.len() {
            break;
        }
        now += Duration::from_secs(10);
        core.tick_at(now);
    }
    assert_eq!(reached.len(), good.len(), "good peers dialled: {reached:?}");
}

#[test]
fn an_address_that_keeps_failing_is_forgotten() {
    let mut core = core(4, Bitfield::new(4), false);
    let dead = addr("10.0.0.20:6881");
    let mut now = Instant::now();
    core.add_peers(&[dead], now);
    let mut attempts = 0;
    for _ in 0..100 {
        if dials(&mut core).contains(&dead) {
            attempts += 1;
            core.on_connect_failed(dead, now);
        }
        now += Duration::from_secs(300);
        core.tick_at(now);
    }
    assert_eq!(attempts, TorrentConf::default().max_peer_failures);
    // Forgotten, not banned: a tracker may hand it out again.
    core.add_peers(&[dead], now);
    assert_eq!(dials(&mut core), vec![dead]);
}

#[test]
fn eviction_never_drops_a_connected_or_connecting_peer() {
    // Guards the eviction itself: before it nothing was ever dropped.
    let mut core = core(4, Bitfield::new(4), false);
    let mut now = Instant::now();
    let (connected, connecting) = (addr("10.0.0.30:6881"), addr("10.0.0.31:6881"));
    core.add_peers(&[connected, connecting], now);
    assert_eq!(dials(&mut core).len(), 2);
    let key = core
        .on_handshake(
            connected,
            PeerId::new([30; 20]),
            Extensions::NONE,
            true,
            now,
        )
        .unwrap();
    // Flood the list several times over while one is connected and one connecting.
    for round in 0..3u8 {
        let flood: Vec<SocketAddr> = (0..2000u16)
            .map(|i| {
                let [hi, lo] = (i + 1).to_be_bytes();
                SocketAddr::from(([10, 3 + round, hi, lo], 6881))
            })
            .collect();
        core.add_peers(&flood, now);
        for dialled in dials(&mut core) {
            core.on_connect_failed(dialled, now);
        }
    }
    core.on_connect_failed(connecting, now);
    now += Duration::from_secs(3600);
    core.on_closed(key, now);
    let mut reached = HashSet::new();
    for _ in 0..50 {
        now += Duration::from_secs(10);
        core.tick_at(now);
        for dialled in dials(&mut core) {
            if dialled == connected || dialled == connecting {
                reached.insert(dialled);
            } else {
                core.on_connect_failed(dialled, now);
            }
        }
    }
    assert!(reached.contains(&connected), "connected peer kept");
    assert!(reached.contains(&connecting), "connecting peer kept");
}

#[test]
fn when_both_ends_dial_each_other_on_one_port_both_keep_the_connection_the_greater_id_opened() {
    // Both listen on 6881. Our id is all zeros: a peer's id is greater, so its connection to us
    // is the one kept.
    let mut one = core(4, Bitfield::new(4), false);
    let ours = outgoing(&mut one, "10.0.0.7:6881", 7).unwrap();
    let theirs = incoming(&mut one, "10.0.0.7:50000", 7).unwrap();
    assert!(one.peers[ours].closing, "our connection is dropped");
    assert!(!one.peers[theirs].closing);
    // The other way round, the connection already kept stays and the newcomer is refused.
    let mut other = core(4, Bitfield::new(4), false);
    incoming(&mut other, "10.0.0.8:50000", 8).unwrap();
    let again = outgoing(&mut other, "10.0.0.8:6881", 8);
    assert_eq!(again, Err(Reject::Duplicate));
    // Two connections in the same direction are a duplicate whatever the ids.
    assert_eq!(
        incoming(&mut other, "10.0.0.8:50001", 8),
        Err(Reject::Duplicate)
    );
}

#[test]
fn a_peer_with_a_smaller_id_than_ours_keeps_our_connection() {
    let mut core = Core::new(
        CoreInit {
            our_id: PeerId::new([0x80; 20]),
            ..init_of(metainfo(4), Bitfield::new(4), false, TorrentConf::default())
        },
        Instant::now(),
    );
    let theirs = incoming(&mut core, "10.0.0.9:50000", 9).unwrap();
    let ours = outgoing(&mut core, "10.0.0.9:6881", 9).unwrap();
    assert!(core.peers[theirs].closing, "their connection is dropped");
    assert!(!core.peers[ours].closing);
}

#[test]
fn between_crossed_connections_the_end_with_the_lower_port_keeps_its_dial() {
    // We listen on 6881 and the peer on 7000: our dial stays whatever the ids.
    let mut one = core(4, Bitfield::new(4), false);
    let ours = outgoing(&mut one, "10.0.0.6:7000", 6).unwrap();
    assert_eq!(
        incoming(&mut one, "10.0.0.6:50000", 6),
        Err(Reject::Duplicate)
    );
    assert!(!one.peers[ours].closing);
    // The peer listens on 6000, below our port: its dial replaces ours.
    let mut two = core(4, Bitfield::new(4), false);
    let ours = outgoing(&mut two, "10.0.0.6:6000", 6).unwrap();
    let theirs = incoming(&mut two, "10.0.0.6:50000", 6).unwrap();
    assert!(two.peers[ours].closing && !two.peers[theirs].closing);
}
