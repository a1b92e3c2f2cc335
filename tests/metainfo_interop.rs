//! Torrents written by mktorrent, transmission-create and libtorrent parse with exactly the
//! info-hash and file list libtorrent reports, and torrents we create load in libtorrent unchanged.

use std::path::Path;
use std::process::Command;

use cratetorrent_metainfo::{MetaVersion, Metainfo, TorrentBuilder};
use cratetorrent_tests::{
    LtTorrent, libtorrent_create, libtorrent_create_hybrid, libtorrent_create_v2, libtorrent_info,
    pseudo_random, run, transmission_info, write_tree,
};

const TRACKER: &str = "http://127.0.0.1:6969/announce";

fn parse(path: &Path) -> Metainfo {
    let bytes = std::fs::read(path).expect("read torrent");
    Metainfo::from_bytes(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn assert_same(ours: &Metainfo, reference: &LtTorrent) {
    assert_eq!(ours.info_hash().to_hex(), reference.info_hash, "info-hash");
    assert_eq!(ours.name(), reference.name);
    assert_eq!(u64::from(ours.piece_length()), reference.piece_length);
    assert_eq!(u64::from(ours.piece_count()), reference.num_pieces);
    assert_eq!(ours.total_length(), reference.total_size);
    let files: Vec<(String, u64, bool)> = ours
        .files()
        .iter()
        .map(|f| (f.components().join("/"), f.length(), f.is_padding()))
        .collect();
    assert_eq!(files, reference.files);
}

/// A single file of an odd size and a nested tree with a 0-byte file, in a fresh directory.
fn payloads(dir: &Path) -> Vec<std::path::PathBuf> {
    let single = dir.join("odd size.bin");
    std::fs::write(&single, pseudo_random(1_234_567, 42)).expect("write payload");
    vec![single, write_tree(dir, "tree")]
}

#[test]
#[ignore = "needs reference peers"]
fn mktorrent_torrents_match_libtorrent() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (index, payload) in payloads(dir.path()).iter().enumerate() {
        let torrent = dir.path().join(format!("mk{index}.torrent"));
        run(Command::new("mktorrent")
            .args(["-l", "15", "-a", TRACKER, "-c", "made by mktorrent", "-o"])
            .arg(&torrent)
            .arg(payload));
        let ours = parse(&torrent);
        assert_same(&ours, &libtorrent_info(&torrent));
        assert_eq!(ours.trackers(), vec![vec![TRACKER.to_string()]]);
        assert_eq!(ours.comment(), Some("made by mktorrent"));
    }
}

#[test]
#[ignore = "needs reference peers"]
fn transmission_create_torrents_match_libtorrent() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (index, payload) in payloads(dir.path()).iter().enumerate() {
        let torrent = dir.path().join(format!("tr{index}.torrent"));
        run(Command::new("transmission-create")
            .args(["-p", "-s", "32", "-t", TRACKER, "-o"])
            .arg(&torrent)
            .arg(payload));
        let ours = parse(&torrent);
        assert_same(&ours, &libtorrent_info(&torrent));
        assert!(ours.is_private());
    }
}

#[test]
#[ignore = "needs reference peers"]
fn libtorrent_torrents_match_libtorrent() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (index, payload) in payloads(dir.path()).iter().enumerate() {
        for piece_length in [16 * 1024, 64 * 1024] {
            let torrent = dir.path().join(format!("lt{index}-{piece_length}.torrent"));
            libtorrent_create(payload, &torrent, piece_length);
            assert_same(&parse(&torrent), &libtorrent_info(&torrent));
        }
    }
}

#[test]
#[ignore = "needs reference peers"]
fn our_torrents_load_in_libtorrent_and_transmission_with_our_info_hash() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (index, payload) in payloads(dir.path()).iter().enumerate() {
        let bytes = TorrentBuilder::new(payload)
            .piece_length(32 * 1024)
            .tracker(TRACKER)
            .tier(vec![
                "udp://127.0.0.1:1/a".into(),
                "udp://127.0.0.1:2/b".into(),
            ])
            .web_seed("http://127.0.0.1:8080/seed/")
            .comment("made by cratetorrent")
            .build()
            .expect("create torrent");
        let ours_path = dir.path().join(format!("ours{index}.torrent"));
        std::fs::write(&ours_path, &bytes).expect("write torrent");
        let ours = parse(&ours_path);
        assert_same(&ours, &libtorrent_info(&ours_path));
        let transmission = transmission_info(&ours_path);
        assert_eq!(
            transmission,
            (ours.info_hash().to_hex(), u64::from(ours.piece_count()))
        );

        // Same payload, same piece length, same (sorted) file order: mktorrent's piece hashes must
        // equal ours byte for byte, which proves our hashing across file boundaries.
        let reference = dir.path().join(format!("mk{index}.torrent"));
        run(Command::new("mktorrent")
            .args(["-l", "15", "-o"])
            .arg(&reference)
            .arg(payload));
        assert_eq!(ours.pieces_bytes(), parse(&reference).pieces_bytes());
    }
}

#[test]
#[ignore = "needs reference peers"]
fn our_v2_and_hybrid_torrents_are_libtorrents_byte_for_byte() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let payloads = payloads(dir.path());
    // An executable file carries the `x` attribute in both file lists.
    let script = payloads[1].join("tiny.txt");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for (index, payload) in payloads.iter().enumerate() {
        for piece_length in [16 * 1024, 64 * 1024] {
            for version in [MetaVersion::Hybrid, MetaVersion::V2] {
                let reference = dir
                    .path()
                    .join(format!("lt{index}-{piece_length}-{version:?}.torrent"));
                match version {
                    MetaVersion::V2 => libtorrent_create_v2(payload, &reference, piece_length),
                    _ => libtorrent_create_hybrid(payload, &reference, piece_length),
                }
                let bytes = TorrentBuilder::new(payload)
                    .meta_version(version)
                    .piece_length(piece_length)
                    .build()
                    .expect("create torrent");
                let ours_path = dir
                    .path()
                    .join(format!("ours{index}-{piece_length}-{version:?}.torrent"));
                std::fs::write(&ours_path, &bytes).expect("write torrent");
                let (ours, theirs) = (parse(&ours_path), parse(&reference));
                let case = format!("{} {piece_length} {version:?}", payload.display());
                assert_eq!(ours.info_bytes(), theirs.info_bytes(), "{case}");
                for file in 0..ours.files().len() {
                    assert_eq!(ours.piece_layer(file), theirs.piece_layer(file), "{case}");
                }
                let loaded = libtorrent_info(&ours_path);
                let v2 = ours.info_hashes().v2.map(|h| h.to_hex());
                assert_eq!(loaded.info_hash_v2, v2, "{case}");
            }
        }
    }
}
