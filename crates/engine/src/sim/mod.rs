//! Whole swarms of our torrent cores on a simulated network, in virtual time (feature `sim`; not
//! a stable API).
//!
//! Each host is a [`Core`](crate::core::Core) with an access link (rate each way, one-way
//! delay, loss) and an
//! in-memory disk. A connection between two hosts is a pair of in-order byte streams: a batch
//! of frames leaves through the sender's uplink (serialised at its rate, one batch at a time,
//! peers served in turn), crosses both hosts' delays, and is queued on the receiver's
//! downlink; a lost batch arrives one retransmission later, and nothing overtakes it. Dials take
//! a round trip; disk writes and reads take a fixed time. The clock jumps from event to event,
//! so a swarm that takes minutes on sockets runs in seconds, and everything (link parameters,
//! the cores' choices) comes from one seed: the same seed gives the same run, event for event
//! ([`Sim::trace_hash`]).

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use cratetorrent_metainfo::Metainfo;
use cratetorrent_storage::StorageEvent;
use cratetorrent_wire::{Bitfield, Geometry};

use crate::alert::Alert;
use crate::core::{Action, Command, Handled, Input, PeerKey};

mod host;
mod queue;
#[cfg(test)]
mod tests;

use host::Host;
pub use host::{HostSpec, Link};
use queue::{Event, Queue, Scheduled};

/// Frames taken from a peer's outbox at once (a block is two): at most 32 KiB, so that peers share
/// an uplink in small turns (as per-flow fair queueing would) and a request is never stuck
/// behind much of another peer's data.
const MAX_FRAMES: usize = 4;
/// How long a disk write or read takes.
const DISK_DELAY: Duration = Duration::from_micros(200);
/// A dial to nobody fails after this long.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// The shortest retransmission timeout (Linux's).
const MIN_RTO: Duration = Duration::from_millis(200);

/// Identifies a host in a simulation.
pub type HostId = usize;
type LinkId = u64;

/// A connection: each side's host and peer key, and the bytes each side has received.
struct Connection {
    ends: [(HostId, PeerKey); 2],
    received: [BytesMut; 2],
    /// Nothing arrives at a side before the last delivery to it (in-order streams).
    last_delivery: [Instant; 2],
}

/// A simulated swarm of one torrent.
pub struct Sim {
    metainfo: Metainfo,
    geometry: Geometry,
    hosts: Vec<Host>,
    by_addr: HashMap<SocketAddr, HostId>,
    links: BTreeMap<LinkId, Connection>,
    next_link: LinkId,
    queue: Queue,
    start: Instant,
    now: Instant,
    rng: fastrand::Rng,
    trace: std::collections::hash_map::DefaultHasher,
    events: u64,
    zeros: Bytes,
    frames: Vec<Bytes>,
}

impl Sim {
    /// An empty network for `metainfo`'s torrent (whose piece hashes are not checked: a piece
    /// verifies when all its blocks arrived); everything random comes from `seed`.
    pub fn new(metainfo: Metainfo, seed: u64) -> Self {
        let geometry = Geometry::of(&metainfo);
        let start = Instant::now();
        Self {
            zeros: Bytes::from(vec![0u8; metainfo.piece_length() as usize]),
            metainfo,
            geometry,
            hosts: Vec::new(),
            by_addr: HashMap::new(),
            links: BTreeMap::new(),
            next_link: 0,
            queue: Queue::default(),
            start,
            now: start,
            rng: fastrand::Rng::with_seed(seed),
            trace: std::collections::hash_map::DefaultHasher::new(),
            events: 0,
            frames: Vec::new(),
        }
    }

    /// A torrent of `pieces` pieces of `piece_length` bytes, for simulations.
    pub fn torrent(pieces: u32, piece_length: u32) -> Option<Metainfo> {
        let length = u64::from(pieces) * u64::from(piece_length);
        let mut raw = Vec::new();
        raw.extend_from_slice(format!("d4:infod6:lengthi{length}e4:name3:sim").as_bytes());
        raw.extend_from_slice(format!("12:piece lengthi{piece_length}e").as_bytes());
        raw.extend_from_slice(format!("6:pieces{}:", pieces * 20).as_bytes());
        raw.extend(std::iter::repeat_n(7u8, pieces as usize * 20));
        raw.extend_from_slice(b"ee");
        Metainfo::from_bytes(&raw).ok()
    }

