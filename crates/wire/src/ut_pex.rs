//! BEP 11 `ut_pex`: peers tell each other whom they are connected to. A message is a bencoded
//! dictionary of compact address lists — `added` (6 bytes each: IPv4 and port) with one flag
//! byte per address in `added.f`, `added6`/`added6.f` (18 bytes each), and `dropped`/`dropped6`.
//!
//! ```
//! use cratetorrent_wire::{PexFlags, PexMessage};
//!
//! let message = PexMessage {
//!     added: vec![("192.0.2.7:6881".parse()?, PexFlags::SEED)],
//!     dropped: vec!["[2001:db8::1]:51413".parse()?],
//! };
//! assert_eq!(PexMessage::decode(&message.encode())?, message);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;
use cratetorrent_metainfo::bencode::{self, DecodeOptions, DictBuilder, Encode};

use crate::WireError;

/// The name of the extension in a BEP 10 handshake's `m`.
pub const UT_PEX: &str = "ut_pex";

/// Nesting allowed in a message (a flat dictionary).
const MAX_DEPTH: usize = 2;

/// What a `ut_pex` message says of one added peer (BEP 11 `added.f`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PexFlags(pub u8);

impl PexFlags {
    /// 0x01: the peer prefers encrypted connections.
    pub const PREFERS_ENCRYPTION: Self = Self(0x01);
    /// 0x02: the peer is a seed (or only uploads).
    pub const SEED: Self = Self(0x02);
    /// 0x04: the peer speaks uTP.
    pub const UTP: Self = Self(0x04);
    /// 0x08: the peer supports holepunching.
    pub const HOLEPUNCH: Self = Self(0x08);
    /// 0x10: the sender connected to the peer (it is reachable).
    pub const REACHABLE: Self = Self(0x10);

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// These flags and `other`'s.
    #[must_use]
    pub fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// One `ut_pex` message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PexMessage {
    /// Peers the sender connected to since its last message, with their flags.
    pub added: Vec<(SocketAddr, PexFlags)>,
    /// Peers it disconnected from.
    pub dropped: Vec<SocketAddr>,
}

impl PexMessage {
    /// Parses an extended message's payload. Lists whose length is not a multiple of an entry
    /// are errors; a flag list of the wrong length is ignored (the flags read as 0), as
    /// libtorrent does. Memory is bounded by the payload, itself bounded by the decoder.
    pub fn decode(payload: &[u8]) -> Result<Self, WireError> {
        let options = DecodeOptions {
            max_depth: MAX_DEPTH,
        };
        let value =
            bencode::decode_with(payload, &options).map_err(|_| WireError::Pex("not bencode"))?;
        let dict = value.as_dict().ok_or(WireError::Pex("not a dictionary"))?;
        let bytes = |key: &[u8]| dict.get(key).and_then(|v| v.as_bytes()).unwrap_or(&[]);
        let mut message = Self::default();
        for (list, flags, stride) in [
            (&b"added"[..], &b"added.f"[..], 6),
            (b"added6", b"added6.f", 18),
        ] {
            let addrs = compact(bytes(list), stride)?;
            let flags = bytes(flags);
            let flags = (flags.len() == addrs.len()).then_some(flags);
            for (i, addr) in addrs.into_iter().enumerate() {
                let flag = flags.map_or(0, |f| f[i]);
                message.added.push((addr, PexFlags(flag)));
            }
        }
        for (list, stride) in [(&b"dropped"[..], 6), (b"dropped6", 18)] {
            message.dropped.extend(compact(bytes(list), stride)?);
        }
        Ok(message)
    }

    /// The extended message payload (IPv4-mapped IPv6 addresses go in the IPv4 lists).
    pub fn encode(&self) -> Bytes {
        let (mut added, mut added_f, mut added6, mut added6_f) = (vec![], vec![], vec![], vec![]);
        for &(addr, flags) in &self.added {
            match to_compact(addr) {
                Compact::V4(entry) => {
                    added.extend(entry);
                    added_f.push(flags.0);
                }
                Compact::V6(entry) => {
                    added6.extend(entry);
                    added6_f.push(flags.0);
                }
            }
        }
        let (mut dropped, mut dropped6) = (vec![], vec![]);
        for &addr in &self.dropped {
            match to_compact(addr) {
                Compact::V4(entry) => dropped.extend(entry),
                Compact::V6(entry) => dropped6.extend(entry),
            }
        }
        let mut dict = DictBuilder::new();
        dict.insert("added", added.as_slice());
        dict.insert("added.f", added_f.as_slice());
        dict.insert("dropped", dropped.as_slice());
        if !added6.is_empty() || !dropped6.is_empty() {
            dict.insert("added6", added6.as_slice());
            dict.insert("added6.f", added6_f.as_slice());
            dict.insert("dropped6", dropped6.as_slice());
        }
        Bytes::from(dict.to_bencode())
    }
}

