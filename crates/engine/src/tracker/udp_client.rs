//! The UDP tracker client (BEP 15) on `tokio::net`: connection ids reused for a minute,
//! retransmission on the doubling schedule, transaction ids checked.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use super::udp::{
    MAX_PACKET, Response, announce_request, connect_request, parse_response, retransmit_timeout,
    scrape_request,
};
use super::{AnnounceRequest, AnnounceResponse, ScrapeStats, TrackerError};
use crate::conf::TrackerConf;
use crate::udp_port::{UdpPort, UdpTransport};
use cratetorrent_metainfo::InfoHash;

/// How long a connection id may be used (BEP 15: one minute).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// Cached connection ids kept at most; older ones are dropped past this.
const MAX_CACHED: usize = 256;

/// A UDP tracker client; it remembers connection ids per tracker address.
#[derive(Debug)]
pub struct UdpTracker {
    conf: TrackerConf,
    connections: Mutex<HashMap<SocketAddr, (u64, Instant)>>,
}

impl UdpTracker {
    /// A client with the retransmission schedule of `conf`.
    pub fn new(conf: &TrackerConf) -> Self {
        Self {
            conf: conf.clone(),
            connections: Mutex::new(HashMap::new()),
        }
    }

    /// Announces to the tracker at `url` (`udp://host:port[/path]`).
    pub async fn announce(
        &self,
        url: &str,
        request: &AnnounceRequest,
    ) -> Result<AnnounceResponse, TrackerError> {
        let (mut socket, addr) = self.socket(url).await?;
        self.announce_on(&mut socket, addr, request).await
    }

    /// Announces through the engine's shared UDP port (the tracker sees our listen port).
    pub(crate) async fn announce_via(
        &self,
        port: &Rc<UdpPort>,
        url: &str,
        request: &AnnounceRequest,
    ) -> Result<AnnounceResponse, TrackerError> {
        let addr = self.resolve(url).await?;
        let served = (addr.is_ipv4() && port.has_v4()) || (addr.is_ipv6() && port.has_v6());
        match port.exchange(addr).filter(|_| served) {
            Some(mut exchange) => self.announce_on(&mut exchange, addr, request).await,
            None => self.announce(url, request).await,
        }
    }

    async fn announce_on(
        &self,
        transport: &mut impl UdpTransport,
        addr: SocketAddr,
        request: &AnnounceRequest,
    ) -> Result<AnnounceResponse, TrackerError> {
        let reply = self
            .exchange(
                transport,
                addr,
                |connection, transaction| announce_request(connection, transaction, request),
                |r| matches!(r, Response::Announce(_)),
            )
            .await?;
        match reply {
            Response::Announce(reply) => Ok(reply),
            _ => Err(TrackerError::Malformed("answer is not an announce")),
        }
    }

    /// Scrapes up to 74 torrents; the counts come back in the order of `hashes`.
    pub async fn scrape(
        &self,
        url: &str,
        hashes: &[InfoHash],
    ) -> Result<Vec<ScrapeStats>, TrackerError> {
        let (mut socket, addr) = self.socket(url).await?;
        let reply = self
            .exchange(
                &mut socket,
                addr,
                |connection, transaction| scrape_request(connection, transaction, hashes),
                |r| matches!(r, Response::Scrape(_)),
            )
            .await?;
        match reply {
            Response::Scrape(stats) => Ok(stats),
            _ => Err(TrackerError::Malformed("answer is not a scrape")),
        }
    }

    async fn socket(&self, url: &str) -> Result<(UdpSocket, SocketAddr), TrackerError> {
        let addr = self.resolve(url).await?;
        let local = if addr.is_ipv4() {
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
        } else {
            SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
        };
        let socket = UdpSocket::bind(local).await?;
        // Connected: the kernel drops datagrams from anyone else and reports ICMP errors.
        socket.connect(addr).await?;
        Ok((socket, addr))
    }

    async fn resolve(&self, url: &str) -> Result<SocketAddr, TrackerError> {
        let (host, port) = parse_udp_url(url)?;
        let mut addrs = tokio::net::lookup_host((host, port))
            .await
            .map_err(|source| TrackerError::Resolve {
                host: host.to_owned(),
                source,
            })?;
        let addr = addrs.next().ok_or_else(|| TrackerError::Resolve {
            host: host.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
        })?;
        Ok(crate::udp_port::unmap(addr))
    }

    /// Gets a connection id (cached or fresh), then sends the request that `build` makes.
    async fn exchange(
        &self,
        socket: &mut impl UdpTransport,
        addr: SocketAddr,
        build: impl Fn(u64, u32) -> Vec<u8>,
        wanted: fn(&Response) -> bool,
    ) -> Result<Response, TrackerError> {
        let connection = match self.cached(addr) {
            Some(id) => id,
            None => {
                let transaction = transaction_id();
                let connect = connect_request(transaction);
                let is_connect = |r: &Response| matches!(r, Response::Connect(_));
                match self
                    .transact(socket, addr, &connect, transaction, is_connect)
                    .await?
                {
                    Response::Connect(id) => {
                        self.remember(addr, id);
                        id
                    }
                    _ => return Err(TrackerError::Malformed("answer is not a connect")),
                }
            }
        };
        let transaction = transaction_id();
        let reply = self
            .transact(
                socket,
                addr,
                &build(connection, transaction),
                transaction,
                wanted,
            )
            .await;
        if reply.is_err() {
            // The id may have expired on the tracker's side: get a fresh one next time.
            self.forget(addr);
        }
        reply
    }

