//! Our wire codec against a real libtorrent seeder on loopback: handshake, its bitfield or
//! have-all and extended handshake, then one requested block checked against the file.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use cratetorrent_metainfo::{Metainfo, TorrentBuilder};
use cratetorrent_tests::{LibtorrentSeeder, pseudo_random};
use cratetorrent_wire::{
    BLOCK_SIZE, Bitfield, BlockInfo, Decoder, EXTENDED_HANDSHAKE_ID, ExtendedHandshake, Extension,
    Extensions, Handshake, Message, PeerId,
};

/// A blocking connection that decodes messages with an overall deadline.
struct Connection {
    stream: TcpStream,
    buf: BytesMut,
    deadline: Instant,
}

impl Connection {
    fn fill(&mut self) {
        let left = self.deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out waiting for libtorrent");
        self.stream
            .set_read_timeout(Some(left))
            .expect("set timeout");
        let mut chunk = [0u8; 64 * 1024];
        let read = self.stream.read(&mut chunk).expect("read from libtorrent");
        assert!(read > 0, "libtorrent closed the connection");
        self.buf.extend_from_slice(&chunk[..read]);
    }

    fn handshake(&mut self) -> Handshake {
        loop {
            if let Some(handshake) = Handshake::decode(&mut self.buf).expect("valid handshake") {
                return handshake;
            }
            self.fill();
        }
    }

    fn message(&mut self) -> Message {
        loop {
            if let Some(message) = Decoder::default()
                .decode(&mut self.buf)
                .expect("valid message")
            {
                return message;
            }
            self.fill();
        }
    }

    fn send(&mut self, message: &Message) {
        let mut out = BytesMut::new();
        message.encode(&mut out);
        self.stream.write_all(&out).expect("write to libtorrent");
    }
}

#[test]
#[ignore = "needs reference peers"]
fn handshake_and_one_block_from_libtorrent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = pseudo_random(5 * 32 * 1024 + 123, 7);
    let file = dir.path().join("payload.bin");
    std::fs::write(&file, &data).expect("write payload");
    let torrent_bytes = TorrentBuilder::new(&file)
        .piece_length(32 * 1024)
        .build()
        .expect("create torrent");
    let torrent_path = dir.path().join("payload.torrent");
    std::fs::write(&torrent_path, &torrent_bytes).expect("write torrent");
    let metainfo = Metainfo::from_bytes(&torrent_bytes).expect("parse torrent");

    let seeder = LibtorrentSeeder::start(&torrent_path, dir.path());
    let stream = TcpStream::connect(("127.0.0.1", seeder.port)).expect("connect to libtorrent");
    let mut peer = Connection {
        stream,
        buf: BytesMut::new(),
        deadline: Instant::now() + Duration::from_secs(30),
    };

    let ours = Handshake {
        extensions: Extensions::NONE
            .with(Extension::Fast)
            .with(Extension::ExtensionProtocol),
        info_hash: metainfo.info_hash(),
        peer_id: PeerId::generate(),
    };
    let mut out = BytesMut::new();
    ours.encode(&mut out);
    peer.stream.write_all(&out).expect("send handshake");
    let theirs = peer.handshake();
    assert_eq!(theirs.info_hash, metainfo.info_hash());
    assert!(theirs.extensions.contains(Extension::ExtensionProtocol));
    assert_eq!(theirs.peer_id.client().map(|c| c.name), Some("libtorrent"));

    let ours_extended = ExtendedHandshake {
        client: Some("cratetorrent test".into()),
        ..Default::default()
    };
    peer.send(&Message::Extended {
        id: EXTENDED_HANDSHAKE_ID,
        payload: ours_extended.encode(),
    });

    // libtorrent announces it is a seed (have-all with the fast extension, else a full bitfield)
    // and sends its extended handshake, in either order.
    let (mut has_everything, mut extended) = (false, None);
    while !has_everything || extended.is_none() {
        match peer.message() {
            Message::HaveAll => has_everything = true,
            Message::Bitfield(bits) => {
                let bits =
                    Bitfield::from_payload(&bits, metainfo.piece_count()).expect("valid bitfield");
                has_everything = bits.is_full();
            }
            Message::Extended {
                id: EXTENDED_HANDSHAKE_ID,
                payload,
            } => {
                extended =
                    Some(ExtendedHandshake::decode(&payload).expect("valid extended handshake"));
            }
            _ => {}
        }
    }
    let extended = extended.unwrap_or_default();
    assert!(extended.client.is_some_and(|v| v.contains("libtorrent")));
    assert!(extended.request_queue.is_some_and(|q| q > 0));

    peer.send(&Message::Interested);
    while peer.message() != Message::Unchoke {}
    let last_piece = metainfo.piece_count() - 1;
    let request = BlockInfo {
        piece: last_piece,
        offset: 0,
        len: 123,
    };
    let first = BlockInfo {
        piece: 1,
        offset: BLOCK_SIZE,
        len: BLOCK_SIZE,
    };
    peer.send(&Message::Request(first));
    peer.send(&Message::Request(request));
    let mut received = Vec::new();
    while received.len() < 2 {
        if let Message::Piece(block) = peer.message() {
            received.push(block);
        }
    }
    for block in received {
        let start = block.piece as usize * 32 * 1024 + block.offset as usize;
        assert!(
            block.info() == first || block.info() == request,
            "unrequested {:?}",
            block.info()
        );
        assert_eq!(&block.data[..], &data[start..start + block.data.len()]);
    }
}
