//! One torrent of a session: where it comes from, its phase (checking, downloading, seeding,
//! done), its seeding limits, and the lines that report it.

use std::path::PathBuf;
use std::time::Instant;

use cratetorrent::prelude::*;
use cratetorrent::{TorrentState, TorrentStats};
use cratetorrent_metainfo::InfoHash;
use serde_json::json;

use super::stall::Stall;
use super::{SessionArgs, Shared};
use crate::error::{CliError, Result};
use crate::lock::DirLock;
use crate::progress::{Detail, Reporter, Slot};
use crate::units::{format_bytes, format_duration, format_rate};

/// A torrent read from the command line, before the engine runs.
pub(super) struct Prepared {
    /// As given.
    pub(super) text: String,
    source: TorrentSource,
    priorities: Option<Vec<u8>>,
    info_hash: Option<InfoHash>,
    name: String,
    total: u64,
    trackers: usize,
    files: usize,
    /// The metadata, to find files on disk larger than it says (None for a magnet link).
    metainfo: Option<Metainfo>,
    lock: Option<DirLock>,
}

impl Prepared {
    pub(super) fn new(text: &str, args: &SessionArgs) -> Result<Self> {
        let (only, saving) = (&args.only, args.save_torrent.is_some());
        if crate::source::is_magnet(text) {
            let magnet =
                Magnet::parse(text).map_err(|e| CliError::with("not a usable magnet link", &e))?;
            if !only.is_empty() {
                return Err(CliError::new(
                    "--only needs the torrent's file list: with a magnet link, save its \
                     metadata with --save-torrent FILE and download FILE with --only",
                ));
            }
            let name = magnet.display_name.clone().unwrap_or_else(|| {
                magnet
                    .info_hash
                    .map_or_else(String::new, |hash| hash.to_hex())
            });
            return Ok(Self {
                text: text.to_owned(),
                info_hash: magnet.info_hash,
                trackers: magnet.trackers.len() + magnet.peers.len(),
                name,
                total: 0,
                files: 0,
                priorities: None,
                metainfo: None,
                source: TorrentSource::Magnet(magnet),
                lock: None,
            });
        }
        if saving {
            return Err(CliError::new(
                "--save-torrent saves a magnet link's metadata: this torrent is a file already",
            ));
        }
        let metainfo = crate::source::load(text)?;
        let priorities = crate::select::priorities(&metainfo, only)?;
        if !args.seed_only {
            super::space::check(&metainfo, priorities.as_deref(), &args.dir)?;
        }
        Ok(Self {
            text: text.to_owned(),
            info_hash: Some(metainfo.info_hash()),
            name: metainfo.name().to_owned(),
            total: metainfo.total_length(),
            trackers: metainfo.trackers().iter().map(Vec::len).sum(),
            files: metainfo.files().iter().filter(|f| !f.is_padding()).count(),
            priorities,
            metainfo: Some(metainfo.clone()),
            source: TorrentSource::Metainfo(metainfo),
            lock: None,
        })
    }

    pub(super) fn same_torrent(&self, other: &Self) -> bool {
        self.info_hash.is_some() && self.info_hash == other.info_hash
    }

    /// Takes the torrent's lock in `dir` (a v2-only magnet link has no v1 hash to name it by,
    /// and is not locked).
    pub(super) fn lock(&mut self, dir: &std::path::Path, verb: &str) -> Result<()> {
        if let Some(hash) = &self.info_hash {
            self.lock = Some(DirLock::acquire(dir, hash, verb)?);
        }
        Ok(())
    }
}

enum Phase {
    /// Checking the data on disk, or fetching the metadata.
    Starting,
    Downloading,
    Seeding {
        since: Instant,
    },
    Done(Outcome),
}

/// How a torrent's part of the session ended.
pub(super) enum Outcome {
    /// Complete, or seeded to its limits.
    Finished,
    /// Stopped by a signal before it completed.
    Unfinished,
    Failed {
        error: CliError,
        /// Printed already, when it happened.
        told: bool,
    },
}

/// What `--on-complete` is told about a torrent that completed.
pub(super) struct Completed {
    pub(super) id: TorrentId,
    pub(super) name: String,
    pub(super) path: PathBuf,
    pub(super) info_hash: String,
}

/// A torrent on the engine.
pub(super) struct Entry {
    id: TorrentId,
    slot: Slot,
    info_hash: Option<InfoHash>,
    name: String,
    total: u64,
    files: usize,
    selected: Option<usize>,
    metainfo: Option<Metainfo>,
    phase: Phase,
    stats: Option<Box<TorrentStats>>,
    stall: Stall,
    /// Its final line is printed (complete, or seeded to its limits).
    reported: bool,
    /// Its failure was printed when it happened.
    told: bool,
    _lock: Option<DirLock>,
}

