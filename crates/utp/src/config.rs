//! Every setting of an endpoint, with its default and unit.

use std::time::Duration;

/// An endpoint's settings; the defaults are libtorrent's and libutp's where they have one.
#[derive(Debug, Clone)]
pub struct Config {
    /// The path's largest IP packet, bytes (default 1,500): a packet's payload is this less
    /// the IP, UDP and uTP headers and room for a selective ACK (1,446 bytes over IPv4, 1,426 over IPv6).
    pub mtu: usize,
    /// Bytes a connection holds for the application before it stops taking more, and so the
    /// most it advertises (default 1,400 KiB: about the 1,024 packets a receiver holds past a
    /// gap, ours and libutp's; a larger window lets a sender put packets in flight that are
    /// dropped on arrival, and libtorrent's sender, overshooting in slow start into such a
    /// window, stalled for 4.5 s resending five packets a round trip. It fills a 10 MB/s path
    /// at 100 ms; libtorrent advertises 1 MiB).
    pub receive_window: usize,
    /// Bytes a connection takes from the application ahead of their acknowledgement, and so the
    /// largest congestion window (default 4 MiB).
    pub send_buffer: usize,
    /// LEDBAT's queueing-delay target (default 100 ms).
    pub target_delay: Duration,
    /// LEDBAT's most window growth per round trip, bytes (default 3,000, libutp's).
    pub gain: usize,
    /// How long a lone in-order packet waits for a second before it is acknowledged
    /// (default 10 ms; every second packet is acknowledged at once).
    pub delayed_ack: Duration,
    /// SYNs sent again before a connection attempt fails (default 2: with the 1 s first
    /// timeout doubling, an unanswered attempt fails after 7 s; libtorrent gives up after 3 s
    /// with its own timer).
    pub syn_resends: u32,
    /// Retransmission timeouts in a row before a connection is given up (default 6).
    pub max_timeouts: u32,
    /// Silence from the peer after which a connection is given up (default 120 s; each end
    /// sends a keep-alive every 29 s).
    pub idle_timeout: Duration,
    /// Connections at once, ours and the peers' (default 4,096); SYNs past it are reset.
    pub max_connections: usize,
    /// Whether SYNs are answered (default true).
    pub accept: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            mtu: 1500,
            receive_window: 1400 << 10,
            send_buffer: 4 << 20,
            target_delay: Duration::from_millis(100),
            gain: 3000,
            delayed_ack: Duration::from_millis(10),
            syn_resends: 2,
            max_timeouts: 6,
            idle_timeout: Duration::from_secs(120),
            max_connections: 4096,
            accept: true,
        }
    }
}
