//! Magnet links (BEP 9 `xt=urn:btih`, BEP 53 `so`, BEP 52 `btmh`).

use std::fmt;
use std::ops::RangeInclusive;

use thiserror::Error;

use crate::info_hash::hex_value;
use crate::{InfoHash, InfoHashError, InfoHashV2, InfoHashes};

/// A parsed magnet link.
///
/// ```
/// use cratetorrent_metainfo::Magnet;
///
/// let magnet = Magnet::parse(
///     "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&dn=demo&tr=udp%3A%2F%2Ft.example%3A80",
/// )?;
/// assert_eq!(magnet.display_name.as_deref(), Some("demo"));
/// assert_eq!(magnet.trackers, ["udp://t.example:80"]);
/// assert_eq!(Magnet::parse(&magnet.to_string())?, magnet);
/// # Ok::<(), cratetorrent_metainfo::MagnetError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Magnet {
    /// The v1 info-hash (`xt=urn:btih:`, hex or base32).
    pub info_hash: Option<InfoHash>,
    /// The v2 info-hash (`xt=urn:btmh:1220…`, a SHA-256 multihash); a hybrid torrent's link
    /// carries both.
    pub info_hash_v2: Option<InfoHashV2>,
    /// `dn`: a name to show until the metadata arrives.
    pub display_name: Option<String>,
    /// Every `tr`, in order.
    pub trackers: Vec<String>,
    /// `x.pe`: peers to dial, as `host:port` (IPv6 hosts in brackets).
    pub peers: Vec<String>,
    /// `ws`: web seeds.
    pub web_seeds: Vec<String>,
    /// BEP 53 `so`: indices of the files to download.
    pub select_only: Vec<RangeInclusive<usize>>,
}

/// Why a string is not a usable magnet link.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MagnetError {
    /// It does not start with `magnet:?`.
    #[error("not a magnet link (expected `magnet:?`)")]
    NotAMagnet,
    /// Neither `xt=urn:btih:` nor `xt=urn:btmh:` is present.
    #[error("no BitTorrent info-hash (`xt=urn:btih:` or `urn:btmh:`)")]
    MissingInfoHash,
    /// Two different v1 info-hashes.
    #[error("conflicting info-hashes")]
    ConflictingInfoHashes,
    /// The `btih` value is malformed.
    #[error("invalid info-hash: {0}")]
    InfoHash(#[from] InfoHashError),
    /// The `btmh` value is not a SHA-256 multihash in hex.
    #[error("invalid v2 info-hash (expected `1220` and 64 hex digits)")]
    InvalidMultihash,
    /// A `%` escape that is not two hex digits, or text that is not UTF-8 once decoded.
    #[error("invalid percent-encoding in `{0}`")]
    InvalidEncoding(String),
    /// An `x.pe` value that is not `host:port`.
    #[error("invalid peer address `{0}`")]
    InvalidPeer(String),
    /// A `so` value that is not a list of indices and ranges.
    #[error("invalid select-only list `{0}`")]
    InvalidSelectOnly(String),
}

