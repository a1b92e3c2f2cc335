//! Hostile peers against the extensions: lying metadata for a magnet link (sizes of 0, huge and
//! changing, pieces out of range or oversized, an info dictionary that does not hash to the
//! info-hash) and PEX abuse (10,000 addresses a second, our own address).

use super::*;
use cratetorrent_wire::{ExtendedHandshake, MetadataMessage, PexFlags, PexMessage};

/// The extension ids the attackers assign (their `m`): what the engine addresses them with.
const UT_METADATA: u8 = 3;
const UT_PEX: u8 = 4;

impl Attacker {
    /// Sends an extended handshake announcing ut_metadata and ut_pex, and `metadata_size`.
    fn extended_handshake(&mut self, metadata_size: Option<u64>) {
        let handshake = ExtendedHandshake {
            extensions: [
                ("ut_metadata".to_string(), UT_METADATA),
                ("ut_pex".to_string(), UT_PEX),
            ]
            .into(),
            metadata_size,
            ..ExtendedHandshake::default()
        };
        self.send_message(&Message::Extended {
            id: 0,
            payload: handshake.encode(),
        });
    }

    /// The engine's id for extension `name`, from its extended handshake (read within `timeout`).
    fn engine_ext_id(&mut self, name: &str, timeout: Duration) -> u8 {
        let mut id = None;
        self.read_messages(timeout, |message| {
            if let Message::Extended { id: 0, payload } = message
                && let Ok(theirs) = ExtendedHandshake::decode(payload)
            {
                id = theirs.extensions.get(name).copied();
            }
            id.is_some()
        });
        id.unwrap_or_else(|| panic!("the engine did not offer {name}"))
    }

    /// Reads and decodes what the engine sends until `stop` says so or `timeout` passes;
    /// returns whether `stop` did.
    fn read_messages(&mut self, timeout: Duration, mut stop: impl FnMut(&Message) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let decoder = Decoder::default();
        let mut received = BytesMut::new();
        let mut chunk = [0u8; 64 * 1024];
        while Instant::now() < deadline {
            match self.stream.read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return false,
            }
            while let Ok(Some(message)) = decoder.decode(&mut received) {
                if stop(&message) {
                    return true;
                }
            }
        }
        false
    }

    /// Whether the engine asks for a metadata piece within `timeout`.
    fn asked_for_metadata(&mut self, timeout: Duration) -> bool {
        self.read_messages(timeout, |message| {
            matches!(message, Message::Extended { id, payload } if *id == UT_METADATA
                && matches!(MetadataMessage::decode(payload), Ok(Some(MetadataMessage::Request { .. }))))
        })
    }

    fn metadata_data(&mut self, ours: u8, piece: u32, total_size: u64, data: Vec<u8>) {
        let payload = MetadataMessage::Data {
            piece,
            total_size,
            data: Bytes::from(data),
        }
        .encode();
        self.send_message(&Message::Extended { id: ours, payload });
    }

    fn pex(&mut self, ours: u8, added: Vec<(SocketAddr, PexFlags)>) {
        let payload = PexMessage {
            added,
            dropped: Vec::new(),
        }
        .encode();
        self.send_message(&Message::Extended { id: ours, payload });
    }
}

