//! The two ends of a loopback flow through io_uring, for the limits benchmark: a sender that
//! hands registered buffers to `SEND_ZC` (the kernel pins their pages instead of copying them
//! into the socket), and a receiver that reads with `READ_FIXED` into registered, page-aligned
//! buffers. Each answers whether that removes a copy the plain `write`/`read` pair makes.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::io;
use std::net::TcpStream;
use std::os::fd::AsRawFd;

use io_uring::{IoUring, cqueue, opcode, types};

/// Bytes per operation, and buffers in flight at the sender.
const CHUNK: usize = 1 << 20;
const SLOTS: usize = 4;
const PAGE: usize = 4096;

/// A page-aligned heap buffer, as the kernel maps registered buffers page by page.
struct Aligned {
    ptr: *mut u8,
    layout: Layout,
}

impl Aligned {
    fn new(len: usize, fill: u8) -> io::Result<Self> {
        let layout = Layout::from_size_align(len, PAGE).map_err(io::Error::other)?;
        // SAFETY: the layout has a non-zero size (CHUNK).
        let ptr = unsafe { alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err(io::Error::other("out of memory"));
        }
        // SAFETY: `ptr` is valid for `len` bytes, just allocated.
        unsafe { ptr.write_bytes(fill, len) };
        Ok(Self { ptr, layout })
    }

    fn iovec(&self) -> libc::iovec {
        libc::iovec {
            iov_base: self.ptr.cast(),
            iov_len: self.layout.size(),
        }
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr, self.layout) };
    }
}

/// Registered buffers and the ring they are registered with; the buffers outlive the ring's
/// use of them because the ring is dropped first (field order).
struct Registered {
    ring: IoUring,
    buffers: Vec<Aligned>,
}

impl Registered {
    fn new(count: usize, fill: u8) -> io::Result<Self> {
        let ring = IoUring::new(64)?;
        let buffers = (0..count)
            .map(|_| Aligned::new(CHUNK, fill))
            .collect::<io::Result<Vec<_>>>()?;
        let iovecs: Vec<libc::iovec> = buffers.iter().map(Aligned::iovec).collect();
        // SAFETY: the buffers stay allocated, unmoved, until after the ring is dropped.
        unsafe { ring.submitter().register_buffers(&iovecs)? };
        Ok(Self { ring, buffers })
    }

    fn push(&mut self, entry: &io_uring::squeue::Entry) -> io::Result<()> {
        // SAFETY: every buffer an entry names is one of ours, registered and alive.
        unsafe { self.ring.submission().push(entry) }
            .map_err(|_| io::Error::other("submission queue full"))
    }
}

fn result(entry: &cqueue::Entry) -> io::Result<usize> {
    usize::try_from(entry.result()).map_err(|_| io::Error::from_raw_os_error(-entry.result()))
}

/// Sends `size` bytes with `SEND_ZC` from `SLOTS` registered buffers. A buffer is reused once
/// the kernel has both sent it and notified that it let go of its pages.
pub fn send_zero_copy(stream: &TcpStream, size: usize) -> io::Result<()> {
    let mut ring = Registered::new(SLOTS, 9)?;
    let fd = types::Fd(stream.as_raw_fd());
    let mut free: Vec<usize> = (0..SLOTS).collect();
    let (mut queued, mut sent) = (0, 0);
    while sent < size || free.len() < SLOTS {
        while queued < size {
            let Some(slot) = free.pop() else { break };
            let len = CHUNK.min(size - queued);
            let entry = opcode::SendZc::new(fd, ring.buffers[slot].ptr, len as u32)
                .buf_index(Some(slot as u16))
                .flags(libc::MSG_WAITALL)
                .build()
                .user_data(slot as u64);
            ring.push(&entry)?;
            queued += len;
        }
        ring.ring.submit_and_wait(1)?;
        let completions: Vec<cqueue::Entry> = ring.ring.completion().collect();
        for entry in completions {
            let slot = entry.user_data() as usize;
            if cqueue::notif(entry.flags()) {
                free.push(slot);
                continue;
            }
            let n = result(&entry)?;
            if n < CHUNK.min(size - sent) {
                return Err(io::Error::other("short zero-copy send"));
            }
            sent += n;
            if !cqueue::more(entry.flags()) {
                free.push(slot);
            }
        }
    }
    Ok(())
}

/// Receives until end of stream with `READ_FIXED` into one registered, page-aligned buffer;
/// returns the bytes received.
pub fn receive_fixed(stream: &TcpStream) -> io::Result<usize> {
    let mut ring = Registered::new(1, 0)?;
    let fd = types::Fd(stream.as_raw_fd());
    let mut received = 0;
    loop {
        let entry = opcode::ReadFixed::new(fd, ring.buffers[0].ptr, CHUNK as u32, 0)
            .build()
            .user_data(0);
        ring.push(&entry)?;
        ring.ring.submit_and_wait(1)?;
        let Some(done) = ring.ring.completion().next() else {
            continue;
        };
        match result(&done)? {
            0 => return Ok(received),
            n => received += n,
        }
    }
}
