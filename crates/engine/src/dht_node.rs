//! The engine's DHT node: the sans-IO [`Dht`] shared on the network thread, poked by torrents
//! (BEP 5 `port` messages, BEP 10 `yourip`) and driven by `engine::dht`.

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use cratetorrent_dht::{Dht, Event, NodeId, Stats, Transmit};
use cratetorrent_metainfo::InfoHash;
use tokio::sync::Notify;

/// The node and the doorbell of the task that sends what it queues.
pub(crate) struct DhtNode {
    dht: RefCell<Dht>,
    wake: Notify,
    saving: Cell<bool>,
}

fn id_of(info_hash: InfoHash) -> NodeId {
    NodeId(*info_hash.as_bytes())
}

impl DhtNode {
    pub(crate) fn new(dht: Dht) -> Self {
        Self {
            dht: RefCell::new(dht),
            wake: Notify::new(),
            saving: Cell::new(false),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Dht, Instant) -> R) -> R {
        let result = f(&mut self.dht.borrow_mut(), Instant::now());
        self.wake.notify_one();
        result
    }

    /// A datagram that looks like KRPC.
    pub(crate) fn handle_datagram(&self, from: SocketAddr, datagram: &[u8]) {
        self.with(|dht, now| dht.handle_datagram(now, from, datagram));
    }

    /// ICMP said `addr` is unreachable: the queries to it fail now.
    pub(crate) fn unreachable(&self, addr: SocketAddr) {
        self.with(|dht, now| dht.unreachable(addr, now));
    }

    /// A peer's BEP 5 `port` message: its DHT node, to ask.
    pub(crate) fn add_node(&self, addr: SocketAddr) {
        self.with(|dht, now| dht.add_node(addr, now));
    }

    /// A peer's word (BEP 10 `yourip`) on our external address.
    pub(crate) fn vote_external_ip(&self, ip: IpAddr, voter: IpAddr) {
        self.with(|dht, now| dht.vote_external_ip(ip, voter, now));
    }

    /// `false` if the node has no room for another lookup now.
    pub(crate) fn announce(&self, info_hash: InfoHash, port: u16) -> bool {
        self.with(|dht, now| dht.announce(id_of(info_hash), Some(port), now))
    }

    /// `false` if the node has no room for another lookup now.
    pub(crate) fn get_peers(&self, info_hash: InfoHash) -> bool {
        self.with(|dht, now| dht.get_peers(id_of(info_hash), now))
    }

    /// A router resolved after the start.
    pub(crate) fn add_bootstrap(&self, addr: SocketAddr) {
        self.with(|dht, now| dht.add_bootstrap(addr, now));
    }

    /// Runs the node's timers if due; returns when they are next due.
    pub(crate) fn handle_timeout(&self) -> Instant {
        let mut dht = self.dht.borrow_mut();
        let now = Instant::now();
        if dht.poll_timeout() <= now {
            dht.handle_timeout(now);
        }
        dht.poll_timeout()
    }

    /// Datagrams waiting to be sent.
    pub(crate) fn transmits(&self) -> Vec<Transmit> {
        let mut dht = self.dht.borrow_mut();
        std::iter::from_fn(|| dht.poll_transmit()).collect()
    }

    /// Peers found, by torrent.
    pub(crate) fn found(&self) -> Vec<(InfoHash, Vec<SocketAddr>)> {
        let mut dht = self.dht.borrow_mut();
        let mut found = Vec::new();
        while let Some(event) = dht.poll_event() {
            if let Event::Peers { info_hash, peers } = event {
                found.push((InfoHash::new(info_hash.0), peers));
            }
        }
        found
    }

    pub(crate) fn stats(&self) -> Stats {
        self.dht.borrow().stats()
    }

    /// The state to save, unless the table is empty (a run that met nobody must not erase
    /// what an earlier one saved) or a save is under way (see [`DhtNode::saved`]).
    pub(crate) fn state_to_save(&self) -> Option<Vec<u8>> {
        let state = self.dht.borrow().saved_state();
        if state.nodes.is_empty() || self.saving.replace(true) {
            return None;
        }
        Some(state.encode())
    }

    /// The save [`DhtNode::state_to_save`] began has ended.
    pub(crate) fn saved(&self) {
        self.saving.set(false);
    }

    /// Waits until something was given to the node.
    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }
}
