//! A sans-IO BitTorrent DHT node: BEP 5 (Kademlia over KRPC), BEP 32 (IPv6), BEP 42 (node ids
//! bound to addresses) and BEP 43 (read-only nodes).
//!
//! [`Dht`] owns no socket, clock or thread. Give it each datagram with
//! [`Dht::handle_datagram`], call [`Dht::handle_timeout`] at [`Dht::poll_timeout`], and after
//! each call drain [`Dht::poll_transmit`] (datagrams to send) and [`Dht::poll_event`] (peers
//! found, lookups done). Its randomness comes from one seed, so a run replays exactly.
//!
//! Three nodes in memory: one the others start from, one announcing a torrent, one finding it.
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::Instant;
//! use cratetorrent_dht::{Config, Dht, Event, NodeId};
//!
//! let addrs: Vec<SocketAddr> = ["10.1.0.1:6881", "10.2.0.1:6881", "10.3.0.1:6881"]
//!     .iter()
//!     .map(|a| a.parse().unwrap())
//!     .collect();
//! let now = Instant::now();
//! let mut nodes: Vec<Dht> = (0..3)
//!     .map(|i| {
//!         let bootstrap = if i == 0 { vec![] } else { vec![addrs[0]] };
//!         Dht::new(Config { bootstrap, ..Config::default() }, now, i)
//!     })
//!     .collect();
//! let torrent = NodeId([7; 20]);
//! let mut found = Vec::new();
//! for round in 0..20 {
//!     match round {
//!         5 => assert!(nodes[1].announce(torrent, Some(51413), now)),
//!         10 => assert!(nodes[2].get_peers(torrent, now)),
//!         _ => {}
//!     }
//!     // Deliver every datagram (a real shell sends them on a UDP socket).
//!     for i in 0..3 {
//!         while let Some(t) = nodes[i].poll_transmit() {
//!             let to = addrs.iter().position(|a| *a == t.to).unwrap();
//!             nodes[to].handle_datagram(now, addrs[i], &t.datagram);
//!         }
//!     }
//!     while let Some(event) = nodes[2].poll_event() {
//!         if let Event::Peers { peers, .. } = event {
//!             found.extend(peers);
//!         }
//!     }
//! }
//! assert_eq!(found, ["10.2.0.1:51413".parse::<SocketAddr>().unwrap()]);
//! ```

mod dos;
mod id;
mod krpc;
mod lookup;
mod node;
mod routing;
mod state;
mod storage;
mod token;
mod vote;

pub use id::{NodeId, is_local};
pub use krpc::{
    CompactNode, ErrorMessage, KrpcError, Message, Query, QueryMessage, Response, Want,
};
pub use node::{Config, Dht, Event, LookupKind, Stats, Transmit};
pub use state::{SavedState, StateError};
