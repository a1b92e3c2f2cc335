//! Errors of the wire codec.

use thiserror::Error;

/// Why bytes from a peer are not a valid handshake or message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum WireError {
    /// The handshake does not start with the 19-byte string `BitTorrent protocol`.
    #[error("not a BitTorrent handshake")]
    InvalidProtocol,
    /// A message longer than the decoder's limit; rejected before anything is buffered for it.
    #[error("message of {len} bytes exceeds the limit of {max}")]
    MessageTooLong {
        /// The announced length.
        len: u32,
        /// The configured maximum.
        max: u32,
    },
    /// A message whose length is wrong for its id (e.g. `have` must be 5 bytes).
    #[error("message id {id} with invalid length {len}")]
    InvalidLength {
        /// The message id.
        id: u8,
        /// The announced length (id byte included).
        len: u32,
    },
    /// A bitfield whose length does not match the piece count.
    #[error("bitfield of {actual} bytes, expected {expected}")]
    BitfieldLength {
        /// Bytes needed for the piece count.
        expected: usize,
        /// Bytes received.
        actual: usize,
    },
    /// A bitfield with bits set past the last piece (BEP 3 requires them cleared).
    #[error("bitfield has spare bits set")]
    BitfieldSpareBits,
    /// A BEP 10 extended handshake that is not a valid bencoded dictionary.
    #[error("invalid extended handshake: {0}")]
    ExtendedHandshake(&'static str),
    /// A BEP 11 `ut_pex` message that does not parse.
    #[error("invalid ut_pex message: {0}")]
    Pex(&'static str),
    /// A BEP 9 `ut_metadata` message that does not parse.
    #[error("invalid ut_metadata message: {0}")]
    Metadata(&'static str),
}
