//! Many leechers in one process, for the scale benchmark: `loadpeer` opens N connections to one
//! seeder, each from its own loopback address (127.1.x.y, so per-address limits do not apply),
//! and each behaves as a plain BEP 3 leecher that wants everything: handshake, interested, and
//! while unchoked a pipeline of requests for the blocks of random pieces, in order. A refused or
//! closed connection is made again after a short random pause, as real peers retry. Blocks are
//! counted and dropped, so the process costs little next to the seeder it measures. It stops
//! once the connections together received `--bytes`, or after `--seconds`, and prints one JSON
//! line: handshakes completed, connections ever unchoked, bytes, seconds, and the spread of
//! bytes over connections.
//!
//! Usage: `loadpeer TORRENT HOST:PORT [--connections N] [--bytes SIZE] [--seconds S] [--pipeline Q]`

#![allow(clippy::cast_possible_truncation)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use cratetorrent_metainfo::Metainfo;
use cratetorrent_wire::{
    BLOCK_SIZE, BlockInfo, Decoder, Extensions, Geometry, Handshake, Message, PeerId,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

struct Args {
    torrent: String,
    seeder: SocketAddr,
    connections: usize,
    bytes: u64,
    seconds: u64,
    pipeline: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut argv = std::env::args().skip(1);
    let torrent = argv.next().ok_or("missing TORRENT")?;
    let seeder = argv
        .next()
        .ok_or("missing HOST:PORT")?
        .parse()
        .map_err(|e| format!("HOST:PORT: {e}"))?;
    let mut args = Args {
        torrent,
        seeder,
        connections: 500,
        bytes: 4 << 30,
        seconds: 120,
        pipeline: 32,
    };
    while let Some(flag) = argv.next() {
        let value = argv.next().ok_or(format!("{flag} needs a value"))?;
        let number = value
            .parse::<u64>()
            .map_err(|e| format!("{flag} {value}: {e}"))?;
        match flag.as_str() {
            "--connections" => args.connections = number as usize,
            "--bytes" => args.bytes = number,
            "--seconds" => args.seconds = number,
            "--pipeline" => args.pipeline = number as usize,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(args)
}

/// What every connection shares.
struct Shared {
    handshake: Handshake,
    geometry: Geometry,
    pieces: u32,
    pipeline: usize,
    received: AtomicU64,
    /// Bytes received by each connection.
    per_connection: Vec<AtomicU64>,
    /// Handshakes completed (a peer that reconnects counts again).
    handshaken: AtomicU64,
    /// Connections unchoked at least once.
    unchoked: AtomicU64,
    target: u64,
    stop: AtomicBool,
}

/// The loopback address of connection `index`: 127.1.0.1, 127.1.0.2, … (250 per /24).
fn source_addr(index: usize) -> SocketAddr {
    let (high, low) = (index / 250, index % 250 + 1);
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 1, high as u8, low as u8)), 0)
}

/// A small xorshift generator: each connection asks for its own sequence of random blocks.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// The blocks a connection asks for: whole pieces at random, each block in order, as a real
/// picker does (seeders read and cache whole pieces).
struct Picks {
    random: u64,
    piece: u32,
    next_block: u32,
}

impl Picks {
    fn new(index: usize) -> Self {
        Self {
            random: 0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1),
            piece: 0,
            next_block: u32::MAX,
        }
    }

    fn next(&mut self, shared: &Shared) -> Option<BlockInfo> {
        if self.next_block >= shared.geometry.block_count(self.piece)? {
            self.piece = (next_random(&mut self.random) % u64::from(shared.pieces)) as u32;
            self.next_block = 0;
        }
        self.next_block += 1;
        shared.geometry.block(self.piece, self.next_block - 1)
    }
}

