//! Parsing and validation of `.torrent` files (BEP 3, with BEP 12, 19, 27, 47 and 52 fields).

use std::ops::Range;

use bytes::Bytes;

use crate::bencode::{self, DecodeOptions, Dict, Value};
use crate::file_list::v1_files;
use crate::file_tree::parse_file_tree;
use crate::files::{FileEntry, FileSlices};
use crate::path::check_component;
use crate::piece_layers::PieceLayers;
use crate::{InfoHash, InfoHashV2, InfoHashes, MetainfoError, PieceIndex, v2_layout};

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

/// Which BitTorrent versions a torrent's info dictionary describes itself in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetaVersion {
    /// BEP 3: SHA-1 piece hashes over the concatenated files.
    V1,
    /// BEP 52 only: a SHA-256 merkle tree per file.
    V2,
    /// Both (BEP 52 hybrid): v1 piece hashes and v2 file tree describe the same, piece-aligned
    /// files, and v1 and v2 peers share one swarm.
    Hybrid,
}

impl MetaVersion {
    /// Whether the torrent has v1 piece hashes and info-hash.
    pub fn has_v1(self) -> bool {
        matches!(self, Self::V1 | Self::Hybrid)
    }

    /// Whether the torrent has a v2 file tree and info-hash.
    pub fn has_v2(self) -> bool {
        matches!(self, Self::V2 | Self::Hybrid)
    }
}

