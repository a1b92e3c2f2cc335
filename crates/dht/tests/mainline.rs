//! Our node against another implementation: `mainline`'s test network (a dozen nodes on
//! 127.0.0.1, in process, on their own threads). Our node, on a blocking UDP socket driven by
//! the sans-IO API, fills its table from the test network's bootstrap nodes; a `mainline` client
//! finds the peer we announce, and we find the peer it announces.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(deprecated)] // mainline's blocking API is marked deprecated in favour of its async one

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cratetorrent_dht::{Config, Dht, Event, LookupKind, NodeId, Stats};

const TIMEOUT: Duration = Duration::from_secs(30);

enum Command {
    Announce(NodeId, u16),
    GetPeers(NodeId),
    Stats(mpsc::Sender<Stats>),
}

/// Our node on its own thread, until dropped (or two minutes).
struct OurNode {
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<Event>,
}

impl OurNode {
    fn spawn(bootstrap: Vec<SocketAddr>) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (commands, inbox) = mpsc::channel();
        let (outbox, events) = mpsc::channel();
        std::thread::spawn(move || {
            // Every test node shares 127.0.0.1: one node per IP would keep one of them.
            let config = Config {
                bootstrap,
                restrict_ips: false,
                ..Config::default()
            };
            let start = Instant::now();
            let mut dht = Dht::new(config, start, 42);
            let mut buf = [0u8; 1500];
            while start.elapsed() < Duration::from_secs(120) {
                loop {
                    match inbox.try_recv() {
                        Ok(Command::Announce(ih, port)) => {
                            assert!(dht.announce(ih, Some(port), Instant::now()));
                        }
                        Ok(Command::GetPeers(ih)) => {
                            assert!(dht.get_peers(ih, Instant::now()));
                        }
                        Ok(Command::Stats(reply)) => {
                            let _ = reply.send(dht.stats());
                        }
                        Err(mpsc::TryRecvError::Empty) => break,
                        Err(mpsc::TryRecvError::Disconnected) => return,
                    }
                }
                while let Some(t) = dht.poll_transmit() {
                    let _ = socket.send_to(&t.datagram, t.to);
                }
                while let Some(event) = dht.poll_event() {
                    let _ = outbox.send(event);
                }
                let wait = dht
                    .poll_timeout()
                    .saturating_duration_since(Instant::now())
                    .clamp(Duration::from_millis(1), Duration::from_millis(20));
                socket.set_read_timeout(Some(wait)).unwrap();
                match socket.recv_from(&mut buf) {
                    Ok((len, from)) => dht.handle_datagram(Instant::now(), from, &buf[..len]),
                    Err(_) => dht.handle_timeout(Instant::now()),
                }
            }
        });
        Self { commands, events }
    }

    fn stats(&self) -> Stats {
        let (reply, answer) = mpsc::channel();
        self.commands.send(Command::Stats(reply)).unwrap();
        answer.recv_timeout(TIMEOUT).unwrap()
    }

    /// Waits for an event `want` accepts.
    fn wait(&self, until: Instant, mut want: impl FnMut(&Event) -> bool) -> Option<Event> {
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) if want(&event) => return Some(event),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
}

#[test]
#[ignore = "needs reference peers"]
fn mainline_test_network_and_our_node_find_each_others_peers() {
    let testnet = mainline::Testnet::builder(12).build().unwrap();
    let bootstrap: Vec<SocketAddr> = testnet
        .bootstrap
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    let ours = OurNode::spawn(bootstrap);

    // Our table fills from the bootstrap nodes.
    let deadline = Instant::now() + TIMEOUT;
    while ours.stats().nodes_v4 < 8 {
        assert!(Instant::now() < deadline, "our table: {:?}", ours.stats());
        std::thread::sleep(Duration::from_millis(50));
    }

    // We announce; a mainline client finds us.
    let ours_hash = NodeId([0x5a; 20]);
    ours.commands
        .send(Command::Announce(ours_hash, 7777))
        .unwrap();
    let done = ours.wait(Instant::now() + TIMEOUT, |e| {
        matches!(
            e,
            Event::LookupDone {
                kind: LookupKind::Announce,
                ..
            }
        )
    });
    let Some(Event::LookupDone { announced, .. }) = done else {
        panic!("our announce never finished");
    };
    assert!(announced >= 1, "announced to {announced} nodes");
    let client = mainline::Dht::builder()
        .bootstrap(&testnet.bootstrap)
        .build()
        .unwrap();
    let id = mainline::Id::from_bytes(ours_hash.0).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let found: Vec<_> = client.get_peers(id).flatten().collect();
        if found.iter().any(|p| p.port() == 7777) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "mainline never found our peer: {found:?}"
        );
    }

    // A mainline client announces; we find it.
    let theirs = NodeId([0xa5; 20]);
    client
        .announce_peer(mainline::Id::from_bytes(theirs.0).unwrap(), Some(8888))
        .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        ours.commands.send(Command::GetPeers(theirs)).unwrap();
        let found = ours.wait(Instant::now() + Duration::from_secs(3), |e| {
            matches!(e, Event::Peers { info_hash, peers } if *info_hash == theirs && peers.iter().any(|p| p.port() == 8888))
        });
        if found.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "we never found mainline's peer");
    }
}
