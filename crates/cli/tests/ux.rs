//! What a newcomer meets: several torrents in one process, seeding limits, `--on-complete`,
//! `--only` globs, the directory lock, stall notes, true messages for wrong first attempts,
//! `.torrent` URLs, completions and man pages, environment defaults, `verify --json`, a full
//! disk, and progress lines that fit a terminal and leave pipes free of escape codes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

mod common;
use common::{Running, bin, make_torrent, pseudo_random, run, seed, text};

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn several_torrents_download_in_one_process_and_seeders_stop_at_their_limits() {
    let dir = tempfile::tempdir().unwrap();
    let (a_data, a) = make_torrent(dir.path(), "a.bin", 700_000, "16K");
    let (b_data, b) = make_torrent(dir.path(), "b.bin", 500_000, "16K");
    // `a`'s seeder stops once it has uploaded the torrent once.
    let (mut a_seeder, a_addr) = seed(&a, dir.path(), &["--seed-ratio", "1"]);
    let (mut b_seeder, b_addr) = seed(&b, dir.path(), &[]);
    let out = dir.path().join("out");
    let hooks = dir.path().join("hooks.txt");
    let hook = format!(
        "echo \"$CRATETORRENT_NAME $CRATETORRENT_PATH\" >> {}",
        s(&hooks)
    );
    let download = run(&[
        "download",
        s(&a),
        s(&b),
        "-o",
        s(&out),
        "--peer",
        &a_addr,
        "--peer",
        &b_addr,
        "--listen",
        "127.0.0.1:0",
        "--no-dht",
        "--no-lsd",
        "--on-complete",
        &hook,
    ]);
    let stdout = text(&download.stdout);
    assert_eq!(
        download.status.code(),
        Some(0),
        "{}",
        text(&download.stderr)
    );
    // Not a terminal: no escape codes, colour or cursor movement.
    assert!(!stdout.contains('\x1b') && !text(&download.stderr).contains('\x1b'));
    assert_eq!(
        std::fs::read(out.join("a.bin")).unwrap(),
        std::fs::read(&a_data).unwrap()
    );
    assert_eq!(
        std::fs::read(out.join("b.bin")).unwrap(),
        std::fs::read(&b_data).unwrap()
    );
    for name in ["a.bin", "b.bin"] {
        let saved = format!("saved in {}", s(&out.join(name)));
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("{name}: complete: ")) && l.ends_with(&saved)),
            "{stdout}"
        );
    }
    let mut ran: Vec<String> = std::fs::read_to_string(&hooks)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    ran.sort();
    assert_eq!(
        ran,
        [
            format!("a.bin {}", s(&out.join("a.bin"))),
            format!("b.bin {}", s(&out.join("b.bin")))
        ]
    );
    // The ratio-limited seeder ends by itself, successfully; the other one seeds on.
    let seeded = Running::wait_line(&a_seeder.stdout, |l| l.contains("seeded to its limit"));
    assert!(seeded.contains("ratio 1."), "{seeded}");
    assert_eq!(a_seeder.wait(), Some(0));
    assert!(b_seeder.child.try_wait().unwrap().is_none());
    b_seeder.interrupt();
    assert_eq!(b_seeder.wait(), Some(0));
    // A time limit ends seeding with no peer at all.
    let timed = run(&[
        "seed",
        s(&b),
        s(dir.path()),
        "--seed-time",
        "1s",
        "--listen",
        "127.0.0.1:0",
        "--no-dht",
        "--no-lsd",
    ]);
    assert_eq!(timed.status.code(), Some(0), "{}", text(&timed.stderr));
    assert!(text(&timed.stdout).contains("b.bin: seeded to its limit: 0 B up, ratio 0.00"));
}

