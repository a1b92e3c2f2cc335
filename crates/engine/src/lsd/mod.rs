//! BEP 14 local service discovery, sans I/O: which torrents to announce to the local network
//! when, and which peers the announces we hear name. The engine's shell (`engine/lsd.rs`) owns
//! the multicast sockets and drives this.
//!
//! Each torrent is announced when it appears and every `interval` (5 minutes, as libtorrent)
//! after; announces go out at most one datagram per `min_gap` (1 s), each carrying up to 16
//! info-hashes. A host's announces are heard at most `MAX_HEARD_PER_MINUTE` times a minute and
//! everyone's `MAX_HEARD_TOTAL_PER_MINUTE`; only info-hashes of our own torrents are taken, and
//! our own datagrams (looped back by the multicast socket) are known by their cookie.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::{Duration, Instant};

use cratetorrent_metainfo::InfoHash;

mod message;

use message::MAX_HASHES;
pub(crate) use message::{Announce, LsdError, MAX_DATAGRAM};

/// The IPv4 multicast group and port of BEP 14.
pub(crate) const GROUP_V4: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(239, 192, 152, 143)), 6771);
/// The IPv6 group (site-local scope).
pub(crate) const GROUP_V6: SocketAddr = SocketAddr::new(
    IpAddr::V6(Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0xefc0, 0x0152, 0x0143)),
    6771,
);

/// Announces taken from one host (an IPv6 host's whole /64) a minute; more are ignored.
const MAX_HEARD_PER_MINUTE: u32 = 10;
/// Announces taken from everyone a minute: hosts that make up addresses share this.
const MAX_HEARD_TOTAL_PER_MINUTE: u32 = 600;
/// Hosts whose announces are counted in a minute (more are ignored until the next).
const MAX_HOSTS: usize = 1024;

/// Local service discovery for one engine.
pub(crate) struct Lsd {
    port: u16,
    cookie: String,
    interval: Duration,
    min_gap: Duration,
    /// Each announced torrent and when it is next due.
    torrents: BTreeMap<InfoHash, Instant>,
    next_send: Instant,
    /// Announces heard per host, and from everyone, in the current minute.
    heard: HashMap<IpAddr, u32>,
    heard_total: u32,
    window_start: Instant,
}

/// Peers an announce named for one of our torrents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) info_hash: InfoHash,
    pub(crate) peer: SocketAddr,
}

impl Lsd {
    /// An announcer for an engine accepting peers on `port`; `seed` makes its cookie.
    pub(crate) fn new(port: u16, seed: u64, interval: Duration, now: Instant) -> Self {
        Self {
            port,
            cookie: format!("{:08x}", fastrand::Rng::with_seed(seed).u32(..)),
            interval,
            min_gap: Duration::from_secs(1),
            torrents: BTreeMap::new(),
            next_send: now,
            heard: HashMap::new(),
            heard_total: 0,
            window_start: now,
        }
    }

    /// The torrents to announce now (those not private, not paused): new ones are due at once,
    /// gone ones are dropped.
    pub(crate) fn set_torrents(
        &mut self,
        hashes: impl IntoIterator<Item = InfoHash>,
        now: Instant,
    ) {
        let mut current = BTreeMap::new();
        for hash in hashes {
            let due = self.torrents.get(&hash).copied().unwrap_or(now);
            current.insert(hash, due);
        }
        self.torrents = current;
    }

    /// The next announce to send, if one is due and the gap since the last has passed.
    pub(crate) fn poll_announce(&mut self, now: Instant) -> Option<Announce> {
        if now < self.next_send {
            return None;
        }
        let due: Vec<InfoHash> = self
            .torrents
            .iter()
            .filter(|&(_, &at)| at <= now)
            .map(|(&hash, _)| hash)
            .take(MAX_HASHES)
            .collect();
        if due.is_empty() {
            return None;
        }
        for hash in &due {
            self.torrents.insert(*hash, now + self.interval);
        }
        self.next_send = now + self.min_gap;
        Some(Announce {
            port: self.port,
            info_hashes: due,
            cookie: Some(self.cookie.clone()),
        })
    }

