//! One connection's state machine: the handshake, acknowledgements (delayed, selective), the
//! window (LEDBAT and the peer's), retransmission, keep-alives and the close.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::CloseReason;
use crate::ledbat::Ledbat;
use crate::packet::{HEADER_LEN, Header, MAX_SACK_LEN, PacketType};
use crate::recv::{Arrival, Incoming};
use crate::rtt::Rtt;
use crate::send::Outgoing;

/// A STATE every so often keeps NAT mappings (libutp's interval).
const KEEPALIVE: Duration = Duration::from_secs(29);
/// How long a peer may hold back the acknowledgement of a lone packet (RFC 8985's
/// worst-case delayed ACK).
const MAX_PEER_ACK_DELAY: Duration = Duration::from_millis(200);
/// How long a zero window is believed before one packet probes it.
const ZERO_WINDOW_PROBE: Duration = Duration::from_secs(1);
/// Room kept in each datagram for a selective ACK (its 2-byte header and 32 packets).
pub(crate) const SACK_ROOM: usize = 6;

/// Event flags a connection raised since the endpoint last looked.
pub(crate) const CONNECTED: u8 = 1;
pub(crate) const READABLE: u8 = 2;
pub(crate) const WRITABLE: u8 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    SynSent,
    Connected,
}

#[derive(Debug)]
pub(crate) struct Connection {
    state: State,
    peer: SocketAddr,
    recv_id: u16,
    send_id: u16,
    epoch: Instant,
    out: Outgoing,
    inc: Incoming,
    cc: Ledbat,
    rtt: Rtt,
    packet: usize,
    peer_window: usize,
    /// Our clock minus the peer's timestamp, when its last packet arrived.
    reply_us: u32,
    ack_now: bool,
    ack_at: Option<Instant>,
    unacked: u32,
    rto_at: Option<Instant>,
    /// When the first packet in flight is sent again if nothing was acknowledged meanwhile
    /// (a tail loss probe: a whole burst lost leaves nothing to acknowledge, and the
    /// retransmission timer is at least 500 ms).
    tail_probe_at: Option<Instant>,
    /// A tail loss probe went out and nothing new was acknowledged since: the next one waits
    /// for progress (one probe per flight, then the retransmission timer).
    probed: bool,
    /// One lost packet may be sent again past the window (set by each acknowledgement and
    /// by the timers).
    resend_anyway: bool,
    keepalive_at: Instant,
    last_heard: Instant,
    probe_at: Option<Instant>,
    probe_due: bool,
    reset_due: bool,
    /// The SYN's sequence number: the one an initiator's answer acknowledges, or the one a
    /// responder answered (a copy of that SYN asks for the answer again).
    syn_seq: Option<u16>,
    closing: bool,
    write_blocked: bool,
    closed: Option<CloseReason>,
    events: u8,
    config: Config,
}

/// The payload of one packet on a path of `mtu` bytes to `peer`.
fn payload_size(mtu: usize, peer: SocketAddr) -> usize {
    let ip_udp = if peer.is_ipv4() { 28 } else { 48 };
    mtu.saturating_sub(ip_udp + HEADER_LEN + SACK_ROOM).max(64)
}

impl Connection {
    fn new(
        peer: SocketAddr,
        ids: (u16, u16),
        seq: u16,
        ack: u16,
        config: &Config,
        now: Instant,
        epoch: Instant,
    ) -> Self {
        let packet = payload_size(config.mtu, peer);
        Self {
            state: State::Connected,
            peer,
            recv_id: ids.0,
            send_id: ids.1,
            epoch,
            out: Outgoing::new(seq, config.send_buffer),
            inc: Incoming::new(ack, config.receive_window),
            cc: Ledbat::new(packet, config.send_buffer, config.target_delay, config.gain),
            rtt: Rtt::new(),
            packet,
            peer_window: packet,
            reply_us: 0,
            ack_now: false,
            ack_at: None,
            unacked: 0,
            rto_at: None,
            tail_probe_at: None,
            probed: false,
            resend_anyway: false,
            keepalive_at: now + KEEPALIVE,
            last_heard: now,
            probe_at: None,
            probe_due: false,
            reset_due: false,
            syn_seq: None,
            closing: false,
            write_blocked: false,
            closed: None,
            events: 0,
            config: config.clone(),
        }
    }