impl Entry {
    /// Adds the torrent to the engine, with its file selection and peers.
    pub(super) fn start(
        prepared: Prepared,
        args: &SessionArgs,
        engine: &EngineHandle,
        reporter: &mut Reporter,
    ) -> Result<Self> {
        let mode = if args.seed_only {
            Mode::Seed
        } else {
            Mode::Download {
                seeds: args.peers.clone(),
            }
        };
        let id = engine
            .create_torrent(TorrentParams {
                source: prepared.source,
                listen_addr: None,
                mode,
                conf: None,
            })
            .map_err(|e| {
                CliError::with(format!("{}: cannot add the torrent", prepared.text), &e)
            })?;
        let selected = prepared
            .priorities
            .as_ref()
            .map(|p| p.iter().filter(|&&p| p > 0).count());
        if let Some(priorities) = prepared.priorities {
            engine
                .set_file_priorities(id, priorities)
                .map_err(|e| CliError::with("cannot set file priorities", &e))?;
        }
        if args.seed_only && !args.peers.is_empty() {
            engine
                .add_peers(id, args.peers.clone())
                .map_err(|e| CliError::with("cannot add peers", &e))?;
        }
        let slot = reporter.add(&prepared.name);
        Ok(Self {
            id,
            slot,
            info_hash: prepared.info_hash,
            name: prepared.name,
            total: prepared.total,
            files: prepared.files,
            selected,
            metainfo: prepared.metainfo,
            phase: Phase::Starting,
            stats: None,
            stall: Stall::new(prepared.trackers, &args.peers, !args.discovery.no_dht),
            reported: false,
            told: false,
            _lock: prepared.lock,
        })
    }

    pub(super) fn id(&self) -> TorrentId {
        self.id
    }

