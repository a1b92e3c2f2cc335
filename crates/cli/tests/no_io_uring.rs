//! The client where io_uring is refused (a seccomp filter installed before exec, as Docker's
//! default profile does): the engine falls back to epoll with one warning, and the demo swarm
//! and transfers with libtorrent both ways still complete.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

mod common;
use common::{free_port, lines, text};

const TIMEOUT: Duration = Duration::from_secs(120);

fn support(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/support")
        .join(file)
}

/// `cratetorrent ARGS` with io_uring refused.
fn sandboxed(args: &[&str]) -> Command {
    let mut command = Command::new("/usr/bin/python3");
    command
        .arg(support("no_io_uring.py"))
        .arg(env!("CARGO_BIN_EXE_cratetorrent"))
        .args(args);
    command
}

/// Output of a child, killed if it runs past `TIMEOUT`.
fn output_within(child: Child) -> Output {
    let (done, finished) = mpsc::channel();
    let id = child.id();
    std::thread::spawn(move || {
        if finished.recv_timeout(TIMEOUT).is_err() {
            let _ = Command::new("kill").arg(id.to_string()).status();
        }
    });
    let output = child.wait_with_output().unwrap();
    let _ = done.send(());
    output
}

/// Runs `command` (a demo with `--json`), checks that it verified its download, and returns
/// its stderr.
fn demo_verifies(mut command: Command) -> String {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = output_within(child);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("\"verified\":true"), "{stdout}");
    stderr
}

#[test]
#[ignore = "needs reference peers"]
fn the_demo_swarm_runs_on_epoll_where_io_uring_is_refused() {
    let stderr = demo_verifies(sandboxed(&["demo", "--size", "64M", "--json"]));
    // The filter took: each engine (the demo runs a seeder's and a downloader's) saw io_uring
    // refused and said so once.
    assert_eq!(
        stderr.matches("the network runs on epoll").count(),
        2,
        "{stderr}"
    );
    // Asked for io_uring alone, it says why it cannot run, in one line.
    let child = sandboxed(&["--io-backend", "io-uring", "demo", "--size", "16M", "-q"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = output_within(child);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot start the network runtime"),
        "{stderr}"
    );
}

/// A payload and its torrent in `dir`.
fn payload(dir: &Path) -> (PathBuf, PathBuf) {
    let data = dir.join("payload.bin");
    let mut state = 7u64;
    let bytes: Vec<u8> = (0..12 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect();
    std::fs::write(&data, bytes).unwrap();
    let torrent = dir.join("payload.torrent");
    let out = Command::new(env!("CARGO_BIN_EXE_cratetorrent"))
        .args([
            "create",
            data.to_str().unwrap(),
            "-o",
            torrent.to_str().unwrap(),
            "-q",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    (data, torrent)
}

/// A libtorrent helper script from `tests/support`, with its first stdout line (`READY
/// <port>`) read.
fn libtorrent(script: &str, args: &[&str]) -> (Child, mpsc::Receiver<String>, u16) {
    let mut child = Command::new("/usr/bin/python3")
        .arg(support(script))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines(child.stdout.take().unwrap());
    let ready = lines.recv_timeout(TIMEOUT).expect("libtorrent never ready");
    let port = ready
        .strip_prefix("READY ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("unexpected libtorrent output {ready:?}"));
    (child, lines, port)
}

fn stop(mut child: Child) {
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
#[ignore = "needs reference peers"]
fn libtorrent_and_we_trade_both_ways_where_io_uring_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (data, torrent) = payload(dir.path());
    let expected = std::fs::read(&data).unwrap();

    // libtorrent seeds, we download.
    let (seeder, _, port) = libtorrent(
        "lt_seed.py",
        &[torrent.to_str().unwrap(), dir.path().to_str().unwrap()],
    );
    let ours = dir.path().join("ours");
    let peer = format!("127.0.0.1:{port}");
    let listen = format!("127.0.0.1:{}", free_port());
    let child = sandboxed(&[
        "download",
        torrent.to_str().unwrap(),
        "-o",
        ours.to_str().unwrap(),
        "--peer",
        &peer,
        "--listen",
        &listen,
        "-q",
    ])
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let out = output_within(child);
    stop(seeder);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(std::fs::read(ours.join("payload.bin")).unwrap() == expected);

    // We seed, libtorrent downloads.
    let listen = format!("127.0.0.1:{}", free_port());
    let mut seeder = sandboxed(&[
        "seed",
        torrent.to_str().unwrap(),
        data.to_str().unwrap(),
        "--listen",
        &listen,
    ])
    .stdin(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = lines(seeder.stderr.take().unwrap());
    loop {
        let line = stderr
            .recv_timeout(TIMEOUT)
            .expect("our seeder never ready");
        if line.contains("pieces verified on disk") {
            break;
        }
    }
    let theirs = dir.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    let (leecher, done, _) = libtorrent(
        "lt_leech.py",
        &[torrent.to_str().unwrap(), theirs.to_str().unwrap(), &listen],
    );
    let finished = loop {
        match done.recv_timeout(TIMEOUT) {
            Ok(line) if line.trim() == "DONE" => break true,
            Ok(_) => {}
            Err(_) => break false,
        }
    };
    stop(leecher);
    let _ = seeder.kill();
    let _ = seeder.wait();
    assert!(finished, "libtorrent did not complete from our seed");
    assert!(std::fs::read(theirs.join("payload.bin")).unwrap() == expected);
}

#[test]
fn the_network_can_be_forced_onto_epoll() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cratetorrent"));
    command.args(["--io-backend", "epoll", "demo", "--size", "16M", "--json"]);
    let stderr = demo_verifies(command);
    assert!(
        !stderr.contains("io_uring unavailable"),
        "forced, not a fallback: {stderr}"
    );
}
