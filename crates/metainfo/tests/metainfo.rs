//! `.torrent` parsing details, piece-to-file mapping, and torrent creation.

// Test helpers outside #[test] functions may unwrap: a failure is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::type_complexity
)]

use std::sync::atomic::{AtomicU64, Ordering};

use cratetorrent_metainfo::bencode::{DictBuilder, Encode, Raw};
use cratetorrent_metainfo::{CreateError, InfoHash, Metainfo, TorrentBuilder};
use proptest::prelude::*;
use sha1::{Digest, Sha1};

fn wrap(info: &[u8], extra: &[(&str, &dyn Fn(&mut Vec<u8>))]) -> Vec<u8> {
    let mut torrent = DictBuilder::new();
    torrent.insert("info", Raw(info));
    for (key, write) in extra {
        let mut value = Vec::new();
        write(&mut value);
        torrent.insert(key, Raw(&value));
    }
    torrent.to_bencode()
}

#[test]
fn info_hash_covers_the_exact_raw_bytes() {
    // Unsorted keys and an unknown key: re-encoding would change the hash; we must not.
    let info = format!(
        "d4:name1:a6:lengthi5e12:piece lengthi16384e6:pieces20:{}7:x-extra3:fooe",
        "h".repeat(20)
    );
    let torrent = wrap(info.as_bytes(), &[]);
    let parsed = Metainfo::from_bytes(&torrent).unwrap();
    let expected: [u8; 20] = Sha1::digest(info.as_bytes()).into();
    assert_eq!(parsed.info_hash(), InfoHash::new(expected));
    assert_eq!(parsed.info_bytes().as_ref(), info.as_bytes());
    assert_eq!(parsed.pieces_bytes(), "h".repeat(20).as_bytes());
}

fn single_info(extra: &str) -> String {
    format!(
        "d6:lengthi40000e4:name5:a.bin12:piece lengthi16384e6:pieces60:{}{extra}e",
        "p".repeat(60)
    )
}

#[test]
fn top_level_fields() {
    let tiers = |out: &mut Vec<u8>| {
        vec![
            vec!["udp://a:1", "udp://b:2"],
            vec![],
            vec!["http://c/announce"],
        ]
        .encode(out)
    };
    let announce = |out: &mut Vec<u8>| "http://ignored/announce".encode(out);
    let url = |out: &mut Vec<u8>| "http://seed/file".encode(out);
    let date = |out: &mut Vec<u8>| 1_700_000_000i64.encode(out);
    let comment = |out: &mut Vec<u8>| b"caf\xe9".as_slice().encode(out);
    let comment_utf8 = |out: &mut Vec<u8>| "café".encode(out);
    let info = single_info("7:privatei1e6:source3:XYZ");
    let torrent = wrap(
        info.as_bytes(),
        &[
            ("announce", &announce),
            ("announce-list", &tiers),
            ("url-list", &url),
            ("creation date", &date),
            ("comment", &comment),
            ("comment.utf-8", &comment_utf8),
        ],
    );
    let parsed = Metainfo::from_bytes(&torrent).unwrap();
    assert_eq!(
        parsed.trackers(),
        vec![
            vec!["udp://a:1".to_string(), "udp://b:2".into()],
            vec!["http://c/announce".into()]
        ]
    );
    assert_eq!(parsed.announce(), Some("http://ignored/announce"));
    assert_eq!(parsed.url_list(), ["http://seed/file"]);
    assert_eq!(parsed.creation_date(), Some(1_700_000_000));
    assert_eq!(parsed.comment(), Some("café"));
    assert!(parsed.is_private());
    assert_eq!(parsed.source(), Some("XYZ"));
    assert!(parsed.is_single_file());
}

#[test]
fn announce_alone_is_one_tier_and_bad_tracker_entries_are_skipped() {
    let announce = |out: &mut Vec<u8>| "http://t/announce".encode(out);
    let bad_tiers = |out: &mut Vec<u8>| out.extend_from_slice(b"li1el1:xi2eee");
    let info = single_info("");
    let parsed = Metainfo::from_bytes(&wrap(info.as_bytes(), &[("announce", &announce)])).unwrap();
    assert_eq!(
        parsed.trackers(),
        vec![vec!["http://t/announce".to_string()]]
    );
    let parsed = Metainfo::from_bytes(&wrap(
        info.as_bytes(),
        &[("announce", &announce), ("announce-list", &bad_tiers)],
    ))
    .unwrap();
    assert_eq!(parsed.trackers(), vec![vec!["x".to_string()]]);
}

#[test]
fn geometry_of_the_last_piece() {
    let parsed = Metainfo::from_bytes(&wrap(single_info("").as_bytes(), &[])).unwrap();
    assert_eq!(parsed.piece_count(), 3);
    assert_eq!(parsed.piece_len(0), Some(16384));
    assert_eq!(parsed.piece_len(2), Some(40000 - 2 * 16384));
    assert_eq!(parsed.piece_len(3), None);
    assert_eq!(parsed.piece_hash(2), Some(&[b'p'; 20]));
    assert_eq!(parsed.piece_hash(3), None);
    assert_eq!(parsed.piece_slices(3).count(), 0);
}

