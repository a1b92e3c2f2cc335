//! A tokio-util codec for framed message streams (feature `tokio-codec`).

use bytes::BytesMut;
use thiserror::Error;

use crate::{Decoder, Message, WireError};

/// Frames peer messages for `tokio_util::codec::Framed` once the handshake is done.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerCodec {
    decoder: Decoder,
}

impl PeerCodec {
    /// A codec rejecting messages longer than the decoder's limit.
    pub fn new(decoder: Decoder) -> Self {
        Self { decoder }
    }
}

/// A protocol violation or a transport error.
#[derive(Debug, Error)]
pub enum CodecError {
    /// The peer broke the protocol.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The transport failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl tokio_util::codec::Decoder for PeerCodec {
    type Item = Message;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, CodecError> {
        let message = self.decoder.decode(src)?;
        if message.is_none() {
            // Room for the rest of the message, so the framed reader fills it in one read.
            src.reserve(self.decoder.missing(src));
        }
        Ok(message)
    }
}

impl tokio_util::codec::Encoder<&Message> for PeerCodec {
    type Error = CodecError;

    fn encode(&mut self, message: &Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        message.encode(dst);
        Ok(())
    }
}

impl tokio_util::codec::Encoder<Message> for PeerCodec {
    type Error = CodecError;

    fn encode(&mut self, message: Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        message.encode(dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use tokio_util::codec::FramedRead;

    use super::*;

    #[test]
    fn frames_a_stream() {
        let mut bytes = BytesMut::new();
        for message in [Message::Interested, Message::Have(9), Message::KeepAlive] {
            message.encode(&mut bytes);
        }
        bytes.extend_from_slice(b"\xff\xff\xff\xff");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let decoded: Vec<_> =
            runtime.block_on(FramedRead::new(&bytes[..], PeerCodec::default()).collect());
        assert_eq!(decoded.len(), 4);
        assert!(matches!(decoded[1], Ok(Message::Have(9))));
        assert!(matches!(
            decoded[3],
            Err(CodecError::Wire(WireError::MessageTooLong { .. }))
        ));
    }
}
