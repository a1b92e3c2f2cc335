//! BEP 9 metadata exchange in the core: serving our info dictionary to peers that ask for it
//! (peers that joined by magnet link).

use cratetorrent_wire::MetadataMessage;

use super::{Action, Core, PeerKey};
use crate::extensions::{ExtMessage, metadata};

impl Core {
    pub(super) fn on_metadata_message(&mut self, key: PeerKey, message: MetadataMessage) {
        let MetadataMessage::Request { piece } = message else {
            // We have the metadata: data and rejects are answers to nothing we asked.
            return;
        };
        let private = self.metainfo.is_private();
        let watermark = self.conf.send_watermark;
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        // A private torrent's metadata is not handed out, and a peer that does not read what
        // we send gets rejects, not an ever longer queue of 16 KiB answers.
        let answer = if private || peer.outbox.len() >= watermark {
            MetadataMessage::Reject { piece }
        } else {
            metadata::answer(self.metainfo.info_bytes(), piece)
        };
        if let Some(message) = peer.ext.encode(&ExtMessage::Metadata(answer)) {
            peer.outbox.push(&message);
            self.actions.push_back(Action::Wake(key));
        }
    }
}
