//! The I/O shell around one torrent's [`Core`]: performs its actions on sockets and storage,
//! feeds it storage events and time, and owns its peers' connections.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use cratetorrent_metainfo::InfoHash;
use cratetorrent_storage::{Storage, StorageEvent, WriteStatus};
use cratetorrent_wire::{Handshake, PeerId};
use tokio::sync::{Notify, Semaphore};
use tokio_uring::net::TcpStream;

use crate::TorrentId;
use crate::alert::{Alert, AlertSender};
use crate::chunk_pool::ChunkCharge;
use crate::connection::{self, MAX_FRAMES_PER_WRITE};
use crate::core::{Action, Core, PeerKey};
use crate::rate::TokenBucket;
use crate::tracker;

/// Engine-wide state shared by all torrents on the network thread.
pub(crate) struct Shared {
    pub(crate) alerts: AlertSender,
    pub(crate) our_id: PeerId,
    pub(crate) download_limit: RefCell<TokenBucket>,
    pub(crate) upload_limit: RefCell<TokenBucket>,
    pub(crate) half_open: Rc<Semaphore>,
    pub(crate) connections: Cell<usize>,
    pub(crate) max_connections: usize,
    /// Incoming connections still in their handshake.
    pub(crate) handshaking: crate::engine::Handshakes,
    /// Tracker clients; `None` when they could not be set up (the error was logged).
    pub(crate) trackers: Option<Rc<tracker::announcer::Clients>>,
}

struct Conn {
    stream: Rc<TcpStream>,
    writer: Rc<Notify>,
}

/// A running torrent.
pub(crate) struct Torrent {
    pub(crate) id: TorrentId,
    pub(crate) info_hash: InfoHash,
    core: RefCell<Core>,
    storage: RefCell<Option<Storage>>,
    conns: RefCell<HashMap<PeerKey, Conn>>,
    spare: RefCell<Vec<Action>>,
    disk_full: Cell<bool>,
    /// The receive chunk of the connection whose messages the core is handling now, for
    /// counting its blocks as the chunk they keep allocated.
    pub(crate) receiving: RefCell<Option<ChunkCharge>>,
    disk_ready: Notify,
    closed: Cell<bool>,
    stopped: Rc<Notify>,
    shared: Rc<Shared>,
    download_limit: RefCell<TokenBucket>,
    upload_limit: RefCell<TokenBucket>,
    connect_timeout: Duration,
    span: tracing::Span,
    tracker_signals: Rc<tracker::announcer::Signals>,
    announcers: RefCell<Vec<tokio::task::JoinHandle<()>>>,
}

impl Torrent {
    pub(crate) fn start(
        core: Core,
        storage: Storage,
        events: Receiver<StorageEvent>,
        storage_wake: Arc<Notify>,
        shared: Rc<Shared>,
    ) -> Rc<Self> {
        let conf = &core.conf;
        let torrent = Rc::new(Self {
            id: core.id,
            info_hash: core.info_hash,
            download_limit: RefCell::new(TokenBucket::new(conf.download_rate_limit)),
            upload_limit: RefCell::new(TokenBucket::new(conf.upload_rate_limit)),
            connect_timeout: conf.connect_timeout,
            span: tracing::info_span!("torrent", id = %core.id, info_hash = %core.info_hash),
            core: RefCell::new(core),
            storage: RefCell::new(Some(storage)),
            conns: RefCell::new(HashMap::new()),
            spare: RefCell::new(Vec::new()),
            disk_full: Cell::new(false),
            receiving: RefCell::new(None),
            disk_ready: Notify::new(),
            closed: Cell::new(false),
            stopped: Rc::new(Notify::new()),
            shared,
            tracker_signals: Rc::default(),
            announcers: RefCell::new(Vec::new()),
        });
        let span = torrent.span();
        tokio_uring::spawn(tracing::Instrument::instrument(
            tick_loop(torrent.clone()),
            span.clone(),
        ));
        tokio_uring::spawn(tracing::Instrument::instrument(
            storage_loop(torrent.clone(), events, storage_wake),
            span,
        ));
        if let Some(clients) = &torrent.shared.trackers {
            *torrent.announcers.borrow_mut() = tracker::announcer::start(&torrent, clients);
        }
        torrent
    }

