//! The shell's peer connections: TCP sockets on io_uring (tokio-uring) or, where the ring
//! cannot be created (Docker's default seccomp profile, `kernel.io_uring_disabled`), on epoll
//! (tokio), and uTP streams (`utp_socket`): the same byte stream in every case, so nothing
//! above this module knows which. Tasks are spawned with `tokio::task::spawn_local`, which
//! both runtimes run.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

use bytes::buf::BufMut;
use bytes::{Bytes, BytesMut};
use tokio_uring::buf::BoundedBuf;

use crate::Conf;
use crate::utp_socket::UtpStream;

/// Which system interface the engine's sockets use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Uring,
    Epoll,
}

/// How the engine's peer sockets are made: the interface, and what is asked of the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Net {
    pub(crate) backend: Backend,
    /// The most `SO_SNDBUF` a connection bound by its send buffer may be given, where that
    /// exceeds what autotuning reaches (see `send_buffer.rs`).
    pub(crate) send_buffer: Option<usize>,
    /// `TCP_NOTSENT_LOWAT` (see `send_buffer.rs` for when a connection is given more).
    pub(crate) unsent_limit: Option<u32>,
}

impl Net {
    /// `backend` with the socket sizes of `conf`, the send buffer only where the kernel's
    /// limits (read from `/proc/sys` of this network namespace) let it exceed autotuning.
    pub(crate) fn new(backend: Backend, conf: &Conf) -> Self {
        let limits = sysctl("net/core/wmem_max", 0).zip(sysctl("net/ipv4/tcp_wmem", 2));
        Self::with_limits(backend, conf, limits)
    }

    /// As [`Net::new`] with the kernel's `wmem_max` and autotuning maximum given.
    fn with_limits(backend: Backend, conf: &Conf, limits: Option<(usize, usize)>) -> Self {
        let raises = |(wmem_max, autotune_max): (usize, usize)| {
            conf.send_buffer.min(wmem_max).saturating_mul(2) > autotune_max
        };
        Self {
            backend,
            send_buffer: (conf.send_buffer > 0 && limits.is_some_and(raises))
                .then_some(conf.send_buffer),
            unsent_limit: (conf.unsent_limit > 0).then_some(conf.unsent_limit),
        }
    }

    /// Applies the socket options to a connected or listening socket (accepted sockets
    /// inherit a listener's). Each is an optimisation: one the kernel refuses is logged.
    pub(crate) fn tune(&self, socket: impl AsFd) {
        let socket = socket2::SockRef::from(&socket);
        let mut result = socket.set_tcp_nodelay(true);
        if let Some(limit) = self.unsent_limit {
            result = result.and(socket.set_tcp_notsent_lowat(limit));
        }
        if let Err(error) = result {
            tracing::debug!(%error, "socket option refused");
        }
    }
}

/// The kernel's figures for the sending of connected TCP socket `fd` (`TCP_INFO`).
#[allow(unsafe_code)]
fn tcp_info(fd: BorrowedFd<'_>) -> Option<TcpInfo> {
    let mut raw = [0u8; TCP_INFO_LEN];
    let mut len = TCP_INFO_LEN as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `raw`, a buffer that long, and stores
    // how many it wrote in `len`.
    let result = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            raw.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if result != 0 || (len as usize) < TCP_INFO_LEN {
        return None;
    }
    let send_buffer = socket2::SockRef::from(&fd).send_buffer_size().ok()?;
    Some(TcpInfo::parse(&raw, send_buffer))
}

/// Bytes of `struct tcp_info` read: up to `tcpi_sndbuf_limited` (Linux 4.9 and later).
const TCP_INFO_LEN: usize = 192;

/// What [`PeerStream::tcp_info`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TcpInfo {
    /// Time spent with data to send, microseconds.
    pub(crate) busy_us: u64,
    /// Of that, time bound by the send buffer, microseconds.
    pub(crate) sndbuf_limited_us: u64,
    /// The latest delivery rate sample, bytes per second.
    pub(crate) delivery_rate: u64,
    /// The least round trip seen, microseconds.
    pub(crate) min_rtt_us: u32,
    /// The smoothed round trip now, microseconds.
    pub(crate) srtt_us: u32,
    /// Segments retransmitted since the connection opened.
    pub(crate) total_retrans: u32,
    /// The send buffer's size as the kernel counts it (`SO_SNDBUF`).
    pub(crate) send_buffer: usize,
}

impl TcpInfo {
    /// Whether a queue stands at the path's bottleneck: the smoothed round trip more than a
    /// quarter above the least.
    pub(crate) fn queue_stands(&self) -> bool {
        u64::from(self.srtt_us) * 4 > u64::from(self.min_rtt_us) * 5
    }

