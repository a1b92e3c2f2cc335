//! Info-hashes: v1's SHA-1 and v2's SHA-256 of the exact bytes of a torrent's `info` dictionary.

use std::fmt;
use std::str::FromStr;

use sha1::{Digest, Sha1};
use sha2::Sha256;
use thiserror::Error;

/// A BitTorrent v1 info-hash (20 bytes), the identity of a torrent in the swarm.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHash([u8; 20]);

/// Why a string is not an info-hash.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InfoHashError {
    /// Neither 40 hex digits nor 32 base32 characters.
    #[error("info-hash must be 40 hex or 32 base32 characters, got {0}")]
    WrongLength(usize),
    /// A character that is not a hex digit.
    #[error("invalid hex digit in info-hash")]
    InvalidHex,
    /// A character outside the RFC 4648 base32 alphabet.
    #[error("invalid base32 character in info-hash")]
    InvalidBase32,
    /// A v2 info-hash that is not 64 hex digits.
    #[error("v2 info-hash must be 64 hex characters, got {0}")]
    WrongLengthV2(usize),
}

/// A BitTorrent v2 info-hash (BEP 52): SHA-256 of the `info` dictionary.
///
/// Handshakes, trackers and the DHT carry its first 20 bytes, [`InfoHashV2::truncated`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHashV2([u8; 32]);

/// The hashes a torrent is known by: v1's, v2's, or both for a hybrid torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InfoHashes {
    /// The v1 (SHA-1) info-hash, for v1 and hybrid torrents.
    pub v1: Option<InfoHash>,
    /// The v2 (SHA-256) info-hash, for v2 and hybrid torrents.
    pub v2: Option<InfoHashV2>,
}

impl InfoHashes {
    /// The 20-byte hash the swarm knows the torrent by: v1's when there is one (a hybrid
    /// torrent's v1 swarm holds every peer), else v2's truncated. `None` only when both are.
    pub fn wire(&self) -> Option<InfoHash> {
        self.v1.or_else(|| self.v2.map(|v2| v2.truncated()))
    }

    /// Whether `hash`, as a peer or tracker sent it, names this torrent under either version.
    pub fn matches(&self, hash: &InfoHash) -> bool {
        self.v1.as_ref() == Some(hash) || self.v2.is_some_and(|v2| v2.truncated() == *hash)
    }
}

impl InfoHashV2 {
    /// The length of a v2 info-hash in bytes.
    pub const LEN: usize = 32;

    /// Wraps raw hash bytes.
    pub const fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Hashes the raw bytes of an `info` dictionary.
    pub fn of_info(raw_info: &[u8]) -> Self {
        Self(Sha256::digest(raw_info).into())
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 20 bytes, which stand for the torrent wherever a v1 hash would.
    pub fn truncated(&self) -> InfoHash {
        let mut bytes = [0; 20];
        bytes.copy_from_slice(&self.0[..20]);
        InfoHash(bytes)
    }

    /// Parses 64 hexadecimal digits (either case).
    pub fn from_hex(text: &str) -> Result<Self, InfoHashError> {
        let text = text.as_bytes();
        if text.len() != 64 {
            return Err(InfoHashError::WrongLengthV2(text.len()));
        }
        let mut bytes = [0u8; 32];
        decode_hex(text, &mut bytes)?;
        Ok(Self(bytes))
    }

    /// Lower-case hexadecimal.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }

    /// The multihash form of magnet links' `xt=urn:btmh:`: `1220` and the hex digest.
    pub fn to_multihash_hex(&self) -> String {
        format!("1220{self}")
    }
}

fn decode_hex(text: &[u8], out: &mut [u8]) -> Result<(), InfoHashError> {
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let high = hex_value(pair[0]).ok_or(InfoHashError::InvalidHex)?;
        let low = hex_value(pair[1]).ok_or(InfoHashError::InvalidHex)?;
        *byte = high << 4 | low;
    }
    Ok(())
}

impl fmt::Display for InfoHashV2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for InfoHashV2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHashV2({self})")
    }
}

impl FromStr for InfoHashV2 {
    type Err = InfoHashError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::from_hex(text)
    }
}

impl InfoHash {
    /// The length of an info-hash in bytes.
    pub const LEN: usize = 20;

