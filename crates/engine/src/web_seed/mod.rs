//! BEP 19 web seeds: HTTP(S) servers that hold a torrent's files.
//!
//! Each web seed joins its torrent as a peer (see `peer.rs`): the core picks pieces for it,
//! pipelines, times out, verifies and bans exactly as for any peer, and the task here turns its
//! requests into range requests (`fetch.rs`) and the server's bytes into piece messages. A
//! server that fails is asked again after a back-off that doubles with each failure; one that
//! lacks a file, or holds it at another length, is asked only for the pieces of the others;
//! one that sends data failing the hash check is banned like a peer.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use cratetorrent_metainfo::Metainfo;
use cratetorrent_wire::{BLOCK_SIZE, Bitfield, Geometry, PIECE_HEADER_LEN, PeerId};
use tokio::sync::Notify;

use crate::chunk_pool::{self, ChunkCharge};
use crate::connection::{MAX_FRAMES_PER_WRITE, PeerHost};
use crate::core::{PeerKey, Reject};
use crate::https::HttpsClient;
use fetch::{FetchConf, FetchError, Fetcher};
use peer::{PeerError, WebSeedPeer};
use url::WebSeedUrl;

mod fetch;
mod peer;
mod url;

/// A quiet web seed tells the core it is alive this often (the core drops idle peers).
const KEEP_ALIVE: Duration = Duration::from_secs(60);
/// The longest back-off, as a multiple of the first.
const MAX_BACKOFF_DOUBLINGS: u32 = 4;

/// What a web seed needs from its torrent, beyond what any peer's connection needs.
pub(crate) trait WebSeedHost: PeerHost {
    /// Registers a web seed reached at `addr` as a peer: its key, and the bell the torrent
    /// rings when the core has frames for it or closes it.
    fn join_web_seed(
        self: &Rc<Self>,
        addr: SocketAddr,
        id: PeerId,
    ) -> Result<(PeerKey, Rc<Notify>), Reject>;
    /// Whether the torrent has use for a web seed: its storage is open, it is not paused, and
    /// a wanted piece is missing.
    fn web_seed_wanted(&self) -> bool;
    /// The metadata, while the torrent has use for a web seed.
    fn web_seed_work(&self) -> Option<Metainfo>;
    /// Resolves when what `web_seed_work` says may have changed, or the torrent closes.
    fn web_seed_changed(&self) -> impl std::future::Future<Output = ()>;
    fn is_closed(&self) -> bool;
}

/// How a torrent's web seeds behave (from `TorrentConf`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct WebSeedConf {
    pub(crate) timeout: Duration,
    pub(crate) retry: Duration,
    pub(crate) fetch_size: u64,
    pub(crate) max_redirects: u32,
}

