//! Storage throughput beside a plain `pwritev`/`preadv` loop doing the same work.
//!
//! `cargo bench -p cratetorrent-storage --bench storage` runs, for a payload (1 GiB by default,
//! `CT_BENCH_MIB` to change), on `/dev/shm` and on disk (`CT_BENCH_DISK_DIR`, default `/var/tmp`;
//! `CT_BENCH_DIRS=shm` or `disk` for one of them),
//! with one file and with 200 files, with 256 KiB and 1 MiB pieces:
//! - write + hash: 16 KiB blocks shuffled within each piece, until every piece is verified;
//! - read for seeding: every block requested in piece order (256 outstanding);
//! - full check of the existing data (no resume data), on all cores.
//!
//! `CT_BENCH_LANES=0` hashes each piece alone instead of sixteen at once with AVX-512.
//!
//! It prints MB/s for the storage (io_uring and portable backends) and for the plain loop (the
//! median of three runs for writes and reads, after one discarded warm-up run), plus the peak RSS
//! of the process after the write runs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    missing_docs
)]

use std::fs::File;
use std::io::IoSlice;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cratetorrent_metainfo::Metainfo;
use cratetorrent_metainfo::bencode::{DictBuilder, Encode};
use cratetorrent_storage::{BackendKind, Storage, StorageConfig, StorageEvent, WriteStatus};
use cratetorrent_wire::{BlockInfo, Geometry};
use sha1::{Digest, Sha1};

/// Distinct piece contents cycled through the payload, so the source stays small in memory.
const PATTERNS: usize = 8;

struct Case {
    metainfo: Metainfo,
    patterns: Vec<Bytes>,
    files: Vec<(PathBuf, u64)>,
}