    /// Runs `f` on the core, then performs the actions it queued.
    pub(crate) fn with_core<R>(self: &Rc<Self>, f: impl FnOnce(&mut Core) -> R) -> R {
        let mut actions = std::mem::take(&mut *self.spare.borrow_mut());
        let result = {
            let mut core = self.core.borrow_mut();
            let result = f(&mut core);
            std::mem::swap(&mut core.actions, &mut actions);
            result
        };
        for action in actions.drain(..) {
            self.execute(action);
        }
        *self.spare.borrow_mut() = actions;
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
                    Ok(WriteStatus::Full) => self.disk_full.set(true),
                    Err(error) => {
                        self.with_core(|core| {
                            core.on_write_failed(&[piece], error, Instant::now())
                        });
                    }
                }
            }
            Action::HashBlocks(piece) => {
                let result = match self.storage.borrow().as_ref() {
                    Some(storage) => storage.block_hashes(piece),
                    None => return,
                };
                if let Err(error) = result {
                    self.with_core(|core| core.on_block_hashes(piece, Err(error), Instant::now()));
                }
            }
            Action::Read { block, token } => {
                let result = match self.storage.borrow().as_ref() {
                    Some(storage) => storage.read_block(block, token),
                    None => return,
                };
                if let Err(error) = result {
                    self.with_core(|core| core.on_block_read(token, block, Err(error)));
                }
            }
            Action::ForgetReads(token) => {
                if let Some(storage) = self.storage.borrow().as_ref() {
                    let _ = storage.forget_reads(token);
                }
            }
            Action::Disconnect(key) => {
                if let Some(conn) = self.conns.borrow().get(&key) {
                    let _ = conn.stream.shutdown(std::net::Shutdown::Both);
                }
            }
            Action::Connect(addr) => {
                tokio_uring::spawn(dial(self.clone(), addr));
            }
            Action::Alert(alert) => {
                if matches!(alert, Alert::TorrentComplete(_)) {
                    // Tiers owe their trackers a `completed`.
                    self.tracker_signals.poke();
                }
                self.shared.alerts.post(alert);
            }
        }
    }

    /// A handshaken connection for this torrent: register it and start its tasks.
    pub(crate) fn attach(
        self: &Rc<Self>,
        stream: TcpStream,
        addr: SocketAddr,
        handshake: &Handshake,
        buf: BytesMut,
        outgoing: bool,
    ) {
        if self.closed.get() {
            return;
        }
        if self.shared.connections.get() >= self.shared.max_connections {
            tracing::debug!(%addr, "global connection limit reached");
            if outgoing {
                self.with_core(|core| core.on_connect_failed(addr, Instant::now()));
            }
            return;
        }
        let now = Instant::now();
        let admitted = self.with_core(|core| {
            core.on_handshake(addr, handshake.peer_id, handshake.extensions, outgoing, now)
        });
        let key = match admitted {
            Ok(key) => key,
            Err(reason) => {
                tracing::debug!(%addr, %reason, "connection refused");
                return;
            }
        };
        let stream = Rc::new(stream);
        let writer = Rc::new(Notify::new());
        self.conns.borrow_mut().insert(
            key,
            Conn {
                stream: stream.clone(),
                writer: writer.clone(),
            },
        );
        self.shared
            .connections
            .set(self.shared.connections.get() + 1);
        // The greeting queued by `on_handshake` is waiting: make sure the writer sees it.
        writer.notify_one();
        let span = tracing::debug_span!(parent: &self.span(), "peer", %addr);
        tokio_uring::spawn(tracing::Instrument::instrument(
            connection::run_peer(self.clone(), key, stream, writer, buf),
            span,
        ));
    }

    pub(crate) fn on_peer_closed(self: &Rc<Self>, key: PeerKey) {
        if self.conns.borrow_mut().remove(&key).is_some() {
            self.shared
                .connections
                .set(self.shared.connections.get().saturating_sub(1));
        }
        self.with_core(|core| core.on_closed(key, Instant::now()));
        if self.conns.borrow().is_empty() {
            self.stopped.notify_waiters();
        }
    }

    /// Moves the peer's queued frames into `frames`; `None` once the peer is gone or closing.
    pub(crate) fn take_outgoing(
        self: &Rc<Self>,
        key: PeerKey,
        frames: &mut Vec<Bytes>,
    ) -> Option<u64> {
        self.with_core(|core| {
            let peer = core.peers.get_mut(key)?;
            if peer.closing {
                return None;
            }
            let before = peer.outbox.len();
            let payload = peer.outbox.take(frames, self.frames_per_write());
            let taken = before - peer.outbox.len();
            if !peer.outbox.is_empty() {
                // More than one write's worth: come back for the rest.
                if let Some(c) = self.conns.borrow().get(&key) {
                    c.writer.notify_one()
                }
            }
            core.on_write_progress(key, taken, false, Instant::now());
            Some(payload)
        })
    }

    /// Under an upload limit, write about one burst at a time (a header and a block are two
    /// frames) so the limit is not exceeded by a whole batch before the first sleep.
    fn frames_per_write(&self) -> usize {
        let global = self.shared.upload_limit.borrow().batch_bytes();
        let torrent = self.upload_limit.borrow().batch_bytes();
        match global.into_iter().chain(torrent).min() {
            Some(bytes) => (2 * bytes / u64::from(cratetorrent_wire::BLOCK_SIZE))
                .clamp(2, MAX_FRAMES_PER_WRITE as u64) as usize,
            None => MAX_FRAMES_PER_WRITE,
        }
    }

    pub(crate) fn charge_download(&self, bytes: u64) -> Duration {
        let now = Instant::now();
        let global = self.shared.download_limit.borrow_mut().consume(bytes, now);
        global.max(self.download_limit.borrow_mut().consume(bytes, now))
    }

    pub(crate) fn charge_upload(&self, bytes: u64) -> Duration {
        let now = Instant::now();
        let global = self.shared.upload_limit.borrow_mut().consume(bytes, now);
        global.max(self.upload_limit.borrow_mut().consume(bytes, now))
    }

    pub(crate) fn set_limits(&self, limits: crate::RateLimits) {
        self.download_limit.borrow_mut().set_rate(limits.download);
        self.upload_limit.borrow_mut().set_rate(limits.upload);
    }

    /// Waits while the storage holds as many received blocks as it may.
    pub(crate) async fn wait_for_disk_memory(&self) {
        while self.disk_full.get() && !self.closed.get() {
            self.disk_ready.notified().await;
        }
    }

    /// Disconnects every peer and stops the torrent's tasks; returns its storage to shut down.
    pub(crate) async fn close(self: &Rc<Self>) -> Option<Storage> {
        self.closed.set(true);
        // Trackers hear `stopped` while the peers are being closed; both are bounded.
        self.tracker_signals.stop();
        self.with_core(|core| core.set_paused(true, Instant::now()));
        self.disk_ready.notify_waiters();
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

    pub(crate) fn tracker_signals(&self) -> Rc<tracker::announcer::Signals> {
        self.tracker_signals.clone()
    }

    /// Posts an alert to the engine's user.
    pub(crate) fn post(&self, alert: Alert) {
        self.shared.alerts.post(alert);
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

    pub(crate) fn core(&self) -> std::cell::RefMut<'_, Core> {
        self.core.borrow_mut()
    }
}