/// A parsed, validated torrent: v1, v2 or hybrid.
///
/// Cheap to clone: the raw `info` dictionary (which holds the piece hashes) is shared.
#[derive(Debug, Clone)]
pub struct Metainfo {
    info_hashes: InfoHashes,
    /// The 20-byte hash the swarm knows the torrent by ([`InfoHashes::wire`]).
    info_hash: InfoHash,
    info_bytes: Bytes,
    piece_layers: PieceLayers,
    pieces: Range<usize>,
    name: String,
    piece_length: u32,
    piece_count: u32,
    total_length: u64,
    files: Vec<FileEntry>,
    single_file: bool,
    private: bool,
    source: Option<String>,
    version: MetaVersion,
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
        let (mut info, mut layers) = (None, None);
        let mut top = TopLevel::default();
        // One pass over the keys: looking each up would rescan the large `info` value.
        for (key, value) in root {
            match key {
                b"info" => info = Some(value),
                b"piece layers" => layers = Some(value),
                b"announce" => {
                    top.announce = value.as_str().filter(|s| !s.is_empty()).map(String::from)
                }
                b"announce-list" => top.announce_list = parse_tiers(value),
                b"url-list" => top.url_list = parse_url_list(value),
                b"creation date" => top.creation_date = value.as_int(),
                b"comment" => top.comment = top.comment.or_else(|| value.to_string_lossy()),
                b"comment.utf-8" => top.comment = value.as_str().map(String::from).or(top.comment),
                b"created by" => top.created_by = value.to_string_lossy(),
                _ => {}
            }
        }
        let info = info.ok_or(MetainfoError::MissingField("info"))?;
        let info_dict = info.as_dict().ok_or(invalid("info", "not a dictionary"))?;
        let parsed = parse_info(info_dict, limits)?;
        let piece_layers = match layers {
            Some(layers) if parsed.version.has_v2() => {
                PieceLayers::parse(layers, &parsed.files, parsed.piece_length)?
            }
            _ => PieceLayers::default(),
        };
        Ok(Self::assemble(info.raw(), parsed, piece_layers, top))
    }

    /// Builds a torrent from an `info` dictionary fetched by its info-hash (BEP 9, after a
    /// magnet link) and the trackers (tiers) and web seeds the link named. The dictionary is
    /// validated exactly as in a `.torrent` file; the caller checks its hash. A v2 torrent
    /// built so has no piece layers: peers supply them.
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
        Ok(Self::assemble(info, parsed, PieceLayers::default(), top))
    }

    /// The torrent of the exact `info` bytes.
    fn assemble(info: &[u8], parsed: ParsedInfo, piece_layers: PieceLayers, top: TopLevel) -> Self {
        let info_hashes = InfoHashes {
            v1: parsed.version.has_v1().then(|| InfoHash::of_info(info)),
            v2: parsed.version.has_v2().then(|| InfoHashV2::of_info(info)),
        };
        Self {
            info_hashes,
            info_hash: info_hashes.wire().unwrap_or(InfoHash::new([0; 20])),
            info_bytes: Bytes::copy_from_slice(info),
            piece_layers,
            pieces: parsed.pieces,
            name: parsed.name,
            piece_length: parsed.piece_length,
            piece_count: parsed.piece_count,
            total_length: parsed.total_length,
            files: parsed.files,
            single_file: parsed.single_file,
            private: parsed.private,
            source: parsed.source,
            version: parsed.version,
            announce: top.announce,
            announce_list: top.announce_list,
            url_list: top.url_list,
            creation_date: top.creation_date,
            comment: top.comment,
            created_by: top.created_by,
        }
    }

    /// The torrent as a `.torrent` file: its exact `info` dictionary (so the info-hash is the
    /// same), piece layers, trackers, web seeds and descriptive fields.
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
        if !self.piece_layers.is_empty() {
            dict.insert("piece layers", self.piece_layers.to_dict(&self.files));
        }
        dict.to_bencode()
    }

    /// The 20-byte hash the swarm knows the torrent by, in handshakes, trackers and the DHT:
    /// the SHA-1 of the exact bytes of the `info` dictionary, or for a v2-only torrent its
    /// SHA-256 truncated.
    pub fn info_hash(&self) -> InfoHash {
        self.info_hash
    }

    /// The torrent's v1 and v2 info-hashes, as its version has them.
    pub fn info_hashes(&self) -> InfoHashes {
        self.info_hashes
    }

    /// Which BitTorrent versions describe the torrent.
    pub fn meta_version(&self) -> MetaVersion {
        self.version
    }

    /// BEP 52: the piece layer of file `index` (32 bytes per piece of the file), for files
    /// larger than one piece whose `.torrent` carried it; checked against the file's root.
    pub fn piece_layer(&self, index: usize) -> Option<&[u8]> {
        self.piece_layers.get(index)
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

    /// The expected SHA-1 of `piece` (`None` for v2-only torrents).
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

    /// A BEP 52 hybrid torrent (v1 and v2 in one).
    pub fn is_hybrid(&self) -> bool {
        self.version == MetaVersion::Hybrid
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
    /// Where the v1 hash bytes are in the info dictionary (empty for v2-only torrents).
    pieces: Range<usize>,
    total_length: u64,
    files: Vec<FileEntry>,
    single_file: bool,
    private: bool,
    source: Option<String>,
    version: MetaVersion,
}

fn invalid(field: &'static str, reason: &'static str) -> MetainfoError {
    MetainfoError::InvalidField { field, reason }
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
        Some(value) => value
            .to_string_lossy()
            .map(Some)
            .ok_or(invalid(field, "not a string")),
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
    let mut file_tree = None;
    for (key, value) in info {
        match key {
            b"name" => name = Some(value),
            b"name.utf-8" => name_utf8 = Some(value),
            b"piece length" => piece_length = Some(value),
            b"pieces" => pieces = Some(value),
            b"length" => length = Some(value),
            b"files" => files = Some(value),
            b"private" => private = value.as_int() == Some(1),
            b"source" => source = value.to_string_lossy(),
            b"meta version" => meta_version = Some(value),
            b"file tree" => file_tree = Some(value),
            _ => {}
        }
    }

    // BEP 52: `meta version` 2 with v1 `pieces` beside the file tree is a hybrid torrent.
    let version = match meta_version.map(|v| v.as_int()) {
        None | Some(Some(1)) => MetaVersion::V1,
        Some(Some(2)) if pieces.is_some() => MetaVersion::Hybrid,
        Some(Some(2)) => MetaVersion::V2,
        Some(_) => return Err(MetainfoError::Unsupported("unknown `meta version`")),
    };

    let name = text(name, name_utf8, "name")?.ok_or(MetainfoError::MissingField("name"))?;
    let piece_length = piece_length.ok_or(MetainfoError::MissingField("piece length"))?;
    let piece_length = piece_length
        .as_int()
        .ok_or(invalid("piece length", "not an integer"))?;
    let piece_length = check_piece_length(piece_length, version)?;

    let tree = || {
        let tree = file_tree.ok_or(MetainfoError::MissingField("file tree"))?;
        parse_file_tree(tree, limits)
    };
    let (files, single_file) = match version {
        MetaVersion::V1 => v1_files(&name, length, files, limits)?,
        MetaVersion::V2 => {
            let tree = tree()?;
            let single_file = v2_layout::is_single_file(&tree);
            if !single_file {
                check_component(&name, &|| name.clone())?;
            }
            let files = v2_layout::v2_files(&name, tree, single_file, piece_length)?;
            (files, single_file)
        }
        MetaVersion::Hybrid => {
            let (mut files, single_file) = v1_files(&name, length, files, limits)?;
            v2_layout::attach_tree(&mut files, tree()?, single_file, piece_length)?;
            (files, single_file)
        }
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
    let info_start = info.as_value().span().start;
    let pieces = match version {
        MetaVersion::V2 => 0..0,
        MetaVersion::V1 | MetaVersion::Hybrid => {
            let pieces = pieces.ok_or(MetainfoError::MissingField("pieces"))?;
            let hashes = pieces.as_bytes().ok_or(invalid("pieces", "not a string"))?;
            let expected = u64::from(piece_count) * 20;
            if hashes.len() as u64 != expected {
                return Err(MetainfoError::PiecesLengthMismatch {
                    expected,
                    actual: hashes.len() as u64,
                });
            }
            let end = pieces.span().end - info_start;
            end - hashes.len()..end
        }
    };
    Ok(ParsedInfo {
        name,
        piece_length,
        piece_count,
        pieces,
        total_length,
        files,
        single_file,
        private,
        source,
        version,
    })
}

/// v1 accepts any multiple of 16 KiB or power of two; BEP 52 requires a power of two of at least
/// 16 KiB.
fn check_piece_length(length: i64, version: MetaVersion) -> Result<u32, MetainfoError> {
    let valid = u32::try_from(length).ok().filter(|&l| {
        let v1 = l.is_power_of_two() || l % (16 * 1024) == 0;
        let v2 = l.is_power_of_two() && l >= 16 * 1024;
        l > 0 && l <= MAX_PIECE_LENGTH && if version.has_v2() { v2 } else { v1 }
    });
    valid.ok_or(MetainfoError::InvalidPieceLength(length))
}
