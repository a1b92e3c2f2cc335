//! Parsing and validation of `.torrent` files (BEP 3, with BEP 12, 19, 27, 47 and 52 fields).

use std::ops::Range;

use bytes::Bytes;

use crate::bencode::{self, DecodeOptions, Dict, Value};
use crate::files::{FileAttributes, FileEntry, FileSlices};
use crate::path::check_component;
use crate::{InfoHash, MetainfoError, PieceIndex};

/// The largest piece length accepted (256 MiB, the largest any common tool creates).
pub const MAX_PIECE_LENGTH: u32 = 256 << 20;

/// Limits applied to untrusted `.torrent` files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest bencode nesting accepted.
    pub max_depth: usize,
    /// Most files accepted in one torrent.
    pub max_files: usize,
    /// Most path components (directories plus file name) in one file's path.
    pub max_path_components: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 256,
            max_files: 1_000_000,
            max_path_components: 256,
        }
    }
}

/// A parsed, validated v1 torrent.
///
/// Cheap to clone: the raw `info` dictionary (which holds the piece hashes) is shared.
#[derive(Debug, Clone)]
pub struct Metainfo {
    info_hash: InfoHash,
    info_bytes: Bytes,
    pieces: Range<usize>,
    name: String,
    piece_length: u32,
    piece_count: u32,
    total_length: u64,
    files: Vec<FileEntry>,
    single_file: bool,
    private: bool,
    source: Option<String>,
    hybrid: bool,
    announce: Option<String>,
    announce_list: Vec<Vec<String>>,
    url_list: Vec<String>,
    creation_date: Option<i64>,
    comment: Option<String>,
    created_by: Option<String>,
}

