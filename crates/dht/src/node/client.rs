//! Our side of KRPC: queries out, lookups driven by their answers, announces at their end.

use std::net::SocketAddr;
use std::time::Instant;

use super::{Dht, Event, LookupKind, MAX_LOOKUPS, MAX_PENDING, Pending, Waiting};
use crate::id::{NodeId, is_local};
use crate::krpc::{CompactNode, Message, Query, QueryMessage, Response, Want};
use crate::lookup::{Lookup, Purpose};
use crate::routing::{K, Seen};

/// Refresh lookups started when a bootstrap ends, at most.
const REFRESH_AFTER_BOOTSTRAP: usize = 8;

impl Dht {
    pub(super) fn ping(&mut self, addr: SocketAddr, now: Instant) {
        self.send_query(addr, Query::Ping, Waiting::Ping, now);
    }

    /// Sends a query unless too many are awaiting answers.
    fn send_query(&mut self, to: SocketAddr, query: Query, waiting: Waiting, now: Instant) -> bool {
        if self.pending.len() >= MAX_PENDING {
            return false;
        }
        let tx = loop {
            let tx = self.rng.u32(..);
            if !self.pending.contains_key(&tx) {
                break tx;
            }
        };
        let message = Message::Query(QueryMessage {
            transaction: tx.to_be_bytes().to_vec(),
            id: self.id,
            query,
            want: Want::default(),
            read_only: self.config.read_only,
        });
        if !self.transmit(to, &message) {
            return false;
        }
        self.add_pending(tx, Pending { addr: to, waiting });
        self.slow_queue
            .push_back((now + self.config.slow_after, tx));
        self.timeout_queue
            .push_back((now + self.config.query_timeout, tx));
        true
    }

    /// Starts a lookup in each address family we have; `false` if one was refused for want of
    /// room (a lookup for the same target running already counts as started).
    pub(super) fn start_lookup(
        &mut self,
        target: NodeId,
        purpose: Purpose,
        seeds: &[SocketAddr],
        now: Instant,
    ) -> bool {
        let mut taken = true;
        for v6 in [false, true] {
            let enabled = if v6 {
                self.config.ipv6
            } else {
                self.config.ipv4
            };
            if enabled {
                let seeds: Vec<SocketAddr> = seeds
                    .iter()
                    .copied()
                    .filter(|a| a.is_ipv6() == v6)
                    .collect();
                taken &= self.start_family_lookup(target, purpose, v6, &seeds, now);
            }
        }
        taken
    }

    /// Starts a lookup from the closest nodes of one table and `seeds`, unless the same one runs;
    /// `false` when 256 lookups run already.
    pub(super) fn start_family_lookup(
        &mut self,
        target: NodeId,
        purpose: Purpose,
        v6: bool,
        seeds: &[SocketAddr],
        now: Instant,
    ) -> bool {
        let running = self
            .lookups
            .values()
            .any(|l| l.target() == target && l.purpose() == purpose && l.is_v6() == v6);
        if running {
            return true;
        }
        if self.lookups.len() >= MAX_LOOKUPS {
            return false;
        }
        let mut lookup = Lookup::new(target, purpose, v6, self.config.restrict_ips);
        let table = if v6 { &self.v6 } else { &self.v4 };
        lookup.add_nodes(&table.closest(&target, K * 2, false), 0);
        for &seed in seeds {
            lookup.add_address(seed);
        }
        let id = self.next_lookup;
        self.next_lookup = self.next_lookup.wrapping_add(1);
        self.lookups.insert(id, lookup);
        self.step_lookup(id, now);
        true
    }

    /// Sends what the lookup may send now, and ends it once it has converged.
    pub(super) fn step_lookup(&mut self, id: u32, now: Instant) {
        let alpha = self.config.alpha;
        loop {
            if self.pending.len() >= MAX_PENDING {
                return;
            }
            let Some(lookup) = self.lookups.get_mut(&id) else {
                return;
            };
            let Some((addr, _)) = lookup.next_query(alpha) else {
                break;
            };
            let target = lookup.target();
            let query = match lookup.purpose() {
                Purpose::FindNode => Query::FindNode { target },
                Purpose::GetPeers | Purpose::Announce { .. } => {
                    Query::GetPeers { info_hash: target }
                }
            };
            self.send_query(addr, query, Waiting::Lookup(id), now);
        }
        if self.lookups.get(&id).is_some_and(Lookup::is_done) {
            self.finish_lookup(id, now);
        }
    }

