//! BEP 9 metadata exchange in the core: serving our info dictionary to peers that ask for it,
//! and for a torrent added by magnet link, fetching it (see `metadata_fetch.rs`), then turning
//! into an ordinary torrent without dropping a connection: what peers said of their pieces
//! meanwhile is replayed, and the shell is asked to open the storage
//! ([`Action::MetadataReady`]), which it reports with [`Input::StorageReady`](super::Input).

use std::net::IpAddr;
use std::time::Instant;

use bytes::Bytes;
use cratetorrent_metainfo::{Limits, Metainfo, MetainfoError};
use cratetorrent_wire::{
    Bitfield, EXTENDED_HANDSHAKE_ID, ExtendedHandshake, Extension, Geometry, Message,
    MetadataMessage,
};

use super::in_progress::InProgress;
use super::metadata_fetch::Arrival;
use super::{Action, Core, PeerKey};
use crate::alert::Alert;
use crate::extensions::{Ext, ExtMessage, metadata};
use crate::peer_addr::BanKey;
use crate::picker::Picker;

impl Core {
    pub(super) fn on_metadata_message(
        &mut self,
        key: PeerKey,
        message: MetadataMessage,
        now: Instant,
    ) {
        match message {
            MetadataMessage::Request { piece } => self.serve_metadata(key, piece),
            MetadataMessage::Data {
                piece,
                total_size,
                data,
            } => self.on_metadata_data(key, piece, total_size, &data, now),
            MetadataMessage::Reject { piece } => {
                if let Some(fetch) = &mut self.fetch {
                    fetch.release(key, Some(piece));
                    if let Some(peer) = self.peers.get_mut(key) {
                        peer.metadata.refused = true;
                    }
                    self.request_metadata_all(now);
                }
            }
        }
    }

    fn serve_metadata(&mut self, key: PeerKey, piece: u32) {
        let watermark = self.conf.send_watermark;
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        // A private torrent's metadata is not handed out, and a peer that does not read what
        // we send gets rejects, not an ever longer queue of 16 KiB answers.
        let answer = match &self.metainfo {
            Some(metainfo) if !metainfo.is_private() && peer.outbox.len() < watermark => {
                metadata::answer(metainfo.info_bytes(), piece)
            }
            _ => MetadataMessage::Reject { piece },
        };
        if let Some(message) = peer.ext.encode(&ExtMessage::Metadata(answer)) {
            peer.outbox.push(&message);
            self.actions.push_back(Action::Wake(key));
        }
    }

    /// Asks the peer for metadata pieces while we fetch and it may be asked.
    pub(super) fn request_metadata(&mut self, key: PeerKey, now: Instant) {
        let Some(fetch) = &mut self.fetch else {
            return;
        };
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        if peer.closing || peer.metadata.refused || !peer.ext.speaks(Ext::Metadata) {
            return;
        }
        let Some(size) = peer.metadata.size else {
            return;
        };
        if !fetch.offer_size(size) {
            return;
        }
        let mut asked = false;
        while let Some(piece) = fetch.next_request(key, now) {
            let request = ExtMessage::Metadata(MetadataMessage::Request { piece });
            if let Some(message) = peer.ext.encode(&request) {
                peer.outbox.push(&message);
                asked = true;
            }
        }
        if asked {
            self.actions.push_back(Action::Wake(key));
        }
    }

    fn request_metadata_all(&mut self, now: Instant) {
        for key in self.peers.keys() {
            self.request_metadata(key, now);
        }
    }

    fn on_metadata_data(
        &mut self,
        key: PeerKey,
        piece: u32,
        total_size: u64,
        data: &[u8],
        now: Instant,
    ) {
        let (Some(fetch), Some(peer)) = (&mut self.fetch, self.peers.get(key)) else {
            return;
        };
        let sender = BanKey::of(peer.addr, peer.id);
        match fetch.on_data(key, sender, piece, total_size, data) {
            // A late answer after a timeout, or a peer sending what nobody asked: unused.
            Arrival::Unasked => {}
            Arrival::Stored => self.request_metadata(key, now),
            Arrival::Complete(info) => self.adopt_metadata(&info, now),
            Arrival::Mismatch { culprit } => {
                tracing::info!("metadata does not match the info-hash");
                if let Some(culprit) = culprit {
                    self.ban(
                        culprit,
                        "sending metadata that does not match the info-hash",
                    );
                }
                self.request_metadata_all(now);
            }
        }
    }

    /// Peers that let metadata requests go unanswered are asked no more (on the tick).
    pub(super) fn expire_metadata_requests(&mut self, now: Instant) {
        let timeout = self.conf.metadata_request_timeout;
        let Some(fetch) = &mut self.fetch else {
            return;
        };
        for key in fetch.expire(now, timeout) {
            if let Some(peer) = self.peers.get_mut(key) {
                peer.metadata.refused = true;
            }
        }
        self.request_metadata_all(now);
    }

    /// The peer is gone: what was asked of it goes to others.
    pub(super) fn forget_metadata_peer(&mut self, key: PeerKey, now: Instant) {
        if let Some(fetch) = &mut self.fetch {
            fetch.release(key, None);
            self.request_metadata_all(now);
        }
    }