/// Whether `url` can be a web seed (BEP 19 is HTTP; HTTPS too, as libtorrent).
pub(crate) fn is_usable(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// How one session with the server ended.
enum End {
    /// The core closed it (paused, finished, banned, idle).
    ClosedByUs,
    Failed(FetchError),
    /// The torrent's frames could not be read, or the server overran a fetch: not the
    /// server's fault to retry.
    Broken(PeerError),
}

/// Runs the web seed at `url` for the torrent until the torrent closes, the server is banned,
/// or it cannot serve anything.
pub(crate) async fn run<H: WebSeedHost + 'static>(
    host: Rc<H>,
    url: String,
    client: HttpsClient,
    conf: WebSeedConf,
) {
    let id = peer_id(&url);
    let mut failures = 0u32;
    let mut missing: HashSet<usize> = HashSet::new();
    loop {
        if host.is_closed() {
            return;
        }
        let Some(metainfo) = host.web_seed_work() else {
            host.web_seed_changed().await;
            continue;
        };
        let serves = serves(&metainfo, &missing);
        if serves.count_ones() == 0 {
            tracing::info!(%url, "the web seed holds none of the files");
            return;
        }
        let joined = match resolve(&url).await {
            Ok(addr) => host.join_web_seed(addr, id).map_err(Some),
            Err(error) => {
                tracing::debug!(%url, %error, "cannot resolve the web seed");
                Err(None)
            }
        };
        let (key, bell) = match joined {
            Ok(joined) => joined,
            Err(Some(Reject::Banned)) => return,
            Err(_) => {
                failures += 1;
                back_off(&*host, conf.retry, failures).await;
                continue;
            }
        };
        let started = Instant::now();
        let seed = WebSeedUrl::new(&url, &metainfo);
        let peer = WebSeedPeer::new(Geometry::of(&metainfo), serves, conf.fetch_size);
        let mut session = Session {
            host: host.clone(),
            key,
            bell,
            peer,
            buf: BytesMut::new(),
            charge: ChunkCharge::default(),
            frames: Vec::with_capacity(MAX_FRAMES_PER_WRITE),
            incoming: BytesMut::new(),
            fetched: false,
        };
        let end = session.run(&seed, &metainfo, &client, conf).await;
        host.closed(key);
        if session.fetched {
            // It served before it failed: the back-off starts over.
            failures = 0;
        }
        match end {
            End::ClosedByUs if started.elapsed() > conf.retry => failures = 0,
            // Closed at once (a duplicate, say): not a loop without pause.
            End::ClosedByUs => {
                failures += 1;
                back_off(&*host, conf.retry, failures).await;
            }
            End::Failed(FetchError::Missing { file, .. } | FetchError::Mismatch { file, .. }) => {
                // Its other files may still be good.
                tracing::info!(%url, file, "the web seed lacks a file");
                missing.insert(file);
            }
            End::Failed(error) if error.is_permanent() => {
                tracing::warn!(%url, %error, "giving up on the web seed");
                return;
            }
            End::Failed(error) => {
                failures += 1;
                tracing::debug!(%url, %error, failures, "web seed failed");
                back_off(&*host, conf.retry, failures).await;
            }
            End::Broken(error) => {
                tracing::warn!(%url, %error, "giving up on the web seed");
                return;
            }
        }
    }
}

/// Waits `retry` doubled for each failure after the first (up to a cap), or until the torrent
/// changes (it may have closed).
async fn back_off<H: WebSeedHost>(host: &H, retry: Duration, failures: u32) {
    let wait = retry * (1 << failures.saturating_sub(1).min(MAX_BACKOFF_DOUBLINGS));
    tokio::select! {
        () = tokio::time::sleep(wait) => {}
        () = host.web_seed_changed() => {}
    }
}

/// The pieces that touch none of the `missing` files.
fn serves(metainfo: &Metainfo, missing: &HashSet<usize>) -> Bitfield {
    let mut serves = Bitfield::full(metainfo.piece_count());
    let piece_length = u64::from(metainfo.piece_length().max(1));
    for &index in missing {
        let Some(file) = metainfo.files().get(index).filter(|f| f.length() > 0) else {
            continue;
        };
        let first = file.offset() / piece_length;
        let last = (file.offset() + file.length() - 1) / piece_length;
        for piece in first..=last {
            serves.clear(piece as u32);
        }
    }
    serves
}

/// The address the server's host name resolves to (shown as the peer's address, and what a
/// ban applies to).
async fn resolve(url: &str) -> std::io::Result<SocketAddr> {
    let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidInput, "invalid URL");
    let uri: hyper::Uri = url.parse().map_err(|_| invalid())?;
    let host = uri.host().ok_or_else(invalid)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    tokio::net::lookup_host((host, port))
        .await?
        .next()
        .ok_or_else(invalid)
}

/// A peer id of its own for each web seed URL (bans on loopback go by peer id).
fn peer_id(url: &str) -> PeerId {
    let mut id = *b"-WS0001-\0\0\0\0\0\0\0\0\0\0\0\0";
    let mut hasher = std::hash::DefaultHasher::new();
    url.hash(&mut hasher);
    let first = hasher.finish();
    first.hash(&mut hasher);
    let second = hasher.finish();
    id[8..16].copy_from_slice(&first.to_be_bytes());
    id[16..20].copy_from_slice(&second.to_be_bytes()[..4]);
    PeerId::new(id)
}

/// One registration of the web seed with its torrent.
struct Session<H: WebSeedHost> {
    host: Rc<H>,
    key: PeerKey,
    bell: Rc<Notify>,
    peer: WebSeedPeer,
    /// What the core reads, as if from a socket.
    buf: BytesMut,
    charge: ChunkCharge,
    frames: Vec<Bytes>,
    /// The core's frames, gathered to be decoded (whole messages: it is empty after).
    incoming: BytesMut,
    /// A fetch completed.
    fetched: bool,
}

