#![allow(clippy::unwrap_used, clippy::cast_possible_truncation, clippy::panic)]

use std::net::Ipv4Addr;

use super::*;
use crate::krpc::{CompactNode, ErrorMessage, Query, QueryMessage, Response};

/// A few nodes on a lossless, instant network.
struct Net {
    nodes: Vec<(SocketAddr, Dht)>,
    now: Instant,
    events: Vec<(usize, Event)>,
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::new(
        Ipv4Addr::new(10, 1 + (i / 200) as u8, (i % 200) as u8, 1).into(),
        6881,
    )
}

impl Net {
    fn new(count: usize) -> Self {
        let now = Instant::now();
        let nodes = (0..count)
            .map(|i| {
                let config = Config {
                    bootstrap: if i == 0 { vec![] } else { vec![addr(0)] },
                    ..Config::default()
                };
                (addr(i), Dht::new(config, now, i as u64))
            })
            .collect();
        Self {
            nodes,
            now,
            events: Vec::new(),
        }
    }

    /// Delivers datagrams until none is left, then advances time by `step`, `rounds` times.
    fn run(&mut self, rounds: usize, step: Duration) {
        for _ in 0..rounds {
            loop {
                let mut moved = false;
                for i in 0..self.nodes.len() {
                    while let Some(t) = self.nodes[i].1.poll_transmit() {
                        moved = true;
                        let from = self.nodes[i].0;
                        if let Some(to) = self.nodes.iter_mut().find(|(a, _)| *a == t.to) {
                            to.1.handle_datagram(self.now, from, &t.datagram);
                        }
                    }
                    while let Some(event) = self.nodes[i].1.poll_event() {
                        self.events.push((i, event));
                    }
                }
                if !moved {
                    break;
                }
            }
            self.now += step;
            for (_, node) in &mut self.nodes {
                if node.poll_timeout() <= self.now {
                    node.handle_timeout(self.now);
                }
            }
        }
    }

