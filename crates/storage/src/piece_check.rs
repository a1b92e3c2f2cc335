//! Hashing pieces that are already on disk: the check when a storage opens, and `verify`.
//!
//! Threads (one per core) take work from a shared counter. Where the CPU has AVX-512, a unit of
//! work is up to sixteen full-length pieces hashed together in the lanes of [`crate::sha1x16`],
//! read [`CHUNK`] bytes of each at a time (16 × 128 KiB of buffers per thread, whatever the piece
//! size); otherwise, and for the short last piece, a unit is one piece read whole and hashed
//! alone. Reads are `pread`s through a small per-thread cache of open files; padding files read
//! as zeros. Nothing is written. A v2-only torrent's pieces (BEP 52) have no SHA-1: each is
//! read whole and its 16 KiB blocks' SHA-256 leaves are checked against its file's tree.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicUsize, Ordering};

use cratetorrent_metainfo::{PieceIndex, merkle};

use crate::beneath::{Access, Beneath};
use crate::layout::Layout;
use crate::sha1x16::{self, LANES};

/// Bytes of each piece read per step in the lanes.
const CHUNK: usize = 128 * 1024;
/// Open files kept per thread.
const MAX_OPEN: usize = 32;

/// Hashes `pieces` from disk on `threads` threads and returns those that match; `tick` is called
/// once per piece checked.
pub(crate) fn hash_pieces(
    layout: &Layout,
    root: &Beneath,
    pieces: &[PieceIndex],
    threads: usize,
    tick: &(dyn Fn() + Sync),
) -> Vec<PieceIndex> {
    let metainfo = layout.metainfo();
    let full = metainfo.piece_length();
    let v2_only = !metainfo.meta_version().has_v1();
    let (whole, short): (Vec<PieceIndex>, Vec<PieceIndex>) = if sha1x16::supported() && !v2_only {
        pieces
            .iter()
            .partition(|&&p| metainfo.piece_len(p) == Some(full))
    } else {
        (Vec::new(), pieces.to_vec())
    };
    let units: Vec<&[PieceIndex]> = whole.chunks(LANES).chain(short.chunks(1)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.clamp(1, units.len().max(1)))
            .map(|_| {
                scope.spawn(|| {
                    let mut checker = Checker {
                        layout,
                        root,
                        open: HashMap::new(),
                        buffers: Vec::new(),
                    };
                    let mut good = Vec::new();
                    while let Some(&unit) = units.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let verdicts = if unit.len() == 1 {
                            vec![checker.check_one(unit[0])]
                        } else {
                            checker.check_lanes(unit)
                        };
                        for (&piece, ok) in unit.iter().zip(verdicts) {
                            if ok {
                                good.push(piece);
                            }
                            tick();
                        }
                    }
                    good
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    })
}

/// Whether `data` (the whole piece) hashes to the piece's node in its file's merkle tree.
fn tree_matches(
    metainfo: &cratetorrent_metainfo::Metainfo,
    piece: PieceIndex,
    data: &[u8],
) -> bool {
    let Some(v2) = metainfo.v2_piece(piece) else {
        return false;
    };
    let (Some(expected), Some(file_data)) = (v2.expected, data.get(..v2.data_len as usize)) else {
        return false;
    };
    let leaves: Vec<merkle::Hash> = file_data
        .chunks(merkle::BLOCK_LEN)
        .map(merkle::block_hash)
        .collect();
    merkle::root(&leaves, v2.width as usize) == expected
}

struct Checker<'a> {
    layout: &'a Layout,
    root: &'a Beneath,
    open: HashMap<usize, File>,
    buffers: Vec<Vec<u8>>,
}

impl Checker<'_> {
    /// One piece, read whole and hashed alone.
    fn check_one(&mut self, piece: PieceIndex) -> bool {
        let len = self.layout.metainfo().piece_len(piece).unwrap_or(0) as usize;
        let mut buffer = self.buffers.pop().unwrap_or_default();
        buffer.resize(len, 0);
        let ok = self.read(piece, 0, &mut buffer);
        let metainfo = self.layout.metainfo();
        if !metainfo.meta_version().has_v1() {
            let verdict = ok && tree_matches(metainfo, piece, &buffer);
            self.buffers.push(buffer);
            return verdict;
        }
        let whole = len / 64 * 64;
        let mut state = sha1x16::INIT;
        sha1::block_api::compress(&mut state, buffer[..whole].as_chunks::<64>().0);
        let digest = sha1x16::digest(state, &buffer[whole..], len as u64);
        self.buffers.push(buffer);
        ok && self.layout.metainfo().piece_hash(piece) == Some(&digest)
    }

    /// Up to [`LANES`] pieces of the same length, in lockstep through the lanes.
    fn check_lanes(&mut self, pieces: &[PieceIndex]) -> Vec<bool> {
        let metainfo = self.layout.metainfo();
        let len = metainfo.piece_length() as usize;
        let mut buffers: Vec<Vec<u8>> = (0..LANES)
            .map(|_| self.buffers.pop().unwrap_or_default())
            .collect();
        for buffer in &mut buffers {
            buffer.resize(CHUNK.min(len), 0);
        }
        let mut states = [sha1x16::INIT; LANES];
        let mut read_ok = vec![true; pieces.len()];
        let mut at = 0;
        let mut tail = 0..0;
        while at < len {
            let n = CHUNK.min(len - at);
            for ((&piece, buffer), ok) in pieces.iter().zip(&mut buffers).zip(&mut read_ok) {
                *ok &= self.read(piece, at, &mut buffer[..n]);
            }
            // Idle lanes hash whatever their buffer holds; their states are never read.
            let whole = n / 64 * 64;
            let lanes: [&[u8]; LANES] = std::array::from_fn(|lane| &buffers[lane][..whole]);
            sha1x16::compress_lanes(&mut states, &lanes);
            tail = whole..n;
            at += n;
        }
        let verdicts = pieces
            .iter()
            .enumerate()
            .map(|(lane, &piece)| {
                let digest =
                    sha1x16::digest(states[lane], &buffers[lane][tail.clone()], len as u64);
                read_ok[lane] && metainfo.piece_hash(piece) == Some(&digest)
            })
            .collect();
        self.buffers.extend(buffers);
        verdicts
    }

    /// Fills `out` with the piece's bytes from `start` on; false if a file is missing or short.
    fn read(&mut self, piece: PieceIndex, start: usize, out: &mut [u8]) -> bool {
        let from = self
            .layout
            .offset(piece, u32::try_from(start).unwrap_or(u32::MAX));
        let mut at = 0;
        let mut ok = true;
        let slices: Vec<_> = self.layout.slices(from, out.len() as u64).collect();
        for slice in slices {
            let part = &mut out[at..at + slice.len as usize];
            at += slice.len as usize;
            let file = self.layout.file(slice.file_index);
            if file.padding {
                part.fill(0);
                continue;
            }
            if !self.open.contains_key(&slice.file_index) {
                if self.open.len() >= MAX_OPEN {
                    self.open.clear();
                }
                match self.root.open_file(&file.rel, Access::Read) {
                    Ok(opened) => {
                        self.open.insert(slice.file_index, opened);
                    }
                    Err(_) => {
                        ok = false;
                        continue;
                    }
                }
            }
            ok &= self
                .open
                .get(&slice.file_index)
                .is_some_and(|f| f.read_exact_at(part, slice.offset).is_ok());
        }
        ok && at == out.len()
    }
}
