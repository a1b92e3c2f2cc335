//! The hash workers against the scalar reference: orders, lanes, corrupt blocks, hybrids.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]
use std::sync::Mutex;

use cratetorrent_metainfo::bencode::{DictBuilder, Encode};
use sha1::Digest;

use super::*;
use crate::memory::MemoryGauge;
use crate::sha1x16::tests::payload;

fn metainfo(payload: &[u8], piece_length: usize) -> Metainfo {
    let hashes: Vec<u8> = payload
        .chunks(piece_length)
        .flat_map(|c| <[u8; 20]>::from(sha1::Sha1::digest(c)))
        .collect();
    let mut info = DictBuilder::new();
    info.insert("length", payload.len() as i64)
        .insert("name", "t")
        .insert("piece length", piece_length as i64)
        .insert("pieces", hashes.as_slice());
    let mut torrent = DictBuilder::new();
    torrent.insert("info", info);
    Metainfo::from_bytes(&torrent.to_bencode()).unwrap()
}

/// A torrent of `pieces` pieces of `piece_blocks` blocks, the last one `tail` bytes long.
struct Scenario {
    piece_blocks: usize,
    pieces: usize,
    tail: usize,
    shuffle: u64,
    corrupt: usize,
    budget: u64,
}

/// Feeds every block (shuffled, block `corrupt` flipped) to a worker, handing over a batch
/// every few blocks as the disk thread does; returns the reports and the lane steps taken.
fn run(lanes: bool, scenario: &Scenario) -> (Vec<(PieceIndex, bool)>, u64) {
    let piece_length = scenario.piece_blocks * BLOCK_SIZE as usize;
    let data = payload((scenario.pieces - 1) * piece_length + scenario.tail, 3);
    let metainfo = metainfo(&data, piece_length);
    let reports = Mutex::new(Vec::new());
    let report = |piece, _attempt, ok| reports.lock().unwrap().push((piece, ok));
    let gauge = Arc::new(MemoryGauge::new(u64::MAX, Box::new(|| {})));
    let mut worker = Worker {
        metainfo: &metainfo,
        report: &report,
        v2: metainfo.meta_version().has_v2(),
        pieces: HashMap::new(),
        ready_bytes: 0,
        gathering_since: None,
        lanes,
        budget: scenario.budget,
        lane_steps: 0,
        scalar_pieces: 0,
    };
    let mut blocks: Vec<(usize, usize)> = (0..data.len())
        .step_by(BLOCK_SIZE as usize)
        .map(|at| (at, (at + BLOCK_SIZE as usize).min(data.len())))
        .collect();
    let mut seed = scenario.shuffle;
    for i in (1..blocks.len()).rev() {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        blocks.swap(i, (seed >> 33) as usize % (i + 1));
    }
    let mut batch = Vec::new();
    for (index, (start, end)) in blocks.into_iter().enumerate() {
        let mut bytes = data[start..end].to_vec();
        if index == scenario.corrupt {
            bytes[0] ^= 1;
        }
        let (block, _) = HeldBlock::new(bytes.into(), gauge.clone());
        batch.push(HashJob::Block {
            attempt: 0,
            piece: (start / piece_length) as PieceIndex,
            offset: (start % piece_length) as u32,
            block,
        });
        if index % 5 == 4 {
            let drain = worker.absorb(std::mem::take(&mut batch));
            worker.hash(drain);
        }
    }
    batch.push(HashJob::Drain);
    assert!(worker.absorb(batch));
    worker.hash(true);
    assert_eq!(worker.ready_bytes, 0);
    assert!(worker.pieces.is_empty());
    assert_eq!(gauge.held(), 0, "every block released");
    let steps = worker.lane_steps;
    drop(worker);
    let mut reports = reports.into_inner().unwrap();
    reports.sort_unstable();
    (reports, steps)
}

/// Feeds `data` to a scalar worker in order; the verdicts by piece.
fn verdicts(metainfo: &Metainfo, data: &[u8]) -> Vec<(PieceIndex, bool)> {
    let reports = Mutex::new(Vec::new());
    let report = |piece, _attempt, ok| reports.lock().unwrap().push((piece, ok));
    let gauge = Arc::new(MemoryGauge::new(u64::MAX, Box::new(|| {})));
    let mut worker = Worker {
        metainfo,
        report: &report,
        v2: metainfo.meta_version().has_v2(),
        pieces: HashMap::new(),
        ready_bytes: 0,
        gathering_since: None,
        lanes: false,
        budget: 1 << 20,
        lane_steps: 0,
        scalar_pieces: 0,
    };
    let piece_length = metainfo.piece_length() as usize;
    let mut batch: Vec<HashJob> = (0..data.len())
        .step_by(BLOCK_SIZE as usize)
        .map(|at| {
            let end = (at + BLOCK_SIZE as usize).min(data.len());
            let (block, _) = HeldBlock::new(data[at..end].to_vec().into(), gauge.clone());
            HashJob::Block {
                attempt: 0,
                piece: (at / piece_length) as PieceIndex,
                offset: (at % piece_length) as u32,
                block,
            }
        })
        .collect();
    batch.push(HashJob::Drain);
    worker.absorb(batch);
    worker.hash(true);
    drop(worker);
    let mut reports = reports.into_inner().unwrap();
    reports.sort_unstable();
    reports
}

