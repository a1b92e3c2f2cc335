//! The endpoint: every connection on one UDP socket, found by the sender's address and the
//! connection id; new ones from SYNs; RESETs for packets of connections it does not know.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use slab::Slab;

use crate::ConnectionStats;
use crate::config::Config;
use crate::connection::{CONNECTED, Connection, READABLE, WRITABLE};
use crate::error::{CloseReason, ConnectError, StreamError};
use crate::packet::{Header, Packet, PacketError, PacketType};

/// RESETs waiting to be sent before more are not (they answer strangers' packets).
const MAX_RESETS: usize = 64;

/// A connection of an [`Endpoint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionHandle {
    slot: usize,
    id: u64,
}

/// Something the application should know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A peer opened a connection (already answered; abort it to refuse).
    Incoming(ConnectionHandle, SocketAddr),
    /// Our connection attempt was answered.
    Connected(ConnectionHandle),
    /// Bytes (or the end of the stream) can be read.
    Readable(ConnectionHandle),
    /// Room to write again after a write was cut short.
    Writable(ConnectionHandle),
    /// The connection is gone; its handle is stale.
    Closed(ConnectionHandle, CloseReason),
}

/// A datagram [`Endpoint::poll_transmit`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub to: SocketAddr,
    /// Its length at the start of the buffer.
    pub len: usize,
}

#[derive(Debug)]
struct Entry {
    id: u64,
    connection: Connection,
    deadline: Option<Instant>,
    sendable: bool,
    flagged: u8,
    queued_event: bool,
}

/// Every uTP connection on one socket (see the crate's documentation).
#[derive(Debug)]
pub struct Endpoint {
    config: Config,
    epoch: Instant,
    rng: fastrand::Rng,
    entries: Slab<Entry>,
    by_key: HashMap<(SocketAddr, u16), usize>,
    /// The receive ids of the connections we opened, by address, until they are removed: what
    /// an ICMP error for an address looks through.
    dialled: HashMap<SocketAddr, Vec<u16>>,
    next_id: u64,
    /// Connections that may have a packet to send, by slot and id (a slot is reused).
    sendable: VecDeque<(usize, u64)>,
    /// Connections with events raised, by slot and id.
    flagged: VecDeque<(usize, u64)>,
    events: VecDeque<Event>,
    timers: BTreeSet<(Instant, usize)>,
    resets: VecDeque<(SocketAddr, Header)>,
}

impl Endpoint {
    /// An endpoint with no connections; `seed` makes its ids and sequence numbers replayable.
    pub fn new(config: Config, now: Instant, seed: u64) -> Self {
        Self {
            config,
            epoch: now,
            rng: fastrand::Rng::with_seed(seed),
            entries: Slab::new(),
            by_key: HashMap::new(),
            dialled: HashMap::new(),
            next_id: 0,
            sendable: VecDeque::new(),
            flagged: VecDeque::new(),
            events: VecDeque::new(),
            timers: BTreeSet::new(),
            resets: VecDeque::new(),
        }
    }

    /// Connections open (and closing).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No connection is open.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Opens a connection to `to`; [`Event::Connected`] or [`Event::Closed`] follows.
    pub fn connect(
        &mut self,
        to: SocketAddr,
        now: Instant,
    ) -> Result<ConnectionHandle, ConnectError> {
        if self.entries.len() >= self.config.max_connections {
            return Err(ConnectError::TooManyConnections);
        }
        let recv_id = (0..64)
            .map(|_| self.rng.u16(..))
            .find(|id| !self.by_key.contains_key(&(to, *id)))
            .ok_or(ConnectError::NoConnectionId)?;
        let seq = self.rng.u16(..);
        let connection = Connection::connect(to, recv_id, seq, &self.config, now, self.epoch);
        self.dialled.entry(to).or_default().push(recv_id);
        Ok(self.insert(connection))
    }

    fn insert(&mut self, connection: Connection) -> ConnectionHandle {
        let id = self.next_id;
        self.next_id += 1;
        let key = (connection.peer(), connection.recv_id());
        let slot = self.entries.insert(Entry {
            id,
            connection,
            deadline: None,
            sendable: false,
            flagged: 0,
            queued_event: false,
        });
        self.by_key.insert(key, slot);
        self.touched(slot);
        ConnectionHandle { slot, id }
    }

