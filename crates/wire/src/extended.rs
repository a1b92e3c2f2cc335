//! The BEP 10 extended handshake, carried in extended message 0.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::Bytes;
use cratetorrent_metainfo::bencode::{self, DecodeOptions, DictBuilder, Encode};

use crate::WireError;

/// The extended message id of the extended handshake.
pub const EXTENDED_HANDSHAKE_ID: u8 = 0;

/// Extended handshakes hold flat dictionaries; deeper nesting is hostile.
const MAX_DEPTH: usize = 8;

/// The BEP 10 handshake dictionary. Unknown keys are ignored; known keys with the wrong type are
/// treated as absent, as BEP 10 asks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtendedHandshake {
    /// `m`: extension names to the message ids the sender wants to receive them with (0 disables).
    pub extensions: BTreeMap<String, u8>,
    /// `v`: client name and version.
    pub client: Option<String>,
    /// `p`: the sender's listen port.
    pub listen_port: Option<u16>,
    /// `reqq`: how many outstanding requests the sender accepts.
    pub request_queue: Option<u32>,
    /// `yourip`: the receiver's address as the sender sees it.
    pub your_ip: Option<IpAddr>,
    /// `metadata_size`: size of the info dictionary (BEP 9).
    pub metadata_size: Option<u64>,
    /// `upload_only` (BEP 21): the sender only seeds.
    pub upload_only: bool,
}

impl ExtendedHandshake {
    /// Parses the payload of extended message 0.
    pub fn decode(payload: &[u8]) -> Result<Self, WireError> {
        let options = DecodeOptions {
            max_depth: MAX_DEPTH,
        };
        let value = bencode::decode_with(payload, &options)
            .map_err(|_| WireError::ExtendedHandshake("not bencode"))?;
        let dict = value
            .as_dict()
            .ok_or(WireError::ExtendedHandshake("not a dictionary"))?;
        let mut handshake = Self::default();
        for (key, value) in dict {
            match key {
                b"m" => {
                    for (name, id) in value.as_dict().into_iter().flatten() {
                        let name = std::str::from_utf8(name).ok();
                        let id = value_u8(id.as_int());
                        if let (Some(name), Some(id)) = (name, id) {
                            handshake.extensions.insert(name.to_string(), id);
                        }
                    }
                }
                b"v" => {
                    handshake.client = value
                        .as_bytes()
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                }
                b"p" => {
                    handshake.listen_port = value
                        .as_int()
                        .and_then(|p| u16::try_from(p).ok())
                        .filter(|&p| p != 0)
                }
                b"reqq" => {
                    handshake.request_queue = value.as_int().and_then(|q| u32::try_from(q).ok())
                }
                b"yourip" => handshake.your_ip = value.as_bytes().and_then(ip_from_bytes),
                b"metadata_size" => {
                    handshake.metadata_size = value.as_int().and_then(|s| u64::try_from(s).ok())
                }
                b"upload_only" => handshake.upload_only = value.as_int().is_some_and(|v| v != 0),
                _ => {}
            }
        }
        Ok(handshake)
    }

    /// The bencoded payload for extended message 0.
    pub fn encode(&self) -> Bytes {
        let mut dict = DictBuilder::new();
        let mut m = DictBuilder::new();
        for (name, id) in &self.extensions {
            m.insert(name, i64::from(*id));
        }
        dict.insert("m", m);
        if let Some(client) = &self.client {
            dict.insert("v", client);
        }
        if let Some(port) = self.listen_port {
            dict.insert("p", i64::from(port));
        }
        if let Some(reqq) = self.request_queue {
            dict.insert("reqq", reqq);
        }
        if let Some(ip) = self.your_ip {
            let bytes = match ip {
                IpAddr::V4(v4) => v4.octets().to_vec(),
                IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            dict.insert("yourip", bytes.as_slice());
        }
        if let Some(size) = self.metadata_size.and_then(|s| i64::try_from(s).ok()) {
            dict.insert("metadata_size", size);
        }
        if self.upload_only {
            dict.insert("upload_only", 1i64);
        }
        Bytes::from(dict.to_bencode())
    }
}

fn value_u8(value: Option<i64>) -> Option<u8> {
    value.and_then(|v| u8::try_from(v).ok())
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(IpAddr::V4(Ipv4Addr::from(v4)));
    }
    <[u8; 16]>::try_from(bytes)
        .ok()
        .map(|v6| IpAddr::V6(Ipv6Addr::from(v6)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let handshake = ExtendedHandshake {
            extensions: [("ut_metadata".to_string(), 2), ("ut_pex".to_string(), 1)].into(),
            client: Some("cratetorrent 0.1.0".into()),
            listen_port: Some(6881),
            request_queue: Some(500),
            your_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            metadata_size: Some(31_337),
            upload_only: true,
        };
        assert_eq!(
            ExtendedHandshake::decode(&handshake.encode()),
            Ok(handshake)
        );
    }

    #[test]
    fn tolerates_wrong_types_and_rejects_hostile_bencode() {
        let payload = b"d1:md11:ut_metadatai3e6:ut_pexi999e1:xi1ee1:pi-1e4:reqq3:abc6:yourip3:abce";
        let handshake = ExtendedHandshake::decode(payload).unwrap();
        assert_eq!(
            handshake.extensions,
            [("ut_metadata".to_string(), 3), ("x".to_string(), 1)].into()
        );
        assert_eq!(
            (
                handshake.listen_port,
                handshake.request_queue,
                handshake.your_ip
            ),
            (None, None, None)
        );
        let deep = [&b"d1:m"[..], &[b'l'; 64], &[b'e'; 64], b"e"].concat();
        assert_eq!(
            ExtendedHandshake::decode(&deep),
            Err(WireError::ExtendedHandshake("not bencode"))
        );
        assert_eq!(
            ExtendedHandshake::decode(b"li1ee"),
            Err(WireError::ExtendedHandshake("not a dictionary"))
        );
        assert_eq!(
            ExtendedHandshake::decode(b"d1:m"),
            Err(WireError::ExtendedHandshake("not bencode"))
        );
    }
}