#[test]
fn utf8_variants_are_preferred() {
    let info = [
        b"d5:filesld6:lengthi1e4:pathl2:\xff\xfee10:path.utf-8l4:goodeee".as_slice(),
        b"4:name3:old10:name.utf-83:new12:piece lengthi16384e6:pieces20:",
        &[b'p'; 20],
        b"e",
    ]
    .concat();
    let parsed = Metainfo::from_bytes(&wrap(&info, &[])).unwrap();
    assert_eq!(parsed.name(), "new");
    assert_eq!(parsed.files()[0].components(), ["new", "good"]);
}

proptest! {
    /// For any layout, each piece's slices are contiguous, lie inside their files and add up to the
    /// piece, and all pieces together cover every byte exactly once.
    #[test]
    fn piece_slices_tile_the_files(lengths in proptest::collection::vec(prop_oneof![Just(0u64), 1u64..70_000], 1..12)) {
        let total: u64 = lengths.iter().sum();
        prop_assume!(total > 0);
        let files: Vec<DictBuilder> = lengths.iter().enumerate().map(|(i, &len)| {
            let mut f = DictBuilder::new();
            f.insert("length", len as i64).insert("path", vec![format!("f{i}")]);
            f
        }).collect();
        let pieces = total.div_ceil(16384) as usize;
        let mut info = DictBuilder::new();
        info.insert("files", files).insert("name", "t").insert("piece length", 16384u32).insert("pieces", vec![0u8; pieces * 20].as_slice());
        let parsed = Metainfo::from_bytes(&wrap(&info.to_bencode(), &[])).unwrap();
        let mut per_file = vec![0u64; lengths.len()];
        for piece in 0..parsed.piece_count() {
            let mut sum = 0;
            for slice in parsed.piece_slices(piece) {
                let file = &parsed.files()[slice.file_index];
                prop_assert!(slice.len > 0 && slice.offset + slice.len <= file.length());
                prop_assert_eq!(slice.offset, per_file[slice.file_index]);
                per_file[slice.file_index] += slice.len;
                sum += slice.len;
            }
            prop_assert_eq!(sum, u64::from(parsed.piece_len(piece).unwrap()));
        }
        prop_assert_eq!(per_file, lengths);
    }
}

