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
mod lock;
mod log;
mod output;
mod progress;
mod select;
mod session;
mod source;
mod units;
mod verify;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgAction, Parser, Subcommand, ValueEnum};
use cratetorrent_metainfo::MetaVersion;

use crate::progress::Style;

#[derive(Parser)]
#[command(
    name = "cratetorrent",
    version,
    about = "A fast BitTorrent client",
    after_help = "Rates and sizes take IEC units: 512K, 10M, 1G, 10MiB/s (powers of 1024).\n\
                  Environment: CRATETORRENT_OUTPUT, CRATETORRENT_LISTEN, \
                  CRATETORRENT_DOWNLOAD_LIMIT and CRATETORRENT_UPLOAD_LIMIT give defaults for \
                  -o, --listen, --download-limit and --upload-limit; NO_COLOR turns colour off; \
                  RUST_LOG (e.g. RUST_LOG=cratetorrent=debug) overrides -v."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The system interface the network runs on: auto (io_uring, or epoll where the kernel or
    /// a container refuses it), io-uring or epoll.
    #[arg(long, global = true, value_enum, default_value_t = Backend::Auto, value_name = "KIND",
          display_order = 900)]
    io_backend: Backend,
    /// Print nothing but errors.
    #[arg(short, long, global = true, display_order = 901)]
    quiet: bool,
    /// More log output on stderr (-v: info, -vv: debug).
    #[arg(short, long, global = true, action = ArgAction::Count, display_order = 902)]
    verbose: u8,
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
    /// Download torrents, verify them, and exit 0 when all are complete (or keep seeding with
    /// --seed, --seed-ratio or --seed-time). Rerun in the same directory to resume without
    /// downloading verified pieces again.
    Download {
        /// .torrent files, http(s) URLs of .torrent files, or magnet links (a magnet link's
        /// metadata is fetched from peers: the DHT's, those it names with x.pe, its trackers',
        /// and --peer). Several run at once on one listen port.
        #[arg(required = true, value_name = "TORRENT")]
        torrents: Vec<String>,
        /// The directory to download into (each torrent's file or folder goes inside).
        #[arg(short, long, default_value = ".", env = "CRATETORRENT_OUTPUT")]
        output: PathBuf,
        /// A peer to connect to, as IP:PORT or HOST:PORT; repeatable.
        #[arg(long = "peer", value_name = "ADDR", value_parser = addr::parse_peer)]
        peers: Vec<SocketAddr>,
        /// The address to accept peers on, or a bare port on every address (default [::]:6881, or
        /// a free port if it is taken).
        #[arg(long, value_name = "ADDR|PORT", value_parser = addr::parse_listen,
              env = "CRATETORRENT_LISTEN")]
        listen: Option<SocketAddr>,
        /// Keep seeding after the download completes, until Ctrl-C.
        #[arg(long)]
        seed: bool,
        #[command(flatten)]
        limits: SeedLimitArgs,
        /// A shell command to run when a torrent completes, with CRATETORRENT_NAME,
        /// CRATETORRENT_PATH and CRATETORRENT_INFO_HASH in its environment (its output goes to
        /// stderr; waited for before exiting).
        #[arg(long, value_name = "CMD")]
        on_complete: Option<String>,
        /// Most peers connected at once.
        #[arg(long, value_name = "N")]
        max_peers: Option<usize>,
        /// Download rate limit per second, in IEC units: 10M is 10 MiB/s (0 = none).
        #[arg(long, value_name = "RATE", value_parser = parse_bytes,
              env = "CRATETORRENT_DOWNLOAD_LIMIT")]
        download_limit: Option<u64>,
        /// Upload rate limit per second, in IEC units: 512K is 512 KiB/s (0 = none).
        #[arg(long, value_name = "RATE", value_parser = parse_bytes,
              env = "CRATETORRENT_UPLOAD_LIMIT")]
        upload_limit: Option<u64>,
        /// Peers uploaded to at once (default 8; 0 = every interested peer).
        #[arg(long, value_name = "N")]
        upload_slots: Option<usize>,
        /// Download only these files: indices and ranges as `cratetorrent info --files` numbers
        /// them (1,3-5), or globs on their paths ('Album/CD1/*'; * stays in a directory, **
        /// crosses them, a directory's name selects what is in it); repeatable.
        #[arg(long = "only", value_name = "FILES")]
        only: Vec<String>,
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
        #[arg(long, value_name = "ADDR|PORT", value_parser = addr::parse_listen,
              env = "CRATETORRENT_LISTEN")]
        listen: Option<SocketAddr>,
        /// A peer to connect to, as IP:PORT or HOST:PORT; repeatable.
        #[arg(long = "peer", value_name = "ADDR", value_parser = addr::parse_peer)]
        peers: Vec<SocketAddr>,
        #[command(flatten)]
        limits: SeedLimitArgs,
        /// Most peers connected at once.
        #[arg(long, value_name = "N")]
        max_peers: Option<usize>,
        /// Upload rate limit per second, in IEC units: 512K is 512 KiB/s (0 = none).
        #[arg(long, value_name = "RATE", value_parser = parse_bytes,
              env = "CRATETORRENT_UPLOAD_LIMIT")]
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
        /// A v1-only torrent (BEP 3): SHA-1 pieces over the concatenated files, no padding.
        #[arg(long, group = "format")]
        v1: bool,
        /// A v2-only torrent (BEP 52): a SHA-256 merkle tree per file; v1-only clients cannot
        /// join it.
        #[arg(long, group = "format")]
        v2: bool,
        /// A hybrid torrent, v1 and v2 in one (the default, as libtorrent and qBittorrent make
        /// them): every client can join, v2 clients verify per file; multi-file torrents get
        /// padding files so that each file starts on a piece boundary.
        #[arg(long, group = "format")]
        hybrid: bool,
    },
    /// Show what a .torrent file or magnet link describes.
    Info {
        /// A .torrent file, an http(s) URL of one, or a magnet link.
        torrent: String,
        /// Print only the files: index (for --only), size and path.
        #[arg(long)]
        files: bool,
        /// Print one JSON object (info_hash, name, total_length, piece_length, num_pieces,
        /// private, trackers, files, ...).
        #[arg(long)]
        json: bool,
    },
    /// Hash the data at PATH against the torrent; prints `N/M pieces ok` and the files that
    /// are missing, the wrong size or have bad pieces; exits 0 only when complete.
    Verify {
        /// The .torrent file.
        torrent: String,
        /// The torrent's file or folder, or the directory that holds it.
        path: PathBuf,
        /// Print one JSON object (pieces_ok, piece_count, complete, files: [{path, problem}]).
        #[arg(long)]
        json: bool,
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
    /// Print a shell completion script (e.g. `cratetorrent completions bash >
    /// /etc/bash_completion.d/cratetorrent`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page in roff (`cratetorrent man > cratetorrent.1`), or write it and
    /// a page per command into DIR.
    Man {
        /// Where to write cratetorrent.1 and cratetorrent-COMMAND.1.
        dir: Option<PathBuf>,
    },
}