/// `count` loopback addresses from `first` on where nothing listens (a dial fails at once).
fn closed_ports(first: u32, count: u32) -> Vec<(SocketAddr, PexFlags)> {
    (first..first + count)
        .map(|i| {
            let [_, _, a, b] = i.to_be_bytes();
            (SocketAddr::from(([127, 9, a, b], 1)), PexFlags::default())
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs reference peers"]
async fn lying_metadata_is_survived_and_the_magnet_completes_from_libtorrent() {
    let _serial = SERIAL.lock().await;
    let log = Log::install();
    let torrent = Torrent::new(2 << 20, PIECE, 31);
    let seeder = LibtorrentSeeder::start(&torrent.torrent, torrent.source.path());
    let hash = torrent.metainfo.info_hash();
    let size = torrent.metainfo.info_bytes().len() as u64;
    let dir = tempfile::tempdir().unwrap();
    let mut conf = Conf::new(dir.path());
    conf.listen_addr = SocketAddr::from(([127, 0, 0, 1], 0));
    conf.lsd = false;
    conf.dht.enabled = false;
    let (engine, mut alerts) = engine::spawn(conf).unwrap();
    let magnet = Magnet::parse(&format!("magnet:?xt=urn:btih:{hash}")).unwrap();
    let mode = Mode::Download { seeds: Vec::new() };
    let id = engine
        .create_torrent(TorrentParams::new(magnet, mode))
        .unwrap();
    // Peers are taken once the torrent is registered.
    let deadline = Instant::now() + TIMEOUT;
    while engine.stats(id).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the magnet's torrent never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bep10 = Extensions::NONE.with(Extension::ExtensionProtocol);
    let mut liar = Attacker::handshaken(engine.listen_addr(), hash, bep10);
    let ours = liar.engine_ext_id("ut_metadata", Duration::from_secs(5));
    liar.extended_handshake(Some(0));
    assert!(
        !liar.asked_for_metadata(Duration::from_millis(500)),
        "a size of 0 is not asked"
    );
    liar.extended_handshake(Some(1 << 40));
    assert!(
        !liar.asked_for_metadata(Duration::from_millis(500)),
        "a size over max_metadata_size is not asked"
    );
    liar.extended_handshake(Some(size));
    assert!(liar.asked_for_metadata(Duration::from_secs(5)));
    // Pieces past the end, short, or of another total size are not used; one over 16 KiB is
    // malformed, and its sender dropped.
    liar.metadata_data(ours, 7, size, vec![b'x'; 100]);
    liar.metadata_data(ours, 0, size, vec![b'x'; 100]);
    liar.metadata_data(ours, 0, size + 1, vec![b'x'; size as usize]);
    assert!(!liar.closed_within(Duration::from_millis(500)));
    liar.metadata_data(ours, 0, size, vec![b'x'; 20 * 1024]);
    assert!(liar.closed_within(Duration::from_secs(5)));
    assert!(
        log.count("malformed ut_metadata message") >= 1,
        "{}",
        log.lines_with("disconnecting")
    );
    // Another changes its size once asked, then sends garbage of the size being fetched.
    let mut liar = Attacker::handshaken(engine.listen_addr(), hash, bep10);
    let ours = liar.engine_ext_id("ut_metadata", Duration::from_secs(5));
    liar.extended_handshake(Some(size));
    assert!(liar.asked_for_metadata(Duration::from_secs(5)));
    liar.extended_handshake(Some(size + 5));
    liar.metadata_data(ours, 0, size, vec![b'x'; size as usize]);
    assert!(
        liar.closed_within(Duration::from_secs(5)),
        "the lone sender of bad metadata is dropped"
    );
    assert_eq!(
        log.count("sending metadata that does not match the info-hash"),
        1
    );
    assert_eq!(engine.counters().await.unwrap().banned, 1);
    // The metadata comes from libtorrent instead, then the data.
    let lt = SocketAddr::from(([127, 0, 0, 1], seeder.port));
    engine.add_peers(id, vec![lt]).unwrap();
    cratetorrent_tests::wait_complete(&mut alerts, id, TIMEOUT).await;
    engine.shutdown().await.unwrap();
    let got = std::fs::read(dir.path().join("payload.bin")).unwrap();
    assert!(got == torrent.payload, "the download differs");
}

#[tokio::test]
async fn pex_floods_are_dropped_and_our_own_address_is_dialled_once() {
    let _serial = SERIAL.lock().await;
    let log = Log::install();
    let torrent = Torrent::new(1 << 20, PIECE, 32);
    let (engine, _alerts, _id) =
        start_engine(torrent.source.path(), &torrent.metainfo, Mode::Seed, |_| {}).await;
    let hash = torrent.metainfo.info_hash();
    let at = engine.listen_addr();
    let bep10 = Extensions::NONE.with(Extension::ExtensionProtocol);

    // 10,000 addresses at once, then 50 every 5 ms: 10,000 a second.
    let mut flood = Attacker::handshaken(at, hash, bep10);
    let ours = flood.engine_ext_id("ut_pex", Duration::from_secs(5));
    flood.extended_handshake(None);
    flood.pex(ours, closed_ports(0, 10_000));
    for round in 0..200 {
        flood.pex(ours, closed_ports(10_000 + round * 50, 50));
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(flood.closed_within(Duration::from_secs(5)));
    assert!(log.count("PEX messages too often") >= 1);
    let counters = engine.counters().await.unwrap();
    assert!(counters.connections <= 1, "{counters:?}");

    // Our own listening address, told twice: one dial finds ourselves, none follows.
    let before = log.count("connected to ourselves");
    for _ in 0..2 {
        let mut liar = Attacker::handshaken(at, hash, bep10);
        let ours = liar.engine_ext_id("ut_pex", Duration::from_secs(5));
        liar.extended_handshake(None);
        liar.pex(ours, vec![(at, PexFlags::default())]);
        // The engine keeps the teller: telling is not wrong.
        assert!(!liar.closed_within(Duration::from_secs(2)));
    }
    // The dial may still be under way: wait for its refusal, then for a while longer.
    let deadline = Instant::now() + Duration::from_secs(10);
    while log.count("connected to ourselves") == before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let refused = log.count("connected to ourselves") - before;
    assert!(
        (1..=2).contains(&refused),
        "{refused} refusals: one dial (refused at both ends), not one per tip"
    );
    engine.shutdown().await.unwrap();
}
