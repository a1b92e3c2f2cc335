//! Peer messages (BEP 3, BEP 5 `port`, BEP 6 fast extension, BEP 10 extended, BEP 52 hashes)
//! and their encoding.

use bytes::{BufMut, Bytes, BytesMut};
use cratetorrent_metainfo::PieceIndex;

use crate::hash_request::HASH_REQUEST_LEN;
use crate::{BlockInfo, HashRequest};

/// Message ids on the wire.
pub(crate) mod id {
    pub(crate) const CHOKE: u8 = 0;
    pub(crate) const UNCHOKE: u8 = 1;
    pub(crate) const INTERESTED: u8 = 2;
    pub(crate) const NOT_INTERESTED: u8 = 3;
    pub(crate) const HAVE: u8 = 4;
    pub(crate) const BITFIELD: u8 = 5;
    pub(crate) const REQUEST: u8 = 6;
    pub(crate) const PIECE: u8 = 7;
    pub(crate) const CANCEL: u8 = 8;
    pub(crate) const PORT: u8 = 9;
    pub(crate) const SUGGEST_PIECE: u8 = 13;
    pub(crate) const HAVE_ALL: u8 = 14;
    pub(crate) const HAVE_NONE: u8 = 15;
    pub(crate) const REJECT_REQUEST: u8 = 16;
    pub(crate) const ALLOWED_FAST: u8 = 17;
    pub(crate) const EXTENDED: u8 = 20;
    pub(crate) const HASH_REQUEST: u8 = 21;
    pub(crate) const HASHES: u8 = 22;
    pub(crate) const HASH_REJECT: u8 = 23;
}

/// Length of a `piece` message before its data: length prefix, id, piece index and offset.
pub const PIECE_HEADER_LEN: usize = 4 + 1 + 4 + 4;

/// A block of data, as carried by a `piece` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The piece.
    pub piece: PieceIndex,
    /// Byte offset inside the piece.
    pub offset: u32,
    /// The data: a zero-copy view of the receive buffer when decoded.
    pub data: Bytes,
}

impl Block {
    /// Which block this is.
    pub fn info(&self) -> BlockInfo {
        BlockInfo {
            piece: self.piece,
            offset: self.offset,
            len: u32::try_from(self.data.len()).unwrap_or(u32::MAX),
        }
    }
}

/// A message of the peer wire protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A zero-length message that keeps an idle connection open.
    KeepAlive,
    /// The sender will not serve requests.
    Choke,
    /// The sender will serve requests.
    Unchoke,
    /// The sender wants pieces the receiver has.
    Interested,
    /// The sender wants nothing from the receiver.
    NotInterested,
    /// The sender now has a piece.
    Have(PieceIndex),
    /// The raw bitfield payload; check it against the torrent with
    /// [`Bitfield::from_payload`](crate::Bitfield::from_payload).
    Bitfield(Bytes),
    /// A request for a block.
    Request(BlockInfo),
    /// A block of data.
    Piece(Block),
    /// Withdraws a request.
    Cancel(BlockInfo),
    /// BEP 5: the sender's DHT port.
    Port(u16),
    /// BEP 6: a piece the receiver may want to request (it is cheap for the sender to serve).
    SuggestPiece(PieceIndex),
    /// BEP 6: the sender has every piece.
    HaveAll,
    /// BEP 6: the sender has no piece.
    HaveNone,
    /// BEP 6: the sender will not serve this request.
    RejectRequest(BlockInfo),
    /// BEP 6: a piece the receiver may request even while choked.
    AllowedFast(PieceIndex),
    /// BEP 10: an extended message (`id` 0 is the extended handshake).
    Extended {
        /// The extended message id.
        id: u8,
        /// The payload, zero-copy.
        payload: Bytes,
    },
    /// BEP 52: asks for hashes of a file's merkle tree (allowed while choked).
    HashRequest(HashRequest),
    /// BEP 52: the hashes a request asked for, then the uncle hashes proving them (32 bytes
    /// each, zero-copy; check the count against the request before use).
    Hashes {
        /// What they answer.
        request: HashRequest,
        /// The hashes, 32 bytes each.
        hashes: Bytes,
    },
    /// BEP 52: the sender will not serve this hash request.
    HashReject(HashRequest),
    /// A message id this crate does not know; the caller decides whether to ignore it.
    Unknown {
        /// The message id.
        id: u8,
        /// The payload, zero-copy.
        payload: Bytes,
    },
}

