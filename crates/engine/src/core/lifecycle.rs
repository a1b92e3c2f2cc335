//! Peer lifecycle: known addresses, dialling with back-off, handshakes and admission,
//! disconnects, pausing.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cratetorrent_wire::{EXTENDED_HANDSHAKE_ID, Extension, Extensions, Message, PeerId};

use super::known::Dial;
use super::{Action, Core, PeerKey, Reject, our_extensions};
use crate::peer::Peer;
use crate::peer_addr::{BanKey, canonical, limited_ip};

impl Core {
    /// Adds addresses to dial (duplicates and banned ones are ignored; when the list is full
    /// the least useful idle address makes room).
    pub(crate) fn add_peers(&mut self, addrs: &[SocketAddr], now: Instant) {
        for &addr in addrs {
            let addr = canonical(addr);
            let banned = self.bans.contains_ip(addr.ip());
            if !banned && !self.known.insert(addr, now) {
                break;
            }
        }
        self.connect_more(now);
    }

    /// Dials ready addresses, the longest-waiting first, up to the connection limit and at
    /// most `max_connections_per_ip` connections and dials to one IP.
    pub(super) fn connect_more(&mut self, now: Instant) {
        if self.paused {
            return;
        }
        let mut room = self
            .conf
            .max_connections
            .saturating_sub(self.peers.len() + self.known.connecting());
        let finished = self.is_finished();
        let mut cursor = None;
        while room > 0 {
            let Some(next) = self.known.next_ready(cursor, now) else {
                break;
            };
            cursor = Some(next);
            let addr = next.1;
            let useful = !finished || self.known.get(&addr).is_some_and(|k| !k.seed);
            if useful && self.may_dial(addr) {
                self.known
                    .update(addr, |known| known.dial = Dial::Connecting);
                self.actions.push_back(Action::Connect(addr));
                room -= 1;
            }
        }
    }

    fn may_dial(&self, addr: SocketAddr) -> bool {
        let Some(ip) = limited_ip(addr) else {
            return true;
        };
        if self.bans.contains_ip(ip) {
            return false;
        }
        let limit = self.conf.max_connections_per_ip;
        let taken = self.peers.count_from(ip) + self.known.dialling(ip) as usize;
        limit == 0 || taken < limit
    }

    /// An outgoing connection could not be made.
    pub(crate) fn on_connect_failed(&mut self, addr: SocketAddr, now: Instant) {
        self.known.update(canonical(addr), |known| {
            if known.dial != Dial::Connected {
                known.dial = Dial::Idle;
                known.failures += 1;
                known.next_attempt = now + backoff(known.failures);
            }
        });
    }

    /// A connection finished its handshake; on success the peer is registered and greeted.
    pub(crate) fn on_handshake(
        &mut self,
        addr: SocketAddr,
        id: PeerId,
        extensions: Extensions,
        outgoing: bool,
        now: Instant,
    ) -> Result<PeerKey, Reject> {
        let addr = canonical(addr);
        let result = self.admit(addr, id, outgoing);
        if outgoing {
            self.known.update(addr, |known| match result {
                Ok(_) => {
                    known.dial = Dial::Connected;
                    known.proven = true;
                }
                Err(reject) => {
                    known.dial = Dial::Idle;
                    known.banned |= reject == Reject::Banned || reject == Reject::OurselvesAgain;
                    known.failures += 1;
                    known.next_attempt = now + backoff(known.failures);
                }
            });
        }
        if let Some(old) = result? {
            self.disconnect(old, "duplicate: the peer keeps the other connection too");
        }
        let common = extensions.common(&our_extensions(self.dht_port.is_some()));
        let pieces = self.geometry.piece_count();
        let key = self
            .peers
            .insert(|tag| Peer::new(addr, id, tag, outgoing, common, pieces, now));
        let handshake = common
            .contains(Extension::ExtensionProtocol)
            .then(|| self.extended_handshake(addr.ip()));
        let peer = &mut self.peers[key];
        peer.queue_target = self.conf.initial_request_queue.max(1);
        if let Some(handshake) = handshake {
            peer.outbox.push(&Message::Extended {
                id: EXTENDED_HANDSHAKE_ID,
                payload: handshake.encode(),
            });
        }
        self.greet(key);
        if let Some(port) = self.dht_port
            && common.contains(Extension::Dht)
        {
            self.peers[key].outbox.push(&Message::Port(port));
        }
        tracing::debug!(%addr, outgoing, "peer connected");
        Ok(key)
    }

