//! Where a torrent comes from: a `.torrent` file, an `http(s)://` URL to one, or a magnet
//! link; with a message that says what to do when it is none of these.

use std::path::Path;

use cratetorrent::{TrackerConf, tracker::HttpTracker};
use cratetorrent_metainfo::Metainfo;

use crate::error::{CliError, Result};

/// The largest `.torrent` fetched over HTTP (a 1 TiB torrent in 16 KiB pieces has 1.3 GiB of
/// hashes, but real ones stay well under this).
const MAX_TORRENT_DOWNLOAD: usize = 32 << 20;

/// Whether `source` is a magnet link rather than a path (the scheme is case-insensitive).
pub(crate) fn is_magnet(source: &str) -> bool {
    has_scheme(source, "magnet:")
}

fn is_url(source: &str) -> bool {
    has_scheme(source, "http://") || has_scheme(source, "https://")
}

fn has_scheme(source: &str, scheme: &str) -> bool {
    source
        .get(..scheme.len())
        .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
}

/// Reads and parses a `.torrent` file, or fetches one from an `http(s)://` URL.
pub(crate) fn load(source: &str) -> Result<Metainfo> {
    let bytes = if is_url(source) {
        fetch(source)?
    } else {
        read(source)?
    };
    Metainfo::from_bytes(&bytes).map_err(|error| {
        if looks_like_html(&bytes) {
            let what = if is_url(source) {
                "the server sent a web page"
            } else {
                "this is a web page saved under a .torrent name"
            };
            CliError::new(format!(
                "{source}: {what}, not a torrent: download the file the page links to, or \
                 pass its link to cratetorrent (http and https links are fetched)"
            ))
        } else {
            CliError::with(source, &error)
        }
    })
}

fn read(source: &str) -> Result<Vec<u8>> {
    let path = Path::new(source);
    if path.is_dir() {
        return Err(CliError::new(format!(
            "{source} is a directory: give a .torrent file (to make one of this directory: \
             cratetorrent create {source})"
        )));
    }
    std::fs::read(path).map_err(|e| CliError::with(source, &e))
}

fn fetch(url: &str) -> Result<Vec<u8>> {
    let mut conf = TrackerConf::default();
    conf.max_response_size = MAX_TORRENT_DOWNLOAD;
    let client = HttpTracker::new(&conf).map_err(|e| CliError::with(url, &e))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::with("cannot start the runtime", &e))?;
    runtime
        .block_on(client.fetch(url))
        .map(|bytes| bytes.to_vec())
        .map_err(|e| CliError::with(url, &e))
}

/// An HTML document rather than bencode (which always starts with `d`).
fn looks_like_html(bytes: &[u8]) -> bool {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let head = &bytes[start..bytes.len().min(start + 512)];
    head.first() == Some(&b'<')
        && String::from_utf8_lossy(head)
            .to_ascii_lowercase()
            .contains("html")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_pages_are_told_apart() {
        assert!(looks_like_html(b"\n  <!DOCTYPE html><html><body>"));
        assert!(looks_like_html(b"<HTML>"));
        assert!(!looks_like_html(b"d8:announce"));
        assert!(!looks_like_html(b""));
    }

    #[test]
    fn schemes_are_case_insensitive() {
        assert!(is_magnet("MAGNET:?xt=urn:btih:x"));
        assert!(is_url("HTTPS://example.org/a.torrent"));
        assert!(!is_url("http.torrent"));
    }
}
