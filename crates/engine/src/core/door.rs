//! The core's door and its polls: everything that enters a torrent's core is an [`Input`] given
//! to [`Core::handle`]; everything that leaves it is taken by the shell from
//! [`Core::poll_action`], [`Core::poll_transmit`], [`Core::poll_alert`] and
//! [`Core::poll_timeout`]. Nothing else of the core is open to the shell, so the same inputs
//! in the same order (with the same seed) give the same outputs.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use cratetorrent_metainfo::{InfoHash, Metainfo, PieceIndex};
use cratetorrent_storage::{PeerTag, StorageEvent};
use cratetorrent_wire::{Bitfield, BlockInfo, Decoder, Extensions, PeerId};

use super::{Core, PeerKey};
use crate::alert::Alert;
use crate::peer::Link;

/// Something that happened, for the core to act on.
#[derive(Debug)]
pub(crate) enum Input<'a> {
    /// A connection (ours or theirs) finished its handshake; [`Handled::Admitted`] gives the
    /// peer's key, [`Handled::Refused`] says why it was not taken.
    Handshake {
        addr: SocketAddr,
        id: PeerId,
        extensions: Extensions,
        outgoing: bool,
        link: Link,
    },
    /// Bytes arrived from a peer: every whole message in `buf` is handled and taken out of it;
    /// a partial one stays. A malformed one closes the peer.
    Received {
        peer: PeerKey,
        buf: &'a mut BytesMut,
    },
    /// A dial (from [`Action::Connect`]) failed.
    ConnectFailed(SocketAddr),
    /// The peer's connection is gone.
    Closed(PeerKey),
    /// The socket took all `bytes` of a batch from [`Core::poll_transmit`].
    Sent { peer: PeerKey, bytes: usize },
    /// The socket took part of a batch still being written; or, with a time to come, the
    /// batch waits for our own upload limit until then (not the peer's doing).
    SendProgress { peer: PeerKey, at: Instant },
    /// What the storage reported (or a storage call failed with).
    Storage(StorageEvent),
    /// The storage holds as many received blocks as it may: stop reading from peers until
    /// [`StorageEvent::MemoryAvailable`].
    DiskFull,
    /// The storage of a torrent whose metadata came by magnet link (after
    /// [`Action::MetadataReady`]) is open, with these pieces already on disk.
    StorageReady(Bitfield),
    /// The time from [`Core::poll_timeout`] has come.
    Timeout,
    /// The user asked for something.
    Command(Command),
}

/// What the user can ask of a running torrent.
#[derive(Debug, Clone)]
pub(crate) enum Command {
    Pause,
    Resume,
    AddPeers(Vec<SocketAddr>),
    /// One priority per file (0 = skip).
    FilePriorities(Vec<u8>),
    Sequential(bool),
}

/// What [`Core::handle`] says at once (everything else comes out of the polls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handled {
    Done,
    Admitted(PeerKey),
    Refused(Reject),
}

/// Something for the I/O shell to do.
#[derive(Debug)]
pub(crate) enum Action {
    /// The peer's outbox has frames: wake its writer.
    Wake(PeerKey),
    /// Queue a received block for writing and hashing.
    Write {
        piece: PieceIndex,
        offset: u32,
        data: Bytes,
        tag: PeerTag,
    },
    /// Read a block to upload; the answer comes back with `token`.
    Read { block: BlockInfo, token: PeerTag },
    /// Hash every block of the piece as it is on disk (evidence for a smart ban); the answer
    /// comes back as [`StorageEvent::BlockHashes`].
    HashBlocks(PieceIndex),
    /// The peer with this token is gone: drop its reads still waiting in storage.
    ForgetReads(PeerTag),
    /// Close the connection (its reader then reports [`Input::Closed`]).
    Disconnect(PeerKey),
    /// Dial a peer.
    Connect(SocketAddr),
    /// A peer's DHT node (its BEP 5 `port` message): ask it to join our routing table.
    DhtNode(SocketAddr),
    /// A peer says our address is `ip` (BEP 10 `yourip`): a vote for the DHT's BEP 42 id.
    ExternalIp { ip: IpAddr, voter: IpAddr },
    /// The storage has room again: readers waiting after [`Input::DiskFull`] may go on.
    ResumeReading,
    /// Which files are wanted changed: the storage parks the unwanted ones that have no data
    /// yet (see `Storage::set_wanted_files`).
    WantedFiles(Vec<bool>),
    /// A magnet link's metadata is verified: open the torrent's storage, then report
    /// [`Input::StorageReady`].
    MetadataReady(Box<Metainfo>),
}

