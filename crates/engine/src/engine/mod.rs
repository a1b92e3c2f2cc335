//! Starting the engine: its network thread, the listening socket, and the command loop.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use cratetorrent_storage::{DiskPool, Layout, StorageConfig};
use cratetorrent_wire::Handshake;
use cratetorrent_wire::mse::{self, Cipher};
use tokio::sync::mpsc;

mod dht;
mod lsd;
mod startup;
mod udp;

use crate::alert::{Alert, AlertSender, Alerts};
use crate::blocking::blocking;
use crate::conf::Conf;
use crate::conf::IoBackend;
use crate::connection::{self, HandshakeError};
use crate::core;
use crate::counters::EngineCounters;
use crate::error::EngineError;
use crate::handle::{COMMAND_QUEUE, Command, EngineHandle, TorrentParams, TorrentSource};
use crate::net::{Backend, Listener, Net, PeerStream};
use crate::session::{HandshakeTicket, Session, root_of};
use crate::torrent::{Shared, Torrent};
use crate::{TorrentError, TorrentId};

/// Starts an engine on its own thread (with its own tokio-uring runtime) and returns a handle
/// to it and the stream of its alerts. Works from any context, async or not.
pub fn spawn(conf: Conf) -> Result<(EngineHandle, Alerts), EngineError> {
    let listener =
        std::net::TcpListener::bind(conf.listen_addr).map_err(|source| EngineError::Listen {
            addr: conf.listen_addr,
            source,
        })?;
    let listen_addr = listener
        .local_addr()
        .map_err(|source| EngineError::Listen {
            addr: conf.listen_addr,
            source,
        })?;
    let (commands, inbox) = mpsc::channel(COMMAND_QUEUE);
    let alerts = AlertSender::default();
    let receiver = alerts.receiver();
    // The runtime is built on its thread (it is not `Send`); whether that worked comes back here
    // so that a runtime that cannot start is an error from `spawn`, not a dead engine.
    let (started, runtime_result) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("ct-net".into())
        .spawn(move || {
            let closer = alerts.clone();
            let backend = conf.io_backend;
            let uring = match backend {
                IoBackend::Epoll => None,
                IoBackend::Auto | IoBackend::IoUring => {
                    match tokio_uring::Runtime::new(&tokio_uring::builder()) {
                        Ok(runtime) => Some(runtime),
                        Err(error) if backend == IoBackend::Auto => {
                            tracing::warn!(%error, "io_uring unavailable; the network runs on epoll");
                            None
                        }
                        Err(error) => {
                            let _ = started.send(Err(error));
                            return;
                        }
                    }
                }
            };
            if let Some(runtime) = uring {
                let _ = started.send(Ok(()));
                let net = Net::new(Backend::Uring, &conf);
                runtime.block_on(run(conf, listener, listen_addr, inbox, alerts, net));
            } else {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = started.send(Err(error));
                        return;
                    }
                };
                let _ = started.send(Ok(()));
                let local = tokio::task::LocalSet::new();
                let net = Net::new(Backend::Epoll, &conf);
                local.block_on(&runtime, run(conf, listener, listen_addr, inbox, alerts, net));
            }
            closer.close();
        })
        .map_err(EngineError::Spawn)?;
    match runtime_result.recv() {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return Err(EngineError::Runtime(error)),
        Err(_) => return Err(EngineError::Closed),
    }
    Ok((EngineHandle::new(commands, listen_addr), receiver))
}

struct Engine {
    conf: Conf,
    shared: Rc<Shared>,
    listen_port: u16,
    /// Torrents whose data is being checked, with commands that arrived meanwhile.
    checking: RefCell<HashMap<TorrentId, Vec<Command>>>,
    closing: Cell<bool>,
}

