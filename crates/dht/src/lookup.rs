//! Iterative lookups (`find_node`, `get_peers`): query the closest known nodes, a few at a time,
//! learning closer ones from each answer, until the K closest that are alive have all answered.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use crate::id::NodeId;
use crate::krpc::CompactNode;
use crate::routing::K;

/// Candidates kept per lookup (the closest; farther ones not yet queried are dropped).
const MAX_CANDIDATES: usize = 64;
/// Queries one lookup may send in all.
const MAX_QUERIES: usize = 128;
/// Distinct peers one lookup reports (more are dropped).
const MAX_PEERS: usize = 2000;

/// What a lookup is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Filling the routing table (bootstrap, bucket refresh).
    FindNode,
    /// Peers of a torrent.
    GetPeers,
    /// Peers of a torrent, then `announce_peer` to the closest nodes.
    Announce {
        /// The port announced.
        port: u16,
        /// Announce the port our datagrams come from instead.
        implied_port: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Fresh,
    InFlight,
    /// In flight past the short timeout: no longer holds a slot, may still answer.
    Slow,
    Answered,
    Failed,
}

#[derive(Debug)]
struct Candidate {
    /// `None` for a bootstrap address whose id we learn from its answer.
    id: Option<NodeId>,
    addr: SocketAddr,
    state: State,
    token: Option<Vec<u8>>,
    /// How many answers led to it (0: from our table or the bootstrap list).
    depth: u8,
}

impl Candidate {
    fn key(&self, target: &NodeId) -> [u8; 20] {
        self.id.map_or([0; 20], |id| target.distance(&id))
    }
}

/// One lookup's progress.
#[derive(Debug)]
pub(crate) struct Lookup {
    target: NodeId,
    purpose: Purpose,
    v6: bool,
    candidates: Vec<Candidate>,
    seen: HashSet<SocketAddr>,
    seen_ips: HashSet<IpAddr>,
    restrict_ips: bool,
    in_flight: usize,
    queried: usize,
    peers: HashSet<SocketAddr>,
}

impl Lookup {
    /// A lookup in the IPv4 (or with `v6`, the IPv6) DHT.
    pub(crate) fn new(target: NodeId, purpose: Purpose, v6: bool, restrict_ips: bool) -> Self {
        Self {
            target,
            purpose,
            v6,
            candidates: Vec::new(),
            seen: HashSet::new(),
            seen_ips: HashSet::new(),
            restrict_ips,
            in_flight: 0,
            queried: 0,
            peers: HashSet::new(),
        }
    }

    pub(crate) fn target(&self) -> NodeId {
        self.target
    }

    pub(crate) fn purpose(&self) -> Purpose {
        self.purpose
    }

    pub(crate) fn is_v6(&self) -> bool {
        self.v6
    }

    pub(crate) fn queried(&self) -> usize {
        self.queried
    }

    /// Adds an address to ask whose id is unknown (asked first).
    pub(crate) fn add_address(&mut self, addr: SocketAddr) {
        self.add(None, addr, 0);
    }

    /// Adds nodes named by our table (`depth` 0) or by an answer.
    pub(crate) fn add_nodes(&mut self, nodes: &[CompactNode], depth: u8) {
        for node in nodes {
            self.add(Some(node.id), node.addr, depth);
        }
    }

    fn add(&mut self, id: Option<NodeId>, addr: SocketAddr, depth: u8) {
        let ip = addr.ip();
        if addr.port() == 0
            || ip.is_unspecified()
            || ip.is_multicast()
            || self.seen.contains(&addr)
            || (self.restrict_ips && self.seen_ips.contains(&ip))
            || self.seen.len() >= MAX_QUERIES * K
        {
            return;
        }
        let candidate = Candidate {
            id,
            addr,
            state: State::Fresh,
            token: None,
            depth,
        };
        let key = candidate.key(&self.target);
        let at = self
            .candidates
            .partition_point(|c| c.key(&self.target) <= key);
        if at >= MAX_CANDIDATES {
            return;
        }
        self.seen.insert(addr);
        self.seen_ips.insert(ip);
        self.candidates.insert(at, candidate);
        // Drop the farthest candidates not yet asked; ones in flight stay until they answer.
        while self.candidates.len() > MAX_CANDIDATES {
            match self
                .candidates
                .iter()
                .rposition(|c| c.state == State::Fresh)
            {
                Some(last) if last >= MAX_CANDIDATES => {
                    self.candidates.remove(last);
                }
                _ => break,
            }
        }
    }