    /// Sends `packet` and waits for the answer with `transaction` that `wanted` accepts (or a
    /// tracker error), retransmitting on the doubling schedule.
    async fn transact(
        &self,
        socket: &mut impl UdpTransport,
        addr: SocketAddr,
        packet: &[u8],
        transaction: u32,
        wanted: fn(&Response) -> bool,
    ) -> Result<Response, TrackerError> {
        let mut buf = vec![0u8; MAX_PACKET];
        for attempt in 0..=self.conf.udp_retries {
            socket.send(packet).await?;
            let deadline =
                tokio::time::Instant::now() + retransmit_timeout(self.conf.udp_timeout, attempt);
            loop {
                let received = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await;
                let Ok(received) = received else { break };
                let len = received?;
                match parse_response(&buf[..len], transaction, addr.is_ipv6()) {
                    Ok(Response::Error(message)) => return Err(TrackerError::Failure(message)),
                    Ok(response) if wanted(&response) => return Ok(response),
                    // A late answer to an earlier transaction, a truncated or garbled packet,
                    // or one spoofed from the tracker's address: none of them may end the
                    // wait, or anyone could abort our announces with a 3-byte datagram.
                    Ok(_) | Err(_) => {
                        tracing::debug!(%addr, len, "ignored a UDP tracker packet");
                    }
                }
            }
        }
        Err(TrackerError::Timeout)
    }

    fn cached(&self, addr: SocketAddr) -> Option<u64> {
        let connections = self.lock();
        let &(id, since) = connections.get(&addr)?;
        (since.elapsed() < CONNECTION_LIFETIME).then_some(id)
    }

    fn remember(&self, addr: SocketAddr, id: u64) {
        let mut connections = self.lock();
        if connections.len() >= MAX_CACHED {
            connections.retain(|_, (_, since)| since.elapsed() < CONNECTION_LIFETIME);
        }
        if connections.len() < MAX_CACHED {
            connections.insert(addr, (id, Instant::now()));
        }
    }

