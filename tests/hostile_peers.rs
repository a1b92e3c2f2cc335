//! Hostile peers against a downloading engine, while it downloads from an honest libtorrent
//! seed: each attack must end with the attacker dropped (or banned) for a logged reason, the
//! engine's own counters must stay within their bounds throughout, and the download must
//! complete byte for byte.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use cratetorrent::prelude::*;
use cratetorrent::{EngineCounters, RateLimits};
use cratetorrent_metainfo::{InfoHash, TorrentBuilder};
use cratetorrent_tests::{LibtorrentSeeder, pseudo_random};
use cratetorrent_wire::{
    BlockInfo, Decoder, Extension, Extensions, HANDSHAKE_LEN, Handshake, Message, PeerId,
};

const PIECE: u32 = 64 * 1024;
/// 257 pieces: the bitfield's last byte has seven spare bits.
const SIZE: usize = (16 << 20) + 20_000;
const TIMEOUT: Duration = Duration::from_secs(120);
/// The engine's incoming handshake deadline, plus slack for a loaded machine.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(15);

/// Captures the engine's log, to check the reason each attacker was dropped for.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    /// The process-wide log capture (tests in this file share it).
    fn install() -> Self {
        static LOG: std::sync::OnceLock<Log> = std::sync::OnceLock::new();
        LOG.get_or_init(|| {
            let log = Self::default();
            let writer = log.clone();
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("cratetorrent=debug"))
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .init();
            log
        })
        .clone()
    }

    fn count(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .matches(needle)
            .count()
    }
}

/// One attacking connection to the engine, on blocking std sockets with timeouts.
struct Attacker {
    stream: TcpStream,
}

impl Attacker {
    /// Connects and completes the handshake (reading the engine's), announcing `extensions`.
    fn handshaken(addr: SocketAddr, info_hash: InfoHash, extensions: Extensions) -> Self {
        let mut attacker = Self::raw(addr);
        let mut out = BytesMut::new();
        Handshake {
            extensions,
            info_hash,
            peer_id: PeerId::generate(),
        }
        .encode(&mut out);
        attacker.stream.write_all(&out).unwrap();
        let mut theirs = [0u8; HANDSHAKE_LEN];
        attacker.stream.read_exact(&mut theirs).unwrap();
        attacker
    }

    fn raw(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        Self { stream }
    }

    fn send(&mut self, bytes: &[u8]) {
        // The engine may already have hung up: that is the expected outcome, not a failure.
        let _ = self.stream.write_all(bytes);
    }

    fn send_message(&mut self, message: &Message) {
        let mut out = BytesMut::new();
        message.encode(&mut out);
        self.send(&out);
    }

    /// Whether the engine closes the connection within `timeout` (whatever it sends first is
    /// read and discarded).
    fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut sink = [0u8; 64 * 1024];
        while Instant::now() < deadline {
            match self.stream.read(&mut sink) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return true,
            }
        }
        false
    }
}

fn message(id: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + payload.len());
    out.extend_from_slice(&(payload.len() as u32 + 1).to_be_bytes());
    out.push(id);
    out.extend_from_slice(payload);
    out
}

fn extended_handshake(payload: &[u8]) -> Vec<u8> {
    let mut body = vec![0u8];
    body.extend_from_slice(payload);
    message(20, &body)
}

/// Every single-message attack, the reason the engine must log, and the bytes it sends after
/// the handshake.
fn protocol_attacks(pieces: u32) -> Vec<(&'static str, &'static str, Extensions, Vec<u8>)> {
    let bep10 = Extensions::NONE.with(Extension::ExtensionProtocol);
    let bitfield_len = pieces.div_ceil(8) as usize;
    let spare_bits = vec![0xffu8; bitfield_len];
    let deep = format!("d1:m{}{}e", "l".repeat(100_000), "e".repeat(100_000));
    let request = |piece: u32, offset: u32, len: u32| {
        let mut body = BytesMut::new();
        body.put_u32(piece);
        body.put_u32(offset);
        body.put_u32(len);
        message(6, &body)
    };
    vec![
        (
            "a 4 GiB message",
            "protocol violation",
            Extensions::NONE,
            b"\xff\xff\xff\xf0\x07".to_vec(),
        ),
        (
            "a bitfield with spare bits set",
            "malformed bitfield",
            Extensions::NONE,
            message(5, &spare_bits),
        ),
        (
            "a bitfield of the wrong length",
            "malformed bitfield",
            Extensions::NONE,
            message(5, &vec![0xff; bitfield_len / 2]),
        ),
        (
            "have for a piece past the end",
            "have for a piece past the end",
            Extensions::NONE,
            message(4, &(pieces + 5).to_be_bytes()),
        ),
        (
            "a request past the end",
            "invalid request",
            Extensions::NONE,
            request(pieces + 1, 0, 16_384),
        ),
        (
            "an oversized request",
            "invalid request",
            Extensions::NONE,
            request(0, 0, 64 * 1024),
        ),
        (
            "an extended handshake nested 100,000 deep",
            "malformed extended handshake",
            bep10,
            extended_handshake(deep.as_bytes()),
        ),
        (
            "an extended handshake with a huge string length",
            "malformed extended handshake",
            bep10,
            extended_handshake(b"d1:v99999999999:xe"),
        ),
        (
            "an extended message without BEP 10",
            "extended message without BEP 10",
            Extensions::NONE,
            extended_handshake(b"de"),
        ),
    ]
}

