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
    /// A v2-only piece (no SHA-1 to compute): which of its blocks, padding included, came.
    seen: Vec<bool>,
    seen_bytes: u32,
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
            seen: Vec::new(),
            seen_bytes: 0,
        }
    }

    /// Counts a block of a v2-only piece once; true when the piece's `len` bytes are all in.
    fn see(&mut self, offset: u32, data_len: usize, len: u32) -> bool {
        let index = (offset / BLOCK_SIZE) as usize;
        if self.seen.is_empty() {
            self.seen = vec![false; len.div_ceil(BLOCK_SIZE) as usize];
        }
        if let Some(seen @ false) = self.seen.get_mut(index) {
            *seen = true;
            self.seen_bytes += data_len as u32;
        }
        self.seen_bytes >= len
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
    /// passes on its SHA-1 alone (a v2-only piece has none: see `v2_only_verdict`).
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
        let v2_only = !metainfo.meta_version().has_v1();
        let state = self.pieces.entry(piece).or_insert_with(|| {
            // Without the layer there is nothing to check the leaves against: no SHA-256 (and
            // a v2-only piece then fails).
            let tree = v2.then(|| metainfo.v2_piece(piece)).flatten();
            PieceHash::new(attempt, tree.filter(|t| t.expected.is_some()))
        });
        state.add_leaf(offset, &block.data);
        if v2_only {
            // SHA-256 leaves only: the block is not kept for a SHA-1 that does not exist.
            let len = metainfo.piece_len(piece).unwrap_or(0);
            if state.see(offset, block.data.len(), len)
                && let Some(state) = self.pieces.remove(&piece)
            {
                let verdict = state.tree.is_some() && state.tree_matches();
                (self.report)(piece, state.attempt, verdict);
            }
            return;
        }
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
mod tests;
