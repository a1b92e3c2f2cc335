//! A sans-IO uTP (BEP 29) endpoint: reliable, ordered byte streams over UDP, with LEDBAT
//! congestion control (RFC 6817) that keeps the queue it adds under 100 ms and so yields to
//! TCP on a shared link.
//!
//! [`Endpoint`] owns no socket, clock or thread. Give it each datagram with
//! [`Endpoint::handle_datagram`], call [`Endpoint::handle_timeout`] at
//! [`Endpoint::poll_timeout`], and after each call drain [`Endpoint::poll_transmit`] (datagrams
//! to send) and [`Endpoint::poll_event`] (connections opened, readable, writable, closed).
//! Streams are written and read through the endpoint by [`ConnectionHandle`]. Its randomness
//! (connection ids, first sequence numbers) comes from one seed, so a run replays exactly.
//!
//! What it implements: the five packet types, connection ids, selective ACKs, send and receive
//! windows, slow start, LEDBAT, RFC 6298 timeouts with back-off, fast retransmit after three
//! later packets arrived, delayed ACKs, Nagle-style coalescing of short writes, keep-alives,
//! FIN and RESET. Payloads are sized for a 1,500-byte path.
//!
//! Two endpoints in memory, one sending to the other:
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::Instant;
//! use cratetorrent_utp::{Config, Endpoint, Event};
//!
//! let (a, b): (SocketAddr, SocketAddr) =
//!     ("10.0.0.1:6881".parse().unwrap(), "10.0.0.2:6881".parse().unwrap());
//! let now = Instant::now();
//! let mut client = Endpoint::new(Config::default(), now, 1);
//! let mut server = Endpoint::new(Config::default(), now, 2);
//! let conn = client.connect(b, now).unwrap();
//! client.write(conn, b"hello over uTP").unwrap();
//! client.close(conn);
//!
//! let mut received = Vec::new();
//! let mut buf = [0; 1500];
//! for _ in 0..10 {
//!     // Deliver every datagram (a real shell sends them on a UDP socket).
//!     while let Some(t) = client.poll_transmit(now, &mut buf) {
//!         server.handle_datagram(now, a, &buf[..t.len]).unwrap();
//!     }
//!     while let Some(t) = server.poll_transmit(now, &mut buf) {
//!         client.handle_datagram(now, b, &buf[..t.len]).unwrap();
//!     }
//!     while let Some(event) = server.poll_event() {
//!         if let Event::Readable(incoming) = event {
//!             let mut chunk = [0; 64];
//!             while let Ok(n @ 1..) = server.read(incoming, &mut chunk) {
//!                 received.extend_from_slice(&chunk[..n]);
//!             }
//!         }
//!     }
//! }
//! assert_eq!(received, b"hello over uTP");
//! ```

mod config;
mod connection;
mod endpoint;
mod error;
mod ledbat;
mod packet;
mod recv;
mod rtt;
mod send;

use std::time::Duration;

pub use config::Config;
pub use endpoint::{ConnectionHandle, Endpoint, Event, Transmit};
pub use error::{CloseReason, ConnectError, StreamError};
pub use packet::{HEADER_LEN, Header, Packet, PacketError, PacketType, is_utp};

/// A connection's figures at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionStats {
    /// The smoothed round trip (1 s before any sample).
    pub rtt: Duration,
    /// The congestion window, bytes.
    pub window: usize,
    /// Payload bytes sent and not yet acknowledged.
    pub in_flight: usize,
    /// The queueing delay LEDBAT sees, once it has samples.
    pub queueing_delay: Option<Duration>,
    /// The peer's advertised receive window, bytes.
    pub peer_window: usize,
    /// Bytes written and not yet acknowledged.
    pub buffered: usize,
}
