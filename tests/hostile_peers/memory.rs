//! Attacks on memory: blocks withheld or padded so that what the engine holds grows, and a
//! leecher that never reads what a seeder sends. Each run measures the process's resident set
//! (`/proc/self/status`) while it lasts, one test at a time.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use super::*;

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
    let Torrent {
        source,
        payload,
        metainfo,
        torrent,
    } = Torrent::new(SIZE, PIECE, seed);
    let info_hash = metainfo.info_hash();
    let seeder = LibtorrentSeeder::start(&torrent, source.path());
    let honest = SocketAddr::from(([127, 0, 0, 1], seeder.port));

    let dir = tempfile::tempdir().unwrap();
    let seeds = if alone_for.is_some() {
        Vec::new()
    } else {
        vec![honest]
    };
    let (engine, mut alerts, id) =
        start_engine(dir.path(), &metainfo, Mode::Download { seeds }, |conf| {
            // A small memory cap, so the blocks the attacker leaves waiting behind gaps reach
            // it: before, reading stopped there for good (the first blocks were in sockets
            // nobody read).
            conf.storage.max_memory = max_memory;
        })
        .await;
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
    let Torrent {
        source, metainfo, ..
    } = Torrent::new((PIECES * BIG_PIECE) as usize, BIG_PIECE, 37);
    let info_hash = metainfo.info_hash();

    let read_memory = 16 << 20;
    let (engine, _alerts, _) = start_engine(source.path(), &metainfo, Mode::Seed, |conf| {
        conf.storage.max_read_memory = read_memory;
        conf.torrent.send_timeout = Duration::from_secs(5);
    })
    .await;
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
