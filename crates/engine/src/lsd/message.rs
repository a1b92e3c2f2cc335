//! The BEP 14 announce: an HTTP-like `BT-SEARCH` request in one UDP datagram.
//!
//! ```text
//! BT-SEARCH * HTTP/1.1\r\n
//! Host: 239.192.152.143:6771\r\n
//! Port: 6881\r\n
//! Infohash: 0123456789abcdef0123456789abcdef01234567\r\n
//! cookie: 5f2a…\r\n
//! \r\n
//! \r\n
//! ```
//!
//! Several `Infohash` lines may share a datagram (libtorrent reads them all).

use std::fmt::Write as _;
use std::net::SocketAddr;

use cratetorrent_metainfo::InfoHash;

/// Largest datagram read; announces are a few hundred bytes.
pub(crate) const MAX_DATAGRAM: usize = 1400;
/// Info-hashes taken from one announce, and put in one of ours (one fits in 52 bytes).
pub(crate) const MAX_HASHES: usize = 16;
/// Longest cookie kept: libtorrent's is 8 hex digits.
const MAX_COOKIE: usize = 64;

/// A local service discovery announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Announce {
    /// Where the announcer accepts peer connections (on the address the datagram came from).
    pub(crate) port: u16,
    pub(crate) info_hashes: Vec<InfoHash>,
    /// Identifies the announcer, so that it can ignore its own datagrams looped back.
    pub(crate) cookie: Option<String>,
}

/// Why a datagram is not an announce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LsdError {
    #[error("datagram of {0} bytes is longer than an announce")]
    TooLong(usize),
    #[error("not UTF-8 text")]
    NotText,
    #[error("not a BT-SEARCH request")]
    NotSearch,
    #[error("malformed header line")]
    Header,
    #[error("no valid Port header")]
    Port,
    #[error("malformed Infohash header")]
    InfoHash,
    #[error("no Infohash header")]
    NoInfoHash,
}

impl Announce {
    /// The datagram announcing this to the multicast `group`.
    pub(crate) fn encode(&self, group: SocketAddr) -> Vec<u8> {
        let mut text = format!(
            "BT-SEARCH * HTTP/1.1\r\nHost: {group}\r\nPort: {}\r\n",
            self.port
        );
        for hash in &self.info_hashes {
            let _ = write!(text, "Infohash: {}\r\n", hash.to_hex());
        }
        if let Some(cookie) = &self.cookie {
            let _ = write!(text, "cookie: {cookie}\r\n");
        }
        text.push_str("\r\n\r\n");
        text.into_bytes()
    }

    /// Reads an announce (header names in any case, `\n` or `\r\n` line ends, unknown headers
    /// ignored; at most [`MAX_HASHES`] info-hashes taken).
    pub(crate) fn decode(datagram: &[u8]) -> Result<Self, LsdError> {
        if datagram.len() > MAX_DATAGRAM {
            return Err(LsdError::TooLong(datagram.len()));
        }
        let text = std::str::from_utf8(datagram).map_err(|_| LsdError::NotText)?;
        let mut lines = text.lines();
        let request = lines.next().unwrap_or_default().trim_end();
        let mut words = request.split(' ');
        let search = words
            .next()
            .is_some_and(|m| m.eq_ignore_ascii_case("BT-SEARCH"))
            && words.next() == Some("*")
            && words.next().is_some_and(|v| v.starts_with("HTTP/1."))
            && words.next().is_none();
        if !search {
            return Err(LsdError::NotSearch);
        }
        let mut port = None;
        let mut info_hashes = Vec::new();
        let mut cookie = None;
        for line in lines {
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').ok_or(LsdError::Header)?;
            let value = value.trim();
            if name.eq_ignore_ascii_case("port") {
                port = Some(
                    value
                        .parse::<u16>()
                        .ok()
                        .filter(|&p| p != 0)
                        .ok_or(LsdError::Port)?,
                );
            } else if name.eq_ignore_ascii_case("infohash") {
                let hash = InfoHash::from_hex(value).map_err(|_| LsdError::InfoHash)?;
                if info_hashes.len() < MAX_HASHES && !info_hashes.contains(&hash) {
                    info_hashes.push(hash);
                }
            } else if name.eq_ignore_ascii_case("cookie") && value.len() <= MAX_COOKIE {
                cookie = Some(value.to_string());
            }
        }
        if info_hashes.is_empty() {
            return Err(LsdError::NoInfoHash);
        }
        Ok(Self {
            port: port.ok_or(LsdError::Port)?,
            info_hashes,
            cookie,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROUP: &str = "239.192.152.143:6771";

    #[test]
    fn round_trips_and_reads_libtorrents_announce() {
        let announce = Announce {
            port: 6881,
            info_hashes: vec![InfoHash::new([0xab; 20]), InfoHash::new([1; 20])],
            cookie: Some("1f2e3d4c".into()),
        };
        let group: SocketAddr = GROUP.parse().unwrap();
        assert_eq!(Announce::decode(&announce.encode(group)), Ok(announce));
        // As libtorrent 2.0 writes it (its lsd.cpp), with an IPv6 group.
        let theirs = "BT-SEARCH * HTTP/1.1\r\nHost: [ff15::efc0:152:143]:6771\r\nPort: 51413\r\n\
                      Infohash: ABABABABABABABABABABABABABABABABABABABAB\r\ncookie: 7a\r\n\r\n\r\n";
        let read = Announce::decode(theirs.as_bytes()).unwrap();
        assert_eq!(read.port, 51413);
        assert_eq!(read.info_hashes, [InfoHash::new([0xab; 20])]);
        assert_eq!(read.cookie.as_deref(), Some("7a"));
    }

    #[test]
    fn rejects_what_is_not_an_announce() {
        let cases: [(&[u8], LsdError); 7] = [
            (&[0xff, 0xfe], LsdError::NotText),
            (b"M-SEARCH * HTTP/1.1\r\n\r\n", LsdError::NotSearch),
            (b"BT-SEARCH * HTTP/1.1 x\r\n", LsdError::NotSearch),
            (b"BT-SEARCH * HTTP/1.1\r\nPort 1\r\n", LsdError::Header),
            (
                b"BT-SEARCH * HTTP/1.1\r\nPort: 0\r\nInfohash: 00\r\n",
                LsdError::Port,
            ),
            (
                b"BT-SEARCH * HTTP/1.1\r\nPort: 1\r\nInfohash: xyz\r\n",
                LsdError::InfoHash,
            ),
            (
                b"BT-SEARCH * HTTP/1.1\r\nPort: 1\r\n\r\n",
                LsdError::NoInfoHash,
            ),
        ];
        for (datagram, error) in cases {
            assert_eq!(Announce::decode(datagram), Err(error), "{datagram:?}");
        }
        let long = vec![b'a'; MAX_DATAGRAM + 1];
        assert_eq!(
            Announce::decode(&long),
            Err(LsdError::TooLong(MAX_DATAGRAM + 1))
        );
    }

    #[test]
    fn takes_a_bounded_number_of_hashes() {
        let mut text = String::from("bt-search * HTTP/1.0\nport: 7\n");
        for i in 0..20u8 {
            text.push_str(&format!("INFOHASH: {}\n", InfoHash::new([i; 20]).to_hex()));
        }
        let read = Announce::decode(text.as_bytes()).unwrap();
        assert_eq!(read.info_hashes.len(), MAX_HASHES);
        assert_eq!(read.port, 7);
    }
}
