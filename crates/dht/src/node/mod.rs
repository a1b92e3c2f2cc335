//! The DHT node: one state machine for both address families. Datagrams, commands and time go
//! in; datagrams to send, events and the next deadline come out.

mod client;
mod server;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::dos::DosGuard;
use crate::id::NodeId;
use crate::krpc::Message;
use crate::lookup::{Lookup, Purpose};
use crate::routing::{K, RoutingTable};
use crate::state::SavedState;
use crate::storage::PeerStore;
use crate::token::Tokens;
use crate::vote::IpVotes;

/// Datagrams waiting to be sent at most (more are dropped and counted).
const MAX_TRANSMITS: usize = 1024;
/// Queries awaiting an answer at most; lookups wait for room.
const MAX_PENDING: usize = 1024;
/// Lookups running at once at most; more are refused until one ends.
const MAX_LOOKUPS: usize = 256;
/// Housekeeping period: pings, bucket refreshes, token rotation, expiry.
const TICK: Duration = Duration::from_secs(1);
/// The first retry of a bootstrap that found too few nodes; doubled up to `MAX_BOOTSTRAP_WAIT`.
const BOOTSTRAP_WAIT: Duration = Duration::from_secs(5);
const MAX_BOOTSTRAP_WAIT: Duration = Duration::from_secs(5 * 60);
/// Bootstrap and saved nodes asked by one bootstrap lookup at most.
const MAX_SEEDS: usize = 16;

/// A node's settings. Every field has a default (see [`Config::default`]).
#[derive(Debug, Clone)]
pub struct Config {
    /// Routers and nodes to start from (resolved by the caller). Default: none.
    pub bootstrap: Vec<SocketAddr>,
    /// The state saved by an earlier run: its id and nodes to ask first. Default: none.
    pub saved: Option<SavedState>,
    /// Whether we have an IPv4 socket. Default: true.
    pub ipv4: bool,
    /// Whether we have an IPv6 socket. Default: false.
    pub ipv6: bool,
    /// BEP 43: answer no queries and ask others not to add us. Default: false.
    pub read_only: bool,
    /// BEP 42: ignore nodes whose id does not match their address (local ones exempt).
    /// Default: false (as libtorrent); verified nodes are preferred either way.
    pub enforce_node_id: bool,
    /// One node per IP in tables and lookups, one per /24 or /64 in a bucket. Default: true.
    pub restrict_ips: bool,
    /// Queries in flight per lookup (α). Default: 4.
    pub alpha: usize,
    /// A query unanswered this long gives its lookup slot away. Default: 1 s.
    pub slow_after: Duration,
    /// A query unanswered this long has failed. Default: 4 s.
    pub query_timeout: Duration,
    /// Torrents we store announced peers for. Default: 2,000.
    pub max_torrents: usize,
    /// Announced peers we store per torrent. Default: 500.
    pub max_peers_per_torrent: usize,
    /// Peers in one `get_peers` answer (also bounded by the datagram). Default: 100.
    pub max_peers_reply: usize,
    /// Messages one address may send in 10 s before we ignore it for 5 minutes; 0 for no limit.
    /// Default: 50.
    pub rate_limit: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bootstrap: Vec::new(),
            saved: None,
            ipv4: true,
            ipv6: false,
            read_only: false,
            enforce_node_id: false,
            restrict_ips: true,
            alpha: 4,
            slow_after: Duration::from_secs(1),
            query_timeout: Duration::from_secs(4),
            max_torrents: 2000,
            max_peers_per_torrent: 500,
            max_peers_reply: 100,
            rate_limit: 50,
        }
    }
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub to: SocketAddr,
    /// The bytes.
    pub datagram: Vec<u8>,
}

/// What a lookup was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupKind {
    /// Bootstrap or table refresh.
    FindNode,
    /// [`Dht::get_peers`].
    GetPeers,
    /// [`Dht::announce`].
    Announce,
}

/// Something the node learnt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Peers of a torrent, from a lookup's answers (each reported once per lookup).
    Peers {
        /// The torrent.
        info_hash: NodeId,
        /// New peers.
        peers: Vec<SocketAddr>,
    },
    /// A lookup converged.
    LookupDone {
        /// Its target (the info-hash for peer lookups).
        target: NodeId,
        /// What it was for.
        kind: LookupKind,
        /// Queries it sent.
        queried: usize,
        /// Rounds to its closest nodes (hops from our own table).
        rounds: u8,
        /// `announce_peer` queries sent at its end.
        announced: usize,
    },
}