impl Magnet {
    /// Parses a magnet URI.
    pub fn parse(uri: &str) -> Result<Self, MagnetError> {
        let query = uri
            .strip_prefix("magnet:?")
            .or_else(|| {
                uri.get(..8)
                    .filter(|p| p.eq_ignore_ascii_case("magnet:?"))
                    .map(|_| &uri[8..])
            })
            .ok_or(MagnetError::NotAMagnet)?;
        let mut magnet = Self::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            // Indexed keys such as `tr.1` or `xt.2` mean the same as the plain ones.
            let base = match key.split_once('.') {
                Some((base, index)) if index.bytes().all(|b| b.is_ascii_digit()) => base,
                _ => key,
            };
            match base {
                "xt" => magnet.exact_topic(&decode(raw, false)?)?,
                "dn" => magnet.display_name = Some(decode(raw, true)?),
                "tr" => magnet.trackers.push(decode(raw, false)?),
                "ws" => magnet.web_seeds.push(decode(raw, false)?),
                "x.pe" => {
                    let peer = decode(raw, false)?;
                    check_peer(&peer)?;
                    magnet.peers.push(peer);
                }
                "so" => magnet.select_only = parse_select_only(&decode(raw, false)?)?,
                _ => {}
            }
        }
        if magnet.info_hash.is_none() && magnet.info_hash_v2.is_none() {
            return Err(MagnetError::MissingInfoHash);
        }
        Ok(magnet)
    }

    fn exact_topic(&mut self, topic: &str) -> Result<(), MagnetError> {
        if let Some(hash) = strip_prefix_ignore_case(topic, "urn:btih:") {
            let hash: InfoHash = hash.parse()?;
            if self.info_hash.is_some_and(|h| h != hash) {
                return Err(MagnetError::ConflictingInfoHashes);
            }
            self.info_hash = Some(hash);
        } else if let Some(multihash) = strip_prefix_ignore_case(topic, "urn:btmh:") {
            let digest = multihash
                .strip_prefix("1220")
                .ok_or(MagnetError::InvalidMultihash)?;
            let hash = InfoHashV2::from_hex(digest).map_err(|_| MagnetError::InvalidMultihash)?;
            if self.info_hash_v2.is_some_and(|h| h != hash) {
                return Err(MagnetError::ConflictingInfoHashes);
            }
            self.info_hash_v2 = Some(hash);
        }
        Ok(())
    }
}

fn strip_prefix_ignore_case<'t>(text: &'t str, prefix: &str) -> Option<&'t str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Percent-decodes `raw`; `plus_is_space` for display names, where `+` means a space.
fn decode(raw: &str, plus_is_space: bool) -> Result<String, MagnetError> {
    let error = || MagnetError::InvalidEncoding(raw.to_string());
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.bytes();
    while let Some(byte) = bytes.next() {
        match byte {
            b'%' => {
                let mut digit = || bytes.next().and_then(hex_value).ok_or_else(error);
                let high = digit()?;
                out.push(high << 4 | digit()?);
            }
            b'+' if plus_is_space => out.push(b' '),
            other => out.push(other),
        }
    }
    String::from_utf8(out).map_err(|_| error())
}

fn check_peer(peer: &str) -> Result<(), MagnetError> {
    let invalid = || MagnetError::InvalidPeer(peer.to_string());
    let (host, port) = peer.rsplit_once(':').ok_or_else(invalid)?;
    port.parse::<u16>().map_err(|_| invalid())?;
    let bracketed = host.starts_with('[') && host.ends_with(']');
    if host.is_empty() || (host.contains(':') && !bracketed) {
        return Err(invalid());
    }
    Ok(())
}

fn parse_select_only(text: &str) -> Result<Vec<RangeInclusive<usize>>, MagnetError> {
    let invalid = || MagnetError::InvalidSelectOnly(text.to_string());
    text.split(',')
        .map(|item| {
            let (first, last) = item.split_once('-').unwrap_or((item, item));
            let first: usize = first.parse().map_err(|_| invalid())?;
            let last: usize = last.parse().map_err(|_| invalid())?;
            if first > last {
                return Err(invalid());
            }
            Ok(first..=last)
        })
        .collect()
}

/// Writes `text` percent-encoded, leaving only RFC 3986 unreserved characters as they are.
struct Encoded<'t>(&'t str);

impl fmt::Display for Encoded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0.bytes() {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                write!(f, "{}", byte as char)?;
            } else {
                write!(f, "%{byte:02X}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Magnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("magnet:?")?;
        let mut separator = "";
        let mut param = |f: &mut fmt::Formatter<'_>, key: &str, value: &dyn fmt::Display| {
            let result = write!(f, "{separator}{key}={value}");
            separator = "&";
            result
        };
        if let Some(hash) = &self.info_hash {
            param(f, "xt", &format_args!("urn:btih:{hash}"))?;
        }
        if let Some(hash) = &self.info_hash_v2 {
            param(
                f,
                "xt",
                &format_args!("urn:btmh:{}", hash.to_multihash_hex()),
            )?;
        }
        if let Some(name) = &self.display_name {
            param(f, "dn", &Encoded(name))?;
        }
        for tracker in &self.trackers {
            param(f, "tr", &Encoded(tracker))?;
        }
        for seed in &self.web_seeds {
            param(f, "ws", &Encoded(seed))?;
        }
        for peer in &self.peers {
            param(f, "x.pe", &Encoded(peer))?;
        }
        if !self.select_only.is_empty() {
            let list: Vec<String> = self
                .select_only
                .iter()
                .map(|r| {
                    if r.start() == r.end() {
                        r.start().to_string()
                    } else {
                        format!("{}-{}", r.start(), r.end())
                    }
                })
                .collect();
            param(f, "so", &list.join(","))?;
        }
        Ok(())
    }
}

