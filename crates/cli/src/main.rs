//! `cratetorrent`: the command-line BitTorrent client.
//!
//! `download`, `seed`, `create`, `info`, `verify`, and `demo` (a whole swarm on loopback).
//! Errors are one line on stderr with exit code 1; usage errors exit with 2.

mod addr;
mod create;
mod demo;
mod error;
mod escape;
mod info;
mod progress;
mod session;
mod units;
mod verify;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgAction, Parser, Subcommand, ValueEnum};

use crate::progress::Style;

#[derive(Parser)]
#[command(
    name = "cratetorrent",
    version,
    about = "A fast BitTorrent client",
    after_help = "Rates and sizes take units: 512K, 10M, 1G (powers of 1024).\n\
                  RUST_LOG (e.g. RUST_LOG=cratetorrent=debug) overrides -v."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Print nothing but errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// More log output on stderr (-v: info, -vv: debug).
    #[arg(short, long, global = true, action = ArgAction::Count)]
    verbose: u8,
    /// The system interface the network runs on: auto (io_uring, or epoll where the kernel or
    /// a container refuses it), io-uring or epoll.
    #[arg(long, global = true, value_enum, default_value_t = Backend::Auto, value_name = "KIND")]
    io_backend: Backend,
}

/// `--io-backend`.
#[derive(Clone, Copy, ValueEnum)]
enum Backend {
    Auto,
    IoUring,
    Epoll,
}

