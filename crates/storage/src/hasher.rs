//! Piece hashing off the caller's thread, from memory, as blocks arrive.
//!
//! Blocks are fed to SHA-1 in offset order; out-of-order blocks wait until the gap before them
//! fills. Nothing is ever read back from disk. Jobs are handed over in one batch per worker per
//! turn of the disk thread, so a burst of blocks costs a worker one wake-up, not one per block.
//!
//! Hybrid torrents (BEP 52) are checked twice: each block's SHA-256 leaf is computed as it
//! arrives, in any order, and a piece passes only if its SHA-1 matches and its leaves hash to
//! the piece layer's entry (or the file's root, for a file of one piece), when the torrent
//! carries the layer.
//!
//! Two ways to run:
//! - **Lanes** (CPUs with AVX-512): one worker hashes up to sixteen pieces at once
//!   ([`crate::sha1x16`]), one 16 KiB block of each per step. It lets hashable data gather until
//!   all sixteen lanes are busy, or a budget of bytes is reached (a quarter of the memory cap,
//!   at most 8 MiB), or no job has come for [`IDLE`], or data has waited [`MAX_GATHER`]; then it
//!   uses the lanes if at least
//!   [`MIN_LANES`] pieces have data and the scalar (SHA-NI) path for the rest.
//! - **Scalar**: each piece belongs to one of several workers (piece index modulo the worker
//!   count), which hashes blocks as soon as they are in order.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cratetorrent_metainfo::merkle::{self, Hash};
use cratetorrent_metainfo::{Metainfo, PieceIndex, V2Piece};
use cratetorrent_wire::BLOCK_SIZE;

use crate::memory::HeldBlock;
use crate::sha1x16::{self, LANES};

/// Fewer pieces with data than this are hashed one by one: below it, the lanes cost more per
/// byte than SHA-NI does.
const MIN_LANES: usize = 6;
/// How long the lane worker waits for more data before hashing what it has.
const IDLE: Duration = Duration::from_millis(1);
/// Most hashable bytes the lane worker lets gather.
const MAX_BUDGET: u64 = 8 << 20;
/// Longest the lane worker keeps data waiting for lanes to fill (a steady trickle of blocks
/// never leaves it idle), so a piece's verdict is never late by more than this.
const MAX_GATHER: Duration = Duration::from_millis(10);

/// What an idle lane hashes (its result is thrown away).
static IDLE_LANE: [u8; BLOCK_SIZE as usize] = [0; BLOCK_SIZE as usize];

/// Which download attempt of a piece a block belongs to: a piece dropped after a write error and
/// downloaded again gets a new one, so a verdict on the old data can be told from one on the new.
pub(crate) type Attempt = u64;

pub(crate) enum HashJob {
    Block {
        piece: PieceIndex,
        attempt: Attempt,
        offset: u32,
        block: Arc<HeldBlock>,
    },
    /// Forget a piece's partial state (this attempt at it was abandoned; a later one stays).
    Forget { piece: PieceIndex, attempt: Attempt },
    /// Drop a piece's blocks waiting behind a gap, from offset `from` on (they will be sent
    /// again); what was hashed so far is kept.
    Shed { piece: PieceIndex, from: u32 },
    /// Hash everything hashable now instead of waiting to fill lanes (a flush or shutdown wants
    /// the verdicts).
    Drain,
}

/// Where a worker reports `(piece, attempt, hash matches)`.
pub(crate) type Report = Box<dyn Fn(PieceIndex, Attempt, bool) + Send + Sync>;

pub(crate) struct Hashers {
    /// What starting the workers takes, until the first block comes: a torrent that only
    /// seeds never hashes, and costs no threads for it.
    idle: Option<Start>,
    queues: Vec<Sender<Vec<HashJob>>>,
    batches: Vec<Vec<HashJob>>,
    workers: Vec<JoinHandle<()>>,
}

struct Start {
    threads: usize,
    lanes: bool,
    budget: u64,
    metainfo: Arc<Metainfo>,
    report: Arc<Report>,
}

impl Hashers {
    /// Prepares the workers, started with the first block: one lane worker when `lanes` is set
    /// and the CPU has AVX-512 (with `max_memory` bounding what it lets gather), otherwise
    /// `threads` scalar workers.
    pub(crate) fn start(
        threads: usize,
        lanes: bool,
        max_memory: u64,
        metainfo: Metainfo,
        report: Report,
    ) -> Self {
        let lanes = lanes && sha1x16::supported();
        Self {
            idle: Some(Start {
                threads: if lanes { 1 } else { threads.max(1) },
                lanes,
                budget: (max_memory / 4).min(MAX_BUDGET),
                metainfo: Arc::new(metainfo),
                report: Arc::new(report),
            }),
            queues: Vec::new(),
            batches: Vec::new(),
            workers: Vec::new(),
        }
    }

