//! A download killed with SIGKILL at random moments and restarted each time: every piece the
//! storage reported verified before a kill is had after the restart, no piece is ever had with
//! wrong data, and the final data is byte-identical.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use cratetorrent_storage::{Storage, StorageConfig, StorageEvent};
use cratetorrent_wire::Geometry;

mod common;
use common::{CHILD_BACKEND, Fixture, block_data, child_backend, fixture};

const CHILD_DIR: &str = "CT_CRASH_CHILD_DIR";
const TEST: &str = "killed_downloads_resume_with_exactly_their_verified_pieces";

fn torrent() -> Fixture {
    fixture(
        &[
            ("a", 3_000_000, false),
            ("b", 1, false),
            ("c", 2_000_000, false),
        ],
        32_768,
    )
}

fn config() -> StorageConfig {
    StorageConfig {
        backend: child_backend(),
        resume_interval: Duration::from_millis(20),
        ..StorageConfig::default()
    }
}

/// The child: writes every missing piece, printing each verified piece, until killed or done.
fn child(dir: &Path) {
    let fixture = torrent();
    let (storage, events) = Storage::open(&fixture.metainfo, dir, config(), || {}).unwrap();
    let mut out = std::io::stdout().lock();
    let geometry = Geometry::of(&fixture.metainfo);
    let missing: Vec<u32> = storage.have().iter_zeros().collect();
    let mut verified = 0;
    let mut report = |event: StorageEvent, verified: &mut usize| {
        if let StorageEvent::PieceVerified(piece) = event {
            writeln!(out, "VERIFIED {piece}").unwrap();
            *verified += 1;
        }
    };
    for (index, piece) in missing.iter().enumerate() {
        for block in geometry.blocks(*piece) {
            storage
                .write_block(*piece, block.offset, block_data(&fixture, block), 1)
                .unwrap();
        }
        // Pace the writes so that kills land in the middle of the download (hashing sixteen
        // pieces at once, the storage would otherwise finish before the parent reacts).
        if index % 2 == 1 {
            std::thread::sleep(Duration::from_millis(2));
        }
        while let Ok(event) = events.try_recv() {
            report(event, &mut verified);
        }
    }
    while verified < missing.len() {
        let event = events
            .recv_timeout(Duration::from_secs(30))
            .expect("storage event");
        report(event, &mut verified);
    }
    storage.shutdown().unwrap();
    println!("DONE");
}

#[test]
fn killed_downloads_resume_with_exactly_their_verified_pieces() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        child(Path::new(&dir));
        return;
    }
    for backend in ["io_uring", "portable"] {
        crash_and_resume(backend);
    }
}

fn crash_and_resume(backend: &str) {
    let fixture = torrent();
    let dir = tempfile::tempdir().unwrap();
    let piece_len = fixture.metainfo.piece_length() as usize;
    let mut verified_before: Vec<u32> = Vec::new();
    let logs = tempfile::tempdir().unwrap();
    let stderr_path = logs.path().join("child.stderr");
    for round in 0..7u32 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_BACKEND, backend)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        let (lines, receive) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        // Kill after a number of newly verified pieces that differs per round; the last round
        // runs to completion.
        let kill_after = if round == 6 {
            usize::MAX
        } else {
            3 + (round as usize * 7) % 17
        };
        let mut newly = 0;
        let mut done = false;
        let mut seen = Vec::new();
        loop {
            let Ok(line) = receive.recv_timeout(Duration::from_secs(60)) else {
                let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                let status = child.wait();
                panic!(
                    "round {round}: no output from the child ({status:?}) after {seen:?}; its stderr:\n{stderr}"
                );
            };
            seen.push(line.clone());
            // The test harness prints "test <name> ... " without a newline, so the child's first
            // line can follow it.
            if let Some((_, piece)) = line.split_once("VERIFIED ") {
                verified_before.push(piece.parse().unwrap());
                newly += 1;
                if newly >= kill_after {
                    break;
                }
            } else if line.ends_with("DONE") {
                done = true;
                break;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();

        let (storage, _) = Storage::open(&fixture.metainfo, dir.path(), config(), || {}).unwrap();
        let have = storage.have().clone();
        drop(storage);
        for &piece in &verified_before {
            assert!(
                have.get(piece),
                "round {round}: verified piece {piece} lost"
            );
        }
        let mut on_disk = std::fs::read(dir.path().join("t/a")).unwrap_or_default();
        on_disk.extend(std::fs::read(dir.path().join("t/b")).unwrap_or_default());
        on_disk.extend(std::fs::read(dir.path().join("t/c")).unwrap_or_default());
        for piece in have.iter_ones() {
            let start = piece as usize * piece_len;
            let end = (start + piece_len).min(fixture.payload.len());
            assert_eq!(
                on_disk.get(start..end),
                Some(&fixture.payload[start..end]),
                "round {round}: piece {piece} had with wrong data"
            );
        }
        if done {
            println!("{backend}: complete in round {round}");
            assert!(have.is_full());
            assert_eq!(on_disk, fixture.payload);
            return;
        }
    }
    panic!("the last round did not complete");
}