/// `--seed-ratio` and `--seed-time`.
#[derive(Debug, Clone, clap::Args)]
struct SeedLimitArgs {
    /// Stop seeding a torrent once it uploaded R times its size (e.g. 1.0; implies --seed).
    #[arg(long, value_name = "R", value_parser = parse_ratio)]
    seed_ratio: Option<f64>,
    /// Stop seeding a torrent after seeding this long (90s, 30m, 2h, 1h30m; a bare number is
    /// minutes; implies --seed). With --seed-ratio, whichever comes first.
    #[arg(long, value_name = "DURATION", value_parser = units::parse_duration)]
    seed_time: Option<std::time::Duration>,
}

impl SeedLimitArgs {
    fn limits(&self) -> session::SeedLimits {
        session::SeedLimits {
            ratio: self.seed_ratio,
            time: self.seed_time,
        }
    }
}

fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(ratio) if ratio.is_finite() && ratio >= 0.0 => Ok(ratio),
        _ => Err(format!("`{text}` is not a ratio (try 1.0 or 2.5)")),
    }
}

fn parse_bytes(text: &str) -> Result<u64, String> {
    units::parse_bytes(text)
}

/// Lifts the soft limit on open descriptors to the hard one: each torrent keeps its download
/// directory and a few files open, and every peer is a socket, so Debian's default soft limit
/// of 1,024 would stop a session of a few hundred torrents (libtorrent's clients do the same).
fn raise_open_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(error) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!(%error, "the open-file limit stays where it was");
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    log::init(cli.quiet, cli.verbose);
    raise_open_file_limit();
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
        Command::Info {
            torrent,
            files,
            json,
        } => info::run(&torrent, files, json).map(|()| ExitCode::SUCCESS),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "cratetorrent", &mut script);
            output::line(format_args!(
                "{}",
                String::from_utf8_lossy(&script).trim_end()
            ));
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => man(dir.as_deref()),
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
            v1,
            v2,
            hybrid: _,
        } => create::run(
            create::CreateArgs {
                version: match (v1, v2) {
                    (true, _) => MetaVersion::V1,
                    (_, true) => MetaVersion::V2,
                    _ => MetaVersion::Hybrid,
                },
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
        Command::Verify {
            torrent,
            path,
            json,
        } => verify::run(&torrent, &path, cli.quiet, json).map(|complete| {
            if complete {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }),
        Command::Download {
            torrents,
            output,
            peers,
            listen,
            seed,
            limits,
            on_complete,
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
                torrents,
                dir: output,
                peers,
                listen,
                seed_only: false,
                keep_seeding: seed,
                limits: limits.limits(),
                max_peers,
                download_limit: download_limit.unwrap_or(0),
                upload_limit: upload_limit.unwrap_or(0),
                upload_slots,
                only,
                sequential,
                save_torrent,
                on_complete,
                discovery,
            },
            style(json),
        ),
        Command::Seed {
            torrent,
            path,
            listen,
            peers,
            limits,
            max_peers,
            upload_limit,
            upload_slots,
            discovery,
            json,
        } => seed(
            torrent,
            &path,
            (listen, peers, limits.limits()),
            (max_peers, upload_limit, upload_slots, discovery),
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
    (listen, peers, limits): (Option<SocketAddr>, Vec<SocketAddr>, session::SeedLimits),
    (max_peers, upload_limit, upload_slots, discovery): (
        Option<usize>,
        Option<u64>,
        Option<usize>,
        session::Discovery,
    ),
    style: Style,
) -> error::Result<ExitCode> {
    let metainfo = source::load(&torrent)?;
    let dir = verify::data_dir(&metainfo, path)?;
    session::run(
        session::SessionArgs {
            torrents: vec![torrent],
            dir,
            peers,
            listen,
            seed_only: true,
            keep_seeding: true,
            limits,
            max_peers,
            download_limit: 0,
            upload_limit: upload_limit.unwrap_or(0),
            upload_slots,
            only: Vec::new(),
            sequential: false,
            save_torrent: None,
            on_complete: None,
            discovery,
        },
        style,
    )
}

/// `cratetorrent man`: the manual pages, generated from the same definitions as `--help`:
/// `cratetorrent.1` on stdout, or it and one page per command written into `dir`.
fn man(dir: Option<&std::path::Path>) -> error::Result<ExitCode> {
    let command = <Cli as clap::CommandFactory>::command();
    let failed = |e: std::io::Error| error::CliError::with("cannot write the manual page", &e);
    match dir {
        Some(dir) => {
            clap_mangen::generate_to(command, dir).map_err(failed)?;
            eprintln!("manual pages written to {}", dir.display());
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .map_err(failed)?;
            output::line(format_args!(
                "{}",
                String::from_utf8_lossy(&page).trim_end()
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}
