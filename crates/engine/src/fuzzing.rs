//! Drives one torrent's sans-IO core with arbitrary input, for the `peer_session` fuzz target
//! (feature `fuzzing`; not a stable API).
//!
//! The input is a script: peers connect, send arbitrary wire bytes in arbitrary chunks, hang up;
//! time passes; the simulated storage verifies or fails the pieces the core writes, and answers
//! its reads; the simulated writer drains outboxes. After every step the core's bounds are
//! checked: connections, requests each way, reads in flight and bytes queued per peer.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use cratetorrent_metainfo::Metainfo;
use cratetorrent_storage::StorageError;
use cratetorrent_wire::{Bitfield, BlockInfo, Extensions, PeerId};
use slab::Slab;

use cratetorrent_storage::StorageEvent;
use cratetorrent_wire::Geometry;

use crate::TorrentId;
use crate::conf::TorrentConf;
use crate::core::{Action, Command, Core, CoreInit, Handled, Input, PeerKey, Source};

const PIECE: u32 = 32 * 1024;
const PIECES: u32 = 5;
/// The last piece is short, so odd geometry is always in play.
const LENGTH: u64 = 4 * PIECE as u64 + 5_000;
const MAX_PEERS: usize = 6;

/// A small single-file torrent; the piece hashes do not matter (the script decides which pieces
/// verify).
fn metainfo() -> Option<Metainfo> {
    let mut raw = Vec::new();
    raw.extend_from_slice(b"d4:infod6:lengthi");
    raw.extend_from_slice(LENGTH.to_string().as_bytes());
    raw.extend_from_slice(b"e4:name4:fuzz12:piece lengthi");
    raw.extend_from_slice(PIECE.to_string().as_bytes());
    raw.extend_from_slice(format!("e6:pieces{}:", PIECES * 20).as_bytes());
    raw.extend(std::iter::repeat_n(7u8, (PIECES * 20) as usize));
    raw.extend_from_slice(b"ee");
    Metainfo::from_bytes(&raw).ok()
}

struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn bytes(&mut self, len: usize) -> &[u8] {
        let (taken, rest) = self.0.split_at(len.min(self.0.len()));
        self.0 = rest;
        taken
    }
}

struct Connection {
    key: PeerKey,
    received: BytesMut,
}

