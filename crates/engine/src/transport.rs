//! Which transports peer connections use, and dialling over them: uTP first with TCP after a
//! head start (libtorrent dials uTP first and falls back to TCP; starting TCP while uTP still
//! waits costs a peer without uTP one second, not the three of a uTP timeout).

use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::time::Duration;

use crate::net::{Net, PeerStream};
use crate::udp_port::unmap;
use crate::utp_socket::UtpSocket;

/// How long a uTP attempt runs alone before a TCP one joins it (the uTP SYN's first timeout).
const UTP_HEAD_START: Duration = Duration::from_secs(1);

/// The transports peer connections use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Transport {
    /// TCP only: no uTP connections dialled or accepted.
    Tcp,
    /// uTP only: no TCP connections dialled (incoming TCP connections are still accepted).
    Utp,
    /// Dial uTP first and TCP if uTP is not answered within a second, the first to connect
    /// winning; accept both (libtorrent's default).
    #[default]
    Both,
}

impl Transport {
    /// Whether uTP runs at all.
    pub(crate) fn uses_utp(self) -> bool {
        self != Self::Tcp
    }
}

/// What a dial needs: the TCP socket settings, the uTP socket if it runs, the policy.
#[derive(Debug, Clone)]
pub(crate) struct Dialer {
    pub(crate) net: Net,
    pub(crate) utp: Option<Rc<UtpSocket>>,
    pub(crate) transport: Transport,
}

impl Dialer {
    /// Connects to `addr` as the policy says.
    pub(crate) async fn open(&self, addr: SocketAddr) -> io::Result<PeerStream> {
        let utp = match (&self.utp, self.transport) {
            (Some(utp), Transport::Utp | Transport::Both) => utp,
            (None, Transport::Utp) => return Err(io::ErrorKind::Unsupported.into()),
            _ => return PeerStream::connect(addr, self.net).await,
        };
        let over_utp = async { utp.connect(unmap(addr)).await.map(PeerStream::Utp) };
        if self.transport == Transport::Utp {
            return over_utp.await;
        }
        let mut over_utp = pin!(over_utp);
        tokio::select! {
            result = &mut over_utp => match result {
                Ok(stream) => return Ok(stream),
                Err(error) => {
                    tracing::trace!(%addr, %error, "uTP refused; TCP");
                    return PeerStream::connect(addr, self.net).await;
                }
            },
            () = tokio::time::sleep(UTP_HEAD_START) => {}
        }
        let mut over_tcp = pin!(PeerStream::connect(addr, self.net));
        // Both running: the first to connect wins (the other is dropped, a uTP attempt with a
        // RESET). A uTP failure leaves TCP to finish; a TCP failure ends the dial, since a
        // peer that speaks uTP would have answered within the head start on all but the
        // slowest paths (and waiting on would hold a dial slot for seconds per dead address).
        tokio::select! {
            result = &mut over_utp => match result {
                Ok(stream) => Ok(stream),
                Err(_) => over_tcp.await,
            },
            result = &mut over_tcp => result,
        }
    }
}
