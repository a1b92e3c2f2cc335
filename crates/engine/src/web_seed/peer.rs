//! A web seed as the torrent's core sees it: a peer speaking the fast extension that has the
//! pieces its server holds, never chokes, and answers requests with the bytes the server sends.
//! Requests are fetched in the order they came, each fetch taking the first waiting request
//! and the ones that continue it in the torrent's byte order, so one HTTP request carries a
//! run of blocks (across piece and file boundaries).
//!
//! Sans I/O: the core's frames and the server's bytes go in, wire frames and fetches come out.

use std::collections::{BTreeMap, VecDeque};

use bytes::{BufMut, BytesMut};
use cratetorrent_wire::{Bitfield, BlockInfo, Decoder, Geometry, Message, encode_piece_header};

/// Requests waiting to be fetched at most; more are rejected (the core keeps fewer).
const MAX_QUEUED: usize = 4096;

/// A stretch of the torrent to fetch: `len` bytes from `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fetch {
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

/// What went wrong between the core and the web seed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PeerError {
    #[error("the torrent sent a malformed frame")]
    Frame,
    #[error("the server sent more than was asked")]
    Overrun,
}

/// One web seed's side of the peer protocol.
#[derive(Debug)]
pub(crate) struct WebSeedPeer {
    geometry: Geometry,
    serves: Bitfield,
    max_fetch: u64,
    /// Requests not yet fetched, by their offset in the torrent.
    queued: BTreeMap<u64, BlockInfo>,
    /// Their offsets in the order they came (an offset no longer queued is skipped).
    order: VecDeque<u64>,
    /// The blocks of the fetch under way, in order.
    fetching: VecDeque<BlockInfo>,
    /// Bytes of the first of them written so far.
    filled: u32,
    /// Rejects owed (cancelled or unservable requests), written between blocks.
    rejects: Vec<BlockInfo>,
}

impl WebSeedPeer {
    /// A peer having the pieces in `serves`, fetching at most `max_fetch` bytes at a time.
    pub(crate) fn new(geometry: Geometry, serves: Bitfield, max_fetch: u64) -> Self {
        Self {
            geometry,
            serves,
            max_fetch: max_fetch.max(u64::from(cratetorrent_wire::BLOCK_SIZE)),
            queued: BTreeMap::new(),
            order: VecDeque::new(),
            fetching: VecDeque::new(),
            filled: 0,
            rejects: Vec::new(),
        }
    }

    /// The frames a peer opens with: what it has, and an unchoke.
    pub(crate) fn greet(&self, out: &mut BytesMut) {
        let have = if self.serves.is_full() {
            Message::HaveAll
        } else if self.serves.count_ones() == 0 {
            Message::HaveNone
        } else {
            Message::Bitfield(bytes::Bytes::copy_from_slice(self.serves.as_bytes()))
        };
        have.encode(out);
        Message::Unchoke.encode(out);
    }

