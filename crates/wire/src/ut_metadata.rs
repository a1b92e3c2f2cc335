//! BEP 9 `ut_metadata`: the info dictionary of a torrent in 16 KiB pieces, over BEP 10 extended
//! messages, so a peer that knows only the info-hash (a magnet link) can fetch it. A message is a
//! bencoded dictionary — `msg_type` (0 request, 1 data, 2 reject) and `piece` — and a data
//! message also carries `total_size`, followed by the piece's bytes.
//!
//! ```
//! use bytes::Bytes;
//! use cratetorrent_wire::MetadataMessage;
//!
//! let data = MetadataMessage::Data { piece: 1, total_size: 20_000, data: Bytes::from(vec![7; 3616]) };
//! let payload = data.encode();
//! assert_eq!(MetadataMessage::decode(&payload)?, Some(data));
//! // A type this side does not know is ignored, as BEP 9 asks.
//! assert_eq!(MetadataMessage::decode(&Bytes::from_static(b"d8:msg_typei9e5:piecei0ee"))?, None);
//! # Ok::<(), cratetorrent_wire::WireError>(())
//! ```

use bytes::Bytes;
use cratetorrent_metainfo::bencode::{self, DecodeOptions, DictBuilder, Encode};

use crate::WireError;

/// The name of the extension in a BEP 10 handshake's `m`.
pub const UT_METADATA: &str = "ut_metadata";

/// Bytes per metadata piece; only the last may be shorter.
pub const METADATA_PIECE_LEN: u32 = 16 * 1024;

/// Nesting allowed in a message's dictionary (it has none).
const MAX_DEPTH: usize = 2;

/// One `ut_metadata` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataMessage {
    /// Asks for metadata piece `piece`.
    Request {
        /// The piece index.
        piece: u32,
    },
    /// Metadata piece `piece` of metadata `total_size` bytes long.
    Data {
        /// The piece index.
        piece: u32,
        /// The whole info dictionary's length.
        total_size: u64,
        /// The piece's bytes (a view of the received message, not a copy).
        data: Bytes,
    },
    /// The sender will not send piece `piece`.
    Reject {
        /// The piece index.
        piece: u32,
    },
}

impl MetadataMessage {
    /// Parses an extended message's payload: `Ok(None)` for a `msg_type` BEP 9 does not define
    /// (to be ignored), an error for anything malformed (the dictionary, a missing or out-of-range
    /// field, trailing bytes after a request or reject, data longer than a piece).
    pub fn decode(payload: &Bytes) -> Result<Option<Self>, WireError> {
        let options = DecodeOptions {
            max_depth: MAX_DEPTH,
        };
        let (value, used) = bencode::decode_prefix_with(payload, &options)
            .map_err(|_| WireError::Metadata("not bencode"))?;
        let dict = value
            .as_dict()
            .ok_or(WireError::Metadata("not a dictionary"))?;
        let int = |key: &[u8]| dict.get(key).and_then(|v| v.as_int());
        let msg_type = int(b"msg_type").ok_or(WireError::Metadata("no msg_type"))?;
        let piece = int(b"piece")
            .and_then(|p| u32::try_from(p).ok())
            .ok_or(WireError::Metadata("no valid piece"))?;
        let rest = payload.slice(used..);
        let message = match msg_type {
            0 => Self::Request { piece },
            1 => {
                let total_size = int(b"total_size")
                    .and_then(|s| u64::try_from(s).ok())
                    .filter(|&s| s > 0)
                    .ok_or(WireError::Metadata("no valid total_size"))?;
                if rest.is_empty() || rest.len() > METADATA_PIECE_LEN as usize {
                    return Err(WireError::Metadata("data of a wrong length"));
                }
                return Ok(Some(Self::Data {
                    piece,
                    total_size,
                    data: rest,
                }));
            }
            2 => Self::Reject { piece },
            _ => return Ok(None),
        };
        if !rest.is_empty() {
            return Err(WireError::Metadata("bytes after the dictionary"));
        }
        Ok(Some(message))
    }

