//! Piece hashing off the caller's thread, from memory, as blocks arrive.
//!
//! Each piece belongs to one worker (piece index modulo the worker count), which feeds blocks to
//! SHA-1 in offset order and holds out-of-order blocks until the gap before them fills. Nothing
//! is ever read back from disk. Jobs are queued and handed over in one batch per worker per turn
//! of the disk thread, so a burst of blocks costs a worker one wake-up, not one per block.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use cratetorrent_metainfo::{Metainfo, PieceIndex};
use sha1::{Digest, Sha1};

use crate::memory::HeldBlock;

pub(crate) enum HashJob {
    Block {
        piece: PieceIndex,
        offset: u32,
        block: Arc<HeldBlock>,
    },
    /// Forget a piece's partial state (its download was abandoned).
    Forget(PieceIndex),
}

/// Where a worker reports `(piece, hash matches)`.
pub(crate) type Report = Box<dyn Fn(PieceIndex, bool) + Send + Sync>;

struct PieceHash {
    sha: Sha1,
    next: u32,
    waiting: BTreeMap<u32, Arc<HeldBlock>>,
}

pub(crate) struct Hashers {
    queues: Vec<Sender<Vec<HashJob>>>,
    batches: Vec<Vec<HashJob>>,
    workers: Vec<JoinHandle<()>>,
}

impl Hashers {
    pub(crate) fn start(threads: usize, metainfo: Metainfo, report: Report) -> Self {
        let report = Arc::new(report);
        let metainfo = Arc::new(metainfo);
        let mut queues = Vec::new();
        let mut workers = Vec::new();
        for index in 0..threads.max(1) {
            let (queue, jobs) = mpsc::channel();
            let (metainfo, report) = (metainfo.clone(), report.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("ct-hash-{index}"))
                .spawn(move || work(&jobs, &metainfo, &**report));
            if let Ok(handle) = spawned {
                queues.push(queue);
                workers.push(handle);
            }
        }
        let batches = queues.iter().map(|_| Vec::new()).collect();
        Self {
            queues,
            batches,
            workers,
        }
    }

    /// Queues `job` for the worker owning its piece; [`flush`](Self::flush) hands it over.
    pub(crate) fn push(&mut self, job: HashJob) {
        let piece = match &job {
            HashJob::Block { piece, .. } | HashJob::Forget(piece) => *piece,
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

fn work(
    jobs: &Receiver<Vec<HashJob>>,
    metainfo: &Metainfo,
    report: &(dyn Fn(PieceIndex, bool) + Send + Sync),
) {
    let mut pieces: HashMap<PieceIndex, PieceHash> = HashMap::new();
    while let Ok(batch) = jobs.recv() {
        for job in batch {
            match job {
                HashJob::Forget(piece) => {
                    pieces.remove(&piece);
                }
                HashJob::Block {
                    piece,
                    offset,
                    block,
                } => hash_block(&mut pieces, metainfo, report, piece, offset, block),
            }
        }
    }
}

fn hash_block(
    pieces: &mut HashMap<PieceIndex, PieceHash>,
    metainfo: &Metainfo,
    report: &(dyn Fn(PieceIndex, bool) + Send + Sync),
    piece: PieceIndex,
    offset: u32,
    block: Arc<HeldBlock>,
) {
    let state = pieces.entry(piece).or_insert_with(|| PieceHash {
        sha: Sha1::new(),
        next: 0,
        waiting: BTreeMap::new(),
    });
    if offset < state.next {
        return;
    }
    if offset == state.next {
        // In order, the common case: no detour through the map (and its node allocation).
        state.sha.update(&block.data);
        state.next += block.data.len() as u32;
        drop(block);
    } else {
        state.waiting.insert(offset, block);
    }
    while let Some(block) = state.waiting.remove(&state.next) {
        state.sha.update(&block.data);
        state.next += block.data.len() as u32;
    }
    if Some(state.next) == metainfo.piece_len(piece)
        && let Some(state) = pieces.remove(&piece)
    {
        let digest: [u8; 20] = state.sha.finalize().into();
        report(piece, metainfo.piece_hash(piece) == Some(&digest));
    }
}
