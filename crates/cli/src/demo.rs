//! `cratetorrent demo`: a whole swarm on loopback with nothing to set up. It writes a random
//! payload to a temporary directory, makes a torrent, seeds it from one or more engines,
//! downloads it with another, compares every byte, prints the figures and cleans up.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use cratetorrent::prelude::*;
use cratetorrent_metainfo::TorrentBuilder;
use serde_json::json;

use crate::error::{CliError, Result};
use crate::output::outln;
use crate::progress::{Reporter, Style};
use crate::units::{format_bytes, format_rate};

/// What to run.
pub(crate) struct DemoArgs {
    pub(crate) size: u64,
    pub(crate) files: usize,
    pub(crate) peers: usize,
}

/// Most files and seeders a demo takes.
const MAX_FILES: usize = 10_000;
const MAX_SEEDERS: usize = 64;

pub(crate) fn run(args: DemoArgs, style: Style) -> Result<ExitCode> {
    if args.size == 0 || args.files == 0 || args.files as u64 > args.size {
        return Err(CliError::new(
            "--size must be at least 1 byte and at least one byte per file",
        ));
    }
    if args.files > MAX_FILES || args.peers == 0 || args.peers > MAX_SEEDERS {
        return Err(CliError::new(format!(
            "--files takes 1 to {MAX_FILES} and --peers 1 to {MAX_SEEDERS}"
        )));
    }
    let temp = tempfile::Builder::new()
        .prefix("cratetorrent-demo-")
        .tempdir()
        .map_err(|e| CliError::with("cannot create a temporary directory", &e))?;
    let say = |line: &str| {
        if style == Style::Human {
            outln!("{line}");
        }
    };
    say(&format!(
        "demo: {} in {} file(s) under {}",
        format_bytes(args.size),
        args.files,
        temp.path().display()
    ));
    let source = temp.path().join("seed");
    let target = temp.path().join("leech");
    for dir in [&source, &target] {
        std::fs::create_dir(dir).map_err(|e| CliError::with(dir.display(), &e))?;
    }
    let started = Instant::now();
    let root = write_payload(&source, args.size, args.files)?;
    say(&format!(
        "wrote the random payload in {:.2} s",
        started.elapsed().as_secs_f64()
    ));
    let builder = TorrentBuilder::new(&root).creation_date(None);
    let (metainfo, _, hashed) = crate::create::build(&builder, style != Style::Human)?;
    say(&format!(
        "made the torrent: {} pieces of {} in {hashed:.2} s",
        metainfo.piece_count(),
        format_bytes(u64::from(metainfo.piece_length()))
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::with("cannot start the runtime", &e))?;
    let outcome = runtime.block_on(swarm(&metainfo, &source, &target, args.peers, style))?;
    let Some(figures) = outcome else {
        return Ok(ExitCode::from(130));
    };
    let compared = Instant::now();
    for file in metainfo.files().iter().filter(|f| !f.is_padding()) {
        let path = file.path();
        same_file(&source.join(&path), &target.join(&path))?;
    }
    say(&format!(
        "verified: every byte of the download matches the payload ({:.2} s)",
        compared.elapsed().as_secs_f64()
    ));
    let size = metainfo.total_length();
    let gib = size as f64 / f64::from(1u32 << 30);
    let rate = size as f64 / figures.seconds.max(1e-6);
    let line = format!(
        "downloaded {} in {:.2} s: {} ({} seeder(s) -> 1 leecher on loopback); CPU {:.2} s \
         user+sys ({:.2} s/GiB, seeders and leecher together); peak RSS {}",
        format_bytes(size),
        figures.seconds,
        format_rate(rate),
        args.peers,
        figures.cpu_seconds,
        figures.cpu_seconds / gib.max(1e-9),
        format_bytes(figures.peak_rss),
    );
    match style {
        Style::Json => outln!(
            "{}",
            json!({
                "event": "demo",
                "bytes": size,
                "seconds": figures.seconds,
                "throughput_bytes_per_second": rate,
                "cpu_seconds": figures.cpu_seconds,
                "peak_rss_bytes": figures.peak_rss,
                "seeders": args.peers,
                "verified": true,
            })
        ),
        Style::Human => outln!("{line}"),
        Style::Quiet => {}
    }
    temp.close()
        .map_err(|e| CliError::with("cannot remove the demo's temporary directory", &e))?;
    Ok(ExitCode::SUCCESS)
}

/// Random files under `dir/demo` (or the single file `dir/demo.bin`); returns the root.
fn write_payload(dir: &Path, size: u64, files: usize) -> Result<PathBuf> {
    let root = if files == 1 {
        dir.join("demo.bin")
    } else {
        dir.join("demo")
    };
    let mut rng = fastrand::Rng::new();
    // Mixed sizes: each file gets a random share, the last one the remainder.
    let mut sizes = Vec::with_capacity(files);
    let mut left = size;
    for index in 0..files {
        let remaining_files = (files - index) as u64;
        let share = if remaining_files == 1 {
            left
        } else {
            let fair = left / remaining_files;
            rng.u64(1..=fair.max(1) * 2)
                .min(left - (remaining_files - 1))
        };
        sizes.push(share);
        left -= share;
    }
    let mut chunk = vec![0u8; 1 << 20];
    for (index, len) in sizes.into_iter().enumerate() {
        let path = if files == 1 {
            root.clone()
        } else {
            root.join(format!("dir{}/file{index:05}.bin", index % 8))
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| CliError::with(parent.display(), &e))?;
        }
        let file = std::fs::File::create(&path).map_err(|e| CliError::with(path.display(), &e))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut written = 0u64;
        while written < len {
            let n = usize::try_from((len - written).min(chunk.len() as u64)).unwrap_or(0);
            rng.fill(&mut chunk[..n]);
            out.write_all(&chunk[..n])
                .map_err(|e| CliError::with(path.display(), &e))?;
            written += n as u64;
        }
        out.flush()
            .map_err(|e| CliError::with(path.display(), &e))?;
    }
    Ok(root)
}