impl<H: WebSeedHost> Session<H> {
    async fn run(
        &mut self,
        seed: &WebSeedUrl,
        metainfo: &Metainfo,
        client: &HttpsClient,
        conf: WebSeedConf,
    ) -> End {
        chunk_pool::make_room(&mut self.buf, 64 + metainfo.piece_count() as usize / 8);
        self.peer.greet(&mut self.buf);
        if !self.deliver() {
            return End::ClosedByUs;
        }
        let fetch_conf = FetchConf {
            timeout: conf.timeout,
            max_redirects: conf.max_redirects,
        };
        loop {
            if let Err(error) = self.exchange() {
                return error;
            }
            let Some(stretch) = self.peer.next_fetch() else {
                if self.peer.is_idle() && !self.host.web_seed_wanted() {
                    // Complete: the slot goes back to the torrent.
                    return End::ClosedByUs;
                }
                let keep_alive = tokio::time::timeout(KEEP_ALIVE, self.bell.notified()).await;
                if keep_alive.is_err() {
                    self.buf.extend_from_slice(&[0; 4]);
                    if !self.deliver() {
                        return End::ClosedByUs;
                    }
                }
                continue;
            };
            let Some(segments) = seed.segments(metainfo, stretch.offset, stretch.len) else {
                return End::Broken(PeerError::Overrun);
            };
            let mut fetcher = Fetcher::new(client, segments, fetch_conf);
            loop {
                let next = fetcher.next();
                tokio::pin!(next);
                // New requests and cancels are taken while the server is being waited for.
                let chunk = loop {
                    tokio::select! {
                        chunk = &mut next => break chunk,
                        () = self.bell.notified() => {
                            if let Err(end) = self.exchange() {
                                return end;
                            }
                        }
                    }
                };
                match chunk {
                    Ok(Some(data)) => {
                        if let Err(end) = self.on_body(&data).await {
                            return end;
                        }
                    }
                    Ok(None) if self.peer.fetch_done() => {
                        self.fetched = true;
                        break;
                    }
                    Ok(None) => return End::Failed(FetchError::Short),
                    Err(error) => return End::Failed(error),
                }
            }
        }
    }

    /// Server bytes in, piece frames to the core, within the torrent's rate and memory limits.
    async fn on_body(&mut self, data: &[u8]) -> Result<(), End> {
        let headers = (data.len() / BLOCK_SIZE as usize + 2) * PIECE_HEADER_LEN;
        chunk_pool::make_room(&mut self.buf, data.len() + headers);
        self.peer
            .on_body(data, &mut self.buf)
            .map_err(End::Broken)?;
        if !self.deliver() {
            return Err(End::ClosedByUs);
        }
        let delay = self.host.charge_download(data.len() as u64);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        self.host.wait_for_disk_memory().await;
        Ok(())
    }

    /// Hands the core what is in `buf`; false once it has closed the web seed.
    fn deliver(&mut self) -> bool {
        self.host.receive(self.key, &mut self.buf, &mut self.charge)
    }

    /// Takes the core's frames for the web seed and answers what can be answered at once.
    fn exchange(&mut self) -> Result<(), End> {
        let Some(_) = self.host.poll_transmit(self.key, &mut self.frames) else {
            return Err(End::ClosedByUs);
        };
        if !self.frames.is_empty() {
            let total: usize = self.frames.iter().map(Bytes::len).sum();
            for frame in self.frames.drain(..) {
                self.incoming.extend_from_slice(&frame);
            }
            self.peer
                .on_frames(&mut self.incoming)
                .map_err(End::Broken)?;
            self.host.sent(self.key, total);
        }
        let before = self.buf.len();
        self.peer.flush(&mut self.buf);
        if self.buf.len() > before && !self.deliver() {
            return Err(End::ClosedByUs);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_url_has_its_own_stable_peer_id() {
        let a = peer_id("http://a/x");
        assert_eq!(a, peer_id("http://a/x"));
        assert_ne!(a, peer_id("http://a/y"));
        assert!(a.as_bytes().starts_with(b"-WS0001-"));
    }

    #[test]
    fn only_http_and_https_urls_are_web_seeds() {
        assert!(is_usable("http://a/x"));
        assert!(is_usable("HTTPS://a/x"));
        assert!(!is_usable("ftp://a/x"));
        assert!(!is_usable("http:/"));
    }
}