/// Runs the script in `data`; panics if the core panics or breaks a bound.
pub fn run_session(data: &[u8]) {
    let Some(metainfo) = metainfo() else {
        return;
    };
    let mut input = Script(data);
    let flags = input.byte().unwrap_or(0);
    let mut have = Bitfield::new(PIECES);
    for piece in 0..PIECES {
        if flags & (1 << piece) != 0 {
            have.set(piece);
        }
    }
    let conf = TorrentConf {
        max_connections: 4,
        ..TorrentConf::default()
    };
    let geometry = Geometry::of(&metainfo);
    let mut now = Instant::now();
    let mut core = Core::new(
        CoreInit {
            id: TorrentId(1),
            source: Source::Metainfo(Box::new(metainfo)),
            our_id: PeerId::new([0; 20]),
            listen_port: 6881,
            dht_port: Some(6881),
            conf,
            seed_only: flags & 0x80 != 0,
            have,
            // Fixed, so that a crash replays from its input alone.
            seed: 0,
        },
        now,
    );
    let mut connections: Slab<Connection> = Slab::new();
    let mut written: Vec<Vec<u32>> = vec![Vec::new(); PIECES as usize];
    let mut reads: Vec<(u64, BlockInfo)> = Vec::new();
    let mut frames = Vec::new();
    while let Some(op) = input.byte() {
        let arg = input.byte().unwrap_or(0);
        match op % 8 {
            0 if connections.len() < MAX_PEERS => {
                let addr = SocketAddr::from(([10, 0, 0, arg % 8], 6881));
                let extensions = Extensions::from_bytes([0, 0, 0, 0, 0, arg & 0x10, 0, arg & 5]);
                let handshake = Input::Handshake {
                    addr,
                    id: PeerId::new([arg; 20]),
                    extensions,
                    outgoing: arg & 1 == 0,
                    link: Default::default(),
                };
                if let Handled::Admitted(key) = core.handle(handshake, now) {
                    connections.insert(Connection {
                        key,
                        received: BytesMut::new(),
                    });
                }
            }
            1 => {
                let len = usize::from(input.byte().unwrap_or(0)) * 4;
                let chunk = input.bytes(len);
                if let Some((_, connection)) = nth(&mut connections, arg) {
                    connection.received.extend_from_slice(chunk);
                    let (peer, buf) = (connection.key, &mut connection.received);
                    let _ = core.handle(Input::Received { peer, buf }, now);
                }
            }
            2 => {
                now += Duration::from_millis(u64::from(arg) * 250);
                let _ = core.handle(Input::Timeout, now);
            }
            3 => {
                if let Some((index, connection)) = nth(&mut connections, arg) {
                    let _ = core.handle(Input::Closed(connection.key), now);
                    connections.remove(index);
                }
            }
            4 if arg & 0xc0 == 0x40 => {
                // The socket took part of a write still going on.
                if let Some((_, connection)) = nth(&mut connections, arg) {
                    let progress = Input::SendProgress {
                        peer: connection.key,
                        at: now,
                    };
                    let _ = core.handle(progress, now);
                }
            }
            4 => {
                // The writer drains one peer's outbox and reports it written.
                if let Some((_, connection)) = nth(&mut connections, arg) {
                    let peer = connection.key;
                    frames.clear();
                    if core.poll_transmit(peer, &mut frames, 512, now).is_some() {
                        let bytes = frames.iter().map(Bytes::len).sum();
                        let _ = core.handle(Input::Sent { peer, bytes }, now);
                    }
                }
            }
            5 if !reads.is_empty() => {
                // Storage answers the oldest read, or fails it.
                let (token, block) = reads.remove(0);
                let result = if arg == 0 {
                    Err(StorageError::Closed)
                } else {
                    Ok(Bytes::from(vec![arg; block.len as usize]))
                };
                let read = StorageEvent::BlockRead {
                    token,
                    block,
                    result,
                };
                let _ = core.handle(Input::Storage(read), now);
            }
            6 if arg & 0x40 != 0 => {
                // Storage gives up the blocks it received of a piece (memory pressure).
                let piece = u32::from(arg) % PIECES;
                let offsets = std::mem::take(&mut written[piece as usize]);
                let dropped = StorageEvent::BlocksDropped { piece, offsets };
                let _ = core.handle(Input::Storage(dropped), now);
            }
            6 => {
                // Storage settles a piece whose blocks were all written: verified or not.
                let piece = u32::from(arg) % PIECES;
                let blocks = geometry.blocks(piece).count();
                let slot = &mut written[piece as usize];
                if slot.len() >= blocks {
                    slot.clear();
                    let event = if arg & 0x80 == 0 {
                        StorageEvent::PieceVerified(piece)
                    } else {
                        StorageEvent::HashFailed {
                            piece,
                            peers: Vec::new(),
                        }
                    };
                    let _ = core.handle(Input::Storage(event), now);
                }
            }
            7 => {
                let input = match arg % 4 {
                    0 => Input::Command(Command::Pause),
                    1 => Input::Command(Command::Resume),
                    2 => Input::Command(Command::FilePriorities(vec![arg >> 2])),
                    _ => Input::Storage(StorageEvent::WriteFailed {
                        pieces: vec![u32::from(arg >> 2) % PIECES],
                        error: StorageError::NoSpace {
                            path: std::path::PathBuf::from("fuzz"),
                        },
                    }),
                };
                let _ = core.handle(input, now);
            }
            _ => {}
        }
        let mut hash_reads = Vec::new();
        let actions: Vec<Action> = std::iter::from_fn(|| core.poll_action()).collect();
        while core.poll_alert().is_some() {}
        for action in actions {
            match action {
                Action::HashBlocks(piece) => hash_reads.push(piece),
                Action::Write { piece, offset, .. } => {
                    if let Some(slot) = written.get_mut(piece as usize)
                        && !slot.contains(&offset)
                    {
                        slot.push(offset);
                    }
                }
                Action::Read { block, token } if reads.len() < 10_000 => reads.push((token, block)),
                Action::Disconnect(key) => {
                    let _ = core.handle(Input::Closed(key), now);
                    connections.retain(|_, c| c.key != key);
                }
                _ => {}
            }
        }
        // Storage reads pieces back for smart bans: the data differs from block to block as
        // the script says, or the read fails.
        for piece in hash_reads {
            let blocks = geometry.blocks(piece).count();
            let result = if arg == 0xff {
                Err(StorageError::Closed)
            } else {
                Ok((0..blocks)
                    .map(|b| [arg.wrapping_add(b as u8) & 0xf1; 20])
                    .collect())
            };
            let hashes = StorageEvent::BlockHashes { piece, result };
            let _ = core.handle(Input::Storage(hashes), now);
        }
        core.check_bounds();
    }
}

fn nth(connections: &mut Slab<Connection>, arg: u8) -> Option<(usize, &mut Connection)> {
    let count = connections.len();
    if count == 0 {
        return None;
    }
    connections.iter_mut().nth(usize::from(arg) % count)
}

/// One datagram heard on the local service discovery socket (the `lsd_announce` target): it
/// parses or fails with a typed error; an announce re-encodes to one that parses the same; the
/// discovery state takes it without panicking and names only our own torrents' peers.
#[allow(
    clippy::expect_used,
    reason = "a fuzz target reports a broken property by panicking"
)]
pub fn lsd_announce(data: &[u8]) {
    use crate::lsd::{Announce, GROUP_V4, Lsd};
    let now = Instant::now();
    if let Ok(announce) = Announce::decode(data) {
        let again = Announce::decode(&announce.encode(GROUP_V4)).expect("our encoding parses");
        assert_eq!(again, announce);
    }
    let ours = cratetorrent_metainfo::InfoHash::new([0xab; 20]);
    let mut lsd = Lsd::new(6881, 0, Duration::from_secs(300), now);
    lsd.set_torrents([ours], now);
    let from = SocketAddr::from(([198, 18, 0, 2], 6771));
    if let Ok(found) = lsd.on_datagram(from, data, now) {
        assert!(found.iter().all(|f| f.info_hash == ours));
    }
}