fn pattern(len: usize, seed: u64) -> Bytes {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

fn case(total: u64, file_count: usize, piece_length: u32) -> Case {
    let patterns: Vec<Bytes> = (0..PATTERNS)
        .map(|i| pattern(piece_length as usize, i as u64))
        .collect();
    let pieces = total.div_ceil(u64::from(piece_length));
    let mut hashes = Vec::with_capacity(pieces as usize * 20);
    for piece in 0..pieces {
        let len = (total - piece * u64::from(piece_length)).min(u64::from(piece_length)) as usize;
        hashes.extend_from_slice(&<[u8; 20]>::from(Sha1::digest(
            &patterns[piece as usize % PATTERNS][..len],
        )));
    }
    // Mixed sizes: every tenth file is tiny, the rest share what is left.
    let tiny = 1000u64;
    let tiny_count = (file_count / 10) as u64;
    let big_count = file_count as u64 - tiny_count;
    let big = (total - tiny * tiny_count) / big_count;
    let mut lengths: Vec<u64> = (0..file_count)
        .map(|i| if i % 10 == 9 { tiny } else { big })
        .collect();
    let sum: u64 = lengths.iter().sum();
    lengths[0] += total - sum;
    let mut info = DictBuilder::new();
    if file_count == 1 {
        info.insert("length", total as i64);
    } else {
        let entries: Vec<DictBuilder> = lengths
            .iter()
            .enumerate()
            .map(|(i, len)| {
                let mut entry = DictBuilder::new();
                entry
                    .insert("length", *len as i64)
                    .insert("path", vec![format!("f{i:03}")]);
                entry
            })
            .collect();
        info.insert("files", entries);
    }
    info.insert("name", "bench")
        .insert("piece length", piece_length)
        .insert("pieces", hashes.as_slice());
    let mut torrent = DictBuilder::new();
    torrent.insert("info", info);
    let metainfo = Metainfo::from_bytes(&torrent.to_bencode()).unwrap();
    let files = metainfo
        .files()
        .iter()
        .map(|f| (f.path(), f.length()))
        .collect();
    Case {
        metainfo,
        patterns,
        files,
    }
}

fn block_data(case: &Case, block: BlockInfo) -> Bytes {
    let pattern = &case.patterns[block.piece as usize % PATTERNS];
    pattern.slice(block.offset as usize..(block.offset + block.len) as usize)
}

/// Blocks of each piece in a shuffled order, pieces in order.
fn shuffled_blocks(geometry: &Geometry, piece: u32, seed: &mut u64) -> Vec<BlockInfo> {
    let mut blocks: Vec<BlockInfo> = geometry.blocks(piece).collect();
    for i in (1..blocks.len()).rev() {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        blocks.swap(i, (*seed % (i as u64 + 1)) as usize);
    }
    blocks
}

fn mbps(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64() / 1e6
}

fn config(backend: BackendKind) -> StorageConfig {
    StorageConfig {
        backend,
        // CT_BENCH_LANES=0: hash each piece alone (SHA-NI) even where AVX-512 lanes are available.
        hash_lanes: std::env::var("CT_BENCH_LANES").map_or(true, |v| v != "0"),
        resume_interval: Duration::from_secs(3600),
        ..StorageConfig::default()
    }
}

fn write_storage(case: &Case, dir: &Path, backend: BackendKind) -> f64 {
    let _ = std::fs::remove_dir_all(dir);
    let geometry = Geometry::of(&case.metainfo);
    let started = Instant::now();
    let (storage, events) = Storage::open(&case.metainfo, dir, config(backend), || {}).unwrap();
    let mut verified = 0;
    let mut seed = 7u64;
    let handle = |event: StorageEvent, verified: &mut u32| match event {
        StorageEvent::PieceVerified(_) => *verified += 1,
        StorageEvent::HashFailed { piece, .. } => panic!("piece {piece} failed"),
        StorageEvent::WriteFailed { error, .. } => panic!("{error}"),
        _ => {}
    };
    for piece in 0..geometry.piece_count() {
        for block in shuffled_blocks(&geometry, piece, &mut seed) {
            if storage
                .write_block(piece, block.offset, block_data(case, block), 1)
                .unwrap()
                == WriteStatus::Full
            {
                // Back-pressure: wait for the storage to drain, as the engine stops reading sockets.
                while storage.is_full() {
                    handle(
                        events.recv_timeout(Duration::from_secs(30)).unwrap(),
                        &mut verified,
                    );
                }
            }
        }
    }
    while verified < geometry.piece_count() {
        handle(
            events.recv_timeout(Duration::from_secs(30)).unwrap(),
            &mut verified,
        );
    }
    let elapsed = started.elapsed();
    drop(storage);
    mbps(case.metainfo.total_length(), elapsed)
}

/// The plain loop: hash each piece, then `pwritev` its blocks file slice by file slice.
fn write_plain(case: &Case, dir: &Path) -> f64 {
    let _ = std::fs::remove_dir_all(dir);
    let geometry = Geometry::of(&case.metainfo);
    let started = Instant::now();
    let mut files = Vec::new();
    for (path, len) in &case.files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        file.set_len(*len).unwrap();
        files.push(file);
    }
    for piece in 0..geometry.piece_count() {
        let len = case.metainfo.piece_len(piece).unwrap() as usize;
        let data = &case.patterns[piece as usize % PATTERNS][..len];
        assert_eq!(
            Some(&<[u8; 20]>::from(Sha1::digest(data))),
            case.metainfo.piece_hash(piece)
        );
        let mut at = 0usize;
        for slice in case.metainfo.piece_slices(piece) {
            let part = &data[at..at + slice.len as usize];
            let mut written = 0;
            while written < part.len() {
                let blocks: Vec<IoSlice<'_>> =
                    part[written..].chunks(16384).map(IoSlice::new).collect();
                written += rustix::io::pwritev(
                    &files[slice.file_index],
                    &blocks,
                    slice.offset + written as u64,
                )
                .unwrap();
            }
            at += slice.len as usize;
        }
    }
    mbps(case.metainfo.total_length(), started.elapsed())
}

fn read_storage(case: &Case, dir: &Path, backend: BackendKind) -> f64 {
    let geometry = Geometry::of(&case.metainfo);
    let (storage, events) = Storage::open(&case.metainfo, dir, config(backend), || {}).unwrap();
    assert!(storage.have().is_full());
    let blocks: Vec<BlockInfo> = (0..geometry.piece_count())
        .flat_map(|p| geometry.blocks(p).collect::<Vec<_>>())
        .collect();
    let started = Instant::now();
    let (mut sent, mut received, mut bytes) = (0usize, 0usize, 0u64);
    while received < blocks.len() {
        while sent < blocks.len() && sent - received < 256 {
            storage.read_block(blocks[sent], sent as u64).unwrap();
            sent += 1;
        }
        if let StorageEvent::BlockRead { result, .. } =
            events.recv_timeout(Duration::from_secs(30)).unwrap()
        {
            bytes += result.unwrap().len() as u64;
            received += 1;
        }
    }
    mbps(bytes, started.elapsed())
}

fn read_plain(case: &Case, dir: &Path) -> f64 {
    let geometry = Geometry::of(&case.metainfo);
    let files: Vec<File> = case
        .files
        .iter()
        .map(|(p, _)| File::open(dir.join(p)).unwrap())
        .collect();
    let mut buf = vec![0u8; 16384];
    let started = Instant::now();
    for piece in 0..geometry.piece_count() {
        for block in geometry.blocks(piece) {
            let offset = u64::from(piece) * u64::from(case.metainfo.piece_length())
                + u64::from(block.offset);
            let mut at = 0usize;
            for slice in case
                .metainfo
                .byte_range_slices(offset, u64::from(block.len))
            {
                files[slice.file_index]
                    .read_exact_at(&mut buf[at..at + slice.len as usize], slice.offset)
                    .unwrap();
                at += slice.len as usize;
            }
        }
    }
    mbps(case.metainfo.total_length(), started.elapsed())
}