    /// Reads the fields at their offsets in the kernel's (stable) `struct tcp_info`.
    fn parse(raw: &[u8; TCP_INFO_LEN], send_buffer: usize) -> Self {
        let u32_at = |at: usize| {
            let mut bytes = [0u8; 4];
            bytes.copy_from_slice(&raw[at..at + 4]);
            u32::from_ne_bytes(bytes)
        };
        let u64_at = |at: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&raw[at..at + 8]);
            u64::from_ne_bytes(bytes)
        };
        Self {
            srtt_us: u32_at(68),
            total_retrans: u32_at(100),
            min_rtt_us: u32_at(148),
            delivery_rate: u64_at(160),
            busy_us: u64_at(168),
            sndbuf_limited_us: u64_at(184),
            send_buffer,
        }
    }
}

/// Field `index` of `/proc/sys/<key>`, if it reads as a number.
fn sysctl(key: &str, index: usize) -> Option<usize> {
    let text = std::fs::read_to_string(Path::new("/proc/sys").join(key)).ok()?;
    text.split_whitespace().nth(index)?.parse().ok()
}

/// A connection to a peer.
pub(crate) enum PeerStream {
    Uring(tokio_uring::net::TcpStream),
    Epoll(tokio::net::TcpStream),
    Utp(UtpStream),
}

impl PeerStream {
    /// Connects to `addr`, tuned as `net` says. The connect itself runs on the reactor
    /// under both backends (tokio-uring runs one), since the socket options must be set on a
    /// descriptor that tokio-uring's own connect does not lend out.
    pub(crate) async fn connect(addr: SocketAddr, net: Net) -> io::Result<Self> {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        // Before connecting, so the window scale offered in the SYN suits the buffers.
        net.tune(&socket);
        let stream = socket.connect(addr).await?;
        Ok(match net.backend {
            Backend::Uring => {
                // io_uring would hand a non-blocking socket's EAGAIN back rather than wait.
                let stream = stream.into_std()?;
                stream.set_nonblocking(false)?;
                Self::Uring(tokio_uring::net::TcpStream::from_std(stream))
            }
            Backend::Epoll => Self::Epoll(stream),
        })
    }

    /// One read of at most `len` bytes into `buf`'s spare capacity (which must hold them).
    /// On io_uring the read must not be raced against a timer (a dropped read still consumes
    /// bytes in the kernel): stop it with [`PeerStream::shutdown`].
    pub(crate) async fn read_into(&self, buf: &mut BytesMut, len: usize) -> io::Result<usize> {
        match self {
            Self::Uring(stream) => {
                let owned = std::mem::take(buf);
                let start = owned.len();
                let (result, slice) = stream.read(owned.slice(start..start + len)).await;
                *buf = slice.into_inner();
                result
            }
            Self::Utp(stream) => stream.read_into(buf, len).await,
            Self::Epoll(stream) => loop {
                stream.readable().await?;
                let mut limited = (&mut *buf).limit(len);
                match stream.try_read_buf(&mut limited) {
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    result => return result,
                }
            },
        }
    }

    /// Writes all of `data`.
    pub(crate) async fn write_all(&self, data: BytesMut) -> io::Result<()> {
        match self {
            Self::Uring(stream) => stream.write_all(data).await.0,
            Self::Utp(stream) => stream.write_all(&data).await,
            Self::Epoll(stream) => {
                let mut written = 0;
                while written < data.len() {
                    stream.writable().await?;
                    match stream.try_write(&data[written..]) {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(n) => written += n,
                        Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                        Err(error) => return Err(error),
                    }
                }
                Ok(())
            }
        }
    }

    /// One vectored write of `bufs` (at most 1,024); returns how much was written, and the
    /// buffers back.
    pub(crate) async fn writev(&self, bufs: Vec<Bytes>) -> (io::Result<usize>, Vec<Bytes>) {
        match self {
            Self::Uring(stream) => stream.writev(bufs).await,
            Self::Utp(stream) => (stream.writev(&bufs).await, bufs),
            Self::Epoll(stream) => loop {
                if let Err(error) = stream.writable().await {
                    return (Err(error), bufs);
                }
                let slices: Vec<IoSlice<'_>> = bufs.iter().map(|b| IoSlice::new(b)).collect();
                match stream.try_write_vectored(&slices) {
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    result => return (result, bufs),
                }
            },
        }
    }

