//! The torrent's own tasks: dialling a peer, opening (and checking) its files, and handing
//! its core the time and the storage's events.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Instant;

use cratetorrent_metainfo::Metainfo;
use cratetorrent_storage::{Storage, StorageError, StorageEvent, save_metadata};
use tokio::sync::Notify;

use super::{OpenStorage, Shared, Torrent};
use crate::alert::Alert;
use crate::blocking::blocking;
use crate::connection::{self, HandshakeError};
use crate::core::{Command, Input};
use crate::encryption::Encryption;

pub(super) async fn dial(torrent: Rc<Torrent>, addr: std::net::SocketAddr) {
    if !torrent.is_closed() {
        let (info_hash, our_id) = (torrent.info_hash, torrent.shared.our_id);
        let span = tracing::debug_span!(parent: &torrent.span(), "dial", %addr);
        let (dialer, dht) = (
            torrent.shared.dialer(),
            torrent.shared.dht_port.get().is_some(),
        );
        let policy = torrent.shared.encryption;
        let offer = policy.dials_encrypted().then(|| torrent.shared.offer());
        let timeout = torrent.connect_timeout;
        let attempt = async {
            let first =
                connection::connect(addr, &dialer, info_hash, our_id, dht, timeout, offer).await;
            match first {
                // A peer that reached us but not through an encrypted handshake gets a plain
                // one on a new connection, as libtorrent's `pe_enabled` does.
                Err(error)
                    if offer.is_some()
                        && policy == Encryption::Prefer
                        && !matches!(error, HandshakeError::Connect(_)) =>
                {
                    tracing::debug!(%error, "encrypted handshake failed; dialling in the clear");
                    connection::connect(addr, &dialer, info_hash, our_id, dht, timeout, None).await
                }
                other => other,
            }
        };
        match tracing::Instrument::instrument(attempt, span).await {
            Ok((stream, handshake, buf, cipher)) => {
                torrent.attach(stream, addr, &handshake, buf, true, cipher)
            }
            Err(error) => {
                tracing::debug!(%addr, %error, "connect failed");
                let _ = torrent.handle(Input::ConnectFailed(addr));
            }
        }
    }
    torrent.shared.dial_ended();
}

/// Opens (and checks) a torrent's files on a blocking thread, with the doorbell its storage
/// rings when it has events.
pub(crate) async fn open_files(
    shared: &Shared,
    metainfo: Metainfo,
) -> Option<Result<OpenStorage, StorageError>> {
    let wake = Arc::new(Notify::new());
    let (dir, conf, doorbell) = (
        shared.download_dir.clone(),
        shared.storage_conf.clone(),
        wake.clone(),
    );
    let _permit = shared.checking.acquire().await.ok()?;
    let opened =
        blocking(move || Storage::open(&metainfo, &dir, conf, move || doorbell.notify_one())).await;
    Some(opened?.map(|(storage, events)| (storage, events, wake)))
}

/// Opens the storage of a torrent whose metadata came by magnet link, then lets it download.
pub(super) async fn open_storage(torrent: Rc<Torrent>, metainfo: Metainfo) {
    let id = torrent.id;
    let root = crate::session::root_of(&metainfo);
    let taken = torrent.shared.session.borrow_mut().take_root(id, root);
    if let Err(error) = taken {
        torrent
            .shared
            .alerts
            .post(Alert::TorrentError { id, error });
        torrent.command(Command::Pause);
        return;
    }
    // Kept for a restart, which then need not fetch it again.
    let (dir, info_hash, bytes) = (
        torrent.shared.download_dir.clone(),
        metainfo.info_hash(),
        metainfo.to_torrent_bytes(),
    );
    if let Some(Err(error)) = blocking(move || save_metadata(&dir, info_hash, &bytes)).await {
        tracing::warn!(%error, "cannot save the metadata");
        let error = crate::TorrentError::ResumeSave(error);
        torrent
            .shared
            .alerts
            .post(Alert::TorrentError { id, error });
    }
    match open_files(&torrent.shared, metainfo).await {
        Some(Ok(opened)) => {
            if torrent.is_closed() {
                // Removed or shut down meanwhile: nobody else will close it.
                let storage = opened.0;
                let _ = blocking(move || storage.shutdown()).await;
                return;
            }
            let have = opened.0.have().clone();
            let (pieces_had, piece_count) = (have.count_ones(), have.len());
            torrent.attach_storage(opened);
            torrent.shared.alerts.post(Alert::TorrentStarted {
                id,
                pieces_had,
                piece_count,
            });
            let _ = torrent.handle(Input::StorageReady(have));
            torrent.web_seed_bell.notify_waiters();
        }
        Some(Err(error)) => {
            let error = crate::TorrentError::Open(error);
            torrent
                .shared
                .alerts
                .post(Alert::TorrentError { id, error });
        }
        None => {}
    }
}

/// Gives the core its timeouts when it asks for them.
pub(super) async fn timer_loop(torrent: Rc<Torrent>) {
    loop {
        let at = torrent.core.borrow().poll_timeout();
        let at = crate::wake_grid::coalesced(at, Instant::now());
        tokio::time::sleep_until(at.into()).await;
        if torrent.is_closed() {
            return;
        }
        let _ = torrent.handle(Input::Timeout);
    }
}

pub(super) async fn storage_loop(
    torrent: Rc<Torrent>,
    events: Receiver<StorageEvent>,
    wake: Arc<Notify>,
) {
    loop {
        loop {
            match events.try_recv() {
                Ok(event) => {
                    let _ = torrent.handle(Input::Storage(event));
                }
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