fn write(path: &std::path::Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn creation_lists_sorted_files_hashes_across_boundaries_and_is_thread_independent() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("payload");
    let contents: Vec<(&str, Vec<u8>)> = vec![
        (
            "b/inner.bin",
            (0..50_000u32).map(|i| (i % 251) as u8).collect(),
        ),
        ("a.bin", (0..30_001u32).map(|i| (i % 13) as u8).collect()),
        ("empty", Vec::new()),
        (".hidden", b"secret".to_vec()),
        ("b/.git/config", b"x".to_vec()),
    ];
    for (path, bytes) in &contents {
        write(&root.join(path), bytes);
    }
    std::os::unix::fs::symlink(&root, root.join("loop")).unwrap();

    let builder = TorrentBuilder::new(&root)
        .piece_length(16384)
        .creation_date(None)
        .threads(1);
    let one = builder.build().unwrap();
    let four = builder.clone().threads(4).build().unwrap();
    assert_eq!(one, four);

    let parsed = Metainfo::from_bytes(&one).unwrap();
    let names: Vec<String> = parsed
        .files()
        .iter()
        .map(|f| f.components().join("/"))
        .collect();
    assert_eq!(
        names,
        ["payload/a.bin", "payload/b/inner.bin", "payload/empty"]
    );
    let data: Vec<u8> = [contents[1].1.clone(), contents[0].1.clone()].concat();
    for (piece, chunk) in data.chunks(16384).enumerate() {
        let expected: [u8; 20] = Sha1::digest(chunk).into();
        assert_eq!(
            parsed.piece_hash(piece as u32),
            Some(&expected),
            "piece {piece}"
        );
    }
    assert_eq!(
        parsed.created_by(),
        Some(concat!("cratetorrent ", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(parsed.creation_date(), None);

    let hidden = TorrentBuilder::new(&root)
        .include_hidden(true)
        .build()
        .unwrap();
    assert_eq!(Metainfo::from_bytes(&hidden).unwrap().files().len(), 5);
}

#[test]
fn creation_reports_progress_and_options() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("one.bin");
    write(&file, &vec![7u8; 100_000]);
    let last = AtomicU64::new(0);
    let bytes = TorrentBuilder::new(&file)
        .tier(vec!["udp://a:1".into(), "udp://b:1".into()])
        .web_seed("http://w/")
        .private(true)
        .source("SRC")
        .comment("hi")
        .build_with_progress(&|p| {
            assert_eq!(p.total, 100_000);
            last.fetch_max(p.hashed, Ordering::Relaxed);
        })
        .unwrap();
    assert_eq!(last.load(Ordering::Relaxed), 100_000);
    let parsed = Metainfo::from_bytes(&bytes).unwrap();
    assert_eq!(parsed.piece_length(), 16384);
    assert_eq!(
        parsed.trackers(),
        vec![vec!["udp://a:1".to_string(), "udp://b:1".into()]]
    );
    assert_eq!(parsed.announce(), Some("udp://a:1"));
    assert_eq!(parsed.url_list(), ["http://w/"]);
    assert!(parsed.is_private());
    assert_eq!(parsed.source(), Some("SRC"));
    assert_eq!(parsed.comment(), Some("hi"));
}

#[test]
fn creation_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(matches!(
        TorrentBuilder::new(&empty).build(),
        Err(CreateError::Empty)
    ));
    assert!(matches!(
        TorrentBuilder::new(dir.path().join("missing")).build(),
        Err(CreateError::Io { .. })
    ));
    write(&empty.join("x"), b"x");
    assert!(matches!(
        TorrentBuilder::new(&empty).piece_length(1000).build(),
        Err(CreateError::InvalidPieceLength(1000))
    ));
    write(&empty.join("back\\slash"), b"x");
    assert!(matches!(
        TorrentBuilder::new(&empty).build(),
        Err(CreateError::InvalidName { .. })
    ));
}

#[test]
fn creation_skips_symlinks_unless_asked() {
    let (dir, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let root = dir.path().join("share");
    std::fs::create_dir(&root).unwrap();
    write(&root.join("a.txt"), b"public");
    write(&outside.path().join("id_rsa"), b"secret key");
    std::os::unix::fs::symlink(outside.path().join("id_rsa"), root.join("notes")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("linked-dir")).unwrap();
    let names = |bytes: &[u8]| -> Vec<Vec<String>> {
        Metainfo::from_bytes(bytes)
            .unwrap()
            .files()
            .iter()
            .map(|f| f.components()[1..].to_vec())
            .collect()
    };

    let default = TorrentBuilder::new(&root).build().unwrap();
    assert_eq!(names(&default), [vec!["a.txt".to_string()]]);
    assert_eq!(Metainfo::from_bytes(&default).unwrap().total_length(), 6);
}

#[test]
fn creation_follows_file_symlinks_when_asked() {
    let (dir, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let root = dir.path().join("share");
    std::fs::create_dir(&root).unwrap();
    write(&root.join("a.txt"), b"public");
    write(&outside.path().join("b.txt"), b"linked on purpose");
    std::os::unix::fs::symlink(outside.path().join("b.txt"), root.join("b.txt")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("linked-dir")).unwrap();
    let bytes = TorrentBuilder::new(&root)
        .follow_symlinks(true)
        .build()
        .unwrap();
    let parsed = Metainfo::from_bytes(&bytes).unwrap();
    let names: Vec<&str> = parsed
        .files()
        .iter()
        .map(|f| f.components()[1].as_str())
        .collect();
    // The file link is followed; the directory link is not (no loops).
    assert_eq!(names, ["a.txt", "b.txt"]);
    assert_eq!(parsed.total_length(), 6 + 17);
}

#[test]
fn an_info_dictionary_fetched_by_magnet_becomes_the_same_torrent() {
    let dir = tempfile::tempdir().unwrap();
    let payload = dir.path().join("tree");
    std::fs::create_dir(&payload).unwrap();
    std::fs::write(payload.join("a"), vec![1u8; 70_000]).unwrap();
    std::fs::write(payload.join("b"), vec![2u8; 5]).unwrap();
    let bytes = TorrentBuilder::new(&payload)
        .piece_length(16384)
        .build()
        .unwrap();
    let original = Metainfo::from_bytes(&bytes).unwrap();
    let trackers = vec![
        vec!["http://a/announce".to_string()],
        vec!["udp://b:80".to_string(), "udp://c:80".to_string()],
        vec![],
    ];
    let fetched = Metainfo::from_info(
        original.info_bytes(),
        trackers.clone(),
        vec!["http://w/".to_string()],
        &Default::default(),
    )
    .unwrap();
    assert_eq!(fetched.info_hash(), original.info_hash());
    assert_eq!(fetched.piece_count(), original.piece_count());
    assert_eq!(fetched.piece_hash(4), original.piece_hash(4));
    assert_eq!(fetched.files(), original.files());
    assert_eq!(fetched.trackers(), trackers[..2], "empty tiers dropped");
    // Saved as a .torrent, it parses back to the same torrent.
    let saved = Metainfo::from_bytes(&fetched.to_torrent_bytes()).unwrap();
    assert_eq!(saved.info_hash(), original.info_hash());
    assert_eq!(saved.trackers(), trackers[..2]);
    assert_eq!(saved.url_list(), ["http://w/"]);
    // Validated as strictly as a file: a bad dictionary is an error, not a torrent.
    for bad in [&b"de"[..], b"d4:name1:ae", b"li1ee", b"d4:name"] {
        assert!(Metainfo::from_info(bad, Vec::new(), Vec::new(), &Default::default()).is_err());
    }
}
