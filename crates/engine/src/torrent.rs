//! The I/O shell around one torrent's [`Core`]: gives it what happens (bytes from peers,
//! storage events, time, commands) through its door, and performs what comes out of its polls
//! on sockets and storage. It owns the torrent's connections and tasks.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use cratetorrent_metainfo::{InfoHash, Metainfo};
use cratetorrent_storage::{Storage, StorageConfig, StorageEvent, WriteStatus};
use cratetorrent_wire::mse::{Cipher, CryptoMethods};
use cratetorrent_wire::{Handshake, PeerId};
use tokio::sync::Notify;

use crate::TorrentId;
use crate::alert::{Alert, AlertSender};
use crate::chunk_pool::ChunkCharge;
use crate::connection::{self, MAX_FRAMES_PER_WRITE, PeerHost};
use crate::core::{Action, AnnounceState, Command, Core, Handled, Input, PeerKey};
use crate::dht_node::DhtNode;
use crate::encryption::{Encryption, Offer};
use crate::net::{Net, PeerStream};
use crate::peer::Link;
use crate::rate::TokenBucket;
use crate::send_buffer::SendBuffer;
use crate::session::Session;
use crate::tracker::announcer::{self, Clients, Signals, Swarm};
use crate::transport::{Dialer, Transport};
use crate::utp_socket::UtpSocket;

mod tasks;
mod web_seeds;

pub(crate) use tasks::open_files;
use tasks::{dial, open_storage, storage_loop, timer_loop};

/// Engine-wide state shared by all torrents on the network thread.
pub(crate) struct Shared {
    pub(crate) alerts: AlertSender,
    pub(crate) our_id: PeerId,
    /// The engine-wide policy (limits, budgets, registries).
    pub(crate) session: RefCell<Session>,
    /// Running torrents.
    pub(crate) torrents: RefCell<HashMap<TorrentId, Rc<Torrent>>>,
    /// Tracker clients; `None` when they could not be set up (the error was logged).
    pub(crate) trackers: Option<Rc<Clients>>,
    /// The socket interface the engine runs on.
    pub(crate) net: Net,
    /// The DHT node, once it runs.
    pub(crate) dht: OnceCell<Rc<DhtNode>>,
    /// The UDP port our DHT node answers on, if it runs (sent in BEP 5 `port` messages).
    pub(crate) dht_port: Cell<Option<u16>>,
    /// Where torrents' files go, and how their storage runs (for a magnet link's torrent,
    /// whose storage opens once its metadata is here).
    pub(crate) download_dir: PathBuf,
    pub(crate) storage_conf: StorageConfig,
    /// Permits to open and check a torrent's files ([`Conf::checking_at_once`](crate::Conf)).
    pub(crate) checking: tokio::sync::Semaphore,
    /// Message stream encryption: the policy, and what an encrypted handshake may settle on.
    pub(crate) encryption: Encryption,
    pub(crate) encryption_levels: CryptoMethods,
    pub(crate) prefer_rc4: bool,
    /// The transports peer connections use, and the uTP socket once the UDP port is bound.
    pub(crate) transport: Transport,
    pub(crate) utp: OnceCell<Rc<UtpSocket>>,
    /// The HTTP(S) client web seeds share, made when the first one starts (`None`: it could
    /// not be set up, and the error was logged).
    pub(crate) web_seed_client: OnceCell<Option<crate::https::HttpsClient>>,
}

/// An open storage with its event channel and the doorbell that rings when events wait.
pub(crate) type OpenStorage = (Storage, Receiver<StorageEvent>, Arc<Notify>);

impl Shared {
    /// How to dial peers now.
    pub(crate) fn dialer(&self) -> Dialer {
        Dialer {
            net: self.net,
            utp: self.utp.get().cloned(),
            transport: self.transport,
        }
    }

    /// What an encrypted handshake offers now, with fresh (seeded) randomness.
    pub(crate) fn offer(&self) -> Offer {
        Offer {
            levels: self.encryption_levels,
            prefer_rc4: self.prefer_rc4,
            entropy: self.session.borrow_mut().entropy(),
        }
    }

    /// Starts dialling `addr` for `torrent` now, or when a half-open slot frees up.
    fn dial(&self, torrent: &Rc<Torrent>, addr: SocketAddr) {
        if self.session.borrow_mut().dial(torrent.id, addr) {
            tokio::task::spawn_local(dial(torrent.clone(), addr));
        }
    }