    fn forget(&self, addr: SocketAddr) {
        self.lock().remove(&addr);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, (u64, Instant)>> {
        // The map is valid after any panic: recover it.
        self.connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A transaction id from the operating system's randomness: on the engine's shared port (whose
/// number is public) it is all an off-path spoofer would have to guess.
fn transaction_id() -> u32 {
    let mut bytes = [0u8; 4];
    match rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty()) {
        Ok(4) => u32::from_ne_bytes(bytes),
        _ => fastrand::u32(..),
    }
}

/// Splits `udp://host:port[/path]` (with `[v6]` hosts) into host and port.
fn parse_udp_url(url: &str) -> Result<(&str, u16), TrackerError> {
    let invalid = || TrackerError::InvalidUrl(url.to_owned());
    let rest = url
        .strip_prefix("udp://")
        .ok_or_else(|| TrackerError::UnsupportedScheme(url.to_owned()))?;
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let (host, port) = authority.rsplit_once(':').ok_or_else(invalid)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port.parse().map_err(|_| invalid())?;
    if host.is_empty() || port == 0 {
        return Err(invalid());
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn udp_urls() {
        assert_eq!(
            parse_udp_url("udp://tracker.example:1337/announce").unwrap(),
            ("tracker.example", 1337)
        );
        assert_eq!(parse_udp_url("udp://[::1]:80").unwrap(), ("::1", 80));
        assert!(parse_udp_url("udp://host").is_err());
        assert!(parse_udp_url("udp://host:0").is_err());
        assert!(parse_udp_url("http://host:1").is_err());
    }

    #[tokio::test]
    async fn retransmits_ignores_strangers_and_surfaces_errors() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let url = format!("udp://{}", server.local_addr().unwrap());
        let conf = TrackerConf {
            udp_timeout: Duration::from_millis(100),
            udp_retries: 2,
            ..TrackerConf::default()
        };
        let tracker = UdpTracker::new(&conf);
        let request = AnnounceRequest::new(
            InfoHash::new([1; 20]),
            cratetorrent_wire::PeerId::new([2; 20]),
            1,
        );
        let serve = async {
            let mut buf = [0u8; 200];
            // Ignore the first connect (forcing a retransmission), then answer the second one
            // after a packet with a wrong transaction id.
            let (_, _) = server.recv_from(&mut buf).await.unwrap();
            let (_, from) = server.recv_from(&mut buf).await.unwrap();
            let transaction = [buf[12], buf[13], buf[14], buf[15]];
            let mut reply = vec![0, 0, 0, 0, 9, 9, 9, 9];
            reply.extend(5u64.to_be_bytes());
            server.send_to(&reply, from).await.unwrap();
            reply[4..8].copy_from_slice(&transaction);
            server.send_to(&reply, from).await.unwrap();
            let (len, from) = server.recv_from(&mut buf).await.unwrap();
            assert_eq!(len, 98);
            assert_eq!(&buf[..8], &5u64.to_be_bytes());
            let mut error = vec![0, 0, 0, 3];
            error.extend(&buf[12..16]);
            error.extend(b"go away");
            server.send_to(&error, from).await.unwrap();
        };
        let (result, ()) = tokio::join!(tracker.announce(&url, &request), serve);
        assert!(matches!(result, Err(TrackerError::Failure(m)) if m == "go away"));
        // Nobody answers at all: a timeout after 100 + 200 + 400 ms.
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let url = format!("udp://{}", silent.local_addr().unwrap());
        let started = Instant::now();
        let result = tracker.announce(&url, &request).await;
        assert!(matches!(result, Err(TrackerError::Timeout)), "{result:?}");
        assert!(started.elapsed() >= Duration::from_millis(700));
    }

    #[tokio::test]
    async fn short_and_garbled_datagrams_are_ignored_until_the_real_answer() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let url = format!("udp://{}", server.local_addr().unwrap());
        // One long wait, no retransmission: the announce succeeds only by skipping the noise.
        let conf = TrackerConf {
            udp_timeout: Duration::from_secs(20),
            udp_retries: 0,
            ..TrackerConf::default()
        };
        let tracker = UdpTracker::new(&conf);
        let request = AnnounceRequest::new(
            InfoHash::new([1; 20]),
            cratetorrent_wire::PeerId::new([2; 20]),
            1,
        );
        let serve = tokio::spawn(async move {
            let mut buf = [0u8; 200];
            let (_, from) = server.recv_from(&mut buf).await.unwrap();
            let transaction = [buf[12], buf[13], buf[14], buf[15]];
            // From the tracker's own address: 3 bytes, then a connect reply cut short.
            server.send_to(&[0, 0, 0], from).await.unwrap();
            let mut truncated = vec![0, 0, 0, 0];
            truncated.extend(transaction);
            truncated.extend([0, 0]);
            server.send_to(&truncated, from).await.unwrap();
            let mut reply = vec![0, 0, 0, 0];
            reply.extend(transaction);
            reply.extend(7u64.to_be_bytes());
            server.send_to(&reply, from).await.unwrap();
            let (len, from) = server.recv_from(&mut buf).await.unwrap();
            assert_eq!(len, 98);
            let transaction = [buf[12], buf[13], buf[14], buf[15]];
            server.send_to(&[1], from).await.unwrap();
            let mut reply = vec![0, 0, 0, 1];
            reply.extend(transaction);
            reply.extend([0, 0, 0, 60, 0, 0, 0, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0x1a, 0xe1]);
            server.send_to(&reply, from).await.unwrap();
        });
        let result =
            tokio::time::timeout(Duration::from_secs(10), tracker.announce(&url, &request)).await;
        if result.is_err() {
            serve.abort();
        }
        let reply = result.expect("announce timed out").unwrap();
        assert_eq!(
            reply.peers,
            ["10.0.0.1:6881".parse::<SocketAddr>().unwrap()]
        );
        // The server sent its last packet before the announce could end: it has finished.
        tokio::time::timeout(Duration::from_secs(5), serve)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn ipv6_trackers_answer_with_18_byte_peers() {
        let Ok(server) = UdpSocket::bind("[::1]:0").await else {
            return; // No IPv6 loopback here.
        };
        let url = format!("udp://{}", server.local_addr().unwrap());
        let tracker = UdpTracker::new(&TrackerConf::default());
        let request = AnnounceRequest::new(
            InfoHash::new([1; 20]),
            cratetorrent_wire::PeerId::new([2; 20]),
            1,
        );
        let serve = async {
            let mut buf = [0u8; 200];
            let (_, from) = server.recv_from(&mut buf).await.unwrap();
            let mut reply = vec![0, 0, 0, 0];
            reply.extend(&buf[12..16]);
            reply.extend(9u64.to_be_bytes());
            server.send_to(&reply, from).await.unwrap();
            let (_, from) = server.recv_from(&mut buf).await.unwrap();
            let mut reply = vec![0, 0, 0, 1];
            reply.extend(&buf[12..16]);
            reply.extend([0, 0, 0, 60, 0, 0, 0, 0, 0, 0, 0, 1]);
            reply.extend(std::net::Ipv6Addr::LOCALHOST.octets());
            reply.extend(6881u16.to_be_bytes());
            server.send_to(&reply, from).await.unwrap();
        };
        let (result, ()) = tokio::join!(tracker.announce(&url, &request), serve);
        let reply = result.unwrap();
        assert_eq!(reply.peers, ["[::1]:6881".parse::<SocketAddr>().unwrap()]);
        assert_eq!(reply.complete, Some(1));
    }
}
