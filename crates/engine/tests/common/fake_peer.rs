//! A scripted peer built on the wire crate, for behaviour real clients don't show on demand:
//! corrupt data, hanging up mid-piece, having only some pieces.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::BytesMut;
use cratetorrent_metainfo::Metainfo;
use cratetorrent_wire::{
    Bitfield, Block, Decoder, Extensions, HANDSHAKE_LEN, Handshake, Message, PeerId,
};

/// How the fake peer serves.
#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    /// Correct data.
    Honest,
    /// Every block is garbage.
    Corrupt,
    /// Closes each connection after serving this many blocks.
    HangUpAfter(u64),
}

/// A fake peer listening on loopback; it stops when dropped (its listener is closed and its
/// connections end when the engine closes them).
pub struct FakePeer {
    pub addr: SocketAddr,
    /// Blocks served.
    pub served: Arc<AtomicU64>,
    /// Set if it was asked for a piece it does not have.
    pub asked_for_missing: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakePeer {
    /// Serves `data` (the torrent's bytes, concatenated) for the pieces in `have`.
    pub fn start(metainfo: &Metainfo, data: Vec<u8>, have: Bitfield, behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(AtomicU64::new(0));
        let asked_for_missing = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let info_hash = metainfo.info_hash();
        let piece_length = u64::from(metainfo.piece_length());
        let data = Arc::new(data);
        let thread = {
            let (served, missing, stop) = (served.clone(), asked_for_missing.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut connections = Vec::new();
                // Bounded: the test's own timeout ends it at the latest after a few minutes.
                for _ in 0..6000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (data, have, served, missing) =
                                (data.clone(), have.clone(), served.clone(), missing.clone());
                            connections.push(std::thread::spawn(move || {
                                let _ = serve(
                                    stream,
                                    info_hash,
                                    piece_length,
                                    &data,
                                    &have,
                                    behaviour,
                                    &served,
                                    &missing,
                                );
                            }));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(50)),
                    }
                }
                drop(listener);
                for c in connections {
                    let _ = c.join();
                }
            })
        };
        Self {
            addr,
            served,
            asked_for_missing,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakePeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn serve(
    mut stream: TcpStream,
    info_hash: cratetorrent_metainfo::InfoHash,
    piece_length: u64,
    data: &[u8],
    have: &Bitfield,
    behaviour: Behaviour,
    served: &AtomicU64,
    missing: &AtomicBool,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut hello = [0u8; HANDSHAKE_LEN];
    stream.read_exact(&mut hello)?;
    let mut out = BytesMut::new();
    Handshake {
        extensions: Extensions::NONE,
        info_hash,
        peer_id: {
            let mut id = *b"-XX0001-fakepeer0000";
            let port = stream.local_addr()?.port().to_string();
            id[20 - port.len()..].copy_from_slice(port.as_bytes());
            PeerId::new(id)
        },
    }
    .encode(&mut out);
    Message::Bitfield(bytes::Bytes::copy_from_slice(have.as_bytes())).encode(&mut out);
    stream.write_all(&out)?;
    let decoder = Decoder::default();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut served_here = 0;
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut out = BytesMut::new();
        while let Some(message) = decoder.decode(&mut buf).map_err(std::io::Error::other)? {
            match message {
                Message::Interested => Message::Unchoke.encode(&mut out),
                Message::Request(block) => {
                    if !have.get(block.piece) {
                        missing.store(true, Ordering::Relaxed);
                        continue;
                    }
                    if let Behaviour::HangUpAfter(limit) = behaviour
                        && served_here >= limit
                    {
                        stream.write_all(&out)?;
                        return Ok(());
                    }
                    let start =
                        (u64::from(block.piece) * piece_length + u64::from(block.offset)) as usize;
                    let mut payload = data[start..start + block.len as usize].to_vec();
                    if let Behaviour::Corrupt = behaviour {
                        for byte in &mut payload {
                            *byte = !*byte;
                        }
                    }
                    Message::Piece(Block {
                        piece: block.piece,
                        offset: block.offset,
                        data: payload.into(),
                    })
                    .encode(&mut out);
                    served.fetch_add(1, Ordering::Relaxed);
                    served_here += 1;
                }
                _ => {}
            }
        }
        stream.write_all(&out)?;
    }
}
