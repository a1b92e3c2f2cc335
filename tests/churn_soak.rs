//! Churn and soak: for five minutes (`CT_SOAK_SECS` to change), libtorrent leechers and
//! cratetorrent CLI downloads (separate processes, so this process's descriptors and memory are
//! the engine's) join and leave at random, by SIGTERM or SIGKILL, while one engine seeds a torrent
//! to them and downloads two more, rate-limited so the downloads last through the churn, from a
//! libtorrent seed and a cratetorrent seed. Every 10 s the engine process's file descriptors,
//! RSS and the engine's counters are printed. At the end: no panic (the engine still answers),
//! both downloads complete and verify, and descriptors and memory are back near their baseline.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cratetorrent::prelude::*;
use cratetorrent::{EngineCounters, RateLimits};
use cratetorrent_metainfo::TorrentBuilder;
use cratetorrent_tests::clients::LibtorrentLeecher;
use cratetorrent_tests::{LibtorrentSeeder, loopback_conf, params, pseudo_random};

const MIB: usize = 1 << 20;
/// Churners alive at once, at most.
const MAX_CHURNERS: usize = 6;

struct Source {
    dir: tempfile::TempDir,
    torrent: PathBuf,
    metainfo: Metainfo,
    data: Vec<u8>,
}

fn source(name: &str, size: usize, seed: u64) -> Source {
    let dir = tempfile::tempdir().unwrap();
    let data = pseudo_random(size, seed);
    std::fs::write(dir.path().join(name), &data).unwrap();
    let bytes = TorrentBuilder::new(dir.path().join(name))
        .piece_length(256 * 1024)
        .build()
        .unwrap();
    let torrent = dir.path().join(format!("{name}.torrent"));
    std::fs::write(&torrent, &bytes).unwrap();
    Source {
        dir,
        torrent,
        metainfo: Metainfo::from_bytes(&bytes).unwrap(),
        data,
    }
}

fn conf(dir: &Path) -> Conf {
    let mut conf = loopback_conf(dir);
    conf.tracker.enabled = false;
    conf
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// A peer that joined the swarm of the shared torrent.
enum Churner {
    Libtorrent(LibtorrentLeecher, tempfile::TempDir),
    Ours(std::process::Child, tempfile::TempDir),
}

/// The CLI binary, built next to this test (cargo builds every workspace binary for
/// `cargo test --workspace`; built here if this test runs alone).
fn cli() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let binary = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("cratetorrent");
    if !binary.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "cratetorrent-cli"])
            .status()
            .unwrap();
        assert!(status.success(), "building the CLI");
    }
    binary
}

/// `cratetorrent seed` in its own process (so its read cache is not this process's memory),
/// stopped by PID when dropped.
struct CliSeed {
    child: std::process::Child,
    addr: SocketAddr,
}

impl CliSeed {
    fn start(binary: &Path, source: &Source) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(binary)
            .arg("seed")
            .arg(&source.torrent)
            .arg(source.dir.path())
            .args(["--listen", "127.0.0.1:0", "--json"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut addr = None;
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("the CLI seed never reported");
            if let Some(at) = line.find("listening on ") {
                let rest = &line[at + "listening on ".len()..];
                let end = rest.find('"').unwrap_or(rest.len());
                addr = rest[..end].parse().ok();
            }
            if line.contains("\"event\":\"checked\"") {
                break;
            }
        }
        Self {
            child,
            addr: addr.expect("the CLI seed's listening address"),
        }
    }
}

