//! BEP 11 peer exchange in the core: peers a peer tells us of become known addresses to dial,
//! and each peer is told, at most once per `pex_interval`, whom we connected to and whom we
//! dropped since it last heard. Never for a private torrent, nor with `pex` off.
//!
//! Limits, as the reference clients keep them: at most [`MAX_PER_MESSAGE`] added and as many
//! dropped in a message, except the first (which may list everyone); a peer sending messages
//! closer than [`MIN_RECEIVE_INTERVAL`] or a later message over the limit is dropped. Only
//! peers we dialled, or that told us their listen port, are advertised, at that port.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cratetorrent_wire::{PexFlags, PexMessage};

use super::{Action, Core, PeerKey};
use crate::extensions::{Ext, ExtMessage};
use crate::peer::Peer;
use crate::peer_addr::{can_dial, canonical};

/// Added (and dropped) peers in one message after the first.
pub(super) const MAX_PER_MESSAGE: usize = 50;
/// Added peers taken from one message (the first may list many more).
const MAX_TAKEN: usize = 200;
/// Closest two messages from a peer may come (peers send every minute; anacrolix refuses
/// anything under 45 s).
pub(super) const MIN_RECEIVE_INTERVAL: Duration = Duration::from_secs(45);

impl Core {
    fn pex_on(&self) -> bool {
        self.conf.pex && !self.metainfo.as_ref().is_some_and(|m| m.is_private())
    }

    pub(super) fn on_pex(&mut self, key: PeerKey, message: PexMessage, now: Instant) {
        if !self.pex_on() {
            return;
        }
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        let first = peer.pex.received_at.is_none();
        if peer
            .pex
            .received_at
            .is_some_and(|at| now.saturating_duration_since(at) < MIN_RECEIVE_INTERVAL)
        {
            self.disconnect(key, "PEX messages too often");
            return;
        }
        if !first
            && (message.added.len() > MAX_PER_MESSAGE || message.dropped.len() > MAX_PER_MESSAGE)
        {
            self.disconnect(key, "PEX message over the limit");
            return;
        }
        peer.pex.received_at = Some(now);
        let added: Vec<(SocketAddr, PexFlags)> = message
            .added
            .into_iter()
            .map(|(addr, flags)| (canonical(addr), flags))
            .filter(|&(addr, _)| can_dial(addr))
            .take(MAX_TAKEN)
            .collect();
        let addrs: Vec<SocketAddr> = added.iter().map(|&(addr, _)| addr).collect();
        self.add_peers(&addrs, now);
        for (addr, flags) in added {
            if flags.contains(PexFlags::SEED) {
                self.known.update(addr, |known| known.seed = true);
            }
        }
    }

    /// Tells each peer that speaks PEX and is due whom we connected to and dropped since.
    pub(super) fn send_pex(&mut self, now: Instant) {
        if !self.pex_on() {
            return;
        }
        let interval = self.conf.pex_interval;
        let due = |peer: &Peer| {
            !peer.closing
                && peer.ext.speaks(Ext::Pex)
                && peer
                    .pex
                    .sent_at
                    .is_none_or(|at| now.saturating_duration_since(at) >= interval)
        };
        if !self.peers.iter().any(|(_, peer)| due(peer)) {
            return;
        }
        let current: Vec<(SocketAddr, PexFlags)> = self
            .peers
            .iter()
            .filter(|(_, peer)| !peer.closing)
            .filter_map(|(_, peer)| Some((advertised(peer)?, flags(peer))))
            .collect();
        let present: HashSet<SocketAddr> = current.iter().map(|&(addr, _)| addr).collect();
        for key in self.peers.keys() {
            let peer = &mut self.peers[key];
            if !due(peer) {
                continue;
            }
            let own = advertised(peer);
            let added: Vec<(SocketAddr, PexFlags)> = current
                .iter()
                .filter(|(addr, _)| Some(*addr) != own && !peer.pex.told.contains(addr))
                .take(MAX_PER_MESSAGE)
                .copied()
                .collect();
            let dropped: Vec<SocketAddr> = peer
                .pex
                .told
                .iter()
                .filter(|addr| !present.contains(addr))
                .take(MAX_PER_MESSAGE)
                .copied()
                .collect();
            if added.is_empty() && dropped.is_empty() {
                continue;
            }
            for addr in &dropped {
                peer.pex.told.remove(addr);
            }
            peer.pex.told.extend(added.iter().map(|&(addr, _)| addr));
            peer.pex.sent_at = Some(now);
            let message = ExtMessage::Pex(PexMessage { added, dropped });
            if let Some(message) = peer.ext.encode(&message) {
                peer.outbox.push(&message);
                self.actions.push_back(Action::Wake(key));
            }
        }
    }
}

/// Where others can reach the peer: the address we dialled, or its IP with the listen port
/// it told us; `None` for a peer that connected to us and never said.
fn advertised(peer: &Peer) -> Option<SocketAddr> {
    if peer.outgoing {
        return Some(peer.addr);
    }
    peer.listen_port
        .map(|port| SocketAddr::new(peer.addr.ip(), port))
}

fn flags(peer: &Peer) -> PexFlags {
    let mut flags = PexFlags::default();
    if peer.is_seed {
        flags = flags.with(PexFlags::SEED);
    }
    if peer.outgoing {
        flags = flags.with(PexFlags::REACHABLE);
    }
    if peer.link.utp {
        flags = flags.with(PexFlags::UTP);
    }
    if peer.link.encrypted {
        flags = flags.with(PexFlags::PREFERS_ENCRYPTION);
    }
    flags
}
