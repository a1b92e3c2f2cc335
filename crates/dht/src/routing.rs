//! The routing table (BEP 5): buckets of K nodes by shared id prefix, split while they hold our
//! own id, each with a replacement cache. Nodes are good while they answer, questionable after
//! 15 quiet minutes (pinged), and bad after failing queries in a row (replaced).
//!
//! As libtorrent does (`dht_restrict_routing_ips`), the table keeps one node per IP address and
//! one per /24 (IPv4) or /64 (IPv6) in a bucket, so one host or subnet cannot fill it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::id::NodeId;
use crate::krpc::CompactNode;

/// Nodes per bucket (BEP 5's K).
pub(crate) const K: usize = 8;
/// A node quiet this long is questionable and gets pinged.
const QUESTIONABLE_AFTER: Duration = Duration::from_secs(15 * 60);
/// Failed queries in a row after which a node gives way to a replacement.
const MAX_FAILURES: u8 = 2;
/// Failed queries in a row after which a node is dropped even with no replacement.
const MAX_FAILURES_ALONE: u8 = 5;
/// A bucket with room left is refreshed after this long without a new node (a full one after
/// `QUESTIONABLE_AFTER`): nodes that joined the DHT after us reach our table this way.
const SPARSE_REFRESH: Duration = Duration::from_secs(60);
/// At most one ping per node this often.
const PING_SPACING: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
struct Entry {
    id: NodeId,
    addr: SocketAddr,
    /// When it last answered one of our queries; `None` for a node only heard of.
    last_reply: Option<Instant>,
    last_ping: Option<Instant>,
    failures: u8,
    /// Its id passes BEP 42 for its address.
    verified: bool,
}

impl Entry {
    fn confirmed(&self) -> bool {
        self.last_reply.is_some()
    }

    fn node(&self) -> CompactNode {
        CompactNode {
            id: self.id,
            addr: self.addr,
        }
    }

    /// Rank for promotion out of the replacement cache: answered, verified, recent.
    fn rank(&self) -> (bool, bool, Option<Instant>) {
        (self.confirmed(), self.verified, self.last_reply)
    }
}

#[derive(Debug)]
struct Bucket {
    nodes: Vec<Entry>,
    replacements: Vec<Entry>,
    last_active: Instant,
}

impl Bucket {
    fn new(now: Instant) -> Self {
        Self {
            nodes: Vec::with_capacity(K),
            replacements: Vec::new(),
            last_active: now,
        }
    }

    /// Moves the best replacements into the nodes while there is room (with `restrict_ips`,
    /// none from a /24 or /64 the nodes have already).
    fn refill(&mut self, restrict_ips: bool) {
        while self.nodes.len() < K {
            let nodes = &self.nodes;
            let best = (0..self.replacements.len())
                .filter(|&i| {
                    let net = subnet(self.replacements[i].addr.ip());
                    !restrict_ips || nodes.iter().all(|n| subnet(n.addr.ip()) != net)
                })
                .max_by_key(|&i| self.replacements[i].rank());
            let Some(best) = best else {
                break;
            };
            self.nodes.push(self.replacements.swap_remove(best));
        }
    }
}

/// How a node seen on the wire was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// It is in the table now.
    Inserted,
    /// It was there already.
    Updated,
    /// The bucket is full: it waits in the replacement cache. `ping` is a questionable node of
    /// that bucket to ask whether it is still there.
    Replacement { ping: Option<SocketAddr> },
    /// It would split the last bucket if it answered: it waits as a replacement until it
    /// answers a ping.
    Unconfirmed,
    /// Our own id, a duplicate address, or against the IP diversity rules.
    Rejected,
}

/// One address family's table.
#[derive(Debug)]
pub(crate) struct RoutingTable {
    own: NodeId,
    buckets: Vec<Bucket>,
    /// Every node and replacement, by address.
    addrs: HashMap<SocketAddr, NodeId>,
    /// How many entries each IP has (at most one when restricted).
    ips: HashMap<IpAddr, u16>,
    restrict_ips: bool,
}