#[derive(Subcommand)]
enum Command {
    /// Download a torrent, verify it, and exit 0 when complete (or keep seeding with --seed).
    /// Rerun in the same directory to resume without downloading verified pieces again.
    Download {
        /// The .torrent file, or a magnet link (its metadata is fetched from peers: those it
        /// names with x.pe, its trackers', and --peer).
        torrent: String,
        /// The directory to download into (the torrent's file or folder goes inside).
        #[arg(short, long, default_value = ".")]
        output: PathBuf,
        /// A peer to connect to, as IP:PORT or HOST:PORT; repeatable.
        #[arg(long = "peer", value_name = "ADDR", value_parser = addr::parse_peer)]
        peers: Vec<SocketAddr>,
        /// The address to accept peers on, or a bare port on every address (default [::]:6881, or
        /// a free port if it is taken).
        #[arg(long, value_name = "ADDR|PORT", value_parser = addr::parse_listen)]
        listen: Option<SocketAddr>,
        /// Keep seeding after the download completes, until Ctrl-C.
        #[arg(long)]
        seed: bool,
        /// Most peers connected at once.
        #[arg(long, value_name = "N")]
        max_peers: Option<usize>,
        /// Download rate limit, e.g. 10M (bytes per second; 0 = none).
        #[arg(long, value_name = "RATE", value_parser = parse_bytes)]
        download_limit: Option<u64>,
        /// Upload rate limit, e.g. 512K (bytes per second; 0 = none).
        #[arg(long, value_name = "RATE", value_parser = parse_bytes)]
        upload_limit: Option<u64>,
        /// Peers uploaded to at once (default 8; 0 = every interested peer).
        #[arg(long, value_name = "N")]
        upload_slots: Option<usize>,
        /// Download only this file (its index in `cratetorrent info`); repeatable.
        #[arg(long = "only", value_name = "FILE_INDEX")]
        only: Vec<usize>,
        /// Download pieces in order (for playing while downloading).
        #[arg(long)]
        sequential: bool,
        /// With a magnet link: write its metadata to FILE as a .torrent once verified.
        #[arg(long, value_name = "FILE")]
        save_torrent: Option<PathBuf>,
        #[command(flatten)]
        discovery: session::Discovery,
        /// Print one JSON stats object per second instead of a progress bar.
        #[arg(long)]
        json: bool,
    },
    /// Verify the data at PATH, then seed it until SIGINT or SIGTERM.
    Seed {
        /// The .torrent file.
        torrent: String,
        /// The torrent's file or folder, or the directory that holds it.
        path: PathBuf,
        /// The address to accept peers on, or a bare port on every address (default [::]:6881, or
        /// a free port if it is taken).
        #[arg(long, value_name = "ADDR|PORT", value_parser = addr::parse_listen)]
        listen: Option<SocketAddr>,
        /// A peer to connect to, as IP:PORT or HOST:PORT; repeatable.
        #[arg(long = "peer", value_name = "ADDR", value_parser = addr::parse_peer)]
        peers: Vec<SocketAddr>,
        /// Upload rate limit, e.g. 512K (bytes per second; 0 = none).
        #[arg(long, value_name = "RATE", value_parser = parse_bytes)]
        upload_limit: Option<u64>,
        /// Peers uploaded to at once (default 8; 0 = every interested peer).
        #[arg(long, value_name = "N")]
        upload_slots: Option<usize>,
        #[command(flatten)]
        discovery: session::Discovery,
        /// Print one JSON stats object per second instead of a progress bar.
        #[arg(long)]
        json: bool,
    },
    /// Create a .torrent from a file or directory.
    Create {
        /// The file or directory to share.
        path: PathBuf,
        /// Where to write the .torrent (default: <name>.torrent in the current directory).
        #[arg(short, long, value_name = "FILE.torrent")]
        output: Option<PathBuf>,
        /// Tracker announce URL; each one is a tier of its own; repeatable.
        #[arg(short, long = "tracker", value_name = "URL")]
        trackers: Vec<String>,
        /// Piece size in bytes, a power of two of at least 16K, e.g. 256K or 1M
        /// (default: chosen for 1,000 to 2,000 pieces).
        #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
        piece_size: Option<u64>,
        /// Mark the torrent private (BEP 27: peers from its trackers only).
        #[arg(long)]
        private: bool,
        /// A comment to embed.
        #[arg(short, long, value_name = "TEXT")]
        comment: Option<String>,
        /// Web seed URL (BEP 19); repeatable.
        #[arg(short, long = "web-seed", value_name = "URL")]
        web_seeds: Vec<String>,
        /// Include hidden files (names starting with '.').
        #[arg(long)]
        include_hidden: bool,
        /// Include the files that symbolic links in the folder point to, even outside it
        /// (links are skipped by default; links to directories are never followed).
        #[arg(long)]
        follow_symlinks: bool,
        /// Leave out the creation date, for reproducible output.
        #[arg(long)]
        no_date: bool,
        /// Replace the output file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Show what a .torrent file or magnet link describes.
    Info {
        /// A .torrent file, or a magnet link.
        torrent: String,
        /// Print one JSON object (info_hash, name, total_length, piece_length, num_pieces,
        /// private, trackers, files, ...).
        #[arg(long)]
        json: bool,
    },
    /// Hash the data at PATH against the torrent; prints `N/M pieces ok`, exits 0 only when
    /// complete.
    Verify {
        /// The .torrent file.
        torrent: String,
        /// The torrent's file or folder, or the directory that holds it.
        path: PathBuf,
    },
    /// Run a swarm on loopback: random payload, seeder(s), one downloader; verify every byte
    /// and print throughput, CPU time and peak memory. Cleans up after itself.
    Demo {
        /// Payload size, e.g. 64M or 1G.
        #[arg(long, default_value = "1G", value_parser = parse_bytes)]
        size: u64,
        /// Files in the payload (mixed sizes).
        #[arg(long, default_value_t = 1)]
        files: usize,
        /// Seeding engines.
        #[arg(long, default_value_t = 1)]
        peers: usize,
        /// Print the result as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

fn parse_bytes(text: &str) -> Result<u64, String> {
    units::parse_bytes(text)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.quiet, cli.verbose);
    session::set_io_backend(match cli.io_backend {
        Backend::Auto => cratetorrent::IoBackend::Auto,
        Backend::IoUring => cratetorrent::IoBackend::IoUring,
        Backend::Epoll => cratetorrent::IoBackend::Epoll,
    });
    let style = |json: bool| {
        if json {
            Style::Json
        } else if cli.quiet {
            Style::Quiet
        } else {
            Style::Human
        }
    };
    let result = match cli.command {
        Command::Info { torrent, json } => info::run(&torrent, json).map(|()| ExitCode::SUCCESS),
        Command::Create {
            path,
            output,
            trackers,
            piece_size,
            private,
            comment,
            web_seeds,
            include_hidden,
            follow_symlinks,
            no_date,
            force,
        } => create::run(
            create::CreateArgs {
                path,
                output,
                trackers,
                web_seeds,
                piece_size,
                private,
                comment,
                include_hidden,
                follow_symlinks,
                no_date,
                force,
            },
            cli.quiet,
        )
        .map(|()| ExitCode::SUCCESS),
        Command::Verify { torrent, path } => {
            verify::run(&torrent, &path, cli.quiet).map(|complete| {
                if complete {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            })
        }
        Command::Download {
            torrent,
            output,
            peers,
            listen,
            seed,
            max_peers,
            download_limit,
            upload_limit,
            upload_slots,
            only,
            sequential,
            save_torrent,
            discovery,
            json,
        } => session::run(
            session::SessionArgs {
                torrent,
                dir: output,
                peers,
                listen,
                seed_only: false,
                keep_seeding: seed,
                max_peers,
                download_limit: download_limit.unwrap_or(0),
                upload_limit: upload_limit.unwrap_or(0),
                upload_slots,
                only,
                sequential,
                save_torrent,
                discovery,
            },
            style(json),
        ),
        Command::Seed {
            torrent,
            path,
            listen,
            peers,
            upload_limit,
            upload_slots,
            discovery,
            json,
        } => seed(
            torrent,
            &path,
            (listen, peers),
            (upload_limit, upload_slots, discovery),
            style(json),
        ),
        Command::Demo {
            size,
            files,
            peers,
            json,
        } => demo::run(demo::DemoArgs { size, files, peers }, style(json)),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("cratetorrent: {error}");
            ExitCode::FAILURE
        }
    }
}

fn seed(
    torrent: String,
    path: &std::path::Path,
    (listen, peers): (Option<SocketAddr>, Vec<SocketAddr>),
    (upload_limit, upload_slots, discovery): (Option<u64>, Option<usize>, session::Discovery),
    style: Style,
) -> error::Result<ExitCode> {
    let metainfo = info::load(&torrent)?;
    let dir = verify::data_dir(&metainfo, path)?;
    session::run(
        session::SessionArgs {
            torrent,
            dir,
            peers,
            listen,
            seed_only: true,
            keep_seeding: true,
            max_peers: None,
            download_limit: 0,
            upload_limit: upload_limit.unwrap_or(0),
            upload_slots,
            only: Vec::new(),
            sequential: false,
            save_torrent: None,
            discovery,
        },
        style,
    )
}

fn init_logging(quiet: bool, verbose: u8) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
