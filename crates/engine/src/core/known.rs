//! The addresses a torrent may dial: bounded, evicting the least useful address when full
//! instead of refusing new ones (a tracker reply of dead addresses must not shut out every
//! later peer), forgetting addresses that keep failing, and dialling oldest-ready first so
//! that no address waits behind ones that keep coming back.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::ops::Bound;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dial {
    Idle,
    Connecting,
    Connected,
}

#[derive(Debug, Clone)]
pub(super) struct KnownPeer {
    pub(super) dial: Dial,
    /// Consecutive failures (refused, timed out, rejected, or closed within a short time).
    pub(super) failures: u32,
    pub(super) next_attempt: Instant,
    /// When a tracker or the user last gave us the address, or a connection to it ended.
    pub(super) last_seen: Instant,
    /// A connection to it lasted: worth keeping over addresses never reached.
    pub(super) proven: bool,
    pub(super) banned: bool,
    pub(super) seed: bool,
}

impl KnownPeer {
    /// Eviction order, first evicted first: banned, then most failures, then never
    /// connected, then seen longest ago.
    fn rank(&self, addr: SocketAddr) -> Rank {
        (
            Reverse(self.banned),
            Reverse(self.failures),
            self.proven,
            self.last_seen,
            addr,
        )
    }
}

type Rank = (Reverse<bool>, Reverse<u32>, bool, Instant, SocketAddr);

/// Known addresses (canonical: IPv4-mapped IPv6 addresses are stored as IPv4). Only idle
/// addresses are indexed for eviction and dialling, so a connected or connecting peer is
/// never evicted; each change costs O(log n).
pub(super) struct KnownPeers {
    peers: HashMap<SocketAddr, KnownPeer>,
    eviction: BTreeSet<Rank>,
    /// Idle, unbanned addresses by the time they may next be dialled.
    queue: BTreeSet<(Instant, SocketAddr)>,
    /// Dials in progress to each IP.
    dialling: HashMap<IpAddr, u32>,
    connecting: usize,
    capacity: usize,
    max_failures: u32,
}

impl KnownPeers {
    /// Addresses known.
    pub(super) fn len(&self) -> usize {
        self.peers.len()
    }

    /// At most `capacity` addresses; an address is forgotten after `max_failures` consecutive
    /// failures (0: never).
    pub(super) fn new(capacity: usize, max_failures: u32) -> Self {
        Self {
            peers: HashMap::new(),
            eviction: BTreeSet::new(),
            queue: BTreeSet::new(),
            dialling: HashMap::new(),
            connecting: 0,
            capacity,
            max_failures,
        }
    }

    pub(super) fn get(&self, addr: &SocketAddr) -> Option<&KnownPeer> {
        self.peers.get(addr)
    }

    /// Dials in progress.
    pub(super) fn connecting(&self) -> usize {
        self.connecting
    }

    /// Dials in progress to `ip`.
    pub(super) fn dialling(&self, ip: IpAddr) -> u32 {
        self.dialling.get(&ip).copied().unwrap_or(0)
    }

    /// Adds `addr` (or refreshes it), evicting the least useful idle address when full.
    /// False when every address is connected or connecting and none can make room.
    pub(super) fn insert(&mut self, addr: SocketAddr, now: Instant) -> bool {
        if self.peers.contains_key(&addr) {
            self.update(addr, |known| known.last_seen = now);
            return true;
        }
        if self.peers.len() >= self.capacity {
            let Some(&worst) = self.eviction.first() else {
                return false;
            };
            self.remove(worst.4);
        }
        let known = KnownPeer {
            dial: Dial::Idle,
            failures: 0,
            next_attempt: now,
            last_seen: now,
            proven: false,
            banned: false,
            seed: false,
        };
        self.index(addr, &known);
        self.peers.insert(addr, known);
        true
    }

    /// The first idle address in dialling order after `after` (from the start if `None`) that
    /// may be dialled at `now`.
    pub(super) fn next_ready(
        &self,
        after: Option<(Instant, SocketAddr)>,
        now: Instant,
    ) -> Option<(Instant, SocketAddr)> {
        let next = match after {
            None => self.queue.first(),
            Some(key) => self
                .queue
                .range((Bound::Excluded(key), Bound::Unbounded))
                .next(),
        };
        next.copied().filter(|&(at, _)| at <= now)
    }

    /// Every known address (for a resume, which is rare).
    pub(super) fn addrs(&self) -> Vec<SocketAddr> {
        self.peers.keys().copied().collect()
    }

    /// Changes one address's state, keeping the indexes and dial counts right; an idle
    /// address that has failed `max_failures` times in a row is forgotten (not banned: a
    /// tracker may give it again).
    pub(super) fn update(&mut self, addr: SocketAddr, change: impl FnOnce(&mut KnownPeer)) {
        let Some(mut known) = self.peers.remove(&addr) else {
            return;
        };
        self.unindex(addr, &known);
        let was = known.dial;
        change(&mut known);
        if (was == Dial::Connecting) != (known.dial == Dial::Connecting) {
            let ip = addr.ip();
            if known.dial == Dial::Connecting {
                self.connecting += 1;
                *self.dialling.entry(ip).or_insert(0) += 1;
            } else {
                self.connecting = self.connecting.saturating_sub(1);
                if let Some(count) = self.dialling.get_mut(&ip) {
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        self.dialling.remove(&ip);
                    }
                }
            }
        }
        let dead = self.max_failures > 0
            && known.failures >= self.max_failures
            && known.dial == Dial::Idle
            && !known.banned;
        if dead {
            tracing::debug!(%addr, failures = known.failures, "forgetting peer address");
            return;
        }
        self.index(addr, &known);
        self.peers.insert(addr, known);
    }

    fn remove(&mut self, addr: SocketAddr) {
        // Only idle addresses are evicted, so no dial count changes.
        if let Some(known) = self.peers.remove(&addr) {
            self.unindex(addr, &known);
        }
    }

    fn index(&mut self, addr: SocketAddr, known: &KnownPeer) {
        if known.dial == Dial::Idle {
            self.eviction.insert(known.rank(addr));
            if !known.banned {
                self.queue.insert((known.next_attempt, addr));
            }
        }
    }

    fn unindex(&mut self, addr: SocketAddr, known: &KnownPeer) {
        self.eviction.remove(&known.rank(addr));
        self.queue.remove(&(known.next_attempt, addr));
    }
}
