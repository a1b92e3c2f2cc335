//! BEP 11 peer exchange against libtorrent on loopback, both directions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cratetorrent::prelude::*;
use cratetorrent_metainfo::TorrentBuilder;
use cratetorrent_tests::{loopback_conf, pseudo_random, support_dir};

const TIMEOUT: Duration = Duration::from_secs(30);

/// `lt_pex.py`: libtorrent sessions with PEX on, on 127.0.0.20 and up.
struct LtPeers {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    ports: Vec<u16>,
}

impl LtPeers {
    fn start(
        torrent: &std::path::Path,
        root: &std::path::Path,
        count: usize,
        dial: bool,
        extra: &[SocketAddr],
    ) -> Self {
        let mut child = Command::new("/usr/bin/python3")
            .arg(support_dir().join("lt_pex.py"))
            .arg(torrent)
            .arg(root)
            .arg(count.to_string())
            .arg(if dial { "1" } else { "0" })
            .args(extra.iter().map(ToString::to_string))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start libtorrent");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let ready = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("libtorrent ready");
        let ports = ready
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("unexpected {ready:?}"))
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        Self {
            child,
            stdin,
            lines,
            ports,
        }
    }

    fn addr(&self, i: usize) -> SocketAddr {
        SocketAddr::new(IpAddr::from([127, 0, 0, 20 + i as u8]), self.ports[i])
    }

    /// Waits until session `i` reports a connection with `ip` (either side may have dialled:
    /// each of the two hears of the other).
    fn wait_peer(&self, i: usize, ip: IpAddr) {
        let want = format!("PEER {i} {ip}:");
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(&want) => return,
                Ok(_) => {}
                Err(e) => panic!("libtorrent session {i} never connected with {ip}: {e}"),
            }
        }
    }
}

impl Drop for LtPeers {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn torrent(dir: &std::path::Path) -> (std::path::PathBuf, Metainfo) {
    let data = dir.join("pex.bin");
    std::fs::write(&data, pseudo_random(4 << 20, 9)).unwrap();
    let bytes = TorrentBuilder::new(&data)
        .piece_length(64 * 1024)
        .build()
        .unwrap();
    let path = dir.join("pex.torrent");
    std::fs::write(&path, &bytes).unwrap();
    (path, Metainfo::from_bytes(&bytes).unwrap())
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn given_one_of_four_libtorrent_peers_we_reach_the_other_three_by_pex() {
    let dir = tempfile::tempdir().unwrap();
    let (path, metainfo) = torrent(dir.path());
    let peers = LtPeers::start(&path, &dir.path().join("lt"), 4, true, &[]);
    let ours = tempfile::tempdir().unwrap();
    let (engine, _alerts) = engine::spawn(loopback_conf(ours.path())).unwrap();
    let id = engine
        .create_torrent(TorrentParams::new(
            metainfo,
            Mode::Download {
                seeds: vec![peers.addr(0)],
            },
        ))
        .unwrap();
    let want: HashSet<IpAddr> = (1..4).map(|i| peers.addr(i).ip()).collect();
    let started = Instant::now();
    loop {
        // Not running yet while its (empty) data is checked.
        let connected: HashSet<IpAddr> = match engine.stats(id).await {
            Ok(stats) => stats.peers.iter().map(|p| p.addr.ip()).collect(),
            Err(_) => HashSet::new(),
        };
        if want.is_subset(&connected) {
            break;
        }
        assert!(
            started.elapsed() < TIMEOUT,
            "connected to {connected:?}, not all of {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "reached the three other libtorrent peers by PEX in {:?}",
        started.elapsed()
    );
    engine.shutdown().await.unwrap();
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn libtorrent_reaches_a_peer_it_hears_of_from_us() {
    let dir = tempfile::tempdir().unwrap();
    let (path, metainfo) = torrent(dir.path());
    // Two libtorrent sessions that do not know each other; we dial both.
    let peers = LtPeers::start(&path, &dir.path().join("lt"), 2, false, &[]);
    let ours = tempfile::tempdir().unwrap();
    let (engine, _alerts) = engine::spawn(loopback_conf(ours.path())).unwrap();
    engine
        .create_torrent(TorrentParams::new(
            metainfo,
            Mode::Download {
                seeds: vec![peers.addr(0), peers.addr(1)],
            },
        ))
        .unwrap();
    // Our first PEX message to each names the other (we dialled both), and they connect.
    peers.wait_peer(0, peers.addr(1).ip());
    engine.shutdown().await.unwrap();
}