    fn peers_found(&self, node: usize) -> Vec<SocketAddr> {
        self.events
            .iter()
            .filter(|(i, _)| *i == node)
            .filter_map(|(_, e)| match e {
                Event::Peers { peers, .. } => Some(peers.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }
}

#[test]
fn nodes_bootstrap_announce_and_find_each_other() {
    let mut net = Net::new(60);
    net.run(30, Duration::from_millis(500));
    for (_, node) in &net.nodes {
        assert!(node.stats().nodes_v4 >= K, "{:?}", node.stats());
    }
    let torrent = NodeId([0x42; 20]);
    let now = net.now;
    net.nodes[17].1.announce(torrent, Some(5000), now);
    net.nodes[33].1.announce(torrent, None, now);
    net.run(5, Duration::from_millis(200));
    let announced: usize = net
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::LookupDone {
                kind: LookupKind::Announce,
                announced,
                ..
            } => Some(*announced),
            _ => None,
        })
        .sum();
    assert!(announced >= 2 * K - 2, "{announced}");
    let now = net.now;
    net.nodes[50].1.get_peers(torrent, now);
    net.run(5, Duration::from_millis(200));
    let mut found = net.peers_found(50);
    found.sort();
    let mut expected = vec![SocketAddr::new(addr(17).ip(), 5000), addr(33)];
    expected.sort();
    assert_eq!(found, expected);
}

#[test]
fn queries_are_answered_per_the_bep_and_unknown_methods_get_204() {
    let now = Instant::now();
    let mut dht = Dht::new(Config::default(), now, 1);
    let from: SocketAddr = "10.9.9.9:1000".parse().unwrap();
    let ask =
        |q: Query| Message::Query(QueryMessage::new(b"tt".to_vec(), NodeId([5; 20]), q)).encode();
    dht.handle_datagram(now, from, &ask(Query::Unknown("vote".into())));
    let answer = |dht: &mut Dht| {
        let t = std::iter::from_fn(|| dht.poll_transmit())
            .find(|t| {
                t.to == from && !matches!(Message::decode(&t.datagram), Ok(Message::Query(_)))
            })
            .unwrap();
        Message::decode(&t.datagram).unwrap()
    };
    match answer(&mut dht) {
        Message::Error(ErrorMessage { code, .. }) => assert_eq!(code, 204),
        other => panic!("{other:?}"),
    }
    let ih = NodeId([9; 20]);
    dht.handle_datagram(now, from, &ask(Query::GetPeers { info_hash: ih }));
    let token = match answer(&mut dht) {
        Message::Response(Response {
            token: Some(token),
            values,
            ip,
            ..
        }) => {
            assert!(values.is_empty());
            assert_eq!(ip, Some(from));
            token
        }
        other => panic!("{other:?}"),
    };
    let announce = |token: Vec<u8>| Query::AnnouncePeer {
        info_hash: ih,
        port: 7000,
        implied_port: false,
        token,
    };
    dht.handle_datagram(now, from, &ask(announce(b"forged".to_vec())));
    assert!(matches!(
        answer(&mut dht),
        Message::Error(ErrorMessage { code: 203, .. })
    ));
    dht.handle_datagram(now, from, &ask(announce(token)));
    assert!(matches!(answer(&mut dht), Message::Response(_)));
    let other: SocketAddr = "10.8.8.8:1000".parse().unwrap();
    dht.handle_datagram(now, other, &ask(Query::GetPeers { info_hash: ih }));
    let t = std::iter::from_fn(|| dht.poll_transmit())
        .find(|t| t.to == other)
        .unwrap();
    match Message::decode(&t.datagram).unwrap() {
        Message::Response(r) => {
            assert_eq!(r.values, ["10.9.9.9:7000".parse::<SocketAddr>().unwrap()])
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(dht.stats().peers_stored, 1);
}

#[test]
fn floods_are_throttled_and_junk_is_counted() {
    let now = Instant::now();
    let mut dht = Dht::new(Config::default(), now, 1);
    let from: SocketAddr = "10.9.9.9:1000".parse().unwrap();
    let ping = Message::Query(QueryMessage::new(
        b"tt".to_vec(),
        NodeId([5; 20]),
        Query::Ping,
    ))
    .encode();
    for _ in 0..10_000 {
        dht.handle_datagram(now, from, &ping);
    }
    let answers = std::iter::from_fn(|| dht.poll_transmit())
        .filter(|t| t.to == from)
        .count();
    // 50 answers, plus one ping to confirm the newcomer.
    assert!(answers <= 51, "{answers}");
    assert!(dht.stats().throttled >= 9_900);
    for junk in [&b"d1:ad2:id20:"[..], b"i1e", &[0xff; 3000]] {
        dht.handle_datagram(now, "10.7.7.7:1".parse().unwrap(), junk);
    }
    assert_eq!(dht.stats().malformed, 3);
}

#[test]
fn bogus_answers_cannot_grow_memory_past_the_bounds() {
    let now = Instant::now();
    let liar: SocketAddr = "10.6.6.6:6881".parse().unwrap();
    let mut dht = Dht::new(
        Config {
            bootstrap: vec![liar],
            ..Config::default()
        },
        now,
        3,
    );
    let ih = NodeId([1; 20]);
    dht.get_peers(ih, now);
    let mut peers = 0usize;
    let mut n = 0u32;
    // The liar answers every query with 200 fresh peers and 8 fresh nodes, all at its address's
    // neighbours, for as long as we ask.
    for _ in 0..2000 {
        let Some(t) = dht.poll_transmit() else { break };
        let Ok(Message::Query(q)) = Message::decode(&t.datagram) else {
            continue;
        };
        let values = (0..200u32)
            .map(|i| SocketAddr::new(Ipv4Addr::from(0x0b00_0000 + n * 200 + i).into(), 1))
            .collect();
        let nodes = (0..8u32)
            .map(|i| {
                n += 1;
                CompactNode {
                    id: NodeId::random(&mut fastrand::Rng::with_seed(u64::from(n))),
                    addr: SocketAddr::new(Ipv4Addr::from(0x0c00_0000 + (n << 8) + i).into(), 1),
                }
            })
            .collect();
        let r = Response {
            transaction: q.transaction,
            id: Some(NodeId::random(&mut fastrand::Rng::with_seed(
                u64::from(n) + 1_000_000,
            ))),
            nodes,
            values,
            token: Some(vec![1]),
            ..Response::default()
        };
        dht.handle_datagram(now, t.to, &Message::Response(r).encode());
        while let Some(e) = dht.poll_event() {
            if let Event::Peers { peers: p, .. } = e {
                peers += p.len();
            }
        }
    }
    assert!(peers <= 2000, "{peers}");
    let stats = dht.stats();
    assert!(stats.pending <= MAX_PENDING);
    assert!(stats.nodes_v4 + stats.replacements <= 160 * 2 * K);
}

#[test]
fn a_router_added_after_the_start_bootstraps_the_node() {
    let mut net = Net::new(20);
    net.run(20, Duration::from_millis(500));
    let now = net.now;
    let late = addr(20);
    net.nodes.push((late, Dht::new(Config::default(), now, 99)));
    net.nodes[20].1.add_bootstrap(addr(0), now);
    net.run(10, Duration::from_millis(500));
    assert!(
        net.nodes[20].1.stats().nodes_v4 >= K,
        "{:?}",
        net.nodes[20].1.stats()
    );
}

#[test]
fn lookups_beyond_the_bound_are_refused_not_lost() {
    let mut net = Net::new(10);
    net.run(10, Duration::from_millis(500));
    let now = net.now;
    let node = &mut net.nodes[3].1;
    let before = node.stats().lookups;
    let started = (0..300u16)
        .filter(|&i| {
            let mut ih = [0; 20];
            ih[..2].copy_from_slice(&i.to_be_bytes());
            node.get_peers(NodeId(ih), now)
        })
        .count();
    assert_eq!(started, MAX_LOOKUPS - before);
    assert!(
        node.get_peers(NodeId([0; 20]), now),
        "a lookup running already counts"
    );
}

#[test]
fn an_icmp_error_fails_the_queries_to_its_address_at_once() {
    let now = Instant::now();
    let config = Config {
        bootstrap: vec![addr(1), addr(2)],
        ..Config::default()
    };
    let mut node = Dht::new(config, now, 5);
    let mut asked = Vec::new();
    while let Some(t) = node.poll_transmit() {
        asked.push(t.to);
    }
    assert!(
        asked.contains(&addr(1)) && asked.contains(&addr(2)),
        "{asked:?}"
    );
    let pending = node.stats().pending;
    node.unreachable(addr(7), now);
    assert_eq!(
        node.stats().pending,
        pending,
        "no query went to that address"
    );
    node.unreachable(addr(1), now);
    let after = node.stats().pending;
    assert!(after < pending, "{pending} -> {after}");
    // The other router's queries still wait for their answers or their timeouts.
    assert!(after > 0);
    node.unreachable(addr(1), now);
    assert_eq!(node.stats().pending, after);
}
