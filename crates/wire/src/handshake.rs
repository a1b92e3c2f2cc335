//! The 68-byte handshake that opens every peer connection (BEP 3).

use bytes::{Buf, BufMut, BytesMut};
use cratetorrent_metainfo::InfoHash;

use crate::{Extensions, PeerId, WireError};

/// The protocol string, preceded on the wire by its length (19).
pub const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";

/// Length of a handshake on the wire.
pub const HANDSHAKE_LEN: usize = 1 + PROTOCOL.len() + 8 + 20 + 20;

/// Offset of the info-hash in a handshake: enough to route an incoming connection.
const INFO_HASH_AT: usize = 1 + PROTOCOL.len() + 8;

/// A decoded handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// The reserved bytes: which extensions the sender supports.
    pub extensions: Extensions,
    /// The torrent the sender wants.
    pub info_hash: InfoHash,
    /// The sender's id.
    pub peer_id: PeerId,
}

impl Handshake {
    /// Appends the 68-byte handshake to `buf`.
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.reserve(HANDSHAKE_LEN);
        buf.put_slice(PREFIX);
        buf.put_slice(self.extensions.as_bytes());
        buf.put_slice(self.info_hash.as_bytes());
        buf.put_slice(self.peer_id.as_bytes());
    }

    /// Takes a handshake from the front of `buf` once all 68 bytes are there.
    ///
    /// The protocol string is checked as soon as its bytes arrive, so a peer speaking something
    /// else is rejected without waiting for the rest.
    pub fn decode(buf: &mut BytesMut) -> Result<Option<Self>, WireError> {
        check_protocol(buf)?;
        if buf.len() < HANDSHAKE_LEN {
            return Ok(None);
        }
        let bytes = &buf[..HANDSHAKE_LEN];
        let handshake = Self {
            extensions: Extensions::from_bytes(array(&bytes[20..28])),
            info_hash: InfoHash::new(array(&bytes[INFO_HASH_AT..INFO_HASH_AT + 20])),
            peer_id: PeerId::new(array(&bytes[48..68])),
        };
        buf.advance(HANDSHAKE_LEN);
        Ok(Some(handshake))
    }

    /// The info-hash of a handshake still arriving, once its first 48 bytes are buffered, so an
    /// incoming connection can be routed to its torrent before the peer id is known.
    pub fn peek_info_hash(buf: &[u8]) -> Result<Option<InfoHash>, WireError> {
        check_protocol(buf)?;
        Ok(buf
            .get(INFO_HASH_AT..INFO_HASH_AT + 20)
            .map(|bytes| InfoHash::new(array(bytes))))
    }
}

/// The length byte and protocol string that open every handshake.
const PREFIX: &[u8; 20] = b"\x13BitTorrent protocol";

fn check_protocol(buf: &[u8]) -> Result<(), WireError> {
    let seen = buf.len().min(PREFIX.len());
    if buf[..seen] != PREFIX[..seen] {
        return Err(WireError::InvalidProtocol);
    }
    Ok(())
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Extension;

    fn sample() -> Handshake {
        Handshake {
            extensions: Extensions::NONE.with(Extension::Fast),
            info_hash: InfoHash::new([7; 20]),
            peer_id: PeerId::new(*b"-LT2080-abcdefghijkl"),
        }
    }

    #[test]
    fn round_trips_and_waits_for_all_bytes() {
        let mut buf = BytesMut::new();
        sample().encode(&mut buf);
        assert_eq!(buf.len(), HANDSHAKE_LEN);
        buf.put_slice(b"\0\0\0\0");
        let mut partial = BytesMut::from(&buf[..67]);
        assert_eq!(Handshake::decode(&mut partial), Ok(None));
        assert_eq!(Handshake::peek_info_hash(&buf[..47]), Ok(None));
        assert_eq!(
            Handshake::peek_info_hash(&buf[..48]),
            Ok(Some(InfoHash::new([7; 20])))
        );
        assert_eq!(Handshake::decode(&mut buf), Ok(Some(sample())));
        assert_eq!(&buf[..], b"\0\0\0\0");
    }

    #[test]
    fn rejects_other_protocols_early() {
        for bad in [
            &b"\x12"[..],
            b"\x13BitTorrent protocoX",
            b"GET / HTTP/1.1\r\n",
            b"\x13bit",
        ] {
            let mut buf = BytesMut::from(bad);
            assert_eq!(
                Handshake::decode(&mut buf),
                Err(WireError::InvalidProtocol),
                "{bad:?}"
            );
        }
        let mut buf = BytesMut::from(&b"\x13BitTorr"[..]);
        assert_eq!(Handshake::decode(&mut buf), Ok(None));
    }
}
