//! The disk thread torrents share: one thread and one backend (one io_uring, or one set of
//! `pwritev` threads) run the disk work of every [`Storage`](crate::Storage) opened with the same
//! [`DiskPool`], so a thousand seeding torrents cost no thread, ring or descriptor each.
//!
//! Each torrent's state stays its own [`Disk`]. The pool routes commands to it by id, starts the
//! operations it queues under ids of the pool's own, hands each completion back to its owner,
//! and gives a turn only to the torrents with something to do, so idle torrents cost nothing
//! per wake-up.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;

use crate::backend::{Backend, Completion, Doorbell};
use crate::beneath::Beneath;
use crate::disk::{Command, Disk};
use crate::file_cache::OpenFiles;
use crate::read_memory::ReadMemory;
use crate::{StorageConfig, StorageError, select_backend};

/// The disk thread and I/O backend that storages share: one thread and one io_uring (or one set
/// of `pwritev` threads) run the disk work of every [`Storage`](crate::Storage) opened with
/// [`StorageConfig::pool`](crate::StorageConfig::pool) set to this pool, so a thousand seeding
/// torrents cost no thread, ring or descriptor each. Cloning is cheap; the thread ends once the
/// pool and every storage opened with it are dropped.
#[derive(Clone)]
pub struct DiskPool {
    inner: Arc<PoolInner>,
}

impl std::fmt::Debug for DiskPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskPool")
            .field("backend", &self.inner.backend)
            .finish_non_exhaustive()
    }
}

struct PoolInner {
    inbox: Sender<Message>,
    doorbell: Arc<Doorbell>,
    next_torrent: AtomicU64,
    backend: &'static str,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The download directories open, shared by the torrents under each, so a thousand torrents
    /// in one directory hold one descriptor for it, not a thousand.
    roots: Mutex<Roots>,
    /// The files open for every torrent, under one cap.
    files: Arc<Mutex<OpenFiles>>,
    /// The read buffers of every torrent, under one bound.
    memory: Arc<ReadMemory>,
}

#[derive(Default)]
struct Roots {
    open: HashMap<PathBuf, Weak<Beneath>>,
    /// Dropped entries are swept when the map reaches this size (twice what was left after the
    /// last sweep), so each sweep is paid for by as many insertions.
    sweep_at: usize,
}

pub(crate) enum Message {
    Attach(u64, Box<Disk>),
    Command(u64, Command),
}

/// How one torrent's storage reaches the pool's thread.
#[derive(Clone)]
pub(crate) struct Port {
    id: u64,
    inbox: Sender<Message>,
    doorbell: Arc<Doorbell>,
}

impl Port {
    pub(crate) fn send(&self, command: Command) -> Result<(), StorageError> {
        self.inbox
            .send(Message::Command(self.id, command))
            .map_err(|_| StorageError::Closed)?;
        self.doorbell.ring();
        Ok(())
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

impl DiskPool {
    /// Starts the disk thread on the backend `config` asks for (its `backend`, `io_threads` and
    /// `max_write_len`), with the bounds its torrents share (`max_open_files`, `read_cache`,
    /// `max_read_memory` and `read_window`); the other settings are each storage's own.
    pub fn new(config: &StorageConfig) -> Result<Self, StorageError> {
        let backend = select_backend(config)?;
        let name = backend.name();
        let doorbell = Arc::new(Doorbell {
            rung: AtomicBool::new(false),
            wake: backend.waker(),
        });
        let (inbox, messages) = mpsc::channel();
        let memory = ReadMemory::new(
            config.read_cache,
            config.max_read_memory.max(config.read_window as usize),
            doorbell.clone(),
        );
        let pool = Pool {
            memory: memory.clone(),
            backend,
            messages,
            doorbell: doorbell.clone(),
            disks: HashMap::new(),
            active: HashSet::new(),
            ops: HashMap::new(),
            next_op: 0,
        };
        let thread = std::thread::Builder::new()
            .name("ct-disk".into())
            .spawn(move || pool.run())
            .map_err(|e| StorageError::from_io(e, "disk thread", "spawn"))?;
        Ok(Self {
            inner: Arc::new(PoolInner {
                inbox,
                doorbell,
                next_torrent: AtomicU64::new(0),
                backend: name,
                thread: Mutex::new(Some(thread)),
                roots: Mutex::new(Roots::default()),
                files: OpenFiles::shared(config.max_open_files),
                memory,
            }),
        })
    }

    /// The backend in use: `"io_uring"` or `"pwritev"`.
    pub fn backend(&self) -> &'static str {
        self.inner.backend
    }

    /// The download directory `dir`, created if missing, open: the one already open when it is
    /// still the directory at that path, else opened anew.
    pub(crate) fn root(&self, dir: &Path) -> Result<Arc<Beneath>, StorageError> {
        let mut roots = self
            .inner
            .roots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(root) = roots.open.get(dir).and_then(Weak::upgrade)
            && root.is_still_at(dir)
        {
            return Ok(root);
        }
        let root = Arc::new(Beneath::open(dir, true)?);
        if roots.open.len() >= roots.sweep_at {
            roots.open.retain(|_, root| root.strong_count() > 0);
            roots.sweep_at = (2 * roots.open.len()).max(16);
        }
        roots.open.insert(dir.to_path_buf(), Arc::downgrade(&root));
        Ok(root)
    }

    /// The open files of every torrent on the pool.
    pub(crate) fn open_files(&self) -> Arc<Mutex<OpenFiles>> {
        self.inner.files.clone()
    }

    /// The read buffers of every torrent on the pool.
    pub(crate) fn read_memory(&self) -> Arc<ReadMemory> {
        self.inner.memory.clone()
    }

    /// A new torrent's way in.
    pub(crate) fn port(&self) -> Port {
        Port {
            id: self.inner.next_torrent.fetch_add(1, Ordering::Relaxed),
            inbox: self.inner.inbox.clone(),
            doorbell: self.inner.doorbell.clone(),
        }
    }

    /// Hands `disk` to the thread, before any command sent through `port`.
    pub(crate) fn attach(&self, port: &Port, disk: Disk) -> Result<(), StorageError> {
        self.inner
            .inbox
            .send(Message::Attach(port.id, Box::new(disk)))
            .map_err(|_| StorageError::Closed)?;
        self.inner.doorbell.ring();
        Ok(())
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // Every storage is gone (each holds the pool): once the ports its disks kept for their
        // hashers are dropped too, the inbox is closed and the thread ends.
        let (inbox, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.inbox, inbox));
        self.doorbell.ring();
        if let Some(thread) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = thread.join();
        }
    }
}

