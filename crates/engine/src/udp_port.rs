//! The engine's UDP port: one socket per address family on the listen port, shared by uTP, the
//! DHT and the UDP tracker client. Datagrams are told apart by their first bytes, as libtorrent
//! and Transmission do: version 1 and a known type in the first byte is uTP; a bencoded
//! dictionary (`d` … `e`) is KRPC; anything else from an address a tracker exchange waits on
//! goes to that exchange; the rest is dropped.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;

use rustix::net::{AddressFamily, SocketFlags, SocketType, ipproto, sockopt};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::datagram::DatagramSocket;

/// Datagrams a tracker exchange may have waiting before more are dropped.
const EXCHANGE_BACKLOG: usize = 8;
/// Socket buffer asked for each way.
const SOCKET_BUFFER: usize = 4 << 20;
/// Tracker exchanges waiting at once, across all trackers.
const MAX_EXCHANGES: usize = 1024;

/// Which protocol a datagram belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A uTP packet (version 1 in the low nibble of its first byte, a known type above it).
    Utp,
    /// A KRPC message (DHT).
    Krpc,
    /// Anything else (a tracker's answer, if an exchange waits on its sender).
    Other,
}

/// One request-and-answers conversation with a UDP tracker: on a socket of its own, connected to
/// the tracker, or through the shared port.
pub(crate) trait UdpTransport {
    /// Sends one datagram to the tracker.
    async fn send(&mut self, packet: &[u8]) -> std::io::Result<()>;
    /// Waits for the tracker's next datagram.
    async fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<usize>;
}

impl UdpTransport for UdpSocket {
    async fn send(&mut self, packet: &[u8]) -> std::io::Result<()> {
        UdpSocket::send(self, packet).await.map(|_| ())
    }

    async fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        UdpSocket::recv(self, buf).await
    }
}

/// Tells a datagram's protocol by its first and last bytes.
pub(crate) fn classify(datagram: &[u8]) -> Kind {
    if cratetorrent_utp::is_utp(datagram) {
        Kind::Utp
    } else if datagram.first() == Some(&b'd') && datagram.last() == Some(&b'e') {
        Kind::Krpc
    } else {
        Kind::Other
    }
}

type Waiters = HashMap<SocketAddr, Vec<(u64, mpsc::Sender<Vec<u8>>)>>;

/// The sockets and the tracker exchanges waiting on them.
#[derive(Debug)]
pub(crate) struct UdpPort {
    v4: Option<Rc<DatagramSocket>>,
    v6: Option<Rc<DatagramSocket>>,
    port: u16,
    waiters: RefCell<Waiters>,
    waiting: Cell<usize>,
    next_exchange: Cell<u64>,
}

/// IPv4 addresses that arrive mapped into IPv6 are handled as IPv4.
pub(crate) fn unmap(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

impl UdpPort {
    /// Binds UDP on the TCP listener's address and port: both families for an unspecified
    /// IPv6 address (`[::]`), else the one given.
    pub(crate) fn bind(listen: SocketAddr) -> std::io::Result<Self> {
        let port = listen.port();
        let (v4, v6) = match listen.ip() {
            IpAddr::V6(ip) if ip.is_unspecified() => {
                let v4 = open(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port))
                    .inspect_err(|error| tracing::warn!(port, %error, "no IPv4 UDP socket"))
                    .ok();
                let v6 = open(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port));
                match (v4, v6) {
                    (v4, Ok(v6)) => (v4, Some(v6)),
                    (Some(v4), Err(_)) => (Some(v4), None),
                    (None, Err(error)) => return Err(error),
                }
            }
            IpAddr::V4(_) => (Some(open(listen)?), None),
            IpAddr::V6(_) => (None, Some(open(listen)?)),
        };
        Ok(Self {
            v4: v4.map(Rc::new),
            v6: v6.map(Rc::new),
            port,
            waiters: RefCell::new(HashMap::new()),
            waiting: Cell::new(0),
            next_exchange: Cell::new(0),
        })
    }

    /// The port number (the TCP listener's).
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn has_v4(&self) -> bool {
        self.v4.is_some()
    }

    pub(crate) fn has_v6(&self) -> bool {
        self.v6.is_some()
    }

    /// The sockets, to read from.
    pub(crate) fn sockets(&self) -> Vec<Rc<DatagramSocket>> {
        self.v4.iter().chain(&self.v6).cloned().collect()
    }

    /// The socket of `to`'s family.
    fn socket_for(&self, to: SocketAddr) -> std::io::Result<&DatagramSocket> {
        let socket = if to.is_ipv4() { &self.v4 } else { &self.v6 };
        socket.as_deref().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::AddrNotAvailable,
                "no socket of that address family",
            )
        })
    }

    /// Sends on the socket of `to`'s family.
    pub(crate) async fn send_to(&self, datagram: &[u8], to: SocketAddr) -> std::io::Result<()> {
        self.socket_for(to)?.send_to(datagram, to).await
    }

    /// Most datagrams to one address [`try_send_batch`](Self::try_send_batch) takes at once.
    pub(crate) fn max_batch(&self, to: SocketAddr) -> usize {
        self.socket_for(to).map_or(1, DatagramSocket::max_segments)
    }

    /// Sends datagrams of `segment` bytes (the last may be shorter) to `to` in one go, on the
    /// socket of `to`'s family, if it takes them now (uTP: datagrams the socket cannot take
    /// are as good as lost, and sent again).
    pub(crate) fn try_send_batch(
        &self,
        to: SocketAddr,
        datagrams: &[u8],
        segment: usize,
    ) -> std::io::Result<()> {
        self.socket_for(to)?.try_send(to, datagrams, segment)
    }

    /// Gives a datagram that is not KRPC to the tracker exchanges waiting on `from`; `false`
    /// if none waits.
    pub(crate) fn deliver(&self, from: SocketAddr, datagram: &[u8]) -> bool {
        let waiters = self.waiters.borrow();
        let Some(exchanges) = waiters.get(&from) else {
            return false;
        };
        for (_, sender) in exchanges {
            // A full backlog drops the datagram, as a full socket buffer would.
            let _ = sender.try_send(datagram.to_vec());
        }
        true
    }

    /// Starts an exchange with the tracker at `addr`: what it sends comes back through the
    /// exchange until it is dropped. `None` when too many wait already.
    pub(crate) fn exchange(self: &Rc<Self>, addr: SocketAddr) -> Option<TrackerExchange> {
        if self.waiting.get() >= MAX_EXCHANGES {
            return None;
        }
        let id = self.next_exchange.get();
        self.next_exchange.set(id + 1);
        let (sender, receiver) = mpsc::channel(EXCHANGE_BACKLOG);
        self.waiters
            .borrow_mut()
            .entry(addr)
            .or_default()
            .push((id, sender));
        self.waiting.set(self.waiting.get() + 1);
        Some(TrackerExchange {
            port: self.clone(),
            addr,
            id,
            receiver,
        })
    }
}