impl Message {
    /// The number of bytes [`encode`](Self::encode) writes, length prefix included.
    pub fn encoded_len(&self) -> usize {
        4 + match self {
            Message::KeepAlive => 0,
            Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested
            | Message::HaveAll
            | Message::HaveNone => 1,
            Message::Have(_) | Message::SuggestPiece(_) | Message::AllowedFast(_) => 5,
            Message::Port(_) => 3,
            Message::Request(_) | Message::Cancel(_) | Message::RejectRequest(_) => 13,
            Message::Bitfield(bits) => 1 + bits.len(),
            Message::Piece(block) => 9 + block.data.len(),
            Message::Extended { payload, .. } => 2 + payload.len(),
            Message::HashRequest(_) | Message::HashReject(_) => 1 + HASH_REQUEST_LEN,
            Message::Hashes { hashes, .. } => 1 + HASH_REQUEST_LEN + hashes.len(),
            Message::Unknown { payload, .. } => 1 + payload.len(),
        }
    }

    /// Appends the message to `buf` (reserving once; no other allocation).
    ///
    /// A `piece` message's data is copied; to send a block without copying it, write
    /// [`encode_piece_header`] and send the data beside it in one vectored write.
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.reserve(self.encoded_len());
        // Only payloads over 4 GiB, which no peer accepts, would not fit.
        let len = u32::try_from(self.encoded_len() - 4).unwrap_or(u32::MAX);
        buf.put_u32(len);
        match self {
            Message::KeepAlive => {}
            Message::Choke => buf.put_u8(id::CHOKE),
            Message::Unchoke => buf.put_u8(id::UNCHOKE),
            Message::Interested => buf.put_u8(id::INTERESTED),
            Message::NotInterested => buf.put_u8(id::NOT_INTERESTED),
            Message::HaveAll => buf.put_u8(id::HAVE_ALL),
            Message::HaveNone => buf.put_u8(id::HAVE_NONE),
            Message::Have(piece) => put_id_u32(buf, id::HAVE, *piece),
            Message::SuggestPiece(piece) => put_id_u32(buf, id::SUGGEST_PIECE, *piece),
            Message::AllowedFast(piece) => put_id_u32(buf, id::ALLOWED_FAST, *piece),
            Message::Port(port) => {
                buf.put_u8(id::PORT);
                buf.put_u16(*port);
            }
            Message::Request(block) => put_block(buf, id::REQUEST, block),
            Message::Cancel(block) => put_block(buf, id::CANCEL, block),
            Message::RejectRequest(block) => put_block(buf, id::REJECT_REQUEST, block),
            Message::Bitfield(bits) => {
                buf.put_u8(id::BITFIELD);
                buf.put_slice(bits);
            }
            Message::Piece(block) => {
                put_id_u32(buf, id::PIECE, block.piece);
                buf.put_u32(block.offset);
                buf.put_slice(&block.data);
            }
            Message::Extended {
                id: extended,
                payload,
            } => {
                buf.put_u8(id::EXTENDED);
                buf.put_u8(*extended);
                buf.put_slice(payload);
            }
            Message::HashRequest(request) => {
                buf.put_u8(id::HASH_REQUEST);
                request.encode(buf);
            }
            Message::Hashes { request, hashes } => {
                buf.put_u8(id::HASHES);
                request.encode(buf);
                buf.put_slice(hashes);
            }
            Message::HashReject(request) => {
                buf.put_u8(id::HASH_REJECT);
                request.encode(buf);
            }
            Message::Unknown { id, payload } => {
                buf.put_u8(*id);
                buf.put_slice(payload);
            }
        }
    }
}

/// Appends the 13-byte header of a `piece` message carrying `data_len` bytes of `piece` at
/// `offset`; the caller sends the data right after it, typically straight from a disk buffer.
pub fn encode_piece_header(piece: PieceIndex, offset: u32, data_len: u32, buf: &mut BytesMut) {
    buf.reserve(PIECE_HEADER_LEN);
    buf.put_u32(9 + data_len);
    put_id_u32(buf, id::PIECE, piece);
    buf.put_u32(offset);
}

fn put_id_u32(buf: &mut BytesMut, id: u8, value: u32) {
    buf.put_u8(id);
    buf.put_u32(value);
}

fn put_block(buf: &mut BytesMut, id: u8, block: &BlockInfo) {
    put_id_u32(buf, id, block.piece);
    buf.put_u32(block.offset);
    buf.put_u32(block.len);
}
