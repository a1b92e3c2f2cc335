//! Engine micro-benchmarks: the tracker codecs (HTTP announce and scrape bodies, UDP announce
//! packets) and a 64 MiB transfer between two engines over loopback on `/dev/shm`.
//! `cargo bench -p cratetorrent --bench engine`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use std::time::Duration;

use cratetorrent::prelude::*;
use cratetorrent::tracker::{http, udp};
use cratetorrent_metainfo::{InfoHash, TorrentBuilder};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// A compact announce reply with `peers` IPv4 peers.
fn compact_reply(peers: u32) -> Vec<u8> {
    let mut body = b"d8:completei10e10:incompletei90e8:intervali1800e5:peers".to_vec();
    body.extend(format!("{}:", peers * 6).as_bytes());
    for i in 0..peers {
        body.extend([10, 0, (i >> 8) as u8, i as u8, 0x1a, 0xe1]);
    }
    body.push(b'e');
    body
}

fn trackers(c: &mut Criterion) {
    let mut group = c.benchmark_group("tracker");
    let reply = compact_reply(200);
    group.throughput(Throughput::Elements(200));
    group.bench_function("http announce, 200 compact peers", |b| {
        b.iter(|| http::parse_announce_response(std::hint::black_box(&reply)).unwrap());
    });
    let mut packet = Vec::new();
    packet.extend(1u32.to_be_bytes());
    packet.extend(7u32.to_be_bytes());
    packet.extend(1800u32.to_be_bytes());
    packet.extend(90u32.to_be_bytes());
    packet.extend(10u32.to_be_bytes());
    for i in 0..200u32 {
        packet.extend([10, 0, (i >> 8) as u8, i as u8, 0x1a, 0xe1]);
    }
    group.bench_function("udp announce, 200 peers", |b| {
        b.iter(|| udp::parse_response(std::hint::black_box(&packet), 7, false).unwrap());
    });
    let hash = InfoHash::new([0x41; 20]);
    let scrape = [
        &b"d5:filesd20:"[..],
        hash.as_bytes(),
        b"d8:completei1e10:downloadedi2e10:incompletei3eeee",
    ]
    .concat();
    group.throughput(Throughput::Elements(1));
    group.bench_function("http scrape", |b| {
        b.iter(|| http::parse_scrape_response(std::hint::black_box(&scrape), &hash).unwrap());
    });
    group.finish();
}

fn loopback(c: &mut Criterion) {
    const SIZE: usize = 64 << 20;
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        "/dev/shm"
    } else {
        "/tmp"
    };
    let seed_dir = tempfile::tempdir_in(base).unwrap();
    let path = seed_dir.path().join("payload.bin");
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let data: Vec<u8> = (0..SIZE / 8)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        })
        .collect();
    std::fs::write(&path, &data).unwrap();
    let metainfo = Metainfo::from_bytes(&TorrentBuilder::new(&path).build().unwrap()).unwrap();
    let mut conf = Conf::new(seed_dir.path());
    conf.listen_addr = "127.0.0.1:0".parse().unwrap();
    conf.tracker.enabled = false;
    conf.lsd = false;
    conf.dht.enabled = false;
    let (seed, mut seed_alerts) = engine::spawn(conf).unwrap();
    seed.create_torrent(TorrentParams {
        source: metainfo.clone().into(),
        listen_addr: None,
        mode: Mode::Seed,
        conf: None,
    })
    .unwrap();
    futures::executor::block_on(async {
        while let Some(alert) = seed_alerts.next().await {
            if let Alert::TorrentStarted { .. } = alert {
                break;
            }
        }
    });
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Bytes(SIZE as u64));
    group.bench_function("64 MiB seed -> leech on loopback", |b| {
        b.iter(|| {
            let dir = tempfile::tempdir_in(base).unwrap();
            let mut conf = Conf::new(dir.path());
            conf.listen_addr = "127.0.0.1:0".parse().unwrap();
            conf.tracker.enabled = false;
            conf.lsd = false;
            conf.dht.enabled = false;
            let (leech, mut alerts) = engine::spawn(conf).unwrap();
            let id = leech
                .create_torrent(TorrentParams {
                    source: metainfo.clone().into(),
                    listen_addr: None,
                    mode: Mode::Download {
                        seeds: vec![seed.listen_addr()],
                    },
                    conf: None,
                })
                .unwrap();
            futures::executor::block_on(async {
                while let Some(alert) = alerts.next().await {
                    match alert {
                        Alert::TorrentComplete(done) if done == id => break,
                        Alert::TorrentError { error, .. } => panic!("{error}"),
                        _ => {}
                    }
                }
                leech.shutdown().await.unwrap();
            });
        });
    });
    group.finish();
    futures::executor::block_on(seed.shutdown()).unwrap();
}

criterion_group!(benches, trackers, loopback);
criterion_main!(benches);
