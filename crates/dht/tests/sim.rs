//! A simulated DHT of 5,000 nodes with latency and loss, 10 % of them lying, driven through the
//! public sans-IO API with virtual time. Checks that tables fill from one bootstrap address, that
//! `get_peers` converges in a few rounds and finds announced peers despite the liars, and prints
//! the figures.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation, clippy::panic)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use cratetorrent_dht::{
    CompactNode, Config, Dht, Event, LookupKind, Message, NodeId, Query, Response,
};

const NODES: usize = 5000;
const LIAR_SHARE: usize = 10; // percent
const LOSS_PERCENT: u32 = 1;
const JOIN_EVERY_MS: u64 = 10;
const TORRENTS: usize = 100;

fn addr(i: usize) -> SocketAddr {
    SocketAddr::new(
        Ipv4Addr::new(10, (i / 250) as u8, (i % 250) as u8, 1).into(),
        6881,
    )
}

/// A node that answers like a DHT node but lies: every lookup answer names eight nodes that do
/// not exist, with ids next to the target, and a token nobody issued; it stores nothing.
struct Liar {
    id: NodeId,
    rng: fastrand::Rng,
}

impl Liar {
    fn answer(&mut self, query: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
        let Ok(Message::Query(q)) = Message::decode(query) else {
            return None;
        };
        let target = match q.query {
            Query::FindNode { target } => Some(target),
            Query::GetPeers { info_hash } => Some(info_hash),
            _ => None,
        };
        let nodes = target.map_or_else(Vec::new, |target| {
            (0..8)
                .map(|_| {
                    let mut id = target;
                    for byte in &mut id.0[4..] {
                        *byte = self.rng.u8(..);
                    }
                    let ip = Ipv4Addr::new(10, 200 + self.rng.u8(..50), self.rng.u8(..), 1);
                    CompactNode {
                        id,
                        addr: SocketAddr::new(ip.into(), 6881),
                    }
                })
                .collect()
        });
        let response = Response {
            transaction: q.transaction,
            id: Some(self.id),
            nodes,
            token: target.map(|_| vec![self.rng.u8(..); 4]),
            ip: Some(from),
            ..Response::default()
        };
        Some(Message::Response(response).encode())
    }
}

enum Peer {
    Honest(Box<Dht>),
    Liar(Liar),
    Absent,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Delivery {
    at: u64,
    seq: u64,
    to: usize,
    from: usize,
    datagram: Vec<u8>,
}

struct Sim {
    base: Instant,
    now: u64,
    peers: Vec<Peer>,
    index: HashMap<SocketAddr, usize>,
    wire: BinaryHeap<Reverse<Delivery>>,
    timers: BinaryHeap<Reverse<(u64, usize)>>,
    scheduled: Vec<u64>,
    seq: u64,
    rng: fastrand::Rng,
    events: Vec<(usize, u64, Event)>,
    lost: u64,
    delivered: u64,
}

impl Sim {
    fn new(seed: u64) -> Self {
        Self {
            base: Instant::now(),
            now: 0,
            peers: (0..NODES + 1).map(|_| Peer::Absent).collect(),
            index: (0..NODES + 1).map(|i| (addr(i), i)).collect(),
            wire: BinaryHeap::new(),
            timers: BinaryHeap::new(),
            scheduled: vec![u64::MAX; NODES + 1],
            seq: 0,
            rng: fastrand::Rng::with_seed(seed),
            events: Vec::new(),
            lost: 0,
            delivered: 0,
        }
    }

    fn instant(&self) -> Instant {
        self.base + Duration::from_millis(self.now)
    }

    fn latency(a: usize, b: usize) -> u64 {
        let (lo, hi) = (a.min(b) as u64, a.max(b) as u64);
        5 + (lo.wrapping_mul(0x9e37_79b9) ^ hi.wrapping_mul(0x85eb_ca6b)) % 95
    }

    fn join(&mut self, i: usize, liar: bool, bootstrap: SocketAddr) {
        let now = self.instant();
        if liar {
            let mut rng = fastrand::Rng::with_seed(i as u64);
            let id = NodeId(std::array::from_fn(|_| rng.u8(..)));
            self.peers[i] = Peer::Liar(Liar { id, rng });
            // Liars enter tables by asking a few nodes for something.
            for _ in 0..3 {
                let to = self.rng.usize(..i.max(1));
                let q = Message::Query(cratetorrent_dht::QueryMessage::new(
                    vec![1, 2],
                    id,
                    Query::FindNode { target: id },
                ));
                self.send(i, addr(to), q.encode());
            }
        } else {
            let config = Config {
                bootstrap: vec![bootstrap],
                ..Config::default()
            };
            self.peers[i] = Peer::Honest(Box::new(Dht::new(config, now, i as u64)));
            self.drain(i);
        }
    }