async fn run(
    conf: Conf,
    listener: std::net::TcpListener,
    listen_addr: SocketAddr,
    mut inbox: mpsc::Receiver<Command>,
    alerts: AlertSender,
    net: Net,
) {
    tracing::info!(?net, "engine started");
    let mut session = Session::new(&conf, Instant::now());
    let tracker_key = session.torrent_seed() as u32;
    let shared = Rc::new(Shared {
        alerts: alerts.clone(),
        our_id: conf.peer_id,
        session: RefCell::new(session),
        torrents: RefCell::new(HashMap::new()),
        trackers: match crate::tracker::announcer::Clients::new(&conf.tracker, tracker_key) {
            Ok(clients) => Some(Rc::new(clients)),
            Err(error) => {
                tracing::error!(%error, "tracker clients unavailable; using given peers only");
                None
            }
        },
        net,
        dht: std::cell::OnceCell::new(),
        dht_port: Cell::new(None),
        download_dir: conf.download_dir.clone(),
        storage_conf: shared_disk(&conf.storage),
        checking: tokio::sync::Semaphore::new(conf.checking_at_once.max(1)),
        encryption: conf.encryption,
        encryption_levels: conf.encryption_levels,
        prefer_rc4: conf.prefer_rc4,
        transport: conf.transport,
        utp: std::cell::OnceCell::new(),
        web_seed_client: std::cell::OnceCell::new(),
    });
    let engine = Rc::new(Engine {
        conf,
        shared,
        listen_port: listen_addr.port(),
        checking: RefCell::new(HashMap::new()),
        closing: Cell::new(false),
    });
    listen(&engine, listener);
    if engine.conf.lsd {
        lsd::start(&engine);
    }
    if engine.conf.dht.enabled || engine.conf.transport.uses_utp() {
        let port = udp::start(&engine, listen_addr);
        if let Some(port) = port
            && engine.conf.dht.enabled
        {
            dht::start(&engine, port);
        }
    }
    let reply = loop {
        match inbox.recv().await {
            Some(Command::Shutdown { reply }) => break Some(reply),
            Some(command) => engine.handle(command),
            None => break None,
        }
    };
    let result = engine.shutdown().await;
    alerts.close();
    if let Some(reply) = reply {
        let _ = reply.send(result);
    }
}

impl Engine {
    fn handle(self: &Rc<Self>, command: Command) {
        let Some(id) = command.torrent() else {
            if let Command::Counters { reply } = command {
                let _ = reply.send(self.counters());
                return;
            }
            if let Command::Limits { limits, .. } = command {
                self.shared.session.borrow_mut().set_limits(limits);
            }
            return;
        };
        if let Command::Add { id, params } = command {
            self.add(id, *params);
            return;
        }
        if let Some(deferred) = self.checking.borrow_mut().get_mut(&id) {
            if let Command::Stats { reply, .. } = command {
                let _ = reply.send(None);
            } else {
                deferred.push(command);
            }
            return;
        }
        let Some(torrent) = self.shared.torrents.borrow().get(&id).cloned() else {
            if let Command::Stats { reply, .. } = command {
                let _ = reply.send(None);
            }
            return;
        };
        match command {
            Command::Pause(_) => torrent.command(core::Command::Pause),
            Command::Resume(_) => torrent.command(core::Command::Resume),
            Command::AddPeers { peers, .. } => torrent.command(core::Command::AddPeers(peers)),
            Command::FilePriorities { priorities, .. } => {
                torrent.command(core::Command::FilePriorities(priorities));
            }
            Command::Sequential { on, .. } => torrent.command(core::Command::Sequential(on)),
            Command::Limits { limits, .. } => torrent.set_limits(limits),
            Command::Stats { reply, .. } => {
                let _ = reply.send(Some(torrent.stats()));
            }
            Command::Remove { delete_files, .. } => {
                self.shared.torrents.borrow_mut().remove(&id);
                let mut session = self.shared.session.borrow_mut();
                session.release_info_hash(torrent.info_hash);
                drop(session);
                tokio::task::spawn_local(remove(self.clone(), torrent, delete_files));
            }
            Command::Add { .. } | Command::Shutdown { .. } | Command::Counters { .. } => {}
        }
    }

    /// The running torrent with `info_hash`, if any.
    fn torrent_by_hash(&self, info_hash: cratetorrent_metainfo::InfoHash) -> Option<Rc<Torrent>> {
        self.shared
            .torrents
            .borrow()
            .values()
            .find(|t| t.info_hash == info_hash)
            .cloned()
    }

    /// The running torrents that may be announced to the local network or the DHT (neither
    /// private nor paused).
    fn discoverable(&self) -> Vec<Rc<Torrent>> {
        self.shared
            .torrents
            .borrow()
            .values()
            .filter(|t| t.discoverable())
            .cloned()
            .collect()
    }

