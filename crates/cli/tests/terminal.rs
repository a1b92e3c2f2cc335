//! On a terminal: the progress line of a download is drawn within the terminal's 80 columns.
//! (That pipes get no escape codes is checked with every other CLI test's output.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
use rustix::termios::{Winsize, tcsetwinsize};
use unicode_width::UnicodeWidthStr;

mod common;
use common::{bin, make_torrent, seed};

/// A pseudo-terminal of `cols` columns: (master, slave).
fn terminal(cols: u16) -> (OwnedFd, File) {
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let slave = File::options()
        .read(true)
        .write(true)
        .open(name.to_str().unwrap())
        .unwrap();
    let size = Winsize {
        ws_row: 24,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    tcsetwinsize(&slave, size).unwrap();
    (master, slave)
}

/// What a terminal shows line by line: escape sequences removed, split where the cursor
/// returns or moves down.
fn screen_lines(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut plain = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters final-byte.
            if chars.peek() == Some(&'[') {
                chars.next();
                for next in chars.by_ref() {
                    if next.is_ascii_alphabetic() {
                        break;
                    }
                }
                plain.push('\n');
            }
            continue;
        }
        plain.push(c);
    }
    plain
        .split(['\r', '\n'])
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_progress_line_fits_an_80_column_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let (_, torrent) = make_torrent(
        dir.path(),
        "a-rather-long-payload-name.bin",
        3_000_000,
        "16K",
    );
    let (_seeder, addr) = seed(&torrent, dir.path(), &[]);
    let (master, slave) = terminal(80);
    let out = dir.path().join("out");
    let mut child = bin()
        .args([
            "download",
            torrent.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--peer",
            &addr,
            "--listen",
            "127.0.0.1:0",
            "--no-dht",
            "--no-lsd",
            "--download-limit",
            "1M",
        ])
        .stdin(Stdio::null())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave.try_clone().unwrap())
        .spawn()
        .unwrap();
    drop(slave);
    let reader = std::thread::spawn(move || {
        let mut file = File::from(master);
        let mut all = Vec::new();
        // Ends with EIO once the child (the last holder of the slave) exits.
        let _ = file.read_to_end(&mut all);
        all
    });
    let deadline = Instant::now() + common::TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the download did not finish");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    let lines = screen_lines(&reader.join().unwrap());
    let bars: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains(" [") && l.contains("MiB ↓"))
        .collect();
    assert!(!bars.is_empty(), "no progress line drawn: {lines:#?}");
    for bar in &bars {
        assert!(bar.width() <= 80, "{} columns: {bar}", bar.width());
        assert!(bar.starts_with("a-rather-long-payload-n…"), "{bar}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("a-rather-long-payload-name.bin: complete: ")),
        "{lines:#?}"
    );
}
