//! The receiving half: packets put back in order (up to 1,024 ahead of the next expected one),
//! their bytes kept for the application within the advertised window, the selective ACK of
//! what arrived early, and the end of the stream at the FIN's sequence number.

use std::collections::VecDeque;

use bytes::{Buf, BytesMut};

use crate::packet::{MAX_SACK_LEN, PacketType};

/// Packets held ahead of the next expected one (what a selective ACK can describe).
const MAX_REORDER: usize = MAX_SACK_LEN * 8;

/// What became of a received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// The next expected one: the in-order point moved.
    InOrder,
    /// Ahead of a gap, held.
    Early,
    /// Already received (our ACK may have been lost).
    Duplicate,
    /// Beyond the reorder range, the window or the FIN: dropped.
    Dropped,
}

#[derive(Debug)]
enum Slot {
    Data(Vec<u8>),
    Fin,
}

#[derive(Debug)]
pub(crate) struct Incoming {
    /// The last sequence number received in order.
    ack: u16,
    ready: BytesMut,
    /// `early[i]` holds sequence number `ack + 1 + i` if it arrived.
    early: VecDeque<Option<Slot>>,
    early_bytes: usize,
    capacity: usize,
    fin: Option<u16>,
    eof: bool,
    /// Incoming bytes are dropped (the application closed its end).
    discarding: bool,
}

impl Incoming {
    pub(crate) fn new(ack: u16, capacity: usize) -> Self {
        Self {
            ack,
            ready: BytesMut::new(),
            early: VecDeque::new(),
            early_bytes: 0,
            capacity,
            fin: None,
            eof: false,
            discarding: false,
        }
    }

    /// The last sequence number received in order.
    pub(crate) fn ack(&self) -> u16 {
        self.ack
    }

    /// The bytes we can still take.
    pub(crate) fn window(&self) -> usize {
        self.capacity
            .saturating_sub(self.ready.len() + self.early_bytes)
    }

    /// The FIN arrived and every packet before it.
    pub(crate) fn eof(&self) -> bool {
        self.eof
    }

    /// Packets are held past a gap.
    pub(crate) fn has_gap(&self) -> bool {
        !self.early.is_empty()
    }

    /// In-order bytes not yet read.
    pub(crate) fn readable(&self) -> &[u8] {
        &self.ready
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.ready.advance(n.min(self.ready.len()));
    }

    /// From now on bytes are acknowledged and dropped.
    pub(crate) fn discard(&mut self) {
        self.discarding = true;
        self.ready.clear();
    }

    pub(crate) fn on_packet(&mut self, seq: u16, kind: PacketType, payload: &[u8]) -> Arrival {
        let ahead = usize::from(seq.wrapping_sub(self.ack.wrapping_add(1)));
        if ahead >= 0x8000 {
            return Arrival::Duplicate;
        }
        if ahead >= MAX_REORDER
            || self
                .fin
                .is_some_and(|fin| usize::from(fin.wrapping_sub(self.ack.wrapping_add(1))) < ahead)
        {
            return Arrival::Dropped;
        }
        if self.early.get(ahead).is_some_and(Option::is_some) {
            return Arrival::Duplicate;
        }
        if !self.discarding && payload.len() > self.window() {
            return Arrival::Dropped;
        }
        let slot = if kind == PacketType::Fin {
            if self.fin.is_some_and(|fin| fin != seq) {
                return Arrival::Dropped;
            }
            self.fin = Some(seq);
            Slot::Fin
        } else {
            Slot::Data(payload.to_vec())
        };
        if ahead > 0 {
            if self.early.len() <= ahead {
                self.early.resize_with(ahead + 1, || None);
            }
            if let Slot::Data(bytes) = &slot {
                self.early_bytes += bytes.len();
            }
            self.early[ahead] = Some(slot);
            return Arrival::Early;
        }
        // In order: take it (without the copy above for the common case), then what it joins.
        self.early.pop_front();
        self.deliver_in_order(kind, payload);
        while let Some(Some(_)) = self.early.front() {
            if let Some(Some(slot)) = self.early.pop_front() {
                match slot {
                    Slot::Data(bytes) => {
                        self.early_bytes -= bytes.len();
                        self.deliver_in_order(PacketType::Data, &bytes);
                    }
                    Slot::Fin => self.deliver_in_order(PacketType::Fin, &[]),
                }
            }
        }
        Arrival::InOrder
    }

