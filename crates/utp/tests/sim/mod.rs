//! A network in memory for endpoints under test: each direction of a link has a one-way delay,
//! a rate with a tail-drop queue bounded in time, random loss and jitter (which reorders), all
//! from one seed on a virtual clock.

#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cratetorrent_utp::{Config, ConnectionHandle, Endpoint, Event, StreamError};

/// A datagram on its way: arrival, order of sending, from, to, bytes.
type InFlight = (Instant, u64, usize, usize, Vec<u8>);

#[derive(Debug, Clone, Copy)]
pub struct Link {
    pub delay: Duration,
    /// Bytes per second (0: unlimited).
    pub rate: u64,
    /// The longest a datagram may wait in the queue before it is dropped.
    pub queue: Duration,
    pub loss: f64,
    pub jitter: Duration,
}

impl Link {
    pub fn new(rtt_ms: u64, rate: u64) -> Self {
        Self {
            delay: Duration::from_millis(rtt_ms / 2),
            rate,
            queue: Duration::from_millis(1000),
            loss: 0.0,
            jitter: Duration::ZERO,
        }
    }
}

struct Direction {
    link: Link,
    free_at: Instant,
}

pub struct Host {
    pub addr: SocketAddr,
    pub endpoint: Endpoint,
    pub events: Vec<Event>,
}

pub struct Net {
    pub now: Instant,
    pub hosts: Vec<Host>,
    /// `links[from][to]`.
    directions: Vec<Vec<Direction>>,
    in_flight: BinaryHeap<Reverse<InFlight>>,
    counter: u64,
    rng: fastrand::Rng,
    pub dropped: u64,
    pub delivered: u64,
    /// The longest queueing delay any datagram met, per direction.
    pub max_queue: Vec<Vec<Duration>>,
    /// All traffic into this host shares one queue (a bottleneck in front of it).
    pub shared_into: Option<usize>,
    /// Every datagram's queueing delay from host 0 to host 1, with when it was sent.
    pub queue_0_to_1: Vec<(Instant, Duration)>,
    /// Datagrams a host sent and received that were not uTP (cross traffic).
    pub cross: Vec<(Instant, usize, usize, usize)>,
}

impl Net {
    pub fn new(hosts: usize, link: Link, config: Config, seed: u64) -> Self {
        let now = Instant::now();
        let hosts = (0..hosts)
            .map(|i| Host {
                addr: format!("10.0.0.{}:6881", i + 1).parse().unwrap(),
                endpoint: Endpoint::new(config.clone(), now, seed + i as u64),
                events: Vec::new(),
            })
            .collect::<Vec<_>>();
        let n = hosts.len();
        Self {
            now,
            hosts,
            directions: (0..n)
                .map(|_| (0..n).map(|_| Direction { link, free_at: now }).collect())
                .collect(),
            in_flight: BinaryHeap::new(),
            counter: 0,
            rng: fastrand::Rng::with_seed(seed),
            dropped: 0,
            delivered: 0,
            max_queue: vec![vec![Duration::ZERO; n]; n],
            cross: Vec::new(),
            queue_0_to_1: Vec::new(),
            shared_into: None,
        }
    }

    pub fn set_link(&mut self, from: usize, to: usize, link: Link) {
        self.directions[from][to].link = link;
    }

    pub fn addr(&self, host: usize) -> SocketAddr {
        self.hosts[host].addr
    }

    fn host_of(&self, addr: SocketAddr) -> usize {
        self.hosts.iter().position(|h| h.addr == addr).unwrap()
    }

    /// Puts a datagram on the link from `from` to `to`, as the link's queue allows.
    pub fn send(&mut self, from: usize, to: usize, datagram: Vec<u8>) {
        let now = self.now;
        let queue_from = if self.shared_into == Some(to) {
            0
        } else {
            from
        };
        let direction = &mut self.directions[queue_from][to];
        let link = direction.link;
        let start = direction.free_at.max(now);
        let waited = start - now;
        if waited > link.queue {
            self.dropped += 1;
            return;
        }
        let max = &mut self.max_queue[from][to];
        *max = (*max).max(waited);
        if (from, to) == (0, 1) {
            self.queue_0_to_1.push((now, waited));
        }
        let serialise = (datagram.len() as u64 * 1_000_000_000)
            .checked_div(link.rate)
            .map_or(Duration::ZERO, Duration::from_nanos);
        direction.free_at = start + serialise;
        if link.loss > 0.0 && self.rng.f64() < link.loss {
            self.dropped += 1;
            return;
        }
        let jitter = if link.jitter.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_nanos(
                self.rng
                    .u64(..u64::try_from(link.jitter.as_nanos()).unwrap()),
            )
        };
        let arrival = start + serialise + link.delay + jitter;
        self.counter += 1;
        self.in_flight
            .push(Reverse((arrival, self.counter, from, to, datagram)));
    }

    /// Sends what every endpoint has to send now.
    fn flush(&mut self) {
        let mut buf = [0u8; 1500];
        for from in 0..self.hosts.len() {
            while let Some(t) = self.hosts[from].endpoint.poll_transmit(self.now, &mut buf) {
                let to = self.host_of(t.to);
                self.send(from, to, buf[..t.len].to_vec());
            }
            while let Some(event) = self.hosts[from].endpoint.poll_event() {
                self.hosts[from].events.push(event);
            }
        }
    }

    /// Advances to the next delivery or timer (at most `until`), handles it, and sends what
    /// follows. Returns false once nothing is left to happen before `until`.
    pub fn step(&mut self, until: Instant) -> bool {
        self.flush();
        let next_delivery = self.in_flight.peek().map(|Reverse(d)| d.0);
        let next_timer = self
            .hosts
            .iter()
            .filter_map(|h| h.endpoint.poll_timeout())
            .min();
        let Some(next) = [next_delivery, next_timer].into_iter().flatten().min() else {
            return false;
        };
        if next > until {
            self.now = until;
            return false;
        }
        self.now = self.now.max(next);
        while let Some(Reverse(d)) = self.in_flight.peek() {
            if d.0 > self.now {
                break;
            }
            let Reverse((_, _, from, to, datagram)) = self.in_flight.pop().unwrap();
            self.delivered += 1;
            let addr = self.hosts[from].addr;
            if cratetorrent_utp::is_utp(&datagram) {
                self.hosts[to]
                    .endpoint
                    .handle_datagram(self.now, addr, &datagram)
                    .unwrap();
            } else {
                self.cross.push((self.now, from, to, datagram.len()));
            }
        }
        for host in &mut self.hosts {
            if host.endpoint.poll_timeout().is_some_and(|t| t <= self.now) {
                host.endpoint.handle_timeout(self.now);
            }
        }
        self.flush();
        true
    }

    pub fn take_events(&mut self, host: usize) -> Vec<Event> {
        std::mem::take(&mut self.hosts[host].events)
    }
}