enum Compact {
    V4([u8; 6]),
    V6([u8; 18]),
}

fn to_compact(addr: SocketAddr) -> Compact {
    let port = addr.port().to_be_bytes();
    match addr.ip().to_canonical() {
        IpAddr::V4(v4) => {
            let mut entry = [0; 6];
            entry[..4].copy_from_slice(&v4.octets());
            entry[4..].copy_from_slice(&port);
            Compact::V4(entry)
        }
        IpAddr::V6(v6) => {
            let mut entry = [0; 18];
            entry[..16].copy_from_slice(&v6.octets());
            entry[16..].copy_from_slice(&port);
            Compact::V6(entry)
        }
    }
}

fn compact(bytes: &[u8], stride: usize) -> Result<Vec<SocketAddr>, WireError> {
    if !bytes.len().is_multiple_of(stride) {
        return Err(WireError::Pex("an address list of a wrong length"));
    }
    Ok(bytes
        .chunks_exact(stride)
        .filter_map(|entry| {
            let (ip, port) = entry.split_at(stride - 2);
            let ip = match <[u8; 4]>::try_from(ip) {
                Ok(v4) => IpAddr::V4(Ipv4Addr::from(v4)),
                Err(_) => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(ip).ok()?)),
            };
            Some(SocketAddr::new(ip, u16::from_be_bytes([port[0], port[1]])))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn both_families_round_trip_with_their_flags() {
        let message = PexMessage {
            added: vec![
                (
                    addr("10.0.0.1:6881"),
                    PexFlags::SEED.with(PexFlags::REACHABLE),
                ),
                (addr("[2001:db8::7]:6882"), PexFlags::UTP),
                (addr("10.0.0.2:1"), PexFlags::default()),
            ],
            dropped: vec![addr("10.0.0.3:2"), addr("[2001:db8::8]:3")],
        };
        let decoded = PexMessage::decode(&message.encode()).unwrap();
        // IPv4 entries come first, then IPv6 ones.
        assert_eq!(decoded.added.len(), 3);
        assert!(decoded.added.contains(&message.added[1]));
        assert_eq!(decoded.added[0], message.added[0]);
        assert_eq!(decoded.dropped, message.dropped);
        let mapped = PexMessage {
            added: vec![(addr("[::ffff:10.0.0.9]:5"), PexFlags::default())],
            dropped: vec![],
        };
        assert_eq!(
            PexMessage::decode(&mapped.encode()).unwrap().added[0].0,
            addr("10.0.0.9:5"),
            "an IPv4-mapped address travels as IPv4"
        );
    }

    #[test]
    fn what_libtorrent_sends_parses_and_hostile_input_is_an_error() {
        let lt = b"d5:added6:\x0a\x00\x00\x01\x1a\xe17:added.f1:\x107:dropped0:e";
        let message = PexMessage::decode(lt).unwrap();
        assert_eq!(
            message.added,
            [(addr("10.0.0.1:6881"), PexFlags::REACHABLE)]
        );
        // Flags of the wrong length read as none; unknown keys are ignored.
        let loose = b"d5:added6:\x0a\x00\x00\x01\x1a\xe17:added.f2:\x10\x105:extrai1ee";
        assert_eq!(
            PexMessage::decode(loose).unwrap().added,
            [(addr("10.0.0.1:6881"), PexFlags::default())]
        );
        for bad in [
            &b""[..],
            b"le",
            b"d5:added5:abcdee",
            b"d7:dropped7:1234567e",
            b"d6:added617:12345678901234567e",
            b"d5:addedd1:ad1:ad1:aleeeee",
        ] {
            assert!(
                PexMessage::decode(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(PexMessage::decode(b"de").unwrap(), PexMessage::default());
    }
}