    /// The next node to query, if a slot among `alpha` is free and the lookup has not converged:
    /// the closest one not yet asked, unless K closer ones have answered already.
    pub(crate) fn next_query(&mut self, alpha: usize) -> Option<(SocketAddr, Option<NodeId>)> {
        if self.in_flight >= alpha || self.queried >= MAX_QUERIES {
            return None;
        }
        let mut answered = 0;
        for candidate in &mut self.candidates {
            match candidate.state {
                State::Answered => answered += 1,
                State::Fresh => {
                    candidate.state = State::InFlight;
                    self.in_flight += 1;
                    self.queried += 1;
                    return Some((candidate.addr, candidate.id));
                }
                _ => {}
            }
            if answered >= K {
                return None;
            }
        }
        None
    }

    fn find(&mut self, addr: SocketAddr) -> Option<&mut Candidate> {
        self.candidates.iter_mut().find(|c| c.addr == addr)
    }

    fn leave_flight(&mut self, addr: SocketAddr, to: State) -> bool {
        let Some(candidate) = self.find(addr) else {
            return false;
        };
        let was = candidate.state;
        if !matches!(was, State::InFlight | State::Slow) {
            return false;
        }
        candidate.state = to;
        if was == State::InFlight {
            self.in_flight -= 1;
        }
        true
    }

    /// `addr` answered as node `id`; returns the depth for the nodes it named.
    pub(crate) fn answered(
        &mut self,
        addr: SocketAddr,
        id: NodeId,
        token: Option<Vec<u8>>,
    ) -> Option<u8> {
        if !self.leave_flight(addr, State::Answered) {
            return None;
        }
        let target = self.target;
        let at = self.candidates.iter().position(|c| c.addr == addr)?;
        let mut candidate = self.candidates.remove(at);
        // An address asked blind learns its id. A node answering as another id than the one it
        // was named with ranks at the farther of the two, so neither it nor whoever named it
        // can move it closer than it is.
        candidate.id = match candidate.id {
            Some(named) if target.distance(&named) >= target.distance(&id) => Some(named),
            _ => Some(id),
        };
        candidate.token = token;
        let depth = candidate.depth.saturating_add(1);
        let key = candidate.key(&target);
        let at = self.candidates.partition_point(|c| c.key(&target) <= key);
        self.candidates.insert(at, candidate);
        Some(depth)
    }