    /// The info dictionary hashes to the info-hash: the torrent takes its shape.
    fn adopt_metadata(&mut self, info: &Bytes, now: Instant) {
        let Some(magnet) = self.magnet.take() else {
            return;
        };
        self.fetch = None;
        let limits = Limits::default();
        let parsed = Metainfo::from_info(info, magnet.trackers, magnet.web_seeds, &limits)
            .and_then(|metainfo| match metainfo.meta_version().has_v1() {
                true => Ok(metainfo),
                // Its SHA-1 matched a `btih`, but it has no v1 piece hashes to check pieces by.
                false => Err(MetainfoError::Unsupported(crate::error::V2_ONLY)),
            });
        let metainfo = match parsed {
            Ok(metainfo) => metainfo,
            Err(error) => {
                // It is what the info-hash names: no peer can give a better one.
                tracing::warn!(%error, "the metadata is not a valid torrent");
                self.alerts.push_back(Alert::TorrentError {
                    id: self.id,
                    error: crate::TorrentError::Metadata(error),
                });
                self.set_paused(true, now);
                return;
            }
        };
        let pieces = metainfo.piece_count();
        tracing::info!(name = metainfo.name(), pieces, "metadata received");
        self.alerts.push_back(Alert::MetadataReceived {
            id: self.id,
            metainfo: Box::new(metainfo.clone()),
        });
        self.geometry = Geometry::of(&metainfo);
        self.have = Bitfield::new(pieces);
        self.picker = Picker::new(pieces, &self.have);
        self.wanted_missing = pieces;
        self.in_progress = InProgress::default();
        self.metainfo = Some(metainfo.clone());
        if self.pending_priorities.is_none() {
            let link = cratetorrent_metainfo::Magnet {
                select_only: magnet.select_only,
                ..Default::default()
            };
            self.pending_priorities = link
                .selected_files(metainfo.files().len())
                .map(|selected| selected.into_iter().map(priority_of).collect());
        }
        if let Some(priorities) = self.pending_priorities.take() {
            self.set_file_priorities(&priorities, now);
        }
        for key in self.peers.keys() {
            let handshake = self.extended_handshake(self.peers[key].addr.ip());
            let peer = &mut self.peers[key];
            peer.bitfield = Bitfield::new(pieces);
            peer.got_first_message = false;
            if peer.extensions.contains(Extension::ExtensionProtocol) {
                // Again, now with `metadata_size`: we can serve it too.
                peer.outbox.push(&Message::Extended {
                    id: EXTENDED_HANDSHAKE_ID,
                    payload: handshake.encode(),
                });
                self.actions.push_back(Action::Wake(key));
            }
            let early = std::mem::take(&mut peer.early);
            if early.all {
                self.on_message(key, Message::HaveAll, now);
            } else if let Some(bitfield) = early.bitfield {
                self.on_message(key, Message::Bitfield(bitfield), now);
            }
            for piece in early.haves {
                self.on_message(key, Message::Have(piece), now);
            }
        }
        self.actions
            .push_back(Action::MetadataReady(Box::new(metainfo)));
    }

    /// The storage of a torrent whose metadata came by magnet link is open, with `have`
    /// already on disk: downloading starts.
    pub(super) fn on_storage_ready(&mut self, have: Bitfield, now: Instant) {
        if self.storage_ready || have.len() != self.geometry.piece_count() {
            return;
        }
        self.storage_ready = true;
        for piece in have.iter_ones() {
            self.picker.take(piece);
            if self.wants(piece) {
                self.wanted_missing = self.wanted_missing.saturating_sub(1);
            }
            self.have.set(piece);
            for key in self.peers.keys() {
                let peer = &mut self.peers[key];
                // `have`s, not a bitfield: ours (empty) went out with the handshake.
                peer.outbox.push(&Message::Have(piece));
                if peer.has_piece(piece) {
                    peer.interesting = peer.interesting.saturating_sub(1);
                }
            }
        }
        if self.is_finished() && !self.completed_alerted {
            self.completed_alerted = true;
            self.alerts.push_back(Alert::TorrentComplete(self.id));
        }
        for key in self.peers.keys() {
            self.send_allowed_set(key);
            self.update_interest(key, now);
            self.actions.push_back(Action::Wake(key));
        }
        self.fill_all(now);
    }

    /// Our extended handshake to a peer at `ip`, as things stand (`metadata_size` once we have
    /// the metadata).
    pub(super) fn extended_handshake(&self, ip: IpAddr) -> ExtendedHandshake {
        let private = self.metainfo.as_ref().is_some_and(Metainfo::is_private);
        ExtendedHandshake {
            extensions: crate::extensions::our_map(private, self.conf.pex),
            metadata_size: self
                .metainfo
                .as_ref()
                .filter(|_| !private)
                .map(|m| m.info_bytes().len() as u64),
            client: Some(format!("cratetorrent {}", env!("CARGO_PKG_VERSION"))),
            listen_port: Some(self.listen_port).filter(|&p| p != 0),
            request_queue: u32::try_from(self.conf.max_in_requests).ok(),
            your_ip: Some(ip),
            upload_only: self.seed_only || self.is_finished(),
        }
    }
}

/// A file's priority when a magnet link's `so` selects it, or not.
pub(crate) fn priority_of(selected: bool) -> u8 {
    if selected {
        crate::picker::DEFAULT_PRIORITY
    } else {
        0
    }
}
