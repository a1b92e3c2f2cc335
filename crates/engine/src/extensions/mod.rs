//! The BEP 10 extensions we speak, as a registry: the message id we assign each one (sent in
//! our extended handshake's `m`), the ids each peer assigned (from its handshake), and one
//! module per extension that owns its message format. The core hands [`decode`] an extended
//! message and acts on the typed [`ExtMessage`] it gets back; an id we never assigned is
//! ignored, as BEP 10 asks. A new extension is a module here, a variant of [`Ext`] and of
//! [`ExtMessage`], and the core's reaction to it.

use std::collections::BTreeMap;

use bytes::Bytes;
use cratetorrent_metainfo::PieceIndex;
use cratetorrent_wire::{ExtendedHandshake, Message, MetadataMessage, PexMessage, UT_PEX};

mod donthave;
pub(crate) mod metadata;

/// An extension we speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ext {
    /// BEP 54 `lt_donthave`: the peer no longer has a piece.
    DontHave,
    /// BEP 9 `ut_metadata`: the info dictionary, piece by piece.
    Metadata,
    /// BEP 11 `ut_pex`: the peers a peer is connected to.
    Pex,
}

impl Ext {
    const ALL: [Ext; 3] = [Ext::DontHave, Ext::Metadata, Ext::Pex];

    fn name(self) -> &'static str {
        match self {
            Ext::DontHave => donthave::NAME,
            Ext::Metadata => metadata::NAME,
            Ext::Pex => UT_PEX,
        }
    }

    /// The id peers use to send it to us (1-based: 0 is the extended handshake).
    fn our_id(self) -> u8 {
        match self {
            Ext::DontHave => 1,
            Ext::Metadata => 2,
            Ext::Pex => 3,
        }
    }

    fn of_our_id(id: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|ext| ext.our_id() == id)
    }
}

/// A decoded extension message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExtMessage {
    DontHave(PieceIndex),
    Metadata(MetadataMessage),
    Pex(PexMessage),
}

/// An extension message that does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed {0} message")]
pub(crate) struct ExtError(&'static str);

/// The `m` dictionary of our extended handshake. A private torrent's metadata is not handed
/// out and its peers are not exchanged (BEP 27: it is found only through its tracker), as
/// libtorrent does; PEX may also be turned off.
pub(crate) fn our_map(private: bool, pex: bool) -> BTreeMap<String, u8> {
    Ext::ALL
        .into_iter()
        .filter(|&ext| match ext {
            Ext::Metadata => !private,
            Ext::Pex => !private && pex,
            Ext::DontHave => true,
        })
        .map(|ext| (ext.name().to_owned(), ext.our_id()))
        .collect()
}

/// Decodes extended message `id` (not 0) sent to us: `None` for an id we never assigned, or a
/// message its extension says to ignore.
pub(crate) fn decode(id: u8, payload: &Bytes) -> Option<Result<ExtMessage, ExtError>> {
    let ext = Ext::of_our_id(id)?;
    Some(match ext {
        Ext::DontHave => donthave::decode(payload)
            .map(ExtMessage::DontHave)
            .ok_or(ExtError(donthave::NAME)),
        Ext::Metadata => match MetadataMessage::decode(payload) {
            Ok(message) => Ok(ExtMessage::Metadata(message?)),
            Err(_) => Err(ExtError(metadata::NAME)),
        },
        Ext::Pex => PexMessage::decode(payload)
            .map(ExtMessage::Pex)
            .map_err(|_| ExtError(UT_PEX)),
    })
}

/// The ids a peer assigned to the extensions we speak (absent or 0: it does not want them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PeerExtensions {
    ids: [Option<u8>; Ext::ALL.len()],
}

impl PeerExtensions {
    pub(crate) fn from_handshake(handshake: &ExtendedHandshake) -> Self {
        let mut ids = [None; Ext::ALL.len()];
        for (slot, ext) in ids.iter_mut().zip(Ext::ALL) {
            *slot = handshake
                .extensions
                .get(ext.name())
                .copied()
                .filter(|&id| id != 0);
        }
        Self { ids }
    }

    /// Whether the peer assigned `ext` an id (it wants those messages).
    pub(crate) fn speaks(&self, ext: Ext) -> bool {
        self.id(ext).is_some()
    }

    fn id(&self, ext: Ext) -> Option<u8> {
        Ext::ALL
            .iter()
            .position(|&e| e == ext)
            .and_then(|index| self.ids[index])
    }

    /// The message that sends `message` to this peer, if it speaks the extension.
    pub(crate) fn encode(&self, message: &ExtMessage) -> Option<Message> {
        let (ext, payload) = match message {
            ExtMessage::DontHave(piece) => (Ext::DontHave, donthave::encode(*piece)),
            ExtMessage::Metadata(message) => (Ext::Metadata, message.encode()),
            ExtMessage::Pex(message) => (Ext::Pex, message.encode()),
        };
        Some(Message::Extended {
            id: self.id(ext)?,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn ids_go_both_ways_and_unknown_ones_are_ignored() {
        let ours = our_map(false, true);
        assert_eq!(ours.get("lt_donthave"), Some(&1));
        assert_eq!(ours.get("ut_metadata"), Some(&2));
        assert_eq!(ours.get("ut_pex"), Some(&3));
        assert_eq!(our_map(true, true).get("ut_metadata"), None, "private");
        assert_eq!(our_map(true, true).get("ut_pex"), None, "private");
        assert_eq!(our_map(false, false).get("ut_pex"), None, "turned off");
        let theirs = ExtendedHandshake {
            extensions: [("lt_donthave".to_string(), 7), ("ut_pex".to_string(), 1)].into(),
            ..ExtendedHandshake::default()
        };
        let peer = PeerExtensions::from_handshake(&theirs);
        let Some(Message::Extended { id, payload }) = peer.encode(&ExtMessage::DontHave(9)) else {
            panic!("the peer speaks lt_donthave");
        };
        assert_eq!(id, 7, "sent with the peer's id");
        assert_eq!(decode(1, &payload), Some(Ok(ExtMessage::DontHave(9))));
        let request = MetadataMessage::Request { piece: 4 }.encode();
        assert_eq!(
            decode(2, &request),
            Some(Ok(ExtMessage::Metadata(MetadataMessage::Request {
                piece: 4
            })))
        );
        let unknown_type = Bytes::from_static(b"d8:msg_typei7e5:piecei0ee");
        assert_eq!(decode(2, &unknown_type), None, "ignored, as BEP 9 asks");
        assert_eq!(decode(42, &payload), None, "an id we never assigned");
        let silent = PeerExtensions::from_handshake(&ExtendedHandshake::default());
        assert_eq!(silent.encode(&ExtMessage::DontHave(9)), None);
        assert_eq!(
            decode(1, &Bytes::from_static(b"abc")),
            Some(Err(ExtError("lt_donthave")))
        );
        assert_eq!(
            decode(2, &Bytes::from_static(b"abc")),
            Some(Err(ExtError("ut_metadata")))
        );
    }
}
