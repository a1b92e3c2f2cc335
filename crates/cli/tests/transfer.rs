//! The `cratetorrent` binary moving data on loopback: `seed` and `download` (with resume after
//! SIGINT), `verify`, `info --json`, `demo`, and their error paths.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::process::Command;

mod common;
use common::{Running, free_port, json_field, make_torrent, pseudo_random, run, seed, text};

#[test]
fn seed_then_download_then_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (data, torrent) = make_torrent(dir.path(), "movie.bin", 3_000_000, "64K");
    let (mut seeder, addr) = seed(&torrent, &data, &[]);
    let out_dir = dir.path().join("out");
    let download = run(&[
        "download",
        torrent.to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
        "--peer",
        &addr,
        "--listen",
        "127.0.0.1:0",
        "--download-limit",
        "100M",
    ]);
    assert_eq!(
        download.status.code(),
        Some(0),
        "{}",
        text(&download.stderr)
    );
    assert!(text(&download.stdout).contains("movie.bin: complete"));
    assert!(std::fs::read(out_dir.join("movie.bin")).unwrap() == std::fs::read(&data).unwrap());

    // SIGINT ends seeding cleanly, with exit code 0.
    seeder.interrupt();
    assert_eq!(seeder.wait(), Some(0));
    let summary = Running::wait_line(&seeder.stdout, |l| l.contains("stopped with"));
    assert!(summary.contains("46/46 pieces"), "{summary}");

    let verify = run(&[
        "verify",
        torrent.to_str().unwrap(),
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(verify.status.code(), Some(0));
    assert_eq!(text(&verify.stdout).trim(), "46/46 pieces ok");
    // One flipped byte fails exactly one piece.
    let copy = out_dir.join("movie.bin");
    let mut bytes = std::fs::read(&copy).unwrap();
    bytes[1_000_000] ^= 1;
    std::fs::write(&copy, bytes).unwrap();
    let verify = run(&["verify", torrent.to_str().unwrap(), copy.to_str().unwrap()]);
    assert_eq!(verify.status.code(), Some(1));
    assert_eq!(
        text(&verify.stdout).trim(),
        "45/46 pieces ok\n1 of 46 pieces bad: movie.bin"
    );
    // A short file, and then none, is named as such.
    std::fs::write(&copy, b"short").unwrap();
    let verify = run(&[
        "verify",
        torrent.to_str().unwrap(),
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(verify.status.code(), Some(1));
    assert!(
        text(&verify.stdout).contains("5 bytes instead of 3000000: movie.bin"),
        "{}",
        text(&verify.stdout)
    );
}

#[test]
fn an_interrupted_download_resumes_without_fetching_verified_pieces_again() {
    let dir = tempfile::tempdir().unwrap();
    let piece = 256 * 1024;
    let (data, torrent) = make_torrent(dir.path(), "big.bin", 96 * piece, "256K");
    // The seed is slowed down so that the download can be interrupted halfway.
    let (mut seeder, addr) = seed(&torrent, &data, &["--upload-limit", "4M"]);
    let out_dir = dir.path().join("out");
    let args = [
        "download",
        torrent.to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
        "--peer",
        &addr,
        "--listen",
        "127.0.0.1:0",
        "--json",
    ];
    let mut first = Running::start(&args);
    Running::wait_line(&first.stdout, |l| {
        l.contains(r#""event":"stats""#) && json_field(l, "pieces_had") >= 16
    });
    first.interrupt();
    assert_eq!(first.wait(), Some(130), "an unfinished download exits 130");
    let stopped = Running::wait_line(&first.stdout, |l| l.contains(r#""event":"stopped""#));
    let had = json_field(&stopped, "pieces_had");
    assert!((16..96).contains(&had), "{stopped}");

    let mut second = Running::start(&args);
    assert_eq!(second.wait(), Some(0));
    let complete = Running::wait_line(&second.stdout, |l| l.contains(r#""event":"complete""#));
    let downloaded = json_field(&complete, "downloaded");
    let missing = (96 - had) * piece as u64;
    assert!(
        downloaded <= missing,
        "fetched {downloaded} bytes again, but only {missing} were missing"
    );
    assert!(std::fs::read(out_dir.join("big.bin")).unwrap() == std::fs::read(&data).unwrap());
    seeder.interrupt();
    assert_eq!(seeder.wait(), Some(0));
}

#[test]
fn only_downloads_the_chosen_file() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    std::fs::write(tree.join("a.bin"), pseudo_random(500_000, 1)).unwrap();
    std::fs::write(tree.join("b.bin"), pseudo_random(500_000, 2)).unwrap();
    let torrent = dir.path().join("tree.torrent");
    let out = run(&[
        "create",
        tree.to_str().unwrap(),
        "-o",
        torrent.to_str().unwrap(),
        "--piece-size",
        "16K",
        // v1: no padding, so a piece straddles both files (what the part file is for).
        "--v1",
        "-q",
    ]);
    assert!(out.status.success());
    let (mut seeder, addr) = seed(&torrent, dir.path(), &[]);
    let out_dir = dir.path().join("out");
    let base = [
        "download",
        torrent.to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
        "--peer",
        &addr,
        "--listen",
        "127.0.0.1:0",
    ];
    let bad = run(&[&base[..], &["--only", "7"]].concat());
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("--only 7: the torrent has files 0 to 1"));
    let download = run(&[&base[..], &["--only", "1", "--sequential"]].concat());
    assert_eq!(
        download.status.code(),
        Some(0),
        "{}",
        text(&download.stderr)
    );
    assert!(
        std::fs::read(out_dir.join("tree/b.bin")).unwrap()
            == std::fs::read(tree.join("b.bin")).unwrap()
    );
    // The piece that straddles both files keeps a.bin's bytes in a part file: a.bin is not
    // on disk at all.
    assert!(!out_dir.join("tree/a.bin").exists());
    seeder.interrupt();
    assert_eq!(seeder.wait(), Some(0));
}

#[test]
fn errors_are_one_line_with_exit_code_1_and_usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (data, torrent) = make_torrent(dir.path(), "f.bin", 40_000, "16K");
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let t = torrent.to_str().unwrap();
    let out_dir = dir.path().join("out");
    let o = out_dir.to_str().unwrap();
    let new_torrent = dir.path().join("new.torrent");
    let new_torrent = new_torrent.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["download", t, "-o", o, "--listen", &busy_addr],
            "Address already in use",
        ),
        (
            vec!["download", "missing.torrent"],
            "missing.torrent: No such file",
        ),
        (vec!["download", data.to_str().unwrap()], "f.bin: "),
        (vec!["seed", t, "/nonexistent/place"], "No such file"),
        (
            vec!["seed", t, o],
            "is neither `f.bin` nor a directory holding it",
        ),
        (vec!["verify", t, "/nonexistent"], "No such file"),
        (vec!["create", "/nonexistent"], "No such file"),
        (
            vec![
                "create",
                data.to_str().unwrap(),
                "--piece-size",
                "1000",
                "-o",
                new_torrent,
            ],
            "invalid piece length 1000: use a power of two",
        ),
    ];
    std::fs::create_dir_all(&out_dir).unwrap();
    for (args, expected) in cases {
        let out = run(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.starts_with("cratetorrent: "), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    }
    for usage in [
        vec!["download", t, "--download-limit", "fast"],
        vec!["download", t, "--peer", "not-an-address"],
        vec!["demo", "--size", "1Q"],
        vec!["frobnicate"],
        vec!["download"],
    ] {
        let out = run(&usage);
        assert_eq!(out.status.code(), Some(2), "{usage:?}");
    }
    drop(busy);
}

#[test]
fn info_json_has_the_documented_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (_, torrent) = make_torrent(dir.path(), "k.bin", 70_000, "16K");
    let out = run(&["info", torrent.to_str().unwrap(), "--json"]);
    assert!(out.status.success());
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["info_hash"].as_str().unwrap().len(), 40);
    assert_eq!(value["name"], "k.bin");
    assert_eq!(value["total_length"], 70_000);
    assert_eq!(value["piece_length"], 16_384);
    assert_eq!(value["num_pieces"], 5);
    assert_eq!(value["private"], false);
    assert!(value["trackers"].as_array().unwrap().is_empty());
    assert_eq!(
        value["files"],
        serde_json::json!([{ "index": 0, "path": ["k.bin"], "length": 70_000 }])
    );
}

#[test]
fn demo_of_64_mib_completes_and_verifies() {
    let out = run(&["demo", "--size", "64M", "--files", "5", "--peers", "2"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("verified: every byte"), "{stdout}");
    assert!(stdout.contains("downloaded 64.0 MiB in"), "{stdout}");
    let json = run(&["demo", "--size", "8M", "--json"]);
    assert_eq!(json.status.code(), Some(0));
    let last = text(&json.stdout).lines().last().unwrap().to_owned();
    let value: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(value["verified"], true);
    assert_eq!(value["bytes"], 8 << 20);
}

#[test]
#[ignore = "needs reference peers"]
fn info_json_matches_libtorrents_view() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("album");
    std::fs::create_dir_all(tree.join("disc 2")).unwrap();
    std::fs::write(tree.join("01.flac"), pseudo_random(123_457, 1)).unwrap();
    std::fs::write(tree.join("disc 2/02 ünï.flac"), pseudo_random(70_001, 2)).unwrap();
    std::fs::write(tree.join("empty"), b"").unwrap();
    let torrent = dir.path().join("album.torrent");
    let out = run(&[
        "create",
        tree.to_str().unwrap(),
        "-o",
        torrent.to_str().unwrap(),
        "-t",
        "http://127.0.0.1:1/announce",
        "--private",
        "-q",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ours: serde_json::Value =
        serde_json::from_slice(&run(&["info", torrent.to_str().unwrap(), "--json"]).stdout)
            .unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/support/lt_torrent.py"
    );
    let lt = Command::new("/usr/bin/python3")
        .args([script, "info", torrent.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(lt.status.success(), "{}", text(&lt.stderr));
    let theirs: serde_json::Value = serde_json::from_slice(&lt.stdout).unwrap();
    assert_eq!(ours["info_hash"], theirs["info_hash"]);
    assert_eq!(ours["name"], theirs["name"]);
    assert_eq!(ours["piece_length"], theirs["piece_length"]);
    assert_eq!(ours["num_pieces"], theirs["num_pieces"]);
    assert_eq!(ours["total_length"], theirs["total_size"]);
    assert_eq!(ours["private"], theirs["private"]);
    assert_eq!(
        ours["trackers"],
        serde_json::json!([["http://127.0.0.1:1/announce"]])
    );
    let their_files: Vec<(String, u64)> = theirs["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["pad"] == false)
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["size"].as_u64().unwrap(),
            )
        })
        .collect();
    let our_files: Vec<(String, u64)> = ours["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let parts: Vec<&str> = f["path"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap())
                .collect();
            (parts.join("/"), f["length"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(our_files, their_files);
    assert_eq!(our_files.len(), 3);
}

#[test]
fn progress_output_escapes_the_torrent_name() {
    let dir = tempfile::tempdir().unwrap();
    let (data, torrent) = make_torrent(dir.path(), "evil\x1b[2J\u{202e}.bin", 100_000, "16K");
    let addr = format!("127.0.0.1:{}", free_port());
    let args = [
        "seed",
        torrent.to_str().unwrap(),
        data.to_str().unwrap(),
        "--listen",
        &addr,
    ];
    let mut seeder = Running::start(&args);
    let verified = Running::wait_line(&seeder.stderr, |l| l.contains("pieces verified on disk"));
    let escaped = "evil\\x1b[2J\\u{202e}.bin";
    assert!(
        verified.starts_with(&format!("{escaped}: ")),
        "{verified:?}"
    );
    seeder.interrupt();
    assert_eq!(seeder.wait(), Some(0));
    let summary = Running::wait_line(&seeder.stdout, |l| l.contains("stopped with"));
    assert!(
        summary.starts_with(&format!("{escaped}: stopped with")),
        "{summary:?}"
    );
}

#[test]
fn a_magnet_link_downloads_and_its_metadata_is_saved() {
    let dir = tempfile::tempdir().unwrap();
    let (data, torrent) = make_torrent(dir.path(), "clip.bin", 2_000_000, "16K");
    let info = run(&["info", torrent.to_str().unwrap(), "--json"]);
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let hash = info["info_hash"].as_str().unwrap().to_owned();
    let (_seeder, addr) = seed(&torrent, &data, &[]);
    let out_dir = dir.path().join("out");
    let saved = dir.path().join("saved.torrent");
    let magnet = format!("magnet:?xt=urn:btih:{hash}&dn=clip&x.pe={addr}");
    let download = run(&[
        "download",
        &magnet,
        "-o",
        out_dir.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--save-torrent",
        saved.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(
        download.status.code(),
        Some(0),
        "{}",
        text(&download.stderr)
    );
    let stdout = text(&download.stdout);
    let metadata = stdout
        .lines()
        .find(|l| l.contains(r#""event":"metadata""#))
        .unwrap_or_else(|| panic!("no metadata event in {stdout}"));
    assert_eq!(json_field(metadata, "total_length"), 2_000_000);
    assert_eq!(json_field(metadata, "num_pieces"), 123);
    assert!(metadata.contains(&hash) && metadata.contains(r#""name":"clip.bin""#));
    assert!(std::fs::read(out_dir.join("clip.bin")).unwrap() == std::fs::read(&data).unwrap());
    // The saved metadata is the same torrent: it verifies the download.
    let verify = run(&["verify", saved.to_str().unwrap(), out_dir.to_str().unwrap()]);
    assert_eq!(text(&verify.stdout).trim(), "123/123 pieces ok");
    // --only cannot be honoured before the file list is known.
    let only = run(&["download", &magnet, "--only", "0"]);
    assert_eq!(only.status.code(), Some(1));
    assert!(text(&only.stderr).contains("--save-torrent"));
}