    /// When [`Lsd::poll_announce`] next has something (`None`: nothing to announce).
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let due = self.torrents.values().min()?;
        Some((*due).max(self.next_send))
    }

    /// A datagram arrived on a multicast socket from `from`: the peers it names for our
    /// torrents (none for our own announces, a host over its rate, or a malformed datagram).
    pub(crate) fn on_datagram(
        &mut self,
        from: SocketAddr,
        datagram: &[u8],
        now: Instant,
    ) -> Result<Vec<Found>, LsdError> {
        let announce = Announce::decode(datagram)?;
        if announce.cookie.as_deref() == Some(self.cookie.as_str()) {
            return Ok(Vec::new());
        }
        if now.saturating_duration_since(self.window_start) >= Duration::from_secs(60) {
            self.heard.clear();
            self.heard_total = 0;
            self.window_start = now;
        }
        let host = crate::peer_addr::limited_ip(from).unwrap_or(from.ip());
        if self.heard_total >= MAX_HEARD_TOTAL_PER_MINUTE
            || (self.heard.len() >= MAX_HOSTS && !self.heard.contains_key(&host))
        {
            return Ok(Vec::new());
        }
        let heard = self.heard.entry(host).or_insert(0);
        if *heard >= MAX_HEARD_PER_MINUTE {
            return Ok(Vec::new());
        }
        *heard += 1;
        self.heard_total += 1;
        let peer = match from {
            // A link-local sender is reachable only through the interface it came on.
            SocketAddr::V6(v6) if v6.ip().to_ipv4_mapped().is_none() => {
                SocketAddr::V6(SocketAddrV6::new(*v6.ip(), announce.port, 0, v6.scope_id()))
            }
            _ => SocketAddr::new(crate::peer_addr::canonical(from).ip(), announce.port),
        };
        Ok(announce
            .info_hashes
            .into_iter()
            .filter(|hash| self.torrents.contains_key(hash))
            .map(|info_hash| Found { info_hash, peer })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(300);

    fn hash(n: u8) -> InfoHash {
        InfoHash::new([n; 20])
    }

    #[test]
    fn announces_new_torrents_at_once_then_every_interval_one_datagram_a_second() {
        let t0 = Instant::now();
        let mut lsd = Lsd::new(6881, 1, INTERVAL, t0);
        assert_eq!(lsd.poll_timeout(), None);
        lsd.set_torrents((0..20).map(hash), t0);
        let first = lsd.poll_announce(t0).unwrap();
        assert_eq!(first.port, 6881);
        assert_eq!(first.info_hashes.len(), MAX_HASHES);
        assert_eq!(lsd.poll_announce(t0), None, "a second apart");
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(lsd.poll_timeout(), Some(t1));
        assert_eq!(lsd.poll_announce(t1).unwrap().info_hashes.len(), 4);
        assert_eq!(lsd.poll_timeout(), Some(t0 + INTERVAL));
        lsd.set_torrents([hash(1), hash(99)], t1);
        assert_eq!(
            lsd.poll_announce(t1 + Duration::from_secs(1))
                .unwrap()
                .info_hashes,
            [hash(99)],
            "only the newcomer is due"
        );
        assert_eq!(lsd.poll_timeout(), Some(t0 + INTERVAL));
    }

    #[test]
    fn hears_peers_for_our_torrents_but_not_itself_nor_a_flood() {
        let now = Instant::now();
        let mut lsd = Lsd::new(6881, 1, INTERVAL, now);
        lsd.set_torrents([hash(1)], now);
        let ours = lsd.poll_announce(now).unwrap().encode(GROUP_V4);
        let from: SocketAddr = "[::ffff:198.18.0.2]:6771".parse().unwrap();
        assert_eq!(lsd.on_datagram(from, &ours, now), Ok(vec![]), "our own");
        let theirs = Announce {
            port: 7000,
            info_hashes: vec![hash(1), hash(2)],
            cookie: Some("other".into()),
        }
        .encode(GROUP_V4);
        let found = lsd.on_datagram(from, &theirs, now).unwrap();
        assert_eq!(
            found,
            [Found {
                info_hash: hash(1),
                peer: "198.18.0.2:7000".parse().unwrap(),
            }]
        );
        for _ in 1..MAX_HEARD_PER_MINUTE {
            assert_eq!(lsd.on_datagram(from, &theirs, now).unwrap().len(), 1);
        }
        assert!(lsd.on_datagram(from, &theirs, now).unwrap().is_empty());
        let later = now + Duration::from_secs(60);
        assert_eq!(lsd.on_datagram(from, &theirs, later).unwrap().len(), 1);
        assert!(lsd.on_datagram(from, b"junk", later).is_err());
        // Addresses made up inside one /64 are one host; made-up hosts share a total.
        let mut heard = 0;
        for i in 0..2000u32 {
            let v6 = SocketAddr::from((Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, i as u16), 6771));
            heard += lsd.on_datagram(v6, &theirs, later).unwrap().len();
        }
        assert_eq!(heard, MAX_HEARD_PER_MINUTE as usize);
        let mut heard = 0;
        for i in 0..2000u32 {
            let [_, _, a, b] = i.to_be_bytes();
            let v4 = SocketAddr::from(([10, 1, a, b], 6771));
            heard += lsd.on_datagram(v4, &theirs, later).unwrap().len();
        }
        assert_eq!(
            heard,
            (MAX_HEARD_TOTAL_PER_MINUTE - MAX_HEARD_PER_MINUTE - 1) as usize
        );
    }

    #[test]
    fn a_link_local_peer_keeps_its_interface() {
        let now = Instant::now();
        let mut lsd = Lsd::new(6881, 1, INTERVAL, now);
        lsd.set_torrents([hash(1)], now);
        let theirs = Announce {
            port: 7000,
            info_hashes: vec![hash(1)],
            cookie: None,
        }
        .encode(GROUP_V6);
        let from = SocketAddr::V6(SocketAddrV6::new("fe80::2".parse().unwrap(), 6771, 0, 3));
        let found = lsd.on_datagram(from, &theirs, now).unwrap();
        assert_eq!(
            found[0].peer,
            SocketAddr::V6(SocketAddrV6::new("fe80::2".parse().unwrap(), 7000, 0, 3))
        );
    }
}