/// A hybrid torrent whose v1 hashes describe `v1_data` and whose v2 tree and layers
/// describe `v2_data` (same length): what a hostile or broken creator can publish.
fn mixed_hybrid(v1_data: &[u8], v2_data: &[u8], piece_length: u32) -> Metainfo {
    use cratetorrent_metainfo::bencode::{self, Raw};
    use cratetorrent_metainfo::{MetaVersion, TorrentBuilder};
    let dir = tempfile::tempdir().unwrap();
    let build = |name: &str, data: &[u8]| {
        let path = dir.path().join(name).join("f.bin");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, data).unwrap();
        let bytes = TorrentBuilder::new(&path)
            .meta_version(MetaVersion::Hybrid)
            .piece_length(piece_length)
            .build()
            .unwrap();
        Metainfo::from_bytes(&bytes).unwrap()
    };
    let (one, two) = (build("one", v1_data), build("two", v2_data));
    let tree = bencode::decode(two.info_bytes()).unwrap();
    let tree = tree.as_dict().unwrap().get(b"file tree").unwrap();
    let mut info = DictBuilder::new();
    for (key, value) in bencode::decode(one.info_bytes())
        .unwrap()
        .as_dict()
        .unwrap()
    {
        info.insert(key, Raw(value.raw()));
    }
    info.insert("file tree", Raw(tree.raw()));
    let two_bytes = two.to_torrent_bytes();
    let layers = bencode::decode(&two_bytes).unwrap();
    let layers = layers.as_dict().unwrap().get(b"piece layers").unwrap();
    let mut torrent = DictBuilder::new();
    torrent
        .insert("info", info)
        .insert("piece layers", Raw(layers.raw()));
    Metainfo::from_bytes(&torrent.to_bencode()).unwrap()
}

#[test]
fn hybrid_pieces_must_match_both_hashes() {
    let piece_length = 2 * BLOCK_SIZE;
    let good = payload(3 * piece_length as usize + 1000, 5);
    let mut other = good.clone();
    other[40_000] ^= 1; // in piece 1
    let all_pass = vec![(0, true), (1, true), (2, true), (3, true)];
    let one_fails = vec![(0, true), (1, false), (2, true), (3, true)];
    let consistent = mixed_hybrid(&good, &good, piece_length);
    assert_eq!(verdicts(&consistent, &good), all_pass);
    // SHA-1 right, merkle wrong; then merkle right, SHA-1 wrong.
    let mixed = mixed_hybrid(&good, &other, piece_length);
    assert_eq!(verdicts(&mixed, &good), one_fails);
    assert_eq!(verdicts(&mixed, &other), one_fails);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
    #[test]
    fn lanes_agree_with_scalar_whatever_the_order(
        piece_blocks in 1usize..6,
        pieces in 1usize..48,
        tail_fraction in 1u32..=100,
        shuffle: u64,
        corrupt in proptest::option::of(0usize..300),
        budget in (16u64 << 10)..(2 << 20),
    ) {
        let piece_length = piece_blocks * BLOCK_SIZE as usize;
        let tail = (piece_length * tail_fraction as usize / 100).max(1);
        let scenario = Scenario {
            piece_blocks, pieces, tail, shuffle, corrupt: corrupt.unwrap_or(usize::MAX), budget,
        };
        let (lanes, _) = run(true, &scenario);
        let (scalar, _) = run(false, &scenario);
        proptest::prop_assert_eq!(&lanes, &scalar);
        proptest::prop_assert_eq!(lanes.len(), pieces);
        let blocks = (pieces - 1) * piece_blocks + tail.div_ceil(BLOCK_SIZE as usize);
        let failed = usize::from(scenario.corrupt < blocks);
        proptest::prop_assert_eq!(lanes.iter().filter(|(_, ok)| !ok).count(), failed);
    }
}

#[test]
fn lanes_and_scalar_verify_the_same_pieces() {
    let scenario = |corrupt| Scenario {
        piece_blocks: 4,
        pieces: 41,
        tail: 5000,
        shuffle: 7,
        corrupt,
        budget: 1 << 20,
    };
    let (lanes, steps) = run(true, &scenario(77));
    let (scalar, _) = run(false, &scenario(77));
    assert_eq!(lanes, scalar);
    assert_eq!(lanes.len(), 41, "every piece reported once");
    assert_eq!(lanes.iter().filter(|(_, ok)| !ok).count(), 1);
    if sha1x16::supported() {
        assert!(steps > 0, "the lanes were never used");
    }
    assert!(run(true, &scenario(usize::MAX)).0.iter().all(|(_, ok)| *ok));
}
