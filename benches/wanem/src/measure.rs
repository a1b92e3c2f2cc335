//! What a plain TCP connection sees across the emulated network: its round trip and its
//! throughput, measured from threads inside the hosts' namespaces. The emulator's fidelity
//! check and its capacity figure come from here.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::{Wan, WanError};

/// TCP payload per 1500-byte packet (IPv4 20 + TCP 20 + timestamps 12 bytes of headers).
pub const PAYLOAD_PER_PACKET: f64 = 1448.0 / 1500.0;

/// Round trips measured; the median is reported.
const ROUNDS: usize = 21;

/// A measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// Median round trip of one-byte messages.
    pub rtt: Duration,
    /// Payload bytes per second over the transfer, its first second (slow start) left out.
    pub throughput: f64,
}

/// Measures from host `from` to host `to` for `seconds` of transfer.
pub fn tcp(wan: &Wan, from: usize, to: usize, seconds: f64) -> Result<Measured, WanError> {
    let addr = SocketAddr::from((
        wan.hosts()
            .get(to)
            .ok_or_else(|| WanError::Setup(format!("no host {to}")))?
            .addr,
        5201,
    ));
    std::thread::scope(|scope| {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let server = scope.spawn(move || -> Result<f64, WanError> {
            wan.enter(to)?;
            let listener = TcpListener::bind(addr)?;
            let _ = ready_tx.send(());
            // The round trips first, then the transfer.
            let (mut echo, _) = listener.accept()?;
            echo.set_nodelay(true)?;
            let mut byte = [0u8; 1];
            while echo.read(&mut byte)? == 1 {
                echo.write_all(&byte)?;
            }
            let (mut bulk, _) = listener.accept()?;
            bulk.set_read_timeout(Some(Duration::from_secs_f64(seconds + 30.0)))?;
            let mut buf = vec![0u8; 1 << 20];
            let start = Instant::now();
            let (mut counted, mut counting_since) = (0u64, None);
            loop {
                let n = bulk.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                match counting_since {
                    Some(_) => counted += n as u64,
                    None if start.elapsed() >= Duration::from_secs(1) => {
                        counting_since = Some(Instant::now());
                    }
                    None => {}
                }
            }
            let since =
                counting_since.ok_or_else(|| WanError::Setup("transfer too short".into()))?;
            Ok(counted as f64 / since.elapsed().as_secs_f64())
        });
        let client = scope.spawn(move || -> Result<Duration, WanError> {
            wan.enter(from)?;
            ready_rx
                .recv_timeout(Duration::from_secs(10))
                .map_err(|_| WanError::Setup("the server did not start".into()))?;
            let mut echo = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
            echo.set_nodelay(true)?;
            echo.set_read_timeout(Some(Duration::from_secs(10)))?;
            let mut rtts = Vec::with_capacity(ROUNDS);
            let mut byte = [7u8; 1];
            for _ in 0..ROUNDS {
                let sent = Instant::now();
                echo.write_all(&byte)?;
                echo.read_exact(&mut byte)?;
                rtts.push(sent.elapsed());
            }
            drop(echo);
            rtts.sort();
            let mut bulk = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
            let buf = vec![0x5a_u8; 1 << 20];
            let until = Instant::now() + Duration::from_secs_f64(seconds);
            while Instant::now() < until {
                bulk.write_all(&buf)?;
            }
            bulk.shutdown(std::net::Shutdown::Write)?;
            Ok(rtts[ROUNDS / 2])
        });
        let rtt = client
            .join()
            .map_err(|_| WanError::Setup("the client panicked".into()))??;
        let throughput = server
            .join()
            .map_err(|_| WanError::Setup("the server panicked".into()))??;
        Ok(Measured { rtt, throughput })
    })
}
