//! What waits to be written to one peer's socket, in order.
//!
//! Control messages are encoded back to back into one growing buffer; a block goes out as its
//! 13-byte header in that buffer followed by the block's own `Bytes` (a slice of the disk cache),
//! so the writer hands the kernel a vector of frames and payload is never copied.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use cratetorrent_metainfo::PieceIndex;
use cratetorrent_wire::{Message, encode_piece_header};

const SCRATCH_CAPACITY: usize = 16 * 1024;

/// A peer's queue of frames to send.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pending: BytesMut,
    /// Frames, each marked whether it is block payload.
    frames: VecDeque<(Bytes, bool)>,
    bytes: usize,
}

impl Outbox {
    /// Appends a message that carries no block.
    pub(crate) fn push(&mut self, message: &Message) {
        self.reserve(message.encoded_len());
        message.encode(&mut self.pending);
        self.bytes += message.encoded_len();
    }

    /// Appends a `piece` message without copying `data`.
    pub(crate) fn push_block(&mut self, piece: PieceIndex, offset: u32, data: Bytes) {
        self.reserve(cratetorrent_wire::PIECE_HEADER_LEN);
        let len = data.len();
        encode_piece_header(piece, offset, len as u32, &mut self.pending);
        self.frames
            .push_back((self.pending.split().freeze(), false));
        self.frames.push_back((data, true));
        self.bytes += cratetorrent_wire::PIECE_HEADER_LEN + len;
    }

    /// Bytes queued and not yet taken by the writer.
    pub(crate) fn len(&self) -> usize {
        self.bytes
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Moves up to `max_frames` queued frames into `out`; returns the block payload bytes among
    /// them.
    pub(crate) fn take(&mut self, out: &mut Vec<Bytes>, max_frames: usize) -> u64 {
        if !self.pending.is_empty() {
            self.frames
                .push_back((self.pending.split().freeze(), false));
        }
        let count = self.frames.len().min(max_frames);
        let mut payload = 0;
        for (frame, is_payload) in self.frames.drain(..count) {
            self.bytes -= frame.len();
            if is_payload {
                payload += frame.len() as u64;
            }
            out.push(frame);
        }
        payload
    }

    fn reserve(&mut self, additional: usize) {
        if self.pending.capacity() - self.pending.len() < additional {
            self.pending.reserve(additional.max(SCRATCH_CAPACITY));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Buf;

    #[test]
    fn frames_keep_message_order_and_payload_is_not_copied() {
        let mut outbox = Outbox::default();
        outbox.push(&Message::Unchoke);
        let data = Bytes::from(vec![9u8; 100]);
        outbox.push_block(3, 0, data.clone());
        outbox.push(&Message::Have(3));
        assert_eq!(outbox.len(), 5 + 13 + 100 + 9);
        let mut frames = Vec::new();
        assert_eq!(outbox.take(&mut frames, 512), 100);
        assert!(outbox.is_empty());
        assert_eq!(frames.len(), 3);
        assert_eq!(
            frames[1].as_ptr(),
            data.as_ptr(),
            "payload is the same memory"
        );
        let mut wire = Vec::new();
        for frame in &frames {
            wire.extend_from_slice(frame.chunk());
        }
        assert_eq!(&wire[..5], &[0, 0, 0, 1, 1]);
        assert_eq!(&wire[5..18], &[0, 0, 0, 109, 7, 0, 0, 0, 3, 0, 0, 0, 0]);
        assert_eq!(&wire[118..], &[0, 0, 0, 5, 4, 0, 0, 0, 3]);
    }
}
