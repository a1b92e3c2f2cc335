//! BEP 19 web seeds against nginx on loopback: a web seed alone (one file from its own URL, a
//! multi-file hybrid with padding from a folder URL, a slow server), beside a libtorrent seed,
//! and servers that lack a file, hold files of the wrong length, or serve garbage. Every
//! download is compared byte for byte with its source.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cratetorrent::prelude::*;
use cratetorrent_metainfo::{MetaVersion, TorrentBuilder};
use cratetorrent_tests::nginx::Nginx;
use cratetorrent_tests::{LibtorrentSeeder, loopback_conf, pseudo_random, write_tree};
use futures::StreamExt;
use tempfile::TempDir;

const TIMEOUT: Duration = Duration::from_secs(60);

/// `root/name` (a file or a folder) described by a `.torrent` whose web seed is `url`.
fn torrent(root: &Path, name: &str, url: &str, version: MetaVersion, piece: u32) -> Metainfo {
    let bytes = TorrentBuilder::new(root.join(name))
        .meta_version(version)
        .piece_length(piece)
        .web_seed(url)
        .build()
        .unwrap();
    std::fs::write(root.join(format!("{name}.torrent")), &bytes).unwrap();
    Metainfo::from_bytes(&bytes).unwrap()
}

/// Web seeds asked again a second after a failure, not half a minute.
fn torrent_conf() -> TorrentConf {
    let mut conf = TorrentConf::default();
    conf.web_seed_retry = Duration::from_secs(1);
    conf
}

struct Download {
    engine: EngineHandle,
    alerts: Alerts,
    id: TorrentId,
    dir: TempDir,
}

fn start(metainfo: &Metainfo, conf: TorrentConf) -> Download {
    let dir = tempfile::tempdir().unwrap();
    let (engine, alerts) = engine::spawn(loopback_conf(dir.path())).unwrap();
    let id = engine
        .create_torrent(TorrentParams {
            source: metainfo.clone().into(),
            listen_addr: None,
            mode: Mode::Download { seeds: Vec::new() },
            conf: Some(conf),
        })
        .unwrap();
    Download {
        engine,
        alerts,
        id,
        dir,
    }
}

impl Download {
    /// Waits for completion; a torrent error fails the test. Returns the peers it banned.
    async fn complete(&mut self) -> Vec<SocketAddr> {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        let mut banned = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.alerts.next()).await {
                Ok(Some(Alert::TorrentComplete(id))) if id == self.id => return banned,
                Ok(Some(Alert::TorrentError { error, .. })) => panic!("{error}"),
                Ok(Some(Alert::PeerBanned { addr, .. })) => banned.push(addr),
                Ok(Some(_)) => {}
                Ok(None) => panic!("engine stopped"),
                Err(_) => panic!("download did not complete within {TIMEOUT:?}"),
            }
        }
    }

    /// Waits until `pieces` pieces are verified.
    async fn wait_pieces(&self, pieces: u32) {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let had = self.engine.stats(self.id).await.map_or(0, |s| s.pieces_had);
            if had >= pieces {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{had} pieces of the {pieces} the web seed holds"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for a `PeerBanned` alert.
    async fn wait_ban(&mut self) -> SocketAddr {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.alerts.next()).await {
                Ok(Some(Alert::PeerBanned { addr, .. })) => return addr,
                Ok(Some(Alert::TorrentError { error, .. })) => panic!("{error}"),
                Ok(Some(_)) => {}
                Ok(None) => panic!("engine stopped"),
                Err(_) => panic!("the web seed was never banned"),
            }
        }
    }

    /// Starts a libtorrent seed of `root/name` (its `.torrent` beside it) and adds it as a
    /// peer.
    fn add_libtorrent_seed(&self, root: &Path, name: &str) -> LibtorrentSeeder {
        let seed = LibtorrentSeeder::start(&root.join(format!("{name}.torrent")), root);
        let at = SocketAddr::from(([127, 0, 0, 1], seed.port));
        self.engine.add_peers(self.id, vec![at]).unwrap();
        seed
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn same_tree(a: &Path, b: &Path) {
    for entry in std::fs::read_dir(a).unwrap() {
        let entry = entry.unwrap();
        let other = b.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            same_tree(&entry.path(), &other);
        } else {
            assert!(
                std::fs::read(entry.path()).unwrap() == std::fs::read(&other).unwrap(),
                "{} differs",
                other.display()
            );
        }
    }
}

