//! The engine's uTP: the sans-IO endpoint of `cratetorrent-utp` on the shared UDP port, driven
//! by one task, with its connections handed to peer tasks as byte streams ([`UtpStream`],
//! wrapped in [`PeerStream`](crate::net::PeerStream)) that read and write like TCP sockets.
//!
//! Datagrams come from the port's readers, a batch at a time ([`UtpSocket::handle_datagram`]
//! then [`UtpSocket::flush`]), so one acknowledgement answers a batch. What the endpoint has to
//! send goes out from `flush`, called after each batch, after each stream operation that
//! queued something (through the driver, woken), and when a timer fires.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use cratetorrent_utp::{CloseReason, Config, ConnectionHandle, Endpoint, Event, StreamError};
use tokio::sync::Notify;

use crate::udp_port::UdpPort;

/// Largest datagram built (payloads are sized for a 1,500-byte path).
const MAX_DATAGRAM: usize = 1500;
/// Most bytes of datagrams sent to one address in one go (UDP GSO: one `sendmsg` within the
/// 64 KiB an IP packet may carry).
const MAX_BATCH: usize = 65_000;

/// Datagrams to one address gathered for one send: all `segment` bytes long but the last.
#[derive(Debug, Clone, Copy)]
struct Batch {
    to: SocketAddr,
    segment: usize,
    len: usize,
    count: usize,
    /// A shorter datagram ended it.
    closed: bool,
}

/// What a stream's task waits for, and how its connection ended.
#[derive(Debug, Default)]
struct Waiting {
    reader: Option<Waker>,
    /// The writer, or the dialler until the connection is answered.
    writer: Option<Waker>,
    connected: bool,
    closed: Option<CloseReason>,
}

/// Called with each connection a peer opened to us.
type OnIncoming = Box<dyn Fn(UtpStream, SocketAddr)>;

/// The endpoint, its streams' wakers, and the port it sends on.
pub(crate) struct UtpSocket {
    endpoint: RefCell<Endpoint>,
    port: Rc<UdpPort>,
    waiting: RefCell<HashMap<ConnectionHandle, Waiting>>,
    on_incoming: RefCell<Option<OnIncoming>>,
    /// Wakes the driver to flush and re-arm its timer.
    kick: Notify,
    datagram: RefCell<Vec<u8>>,
}

impl std::fmt::Debug for UtpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UtpSocket")
            .field("connections", &self.endpoint.borrow().len())
            .finish_non_exhaustive()
    }
}

impl UtpSocket {
    /// An endpoint on `port` (seeded, so ids and sequence numbers replay), its driver started.
    pub(crate) fn start(port: Rc<UdpPort>, config: Config, seed: u64) -> Rc<Self> {
        let socket = Rc::new(Self {
            endpoint: RefCell::new(Endpoint::new(config, Instant::now(), seed)),
            port,
            waiting: RefCell::new(HashMap::new()),
            on_incoming: RefCell::new(None),
            kick: Notify::new(),
            datagram: RefCell::new(vec![0; MAX_BATCH + MAX_DATAGRAM]),
        });
        tokio::task::spawn_local(drive(socket.clone()));
        socket
    }

    /// Where connections peers open go (without it they are refused).
    pub(crate) fn set_on_incoming(&self, on_incoming: OnIncoming) {
        *self.on_incoming.borrow_mut() = Some(on_incoming);
    }

    /// One datagram the port's reader told apart as uTP; [`UtpSocket::flush`] after a batch.
    pub(crate) fn handle_datagram(&self, from: SocketAddr, datagram: &[u8]) {
        let result = self
            .endpoint
            .borrow_mut()
            .handle_datagram(Instant::now(), from, datagram);
        if let Err(error) = result {
            tracing::trace!(%from, %error, "malformed uTP packet");
        }
    }

    /// ICMP said `addr` is unreachable: dials to it fail ([`UtpSocket::flush`] after).
    pub(crate) fn unreachable(&self, addr: SocketAddr) {
        self.endpoint.borrow_mut().unreachable(addr);
    }

