//! Engine-wide policy, sans I/O: admission of connections across torrents, the budget of
//! incoming handshakes (in all and per IP) and of outgoing dials, the global rate limits, which
//! info-hashes and download roots are taken, and the seeds of each torrent's randomness. The
//! shell asks before it acts and reports when things end; nothing here touches a socket.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use cratetorrent_metainfo::InfoHash;
use cratetorrent_wire::mse::req2_hash;

use crate::conf::Conf;
use crate::peer_addr::limited_ip;
use crate::rate::TokenBucket;
use crate::{TorrentError, TorrentId};

/// An incoming connection's place among those handshaking; give it back with
/// [`Session::end_handshake`].
#[derive(Debug)]
#[must_use]
pub(crate) struct HandshakeTicket {
    ip: Option<IpAddr>,
}

/// The engine's shared limits and registries.
#[derive(Debug)]
pub(crate) struct Session {
    max_connections: usize,
    connections: usize,
    max_half_open: usize,
    half_open: usize,
    /// Dials waiting for a half-open slot, oldest first (each torrent counts its own as
    /// connecting, so this is bounded by the torrents' connection limits).
    dials: VecDeque<(TorrentId, SocketAddr)>,
    handshaking: usize,
    max_handshaking: usize,
    max_handshaking_per_ip: usize,
    /// At most `max_handshaking` entries: one is removed when its count drops to zero.
    handshaking_per_ip: HashMap<IpAddr, usize>,
    download: TokenBucket,
    upload: TokenBucket,
    /// Torrents being checked or running, by info-hash.
    info_hashes: HashMap<InfoHash, TorrentId>,
    /// The same info-hashes by their MSE `req2_hash`, which an encrypted handshake names its
    /// torrent by.
    hidden: HashMap<[u8; 20], InfoHash>,
    /// The root (first path component) each torrent takes in the download directory, from
    /// when it is added until its storage is closed (and its files deleted, if asked).
    roots: HashMap<String, TorrentId>,
    rng: fastrand::Rng,
}