    fn spawn_workers(&mut self, start: &Start) {
        for index in 0..start.threads {
            let (queue, jobs) = mpsc::channel();
            let (metainfo, report) = (start.metainfo.clone(), start.report.clone());
            let (lanes, budget) = (start.lanes, start.budget);
            let spawned = std::thread::Builder::new()
                .name(format!("ct-hash-{index}"))
                .spawn(move || {
                    Worker {
                        metainfo: &metainfo,
                        report: &**report,
                        v2: metainfo.meta_version().has_v2(),
                        pieces: HashMap::new(),
                        ready_bytes: 0,
                        gathering_since: None,
                        lanes,
                        budget,
                        lane_steps: 0,
                        scalar_pieces: 0,
                    }
                    .run(&jobs);
                });
            if let Ok(handle) = spawned {
                self.queues.push(queue);
                self.workers.push(handle);
            }
        }
        self.batches = self.queues.iter().map(|_| Vec::new()).collect();
    }

    /// Queues `job` for the worker owning its piece (a drain for every worker);
    /// [`flush`](Self::flush) hands it over.
    pub(crate) fn push(&mut self, job: HashJob) {
        if self.idle.is_some() {
            if !matches!(job, HashJob::Block { .. }) {
                // No block was ever hashed: nothing to forget, shed or drain.
                return;
            }
            if let Some(start) = self.idle.take() {
                self.spawn_workers(&start);
            }
        }
        let piece = match &job {
            HashJob::Block { piece, .. }
            | HashJob::Forget { piece, .. }
            | HashJob::Shed { piece, .. } => *piece,
            HashJob::Drain => {
                for batch in &mut self.batches {
                    batch.push(HashJob::Drain);
                }
                return;
            }
        };
        let workers = self.batches.len().max(1);
        if let Some(batch) = self.batches.get_mut(piece as usize % workers) {
            batch.push(job);
        }
    }

    /// Hands every queued job to its worker.
    pub(crate) fn flush(&mut self) {
        for (queue, batch) in self.queues.iter().zip(&mut self.batches) {
            if !batch.is_empty() {
                let _ = queue.send(std::mem::take(batch));
            }
        }
    }
}

impl Drop for Hashers {
    fn drop(&mut self) {
        self.queues.clear();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// One piece's hash in progress.
struct PieceHash {
    attempt: Attempt,
    state: sha1x16::State,
    /// Bytes fed to the compression function so far (always a multiple of 64 until the end).
    hashed: u32,
    /// Blocks in offset order from `hashed` on, ready to hash.
    ready: VecDeque<Arc<HeldBlock>>,
    /// Where the next in-order block starts.
    ready_end: u32,
    /// Blocks past a gap, by offset.
    waiting: BTreeMap<u32, Arc<HeldBlock>>,
    /// BEP 52: how the piece is checked against its file's tree, and the SHA-256 of each
    /// 16 KiB block of file data received so far.
    tree: Option<(V2Piece, Vec<Option<Hash>>)>,
}

impl PieceHash {
    fn new(attempt: Attempt, tree: Option<V2Piece>) -> Self {
        Self {
            attempt,
            state: sha1x16::INIT,
            hashed: 0,
            ready: VecDeque::new(),
            ready_end: 0,
            waiting: BTreeMap::new(),
            tree: tree.map(|piece| {
                let blocks = piece.data_len.div_ceil(BLOCK_SIZE) as usize;
                (piece, vec![None; blocks])
            }),
        }
    }

    /// Hashes the file data of the block at `offset` into its leaf (padding has none; a block
    /// sent again keeps its first leaf, the SHA-1 also taking the first copy).
    fn add_leaf(&mut self, offset: u32, data: &[u8]) {
        let Some((piece, leaves)) = &mut self.tree else {
            return;
        };
        let Some(leaf @ None) = leaves.get_mut((offset / BLOCK_SIZE) as usize) else {
            return;
        };
        let len = piece.data_len.saturating_sub(offset).min(data.len() as u32);
        *leaf = Some(merkle::block_hash(&data[..len as usize]));
    }

    /// Whether the leaves prove the piece: every one present and hashing to the expected
    /// node. A piece with no tree to check (v1, or a hybrid whose layer the torrent lacks)
    /// passes on its SHA-1 alone.
    fn tree_matches(&self) -> bool {
        let Some((piece, leaves)) = &self.tree else {
            return true;
        };
        let Some(expected) = piece.expected else {
            return true;
        };
        let leaves: Option<Vec<Hash>> = leaves.iter().copied().collect();
        leaves.is_some_and(|leaves| merkle::root(&leaves, piece.width as usize) == expected)
    }

    /// Whether the next ready block can go into a lane (whole 16 KiB: only the torrent's very
    /// last block is shorter).
    fn lane_ready(&self) -> bool {
        self.ready
            .front()
            .is_some_and(|block| block.data.len() == BLOCK_SIZE as usize)
    }
}

struct Worker<'a> {
    metainfo: &'a Metainfo,
    report: &'a (dyn Fn(PieceIndex, Attempt, bool) + Send + Sync),
    /// A hybrid torrent: pieces are checked against the v2 trees too.
    v2: bool,
    pieces: HashMap<PieceIndex, PieceHash>,
    /// Bytes in `ready` queues, over all pieces.
    ready_bytes: u64,
    /// Since when `ready_bytes` has been above zero.
    gathering_since: Option<Instant>,
    lanes: bool,
    budget: u64,
    /// Steps through the lanes and pieces hashed alone, for the log.
    lane_steps: u64,
    scalar_pieces: u64,
}

impl Worker<'_> {
    fn run(&mut self, jobs: &Receiver<Vec<HashJob>>) {
        self.serve(jobs);
        tracing::debug!(
            lanes = self.lanes,
            lane_steps = self.lane_steps,
            scalar_pieces = self.scalar_pieces,
            "hash worker done"
        );
    }