    /// Opens a connection: a SYN carrying `recv_id`, answered on `recv_id`, sent to on
    /// `recv_id + 1`.
    pub(crate) fn connect(
        peer: SocketAddr,
        recv_id: u16,
        seq: u16,
        config: &Config,
        now: Instant,
        epoch: Instant,
    ) -> Self {
        let ids = (recv_id, recv_id.wrapping_add(1));
        let mut connection = Self::new(peer, ids, seq, 0, config, now, epoch);
        connection.state = State::SynSent;
        connection.syn_seq = Some(seq);
        connection.out.push_control(PacketType::Syn);
        connection
    }

    /// Answers a SYN: received on its id + 1, sent to on its id.
    pub(crate) fn accept(
        peer: SocketAddr,
        syn: &Header,
        seq: u16,
        config: &Config,
        now: Instant,
        epoch: Instant,
    ) -> Self {
        let ids = (syn.connection_id.wrapping_add(1), syn.connection_id);
        let mut connection = Self::new(peer, ids, seq, syn.seq, config, now, epoch);
        connection.peer_window = usize::try_from(syn.window).unwrap_or(usize::MAX);
        connection.reply_us = connection.micros(now).wrapping_sub(syn.timestamp_us);
        connection.ack_now = true;
        connection.syn_seq = Some(syn.seq);
        connection
    }

    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub(crate) fn recv_id(&self) -> u16 {
        self.recv_id
    }

    pub(crate) fn send_id(&self) -> u16 {
        self.send_id
    }

    pub(crate) fn closed(&self) -> Option<CloseReason> {
        self.closed
    }

    /// Closed, with nothing left to send: the endpoint may forget it.
    pub(crate) fn is_done(&self) -> bool {
        self.closed.is_some() && !self.reset_due && !self.ack_now
    }

    pub(crate) fn take_events(&mut self) -> u8 {
        std::mem::take(&mut self.events)
    }

    fn micros(&self, now: Instant) -> u32 {
        let micros = now.saturating_duration_since(self.epoch).as_micros();
        u32::try_from(micros & u128::from(u32::MAX)).unwrap_or(0)
    }

    /// The network said the peer cannot be reached: a connection still waiting for its SYN's
    /// answer fails; whether it did.
    pub(crate) fn unreachable(&mut self) -> bool {
        let connecting = self.state == State::SynSent && self.closed.is_none();
        if connecting {
            self.close(CloseReason::Unreachable);
        }
        connecting
    }

    fn close(&mut self, reason: CloseReason) {
        if self.closed.is_none() {
            self.closed = Some(reason);
            self.rto_at = None;
            self.tail_probe_at = None;
            self.ack_at = None;
            self.probe_at = None;
        }
    }

    /// A packet from the peer (its SACK and payload borrowed from the datagram).
    pub(crate) fn handle(
        &mut self,
        now: Instant,
        header: &Header,
        sack: Option<&[u8]>,
        payload: &[u8],
    ) {
        if self.closed.is_some() {
            return;
        }
        if header.kind == PacketType::Reset {
            self.close(CloseReason::Reset);
            return;
        }
        if header.kind == PacketType::Syn {
            // Our answer to the SYN was lost (an initiator ignores a SYN on its id).
            if self.state == State::Connected && self.syn_seq == Some(header.seq) {
                self.ack_now = true;
            }
            return;
        }
        self.last_heard = now;
        self.reply_us = self.micros(now).wrapping_sub(header.timestamp_us);
        self.peer_window = usize::try_from(header.window).unwrap_or(usize::MAX);
        if self.peer_window >= self.packet {
            self.probe_at = None;
        }
        if self.state == State::SynSent {
            if Some(header.ack) != self.syn_seq {
                return;
            }
            // The answer's number is the one its first data packet will use.
            self.inc = Incoming::new(header.seq.wrapping_sub(1), self.config.receive_window);
            self.state = State::Connected;
            self.events |= CONNECTED;
        }
        self.on_ack(now, header, sack);
        if matches!(header.kind, PacketType::Data | PacketType::Fin) {
            self.on_data(now, header, payload);
        }
        if self.out.fin_acked() {
            self.close(CloseReason::Finished);
        }
    }

