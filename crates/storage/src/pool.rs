//! The disk thread torrents share: one thread and one backend (one io_uring, or one set of
//! `pwritev` threads) run the disk work of every [`Storage`](crate::Storage) opened with the same
//! [`DiskPool`], so a thousand seeding torrents cost no thread, ring or descriptor each.
//!
//! Each torrent's state stays its own [`Disk`]. The pool routes commands to it by id, starts the
//! operations it queues under ids of the pool's own, hands each completion back to its owner,
//! and gives a turn only to the torrents with something to do, so idle torrents cost nothing
//! per wake-up.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::backend::{Backend, Completion, Doorbell};
use crate::disk::{Command, Disk};
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

    pub(crate) fn doorbell(&self) -> &Arc<Doorbell> {
        &self.doorbell
    }
}

impl DiskPool {
    /// Starts the disk thread on the backend `config` asks for (its `backend`, `io_threads` and
    /// `max_write_len`; the other settings are each storage's own).
    pub fn new(config: &StorageConfig) -> Result<Self, StorageError> {
        let backend = select_backend(config)?;
        let name = backend.name();
        let doorbell = Arc::new(Doorbell {
            rung: AtomicBool::new(false),
            wake: backend.waker(),
        });
        let (inbox, messages) = mpsc::channel();
        let pool = Pool {
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
            }),
        })
    }

    /// The backend in use: `"io_uring"` or `"pwritev"`.
    pub fn backend(&self) -> &'static str {
        self.inner.backend
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
