//! `download` and `seed`: torrents on one engine (one listen port, one display), until each
//! completes or meets its seeding limits, or a signal arrives.

mod entry;
mod hook;
mod space;
mod stall;

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use cratetorrent::prelude::*;
use cratetorrent::{CryptoMethods, Encryption, Transport};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::error::{CliError, Result};
use crate::progress::{Reporter, Style};
use entry::{Entry, Outcome, Prepared};

/// The port tried first when no `--listen` is given (as other clients do).
const DEFAULT_PORT: u16 = 6881;

/// Exit code after an interrupted download (128 + SIGINT, as shells report it).
const INTERRUPTED: u8 = 130;

/// What to run.
pub(crate) struct SessionArgs {
    /// `.torrent` files, URLs to them, or magnet links.
    pub(crate) torrents: Vec<String>,
    /// Where the torrents' roots are (download) or already are (seed).
    pub(crate) dir: PathBuf,
    pub(crate) peers: Vec<SocketAddr>,
    pub(crate) listen: Option<SocketAddr>,
    /// `seed`: verify and seed what is there, never download.
    pub(crate) seed_only: bool,
    /// `download --seed`: keep seeding after completion.
    pub(crate) keep_seeding: bool,
    /// When seeding stops by itself (implies `keep_seeding`).
    pub(crate) limits: SeedLimits,
    pub(crate) max_peers: Option<usize>,
    pub(crate) download_limit: u64,
    pub(crate) upload_limit: u64,
    pub(crate) upload_slots: Option<usize>,
    /// `--only`: file indices, ranges and globs.
    pub(crate) only: Vec<String>,
    pub(crate) sequential: bool,
    /// `download --save-torrent`: where a magnet link's metadata is written once verified.
    pub(crate) save_torrent: Option<PathBuf>,
    /// `download --on-complete`: a shell command run when a torrent completes.
    pub(crate) on_complete: Option<String>,
    pub(crate) discovery: Discovery,
}

/// `--seed-ratio` and `--seed-time`: seeding ends when either is met.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SeedLimits {
    /// Uploaded bytes over the torrent's wanted size.
    pub(crate) ratio: Option<f64>,
    /// Time spent seeding.
    pub(crate) time: Option<Duration>,
}

impl SeedLimits {
    fn any(self) -> bool {
        self.ratio.is_some() || self.time.is_some()
    }
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
    /// Do not download from web seeds (BEP 19: HTTP(S) servers holding the files, named by
    /// the torrent's `url-list` or a magnet link's `ws`; by default up to 8 are used beside
    /// the peers).
    #[arg(long)]
    pub(crate) no_web_seeds: bool,
    /// Message stream encryption of peer connections: `prefer` dials encrypted and falls back
    /// to plain, accepting both; `require` refuses plain connections both ways; `rc4` also
    /// refuses an encrypted handshake's plaintext payload (RC4 only, libtorrent's
    /// `allowed_enc_level` 2); `off` makes and accepts plain ones only.
    #[arg(long, value_enum, default_value = "prefer")]
    pub(crate) encryption: EncryptionArg,
    /// Transports of peer connections: `both` dials uTP first and TCP after a second without
    /// an answer, and accepts both; `tcp` and `utp` dial only that one (uTP runs on the listen
    /// port's number over UDP, beside the DHT).
    #[arg(long, value_enum, default_value = "both")]
    pub(crate) transport: TransportArg,
}

/// `--transport`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum TransportArg {
    Tcp,
    Utp,
    Both,
}

/// `--encryption`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum EncryptionArg {
    Off,
    Prefer,
    Require,
    Rc4,
}

pub(crate) fn run(args: SessionArgs, style: Style) -> Result<ExitCode> {
    if let Ok(meta) = std::fs::metadata(&args.dir)
        && !meta.is_dir()
    {
        return Err(CliError::new(format!(
            "-o {} is a file: give the directory to download into",
            args.dir.display()
        )));
    }
    if args.torrents.len() > 1 && (args.save_torrent.is_some() || !args.only.is_empty()) {
        return Err(CliError::new(
            "--only and --save-torrent apply to one torrent: give one torrent with them",
        ));
    }
    let verb = if args.seed_only {
        "seeding"
    } else {
        "downloading"
    };
    let mut prepared: Vec<Prepared> = Vec::with_capacity(args.torrents.len());
    for text in &args.torrents {
        let next = Prepared::new(text, &args)?;
        if let Some(same) = prepared.iter().find(|p| p.same_torrent(&next)) {
            return Err(CliError::new(format!(
                "{} and {text} are the same torrent: give it once",
                same.text
            )));
        }
        prepared.push(next);
    }
    // Locked before the engine starts, so a second process touches nothing.
    for torrent in &mut prepared {
        torrent.lock(&args.dir, verb)?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::with("cannot start the runtime", &e))?;
    runtime.block_on(session(args, prepared, style))
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

/// The engine's settings from the command line.
fn engine_conf(args: &SessionArgs) -> Conf {
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
    if args.discovery.no_web_seeds {
        conf.torrent.max_web_seeds = 0;
    }
    conf.encryption = match args.discovery.encryption {
        EncryptionArg::Off => Encryption::Off,
        EncryptionArg::Prefer => Encryption::Prefer,
        EncryptionArg::Require | EncryptionArg::Rc4 => Encryption::Require,
    };
    if let EncryptionArg::Rc4 = args.discovery.encryption {
        conf.encryption_levels = CryptoMethods::RC4;
    }
    conf.transport = match args.discovery.transport {
        TransportArg::Tcp => Transport::Tcp,
        TransportArg::Utp => Transport::Utp,
        TransportArg::Both => Transport::Both,
    };
    if !args.discovery.dht_bootstrap.is_empty() {
        conf.dht.bootstrap.clone_from(&args.discovery.dht_bootstrap);
    }
    if let Some(slots) = args.upload_slots {
        conf.torrent.unchoke_slots = slots;
    }
    conf
}

/// What every torrent of the session shares.
pub(super) struct Shared<'a> {
    pub(super) args: &'a SessionArgs,
    pub(super) engine: &'a EngineHandle,
}

