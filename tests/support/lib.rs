//! Helpers shared by the end-to-end tests: reference tools and payload trees.

pub mod clients;
pub mod netns;
pub mod nginx;
pub mod opentracker;
pub mod transfers;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The directory of this file, where the helper scripts live.
pub fn support_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("support")
}

/// Runs `command` and returns its stdout, failing the test with its stderr when it fails.
pub fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed with {}:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A torrent as libtorrent sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LtTorrent {
    /// The v1 info-hash in hex (zeros for a v2-only torrent).
    pub info_hash: String,
    /// The v2 info-hash in hex, for v2 and hybrid torrents.
    pub info_hash_v2: Option<String>,
    /// The torrent's name.
    pub name: String,
    /// Nominal piece length.
    pub piece_length: u64,
    /// Number of pieces.
    pub num_pieces: u64,
    /// Sum of file sizes.
    pub total_size: u64,
    /// Files as (path, size, is padding), in torrent order.
    pub files: Vec<(String, u64, bool)>,
}

/// Loads a `.torrent` in libtorrent and reports what it sees.
pub fn libtorrent_info(torrent: &Path) -> LtTorrent {
    let json = run(Command::new("/usr/bin/python3")
        .arg(support_dir().join("lt_torrent.py"))
        .arg("info")
        .arg(torrent));
    let value: serde_json::Value =
        serde_json::from_str(&json).expect("libtorrent helper prints JSON");
    let text = |key: &str| value[key].as_str().unwrap_or_default().to_string();
    let number = |key: &str| value[key].as_u64().unwrap_or_default();
    let files = value["files"]
        .as_array()
        .expect("files array")
        .iter()
        .map(|f| {
            let path = f["path"].as_str().unwrap_or_default().to_string();
            (
                path,
                f["size"].as_u64().unwrap_or_default(),
                f["pad"].as_bool().unwrap_or_default(),
            )
        })
        .collect();
    LtTorrent {
        info_hash: text("info_hash"),
        info_hash_v2: value["info_hash_v2"].as_str().map(String::from),
        name: text("name"),
        piece_length: number("piece_length"),
        num_pieces: number("num_pieces"),
        total_size: number("total_size"),
        files,
    }
}

/// Creates a v1 torrent of `payload` with libtorrent.
pub fn libtorrent_create(payload: &Path, out: &Path, piece_length: u32) {
    lt_create("create", payload, out, piece_length);
}

/// Writes libtorrent's default torrent of `payload` to `out`: hybrid (v1 and v2 in one info
/// dictionary), with BEP 47 pad files aligning each file to a piece.
pub fn libtorrent_create_hybrid(payload: &Path, out: &Path, piece_length: u32) {
    lt_create("hybrid", payload, out, piece_length);
}

/// Writes a v2-only torrent of `payload` made by libtorrent to `out`.
pub fn libtorrent_create_v2(payload: &Path, out: &Path, piece_length: u32) {
    lt_create("v2", payload, out, piece_length);
}

fn lt_create(kind: &str, payload: &Path, out: &Path, piece_length: u32) {
    run(Command::new("/usr/bin/python3")
        .arg(support_dir().join("lt_torrent.py"))
        .arg(kind)
        .arg(payload)
        .arg(out)
        .arg(piece_length.to_string()));
}

/// The info-hash (hex) and piece count Transmission reports for a `.torrent`.
pub fn transmission_info(torrent: &Path) -> (String, u64) {
    let text = run(Command::new("transmission-show").arg(torrent));
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(name))
            .unwrap_or_else(|| panic!("no `{name}` in transmission-show output:\n{text}"))
            .trim()
            .to_string()
    };
    let pieces = field("Piece Count:")
        .parse()
        .expect("piece count is a number");
    (field("Hash:"), pieces)
}