/// One leecher: connects, and after a refusal or a closed connection connects again after a
/// random 50–250 ms, as real peers retry, until the run stops.
async fn peer(shared: Arc<Shared>, index: usize, seeder: SocketAddr) {
    let mut random = 0x2545_F491_4F6C_DD1D ^ (index as u64 + 1);
    while !shared.stop.load(Ordering::Relaxed) {
        let _ = connection(shared.clone(), index, seeder).await;
        let pause = 50 + next_random(&mut random) % 200;
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

fn next_message(decoder: &Decoder, buf: &mut BytesMut) -> std::io::Result<Option<Message>> {
    decoder
        .decode(buf)
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// One connection, until it ends or the run stops.
async fn connection(shared: Arc<Shared>, index: usize, seeder: SocketAddr) -> std::io::Result<()> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(source_addr(index))?;
    let mut stream = socket.connect(seeder).await?;
    let mut out = BytesMut::new();
    // A peer id of its own: peers drop a second connection with the same id.
    Handshake {
        peer_id: PeerId::generate(),
        ..shared.handshake
    }
    .encode(&mut out);
    Message::Interested.encode(&mut out);
    stream.write_all(&out).await?;
    out.clear();

    let mut buf = BytesMut::with_capacity(1 << 16);
    let decoder = Decoder::with_max_len(shared.pieces / 8 + 1 + BLOCK_SIZE + 64);
    let mut shook = false;
    let mut unchoked = false;
    let mut ever_unchoked = false;
    let mut outstanding = 0usize;
    let mut picks = Picks::new(index);
    while !shared.stop.load(Ordering::Relaxed) {
        if !shook {
            match Handshake::decode(&mut buf) {
                Ok(Some(_)) => {
                    shook = true;
                    shared.handshaken.fetch_add(1, Ordering::Relaxed);
                }
                Ok(None) => {}
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            }
        }
        while shook && let Some(message) = next_message(&decoder, &mut buf)? {
            match message {
                Message::Unchoke => {
                    if !ever_unchoked {
                        ever_unchoked = true;
                        shared.unchoked.fetch_add(1, Ordering::Relaxed);
                    }
                    unchoked = true;
                }
                Message::Choke => {
                    unchoked = false;
                    outstanding = 0;
                }
                Message::Piece(block) => {
                    let len = block.data.len() as u64;
                    if let Some(mine) = shared.per_connection.get(index) {
                        mine.fetch_add(len, Ordering::Relaxed);
                    }
                    outstanding = outstanding.saturating_sub(1);
                    let total = shared.received.fetch_add(len, Ordering::Relaxed) + len;
                    if total >= shared.target {
                        shared.stop.store(true, Ordering::Relaxed);
                    }
                }
                _ => {}
            }
        }
        if unchoked {
            while outstanding < shared.pipeline {
                let Some(block) = picks.next(&shared) else {
                    break;
                };
                Message::Request(block).encode(&mut out);
                outstanding += 1;
            }
            if !out.is_empty() {
                stream.write_all(&out).await?;
                out.clear();
            }
        }
        buf.reserve(1 << 15);
        if stream.read_buf(&mut buf).await? == 0 {
            break;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("loadpeer: {e}");
            return ExitCode::FAILURE;
        }
    };
    let metainfo = match std::fs::read(&args.torrent)
        .map_err(|e| e.to_string())
        .and_then(|b| Metainfo::from_bytes(&b).map_err(|e| e.to_string()))
    {
        Ok(metainfo) => metainfo,
        Err(e) => {
            eprintln!("loadpeer: {}: {e}", args.torrent);
            return ExitCode::FAILURE;
        }
    };
    let shared = Arc::new(Shared {
        handshake: Handshake {
            extensions: Extensions::NONE,
            info_hash: metainfo.info_hash(),
            peer_id: PeerId::generate(),
        },
        geometry: Geometry::of(&metainfo),
        pieces: metainfo.piece_count(),
        pipeline: args.pipeline,
        received: AtomicU64::new(0),
        per_connection: (0..args.connections).map(|_| AtomicU64::new(0)).collect(),
        handshaken: AtomicU64::new(0),
        unchoked: AtomicU64::new(0),
        target: args.bytes,
        stop: AtomicBool::new(false),
    });
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("loadpeer: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    runtime.block_on(async {
        let tasks: Vec<_> = (0..args.connections)
            .map(|index| tokio::spawn(peer(shared.clone(), index, args.seeder)))
            .collect();
        // Choked connections wait on their sockets: the run ends on the shared flag, the
        // deadline, or once every connection has ended, whichever comes first.
        while !shared.stop.load(Ordering::Relaxed)
            && Instant::now() < deadline
            && tasks.iter().any(|task| !task.is_finished())
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for task in &tasks {
            task.abort();
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut bytes: Vec<u64> = shared
        .per_connection
        .iter()
        .map(|b| b.load(Ordering::Relaxed))
        .collect();
    bytes.sort_unstable();
    let quantile = |q: f64| {
        bytes
            .get(((bytes.len().saturating_sub(1)) as f64 * q) as usize)
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{{\"connections\":{},\"handshakes\":{},\"unchoked\":{},\"bytes\":{},\"seconds\":{seconds:.3},\"min\":{},\"median\":{},\"max\":{}}}",
        args.connections,
        shared.handshaken.load(Ordering::Relaxed),
        shared.unchoked.load(Ordering::Relaxed),
        shared.received.load(Ordering::Relaxed),
        quantile(0.0),
        quantile(0.5),
        quantile(1.0),
    );
    ExitCode::SUCCESS
}