    /// Frames from the core (everything but requests and cancels is of no use to a server).
    pub(crate) fn on_frames(&mut self, frames: &mut BytesMut) -> Result<(), PeerError> {
        let decoder = Decoder::default();
        while let Some(message) = decoder.decode(frames).map_err(|_| PeerError::Frame)? {
            match message {
                Message::Request(block) => self.on_request(block),
                Message::Cancel(block) => {
                    if let Some(offset) = self.offset_of(&block)
                        && self.queued.remove(&offset).is_some()
                    {
                        self.rejects.push(block);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn on_request(&mut self, block: BlockInfo) {
        let servable = self.geometry.validate(&block).is_ok()
            && self.serves.get(block.piece)
            && self.queued.len() < MAX_QUEUED;
        match self.offset_of(&block).filter(|_| servable) {
            Some(offset) => {
                if self.queued.insert(offset, block).is_none() {
                    self.order.push_back(offset);
                }
            }
            None => self.rejects.push(block),
        }
    }

    fn offset_of(&self, block: &BlockInfo) -> Option<u64> {
        let piece_length = u64::from(self.geometry.piece_len(0)?);
        Some(u64::from(block.piece) * piece_length + u64::from(block.offset))
    }

    /// Writes the rejects owed, unless a block is half written.
    pub(crate) fn flush(&mut self, out: &mut BytesMut) {
        if self.filled == 0 {
            for block in self.rejects.drain(..) {
                Message::RejectRequest(block).encode(out);
            }
        }
    }

    /// The next stretch to fetch, once the last one is done: the oldest waiting request and
    /// those that continue it, up to the fetch size.
    pub(crate) fn next_fetch(&mut self) -> Option<Fetch> {
        if !self.fetching.is_empty() {
            return None;
        }
        let start = loop {
            let offset = self.order.pop_front()?;
            if self.queued.contains_key(&offset) {
                break offset;
            }
        };
        let mut end = start;
        while end - start < self.max_fetch {
            let Some(block) = self.queued.remove(&end) else {
                break;
            };
            end += u64::from(block.len);
            self.fetching.push_back(block);
        }
        Some(Fetch {
            offset: start,
            len: end - start,
        })
    }

    /// Whether every block of the fetch under way has been written.
    pub(crate) fn fetch_done(&self) -> bool {
        self.fetching.is_empty()
    }

    /// Bytes of the fetch under way, in order: written as piece frames into `out` (a block's
    /// frame is whole once its last byte is in).
    pub(crate) fn on_body(&mut self, mut data: &[u8], out: &mut BytesMut) -> Result<(), PeerError> {
        while !data.is_empty() {
            let Some(&block) = self.fetching.front() else {
                return Err(PeerError::Overrun);
            };
            if self.filled == 0 {
                encode_piece_header(block.piece, block.offset, block.len, out);
            }
            let take = data.len().min((block.len - self.filled) as usize);
            out.put_slice(&data[..take]);
            data = &data[take..];
            self.filled += take as u32;
            if self.filled == block.len {
                self.fetching.pop_front();
                self.filled = 0;
                self.flush(out);
            }
        }
        Ok(())
    }

    /// Requests waiting or being fetched.
    pub(crate) fn is_idle(&self) -> bool {
        self.queued.is_empty() && self.fetching.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cratetorrent_wire::BLOCK_SIZE;

    const PIECE: u32 = 2 * BLOCK_SIZE;

    fn peer(serves: Bitfield, max_fetch: u64) -> WebSeedPeer {
        // Three pieces of two blocks, the last one 100 bytes short.
        let geometry = Geometry::new(PIECE, 3 * u64::from(PIECE) - 100).unwrap();
        WebSeedPeer::new(geometry, serves, max_fetch)
    }

    fn frames(messages: &[Message]) -> BytesMut {
        let mut buf = BytesMut::new();
        for message in messages {
            message.encode(&mut buf);
        }
        buf
    }

    fn decode_all(mut buf: BytesMut) -> Vec<Message> {
        let decoder = Decoder::default();
        let mut messages = Vec::new();
        while let Some(message) = decoder.decode(&mut buf).unwrap() {
            messages.push(message);
        }
        assert!(buf.is_empty(), "a partial frame was left");
        messages
    }

    fn block(piece: u32, index: u32) -> BlockInfo {
        let geometry = Geometry::new(PIECE, 3 * u64::from(PIECE) - 100).unwrap();
        geometry.block(piece, index).unwrap()
    }

    #[test]
    fn greets_with_what_the_server_holds_and_an_unchoke() {
        let mut out = BytesMut::new();
        peer(Bitfield::full(3), 1 << 20).greet(&mut out);
        assert_eq!(decode_all(out), [Message::HaveAll, Message::Unchoke]);
        let mut some = Bitfield::new(3);
        some.set(1);
        let mut out = BytesMut::new();
        peer(some, 1 << 20).greet(&mut out);
        assert!(matches!(
            decode_all(out)[..],
            [Message::Bitfield(_), Message::Unchoke]
        ));
    }

    #[test]
    fn contiguous_requests_make_one_fetch_in_arrival_order() {
        let mut peer = peer(Bitfield::full(3), 1 << 20);
        // Piece 2 first, then piece 0 and the rest of piece 1 out of order.
        let requests = [
            block(2, 0),
            block(0, 1),
            block(1, 0),
            block(0, 0),
            block(1, 1),
        ];
        let mut buf = frames(&requests.map(Message::Request));
        peer.on_frames(&mut buf).unwrap();
        // The oldest request (piece 2's first block) runs to the end of the torrent.
        let first = peer.next_fetch().unwrap();
        assert_eq!(first.offset, 2 * u64::from(PIECE));
        assert_eq!(first.len, u64::from(BLOCK_SIZE));
        assert_eq!(peer.next_fetch(), None, "one fetch at a time");
        let mut out = BytesMut::new();
        peer.on_body(&vec![7; BLOCK_SIZE as usize][..], &mut out)
            .unwrap();
        assert!(peer.fetch_done());
        // Then block (0, 1) continues into piece 1: three blocks in one fetch.
        let second = peer.next_fetch().unwrap();
        assert_eq!(second.offset, u64::from(BLOCK_SIZE));
        assert_eq!(second.len, 3 * u64::from(BLOCK_SIZE));
        let third = {
            peer.on_body(&vec![1; 3 * BLOCK_SIZE as usize], &mut out)
                .unwrap();
            peer.next_fetch().unwrap()
        };
        assert_eq!((third.offset, third.len), (0, u64::from(BLOCK_SIZE)));
        peer.on_body(&vec![2; BLOCK_SIZE as usize], &mut out)
            .unwrap();
        assert!(peer.is_idle());
        let pieces: Vec<_> = decode_all(out)
            .into_iter()
            .map(|m| match m {
                Message::Piece(b) => (b.piece, b.offset, b.data.len(), b.data[0]),
                other => panic!("{other:?}"),
            })
            .collect();
        let b = BLOCK_SIZE as usize;
        assert_eq!(
            pieces,
            [
                (2, 0, b, 7),
                (0, BLOCK_SIZE, b, 1),
                (1, 0, b, 1),
                (1, BLOCK_SIZE, b, 1),
                (0, 0, b, 2)
            ]
        );
    }

    #[test]
    fn fetches_stop_at_the_fetch_size_and_bytes_split_anywhere() {
        let mut peer = peer(Bitfield::full(3), u64::from(BLOCK_SIZE));
        let mut buf = frames(&[Message::Request(block(0, 0)), Message::Request(block(0, 1))]);
        peer.on_frames(&mut buf).unwrap();
        assert_eq!(peer.next_fetch().unwrap().len, u64::from(BLOCK_SIZE));
        let mut out = BytesMut::new();
        let data = vec![3; BLOCK_SIZE as usize];
        for part in data.chunks(1000) {
            peer.on_body(part, &mut out).unwrap();
        }
        assert_eq!(
            peer.on_body(&[0], &mut out),
            Err(PeerError::Overrun),
            "past the fetch"
        );
        assert_eq!(peer.next_fetch().unwrap().offset, u64::from(BLOCK_SIZE));
    }

    #[test]
    fn cancels_and_unservable_requests_are_rejected_between_blocks() {
        let mut serves = Bitfield::new(3);
        serves.set(0);
        let mut peer = peer(serves, 1 << 20);
        let mut buf = frames(&[
            Message::Request(block(0, 0)),
            Message::Request(block(2, 0)),
            // Past the piece's end.
            Message::Request(BlockInfo {
                piece: 0,
                offset: PIECE,
                len: 10,
            }),
        ]);
        peer.on_frames(&mut buf).unwrap();
        assert_eq!(peer.next_fetch().unwrap().len, u64::from(BLOCK_SIZE));
        let mut out = BytesMut::new();
        peer.on_body(&[9; 100], &mut out).unwrap();
        // A late request and a cancel while the block is half written.
        let mut buf = frames(&[
            Message::Request(block(0, 1)),
            Message::Cancel(block(0, 1)),
            Message::Cancel(block(0, 0)),
        ]);
        peer.on_frames(&mut buf).unwrap();
        peer.flush(&mut out);
        peer.on_body(&vec![9; BLOCK_SIZE as usize - 100], &mut out)
            .unwrap();
        assert!(peer.is_idle());
        let messages = decode_all(out);
        assert!(matches!(&messages[0], Message::Piece(b) if b.data.len() == BLOCK_SIZE as usize));
        let rejected: Vec<_> = messages[1..]
            .iter()
            .map(|m| match m {
                Message::RejectRequest(b) => (b.piece, b.offset),
                other => panic!("{other:?}"),
            })
            .collect();
        // The block being written (0, 0) is sent, not rejected.
        assert_eq!(rejected, [(2, 0), (0, PIECE), (0, BLOCK_SIZE)]);
    }
}