impl Magnet {
    /// The hashes the link names: `btih`, `btmh`, or both for a hybrid torrent.
    pub fn info_hashes(&self) -> InfoHashes {
        InfoHashes {
            v1: self.info_hash,
            v2: self.info_hash_v2,
        }
    }

    /// Which of a torrent's `file_count` files the link's `so` selects, in file order (`None`
    /// without `so`: every file). Indices past the last file are ignored. Linear in the ranges
    /// and the files, however the ranges overlap.
    ///
    /// ```
    /// use cratetorrent_metainfo::Magnet;
    ///
    /// let magnet = Magnet::parse("magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&so=0,2-3,9")?;
    /// assert_eq!(magnet.selected_files(4), Some(vec![true, false, true, true]));
    /// # Ok::<(), cratetorrent_metainfo::MagnetError>(())
    /// ```
    pub fn selected_files(&self, file_count: usize) -> Option<Vec<bool>> {
        if self.select_only.is_empty() {
            return None;
        }
        let last = file_count.checked_sub(1);
        let mut ranges: Vec<(usize, usize)> = self
            .select_only
            .iter()
            .filter_map(|r| Some((*r.start(), (*r.end()).min(last?))))
            .filter(|(start, end)| start <= end)
            .collect();
        ranges.sort_unstable();
        let mut selected = vec![false; file_count];
        // Each file is marked once: a range starts after what earlier ones covered.
        let mut next = 0;
        for (start, end) in ranges {
            let from = start.max(next);
            if from <= end {
                selected[from..=end].fill(true);
                next = end + 1;
            }
        }
        Some(selected)
    }
}

impl crate::Metainfo {
    /// The torrent's magnet link: its info-hash, name (`dn`), every tracker (`tr`) and web
    /// seed (`ws`).
    ///
    /// ```
    /// use cratetorrent_metainfo::{Metainfo, TorrentBuilder};
    ///
    /// let dir = std::env::temp_dir().join(format!("ct-magnet-doc-{}", std::process::id()));
    /// std::fs::write(&dir, b"hello")?;
    /// let torrent = Metainfo::from_bytes(&TorrentBuilder::new(&dir).tracker("http://t.example/a").build()?)?;
    /// let magnet = torrent.magnet();
    /// assert_eq!(magnet.info_hash, Some(torrent.info_hash()));
    /// assert_eq!(magnet.trackers, ["http://t.example/a"]);
    /// # std::fs::remove_file(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn magnet(&self) -> Magnet {
        Magnet {
            info_hash: self.info_hashes().v1,
            info_hash_v2: self.info_hashes().v2,
            display_name: Some(self.name().to_owned()),
            trackers: self.trackers().into_iter().flatten().collect(),
            web_seeds: self.url_list().to_vec(),
            ..Magnet::default()
        }
    }
}