    /// The simulation's random numbers (for drawing link parameters).
    pub fn rng(&mut self) -> &mut fastrand::Rng {
        &mut self.rng
    }

    /// Adds a host that joins after `after`.
    pub fn add_host(&mut self, spec: HostSpec, after: Duration) -> HostId {
        let id = self.hosts.len();
        let host = Host::new(spec, id, self.geometry.piece_count(), self.now);
        self.by_addr.insert(host.addr, id);
        self.hosts.push(host);
        self.schedule(self.now + after, Event::Join(id));
        id
    }

    /// Brings a host that left back after `after`, with what its disk has.
    pub fn rejoin_host(&mut self, host: HostId, after: Duration) {
        self.schedule(self.now + after, Event::Join(host));
    }

    /// Takes a host offline after `after` (its connections close).
    pub fn remove_host(&mut self, host: HostId, after: Duration) {
        self.schedule(self.now + after, Event::Leave(host));
    }

    /// Simulated time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Events handled so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    pub fn host_count(&self) -> usize {
        self.hosts.len()
    }

    /// Whether the host is online.
    pub fn is_online(&self, host: HostId) -> bool {
        self.hosts[host].core.is_some()
    }

    /// What the host's disk has.
    pub fn have(&self, host: HostId) -> &Bitfield {
        &self.hosts[host].disk.have
    }

    /// Blocks of the torrent that at least one of `hosts` holds (whole pieces it has, and the
    /// blocks written of pieces in progress).
    pub fn distinct_blocks(&self, hosts: &[HostId]) -> u64 {
        let mut held = 0;
        for piece in 0..self.geometry.piece_count() {
            let blocks = self.geometry.block_count(piece).unwrap_or(0);
            let mut mask = 0u64;
            for &host in hosts {
                let disk = &self.hosts[host].disk;
                if disk.have.get(piece) {
                    mask = u64::MAX;
                    break;
                }
                mask |= disk.written(piece);
            }
            held += u64::from(mask.count_ones().min(blocks));
        }
        held
    }

    /// When the host had every piece (since the start).
    pub fn completed_at(&self, host: HostId) -> Option<Duration> {
        self.hosts[host].completed_at.map(|at| at - self.start)
    }

    /// When the host had each further 1 % of the pieces (since the start).
    pub fn progress(&self, host: HostId) -> Vec<Duration> {
        let start = self.start;
        self.hosts[host]
            .progress
            .iter()
            .map(|&at| at - start)
            .collect()
    }

    /// Bytes the host put on the wire, and took off it.
    pub fn traffic(&self, host: HostId) -> (u64, u64) {
        (self.hosts[host].bytes_sent, self.hosts[host].bytes_received)
    }

    /// The host's torrent stats (`None` while it is offline).
    pub fn stats(&self, host: HostId) -> Option<crate::TorrentStats> {
        self.hosts[host].core.as_ref().map(crate::core::Core::stats)
    }

    /// Payload the host has received from `from` over its current connections to it.
    pub fn received_from(&self, host: HostId, from: HostId) -> u64 {
        let ip = self.hosts[from].addr.ip();
        self.stats(host).map_or(0, |stats| {
            stats
                .peers
                .iter()
                .filter(|peer| peer.addr.ip() == ip)
                .map(|peer| peer.downloaded)
                .sum()
        })
    }

    /// Connected peers of the host.
    pub fn peer_count(&self, host: HostId) -> usize {
        self.hosts[host].links.len()
    }

    /// A hash of every event handled so far: equal for equal runs.
    pub fn trace_hash(&self) -> u64 {
        self.trace.finish()
    }

    /// Checks every online core's bounds and piece availability counts; panics when one is
    /// off.
    pub fn check(&self) {
        for host in &self.hosts {
            if let Some(core) = &host.core {
                core.check_bounds();
                core.check_availability();
            }
        }
    }

    /// Runs until `duration` of simulated time has passed (or nothing is left to do).
    pub fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        while let Some(scheduled) = self.queue.pop_until(end) {
            self.now = scheduled.at;
            self.dispatch(scheduled);
        }
        self.now = self.now.max(end);
    }

    fn schedule(&mut self, at: Instant, event: Event) {
        let generation = match &event {
            Event::Timeout(host)
            | Event::Sent { host, .. }
            | Event::DialFailed { host, .. }
            | Event::Storage { host, .. }
            | Event::Closed { host, .. }
            | Event::Dial { from: host, .. } => self.hosts[*host].generation,
            Event::Deliver { .. } | Event::Join(_) | Event::Leave(_) => 0,
        };
        self.queue.push(at, generation, event);
    }

    fn dispatch(&mut self, scheduled: Scheduled) {
        self.events += 1;
        let Scheduled {
            generation, event, ..
        } = scheduled;
        (self.now - self.start).as_nanos().hash(&mut self.trace);
        std::mem::discriminant(&event).hash(&mut self.trace);
        let stale = |host: HostId, hosts: &[Host]| {
            hosts[host].generation != generation || hosts[host].core.is_none()
        };
        match event {
            Event::Join(host) => self.join(host),
            Event::Leave(host) => self.leave(host),
            Event::Timeout(host) if !stale(host, &self.hosts) => {
                self.input(host, Input::Timeout);
                if let Some(core) = &self.hosts[host].core {
                    let at = core.poll_timeout();
                    self.schedule(at, Event::Timeout(host));
                }
            }
            Event::Sent { host, key, bytes } if !stale(host, &self.hosts) => {
                host.hash(&mut self.trace);
                bytes.hash(&mut self.trace);
                self.hosts[host].sending = false;
                self.input(host, Input::Sent { peer: key, bytes });
                self.transmit(host);
            }
            Event::Deliver { link, side, frames } => self.deliver(link, side, frames),
            Event::Dial { from, to } if !stale(from, &self.hosts) => self.connect(from, to),
            Event::DialFailed { host, addr } if !stale(host, &self.hosts) => {
                self.input(host, Input::ConnectFailed(addr));
            }
            Event::Storage { host, event } if !stale(host, &self.hosts) => {
                if let StorageEvent::PieceVerified(piece) = event {
                    self.hosts[host].verified(piece, self.now);
                }
                self.input(host, Input::Storage(event));
            }
            Event::Closed { host, key } if !stale(host, &self.hosts) => {
                self.input(host, Input::Closed(key));
            }
            _ => {}
        }
    }

    fn join(&mut self, host: HostId) {
        if self.hosts[host].core.is_some() {
            return;
        }
        let seed = self.rng.u64(..);
        self.hosts[host].start(&self.metainfo, seed, self.now);
        // Spread the hosts' timers over the tick.
        let offset = Duration::from_millis(self.rng.u64(..1000));
        self.schedule(self.now + offset, Event::Timeout(host));
        // The tracker's answer: up to 50 hosts online, at random.
        let mut online: Vec<HostId> = (0..self.hosts.len())
            .filter(|&h| h != host && self.hosts[h].core.is_some())
            .collect();
        self.rng.shuffle(&mut online);
        let peers: Vec<SocketAddr> = online
            .iter()
            .take(50)
            .map(|&h| self.hosts[h].addr)
            .collect();
        self.input(host, Input::Command(Command::AddPeers(peers)));
    }

    fn leave(&mut self, host: HostId) {
        if self.hosts[host].core.is_none() {
            return;
        }
        let links: Vec<LinkId> = self.hosts[host].links.values().copied().collect();
        self.hosts[host].stop();
        for link in links {
            self.close_link(link, host);
        }
    }

    /// Closes a connection from `host`'s side: the other end hears of it a one-way trip later.
    fn close_link(&mut self, link: LinkId, host: HostId) {
        let Some(connection) = self.links.remove(&link) else {
            return;
        };
        for (side, &(end, key)) in connection.ends.iter().enumerate() {
            if self.hosts[end].links.get(&key) == Some(&link) {
                self.hosts[end].links.remove(&key);
            }
            let delay = if end == host {
                Duration::ZERO
            } else {
                self.one_way(connection.ends[1 - side].0, end)
            };
            self.schedule(self.now + delay, Event::Closed { host: end, key });
        }
    }

    fn one_way(&self, from: HostId, to: HostId) -> Duration {
        self.hosts[from].spec.link.delay + self.hosts[to].spec.link.delay
    }

    /// Gives a host's core `input` and carries out what it asks.
    fn input(&mut self, host: HostId, input: Input<'_>) -> Handled {
        let Some(core) = self.hosts[host].core.as_mut() else {
            return Handled::Done;
        };
        let handled = core.handle(input, self.now);
        self.drain(host);
        handled
    }

    fn drain(&mut self, host: HostId) {
        loop {
            let Some(core) = self.hosts[host].core.as_mut() else {
                return;
            };
            if let Some(alert) = core.poll_alert() {
                if let Alert::PeerBanned { addr, .. } = alert {
                    addr.hash(&mut self.trace);
                }
                continue;
            }
            let Some(action) = core.poll_action() else {
                break;
            };
            self.act(host, action);
        }
        self.transmit(host);
    }

    fn act(&mut self, host: HostId, action: Action) {
        let now = self.now;
        match action {
            Action::Wake(key) => self.hosts[host].wake(key),
            Action::Write { piece, offset, .. } => {
                if self.hosts[host].disk.write(&self.geometry, piece, offset) {
                    let event = StorageEvent::PieceVerified(piece);
                    self.schedule(now + DISK_DELAY, Event::Storage { host, event });
                }
            }
            Action::Read { block, token } => {
                let data = self.zeros.slice(..block.len as usize);
                let event = StorageEvent::BlockRead {
                    token,
                    block,
                    result: Ok(data),
                };
                self.schedule(now + DISK_DELAY, Event::Storage { host, event });
            }
            Action::HashBlocks(piece) => {
                let blocks = self.geometry.block_count(piece).unwrap_or(0) as usize;
                let event = StorageEvent::BlockHashes {
                    piece,
                    result: Ok(vec![[0; 20]; blocks]),
                };
                self.schedule(now + DISK_DELAY, Event::Storage { host, event });
            }
            Action::ForgetReads(_)
            | Action::ResumeReading
            | Action::MetadataReady(_)
            | Action::DhtNode(_)
            | Action::ExternalIp { .. }
            | Action::WantedFiles(_) => {}
            Action::Disconnect(key) => {
                if let Some(&link) = self.hosts[host].links.get(&key) {
                    self.close_link(link, host);
                } else {
                    self.schedule(now, Event::Closed { host, key });
                }
            }
            Action::Connect(addr) => match self.by_addr.get(&addr) {
                Some(&to) if self.hosts[to].core.is_some() => {
                    let rtt = 2 * self.one_way(host, to);
                    self.schedule(now + rtt, Event::Dial { from: host, to });
                }
                _ => {
                    let event = Event::DialFailed { host, addr };
                    self.schedule(now + DIAL_TIMEOUT, event);
                }
            },
        }
    }

    /// Both handshakes, as one step: the target admits the dialler, then the dialler admits it.
    fn connect(&mut self, from: HostId, to: HostId) {
        let to_addr = self.hosts[to].addr;
        if self.hosts[to].core.is_none() {
            self.input(from, Input::ConnectFailed(to_addr));
            return;
        }
        let link = self.next_link;
        self.next_link += 1;
        // The dialler arrives from an ephemeral port.
        let from_addr = SocketAddr::new(self.hosts[from].addr.ip(), 20000 + (link % 40000) as u16);
        let incoming = Input::Handshake {
            addr: from_addr,
            id: self.hosts[from].id,
            extensions: crate::core::our_extensions(false),
            outgoing: false,
            link: Default::default(),
        };
        let Handled::Admitted(to_key) = self.input(to, incoming) else {
            self.input(from, Input::ConnectFailed(to_addr));
            return;
        };
        let outgoing = Input::Handshake {
            addr: to_addr,
            id: self.hosts[to].id,
            extensions: crate::core::our_extensions(false),
            outgoing: true,
            link: Default::default(),
        };
        let Handled::Admitted(from_key) = self.input(from, outgoing) else {
            self.input(to, Input::Closed(to_key));
            return;
        };
        self.links.insert(
            link,
            Connection {
                ends: [(from, from_key), (to, to_key)],
                received: [BytesMut::new(), BytesMut::new()],
                last_delivery: [self.now; 2],
            },
        );
        self.hosts[from].links.insert(from_key, link);
        self.hosts[to].links.insert(to_key, link);
        // Their greetings were queued before the connection existed.
        self.hosts[from].wake(from_key);
        self.hosts[to].wake(to_key);
        self.transmit(from);
        self.transmit(to);
    }

    /// Starts the host's next batch if its uplink is free.
    fn transmit(&mut self, host: HostId) {
        while !self.hosts[host].sending {
            let Some(key) = self.hosts[host].next_ready() else {
                return;
            };
            let Some(&link) = self.hosts[host].links.get(&key) else {
                continue;
            };
            let mut frames = std::mem::take(&mut self.frames);
            frames.clear();
            let now = self.now;
            let Some(core) = self.hosts[host].core.as_mut() else {
                return;
            };
            let taken = core.poll_transmit(key, &mut frames, MAX_FRAMES, now);
            // `poll_transmit` may have asked to be called again.
            let actions: Vec<Action> = std::iter::from_fn(|| core.poll_action()).collect();
            for action in actions {
                self.act(host, action);
            }
            let bytes: usize = frames.iter().map(Bytes::len).sum();
            if taken.is_none() || bytes == 0 {
                self.frames = frames;
                continue;
            }
            self.send(host, key, link, frames, bytes);
        }
    }

    fn send(&mut self, host: HostId, key: PeerKey, link: LinkId, frames: Vec<Bytes>, bytes: usize) {
        let Some(connection) = self.links.get(&link) else {
            return;
        };
        let side = usize::from(connection.ends[0].0 == host);
        let to = connection.ends[side].0;
        let sender = &self.hosts[host].spec.link;
        let serialise = Duration::from_secs_f64(bytes as f64 / sender.up as f64);
        let lost = sender.loss > 0.0 && self.rng.f64() < sender.loss;
        let one_way = self.one_way(host, to);
        let on_wire = self.now + serialise;
        let mut arrival = on_wire + one_way;
        if lost {
            arrival += (2 * one_way).max(MIN_RTO);
        }
        let receiver = &mut self.hosts[to];
        let start = arrival.max(receiver.downlink_free);
        let receive = Duration::from_secs_f64(bytes as f64 / receiver.spec.link.down as f64);
        receiver.downlink_free = start + receive;
        let mut at = start + receive;
        if let Some(connection) = self.links.get_mut(&link) {
            at = at.max(connection.last_delivery[side]);
            connection.last_delivery[side] = at;
        }
        self.hosts[host].sending = true;
        self.hosts[host].bytes_sent += bytes as u64;
        self.schedule(on_wire, Event::Sent { host, key, bytes });
        self.schedule(at, Event::Deliver { link, side, frames });
    }

    fn deliver(&mut self, link: LinkId, side: usize, frames: Vec<Bytes>) {
        let Some(connection) = self.links.get_mut(&link) else {
            return;
        };
        let (host, key) = connection.ends[side];
        let mut buf = std::mem::take(&mut connection.received[side]);
        let mut bytes = 0;
        for frame in &frames {
            buf.extend_from_slice(frame);
            bytes += frame.len();
        }
        self.hosts[host].bytes_received += bytes as u64;
        self.input(
            host,
            Input::Received {
                peer: key,
                buf: &mut buf,
            },
        );
        if let Some(connection) = self.links.get_mut(&link) {
            connection.received[side] = buf;
        }
        let mut frames = frames;
        frames.clear();
        self.frames = frames;
    }
}
