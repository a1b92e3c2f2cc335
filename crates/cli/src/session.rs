//! `download` and `seed`: one torrent on an engine, until it completes or a signal arrives.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use cratetorrent::prelude::*;
use serde_json::json;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::error::{CliError, Result};
use crate::progress::{Reporter, Style};
use crate::units::{format_bytes, format_rate};

/// The port tried first when no `--listen` is given (as other clients do).
const DEFAULT_PORT: u16 = 6881;

/// Exit code after an interrupted download (128 + SIGINT, as shells report it).
const INTERRUPTED: u8 = 130;

/// What to run.
pub(crate) struct SessionArgs {
    pub(crate) torrent: String,
    /// Where the torrent's root is (download) or already is (seed).
    pub(crate) dir: PathBuf,
    pub(crate) peers: Vec<SocketAddr>,
    pub(crate) listen: Option<SocketAddr>,
    /// `seed`: verify and seed what is there, never download.
    pub(crate) seed_only: bool,
    /// `download --seed`: keep seeding after completion.
    pub(crate) keep_seeding: bool,
    pub(crate) max_peers: Option<usize>,
    pub(crate) download_limit: u64,
    pub(crate) upload_limit: u64,
    pub(crate) upload_slots: Option<usize>,
    pub(crate) only: Vec<usize>,
    pub(crate) sequential: bool,
    /// `download --save-torrent`: where a magnet link's metadata is written once verified.
    pub(crate) save_torrent: Option<PathBuf>,
    pub(crate) discovery: Discovery,
}

/// How peers are found besides the tracker and the given ones.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Discovery {
    /// Do not exchange peers with peers (BEP 11 PEX; never done for private torrents).
    #[arg(long)]
    pub(crate) no_pex: bool,
    /// Do not announce to, nor listen for, peers on the local network (BEP 14 local service
    /// discovery by multicast; never done for private torrents).
    #[arg(long)]
    pub(crate) no_lsd: bool,
    /// Do not run a DHT node (BEP 5; by default one runs on the listen port over UDP, and
    /// torrents that are not private are announced to it and found through it).
    #[arg(long)]
    pub(crate) no_dht: bool,
    /// A DHT node to bootstrap from, HOST:PORT (repeatable; replaces the default public
    /// routers).
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) dht_bootstrap: Vec<String>,
}

pub(crate) fn run(args: SessionArgs, style: Style) -> Result<ExitCode> {
    let (source, priorities) = if crate::info::is_magnet(&args.torrent) {
        let magnet = Magnet::parse(&args.torrent)
            .map_err(|e| CliError::with("not a usable magnet link", &e))?;
        if !args.only.is_empty() {
            return Err(CliError::new(
                "--only needs the torrent's file list: with a magnet link, save its metadata \
                 with --save-torrent FILE and download FILE with --only",
            ));
        }
        (TorrentSource::Magnet(magnet), None)
    } else {
        let metainfo = crate::info::load(&args.torrent)?;
        let priorities = priorities(&metainfo, &args.only)?;
        (TorrentSource::Metainfo(metainfo), priorities)
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::with("cannot start the runtime", &e))?;
    runtime.block_on(session(args, source, priorities, style))
}

/// File priorities for `--only` (0 = skip), checked against the torrent's files.
fn priorities(metainfo: &Metainfo, only: &[usize]) -> Result<Option<Vec<u8>>> {
    if only.is_empty() {
        return Ok(None);
    }
    let count = metainfo.files().len();
    let mut priorities = vec![0u8; count];
    for &index in only {
        let slot = priorities.get_mut(index).ok_or_else(|| {
            CliError::new(format!(
                "--only {index}: the torrent has files 0 to {} (see `cratetorrent info`)",
                count.saturating_sub(1)
            ))
        })?;
        *slot = 1;
    }
    Ok(Some(priorities))
}

/// Starts an engine on `listen`, or on the default port with fallbacks to any free port.
/// The `--io-backend` every engine of this process runs on.
static IO_BACKEND: std::sync::OnceLock<cratetorrent::IoBackend> = std::sync::OnceLock::new();

pub(crate) fn set_io_backend(backend: cratetorrent::IoBackend) {
    let _ = IO_BACKEND.set(backend);
}

