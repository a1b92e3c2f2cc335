//! The `cratetorrent` binary end to end: `create` and `info`, and clean errors.
//! (`download`, `seed`, `verify` and `demo` are in `transfer.rs`.)

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use cratetorrent_metainfo::Metainfo;

fn cratetorrent(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cratetorrent"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn create_then_info() {
    let dir = tempfile::tempdir().unwrap();
    let payload = dir.path().join("share");
    std::fs::create_dir_all(payload.join("sub")).unwrap();
    std::fs::write(payload.join("a.txt"), b"alpha").unwrap();
    std::fs::write(payload.join("sub/b.txt"), vec![9u8; 50_000]).unwrap();

    let args = [
        "create",
        "share",
        "-t",
        "http://127.0.0.1:1/announce",
        "--piece-size",
        "16K",
        "--no-date",
        "-q",
    ];
    let created = cratetorrent(&args, dir.path());
    assert!(created.status.success(), "{}", text(&created.stderr));
    let stdout = text(&created.stdout);
    let (hash, file) = stdout.trim().split_once("  ").unwrap();
    assert_eq!(file, "share.torrent");
    let torrent = Metainfo::from_bytes(&std::fs::read(dir.path().join(file)).unwrap()).unwrap();
    assert_eq!(torrent.info_hash().to_hex(), hash);
    assert_eq!(torrent.piece_length(), 16 * 1024);

    let info = cratetorrent(&["info", "share.torrent"], dir.path());
    assert!(info.status.success());
    let info = text(&info.stdout);
    assert!(info.contains(&format!("info-hash: {hash}")), "{info}");
    assert!(info.contains("share/sub/b.txt"), "{info}");
    assert!(info.contains("private:   no"), "{info}");
    assert!(
        info.contains("tier 0:    http://127.0.0.1:1/announce"),
        "{info}"
    );
    // The magnet link to share: hash, name and tracker, and it parses back.
    let line = info
        .lines()
        .find_map(|l| l.strip_prefix("magnet:    "))
        .unwrap_or_else(|| panic!("no magnet line: {info}"));
    let magnet = cratetorrent_metainfo::Magnet::parse(line).unwrap();
    assert_eq!(magnet.info_hash, Some(torrent.info_hash()));
    assert_eq!(magnet.display_name.as_deref(), Some("share"));
    assert_eq!(magnet.trackers, ["http://127.0.0.1:1/announce"]);
    let json = cratetorrent(&["info", "share.torrent", "--json"], dir.path());
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["magnet"].as_str(), Some(line));
    // Hybrid by default: both hashes, and the magnet link carries both.
    assert_eq!(
        (json["meta_version"].as_u64(), json["hybrid"].as_bool()),
        (Some(2), Some(true))
    );
    let v2 = json["info_hash_v2"].as_str().unwrap();
    assert_eq!(v2.len(), 64);
    assert!(line.contains(&format!("xt=urn:btmh:1220{v2}")), "{line}");

    // --v1 and --v2 make the one format each.
    for (flag, version) in [("--v1", 1), ("--v2", 2)] {
        let out = format!("{}.torrent", &flag[2..]);
        let args = ["create", "share", flag, "-o", &out, "-q"];
        let created = cratetorrent(&args, dir.path());
        assert!(created.status.success(), "{}", text(&created.stderr));
        let json = cratetorrent(&["info", &out, "--json"], dir.path());
        let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
        assert_eq!(json["meta_version"].as_u64(), Some(version), "{flag}");
        assert_eq!(json["hybrid"].as_bool(), Some(false), "{flag}");
        let hash = json["info_hash"].as_str().unwrap();
        match json["info_hash_v2"].as_str() {
            // A v2-only torrent is known by its v2 hash, truncated.
            Some(v2) => assert_eq!(hash, &v2[..40]),
            None => assert_eq!(version, 1),
        }
        // Each is verified by its own hashes (SHA-1 pieces, or merkle trees).
        let verified = cratetorrent(&["verify", &out, ".", "-q"], dir.path());
        assert!(
            verified.status.success(),
            "{flag}: {}",
            text(&verified.stderr)
        );
    }
    let both = cratetorrent(
        &["create", "share", "--v1", "--v2", "-o", "x.torrent"],
        dir.path(),
    );
    assert!(!both.status.success());
}