/// Counters for status lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Nodes in the IPv4 table.
    pub nodes_v4: usize,
    /// Nodes in the IPv6 table.
    pub nodes_v6: usize,
    /// Nodes waiting in replacement caches.
    pub replacements: usize,
    /// Lookups running.
    pub lookups: usize,
    /// Queries awaiting an answer.
    pub pending: usize,
    /// Torrents with peers stored here.
    pub torrents_stored: usize,
    /// Peers stored here.
    pub peers_stored: usize,
    /// Datagrams handed to [`Dht::handle_datagram`].
    pub received: u64,
    /// Datagrams produced by [`Dht::poll_transmit`].
    pub sent: u64,
    /// Datagrams that were not KRPC or broke its rules.
    pub malformed: u64,
    /// Queries dropped by the flood guard.
    pub throttled: u64,
    /// Datagrams dropped because the send queue was full.
    pub dropped: u64,
}

#[derive(Debug, Clone, Copy)]
enum Waiting {
    Lookup(u32),
    Ping,
    Announce,
}

#[derive(Debug)]
struct Pending {
    addr: SocketAddr,
    waiting: Waiting,
}

/// A DHT node. Feed it with [`Dht::handle_datagram`] and [`Dht::handle_timeout`]; drain
/// [`Dht::poll_transmit`] and [`Dht::poll_event`] after each call; call `handle_timeout` at
/// [`Dht::poll_timeout`].
pub struct Dht {
    config: Config,
    id: NodeId,
    rng: fastrand::Rng,
    v4: RoutingTable,
    v6: RoutingTable,
    tokens: Tokens,
    store: PeerStore,
    guard: DosGuard,
    votes: IpVotes,
    /// Ordered, so that housekeeping steps them in the same order on every run.
    lookups: BTreeMap<u32, Lookup>,
    next_lookup: u32,
    pending: HashMap<u32, Pending>,
    /// `pending`'s transactions by the address asked, for ICMP errors naming an address.
    pending_to: HashMap<SocketAddr, Vec<u32>>,
    slow_queue: VecDeque<(Instant, u32)>,
    timeout_queue: VecDeque<(Instant, u32)>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    next_tick: Instant,
    next_expiry: Instant,
    next_bootstrap: Instant,
    bootstrap_wait: Duration,
    /// Whether one of the bootstrap or saved nodes has answered (trivially, with none given).
    /// Until then the bootstrap is retried even if others have filled our table: a node
    /// known only to nodes that found it first would otherwise stay in their island.
    bootstrapped: bool,
    stats: Stats,
}

impl Dht {
    /// A node with `config`, its randomness from `seed` (the same seed and inputs give the same
    /// outputs). It starts by bootstrapping from the saved nodes and `config.bootstrap`.
    pub fn new(config: Config, now: Instant, seed: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let id = config
            .saved
            .as_ref()
            .map_or_else(|| NodeId::random(&mut rng), |s| s.id);
        let tokens = Tokens::new(&mut rng, now);
        let mut dht = Self {
            v4: RoutingTable::new(id, config.restrict_ips, now),
            v6: RoutingTable::new(id, config.restrict_ips, now),
            store: PeerStore::new(config.max_torrents, config.max_peers_per_torrent),
            guard: DosGuard::new(config.rate_limit),
            config,
            id,
            rng,
            tokens,
            votes: IpVotes::default(),
            lookups: BTreeMap::new(),
            next_lookup: 0,
            pending: HashMap::new(),
            pending_to: HashMap::new(),
            slow_queue: VecDeque::new(),
            timeout_queue: VecDeque::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_tick: now + TICK,
            next_expiry: now,
            next_bootstrap: now,
            bootstrap_wait: BOOTSTRAP_WAIT,
            bootstrapped: false,
            stats: Stats::default(),
        };
        dht.bootstrapped = dht.seeds().is_empty();
        dht.bootstrap(now);
        dht
    }

    /// Our node id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Our external address as elected from others' reports, if known.
    pub fn external_ip(&self) -> Option<IpAddr> {
        self.votes.elected()
    }

    /// Counters and sizes.
    pub fn stats(&self) -> Stats {
        Stats {
            nodes_v4: self.v4.len(),
            nodes_v6: self.v6.len(),
            replacements: self.v4.replacements() + self.v6.replacements(),
            lookups: self.lookups.len(),
            pending: self.pending.len(),
            torrents_stored: self.store.torrents(),
            peers_stored: self.store.peer_count(),
            throttled: self.guard.blocked(),
            ..self.stats
        }
    }

    /// What to save for the next run: our id and the nodes that answered us.
    pub fn saved_state(&self) -> SavedState {
        let mut nodes: Vec<SocketAddr> = self.v4.confirmed_nodes().iter().map(|n| n.addr).collect();
        nodes.extend(self.v6.confirmed_nodes().iter().map(|n| n.addr));
        SavedState { id: self.id, nodes }
    }