pub(crate) fn spawn_engine(
    mut conf: Conf,
    listen: Option<SocketAddr>,
) -> Result<(EngineHandle, Alerts)> {
    conf.io_backend = IO_BACKEND.get().copied().unwrap_or_default();
    let candidates = match listen {
        Some(addr) => vec![addr],
        None => vec![
            SocketAddr::from((Ipv6Addr::UNSPECIFIED, DEFAULT_PORT)),
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_PORT)),
            SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        ],
    };
    let mut last = None;
    for addr in candidates {
        conf.listen_addr = addr;
        match engine::spawn(conf.clone()) {
            Ok(engine) => return Ok(engine),
            Err(error @ EngineError::Listen { .. }) => last = Some(error),
            Err(error) => return Err(CliError::with("cannot start the engine", &error)),
        }
    }
    let error = last.unwrap_or(EngineError::Closed);
    Err(CliError::with("cannot start the engine", &error))
}

struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn new() -> Result<Self> {
        let install = |kind| signal(kind).map_err(|e| CliError::with("cannot handle signals", &e));
        Ok(Self {
            interrupt: install(SignalKind::interrupt())?,
            terminate: install(SignalKind::terminate())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// How a session ended.
enum End {
    Complete,
    Interrupted,
    Failed(CliError),
}

async fn session(
    args: SessionArgs,
    source: TorrentSource,
    priorities: Option<Vec<u8>>,
    style: Style,
) -> Result<ExitCode> {
    let mut signals = Signals::new()?;
    let mut conf = Conf::new(&args.dir);
    conf.download_rate_limit = args.download_limit;
    conf.upload_rate_limit = args.upload_limit;
    if let Some(max) = args.max_peers {
        conf.torrent.max_connections = max.max(1);
        conf.max_connections = conf.max_connections.max(max);
    }
    conf.torrent.sequential = args.sequential;
    conf.torrent.pex = !args.discovery.no_pex;
    conf.lsd = !args.discovery.no_lsd;
    conf.dht.enabled = !args.discovery.no_dht;
    if !args.discovery.dht_bootstrap.is_empty() {
        conf.dht.bootstrap.clone_from(&args.discovery.dht_bootstrap);
    }
    if let Some(slots) = args.upload_slots {
        conf.torrent.unchoke_slots = slots;
    }
    let (engine, mut alerts) = spawn_engine(conf, args.listen)?;
    let mode = if args.seed_only {
        Mode::Seed
    } else {
        Mode::Download {
            seeds: args.peers.clone(),
        }
    };
    // A magnet link's torrent is named by its `dn` (or hash) until its metadata comes.
    let (mut name, mut total) = match &source {
        TorrentSource::Metainfo(metainfo) => (metainfo.name().to_owned(), metainfo.total_length()),
        TorrentSource::Magnet(magnet) => (
            magnet.display_name.clone().unwrap_or_else(|| {
                magnet
                    .info_hash
                    .map_or_else(String::new, |hash| hash.to_hex())
            }),
            0,
        ),
    };
    let id = engine
        .create_torrent(TorrentParams {
            source,
            listen_addr: None,
            mode,
            conf: None,
        })
        .map_err(|e| CliError::with("cannot add the torrent", &e))?;
    if let Some(priorities) = priorities {
        engine
            .set_file_priorities(id, priorities)
            .map_err(|e| CliError::with("cannot set file priorities", &e))?;
    }
    if args.seed_only && !args.peers.is_empty() {
        engine
            .add_peers(id, args.peers.clone())
            .map_err(|e| CliError::with("cannot add peers", &e))?;
    }
    let label = if args.seed_only { "seed" } else { "download" };
    let mut reporter = Reporter::new(style, label);
    reporter.note(
        "listening",
        &format!("{name}: listening on {}", engine.listen_addr()),
    );
    let mut started = false;
    let mut seeding = args.seed_only;
    let end = loop {
        let alert = tokio::select! {
            alert = alerts.next() => alert,
            () = signals.recv() => break End::Interrupted,
        };
        let Some(alert) = alert else {
            break End::Failed(CliError::new("the engine stopped unexpectedly"));
        };
        match alert {
            Alert::TorrentStarted {
                pieces_had,
                piece_count,
                ..
            } => {
                started = true;
                if args.seed_only && pieces_had == 0 && piece_count > 0 {
                    break End::Failed(CliError::new(format!(
                        "{}: no piece of `{name}` verified; nothing to seed",
                        args.dir.display()
                    )));
                }
                if pieces_had > 0 || args.seed_only {
                    reporter.note(
                        "checked",
                        &format!("{name}: {pieces_had}/{piece_count} pieces verified on disk"),
                    );
                }
            }
            Alert::TorrentStats(stats) => reporter.stats(&stats),
            Alert::MetadataReceived { metainfo, .. } => {
                name = metainfo.name().to_owned();
                total = metainfo.total_length();
                let seconds = reporter.elapsed();
                reporter.event(
                    "metadata",
                    &format!(
                        "{name}: metadata received in {seconds:.1} s ({} in {} pieces)",
                        format_bytes(total),
                        metainfo.piece_count()
                    ),
                    json!({
                        "info_hash": metainfo.info_hash().to_hex(),
                        "name": name,
                        "total_length": total,
                        "num_pieces": metainfo.piece_count(),
                        "seconds": seconds,
                    }),
                );
                if let Some(path) = &args.save_torrent
                    && let Err(error) = std::fs::write(path, metainfo.to_torrent_bytes())
                {
                    break End::Failed(CliError::with(
                        format!("cannot save the metadata to {}", path.display()),
                        &error,
                    ));
                }
            }
            Alert::TorrentComplete(_) => {
                if args.keep_seeding {
                    seeding = true;
                    reporter.note(
                        "complete",
                        &format!("{name}: complete; seeding until Ctrl-C"),
                    );
                } else if !args.seed_only {
                    break End::Complete;
                }
            }
            Alert::TorrentError { error, .. } => {
                // Before the torrent starts, an error means it never will; a full disk stops it.
                if !started || error.is_no_space() {
                    break End::Failed(CliError::new(format!("{name}: {error}")));
                }
                reporter.note("error", &format!("{name}: {error}"));
            }
            Alert::PeerBanned { addr, .. } => {
                reporter.note("banned", &format!("banned {addr} for sending corrupt data"));
            }
            Alert::TrackerError { url, error, .. } => {
                reporter.note("tracker_error", &format!("tracker {url}: {error}"));
            }
            Alert::TrackerWarning { url, message, .. } => {
                reporter.note(
                    "tracker_warning",
                    &format!("tracker {url} warns: {message}"),
                );
            }
            _ => {}
        }
    };
    let stats = engine.stats(id).await.ok();
    let elapsed = reporter.elapsed();
    if matches!(end, End::Interrupted) {
        reporter.note(
            "shutdown",
            "shutting down: saving resume data (Ctrl-C again to quit at once)",
        );
    }
    let closed = tokio::select! {
        closed = engine.shutdown() => closed,
        () = signals.recv() => std::process::exit(i32::from(INTERRUPTED)),
    };
    if let Err(error) = closed {
        return Err(CliError::with("shutting down", &error));
    }
    let downloaded = stats.as_ref().map_or(0, |s| s.downloaded);
    let uploaded = stats.as_ref().map_or(0, |s| s.uploaded);
    let figures = json!({
        "downloaded": downloaded,
        "uploaded": uploaded,
        "pieces_had": stats.as_ref().map(|s| s.pieces_had),
        "piece_count": stats.as_ref().map(|s| s.piece_count),
    });
    match end {
        End::Failed(error) => Err(error),
        End::Complete => {
            reporter.done(
                "complete",
                &format!(
                    "{name}: complete, {} ({}) fetched in {elapsed:.1} s, {}",
                    format_bytes(downloaded),
                    format_bytes(total),
                    format_rate(downloaded as f64 / elapsed.max(1e-3)),
                ),
                figures,
            );
            Ok(ExitCode::SUCCESS)
        }
        End::Interrupted => {
            let had = stats.as_ref().map_or(0, |s| s.pieces_had);
            let count = stats.as_ref().map_or(0, |s| s.piece_count);
            reporter.done(
                "stopped",
                &format!(
                    "{name}: stopped with {had}/{count} pieces; {} down, {} up",
                    format_bytes(downloaded),
                    format_bytes(uploaded)
                ),
                figures,
            );
            // Seeding ends with a signal: that is success. A download that did not finish is not.
            Ok(if seeding || had == count {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(INTERRUPTED)
            })
        }
    }
}
