//! Interoperability with C libutp (the library Transmission ships) on loopback: a stream each
//! way between our endpoint, driven by a blocking loop on a UDP socket, and libutp in a tokio
//! runtime of its own.

#![allow(clippy::expect_used, clippy::panic, clippy::cast_possible_truncation)]

use std::net::{SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use cratetorrent_utp::{Config, ConnectionHandle, Endpoint, Event, StreamError};
use libutp_rs2::{UtpContext, UtpOpts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

const LEN: usize = 8 << 20;
const DEADLINE: Duration = Duration::from_secs(60);

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

/// Our side: an endpoint on a blocking socket. `app` sees every event and returns true when
/// the test is done.
fn drive(
    socket: &UdpSocket,
    endpoint: &mut Endpoint,
    mut app: impl FnMut(&mut Endpoint, Option<Event>) -> bool,
) {
    let start = Instant::now();
    let mut buf = [0u8; 2048];
    while start.elapsed() < DEADLINE {
        let now = Instant::now();
        let wait = endpoint
            .poll_timeout()
            .map_or(Duration::from_millis(5), |t| {
                t.saturating_duration_since(now)
            })
            .clamp(Duration::from_micros(100), Duration::from_millis(5));
        socket.set_read_timeout(Some(wait)).expect("timeout");
        if let Ok((len, from)) = socket.recv_from(&mut buf) {
            endpoint
                .handle_datagram(Instant::now(), from, &buf[..len])
                .expect("libutp sends uTP");
        }
        let now = Instant::now();
        if endpoint.poll_timeout().is_some_and(|t| t <= now) {
            endpoint.handle_timeout(now);
        }
        while let Some(t) = endpoint.poll_transmit(now, &mut buf) {
            socket.send_to(&buf[..t.len], t.to).expect("send");
        }
        if app(endpoint, None) {
            return;
        }
        while let Some(event) = endpoint.poll_event() {
            if app(endpoint, Some(event)) {
                return;
            }
        }
    }
    panic!("no end within {DEADLINE:?}");
}

/// Runs `side` against a libutp context on its own socket and thread; the context lives until
/// `stop` fires, so it can still retransmit and acknowledge after its stream is done.
fn libutp<R: Send + 'static>(
    side: impl AsyncFnOnce(std::sync::Arc<UtpContext<tokio::net::UdpSocket>>) -> R + Send + 'static,
) -> (SocketAddr, oneshot::Sender<()>, thread::JoinHandle<R>) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.set_nonblocking(true).expect("nonblocking");
    let addr = socket.local_addr().expect("address");
    let (stop, stopped) = oneshot::channel();
    let thread = thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let socket = tokio::net::UdpSocket::from_std(socket).expect("tokio socket");
            let context = UtpContext::new(socket, UtpOpts::default()).expect("libutp");
            let result = side(context).await;
            let _ = tokio::time::timeout(DEADLINE, stopped).await;
            result
        })
    });
    (addr, stop, thread)
}

fn our_socket() -> (UdpSocket, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    // Room for a whole window of libutp's bursts (the default holds about 150 datagrams).
    socket2::SockRef::from(&socket)
        .set_recv_buffer_size(4 << 20)
        .expect("SO_RCVBUF");
    let addr = socket.local_addr().expect("address");
    (socket, addr)
}

#[test]
fn libutp_receives_our_stream_whole() {
    let (to, stop, libutp) = libutp(async |context| {
        let mut stream = context.accept().await.expect("accept");
        let mut received = Vec::new();
        tokio::time::timeout(DEADLINE, stream.read_to_end(&mut received))
            .await
            .expect("in time")
            .expect("read");
        received
    });
    let (socket, _) = our_socket();
    let mut endpoint = Endpoint::new(Config::default(), Instant::now(), 1);
    let data = pattern(LEN);
    let handle = endpoint.connect(to, Instant::now()).expect("connect");
    let mut written = 0;
    let mut closed_at = None;
    drive(&socket, &mut endpoint, |endpoint, event| {
        if let Some(Event::Closed(_, reason)) = event {
            closed_at = Some(reason);
            return true;
        }
        while written < LEN {
            match endpoint.write(handle, &data[written..]) {
                Ok(n) => written += n,
                Err(StreamError::WouldBlock) => return false,
                Err(StreamError::Closed) => return true,
            }
        }
        endpoint.close(handle);
        false
    });
    stop.send(()).ok();
    let received = libutp.join().expect("libutp side");
    assert_eq!(closed_at, Some(cratetorrent_utp::CloseReason::Finished));
    assert_eq!(received.len(), LEN);
    assert!(received == data, "the stream differs");
}

#[test]
fn we_receive_a_libutp_stream_whole() {
    let (socket, addr) = our_socket();
    let data = pattern(LEN);
    let sent = data.clone();
    let (_, stop, libutp) = libutp(async move |context| {
        let mut stream = context.connect(addr).await.expect("connect");
        tokio::time::timeout(DEADLINE, stream.write_all(&sent))
            .await
            .expect("in time")
            .expect("write");
        // Dropping the stream closes it: libutp sends its FIN after the data.
        drop(stream);
    });
    let mut endpoint = Endpoint::new(Config::default(), Instant::now(), 2);
    let mut received = Vec::with_capacity(LEN);
    let mut incoming: Option<ConnectionHandle> = None;
    drive(&socket, &mut endpoint, |endpoint, event| {
        if let Some(Event::Incoming(handle, _)) = event {
            incoming = Some(handle);
        }
        let Some(handle) = incoming else {
            return false;
        };
        let mut chunk = [0u8; 65536];
        loop {
            match endpoint.read(handle, &mut chunk) {
                Ok(0) => {
                    endpoint.close(handle);
                    return true;
                }
                Ok(n) => received.extend_from_slice(&chunk[..n]),
                Err(_) => return false,
            }
        }
    });
    stop.send(()).ok();
    libutp.join().expect("libutp side");
    assert_eq!(received.len(), LEN);
    assert!(received == data, "the stream differs");
}
