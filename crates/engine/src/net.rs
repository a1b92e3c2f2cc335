//! The shell's TCP sockets, on io_uring (tokio-uring) or, where the ring cannot be created
//! (Docker's default seccomp profile, `kernel.io_uring_disabled`), on epoll (tokio): the same
//! byte stream either way, so nothing above this module knows which. Tasks are spawned with
//! `tokio::task::spawn_local`, which both runtimes run.

use std::io::{self, IoSlice};
use std::net::SocketAddr;

use bytes::buf::BufMut;
use bytes::{Bytes, BytesMut};
use tokio_uring::buf::BoundedBuf;

/// Which system interface the engine's sockets use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Net {
    Uring,
    Epoll,
}

/// A connection to a peer.
pub(crate) enum PeerStream {
    Uring(tokio_uring::net::TcpStream),
    Epoll(tokio::net::TcpStream),
}

impl PeerStream {
    pub(crate) async fn connect(addr: SocketAddr, net: Net) -> io::Result<Self> {
        let stream = match net {
            Net::Uring => Self::Uring(tokio_uring::net::TcpStream::connect(addr).await?),
            Net::Epoll => Self::Epoll(tokio::net::TcpStream::connect(addr).await?),
        };
        stream.set_nodelay();
        Ok(stream)
    }

    pub(crate) fn set_nodelay(&self) {
        let _ = match self {
            Self::Uring(stream) => stream.set_nodelay(true),
            Self::Epoll(stream) => stream.set_nodelay(true),
        };
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

    /// Shuts both directions down: a pending read ends, and the peer sees the close.
    pub(crate) fn shutdown(&self) -> io::Result<()> {
        match self {
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
    pub(crate) fn from_std(listener: std::net::TcpListener, net: Net) -> io::Result<Self> {
        Ok(match net {
            Net::Uring => Self::Uring(tokio_uring::net::TcpListener::from_std(listener)),
            Net::Epoll => {
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
