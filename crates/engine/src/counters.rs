//! The engine's resource counters: what it holds right now, to watch bounds from outside.

/// A snapshot of what the engine holds, from [`EngineHandle::counters`](crate::EngineHandle).
/// Every figure has a configured bound (see SECURITY.md); tests assert them under attack.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EngineCounters {
    /// Peer connections registered with a torrent, across all torrents.
    pub connections: usize,
    /// Incoming connections still in their handshake.
    pub handshaking: usize,
    /// Received block bytes not yet written and hashed (storage's `max_memory` per torrent).
    pub disk_buffered: u64,
    /// Bytes queued to peers and not yet on their sockets.
    pub send_buffered: u64,
    /// Requests from peers waiting to be served.
    pub requests_queued: usize,
    /// Reads for peers' requests in flight.
    pub reads_in_flight: usize,
    /// Our requests outstanding to peers.
    pub requests_outstanding: usize,
    /// Peers (by address, or by peer id on loopback) banned for bad data.
    pub banned: usize,
}
