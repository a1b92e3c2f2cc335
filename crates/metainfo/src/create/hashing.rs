//! Hashing a payload for a new torrent on several threads: v1 SHA-1 pieces over the laid-out
//! files, v2 merkle trees per file (BEP 52), or both from one read of each piece.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use sha1::{Digest, Sha1};

use super::{CreateError, PayloadFile, Progress};
use crate::merkle::{self, BLOCK_LEN, Hash};

/// Which hashes to compute.
#[derive(Debug, Clone, Copy)]
pub(super) struct Wanted {
    pub(super) v1: bool,
    pub(super) v2: bool,
}

/// A payload's hashes.
pub(super) struct Hashes {
    /// 20 bytes per piece; empty unless v1 was wanted.
    pub(super) pieces: Vec<u8>,
    /// For each layout entry that is a non-empty file, its merkle tree (when v2 was wanted).
    pub(super) trees: Vec<Option<FileTree>>,
}

/// A file's merkle root and piece layer.
pub(super) struct FileTree {
    pub(super) root: Hash,
    /// One hash per piece; empty for a file of one piece or less, which has no layer.
    pub(super) layer: Vec<Hash>,
}

/// One piece's share of its file's tree: the root of its subtree when the file spans more than
/// a piece, else the file's leaves (its tree is narrower than a piece's).
enum PieceTree {
    Root(Hash),
    Leaves(Vec<Hash>),
}

struct PieceHashes {
    piece: u32,
    sha1: Option<[u8; 20]>,
    /// The layout entry the piece's data belongs to, and its share of that file's tree.
    tree: Option<(usize, PieceTree)>,
}

