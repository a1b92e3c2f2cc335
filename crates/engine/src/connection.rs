//! A peer's byte stream: the handshake (plain, or inside an MSE one), and the two tasks that
//! move one peer's bytes (reads into recycled chunks, vectored writes), on whichever socket
//! interface `net` runs.
//!
//! Each connection has exactly one reader, which owns the connection's lifetime: tokio-uring
//! reads must never be raced against timers (a dropped read still consumes bytes in the
//! kernel), so the reader is stopped by shutting the socket down, never by cancelling it.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use cratetorrent_metainfo::InfoHash;
use cratetorrent_wire::mse::{
    Cipher, Established, Initiator, Keystream, MseError, Progress, Responder,
};
use cratetorrent_wire::{Decoder, HANDSHAKE_LEN, Handshake, PeerId, WireError};
use tokio::sync::Notify;

use crate::chunk_pool::{self, ChunkCharge};
use crate::core::{PeerKey, our_extensions};
use crate::encryption::{self, Offer};
use crate::net::PeerStream;
use crate::send_buffer::SendBuffer;
use crate::transport::Dialer;

/// Read again only with at least this much room.
const MIN_READ_ROOM: usize = 32 * 1024;
/// `writev` accepts at most 1024 iovecs; stay well under it.
pub(crate) const MAX_FRAMES_PER_WRITE: usize = 512;