    /// A dial ended: its slot goes to the next waiting dial of a torrent still running.
    fn dial_ended(&self) {
        loop {
            let Some((id, addr)) = self.session.borrow_mut().dial_ended() else {
                return;
            };
            let torrent = self.torrents.borrow().get(&id).cloned();
            match torrent {
                Some(torrent) if !torrent.is_closed() => {
                    tokio::task::spawn_local(dial(torrent, addr));
                    return;
                }
                _ => {}
            }
        }
    }
}

struct Conn {
    /// `None` for a web seed (its task talks HTTP, see `web_seed`).
    stream: Option<Rc<PeerStream>>,
    writer: Rc<Notify>,
}

/// A running torrent.
pub(crate) struct Torrent {
    pub(crate) id: TorrentId,
    pub(crate) info_hash: InfoHash,
    core: RefCell<Core>,
    storage: RefCell<Option<Storage>>,
    conns: RefCell<HashMap<PeerKey, Conn>>,
    spare: RefCell<(Vec<Action>, Vec<Alert>)>,
    /// The receive chunk of the connection whose bytes the core is handling now, for counting
    /// its blocks as the chunk they keep allocated.
    receiving: RefCell<Option<ChunkCharge>>,
    disk_ready: Notify,
    closed: Cell<bool>,
    stopped: Rc<Notify>,
    /// Peers the DHT has given it.
    dht_peers: Cell<u64>,
    shared: Rc<Shared>,
    download_limit: RefCell<TokenBucket>,
    upload_limit: RefCell<TokenBucket>,
    connect_timeout: Duration,
    span: tracing::Span,
    tracker_signals: Rc<Signals>,
    announcers: RefCell<Vec<tokio::task::JoinHandle<()>>>,
    /// Rung when web seeds may find the torrent's needs changed (see `web_seeds.rs`).
    web_seed_bell: Notify,
}

impl Torrent {
    /// Starts the torrent's tasks; `storage` is `None` for a magnet link's torrent until its
    /// metadata is here.
    pub(crate) fn start(core: Core, storage: Option<OpenStorage>, shared: Rc<Shared>) -> Rc<Self> {
        let conf = core.conf();
        let now = Instant::now();
        let torrent = Rc::new(Self {
            id: core.id(),
            info_hash: core.info_hash(),
            download_limit: RefCell::new(TokenBucket::new(conf.download_rate_limit, now)),
            upload_limit: RefCell::new(TokenBucket::new(conf.upload_rate_limit, now)),
            connect_timeout: conf.connect_timeout,
            span: tracing::info_span!("torrent", id = %core.id(), info_hash = %core.info_hash()),
            core: RefCell::new(core),
            storage: RefCell::new(None),
            conns: RefCell::new(HashMap::new()),
            spare: RefCell::default(),
            receiving: RefCell::new(None),
            disk_ready: Notify::new(),
            closed: Cell::new(false),
            stopped: Rc::new(Notify::new()),
            dht_peers: Cell::new(0),
            shared,
            tracker_signals: Rc::default(),
            announcers: RefCell::new(Vec::new()),
            web_seed_bell: Notify::new(),
        });
        tokio::task::spawn_local(tracing::Instrument::instrument(
            timer_loop(torrent.clone()),
            torrent.span(),
        ));
        if let Some(storage) = storage {
            torrent.attach_storage(storage);
        }
        if let Some(clients) = &torrent.shared.trackers {
            let (lists, finished, seed) = {
                let mut core = torrent.core.borrow_mut();
                let state = core.announce_state();
                (core.trackers(), state.finished, core.tracker_seed())
            };
            *torrent.announcers.borrow_mut() =
                announcer::start(&torrent, clients, lists, finished, seed);
        }
        torrent
    }

    /// Gives the core `input`, then performs what it queued.
    pub(crate) fn handle(self: &Rc<Self>, input: Input<'_>) -> Handled {
        self.with_core(|core| core.handle(input, Instant::now()))
    }

    /// A user command.
    pub(crate) fn command(self: &Rc<Self>, command: Command) {
        // Resumed, or other files wanted: web seeds waiting may have work. Only then: peers
        // added (every tracker and DHT reply) must not cut a failed web seed's back-off short.
        let wakes_web_seeds = matches!(command, Command::Resume | Command::FilePriorities(_));
        let _ = self.handle(Input::Command(command));
        if wakes_web_seeds {
            self.web_seed_bell.notify_waiters();
        }
    }

