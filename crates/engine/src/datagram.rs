//! One socket of the UDP port, with batched I/O through `quinn-udp` (quinn's socket layer,
//! which knows each kernel's quirks): same-sized datagrams to one address leave in one
//! `sendmsg` as a UDP GSO batch, and reads take several datagrams per `recvmmsg`, each of which
//! may be many datagrams the kernel coalesced (UDP GRO). A kernel without either gets one
//! datagram per call, as plain `sendto`/`recvfrom` would. uTP moves bulk data through here,
//! where one system call per 1,400-byte packet would cost more than everything else it does.
//!
//! ICMP errors are read too (`IP_RECVERR`, the socket's error queue): "port unreachable" for
//! a uTP SYN means the peer has no uTP, and the dial falls back to TCP at once instead of after
//! the head start. The error queue names the address the failed datagram was sent to (the
//! ICMP message's sender may be a router), which is what uTP needs.

use std::io::{self, IoSliceMut};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Reads per `recvmmsg`.
const READS: usize = 8;
/// The room for one read: up to 64 coalesced datagrams (the kernel's GRO limit) of a
/// 1,500-byte path fit in 64 KiB + 32 KiB; a datagram larger than that is truncated, and
/// dropped as malformed by whoever it was for.
const READ_LEN: usize = 96 * 1024;
/// Error-queue entries taken per wake (the rest wait for the next; the kernel bounds the queue
/// by the socket's receive buffer).
const ERRORS_PER_READ: usize = 64;

/// A UDP socket and what `quinn-udp` learned about its kernel.
#[derive(Debug)]
pub(crate) struct DatagramSocket {
    socket: UdpSocket,
    state: UdpSocketState,
}

impl DatagramSocket {
    /// Takes a bound, non-blocking socket, and turns on its error queue.
    pub(crate) fn new(socket: UdpSocket) -> io::Result<Self> {
        let state = UdpSocketState::new((&socket).into())?;
        state.enable_transport_errors((&socket).into())?;
        Ok(Self { socket, state })
    }

    /// Most datagrams one [`try_send`](Self::try_send) may carry (1 without GSO).
    pub(crate) fn max_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    /// Sends one datagram, waiting for room (the DHT's and trackers' few datagrams).
    pub(crate) async fn send_to(&self, datagram: &[u8], to: SocketAddr) -> io::Result<()> {
        match self.socket.send_to(datagram, to).await {
            // The error was an earlier datagram's, and taking it cleared it.
            Err(error) if is_deferred(&error) => self.socket.send_to(datagram, to).await,
            other => other,
        }
        .map(|_| ())
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
        let send = || {
            self.socket.try_io(Interest::WRITABLE, || {
                self.state.try_send((&self.socket).into(), &transmit)
            })
        };
        match send() {
            Err(error) if is_deferred(&error) => send(),
            other => other,
        }
    }

    /// Waits for datagrams or ICMP errors, and reads what is there into `batch`.
    pub(crate) async fn recv(&self, batch: &mut RecvBatch) -> io::Result<()> {
        loop {
            let ready = self
                .socket
                .ready(Interest::READABLE | Interest::ERROR)
                .await?;
            batch.unreachable.clear();
            if ready.is_error() {
                self.read_errors(batch);
            }
            match self.try_recv(batch) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                // An ICMP error arrived after the queue was read; the next round takes it.
                Err(error) if is_deferred(&error) => self.read_errors(batch),
                other => return other,
            }
            if !batch.unreachable.is_empty() {
                return Ok(());
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

    /// Takes entries off the error queue into `batch`'s unreachable addresses, up to
    /// [`ERRORS_PER_READ`]; the error readiness is cleared once the queue is empty.
    fn read_errors(&self, batch: &mut RecvBatch) {
        let _ = self.socket.try_io(Interest::ERROR, || {
            for _ in 0..ERRORS_PER_READ {
                match recv_error(&self.socket)? {
                    QueuedError::Unreachable(addr) => batch.unreachable.push(addr),
                    QueuedError::Other => {}
                }
            }
            Ok(())
        });
    }
}

/// An error a send or read may return for an earlier datagram's ICMP error (`IP_RECVERR`
/// reports it once on the next call, to any address, then clears it): the call itself may not
/// have failed, and is tried once more. Every errno the kernel maps ICMP and ICMPv6 errors to.
fn is_deferred(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(
            libc::ECONNREFUSED
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EPROTO
                | libc::ENOPROTOOPT
                | libc::EOPNOTSUPP
                | libc::EMSGSIZE
                | libc::EACCES
        )
    )
}

/// One entry of a socket's error queue.
enum QueuedError {
    /// "Destination unreachable" (other than "fragmentation needed") for a datagram sent to
    /// this address.
    Unreachable(SocketAddr),
    /// Anything else (a path MTU report, a time exceeded, a local error).
    Other,
}

/// Reads one entry of `socket`'s error queue; `WouldBlock` when it is empty.
#[allow(unsafe_code)]
fn recv_error(socket: &UdpSocket) -> io::Result<QueuedError> {
    // `sock_extended_err`, then the offender's address, fit in far less than this.
    let mut control = [MaybeUninit::<u64>::uninit(); 32];
    let mut name = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: byte.len(),
    };
    // SAFETY: an all-zero `msghdr` is a valid value (null pointers, zero lengths).
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_name = name.as_mut_ptr().cast();
    header.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    header.msg_iov = &raw mut iov;
    header.msg_iovlen = 1;
    header.msg_control = control.as_mut_ptr().cast();
    header.msg_controllen = size_of_val(&control);
    // SAFETY: every pointer in `header` points at a live buffer of the length given with it.
    let read = unsafe {
        libc::recvmsg(
            socket.as_raw_fd(),
            &raw mut header,
            libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
        )
    };
    if read < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `recvmsg` wrote `msg_namelen` bytes of address into `name`, which was zeroed.
    let Some(to) = (unsafe { socket_addr(name.assume_init_ref(), header.msg_namelen) }) else {
        return Ok(QueuedError::Other);
    };
    // SAFETY: the kernel filled `msg_controllen` bytes of well-formed control messages, and
    // the `CMSG_*` macros stay within them.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&raw const header) };
    while !cmsg.is_null() {
        // SAFETY: as above: `cmsg` points at a whole header within the control buffer.
        let (level, kind, len) =
            unsafe { ((*cmsg).cmsg_level, (*cmsg).cmsg_type, (*cmsg).cmsg_len) };
        let recverr = (level == libc::IPPROTO_IP && kind == libc::IP_RECVERR)
            || (level == libc::IPPROTO_IPV6 && kind == libc::IPV6_RECVERR);
        // SAFETY: computing a length from a constant.
        let needed = unsafe { libc::CMSG_LEN(size_of::<libc::sock_extended_err>() as u32) };
        if recverr && len >= needed as usize {
            // SAFETY: the data holds a whole `sock_extended_err` (checked above), maybe
            // unaligned.
            let error = unsafe {
                libc::CMSG_DATA(cmsg)
                    .cast::<libc::sock_extended_err>()
                    .read_unaligned()
            };
            let unreachable = match (error.ee_origin, error.ee_type, error.ee_code) {
                (libc::SO_EE_ORIGIN_ICMP, 3, 4) => false,
                (libc::SO_EE_ORIGIN_ICMP, 3, _) | (libc::SO_EE_ORIGIN_ICMP6, 1, _) => true,
                _ => false,
            };
            return Ok(if unreachable {
                QueuedError::Unreachable(to)
            } else {
                QueuedError::Other
            });
        }
        // SAFETY: as for `CMSG_FIRSTHDR`.
        cmsg = unsafe { libc::CMSG_NXTHDR(&raw const header, cmsg) };
    }
    Ok(QueuedError::Other)
}

