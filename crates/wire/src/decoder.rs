//! Incremental, zero-copy decoding of peer messages.

use bytes::{Buf, BytesMut};

use crate::hash_request::HASH_REQUEST_LEN;
use crate::message::{Block, id};
use crate::{BLOCK_SIZE, BlockInfo, HashRequest, Message, WireError};

/// The default limit on a message's length: a bitfield for 4,194,304 pieces (a 16 KiB block
/// with its header, and BEP 9 metadata pieces, are smaller). Nothing legitimate is longer.
pub const DEFAULT_MAX_MESSAGE_LEN: u32 = 1 + (4 << 20) / 8;

/// Decodes messages from a receive buffer.
///
/// ```
/// use bytes::BytesMut;
/// use cratetorrent_wire::{Decoder, Message};
///
/// let decoder = Decoder::default();
/// let mut buf = BytesMut::from(&b"\0\0\0\x05\x04\0\0\0\x07\0\0"[..]);
/// assert_eq!(decoder.decode(&mut buf)?, Some(Message::Have(7)));
/// assert_eq!(decoder.decode(&mut buf)?, None); // two bytes of the next message: wait for more
/// # Ok::<(), cratetorrent_wire::WireError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoder {
    max_len: u32,
}

impl Default for Decoder {
    fn default() -> Self {
        Self {
            max_len: DEFAULT_MAX_MESSAGE_LEN,
        }
    }
}

impl Decoder {
    /// A decoder that rejects messages longer than `max_len` bytes (id included), never below
    /// what a 16 KiB block needs.
    pub fn with_max_len(max_len: u32) -> Self {
        Self {
            max_len: max_len.max(9 + BLOCK_SIZE),
        }
    }

    /// How many more bytes the message at the front of `buf` needs before [`decode`](Self::decode)
    /// can return it: 0 when it is whole, at least 1 while the length prefix is incomplete. A
    /// length over [`max_len`](Self::max_len) counts as its prefix only, so a hostile length
    /// never sizes a buffer (decoding it fails instead).
    pub fn missing(&self, buf: &[u8]) -> usize {
        let Some(prefix) = buf.first_chunk::<4>() else {
            return 4 - buf.len();
        };
        let len = u32::from_be_bytes(*prefix);
        if len > self.max_len {
            return 0;
        }
        (4 + len as usize).saturating_sub(buf.len())
    }

    /// The longest message accepted.
    pub fn max_len(&self) -> u32 {
        self.max_len
    }

    /// Takes the next whole message from the front of `buf`, or returns `Ok(None)` until one is
    /// buffered. Lengths are checked as soon as the length prefix (and id) arrive; payloads are
    /// split from `buf` without copying. It never allocates: where the next bytes go is the
    /// caller's choice (see [`missing`](Self::missing)), so a reader can recycle its buffers.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Message>, WireError> {
        let Some(prefix) = buf.first_chunk::<4>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(*prefix);
        if len == 0 {
            buf.advance(4);
            return Ok(Some(Message::KeepAlive));
        }
        if len > self.max_len {
            return Err(WireError::MessageTooLong {
                len,
                max: self.max_len,
            });
        }
        let Some(&message_id) = buf.get(4) else {
            return Ok(None);
        };
        check_len(message_id, len)?;
        let total = 4 + len as usize;
        if buf.len() < total {
            return Ok(None);
        }
        let body = &buf[5..total];
        let message = match message_id {
            id::CHOKE => Message::Choke,
            id::UNCHOKE => Message::Unchoke,
            id::INTERESTED => Message::Interested,
            id::NOT_INTERESTED => Message::NotInterested,
            id::HAVE_ALL => Message::HaveAll,
            id::HAVE_NONE => Message::HaveNone,
            id::HAVE => Message::Have(u32_at(body, 0)),
            id::SUGGEST_PIECE => Message::SuggestPiece(u32_at(body, 0)),
            id::ALLOWED_FAST => Message::AllowedFast(u32_at(body, 0)),
            id::PORT => Message::Port(u16::from_be_bytes([body[0], body[1]])),
            id::REQUEST => Message::Request(block_info(body)),
            id::CANCEL => Message::Cancel(block_info(body)),
            id::REJECT_REQUEST => Message::RejectRequest(block_info(body)),
            id::HASH_REQUEST => Message::HashRequest(hash_request(body)),
            id::HASH_REJECT => Message::HashReject(hash_request(body)),
            id::HASHES => {
                let request = hash_request(body);
                let mut frame = buf.split_to(total);
                frame.advance(5 + HASH_REQUEST_LEN);
                return Ok(Some(Message::Hashes {
                    request,
                    hashes: frame.freeze(),
                }));
            }
            id::PIECE => {
                let (piece, offset) = (u32_at(body, 0), u32_at(body, 4));
                let mut frame = buf.split_to(total);
                frame.advance(13);
                return Ok(Some(Message::Piece(Block {
                    piece,
                    offset,
                    data: frame.freeze(),
                })));
            }
            id::EXTENDED => {
                let extended = body[0];
                let mut frame = buf.split_to(total);
                frame.advance(6);
                return Ok(Some(Message::Extended {
                    id: extended,
                    payload: frame.freeze(),
                }));
            }
            _ => {
                let mut frame = buf.split_to(total);
                frame.advance(5);
                let payload = frame.freeze();
                return Ok(Some(if message_id == id::BITFIELD {
                    Message::Bitfield(payload)
                } else {
                    Message::Unknown {
                        id: message_id,
                        payload,
                    }
                }));
            }
        };
        buf.advance(total);
        Ok(Some(message))
    }
}

/// Rejects a length that is impossible for a known message id.
fn check_len(message_id: u8, len: u32) -> Result<(), WireError> {
    let valid = match message_id {
        id::CHOKE
        | id::UNCHOKE
        | id::INTERESTED
        | id::NOT_INTERESTED
        | id::HAVE_ALL
        | id::HAVE_NONE => len == 1,
        id::HAVE | id::SUGGEST_PIECE | id::ALLOWED_FAST => len == 5,
        id::PORT => len == 3,
        id::REQUEST | id::CANCEL | id::REJECT_REQUEST => len == 13,
        id::PIECE => len >= 9,
        id::BITFIELD | id::EXTENDED => len >= 2,
        id::HASH_REQUEST | id::HASH_REJECT => len as usize == 1 + HASH_REQUEST_LEN,
        id::HASHES => {
            let hashes = (len as usize).checked_sub(1 + HASH_REQUEST_LEN);
            hashes.is_some_and(|bytes| bytes % 32 == 0)
        }
        _ => true,
    };
    if valid {
        Ok(())
    } else {
        Err(WireError::InvalidLength {
            id: message_id,
            len,
        })
    }
}

fn u32_at(body: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]])
}

/// The request at the front of a body whose length was checked.
fn hash_request(body: &[u8]) -> HashRequest {
    let mut fields = [0; HASH_REQUEST_LEN];
    fields.copy_from_slice(&body[..HASH_REQUEST_LEN]);
    HashRequest::decode(&fields)
}

fn block_info(body: &[u8]) -> BlockInfo {
    BlockInfo {
        piece: u32_at(body, 0),
        offset: u32_at(body, 4),
        len: u32_at(body, 8),
    }
}
