//! `cratetorrent`: the command-line client.
//!
//! Today it inspects and creates torrents; downloading and seeding arrive with the engine.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use cratetorrent_metainfo::{Magnet, Metainfo, Progress, TorrentBuilder};

#[derive(Parser)]
#[command(name = "cratetorrent", version, about = "A fast BitTorrent client")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what a .torrent file or magnet link describes.
    Info {
        /// A .torrent file, or a magnet link.
        torrent: String,
    },
    /// Create a .torrent from a file or directory.
    Create {
        /// The file or directory to share.
        path: PathBuf,
        /// Where to write the .torrent (default: <name>.torrent in the current directory).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Tracker announce URL; repeat for more tiers.
        #[arg(short, long = "tracker")]
        trackers: Vec<String>,
        /// Web seed URL (BEP 19); repeatable.
        #[arg(short, long = "web-seed")]
        web_seeds: Vec<String>,
        /// Piece length in KiB, a power of two (default: chosen for 1,000-2,000 pieces).
        #[arg(short = 'l', long = "piece-length")]
        piece_length_kib: Option<u32>,
        /// Mark the torrent private (BEP 27).
        #[arg(long)]
        private: bool,
        /// A comment to embed.
        #[arg(short, long)]
        comment: Option<String>,
        /// Include hidden files (names starting with '.').
        #[arg(long)]
        include_hidden: bool,
        /// Leave out the creation date, for reproducible output.
        #[arg(long)]
        no_date: bool,
        /// Don't print progress.
        #[arg(short, long)]
        quiet: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info { torrent } => info(&torrent),
        Command::Create {
            path,
            output,
            trackers,
            web_seeds,
            piece_length_kib,
            private,
            comment,
            include_hidden,
            no_date,
            quiet,
        } => {
            let mut builder = TorrentBuilder::new(&path)
                .private(private)
                .include_hidden(include_hidden);
            for tracker in trackers {
                builder = builder.tracker(tracker);
            }
            for seed in web_seeds {
                builder = builder.web_seed(seed);
            }
            if let Some(kib) = piece_length_kib {
                builder = builder.piece_length(kib.saturating_mul(1024));
            }
            if let Some(comment) = comment {
                builder = builder.comment(comment);
            }
            if no_date {
                builder = builder.creation_date(None);
            }
            create(&builder, &path, output, quiet)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("cratetorrent: {message}");
            ExitCode::FAILURE
        }
    }
}

fn info(source: &str) -> Result<(), String> {
    if source.starts_with("magnet:") {
        let magnet = Magnet::parse(source).map_err(|e| format!("{source}: {e}"))?;
        let hash = magnet
            .info_hash
            .map_or_else(|| "(v2 only)".to_string(), |h| h.to_string());
        println!("info-hash: {hash}");
        println!(
            "name:      {}",
            magnet.display_name.as_deref().unwrap_or("(unknown)")
        );
        for tracker in &magnet.trackers {
            println!("tracker:   {tracker}");
        }
        for peer in &magnet.peers {
            println!("peer:      {peer}");
        }
        return Ok(());
    }
    let bytes = std::fs::read(source).map_err(|e| format!("{source}: {e}"))?;
    let torrent = Metainfo::from_bytes(&bytes).map_err(|e| format!("{source}: {e}"))?;
    println!("info-hash: {}", torrent.info_hash());
    println!("name:      {}", torrent.name());
    println!("size:      {} bytes", torrent.total_length());
    println!(
        "pieces:    {} x {} bytes",
        torrent.piece_count(),
        torrent.piece_length()
    );
    println!(
        "private:   {}",
        if torrent.is_private() { "yes" } else { "no" }
    );
    if let Some(comment) = torrent.comment() {
        println!("comment:   {comment}");
    }
    if let Some(created_by) = torrent.created_by() {
        println!("created by: {created_by}");
    }
    for (index, tier) in torrent.trackers().iter().enumerate() {
        println!("tier {index}:    {}", tier.join(" "));
    }
    for seed in torrent.url_list() {
        println!("web seed:  {seed}");
    }
    println!("files:");
    for file in torrent.files().iter().filter(|f| !f.is_padding()) {
        println!("  {:>14}  {}", file.length(), file.path().display());
    }
    Ok(())
}

fn create(
    builder: &TorrentBuilder,
    path: &std::path::Path,
    output: Option<PathBuf>,
    quiet: bool,
) -> Result<(), String> {
    let started = Instant::now();
    let report = |p: Progress| {
        if !quiet {
            let percent = p.hashed * 100 / p.total.max(1);
            let mut err = std::io::stderr().lock();
            // Progress is cosmetic: a closed stderr must not abort the creation.
            let _ = write!(
                err,
                "\rhashing {percent:>3}% ({} / {} bytes)",
                p.hashed, p.total
            );
        }
    };
    let bytes = builder
        .build_with_progress(&report)
        .map_err(|e| e.to_string())?;
    let torrent =
        Metainfo::from_bytes(&bytes).map_err(|e| format!("created an invalid torrent: {e}"))?;
    let output = output.unwrap_or_else(|| PathBuf::from(format!("{}.torrent", torrent.name())));
    std::fs::write(&output, &bytes).map_err(|e| format!("{}: {e}", output.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    if !quiet {
        eprintln!();
        eprintln!(
            "{}: {} bytes in {} pieces, hashed in {seconds:.2} s ({:.0} MB/s)",
            path.display(),
            torrent.total_length(),
            torrent.piece_count(),
            torrent.total_length() as f64 / seconds / 1e6
        );
    }
    println!("{}  {}", torrent.info_hash(), output.display());
    Ok(())
}
