//! Decoding and parsing a large `.torrent` (200,000 pieces, 10,000 files, about 4.4 MB).

use std::hint::black_box;

use cratetorrent_benches::large_torrent;
use cratetorrent_metainfo::{Metainfo, bencode};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn decode(c: &mut Criterion) {
    let torrent = large_torrent(10_000, 200_000);
    let mut group = c.benchmark_group("large torrent");
    group.throughput(Throughput::Bytes(torrent.len() as u64));
    group.bench_function("bencode::decode", |b| {
        b.iter(|| bencode::decode(black_box(&torrent)).map(|v| v.span()))
    });
    group.bench_function("Metainfo::from_bytes", |b| {
        b.iter(|| Metainfo::from_bytes(black_box(&torrent)).map(|m| m.info_hash()))
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
