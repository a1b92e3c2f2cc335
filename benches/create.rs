//! Torrent creation throughput: hashing a 256 MiB file from the page cache on all cores.

use cratetorrent_metainfo::TorrentBuilder;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const SIZE: usize = 256 << 20;

fn create(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("payload.bin");
    let data: Vec<u8> = (0..SIZE)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    std::fs::write(&path, data).expect("write payload");
    let mut group = c.benchmark_group("create");
    group
        .sample_size(10)
        .throughput(Throughput::Bytes(SIZE as u64));
    for piece_length in [256 << 10, 1 << 20] {
        let builder = TorrentBuilder::new(&path)
            .piece_length(piece_length)
            .creation_date(None);
        group.bench_function(format!("256 MiB, {} KiB pieces", piece_length >> 10), |b| {
            b.iter(|| builder.build().expect("create"))
        });
    }
    group.finish();
}

criterion_group!(benches, create);
criterion_main!(benches);