    fn serve(&mut self, jobs: &Receiver<Vec<HashJob>>) {
        loop {
            let batch = if self.lanes && self.ready_bytes > 0 {
                match jobs.recv_timeout(IDLE) {
                    Ok(batch) => batch,
                    Err(RecvTimeoutError::Timeout) => {
                        self.hash(true);
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            } else {
                match jobs.recv() {
                    Ok(batch) => batch,
                    Err(_) => return,
                }
            };
            let mut drain = self.absorb(batch);
            while let Ok(batch) = jobs.try_recv() {
                drain |= self.absorb(batch);
            }
            self.hash(drain);
        }
    }

    /// Takes a batch in; true if it asks for a drain.
    fn absorb(&mut self, batch: Vec<HashJob>) -> bool {
        let mut drain = false;
        for job in batch {
            match job {
                HashJob::Drain => drain = true,
                HashJob::Forget { piece, attempt } => {
                    if self
                        .pieces
                        .get(&piece)
                        .is_some_and(|s| s.attempt == attempt)
                        && let Some(state) = self.pieces.remove(&piece)
                    {
                        self.ready_bytes -= ready_len(&state);
                    }
                }
                HashJob::Shed { piece, from } => {
                    if let Some(state) = self.pieces.get_mut(&piece) {
                        drop(state.waiting.split_off(&from));
                    }
                }
                HashJob::Block {
                    piece,
                    attempt,
                    offset,
                    block,
                } => self.add_block(piece, attempt, offset, block),
            }
        }
        drain
    }

    fn add_block(
        &mut self,
        piece: PieceIndex,
        attempt: Attempt,
        offset: u32,
        block: Arc<HeldBlock>,
    ) {
        // Blocks of an attempt the disk thread has given up on must not mix with a new one.
        if self
            .pieces
            .get(&piece)
            .is_some_and(|s| s.attempt != attempt)
            && let Some(stale) = self.pieces.remove(&piece)
        {
            self.ready_bytes -= ready_len(&stale);
        }
        let (metainfo, v2) = (self.metainfo, self.v2);
        let state = self.pieces.entry(piece).or_insert_with(|| {
            // Without the layer there is nothing to check the leaves against: no SHA-256.
            let tree = v2.then(|| metainfo.v2_piece(piece)).flatten();
            PieceHash::new(attempt, tree.filter(|t| t.expected.is_some()))
        });
        state.add_leaf(offset, &block.data);
        if offset > state.ready_end {
            state.waiting.insert(offset, block);
            return;
        }
        if offset < state.ready_end {
            return;
        }
        state.ready_end += block.data.len() as u32;
        self.ready_bytes += block.data.len() as u64;
        state.ready.push_back(block);
        while let Some(next) = state.waiting.remove(&state.ready_end) {
            state.ready_end += next.data.len() as u32;
            self.ready_bytes += next.data.len() as u64;
            state.ready.push_back(next);
        }
    }

    /// Hashes what should be hashed now. Scalar workers hash everything at once; the lane worker
    /// waits for full lanes unless `idle`, over its budget, or data has waited [`MAX_GATHER`].
    fn hash(&mut self, idle: bool) {
        self.hash_now(idle);
        self.gathering_since = match (self.ready_bytes, self.gathering_since) {
            (0, _) => None,
            (_, Some(since)) => Some(since),
            (_, None) => Some(Instant::now()),
        };
    }

    fn hash_now(&mut self, idle: bool) {
        if !self.lanes {
            let ready: Vec<PieceIndex> = self
                .pieces
                .iter()
                .filter(|(_, state)| !state.ready.is_empty())
                .map(|(&piece, _)| piece)
                .collect();
            for piece in ready {
                self.hash_scalar(piece);
            }
            return;
        }
        loop {
            let mut candidates: Vec<PieceIndex> = self
                .pieces
                .iter()
                .filter(|(_, state)| state.lane_ready())
                .map(|(&piece, _)| piece)
                .collect();
            let waited = self
                .gathering_since
                .is_some_and(|since| since.elapsed() >= MAX_GATHER);
            let pressed = idle || waited || self.ready_bytes >= self.budget;
            if candidates.len() >= LANES || (candidates.len() >= MIN_LANES && pressed) {
                candidates.sort_unstable();
                candidates.truncate(LANES);
                self.hash_lanes(&candidates);
                continue;
            }
            if !pressed {
                return;
            }
            // Too few pieces for the lanes: hash the oldest one alone and look again.
            let oldest = self
                .pieces
                .iter()
                .filter(|(_, state)| !state.ready.is_empty())
                .map(|(&piece, _)| piece)
                .min();
            match oldest {
                Some(piece) => self.hash_scalar(piece),
                None => return,
            }
        }
    }

    /// One 16 KiB block of each of `pieces` (at most [`LANES`]) through the lanes.
    fn hash_lanes(&mut self, pieces: &[PieceIndex]) {
        self.lane_steps += 1;
        let mut taken: Vec<(PieceIndex, Arc<HeldBlock>)> = Vec::with_capacity(LANES);
        let mut states = [sha1x16::INIT; LANES];
        for &piece in pieces.iter().take(LANES) {
            if let Some(progress) = self.pieces.get_mut(&piece)
                && let Some(block) = progress.ready.pop_front()
            {
                states[taken.len()] = progress.state;
                taken.push((piece, block));
            }
        }
        let lanes: [&[u8]; LANES] = std::array::from_fn(|lane| {
            taken
                .get(lane)
                .map_or(&IDLE_LANE[..], |(_, block)| &block.data[..])
        });
        sha1x16::compress_lanes(&mut states, &lanes);
        for ((piece, block), state) in taken.into_iter().zip(states) {
            self.ready_bytes -= block.data.len() as u64;
            if let Some(progress) = self.pieces.get_mut(&piece) {
                progress.state = state;
                progress.hashed += block.data.len() as u32;
                if Some(progress.hashed) == self.metainfo.piece_len(piece) {
                    self.finish(piece, &[]);
                }
            }
        }
    }

    /// Every ready block of `piece`, with the scalar (SHA-NI where available) compression.
    fn hash_scalar(&mut self, piece: PieceIndex) {
        let Some(state) = self.pieces.get_mut(&piece) else {
            return;
        };
        self.scalar_pieces += 1;
        while let Some(block) = state.ready.pop_front() {
            self.ready_bytes -= block.data.len() as u64;
            let (whole, tail) = block.data.as_chunks::<64>();
            sha1::block_api::compress(&mut state.state, whole);
            state.hashed += (whole.len() * 64) as u32;
            if !tail.is_empty() {
                // Only a piece's last block can end off a 64-byte boundary.
                self.finish(piece, tail);
                return;
            }
        }
        if Some(state.hashed) == self.metainfo.piece_len(piece) {
            self.finish(piece, &[]);
        }
    }

    /// Pads the last bytes of `piece`, compares the digest and reports.
    fn finish(&mut self, piece: PieceIndex, tail: &[u8]) {
        let Some(progress) = self.pieces.remove(&piece) else {
            return;
        };
        self.ready_bytes -= ready_len(&progress);
        let total = u64::from(progress.hashed) + tail.len() as u64;
        let digest = sha1x16::digest(progress.state, tail, total);
        let complete = progress.ready.is_empty()
            && progress.waiting.is_empty()
            && Some(total) == self.metainfo.piece_len(piece).map(u64::from);
        (self.report)(
            piece,
            progress.attempt,
            complete && self.metainfo.piece_hash(piece) == Some(&digest) && progress.tree_matches(),
        );
    }
}

fn ready_len(state: &PieceHash) -> u64 {
    state.ready.iter().map(|b| b.data.len() as u64).sum()
}

#[cfg(test)]
mod tests {
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
}