    /// One datagram from `from`. Datagrams that are not uTP (see [`crate::is_utp`]) are
    /// refused with the reason.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Result<(), PacketError> {
        let packet = Packet::parse(datagram)?;
        let header = packet.header;
        let slot = match header.kind {
            PacketType::Syn => self
                .by_key
                .get(&(from, header.connection_id.wrapping_add(1))),
            PacketType::Reset => self.reset_target(from, header.connection_id),
            _ => self.by_key.get(&(from, header.connection_id)),
        }
        .copied();
        match slot {
            Some(slot) => {
                if let Some(entry) = self.entries.get_mut(slot) {
                    entry
                        .connection
                        .handle(now, &header, packet.sack, packet.payload);
                }
                self.touched(slot);
            }
            None if header.kind == PacketType::Syn
                && self.config.accept
                && self.entries.len() < self.config.max_connections =>
            {
                let seq = self.rng.u16(..);
                let connection =
                    Connection::accept(from, &header, seq, &self.config, now, self.epoch);
                let handle = self.insert(connection);
                self.events.push_back(Event::Incoming(handle, from));
            }
            None if header.kind != PacketType::Reset && self.resets.len() < MAX_RESETS => {
                self.resets.push_back((
                    from,
                    Header {
                        kind: PacketType::Reset,
                        timestamp_us: 0,
                        timestamp_diff_us: 0,
                        window: 0,
                        seq: self.rng.u16(..),
                        ack: header.seq,
                        ..header
                    },
                ));
            }
            None => {}
        }
        Ok(())
    }

    /// A RESET carries the id its sender sends on or receives on (implementations differ):
    /// ours to receive on, or one off it in either direction for our sending id.
    fn reset_target(&self, from: SocketAddr, id: u16) -> Option<&usize> {
        self.by_key.get(&(from, id)).or_else(|| {
            [id.wrapping_sub(1), id.wrapping_add(1)]
                .into_iter()
                .filter_map(|recv| self.by_key.get(&(from, recv)))
                .find(|slot| {
                    self.entries
                        .get(**slot)
                        .is_some_and(|e| e.connection.send_id() == id)
                })
        })
    }

    /// After anything that may have changed a connection: its timer, its place in the send
    /// queue, its events, and its removal once closed and quiet.
    fn touched(&mut self, slot: usize) {
        self.update(slot, true);
    }

    fn update(&mut self, slot: usize, may_send: bool) {
        let Some(entry) = self.entries.get_mut(slot) else {
            return;
        };
        let deadline = entry.connection.poll_timeout();
        if deadline != entry.deadline {
            if let Some(old) = entry.deadline {
                self.timers.remove(&(old, slot));
            }
            if let Some(new) = deadline {
                self.timers.insert((new, slot));
            }
            entry.deadline = deadline;
        }
        if may_send && !entry.sendable {
            entry.sendable = true;
            self.sendable.push_back((slot, entry.id));
        }
        entry.flagged |= entry.connection.take_events();
        if entry.flagged & CONNECTED != 0 {
            entry.flagged &= !CONNECTED;
            self.events
                .push_back(Event::Connected(ConnectionHandle { slot, id: entry.id }));
        }
        if entry.flagged != 0 && !entry.queued_event {
            entry.queued_event = true;
            self.flagged.push_back((slot, entry.id));
        }
        if entry.connection.is_done() {
            self.remove(slot);
        }
    }

    fn remove(&mut self, slot: usize) {
        if !self.entries.contains(slot) {
            return;
        }
        let entry = self.entries.remove(slot);
        let key = (entry.connection.peer(), entry.connection.recv_id());
        if self.by_key.get(&key) == Some(&slot) {
            self.by_key.remove(&key);
        }
        if let Some(ids) = self.dialled.get_mut(&key.0) {
            ids.retain(|id| *id != key.1);
            if ids.is_empty() {
                self.dialled.remove(&key.0);
            }
        }
        if let Some(deadline) = entry.deadline {
            self.timers.remove(&(deadline, slot));
        }
        let reason = entry.connection.closed().unwrap_or(CloseReason::Aborted);
        self.events.push_back(Event::Closed(
            ConnectionHandle { slot, id: entry.id },
            reason,
        ));
    }

    /// Writes the next datagram to send into `buf` (at least `Config::mtu` bytes); connections
    /// take turns, a packet each.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        if let Some((to, header)) = self.resets.pop_front() {
            return Some(Transmit {
                to,
                len: header.write(None, buf),
            });
        }
        for _ in 0..self.sendable.len() {
            let (slot, id) = self.sendable.pop_front()?;
            let Some(entry) = self.entries.get_mut(slot).filter(|e| e.id == id) else {
                continue;
            };
            match entry.connection.poll_transmit(now, buf) {
                Some(len) => {
                    let to = entry.connection.peer();
                    self.sendable.push_back((slot, id));
                    self.update(slot, false);
                    return Some(Transmit { to, len });
                }
                None => {
                    entry.sendable = false;
                    self.update(slot, false);
                }
            }
        }
        None
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some(event) = self.events.pop_front() {
            return Some(event);
        }
        while let Some(&(slot, id)) = self.flagged.front() {
            let Some(entry) = self.entries.get_mut(slot).filter(|e| e.id == id) else {
                self.flagged.pop_front();
                continue;
            };
            let handle = ConnectionHandle { slot, id };
            for (flag, event) in [
                (READABLE, Event::Readable(handle)),
                (WRITABLE, Event::Writable(handle)),
            ] {
                if entry.flagged & flag != 0 {
                    entry.flagged &= !flag;
                    return Some(event);
                }
            }
            entry.queued_event = false;
            self.flagged.pop_front();
        }
        None
    }

    /// When [`Endpoint::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// Runs the timers due by `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Each timer due runs once per call, even if a connection set another one in the past.
        for _ in 0..self.timers.len() {
            let Some(&(at, slot)) = self.timers.first() else {
                break;
            };
            if at > now {
                break;
            }
            self.timers.remove(&(at, slot));
            if let Some(entry) = self.entries.get_mut(slot) {
                entry.deadline = None;
                entry.connection.handle_timeout(now);
            }
            self.touched(slot);
        }
    }

    fn entry(&mut self, handle: ConnectionHandle) -> Result<&mut Connection, StreamError> {
        match self.entries.get_mut(handle.slot) {
            Some(entry) if entry.id == handle.id && entry.connection.closed().is_none() => {
                Ok(&mut entry.connection)
            }
            _ => Err(StreamError::Closed),
        }
    }

    /// Queues bytes to send; returns how many were taken (all that fit).
    pub fn write(&mut self, handle: ConnectionHandle, data: &[u8]) -> Result<usize, StreamError> {
        let connection = self.entry(handle)?;
        let n = connection.write(data);
        self.touched(handle.slot);
        if n == 0 && !data.is_empty() {
            return Err(StreamError::WouldBlock);
        }
        Ok(n)
    }

    /// The bytes received in order and not yet consumed (empty at the end of the stream too:
    /// see [`Endpoint::read`]).
    pub fn readable(&mut self, handle: ConnectionHandle) -> Result<&[u8], StreamError> {
        Ok(self.entry(handle)?.readable())
    }

    /// Drops `n` bytes from the front of [`Endpoint::readable`].
    pub fn consume(&mut self, handle: ConnectionHandle, n: usize) {
        if let Ok(connection) = self.entry(handle) {
            connection.consume(n);
            // The window reopened: the peer hears of it with the next packet.
            self.touched(handle.slot);
        }
    }

    /// Copies received bytes into `buf`: `Ok(0)` at the end of the stream.
    pub fn read(&mut self, handle: ConnectionHandle, buf: &mut [u8]) -> Result<usize, StreamError> {
        let connection = self.entry(handle)?;
        let data = connection.readable();
        if data.is_empty() {
            return if connection.eof() {
                Ok(0)
            } else {
                Err(StreamError::WouldBlock)
            };
        }
        let n = data.len().min(buf.len());
        buf[..n].copy_from_slice(&data[..n]);
        connection.consume(n);
        self.touched(handle.slot);
        Ok(n)
    }

    /// Closes our end once what was written is delivered; incoming bytes are dropped from
    /// now on. [`Event::Closed`] follows.
    pub fn close(&mut self, handle: ConnectionHandle) {
        if let Ok(connection) = self.entry(handle) {
            connection.close_gracefully();
            self.touched(handle.slot);
        }
    }

    /// The network said `addr` cannot be reached (an ICMP host or port unreachable): the
    /// connections there still waiting for their SYN's answer fail at once, closing with
    /// [`CloseReason::Unreachable`], rather than after every retry. Established ones are left
    /// to their own timeouts, since such a message is easy to forge.
    pub fn unreachable(&mut self, addr: SocketAddr) {
        let Some(ids) = self.dialled.get(&addr) else {
            return;
        };
        let slots: Vec<usize> = ids
            .iter()
            .filter_map(|id| self.by_key.get(&(addr, *id)).copied())
            .collect();
        for slot in slots {
            let failed = self
                .entries
                .get_mut(slot)
                .is_some_and(|entry| entry.connection.unreachable());
            if failed {
                self.touched(slot);
            }
        }
    }

    /// Resets the connection at once.
    pub fn abort(&mut self, handle: ConnectionHandle) {
        if let Ok(connection) = self.entry(handle) {
            connection.abort();
            self.touched(handle.slot);
        }
    }

    /// A connection's figures, while it is open.
    pub fn stats(&mut self, handle: ConnectionHandle) -> Option<ConnectionStats> {
        self.entry(handle).ok().map(|c| c.stats())
    }
}
