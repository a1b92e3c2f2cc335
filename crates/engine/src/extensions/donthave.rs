//! BEP 54 `lt_donthave`: a peer tells us it no longer has a piece (it deleted or lost it). The
//! payload is the piece index, 4 bytes big-endian, and nothing else.

use cratetorrent_metainfo::PieceIndex;

pub(super) const NAME: &str = "lt_donthave";

pub(super) fn decode(payload: &[u8]) -> Option<PieceIndex> {
    <[u8; 4]>::try_from(payload).ok().map(u32::from_be_bytes)
}

pub(super) fn encode(piece: PieceIndex) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(&piece.to_be_bytes())
}