/// Why a handshaken connection was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Reject {
    #[error("peer is banned")]
    Banned,
    #[error("already connected to this peer")]
    Duplicate,
    #[error("connected to ourselves")]
    OurselvesAgain,
    #[error("connection limit reached")]
    TooMany,
    #[error("connection limit for this IP reached")]
    TooManyFromIp,
    #[error("torrent is paused")]
    Paused,
}

/// What a tracker announce needs to know about the torrent.
#[derive(Debug, Clone)]
pub(crate) struct AnnounceState {
    pub(crate) info_hash: InfoHash,
    pub(crate) peer_id: PeerId,
    pub(crate) port: u16,
    pub(crate) uploaded: u64,
    pub(crate) downloaded: u64,
    pub(crate) left: u64,
    /// Complete, or seeding only: nothing to download.
    pub(crate) finished: bool,
    pub(crate) paused: bool,
    pub(crate) peers: usize,
}

impl Core {
    /// The one way in.
    pub(crate) fn handle(&mut self, input: Input<'_>, now: Instant) -> Handled {
        match input {
            Input::Handshake {
                addr,
                id,
                extensions,
                outgoing,
                link,
            } => {
                return match self.on_handshake(addr, id, extensions, outgoing, now) {
                    Ok(key) => {
                        self.peers[key].link = link;
                        Handled::Admitted(key)
                    }
                    Err(reject) => Handled::Refused(reject),
                };
            }
            Input::Received { peer, buf } => self.on_received(peer, buf, now),
            Input::ConnectFailed(addr) => self.on_connect_failed(addr, now),
            Input::Closed(peer) => self.on_closed(peer, now),
            Input::Sent { peer, bytes } => self.on_write_progress(peer, bytes, true, now),
            Input::SendProgress { peer, at } => self.on_send_progress(peer, at),
            Input::Storage(event) => self.on_storage(event, now),
            Input::DiskFull => self.disk_full = true,
            Input::Timeout => self.on_timeout(now),
            Input::StorageReady(have) => self.on_storage_ready(have, now),
            Input::Command(command) => match command {
                Command::Pause => self.set_paused(true, now),
                Command::Resume => self.set_paused(false, now),
                Command::AddPeers(peers) => self.add_peers(&peers, now),
                Command::FilePriorities(priorities) => self.set_file_priorities(&priorities, now),
                Command::Sequential(on) => self.conf.sequential = on,
            },
        }
        Handled::Done
    }

    fn on_received(&mut self, key: PeerKey, buf: &mut BytesMut, now: Instant) {
        let decoder = Decoder::default();
        while self.is_open(key) {
            match decoder.decode(buf) {
                Ok(Some(message)) => self.on_message(key, message, now),
                Ok(None) => return,
                Err(error) => {
                    tracing::debug!(%error, "protocol violation");
                    self.disconnect(key, "protocol violation");
                }
            }
        }
    }

    fn on_storage(&mut self, event: StorageEvent, now: Instant) {
        match event {
            StorageEvent::PieceVerified(piece) => self.on_piece_verified(piece, now),
            StorageEvent::HashFailed { piece, .. } => {
                tracing::info!(piece, "piece failed its hash check");
                self.on_hash_failed(piece, now);
            }
            StorageEvent::WriteFailed { pieces, error } => {
                self.on_write_failed(&pieces, error, now);
            }
            StorageEvent::BlockRead {
                token,
                block,
                result,
            } => self.on_block_read(token, block, result),
            StorageEvent::ResumeSaveFailed(error) => self.alerts.push_back(Alert::TorrentError {
                id: self.id,
                error: crate::TorrentError::ResumeSave(error),
            }),
            StorageEvent::BlocksDropped { piece, offsets } => {
                self.on_blocks_dropped(piece, &offsets);
            }
            StorageEvent::BlockHashes { piece, result } => {
                self.on_block_hashes(piece, result, now);
            }
            StorageEvent::MemoryAvailable if self.disk_full => {
                self.disk_full = false;
                self.actions.push_back(Action::ResumeReading);
            }
            _ => {}
        }
    }

