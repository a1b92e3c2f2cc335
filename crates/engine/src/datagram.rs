//! One socket of the UDP port, with batched I/O through `quinn-udp` (quinn's socket layer,
//! which knows each kernel's quirks): same-sized datagrams to one address leave in one
//! `sendmsg` as a UDP GSO batch, and reads take several datagrams per `recvmmsg`, each of which
//! may be many datagrams the kernel coalesced (UDP GRO). A kernel without either gets one
//! datagram per call, as plain `sendto`/`recvfrom` would. uTP moves bulk data through here,
//! where one system call per 1,400-byte packet would cost more than everything else it does.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Reads per `recvmmsg`.
const READS: usize = 8;
/// The room for one read: up to 64 coalesced datagrams (the kernel's GRO limit) of a
/// 1,500-byte path fit in 64 KiB + 32 KiB; a datagram larger than that is truncated, and
/// dropped as malformed by whoever it was for.
const READ_LEN: usize = 96 * 1024;

/// A UDP socket and what `quinn-udp` learned about its kernel.
#[derive(Debug)]
pub(crate) struct DatagramSocket {
    socket: UdpSocket,
    state: UdpSocketState,
}

impl DatagramSocket {
    /// Takes a bound, non-blocking socket.
    pub(crate) fn new(socket: UdpSocket) -> io::Result<Self> {
        let state = UdpSocketState::new((&socket).into())?;
        Ok(Self { socket, state })
    }

    /// Most datagrams one [`try_send`](Self::try_send) may carry (1 without GSO).
    pub(crate) fn max_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    /// Sends one datagram, waiting for room (the DHT's and trackers' few datagrams).
    pub(crate) async fn send_to(&self, datagram: &[u8], to: SocketAddr) -> io::Result<()> {
        self.socket.send_to(datagram, to).await.map(|_| ())
    }

    /// Sends `contents` to `to` now if the socket takes it: datagrams of `segment` bytes each
    /// but the last, which may be shorter. `WouldBlock` when the socket buffer is full.
    pub(crate) fn try_send(
        &self,
        to: SocketAddr,
        contents: &[u8],
        segment: usize,
    ) -> io::Result<()> {
        let transmit = Transmit {
            destination: to,
            ecn: None,
            contents,
            segment_size: (contents.len() > segment).then_some(segment),
            src_ip: None,
        };
        self.socket.try_io(Interest::WRITABLE, || {
            self.state.try_send((&self.socket).into(), &transmit)
        })
    }

    /// Waits for datagrams and reads what is there into `batch`.
    pub(crate) async fn recv(&self, batch: &mut RecvBatch) -> io::Result<()> {
        loop {
            self.socket.readable().await?;
            match self.try_recv(batch) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                other => return other,
            }
        }
    }

    /// Reads what is there into `batch` without waiting (`WouldBlock` if nothing is).
    pub(crate) fn try_recv(&self, batch: &mut RecvBatch) -> io::Result<()> {
        batch.filled = 0;
        let mut bufs = batch.bufs.chunks_exact_mut(READ_LEN);
        let mut slices: [IoSliceMut<'_>; READS] =
            std::array::from_fn(|_| IoSliceMut::new(bufs.next().unwrap_or_default()));
        let filled = self.socket.try_io(Interest::READABLE, || {
            self.state
                .recv((&self.socket).into(), &mut slices, &mut batch.meta)
        })?;
        batch.filled = filled.min(READS);
        Ok(())
    }
}

/// The buffers of one batch of reads (`READS` of `READ_LEN` bytes, end to end), allocated
/// once per reader.
pub(crate) struct RecvBatch {
    bufs: Box<[u8]>,
    meta: [RecvMeta; READS],
    filled: usize,
}

impl RecvBatch {
    pub(crate) fn new() -> Self {
        Self {
            bufs: vec![0u8; READS * READ_LEN].into_boxed_slice(),
            meta: [RecvMeta::default(); READS],
            filled: 0,
        }
    }

    /// Each datagram read, with its sender.
    pub(crate) fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        self.meta[..self.filled]
            .iter()
            .zip(self.bufs.chunks_exact(READ_LEN))
            .flat_map(|(meta, buf)| {
                let len = meta.len.min(READ_LEN);
                buf[..len]
                    .chunks(meta.stride.max(1))
                    .map(move |datagram| (meta.addr, datagram))
            })
    }
}