    fn counters(&self) -> EngineCounters {
        let (connections, handshaking) = self.shared.session.borrow().counts();
        let mut counters = EngineCounters {
            connections,
            handshaking,
            ..EngineCounters::default()
        };
        for torrent in self.shared.torrents.borrow().values() {
            torrent.add_counters(&mut counters);
        }
        counters
    }

    fn add(self: &Rc<Self>, id: TorrentId, params: TorrentParams) {
        let Some(info_hash) = params.source.info_hash() else {
            let error = TorrentError::MagnetWithoutV1;
            self.shared.alerts.post(Alert::TorrentError { id, error });
            return;
        };
        if let TorrentSource::Metainfo(metainfo) = &params.source
            && !metainfo.meta_version().has_v1()
            && (0..metainfo.piece_count()).any(|piece| {
                metainfo
                    .v2_piece(piece)
                    .is_some_and(|p| p.expected.is_none())
            })
        {
            let error = TorrentError::Unsupported(crate::error::V2_ONLY);
            self.shared.alerts.post(Alert::TorrentError { id, error });
            return;
        }
        // A magnet link's root is known with its metadata, and taken then.
        let root = match &params.source {
            TorrentSource::Metainfo(metainfo) => Some(root_of(metainfo)),
            TorrentSource::Magnet(_) => None,
        };
        let added = self
            .shared
            .session
            .borrow_mut()
            .add_torrent(id, info_hash, root);
        if let Err(error) = added {
            self.shared.alerts.post(Alert::TorrentError { id, error });
            return;
        }
        self.checking.borrow_mut().insert(id, Vec::new());
        if matches!(params.source, TorrentSource::Magnet(_)) {
            tokio::task::spawn_local(startup::start_magnet(self.clone(), id, params));
        } else {
            tokio::task::spawn_local(startup::start_torrent(self.clone(), id, params));
        }
    }

    /// Frees the info-hash and root `id` took, once nothing of it is open or being deleted.
    fn release(&self, id: TorrentId) {
        self.shared.session.borrow_mut().remove_torrent(id);
    }

    async fn shutdown(self: &Rc<Self>) -> Result<(), EngineError> {
        self.closing.set(true);
        let torrents: Vec<Rc<Torrent>> = self
            .shared
            .torrents
            .borrow_mut()
            .drain()
            .map(|(_, t)| t)
            .collect();
        let mut result = Ok(());
        // Closed together: each may wait a moment for its trackers to hear `stopped`.
        let closing = torrents.iter().map(|torrent| async move {
            let storage = torrent.close().await;
            (torrent.id, storage)
        });
        dht::save(self).await;
        for (id, storage) in futures::future::join_all(closing).await {
            if let Some(storage) = storage {
                let saved = blocking(move || storage.shutdown()).await;
                if let Some(Err(source)) = saved {
                    tracing::warn!(
                        %id, %source,
                        "resume data not saved (its pieces are checked again on restart)"
                    );
                    if result.is_ok() {
                        result = Err(EngineError::Storage { id, source });
                    }
                }
            }
        }
        result
    }
}

async fn remove(engine: Rc<Engine>, torrent: Rc<Torrent>, delete: bool) {
    let id = torrent.id;
    let metainfo = torrent.metainfo();
    let dir = engine.conf.download_dir.clone();
    if let Some(storage) = torrent.close().await {
        let result = blocking(move || {
            storage.shutdown().map_err(TorrentError::Remove)?;
            if delete && let Some(metainfo) = metainfo {
                cratetorrent_storage::delete_files(&Layout::new(&metainfo, &dir))
                    .map_err(TorrentError::Delete)?;
            }
            Ok::<(), TorrentError>(())
        })
        .await;
        if let Some(Err(error)) = result {
            engine.shared.alerts.post(Alert::TorrentError { id, error });
        }
    }
    engine.release(id);
    engine.shared.alerts.post(Alert::TorrentRemoved(id));
}

/// Accepts connections on `listener` for as long as the engine runs.
fn listen(engine: &Rc<Engine>, listener: std::net::TcpListener) {
    match Listener::from_std(listener, engine.shared.net) {
        Ok(listener) => {
            tokio::task::spawn_local(accept_loop(engine.clone(), listener));
        }
        Err(error) => tracing::error!(%error, "cannot listen"),
    }
}

