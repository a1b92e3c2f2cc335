//! `cratetorrent create`: a `.torrent` from a file or directory, hashed on all cores.

use std::path::PathBuf;
use std::time::Instant;

use cratetorrent_metainfo::{MetaVersion, Metainfo, Progress, TorrentBuilder};

use crate::error::{CliError, Result};
use crate::escape::escape;
use crate::output::outln;
use crate::units::{format_bytes, format_rate};

/// What to put in the torrent.
pub(crate) struct CreateArgs {
    pub(crate) path: PathBuf,
    pub(crate) output: Option<PathBuf>,
    pub(crate) trackers: Vec<String>,
    pub(crate) web_seeds: Vec<String>,
    pub(crate) piece_size: Option<u64>,
    pub(crate) private: bool,
    pub(crate) comment: Option<String>,
    pub(crate) include_hidden: bool,
    pub(crate) follow_symlinks: bool,
    pub(crate) no_date: bool,
    pub(crate) force: bool,
    pub(crate) version: MetaVersion,
}

pub(crate) fn run(args: CreateArgs, quiet: bool) -> Result<()> {
    let mut builder = TorrentBuilder::new(&args.path)
        .private(args.private)
        .include_hidden(args.include_hidden)
        .follow_symlinks(args.follow_symlinks)
        .meta_version(args.version);
    for tracker in args.trackers {
        builder = builder.tracker(tracker);
    }
    for seed in args.web_seeds {
        builder = builder.web_seed(seed);
    }
    if let Some(size) = args.piece_size {
        // The builder checks the value; only a size beyond u32 cannot even be passed on.
        let size = u32::try_from(size)
            .map_err(|_| CliError::new(format!("piece size {size} is larger than 256 MiB")))?;
        builder = builder.piece_length(size);
    }
    if let Some(comment) = args.comment {
        builder = builder.comment(comment);
    }
    if args.no_date {
        builder = builder.creation_date(None);
    }
    // Checked before hashing (which can take minutes) when the name is known already.
    if let Some(output) = &args.output {
        refuse_to_overwrite(output, args.force)?;
    }
    let (torrent, bytes, seconds) = build(&builder, quiet)?;
    let output = match args.output {
        Some(output) => output,
        None => {
            let output = PathBuf::from(format!("{}.torrent", torrent.name()));
            refuse_to_overwrite(&output, args.force)?;
            output
        }
    };
    std::fs::write(&output, &bytes).map_err(|e| CliError::with(output.display(), &e))?;
    if !quiet {
        eprintln!(
            "{}: {} in {} pieces of {}, hashed in {seconds:.2} s ({})",
            args.path.display(),
            format_bytes(torrent.total_length()),
            torrent.piece_count(),
            format_bytes(u64::from(torrent.piece_length())),
            format_rate(torrent.total_length() as f64 / seconds.max(1e-9)),
        );
        eprintln!("magnet: {}", escape(&torrent.magnet().to_string()));
        if let Ok(skipped) = builder.skipped() {
            if skipped.hidden > 0 {
                eprintln!(
                    "left out {} hidden file(s) or folder(s) (names starting with '.'; \
                     --include-hidden adds them)",
                    skipped.hidden
                );
            }
            if skipped.symlinks > 0 {
                eprintln!(
                    "left out {} symbolic link(s) (--follow-symlinks adds the files they name)",
                    skipped.symlinks
                );
            }
        }
    }
    outln!("{}  {}", torrent.info_hash(), output.display());
    Ok(())
}

/// An existing output file is kept unless `--force` says otherwise.
fn refuse_to_overwrite(output: &std::path::Path, force: bool) -> Result<()> {
    if !force && output.symlink_metadata().is_ok() {
        return Err(CliError::new(format!(
            "{} exists: pass --force to replace it, or -o another file",
            output.display()
        )));
    }
    Ok(())
}

/// Builds and re-parses the torrent (a torrent we cannot read back is a bug worth reporting).
pub(crate) fn build(builder: &TorrentBuilder, quiet: bool) -> Result<(Metainfo, Vec<u8>, f64)> {
    let started = Instant::now();
    let bar = crate::progress::HashBar::new("hashing", quiet);
    let report = |p: Progress| bar.update(p.hashed, p.total);
    let bytes = builder
        .build_with_progress(&report)
        .map_err(|e| CliError::from_error(&e))?;
    bar.finish();
    let torrent = Metainfo::from_bytes(&bytes)
        .map_err(|e| CliError::with("created an invalid torrent", &e))?;
    Ok((torrent, bytes, started.elapsed().as_secs_f64()))
}