    fn deliver_in_order(&mut self, kind: PacketType, payload: &[u8]) {
        self.ack = self.ack.wrapping_add(1);
        if kind == PacketType::Fin {
            self.eof = true;
        } else if !self.discarding {
            self.ready.extend_from_slice(payload);
        }
    }

    /// Writes the selective ACK of the packets held early into `out` (at most `max` bytes, a
    /// multiple of four); returns its length, 0 when nothing is held.
    pub(crate) fn sack(&self, out: &mut [u8; MAX_SACK_LEN], max: usize) -> usize {
        // Bit i stands for ack + 2 + i, that is early[i + 1].
        let Some(last) = self.early.iter().rposition(Option::is_some) else {
            return 0;
        };
        let cap = max.min(MAX_SACK_LEN) / 4 * 4;
        if cap == 0 {
            return 0;
        }
        let len = (last.div_ceil(32) * 4).clamp(4, cap);
        out[..len].fill(0);
        for (i, slot) in self.early.iter().skip(1).take(len * 8).enumerate() {
            if slot.is_some() {
                out[i / 8] |= 1 << (i % 8);
            }
        }
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_packets_wait_for_the_gap_and_are_described_in_the_sack() {
        let mut inc = Incoming::new(99, 1 << 20);
        assert_eq!(
            inc.on_packet(100, PacketType::Data, b"ab"),
            Arrival::InOrder
        );
        assert_eq!(inc.on_packet(102, PacketType::Data, b"ef"), Arrival::Early);
        assert_eq!(inc.on_packet(104, PacketType::Data, b"ij"), Arrival::Early);
        assert_eq!(
            inc.on_packet(104, PacketType::Data, b"ij"),
            Arrival::Duplicate
        );
        assert_eq!(
            inc.on_packet(100, PacketType::Data, b"ab"),
            Arrival::Duplicate
        );
        assert_eq!(inc.readable(), b"ab");
        let mut sack = [0; MAX_SACK_LEN];
        // 102 is bit 0 (ack 100 + 2), 104 bit 2.
        assert_eq!(inc.sack(&mut sack, 128), 4);
        assert_eq!(sack[..4], [0b101, 0, 0, 0]);
        assert_eq!(inc.window(), (1 << 20) - 6);
        assert_eq!(
            inc.on_packet(101, PacketType::Data, b"cd"),
            Arrival::InOrder
        );
        assert_eq!(inc.ack(), 102);
        assert_eq!(inc.readable(), b"abcdef");
        inc.consume(4);
        assert_eq!(inc.readable(), b"ef");
    }

    #[test]
    fn the_fin_ends_the_stream_once_everything_before_it_arrived() {
        let mut inc = Incoming::new(65534, 100);
        assert_eq!(inc.on_packet(1, PacketType::Fin, &[]), Arrival::Early);
        assert_eq!(inc.on_packet(2, PacketType::Data, b"x"), Arrival::Dropped);
        assert_eq!(
            inc.on_packet(65535, PacketType::Data, b"a"),
            Arrival::InOrder
        );
        assert!(!inc.eof());
        assert_eq!(inc.on_packet(0, PacketType::Data, b"b"), Arrival::InOrder);
        assert!(inc.eof());
        assert_eq!(inc.readable(), b"ab");
    }

    #[test]
    fn the_window_and_the_reorder_range_bound_what_is_held() {
        let mut inc = Incoming::new(0, 10);
        assert_eq!(inc.on_packet(2, PacketType::Data, &[0; 8]), Arrival::Early);
        assert_eq!(
            inc.on_packet(3, PacketType::Data, &[0; 8]),
            Arrival::Dropped
        );
        let far = u16::try_from(MAX_REORDER + 1).unwrap_or(u16::MAX);
        assert_eq!(inc.on_packet(far, PacketType::Data, &[]), Arrival::Dropped);
        let mut sack = [0; MAX_SACK_LEN];
        assert_eq!(inc.sack(&mut sack, 128), 4);
        assert_eq!(sack[0], 0b1);
    }
}
