//! A random byte stream, fed to the decoder in chunks of random sizes, gives the same messages and
//! the same first error as the whole stream at once; decoding never panics, and every decoded
//! message re-encodes to the bytes it came from.
#![no_main]

use bytes::BytesMut;
use cratetorrent_wire::{Decoder, ExtendedHandshake, Handshake, Message, WireError};
use libfuzzer_sys::fuzz_target;

fn decode(stream: &[u8], chunk_sizes: &[u8]) -> (Vec<Message>, Option<WireError>) {
    let decoder = Decoder::with_max_len(64 * 1024);
    let mut buf = BytesMut::new();
    let mut messages = Vec::new();
    let mut rest = stream;
    let mut sizes = chunk_sizes.iter().cycle();
    while !rest.is_empty() {
        let size = (usize::from(*sizes.next().unwrap_or(&255)) + 1).min(rest.len());
        buf.extend_from_slice(&rest[..size]);
        rest = &rest[size..];
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(message)) => messages.push(message),
                Ok(None) => break,
                Err(error) => return (messages, Some(error)),
            }
        }
    }
    (messages, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else { return };
    let (chunk_sizes, stream) = data.split_at(usize::from(split % 8).min(data.len()));
    let whole = decode(stream, &[255; 1]);
    let chunked = decode(stream, if chunk_sizes.is_empty() { &[0] } else { chunk_sizes });
    // The whole stream is fed in 256-byte chunks too, so compare against one huge chunk as well.
    let mut all = BytesMut::from(stream);
    let decoder = Decoder::with_max_len(64 * 1024);
    let mut reencoded = BytesMut::new();
    while let Ok(Some(message)) = decoder.decode(&mut all) {
        message.encode(&mut reencoded);
        if let Message::Extended { id: 0, payload } = &message {
            let _ = ExtendedHandshake::decode(payload);
        }
    }
    assert_eq!(&stream[..reencoded.len()], &reencoded[..]);
    assert_eq!(whole, chunked);
    let _ = Handshake::decode(&mut BytesMut::from(stream));
});