impl Metainfo {
    /// Parses a `.torrent` file with the default [`Limits`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MetainfoError> {
        Self::from_bytes_with(bytes, &Limits::default())
    }

    /// Parses a `.torrent` file.
    pub fn from_bytes_with(bytes: &[u8], limits: &Limits) -> Result<Self, MetainfoError> {
        let root = bencode::decode_with(
            bytes,
            &DecodeOptions {
                max_depth: limits.max_depth,
            },
        )?;
        let root = root.as_dict().ok_or(MetainfoError::NotADictionary)?;
        let mut info = None;
        let mut top = TopLevel::default();
        // One pass over the keys: looking each up would rescan the large `info` value.
        for (key, value) in root {
            match key {
                b"info" => info = Some(value),
                b"announce" => {
                    top.announce = value.as_str().filter(|s| !s.is_empty()).map(String::from)
                }
                b"announce-list" => top.announce_list = parse_tiers(value),
                b"url-list" => top.url_list = parse_url_list(value),
                b"creation date" => top.creation_date = value.as_int(),
                b"comment" => top.comment = top.comment.or_else(|| lossy(value)),
                b"comment.utf-8" => top.comment = value.as_str().map(String::from).or(top.comment),
                b"created by" => top.created_by = lossy(value),
                _ => {}
            }
        }
        let info = info.ok_or(MetainfoError::MissingField("info"))?;
        let info_dict = info.as_dict().ok_or(invalid("info", "not a dictionary"))?;
        let parsed = parse_info(info_dict, limits)?;
        let info_span = info.span();
        let pieces = parsed.pieces.start - info_span.start..parsed.pieces.end - info_span.start;
        Ok(Self::assemble(info.raw(), pieces, parsed, top))
    }

    /// Builds a torrent from an `info` dictionary fetched by its info-hash (BEP 9, after a
    /// magnet link) and the trackers (tiers) and web seeds the link named. The dictionary is
    /// validated exactly as in a `.torrent` file; the caller checks its hash.
    pub fn from_info(
        info: &[u8],
        trackers: Vec<Vec<String>>,
        web_seeds: Vec<String>,
        limits: &Limits,
    ) -> Result<Self, MetainfoError> {
        let value = bencode::decode_with(
            info,
            &DecodeOptions {
                max_depth: limits.max_depth,
            },
        )?;
        let info_dict = value.as_dict().ok_or(invalid("info", "not a dictionary"))?;
        let parsed = parse_info(info_dict, limits)?;
        let top = TopLevel {
            announce_list: trackers
                .into_iter()
                .filter(|tier| !tier.is_empty())
                .collect(),
            url_list: web_seeds,
            ..TopLevel::default()
        };
        Ok(Self::assemble(info, parsed.pieces.clone(), parsed, top))
    }

    /// The torrent of the exact `info` bytes (whose `pieces` string is at `pieces` in them).
    fn assemble(info: &[u8], pieces: Range<usize>, parsed: ParsedInfo, top: TopLevel) -> Self {
        Self {
            info_hash: InfoHash::of_info(info),
            info_bytes: Bytes::copy_from_slice(info),
            pieces,
            name: parsed.name,
            piece_length: parsed.piece_length,
            piece_count: parsed.piece_count,
            total_length: parsed.total_length,
            files: parsed.files,
            single_file: parsed.single_file,
            private: parsed.private,
            source: parsed.source,
            hybrid: parsed.hybrid,
            announce: top.announce,
            announce_list: top.announce_list,
            url_list: top.url_list,
            creation_date: top.creation_date,
            comment: top.comment,
            created_by: top.created_by,
        }
    }

    /// The torrent as a `.torrent` file: its exact `info` dictionary (so the info-hash is the
    /// same), trackers, web seeds and descriptive fields.
    pub fn to_torrent_bytes(&self) -> Vec<u8> {
        use crate::bencode::{DictBuilder, Encode, Raw};
        let mut dict = DictBuilder::new();
        dict.insert("info", Raw(&self.info_bytes));
        let tiers = self.trackers();
        if let Some(first) = tiers.first().and_then(|tier| tier.first()) {
            dict.insert("announce", first.as_str());
        }
        if tiers.len() > 1 || tiers.first().is_some_and(|tier| tier.len() > 1) {
            dict.insert("announce-list", &tiers);
        }
        if !self.url_list.is_empty() {
            dict.insert("url-list", &self.url_list);
        }
        if let Some(date) = self.creation_date {
            dict.insert("creation date", date);
        }
        if let Some(comment) = &self.comment {
            dict.insert("comment", comment.as_str());
        }
        if let Some(created_by) = &self.created_by {
            dict.insert("created by", created_by.as_str());
        }
        dict.to_bencode()
    }

    /// SHA-1 of the exact bytes of the `info` dictionary as it appears in the file.
    pub fn info_hash(&self) -> InfoHash {
        self.info_hash
    }

    /// The exact bytes of the `info` dictionary (what BEP 9 peers exchange).
    pub fn info_bytes(&self) -> &Bytes {
        &self.info_bytes
    }

    /// The suggested name: the file name, or the root directory of a multi-file torrent.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The nominal piece length; the last piece may be shorter.
    pub fn piece_length(&self) -> u32 {
        self.piece_length
    }

    /// The number of pieces.
    pub fn piece_count(&self) -> u32 {
        self.piece_count
    }

    /// The length of `piece`, or `None` if it is out of range.
    pub fn piece_len(&self, piece: PieceIndex) -> Option<u32> {
        if piece >= self.piece_count {
            return None;
        }
        let start = u64::from(piece) * u64::from(self.piece_length);
        let len = (self.total_length - start).min(u64::from(self.piece_length));
        u32::try_from(len).ok()
    }

    /// The expected SHA-1 of `piece`.
    pub fn piece_hash(&self, piece: PieceIndex) -> Option<&[u8; 20]> {
        let start = usize::try_from(piece).ok()?.checked_mul(20)?;
        self.pieces_bytes().get(start..)?.first_chunk::<20>()
    }

    /// All piece hashes, 20 bytes each, in order.
    pub fn pieces_bytes(&self) -> &[u8] {
        &self.info_bytes[self.pieces.clone()]
    }

    /// Total payload size in bytes (padding files included).
    pub fn total_length(&self) -> u64 {
        self.total_length
    }

    /// The files in torrent order. A single-file torrent has one entry named after the torrent.
    pub fn files(&self) -> &[FileEntry] {
        &self.files
    }

    /// Whether the torrent describes one file rather than a directory.
    pub fn is_single_file(&self) -> bool {
        self.single_file
    }

    /// The file slices that `piece` covers (empty when out of range).
    pub fn piece_slices(&self, piece: PieceIndex) -> FileSlices<'_> {
        let len = self.piece_len(piece).unwrap_or(0);
        self.byte_range_slices(
            u64::from(piece) * u64::from(self.piece_length),
            u64::from(len),
        )
    }

    /// The file slices covering `len` bytes from torrent offset `offset`, cut at the end of the
    /// torrent.
    pub fn byte_range_slices(&self, offset: u64, len: u64) -> FileSlices<'_> {
        FileSlices::new(&self.files, offset, len)
    }

    /// BEP 27: peers must come only from the torrent's trackers.
    pub fn is_private(&self) -> bool {
        self.private
    }

    /// The `source` field of the info dictionary (private trackers use it to change the hash).
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    /// A BEP 52 hybrid torrent, read here as v1 only.
    pub fn is_hybrid(&self) -> bool {
        self.hybrid
    }

    /// The `announce` URL.
    pub fn announce(&self) -> Option<&str> {
        self.announce.as_deref()
    }

    /// BEP 12 tracker tiers: `announce-list` when present, else a tier holding `announce`.
    pub fn trackers(&self) -> Vec<Vec<String>> {
        if !self.announce_list.is_empty() {
            return self.announce_list.clone();
        }
        self.announce.iter().map(|url| vec![url.clone()]).collect()
    }

    /// BEP 19 web seeds.
    pub fn url_list(&self) -> &[String] {
        &self.url_list
    }

    /// Seconds since the Unix epoch when the torrent was created.
    pub fn creation_date(&self) -> Option<i64> {
        self.creation_date
    }

    /// Free-form comment.
    pub fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }

    /// The program that created the torrent.
    pub fn created_by(&self) -> Option<&str> {
        self.created_by.as_deref()
    }
}

