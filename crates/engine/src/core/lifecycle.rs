//! Peer lifecycle: known addresses, dialling with back-off, handshakes and admission,
//! disconnects, pausing.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;

impl Core {
    /// Adds addresses to dial (duplicates and banned ones are ignored).
    pub(crate) fn add_peers(&mut self, addrs: &[SocketAddr], now: Instant) {
        for &addr in addrs {
            if self.known.len() >= MAX_KNOWN_PEERS {
                break;
            }
            self.known.entry(addr).or_insert(KnownPeer {
                dial: Dial::Idle,
                failures: 0,
                next_attempt: now,
                banned: false,
                seed: false,
            });
        }
        self.connect_more(now);
    }

    pub(super) fn connect_more(&mut self, now: Instant) {
        if self.paused {
            return;
        }
        let connecting = self
            .known
            .values()
            .filter(|k| k.dial == Dial::Connecting)
            .count();
        let mut room = self
            .conf
            .max_connections
            .saturating_sub(self.peers.len() + connecting);
        let finished = self.is_finished();
        for (addr, known) in &mut self.known {
            if room == 0 {
                break;
            }
            let useful = !finished || !known.seed;
            if known.dial == Dial::Idle && !known.banned && useful && known.next_attempt <= now {
                known.dial = Dial::Connecting;
                self.actions.push(Action::Connect(*addr));
                room -= 1;
            }
        }
    }

    /// An outgoing connection could not be made.
    pub(crate) fn on_connect_failed(&mut self, addr: SocketAddr, now: Instant) {
        if let Some(known) = self.known.get_mut(&addr) {
            known.dial = Dial::Idle;
            known.failures += 1;
            known.next_attempt = now + backoff(known.failures);
        }
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
        let result = self.admit(addr, id, outgoing);
        if outgoing && let Some(known) = self.known.get_mut(&addr) {
            known.dial = if result.is_ok() {
                Dial::Connected
            } else {
                Dial::Idle
            };
            if let Err(reject) = result {
                known.banned |= reject == Reject::Banned || reject == Reject::OurselvesAgain;
                known.failures += 1;
                known.next_attempt = now + backoff(known.failures);
            }
        }
        result?;
        let tag = self.next_tag;
        self.next_tag += 1;
        let common = extensions.common(&our_extensions());
        let peer = Peer::new(
            addr,
            id,
            tag,
            outgoing,
            common,
            self.geometry.piece_count(),
            now,
        );
        let key = self.peers.insert(peer);
        self.tags.insert(tag, key);
        let peer = &mut self.peers[key];
        if common.contains(Extension::ExtensionProtocol) {
            let handshake = ExtendedHandshake {
                client: Some(format!("cratetorrent {}", env!("CARGO_PKG_VERSION"))),
                listen_port: Some(self.listen_port).filter(|&p| p != 0),
                request_queue: u32::try_from(self.conf.max_in_requests).ok(),
                your_ip: Some(addr.ip()),
                upload_only: self.seed_only || self.wanted_missing == 0,
                ..ExtendedHandshake::default()
            };
            peer.outbox.push(&Message::Extended {
                id: EXTENDED_HANDSHAKE_ID,
                payload: handshake.encode(),
            });
        }
        if self.have.count_ones() > 0 {
            peer.outbox.push(&Message::Bitfield(Bytes::copy_from_slice(
                self.have.as_bytes(),
            )));
        }
        self.actions.push(Action::Wake(key));
        tracing::debug!(%addr, outgoing, "peer connected");
        Ok(key)
    }

    pub(super) fn admit(&self, addr: SocketAddr, id: PeerId, outgoing: bool) -> Result<(), Reject> {
        if self.paused {
            return Err(Reject::Paused);
        }
        if id == self.our_id {
            return Err(Reject::OurselvesAgain);
        }
        if self.banned.contains(&BanKey::of(addr, id)) {
            return Err(Reject::Banned);
        }
        if self
            .peers
            .iter()
            .any(|(_, p)| p.id == id || (outgoing && p.outgoing && p.addr == addr))
        {
            return Err(Reject::Duplicate);
        }
        let connecting = if outgoing { 1 } else { 0 };
        if self.peers.len() + 1 > self.conf.max_connections + connecting {
            return Err(Reject::TooMany);
        }
        Ok(())
    }

    /// Asks for a peer's connection to be closed.
    pub(crate) fn disconnect(&mut self, key: PeerKey, reason: &str) {
        if let Some(peer) = self.peers.get_mut(key)
            && !peer.closing
        {
            tracing::debug!(addr = %peer.addr, reason, "disconnecting peer");
            peer.closing = true;
            self.actions.push(Action::Disconnect(key));
            self.actions.push(Action::Wake(key));
        }
    }

    /// The peer's connection is gone: forget it and give its pieces and requests back.
    pub(crate) fn on_closed(&mut self, key: PeerKey, now: Instant) {
        if !self.peers.contains(key) {
            return;
        }
        self.release_requests(key, false);
        let peer = self.peers.remove(key);
        self.tags.remove(&peer.tag);
        if peer.is_seed {
            self.picker.seed(false);
        } else {
            self.picker.add_bitfield(&peer.bitfield, false);
        }
        if self.optimistic == Some(key) {
            self.optimistic = None;
        }
        if peer.outgoing
            && let Some(known) = self.known.get_mut(&peer.addr)
        {
            known.dial = Dial::Idle;
            known.seed = peer.is_seed;
            if now.saturating_duration_since(peer.connected_at) < SHORT_CONNECTION {
                known.failures += 1;
            } else {
                known.failures = 0;
            }
            known.next_attempt = now + backoff(known.failures);
        }
        tracing::debug!(addr = %peer.addr, "peer closed");
        // Its requests are free again; others may take them.
        self.fill_all(now);
    }

    /// Pauses (disconnecting everyone) or resumes.
    pub(crate) fn set_paused(&mut self, paused: bool, now: Instant) {
        self.paused = paused;
        if paused {
            let keys: Vec<PeerKey> = self.peers.iter().map(|(k, _)| k).collect();
            for key in keys {
                self.disconnect(key, "paused");
            }
        } else {
            for known in self.known.values_mut() {
                known.next_attempt = now;
                known.failures = 0;
            }
            self.connect_more(now);
        }
    }
}

fn backoff(failures: u32) -> Duration {
    // 1 s, 2 s, 4 s, … up to 5 minutes.
    Duration::from_secs(1 << failures.saturating_sub(1).min(9)).min(Duration::from_secs(300))
}
