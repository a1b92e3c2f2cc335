//! The disk thread's bookkeeping driven command by command, in orders that threads make rare.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cratetorrent_metainfo::{Metainfo, TorrentBuilder};

use super::{Command, Disk};
use crate::backend::Backend;
use crate::backend::Doorbell;
use crate::backend::OpQueue;
use crate::beneath::Beneath;
use crate::file_cache::FileCache;
use crate::hasher::Hashers;
use crate::layout::Layout;
use crate::memory::{HeldBlock, MemoryGauge};
use crate::read_cache::ReadCache;
use crate::read_memory::ReadMemory;
use crate::sync_backend::SyncBackend;
use crate::writeback::Writeback;
use crate::{StorageError, StorageEvent};

/// A disk whose hashers report nowhere: verdicts are fed by hand with [`Command::Hashed`].
fn disk(metainfo: &Metainfo, dir: &std::path::Path) -> (Disk, mpsc::Receiver<StorageEvent>) {
    let backend = SyncBackend::new(1, None);
    let (events, receiver) = mpsc::channel();
    let root = Arc::new(Beneath::open(dir, true).unwrap());
    let doorbell = Arc::new(Doorbell {
        rung: AtomicBool::new(false),
        wake: backend.waker(),
    });
    let disk = Disk {
        layout: Arc::new(Layout::new(metainfo, dir)),
        io: OpQueue::default(),
        files: FileCache::new(8, false, root.clone()),
        root,
        events,
        notify: Arc::new(|| {}),
        hashers: Hashers::start(1, false, 1 << 20, metainfo.clone(), Box::new(|_, _, _| {})),
        gauge: Arc::new(MemoryGauge::new(1 << 20, Box::new(|| {}))),
        have: cratetorrent_wire::Bitfield::new(metainfo.piece_count()),
        read_cache: ReadCache::new(1 << 20, ReadMemory::new(1 << 20, 2 << 20, doorbell)),
        resume_interval: Duration::from_secs(3600),
        pieces: HashMap::new(),
        attempts: 0,
        waiting: Vec::new(),
        deferred: VecDeque::new(),
        ops: HashMap::new(),
        next_op: 0,
        dirty: HashSet::new(),
        writeback: Writeback::default(),
        unsaved: false,
        last_save: Instant::now(),
        syncs_left: 0,
        flush_waiters: Vec::new(),
        flush_error: None,
        draining: false,
        shutdown: None,
        flush_snapshot: None,
        tainted: HashSet::new(),
        fail_sync: None,
        unparking: BTreeSet::new(),
    };
    (disk, receiver)
}

#[test]
fn a_stale_verdict_does_not_land_on_a_new_attempt() {
    let source = tempfile::tempdir().unwrap();
    std::fs::write(source.path().join("p"), vec![5u8; 16_384]).unwrap();
    let bytes = TorrentBuilder::new(source.path().join("p"))
        .piece_length(16_384)
        .build()
        .unwrap();
    let metainfo = Metainfo::from_bytes(&bytes).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut disk, _events) = disk(&metainfo, dir.path());
    let gauge = disk.gauge.clone();
    let block = || HeldBlock::new(Bytes::from(vec![5u8; 16_384]), gauge.clone()).0;

    // Attempt 1: the block is queued and hashed; its write fails (not ENOSPC), which drops the
    // piece before the hasher's verdict is handled.
    let first = block();
    disk.handle(Command::Write {
        piece: 0,
        offset: 0,
        block: first,
        peer: 1,
    });
    disk.waiting.clear();
    let error = StorageError::from_io(std::io::Error::from_raw_os_error(libc::EIO), "p", "write");
    disk.fail_pieces(&[0], error);
    assert!(
        !disk.pieces.contains_key(&0),
        "the failed attempt is dropped"
    );
    let stale = disk.attempts;

    // Attempt 2 starts, then attempt 1's verdict arrives.
    let second = block();
    disk.handle(Command::Write {
        piece: 0,
        offset: 0,
        block: second,
        peer: 2,
    });
    disk.handle(Command::Hashed {
        piece: 0,
        attempt: stale,
        ok: true,
    });
    let state = disk.pieces.get(&0).expect("attempt 2 is in progress");
    assert_eq!(state.hash, None, "attempt 1's verdict landed on attempt 2");
    // Attempt 2's own verdict still counts.
    let current = state.attempt;
    assert_ne!(current, stale);
    disk.handle(Command::Hashed {
        piece: 0,
        attempt: current,
        ok: true,
    });
    assert_eq!(disk.pieces.get(&0).map(|s| s.hash), Some(Some(true)));
}