    fn send(&mut self, from: usize, to: SocketAddr, datagram: Vec<u8>) {
        let Some(&to) = self.index.get(&to) else {
            self.lost += 1;
            return;
        };
        if self.rng.u32(..100) < LOSS_PERCENT {
            self.lost += 1;
            return;
        }
        self.seq += 1;
        self.wire.push(Reverse(Delivery {
            at: self.now + Self::latency(from, to),
            seq: self.seq,
            to,
            from,
            datagram,
        }));
    }

    /// Sends what node `i` has to send, collects its events and schedules its timer.
    fn drain(&mut self, i: usize) {
        let Peer::Honest(dht) = &mut self.peers[i] else {
            return;
        };
        let mut out = Vec::new();
        while let Some(t) = dht.poll_transmit() {
            out.push(t);
        }
        while let Some(event) = dht.poll_event() {
            self.events.push((i, self.now, event));
        }
        let deadline = dht
            .poll_timeout()
            .saturating_duration_since(self.base)
            .as_millis() as u64;
        for t in out {
            self.send(i, t.to, t.datagram);
        }
        if deadline != self.scheduled[i] {
            self.scheduled[i] = deadline;
            self.timers.push(Reverse((deadline, i)));
        }
    }

    /// Runs until virtual time `until` (ms).
    fn run_until(&mut self, until: u64) {
        loop {
            let next_wire = self.wire.peek().map(|d| d.0.at);
            let next_timer = self.timers.peek().map(|t| t.0.0);
            let next = match (next_wire, next_timer) {
                (Some(w), Some(t)) => w.min(t),
                (Some(w), None) => w,
                (None, Some(t)) => t,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            self.now = next;
            if next_wire == Some(next) {
                let Reverse(d) = self.wire.pop().unwrap();
                self.delivered += 1;
                let from = addr(d.from);
                let now = self.instant();
                match &mut self.peers[d.to] {
                    Peer::Honest(dht) => {
                        dht.handle_datagram(now, from, &d.datagram);
                        self.drain(d.to);
                    }
                    Peer::Liar(liar) => {
                        if let Some(answer) = liar.answer(&d.datagram, from) {
                            self.send(d.to, from, answer);
                        }
                    }
                    Peer::Absent => {}
                }
            } else {
                let Reverse((at, i)) = self.timers.pop().unwrap();
                if self.scheduled[i] != at {
                    continue;
                }
                self.scheduled[i] = u64::MAX;
                let now = self.instant();
                if let Peer::Honest(dht) = &mut self.peers[i] {
                    dht.handle_timeout(now);
                }
                self.drain(i);
            }
        }
        self.now = until;
    }

    fn honest(&mut self, i: usize) -> &mut Dht {
        match &mut self.peers[i] {
            Peer::Honest(dht) => dht,
            _ => panic!("node {i} is not honest"),
        }
    }

    fn is_honest(&self, i: usize) -> bool {
        matches!(self.peers[i], Peer::Honest(_))
    }
}

fn percentile(values: &mut [u64], p: usize) -> u64 {
    values.sort_unstable();
    values[(values.len() - 1) * p / 100]
}

#[test]
fn five_thousand_nodes_with_liars_latency_and_loss() {
    let started = Instant::now();
    let mut sim = Sim::new(42);
    // Nodes join one by one, each bootstrapping from one honest node already there; one in ten
    // is a liar.
    for i in 0..NODES {
        sim.run_until(i as u64 * JOIN_EVERY_MS);
        let liar = i > 10 && i % (100 / LIAR_SHARE) == 0;
        let bootstrap = loop {
            let candidate = sim.rng.usize(..i.max(1));
            if i == 0 || sim.is_honest(candidate) {
                break addr(candidate);
            }
        };
        sim.join(i, liar, bootstrap);
    }
    let joined = sim.now;
    sim.run_until(joined + 90_000);

    // One more node, one bootstrap address: its table fills.
    let newcomer = NODES;
    sim.join(newcomer, false, addr(1));
    sim.run_until(sim.now + 20_000);
    let newcomer_nodes = sim.honest(newcomer).stats().nodes_v4;
    let mut sizes: Vec<u64> = sim.peers[..NODES]
        .iter()
        .filter_map(|p| match p {
            Peer::Honest(dht) => Some(dht.stats().nodes_v4 as u64),
            _ => None,
        })
        .collect();
    let (min, median) = (percentile(&mut sizes, 0), percentile(&mut sizes, 50));

    // Torrents announced by one honest node each, then looked up by another.
    let honest: Vec<usize> = (0..NODES).filter(|&i| sim.is_honest(i)).collect();
    let mut pairs = Vec::new();
    for t in 0..TORRENTS {
        let info_hash = NodeId(std::array::from_fn(|b| (t * 31 + b * 7) as u8 ^ 0x5a));
        let announcer = honest[sim.rng.usize(..honest.len())];
        let seeker = honest[sim.rng.usize(..honest.len())];
        let now = sim.instant();
        sim.honest(announcer).announce(info_hash, Some(7000), now);
        sim.drain(announcer);
        pairs.push((info_hash, announcer, seeker));
    }
    sim.run_until(sim.now + 15_000);
    let search_start = sim.now;
    for &(info_hash, _, seeker) in &pairs {
        let now = sim.instant();
        sim.honest(seeker).get_peers(info_hash, now);
        sim.drain(seeker);
    }
    sim.run_until(sim.now + 30_000);

    let mut found = 0;
    let mut first_peer_ms = Vec::new();
    let mut rounds = Vec::new();
    let mut queries = Vec::new();
    for &(info_hash, announcer, seeker) in &pairs {
        let want = SocketAddr::new(addr(announcer).ip(), 7000);
        let hit = sim.events.iter().find(|(i, at, e)| {
            *i == seeker
                && *at >= search_start
                && matches!(e, Event::Peers { info_hash: ih, peers } if *ih == info_hash && peers.contains(&want))
        });
        if let Some((_, at, _)) = hit {
            found += 1;
            first_peer_ms.push(at - search_start);
        }
        for (i, _, e) in &sim.events {
            if let Event::LookupDone {
                target,
                kind: LookupKind::GetPeers,
                rounds: r,
                queried,
                ..
            } = e
                && *i == seeker
                && *target == info_hash
            {
                rounds.push(u64::from(*r));
                queries.push(*queried as u64);
            }
        }
    }
    let announced: Vec<u64> = sim
        .events
        .iter()
        .filter_map(|(_, _, e)| match e {
            Event::LookupDone {
                kind: LookupKind::Announce,
                announced,
                ..
            } => Some(*announced as u64),
            _ => None,
        })
        .collect();
    let median_rounds = percentile(&mut rounds, 50);
    let p90_rounds = percentile(&mut rounds, 90);
    println!(
        "dht sim: {NODES} nodes ({LIAR_SHARE} % liars, {LOSS_PERCENT} % loss, 5-100 ms links), \
         {} datagrams delivered, {} lost, {:.1} s wall",
        sim.delivered,
        sim.lost,
        started.elapsed().as_secs_f64()
    );
    println!(
        "  table sizes of honest nodes: min {min}, median {median}; newcomer from one address: {newcomer_nodes}"
    );
    println!(
        "  announces: {} done, median {} nodes stored each",
        announced.len(),
        percentile(&mut announced.clone(), 50)
    );
    println!(
        "  get_peers: {found}/{TORRENTS} found the announcer; rounds median {median_rounds}, p90 {p90_rounds}; \
         queries median {}; first peer median {} ms, p90 {} ms",
        percentile(&mut queries, 50),
        percentile(&mut first_peer_ms, 50),
        percentile(&mut first_peer_ms, 90)
    );
    assert!(
        newcomer_nodes >= 5 * 8,
        "newcomer has {newcomer_nodes} nodes"
    );
    assert!(median >= 5 * 8, "median table {median}");
    // No node is left in an island of nodes that found it before it found the rest.
    assert!(min >= 3 * 8, "smallest table {min}");
    assert!(found * 100 >= TORRENTS * 95, "found {found} of {TORRENTS}");
    assert!(median_rounds <= 6, "median rounds {median_rounds}");
}
