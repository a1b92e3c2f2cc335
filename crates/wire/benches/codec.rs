//! Decoding streams of piece messages and of mixed small messages; encoding requests and piece
//! headers; the MSE RC4 keystream (ours beside the `rc4` crate's).

use std::hint::black_box;

use bytes::BytesMut;
use cratetorrent_wire::{BLOCK_SIZE, Block, BlockInfo, Decoder, Message, encode_piece_header};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const PIECES: u32 = 1024;
const SMALL: u32 = 100_000;

fn piece_stream() -> BytesMut {
    let data = bytes::Bytes::from(vec![0xa5u8; BLOCK_SIZE as usize]);
    let mut buf = BytesMut::new();
    for i in 0..PIECES {
        Message::Piece(Block {
            piece: i / 16,
            offset: (i % 16) * BLOCK_SIZE,
            data: data.clone(),
        })
        .encode(&mut buf);
    }
    buf
}

fn mixed_stream() -> BytesMut {
    let mut buf = BytesMut::new();
    for i in 0..SMALL {
        let block = BlockInfo {
            piece: i,
            offset: 0,
            len: BLOCK_SIZE,
        };
        let message = match i % 5 {
            0 => Message::Have(i),
            1 => Message::Request(block),
            2 => Message::Cancel(block),
            3 => Message::Unchoke,
            _ => Message::KeepAlive,
        };
        message.encode(&mut buf);
    }
    buf
}

fn decode_all(decoder: &Decoder, mut buf: BytesMut) -> usize {
    let mut count = 0;
    while let Ok(Some(message)) = decoder.decode(&mut buf) {
        black_box(&message);
        count += 1;
    }
    count
}

fn decode(c: &mut Criterion) {
    let decoder = Decoder::default();
    let mut group = c.benchmark_group("decode");
    let pieces = piece_stream();
    group.throughput(Throughput::Bytes(u64::from(PIECES * BLOCK_SIZE)));
    group.bench_function("piece messages (payload bytes)", |b| {
        b.iter_batched(
            || pieces.clone(),
            |buf| decode_all(&decoder, buf),
            BatchSize::LargeInput,
        )
    });
    let mixed = mixed_stream();
    group.throughput(Throughput::Elements(u64::from(SMALL)));
    group.bench_function("mixed small messages", |b| {
        b.iter_batched(
            || mixed.clone(),
            |buf| decode_all(&decoder, buf),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(u64::from(SMALL)));
    let mut buf = BytesMut::with_capacity(SMALL as usize * 17);
    group.bench_function("requests", |b| {
        b.iter(|| {
            buf.clear();
            for i in 0..SMALL {
                Message::Request(BlockInfo {
                    piece: i,
                    offset: 0,
                    len: BLOCK_SIZE,
                })
                .encode(&mut buf);
            }
            black_box(buf.len())
        })
    });
    group.bench_function("piece headers", |b| {
        b.iter(|| {
            buf.clear();
            for i in 0..SMALL {
                encode_piece_header(i, 0, BLOCK_SIZE, &mut buf);
            }
            black_box(buf.len())
        })
    });
    group.finish();
}

fn rc4(c: &mut Criterion) {
    use ::rc4::{KeyInit, StreamCipher};
    let mut group = c.benchmark_group("rc4");
    let mut data = vec![0u8; 1 << 20];
    group.throughput(Throughput::Bytes(data.len() as u64));
    let mut ours = cratetorrent_wire::mse::Keystream::new(&[7; 20]);
    group.bench_function("mse keystream, 1 MiB", |b| {
        b.iter(|| ours.apply(black_box(&mut data)))
    });
    let mut crate_rc4 = ::rc4::Rc4::new(&[7; 32].into());
    group.bench_function("rc4 crate, 1 MiB", |b| {
        b.iter(|| crate_rc4.apply_keystream(black_box(&mut data)))
    });
    group.finish();
}

criterion_group!(benches, decode, encode, rc4);
criterion_main!(benches);