impl std::str::FromStr for Magnet {
    type Err = MagnetError;
    fn from_str(uri: &str) -> Result<Self, Self::Err> {
        Self::parse(uri)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";

    #[test]
    fn parses_every_field() {
        let v2 = "1220".to_string() + &"ab".repeat(32);
        let uri = format!(
            "magnet:?xt=urn:btih:{HEX}&xt=urn:btmh:{v2}&dn=My+Film%20(2020)&tr=http%3A%2F%2Fa%2Fannounce\
             &tr.1=udp://b:6969&ws=http%3A%2F%2Fw%2Ff&x.pe=127.0.0.1:6881&x.pe=%5B::1%5D:6882&so=0,2,4-6&unknown=1"
        );
        let magnet = Magnet::parse(&uri).unwrap();
        assert_eq!(magnet.info_hash, Some(InfoHash::from_hex(HEX).unwrap()));
        assert_eq!(magnet.info_hash_v2, Some(InfoHashV2::new([0xab; 32])));
        assert_eq!(magnet.display_name.as_deref(), Some("My Film (2020)"));
        assert_eq!(magnet.trackers, ["http://a/announce", "udp://b:6969"]);
        assert_eq!(magnet.web_seeds, ["http://w/f"]);
        assert_eq!(magnet.peers, ["127.0.0.1:6881", "[::1]:6882"]);
        assert_eq!(magnet.select_only, vec![0..=0, 2..=2, 4..=6]);
        assert_eq!(Magnet::parse(&magnet.to_string()).unwrap(), magnet);
    }

    #[test]
    fn base32_and_case() {
        let magnet = Magnet::parse("MAGNET:?xt=URN:BTIH:YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK").unwrap();
        assert_eq!(magnet.info_hash, Some(InfoHash::from_hex(HEX).unwrap()));
    }

    #[test]
    fn rejects_bad_links() {
        let cases: &[(&str, MagnetError)] = &[
            ("http://x", MagnetError::NotAMagnet),
            ("magnet:?dn=x", MagnetError::MissingInfoHash),
            (
                "magnet:?xt=urn:btih:abc",
                MagnetError::InfoHash(InfoHashError::WrongLength(3)),
            ),
            (
                "magnet:?xt=urn:btmh:1114abcd",
                MagnetError::InvalidMultihash,
            ),
            (
                "magnet:?xt=urn:btih:%zz",
                MagnetError::InvalidEncoding("urn:btih:%zz".into()),
            ),
            (
                "magnet:?xt=urn:btih:%FF",
                MagnetError::InvalidEncoding("urn:btih:%FF".into()),
            ),
        ];
        for (uri, expected) in cases {
            assert_eq!(&Magnet::parse(uri).unwrap_err(), expected, "{uri}");
        }
        let ok = format!("magnet:?xt=urn:btih:{HEX}");
        assert!(matches!(
            Magnet::parse(&format!("{ok}&x.pe=nohost")),
            Err(MagnetError::InvalidPeer(_))
        ));
        assert!(matches!(
            Magnet::parse(&format!("{ok}&x.pe=::1:80")),
            Err(MagnetError::InvalidPeer(_))
        ));
        assert!(matches!(
            Magnet::parse(&format!("{ok}&so=3-1")),
            Err(MagnetError::InvalidSelectOnly(_))
        ));
        let other = "0".repeat(40);
        assert_eq!(
            Magnet::parse(&format!("{ok}&xt=urn:btih:{other}")),
            Err(MagnetError::ConflictingInfoHashes)
        );
    }

    #[test]
    fn select_only_picks_files_whatever_the_ranges() {
        let hash = "0123456789abcdef0123456789abcdef01234567";
        let magnet =
            |so: &str| Magnet::parse(&format!("magnet:?xt=urn:btih:{hash}&so={so}")).unwrap();
        assert_eq!(
            Magnet::parse(&format!("magnet:?xt=urn:btih:{hash}"))
                .unwrap()
                .selected_files(3),
            None
        );
        assert_eq!(
            magnet("1").selected_files(3),
            Some(vec![false, true, false])
        );
        assert_eq!(
            magnet("2-9,0-1").selected_files(3),
            Some(vec![true, true, true])
        );
        assert_eq!(magnet("5-6").selected_files(3), Some(vec![false; 3]));
        assert_eq!(magnet("0").selected_files(0), Some(vec![]));
        // A hostile link of many overlapping ranges costs one pass over the files.
        let many = vec!["0-18446744073709551615"; 50_000].join(",");
        assert_eq!(
            magnet(&many).selected_files(100_000).map(|s| s.len()),
            Some(100_000)
        );
    }
}