/// Hashes all pieces of `layout` on `threads` threads, each taking the next piece from a shared
/// counter. For v2, every non-empty file must start on a piece boundary (the layout's padding
/// entries see to it), so each piece's data belongs to one file.
pub(super) fn hash_payload(
    layout: &[PayloadFile],
    piece_length: u32,
    wanted: Wanted,
    threads: usize,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Hashes, CreateError> {
    let total = layout.last().map_or(0, |f| f.offset + f.length);
    let piece_count = u32::try_from(total.div_ceil(u64::from(piece_length)))
        .map_err(|_| CreateError::TooManyPieces)?;
    let next = AtomicU32::new(0);
    let hashed = AtomicU64::new(0);
    let threads = threads.min(piece_count as usize).max(1);
    let results: Vec<Result<Vec<PieceHashes>, CreateError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut reader = PieceReader::new(layout);
                    let mut buffer = vec![0u8; piece_length as usize];
                    let mut out = Vec::new();
                    loop {
                        let piece = next.fetch_add(1, Ordering::Relaxed);
                        if piece >= piece_count {
                            return Ok(out);
                        }
                        let start = u64::from(piece) * u64::from(piece_length);
                        let len = u32::try_from(total - start)
                            .map_or(piece_length, |rest| rest.min(piece_length))
                            as usize;
                        let data = &mut buffer[..len];
                        reader
                            .read(start, data)
                            .inspect_err(|_| next.store(piece_count, Ordering::Relaxed))?;
                        out.push(PieceHashes {
                            piece,
                            sha1: wanted.v1.then(|| Sha1::digest(&*data).into()),
                            tree: if wanted.v2 {
                                piece_tree(layout, start, data, piece_length)
                            } else {
                                None
                            },
                        });
                        let done = hashed.fetch_add(len as u64, Ordering::Relaxed) + len as u64;
                        progress(Progress {
                            hashed: done,
                            total,
                        });
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut pieces = vec![
        0u8;
        if wanted.v1 {
            piece_count as usize * 20
        } else {
            0
        }
    ];
    let mut shares: Vec<Option<(usize, PieceTree)>> = (0..piece_count).map(|_| None).collect();
    for result in results {
        for hashes in result? {
            if let Some(sha1) = hashes.sha1 {
                let at = hashes.piece as usize * 20;
                pieces[at..at + 20].copy_from_slice(&sha1);
            }
            shares[hashes.piece as usize] = hashes.tree;
        }
    }
    let trees = if wanted.v2 {
        assemble_trees(layout.len(), shares, piece_length)?
    } else {
        Vec::new()
    };
    Ok(Hashes { pieces, trees })
}

/// The v2 share of the piece at `start` whose bytes are `data`: the leaves of the part that
/// belongs to the file the piece starts in (the rest is padding).
fn piece_tree(
    layout: &[PayloadFile],
    start: u64,
    data: &[u8],
    piece_length: u32,
) -> Option<(usize, PieceTree)> {
    // The first entry ending after `start`: empty files there end at it and are passed over.
    let index = layout.partition_point(|f| f.offset + f.length <= start);
    let file = layout.get(index).filter(|f| !f.pad)?;
    let in_file = usize::try_from(file.offset + file.length - start)
        .map_or(data.len(), |rest| rest.min(data.len()));
    let leaves: Vec<Hash> = data[..in_file]
        .chunks(BLOCK_LEN)
        .map(merkle::block_hash)
        .collect();
    let share = if file.length <= u64::from(piece_length) {
        PieceTree::Leaves(leaves)
    } else {
        PieceTree::Root(merkle::root(&leaves, piece_length as usize / BLOCK_LEN))
    };
    Some((index, share))
}

/// Each file's tree from its pieces' shares, taken in piece order.
fn assemble_trees(
    entries: usize,
    shares: Vec<Option<(usize, PieceTree)>>,
    piece_length: u32,
) -> Result<Vec<Option<FileTree>>, CreateError> {
    let mut trees: Vec<Option<FileTree>> = (0..entries).map(|_| None).collect();
    for (index, share) in shares.into_iter().flatten() {
        match share {
            PieceTree::Leaves(leaves) => {
                trees[index] = Some(FileTree {
                    root: merkle::root(&leaves, leaves.len()),
                    layer: Vec::new(),
                });
            }
            PieceTree::Root(root) => trees[index]
                .get_or_insert_with(|| FileTree {
                    root: [0; 32],
                    layer: Vec::new(),
                })
                .layer
                .push(root),
        }
    }
    for tree in trees.iter_mut().flatten() {
        if !tree.layer.is_empty() {
            tree.root = merkle::root_of_layer(&tree.layer, piece_length)
                .ok_or(CreateError::InvalidPieceLength(piece_length))?;
        }
    }
    Ok(trees)
}

/// Reads torrent byte ranges across file boundaries, keeping the last file open; padding
/// entries read as zeros.
struct PieceReader<'f> {
    files: &'f [PayloadFile],
    open: Option<(usize, File)>,
}

impl<'f> PieceReader<'f> {
    fn new(files: &'f [PayloadFile]) -> Self {
        Self { files, open: None }
    }

    fn read(&mut self, offset: u64, mut buffer: &mut [u8]) -> Result<(), CreateError> {
        let mut index = self
            .files
            .partition_point(|f| f.offset + f.length <= offset);
        let mut position = offset;
        while !buffer.is_empty() {
            let Some(file) = self.files.get(index) else {
                return Err(CreateError::FileChanged(
                    self.files
                        .last()
                        .map(|f| f.path.clone())
                        .unwrap_or_default(),
                ));
            };
            let in_file = position - file.offset;
            let take = usize::try_from(file.length - in_file)
                .map_or(buffer.len(), |rest| rest.min(buffer.len()));
            if take > 0 {
                let (head, rest) = buffer.split_at_mut(take);
                if file.pad {
                    head.fill(0);
                } else {
                    self.file(index)?.read_exact_at(head, in_file).map_err(
                        |source| match source.kind() {
                            io::ErrorKind::UnexpectedEof => {
                                CreateError::FileChanged(file.path.clone())
                            }
                            _ => CreateError::Io {
                                path: file.path.clone(),
                                source,
                            },
                        },
                    )?;
                }
                buffer = rest;
                position += take as u64;
            }
            index += 1;
        }
        Ok(())
    }

    fn file(&mut self, index: usize) -> Result<&File, CreateError> {
        if self.open.as_ref().is_none_or(|(open, _)| *open != index) {
            self.open = None;
        }
        let path = &self.files[index].path;
        let open = match self.open.take() {
            Some(open) => open,
            None => (
                index,
                File::open(path).map_err(|source| CreateError::Io {
                    path: path.clone(),
                    source,
                })?,
            ),
        };
        Ok(&self.open.insert(open).1)
    }
}