/// The socket address in `name` (`len` bytes of it written by the kernel).
///
/// # Safety
/// `name` must hold `len` bytes of a valid socket address of its family (or be zeroed).
#[allow(unsafe_code)]
unsafe fn socket_addr(name: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match i32::from(name.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: an IPv4 address of its full length, per the family and length.
            let v4 = unsafe { &*std::ptr::from_ref(name).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
            Some(SocketAddr::new(ip.into(), u16::from_be(v4.sin_port)))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: an IPv6 address of its full length, per the family and length.
            let v6 = unsafe { &*std::ptr::from_ref(name).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(v6.sin6_addr.s6_addr);
            Some(SocketAddr::new(ip.into(), u16::from_be(v6.sin6_port)))
        }
        _ => None,
    }
}

/// The buffers of one batch of reads (`READS` of `READ_LEN` bytes, end to end), allocated
/// once per reader.
pub(crate) struct RecvBatch {
    bufs: Box<[u8]>,
    meta: [RecvMeta; READS],
    filled: usize,
    unreachable: Vec<SocketAddr>,
}

impl RecvBatch {
    pub(crate) fn new() -> Self {
        Self {
            bufs: vec![0u8; READS * READ_LEN].into_boxed_slice(),
            meta: [RecvMeta::default(); READS],
            filled: 0,
            unreachable: Vec::with_capacity(ERRORS_PER_READ),
        }
    }

    /// Addresses ICMP said were unreachable, from the last wait.
    pub(crate) fn unreachable(&self) -> &[SocketAddr] {
        &self.unreachable
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn recv(socket: &DatagramSocket, batch: &mut RecvBatch) {
        tokio::time::timeout(Duration::from_secs(10), socket.recv(batch))
            .await
            .expect("nothing arrived within 10 s")
            .unwrap();
    }

    #[test]
    fn a_datagram_to_a_closed_port_comes_back_as_unreachable_and_the_socket_goes_on() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let bound = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            bound.set_nonblocking(true).unwrap();
            let ours = bound.local_addr().unwrap();
            let socket = DatagramSocket::new(UdpSocket::from_std(bound).unwrap()).unwrap();
            let closed = std::net::UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap();
            let mut batch = RecvBatch::new();

            socket.send_to(b"syn", closed).await.unwrap();
            recv(&socket, &mut batch).await;
            assert_eq!(batch.unreachable(), [closed]);
            assert_eq!(batch.datagrams().count(), 0);

            // Another error queued (on loopback, before the send returns), then a send and a
            // read: the pending error fails neither.
            socket.send_to(b"syn", closed).await.unwrap();
            let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            peer.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let peer_addr = peer.local_addr().unwrap();
            socket.try_send(peer_addr, b"ping", 4).unwrap();
            let mut buf = [0u8; 8];
            assert_eq!(peer.recv_from(&mut buf).unwrap(), (4, ours));
            assert_eq!(&buf[..4], b"ping");
            peer.send_to(b"pong", ours).unwrap();
            let (mut unreachable, mut datagrams) = (Vec::new(), Vec::new());
            while datagrams.is_empty() {
                recv(&socket, &mut batch).await;
                unreachable.extend_from_slice(batch.unreachable());
                datagrams.extend(batch.datagrams().map(|(from, d)| (from, d.to_vec())));
            }
            assert_eq!(unreachable, [closed]);
            assert_eq!(datagrams, [(peer_addr, b"pong".to_vec())]);
        });
    }
}
