//! Where a web seed serves each byte of a torrent (BEP 19), mapped as libtorrent maps it: a
//! single-file torrent's URL is the file itself (or, ending in `/`, the folder holding it under
//! the torrent's name); a multi-file torrent's URL is the folder holding the torrent's folder,
//! and each file's path, percent-encoded, is appended to it.

use cratetorrent_metainfo::Metainfo;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// What a path keeps unescaped, as libtorrent's `escape_path`: `/`, letters, digits and
/// `-_!.~*()`.
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'!')
    .remove(b'.')
    .remove(b'~')
    .remove(b'*')
    .remove(b'(')
    .remove(b')');

/// A web seed's URL for one torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WebSeedUrl {
    /// The single file's URL, or the folder's with a trailing `/`.
    base: String,
    single_file: bool,
}

/// One HTTP range request: bytes `start..start + len` of the file at `url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileRange {
    pub(crate) url: String,
    pub(crate) file_index: usize,
    pub(crate) start: u64,
    pub(crate) len: u64,
}

impl WebSeedUrl {
    pub(crate) fn new(url: &str, metainfo: &Metainfo) -> Self {
        let single_file = metainfo.is_single_file();
        let mut base = url.to_string();
        if single_file {
            // A folder URL for a single file: the file is in it under the torrent's name.
            if base.ends_with('/') {
                base.push_str(&escape(metainfo.name()));
            }
        } else if !base.ends_with('/') {
            // Torrents whose multi-file web seed lacks the slash are common; libtorrent adds it.
            base.push('/');
        }
        Self { base, single_file }
    }

    /// The URL of file `index` (its path from the torrent's name down, escaped).
    pub(crate) fn file_url(&self, metainfo: &Metainfo, index: usize) -> Option<String> {
        if self.single_file {
            return Some(self.base.clone());
        }
        let file = metainfo.files().get(index)?;
        let path = file.components().join("/");
        Some(format!("{}{}", self.base, escape(&path)))
    }

    /// The requests that fetch `len` bytes of the torrent from `offset`: one per file the range
    /// touches, padding left out (its bytes are zeros, which no server holds).
    pub(crate) fn ranges(&self, metainfo: &Metainfo, offset: u64, len: u64) -> Vec<FileRange> {
        metainfo
            .byte_range_slices(offset, len)
            .filter(|slice| !metainfo.files()[slice.file_index].is_padding())
            .filter_map(|slice| {
                Some(FileRange {
                    url: self.file_url(metainfo, slice.file_index)?,
                    file_index: slice.file_index,
                    start: slice.offset,
                    len: slice.len,
                })
            })
            .collect()
    }
}

fn escape(path: &str) -> String {
    utf8_percent_encode(path, PATH).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cratetorrent_metainfo::{MetaVersion, TorrentBuilder};

    fn torrent(files: &[(&str, usize)]) -> Metainfo {
        let dir = tempfile::tempdir().unwrap();
        let root = if let [(name, len)] = files {
            let path = dir.path().join(name);
            std::fs::write(&path, vec![1; *len]).unwrap();
            path
        } else {
            let root = dir.path().join("my album");
            for (name, len) in files {
                let path = root.join(name);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, vec![1; *len]).unwrap();
            }
            root
        };
        // Hybrid, for padding between files.
        let bytes = TorrentBuilder::new(root)
            .meta_version(MetaVersion::Hybrid)
            .piece_length(16 * 1024)
            .build()
            .unwrap();
        Metainfo::from_bytes(&bytes).unwrap()
    }

    #[test]
    fn a_single_file_is_the_url_or_under_the_folder_url() {
        let metainfo = torrent(&[("a b+c.iso", 40_000)]);
        let url = WebSeedUrl::new("http://h/files/", &metainfo);
        assert_eq!(
            url.file_url(&metainfo, 0).unwrap(),
            "http://h/files/a%20b%2Bc.iso"
        );
        let exact = WebSeedUrl::new("http://h/x.iso?key=1", &metainfo);
        let ranges = exact.ranges(&metainfo, 16_384, 30_000);
        assert_eq!(
            ranges,
            [FileRange {
                url: "http://h/x.iso?key=1".into(),
                file_index: 0,
                start: 16_384,
                len: 23_616,
            }]
        );
    }

    #[test]
    fn multi_file_ranges_split_at_files_and_skip_padding() {
        // 1.flac at 0..10,000, padding to 16,384, the second file from there.
        let metainfo = torrent(&[("1.flac", 10_000), ("sub/ünï (2).flac", 30_000)]);
        for base in ["http://h/m", "http://h/m/"] {
            let url = WebSeedUrl::new(base, &metainfo);
            let ranges = url.ranges(&metainfo, 5_000, 20_000);
            let got: Vec<_> = ranges
                .iter()
                .map(|r| (r.url.as_str(), r.file_index, r.start, r.len))
                .collect();
            assert_eq!(
                got,
                [
                    ("http://h/m/my%20album/1.flac", 0, 5_000, 5_000),
                    (
                        "http://h/m/my%20album/sub/%C3%BCn%C3%AF%20(2).flac",
                        2,
                        0,
                        8_616
                    ),
                ]
            );
        }
    }
}