    /// Wraps raw hash bytes.
    pub const fn new(bytes: [u8; 20]) -> Self {
        Self(bytes)
    }

    /// Hashes the raw bytes of an `info` dictionary.
    pub fn of_info(raw_info: &[u8]) -> Self {
        Self(Sha1::digest(raw_info).into())
    }

    /// Takes the hash from a 20-byte slice, as found in wire messages.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// Parses 40 hexadecimal digits (either case).
    pub fn from_hex(text: &str) -> Result<Self, InfoHashError> {
        let text = text.as_bytes();
        if text.len() != 40 {
            return Err(InfoHashError::WrongLength(text.len()));
        }
        let mut bytes = [0u8; 20];
        decode_hex(text, &mut bytes)?;
        Ok(Self(bytes))
    }

    /// Parses 32 base32 characters (RFC 4648 alphabet, either case), as older magnet links use.
    pub fn from_base32(text: &str) -> Result<Self, InfoHashError> {
        let text = text.as_bytes();
        if text.len() != 32 {
            return Err(InfoHashError::WrongLength(text.len()));
        }
        let mut bytes = [0u8; 20];
        let mut buffer = 0u64;
        let mut bits = 0u32;
        let mut at = 0;
        for &c in text {
            let value = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a',
                b'2'..=b'7' => c - b'2' + 26,
                _ => return Err(InfoHashError::InvalidBase32),
            };
            buffer = buffer << 5 | u64::from(value);
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                bytes[at] = (buffer >> bits).to_le_bytes()[0];
                at += 1;
            }
        }
        Ok(Self(bytes))
    }

    /// Lower-case hexadecimal, as trackers' whitelists and most tools print it.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }
}

pub(crate) fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({self})")
    }
}

impl FromStr for InfoHash {
    type Err = InfoHashError;

    /// Accepts 40 hex digits or 32 base32 characters.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.len() {
            32 => Self::from_base32(text),
            _ => Self::from_hex(text),
        }
    }
}

impl From<[u8; 20]> for InfoHash {
    fn from(bytes: [u8; 20]) -> Self {
        Self(bytes)
    }
}

impl AsRef<[u8]> for InfoHash {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_base32_agree() {
        let hex = InfoHash::from_hex("c12fe1c06bba254a9dc9f519b335aa7c1367a88a").unwrap();
        let b32 = InfoHash::from_base32("YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK").unwrap();
        assert_eq!(hex, b32);
        assert_eq!(hex.to_hex(), "c12fe1c06bba254a9dc9f519b335aa7c1367a88a");
        assert_eq!(
            "yex6dqdlxisuvhoj6um3gnnkpqjwpkek"
                .parse::<InfoHash>()
                .unwrap(),
            hex
        );
    }

    #[test]
    fn rejects_bad_text() {
        assert_eq!(
            InfoHash::from_hex("abc"),
            Err(InfoHashError::WrongLength(3))
        );
        assert_eq!(
            InfoHash::from_hex(&"g".repeat(40)),
            Err(InfoHashError::InvalidHex)
        );
        assert_eq!(
            InfoHash::from_base32(&"1".repeat(32)),
            Err(InfoHashError::InvalidBase32)
        );
    }

    #[test]
    fn v2_hashes_truncate_and_print() {
        // SHA-256 of "abc".
        let v2 = InfoHashV2::of_info(b"abc");
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(v2.to_hex(), hex);
        assert_eq!(hex.parse::<InfoHashV2>(), Ok(v2));
        assert_eq!(v2.to_multihash_hex(), format!("1220{hex}"));
        assert_eq!(v2.truncated().to_hex(), hex[..40]);
        let both = InfoHashes {
            v1: None,
            v2: Some(v2),
        };
        assert_eq!(both.wire(), Some(v2.truncated()));
        assert!(both.matches(&v2.truncated()));
        assert_eq!(
            InfoHashV2::from_hex(&hex[..40]),
            Err(InfoHashError::WrongLengthV2(40))
        );
    }

    #[test]
    fn hashes_raw_info() {
        // SHA-1 of "abc".
        assert_eq!(
            InfoHash::of_info(b"abc").to_hex(),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }
}