    /// The descriptor of a TCP connection, borrowed for socket options.
    #[allow(unsafe_code)]
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        let fd = match self {
            Self::Uring(stream) => stream.as_raw_fd(),
            Self::Epoll(stream) => stream.as_raw_fd(),
            Self::Utp(_) => return None,
        };
        // SAFETY: the descriptor belongs to the stream, which is borrowed for the returned
        // lifetime and closes it only when dropped. tokio-uring's stream offers no `AsFd`.
        Some(unsafe { BorrowedFd::borrow_raw(fd) })
    }

    /// Whether this is a uTP connection.
    pub(crate) fn is_utp(&self) -> bool {
        matches!(self, Self::Utp(_))
    }

    /// The kernel's figures for this connection's sending (`TCP_INFO`); none over uTP.
    pub(crate) fn tcp_info(&self) -> Option<TcpInfo> {
        tcp_info(self.fd()?)
    }

    /// Fixes the send buffer at `size` (which the kernel doubles and caps at `wmem_max`).
    pub(crate) fn set_send_buffer(&self, size: usize) {
        let Some(fd) = self.fd() else { return };
        if let Err(error) = socket2::SockRef::from(&fd).set_send_buffer_size(size) {
            tracing::debug!(%error, "send buffer size refused");
        }
    }

    /// Sets `TCP_NOTSENT_LOWAT` to `bytes`.
    pub(crate) fn set_unsent_limit(&self, bytes: u32) {
        let Some(fd) = self.fd() else { return };
        if let Err(error) = socket2::SockRef::from(&fd).set_tcp_notsent_lowat(bytes) {
            tracing::debug!(%error, "unsent limit refused");
        }
    }

    /// Shuts both directions down: a pending read ends, and the peer sees the close.
    pub(crate) fn shutdown(&self) -> io::Result<()> {
        match self {
            Self::Utp(stream) => {
                stream.shutdown();
                Ok(())
            }
            Self::Uring(stream) => stream.shutdown(std::net::Shutdown::Both),
            Self::Epoll(stream) => {
                rustix::net::shutdown(stream, rustix::net::Shutdown::Both)?;
                Ok(())
            }
        }
    }
}

/// A listening socket.
pub(crate) enum Listener {
    Uring(tokio_uring::net::TcpListener),
    Epoll(tokio::net::TcpListener),
}

impl Listener {
    /// Listens on `listener`, whose accepted sockets inherit the options `net` sets on it.
    pub(crate) fn from_std(listener: std::net::TcpListener, net: Net) -> io::Result<Self> {
        net.tune(&listener);
        Ok(match net.backend {
            Backend::Uring => Self::Uring(tokio_uring::net::TcpListener::from_std(listener)),
            Backend::Epoll => {
                listener.set_nonblocking(true)?;
                Self::Epoll(tokio::net::TcpListener::from_std(listener)?)
            }
        })
    }

    pub(crate) async fn accept(&self) -> io::Result<(PeerStream, SocketAddr)> {
        match self {
            Self::Uring(listener) => {
                let (stream, addr) = listener.accept().await?;
                Ok((PeerStream::Uring(stream), addr))
            }
            Self::Epoll(listener) => {
                let (stream, addr) = listener.accept().await?;
                Ok((PeerStream::Epoll(stream), addr))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn conf(send_buffer: usize, unsent_limit: u32) -> Conf {
        let mut conf = Conf::new("/nonexistent");
        conf.send_buffer = send_buffer;
        conf.unsent_limit = unsent_limit;
        conf
    }

    #[test]
    fn the_send_buffer_is_fixed_only_above_what_autotuning_reaches() {
        let net = |limits| Net::with_limits(Backend::Epoll, &conf(4 << 20, 0), limits);
        // Doubled by the kernel: 8 MiB beats autotuning's 4 MiB.
        assert_eq!(net(Some((4 << 20, 4 << 20))).send_buffer, Some(4 << 20));
        // A distribution's 208 KiB wmem_max would fix it far below autotuning's reach.
        assert_eq!(net(Some((212_992, 4 << 20))).send_buffer, None);
        assert_eq!(net(None).send_buffer, None);
        let off = Net::with_limits(Backend::Epoll, &conf(0, 0), Some((64 << 20, 4 << 20)));
        assert_eq!((off.send_buffer, off.unsent_limit), (None, None));
    }

    #[test]
    fn tcp_info_reads_the_kernels_figures_at_their_offsets() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let sent = vec![7u8; 4 << 20];
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            server.read_to_end(&mut all).map(|_| all.len())
        });
        client.write_all(&sent).unwrap();
        let info = tcp_info(client.as_fd()).unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(reader.join().unwrap().unwrap(), sent.len());
        // Loopback: a round trip of microseconds. The kernel counts busy and limited time in
        // milliseconds (a transfer this short may count none), reported in microseconds.
        assert!(info.min_rtt_us > 0 && info.min_rtt_us < 100_000, "{info:?}");
        assert!(
            info.srtt_us >= info.min_rtt_us && info.srtt_us < 1_000_000,
            "{info:?}"
        );
        assert!(
            info.busy_us < 60_000_000 && info.busy_us.is_multiple_of(1000),
            "{info:?}"
        );
        assert!(info.sndbuf_limited_us.is_multiple_of(1000), "{info:?}");
        assert!(info.sndbuf_limited_us <= info.busy_us, "{info:?}");
        assert!(info.delivery_rate > 1_000_000, "{info:?}");
        assert!(info.send_buffer > 0);
    }

    #[test]
    fn accepted_sockets_inherit_the_listeners_options() {
        let net = Net::with_limits(
            Backend::Epoll,
            &conf(1 << 20, 256 << 10),
            Some((1 << 20, 0)),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        net.tune(&listener);
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let socket = socket2::SockRef::from(&accepted);
        assert!(socket.tcp_nodelay().unwrap());
        // The kernel doubles the size asked for (capped by wmem_max).
        assert!(socket.send_buffer_size().unwrap() >= 1 << 20);
        assert_eq!(socket.tcp_notsent_lowat().unwrap(), 256 << 10);
    }
}
