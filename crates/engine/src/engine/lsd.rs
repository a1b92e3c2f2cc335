//! The engine's side of local service discovery (BEP 14): a multicast socket per address family
//! on port 6771 (shared with other clients on the host), driven by the sans-IO [`Lsd`].

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use rustix::net::{AddressFamily, SocketFlags, SocketType, ipproto, sockopt};
use tokio::net::UdpSocket;

use super::Engine;
use crate::core;
use crate::lsd::{Found, GROUP_V4, GROUP_V6, Lsd, MAX_DATAGRAM};

/// How often each torrent is announced again (libtorrent's `local_service_announce_interval`).
const INTERVAL: Duration = Duration::from_secs(5 * 60);
/// How often the list of torrents to announce is looked at.
const RESCAN: Duration = Duration::from_secs(1);

/// Starts discovery: nothing happens (one log line) where no multicast socket opens.
pub(super) fn start(engine: &Rc<Engine>) {
    let sockets: Vec<(Rc<UdpSocket>, SocketAddr)> = [GROUP_V4, GROUP_V6]
        .into_iter()
        .filter_map(|group| match open(group) {
            Ok(socket) => Some((Rc::new(socket), group)),
            Err(error) => {
                tracing::debug!(%group, %error, "no local service discovery on this group");
                None
            }
        })
        .collect();
    if sockets.is_empty() {
        tracing::warn!("local service discovery unavailable: no multicast socket opened");
        return;
    }
    let seed = engine.shared.session.borrow_mut().torrent_seed();
    let lsd = Rc::new(RefCell::new(Lsd::new(
        engine.listen_port,
        seed,
        INTERVAL,
        Instant::now(),
    )));
    for (socket, _) in &sockets {
        tokio::task::spawn_local(listen(engine.clone(), lsd.clone(), socket.clone()));
    }
    tokio::task::spawn_local(announce(engine.clone(), lsd, sockets));
}

/// A UDP socket bound to the group itself (so it hears only datagrams sent to the group, not
/// unicast from anywhere to port 6771), a member of the group on the default interface, that
/// other sockets on the host may share, and that hears our own announces (other engines on
/// this host do too).
fn open(group: SocketAddr) -> std::io::Result<UdpSocket> {
    let family = if group.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    let fd = rustix::net::socket_with(family, SocketType::DGRAM, flags, Some(ipproto::UDP))?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    sockopt::set_socket_reuseport(&fd, true)?;
    match group.ip() {
        IpAddr::V4(ip) => {
            rustix::net::bind(&fd, &group)?;
            sockopt::set_ip_add_membership(&fd, &ip, &Ipv4Addr::UNSPECIFIED)?;
            sockopt::set_ip_multicast_ttl(&fd, 1)?;
            sockopt::set_ip_multicast_loop(&fd, true)?;
        }
        IpAddr::V6(ip) => {
            sockopt::set_ipv6_v6only(&fd, true)?;
            rustix::net::bind(&fd, &group)?;
            sockopt::set_ipv6_add_membership(&fd, &ip, 0)?;
            sockopt::set_ipv6_multicast_hops(&fd, 1)?;
            sockopt::set_ipv6_multicast_loop(&fd, true)?;
        }
    }
    UdpSocket::from_std(std::net::UdpSocket::from(fd))
}

/// Hears announces on one socket and hands the peers they name to their torrents.
async fn listen(engine: Rc<Engine>, lsd: Rc<RefCell<Lsd>>, socket: Rc<UdpSocket>) {
    // One byte more than an announce may be, so that a longer datagram is seen as such.
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    while !engine.closing.get() {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(error) => {
                tracing::debug!(%error, "local service discovery receive failed");
                tokio::time::sleep(RESCAN).await;
                continue;
            }
        };
        let heard = lsd
            .borrow_mut()
            .on_datagram(from, &buf[..len], Instant::now());
        match heard {
            Ok(found) => found.into_iter().for_each(|found| add_peer(&engine, found)),
            Err(error) => tracing::trace!(%from, %error, "not a local service announce"),
        }
    }
}

fn add_peer(engine: &Engine, found: Found) {
    if let Some(torrent) = engine.torrent_by_hash(found.info_hash) {
        tracing::debug!(peer = %found.peer, id = %torrent.id, "peer found by local service discovery");
        torrent.command(core::Command::AddPeers(vec![found.peer]));
    }
}

/// Announces the torrents that may be (not private, not paused) as they come and when due.
async fn announce(
    engine: Rc<Engine>,
    lsd: Rc<RefCell<Lsd>>,
    sockets: Vec<(Rc<UdpSocket>, SocketAddr)>,
) {
    while !engine.closing.get() {
        let now = Instant::now();
        let hashes: Vec<_> = engine.discoverable().iter().map(|t| t.info_hash).collect();
        lsd.borrow_mut().set_torrents(hashes, now);
        let next = lsd.borrow_mut().poll_announce(now);
        if let Some(announce) = next {
            for (socket, group) in &sockets {
                if let Err(error) = socket.send_to(&announce.encode(*group), group).await {
                    tracing::debug!(%group, %error, "local service announce not sent");
                }
            }
        }
        let wake = lsd
            .borrow()
            .poll_timeout()
            .map_or(now + RESCAN, |at| at.clamp(now, now + RESCAN));
        tokio::time::sleep_until(wake.into()).await;
    }
}