impl Session {
    pub(crate) fn new(conf: &Conf, now: Instant) -> Self {
        Self {
            max_connections: conf.max_connections,
            connections: 0,
            max_half_open: conf.max_half_open.max(1),
            half_open: 0,
            dials: VecDeque::new(),
            handshaking: 0,
            max_handshaking: conf.max_handshaking,
            max_handshaking_per_ip: conf.max_handshaking_per_ip,
            handshaking_per_ip: HashMap::new(),
            download: TokenBucket::new(conf.download_rate_limit, now),
            upload: TokenBucket::new(conf.upload_rate_limit, now),
            info_hashes: HashMap::new(),
            hidden: HashMap::new(),
            roots: HashMap::new(),
            rng: conf
                .rng_seed
                .map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed),
        }
    }

    /// Takes `info_hash` and `root` (`None` until a magnet link's metadata names it) for
    /// torrent `id`, unless another torrent has either.
    pub(crate) fn add_torrent(
        &mut self,
        id: TorrentId,
        info_hash: InfoHash,
        root: Option<String>,
    ) -> Result<(), TorrentError> {
        if self.info_hashes.contains_key(&info_hash) {
            return Err(TorrentError::Duplicate(info_hash));
        }
        if let Some(root) = root {
            self.take_root(id, root)?;
        }
        self.info_hashes.insert(info_hash, id);
        self.hidden.insert(req2_hash(&info_hash), info_hash);
        Ok(())
    }

    /// Takes `root` in the download directory for torrent `id`, unless another has it.
    pub(crate) fn take_root(&mut self, id: TorrentId, root: String) -> Result<(), TorrentError> {
        match self.roots.get(&root) {
            Some(&other) if other != id => Err(TorrentError::SameRoot { root, other }),
            _ => {
                self.roots.insert(root, id);
                Ok(())
            }
        }
    }

    /// The torrent added with `info_hash` (checking or running).
    pub(crate) fn torrent_of(&self, info_hash: InfoHash) -> Option<TorrentId> {
        self.info_hashes.get(&info_hash).copied()
    }

    /// The info-hash of a torrent of ours that an encrypted handshake names by `hidden`.
    pub(crate) fn info_hash_hidden_as(&self, hidden: &[u8; 20]) -> Option<InfoHash> {
        self.hidden.get(hidden).copied()
    }

    /// The torrent no longer takes peers for `info_hash` (it is being removed).
    pub(crate) fn release_info_hash(&mut self, info_hash: InfoHash) {
        self.info_hashes.remove(&info_hash);
        self.hidden.remove(&req2_hash(&info_hash));
    }

    /// Torrent `id` is gone, its files closed: its info-hash and root are free.
    pub(crate) fn remove_torrent(&mut self, id: TorrentId) {
        self.info_hashes.retain(|_, owner| *owner != id);
        let info_hashes = &self.info_hashes;
        self.hidden
            .retain(|_, info_hash| info_hashes.contains_key(info_hash));
        self.roots.retain(|_, owner| *owner != id);
    }

    /// Randomness for an encrypted handshake's key and pads, from the session's seeded
    /// generator.
    pub(crate) fn entropy(&mut self) -> [u8; 32] {
        let mut bytes = [0u8; 32];
        self.rng.fill(&mut bytes);
        bytes
    }

    /// The seed of a new torrent's randomness.
    pub(crate) fn torrent_seed(&mut self) -> u64 {
        self.rng.u64(..)
    }

    /// Whether another connection may be registered.
    pub(crate) fn has_room(&self) -> bool {
        self.connections < self.max_connections
    }

    pub(crate) fn connection_opened(&mut self) {
        self.connections += 1;
    }

    pub(crate) fn connection_closed(&mut self) {
        self.connections = self.connections.saturating_sub(1);
    }

    /// A place for an incoming connection to handshake in, unless too many are (in all, or
    /// from its IP, loopback exempt); slow handshakes (slowloris) cannot pile up past this.
    pub(crate) fn begin_handshake(&mut self, addr: SocketAddr) -> Option<HandshakeTicket> {
        if self.handshaking >= self.max_handshaking {
            return None;
        }
        let ip = limited_ip(addr);
        if let Some(ip) = ip {
            let count = self.handshaking_per_ip.entry(ip).or_insert(0);
            if *count >= self.max_handshaking_per_ip {
                return None;
            }
            *count += 1;
        }
        self.handshaking += 1;
        Some(HandshakeTicket { ip })
    }

    pub(crate) fn end_handshake(&mut self, ticket: HandshakeTicket) {
        self.handshaking = self.handshaking.saturating_sub(1);
        if let Some(ip) = ticket.ip
            && let Some(count) = self.handshaking_per_ip.get_mut(&ip)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.handshaking_per_ip.remove(&ip);
            }
        }
    }

    /// A torrent wants to dial `addr`: true to start now, false when it waits for a
    /// half-open slot (it comes back from [`Session::dial_ended`]).
    pub(crate) fn dial(&mut self, torrent: TorrentId, addr: SocketAddr) -> bool {
        if self.half_open < self.max_half_open {
            self.half_open += 1;
            true
        } else {
            self.dials.push_back((torrent, addr));
            false
        }
    }

    /// A dial ended (connected or not); returns the waiting dial to start in its slot.
    pub(crate) fn dial_ended(&mut self) -> Option<(TorrentId, SocketAddr)> {
        self.half_open = self.half_open.saturating_sub(1);
        let next = self.dials.pop_front()?;
        self.half_open += 1;
        Some(next)
    }

    /// Charges `bytes` received to the global limit; returns how long to wait.
    pub(crate) fn charge_download(&mut self, bytes: u64, now: Instant) -> Duration {
        self.download.consume(bytes, now)
    }

    /// Charges `bytes` sent to the global limit; returns how long to wait.
    pub(crate) fn charge_upload(&mut self, bytes: u64, now: Instant) -> Duration {
        self.upload.consume(bytes, now)
    }

    /// The most bytes worth writing at once under the global upload limit.
    pub(crate) fn upload_batch(&self) -> Option<u64> {
        self.upload.batch_bytes()
    }

    pub(crate) fn set_limits(&mut self, limits: crate::RateLimits) {
        self.download.set_rate(limits.download);
        self.upload.set_rate(limits.upload);
    }

    /// Connections registered, and incoming ones still handshaking.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.connections, self.handshaking)
    }
}

