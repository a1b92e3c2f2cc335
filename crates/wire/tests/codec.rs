//! Every message round-trips, whatever the split points; malformed input gets its specific error.

#![allow(clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use cratetorrent_wire::{
    BLOCK_SIZE, Block, BlockInfo, DEFAULT_MAX_MESSAGE_LEN, Decoder, Extensions, Handshake,
    HashRequest, InfoHash, Message, PIECE_HEADER_LEN, PeerId, WireError, encode_piece_header,
};
use proptest::prelude::*;

fn block_info() -> impl Strategy<Value = BlockInfo> {
    (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(piece, offset, len)| BlockInfo {
        piece,
        offset,
        len,
    })
}

fn hash_request() -> impl Strategy<Value = HashRequest> {
    (any::<[u8; 32]>(), any::<[u32; 4]>()).prop_map(
        |(pieces_root, [base_layer, index, length, proof_layers])| HashRequest {
            pieces_root,
            base_layer,
            index,
            length,
            proof_layers,
        },
    )
}

fn payload(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        Just(Message::KeepAlive),
        Just(Message::Choke),
        Just(Message::Unchoke),
        Just(Message::Interested),
        Just(Message::NotInterested),
        Just(Message::HaveAll),
        Just(Message::HaveNone),
        any::<u32>().prop_map(Message::Have),
        any::<u32>().prop_map(Message::SuggestPiece),
        any::<u32>().prop_map(Message::AllowedFast),
        any::<u16>().prop_map(Message::Port),
        block_info().prop_map(Message::Request),
        block_info().prop_map(Message::Cancel),
        block_info().prop_map(Message::RejectRequest),
        payload(64)
            .prop_filter("non-empty", |p| !p.is_empty())
            .prop_map(Message::Bitfield),
        (any::<u32>(), any::<u32>(), payload(3 * 1024)).prop_map(|(piece, offset, data)| {
            Message::Piece(Block {
                piece,
                offset,
                data,
            })
        }),
        (any::<u8>(), payload(300)).prop_map(|(id, payload)| Message::Extended { id, payload }),
        hash_request().prop_map(Message::HashRequest),
        hash_request().prop_map(Message::HashReject),
        (hash_request(), 0u8..20).prop_map(|(request, count)| Message::Hashes {
            request,
            hashes: Bytes::from(vec![count; usize::from(count) * 32]),
        }),
        (prop_oneof![10u8..13, 18u8..20, 24u8..=255], payload(40))
            .prop_map(|(id, payload)| Message::Unknown { id, payload }),
    ]
}