impl Drop for CliSeed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn leave(churner: Churner, kill: bool) {
    match churner {
        Churner::Libtorrent(leecher, _dir) => drop(leecher),
        Churner::Ours(mut child, _dir) => {
            let signal = if kill { "-KILL" } else { "-TERM" };
            let _ = std::process::Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().unwrap().is_none() {
                assert!(Instant::now() < deadline, "a CLI download ignored SIGTERM");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn peers_join_and_leave_for_five_minutes() {
    let soak = Duration::from_secs(
        std::env::var("CT_SOAK_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(300),
    );
    let shared = source("shared.bin", 24 * MIB, 1);
    let from_lt = source("from_lt.bin", 24 * MIB, 2);
    let from_ct = source("from_ct.bin", 24 * MIB, 3);
    let lt_seed = LibtorrentSeeder::start(&from_lt.torrent, from_lt.dir.path());
    let binary = cli();
    let ct_seed = CliSeed::start(&binary, &from_ct);

    // The engine under test: seeds `shared` from where it was made, downloads the other two.
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("shared.bin"), &shared.data).unwrap();
    let mut engine_conf = conf(work.path());
    // 48 MiB over nine tenths of the soak: downloading goes on through all the churn.
    let rate = (48 * MIB as u64) / soak.as_secs().max(1) * 10 / 9;
    engine_conf.download_rate_limit = rate;
    let (engine, mut alerts) = engine::spawn(engine_conf).unwrap();
    engine
        .create_torrent(params(&shared.metainfo, Mode::Seed))
        .unwrap();
    let lt_id = engine
        .create_torrent(params(
            &from_lt.metainfo,
            Mode::Download {
                seeds: vec![SocketAddr::from(([127, 0, 0, 1], lt_seed.port))],
            },
        ))
        .unwrap();
    let ct_id = engine
        .create_torrent(params(
            &from_ct.metainfo,
            Mode::Download {
                seeds: vec![ct_seed.addr],
            },
        ))
        .unwrap();
    let mut started = 0;
    while started < 3 {
        match tokio::time::timeout(Duration::from_secs(60), alerts.next()).await {
            Ok(Some(Alert::TorrentStarted { .. })) => started += 1,
            Ok(Some(Alert::TorrentError { error, .. })) => panic!("{error}"),
            Ok(Some(_)) => {}
            other => panic!("torrents did not start: {other:?}"),
        }
    }
    let baseline = (fds(), rss_mib());
    println!("baseline: {} fds, {} MiB RSS", baseline.0, baseline.1);

    let seed_value = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let mut rng = fastrand::Rng::with_seed(seed_value);
    println!("churn rng seed {seed_value}");
    let addr = engine.listen_addr();
    let begin = Instant::now();
    let mut churners: Vec<(Churner, Instant)> = Vec::new();
    let (mut joined, mut done) = (0, Vec::new());
    let mut next_report = begin;
    // Memory once the caches have warmed up (the shared torrent fetched by the first peers).
    let mut warm = None;
    let mut max = EngineCounters::default();
    while begin.elapsed() < soak {
        // Someone leaves: whoever's time is up.
        let now = Instant::now();
        let (leaving, staying): (Vec<_>, Vec<_>) =
            churners.into_iter().partition(|(_, leaves)| *leaves <= now);
        churners = staying;
        for (churner, _) in leaving {
            leave(churner, rng.bool());
        }
        // Someone joins, sometimes.
        if churners.len() < MAX_CHURNERS && rng.u8(..4) == 0 {
            let dir = tempfile::tempdir().unwrap();
            let leaves = now + Duration::from_millis(rng.u64(500..20_000));
            let churner = if rng.bool() {
                let leecher = LibtorrentLeecher::start(&shared.torrent, dir.path(), &[addr]);
                Churner::Libtorrent(leecher, dir)
            } else {
                let child = std::process::Command::new(&binary)
                    .arg("download")
                    .arg(&shared.torrent)
                    .arg("-o")
                    .arg(dir.path())
                    .args(["--peer", &addr.to_string(), "--listen", "127.0.0.1:0", "-q"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .unwrap();
                Churner::Ours(child, dir)
            };
            churners.push((churner, leaves));
            joined += 1;
        }
        let counters = engine.counters().await.expect("the engine died");
        max.connections = max.connections.max(counters.connections);
        max.send_buffered = max.send_buffered.max(counters.send_buffered);
        max.disk_buffered = max.disk_buffered.max(counters.disk_buffered);
        if warm.is_none() && begin.elapsed() >= soak / 4 {
            warm = Some(rss_mib());
        }
        if Instant::now() >= next_report {
            println!(
                "t={:>3}s fds={} rss={}MiB churners={} joined={} {:?}",
                begin.elapsed().as_secs(),
                fds(),
                rss_mib(),
                churners.len(),
                joined,
                counters
            );
            next_report += Duration::from_secs(10);
        }
        while let Ok(Some(alert)) =
            tokio::time::timeout(Duration::from_millis(200), alerts.next()).await
        {
            match alert {
                Alert::TorrentComplete(id) => done.push(id),
                Alert::TorrentError { error, .. } => panic!("{error}"),
                _ => {}
            }
        }
    }
    for (churner, _) in churners {
        leave(churner, false);
    }
    // Everyone who left is gone from the engine, and so are their descriptors and memory
    // (measured before the downloads are unthrottled, whose buffers would blur the picture).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut counters = engine.counters().await.unwrap();
    while counters.connections > 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        counters = engine.counters().await.unwrap();
    }
    let after = (fds(), rss_mib());
    let warm = warm.unwrap_or(baseline.1);
    println!(
        "after the churn: {} fds, {} MiB RSS (baseline {} fds, {} MiB; {warm} MiB once warm); \
         {joined} peers joined and left; largest: {max:?}; now: {counters:?}",
        after.0, after.1, baseline.0, baseline.1
    );
    assert!(counters.connections <= 2, "{counters:?}");
    assert!(counters.send_buffered == 0, "{counters:?}");
    assert!(
        after.0 <= baseline.0 + 8,
        "descriptors leaked: {after:?} vs {baseline:?}"
    );
    assert!(
        after.1 <= warm + 16,
        "memory kept growing: {} MiB after the churn, {warm} MiB once warm",
        after.1
    );
    // The downloads finish (unthrottled now) and verify.
    engine
        .set_rate_limits(
            None,
            RateLimits {
                download: 0,
                upload: 0,
            },
        )
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !(done.contains(&lt_id) && done.contains(&ct_id)) {
        match tokio::time::timeout_at(deadline, alerts.next()).await {
            Ok(Some(Alert::TorrentComplete(id))) => done.push(id),
            Ok(Some(Alert::TorrentError { error, .. })) => panic!("{error}"),
            Ok(Some(_)) => {}
            other => panic!("downloads did not complete: {other:?}"),
        }
    }
    assert_eq!(
        std::fs::read(work.path().join("from_lt.bin")).unwrap(),
        from_lt.data
    );
    assert_eq!(
        std::fs::read(work.path().join("from_ct.bin")).unwrap(),
        from_ct.data
    );
    assert!(joined >= 10, "only {joined} peers joined");
    engine.shutdown().await.unwrap();
    drop(ct_seed);
    drop(lt_seed);
}