async fn dial(torrent: Rc<Torrent>, addr: SocketAddr) {
    let half_open = torrent.shared.half_open.clone();
    let Ok(_permit) = half_open.acquire().await else {
        return;
    };
    if torrent.is_closed() {
        return;
    }
    let (info_hash, our_id) = (torrent.info_hash, torrent.shared.our_id);
    let span = tracing::debug_span!(parent: &torrent.span(), "dial", %addr);
    let attempt = connection::connect(addr, info_hash, our_id, torrent.connect_timeout);
    match tracing::Instrument::instrument(attempt, span).await {
        Ok((stream, handshake, buf)) => torrent.attach(stream, addr, &handshake, buf, true),
        Err(error) => {
            tracing::debug!(%addr, %error, "connect failed");
            torrent.with_core(|core| core.on_connect_failed(addr, Instant::now()));
        }
    }
}

async fn tick_loop(torrent: Rc<Torrent>) {
    let stats_interval = torrent.core().conf.stats_interval;
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_stats = Instant::now();
    loop {
        interval.tick().await;
        if torrent.is_closed() {
            return;
        }
        let now = Instant::now();
        torrent.with_core(|core| core.tick(now));
        if now.saturating_duration_since(last_stats) >= stats_interval {
            last_stats = now;
            let stats = torrent.core().stats();
            torrent
                .shared
                .alerts
                .post(Alert::TorrentStats(Box::new(stats)));
        }
    }
}

async fn storage_loop(torrent: Rc<Torrent>, events: Receiver<StorageEvent>, wake: Arc<Notify>) {
    loop {
        loop {
            match events.try_recv() {
                Ok(event) => torrent.on_storage_event(event),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        if torrent.is_closed() {
            return;
        }
        wake.notified().await;
    }
}

impl Torrent {
    fn on_storage_event(self: &Rc<Self>, event: StorageEvent) {
        let now = Instant::now();
        match event {
            StorageEvent::PieceVerified(piece) => {
                self.with_core(|core| core.on_piece_verified(piece, now));
            }
            StorageEvent::HashFailed { piece, .. } => {
                tracing::info!(piece, "piece failed its hash check");
                self.with_core(|core| core.on_hash_failed(piece, now));
            }
            StorageEvent::WriteFailed { pieces, error } => {
                self.with_core(|core| core.on_write_failed(&pieces, error, now));
            }
            StorageEvent::BlockRead {
                token,
                block,
                result,
            } => self.with_core(|core| core.on_block_read(token, block, result)),
            StorageEvent::ResumeSaveFailed(error) => self.shared.alerts.post(Alert::TorrentError {
                id: self.id,
                error: crate::TorrentError::ResumeSave(error),
            }),
            StorageEvent::BlocksDropped { piece, offsets } => {
                self.with_core(|core| core.on_blocks_dropped(piece, &offsets));
            }
            StorageEvent::BlockHashes { piece, result } => {
                self.with_core(|core| core.on_block_hashes(piece, result, now));
            }
            StorageEvent::MemoryAvailable => {
                self.disk_full.set(false);
                self.disk_ready.notify_waiters();
            }
            _ => {}
        }
    }
}