/// Decodes `stream` fed in chunks that end at `cuts`, as a socket would deliver it.
fn decode_in_chunks(stream: &[u8], cuts: &[usize]) -> Result<Vec<Message>, WireError> {
    let decoder = Decoder::default();
    let mut buf = BytesMut::new();
    let mut messages = Vec::new();
    let mut start = 0;
    let mut ends: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    ends.push(stream.len());
    ends.sort_unstable();
    for end in ends {
        buf.extend_from_slice(&stream[start..end]);
        start = end;
        while let Some(message) = decoder.decode(&mut buf)? {
            messages.push(message);
        }
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    Ok(messages)
}

proptest! {
    #[test]
    fn message_sequences_round_trip_at_any_split(
        messages in proptest::collection::vec(message(), 0..24),
        cuts in proptest::collection::vec(any::<usize>(), 0..16),
    ) {
        let mut stream = BytesMut::new();
        for message in &messages {
            let before = stream.len();
            message.encode(&mut stream);
            prop_assert_eq!(stream.len() - before, message.encoded_len());
        }
        prop_assert_eq!(&decode_in_chunks(&stream, &cuts).unwrap(), &messages);
        let byte_at_a_time: Vec<usize> = (0..stream.len()).collect();
        prop_assert_eq!(decode_in_chunks(&stream, &byte_at_a_time).unwrap(), messages);
    }

    #[test]
    fn handshakes_round_trip(reserved in any::<[u8; 8]>(), hash in any::<[u8; 20]>(), id in any::<[u8; 20]>(), cut in 0usize..68) {
        let handshake = Handshake { extensions: Extensions::from_bytes(reserved), info_hash: InfoHash::new(hash), peer_id: PeerId::new(id) };
        let mut encoded = BytesMut::new();
        handshake.encode(&mut encoded);
        let mut buf = BytesMut::from(&encoded[..cut]);
        prop_assert_eq!(Handshake::decode(&mut buf), Ok(None));
        buf.extend_from_slice(&encoded[cut..]);
        prop_assert_eq!(Handshake::decode(&mut buf), Ok(Some(handshake)));
    }

    #[test]
    fn arbitrary_streams_never_panic(stream in proptest::collection::vec(any::<u8>(), 0..512)) {
        let decoder = Decoder::default();
        let mut buf = BytesMut::from(&stream[..]);
        while let Ok(Some(_)) = decoder.decode(&mut buf) {}
        let _ = Handshake::decode(&mut BytesMut::from(&stream[..]));
    }
}

#[test]
fn piece_payloads_are_zero_copy_views_of_the_receive_buffer() {
    let mut buf = BytesMut::new();
    encode_piece_header(3, BLOCK_SIZE, 5, &mut buf);
    assert_eq!(buf.len(), PIECE_HEADER_LEN);
    buf.extend_from_slice(b"hello");
    let start = buf.as_ptr() as usize;
    let Some(Message::Piece(block)) = Decoder::default().decode(&mut buf).unwrap() else {
        panic!("not a piece")
    };
    assert_eq!(
        block.info(),
        BlockInfo {
            piece: 3,
            offset: BLOCK_SIZE,
            len: 5
        }
    );
    assert_eq!(&block.data[..], b"hello");
    assert_eq!(
        block.data.as_ptr() as usize,
        start + PIECE_HEADER_LEN,
        "payload was copied"
    );
}

#[test]
fn malformed_input_gets_specific_errors() {
    let too_long = DEFAULT_MAX_MESSAGE_LEN + 1;
    let cases: &[(&[u8], WireError)] = &[
        (
            b"\xff\xff\xff\xff",
            WireError::MessageTooLong {
                len: u32::MAX,
                max: DEFAULT_MAX_MESSAGE_LEN,
            },
        ),
        (
            &too_long.to_be_bytes(),
            WireError::MessageTooLong {
                len: too_long,
                max: DEFAULT_MAX_MESSAGE_LEN,
            },
        ),
        (
            b"\0\0\0\x02\x00",
            WireError::InvalidLength { id: 0, len: 2 },
        ),
        (
            b"\0\0\0\x02\x0e",
            WireError::InvalidLength { id: 14, len: 2 },
        ),
        (
            b"\0\0\0\x04\x04",
            WireError::InvalidLength { id: 4, len: 4 },
        ),
        (
            b"\0\0\0\x06\x04",
            WireError::InvalidLength { id: 4, len: 6 },
        ),
        (
            b"\0\0\0\x0c\x06",
            WireError::InvalidLength { id: 6, len: 12 },
        ),
        (
            b"\0\0\0\x0e\x08",
            WireError::InvalidLength { id: 8, len: 14 },
        ),
        (
            b"\0\0\0\x0c\x10",
            WireError::InvalidLength { id: 16, len: 12 },
        ),
        (
            b"\0\0\0\x08\x07",
            WireError::InvalidLength { id: 7, len: 8 },
        ),
        (
            b"\0\0\0\x02\x09",
            WireError::InvalidLength { id: 9, len: 2 },
        ),
        (
            b"\0\0\0\x01\x05",
            WireError::InvalidLength { id: 5, len: 1 },
        ),
        (
            b"\0\0\0\x01\x14",
            WireError::InvalidLength { id: 20, len: 1 },
        ),
        (
            b"\0\0\0\x06\x11",
            WireError::InvalidLength { id: 17, len: 6 },
        ),
        (
            b"\0\0\0\x30\x15",
            WireError::InvalidLength { id: 21, len: 48 },
        ),
        (
            b"\0\0\0\x32\x17",
            WireError::InvalidLength { id: 23, len: 50 },
        ),
        (
            b"\0\0\0\x50\x16",
            WireError::InvalidLength { id: 22, len: 80 },
        ),
        (
            b"\0\0\0\x30\x16",
            WireError::InvalidLength { id: 22, len: 48 },
        ),
    ];
    for (input, expected) in cases {
        let mut buf = BytesMut::from(*input);
        assert_eq!(
            Decoder::default().decode(&mut buf).as_ref(),
            Err(expected),
            "{input:?}"
        );
    }
    let handshakes: &[&[u8]] = &[
        b"\x13BitTorrent protocoL",
        b"\x14BitTorrent protocol",
        b"\0",
        b"GET /announce",
    ];
    for input in handshakes {
        assert_eq!(
            Handshake::decode(&mut BytesMut::from(*input)),
            Err(WireError::InvalidProtocol),
            "{input:?}"
        );
    }
}

#[test]
fn a_4_gib_announcement_allocates_nothing() {
    let mut buf = BytesMut::from(&b"\xff\xff\xff\xf0\x07"[..]);
    let capacity = buf.capacity();
    assert!(Decoder::default().decode(&mut buf).is_err());
    assert_eq!(buf.capacity(), capacity);
}

#[test]
fn unknown_ids_are_returned_not_fatal() {
    let mut buf = BytesMut::from(&b"\0\0\0\x03\x63ab\0\0\0\x01\x01"[..]);
    let decoder = Decoder::default();
    assert_eq!(
        decoder.decode(&mut buf).unwrap(),
        Some(Message::Unknown {
            id: 0x63,
            payload: Bytes::from_static(b"ab")
        })
    );
    assert_eq!(decoder.decode(&mut buf).unwrap(), Some(Message::Unchoke));
}

#[test]
fn the_limit_is_configurable_but_never_below_a_block() {
    assert_eq!(Decoder::with_max_len(10).max_len(), 9 + BLOCK_SIZE);
    let decoder = Decoder::with_max_len(100_000);
    let mut buf = BytesMut::from(&100_001u32.to_be_bytes()[..]);
    assert_eq!(
        decoder.decode(&mut buf),
        Err(WireError::MessageTooLong {
            len: 100_001,
            max: 100_000
        })
    );
}

#[test]
fn missing_counts_the_bytes_the_next_message_still_needs() {
    let decoder = Decoder::default();
    assert_eq!(decoder.missing(b""), 4);
    assert_eq!(decoder.missing(b"\0\0"), 2);
    let mut piece = BytesMut::new();
    Message::Have(7).encode(&mut piece);
    assert_eq!(decoder.missing(&piece), 0);
    assert_eq!(decoder.missing(&piece[..6]), 3);
    let mut partial = BytesMut::from(&piece[..6]);
    let capacity = partial.capacity();
    assert_eq!(decoder.decode(&mut partial), Ok(None));
    assert_eq!(
        partial.capacity(),
        capacity,
        "decode leaves allocation to the caller"
    );
    assert_eq!(
        decoder.missing(b"\xff\xff\xff\xf0\x07"),
        0,
        "a hostile length sizes nothing"
    );
}
