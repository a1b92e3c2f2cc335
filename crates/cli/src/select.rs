//! `--only`: the files to download, as indices and ranges (`1,3-5`, as `cratetorrent info`
//! numbers them) or globs on their paths (`'Album/CD1/*'`; `*` stays within a directory, `**`
//! crosses them, and a directory's name selects what is inside it).

use cratetorrent_metainfo::Metainfo;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::{CliError, Result};

/// File priorities for `--only` (0 = skip), or None when every file is wanted.
pub(crate) fn priorities(metainfo: &Metainfo, only: &[String]) -> Result<Option<Vec<u8>>> {
    if only.is_empty() {
        return Ok(None);
    }
    let files = metainfo.files();
    let count = files.len();
    let mut priorities = vec![0u8; count];
    let mut globs = GlobSetBuilder::new();
    let mut patterns = Vec::new();
    for item in only.iter().flat_map(|o| o.split(',')).map(str::trim) {
        if item.is_empty() {
            continue;
        }
        if let Some(range) = index_range(item) {
            let (first, last) = range?;
            if last >= count {
                return Err(CliError::new(format!(
                    "--only {item}: the torrent has files 0 to {} (see `cratetorrent info --files`)",
                    count.saturating_sub(1)
                )));
            }
            priorities[first..=last].fill(1);
            continue;
        }
        for pattern in [
            item.to_owned(),
            format!("{}/**", item.trim_end_matches('/')),
        ] {
            let glob = GlobBuilder::new(&pattern)
                .literal_separator(true)
                .build()
                .map_err(|e| CliError::with(format!("--only {item}"), &e))?;
            globs.add(glob);
            patterns.push(item.to_owned());
        }
    }
    if !patterns.is_empty() {
        let set = globs.build().map_err(|e| CliError::with("--only", &e))?;
        apply_globs(metainfo, &set, &patterns, &mut priorities)?;
    }
    Ok(Some(priorities))
}

/// `N` or `N-M` as a range of file indices; None when `item` is a glob instead.
fn index_range(item: &str) -> Option<Result<(usize, usize)>> {
    let (first, last) = item.split_once('-').unwrap_or((item, item));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(first.trim()) || !digits(last.trim()) {
        return None;
    }
    let parse = |s: &str| {
        s.trim()
            .parse::<usize>()
            .map_err(|_| CliError::new(format!("--only {item}: not a file index")))
    };
    Some((|| {
        let (first, last) = (parse(first)?, parse(last)?);
        if first > last {
            return Err(CliError::new(format!(
                "--only {item}: the range is backwards (write {last}-{first})"
            )));
        }
        Ok((first, last))
    })())
}

/// Selects every file whose path (with or without the torrent's name in front) a pattern
/// matches; each pattern must match one.
fn apply_globs(
    metainfo: &Metainfo,
    set: &GlobSet,
    patterns: &[String],
    priorities: &mut [u8],
) -> Result<()> {
    let mut matched = vec![false; patterns.len()];
    let name = metainfo.name();
    for (index, file) in metainfo.files().iter().enumerate() {
        if file.is_padding() {
            continue;
        }
        // A multi-file torrent's paths start with its name; a single file's is its name.
        let path = file.path();
        let inner = path.strip_prefix(name).unwrap_or(&path);
        let mut hits = set.matches(&path);
        hits.extend(set.matches(inner));
        for hit in hits {
            matched[hit] = true;
            priorities[index] = 1;
        }
    }
    // A pattern is two globs (itself and what is under it): either one matching will do.
    for (pair, names) in matched.chunks(2).zip(patterns.chunks(2)) {
        if !pair.iter().any(|&m| m) {
            return Err(CliError::new(format!(
                "--only {}: matches no file (see `cratetorrent info --files`)",
                names[0]
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cratetorrent_metainfo::TorrentBuilder;

    fn album() -> (tempfile::TempDir, Metainfo) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("Music");
        for path in [
            "Album/CD1/01.flac",
            "Album/CD1/02.flac",
            "Album/CD2/01.flac",
            "cover.jpg",
        ] {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, b"x").unwrap();
        }
        let bytes = TorrentBuilder::new(&root).build().unwrap();
        (dir, Metainfo::from_bytes(&bytes).unwrap())
    }

    fn chosen(metainfo: &Metainfo, only: &[&str]) -> Result<Vec<usize>> {
        let only: Vec<String> = only.iter().map(|s| (*s).to_owned()).collect();
        let priorities = priorities(metainfo, &only)?.unwrap();
        Ok((0..priorities.len())
            .filter(|&i| priorities[i] > 0)
            .collect())
    }

    #[test]
    fn indices_ranges_and_globs() {
        let (_dir, metainfo) = album();
        assert_eq!(chosen(&metainfo, &["1,3"]).unwrap(), [1, 3]);
        assert_eq!(chosen(&metainfo, &["0-2"]).unwrap(), [0, 1, 2]);
        assert_eq!(chosen(&metainfo, &["Album/CD1/*"]).unwrap(), [0, 1]);
        assert_eq!(chosen(&metainfo, &["Album/CD2"]).unwrap(), [2]);
        assert_eq!(
            chosen(&metainfo, &["Music/Album/*/01.flac"]).unwrap(),
            [0, 2]
        );
        assert_eq!(chosen(&metainfo, &["*.jpg", "0"]).unwrap(), [0, 3]);
        assert_eq!(chosen(&metainfo, &["**/*.flac"]).unwrap(), [0, 1, 2]);
        // `*` does not cross directories.
        assert!(chosen(&metainfo, &["*.flac"]).is_err());
        assert!(chosen(&metainfo, &["4"]).is_err());
        assert!(chosen(&metainfo, &["3-1"]).is_err());
        assert!(chosen(&metainfo, &["99999999999999999999999"]).is_err());
    }
}
