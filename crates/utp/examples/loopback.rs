//! Two endpoints on UDP sockets of this machine, one sending the other a stream, driven by one
//! blocking loop: the shape of a shell around the sans-IO endpoint.
//!
//! `cargo run --release -p cratetorrent-utp --example loopback [MEGABYTES]`

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use cratetorrent_utp::{Config, Endpoint, Event, StreamError};

/// Datagrams sent per turn of the loop.
const BURST: usize = 64;

struct Host {
    socket: UdpSocket,
    endpoint: Endpoint,
}

impl Host {
    fn new(seed: u64) -> std::io::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_nonblocking(true)?;
        Ok(Self {
            socket,
            endpoint: Endpoint::new(Config::default(), Instant::now(), seed),
        })
    }

    /// Feeds what arrived, runs due timers and sends what is due; whether anything moved.
    fn turn(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        let mut busy = false;
        loop {
            match self.socket.recv_from(buf) {
                Ok((len, from)) => {
                    busy = true;
                    // A datagram that is not uTP is simply not ours.
                    let _ = self
                        .endpoint
                        .handle_datagram(Instant::now(), from, &buf[..len]);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        let now = Instant::now();
        if self.endpoint.poll_timeout().is_some_and(|t| t <= now) {
            self.endpoint.handle_timeout(now);
        }
        // A turn sends at most what the peer's socket buffer surely holds (the default
        // 208 KiB), so both sides take turns instead of one overflowing the other.
        for _ in 0..BURST {
            let Some(transmit) = self.endpoint.poll_transmit(now, buf) else {
                break;
            };
            busy = true;
            self.socket.send_to(&buf[..transmit.len], transmit.to)?;
        }
        Ok(busy)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let megabytes: u64 = std::env::args().nth(1).map_or(Ok(64), |a| a.parse())?;
    let total = megabytes * 1_000_000;
    let mut sender = Host::new(1)?;
    let mut receiver = Host::new(2)?;
    let to: SocketAddr = receiver.socket.local_addr()?;
    let started = Instant::now();
    let connection = sender.endpoint.connect(to, started)?;
    let chunk = vec![0x5a; 256 * 1024];
    let (mut written, mut read, mut closed) = (0u64, 0u64, false);
    let mut buf = vec![0u8; 2048];
    let mut done = false;
    while !done {
        // The sender writes while the endpoint takes more.
        while written < total {
            let n = chunk.len().min(usize::try_from(total - written)?);
            match sender.endpoint.write(connection, &chunk[..n]) {
                Ok(taken) => written += taken as u64,
                Err(StreamError::WouldBlock) => break,
                Err(StreamError::Closed) => return Err("connection closed early".into()),
            }
        }
        if written == total && !closed {
            sender.endpoint.close(connection);
            closed = true;
        }
        let busy = sender.turn(&mut buf)? | receiver.turn(&mut buf)?;
        while sender.endpoint.poll_event().is_some() {}
        while let Some(event) = receiver.endpoint.poll_event() {
            if let Event::Readable(incoming) = event {
                let mut sink = [0u8; 65536];
                loop {
                    match receiver.endpoint.read(incoming, &mut sink) {
                        Ok(0) => done = true,
                        Ok(n) => {
                            read += n as u64;
                            continue;
                        }
                        Err(_) => {}
                    }
                    break;
                }
            }
        }
        if !busy {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let took = started.elapsed();
    println!(
        "{read} bytes in {:.2} s: {:.1} MB/s",
        took.as_secs_f64(),
        read as f64 / took.as_secs_f64() / 1e6
    );
    Ok(())
}