/// The thread's side.
struct Pool {
    backend: Box<dyn Backend + Send>,
    memory: Arc<ReadMemory>,
    messages: Receiver<Message>,
    doorbell: Arc<Doorbell>,
    disks: HashMap<u64, Disk>,
    /// Torrents with something to do this turn.
    active: HashSet<u64>,
    /// The pool's operation ids: whose, and under which id of its own.
    ops: HashMap<u64, (u64, u64)>,
    next_op: u64,
}

impl Pool {
    fn run(mut self) {
        let mut completions = Vec::new();
        let mut turn = Vec::new();
        loop {
            self.doorbell.rung.store(false, Ordering::Release);
            let open = self.receive();
            self.backend.poll(&mut completions);
            self.dispatch(&mut completions);
            turn.extend(self.active.iter().copied());
            for id in turn.drain(..) {
                self.take_turn(id);
            }
            if let Some(for_room) = self.memory.take_pressure() {
                self.sweep_caches(for_room);
            }
            if !open && self.disks.is_empty() {
                break;
            }
            if self.doorbell.rung.load(Ordering::Acquire) {
                continue;
            }
            self.backend.wait(&mut completions);
            self.dispatch(&mut completions);
        }
    }

    /// Takes every message waiting; false once no storage can send any more.
    fn receive(&mut self) -> bool {
        loop {
            match self.messages.try_recv() {
                Ok(Message::Attach(id, disk)) => {
                    self.disks.insert(id, *disk);
                    self.active.insert(id);
                }
                Ok(Message::Command(id, command)) => {
                    if let Some(disk) = self.disks.get_mut(&id) {
                        disk.handle(command);
                        self.active.insert(id);
                    }
                }
                Err(mpsc::TryRecvError::Empty) => return true,
                Err(mpsc::TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn dispatch(&mut self, completions: &mut Vec<Completion>) {
        for mut completion in completions.drain(..) {
            let Some((id, local)) = self.ops.remove(&completion.op.id) else {
                continue;
            };
            if let Some(disk) = self.disks.get_mut(&id) {
                completion.op.id = local;
                disk.io.completed();
                disk.complete(completion);
                self.active.insert(id);
            }
        }
    }

    /// Evicts the least recently used cached windows of every torrent until the pool's read
    /// memory is under three quarters of its bounds (see `ReadMemory::above_low_water`): one
    /// sort of the cached windows per sweep, and a sweep frees a quarter of a bound, so it is
    /// paid for by as many bytes read.
    fn sweep_caches(&mut self, for_room: bool) {
        let mut windows: Vec<(u64, u64, crate::read_cache::WindowKey)> = self
            .disks
            .iter()
            .flat_map(|(id, disk)| {
                disk.read_cache
                    .cached_windows()
                    .map(move |(used, key)| (used, *id, key))
            })
            .collect();
        windows.sort_unstable_by_key(|&(used, ..)| used);
        for (_, id, key) in windows {
            if !self.memory.above_low_water(for_room) {
                break;
            }
            if let Some(disk) = self.disks.get_mut(&id) {
                disk.read_cache.evict(key);
            }
        }
    }

    /// One torrent's turn: its upkeep, then the operations it started go to the backend.
    fn take_turn(&mut self, id: u64) {
        let Some(disk) = self.disks.get_mut(&id) else {
            self.active.remove(&id);
            return;
        };
        disk.turn();
        for mut op in disk.io.drain_started() {
            let global = self.next_op;
            self.next_op += 1;
            self.ops.insert(global, (id, op.id));
            op.id = global;
            self.backend.start(op);
        }
        if disk.is_done() {
            if let Some(disk) = self.disks.remove(&id) {
                disk.finish();
            }
            self.active.remove(&id);
        } else if !disk.has_work() {
            self.active.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn torrents_under_one_directory_share_its_descriptor_while_it_is_the_same() {
        let pool = DiskPool::new(&StorageConfig::default()).unwrap();
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("downloads");
        let first = pool.root(&dir).unwrap();
        let second = pool.root(&dir).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        // The directory replaced: the new one is opened, not the old one's descriptor reused.
        std::fs::rename(&dir, base.path().join("old")).unwrap();
        let third = pool.root(&dir).unwrap();
        assert!(!Arc::ptr_eq(&first, &third));
        assert!(third.is_still_at(&dir) && !first.is_still_at(&dir));
    }
}