/// Bytes of file bodies nginx sent (the field after the status in its access log).
fn bytes_served(nginx: &Nginx) -> u64 {
    nginx
        .access_log()
        .lines()
        .filter_map(|line| {
            line.split("\" ")
                .nth(1)?
                .split(' ')
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn a_web_seed_alone_completes_a_multi_file_hybrid_from_a_folder_url() {
    let source = tempfile::tempdir().unwrap();
    write_tree(source.path(), "album");
    let nginx = Nginx::serve(source.path(), "");
    // Hybrid, so padding files sit between the files: they are zeros no server holds.
    let metainfo = torrent(
        source.path(),
        "album",
        &nginx.url(""),
        MetaVersion::Hybrid,
        16384,
    );
    assert!(metainfo.files().iter().any(|f| f.is_padding()));
    let mut download = start(&metainfo, torrent_conf());
    download.complete().await;
    same_tree(&source.path().join("album"), &download.path("album"));
    assert!(nginx.count(206) > 0, "{}", nginx.access_log());
    assert_eq!(nginx.count(404), 0, "{}", nginx.access_log());
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn a_web_seed_alone_completes_a_single_file_from_its_own_url() {
    let source = tempfile::tempdir().unwrap();
    let data = pseudo_random(3 * 1024 * 1024 + 123, 19);
    std::fs::write(source.path().join("disc.iso"), &data).unwrap();
    let nginx = Nginx::serve(source.path(), "");
    let url = nginx.url("disc.iso");
    let metainfo = torrent(source.path(), "disc.iso", &url, MetaVersion::V1, 256 * 1024);
    let mut download = start(&metainfo, torrent_conf());
    download.complete().await;
    assert!(std::fs::read(download.path("disc.iso")).unwrap() == data);
    assert!(nginx.count(206) > 0, "{}", nginx.access_log());
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn a_slow_web_seed_still_completes() {
    let source = tempfile::tempdir().unwrap();
    let data = pseudo_random(1024 * 1024, 23);
    std::fs::write(source.path().join("slow.bin"), &data).unwrap();
    // 150 KB/s: each request takes seconds, within the timeout between body parts.
    let nginx = Nginx::serve(source.path(), "limit_rate 150k;");
    let metainfo = torrent(
        source.path(),
        "slow.bin",
        &nginx.url("slow.bin"),
        MetaVersion::V1,
        64 * 1024,
    );
    let mut download = start(&metainfo, torrent_conf());
    download.complete().await;
    assert!(std::fs::read(download.path("slow.bin")).unwrap() == data);
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn a_web_seed_and_a_libtorrent_seed_share_the_download() {
    let source = tempfile::tempdir().unwrap();
    let data = pseudo_random(8 * 1024 * 1024, 29);
    std::fs::write(source.path().join("both.bin"), &data).unwrap();
    // Slower than libtorrent, so that both have a share.
    let nginx = Nginx::serve(source.path(), "limit_rate 2m;");
    let metainfo = torrent(
        source.path(),
        "both.bin",
        &nginx.url("both.bin"),
        MetaVersion::V1,
        256 * 1024,
    );
    let mut download = start(&metainfo, torrent_conf());
    let _seed = download.add_libtorrent_seed(source.path(), "both.bin");
    download.complete().await;
    assert!(std::fs::read(download.path("both.bin")).unwrap() == data);
    let served = bytes_served(&nginx);
    assert!(
        served > 0 && served < data.len() as u64,
        "the web seed sent {served} of {} bytes",
        data.len()
    );
}

/// The album served with the server's copy of its file `name` spoilt by `spoil`: the web
/// seed alone brings every piece of the other files (padding keeps each file's pieces its
/// own), then a libtorrent seed the rest. Returns the server, for its log.
async fn album_with_one_bad_file(name: &str, spoil: impl FnOnce(&Path)) -> Nginx {
    let source = tempfile::tempdir().unwrap();
    write_tree(source.path(), "album");
    let served = tempfile::tempdir().unwrap();
    copy_tree(&source.path().join("album"), &served.path().join("album"));
    spoil(&served.path().join("album").join(name));
    let nginx = Nginx::serve(served.path(), "");
    let piece = 16384;
    let metainfo = torrent(
        source.path(),
        "album",
        &nginx.url(""),
        MetaVersion::Hybrid,
        piece,
    );
    let mut download = start(&metainfo, torrent_conf());
    let bad = metainfo
        .files()
        .iter()
        .find(|f| f.path().ends_with(name))
        .unwrap();
    let its_pieces = bad.length().div_ceil(u64::from(piece)) as u32;
    download
        .wait_pieces(metainfo.piece_count() - its_pieces)
        .await;
    let _seed = download.add_libtorrent_seed(source.path(), "album");
    download.complete().await;
    same_tree(&source.path().join("album"), &download.path("album"));
    nginx
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn a_web_seed_lacking_a_file_serves_the_others_and_a_peer_the_rest() {
    let nginx =
        album_with_one_bad_file("sub/b.bin", |file| std::fs::remove_file(file).unwrap()).await;
    assert!(nginx.count(404) >= 1, "{}", nginx.access_log());
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn a_web_seed_with_a_file_of_the_wrong_length_serves_the_others() {
    let nginx = album_with_one_bad_file("a.bin", |file| {
        let bytes = std::fs::read(file).unwrap();
        std::fs::write(file, &bytes[..60_000]).unwrap();
    })
    .await;
    // Ranges past the server's end are refused (416), or answered with fewer bytes.
    assert!(
        nginx.count(416) + nginx.count(206) > 0,
        "{}",
        nginx.access_log()
    );
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn a_web_seed_serving_garbage_is_banned_and_a_peer_finishes() {
    let source = tempfile::tempdir().unwrap();
    let data = pseudo_random(1024 * 1024, 37);
    std::fs::write(source.path().join("junk.bin"), &data).unwrap();
    let served = tempfile::tempdir().unwrap();
    std::fs::write(
        served.path().join("junk.bin"),
        pseudo_random(data.len(), 38),
    )
    .unwrap();
    let nginx = Nginx::serve(served.path(), "");
    let metainfo = torrent(
        source.path(),
        "junk.bin",
        &nginx.url("junk.bin"),
        MetaVersion::V1,
        64 * 1024,
    );
    let mut download = start(&metainfo, torrent_conf());
    let banned = download.wait_ban().await;
    assert_eq!(banned.port(), nginx.port);
    let requests = nginx.count(206);
    let _seed = download.add_libtorrent_seed(source.path(), "junk.bin");
    download.complete().await;
    assert!(std::fs::read(download.path("junk.bin")).unwrap() == data);
    // The request under way at the ban may still be logged; none may start after it.
    assert!(
        nginx.count(206) <= requests + 1,
        "a banned web seed was asked again: {}",
        nginx.access_log()
    );
    let stats = download.engine.stats(download.id).await.unwrap();
    assert!(stats.hash_failures >= 1);
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