/// The /24 (IPv4) or /64 (IPv6) an address is in.
fn subnet(ip: IpAddr) -> [u8; 8] {
    match ip {
        IpAddr::V4(ip) => {
            let o = ip.octets();
            [o[0], o[1], o[2], 0, 0, 0, 0, 4]
        }
        IpAddr::V6(ip) => {
            let mut out = [0; 8];
            out.copy_from_slice(&ip.octets()[..8]);
            out
        }
    }
}

impl RoutingTable {
    pub(crate) fn new(own: NodeId, restrict_ips: bool, now: Instant) -> Self {
        Self {
            own,
            buckets: vec![Bucket::new(now)],
            addrs: HashMap::new(),
            ips: HashMap::new(),
            restrict_ips,
        }
    }

    /// Nodes in buckets (not counting replacements).
    pub(crate) fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.nodes.len()).sum()
    }

    /// Nodes waiting in replacement caches.
    pub(crate) fn replacements(&self) -> usize {
        self.buckets.iter().map(|b| b.replacements.len()).sum()
    }

    #[cfg(test)]
    pub(crate) fn buckets(&self) -> usize {
        self.buckets.len()
    }

    fn bucket_of(&self, id: &NodeId) -> usize {
        self.own.common_prefix(id).min(self.buckets.len() - 1)
    }

    /// Records a node: `replied` when it answered our query, otherwise it queried us or was
    /// named by another node. `verified` is its BEP 42 check.
    pub(crate) fn seen(
        &mut self,
        node: CompactNode,
        replied: bool,
        verified: bool,
        now: Instant,
    ) -> Seen {
        if node.id == self.own || node.addr.port() == 0 {
            return Seen::Rejected;
        }
        if let Some(&known) = self.addrs.get(&node.addr) {
            if known != node.id {
                // A node that answers us under a new id (it restarted, or took a BEP 42 id)
                // replaces its old entry; others' word for an address we know is not taken.
                if !replied {
                    return Seen::Rejected;
                }
                self.remove(node.addr, known);
                return self.seen(node, replied, verified, now);
            }
            let index = self.bucket_of(&node.id);
            let bucket = &mut self.buckets[index];
            if replied {
                bucket.last_active = now;
                // A replacement that answers tries for a place again (it may split the last
                // bucket, or take an unconfirmed node's place).
                if bucket.replacements.iter().any(|e| e.addr == node.addr) {
                    bucket.replacements.retain(|e| e.addr != node.addr);
                    self.unindex(node.addr);
                    return self.seen(node, replied, verified, now);
                }
            }
            let entry = bucket
                .nodes
                .iter_mut()
                .chain(bucket.replacements.iter_mut())
                .find(|e| e.addr == node.addr);
            if let Some(entry) = entry
                && replied
            {
                entry.last_reply = Some(now);
                entry.failures = 0;
            }
            return Seen::Updated;
        }
        if self.restrict_ips && self.ips.contains_key(&node.addr.ip()) {
            return Seen::Rejected;
        }
        let entry = Entry {
            id: node.id,
            addr: node.addr,
            last_reply: replied.then_some(now),
            last_ping: None,
            failures: 0,
            verified,
        };
        loop {
            let index = self.bucket_of(&node.id);
            // Only a node that answered us may deepen the table: ids that merely queried us
            // could otherwise be chosen to split it down to 160 buckets.
            let splittable = index == self.buckets.len() - 1 && self.buckets.len() < 160;
            let can_split = replied && splittable;
            let restrict = self.restrict_ips;
            let bucket = &mut self.buckets[index];
            let same_id = |e: &Entry| e.id == node.id;
            let same_subnet = |e: &Entry| restrict && subnet(e.addr.ip()) == subnet(node.addr.ip());
            if bucket.nodes.iter().any(|e| same_id(e) || same_subnet(e))
                || bucket.replacements.iter().any(same_id)
            {
                return Seen::Rejected;
            }
            if bucket.nodes.len() < K {
                bucket.nodes.push(entry);
                bucket.last_active = now;
                self.index(node.addr, node.id);
                return Seen::Inserted;
            }
            if can_split {
                self.split();
                continue;
            }
            if splittable && bucket.replacements.len() < K {
                // Its answer to a ping decides.
                bucket.replacements.push(entry);
                self.index(node.addr, node.id);
                return Seen::Unconfirmed;
            }
            // A full bucket: the newcomer takes the place of a bad node, or of one never heard
            // from if it answered us itself, or of an unverified one if its own id is verified.
            let evict = bucket
                .nodes
                .iter()
                .position(|e| e.failures >= MAX_FAILURES)
                .or_else(|| {
                    replied
                        .then(|| bucket.nodes.iter().position(|e| !e.confirmed()))
                        .flatten()
                })
                .or_else(|| {
                    (replied && verified)
                        .then(|| bucket.nodes.iter().position(|e| !e.verified))
                        .flatten()
                });
            if let Some(evict) = evict {
                let old = std::mem::replace(&mut bucket.nodes[evict], entry);
                bucket.last_active = now;
                self.unindex(old.addr);
                self.index(node.addr, node.id);
                return Seen::Inserted;
            }
            if bucket.replacements.len() >= K {
                let drop = bucket
                    .replacements
                    .iter()
                    .position(|e| !e.confirmed())
                    .unwrap_or(0);
                let old = bucket.replacements.remove(drop);
                self.unindex(old.addr);
            }
            let bucket = &mut self.buckets[index];
            bucket.replacements.push(entry);
            let ping = bucket
                .nodes
                .iter_mut()
                .filter(|e| {
                    e.last_reply
                        .is_none_or(|t| now.duration_since(t) >= QUESTIONABLE_AFTER)
                        && e.last_ping
                            .is_none_or(|t| now.duration_since(t) >= PING_SPACING)
                })
                .min_by_key(|e| e.last_reply)
                .map(|e| {
                    e.last_ping = Some(now);
                    e.addr
                });
            self.index(node.addr, node.id);
            return Seen::Replacement { ping };
        }
    }

    fn index(&mut self, addr: SocketAddr, id: NodeId) {
        self.addrs.insert(addr, id);
        *self.ips.entry(addr.ip()).or_insert(0) += 1;
    }

    fn unindex(&mut self, addr: SocketAddr) {
        self.addrs.remove(&addr);
        if let Some(count) = self.ips.get_mut(&addr.ip()) {
            *count -= 1;
            if *count == 0 {
                self.ips.remove(&addr.ip());
            }
        }
    }

    /// Splits the last bucket: nodes sharing one more bit with our id move to a new last one.
    fn split(&mut self) {
        let depth = self.buckets.len() - 1;
        let own = self.own;
        let now = self.buckets[depth].last_active;
        let mut deeper = Bucket::new(now);
        let old = &mut self.buckets[depth];
        let (stay, go): (Vec<Entry>, Vec<Entry>) = old
            .nodes
            .drain(..)
            .partition(|e| own.common_prefix(&e.id) == depth);
        old.nodes = stay;
        deeper.nodes = go;
        let (stay, go): (Vec<Entry>, Vec<Entry>) = old
            .replacements
            .drain(..)
            .partition(|e| own.common_prefix(&e.id) == depth);
        old.replacements = stay;
        deeper.replacements = go;
        old.refill(self.restrict_ips);
        deeper.refill(self.restrict_ips);
        self.buckets.push(deeper);
    }

    /// Takes the node at `addr` (with id `id`) out, as a node or a replacement.
    fn remove(&mut self, addr: SocketAddr, id: NodeId) {
        let index = self.bucket_of(&id);
        let restrict = self.restrict_ips;
        let bucket = &mut self.buckets[index];
        bucket.nodes.retain(|e| e.addr != addr);
        bucket.replacements.retain(|e| e.addr != addr);
        bucket.refill(restrict);
        self.unindex(addr);
    }

    /// A query to the node at `addr` went unanswered.
    pub(crate) fn failed(&mut self, addr: SocketAddr) {
        let Some(id) = self.addrs.get(&addr).copied() else {
            return;
        };
        let index = self.bucket_of(&id);
        let bucket = &mut self.buckets[index];
        if let Some(at) = bucket.replacements.iter().position(|e| e.addr == addr) {
            bucket.replacements.swap_remove(at);
            self.unindex(addr);
            return;
        }
        let Some(at) = bucket.nodes.iter().position(|e| e.addr == addr) else {
            return;
        };
        let entry = &mut bucket.nodes[at];
        entry.failures = entry.failures.saturating_add(1);
        let gone = entry.failures >= MAX_FAILURES_ALONE
            || (entry.failures >= MAX_FAILURES && !bucket.replacements.is_empty());
        if gone {
            bucket.nodes.swap_remove(at);
            bucket.refill(self.restrict_ips);
            self.unindex(addr);
        }
    }

    /// Whether `addr` is in the table (as a node or a replacement).
    pub(crate) fn contains(&self, addr: &SocketAddr) -> bool {
        self.addrs.contains_key(addr)
    }

    /// Up to `count` nodes closest to `target` that have not failed, closest first; with
    /// `confirmed_only`, only nodes that have answered us.
    pub(crate) fn closest(
        &self,
        target: &NodeId,
        count: usize,
        confirmed_only: bool,
    ) -> Vec<CompactNode> {
        let mut all: Vec<([u8; 20], CompactNode)> = self
            .buckets
            .iter()
            .flat_map(|b| &b.nodes)
            .filter(|e| e.failures == 0 && (e.confirmed() || !confirmed_only))
            .map(|e| (target.distance(&e.id), e.node()))
            .collect();
        if all.len() > count {
            all.select_nth_unstable_by(count, |a, b| a.0.cmp(&b.0));
            all.truncate(count);
        }
        all.sort_unstable_by_key(|a| a.0);
        all.into_iter().map(|(_, node)| node).collect()
    }

    /// Nodes to ping now: questionable ones, and ones never heard from, at most `max`.
    pub(crate) fn due_pings(&mut self, now: Instant, max: usize) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for entry in self.buckets.iter_mut().flat_map(|b| b.nodes.iter_mut()) {
            if out.len() >= max {
                break;
            }
            let quiet = entry
                .last_reply
                .is_none_or(|t| now.duration_since(t) >= QUESTIONABLE_AFTER);
            let due = entry
                .last_ping
                .is_none_or(|t| now.duration_since(t) >= PING_SPACING);
            if quiet && due {
                entry.last_ping = Some(now);
                out.push(entry.addr);
            }
        }
        out
    }

    /// A target for refreshing the first bucket quiet for 15 minutes, or for one minute if it
    /// has room (a `find_node` for a random id in its range), marking it refreshed.
    pub(crate) fn refresh_target(
        &mut self,
        now: Instant,
        rng: &mut fastrand::Rng,
    ) -> Option<NodeId> {
        // Buckets past the deepest one holding a node are left alone: emptied by failures,
        // they would otherwise be refreshed every minute for nothing.
        let deepest = self.buckets.iter().rposition(|b| !b.nodes.is_empty())?;
        let (depth, bucket) = self.buckets[..=deepest]
            .iter_mut()
            .enumerate()
            .find(|(_, b)| {
                let quiet = if b.nodes.len() < K {
                    SPARSE_REFRESH
                } else {
                    QUESTIONABLE_AFTER
                };
                now.duration_since(b.last_active) >= quiet
            })?;
        bucket.last_active = now;
        Some(self.own.random_at_depth(depth, rng))
    }

    /// Depths of the buckets (all but the last) with room for more nodes.
    pub(crate) fn sparse_depths(&self) -> Vec<usize> {
        let last = self.buckets.len() - 1;
        (0..last)
            .filter(|&depth| self.buckets[depth].nodes.len() < K)
            .collect()
    }

    /// A random id in the range of the bucket at `depth`.
    pub(crate) fn target_at(&self, depth: usize, rng: &mut fastrand::Rng) -> NodeId {
        self.own.random_at_depth(depth, rng)
    }

    /// Every node that has answered us, for saving.
    pub(crate) fn confirmed_nodes(&self) -> Vec<CompactNode> {
        self.buckets
            .iter()
            .flat_map(|b| &b.nodes)
            .filter(|e| e.confirmed() && e.failures == 0)
            .map(Entry::node)
            .collect()
    }

    /// The same table for a new own id: every node re-sorted into the new buckets.
    pub(crate) fn rebuilt(&self, own: NodeId, now: Instant) -> RoutingTable {
        let mut table = RoutingTable::new(own, self.restrict_ips, now);
        for entry in self
            .buckets
            .iter()
            .flat_map(|b| b.nodes.iter().chain(&b.replacements))
        {
            table.seen(entry.node(), entry.confirmed(), entry.verified, now);
        }
        table
    }
}

#[cfg(test)]
mod tests;