    /// Of the peers an answer gave, those not reported before (unusable ones dropped, and none
    /// past this lookup's bound).
    pub(crate) fn new_peers(&mut self, values: &[SocketAddr]) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for &peer in values {
            if self.peers.len() >= MAX_PEERS {
                break;
            }
            let ip = peer.ip();
            if peer.port() != 0
                && !ip.is_unspecified()
                && !ip.is_multicast()
                && self.peers.insert(peer)
            {
                out.push(peer);
            }
        }
        out
    }

    /// The query to `addr` is past the short timeout: its slot goes to another node.
    pub(crate) fn slow(&mut self, addr: SocketAddr) {
        if let Some(candidate) = self.find(addr)
            && candidate.state == State::InFlight
        {
            candidate.state = State::Slow;
            self.in_flight -= 1;
        }
    }

    /// The query to `addr` timed out or drew an error.
    pub(crate) fn failed(&mut self, addr: SocketAddr) {
        self.leave_flight(addr, State::Failed);
    }

    /// Done when the K closest live candidates have answered (or nothing is left to ask).
    pub(crate) fn is_done(&self) -> bool {
        let mut answered = 0;
        for candidate in &self.candidates {
            match candidate.state {
                State::Answered => answered += 1,
                State::Failed => {}
                State::Fresh if self.queried >= MAX_QUERIES => {}
                State::Fresh | State::InFlight | State::Slow => return false,
            }
            if answered >= K {
                return true;
            }
        }
        true
    }

    /// The closest nodes that answered with a token, for `announce_peer`.
    pub(crate) fn announce_targets(&self) -> Vec<(SocketAddr, Vec<u8>)> {
        self.candidates
            .iter()
            .filter(|c| c.state == State::Answered)
            .filter_map(|c| c.token.clone().map(|t| (c.addr, t)))
            .take(K)
            .collect()
    }

    /// Rounds to convergence: the largest depth among the K closest that answered, plus one.
    pub(crate) fn rounds(&self) -> u8 {
        self.candidates
            .iter()
            .filter(|c| c.state == State::Answered)
            .take(K)
            .map(|c| c.depth.saturating_add(1))
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::net::Ipv4Addr;

    use super::*;

    fn node(first: u8, i: u32) -> CompactNode {
        let mut id = [0; 20];
        id[0] = first;
        CompactNode {
            id: NodeId(id),
            addr: SocketAddr::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)).into(), 1),
        }
    }

    #[test]
    fn queries_closest_first_and_converges_on_k_answers() {
        let mut lookup = Lookup::new(NodeId([0; 20]), Purpose::GetPeers, false, true);
        let nodes: Vec<CompactNode> = (0..20u8).map(|i| node(100 - i, u32::from(i))).collect();
        lookup.add_nodes(&nodes, 0);
        let (first, _) = lookup.next_query(3).unwrap();
        assert_eq!(first, nodes[19].addr, "the closest is asked first");
        lookup.next_query(3).unwrap();
        lookup.next_query(3).unwrap();
        assert!(lookup.next_query(3).is_none(), "three in flight at most");
        lookup.slow(first);
        assert!(
            lookup.next_query(3).is_some(),
            "a slow query frees its slot"
        );
        // Answers for the queried ones; then the rest until K have answered.
        let mut answered = 0;
        let mut asked: Vec<SocketAddr> = nodes[16..].iter().map(|n| n.addr).collect();
        while let Some(addr) = asked.pop() {
            let id = nodes.iter().find(|n| n.addr == addr).unwrap().id;
            lookup.answered(addr, id, Some(vec![1])).unwrap();
            answered += 1;
            while let Some((next, _)) = lookup.next_query(3) {
                asked.push(next);
            }
        }
        assert!(answered >= K);
        assert!(lookup.is_done());
        assert_eq!(lookup.announce_targets().len(), K);
        assert_eq!(lookup.rounds(), 1);
    }

    #[test]
    fn failures_do_not_block_convergence_and_named_nodes_are_deduplicated() {
        let mut lookup = Lookup::new(NodeId([0; 20]), Purpose::FindNode, false, true);
        lookup.add_address("10.0.0.1:1".parse().unwrap());
        let (addr, id) = lookup.next_query(4).unwrap();
        assert!(id.is_none());
        assert!(!lookup.is_done());
        lookup.failed(addr);
        assert!(lookup.is_done());
        let mut other_port = node(2, 5);
        other_port.addr.set_port(2);
        let twice = [node(1, 5), node(1, 5), other_port, node(3, 6)];
        lookup.add_nodes(&twice, 1);
        assert_eq!(lookup.candidates.len(), 3, "one per address, one per IP");
        assert!(
            lookup
                .answered("10.9.9.9:1".parse().unwrap(), NodeId([0; 20]), None)
                .is_none()
        );
    }

    #[test]
    fn a_node_named_near_the_target_ranks_where_it_really_is() {
        let mut lookup = Lookup::new(NodeId([0; 20]), Purpose::GetPeers, false, true);
        // A liar names a real node with an id next to the target; it answers as itself.
        let named_close = node(1, 1);
        let honest = node(50, 2);
        lookup.add_nodes(&[named_close, honest], 1);
        let (first, _) = lookup.next_query(4).unwrap();
        assert_eq!(first, named_close.addr);
        lookup
            .answered(first, node(200, 1).id, Some(vec![1]))
            .unwrap();
        let (second, _) = lookup.next_query(4).unwrap();
        lookup.answered(second, honest.id, Some(vec![2])).unwrap();
        let targets = lookup.announce_targets();
        assert_eq!(
            targets[0].0, honest.addr,
            "the honest node is the closest that answered"
        );
    }

    #[test]
    fn bounded_by_candidates_and_queries() {
        let mut lookup = Lookup::new(NodeId([0; 20]), Purpose::FindNode, false, false);
        for i in 0..10_000u32 {
            let mut id = [0xff; 20];
            id[..4].copy_from_slice(&i.to_be_bytes());
            lookup.add_nodes(
                &[CompactNode {
                    id: NodeId(id),
                    addr: SocketAddr::new(Ipv4Addr::from(i).into(), 1),
                }],
                1,
            );
        }
        assert!(lookup.candidates.len() <= MAX_CANDIDATES);
        let mut sent = 0;
        while let Some((addr, _)) = lookup.next_query(1000) {
            lookup.failed(addr);
            sent += 1;
        }
        assert!(sent <= MAX_QUERIES);
    }
}