struct Figures {
    seconds: f64,
    cpu_seconds: f64,
    peak_rss: u64,
}

/// Seeds from `peers` engines and downloads with one more; `None` when interrupted.
async fn swarm(
    metainfo: &Metainfo,
    source: &Path,
    target: &Path,
    peers: usize,
    style: Style,
) -> Result<Option<Figures>> {
    let mut seeders = Vec::with_capacity(peers);
    let mut addrs: Vec<SocketAddr> = Vec::with_capacity(peers);
    let checking = Instant::now();
    for index in 0..peers {
        // Distinct loopback addresses, as distinct hosts would have.
        let host = u8::try_from(index % 250 + 2).unwrap_or(2);
        let listen = SocketAddr::from(([127, 0, 0, host], 0));
        let mut conf = Conf::new(source);
        conf.tracker.enabled = false;
        conf.lsd = false;
        conf.dht.enabled = false;
        let (engine, alerts) = crate::session::spawn_engine(conf, Some(listen))?;
        engine
            .create_torrent(params(metainfo, Mode::Seed))
            .map_err(|e| CliError::with("cannot add the torrent", &e))?;
        addrs.push(engine.listen_addr());
        seeders.push((engine, alerts));
    }
    for (_, alerts) in &mut seeders {
        wait_started(alerts).await?;
    }
    if style == Style::Human {
        outln!(
            "{peers} seeder(s) verified the payload in {:.2} s; downloading",
            checking.elapsed().as_secs_f64()
        );
    }
    let mut conf = Conf::new(target);
    conf.tracker.enabled = false;
    conf.lsd = false;
    conf.dht.enabled = false;
    let (leech, mut alerts) =
        crate::session::spawn_engine(conf, Some(SocketAddr::from(([127, 0, 0, 1], 0))))?;
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let id = leech
        .create_torrent(params(metainfo, Mode::Download { seeds: addrs }))
        .map_err(|e| CliError::with("cannot add the torrent", &e))?;
    let mut reporter = Reporter::new(style);
    let slot = reporter.add("demo");
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| CliError::with("cannot handle signals", &e))?;
    let mut outcome = Ok(false);
    loop {
        let alert = tokio::select! {
            alert = alerts.next() => alert,
            _ = interrupt.recv() => break,
        };
        match alert {
            Some(Alert::TorrentStats(stats)) if stats.id == id => reporter.stats(slot, &stats),
            Some(Alert::TorrentComplete(done)) if done == id => {
                outcome = Ok(true);
                break;
            }
            Some(Alert::TorrentError { error, .. }) => {
                outcome = Err(CliError::new(format!("download failed: {error}")));
                break;
            }
            Some(_) => {}
            None => {
                outcome = Err(CliError::new("the downloading engine stopped"));
                break;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = cpu_seconds() - cpu_before;
    drop(reporter);
    let closed = leech.shutdown().await;
    for (engine, _) in &seeders {
        let _ = engine.shutdown().await;
    }
    closed.map_err(|e| CliError::with("shutting down", &e))?;
    Ok(outcome?.then(|| Figures {
        seconds,
        cpu_seconds,
        peak_rss: peak_rss(),
    }))
}

fn params(metainfo: &Metainfo, mode: Mode) -> TorrentParams {
    TorrentParams {
        source: metainfo.clone().into(),
        listen_addr: None,
        mode,
        conf: None,
    }
}

async fn wait_started(alerts: &mut Alerts) -> Result<()> {
    loop {
        match alerts.next().await {
            Some(Alert::TorrentStarted {
                pieces_had,
                piece_count,
                ..
            }) => {
                return if pieces_had == piece_count {
                    Ok(())
                } else {
                    Err(CliError::new(format!(
                        "the seeder verified only {pieces_had}/{piece_count} pieces"
                    )))
                };
            }
            Some(Alert::TorrentError { error, .. }) => {
                return Err(CliError::new(format!("seeder: {error}")));
            }
            Some(_) => {}
            None => return Err(CliError::new("a seeding engine stopped")),
        }
    }
}

fn same_file(want: &Path, got: &Path) -> Result<()> {
    let open = |path: &Path| {
        std::fs::File::open(path)
            .map(|f| std::io::BufReader::with_capacity(1 << 20, f))
            .map_err(|e| CliError::with(path.display(), &e))
    };
    let (mut a, mut b) = (open(want)?, open(got)?);
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = read_full(&mut a, &mut x).map_err(|e| CliError::with(want.display(), &e))?;
        let m = read_full(&mut b, &mut y).map_err(|e| CliError::with(got.display(), &e))?;
        if n != m || x[..n] != y[..m] {
            return Err(CliError::new(format!(
                "{} differs from {}",
                got.display(),
                want.display()
            )));
        }
        if n == 0 {
            return Ok(());
        }
    }
}

fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// User + system CPU seconds of this process, from `/proc/self/stat` (in USER_HZ = 100 ticks).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// Peak resident memory of this process (`VmHWM`), in bytes.
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}