    fn on_ack(&mut self, now: Instant, header: &Header, sack: Option<&[u8]>) {
        let in_flight = self.out.in_flight();
        let acked = self.out.on_ack(header.ack, sack, now);
        self.resend_anyway = true;
        if acked.packets == 0 {
            return;
        }
        self.probed = false;
        if let Some(rtt) = acked.rtt {
            self.rtt.sample(rtt);
        }
        self.cc.delay_sample(header.timestamp_diff_us, now);
        if acked.bytes > 0 {
            self.cc.on_ack(acked.bytes, in_flight);
        }
        if acked.lost {
            self.cc.on_loss(now, self.rtt.smoothed());
        }
        self.rto_at = (self.out.in_flight() > 0).then(|| now + self.rtt.rto());
        self.tail_probe_at = self
            .rto_at
            .and_then(|_| self.tail_probe_timeout().map(|t| now + t));
        if self.write_blocked && self.out.room() > 0 {
            self.write_blocked = false;
            self.events |= WRITABLE;
        }
    }

    fn on_data(&mut self, now: Instant, header: &Header, payload: &[u8]) {
        let readable = self.inc.readable().len();
        match self.inc.on_packet(header.seq, header.kind, payload) {
            Arrival::InOrder => {
                self.unacked += 1;
                if self.inc.readable().len() > readable || self.inc.eof() {
                    self.events |= READABLE;
                }
                if self.unacked >= 2 || self.inc.has_gap() || self.inc.eof() {
                    self.ack_now = true;
                } else {
                    self.ack_at.get_or_insert(now + self.config.delayed_ack);
                }
            }
            Arrival::Early | Arrival::Duplicate | Arrival::Dropped => self.ack_now = true,
        }
    }