/// What a peer's connection tasks need from the torrent that owns the peer.
pub(crate) trait PeerHost {
    /// Hands received bytes to the torrent (which takes the whole messages out of `buf`;
    /// `chunk` accounts for the receive buffer); false once the peer is closed.
    fn receive(self: &Rc<Self>, key: PeerKey, buf: &mut BytesMut, chunk: &mut ChunkCharge) -> bool;
    /// The next frames to write (see `Core::poll_transmit`).
    fn poll_transmit(self: &Rc<Self>, key: PeerKey, frames: &mut Vec<Bytes>) -> Option<u64>;
    /// A batch from `poll_transmit` was written whole.
    fn sent(self: &Rc<Self>, key: PeerKey, bytes: usize);
    /// Part of a batch was written, or the batch waits for our upload limit until `at`.
    fn send_progress(self: &Rc<Self>, key: PeerKey, at: Instant);
    /// Charges received bytes to the download limits; returns how long to wait.
    fn charge_download(&self, bytes: u64) -> Duration;
    /// Charges bytes to write to the upload limits; returns how long to wait.
    fn charge_upload(&self, bytes: u64) -> Duration;
    /// Waits while the storage holds as many received blocks as it may.
    fn wait_for_disk_memory(&self) -> impl std::future::Future<Output = ()>;
    /// The connection is gone.
    fn closed(self: &Rc<Self>, key: PeerKey);
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("encryption: {0}")]
    Encryption(#[from] MseError),
    #[error("{0} connections are refused by our encryption policy")]
    Refused(&'static str),
    #[error("protocol: {0}")]
    Wire(#[from] WireError),
    #[error("peer closed the connection")]
    Closed,
    #[error("peer is on another torrent")]
    WrongTorrent,
}

/// Our handshake for `info_hash`, encoded.
pub(crate) fn our_handshake(info_hash: InfoHash, peer_id: PeerId, dht: bool) -> BytesMut {
    let mut buf = BytesMut::with_capacity(HANDSHAKE_LEN);
    Handshake {
        extensions: our_extensions(dht),
        info_hash,
        peer_id,
    }
    .encode(&mut buf);
    buf
}

/// Sends our handshake for `info_hash`, encrypted when there is a keystream.
pub(crate) async fn send_handshake(
    stream: &PeerStream,
    info_hash: InfoHash,
    peer_id: PeerId,
    dht: bool,
    encrypt: Option<&mut Keystream>,
) -> Result<(), HandshakeError> {
    let mut buf = our_handshake(info_hash, peer_id, dht);
    encryption::apply(encrypt, &mut buf);
    stream.write_all(buf).await?;
    Ok(())
}

/// Bytes an MSE handshake reads at a time: more than any part of it, less than a block.
const READ: usize = 2048;

/// Dials side: runs the MSE handshake with `our_handshake` as its initial payload. What came
/// after the peer's answer (the start of its BitTorrent handshake, decrypted) is left in
/// `buf`; the cipher comes back for RC4.
pub(crate) async fn initiate_encrypted(
    stream: &PeerStream,
    info_hash: InfoHash,
    our_handshake: &[u8],
    offer: Offer,
    buf: &mut BytesMut,
) -> Result<Option<Cipher>, HandshakeError> {
    let mut mse = Initiator::new(info_hash, offer.levels, our_handshake, offer.entropy)?;
    let mut incoming = BytesMut::with_capacity(READ);
    loop {
        send(stream, mse.output()).await?;
        incoming.clear();
        incoming.reserve(READ);
        read_into(stream, &mut incoming, READ).await?;
        if let Progress::Done(done) = mse.receive(&incoming)? {
            return Ok(finish(done, buf));
        }
    }
}

/// Accepting side: runs the MSE handshake on a connection whose first bytes (in `buf`) are not
/// a plain handshake, finding the torrent with `lookup` (by its `req2_hash`). The initiator's
/// BitTorrent handshake and what followed it are left in `buf`, decrypted.
pub(crate) async fn respond_encrypted(
    stream: &PeerStream,
    offer: Offer,
    lookup: impl Fn(&[u8; 20]) -> Option<InfoHash>,
    buf: &mut BytesMut,
) -> Result<(InfoHash, Option<Cipher>), HandshakeError> {
    let mut mse = Responder::new(offer.levels, offer.prefer_rc4, offer.entropy);
    let mut incoming = buf.split();
    loop {
        let mut progress = mse.receive(&incoming)?;
        if let Progress::NeedTorrent(hidden) = progress {
            progress = mse.torrent_found(lookup(&hidden))?;
        }
        send(stream, mse.output()).await?;
        if let Progress::Done(done) = progress {
            let info_hash = done.info_hash;
            return Ok((info_hash, finish(done, buf)));
        }
        incoming.clear();
        incoming.reserve(READ);
        read_into(stream, &mut incoming, READ).await?;
    }
}

fn finish(done: Box<Established>, buf: &mut BytesMut) -> Option<Cipher> {
    buf.extend_from_slice(&done.payload);
    done.cipher
}

async fn send(stream: &PeerStream, bytes: Vec<u8>) -> Result<(), HandshakeError> {
    if !bytes.is_empty() {
        stream.write_all(BytesMut::from(&bytes[..])).await?;
    }
    Ok(())
}

/// Reads the peer's handshake (decrypting what is read when there is a keystream); bytes
/// after it stay in `buf`.
pub(crate) async fn read_handshake(
    stream: &PeerStream,
    buf: &mut BytesMut,
    mut decrypt: Option<&mut Keystream>,
) -> Result<Handshake, HandshakeError> {
    loop {
        if let Some(handshake) = Handshake::decode(buf)? {
            return Ok(handshake);
        }
        // Only what the handshake still lacks: a connection that never finishes its handshake
        // holds 68 bytes, not a receive chunk.
        let missing = HANDSHAKE_LEN.saturating_sub(buf.len()).max(1);
        buf.reserve(missing);
        let n = read_into(stream, buf, missing).await?;
        let len = buf.len();
        encryption::apply(decrypt.as_deref_mut(), &mut buf[len - n..]);
    }
}

/// Reads until `buf` holds at least `n` bytes.
pub(crate) async fn read_at_least(
    stream: &PeerStream,
    buf: &mut BytesMut,
    n: usize,
) -> Result<(), HandshakeError> {
    while buf.len() < n {
        let missing = n - buf.len();
        buf.reserve(missing);
        read_into(stream, buf, missing).await?;
    }
    Ok(())
}

/// Reads into `buf`, with room for at least `want` more bytes (the rest of a partial message).
async fn read_more(
    stream: &PeerStream,
    buf: &mut BytesMut,
    want: usize,
) -> Result<usize, HandshakeError> {
    chunk_pool::make_room(buf, want.max(MIN_READ_ROOM));
    let room = buf.capacity() - buf.len();
    read_into(stream, buf, room).await
}

/// One read of at most `len` bytes into `buf`'s spare capacity (which must hold them).
pub(crate) async fn read_into(
    stream: &PeerStream,
    buf: &mut BytesMut,
    len: usize,
) -> Result<usize, HandshakeError> {
    match stream.read_into(buf, len).await? {
        0 => Err(HandshakeError::Closed),
        n => Ok(n),
    }
}

/// Runs a registered peer until its connection ends: spawns its writer, reads until EOF, error
/// or shutdown, then unregisters it.
pub(crate) async fn run_peer<H: PeerHost + 'static>(
    torrent: Rc<H>,
    key: PeerKey,
    stream: Rc<PeerStream>,
    writer_wake: Rc<Notify>,
    mut buf: BytesMut,
    send_buffer: SendBuffer,
    cipher: Option<Cipher>,
) {
    let (encrypt, decrypt) = match cipher {
        Some(Cipher { encrypt, decrypt }) => (Some(encrypt), Some(decrypt)),
        None => (None, None),
    };
    let writer = tokio::task::spawn_local(write_loop(
        torrent.clone(),
        key,
        stream.clone(),
        writer_wake.clone(),
        send_buffer,
        encrypt,
    ));
    let reason = read_loop(&torrent, key, &stream, &mut buf, decrypt).await;
    tracing::debug!(%reason, "connection ended");
    let _ = stream.shutdown();
    torrent.closed(key);
    writer_wake.notify_one();
    let _ = writer.await;
}

async fn read_loop<H: PeerHost>(
    torrent: &Rc<H>,
    key: PeerKey,
    stream: &PeerStream,
    buf: &mut BytesMut,
    mut decrypt: Option<Keystream>,
) -> String {
    let decoder = Decoder::default();
    let mut chunk = ChunkCharge::default();
    loop {
        if !torrent.receive(key, buf, &mut chunk) {
            return "closed by us".into();
        }
        torrent.wait_for_disk_memory().await;
        match read_more(stream, buf, decoder.missing(buf)).await {
            Ok(n) => {
                let len = buf.len();
                encryption::apply(decrypt.as_mut(), &mut buf[len - n..]);
                let delay = torrent.charge_download(n as u64);
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
            }
            Err(error) => return error.to_string(),
        }
    }
}

async fn write_loop<H: PeerHost>(
    torrent: Rc<H>,
    key: PeerKey,
    stream: Rc<PeerStream>,
    wake: Rc<Notify>,
    mut send_buffer: SendBuffer,
    mut encrypt: Option<Keystream>,
) {
    let mut frames: Vec<Bytes> = Vec::with_capacity(MAX_FRAMES_PER_WRITE);
    // An encrypted batch is written from a copy (the frames are shared buffers); the copy's
    // memory comes back to `sealed` once the write has let go of it.
    let mut sealed = BytesMut::new();
    loop {
        let taken = torrent.poll_transmit(key, &mut frames);
        let Some(payload) = taken else {
            return;
        };
        if frames.is_empty() {
            wake.notified().await;
            continue;
        }
        let delay = torrent.charge_upload(payload);
        let progress = |at| torrent.send_progress(key, at);
        if !delay.is_zero() {
            // Time spent in our own upload limit is not the peer refusing data.
            progress(Instant::now() + delay);
            tokio::time::sleep(delay).await;
        }
        let total: usize = frames.iter().map(Bytes::len).sum();
        if let Some(keystream) = encrypt.as_mut() {
            sealed.reserve(total);
            for frame in frames.drain(..) {
                sealed.extend_from_slice(&frame);
            }
            keystream.apply(&mut sealed);
            frames.push(sealed.split().freeze());
        }
        if let Err(error) = write_frames(&stream, &mut frames, || progress(Instant::now())).await {
            tracing::debug!(%error, "write failed");
            let _ = stream.shutdown();
            return;
        }
        torrent.sent(key, total);
        send_buffer.after_write(&stream, Instant::now());
    }
}

/// Writes every frame, resubmitting after short writes (each of which is `progress`: the peer
/// is reading, however slowly); `frames` comes back empty.
async fn write_frames(
    stream: &PeerStream,
    frames: &mut Vec<Bytes>,
    progress: impl Fn(),
) -> std::io::Result<()> {
    let mut bufs = std::mem::take(frames);
    while !bufs.is_empty() {
        let (result, returned) = stream.writev(bufs).await;
        bufs = returned;
        let mut written = result?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let done = bufs
            .iter()
            .take_while(|b| {
                if written >= b.len() {
                    written -= b.len();
                    true
                } else {
                    false
                }
            })
            .count();
        bufs.drain(..done);
        if let Some(first) = bufs.first_mut() {
            first.advance(written);
            progress();
        }
    }
    *frames = bufs;
    Ok(())
}

/// Dials `addr` and exchanges handshakes within `timeout`.
pub(crate) async fn connect(
    addr: SocketAddr,
    dialer: &Dialer,
    info_hash: InfoHash,
    our_id: PeerId,
    dht: bool,
    timeout: Duration,
    offer: Option<Offer>,
) -> Result<(PeerStream, Handshake, BytesMut, Option<Cipher>), HandshakeError> {
    let timed_out = || std::io::Error::from(std::io::ErrorKind::TimedOut);
    let deadline = tokio::time::Instant::now() + timeout;
    let stream = tokio::time::timeout_at(deadline, dialer.open(addr))
        .await
        .map_err(|_| HandshakeError::Connect(timed_out()))?
        .map_err(HandshakeError::Connect)?;
    let mut buf = BytesMut::with_capacity(HANDSHAKE_LEN);
    let exchange = async {
        let mut cipher = match offer {
            Some(offer) => {
                let ours = our_handshake(info_hash, our_id, dht);
                initiate_encrypted(&stream, info_hash, &ours, offer, &mut buf).await?
            }
            None => {
                send_handshake(&stream, info_hash, our_id, dht, None).await?;
                None
            }
        };
        let decrypt = cipher.as_mut().map(|cipher| &mut cipher.decrypt);
        let handshake = read_handshake(&stream, &mut buf, decrypt).await?;
        Ok::<_, HandshakeError>((handshake, cipher))
    };
    // A tokio-uring socket is closed only once its pending operations complete: a peer that
    // never answers must be shut down, not just dropped, or its socket stays open.
    let (handshake, cipher) = match tokio::time::timeout_at(deadline, exchange).await {
        Ok(result) => result?,
        Err(_) => {
            let _ = stream.shutdown();
            return Err(timed_out().into());
        }
    };
    if handshake.info_hash != info_hash {
        return Err(HandshakeError::WrongTorrent);
    }
    Ok((stream, handshake, buf, cipher))
}