async fn accept_loop(engine: Rc<Engine>, listener: Listener) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                if engine.closing.get() {
                    return;
                }
                tokio::task::spawn_local(incoming(engine.clone(), stream, addr));
            }
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Counts an incoming connection as handshaking until dropped.
struct HandshakeSlot {
    shared: Rc<Shared>,
    ticket: Option<HandshakeTicket>,
}

impl HandshakeSlot {
    fn take(shared: &Rc<Shared>, addr: SocketAddr) -> Option<Self> {
        let ticket = shared.session.borrow_mut().begin_handshake(addr)?;
        Some(Self {
            shared: shared.clone(),
            ticket: Some(ticket),
        })
    }
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.shared.session.borrow_mut().end_handshake(ticket);
        }
    }
}

async fn incoming(engine: Rc<Engine>, stream: PeerStream, addr: SocketAddr) {
    if !engine.shared.session.borrow().has_room() {
        return;
    }
    // Connections that dawdle over their handshake (slowloris) cannot pile up past this.
    let Some(_slot) = HandshakeSlot::take(&engine.shared, addr) else {
        tracing::debug!(%addr, "too many incoming handshakes; refused");
        return;
    };
    let mut buf = BytesMut::new();
    // A tokio-uring socket is closed only once its pending read completes, so a timed-out
    // handshake must shut the socket down: dropping it would leave the slowloris connected.
    let handshake = tokio::time::timeout(
        engine.conf.handshake_timeout,
        accept_handshake(&engine.shared, &stream, &mut buf),
    )
    .await;
    let (handshake, mut cipher) = match handshake {
        Ok(Ok(handshake)) => handshake,
        Ok(Err(error)) => {
            tracing::debug!(%addr, %error, "incoming handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%addr, "incoming handshake timed out");
            let _ = stream.shutdown();
            return;
        }
    };
    let torrent = {
        // A torrent still checking its data has an id but no running `Torrent`: not yet.
        let id = engine
            .shared
            .session
            .borrow()
            .torrent_of(handshake.info_hash);
        id.and_then(|id| engine.shared.torrents.borrow().get(&id).cloned())
    };
    let Some(torrent) = torrent else {
        tracing::debug!(%addr, info_hash = %handshake.info_hash, "incoming peer for an unknown torrent");
        return;
    };
    if connection::send_handshake(
        &stream,
        torrent.info_hash,
        engine.shared.our_id,
        engine.shared.dht_port.get().is_some(),
        cipher.as_mut().map(|cipher| &mut cipher.encrypt),
    )
    .await
    .is_ok()
    {
        torrent.attach(stream, addr, &handshake, buf, false, cipher);
    }
}

/// Reads an incoming peer's handshake, plain or inside an MSE one (told apart by its first 20
/// bytes), as the encryption policy allows.
async fn accept_handshake(
    shared: &Shared,
    stream: &PeerStream,
    buf: &mut BytesMut,
) -> Result<(Handshake, Option<Cipher>), HandshakeError> {
    connection::read_at_least(stream, buf, 20).await?;
    let plain = mse::is_plain_handshake(buf);
    if !shared.encryption.accepts(plain) {
        return Err(HandshakeError::Refused(if plain {
            "plain"
        } else {
            "encrypted"
        }));
    }
    if plain {
        return Ok((connection::read_handshake(stream, buf, None).await?, None));
    }
    let lookup = |hidden: &[u8; 20]| shared.session.borrow().info_hash_hidden_as(hidden);
    let (info_hash, mut cipher) =
        connection::respond_encrypted(stream, shared.offer(), lookup, buf).await?;
    let decrypt = cipher.as_mut().map(|cipher| &mut cipher.decrypt);
    let handshake = connection::read_handshake(stream, buf, decrypt).await?;
    if handshake.info_hash != info_hash {
        return Err(HandshakeError::WrongTorrent);
    }
    Ok((handshake, cipher))
}

/// Every torrent's storage runs on one disk thread and one io_uring, so a thousand torrents cost
/// no thread, ring or descriptor each (a pool given in the configuration is used as it is).
fn shared_disk(storage: &StorageConfig) -> StorageConfig {
    let mut storage = storage.clone();
    if storage.pool.is_none() {
        match DiskPool::new(&storage) {
            Ok(pool) => storage.pool = Some(pool),
            Err(error) => {
                tracing::warn!(%error, "no shared disk thread: each torrent starts its own");
            }
        }
    }
    storage
}