#[test]
fn info_on_a_magnet_link() {
    let dir = tempfile::tempdir().unwrap();
    let magnet =
        "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&dn=demo&x.pe=127.0.0.1:6881";
    let out = cratetorrent(&["info", magnet], dir.path());
    assert!(out.status.success());
    let out = text(&out.stdout);
    assert!(
        out.contains("info-hash: c12fe1c06bba254a9dc9f519b335aa7c1367a88a"),
        "{out}"
    );
    assert!(out.contains("peer:      127.0.0.1:6881"), "{out}");
}

#[test]
fn bad_input_gives_one_clean_error_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("evil.torrent"),
        b"d4:infod6:lengthi1e4:name2:..12:piece lengthi16384e6:pieces20:AAAAAAAAAAAAAAAAAAAAee",
    )
    .unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["info", "missing.torrent"],
            "cratetorrent: missing.torrent: No such file or directory",
        ),
        (
            &["info", "evil.torrent"],
            "cratetorrent: evil.torrent: unsafe path \"..\": `.` or `..` component",
        ),
        (
            &["info", "magnet:?dn=x"],
            "cratetorrent: magnet:?dn=x: no BitTorrent info-hash",
        ),
        (
            &["create", "nothing-here"],
            "cratetorrent: nothing-here: No such file or directory",
        ),
        (
            &["create", "evil.torrent", "-o", "evil.torrent"],
            "cratetorrent: evil.torrent exists: pass --force to replace it, or -o another file",
        ),
    ];
    for (args, expected) in cases {
        let out = cratetorrent(args, dir.path());
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.starts_with(expected), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

/// Text a torrent controls: an SGR escape, a C1 CSI and a right-to-left override.
const EVIL: &str = "\x1b[31m\u{9b}2J\u{202e}";
/// How the human output shows it.
const EVIL_ESCAPED: &str = "\\x1b[31m\\u{9b}2J\\u{202e}";

fn assert_no_raw_controls(out: &str) {
    for raw in ['\x1b', '\u{9b}', '\u{202e}'] {
        assert!(!out.contains(raw), "raw {raw:?} in {out:?}");
    }
}

#[test]
fn info_escapes_control_characters_from_the_torrent() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join(format!("name{EVIL}"));
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join(format!("file{EVIL}.txt")), b"data").unwrap();
    let bytes = cratetorrent_metainfo::TorrentBuilder::new(&root)
        .piece_length(16 * 1024)
        .tracker(format!("http://t.example/{EVIL}"))
        .web_seed(format!("http://w.example/{EVIL}"))
        .comment(format!("comment{EVIL}"))
        .created_by(Some(format!("creator{EVIL}")))
        .build()
        .unwrap();
    std::fs::write(dir.path().join("evil.torrent"), bytes).unwrap();

    let info = cratetorrent(&["info", "evil.torrent"], dir.path());
    assert!(info.status.success(), "{}", text(&info.stderr));
    let out = text(&info.stdout);
    assert_no_raw_controls(&out);
    for field in [
        "name",
        "file",
        "t.example/",
        "w.example/",
        "comment",
        "creator",
    ] {
        assert!(
            out.contains(&format!("{field}{EVIL_ESCAPED}")),
            "{field}: {out}"
        );
    }

    // JSON keeps the exact text, with every control character as a JSON escape.
    let json = cratetorrent(&["info", "--json", "evil.torrent"], dir.path());
    assert!(json.status.success(), "{}", text(&json.stderr));
    let out = text(&json.stdout);
    assert_no_raw_controls(&out);
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value["name"], format!("name{EVIL}"));
    assert_eq!(value["comment"], format!("comment{EVIL}"));

    let magnet = "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&dn=dn%1B%5B31m%C2%9B2J%E2%80%AE&tr=http%3A%2F%2Ft%2F%1B";
    let info = cratetorrent(&["info", magnet], dir.path());
    assert!(info.status.success(), "{}", text(&info.stderr));
    let out = text(&info.stdout);
    assert_no_raw_controls(&out);
    assert!(out.contains(&format!("dn{EVIL_ESCAPED}")), "{out}");
    assert!(out.contains("http://t/\\x1b"), "{out}");
}