/// Deterministic pseudo-random bytes (xorshift), so payloads are incompressible but reproducible.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// Writes a multi-file payload under `root/name`: nested directories, odd sizes, a 0-byte file,
/// a file smaller than a block, and names with spaces and non-ASCII characters.
pub fn write_tree(root: &Path, name: &str) -> PathBuf {
    let base = root.join(name);
    let files: &[(&str, usize)] = &[
        ("a.bin", 100_003),
        ("empty.dat", 0),
        ("tiny.txt", 7),
        ("sub/b.bin", 77_777),
        ("sub/deeper/c d.bin", 40_000),
        ("sub/deeper/ünï.bin", 16_384),
        ("z/last.bin", 1),
    ];
    for (index, (path, len)) in files.iter().enumerate() {
        let path = base.join(path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("create dirs");
        std::fs::write(&path, pseudo_random(*len, index as u64 + 1)).expect("write payload");
    }
    base
}

/// A libtorrent seeder on loopback, stopped (by closing its stdin, then by PID) when dropped.
pub struct LibtorrentSeeder {
    child: Child,
    stdin: Option<ChildStdin>,
    /// The port it listens on.
    pub port: u16,
}

impl LibtorrentSeeder {
    /// Starts seeding `torrent` from the data under `save_path` and waits (at most 60 s) until
    /// libtorrent has checked it and reports that it is seeding.
    pub fn start(torrent: &Path, save_path: &Path) -> Self {
        let mut child = Command::new("/usr/bin/python3")
            .arg(support_dir().join("lt_seed.py"))
            .arg(torrent)
            .arg(save_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the libtorrent seeder");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("seeder stdout");
        let (lines, ready) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seeder = Self {
            child,
            stdin,
            port: 0,
        };
        let line = ready
            .recv_timeout(Duration::from_secs(60))
            .expect("libtorrent seeder never became ready");
        seeder.port = line
            .strip_prefix("READY ")
            .and_then(|port| port.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected seeder output {line:?}"));
        seeder
    }
}

impl Drop for LibtorrentSeeder {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Engine settings for loopback tests: listening on 127.0.0.1, any free port; logs go to the
/// test's output under `RUST_LOG`.
pub fn loopback_conf(dir: &Path) -> cratetorrent::Conf {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut conf = cratetorrent::Conf::new(dir);
    conf.listen_addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    // Engines of other tests on this host would hear each other's multicast announces.
    conf.lsd = false;
    conf.dht.enabled = false;
    // The tests of TCP connections stay on TCP; uTP's tests ask for it.
    conf.transport = cratetorrent::Transport::Tcp;
    conf
}

/// The parameters of a torrent added with `mode` and default settings.
pub fn params(
    metainfo: &cratetorrent_metainfo::Metainfo,
    mode: cratetorrent::Mode,
) -> cratetorrent::TorrentParams {
    cratetorrent::TorrentParams {
        source: metainfo.clone().into(),
        listen_addr: None,
        mode,
        conf: None,
    }
}

/// `payload.bin` of pseudo-random bytes in a temporary directory, with its `.torrent` beside it.
pub struct Payload {
    pub dir: tempfile::TempDir,
    /// The `.torrent` file.
    pub torrent: PathBuf,
    pub metainfo: cratetorrent_metainfo::Metainfo,
}

impl Payload {
    /// `size` bytes from `seed`, in pieces of `piece_length`.
    pub fn single_file(size: usize, piece_length: u32, seed: u64) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("payload.bin");
        std::fs::write(&path, pseudo_random(size, seed)).expect("write the payload");
        let bytes = cratetorrent_metainfo::TorrentBuilder::new(&path)
            .piece_length(piece_length)
            .build()
            .expect("make its torrent");
        let torrent = dir.path().join("payload.torrent");
        std::fs::write(&torrent, &bytes).expect("write the torrent");
        let metainfo = cratetorrent_metainfo::Metainfo::from_bytes(&bytes).expect("parse it back");
        Self {
            dir,
            torrent,
            metainfo,
        }
    }

    /// Whether `dir` holds an identical `payload.bin`.
    pub fn same_in(&self, dir: &Path) -> bool {
        let want = std::fs::read(self.dir.path().join("payload.bin")).expect("the source");
        std::fs::read(dir.join("payload.bin")).is_ok_and(|got| got == want)
    }
}

/// Waits (polling its stats) until torrent `id` seeds: its data is checked and it takes peers.
pub async fn wait_seeding(
    engine: &cratetorrent::EngineHandle,
    id: cratetorrent::TorrentId,
    timeout: std::time::Duration,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !engine
        .stats(id)
        .await
        .is_ok_and(|stats| stats.state == cratetorrent::TorrentState::Seeding)
    {
        assert!(tokio::time::Instant::now() < deadline, "the seed never ran");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Waits for torrent `id`'s `TorrentComplete` alert; a torrent error, the engine stopping or
/// `timeout` passing fails the test.
pub async fn wait_complete(
    alerts: &mut cratetorrent::Alerts,
    id: cratetorrent::TorrentId,
    timeout: std::time::Duration,
) {
    use futures::StreamExt;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, alerts.next()).await {
            Ok(Some(cratetorrent::Alert::TorrentComplete(done))) if done == id => return,
            Ok(Some(cratetorrent::Alert::TorrentError { error, .. })) => panic!("{error}"),
            Ok(Some(_)) => {}
            Ok(None) => panic!("engine stopped"),
            Err(_) => panic!("download did not complete within {timeout:?}"),
        }
    }
}