    /// Asks `addr` whether it is a node (BEP 5 `port` messages, user-given nodes); it enters the
    /// table if it answers.
    pub fn add_node(&mut self, addr: SocketAddr, now: Instant) {
        if self.family_enabled(addr) && !self.table(addr).contains(&addr) {
            self.ping(addr, now);
        }
    }

    /// Starts looking for peers of `info_hash`; they arrive as [`Event::Peers`].
    /// `false` if it could not start: 256 lookups run already (try again later).
    pub fn get_peers(&mut self, info_hash: NodeId, now: Instant) -> bool {
        self.start_lookup(info_hash, Purpose::GetPeers, &[], now)
    }

    /// Looks for peers of `info_hash` and then announces us to the closest nodes: on `port`, or
    /// with `None`, on the port our datagrams come from (BEP 5 `implied_port`).
    /// `false` if it could not start: 256 lookups run already (try again later).
    pub fn announce(&mut self, info_hash: NodeId, port: Option<u16>, now: Instant) -> bool {
        let purpose = Purpose::Announce {
            port: port.unwrap_or(0),
            implied_port: port.is_none(),
        };
        self.start_lookup(info_hash, purpose, &[], now)
    }

    /// Adds a router or node to bootstrap from (one resolved after the node started) and, until
    /// a bootstrap has succeeded, asks it at once.
    pub fn add_bootstrap(&mut self, addr: SocketAddr, now: Instant) {
        if !self.family_enabled(addr) || self.config.bootstrap.contains(&addr) {
            return;
        }
        self.config.bootstrap.push(addr);
        // A node that started with no seed at all counted itself bootstrapped: now it has one.
        if self.config.bootstrap.len() == 1
            && self
                .config
                .saved
                .as_ref()
                .is_none_or(|s| s.nodes.is_empty())
        {
            self.bootstrapped = false;
        }
        if self.bootstrapped {
            return;
        }
        let own = self.id;
        let running = self.lookups.iter_mut().find(|(_, l)| {
            l.target() == own && l.purpose() == Purpose::FindNode && l.is_v6() == addr.is_ipv6()
        });
        match running {
            Some((&id, lookup)) => {
                lookup.add_address(addr);
                self.step_lookup(id, now);
            }
            None => {
                self.start_lookup(own, Purpose::FindNode, &[addr], now);
            }
        }
    }

    /// Counts `voter`'s word that our address is `ip` (from BEP 10 `yourip`, or a DHT answer).
    /// Once elected, an address our id does not match gives us a new BEP 42 id.
    /// Only votes for an address of our main family count (IPv4 when we have it): one id
    /// cannot match both an IPv4 and an IPv6 address.
    pub fn vote_external_ip(&mut self, ip: IpAddr, voter: IpAddr, now: Instant) {
        if ip.is_ipv4() != self.config.ipv4 {
            return;
        }
        let Some(elected) = self.votes.vote(ip, voter) else {
            return;
        };
        if !self.id.is_valid_for(elected) {
            self.id = NodeId::secure(elected, &mut self.rng);
            self.v4 = self.v4.rebuilt(self.id, now);
            self.v6 = self.v6.rebuilt(self.id, now);
        }
    }

