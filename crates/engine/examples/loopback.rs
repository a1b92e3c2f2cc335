//! Seeds a random payload with one engine and downloads it with another over loopback, then
//! prints the throughput: `cargo run --release -p cratetorrent --example loopback -- [MiB] [DIR]`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::time::Instant;

use cratetorrent::prelude::*;
use cratetorrent_metainfo::TorrentBuilder;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mib: usize = std::env::args().nth(1).map_or(Ok(256), |a| a.parse())?;
    let base = std::env::args().nth(2).unwrap_or_else(|| "/dev/shm".into());
    let seed_dir = tempfile::tempdir_in(&base)?;
    let leech_dir = tempfile::tempdir_in(&base)?;
    let path = seed_dir.path().join("payload.bin");
    {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut chunk = vec![0u8; 1 << 20];
        for _ in 0..mib {
            for word in chunk.chunks_exact_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                word.copy_from_slice(&state.to_le_bytes());
            }
            file.write_all(&chunk)?;
        }
    }
    let metainfo = Metainfo::from_bytes(&TorrentBuilder::new(&path).build()?)?;
    let mut conf = Conf::new(seed_dir.path());
    conf.listen_addr = "127.0.0.1:0".parse()?;
    let (seed, mut seed_alerts) = engine::spawn(conf)?;
    seed.create_torrent(TorrentParams {
        source: metainfo.clone().into(),
        listen_addr: None,
        mode: Mode::Seed,
        conf: None,
    })?;
    // Let the seed check its data first: that is not part of the transfer.
    futures::executor::block_on(async {
        while let Some(alert) = seed_alerts.next().await {
            if let Alert::TorrentStarted { .. } = alert {
                break;
            }
        }
    });
    let mut conf = Conf::new(leech_dir.path());
    conf.listen_addr = "127.0.0.1:0".parse()?;
    let (leech, mut alerts) = engine::spawn(conf)?;
    let start = Instant::now();
    let id = leech.create_torrent(TorrentParams {
        source: metainfo.into(),
        listen_addr: None,
        mode: Mode::Download {
            seeds: vec![seed.listen_addr()],
        },
        conf: None,
    })?;
    futures::executor::block_on(async {
        while let Some(alert) = alerts.next().await {
            match alert {
                Alert::TorrentComplete(done) if done == id => break,
                Alert::TorrentError { error, .. } => panic!("{error}"),
                Alert::TorrentStats(stats) if std::env::var_os("CT_VERBOSE").is_some() => {
                    eprintln!(
                        "{:>6.2}s {} / {} pieces, {} MB/s",
                        start.elapsed().as_secs_f64(),
                        stats.pieces_had,
                        stats.piece_count,
                        stats.download_rate / 1_000_000
                    );
                }
                _ => {}
            }
        }
    });
    let elapsed = start.elapsed();
    futures::executor::block_on(async {
        leech.shutdown().await?;
        seed.shutdown().await
    })?;
    let bytes = (mib as f64) * 1024.0 * 1024.0;
    println!(
        "{mib} MiB in {:.2} s: {:.0} MB/s",
        elapsed.as_secs_f64(),
        bytes / elapsed.as_secs_f64() / 1e6
    );
    Ok(())
}
