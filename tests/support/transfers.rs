//! Transfers with a libtorrent peer (`lt_fast.py`) that reports its counters after: we download
//! from its seed, or it downloads from ours, each with settings on both sides. Rate-limited to
//! 2 MB/s (about 3 s for the payload), so libtorrent sees the connection past its handshake.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cratetorrent::prelude::*;

use crate::clients::LibtorrentFast;
use crate::{Payload, loopback_conf, params, wait_complete};

const TIMEOUT: Duration = Duration::from_secs(60);
const PIECE: u32 = 256 * 1024;
const LIMITS: [&str; 1] = ["ignore_limits_on_local_network=0"];

fn with_limit<'a>(settings: &'a [String], limit: &'a str) -> Vec<&'a str> {
    settings
        .iter()
        .map(String::as_str)
        .chain([limit])
        .chain(LIMITS)
        .collect()
}

/// We (configured by `configure`) download from a libtorrent seed with `settings`; returns its
/// counters.
pub async fn download_from_libtorrent(
    settings: &[String],
    seed: u64,
    configure: impl FnOnce(&mut Conf),
) -> serde_json::Value {
    let payload = Payload::single_file(24 * PIECE as usize, PIECE, seed);
    let settings = with_limit(settings, "upload_rate_limit=2000000");
    let mut libtorrent = LibtorrentFast::seed(&payload.torrent, payload.dir.path(), &settings);
    let ours = tempfile::tempdir().expect("temporary directory");
    let mut conf = loopback_conf(ours.path());
    configure(&mut conf);
    let (engine, mut alerts) = engine::spawn(conf).expect("engine");
    let at = SocketAddr::from(([127, 0, 0, 1], libtorrent.port));
    let id = engine
        .create_torrent(params(
            &payload.metainfo,
            Mode::Download { seeds: vec![at] },
        ))
        .expect("torrent");
    wait_complete(&mut alerts, id, TIMEOUT).await;
    assert!(payload.same_in(ours.path()));
    let counters = libtorrent.counters();
    engine.shutdown().await.expect("shutdown");
    counters
}

/// A libtorrent leecher with `settings` downloads from our seed (configured by `configure`);
/// returns its counters.
pub async fn seed_to_libtorrent(
    settings: &[String],
    seed: u64,
    configure: impl FnOnce(&mut Conf),
) -> serde_json::Value {
    let payload = Payload::single_file(24 * PIECE as usize, PIECE, seed);
    let mut conf = loopback_conf(payload.dir.path());
    configure(&mut conf);
    let (engine, _alerts) = engine::spawn(conf).expect("engine");
    engine
        .create_torrent(params(&payload.metainfo, Mode::Seed))
        .expect("torrent");
    let save = tempfile::tempdir().expect("temporary directory");
    let settings = with_limit(settings, "download_rate_limit=2000000");
    let mut leecher = LibtorrentFast::leech(
        &payload.torrent,
        save.path(),
        engine.listen_addr(),
        &settings,
    );
    leecher.wait_done(TIMEOUT);
    let counters = leecher.counters();
    // DONE means verified, not yet all on disk: libtorrent's copy may lag a moment.
    let deadline = Instant::now() + TIMEOUT;
    while !payload.same_in(save.path()) {
        assert!(Instant::now() < deadline, "libtorrent's copy differs");
        std::thread::sleep(Duration::from_millis(50));
    }
    engine.shutdown().await.expect("shutdown");
    counters
}

/// A counter of `counters`, which must be there.
pub fn counter(counters: &serde_json::Value, name: &str) -> u64 {
    counters[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no {name} in {counters}"))
}