#[test]
fn only_selects_by_glob_and_info_lists_files_with_human_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("CD1")).unwrap();
    std::fs::write(tree.join("a.bin"), pseudo_random(300_000, 1)).unwrap();
    std::fs::write(tree.join("CD1/b.bin"), pseudo_random(2_200_000, 2)).unwrap();
    std::fs::write(tree.join("CD1/c.bin"), pseudo_random(100_000, 3)).unwrap();
    let torrent = dir.path().join("tree.torrent");
    let made = run(&[
        "create",
        s(&tree),
        "-o",
        s(&torrent),
        "--piece-size",
        "16K",
        // v1: file indices without the padding entries a hybrid puts between files.
        "--v1",
        "-q",
    ]);
    assert!(made.status.success());
    let files = text(&run(&["info", "--files", s(&torrent)]).stdout);
    assert_eq!(
        files
            .lines()
            .map(str::split_whitespace)
            .map(Iterator::collect::<Vec<_>>)
            .collect::<Vec<_>>(),
        [
            vec!["0", "2.1", "MiB", "tree/CD1/b.bin"],
            vec!["1", "97.7", "KiB", "tree/CD1/c.bin"],
            vec!["2", "293.0", "KiB", "tree/a.bin"],
        ],
        "{files}"
    );
    let (mut seeder, addr) = seed(&torrent, dir.path(), &[]);
    let out = dir.path().join("out");
    let base = [
        "download",
        s(&torrent),
        "-o",
        s(&out),
        "--peer",
        &addr,
        "--listen",
        "127.0.0.1:0",
        "--no-dht",
        "--no-lsd",
    ];
    let nothing = run(&[&base[..], &["--only", "CD2/*"]].concat());
    assert_eq!(nothing.status.code(), Some(1));
    assert!(
        text(&nothing.stderr)
            .contains("--only CD2/*: matches no file (see `cratetorrent info --files`)")
    );
    let download = run(&[&base[..], &["--only", "CD1/*"]].concat());
    assert_eq!(
        download.status.code(),
        Some(0),
        "{}",
        text(&download.stderr)
    );
    assert!(
        text(&download.stdout).contains(", 2 of 3 files; saved in"),
        "{}",
        text(&download.stdout)
    );
    assert!(
        !out.join("tree/a.bin").exists(),
        "an unselected file appeared"
    );
    for name in ["CD1/b.bin", "CD1/c.bin"] {
        assert_eq!(
            std::fs::read(out.join("tree").join(name)).unwrap(),
            std::fs::read(tree.join(name)).unwrap()
        );
    }
    seeder.interrupt();
    assert_eq!(seeder.wait(), Some(0));
}

#[test]
fn a_second_process_on_the_torrent_and_directory_is_refused_and_a_stall_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let (_, torrent) = make_torrent(dir.path(), "a.bin", 100_000, "16K");
    let out = dir.path().join("out");
    // Nothing listens on port 1: the download stalls.
    let args = [
        "download",
        s(&torrent),
        "-o",
        s(&out),
        "--peer",
        "127.0.0.1:1",
        "--listen",
        "127.0.0.1:0",
        "--no-dht",
        "--no-lsd",
    ];
    let mut first = Running::start(&args);
    Running::wait_line(&first.stderr, |l| l.starts_with("listening on"));
    let second = run(&args);
    assert_eq!(second.status.code(), Some(1));
    let refused = text(&second.stderr);
    assert_eq!(
        refused.trim_end(),
        format!(
            "cratetorrent: another cratetorrent (pid {}) is downloading this torrent into {}: stop it first, or pass another -o",
            first.child.id(),
            s(&out)
        )
    );
    let stall = Running::wait_line(&first.stderr, |l| l.contains("no peers after"));
    assert_eq!(
        stall,
        "a.bin: no peers after 5 s: --peer 127.0.0.1:1 did not accept a connection (refused, or no answer); retrying with growing pauses"
    );
    first.interrupt();
    assert_eq!(first.wait(), Some(130));
    // Without any source of peers, the note says so.
    let mut lonely = Running::start(&[
        "download",
        s(&torrent),
        "-o",
        s(&out),
        "--listen",
        "127.0.0.1:0",
        "--no-dht",
        "--no-lsd",
    ]);
    let stall = Running::wait_line(&lonely.stderr, |l| l.contains("no peers after"));
    assert!(
        stall.contains("the torrent names no tracker, no --peer was given and the DHT is off"),
        "{stall}"
    );
    lonely.interrupt();
    assert_eq!(lonely.wait(), Some(130));
}

/// Serves `body` to each of `requests` HTTP GETs on a loopback port.
fn serve(body: Vec<u8>, requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.unwrap();
            stream.set_read_timeout(Some(common::TIMEOUT)).unwrap();
            let mut request = Vec::new();
            let mut byte = [0u8];
            while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                request.push(byte[0]);
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    format!("http://{addr}/file.torrent")
}

