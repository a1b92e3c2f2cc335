//! `cratetorrent verify`: hashes the data at a path against a torrent.

use std::path::{Path, PathBuf};

use cratetorrent_metainfo::Metainfo;

use serde_json::json;

use crate::error::{CliError, Result};
use crate::escape::escape_path;
use crate::output::outln;

/// The directory that holds the torrent's root (its file, or its top directory), given the
/// root itself or the directory that holds it.
pub(crate) fn data_dir(torrent: &Metainfo, path: &Path) -> Result<PathBuf> {
    std::fs::metadata(path).map_err(|e| CliError::with(path.display(), &e))?;
    if path.file_name().is_some_and(|n| n == torrent.name()) {
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        return Ok(parent.map_or_else(|| PathBuf::from("."), Path::to_path_buf));
    }
    if path.is_dir() && path.join(torrent.name()).exists() {
        return Ok(path.to_path_buf());
    }
    Err(CliError::new(format!(
        "{}: is neither `{}` nor a directory holding it",
        path.display(),
        torrent.name()
    )))
}

/// Returns whether every piece is present and correct.
pub(crate) fn run(torrent_path: &str, path: &Path, quiet: bool, as_json: bool) -> Result<bool> {
    let torrent = crate::source::load(torrent_path)?;
    let dir = data_dir(&torrent, path)?;
    let bar = crate::progress::HashBar::new("verifying", quiet);
    let total = torrent.total_length();
    let piece_length = u64::from(torrent.piece_length());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let have = cratetorrent_storage::verify(&torrent, &dir, threads, &|p| {
        bar.update((u64::from(p.checked) * piece_length).min(total), total);
    });
    bar.finish();
    let ok = have.count_ones();
    let mut problems = file_problems(&torrent, &dir, |piece| have.get(piece));
    // A file longer than the torrent says is not the torrent's, even if every piece verifies.
    let layout = cratetorrent_storage::Layout::new(&torrent, &dir);
    let listed: std::collections::HashSet<PathBuf> =
        problems.iter().map(|(path, _)| path.clone()).collect();
    for over in cratetorrent_storage::oversized_files(&layout) {
        let path = over
            .path
            .strip_prefix(&dir)
            .unwrap_or(&over.path)
            .to_path_buf();
        if !listed.contains(&path) {
            problems.push((
                path,
                format!("{} bytes instead of {}", over.size, over.expected),
            ));
        }
    }
    let complete = problems.is_empty() && ok == torrent.piece_count();
    if as_json {
        let files: Vec<serde_json::Value> = problems
            .iter()
            .map(|(path, problem)| json!({ "path": path, "problem": problem }))
            .collect();
        let value = json!({
            "pieces_ok": ok,
            "piece_count": torrent.piece_count(),
            "complete": complete,
            "files": files,
        });
        outln!("{}", crate::escape::json_line(&value));
        return Ok(complete);
    }
    outln!("{ok}/{} pieces ok", torrent.piece_count());
    for (path, problem) in problems.iter().take(MAX_LISTED) {
        outln!("{problem}: {}", escape_path(path));
    }
    if problems.len() > MAX_LISTED {
        outln!("… and {} more files", problems.len() - MAX_LISTED);
    }
    Ok(complete)
}

/// Files named at most after the summary line.
const MAX_LISTED: usize = 50;

/// Each file with a piece that did not verify, and what is wrong with it: missing, the wrong
/// size, or some pieces bad (a piece shared by two files counts for both).
fn file_problems(
    torrent: &Metainfo,
    dir: &Path,
    have: impl Fn(u32) -> bool,
) -> Vec<(PathBuf, String)> {
    let piece_length = u64::from(torrent.piece_length());
    let mut offset = 0u64;
    let mut problems = Vec::new();
    for file in torrent.files() {
        let length = file.length();
        let start = offset;
        offset += length;
        if file.is_padding() || length == 0 {
            continue;
        }
        let (first, last) = (start / piece_length, (start + length - 1) / piece_length);
        let pieces = (first..=last).filter_map(|p| u32::try_from(p).ok());
        let bad = pieces.clone().filter(|&p| !have(p)).count();
        if bad == 0 {
            continue;
        }
        let path = file.path();
        let problem = match dir.join(&path).symlink_metadata() {
            Err(_) => "missing".to_owned(),
            Ok(meta) if !meta.is_file() => "not a regular file".to_owned(),
            Ok(meta) if meta.len() != length => {
                format!("{} bytes instead of {length}", meta.len())
            }
            Ok(_) => format!("{bad} of {} pieces bad", pieces.count()),
        };
        problems.push((path, problem));
    }
    problems
}
