//! How peers are told apart by address: the key a ban applies to, IPv4-mapped addresses
//! folded to IPv4, and the address the per-IP limits count (an IPv6 host's /64, loopback
//! exempt).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use cratetorrent_wire::PeerId;

/// Whom a ban applies to: an IPv4 address, an IPv6 host's /64 (hosts pick any address in
/// theirs), or on loopback (where every test peer shares one address) the peer id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum BanKey {
    V4(Ipv4Addr),
    /// The upper 64 bits of the address.
    V6Net(u64),
    Id(PeerId),
}

impl BanKey {
    pub(crate) fn of(addr: SocketAddr, id: PeerId) -> Self {
        Self::of_ip(addr.ip()).unwrap_or(Self::Id(id))
    }

    /// The key of an address, `None` on loopback (where bans go by peer id).
    pub(crate) fn of_ip(ip: IpAddr) -> Option<Self> {
        match ip.to_canonical() {
            ip if ip.is_loopback() => None,
            IpAddr::V4(v4) => Some(Self::V4(v4)),
            IpAddr::V6(v6) => Some(Self::V6Net((v6.to_bits() >> 64) as u64)),
        }
    }
}

/// `addr` with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack listener
/// reports for IPv4 peers) as the IPv4 address, so that one host compares equal however it
/// reached us.
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// The address that the per-IP limits count `addr` under: an IPv4 address, or an IPv6
/// address's /64; `None` on loopback, which is exempt (local test swarms put every peer on
/// 127.0.0.1).
pub(crate) fn limited_ip(addr: SocketAddr) -> Option<IpAddr> {
    match addr.ip().to_canonical() {
        ip if ip.is_loopback() => None,
        IpAddr::V4(v4) => Some(IpAddr::V4(v4)),
        // One host has a whole /64 to rotate through: it counts as one address.
        IpAddr::V6(v6) => Some(IpAddr::V6(std::net::Ipv6Addr::from_bits(
            v6.to_bits() & !u128::from(u64::MAX),
        ))),
    }
}

/// Whether an address someone gave us (a tracker, a peer's PEX) can be a peer: port 0,
/// unspecified (`0.0.0.0`, `::`), multicast and broadcast addresses cannot, and dialling them
/// would only waste a connection slot (or reach every host of a segment), IPv4-mapped forms
/// included.
pub(crate) fn can_dial(addr: SocketAddr) -> bool {
    let ip = addr.ip().to_canonical();
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    addr.port() != 0 && !ip.is_unspecified() && !ip.is_multicast() && !broadcast
}
