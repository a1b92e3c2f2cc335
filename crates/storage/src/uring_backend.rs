//! The io_uring backend: one ring owned by the disk thread, vectored reads and writes straight
//! from and into owned buffers, and an eventfd read that lets other threads wake the ring.

// The kernel reads iovecs and buffers after `push` returns: the unsafe blocks below rely on every
// pointer staying valid until the completion, which holds because the pointed-to memory is owned
// by an entry of `pending` that is only removed when its completion arrives.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use io_uring::{IoUring, opcode, squeue, types};
use slab::Slab;

use crate::backend::{Backend, Completion, Op, OpKind, Wake, capped};

const WAKE: u64 = u64::MAX;

struct EventFd(OwnedFd);

impl Wake for EventFd {
    fn wake(&self) {
        // An eventfd counter cannot overflow with 1 per wake; EAGAIN would mean a wake is pending.
        let _ = rustix::io::write(&self.0, &1u64.to_ne_bytes());
    }
}

struct Pending {
    op: Op,
    /// The iovecs the kernel reads; they point into the buffers of `op`.
    iovecs: Vec<libc::iovec>,
    read_start: usize,
}

// SAFETY: the raw pointers in `iovecs` point into the heap buffers of `op`'s `Bytes`, which are
// `Send`, do not move when the entry moves, and are only read.
unsafe impl Send for Pending {}

pub(crate) struct UringBackend {
    ring: IoUring,
    pending: Slab<Pending>,
    wake: Arc<EventFd>,
    wake_buf: Box<[u8; 8]>,
    wake_armed: bool,
    max_write: Option<usize>,
}

impl UringBackend {
    /// Sets up a ring, or fails where io_uring is unavailable (old kernels, seccomp filters).
    pub(crate) fn new(entries: u32, max_write: Option<usize>) -> std::io::Result<Self> {
        let ring = IoUring::builder().build(entries)?;
        let fd = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC)?;
        Ok(Self {
            ring,
            pending: Slab::new(),
            wake: Arc::new(EventFd(fd)),
            wake_buf: Box::new([0; 8]),
            wake_armed: false,
            max_write,
        })
    }

    fn push(&mut self, entry: &squeue::Entry) {
        loop {
            // SAFETY: see the module comment; the entry's buffers live in `pending` (or in
            // `wake_buf`, which lives as long as the ring).
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return;
            }
            // The submission queue is full: hand what is queued to the kernel and retry.
            if self.ring.submit().is_err() {
                std::thread::yield_now();
            }
        }
    }

    fn arm_wake(&mut self) {
        if !self.wake_armed {
            let fd = types::Fd(self.wake.0.as_raw_fd());
            let entry = opcode::Read::new(fd, self.wake_buf.as_mut_ptr(), 8)
                .build()
                .user_data(WAKE);
            self.push(&entry);
            self.wake_armed = true;
        }
    }

    fn reap(&mut self, out: &mut Vec<Completion>) {
        let mut finished = Vec::new();
        for cqe in self.ring.completion() {
            finished.push((cqe.user_data(), cqe.result()));
        }
        for (user_data, result) in finished {
            if user_data == WAKE {
                self.wake_armed = false;
                continue;
            }
            let Ok(key) = usize::try_from(user_data) else {
                continue;
            };
            let Some(mut pending) = self.pending.try_remove(key) else {
                continue;
            };
            let result = if result < 0 {
                Err(std::io::Error::from_raw_os_error(-result))
            } else {
                Ok(result.unsigned_abs() as usize)
            };
            if let (OpKind::Read { buf, .. }, Ok(read)) = (&mut pending.op.kind, &result) {
                // SAFETY: the kernel initialised `read` bytes of the spare capacity at `read_start`.
                unsafe { buf.set_len(pending.read_start + read) };
            }
            out.push(Completion {
                result,
                op: pending.op,
            });
        }
    }
}

impl Backend for UringBackend {
    fn start(&mut self, mut op: Op) {
        let fd = types::Fd(op.file.as_raw_fd());
        let offset = op.offset;
        let (iovecs, read_start) = match &mut op.kind {
            OpKind::Write(bufs) => {
                let iovecs = capped(bufs, self.max_write)
                    .map(|b| libc::iovec {
                        iov_base: b.as_ptr() as *mut libc::c_void,
                        iov_len: b.len(),
                    })
                    .collect();
                (iovecs, 0)
            }
            OpKind::Read { buf, len } => {
                buf.reserve(*len);
                (Vec::new(), buf.len())
            }
            OpKind::Sync | OpKind::Writeback { .. } => (Vec::new(), 0),
        };
        let entry = self.pending.vacant_entry();
        let key = entry.key() as u64;
        let pending = entry.insert(Pending {
            op,
            iovecs,
            read_start,
        });
        let sqe = match &mut pending.op.kind {
            OpKind::Write(_) => {
                let len = u32::try_from(pending.iovecs.len()).unwrap_or(u32::MAX);
                opcode::Writev::new(fd, pending.iovecs.as_ptr(), len)
                    .offset(offset)
                    .build()
            }
            OpKind::Read { buf, len } => {
                let spare = buf.spare_capacity_mut();
                let len = u32::try_from((*len).min(spare.len())).unwrap_or(u32::MAX);
                opcode::Read::new(fd, spare.as_mut_ptr().cast(), len)
                    .offset(offset)
                    .build()
            }
            OpKind::Sync => opcode::Fsync::new(fd)
                .flags(types::FsyncFlags::DATASYNC)
                .build(),
            // A length of 0 means "to the end of the file", which also covers ranges over 4 GiB.
            OpKind::Writeback { len } => {
                opcode::SyncFileRange::new(fd, u32::try_from(*len).unwrap_or(0))
                    .offset(offset)
                    .flags(libc::SYNC_FILE_RANGE_WRITE)
                    .build()
            }
        };
        self.push(&sqe.user_data(key));
    }

    fn wait(&mut self, out: &mut Vec<Completion>) {
        self.arm_wake();
        let before = out.len();
        while out.len() == before {
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(error) if error.raw_os_error() == Some(libc::EINTR) => {}
                Err(_) => return,
            }
            let armed = self.wake_armed;
            self.reap(out);
            if armed && !self.wake_armed {
                return;
            }
        }
    }

    fn poll(&mut self, out: &mut Vec<Completion>) {
        let _ = self.ring.submit();
        self.reap(out);
    }

    fn waker(&self) -> Arc<dyn Wake> {
        self.wake.clone()
    }

    fn name(&self) -> &'static str {
        "io_uring"
    }
}

impl Drop for UringBackend {
    fn drop(&mut self) {
        // Buffers must outlive the kernel's use of them: complete the armed eventfd read and wait
        // for everything in flight before they are freed.
        if self.wake_armed {
            self.wake.wake();
        }
        while !self.pending.is_empty() || self.wake_armed {
            if self.ring.submit_and_wait(1).is_err() {
                break;
            }
            let mut sink = Vec::new();
            self.reap(&mut sink);
        }
    }
}
