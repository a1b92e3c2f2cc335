//! Peers announced to us, kept for 30 minutes, bounded in torrents and peers per torrent.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::id::NodeId;

/// Ports kept per IP address and torrent.
const PER_IP: usize = 8;
/// How long an announced peer is kept without a new announce.
pub(crate) const PEER_TTL: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Clone, Copy)]
struct Stored {
    addr: SocketAddr,
    expires: Instant,
}

pub(crate) struct PeerStore {
    torrents: HashMap<NodeId, Vec<Stored>>,
    max_torrents: usize,
    max_peers: usize,
    peers: usize,
}

impl PeerStore {
    pub(crate) fn new(max_torrents: usize, max_peers: usize) -> Self {
        Self {
            torrents: HashMap::new(),
            max_torrents,
            max_peers,
            peers: 0,
        }
    }

    /// Keeps `addr` as a peer of `info_hash`. When full, a new torrent takes the place of the
    /// one with the fewest peers and a new peer the place of the one announced longest ago.
    pub(crate) fn announce(&mut self, info_hash: NodeId, addr: SocketAddr, now: Instant) {
        if self.max_torrents == 0 || self.max_peers == 0 {
            return;
        }
        if !self.torrents.contains_key(&info_hash) && self.torrents.len() >= self.max_torrents {
            let smallest = self
                .torrents
                .iter()
                .min_by_key(|(info_hash, peers)| (peers.len(), **info_hash))
                .map(|(ih, _)| *ih);
            if let Some(removed) = smallest.and_then(|ih| self.torrents.remove(&ih)) {
                self.peers -= removed.len();
            }
        }
        let peers = self.torrents.entry(info_hash).or_default();
        let expires = now + PEER_TTL;
        if let Some(known) = peers.iter_mut().find(|p| p.addr == addr) {
            known.expires = expires;
        } else if peers.iter().filter(|p| p.addr.ip() == addr.ip()).count() >= PER_IP {
            // One host (one token) announcing many ports cannot push the others out.
        } else if peers.len() < self.max_peers {
            peers.push(Stored { addr, expires });
            self.peers += 1;
        } else if let Some(oldest) = peers.iter_mut().min_by_key(|p| p.expires) {
            *oldest = Stored { addr, expires };
        }
    }

    /// Up to `max` peers of `info_hash` in the address family of `like`, picked at random.
    pub(crate) fn peers(
        &self,
        info_hash: &NodeId,
        like: SocketAddr,
        max: usize,
        rng: &mut fastrand::Rng,
    ) -> Vec<SocketAddr> {
        let Some(peers) = self.torrents.get(info_hash) else {
            return Vec::new();
        };
        let mut out: Vec<SocketAddr> = peers
            .iter()
            .map(|p| p.addr)
            .filter(|a| a.is_ipv4() == like.is_ipv4())
            .collect();
        if out.len() > max {
            rng.shuffle(&mut out);
            out.truncate(max);
        }
        out
    }

    pub(crate) fn expire(&mut self, now: Instant) {
        let mut removed = 0;
        self.torrents.retain(|_, peers| {
            let before = peers.len();
            peers.retain(|p| p.expires > now);
            removed += before - peers.len();
            !peers.is_empty()
        });
        self.peers -= removed;
    }

    pub(crate) fn torrents(&self) -> usize {
        self.torrents.len()
    }

    pub(crate) fn peer_count(&self) -> usize {
        self.peers
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn peer(i: u32) -> SocketAddr {
        SocketAddr::new(Ipv4Addr::from(i).into(), 6881)
    }

    #[test]
    fn bounded_in_torrents_and_peers_and_expiring() {
        let mut store = PeerStore::new(3, 5);
        let mut rng = fastrand::Rng::with_seed(1);
        let now = Instant::now();
        for t in 0..10u8 {
            for p in 0..(u32::from(t) + 20) {
                store.announce(NodeId([t; 20]), peer(p), now);
            }
        }
        assert_eq!(store.torrents(), 3);
        assert_eq!(store.peer_count(), 15);
        let some = store.peers(&NodeId([9; 20]), peer(0), 2, &mut rng);
        assert_eq!(some.len(), 2);
        assert!(
            store
                .peers(&NodeId([9; 20]), "[::1]:1".parse().unwrap(), 9, &mut rng)
                .is_empty()
        );
        store.announce(NodeId([9; 20]), peer(1000), now + PEER_TTL / 2);
        store.expire(now + PEER_TTL);
        assert_eq!(store.torrents(), 1);
        assert_eq!(store.peer_count(), 1);
        assert_eq!(
            store.peers(&NodeId([9; 20]), peer(0), 9, &mut rng),
            [peer(1000)]
        );
    }

    #[test]
    fn one_address_cannot_fill_a_torrent() {
        let mut store = PeerStore::new(10, 500);
        let now = Instant::now();
        let ih = NodeId([1; 20]);
        store.announce(ih, peer(1), now);
        for port in 1..=1000 {
            store.announce(ih, SocketAddr::new([6, 6, 6, 6].into(), port), now);
        }
        assert_eq!(store.peer_count(), 1 + PER_IP);
    }
}