async fn session(args: SessionArgs, prepared: Vec<Prepared>, style: Style) -> Result<ExitCode> {
    let mut signals = Signals::new()?;
    let (engine, mut alerts) = spawn_engine(engine_conf(&args), args.listen)?;
    let mut reporter = Reporter::new(style);
    let mut entries = Vec::with_capacity(prepared.len());
    let mut by_id = HashMap::new();
    for torrent in prepared {
        let entry = Entry::start(torrent, &args, &engine, &mut reporter)?;
        by_id.insert(entry.id(), entries.len());
        entries.push(entry);
    }
    reporter.note(
        "listening",
        &format!("listening on {}", engine.listen_addr()),
    );
    let shared = Shared {
        args: &args,
        engine: &engine,
    };
    let mut hooks = hook::Hooks::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let interrupted = loop {
        if entries.iter().all(Entry::is_done) {
            break false;
        }
        let alert = tokio::select! {
            alert = alerts.next() => alert,
            () = signals.recv() => break true,
            _ = tick.tick() => {
                for entry in &mut entries {
                    entry.check_stall(&mut reporter);
                }
                continue;
            }
        };
        let Some(alert) = alert else {
            for entry in &mut entries {
                entry.fail(CliError::new("the engine stopped unexpectedly"));
            }
            break false;
        };
        let Some(&index) = alert_torrent(&alert).and_then(|id| by_id.get(&id)) else {
            continue;
        };
        if let Some(completed) = entries[index].on_alert(alert, &shared, &mut reporter) {
            let stats = engine.stats(completed.id).await.ok();
            entries[index].report_complete(stats.as_ref(), &args, &mut reporter);
            if let Some(command) = &args.on_complete {
                hooks.run(command, &completed, &mut reporter);
            }
        }
    };
    let mut finals = Vec::with_capacity(entries.len());
    for entry in &entries {
        finals.push(engine.stats(entry.id()).await.ok());
    }
    if interrupted {
        reporter.note(
            "shutdown",
            "shutting down: saving resume data (Ctrl-C again to quit at once)",
        );
    }
    let closed = tokio::select! {
        closed = engine.shutdown() => closed,
        () = signals.recv() => std::process::exit(i32::from(INTERRUPTED)),
    };
    hooks.wait(&mut reporter);
    let mut failure = None;
    let mut unfinished = false;
    for (entry, stats) in entries.into_iter().zip(finals) {
        match entry.finish(stats.as_ref(), &args, &mut reporter) {
            Outcome::Failed { error, told } => {
                if failure.is_some() {
                    reporter.note("error", &error.to_string());
                } else {
                    failure = Some((error, told));
                }
            }
            Outcome::Unfinished => unfinished = true,
            Outcome::Finished => {}
        }
    }
    reporter.clear();
    if let Some((error, told)) = failure {
        if told {
            return Ok(ExitCode::FAILURE);
        }
        return Err(error);
    }
    if let Err(error) = closed {
        return Err(CliError::with("shutting down", &error));
    }
    // Seeding ends with a signal: that is success. A download that did not finish is not.
    Ok(if unfinished {
        ExitCode::from(INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    })
}

/// The torrent an alert is about.
fn alert_torrent(alert: &Alert) -> Option<TorrentId> {
    Some(match alert {
        Alert::TorrentStarted { id, .. }
        | Alert::MetadataReceived { id, .. }
        | Alert::PeerBanned { id, .. }
        | Alert::TorrentError { id, .. }
        | Alert::TrackerReply { id, .. }
        | Alert::TrackerWarning { id, .. }
        | Alert::TrackerError { id, .. } => *id,
        Alert::TorrentStats(stats) => stats.id,
        Alert::TorrentComplete(id) | Alert::TorrentRemoved(id) => *id,
        _ => return None,
    })
}