    pub(super) fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done(_))
    }

    pub(super) fn fail(&mut self, error: CliError) {
        if !self.is_done() {
            self.phase = Phase::Done(Outcome::Failed { error, told: false });
        }
    }

    /// Handles one of this torrent's alerts; returns what `--on-complete` needs when the
    /// torrent just completed.
    pub(super) fn on_alert(
        &mut self,
        alert: Alert,
        shared: &Shared<'_>,
        reporter: &mut Reporter,
    ) -> Option<Completed> {
        if self.is_done() {
            return None;
        }
        let args = shared.args;
        let name = self.name.clone();
        match alert {
            Alert::TorrentStarted {
                pieces_had,
                piece_count,
                ..
            } => {
                if args.seed_only && pieces_had == 0 && piece_count > 0 {
                    self.fail(CliError::new(format!(
                        "{}: no piece of `{name}` verified; nothing to seed",
                        args.dir.display()
                    )));
                    return None;
                }
                self.oversized(args, reporter);
                if pieces_had > 0 || args.seed_only {
                    reporter.note(
                        "checked",
                        &format!("{name}: {pieces_had}/{piece_count} pieces verified on disk"),
                    );
                }
                // A resumed download starts where its verified pieces put it.
                let fraction = f64::from(pieces_had) / f64::from(piece_count.max(1));
                let detail = Detail::new(0, format!("{pieces_had}/{piece_count} pieces on disk"));
                if pieces_had > 0 {
                    reporter.show(self.slot, Some(fraction), &[detail]);
                }
                if matches!(self.phase, Phase::Starting) {
                    self.phase = if args.seed_only {
                        Phase::Seeding {
                            since: Instant::now(),
                        }
                    } else {
                        Phase::Downloading
                    };
                }
            }
            Alert::TorrentStats(stats) => {
                reporter.stats(self.slot, &stats);
                self.stats = Some(stats);
                self.check_limits(shared, reporter);
            }
            Alert::MetadataReceived { metainfo, .. } => {
                self.metadata(&metainfo, args, reporter);
            }
            Alert::TorrentComplete(_) => return self.complete(args),
            Alert::TorrentError { error, .. } => {
                // Before the torrent starts, an error means it never will; a full disk stops it.
                if error.is_no_space() {
                    let left = self.stats.as_ref().map(|s| s.bytes_left);
                    let figures = super::space::explain(&args.dir, left);
                    let error = CliError::new(format!("{name}: {error}{figures}"));
                    // Said now: what shutting down reports after it is a consequence.
                    reporter.error(&error.to_string());
                    self.fail(error);
                    self.told = true;
                } else if matches!(self.phase, Phase::Starting) {
                    self.fail(CliError::new(format!("{name}: {error}")));
                } else {
                    reporter.note("error", &format!("{name}: {error}"));
                }
            }
            Alert::PeerBanned { addr, .. } => {
                reporter.note(
                    "banned",
                    &format!("{name}: banned {addr} for sending corrupt data"),
                );
            }
            Alert::TrackerReply { url, .. } => self.stall.tracker_replied(&url),
            Alert::TrackerError { url, error, .. } => {
                reporter.note("tracker_error", &format!("{name}: tracker {url}: {error}"));
                self.stall.tracker_failed(&url, &error);
            }
            Alert::TrackerWarning { url, message, .. } => {
                reporter.note(
                    "tracker_warning",
                    &format!("{name}: tracker {url} warns: {message}"),
                );
            }
            _ => {}
        }
        None
    }

    /// Files larger than the torrent says: cut to size once their pieces are checked (a
    /// download owns its files), only reported when seeding (the data is the user's).
    fn oversized(&self, args: &SessionArgs, reporter: &mut Reporter) {
        let Some(metainfo) = &self.metainfo else {
            return;
        };
        let layout = cratetorrent_storage::Layout::new(metainfo, &args.dir);
        let found = if args.seed_only {
            Ok(cratetorrent_storage::oversized_files(&layout))
        } else {
            cratetorrent_storage::truncate_oversized(&layout)
        };
        match found {
            Ok(found) => {
                for file in found {
                    let done = if args.seed_only {
                        "its extra bytes are not the torrent's"
                    } else {
                        "cut to size"
                    };
                    reporter.note(
                        "oversized",
                        &format!(
                            "{}: {} bytes where the torrent says {}: {done}",
                            file.path.display(),
                            file.size,
                            file.expected
                        ),
                    );
                }
            }
            Err(error) => reporter.note(
                "oversized",
                &format!("{}: cannot cut files to size: {error}", self.name),
            ),
        }
    }

    fn metadata(&mut self, metainfo: &Metainfo, args: &SessionArgs, reporter: &mut Reporter) {
        self.name = metainfo.name().to_owned();
        self.info_hash = Some(metainfo.info_hash());
        self.total = metainfo.total_length();
        self.files = metainfo.files().iter().filter(|f| !f.is_padding()).count();
        self.metainfo = Some(metainfo.clone());
        reporter.rename(self.slot, &self.name);
        let seconds = reporter.elapsed();
        reporter.event(
            "metadata",
            &format!(
                "{}: metadata received in {seconds:.1} s ({} in {} pieces)",
                self.name,
                format_bytes(self.total),
                metainfo.piece_count()
            ),
            json!({
                "info_hash": metainfo.info_hash().to_hex(),
                "name": self.name,
                "total_length": self.total,
                "num_pieces": metainfo.piece_count(),
                "seconds": seconds,
            }),
        );
        if let Some(path) = &args.save_torrent
            && let Err(error) = std::fs::write(path, metainfo.to_torrent_bytes())
        {
            self.fail(CliError::with(
                format!("cannot save the metadata to {}", path.display()),
                &error,
            ));
        }
    }

    fn complete(&mut self, args: &SessionArgs) -> Option<Completed> {
        if !matches!(self.phase, Phase::Starting | Phase::Downloading) {
            return None;
        }
        let completed = Completed {
            id: self.id,
            name: self.name.clone(),
            path: args.dir.join(&self.name),
            info_hash: self.info_hash.map_or_else(String::new, |h| h.to_hex()),
        };
        self.phase = if args.keep_seeding || args.limits.any() {
            Phase::Seeding {
                since: Instant::now(),
            }
        } else {
            Phase::Done(Outcome::Finished)
        };
        Some(completed)
    }

    /// Says the torrent is complete, with the engine's figures of that moment.
    pub(super) fn report_complete(
        &mut self,
        stats: Option<&TorrentStats>,
        args: &SessionArgs,
        reporter: &mut Reporter,
    ) {
        let stats = stats.or(self.stats.as_deref());
        let downloaded = stats.map_or(0, |s| s.downloaded);
        let wanted = stats.map_or(self.total, |s| s.bytes_wanted);
        let elapsed = reporter.elapsed();
        let mut line = format!(
            "{}: complete: {} fetched in {elapsed:.1} s ({})",
            self.name,
            format_bytes(downloaded),
            format_rate(downloaded as f64 / elapsed.max(1e-3)),
        );
        let on_disk = wanted.saturating_sub(downloaded);
        if on_disk > 0 {
            line.push_str(&format!(", {} was on disk already", format_bytes(on_disk)));
        }
        if let Some(selected) = self.selected {
            line.push_str(&format!(", {selected} of {} files", self.files));
        }
        line.push_str(&format!(
            "; saved in {}",
            args.dir.join(&self.name).display()
        ));
        let figures = self.figures(stats, args);
        if matches!(self.phase, Phase::Seeding { .. }) {
            let until = if args.limits.any() {
                limits_text(args)
            } else {
                "until Ctrl-C".to_owned()
            };
            line.push_str(&format!("; seeding {until}"));
            reporter.event("complete", &line, figures);
        } else {
            reporter.done(self.slot, "complete", &line, figures);
            self.reported = true;
        }
    }

    fn figures(&self, stats: Option<&TorrentStats>, args: &SessionArgs) -> serde_json::Value {
        json!({
            "name": self.name,
            "downloaded": stats.map_or(0, |s| s.downloaded),
            "uploaded": stats.map_or(0, |s| s.uploaded),
            "ratio": stats.map_or(0.0, crate::progress::ratio),
            "pieces_had": stats.map(|s| s.pieces_had),
            "piece_count": stats.map(|s| s.piece_count),
            "path": args.dir.join(&self.name),
        })
    }

    /// Ends seeding when a limit is met (the torrent is paused: the others go on).
    fn check_limits(&mut self, shared: &Shared<'_>, reporter: &mut Reporter) {
        let limits = shared.args.limits;
        let (Phase::Seeding { since }, Some(stats)) = (&self.phase, &self.stats) else {
            return;
        };
        if stats.state != TorrentState::Seeding && !shared.args.seed_only {
            return;
        }
        let ratio = crate::progress::ratio(stats);
        let ratio_met = limits.ratio.is_some_and(|r| ratio >= r);
        let time_met = limits.time.is_some_and(|t| since.elapsed() >= t);
        if !(ratio_met || time_met) {
            return;
        }
        let line = format!(
            "{}: seeded to its limit: {} up, ratio {ratio:.2}, in {}; data in {}",
            self.name,
            format_bytes(stats.uploaded),
            format_duration(since.elapsed().as_secs()),
            shared.args.dir.join(&self.name).display()
        );
        let figures = self.figures(Some(stats), shared.args);
        reporter.done(self.slot, "seeded", &line, figures);
        let _ = shared.engine.pause(self.id);
        self.phase = Phase::Done(Outcome::Finished);
        self.reported = true;
    }

    /// Once every five seconds without a peer, says why (once, until peers come).
    pub(super) fn check_stall(&mut self, reporter: &mut Reporter) {
        if !matches!(self.phase, Phase::Starting | Phase::Downloading) {
            return;
        }
        if let Some(reason) = self.stall.check(self.stats.as_deref(), Instant::now()) {
            reporter.note("stalled", &format!("{}: {reason}", self.name));
        }
    }

    /// The torrent's final line if it has none yet; how it ended.
    pub(super) fn finish(
        mut self,
        stats: Option<&TorrentStats>,
        args: &SessionArgs,
        reporter: &mut Reporter,
    ) -> Outcome {
        let phase = std::mem::replace(&mut self.phase, Phase::Starting);
        let outcome = match phase {
            Phase::Done(Outcome::Failed { error, .. }) => {
                return Outcome::Failed {
                    error,
                    told: self.told,
                };
            }
            Phase::Done(outcome) => outcome,
            Phase::Seeding { .. } => Outcome::Finished,
            Phase::Starting | Phase::Downloading => Outcome::Unfinished,
        };
        if self.reported {
            return outcome;
        }
        let stats = stats.or(self.stats.as_deref());
        let had = stats.map_or(0, |s| s.pieces_had);
        let count = stats.map_or(0, |s| s.piece_count);
        let mut line = format!(
            "{}: stopped with {had}/{count} pieces; {} down, {} up",
            self.name,
            format_bytes(stats.map_or(0, |s| s.downloaded)),
            format_bytes(stats.map_or(0, |s| s.uploaded)),
        );
        if let Some(stats) = stats.filter(|s| s.uploaded > 0) {
            line.push_str(&format!(" (ratio {:.2})", crate::progress::ratio(stats)));
        }
        line.push_str(&format!(
            "; data in {}",
            args.dir.join(&self.name).display()
        ));
        let figures = self.figures(stats, args);
        reporter.done(self.slot, "stopped", &line, figures);
        outcome
    }
}

fn limits_text(args: &SessionArgs) -> String {
    let mut parts = Vec::new();
    if let Some(ratio) = args.limits.ratio {
        parts.push(format!("to ratio {ratio:.2}"));
    }
    if let Some(time) = args.limits.time {
        parts.push(format!("for {}", format_duration(time.as_secs())));
    }
    parts.join(" or ")
}