#[derive(Default)]
struct TopLevel {
    announce: Option<String>,
    announce_list: Vec<Vec<String>>,
    url_list: Vec<String>,
    creation_date: Option<i64>,
    comment: Option<String>,
    created_by: Option<String>,
}

struct ParsedInfo {
    name: String,
    piece_length: u32,
    piece_count: u32,
    /// Span of the hash bytes in the whole input.
    pieces: Range<usize>,
    total_length: u64,
    files: Vec<FileEntry>,
    single_file: bool,
    private: bool,
    source: Option<String>,
    hybrid: bool,
}

fn invalid(field: &'static str, reason: &'static str) -> MetainfoError {
    MetainfoError::InvalidField { field, reason }
}

fn lossy(value: Value<'_>) -> Option<String> {
    value
        .as_bytes()
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
}

/// Prefers the `.utf-8` variant of a string field when present and valid, as libtorrent does.
fn text(
    plain: Option<Value<'_>>,
    utf8: Option<Value<'_>>,
    field: &'static str,
) -> Result<Option<String>, MetainfoError> {
    if let Some(text) = utf8.and_then(|v| v.as_str()) {
        return Ok(Some(text.to_string()));
    }
    match plain {
        None => Ok(None),
        Some(value) => lossy(value).map(Some).ok_or(invalid(field, "not a string")),
    }
}

