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

    /// What fetches `len` bytes of the torrent from `offset`, in order: one range request per
    /// file the stretch touches, and padding as zeros (which no server holds). `None` when the
    /// stretch is past the torrent's end.
    pub(crate) fn segments(
        &self,
        metainfo: &Metainfo,
        offset: u64,
        len: u64,
    ) -> Option<Vec<Segment>> {
        let mut segments = Vec::new();
        let mut covered = 0;
        for slice in metainfo.byte_range_slices(offset, len) {
            covered += slice.len;
            let file = metainfo.files().get(slice.file_index)?;
            if file.is_padding() {
                segments.push(Segment::Zeros(slice.len));
            } else {
                segments.push(Segment::File(FileRange {
                    url: self.file_url(metainfo, slice.file_index)?,
                    file_index: slice.file_index,
                    start: slice.offset,
                    len: slice.len,
                }));
            }
        }
        (covered == len).then_some(segments)
    }
}

/// One stretch of a fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// Bytes the server holds.
    File(FileRange),
    /// Padding: this many zero bytes.
    Zeros(u64),
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
        let segments = exact.segments(&metainfo, 16_384, 23_616).unwrap();
        assert_eq!(
            segments,
            [Segment::File(FileRange {
                url: "http://h/x.iso?key=1".into(),
                file_index: 0,
                start: 16_384,
                len: 23_616,
            })]
        );
        assert_eq!(
            exact.segments(&metainfo, 16_384, 30_000),
            None,
            "past the end"
        );
    }

    #[test]
    fn multi_file_segments_split_at_files_with_padding_as_zeros() {
        // 1.flac at 0..10,000, padding to 16,384, the second file from there.
        let metainfo = torrent(&[("1.flac", 10_000), ("sub/ünï (2).flac", 30_000)]);
        for base in ["http://h/m", "http://h/m/"] {
            let url = WebSeedUrl::new(base, &metainfo);
            let segments = url.segments(&metainfo, 5_000, 20_000).unwrap();
            let file = |url: &str, file_index, start, len| {
                Segment::File(FileRange {
                    url: url.into(),
                    file_index,
                    start,
                    len,
                })
            };
            assert_eq!(
                segments,
                [
                    file("http://h/m/my%20album/1.flac", 0, 5_000, 5_000),
                    Segment::Zeros(6_384),
                    file(
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
