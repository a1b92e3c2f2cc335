//! The per-torrent announce tasks: one per tier, each on the network thread but never in the
//! way of peer traffic (every wait is a timer or a socket, and they only touch the core to
//! read counters and add peers).

use std::cell::{Cell, OnceCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::tiers::Tier;
use super::{AnnounceRequest, AnnounceResponse, Event, HttpTracker, TrackerError, UdpTracker};
use crate::TorrentId;
use crate::alert::Alert;
use crate::conf::TrackerConf;
use crate::core::AnnounceState;
use crate::udp_port::UdpPort;

/// How often an idle tier re-checks whether its torrent needs peers.
const RECHECK: Duration = Duration::from_secs(5);

/// The engine's tracker clients, shared by all torrents.
#[derive(Debug)]
pub(crate) struct Clients {
    http: HttpTracker,
    udp: UdpTracker,
    /// The `key` sent with every announce, random per engine.
    key: u32,
    pub(crate) conf: TrackerConf,
    /// The engine's UDP port, once bound: UDP announces go out from it, so trackers see the
    /// port peers reach us on.
    pub(crate) port: OnceCell<Rc<UdpPort>>,
}

/// What the announce tasks need from their torrent.
pub(crate) trait Swarm {
    fn announce_state(&self) -> AnnounceState;
    /// Peers a tracker gave.
    fn add_peers(self: &Rc<Self>, peers: Vec<SocketAddr>);
    fn post(&self, alert: Alert);
    fn id(&self) -> TorrentId;
    fn signals(&self) -> Rc<Signals>;
    fn span(&self) -> tracing::Span;
}

impl Clients {
    /// The clients, with `key` sent in every announce.
    pub(crate) fn new(conf: &TrackerConf, key: u32) -> Result<Self, TrackerError> {
        Ok(Self {
            http: HttpTracker::new(conf)?,
            udp: UdpTracker::new(conf),
            key,
            conf: conf.clone(),
            port: OnceCell::new(),
        })
    }

    async fn announce(
        &self,
        url: &str,
        request: &AnnounceRequest,
    ) -> Result<AnnounceResponse, TrackerError> {
        if url.starts_with("udp://") {
            match self.port.get() {
                Some(port) => self.udp.announce_via(port, url, request).await,
                None => self.udp.announce(url, request).await,
            }
        } else if url.starts_with("http://") || url.starts_with("https://") {
            self.http.announce(url, request).await
        } else {
            Err(TrackerError::UnsupportedScheme(url.to_owned()))
        }
    }
}

/// What a torrent tells its announce tasks: completion and stop.
#[derive(Debug, Default)]
pub(crate) struct Signals {
    stopping: Cell<bool>,
    changed: Notify,
}

impl Signals {
    /// Something the tiers care about changed (the torrent completed).
    pub(crate) fn poke(&self) {
        self.changed.notify_waiters();
    }

    /// The torrent is going away: announce `stopped` and end.
    pub(crate) fn stop(&self) {
        self.stopping.set(true);
        self.changed.notify_waiters();
    }
}

/// Starts one announce task per tier of the torrent's trackers (`lists`, tiers shuffled with
/// `seed`).
pub(crate) fn start<S: Swarm + 'static>(
    torrent: &Rc<S>,
    clients: &Rc<Clients>,
    lists: Vec<Vec<String>>,
    finished: bool,
    seed: u64,
) -> Vec<JoinHandle<()>> {
    if !clients.conf.enabled {
        return Vec::new();
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    Tier::from_lists(lists, finished, &clients.conf, &mut rng)
        .into_iter()
        .map(|tier| {
            let task = run_tier(torrent.clone(), clients.clone(), tier);
            tokio::task::spawn_local(tracing::Instrument::instrument(task, torrent.span()))
        })
        .collect()
}

async fn run_tier<S: Swarm>(torrent: Rc<S>, clients: Rc<Clients>, mut tier: Tier) {
    let signals = torrent.signals();
    loop {
        let changed = signals.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if signals.stopping.get() {
            if tier.is_started() {
                announce_stopped(&torrent, &clients, &tier).await;
            }
            return;
        }
        let (finished, need_peers) = needs(&torrent, &clients.conf);
        let due = tier.next_announce(finished, need_peers, &clients.conf);
        let now = Instant::now();
        if due.is_none_or(|due| due <= now) {
            tokio::select! {
                () = announce_round(&torrent, &clients, &mut tier, finished) => {}
                // A stop gives a round in flight (say, a `completed`) a short grace, then
                // interrupts it so that the tracker is told `stopped` in time.
                () = async {
                    stopped(&signals).await;
                    tokio::time::sleep(clients.conf.stop_timeout).await;
                } => {}
            }
            continue;
        }
        let wake = due.map_or(now + RECHECK, |due| due.min(now + RECHECK));
        tokio::select! {
            () = tokio::time::sleep_until(wake.into()) => {}
            () = &mut changed => {}
        }
    }
}

async fn stopped(signals: &Signals) {
    loop {
        let changed = signals.changed.notified();
        if signals.stopping.get() {
            return;
        }
        changed.await;
    }
}

/// Whether the torrent is finished, and whether it wants more peers.
fn needs<S: Swarm>(torrent: &Rc<S>, conf: &TrackerConf) -> (bool, bool) {
    let state = torrent.announce_state();
    (
        state.finished,
        !state.finished && !state.paused && state.peers < conf.want_peers,
    )
}

fn request<S: Swarm>(
    torrent: &Rc<S>,
    clients: &Clients,
    event: Event,
    tier: &Tier,
) -> AnnounceRequest {
    let state = torrent.announce_state();
    AnnounceRequest {
        info_hash: state.info_hash,
        peer_id: state.peer_id,
        port: state.port,
        uploaded: state.uploaded,
        downloaded: state.downloaded,
        left: state.left,
        event,
        numwant: if event == Event::Stopped {
            0
        } else {
            clients.conf.numwant
        },
        key: clients.key,
        tracker_id: tier.tracker_id.clone(),
    }
}

/// Tries the tier's trackers in order until one answers.
async fn announce_round<S: Swarm>(
    torrent: &Rc<S>,
    clients: &Clients,
    tier: &mut Tier,
    finished: bool,
) {
    let event = tier.event(finished);
    let request = request(torrent, clients, event, tier);
    for index in 0..tier.urls.len() {
        let url = tier.urls[index].clone();
        tracing::debug!(%url, ?event, "announcing");
        match clients.announce(&url, &request).await {
            Ok(reply) => {
                tier.on_success(
                    index,
                    event,
                    request.left,
                    &reply,
                    Instant::now(),
                    &clients.conf,
                );
                on_reply(torrent, &url, reply);
                return;
            }
            Err(error) => {
                tracing::info!(%url, %error, "announce failed");
                torrent.post(Alert::TrackerError {
                    id: torrent.id(),
                    url,
                    error: error.to_string(),
                });
            }
        }
    }
    tier.on_failure(Instant::now());
}

fn on_reply<S: Swarm>(torrent: &Rc<S>, url: &str, reply: AnnounceResponse) {
    let port = torrent.announce_state().port;
    let peers: Vec<SocketAddr> = reply
        .peers
        .into_iter()
        .filter(|addr| !is_us(*addr, port))
        .collect();
    tracing::debug!(%url, peers = peers.len(), interval = ?reply.interval, "tracker answered");
    if let Some(message) = reply.warning {
        torrent.post(Alert::TrackerWarning {
            id: torrent.id(),
            url: url.to_owned(),
            message,
        });
    }
    torrent.post(Alert::TrackerReply {
        id: torrent.id(),
        url: url.to_owned(),
        peers: peers.len(),
        seeders: reply.complete,
        leechers: reply.incomplete,
    });
    if !peers.is_empty() {
        torrent.add_peers(peers);
    }
}

/// Trackers often list the announcing peer itself; on loopback that is our own listener.
fn is_us(addr: SocketAddr, port: u16) -> bool {
    addr.port() == port && (addr.ip().is_loopback() || addr.ip().is_unspecified())
}

async fn announce_stopped<S: Swarm>(torrent: &Rc<S>, clients: &Clients, tier: &Tier) {
    let Some(url) = tier.urls.first() else {
        return;
    };
    let request = request(torrent, clients, Event::Stopped, tier);
    let attempt = clients.announce(url, &request);
    match tokio::time::timeout(clients.conf.stop_timeout, attempt).await {
        Ok(Ok(_)) => tracing::debug!(%url, "told the tracker we stopped"),
        Ok(Err(error)) => tracing::debug!(%url, %error, "stopped announce failed"),
        Err(_) => tracing::debug!(%url, "stopped announce timed out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_listener_is_not_a_peer() {
        let ours: SocketAddr = "127.0.0.1:6881".parse().unwrap_or_else(|_| unreachable!());
        assert!(is_us(ours, 6881));
        assert!(!is_us(ours, 6882));
        let remote: SocketAddr = "10.0.0.1:6881".parse().unwrap_or_else(|_| unreachable!());
        assert!(!is_us(remote, 6881));
    }
}