/// The byte at `offset` of a test stream.
pub fn pattern(offset: u64) -> u8 {
    (offset.wrapping_mul(7) % 251) as u8
}

/// Writes a patterned stream of `len` bytes as room allows.
pub struct Sender {
    pub handle: ConnectionHandle,
    pub written: u64,
    pub len: u64,
    chunk: Vec<u8>,
    closed: bool,
}

impl Sender {
    pub fn new(handle: ConnectionHandle, len: u64) -> Self {
        Self {
            handle,
            written: 0,
            len,
            chunk: Vec::new(),
            closed: false,
        }
    }

    pub fn pump(&mut self, endpoint: &mut Endpoint) {
        while self.written < self.len {
            let n = (self.len - self.written).min(64 * 1024) as usize;
            self.chunk.clear();
            self.chunk
                .extend((0..n as u64).map(|i| pattern(self.written + i)));
            match endpoint.write(self.handle, &self.chunk) {
                Ok(taken) => self.written += taken as u64,
                Err(StreamError::WouldBlock) => return,
                Err(StreamError::Closed) => return,
            }
        }
        if !self.closed {
            self.closed = true;
            endpoint.close(self.handle);
        }
    }
}

/// Reads a patterned stream, checking every byte.
#[derive(Default)]
pub struct Receiver {
    pub read: u64,
    pub eof: bool,
    pub first_byte: Option<Instant>,
    pub last_byte: Option<Instant>,
    /// Bytes read by each time they were.
    pub progress: Vec<(Instant, u64)>,
}

impl Receiver {
    pub fn pump(&mut self, endpoint: &mut Endpoint, handle: ConnectionHandle, now: Instant) {
        loop {
            let Ok(data) = endpoint.readable(handle) else {
                return;
            };
            if data.is_empty() {
                let mut probe = [0u8; 1];
                if endpoint.read(handle, &mut probe) == Ok(0) {
                    self.eof = true;
                }
                return;
            }
            for (i, byte) in data.iter().enumerate() {
                assert_eq!(
                    *byte,
                    pattern(self.read + i as u64),
                    "byte {}",
                    self.read + i as u64
                );
            }
            let n = data.len();
            self.read += n as u64;
            self.first_byte.get_or_insert(now);
            self.last_byte = Some(now);
            self.progress.push((now, self.read));
            endpoint.consume(handle, n);
        }
    }
}

/// Sends `len` bytes from host 0 to host 1 over `net`; returns the receiver when the stream
/// ended or `limit` of virtual time passed.
impl Receiver {
    /// Bytes per second from `from` to the last byte.
    pub fn rate_since(&self, from: Instant) -> f64 {
        let Some(&(start, before)) = self.progress.iter().find(|(at, _)| *at >= from) else {
            return 0.0;
        };
        let (end, read) = *self.progress.last().unwrap();
        (read - before) as f64 / (end - start).as_secs_f64()
    }
}

pub fn transfer(net: &mut Net, len: u64, limit: Duration) -> (Receiver, Instant) {
    let start = net.now;
    let until = start + limit;
    let to = net.addr(1);
    let handle = net.hosts[0].endpoint.connect(to, net.now).unwrap();
    let mut sender = Sender::new(handle, len);
    sender.pump(&mut net.hosts[0].endpoint);
    let mut receiver = Receiver::default();
    let mut incoming = None;
    while !receiver.eof && net.step(until) {
        for event in net.take_events(0) {
            if let Event::Writable(_) | Event::Connected(_) = event {
                sender.pump(&mut net.hosts[0].endpoint);
            }
        }
        for event in net.take_events(1) {
            match event {
                Event::Incoming(h, _) => incoming = Some(h),
                Event::Readable(h) => {
                    let now = net.now;
                    receiver.pump(&mut net.hosts[1].endpoint, h, now);
                }
                _ => {}
            }
        }
    }
    if let Some(h) = incoming {
        net.hosts[1].endpoint.close(h);
    }
    (receiver, start)
}