fn check_storage(case: &Case, dir: &Path) -> f64 {
    let _ = std::fs::remove_dir_all(dir.join(".cratetorrent"));
    let started = Instant::now();
    let (storage, _) =
        Storage::open(&case.metainfo, dir, config(BackendKind::Auto), || {}).unwrap();
    let elapsed = started.elapsed();
    assert!(storage.have().is_full());
    mbps(case.metainfo.total_length(), elapsed)
}

fn check_plain(case: &Case, dir: &Path) -> f64 {
    let files: Vec<File> = case
        .files
        .iter()
        .map(|(p, _)| File::open(dir.join(p)).unwrap())
        .collect();
    let mut buf = vec![0u8; case.metainfo.piece_length() as usize];
    let started = Instant::now();
    for piece in 0..case.metainfo.piece_count() {
        let len = case.metainfo.piece_len(piece).unwrap() as usize;
        let mut at = 0usize;
        for slice in case.metainfo.piece_slices(piece) {
            files[slice.file_index]
                .read_exact_at(&mut buf[at..at + slice.len as usize], slice.offset)
                .unwrap();
            at += slice.len as usize;
        }
        assert_eq!(
            Some(&<[u8; 20]>::from(Sha1::digest(&buf[..len]))),
            case.metainfo.piece_hash(piece)
        );
    }
    mbps(case.metainfo.total_length(), started.elapsed())
}

/// The median of three runs.
fn median3(mut run: impl FnMut() -> f64) -> f64 {
    let mut figures = [run(), run(), run()];
    figures.sort_by(f64::total_cmp);
    figures[1]
}

/// The process's peak resident set (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mib: u64 = std::env::var("CT_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let disk =
        PathBuf::from(std::env::var("CT_BENCH_DISK_DIR").unwrap_or_else(|_| "/var/tmp".into()));
    let total = mib << 20;
    println!(
        "payload {mib} MiB; MB/s (1 MB = 10^6 bytes); storage io_uring | storage portable | plain loop"
    );
    println!(
        "{:<10} {:<9} {:<7} {:>26} {:>26} {:>20}",
        "dir", "files", "piece", "write+hash", "read (16 KiB blocks)", "full check"
    );
    let mut warmed_up = false;
    let wanted = std::env::var("CT_BENCH_DIRS").unwrap_or_else(|_| "shm,disk".into());
    let dirs = [
        ("/dev/shm", "shm", PathBuf::from("/dev/shm")),
        ("disk", "disk", disk),
    ];
    for (dir_name, _, base) in dirs
        .into_iter()
        .filter(|(_, key, _)| wanted.split(',').any(|w| w == *key))
    {
        for files in [1usize, 200] {
            for piece_length in [256u32 << 10, 1 << 20] {
                let case = case(total, files, piece_length);
                let dir = base.join(format!("ct-storage-bench-{}", std::process::id()));
                if !warmed_up {
                    // The first run in a process pays for thread start-up and fresh page faults.
                    write_storage(&case, &dir, BackendKind::IoUring);
                    warmed_up = true;
                }
                let write = (
                    median3(|| write_storage(&case, &dir, BackendKind::IoUring)),
                    median3(|| write_storage(&case, &dir, BackendKind::Portable)),
                    median3(|| write_plain(&case, &dir)),
                );
                let rss = peak_rss_mib();
                // Leave the storage's data in place for the read and check runs.
                write_storage(&case, &dir, BackendKind::IoUring);
                let read = (
                    median3(|| read_storage(&case, &dir, BackendKind::IoUring)),
                    median3(|| read_storage(&case, &dir, BackendKind::Portable)),
                    median3(|| read_plain(&case, &dir)),
                );
                let check = (check_storage(&case, &dir), check_plain(&case, &dir));
                let _ = std::fs::remove_dir_all(&dir);
                println!(
                    "{dir_name:<10} {files:<9} {:<7} {:>8.0} | {:>6.0} | {:>6.0} {:>8.0} | {:>6.0} | {:>6.0} {:>10.0} | {:>6.0}   (peak RSS {rss:.0} MiB)",
                    format!("{}K", piece_length >> 10),
                    write.0,
                    write.1,
                    write.2,
                    read.0,
                    read.1,
                    read.2,
                    check.0,
                    check.1
                );
            }
        }
    }
}