/// Polls the engine's counters until stopped; returns the largest value of each seen.
async fn watch(engine: EngineHandle, stop: Arc<Mutex<bool>>) -> EngineCounters {
    let mut max = EngineCounters::default();
    while !*stop.lock().unwrap() {
        if let Ok(now) = engine.counters().await {
            max.connections = max.connections.max(now.connections);
            max.handshaking = max.handshaking.max(now.handshaking);
            max.disk_buffered = max.disk_buffered.max(now.disk_buffered);
            max.send_buffered = max.send_buffered.max(now.send_buffered);
            max.requests_queued = max.requests_queued.max(now.requests_queued);
            max.reads_in_flight = max.reads_in_flight.max(now.reads_in_flight);
            max.banned = max.banned.max(now.banned);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    max
}

/// A peer that claims every piece and answers every request with garbage.
fn serve_garbage(addr: SocketAddr, info_hash: InfoHash, pieces: u32) -> bool {
    let mut attacker = Attacker::handshaken(addr, info_hash, Extensions::NONE);
    attacker.send(&message(
        5,
        cratetorrent_wire::Bitfield::full(pieces).as_bytes(),
    ));
    attacker.send_message(&Message::Unchoke);
    let decoder = Decoder::default();
    let mut buf = BytesMut::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match attacker.stream.read(&mut chunk) {
            Ok(0) => return true,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return true,
        }
        while let Ok(Some(message)) = decoder.decode(&mut buf) {
            if let Message::Request(BlockInfo { piece, offset, len }) = message {
                let garbage = Bytes::from(vec![0xa5; len as usize]);
                attacker.send_message(&Message::Piece(cratetorrent_wire::Block {
                    piece,
                    offset,
                    data: garbage,
                }));
            }
        }
    }
    false
}

/// A peer that claims every piece, never answers a request, cycles choke/unchoke (each cycle
/// used to earn it an allowance of unrequested blocks) and sprays a junk last block into every
/// piece, hoping to land in pieces the honest seed is sending: before, those pieces failed with
/// blame spread over both, and the download never finished. Returns whether it was dropped.
fn spray_junk(addr: SocketAddr, info_hash: InfoHash, pieces: u32, size: usize) -> bool {
    let mut attacker = Attacker::handshaken(addr, info_hash, Extensions::NONE);
    attacker
        .stream
        .set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    attacker.send(&message(
        5,
        cratetorrent_wire::Bitfield::full(pieces).as_bytes(),
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut sink = vec![0u8; 64 * 1024];
    let mut piece = 0;
    while Instant::now() < deadline {
        attacker.send_message(&Message::Unchoke);
        for _ in 0..2 {
            let start = piece * PIECE;
            let len = (size - start as usize).min(PIECE as usize) as u32;
            let last = (len - 1) / 16_384 * 16_384;
            attacker.send_message(&Message::Piece(cratetorrent_wire::Block {
                piece,
                offset: last,
                data: Bytes::from(vec![0xe5; (len - last) as usize]),
            }));
            piece = (piece + 1) % pieces;
        }
        attacker.send_message(&Message::Choke);
        match attacker.stream.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn hostile_peers_are_dropped_while_an_honest_download_completes() {
    let _serial = SERIAL.lock().await;
    let log = Log::install();
    let source = tempfile::tempdir().unwrap();
    let path = source.path().join("payload.bin");
    let payload = pseudo_random(SIZE, 23);
    std::fs::write(&path, &payload).unwrap();
    let bytes = TorrentBuilder::new(&path)
        .piece_length(PIECE)
        .build()
        .unwrap();
    let torrent = source.path().join("payload.torrent");
    std::fs::write(&torrent, &bytes).unwrap();
    let metainfo = Metainfo::from_bytes(&bytes).unwrap();
    let (info_hash, pieces) = (metainfo.info_hash(), metainfo.piece_count());
    let seeder = LibtorrentSeeder::start(&torrent, source.path());

    let dir = tempfile::tempdir().unwrap();
    let mut conf = Conf::new(dir.path());
    conf.listen_addr = "127.0.0.1:0".parse().unwrap();
    // Slow enough that every attack happens while the honest download runs.
    conf.download_rate_limit = 512 * 1024;
    let (engine, mut alerts) = engine::spawn(conf).unwrap();
    let id = engine
        .create_torrent(TorrentParams {
            metainfo: metainfo.clone(),
            listen_addr: None,
            mode: Mode::Download {
                seeds: vec![SocketAddr::from(([127, 0, 0, 1], seeder.port))],
            },
            conf: None,
        })
        .unwrap();
    loop {
        match tokio::time::timeout(TIMEOUT, alerts.next()).await {
            Ok(Some(Alert::TorrentStarted { id: started, .. })) if started == id => break,
            Ok(Some(_)) => {}
            other => panic!("torrent never started: {other:?}"),
        }
    }
    let addr = engine.listen_addr();
    let stop = Arc::new(Mutex::new(false));
    let watcher = tokio::spawn(watch(engine.clone(), stop.clone()));

    let attacks = tokio::task::spawn_blocking(move || {
        for (what, _, extensions, bytes) in protocol_attacks(pieces) {
            let mut attacker = Attacker::handshaken(addr, info_hash, extensions);
            attacker.send(&bytes);
            assert!(
                attacker.closed_within(Duration::from_secs(10)),
                "{what}: still connected"
            );
        }
        // 10,000 requests at once (we choke it: a flood past its queue), then blocks nobody
        // asked for, then a hang-up mid-message.
        let mut flood = Attacker::handshaken(addr, info_hash, Extensions::NONE);
        let mut requests = BytesMut::new();
        for i in 0..10_000u32 {
            Message::Request(BlockInfo {
                piece: i % pieces,
                offset: 0,
                len: 16_384,
            })
            .encode(&mut requests);
        }
        flood.send(&requests);
        assert!(
            flood.closed_within(Duration::from_secs(10)),
            "request flood: still connected"
        );
        let mut unasked = Attacker::handshaken(addr, info_hash, Extensions::NONE);
        let mut blocks = BytesMut::new();
        for piece in 0..200u32 {
            Message::Piece(cratetorrent_wire::Block {
                piece: piece % pieces,
                offset: 16_384,
                data: Bytes::from(vec![0x5a; 16_384]),
            })
            .encode(&mut blocks);
        }
        unasked.send(&blocks);
        assert!(
            unasked.closed_within(Duration::from_secs(20)),
            "unasked blocks: still connected"
        );
        let mut cut = Attacker::handshaken(addr, info_hash, Extensions::NONE);
        cut.send(&message(7, &[0u8; 100])[..50]);
        drop(cut);
        let banned = serve_garbage(addr, info_hash, pieces);
        assert!(banned, "the garbage seed was never disconnected");
        assert!(
            spray_junk(addr, info_hash, pieces, SIZE),
            "the junk sprayer was never disconnected"
        );
        // Slowloris: half a handshake, then nothing; and 1,000 connections at once, half of
        // them with half a handshake. Last, because they fill the handshake slots for a while.
        let mut slow = Attacker::raw(addr);
        slow.send(&[19]);
        let crowd: Vec<Attacker> = (0..1000)
            .map(|i| {
                let mut attacker = Attacker::raw(addr);
                if i % 2 == 0 {
                    attacker.send(b"\x13BitTorrent protocol");
                }
                attacker
            })
            .collect();
        assert!(slow.closed_within(HANDSHAKE_DEADLINE), "slowloris kept");
        let kept = crowd
            .into_iter()
            .filter_map(|mut attacker| {
                (!attacker.closed_within(Duration::from_millis(10))).then_some(())
            })
            .count();
        assert_eq!(
            kept, 0,
            "of 1,000 idle connections, {kept} were kept past the handshake deadline"
        );
    });
    tokio::time::timeout(Duration::from_secs(240), attacks)
        .await
        .expect("attacks took too long")
        .unwrap();

    engine
        .set_rate_limits(
            None,
            RateLimits {
                download: 0,
                upload: 0,
            },
        )
        .unwrap();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, alerts.next()).await {
            Ok(Some(Alert::TorrentComplete(done))) if done == id => break,
            Ok(Some(_)) => {}
            other => panic!("download did not complete: {other:?}"),
        }
    }
    *stop.lock().unwrap() = true;
    let max = watcher.await.unwrap();
    let after = engine.counters().await.unwrap();
    engine.shutdown().await.unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("payload.bin")).unwrap(),
        payload
    );

    println!("largest counters under attack: {max:?}; after: {after:?}");
    assert!(max.handshaking <= 64, "{max:?}");
    assert!(
        max.connections <= 100,
        "the torrent's connection cap: {max:?}"
    );
    assert!(max.disk_buffered <= 32 << 20, "{max:?}");
    assert!(max.requests_queued <= 2_000, "{max:?}");
    assert!(max.send_buffered <= 8 << 20, "{max:?}");
    assert!(
        max.banned >= 3,
        "the garbage seed, the unasked blocks and the sprayer were not all banned: {max:?}"
    );
    assert_eq!(after.handshaking, 0, "{after:?}");
    assert!(
        after.connections <= 1,
        "only the honest seed may remain: {after:?}"
    );
    for (what, reason, _, _) in protocol_attacks(pieces) {
        assert!(log.count(reason) >= 1, "{what}: no \"{reason}\" in the log");
    }
    assert!(
        log.count("banning peer for sending corrupt data") >= 1,
        "no ban logged"
    );
    assert!(
        log.count("banning peer for") >= 3,
        "the garbage seed, the unasked blocks and the sprayer were not all banned"
    );
    for reason in ["request flood", "sent blocks we never asked for"] {
        assert!(log.count(reason) >= 1, "no \"{reason}\" in the log");
    }
    drop(seeder);
}

/// A seed that answers every request at once with the right data, except the first block of
/// each piece, which it never sends; with `junk`, each block is followed by a message of that
/// many bytes of an unknown type. Counts the blocks it sent in `sent`; runs until `stop`.
fn withhold_first_blocks(
    addr: SocketAddr,
    info_hash: InfoHash,
    payload: &[u8],
    junk: usize,
    sent: &AtomicUsize,
    stop: &Mutex<bool>,
) -> usize {
    let junk = (junk > 0).then(|| message(99, &vec![0x6a; junk - 5]));
    let pieces = payload.len().div_ceil(PIECE as usize) as u32;
    let mut attacker = Attacker::handshaken(addr, info_hash, Extensions::NONE);
    attacker.send(&message(
        5,
        cratetorrent_wire::Bitfield::full(pieces).as_bytes(),
    ));
    attacker.send_message(&Message::Unchoke);
    let decoder = Decoder::default();
    let (mut buf, mut chunk) = (BytesMut::new(), vec![0u8; 64 * 1024]);
    let mut withheld = 0;
    while !*stop.lock().unwrap() {
        match attacker.stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => break,
        }
        while let Ok(Some(message)) = decoder.decode(&mut buf) {
            let Message::Request(BlockInfo { piece, offset, len }) = message else {
                continue;
            };
            if offset == 0 {
                withheld += 1;
                continue;
            }
            let start = piece as usize * PIECE as usize + offset as usize;
            let Some(data) = payload.get(start..start + len as usize) else {
                continue;
            };
            attacker.send_message(&Message::Piece(cratetorrent_wire::Block {
                piece,
                offset,
                data: Bytes::copy_from_slice(data),
            }));
            if let Some(junk) = &junk {
                attacker.send(junk);
            }
            sent.fetch_add(1, Ordering::Relaxed);
        }
    }
    withheld
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn a_peer_withholding_the_first_block_of_every_piece_cannot_stall_the_download() {
    let _serial = SERIAL.lock().await;
    let rss = withholding_attack(0, 2 << 20, None, 29).await;
    println!("withholding: RSS grew by at most {} MiB", rss >> 20);
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn blocks_padded_with_junk_cannot_pin_receive_buffers() {
    // Each block is followed by 240 KiB of an unknown message, so each one keeps its own
    // 256 KiB receive chunk allocated: the blocks held behind gaps (counted 16 KiB each before
    // chunks were counted whole) kept 16 times what the cap allowed.
    // The attacker is alone for its first 600 blocks (about 600 x 256 KiB kept before), then
    // the honest seed joins and the download completes.
    let _serial = SERIAL.lock().await;
    let cap = 16 << 20;
    let grown = withholding_attack(240 << 10, cap, Some(600), 31).await;
    println!(
        "junk padding: RSS grew by at most {} MiB against a {} MiB cap",
        grown >> 20,
        cap >> 20
    );
    // The cap, the pool of retired chunks (8 MiB), the chunks being read into, the hasher's,
    // the log's and the allocator's slack: about 33 MiB here, against 186 MiB before.
    assert!(grown <= 3 * cap, "RSS grew by {grown} bytes");
}

/// Tests in this file that measure the process's memory run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The resident set of this process, from `/proc/self/status`.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Downloads while a peer withholds the first block of every piece (and pads each block it
/// sends with `junk` bytes), beside a libtorrent seed from the start or, with `alone_for`, only
/// once the attacker has sent that many blocks alone; returns how much the RSS grew at most.
async fn withholding_attack(
    junk: usize,
    max_memory: u64,
    alone_for: Option<usize>,
    seed: u64,
) -> u64 {
    let _log = Log::install();
    let source = tempfile::tempdir().unwrap();
    let path = source.path().join("payload.bin");
    let payload = pseudo_random(SIZE, seed);
    std::fs::write(&path, &payload).unwrap();
    let bytes = TorrentBuilder::new(&path)
        .piece_length(PIECE)
        .build()
        .unwrap();
    let torrent = source.path().join("payload.torrent");
    std::fs::write(&torrent, &bytes).unwrap();
    let metainfo = Metainfo::from_bytes(&bytes).unwrap();
    let info_hash = metainfo.info_hash();
    let seeder = LibtorrentSeeder::start(&torrent, source.path());
    let honest = SocketAddr::from(([127, 0, 0, 1], seeder.port));

    let dir = tempfile::tempdir().unwrap();
    let mut conf = Conf::new(dir.path());
    conf.listen_addr = "127.0.0.1:0".parse().unwrap();
    // A small memory cap, so the blocks the attacker leaves waiting behind gaps reach it: before,
    // reading stopped there for good (the first blocks were in sockets nobody read).
    conf.storage.max_memory = max_memory;
    let (engine, mut alerts) = engine::spawn(conf).unwrap();
    let id = engine
        .create_torrent(TorrentParams {
            metainfo: metainfo.clone(),
            listen_addr: None,
            mode: Mode::Download {
                seeds: if alone_for.is_some() {
                    Vec::new()
                } else {
                    vec![honest]
                },
            },
            conf: None,
        })
        .unwrap();
    loop {
        match tokio::time::timeout(TIMEOUT, alerts.next()).await {
            Ok(Some(Alert::TorrentStarted { id: started, .. })) if started == id => break,
            Ok(Some(_)) => {}
            other => panic!("torrent never started: {other:?}"),
        }
    }
    // Measured from here: the engine's own threads, rings and pools are already in place.
    let baseline = rss();
    let peak = Arc::new(AtomicU64::new(baseline));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let addr = engine.listen_addr();
    let stop = Arc::new(Mutex::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let attacker = {
        let (stop, sent, payload) = (stop.clone(), sent.clone(), payload.clone());
        std::thread::spawn(move || {
            withhold_first_blocks(addr, info_hash, &payload, junk, &sent, &stop)
        })
    };
    if let Some(blocks) = alone_for {
        let deadline = Instant::now() + Duration::from_secs(30);
        while sent.load(Ordering::Relaxed) < blocks {
            assert!(
                Instant::now() < deadline,
                "the attacker was not asked enough"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        engine.add_peers(id, vec![honest]).unwrap();
    }
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, alerts.next()).await {
            Ok(Some(Alert::TorrentComplete(done))) if done == id => break,
            Ok(Some(_)) => {}
            other => panic!("the download stalled: {other:?}"),
        }
    }
    *stop.lock().unwrap() = true;
    let withheld = attacker.join().unwrap();
    sampling.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    engine.shutdown().await.unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("payload.bin")).unwrap(),
        payload
    );
    println!(
        "the attacker sent {} blocks and withheld {withheld} first blocks; the download completed",
        sent.load(Ordering::Relaxed)
    );
    assert!(
        withheld > 0,
        "the attacker was never asked for a first block"
    );
    drop(seeder);
    peak.load(Ordering::Relaxed).saturating_sub(baseline)
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn a_leecher_that_never_reads_cannot_pin_the_seeders_memory() {
    // 64 pieces of 4 MiB. The attacker asks for blocks all over the file and never reads its
    // socket: each 16 KiB block queued to it used to keep its whole 4 MiB piece allocated (up
    // to 256 MiB here, 1 GiB with 256 pieces), for as long as it sent keep-alives.
    let _serial = SERIAL.lock().await;
    let _log = Log::install();
    const BIG_PIECE: u32 = 4 << 20;
    const PIECES: u32 = 64;
    let source = tempfile::tempdir().unwrap();
    let path = source.path().join("payload.bin");
    let payload = pseudo_random((PIECES * BIG_PIECE) as usize, 37);
    std::fs::write(&path, &payload).unwrap();
    drop(payload);
    let bytes = TorrentBuilder::new(&path)
        .piece_length(BIG_PIECE)
        .build()
        .unwrap();
    let metainfo = Metainfo::from_bytes(&bytes).unwrap();
    let info_hash = metainfo.info_hash();

    let mut conf = Conf::new(source.path());
    conf.listen_addr = "127.0.0.1:0".parse().unwrap();
    let read_memory = 16 << 20;
    conf.storage.max_read_memory = read_memory;
    conf.torrent.send_timeout = Duration::from_secs(5);
    let (engine, mut alerts) = engine::spawn(conf).unwrap();
    let id = engine
        .create_torrent(TorrentParams {
            metainfo,
            listen_addr: None,
            mode: Mode::Seed,
            conf: None,
        })
        .unwrap();
    loop {
        match tokio::time::timeout(TIMEOUT, alerts.next()).await {
            Ok(Some(Alert::TorrentStarted { id: started, .. })) if started == id => break,
            Ok(Some(_)) => {}
            other => panic!("torrent never started: {other:?}"),
        }
    }
    let baseline = rss();
    let addr = engine.listen_addr();
    let attacker = tokio::task::spawn_blocking(move || {
        let mut attacker = Attacker::handshaken(addr, info_hash, Extensions::NONE);
        attacker.send_message(&Message::Interested);
        // Wait for the unchoke, then ask and stop reading.
        let decoder = Decoder::default();
        let (mut buf, mut chunk) = (BytesMut::new(), vec![0u8; 4096]);
        let deadline = Instant::now() + Duration::from_secs(10);
        'unchoked: while Instant::now() < deadline {
            if let Ok(n) = attacker.stream.read(&mut chunk) {
                buf.extend_from_slice(&chunk[..n]);
            }
            while let Ok(Some(message)) = decoder.decode(&mut buf) {
                if message == Message::Unchoke {
                    break 'unchoked;
                }
            }
        }
        // Round after round, one block of every MiB of every piece: more than the socket
        // buffers take (about 28 MiB asked), each next block from another part of the file.
        let mut requests = BytesMut::new();
        for round in 0..7u32 {
            for piece in 0..PIECES {
                for mib in 0..4u32 {
                    Message::Request(BlockInfo {
                        piece,
                        offset: (mib << 20) + round * 16_384,
                        len: 16_384,
                    })
                    .encode(&mut requests);
                }
            }
        }
        attacker.send(&requests);
        attacker
    });
    let attacker = attacker.await.unwrap();
    // Sample while the engine reads for it and then holds what it could not send.
    let mut peak = baseline;
    let start = Instant::now();
    let mut dropped_after = None;
    while start.elapsed() < Duration::from_secs(20) {
        peak = peak.max(rss());
        let counters = engine.counters().await.unwrap();
        if counters.connections == 0 && start.elapsed() > Duration::from_secs(1) {
            dropped_after = Some(start.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let grown = peak.saturating_sub(baseline);
    println!(
        "a leecher that never reads: RSS grew by at most {} MiB (read memory bound {} MiB); \
         dropped after {dropped_after:?}",
        grown >> 20,
        read_memory >> 20
    );
    drop(attacker);
    engine.shutdown().await.unwrap();
    let dropped_after = dropped_after.expect("the stalled leecher was never dropped");
    assert!(dropped_after < Duration::from_secs(15), "{dropped_after:?}");
    // The read bound, the receive chunks, the log's and the allocator's slack.
    assert!(grown <= 3 * read_memory as u64, "RSS grew by {grown} bytes");
}