    /// Runs `f` on the core, then performs the actions and posts the alerts it queued.
    fn with_core<R>(self: &Rc<Self>, f: impl FnOnce(&mut Core) -> R) -> R {
        let (mut actions, mut alerts) = std::mem::take(&mut *self.spare.borrow_mut());
        let result = {
            let mut core = self.core.borrow_mut();
            let result = f(&mut core);
            actions.extend(std::iter::from_fn(|| core.poll_action()));
            alerts.extend(std::iter::from_fn(|| core.poll_alert()));
            result
        };
        for mut alert in alerts.drain(..) {
            match &mut alert {
                // Tiers owe their trackers a `completed`.
                Alert::TorrentComplete(_) => self.tracker_signals.poke(),
                Alert::TorrentStats(stats) => self.add_dht_stats(stats),
                _ => {}
            }
            self.shared.alerts.post(alert);
        }
        for action in actions.drain(..) {
            self.execute(action);
        }
        *self.spare.borrow_mut() = (actions, alerts);
        result
    }

    fn execute(self: &Rc<Self>, action: Action) {
        match action {
            Action::Wake(key) => {
                if let Some(conn) = self.conns.borrow().get(&key) {
                    conn.writer.notify_one();
                }
            }
            Action::Write {
                piece,
                offset,
                data,
                tag,
            } => {
                let buffer = self
                    .receiving
                    .borrow_mut()
                    .as_mut()
                    .map(ChunkCharge::buffer);
                let status = match (self.storage.borrow().as_ref(), buffer) {
                    (Some(storage), Some(buffer)) => {
                        storage.write_block_in(piece, offset, data, tag, &buffer)
                    }
                    (Some(storage), None) => storage.write_block(piece, offset, data, tag),
                    (None, _) => return,
                };
                match status {
                    Ok(WriteStatus::Accepted) => {}
                    Ok(WriteStatus::Full) => {
                        let _ = self.handle(Input::DiskFull);
                    }
                    Err(error) => {
                        let pieces = vec![piece];
                        let _ = self
                            .handle(Input::Storage(StorageEvent::WriteFailed { pieces, error }));
                    }
                }
            }
            Action::HashBlocks(piece) => {
                let result = match self.storage.borrow().as_ref() {
                    Some(storage) => storage.block_hashes(piece),
                    None => return,
                };
                if let Err(error) = result {
                    let _ = self.handle(Input::Storage(StorageEvent::BlockHashes {
                        piece,
                        result: Err(error),
                    }));
                }
            }
            Action::Read { block, token } => {
                let result = match self.storage.borrow().as_ref() {
                    Some(storage) => storage.read_block(block, token),
                    None => return,
                };
                if let Err(error) = result {
                    let _ = self.handle(Input::Storage(StorageEvent::BlockRead {
                        token,
                        block,
                        result: Err(error),
                    }));
                }
            }
            Action::ForgetReads(token) => {
                if let Some(storage) = self.storage.borrow().as_ref() {
                    let _ = storage.forget_reads(token);
                }
            }
            // Without storage yet, attaching it applies the latest.
            Action::WantedFiles(wanted) => {
                if let Some(storage) = self.storage.borrow().as_ref() {
                    let _ = storage.set_wanted_files(wanted);
                }
            }
            Action::Disconnect(key) => {
                if let Some(conn) = self.conns.borrow().get(&key) {
                    match &conn.stream {
                        Some(stream) => {
                            let _ = stream.shutdown();
                        }
                        None => conn.writer.notify_one(),
                    }
                }
            }
            Action::Connect(addr) => self.shared.dial(self, addr),
            Action::DhtNode(addr) => {
                if let Some(dht) = self.shared.dht.get() {
                    dht.add_node(addr);
                }
            }
            Action::ExternalIp { ip, voter } => {
                if let Some(dht) = self.shared.dht.get() {
                    dht.vote_external_ip(ip, voter);
                }
            }
            Action::ResumeReading => self.disk_ready.notify_waiters(),
            Action::MetadataReady(metainfo) => {
                tokio::task::spawn_local(tracing::Instrument::instrument(
                    open_storage(self.clone(), *metainfo),
                    self.span(),
                ));
            }
        }
    }

    /// Takes the open storage and starts handing its events to the core.
    fn attach_storage(self: &Rc<Self>, (storage, events, wake): OpenStorage) {
        // Priorities set while the files were being checked.
        if let Some(wanted) = self.core.borrow().wanted_files() {
            let _ = storage.set_wanted_files(wanted);
        }
        *self.storage.borrow_mut() = Some(storage);
        tokio::task::spawn_local(tracing::Instrument::instrument(
            storage_loop(self.clone(), events, wake),
            self.span(),
        ));
        web_seeds::start(self);
    }