    /// Sends what the endpoint has to send, then tells streams what happened.
    pub(crate) fn flush(self: &Rc<Self>) {
        {
            let mut endpoint = self.endpoint.borrow_mut();
            let mut out = self.datagram.borrow_mut();
            let now = Instant::now();
            if endpoint.poll_timeout().is_some_and(|at| at <= now) {
                endpoint.handle_timeout(now);
            }
            // Each datagram is written after the batch so far, and joins it if it can.
            let mut batch: Option<Batch> = None;
            loop {
                let start = batch.map_or(0, |b| b.len);
                let Some(transmit) =
                    endpoint.poll_transmit(now, &mut out[start..start + MAX_DATAGRAM])
                else {
                    break;
                };
                let len = transmit.len;
                match &mut batch {
                    Some(b)
                        if b.to == transmit.to
                            && !b.closed
                            && len <= b.segment
                            && b.count < self.port.max_batch(b.to)
                            && start + len <= MAX_BATCH =>
                    {
                        b.len += len;
                        b.count += 1;
                        b.closed = len < b.segment;
                    }
                    _ => {
                        if let Some(full) = batch {
                            self.send(&out[..full.len], full);
                            out.copy_within(start..start + len, 0);
                        }
                        batch = Some(Batch {
                            to: transmit.to,
                            segment: len,
                            len,
                            count: 1,
                            closed: false,
                        });
                    }
                }
            }
            if let Some(last) = batch {
                self.send(&out[..last.len], last);
            }
        }
        loop {
            let event = self.endpoint.borrow_mut().poll_event();
            let Some(event) = event else { break };
            self.on_event(event);
        }
    }

    fn send(&self, datagrams: &[u8], batch: Batch) {
        // A full socket buffer drops the datagrams, which uTP then sends again, as it would
        // packets lost on the path.
        if let Err(error) = self.port.try_send_batch(batch.to, datagrams, batch.segment) {
            tracing::trace!(to = %batch.to, count = batch.count, %error, "uTP datagrams not sent");
        }
    }

    fn on_event(self: &Rc<Self>, event: Event) {
        let mut waiting = self.waiting.borrow_mut();
        let wake = |w: &mut Waiting, reader: bool, writer: bool| {
            if reader && let Some(waker) = w.reader.take() {
                waker.wake();
            }
            if writer && let Some(waker) = w.writer.take() {
                waker.wake();
            }
        };
        match event {
            Event::Incoming(handle, from) => {
                let accepted = self.on_incoming.borrow().is_some();
                if !accepted {
                    self.endpoint.borrow_mut().abort(handle);
                    return;
                }
                waiting.insert(
                    handle,
                    Waiting {
                        connected: true,
                        ..Waiting::default()
                    },
                );
                drop(waiting);
                let stream = UtpStream {
                    socket: self.clone(),
                    handle,
                };
                if let Some(on_incoming) = &*self.on_incoming.borrow() {
                    on_incoming(stream, from);
                }
            }
            Event::Connected(handle) => {
                if let Some(w) = waiting.get_mut(&handle) {
                    w.connected = true;
                    wake(w, false, true);
                }
            }
            Event::Readable(handle) => {
                if let Some(w) = waiting.get_mut(&handle) {
                    wake(w, true, false);
                }
            }
            Event::Writable(handle) => {
                if let Some(w) = waiting.get_mut(&handle) {
                    wake(w, false, true);
                }
            }
            Event::Closed(handle, reason) => {
                if let Some(w) = waiting.get_mut(&handle) {
                    w.closed = Some(reason);
                    wake(w, true, true);
                }
            }
        }
    }

    /// Opens a connection to `addr`; done when the peer answers.
    pub(crate) async fn connect(self: &Rc<Self>, addr: SocketAddr) -> io::Result<UtpStream> {
        let handle = self
            .endpoint
            .borrow_mut()
            .connect(addr, Instant::now())
            .map_err(io::Error::other)?;
        self.waiting.borrow_mut().insert(handle, Waiting::default());
        // Dropped before the answer (a timeout, TCP won the race), the stream aborts it.
        let stream = UtpStream {
            socket: self.clone(),
            handle,
        };
        self.kick.notify_one();
        poll_fn(|cx| {
            let mut waiting = self.waiting.borrow_mut();
            let Some(w) = waiting.get_mut(&handle) else {
                return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
            };
            if let Some(reason) = w.closed {
                return Poll::Ready(Err(closed_error(reason, true)));
            }
            if w.connected {
                return Poll::Ready(Ok(()));
            }
            w.writer = Some(cx.waker().clone());
            Poll::Pending
        })
        .await?;
        Ok(stream)
    }
}

/// The error a stream operation meets on a connection that ended for `reason`.
fn closed_error(reason: CloseReason, connecting: bool) -> io::Error {
    match reason {
        CloseReason::Reset if connecting => io::ErrorKind::ConnectionRefused.into(),
        CloseReason::Reset => io::ErrorKind::ConnectionReset.into(),
        CloseReason::TimedOut => io::ErrorKind::TimedOut.into(),
        CloseReason::Unreachable => io::ErrorKind::HostUnreachable.into(),
        CloseReason::Finished | CloseReason::Aborted => io::ErrorKind::NotConnected.into(),
    }
}