    /// The extended message payload.
    pub fn encode(&self) -> Bytes {
        let mut dict = DictBuilder::new();
        let (msg_type, piece) = match self {
            Self::Request { piece } => (0, piece),
            Self::Data { piece, .. } => (1, piece),
            Self::Reject { piece } => (2, piece),
        };
        dict.insert("msg_type", msg_type as i64);
        dict.insert("piece", i64::from(*piece));
        if let Self::Data {
            total_size, data, ..
        } = self
        {
            dict.insert("total_size", i64::try_from(*total_size).unwrap_or(i64::MAX));
            let mut out = dict.to_bencode();
            out.extend_from_slice(data);
            return Bytes::from(out);
        }
        Bytes::from(dict.to_bencode())
    }
}

/// How many pieces metadata of `total_size` bytes comes in.
pub fn metadata_piece_count(total_size: u64) -> u64 {
    total_size.div_ceil(u64::from(METADATA_PIECE_LEN))
}

/// The length of metadata piece `piece` of metadata `total_size` bytes long (`None` past the
/// end).
pub fn metadata_piece_len(total_size: u64, piece: u32) -> Option<u32> {
    let start = u64::from(piece) * u64::from(METADATA_PIECE_LEN);
    let rest = total_size.checked_sub(start).filter(|&rest| rest > 0)?;
    Some(u32::try_from(rest).map_or(METADATA_PIECE_LEN, |rest| rest.min(METADATA_PIECE_LEN)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn decode(bytes: &'static [u8]) -> Result<Option<MetadataMessage>, WireError> {
        MetadataMessage::decode(&Bytes::from_static(bytes))
    }

    #[test]
    fn every_type_round_trips() {
        for message in [
            MetadataMessage::Request { piece: 0 },
            MetadataMessage::Reject { piece: 7 },
            MetadataMessage::Data {
                piece: 2,
                total_size: 40_000,
                data: Bytes::from(vec![1u8; 7232]),
            },
        ] {
            assert_eq!(
                MetadataMessage::decode(&message.encode()),
                Ok(Some(message))
            );
        }
        assert_eq!(
            &MetadataMessage::Request { piece: 3 }.encode()[..],
            b"d8:msg_typei0e5:piecei3ee"
        );
    }

    #[test]
    fn hostile_messages_are_errors_not_panics() {
        for bytes in [
            &b""[..],
            b"de",
            b"li0ee",
            b"d8:msg_typei0ee",
            b"d8:msg_typei0e5:piecei-1ee",
            b"d8:msg_typei0e5:piecei4294967296ee",
            b"d8:msg_typei0e5:piecei0eextra",
            b"d8:msg_typei1e5:piecei0ee",
            b"d8:msg_typei1e5:piecei0e10:total_sizei0eex",
            b"d8:msg_typei1e5:piecei0e10:total_sizei5ee",
            b"d8:msg_typei0e5:pieced1:ad1:ad1:aleeee",
        ] {
            let result = MetadataMessage::decode(&Bytes::copy_from_slice(bytes));
            assert!(
                result.is_err(),
                "{:?} gave {result:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        let mut oversized = b"d8:msg_typei1e5:piecei0e10:total_sizei99999ee".to_vec();
        oversized.extend(vec![0u8; METADATA_PIECE_LEN as usize + 1]);
        assert!(MetadataMessage::decode(&Bytes::from(oversized)).is_err());
        assert_eq!(decode(b"d8:msg_typei3e5:piecei0ee"), Ok(None));
    }

    #[test]
    fn pieces_of_metadata() {
        assert_eq!(metadata_piece_count(1), 1);
        assert_eq!(metadata_piece_count(16384), 1);
        assert_eq!(metadata_piece_count(16385), 2);
        assert_eq!(metadata_piece_len(16385, 1), Some(1));
        assert_eq!(metadata_piece_len(16385, 0), Some(16384));
        assert_eq!(metadata_piece_len(16385, 2), None);
        assert_eq!(metadata_piece_len(u64::MAX, u32::MAX), Some(16384));
    }
}