    /// A handshaken connection for this torrent: register it and start its tasks.
    pub(crate) fn attach(
        self: &Rc<Self>,
        stream: PeerStream,
        addr: SocketAddr,
        handshake: &Handshake,
        buf: BytesMut,
        outgoing: bool,
        cipher: Option<Cipher>,
    ) {
        if self.closed.get() {
            return;
        }
        if !self.shared.session.borrow().has_room() {
            tracing::debug!(%addr, "global connection limit reached");
            if outgoing {
                let _ = self.handle(Input::ConnectFailed(addr));
            }
            return;
        }
        // What PEX tells others of this peer (BEP 11 flags uTP and encryption).
        let encrypted = cipher.is_some();
        let key = match self.handle(Input::Handshake {
            addr,
            id: handshake.peer_id,
            extensions: handshake.extensions,
            outgoing,
            link: Link {
                utp: stream.is_utp(),
                encrypted,
            },
        }) {
            Handled::Admitted(key) => key,
            Handled::Refused(reason) => {
                tracing::debug!(%addr, %reason, "connection refused");
                return;
            }
            Handled::Done => return,
        };
        let stream = Rc::new(stream);
        let writer = Rc::new(Notify::new());
        self.conns.borrow_mut().insert(
            key,
            Conn {
                stream: Some(stream.clone()),
                writer: writer.clone(),
            },
        );
        self.shared.session.borrow_mut().connection_opened();
        // The greeting queued by the handshake is waiting: make sure the writer sees it.
        writer.notify_one();
        let span = tracing::debug_span!(parent: &self.span(), "peer", %addr);
        tokio::task::spawn_local(tracing::Instrument::instrument(
            connection::run_peer(
                self.clone(),
                key,
                stream,
                writer,
                buf,
                SendBuffer::new(&self.shared.net, Instant::now()),
                cipher,
            ),
            span,
        ));
    }

    /// Under an upload limit, write about one burst at a time (a header and a block are two
    /// frames) so the limit is not exceeded by a whole batch before the first sleep.
    fn frames_per_write(&self) -> usize {
        let global = self.shared.session.borrow().upload_batch();
        let torrent = self.upload_limit.borrow().batch_bytes();
        match global.into_iter().chain(torrent).min() {
            Some(bytes) => (2 * bytes / u64::from(cratetorrent_wire::BLOCK_SIZE))
                .clamp(2, MAX_FRAMES_PER_WRITE as u64) as usize,
            None => MAX_FRAMES_PER_WRITE,
        }
    }

    pub(crate) fn set_limits(&self, limits: crate::RateLimits) {
        self.download_limit.borrow_mut().set_rate(limits.download);
        self.upload_limit.borrow_mut().set_rate(limits.upload);
    }

    /// Disconnects every peer and stops the torrent's tasks; returns its storage to shut down.
    pub(crate) async fn close(self: &Rc<Self>) -> Option<Storage> {
        self.closed.set(true);
        // Trackers hear `stopped` while the peers are being closed; both are bounded.
        self.tracker_signals.stop();
        self.command(Command::Pause);
        self.disk_ready.notify_waiters();
        self.web_seed_bell.notify_waiters();
        // Wait (bounded) for the readers to unregister their peers.
        let deadline = tokio::time::sleep(Duration::from_secs(5));
        tokio::pin!(deadline);
        while !self.conns.borrow().is_empty() {
            let stopped = self.stopped.notified();
            tokio::select! {
                () = stopped => {}
                () = &mut deadline => break,
            }
        }
        let announcers = std::mem::take(&mut *self.announcers.borrow_mut());
        let stop_timeout = self
            .shared
            .trackers
            .as_ref()
            .map_or(Duration::ZERO, |t| t.conf.stop_timeout);
        let all = futures::future::join_all(announcers);
        // A round in flight gets one `stop_timeout` of grace, the `stopped` announce another.
        if tokio::time::timeout(2 * stop_timeout + Duration::from_secs(1), all)
            .await
            .is_err()
        {
            tracing::debug!("announce tasks did not end in time");
        }
        self.storage.borrow_mut().take()
    }