/// Runs the endpoint's timers, and flushes when a stream queued something.
async fn drive(socket: Rc<UtpSocket>) {
    loop {
        socket.flush();
        let deadline = socket.endpoint.borrow().poll_timeout();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = socket.kick.notified() => {}
            () = sleep => {}
        }
    }
}

/// One uTP connection as a byte stream.
#[derive(Debug)]
pub(crate) struct UtpStream {
    socket: Rc<UtpSocket>,
    handle: ConnectionHandle,
}

impl UtpStream {
    /// Whether the connection ended, and why.
    fn closed(&self) -> Option<CloseReason> {
        self.socket
            .waiting
            .borrow()
            .get(&self.handle)
            .and_then(|w| w.closed)
    }

    /// One read of at most `len` bytes onto `buf`; 0 at the end of the stream.
    pub(crate) async fn read_into(&self, buf: &mut BytesMut, len: usize) -> io::Result<usize> {
        let read = poll_fn(|cx| {
            let mut endpoint = self.socket.endpoint.borrow_mut();
            match endpoint.readable(self.handle) {
                Ok(data) if !data.is_empty() => {
                    let n = data.len().min(len);
                    buf.extend_from_slice(&data[..n]);
                    endpoint.consume(self.handle, n);
                    return Poll::Ready(Ok(n));
                }
                Ok(_) => {
                    if endpoint.read(self.handle, &mut []) == Ok(0) {
                        return Poll::Ready(Ok(0));
                    }
                }
                Err(_) => {
                    return Poll::Ready(match self.closed() {
                        Some(CloseReason::Finished) | None => Ok(0),
                        Some(reason) => Err(closed_error(reason, false)),
                    });
                }
            }
            drop(endpoint);
            if let Some(w) = self.socket.waiting.borrow_mut().get_mut(&self.handle) {
                w.reader = Some(cx.waker().clone());
            }
            Poll::Pending
        })
        .await;
        // Reading reopens the window; the peer may need to hear of it.
        self.socket.kick.notify_one();
        read
    }

    /// Writes as much of `data` as the connection takes now, waiting until it takes some.
    async fn write_some(&self, data: &[u8]) -> io::Result<usize> {
        let written = poll_fn(|cx| {
            let result = self.socket.endpoint.borrow_mut().write(self.handle, data);
            match result {
                Ok(n) => Poll::Ready(Ok(n)),
                Err(StreamError::WouldBlock) => {
                    if let Some(w) = self.socket.waiting.borrow_mut().get_mut(&self.handle) {
                        w.writer = Some(cx.waker().clone());
                    }
                    Poll::Pending
                }
                Err(StreamError::Closed) => Poll::Ready(Err(closed_error(
                    self.closed().unwrap_or(CloseReason::Aborted),
                    false,
                ))),
            }
        })
        .await;
        self.socket.kick.notify_one();
        written
    }

    /// Writes all of `data`.
    pub(crate) async fn write_all(&self, data: &[u8]) -> io::Result<()> {
        let mut written = 0;
        while written < data.len() {
            written += self.write_some(&data[written..]).await?;
        }
        Ok(())
    }

    /// Writes what the connection takes of `bufs` (at least some); returns how much.
    pub(crate) async fn writev(&self, bufs: &[Bytes]) -> io::Result<usize> {
        let mut total = 0;
        for buf in bufs {
            let n = if total == 0 {
                self.write_some(buf).await?
            } else {
                let written = self.socket.endpoint.borrow_mut().write(self.handle, buf);
                written.unwrap_or_default()
            };
            total += n;
            if n < buf.len() {
                break;
            }
        }
        Ok(total)
    }

    /// Ends our side: a FIN after what was written; a pending read ends.
    pub(crate) fn shutdown(&self) {
        self.socket.endpoint.borrow_mut().close(self.handle);
        if let Some(w) = self.socket.waiting.borrow_mut().get_mut(&self.handle) {
            w.closed.get_or_insert(CloseReason::Aborted);
            if let Some(waker) = w.reader.take() {
                waker.wake();
            }
        }
        self.socket.kick.notify_one();
    }
}

impl Drop for UtpStream {
    fn drop(&mut self) {
        // A connection never answered is reset; an open one closes after what was written.
        let connected = self
            .socket
            .waiting
            .borrow_mut()
            .remove(&self.handle)
            .is_some_and(|w| w.connected);
        let mut endpoint = self.socket.endpoint.borrow_mut();
        if connected {
            endpoint.close(self.handle);
        } else {
            endpoint.abort(self.handle);
        }
        self.socket.kick.notify_one();
    }
}
