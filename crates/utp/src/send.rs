//! The sending half: bytes the application wrote, cut into packets as the window allows, kept
//! until acknowledged (cumulatively or selectively), and marked for resending when three later
//! packets arrived before them or the retransmission timer fires.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::packet::PacketType;

/// Later packets acknowledged before a missing one counts as lost (as TCP's duplicate ACKs).
const REORDER_THRESHOLD: u32 = 3;
/// Packets outstanding at most, from the first unacknowledged on: receivers (libutp's and
/// ours) hold at most 1,024 packets ahead of a gap and drop the rest, so a window past this
/// turns one lost packet into a thousand.
const MAX_OUTSTANDING: usize = 1024;

#[derive(Debug)]
pub(crate) struct Sent {
    pub(crate) seq: u16,
    pub(crate) kind: PacketType,
    pub(crate) payload: Bytes,
    /// When last sent; `None` while waiting to be sent (first time or again).
    sent_at: Option<Instant>,
    transmissions: u32,
    sacked: bool,
    /// When it was last sent, in the order of all transmissions.
    order: u64,
    /// A DATA packet shorter than the packet size when it was cut (Nagle's concern).
    short: bool,
}

impl Sent {
    /// Times it was sent.
    pub(crate) fn transmissions(&self) -> u32 {
        self.transmissions
    }

    fn waiting(&self) -> bool {
        self.sent_at.is_none() && !self.sacked
    }
}

/// What an acknowledgement changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Acked {
    /// Payload bytes newly acknowledged, cumulatively or selectively.
    pub(crate) bytes: usize,
    /// Packets newly acknowledged (control packets included).
    pub(crate) packets: usize,
    /// The round trip of the newest packet acknowledged that was sent once.
    pub(crate) rtt: Option<Duration>,
    /// A packet was found lost.
    pub(crate) lost: bool,
}

#[derive(Debug)]
pub(crate) struct Outgoing {
    /// Written, not yet in a packet.
    pending: BytesMut,
    /// Packets not yet acknowledged cumulatively, in sequence order.
    queue: VecDeque<Sent>,
    /// No packet before this index waits to be sent.
    cursor: usize,
    next_seq: u16,
    in_flight: usize,
    buffered: usize,
    capacity: usize,
    last_ack: Option<u16>,
    duplicate_acks: u32,
    fin_wanted: bool,
    fin_queued: bool,
    /// Transmissions so far (each packet sent takes the next number).
    sends: u64,
    /// In loss recovery: the last transmission before the loss was found.
    recovery: Option<u64>,
    /// Short packets sent and not yet acknowledged.
    short_unacked: usize,
}

impl Outgoing {
    pub(crate) fn new(first_seq: u16, capacity: usize) -> Self {
        Self {
            pending: BytesMut::new(),
            queue: VecDeque::new(),
            cursor: 0,
            next_seq: first_seq,
            in_flight: 0,
            buffered: 0,
            capacity,
            last_ack: None,
            duplicate_acks: 0,
            fin_wanted: false,
            fin_queued: false,
            sends: 0,
            recovery: None,
            short_unacked: 0,
        }
    }

    /// The sequence number the next new packet gets.
    pub(crate) fn next_seq(&self) -> u16 {
        self.next_seq
    }

    /// Payload bytes sent and not yet acknowledged nor given up as lost.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Bytes written and not yet acknowledged.
    pub(crate) fn buffered(&self) -> usize {
        self.buffered
    }

    /// Room left for the application.
    pub(crate) fn room(&self) -> usize {
        self.capacity.saturating_sub(self.buffered)
    }

