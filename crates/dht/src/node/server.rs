//! Answering others' queries: pings, closest nodes, peers with a token, announces that carry a
//! token we gave. Floods are cut by the guard before any work.

use std::net::SocketAddr;
use std::time::Instant;

use super::Dht;
use crate::id::NodeId;
use crate::krpc::{CompactNode, ErrorMessage, Message, Query, QueryMessage, Response, Want};
use crate::routing::{K, Seen};

/// Peers in one answer at most, by family, so the datagram (with its 8 nodes) stays under
/// 1,500 bytes (`6:` + 6 bytes each for IPv4, `18:` + 18 for IPv6).
const MAX_VALUES_V4: usize = 100;
const MAX_VALUES_V6: usize = 40;

impl Dht {
    pub(super) fn on_query(&mut self, now: Instant, from: SocketAddr, query: QueryMessage) {
        if !self.guard.allow(from.ip(), now) || self.config.read_only {
            return;
        }
        let verified = query.id.is_valid_for(from.ip());
        if !query.read_only && (verified || !self.config.enforce_node_id) {
            let node = CompactNode {
                id: query.id,
                addr: from,
            };
            match self.table_mut(from).seen(node, false, verified, now) {
                // Confirmed by its answer before it is given to others.
                Seen::Inserted | Seen::Unconfirmed => self.ping(from, now),
                Seen::Replacement { ping: Some(quiet) } => self.ping(quiet, now),
                _ => {}
            }
        }
        let mut response = Response {
            transaction: query.transaction.clone(),
            id: Some(self.id),
            ip: Some(from),
            ..Response::default()
        };
        match query.query {
            Query::Ping => {}
            Query::FindNode { target } => self.fill_nodes(&mut response, &target, query.want, from),
            Query::GetPeers { info_hash } => {
                response.token = Some(self.tokens.token(from.ip(), &info_hash).to_vec());
                let max = if from.is_ipv4() {
                    MAX_VALUES_V4
                } else {
                    MAX_VALUES_V6
                }
                .min(self.config.max_peers_reply);
                response.values = self.store.peers(&info_hash, from, max, &mut self.rng);
                // Nodes too, as libtorrent: they keep the querier's lookup moving closer.
                self.fill_nodes(&mut response, &info_hash, query.want, from);
            }
            Query::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
            } => {
                let port = if implied_port { from.port() } else { port };
                if !self.tokens.is_valid(&token, from.ip(), &info_hash) {
                    return self.error(from, query.transaction, 203, "bad token");
                }
                if port == 0 {
                    return self.error(from, query.transaction, 203, "bad port");
                }
                self.store
                    .announce(info_hash, SocketAddr::new(from.ip(), port), now);
            }
            Query::Unknown(_) => return self.error(from, query.transaction, 204, "method unknown"),
        }
        self.transmit(from, &Message::Response(response));
    }

    /// The closest nodes we know to `target`, in the families the querier wants (by default
    /// its own).
    fn fill_nodes(&self, response: &mut Response, target: &NodeId, want: Want, from: SocketAddr) {
        let (n4, n6) = if want.n4 || want.n6 {
            (want.n4, want.n6)
        } else {
            (from.is_ipv4(), from.is_ipv6())
        };
        if n4 && self.config.ipv4 {
            response.nodes = self.v4.closest(target, K, true);
        }
        if n6 && self.config.ipv6 {
            response.nodes6 = self.v6.closest(target, K, true);
        }
    }

    fn error(&mut self, to: SocketAddr, transaction: Vec<u8>, code: i64, text: &str) {
        let message = Message::Error(ErrorMessage {
            transaction,
            code,
            text: text.to_owned(),
        });
        self.transmit(to, &message);
    }
}