    /// The tracing span of everything this torrent does.
    pub(crate) fn span(&self) -> tracing::Span {
        self.span.clone()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Adds this torrent's share to the engine's counters.
    pub(crate) fn add_counters(&self, counters: &mut crate::EngineCounters) {
        self.core.borrow().add_counters(counters);
        if let Some(storage) = self.storage.borrow().as_ref() {
            counters.disk_buffered += storage.held_bytes();
        }
    }

    pub(crate) fn stats(&self) -> crate::TorrentStats {
        let mut stats = self.core.borrow().stats();
        self.add_dht_stats(&mut stats);
        stats
    }

    fn add_dht_stats(&self, stats: &mut crate::TorrentStats) {
        if let Some(dht) = self.shared.dht.get() {
            let node = dht.stats();
            stats.dht_nodes = node.nodes_v4 + node.nodes_v6;
            stats.dht_datagrams = (node.sent, node.received);
        }
        stats.dht_peers = self.dht_peers.get();
    }

    /// Peers the DHT found for this torrent (counted for its stats, then dialled).
    pub(crate) fn add_dht_peers(self: &Rc<Self>, mut peers: Vec<SocketAddr>) {
        peers.retain(|&peer| crate::peer_addr::can_dial(peer));
        self.dht_peers
            .set(self.dht_peers.get() + peers.len() as u64);
        self.command(Command::AddPeers(peers));
    }

    /// Whether it may be announced to the local network (BEP 14).
    pub(crate) fn discoverable(&self) -> bool {
        self.core.borrow().discoverable()
    }

    /// Finished (nothing to download), and its peer count.
    pub(crate) fn discovery_state(&self) -> (bool, usize) {
        self.core.borrow().discovery_state()
    }

    /// Peers the DHT has given it so far.
    pub(crate) fn dht_peers(&self) -> u64 {
        self.dht_peers.get()
    }

    /// The metadata (`None` while a magnet link's is fetched).
    pub(crate) fn metainfo(&self) -> Option<Metainfo> {
        self.core.borrow().metainfo().cloned()
    }
}

impl PeerHost for Torrent {
    fn receive(self: &Rc<Self>, key: PeerKey, buf: &mut BytesMut, chunk: &mut ChunkCharge) -> bool {
        chunk.track(buf);
        self.receiving.replace(Some(std::mem::take(chunk)));
        let open = self.with_core(|core| {
            let _ = core.handle(Input::Received { peer: key, buf }, Instant::now());
            core.is_open(key)
        });
        *chunk = self.receiving.take().unwrap_or_default();
        open
    }

    fn poll_transmit(self: &Rc<Self>, key: PeerKey, frames: &mut Vec<Bytes>) -> Option<u64> {
        let max = self.frames_per_write();
        self.with_core(|core| core.poll_transmit(key, frames, max, Instant::now()))
    }

    fn sent(self: &Rc<Self>, key: PeerKey, bytes: usize) {
        let _ = self.handle(Input::Sent { peer: key, bytes });
    }

    fn send_progress(self: &Rc<Self>, key: PeerKey, at: Instant) {
        let _ = self.handle(Input::SendProgress { peer: key, at });
    }

    fn charge_download(&self, bytes: u64) -> Duration {
        let now = Instant::now();
        let global = self.shared.session.borrow_mut().charge_download(bytes, now);
        global.max(self.download_limit.borrow_mut().consume(bytes, now))
    }

    fn charge_upload(&self, bytes: u64) -> Duration {
        let now = Instant::now();
        let global = self.shared.session.borrow_mut().charge_upload(bytes, now);
        global.max(self.upload_limit.borrow_mut().consume(bytes, now))
    }

    async fn wait_for_disk_memory(&self) {
        while self.core.borrow().reading_paused() && !self.closed.get() {
            self.disk_ready.notified().await;
        }
    }

    fn closed(self: &Rc<Self>, key: PeerKey) {
        if self.conns.borrow_mut().remove(&key).is_some() {
            self.shared.session.borrow_mut().connection_closed();
        }
        let _ = self.handle(Input::Closed(key));
        if self.conns.borrow().is_empty() {
            self.stopped.notify_waiters();
        }
    }
}

impl Swarm for Torrent {
    fn announce_state(&self) -> AnnounceState {
        self.core.borrow().announce_state()
    }

    fn add_peers(self: &Rc<Self>, peers: Vec<SocketAddr>) {
        self.command(Command::AddPeers(peers));
    }

    fn post(&self, alert: Alert) {
        self.shared.alerts.post(alert);
    }

    fn id(&self) -> TorrentId {
        self.id
    }

    fn signals(&self) -> Rc<Signals> {
        self.tracker_signals.clone()
    }

    fn span(&self) -> tracing::Span {
        self.span.clone()
    }
}
