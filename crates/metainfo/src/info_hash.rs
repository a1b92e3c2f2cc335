//! The v1 info-hash: SHA-1 of the exact bytes of a torrent's `info` dictionary.

use std::fmt;
use std::str::FromStr;

use sha1::{Digest, Sha1};
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
        for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
            let high = hex_value(pair[0]).ok_or(InfoHashError::InvalidHex)?;
            let low = hex_value(pair[1]).ok_or(InfoHashError::InvalidHex)?;
            *byte = high << 4 | low;
        }
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
    fn hashes_raw_info() {
        // SHA-1 of "abc".
        assert_eq!(
            InfoHash::of_info(b"abc").to_hex(),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }
}