    /// Handles one datagram from `from` (anything not KRPC is counted and dropped).
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.stats.received += 1;
        if from.port() == 0 || !self.family_enabled(from) {
            return;
        }
        match Message::decode(datagram) {
            Ok(Message::Query(query)) => self.on_query(now, from, query),
            Ok(Message::Response(response)) => self.on_response(now, from, response),
            Ok(Message::Error(error)) => self.on_error(now, from, &error.transaction),
            Err(_) => self.stats.malformed += 1,
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Dht::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Instant {
        let mut at = self.next_tick;
        for queue in [&self.slow_queue, &self.timeout_queue] {
            if let Some(&(deadline, _)) = queue.front() {
                at = at.min(deadline);
            }
        }
        at
    }

    /// Expires queries and runs housekeeping due by `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, tx)) = self.slow_queue.front() {
            if at > now {
                break;
            }
            self.slow_queue.pop_front();
            if let Some(&Pending {
                addr,
                waiting: Waiting::Lookup(lookup),
            }) = self.pending.get(&tx)
            {
                if let Some(l) = self.lookups.get_mut(&lookup) {
                    l.slow(addr);
                }
                self.step_lookup(lookup, now);
            }
        }
        while let Some(&(at, tx)) = self.timeout_queue.front() {
            if at > now {
                break;
            }
            self.timeout_queue.pop_front();
            if let Some(pending) = self.remove_pending(tx) {
                self.query_failed(pending, now);
            }
        }
        if now >= self.next_tick {
            self.next_tick = now + TICK;
            self.tick(now);
        }
    }

    /// The network said `addr` cannot be reached (an ICMP host or port unreachable for a
    /// datagram sent to it): the queries waiting on it fail now, as if they had timed out.
    pub fn unreachable(&mut self, addr: SocketAddr, now: Instant) {
        let Some(transactions) = self.pending_to.remove(&addr) else {
            return;
        };
        for tx in transactions {
            if let Some(pending) = self.pending.remove(&tx) {
                self.query_failed(pending, now);
            }
        }
    }

    /// Tracks a query sent.
    fn add_pending(&mut self, tx: u32, pending: Pending) {
        self.pending_to.entry(pending.addr).or_default().push(tx);
        self.pending.insert(tx, pending);
    }

    /// Stops tracking a query (answered, failed or timed out).
    fn remove_pending(&mut self, tx: u32) -> Option<Pending> {
        let pending = self.pending.remove(&tx)?;
        if let Some(transactions) = self.pending_to.get_mut(&pending.addr) {
            transactions.retain(|t| *t != tx);
            if transactions.is_empty() {
                self.pending_to.remove(&pending.addr);
            }
        }
        Some(pending)
    }

    /// A query got no answer: its node failed once, and its lookup goes on without it.
    fn query_failed(&mut self, pending: Pending, now: Instant) {
        self.table_mut(pending.addr).failed(pending.addr);
        if let Waiting::Lookup(lookup) = pending.waiting {
            if let Some(l) = self.lookups.get_mut(&lookup) {
                l.failed(pending.addr);
            }
            self.step_lookup(lookup, now);
        }
    }

    fn tick(&mut self, now: Instant) {
        self.tokens.rotate_if_due(now, &mut self.rng);
        if now >= self.next_expiry {
            self.next_expiry = now + Duration::from_secs(60);
            self.store.expire(now);
        }
        for v6 in [false, true] {
            if !(if v6 {
                self.config.ipv6
            } else {
                self.config.ipv4
            }) {
                continue;
            }
            let table = if v6 { &mut self.v6 } else { &mut self.v4 };
            let pings = table.due_pings(now, 4);
            let refresh = if table.len() > 0 {
                table.refresh_target(now, &mut self.rng)
            } else {
                None
            };
            for addr in pings {
                self.ping(addr, now);
            }
            if let Some(target) = refresh {
                self.start_family_lookup(target, Purpose::FindNode, v6, &[], now);
            }
        }
        // Lookups that waited for room in the pending map.
        let waiting: Vec<u32> = self.lookups.keys().copied().collect();
        for lookup in waiting {
            self.step_lookup(lookup, now);
        }
        if now >= self.next_bootstrap && self.needs_bootstrap() {
            self.bootstrap(now);
        }
    }

    fn needs_bootstrap(&self) -> bool {
        !self.bootstrapped
            || (self.config.ipv4 && self.v4.len() < K)
            || (self.config.ipv6 && self.v6.len() < K)
    }

    /// The bootstrap routers and the nodes saved by the last run.
    fn seeds(&self) -> Vec<SocketAddr> {
        let mut seeds = self.config.bootstrap.clone();
        if let Some(saved) = &self.config.saved {
            seeds.extend(&saved.nodes);
        }
        seeds
    }

    /// A `find_node` for our own id from our table and up to 16 of the bootstrap and saved
    /// nodes (a different draw each time).
    fn bootstrap(&mut self, now: Instant) {
        self.next_bootstrap = now + self.bootstrap_wait;
        self.bootstrap_wait = (self.bootstrap_wait * 2).min(MAX_BOOTSTRAP_WAIT);
        let mut seeds = self.seeds();
        if seeds.len() > MAX_SEEDS {
            self.rng.shuffle(&mut seeds);
            seeds.truncate(MAX_SEEDS);
        }
        self.start_lookup(self.id, Purpose::FindNode, &seeds, now);
    }

    fn family_enabled(&self, addr: SocketAddr) -> bool {
        if addr.is_ipv4() {
            self.config.ipv4
        } else {
            self.config.ipv6
        }
    }

    fn table(&self, addr: SocketAddr) -> &RoutingTable {
        if addr.is_ipv4() { &self.v4 } else { &self.v6 }
    }

    fn table_mut(&mut self, addr: SocketAddr) -> &mut RoutingTable {
        if addr.is_ipv4() {
            &mut self.v4
        } else {
            &mut self.v6
        }
    }

    /// Queues a datagram; `false` if the queue is full and it was dropped.
    fn transmit(&mut self, to: SocketAddr, message: &Message) -> bool {
        if self.transmits.len() >= MAX_TRANSMITS {
            self.stats.dropped += 1;
            return false;
        }
        self.stats.sent += 1;
        self.transmits.push_back(Transmit {
            to,
            datagram: message.encode(),
        });
        true
    }
}

#[cfg(test)]
mod tests;
