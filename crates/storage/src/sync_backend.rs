//! The portable backend: a small pool of threads doing `pwritev`/`preadv`/`fdatasync`.

use std::io::{IoSlice, IoSliceMut};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::backend::{Backend, Completion, Op, OpKind, Wake, capped};

#[derive(Default)]
struct Shared {
    done: Mutex<(Vec<Completion>, bool)>,
    ready: Condvar,
}

impl Wake for Shared {
    fn wake(&self) {
        if let Ok(mut done) = self.done.lock() {
            done.1 = true;
            self.ready.notify_one();
        }
    }
}

/// Runs operations on worker threads and collects their completions.
pub(crate) struct SyncBackend {
    jobs: Option<Sender<Op>>,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    in_flight: usize,
}

impl SyncBackend {
    pub(crate) fn new(threads: usize, max_write: Option<usize>) -> Self {
        let (jobs, queue) = mpsc::channel::<Op>();
        let queue = Arc::new(Mutex::new(queue));
        let shared = Arc::new(Shared::default());
        let workers = (0..threads.max(1))
            .map(|index| {
                let queue = queue.clone();
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("ct-disk-io-{index}"))
                    .spawn(move || worker(&queue, &shared, max_write))
                    .ok()
            })
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default();
        Self {
            jobs: Some(jobs),
            shared,
            workers,
            in_flight: 0,
        }
    }
}

fn worker(queue: &Mutex<Receiver<Op>>, shared: &Shared, max_write: Option<usize>) {
    loop {
        let op = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(mut op) = op else { return };
        let result = run(&mut op, max_write);
        if let Ok(mut done) = shared.done.lock() {
            done.0.push(Completion { result, op });
            shared.ready.notify_one();
        }
    }
}

fn run(op: &mut Op, max_write: Option<usize>) -> std::io::Result<usize> {
    match &mut op.kind {
        OpKind::Write(bufs) => {
            let slices: Vec<IoSlice<'_>> = capped(bufs, max_write).map(IoSlice::new).collect();
            Ok(rustix::io::pwritev(&*op.file, &slices, op.offset)?)
        }
        OpKind::Read { buf, len } => {
            let start = buf.len();
            buf.resize(start + *len, 0);
            let mut slices = [IoSliceMut::new(&mut buf[start..])];
            let result = rustix::io::preadv(&*op.file, &mut slices, op.offset);
            let read = result.as_ref().map_or(0, |n| *n);
            buf.truncate(start + read);
            Ok(result?)
        }
        OpKind::Sync => rustix::fs::fdatasync(&*op.file)
            .map(|()| 0)
            .map_err(Into::into),
        OpKind::Writeback { len } => start_writeback(&op.file, op.offset, *len),
    }
}

/// `sync_file_range(SYNC_FILE_RANGE_WRITE)`, which rustix does not wrap.
#[allow(unsafe_code)]
fn start_writeback(file: &std::fs::File, offset: u64, len: u64) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Ok(0);
    };
    // SAFETY: the descriptor is open for as long as `file` is borrowed, and the call touches no
    // memory of ours.
    let result = unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
    };
    if result == 0 {
        Ok(0)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl Backend for SyncBackend {
    fn start(&mut self, op: Op) {
        self.in_flight += 1;
        let rejected = match &self.jobs {
            Some(jobs) => jobs.send(op).err().map(|mpsc::SendError(op)| op),
            None => Some(op),
        };
        if let Some(op) = rejected
            && let Ok(mut done) = self.shared.done.lock()
        {
            let error = std::io::Error::other("disk worker threads are gone");
            done.0.push(Completion {
                result: Err(error),
                op,
            });
        }
    }

    fn wait(&mut self, out: &mut Vec<Completion>) {
        if let Ok(mut done) = self.shared.done.lock() {
            while done.0.is_empty() && !done.1 {
                done = match self.shared.ready.wait(done) {
                    Ok(done) => done,
                    Err(_) => return,
                };
            }
            done.1 = false;
            self.in_flight -= done.0.len();
            out.append(&mut done.0);
        }
    }

    fn poll(&mut self, out: &mut Vec<Completion>) {
        if let Ok(mut done) = self.shared.done.lock() {
            self.in_flight -= done.0.len();
            out.append(&mut done.0);
        }
    }

    fn waker(&self) -> Arc<dyn Wake> {
        self.shared.clone()
    }

    fn name(&self) -> &'static str {
        "pwritev"
    }
}

impl Drop for SyncBackend {
    fn drop(&mut self) {
        drop(self.jobs.take());
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}
