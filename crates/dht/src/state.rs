//! What a node keeps across restarts: its id and the nodes that answered it.

use std::net::SocketAddr;

use cratetorrent_metainfo::bencode::{self, DictBuilder, Encode};

use crate::id::NodeId;

/// Nodes read back from a saved state at most.
const MAX_SAVED_NODES: usize = 2000;

/// A node's saved state: its id and addresses of nodes to ask first when it starts again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedState {
    /// The node id to keep (re-derived if it no longer matches our external address).
    pub id: NodeId,
    /// Nodes that answered before (both families).
    pub nodes: Vec<SocketAddr>,
}

/// Why a saved state cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Not valid bencode.
    #[error("not bencode: {0}")]
    Bencode(String),
    /// A field is missing or malformed.
    #[error("missing or malformed field `{0}`")]
    Field(&'static str),
}

impl SavedState {
    /// The state as a bencoded dictionary (`id`, compact `nodes` and `nodes6`).
    pub fn encode(&self) -> Vec<u8> {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for addr in &self.nodes {
            match addr {
                SocketAddr::V4(a) => {
                    v4.extend_from_slice(&a.ip().octets());
                    v4.extend_from_slice(&a.port().to_be_bytes());
                }
                SocketAddr::V6(a) => {
                    v6.extend_from_slice(&a.ip().octets());
                    v6.extend_from_slice(&a.port().to_be_bytes());
                }
            }
        }
        let mut dict = DictBuilder::new();
        dict.insert("id", &self.id.0[..])
            .insert("nodes", &v4[..])
            .insert("nodes6", &v6[..]);
        dict.to_bencode()
    }

    /// Reads a state written by [`SavedState::encode`]; at most 2,000 nodes are kept.
    pub fn decode(raw: &[u8]) -> Result<Self, StateError> {
        let value = bencode::decode(raw).map_err(|e| StateError::Bencode(e.to_string()))?;
        let dict = value.as_dict().ok_or(StateError::Field("state"))?;
        let id = dict
            .get(b"id")
            .and_then(|v| v.as_bytes())
            .and_then(|b| <[u8; 20]>::try_from(b).ok())
            .map(NodeId)
            .ok_or(StateError::Field("id"))?;
        let mut nodes = Vec::new();
        for (key, size) in [("nodes", 6), ("nodes6", 18)] {
            let raw = dict
                .get(key.as_bytes())
                .and_then(|v| v.as_bytes())
                .unwrap_or_default();
            if !raw.len().is_multiple_of(size) {
                return Err(StateError::Field(key));
            }
            for chunk in raw.chunks_exact(size) {
                if nodes.len() >= MAX_SAVED_NODES {
                    break;
                }
                let (ip, port) = chunk.split_at(size - 2);
                let ip: std::net::IpAddr = match <[u8; 4]>::try_from(ip) {
                    Ok(v4) => v4.into(),
                    Err(_) => <[u8; 16]>::try_from(ip)
                        .map_err(|_| StateError::Field(key))?
                        .into(),
                };
                nodes.push(SocketAddr::new(ip, u16::from_be_bytes([port[0], port[1]])));
            }
        }
        Ok(Self { id, nodes })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn round_trip_and_malformed_states() {
        let state = SavedState {
            id: NodeId([3; 20]),
            nodes: vec![
                "1.2.3.4:5".parse().unwrap(),
                "[2001:db8::1]:6881".parse().unwrap(),
            ],
        };
        assert_eq!(SavedState::decode(&state.encode()).unwrap(), state);
        assert!(SavedState::decode(b"d2:id3:abce").is_err());
        assert!(SavedState::decode(b"le").is_err());
        let odd = b"d2:id20:aaaaaaaaaaaaaaaaaaaa5:nodes5:abcdee";
        assert_eq!(SavedState::decode(odd), Err(StateError::Field("nodes")));
    }
}
