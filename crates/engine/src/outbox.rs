//! What waits to be written to one peer's socket.
//!
//! Two lanes. Control messages (`have`, choking, interest, requests, cancels, extended
//! messages) are encoded back to back into one growing buffer and go out first, at the next
//! write, in the order they were queued. Blocks go out after them in order, each as its 13-byte
//! header followed by the block's own `Bytes` (a slice of the disk cache), so the writer hands
//! the kernel a vector of frames and payload is never copied. Without the control lane a `have`
//! or a request would wait behind every block already queued for the peer (up to
//! `send_watermark`, seconds on a slow link): peers would learn late what we have, and
//! re-request from the seed what others already hold. Only the order between a control
//! message and blocks changes, which no message depends on (a block after a `choke` is still
//! one the peer asked for).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use cratetorrent_metainfo::PieceIndex;
use cratetorrent_wire::{Message, encode_piece_header};

const SCRATCH_CAPACITY: usize = 16 * 1024;

/// A `piece` message waiting: which block, its header and its payload.
#[derive(Debug)]
struct QueuedBlock {
    piece: PieceIndex,
    offset: u32,
    header: Bytes,
    data: Bytes,
}

/// A peer's queue of frames to send.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    control: BytesMut,
    headers: BytesMut,
    /// Each block's header and payload.
    blocks: VecDeque<QueuedBlock>,
    bytes: usize,
}

impl Outbox {
    /// Queues a message that carries no block.
    pub(crate) fn push(&mut self, message: &Message) {
        reserve(&mut self.control, message.encoded_len());
        message.encode(&mut self.control);
        self.bytes += message.encoded_len();
    }

    /// Queues a `piece` message without copying `data`.
    pub(crate) fn push_block(&mut self, piece: PieceIndex, offset: u32, data: Bytes) {
        reserve(&mut self.headers, cratetorrent_wire::PIECE_HEADER_LEN);
        let len = data.len();
        encode_piece_header(piece, offset, len as u32, &mut self.headers);
        self.blocks.push_back(QueuedBlock {
            piece,
            offset,
            header: self.headers.split().freeze(),
            data,
        });
        self.bytes += cratetorrent_wire::PIECE_HEADER_LEN + len;
    }

    /// Drops a queued block the peer cancelled before it went out; returns its payload length
    /// if it was still queued. Linear in the blocks queued, which `send_watermark` bounds.
    pub(crate) fn cancel_block(&mut self, piece: PieceIndex, offset: u32) -> Option<u64> {
        let i = self
            .blocks
            .iter()
            .position(|b| b.piece == piece && b.offset == offset)?;
        let block = self.blocks.remove(i)?;
        self.bytes -= block.header.len() + block.data.len();
        Some(block.data.len() as u64)
    }

    /// Bytes of control messages queued and not yet taken by the writer.
    pub(crate) fn control_len(&self) -> usize {
        self.control.len()
    }

    /// Bytes queued and not yet taken by the writer.
    pub(crate) fn len(&self) -> usize {
        self.bytes
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Moves queued frames into `out`: the control messages as one frame, then whole blocks
    /// (two frames each) while they fit in `max_frames` (at least one block when there is no
    /// control frame). Returns the block payload bytes among them.
    pub(crate) fn take(&mut self, out: &mut Vec<Bytes>, max_frames: usize) -> u64 {
        let mut frames = 0;
        if !self.control.is_empty() {
            let control = self.control.split().freeze();
            self.bytes -= control.len();
            out.push(control);
            frames += 1;
        }
        let mut payload = 0;
        while frames == 0 || frames + 2 <= max_frames {
            let Some(block) = self.blocks.pop_front() else {
                break;
            };
            self.bytes -= block.header.len() + block.data.len();
            payload += block.data.len() as u64;
            out.push(block.header);
            out.push(block.data);
            frames += 2;
        }
        payload
    }
}

fn reserve(buf: &mut BytesMut, additional: usize) {
    if buf.capacity() - buf.len() < additional {
        buf.reserve(additional.max(SCRATCH_CAPACITY));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Buf;

    #[test]
    fn control_goes_first_and_payload_is_not_copied() {
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
            frames[2].as_ptr(),
            data.as_ptr(),
            "payload is the same memory"
        );
        let mut wire = Vec::new();
        for frame in &frames {
            wire.extend_from_slice(frame.chunk());
        }
        assert_eq!(&wire[..5], &[0, 0, 0, 1, 1]);
        assert_eq!(&wire[5..14], &[0, 0, 0, 5, 4, 0, 0, 0, 3]);
        assert_eq!(&wire[14..27], &[0, 0, 0, 109, 7, 0, 0, 0, 3, 0, 0, 0, 0]);
    }

    #[test]
    fn a_cancelled_block_still_queued_never_goes_out() {
        let mut outbox = Outbox::default();
        for offset in 0..3 {
            outbox.push_block(5, offset * 16384, Bytes::from(vec![1u8; 16384]));
        }
        assert_eq!(outbox.cancel_block(5, 16384), Some(16384));
        assert_eq!(outbox.cancel_block(5, 16384), None, "already gone");
        assert_eq!(outbox.cancel_block(6, 0), None, "never queued");
        assert_eq!(outbox.len(), 2 * (13 + 16384));
        let mut frames = Vec::new();
        assert_eq!(outbox.take(&mut frames, 512), 2 * 16384);
        assert_eq!(
            &frames[2][9..13],
            &[0, 0, 0x80, 0],
            "the third block follows the first"
        );
        assert!(outbox.is_empty());
    }

    #[test]
    fn a_have_overtakes_queued_blocks_but_never_splits_one() {
        let mut outbox = Outbox::default();
        for offset in 0..4 {
            outbox.push_block(0, offset * 16384, Bytes::from(vec![1u8; 16384]));
        }
        let mut frames = Vec::new();
        assert_eq!(
            outbox.take(&mut frames, 3),
            16384,
            "one whole block fits in 3 frames"
        );
        outbox.push(&Message::Have(7));
        frames.clear();
        assert_eq!(outbox.take(&mut frames, 4), 16384);
        assert_eq!(
            frames.len(),
            3,
            "the have, then one block (two would need 5 frames)"
        );
        assert_eq!(frames[0].len(), 9);
        frames.clear();
        assert_eq!(
            outbox.take(&mut frames, 1),
            16384,
            "a block goes even past the frame cap"
        );
        assert_eq!(frames.len(), 2);
    }
}