    /// Whether a peer that finished its handshake may join; `Some` names a connection it
    /// replaces (both ends dialled each other).
    pub(super) fn admit(
        &self,
        addr: SocketAddr,
        id: PeerId,
        outgoing: bool,
    ) -> Result<Option<PeerKey>, Reject> {
        if self.paused {
            return Err(Reject::Paused);
        }
        if id == self.our_id {
            return Err(Reject::OurselvesAgain);
        }
        if self.bans.contains(&BanKey::of(addr, id)) {
            return Err(Reject::Banned);
        }
        let mut replaced = None;
        for (key, p) in self.peers.iter() {
            if p.id == id {
                // Both ends dialled and each has one connection of each kind: both must keep
                // the same one, or each keeps the one that finished first on its side and
                // closes the one the other kept.
                let crossed = p.outgoing != outgoing && !p.closing && p.addr.ip() == addr.ip();
                if crossed {
                    let their_port = if outgoing { addr.port() } else { p.addr.port() };
                    if self.keeps_our_dial(their_port, id) == outgoing {
                        replaced = Some(key);
                        continue;
                    }
                }
                return Err(Reject::Duplicate);
            }
            if outgoing && p.outgoing && p.addr == addr {
                return Err(Reject::Duplicate);
            }
        }
        let leaving = usize::from(replaced.is_some());
        if let Some(ip) = limited_ip(addr) {
            let limit = self.conf.max_connections_per_ip;
            if limit > 0 && self.peers.count_from(ip).saturating_sub(leaving) >= limit {
                return Err(Reject::TooManyFromIp);
            }
        }
        let connecting = if outgoing { 1 } else { 0 };
        if self.peers.len().saturating_sub(leaving) + 1 > self.conf.max_connections + connecting {
            return Err(Reject::TooMany);
        }
        Ok(replaced)
    }

    /// Of two crossed connections with a peer listening on `their_port`, whether ours (the
    /// one we dialled) stays. libtorrent's rules, so that it closes the same one: the end with
    /// the lower listening port keeps its dial (its rule for one connection per IP, the
    /// default), and on equal ports the end with the greater peer id (its rule by peer id).
    fn keeps_our_dial(&self, their_port: u16, id: PeerId) -> bool {
        match self.listen_port.cmp(&their_port) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Greater => false,
            std::cmp::Ordering::Equal => id < self.our_id,
        }
    }

    /// Asks for a peer's connection to be closed.
    pub(crate) fn disconnect(&mut self, key: PeerKey, reason: &str) {
        if let Some(peer) = self.peers.get_mut(key)
            && !peer.closing
        {
            tracing::debug!(addr = %peer.addr, reason, "disconnecting peer");
            peer.closing = true;
            // Nothing more goes out: what was queued (blocks slicing read buffers) is freed now,
            // not when the connection's reader gets to notice (it may wait for disk memory).
            peer.outbox = crate::outbox::Outbox::default();
            peer.incoming.clear();
            peer.reading.clear();
            self.actions.push_back(Action::Disconnect(key));
            self.actions.push_back(Action::Wake(key));
        }
    }

    /// The peer's connection is gone: forget it and give its pieces and requests back.
    pub(crate) fn on_closed(&mut self, key: PeerKey, now: Instant) {
        if !self.peers.contains(key) {
            return;
        }
        self.release_requests(key, false);
        let Some(peer) = self.peers.remove(key) else {
            return;
        };
        self.forget_metadata_peer(key, now);
        // Its reads still waiting in storage would only be answered to nobody.
        self.actions.push_back(Action::ForgetReads(peer.tag));
        if peer.is_seed {
            self.picker.seed(false);
        } else {
            self.picker.add_bitfield(&peer.bitfield, false);
        }
        if self.optimistic == Some(key) {
            self.optimistic = None;
        }
        if peer.outgoing {
            let short =
                now.saturating_duration_since(peer.connected_at) < self.conf.short_connection;
            self.known.update(peer.addr, |known| {
                known.dial = Dial::Idle;
                known.seed = peer.is_seed;
                known.failures = if short { known.failures + 1 } else { 0 };
                known.next_attempt = now + backoff(known.failures);
                known.last_seen = now;
            });
        }
        tracing::debug!(addr = %peer.addr, "peer closed");
        // Its requests are free again; others may take them.
        self.fill_all(now);
    }

    /// Pauses (disconnecting everyone) or resumes.
    pub(crate) fn set_paused(&mut self, paused: bool, now: Instant) {
        self.paused = paused;
        if paused {
            let keys = self.peers.keys();
            for key in keys {
                self.disconnect(key, "paused");
            }
        } else {
            for addr in self.known.addrs() {
                self.known.update(addr, |known| {
                    known.next_attempt = now;
                    known.failures = 0;
                });
            }
            self.connect_more(now);
        }
    }
}

fn backoff(failures: u32) -> Duration {
    // 1 s, 2 s, 4 s, … up to 5 minutes.
    Duration::from_secs(1 << failures.saturating_sub(1).min(9)).min(Duration::from_secs(300))
}