#[test]
fn wrong_first_attempts_get_a_message_that_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let (_, torrent) = make_torrent(dir.path(), "a.bin", 50_000, "16K");
    let html = b"<!DOCTYPE html>\n<html><head><title>a.bin</title></head></html>".to_vec();
    let page = dir.path().join("page.torrent");
    std::fs::write(&page, &html).unwrap();
    let message = |args: &[&str]| {
        let out = run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        text(&out.stderr)
    };
    assert_eq!(
        message(&["info", s(&page)]),
        format!(
            "cratetorrent: {}: this is a web page saved under a .torrent name, not a torrent: download the file the page links to, or pass its link to cratetorrent (http and https links are fetched)\n",
            s(&page)
        )
    );
    assert_eq!(
        message(&["info", s(dir.path())]),
        format!(
            "cratetorrent: {0} is a directory: give a .torrent file (to make one of this directory: cratetorrent create {0})\n",
            s(dir.path())
        )
    );
    let file = dir.path().join("a.bin");
    assert_eq!(
        message(&[
            "download",
            s(&torrent),
            "-o",
            s(&file),
            "--no-dht",
            "--no-lsd"
        ]),
        format!(
            "cratetorrent: -o {} is a file: give the directory to download into\n",
            s(&file)
        )
    );
    // The same file given by environment instead of -o.
    let out = bin()
        .args(["download", s(&torrent), "--no-dht"])
        .env("CRATETORRENT_OUTPUT", &file)
        .output()
        .unwrap();
    assert!(
        text(&out.stderr).contains("is a file: give the directory"),
        "{}",
        text(&out.stderr)
    );
    // A URL is fetched; a URL that serves a page says so.
    let url = serve(std::fs::read(&torrent).unwrap(), 1);
    let info = run(&["info", &url, "--json"]);
    assert!(info.status.success(), "{}", text(&info.stderr));
    assert!(text(&info.stdout).contains(r#""name":"a.bin""#));
    let url = serve(html, 1);
    assert!(message(&["info", &url]).contains("the server sent a web page, not a torrent"));
}

#[test]
fn completions_man_pages_and_verify_json() {
    let dir = tempfile::tempdir().unwrap();
    let bash = text(&run(&["completions", "bash"]).stdout);
    assert!(
        bash.contains("_cratetorrent()") && bash.contains("--seed-ratio"),
        "{bash}"
    );
    let man = text(&run(&["man"]).stdout);
    assert!(
        man.starts_with(".ie") || man.contains(".TH cratetorrent"),
        "{man}"
    );
    let pages = dir.path().join("man");
    std::fs::create_dir(&pages).unwrap();
    assert!(run(&["man", s(&pages)]).status.success());
    let download = std::fs::read_to_string(pages.join("cratetorrent-download.1")).unwrap();
    assert!(download.contains("seed\\-ratio"), "{download}");

    let (data, torrent) = make_torrent(dir.path(), "a.bin", 100_000, "16K");
    // A reader that goes away (`| head -1`) ends the output quietly.
    for args in [
        &["info", s(&torrent)][..],
        &["man"],
        &["completions", "zsh"],
    ] {
        let mut child = bin()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stderr.is_empty(), "{args:?}: {}", text(&out.stderr));
    }
    let ok = run(&["verify", s(&torrent), s(&data), "--json"]);
    assert_eq!(ok.status.code(), Some(0));
    assert_eq!(
        text(&ok.stdout),
        "{\"complete\":true,\"files\":[],\"piece_count\":7,\"pieces_ok\":7}\n"
    );
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[20_000] ^= 1;
    std::fs::write(&data, bytes).unwrap();
    let bad = run(&["verify", s(&torrent), s(&data), "--json"]);
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(
        text(&bad.stdout),
        "{\"complete\":false,\"files\":[{\"path\":\"a.bin\",\"problem\":\"1 of 7 pieces bad\"}],\"piece_count\":7,\"pieces_ok\":6}\n"
    );
}

