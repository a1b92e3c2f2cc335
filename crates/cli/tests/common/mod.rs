//! Helpers shared by the CLI's integration tests.

#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long any one wait of a test may take.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The lines of `stream`, as they arrive.
pub(crate) fn lines(stream: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

pub(crate) fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cratetorrent"))
}

pub(crate) fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

/// Deterministic incompressible bytes.
pub(crate) fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend(state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A payload file `dir/name` and its torrent `dir/name.torrent`.
pub(crate) fn make_torrent(
    dir: &Path,
    name: &str,
    len: usize,
    piece_size: &str,
) -> (PathBuf, PathBuf) {
    let data = dir.join(name);
    std::fs::write(&data, pseudo_random(len, 3)).unwrap();
    let torrent = dir.join(format!("{name}.torrent"));
    let out = run(&[
        "create",
        data.to_str().unwrap(),
        "-o",
        torrent.to_str().unwrap(),
        "--piece-size",
        piece_size,
        "-q",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    (data, torrent)
}

/// A child process whose stdout and stderr lines arrive on channels.
pub(crate) struct Running {
    pub(crate) child: Child,
    pub(crate) stdout: mpsc::Receiver<String>,
    pub(crate) stderr: mpsc::Receiver<String>,
}

impl Running {
    pub(crate) fn start(args: &[&str]) -> Self {
        let mut child = bin()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// Waits for a line on `stream` that `want` accepts.
    pub(crate) fn wait_line(
        stream: &mpsc::Receiver<String>,
        want: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = stream
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no expected line: {e}"));
            if want(&line) {
                return line;
            }
        }
    }

    pub(crate) fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (bounded) for the exit code.
    pub(crate) fn wait(&mut self) -> Option<i32> {
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(std::time::Instant::now() < deadline, "process did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `seed` and waits until it has verified its data.
pub(crate) fn seed(torrent: &Path, data: &Path, extra: &[&str]) -> (Running, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut args = vec![
        "seed",
        torrent.to_str().unwrap(),
        data.to_str().unwrap(),
        "--listen",
        &addr,
    ];
    args.extend(extra);
    let seeder = Running::start(&args);
    Running::wait_line(&seeder.stderr, |l| l.contains("pieces verified on disk"));
    (seeder, addr)
}

pub(crate) fn json_field(line: &str, key: &str) -> u64 {
    let value: serde_json::Value = serde_json::from_str(line).unwrap();
    value[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {line}"))
}