    /// Writes the next datagram into `buf`, if one is due; returns its length.
    pub(crate) fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if self.reset_due {
            self.reset_due = false;
            let header = self.header(PacketType::Reset, self.out.next_seq(), now);
            return (buf.len() >= HEADER_LEN).then(|| header.write(None, buf));
        }
        if self.closed.is_none()
            && let Some(len) = self.poll_data(now, buf)
        {
            return Some(len);
        }
        if self.ack_now && self.state == State::Connected {
            let header = self.header(PacketType::State, self.out.next_seq(), now);
            let len = self.write_with_sack(&header, &[], buf)?;
            self.acked(now);
            return Some(len);
        }
        None
    }

    fn poll_data(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        let mut window = self.cc.window().min(self.peer_window);
        if self.peer_window < self.packet && self.out.in_flight() == 0 {
            // A closed window: probe it with one packet once it stayed shut a while.
            if self.probe_due {
                self.probe_due = false;
                window = self.packet;
            } else {
                if self.probe_at.is_none() && !self.out.is_idle() {
                    self.probe_at = Some(now + ZERO_WINDOW_PROBE);
                }
                return None;
            }
        }
        let (kind, seq, payload) = {
            let packet = self.out.next(window, self.packet, self.resend_anyway)?;
            if packet.transmissions() > 0 {
                self.resend_anyway = false;
            }
            // Until the SYN is answered it is the only packet out.
            if self.state == State::SynSent && packet.kind != PacketType::Syn {
                return None;
            }
            (packet.kind, packet.seq, packet.payload.clone())
        };
        let mut header = self.header(kind, seq, now);
        if kind == PacketType::Syn {
            header.connection_id = self.recv_id;
            header.ack = 0;
        }
        let len = self.write_with_sack(&header, &payload, buf)?;
        self.out.sent(now);
        self.rto_at.get_or_insert(now + self.rtt.rto());
        if self.tail_probe_at.is_none()
            && !self.probed
            && let Some(timeout) = self.tail_probe_timeout()
        {
            self.tail_probe_at = Some(now + timeout);
        }
        if self.state == State::Connected {
            self.acked(now);
        }
        self.keepalive_at = now + KEEPALIVE;
        Some(len)
    }

    /// Twice the smoothed round trip, at least 10 ms (RFC 8985's probe timeout), once the
    /// round trip is measured and while that is shorter than the retransmission timeout. With
    /// one packet in flight the peer may be delaying its acknowledgement (libutp under
    /// Transmission answers a lone packet only with its own data), so that delay is added.
    fn tail_probe_timeout(&self) -> Option<Duration> {
        let mut timeout = (self.rtt.smoothed() * 2).max(Duration::from_millis(10));
        if self.out.in_flight() <= self.packet {
            timeout += MAX_PEER_ACK_DELAY;
        }
        (self.rtt.measured() && timeout < self.rtt.rto()).then_some(timeout)
    }

    fn header(&self, kind: PacketType, seq: u16, now: Instant) -> Header {
        Header {
            kind,
            connection_id: self.send_id,
            timestamp_us: self.micros(now),
            timestamp_diff_us: self.reply_us,
            window: u32::try_from(self.inc.window()).unwrap_or(u32::MAX),
            seq,
            ack: self.inc.ack(),
        }
    }

    fn write_with_sack(&self, header: &Header, payload: &[u8], buf: &mut [u8]) -> Option<usize> {
        let mut mask = [0; MAX_SACK_LEN];
        let datagram = buf.len().min(self.packet + HEADER_LEN + SACK_ROOM);
        let room = datagram.checked_sub(HEADER_LEN + payload.len())?;
        let sack_len = if self.inc.has_gap() && self.state == State::Connected {
            self.inc.sack(&mut mask, room.saturating_sub(2))
        } else {
            0
        };
        let sack = (sack_len > 0).then(|| &mask[..sack_len]);
        let at = header.write(sack, buf);
        buf[at..at + payload.len()].copy_from_slice(payload);
        Some(at + payload.len())
    }

    fn acked(&mut self, now: Instant) {
        self.ack_now = false;
        self.ack_at = None;
        self.unacked = 0;
        self.keepalive_at = now + KEEPALIVE;
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        let idle = self.last_heard + self.config.idle_timeout;
        let keepalive = (self.state == State::Connected).then_some(self.keepalive_at);
        [
            self.ack_at,
            self.rto_at,
            self.tail_probe_at,
            self.probe_at,
            keepalive,
            Some(idle),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.closed.is_some() {
            return;
        }
        if now >= self.last_heard + self.config.idle_timeout {
            self.close(CloseReason::TimedOut);
            return;
        }
        if self.ack_at.is_some_and(|at| at <= now) {
            self.ack_at = None;
            self.ack_now = true;
        }
        if self.probe_at.is_some_and(|at| at <= now) {
            self.probe_at = None;
            self.probe_due = true;
        }
        if self.state == State::Connected && self.keepalive_at <= now {
            self.ack_now = true;
            self.keepalive_at = now + KEEPALIVE;
        }
        if self.tail_probe_at.is_some_and(|at| at <= now) {
            self.tail_probe_at = None;
            // The probe itself leaves the window alone (RFC 8985): the acknowledgements it
            // brings back show whether anything was lost, and recovery shrinks it then.
            if self.out.probe() {
                self.probed = true;
                self.resend_anyway = true;
            }
        }
        if self.rto_at.is_some_and(|at| at <= now) {
            self.rto_at = None;
            self.tail_probe_at = None;
            let gave_up = match self.state {
                State::SynSent => self.out.front_transmissions() > self.config.syn_resends,
                State::Connected => self.rtt.timeouts() >= self.config.max_timeouts,
            };
            if gave_up {
                self.close(CloseReason::TimedOut);
                return;
            }
            self.out.on_timeout();
            if self.state == State::Connected {
                self.cc.on_timeout();
            }
            self.rtt.back_off();
        }
    }

    /// Takes what fits of `data`.
    pub(crate) fn write(&mut self, data: &[u8]) -> usize {
        if self.closed.is_some() || self.closing {
            return 0;
        }
        let n = self.out.write(data);
        if n < data.len() {
            self.write_blocked = true;
        }
        n
    }

    pub(crate) fn readable(&self) -> &[u8] {
        self.inc.readable()
    }

    pub(crate) fn consume(&mut self, n: usize) {
        let before = self.inc.window();
        self.inc.consume(n);
        // A window that had closed to under two packets reopened: tell the peer now rather
        // than leave it to its probe a second later.
        if before < self.packet * 2 && self.inc.window() >= self.packet * 2 {
            self.ack_now = true;
        }
    }

    pub(crate) fn eof(&self) -> bool {
        self.inc.eof()
    }

    /// Ends our side after what was written; what the peer sends from now on is dropped.
    pub(crate) fn close_gracefully(&mut self) {
        if self.closed.is_some() {
            return;
        }
        self.closing = true;
        self.out.finish();
        self.inc.discard();
    }

    /// Ends the connection at once with a RESET.
    pub(crate) fn abort(&mut self) {
        if self.closed.is_none() {
            self.reset_due = self.state == State::Connected;
            self.close(CloseReason::Aborted);
        }
    }

    pub(crate) fn stats(&self) -> crate::ConnectionStats {
        crate::ConnectionStats {
            rtt: self.rtt.smoothed(),
            window: self.cc.window(),
            in_flight: self.out.in_flight(),
            queueing_delay: self
                .cc
                .queueing_delay_us()
                .map(|us| Duration::from_micros(u64::from(us))),
            peer_window: self.peer_window,
            buffered: self.out.buffered(),
        }
    }
}