/// A tmpfs of `size` bytes at `path`, unmounted when dropped (None where mounting is refused).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: u64) -> Option<Self> {
        std::fs::create_dir_all(path).unwrap();
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                s(path),
            ])
            .status()
            .is_ok_and(|status| status.success());
        if !mounted {
            eprintln!("cannot mount a tmpfs here (needs root): full-disk CLI test not run");
        }
        mounted.then(|| Self(path.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_reported_with_its_cause_and_figures() {
    let dir = tempfile::tempdir().unwrap();
    let (_, torrent) = make_torrent(dir.path(), "a.bin", 3_000_000, "16K");
    let Some(small) = Tmpfs::mount(&dir.path().join("small"), 1 << 20) else {
        return;
    };
    let refused = run(&[
        "download",
        s(&torrent),
        "-o",
        s(&small.0),
        "--no-dht",
        "--no-lsd",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(refused.status.code(), Some(1));
    let message = text(&refused.stderr);
    assert!(
        message.starts_with(&format!(
            "cratetorrent: not enough space in {}: a.bin needs 2.9 MiB more, ",
            s(&small.0)
        )),
        "{message}"
    );
    // Space that runs out during the download: the write failure is the first thing said.
    let Some(filling) = Tmpfs::mount(&dir.path().join("filling"), 4 << 20) else {
        return;
    };
    let (mut seeder, addr) = seed(&torrent, dir.path(), &[]);
    let mut download = Running::start(&[
        "download",
        s(&torrent),
        "-o",
        s(&filling.0),
        "--peer",
        &addr,
        "--listen",
        "127.0.0.1:0",
        "--no-dht",
        "--no-lsd",
        "--download-limit",
        "400K",
        "--json",
    ]);
    Running::wait_line(&download.stdout, |l| {
        l.contains(r#""event":"stats""#) && common::json_field(l, "downloaded") > 0
    });
    let ballast = std::fs::write(filling.0.join("ballast"), vec![0u8; 4 << 20]);
    assert!(ballast.is_err(), "the tmpfs did not fill");
    let first = Running::wait_line(&download.stderr, |l| l.starts_with("cratetorrent:"));
    assert!(
        first.starts_with("cratetorrent: a.bin: writing: ")
            && first.contains("no space left on device; ")
            && first.contains(" still to download, ")
            && first.contains(" free in "),
        "{first}"
    );
    assert_eq!(download.wait(), Some(1));
    seeder.interrupt();
    assert_eq!(seeder.wait(), Some(0));
}

#[test]
fn files_larger_than_the_torrent_says_fail_verify_and_a_download_cuts_them() {
    let dir = tempfile::tempdir().unwrap();
    let (data, torrent) = make_torrent(dir.path(), "a.bin", 100_000, "16K");
    let mut longer = std::fs::read(&data).unwrap();
    longer.extend([7u8; 5000]);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("a.bin"), &longer).unwrap();
    let verify = run(&["verify", s(&torrent), s(&out)]);
    assert_eq!(verify.status.code(), Some(1));
    assert_eq!(
        text(&verify.stdout),
        "7/7 pieces ok\n105000 bytes instead of 100000: a.bin\n"
    );
    let download = run(&[
        "download",
        s(&torrent),
        "-o",
        s(&out),
        "--listen",
        "127.0.0.1:0",
        "--no-dht",
        "--no-lsd",
    ]);
    assert_eq!(
        download.status.code(),
        Some(0),
        "{}",
        text(&download.stderr)
    );
    assert!(
        text(&download.stderr).contains(&format!(
            "{}: 105000 bytes where the torrent says 100000: cut to size",
            s(&out.join("a.bin"))
        )),
        "{}",
        text(&download.stderr)
    );
    assert_eq!(
        std::fs::read(out.join("a.bin")).unwrap(),
        std::fs::read(&data).unwrap()
    );
    assert_eq!(
        run(&["verify", s(&torrent), s(&out)]).status.code(),
        Some(0)
    );
}

#[test]
fn create_says_what_it_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join(".git")).unwrap();
    std::fs::write(tree.join(".git/HEAD"), b"ref").unwrap();
    std::fs::write(tree.join(".env"), b"secret").unwrap();
    std::fs::write(tree.join("a.txt"), b"payload").unwrap();
    std::os::unix::fs::symlink(tree.join("a.txt"), tree.join("link")).unwrap();
    let torrent = dir.path().join("tree.torrent");
    let out = run(&["create", s(&tree), "-o", s(&torrent)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stderr);
    assert!(said.contains("left out 2 hidden file(s) or folder(s) (names starting with '.'; --include-hidden adds them)"), "{said}");
    assert!(said.contains("left out 1 symbolic link(s)"), "{said}");
    let quiet = run(&[
        "create",
        s(&tree),
        "-o",
        s(&torrent),
        "--force",
        "--include-hidden",
        "--follow-symlinks",
    ]);
    assert!(
        !text(&quiet.stderr).contains("left out"),
        "{}",
        text(&quiet.stderr)
    );
}
