//! Starting a torrent: opening and checking a `.torrent`'s storage on a blocking thread (the
//! torrent takes commands once it runs; those sent meanwhile wait), or at once for a magnet
//! link, whose storage opens when its metadata is here (`Action::MetadataReady`).

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use cratetorrent_metainfo::Metainfo;
use cratetorrent_storage::load_metadata;
use cratetorrent_wire::Bitfield;

use super::{Engine, listen};
use crate::alert::Alert;
use crate::blocking::blocking;
use crate::conf::TorrentConf;
use crate::core::{self, Core, CoreInit, MagnetSource, Source};
use crate::handle::{Command, Mode, TorrentParams, TorrentSource};
use crate::torrent::{OpenStorage, Torrent, open_files};
use crate::{TorrentError, TorrentId};

/// What a torrent starts running with, besides its source and storage.
struct Started {
    id: TorrentId,
    conf: TorrentConf,
    seed_only: bool,
    have: Bitfield,
    peers: Vec<SocketAddr>,
    listen_addr: Option<SocketAddr>,
    deferred: Vec<Command>,
}

impl Started {
    fn new(
        engine: &Engine,
        id: TorrentId,
        conf: Option<TorrentConf>,
        mode: Mode,
        listen_addr: Option<SocketAddr>,
    ) -> Self {
        let (seed_only, peers) = match mode {
            Mode::Seed => (true, Vec::new()),
            Mode::Download { seeds } => (false, seeds),
        };
        Self {
            id,
            conf: conf.unwrap_or_else(|| engine.conf.torrent.clone()),
            seed_only,
            have: Bitfield::new(0),
            peers,
            listen_addr,
            deferred: Vec::new(),
        }
    }
}

/// Opens and checks a `.torrent`'s storage, then runs it.
pub(super) async fn start_torrent(engine: Rc<Engine>, id: TorrentId, params: TorrentParams) {
    let TorrentParams {
        source: TorrentSource::Metainfo(metainfo),
        listen_addr,
        mode,
        conf,
    } = params
    else {
        return;
    };
    let mut started = Started::new(&engine, id, conf, mode, listen_addr);
    let opened = open_files(&engine.shared, metainfo.clone()).await;
    started.deferred = engine.checking.borrow_mut().remove(&id).unwrap_or_default();
    let (storage, events, wake) = match opened {
        Some(Ok(opened)) => opened,
        Some(Err(error)) => {
            engine.release(id);
            engine.shared.alerts.post(Alert::TorrentError {
                id,
                error: TorrentError::Open(error),
            });
            return;
        }
        None => {
            engine.release(id);
            return;
        }
    };
    let removed = started
        .deferred
        .iter()
        .any(|c| matches!(c, Command::Remove { .. }));
    if engine.closing.get() || removed {
        let _ = blocking(move || storage.shutdown()).await;
        engine.release(id);
        return;
    }
    started.have = storage.have().clone();
    let source = Source::Metainfo(Box::new(metainfo));
    run_torrent(&engine, source, Some((storage, events, wake)), started);
}

/// Starts a torrent added by magnet link: from its metadata saved by an earlier run if there
/// is any (then as a `.torrent`), else at once with nothing on disk until the metadata comes.
pub(super) async fn start_magnet(engine: Rc<Engine>, id: TorrentId, params: TorrentParams) {
    let TorrentParams {
        source: TorrentSource::Magnet(magnet),
        listen_addr,
        mut mode,
        conf,
    } = params
    else {
        return;
    };
    let Some(info_hash) = magnet.info_hash else {
        return;
    };
    // `x.pe` peers given as IP:PORT (host names are not resolved).
    let named: Vec<SocketAddr> = magnet
        .peers
        .iter()
        .filter_map(|peer| peer.parse().ok())
        .collect();
    if let Mode::Download { seeds } = &mut mode {
        seeds.extend(&named);
    }
    let limit = conf
        .as_ref()
        .unwrap_or(&engine.conf.torrent)
        .max_metadata_size
        .saturating_mul(2);
    let dir = engine.conf.download_dir.clone();
    let saved = blocking(move || load_metadata(&dir, info_hash, limit)).await;
    let saved = match saved {
        Some(Ok(Some(bytes))) => Metainfo::from_bytes(&bytes)
            .ok()
            .filter(|metainfo| metainfo.info_hash() == info_hash),
        Some(Err(error)) => {
            tracing::warn!(%error, "cannot read the saved metadata; fetching it again");
            None
        }
        _ => None,
    };
    if let Some(metainfo) = saved {
        tracing::info!(%info_hash, "metadata found from an earlier run");
        if let Some(selected) = magnet.selected_files(metainfo.files().len()) {
            // Before the user's own commands, which win.
            let priorities = selected.into_iter().map(core::priority_of).collect();
            if let Some(deferred) = engine.checking.borrow_mut().get_mut(&id) {
                deferred.insert(0, Command::FilePriorities { id, priorities });
            }
        }
        let params = TorrentParams {
            source: metainfo.into(),
            listen_addr,
            mode,
            conf,
        };
        return start_torrent(engine, id, params).await;
    }
    let mut started = Started::new(&engine, id, conf, mode, listen_addr);
    started.deferred = engine.checking.borrow_mut().remove(&id).unwrap_or_default();
    let source = Source::Magnet(MagnetSource {
        info_hash,
        // Every `tr` a tier of its own, as libtorrent does.
        trackers: magnet
            .trackers
            .iter()
            .map(|url| vec![url.clone()])
            .collect(),
        web_seeds: magnet.web_seeds.clone(),
        select_only: magnet.select_only.clone(),
    });
    run_torrent(&engine, source, None, started);
}

/// Builds the torrent's core and shell, registers it, and gives it its peers and the
/// commands that waited for it.
fn run_torrent(
    engine: &Rc<Engine>,
    source: Source,
    storage: Option<OpenStorage>,
    started: Started,
) {
    let Started {
        id,
        conf,
        seed_only,
        have,
        peers,
        listen_addr,
        deferred,
    } = started;
    let piece_count = have.len();
    let pieces_had = have.count_ones();
    let has_storage = storage.is_some();
    let core = Core::new(
        CoreInit {
            id,
            source,
            our_id: engine.shared.our_id,
            listen_port: engine.listen_port,
            dht_port: engine.shared.dht_port.get(),
            conf,
            seed_only,
            have,
            seed: engine.shared.session.borrow_mut().torrent_seed(),
        },
        Instant::now(),
    );
    let info_hash = core.info_hash();
    let torrent = Torrent::start(core, storage, engine.shared.clone());
    engine
        .shared
        .torrents
        .borrow_mut()
        .insert(id, torrent.clone());
    tracing::info!(%id, %info_hash, pieces_had, piece_count, net = ?engine.shared.net, "torrent started");
    // A magnet link's torrent is started (and maybe complete) once its storage opens.
    if has_storage {
        engine.shared.alerts.post(Alert::TorrentStarted {
            id,
            pieces_had,
            piece_count,
        });
        if pieces_had == piece_count && !seed_only {
            engine.shared.alerts.post(Alert::TorrentComplete(id));
        }
    }
    torrent.command(core::Command::AddPeers(peers));
    for command in deferred {
        engine.handle(command);
    }
    if let Some(addr) = listen_addr {
        match std::net::TcpListener::bind(addr) {
            Ok(listener) => listen(engine, listener),
            Err(error) => engine.shared.alerts.post(Alert::TorrentError {
                id,
                error: TorrentError::Listen {
                    addr,
                    source: std::sync::Arc::new(error),
                },
            }),
        }
    }
}