    fn on_timeout(&mut self, now: Instant) {
        let due = self.timers.fire(now, &self.conf);
        if let Some(elapsed) = due.tick {
            self.tick(elapsed, now);
        }
        if due.rechoke {
            self.rechoke(due.rotate, now);
        }
        if due.stats {
            self.post_periodic_stats();
        }
    }

    /// The tick at `now` whether or not it is due, with whatever else is (for tests that step
    /// the clock by hand).
    #[cfg(test)]
    pub(crate) fn tick_at(&mut self, now: Instant) {
        let due = self.timers.fire(now, &self.conf);
        self.tick(due.tick.unwrap_or_default(), now);
        if due.rechoke {
            self.rechoke(due.rotate, now);
        }
    }

    /// The next thing for the shell to do.
    pub(crate) fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next alert for the user.
    pub(crate) fn poll_alert(&mut self) -> Option<Alert> {
        self.alerts.pop_front()
    }

    /// When to give the core [`Input::Timeout`]: the earliest of its timers' deadlines (no
    /// input brings one forward, so the shell may sleep until it).
    pub(crate) fn poll_timeout(&self) -> Instant {
        self.timers.next(&self.conf)
    }

    /// Moves up to `max_frames` of the peer's queued frames into `frames` (to be written in
    /// order, then reported with [`Input::Sent`]) and returns their length; `None` once the
    /// peer is gone or closing. When frames are left, [`Action::Wake`] asks for another call.
    pub(crate) fn poll_transmit(
        &mut self,
        key: PeerKey,
        frames: &mut Vec<Bytes>,
        max_frames: usize,
        now: Instant,
    ) -> Option<u64> {
        let peer = self.peers.get_mut(key)?;
        if peer.closing {
            return None;
        }
        let before = peer.outbox.len();
        let payload = peer.outbox.take(frames, max_frames);
        let taken = before - peer.outbox.len();
        if !peer.outbox.is_empty() {
            self.actions.push_back(Action::Wake(key));
        }
        self.on_write_progress(key, taken, false, now);
        Some(payload)
    }

    /// Whether the peer is connected and not being closed.
    pub(crate) fn is_open(&self, key: PeerKey) -> bool {
        self.peers.get(key).is_some_and(|peer| !peer.closing)
    }

    /// Whether a web seed has work here: the storage is open, the torrent runs and downloads,
    /// and a wanted piece is missing.
    pub(crate) fn wants_web_seeds(&self) -> bool {
        self.storage_ready && !self.paused && !self.seed_only && !self.is_finished()
    }

    /// Whether reading from peers waits for the storage (after [`Input::DiskFull`]).
    pub(crate) fn reading_paused(&self) -> bool {
        self.disk_full
    }

    /// Whether the torrent may be announced to the local network (BEP 14): not paused, and not
    /// private (BEP 27; unknown before a magnet link's metadata, so announced until then).
    pub(crate) fn discoverable(&self) -> bool {
        !self.paused && !self.metainfo.as_ref().is_some_and(Metainfo::is_private)
    }

    /// Whether the torrent has nothing left to download, and how many peers it has: what the
    /// DHT's schedule needs, cheaply (no walk over the pieces).
    pub(crate) fn discovery_state(&self) -> (bool, usize) {
        (self.is_finished() || self.seed_only, self.peers.len())
    }

    /// What a tracker announce reports.
    pub(crate) fn announce_state(&self) -> AnnounceState {
        let finished = self.is_finished() || self.seed_only;
        AnnounceState {
            info_hash: self.info_hash,
            peer_id: self.our_id,
            port: self.listen_port,
            uploaded: self.uploaded.total(),
            downloaded: self.downloaded.total(),
            // Unknown before the metadata, but not zero: trackers give seeds to leechers.
            left: if self.seed_only {
                0
            } else if self.metainfo.is_none() {
                u64::from(cratetorrent_wire::METADATA_PIECE_LEN)
            } else {
                self.stats_left_and_wanted().0
            },
            finished,
            paused: self.paused,
            peers: self.peers.len(),
        }
    }
}
