//! The shared UDP port: bound when the DHT or uTP runs, its readers handing each datagram to
//! uTP, the DHT node or a tracker exchange by its first bytes, and ICMP's "unreachable" to uTP
//! (a dial to a peer without uTP fails at once) and the DHT (a query to a node gone fails at
//! once). They run until the runtime ends,
//! through shutdown: trackers' answers to `stopped` arrive here.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use super::{Engine, incoming};
use crate::datagram::{DatagramSocket, RecvBatch};
use crate::net::PeerStream;
use crate::udp_port::{Kind, UdpPort, classify, unmap};
use crate::utp_socket::UtpSocket;

/// Reads (each a `recvmmsg` of several, each of those possibly many coalesced datagrams)
/// taken in one go before uTP sends what they call for: one acknowledgement for a batch
/// rather than one per pair of packets.
const READS_PER_FLUSH: usize = 8;

/// Binds the port (a warning, and neither DHT nor uTP, if it cannot be), starts uTP if the
/// transports include it, and the readers; the bound port, for the DHT.
pub(super) fn start(engine: &Rc<Engine>, listen: SocketAddr) -> Option<Rc<UdpPort>> {
    let port = match UdpPort::bind(listen) {
        Ok(port) => Rc::new(port),
        Err(error) => {
            tracing::warn!(%listen, %error, "no UDP port: no DHT nor uTP, UDP trackers on their own sockets");
            return None;
        }
    };
    if let Some(trackers) = &engine.shared.trackers {
        let _ = trackers.port.set(port.clone());
    }
    if engine.conf.transport.uses_utp() {
        let seed = engine.shared.session.borrow_mut().torrent_seed();
        let utp = UtpSocket::start(port.clone(), engine.conf.utp.clone(), seed);
        let weak = Rc::downgrade(engine);
        utp.set_on_incoming(Box::new(move |stream, addr| {
            if let Some(engine) = weak.upgrade()
                && !engine.closing.get()
            {
                tokio::task::spawn_local(incoming(engine, PeerStream::Utp(stream), addr));
            }
        }));
        let _ = engine.shared.utp.set(utp);
    }
    for socket in port.sockets() {
        tokio::task::spawn_local(receive(engine.clone(), port.clone(), socket));
    }
    Some(port)
}

/// Reads one socket, a batch at a time.
async fn receive(engine: Rc<Engine>, port: Rc<UdpPort>, socket: Rc<DatagramSocket>) {
    let mut batch = RecvBatch::new();
    let utp = engine.shared.utp.get().cloned();
    loop {
        if let Err(error) = socket.recv(&mut batch).await {
            tracing::trace!(%error, "UDP receive failed");
            // A lasting error (no buffers) must not make this task spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        let mut utp_seen = false;
        for &addr in batch.unreachable() {
            let addr = unmap(addr);
            if let Some(utp) = &utp {
                utp.unreachable(addr);
                utp_seen = true;
            }
            if let Some(node) = engine.shared.dht.get() {
                node.unreachable(addr);
            }
        }
        for read in 0..READS_PER_FLUSH {
            if read > 0 && socket.try_recv(&mut batch).is_err() {
                break;
            }
            for (from, datagram) in batch.datagrams() {
                utp_seen |= dispatch(&engine, &port, utp.as_deref(), unmap(from), datagram);
            }
        }
        if utp_seen && let Some(utp) = &utp {
            utp.flush();
        }
    }
}

/// Hands one datagram on; whether it was uTP's.
fn dispatch(
    engine: &Engine,
    port: &UdpPort,
    utp: Option<&UtpSocket>,
    from: SocketAddr,
    datagram: &[u8],
) -> bool {
    match classify(datagram) {
        Kind::Utp => {
            if let Some(utp) = utp {
                utp.handle_datagram(from, datagram);
                return true;
            }
        }
        Kind::Krpc => {
            if let Some(node) = engine.shared.dht.get() {
                node.handle_datagram(from, datagram);
            }
        }
        Kind::Other => {
            if !port.deliver(from, datagram) {
                tracing::trace!(%from, len = datagram.len(), "stray UDP datagram dropped");
            }
        }
    }
    false
}