    /// Nothing waits to be sent or acknowledged.
    pub(crate) fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.pending.is_empty()
    }

    /// Takes what fits of `data`; returns how much.
    pub(crate) fn write(&mut self, data: &[u8]) -> usize {
        if self.fin_wanted {
            return 0;
        }
        let n = data.len().min(self.room());
        self.pending.extend_from_slice(&data[..n]);
        self.buffered += n;
        n
    }

    /// Queues a payload-less packet that uses a sequence number (SYN).
    pub(crate) fn push_control(&mut self, kind: PacketType) {
        self.push(kind, Bytes::new(), false);
    }

    /// Ends the stream after what was written: a FIN follows the last packet.
    pub(crate) fn finish(&mut self) {
        self.fin_wanted = true;
    }

    /// The FIN went out and everything up to it was acknowledged.
    pub(crate) fn fin_acked(&self) -> bool {
        self.fin_queued && self.queue.is_empty()
    }

    fn push(&mut self, kind: PacketType, payload: Bytes, short: bool) {
        self.queue.push_back(Sent {
            seq: self.next_seq,
            kind,
            payload,
            sent_at: None,
            transmissions: 0,
            sacked: false,
            order: 0,
            short,
        });
        self.next_seq = self.next_seq.wrapping_add(1);
    }

    /// The next packet to send within `window` bytes in flight, if any: a lost one first, then
    /// a new one of up to `packet` bytes. A packet shorter than `packet` waits while another
    /// short one is unacknowledged (Nagle, as Minshall refined it), unless the stream ends.
    /// With `resend_anyway`, a lost packet goes out even past the window (fast retransmit:
    /// after a burst loss the window is full of packets that are gone, which only the
    /// retransmission timer would otherwise clear).
    pub(crate) fn next(
        &mut self,
        window: usize,
        packet: usize,
        resend_anyway: bool,
    ) -> Option<&Sent> {
        while self.cursor < self.queue.len() && !self.queue[self.cursor].waiting() {
            self.cursor += 1;
        }
        if self.cursor == self.queue.len()
            && (self.queue.len() >= MAX_OUTSTANDING || !self.packetize(packet))
        {
            return None;
        }
        let next = &self.queue[self.cursor];
        let resend = resend_anyway && next.transmissions > 0;
        if self.in_flight > 0 && self.in_flight + next.payload.len() > window && !resend {
            return None;
        }
        Some(next)
    }

    /// Cuts a new packet from what was written; whether one was queued.
    fn packetize(&mut self, packet: usize) -> bool {
        if self.pending.is_empty() {
            if self.fin_wanted && !self.fin_queued {
                self.fin_queued = true;
                self.push(PacketType::Fin, Bytes::new(), false);
                return true;
            }
            return false;
        }
        let len = self.pending.len().min(packet);
        if len < packet && !self.fin_wanted && self.short_unacked > 0 {
            return false;
        }
        let payload = self.pending.split_to(len).freeze();
        self.push(PacketType::Data, payload, len < packet);
        true
    }

    /// Records that the packet `next` returned was sent.
    pub(crate) fn sent(&mut self, now: Instant) {
        if let Some(packet) = self.queue.get_mut(self.cursor) {
            self.sends += 1;
            if packet.transmissions == 0 && packet.short {
                self.short_unacked += 1;
            }
            packet.order = self.sends;
            packet.sent_at = Some(now);
            packet.transmissions += 1;
            self.in_flight += packet.payload.len();
            self.cursor += 1;
        }
    }

    /// Applies an acknowledgement: everything up to `ack`, and what `sack` marks after it.
    pub(crate) fn on_ack(&mut self, ack: u16, sack: Option<&[u8]>, now: Instant) -> Acked {
        let mut acked = Acked::default();
        let first = self.queue.front().map_or(self.next_seq, |p| p.seq);
        // Packets `ack` covers; more than were sent means a confused or lying peer.
        // Packets are first sent in order, so those sent are a prefix of the queue.
        let covered = usize::from(ack.wrapping_sub(first).wrapping_add(1));
        if covered > 0
            && self
                .queue
                .get(covered - 1)
                .is_none_or(|p| p.transmissions == 0)
        {
            return acked;
        }
        for packet in self.queue.drain(..covered) {
            if !packet.sacked {
                if packet.short {
                    debug_assert!(self.short_unacked > 0);
                    self.short_unacked = self.short_unacked.saturating_sub(1);
                }
                acked.bytes += packet.payload.len();
                acked.packets += 1;
                if packet.sent_at.is_some() {
                    self.in_flight -= packet.payload.len();
                }
                if packet.transmissions == 1 {
                    acked.rtt = packet.sent_at.map(|at| now.saturating_duration_since(at));
                }
            }
            self.buffered -= packet.payload.len();
        }
        self.cursor = self.cursor.saturating_sub(covered);
        if let Some(mask) = sack {
            self.apply_sack(mask, &mut acked);
        }
        if covered > 0 {
            self.duplicate_acks = 0;
            // A partial acknowledgement in recovery (NewReno): the next packet sent before the
            // loss was found is lost too (a burst lost past what a selective ACK describes).
            match (self.recovery, self.queue.front()) {
                (Some(until), Some(front)) if front.order <= until && !front.sacked => {
                    acked.lost |= self.lose(0);
                }
                _ => self.recovery = None,
            }
        } else if self.last_ack == Some(ack) && self.in_flight > 0 {
            // The cumulative point stands still while packets keep arriving (whether or not
            // the selective ACK grew: a receiver's short one may not reach past a long gap).
            self.duplicate_acks += 1;
            if self.duplicate_acks == REORDER_THRESHOLD {
                acked.lost |= self.lose(0);
            }
        }
        if acked.lost && self.recovery.is_none() {
            self.recovery = Some(self.sends);
        }
        self.last_ack = Some(ack);
        acked
    }

    fn apply_sack(&mut self, mask: &[u8], acked: &mut Acked) {
        // Bit i is the packet after the next expected one: queue index i + 1.
        let mut highest = None;
        for (byte_index, byte) in mask.iter().enumerate() {
            for bit in 0..8 {
                if byte & (1 << bit) == 0 {
                    continue;
                }
                let index = byte_index * 8 + bit + 1;
                let Some(packet) = self.queue.get_mut(index) else {
                    continue;
                };
                if packet.transmissions == 0 {
                    continue;
                }
                highest = Some(index);
                if packet.sacked {
                    continue;
                }
                packet.sacked = true;
                if packet.short {
                    debug_assert!(self.short_unacked > 0);
                    self.short_unacked = self.short_unacked.saturating_sub(1);
                }
                acked.bytes += packet.payload.len();
                acked.packets += 1;
                if packet.sent_at.is_some() {
                    self.in_flight -= packet.payload.len();
                }
            }
        }
        // A packet is lost once three packets sent after it were selectively acknowledged
        // (sent after it, not merely numbered after it: a packet sent again is not lost again
        // by acknowledgements of packets that went before its new copy).
        let Some(highest) = highest else { return };
        let mut newest = [0u64; REORDER_THRESHOLD as usize];
        for index in (0..=highest).rev() {
            let packet = &self.queue[index];
            if packet.sacked {
                if packet.order > newest[0] {
                    newest[0] = packet.order;
                    newest.sort_unstable();
                }
            } else if newest[0] > packet.order {
                acked.lost |= self.lose(index);
            }
        }
    }

    /// Marks a sent packet for sending again; whether it was in flight.
    fn lose(&mut self, index: usize) -> bool {
        let Some(packet) = self.queue.get_mut(index) else {
            return false;
        };
        if packet.sacked || packet.sent_at.is_none() {
            return false;
        }
        packet.sent_at = None;
        self.in_flight -= packet.payload.len();
        self.cursor = self.cursor.min(index);
        true
    }

    /// A tail loss probe: the first packet in flight is sent again, and the partial
    /// acknowledgements that follow send the next ones (NewReno recovery); whether one was.
    pub(crate) fn probe(&mut self) -> bool {
        let lost = self.lose(0);
        if lost && self.recovery.is_none() {
            self.recovery = Some(self.sends);
        }
        lost
    }

    /// The retransmission timer fired: everything in flight is to be sent again.
    pub(crate) fn on_timeout(&mut self) {
        for index in 0..self.queue.len() {
            self.lose(index);
        }
    }

    /// Transmissions of the first unacknowledged packet.
    pub(crate) fn front_transmissions(&self) -> u32 {
        self.queue.front().map_or(0, |p| p.transmissions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_all(out: &mut Outgoing, now: Instant) -> Vec<u16> {
        let mut seqs = Vec::new();
        while let Some(packet) = out.next(usize::MAX, 100, false) {
            seqs.push(packet.seq);
            out.sent(now);
        }
        seqs
    }

    #[test]
    fn packets_are_cut_acknowledged_and_their_room_given_back() {
        let now = Instant::now();
        let mut out = Outgoing::new(10, 1000);
        assert_eq!(out.write(&[7; 1200]), 1000);
        assert_eq!(out.room(), 0);
        assert_eq!(send_all(&mut out, now), (10..20).collect::<Vec<_>>());
        assert_eq!(out.in_flight(), 1000);
        // An ACK beyond what was sent is ignored.
        assert_eq!(out.on_ack(25, None, now), Acked::default());
        let acked = out.on_ack(14, None, now + Duration::from_millis(30));
        assert_eq!(acked.bytes, 500);
        assert_eq!(acked.rtt, Some(Duration::from_millis(30)));
        assert_eq!(out.room(), 500);
        assert_eq!(out.in_flight(), 500);
    }

    #[test]
    fn three_later_packets_acknowledged_resend_a_missing_one_first() {
        let now = Instant::now();
        let mut out = Outgoing::new(0, 10_000);
        out.write(&[1; 800]);
        send_all(&mut out, now);
        // 0 arrived; 1 lost; 2, 3, 4 selectively acknowledged (bits 0, 1, 2 after ack + 1).
        let acked = out.on_ack(0, Some(&[0b111, 0, 0, 0]), now);
        assert!(acked.lost);
        assert_eq!(acked.bytes, 400);
        assert_eq!(out.in_flight(), 300);
        assert_eq!(out.next(usize::MAX, 100, false).map(|p| p.seq), Some(1));
        out.sent(now);
        // Then the packets never sent follow; none else is sent twice.
        assert_eq!(send_all(&mut out, now), Vec::<u16>::new());
        // The resent packet and the three after the selective ones.
        let acked = out.on_ack(7, None, now);
        assert_eq!(acked.bytes, 400);
        assert!(out.is_idle());
    }

    #[test]
    fn no_more_packets_are_outstanding_than_a_receiver_holds_ahead_of_a_gap() {
        let now = Instant::now();
        let mut out = Outgoing::new(0, 1 << 20);
        out.write(&[1; 2000 * 100]);
        assert_eq!(send_all(&mut out, now).len(), MAX_OUTSTANDING);
        // The first acknowledged (the rest selectively): one more may go.
        assert!(!out.on_ack(0, None, now).lost);
        assert_eq!(send_all(&mut out, now), [1024]);
    }

    #[test]
    fn a_packet_sent_again_is_not_lost_again_by_acknowledgements_of_older_sends() {
        let now = Instant::now();
        let mut out = Outgoing::new(0, 10_000);
        out.write(&[1; 600]);
        send_all(&mut out, now);
        // 1 lost (2, 3, 4 arrived) and sent again.
        assert!(out.on_ack(0, Some(&[0b111, 0, 0, 0]), now).lost);
        assert_eq!(send_all(&mut out, now), [1]);
        // 5 arrives too: it was sent before the new copy of 1, which stays in flight.
        assert!(!out.on_ack(0, Some(&[0b1111, 0, 0, 0]), now).lost);
        assert_eq!(out.in_flight(), 100);
        // Three packets sent after the copy, acknowledged past it: lost again.
        out.write(&[1; 300]);
        assert_eq!(send_all(&mut out, now), [6, 7, 8]);
        assert!(out.on_ack(0, Some(&[0b1111_1111, 0, 0, 0]), now).lost);
    }

    #[test]
    fn duplicate_acks_and_timeouts_resend_and_the_window_holds_new_packets() {
        let now = Instant::now();
        let mut out = Outgoing::new(65534, 10_000);
        out.write(&[1; 500]);
        send_all(&mut out, now);
        for _ in 0..3 {
            assert!(!out.on_ack(65534, None, now).lost);
        }
        assert!(out.on_ack(65534, None, now).lost);
        assert_eq!(out.next(usize::MAX, 100, false).map(|p| p.seq), Some(65535));
        out.on_timeout();
        assert_eq!(out.in_flight(), 0);
        assert_eq!(out.next(150, 100, false).map(|p| p.seq), Some(65535));
        out.sent(now);
        assert_eq!(out.next(150, 100, false).map(|p| p.seq), None);
    }

    #[test]
    fn a_short_packet_waits_for_the_last_short_one_and_the_fin_ends_the_stream() {
        let now = Instant::now();
        let mut out = Outgoing::new(0, 10_000);
        out.write(&[1; 30]);
        assert_eq!(send_all(&mut out, now), [0]);
        out.write(&[2; 30]);
        assert_eq!(send_all(&mut out, now), Vec::<u16>::new());
        out.on_ack(0, None, now);
        out.finish();
        assert_eq!(out.write(b"late"), 0);
        assert_eq!(send_all(&mut out, now), [1, 2]);
        assert!(!out.fin_acked());
        out.on_ack(2, None, now);
        assert!(out.fin_acked());
    }
}