fn parse_tiers(value: Value<'_>) -> Vec<Vec<String>> {
    // Malformed tracker entries are skipped, not fatal: trackers are hints, and libtorrent does the same.
    let Some(tiers) = value.as_list() else {
        return Vec::new();
    };
    tiers
        .iter()
        .filter_map(|tier| tier.as_list())
        .map(|tier| {
            tier.iter()
                .filter_map(|url| url.as_str())
                .filter(|url| !url.is_empty())
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .filter(|tier| !tier.is_empty())
        .collect()
}

fn parse_url_list(value: Value<'_>) -> Vec<String> {
    if let Some(url) = value.as_str() {
        return if url.is_empty() {
            Vec::new()
        } else {
            vec![url.to_string()]
        };
    }
    let Some(list) = value.as_list() else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|url| url.as_str())
        .filter(|url| !url.is_empty())
        .map(String::from)
        .collect()
}

fn parse_info(info: Dict<'_>, limits: &Limits) -> Result<ParsedInfo, MetainfoError> {
    let (mut name, mut name_utf8, mut piece_length, mut pieces) = (None, None, None, None);
    let (mut length, mut files, mut private, mut source, mut meta_version) =
        (None, None, false, None, None);
    for (key, value) in info {
        match key {
            b"name" => name = Some(value),
            b"name.utf-8" => name_utf8 = Some(value),
            b"piece length" => piece_length = Some(value),
            b"pieces" => pieces = Some(value),
            b"length" => length = Some(value),
            b"files" => files = Some(value),
            b"private" => private = value.as_int() == Some(1),
            b"source" => source = lossy(value),
            b"meta version" => meta_version = Some(value),
            _ => {}
        }
    }

    let hybrid = match meta_version.map(|v| v.as_int()) {
        None | Some(Some(1)) => false,
        Some(Some(2)) if pieces.is_some() => true,
        Some(Some(2)) => {
            return Err(MetainfoError::Unsupported(
                "BitTorrent v2 (BEP 52) torrent without v1 pieces",
            ));
        }
        Some(_) => return Err(MetainfoError::Unsupported("unknown `meta version`")),
    };

    let name = text(name, name_utf8, "name")?.ok_or(MetainfoError::MissingField("name"))?;
    let piece_length = piece_length.ok_or(MetainfoError::MissingField("piece length"))?;
    let piece_length = piece_length
        .as_int()
        .ok_or(invalid("piece length", "not an integer"))?;
    let piece_length = check_piece_length(piece_length)?;

    let (files, single_file) = match (length, files) {
        (Some(length), None) => {
            check_component(&name, &|| name.clone())?;
            let length = file_length(length)?;
            let entry = FileEntry {
                components: vec![name.clone()],
                length,
                offset: 0,
                attributes: FileAttributes::default(),
            };
            (vec![entry], true)
        }
        (None, Some(files)) => (parse_files(&name, files, limits)?, false),
        _ => return Err(MetainfoError::AmbiguousLayout),
    };
    let total_length = files
        .last()
        .map(|f| {
            f.offset
                .checked_add(f.length)
                .ok_or(MetainfoError::LengthOverflow)
        })
        .transpose()?
        .unwrap_or(0);
    if total_length == 0 {
        return Err(MetainfoError::ZeroLength);
    }
    if i64::try_from(total_length).is_err() {
        return Err(MetainfoError::LengthOverflow);
    }

    let piece_count = total_length.div_ceil(u64::from(piece_length));
    let piece_count =
        u32::try_from(piece_count).map_err(|_| MetainfoError::TooManyPieces(piece_count))?;
    let pieces = pieces.ok_or(MetainfoError::MissingField("pieces"))?;
    let hashes = pieces.as_bytes().ok_or(invalid("pieces", "not a string"))?;
    let expected = u64::from(piece_count) * 20;
    if hashes.len() as u64 != expected {
        return Err(MetainfoError::PiecesLengthMismatch {
            expected,
            actual: hashes.len() as u64,
        });
    }
    let span = pieces.span();
    Ok(ParsedInfo {
        name,
        piece_length,
        piece_count,
        pieces: span.end - hashes.len()..span.end,
        total_length,
        files,
        single_file,
        private,
        source,
        hybrid,
    })
}

fn check_piece_length(length: i64) -> Result<u32, MetainfoError> {
    let valid = u32::try_from(length).ok().filter(|&l| {
        l > 0 && l <= MAX_PIECE_LENGTH && (l.is_power_of_two() || l % (16 * 1024) == 0)
    });
    valid.ok_or(MetainfoError::InvalidPieceLength(length))
}

fn file_length(value: Value<'_>) -> Result<u64, MetainfoError> {
    let length = value.as_int().ok_or(invalid("length", "not an integer"))?;
    u64::try_from(length).map_err(|_| invalid("length", "negative"))
}

fn parse_files(
    name: &str,
    files: Value<'_>,
    limits: &Limits,
) -> Result<Vec<FileEntry>, MetainfoError> {
    let list = files.as_list().ok_or(invalid("files", "not a list"))?;
    check_component(name, &|| name.to_string())?;
    let mut entries = Vec::new();
    let mut offset = 0u64;
    for (index, file) in list.iter().enumerate() {
        if index == limits.max_files {
            return Err(MetainfoError::TooManyFiles {
                count: list.len(),
                limit: limits.max_files,
            });
        }
        let file = file
            .as_dict()
            .ok_or(invalid("files", "entry is not a dictionary"))?;
        let (mut length, mut path, mut path_utf8, mut attr) = (None, None, None, None);
        for (key, value) in file {
            match key {
                b"length" => length = Some(value),
                b"path" => path = Some(value),
                b"path.utf-8" => path_utf8 = Some(value),
                b"attr" => attr = value.as_bytes(),
                _ => {}
            }
        }
        let length = file_length(length.ok_or(MetainfoError::MissingField("length"))?)?;
        let mut components = vec![name.to_string()];
        let utf8 = path_utf8.and_then(|p| utf8_components(p));
        match utf8 {
            Some(list) => components.extend(list),
            None => {
                let path = path.ok_or(MetainfoError::MissingField("path"))?;
                let path = path.as_list().ok_or(invalid("path", "not a list"))?;
                for component in path {
                    components.push(
                        lossy(component).ok_or(invalid("path", "component is not a string"))?,
                    );
                }
            }
        }
        check_path(&components, limits)?;
        let entry = FileEntry {
            components,
            length,
            offset,
            attributes: attr.map(FileAttributes::parse).unwrap_or_default(),
        };
        offset = offset
            .checked_add(length)
            .ok_or(MetainfoError::LengthOverflow)?;
        entries.push(entry);
    }
    if entries.is_empty() {
        return Err(invalid("files", "empty list"));
    }
    check_conflicts(&entries)?;
    Ok(entries)
}

fn utf8_components(path: Value<'_>) -> Option<Vec<String>> {
    path.as_list()?
        .iter()
        .map(|c| c.as_str().map(String::from))
        .collect()
}

fn check_path(components: &[String], limits: &Limits) -> Result<(), MetainfoError> {
    let whole = || components.join("/");
    if components.len() < 2 {
        return Err(MetainfoError::UnsafePath {
            path: whole(),
            reason: "empty path",
        });
    }
    if components.len() > limits.max_path_components {
        return Err(MetainfoError::UnsafePath {
            path: whole(),
            reason: "too many path components",
        });
    }
    for component in &components[1..] {
        check_component(component, &whole)?;
    }
    Ok(())
}

/// Rejects two files with one path, and a file whose path another file uses as a directory.
/// Padding files are exempt: BEP 47 torrents repeat names such as `.pad/16384`, and they are
/// never written.
fn check_conflicts(files: &[FileEntry]) -> Result<(), MetainfoError> {
    let mut paths: Vec<&[String]> = files
        .iter()
        .filter(|f| !f.is_padding())
        .map(|f| f.components.as_slice())
        .collect();
    // Creators list files sorted, so the sort is usually skipped.
    if !paths.is_sorted() {
        paths.sort_unstable();
    }
    for pair in paths.windows(2) {
        if pair[1].starts_with(pair[0]) {
            return Err(MetainfoError::ConflictingPaths(pair[1].join("/")));
        }
    }
    Ok(())
}