/// A UDP socket on `addr` for the shared port, dual-stack off for IPv6 (the IPv4 socket takes
/// IPv4).
fn open(addr: SocketAddr) -> std::io::Result<DatagramSocket> {
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    let fd = rustix::net::socket_with(family, SocketType::DGRAM, flags, Some(ipproto::UDP))?;
    if addr.is_ipv6() {
        sockopt::set_ipv6_v6only(&fd, true)?;
    }
    // uTP moves bulk data through these sockets: room for a burst of a few megabytes each way
    // (the kernel caps it at `rmem_max` / `wmem_max`; failing that, its defaults stand).
    let _ = sockopt::set_socket_recv_buffer_size(&fd, SOCKET_BUFFER);
    let _ = sockopt::set_socket_send_buffer_size(&fd, SOCKET_BUFFER);
    rustix::net::bind(&fd, &addr)?;
    DatagramSocket::new(UdpSocket::from_std(std::net::UdpSocket::from(fd))?)
}

/// One tracker exchange on the shared port.
#[derive(Debug)]
pub(crate) struct TrackerExchange {
    port: Rc<UdpPort>,
    addr: SocketAddr,
    id: u64,
    receiver: mpsc::Receiver<Vec<u8>>,
}

impl UdpTransport for TrackerExchange {
    async fn send(&mut self, packet: &[u8]) -> std::io::Result<()> {
        self.port.send_to(packet, self.addr).await
    }

    async fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(datagram) = self.receiver.recv().await else {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        };
        let len = datagram.len().min(buf.len());
        buf[..len].copy_from_slice(&datagram[..len]);
        Ok(len)
    }
}

impl Drop for TrackerExchange {
    fn drop(&mut self) {
        let mut waiters = self.port.waiters.borrow_mut();
        if let Some(exchanges) = waiters.get_mut(&self.addr) {
            exchanges.retain(|(id, _)| *id != self.id);
            if exchanges.is_empty() {
                waiters.remove(&self.addr);
            }
        }
        self.port.waiting.set(self.port.waiting.get() - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn krpc_is_told_from_tracker_answers() {
        assert_eq!(classify(b"d1:y1:qe"), Kind::Krpc);
        let mut syn = [0u8; 20];
        syn[0] = 0x41;
        assert_eq!(classify(&syn), Kind::Utp);
        assert_eq!(classify(&[0, 0, 0, 1, 0, 0, 0, 9]), Kind::Other);
        assert_eq!(classify(b"d"), Kind::Other);
        assert_eq!(classify(b""), Kind::Other);
        assert_eq!(
            unmap(
                "[::ffff:1.2.3.4]:5"
                    .parse()
                    .unwrap_or_else(|_| unreachable!())
            ),
            "1.2.3.4:5".parse().unwrap_or_else(|_| unreachable!())
        );
    }
}
