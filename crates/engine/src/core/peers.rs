//! The connected peers of one torrent: a slab keyed by [`PeerKey`], the storage tag of each
//! (reads and writes carry it, so a late result finds its peer, or nobody once it left), and
//! how many connections come from each IP (for `max_connections_per_ip`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::{Index, IndexMut};

use cratetorrent_storage::PeerTag;
use slab::Slab;

use super::PeerKey;
use crate::peer::Peer;
use crate::peer_addr::limited_ip;

/// Connected peers, with their tags and per-IP counts kept in step.
#[derive(Debug)]
pub(super) struct PeerTable {
    slab: Slab<Peer>,
    tags: HashMap<PeerTag, PeerKey>,
    next_tag: PeerTag,
    /// Connections per IP, loopback and private ranges not counted (see `limited_ip`).
    per_ip: HashMap<IpAddr, usize>,
}

impl PeerTable {
    pub(super) fn new() -> Self {
        Self {
            slab: Slab::new(),
            tags: HashMap::new(),
            next_tag: 1,
            per_ip: HashMap::new(),
        }
    }

    /// Registers the peer `make` builds with a fresh tag.
    pub(super) fn insert(&mut self, make: impl FnOnce(PeerTag) -> Peer) -> PeerKey {
        let tag = self.next_tag;
        self.next_tag += 1;
        let peer = make(tag);
        if let Some(ip) = limited_ip(peer.addr) {
            *self.per_ip.entry(ip).or_insert(0) += 1;
        }
        let key = self.slab.insert(peer);
        self.tags.insert(tag, key);
        key
    }

    /// Forgets the peer (its tag and its IP's count with it).
    pub(super) fn remove(&mut self, key: PeerKey) -> Option<Peer> {
        let peer = self.slab.try_remove(key)?;
        self.tags.remove(&peer.tag);
        if let Some(ip) = limited_ip(peer.addr)
            && let Some(count) = self.per_ip.get_mut(&ip)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_ip.remove(&ip);
            }
        }
        Some(peer)
    }

    /// The peer with storage tag `tag`, if still connected.
    pub(super) fn by_tag(&self, tag: PeerTag) -> Option<PeerKey> {
        self.tags.get(&tag).copied()
    }

    /// Connections from `ip`.
    pub(super) fn count_from(&self, ip: IpAddr) -> usize {
        self.per_ip.get(&ip).copied().unwrap_or(0)
    }

    pub(super) fn get(&self, key: PeerKey) -> Option<&Peer> {
        self.slab.get(key)
    }

    pub(super) fn get_mut(&mut self, key: PeerKey) -> Option<&mut Peer> {
        self.slab.get_mut(key)
    }

    pub(super) fn contains(&self, key: PeerKey) -> bool {
        self.slab.contains(key)
    }

    pub(super) fn len(&self) -> usize {
        self.slab.len()
    }

    pub(super) fn iter(&self) -> slab::Iter<'_, Peer> {
        self.slab.iter()
    }

    pub(super) fn iter_mut(&mut self) -> slab::IterMut<'_, Peer> {
        self.slab.iter_mut()
    }

    /// Every key, for loops that change peers (or the table) as they go.
    pub(super) fn keys(&self) -> Vec<PeerKey> {
        self.slab.iter().map(|(key, _)| key).collect()
    }
}

impl Index<PeerKey> for PeerTable {
    type Output = Peer;

    fn index(&self, key: PeerKey) -> &Peer {
        &self.slab[key]
    }
}

impl IndexMut<PeerKey> for PeerTable {
    fn index_mut(&mut self, key: PeerKey) -> &mut Peer {
        &mut self.slab[key]
    }
}