/// The name a torrent takes in the download directory: the first component of its paths (the
/// torrent's name, checked by the metainfo parser).
pub(crate) fn root_of(metainfo: &cratetorrent_metainfo::Metainfo) -> String {
    metainfo
        .files()
        .first()
        .and_then(|file| file.components().first())
        .cloned()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const MAX_HANDSHAKING: usize = 64;
    const MAX_HANDSHAKING_PER_IP: usize = 4;

    fn session() -> Session {
        let mut conf = Conf::new("/nonexistent");
        conf.max_half_open = 2;
        conf.rng_seed = Some(7);
        Session::new(&conf, Instant::now())
    }

    #[test]
    fn one_ip_cannot_take_every_handshake_slot() {
        let mut session = session();
        let host: SocketAddr = "10.0.0.1:40000".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:40001".parse().unwrap();
        let mut tickets: Vec<HandshakeTicket> = (0..MAX_HANDSHAKING)
            .filter_map(|_| session.begin_handshake(host))
            .collect();
        assert_eq!(tickets.len(), MAX_HANDSHAKING_PER_IP);
        assert!(session.begin_handshake(mapped).is_none(), "same host");
        // Other hosts still get in, and loopback (local swarms) is not limited.
        let other: SocketAddr = "[2001:db8::1]:40000".parse().unwrap();
        tickets.extend(session.begin_handshake(other));
        // Its /64 counts as one address: four more from it, then none.
        let same_net = (2..8).filter_map(|n| {
            let addr: SocketAddr = format!("[2001:db8::{n}]:40000").parse().unwrap();
            session.begin_handshake(addr)
        });
        let taken: Vec<HandshakeTicket> = same_net.collect();
        assert_eq!(
            taken.len(),
            MAX_HANDSHAKING_PER_IP - 1,
            "one /64, one address"
        );
        tickets.extend(taken);
        let local: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        tickets.extend((0..10).filter_map(|_| session.begin_handshake(local)));
        assert_eq!(tickets.len(), 2 * MAX_HANDSHAKING_PER_IP + 10);
        for ticket in tickets {
            session.end_handshake(ticket);
        }
        assert_eq!(session.counts().1, 0);
        assert!(session.handshaking_per_ip.is_empty());
        assert!(session.begin_handshake(host).is_some(), "freed");
    }

    #[test]
    fn dials_wait_for_a_half_open_slot_in_order() {
        let mut session = session();
        let addr = |n: u16| SocketAddr::from(([10, 0, 0, 1], n));
        assert!(session.dial(TorrentId(1), addr(1)));
        assert!(session.dial(TorrentId(2), addr(2)));
        assert!(!session.dial(TorrentId(1), addr(3)));
        assert!(!session.dial(TorrentId(2), addr(4)));
        assert_eq!(session.dial_ended(), Some((TorrentId(1), addr(3))));
        assert_eq!(session.dial_ended(), Some((TorrentId(2), addr(4))));
        assert_eq!(session.dial_ended(), None);
        assert_eq!(session.dial_ended(), None);
        assert!(session.dial(TorrentId(1), addr(5)), "both slots free again");
    }

    #[test]
    fn an_info_hash_or_a_root_is_taken_once() {
        let mut session = session();
        let hash = InfoHash::new([1; 20]);
        let root = |name: &str| Some(name.to_string());
        session.add_torrent(TorrentId(1), hash, root("a")).unwrap();
        assert!(matches!(
            session.add_torrent(TorrentId(2), hash, root("b")),
            Err(TorrentError::Duplicate(_))
        ));
        assert!(matches!(
            session.add_torrent(TorrentId(2), InfoHash::new([2; 20]), root("a")),
            Err(TorrentError::SameRoot { .. })
        ));
        // A magnet link's root is taken once its metadata names it.
        session
            .add_torrent(TorrentId(3), InfoHash::new([3; 20]), None)
            .unwrap();
        assert!(matches!(
            session.take_root(TorrentId(3), "a".into()),
            Err(TorrentError::SameRoot { .. })
        ));
        session.take_root(TorrentId(3), "c".into()).unwrap();
        session.remove_torrent(TorrentId(1));
        session.add_torrent(TorrentId(2), hash, root("a")).unwrap();
    }

    #[test]
    fn torrent_seeds_follow_the_engine_seed() {
        let seeds = |s: &mut Session| (s.torrent_seed(), s.torrent_seed());
        assert_eq!(seeds(&mut session()), seeds(&mut session()));
    }
}
