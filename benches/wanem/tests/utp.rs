//! uTP across emulated links (needs root, about 60 s): one connection fills a 10 MB/s, 100 ms
//! link, and on a 2.5 MB/s, 50 ms bottleneck with 240 ms of queue it yields to a TCP flow (below
//! a quarter of the link while the flow runs) and takes the link back after, as LEDBAT must.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cratetorrent_utp::{Config, Endpoint, Event, StreamError};
use cratetorrent_wanem::{HostConf, LinkConf, Wan};

const PORT: u16 = 6881;

/// Runs one endpoint on a socket of the current thread's namespace until `until`, giving each
/// event (and a tick) to `app`, which returns true to stop.
fn drive(
    socket: &UdpSocket,
    endpoint: &mut Endpoint,
    until: Instant,
    mut app: impl FnMut(&mut Endpoint, Option<Event>) -> bool,
) {
    let mut buf = [0u8; 2048];
    while Instant::now() < until {
        let now = Instant::now();
        let wait = endpoint
            .poll_timeout()
            .map_or(Duration::from_millis(2), |t| {
                t.saturating_duration_since(now)
            })
            .clamp(Duration::from_micros(50), Duration::from_millis(2));
        socket.set_read_timeout(Some(wait)).unwrap();
        // A batch of what arrived, then one round of sending.
        let mut first = true;
        loop {
            if !first {
                socket.set_nonblocking(true).unwrap();
            }
            let received = socket.recv_from(&mut buf);
            if !first {
                socket.set_nonblocking(false).unwrap();
            }
            first = false;
            match received {
                Ok((len, from)) => {
                    let _ = endpoint.handle_datagram(Instant::now(), from, &buf[..len]);
                }
                Err(_) => break,
            }
        }
        let now = Instant::now();
        if endpoint.poll_timeout().is_some_and(|t| t <= now) {
            endpoint.handle_timeout(now);
        }
        while let Some(t) = endpoint.poll_transmit(now, &mut buf) {
            let _ = socket.send_to(&buf[..t.len], t.to);
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
}

fn bound(wan: &Wan, host: usize) -> UdpSocket {
    wan.enter(host).unwrap();
    let addr = SocketAddr::from((wan.hosts()[host].addr, PORT));
    let socket = UdpSocket::bind(addr).unwrap();
    socket2::SockRef::from(&socket)
        .set_recv_buffer_size(4 << 20)
        .unwrap();
    socket
}

/// A uTP stream from host `from` to host `to` for `seconds`; the receiver's byte count every
/// 100 ms.
fn utp_flow(wan: &Wan, from: usize, to: usize, seconds: f64) -> Vec<(Duration, u64)> {
    let to_addr = SocketAddr::from((wan.hosts()[to].addr, PORT));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds + 10.0);
    let stop_at = Instant::now() + Duration::from_secs_f64(seconds);
    std::thread::scope(|scope| {
        let (ready_tx, ready_rx) = mpsc::channel();
        let receiver = scope.spawn(move || {
            let socket = bound(wan, to);
            let mut endpoint = Endpoint::new(Config::default(), Instant::now(), 2);
            let _ = ready_tx.send(());
            let start = Instant::now();
            let (mut total, mut samples, mut next) = (0u64, Vec::new(), Duration::ZERO);
            let mut sink = vec![0u8; 1 << 16];
            drive(&socket, &mut endpoint, deadline, |endpoint, event| {
                if let Some(Event::Readable(handle)) = event {
                    loop {
                        match endpoint.read(handle, &mut sink) {
                            Ok(0) => return true,
                            Ok(n) => total += n as u64,
                            Err(_) => break,
                        }
                    }
                }
                if start.elapsed() >= next {
                    samples.push((start.elapsed(), total));
                    next += Duration::from_millis(100);
                }
                false
            });
            samples
        });
        ready_rx.recv().unwrap();
        scope.spawn(move || {
            let socket = bound(wan, from);
            let mut endpoint = Endpoint::new(Config::default(), Instant::now(), 1);
            let handle = endpoint.connect(to_addr, Instant::now()).unwrap();
            let chunk = vec![0x5a; 1 << 16];
            let mut closed = false;
            drive(&socket, &mut endpoint, deadline, |endpoint, event| {
                if let Some(Event::Closed(..)) = event {
                    return true;
                }
                if Instant::now() >= stop_at {
                    if !closed {
                        endpoint.close(handle);
                        closed = true;
                    }
                    return false;
                }
                loop {
                    match endpoint.write(handle, &chunk) {
                        Ok(_) => {}
                        Err(StreamError::WouldBlock) => return false,
                        Err(StreamError::Closed) => return true,
                    }
                }
            });
        });
        receiver.join().unwrap()
    })
}

/// Bytes per second between `from` and `to` seconds, from the receiver's samples.
fn rate(samples: &[(Duration, u64)], from: f64, to: f64) -> f64 {
    let at = |t: f64| {
        samples
            .iter()
            .take_while(|(at, _)| at.as_secs_f64() <= t)
            .last()
            .map_or(0, |(_, total)| *total)
    };
    (at(to) - at(from)) as f64 / (to - from)
}

fn link(one_way_ms: u64, rate: u64, queue: usize) -> LinkConf {
    LinkConf {
        delay: Duration::from_millis(one_way_ms),
        rate,
        queue,
        ..LinkConf::default()
    }
}

#[test]
#[ignore = "needs reference peers"]
fn one_connection_fills_a_long_link_and_yields_to_tcp_on_a_shared_one() {
    // 10 MB/s both ways, 100 ms round trip (four crossings of 25 ms), a queue of 250 ms.
    let long = link(25, 10_000_000, 2_500_000);
    let wan = Wan::start(&[HostConf::symmetric(long), HostConf::symmetric(long)], 3)
        .unwrap_or_else(|error| panic!("{error} (the emulator needs root and /dev/net/tun)"));
    let samples = utp_flow(&wan, 0, 1, 12.0);
    wan.stop().unwrap();
    let steady = rate(&samples, 4.0, 12.0) / 10e6;
    println!("uTP on 10 MB/s at 100 ms: {steady:.3} of the link from 4 s on");
    // 1,446 payload bytes in 1,494 of IP, UDP and uTP headers: 0.968 at most.
    assert!(steady >= 0.9, "{steady}");

    // A 2.5 MB/s bottleneck into host 1 with 240 ms of queue, 50 ms round trips; host 2 sends
    // TCP into it from 10 s to 20 s while host 0's uTP flow runs throughout.
    let fast = link(12, 100_000_000, 1 << 20);
    let bottleneck = HostConf {
        up: fast,
        down: link(13, 2_500_000, 600_000),
    };
    let hosts = [
        HostConf::symmetric(fast),
        bottleneck,
        HostConf::symmetric(fast),
    ];
    let shared = Wan::start(&hosts, 4).unwrap();
    let wan = &shared;
    let tcp_to = SocketAddr::from((wan.hosts()[1].addr, 5201));
    let (samples, tcp_bytes) = std::thread::scope(|scope| {
        let tcp = scope.spawn(|| {
            std::thread::sleep(Duration::from_secs(10));
            let (ready_tx, ready_rx) = mpsc::channel();
            let server = scope.spawn(move || {
                wan.enter(1).unwrap();
                let listener = TcpListener::bind(tcp_to).unwrap();
                let _ = ready_tx.send(());
                let (mut conn, _) = listener.accept().unwrap();
                let mut buf = vec![0u8; 1 << 16];
                let mut total = 0u64;
                while let Ok(n @ 1..) = conn.read(&mut buf) {
                    total += n as u64;
                }
                total
            });
            ready_rx.recv().unwrap();
            wan.enter(2).unwrap();
            let mut conn = TcpStream::connect(tcp_to).unwrap();
            let block = vec![0x5a; 1 << 16];
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until {
                conn.write_all(&block).unwrap();
            }
            drop(conn);
            server.join().unwrap()
        });
        let samples = utp_flow(wan, 0, 1, 30.0);
        (samples, tcp.join().unwrap())
    });
    shared.stop().unwrap();
    let link_rate = 2.5e6;
    let (before, during, after) = (
        rate(&samples, 4.0, 10.0) / link_rate,
        rate(&samples, 12.0, 20.0) / link_rate,
        rate(&samples, 24.0, 30.0) / link_rate,
    );
    println!(
        "uTP's share of a 2.5 MB/s bottleneck: {before:.3} alone, {during:.3} beside TCP \
         (which moved {:.1} MB in 10 s), {after:.3} after",
        tcp_bytes as f64 / 1e6
    );
    assert!(before >= 0.8, "{before}");
    assert!(during < 0.25, "{during}");
    assert!(after >= 0.8, "{after}");
}