    fn finish_lookup(&mut self, id: u32, now: Instant) {
        let Some(lookup) = self.lookups.remove(&id) else {
            return;
        };
        let target = lookup.target();
        let mut announced = 0;
        let kind = match lookup.purpose() {
            Purpose::FindNode => LookupKind::FindNode,
            Purpose::GetPeers => LookupKind::GetPeers,
            Purpose::Announce { port, implied_port } => {
                for (addr, token) in lookup.announce_targets() {
                    let query = Query::AnnouncePeer {
                        info_hash: target,
                        port,
                        implied_port,
                        token,
                    };
                    if self.send_query(addr, query, Waiting::Announce, now) {
                        announced += 1;
                    }
                }
                LookupKind::Announce
            }
        };
        self.events.push_back(Event::LookupDone {
            target,
            kind,
            queried: lookup.queried(),
            rounds: lookup.rounds(),
            announced,
        });
        if kind == LookupKind::FindNode && target == self.id {
            self.after_bootstrap(lookup.is_v6(), now);
        }
    }

    /// A bootstrap found the nodes nearest us; the farther buckets fill by a lookup each.
    fn after_bootstrap(&mut self, v6: bool, now: Instant) {
        let table = if v6 { &self.v6 } else { &self.v4 };
        if self.bootstrapped && table.len() >= K {
            self.bootstrap_wait = super::BOOTSTRAP_WAIT;
        }
        let targets: Vec<NodeId> = table
            .sparse_depths()
            .into_iter()
            .take(REFRESH_AFTER_BOOTSTRAP)
            .map(|depth| table.target_at(depth, &mut self.rng))
            .collect();
        for target in targets {
            self.start_family_lookup(target, Purpose::FindNode, v6, &[], now);
        }
    }

    /// Takes the pending query an answer or error from `from` names, if it is ours.
    fn take_pending(&mut self, from: SocketAddr, transaction: &[u8]) -> Option<Waiting> {
        let tx = u32::from_be_bytes(transaction.try_into().ok()?);
        // An answer from another address than the one asked is not taken (spoofing).
        if self.pending.get(&tx)?.addr != from {
            return None;
        }
        self.remove_pending(tx).map(|p| p.waiting)
    }

    pub(super) fn on_response(&mut self, now: Instant, from: SocketAddr, response: Response) {
        let Some(waiting) = self.take_pending(from, &response.transaction) else {
            return;
        };
        let Some(id) = response.id else {
            if let Waiting::Lookup(lookup_id) = waiting {
                if let Some(lookup) = self.lookups.get_mut(&lookup_id) {
                    lookup.failed(from);
                }
                self.step_lookup(lookup_id, now);
            }
            return;
        };
        if let Some(ip) = response.ip {
            self.vote_external_ip(ip.ip(), from.ip(), now);
        }
        if !self.bootstrapped
            && (self.config.bootstrap.contains(&from)
                || self
                    .config
                    .saved
                    .as_ref()
                    .is_some_and(|s| s.nodes.contains(&from)))
        {
            self.bootstrapped = true;
        }
        let verified = id.is_valid_for(from.ip());
        let accepted = verified || !self.config.enforce_node_id;
        if accepted {
            let node = CompactNode { id, addr: from };
            if let Seen::Replacement { ping: Some(quiet) } =
                self.table_mut(from).seen(node, true, verified, now)
            {
                self.ping(quiet, now);
            }
        }
        let Waiting::Lookup(lookup_id) = waiting else {
            return;
        };
        let own = self.id;
        if let Some(lookup) = self.lookups.get_mut(&lookup_id) {
            let depth = if accepted {
                lookup.answered(from, id, response.token)
            } else {
                lookup.failed(from);
                None
            };
            if let Some(depth) = depth {
                let named = if lookup.is_v6() {
                    &response.nodes6
                } else {
                    &response.nodes
                };
                // A node on a public address naming private or loopback ones would have us
                // send to our own network.
                let public = !is_local(from.ip());
                let usable = |addr: &SocketAddr| !(public && is_local(addr.ip()));
                let named: Vec<CompactNode> = named
                    .iter()
                    .filter(|n| {
                        n.id != own && n.addr.is_ipv6() == lookup.is_v6() && usable(&n.addr)
                    })
                    .copied()
                    .collect();
                lookup.add_nodes(&named, depth);
                if lookup.purpose() != Purpose::FindNode {
                    let values: Vec<SocketAddr> =
                        response.values.iter().copied().filter(usable).collect();
                    let peers = lookup.new_peers(&values);
                    if !peers.is_empty() {
                        self.events.push_back(Event::Peers {
                            info_hash: lookup.target(),
                            peers,
                        });
                    }
                }
            }
        }
        self.step_lookup(lookup_id, now);
    }

    pub(super) fn on_error(&mut self, now: Instant, from: SocketAddr, transaction: &[u8]) {
        if let Some(Waiting::Lookup(lookup_id)) = self.take_pending(from, transaction) {
            if let Some(lookup) = self.lookups.get_mut(&lookup_id) {
                lookup.failed(from);
            }
            self.step_lookup(lookup_id, now);
        }
    }
}
