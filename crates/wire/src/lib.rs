//! The BitTorrent peer wire protocol as a sans-IO codec: bytes in, messages out, and back.
//!
//! No sockets and no runtime: feed received bytes into a [`bytes::BytesMut`] and call
//! [`Decoder::decode`] until it returns `Ok(None)`; encode outgoing messages into another buffer.
//! Block payloads are split from the receive buffer without copying, and a `piece` header can be
//! written on its own ([`encode_piece_header`]) so a block goes out straight from a disk buffer.
//!
//! - [`Handshake`] with typed [`Extensions`] (BEP 10, BEP 6, BEP 5, BEP 52; unknown bits kept).
//! - [`Message`]: every BEP 3 message, `port`, the BEP 6 fast messages, BEP 10 extended messages,
//!   the BEP 52 hash messages ([`HashRequest`]; hashes zero-copy), and unknown ids as
//!   [`Message::Unknown`] rather than an error.
//! - Strict lengths: a message over the limit ([`DEFAULT_MAX_MESSAGE_LEN`]) or with a length
//!   impossible for its id is an error before anything is buffered for it.
//! - The BEP 6 allowed-fast set ([`allowed_fast_set`]).
//! - [`PeerId`] generation (BEP 20) and client recognition; [`Bitfield`]; block [`Geometry`];
//!   the BEP 10 [`ExtendedHandshake`]; BEP 9 metadata exchange messages ([`MetadataMessage`]); BEP 11 peer exchange ([`PexMessage`]).
//! - [`mse`]: the message stream encryption handshake (obfuscation, plaintext or RC4), sans-IO.
//! - With the `tokio-codec` feature, `PeerCodec`: a tokio-util `Decoder`/`Encoder`.
//!
//! ```
//! use bytes::BytesMut;
//! use cratetorrent_metainfo::InfoHash;
//! use cratetorrent_wire::{BlockInfo, Decoder, Extension, Extensions, Handshake, Message, PeerId};
//!
//! // What we send: a handshake, then a request.
//! let mut out = BytesMut::new();
//! let ours = Handshake {
//!     extensions: Extensions::NONE.with(Extension::Fast),
//!     info_hash: InfoHash::new([1; 20]),
//!     peer_id: PeerId::generate(),
//! };
//! ours.encode(&mut out);
//! Message::Request(BlockInfo { piece: 0, offset: 0, len: 16384 }).encode(&mut out);
//!
//! // What the other side reads, perhaps in pieces.
//! let mut received = BytesMut::new();
//! received.extend_from_slice(&out[..50]);
//! assert_eq!(Handshake::decode(&mut received)?, None);
//! received.extend_from_slice(&out[50..]);
//! assert_eq!(Handshake::decode(&mut received)?, Some(ours));
//! let message = Decoder::default().decode(&mut received)?;
//! assert_eq!(message, Some(Message::Request(BlockInfo { piece: 0, offset: 0, len: 16384 })));
//! # Ok::<(), cratetorrent_wire::WireError>(())
//! ```

mod allowed_fast;
mod bitfield;
mod block;
mod decoder;
mod error;
mod extended;
mod extensions;
mod handshake;
mod hash_request;
mod message;
pub mod mse;
mod peer_id;
#[cfg(feature = "tokio-codec")]
mod tokio_codec;
mod ut_metadata;
mod ut_pex;

pub use allowed_fast::allowed_fast_set;
pub use bitfield::Bitfield;
pub use block::{BLOCK_SIZE, BlockError, BlockInfo, Geometry};
pub use decoder::{DEFAULT_MAX_MESSAGE_LEN, Decoder};
pub use error::WireError;
pub use extended::{EXTENDED_HANDSHAKE_ID, ExtendedHandshake};
pub use extensions::{Extension, Extensions};
pub use handshake::{HANDSHAKE_LEN, Handshake, PROTOCOL};
pub use hash_request::{HASH_REQUEST_LEN, HashRequest, MAX_HASH_RUN};
pub use message::{Block, Message, PIECE_HEADER_LEN, encode_piece_header};
pub use peer_id::{Client, PeerId};
#[cfg(feature = "tokio-codec")]
pub use tokio_codec::{CodecError, PeerCodec};
pub use ut_metadata::{
    METADATA_PIECE_LEN, MetadataMessage, UT_METADATA, metadata_piece_count, metadata_piece_len,
};
pub use ut_pex::{PexFlags, PexMessage, UT_PEX};

pub use cratetorrent_metainfo::{InfoHash, PieceIndex};
