//! The engine's side of the DHT: the task that runs the node's timers, sends what it queues,
//! hands the peers it finds to their torrents, announces and searches for the torrents, and
//! saves the routing table (at most every `DhtConf::save_interval`, and at shutdown).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use cratetorrent_dht::{Config, Dht, SavedState};
use cratetorrent_metainfo::InfoHash;
use cratetorrent_storage::{load_session_file, save_session_file};

use super::Engine;
use crate::blocking::blocking;
use crate::dht_node::DhtNode;
use crate::udp_port::{UdpPort, unmap};

/// The saved routing table's name under `.cratetorrent/`.
const STATE_FILE: &str = "dht.dat";
/// A saved state longer than this is not ours.
const MAX_STATE: u64 = 1 << 20;
/// How long the bootstrap routers' names may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the list of torrents is looked at.
const RESCAN: Duration = Duration::from_secs(1);

/// Starts the node in the background on the bound UDP `port` (whose readers hand it KRPC
/// datagrams): saved state and router names first.
pub(super) fn start(engine: &Rc<Engine>, port: Rc<UdpPort>) {
    engine.shared.dht_port.set(Some(port.port()));
    tokio::task::spawn_local(run(engine.clone(), port));
}

/// When each torrent is next announced or searched.
struct Due {
    announce: Instant,
    search: Instant,
    /// Between searches: doubled after each search that brought no new peer.
    search_every: Duration,
    /// The torrent's DHT peer count at its last search.
    peers_then: u64,
}

async fn run(engine: Rc<Engine>, port: Rc<UdpPort>) {
    let conf = engine.conf.dht.clone();
    let dir = engine.shared.download_dir.clone();
    let saved = blocking(move || load_session_file(&dir, STATE_FILE, MAX_STATE))
        .await
        .and_then(|loaded| match loaded {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::warn!(%error, "saved DHT state unreadable");
                None
            }
        })
        .and_then(|bytes| match SavedState::decode(&bytes) {
            Ok(state) => Some(state),
            Err(error) => {
                tracing::warn!(%error, "saved DHT state malformed: starting afresh");
                None
            }
        });
    tracing::info!(
        saved = saved.as_ref().map_or(0, |s| s.nodes.len()),
        "DHT starting"
    );
    let config = Config {
        bootstrap: Vec::new(),
        saved,
        ipv4: port.has_v4(),
        ipv6: port.has_v6(),
        ..conf.node.clone()
    };
    let seed = engine.shared.session.borrow_mut().torrent_seed();
    let node = Rc::new(DhtNode::new(Dht::new(config, Instant::now(), seed)));
    if engine.shared.dht.set(node.clone()).is_err() {
        return;
    }
    // The node runs (from its saved nodes) while the routers' names resolve.
    tokio::task::spawn_local(bootstrap(node.clone(), conf.bootstrap.clone()));
    let mut due: HashMap<InfoHash, Due> = HashMap::new();
    let mut next_scan = Instant::now();
    let mut next_save = Instant::now() + conf.save_interval;
    let mut waiting_for_nodes = false;
    while !engine.closing.get() {
        let mut wake = node.handle_timeout();
        let now = Instant::now();
        let stats = node.stats();
        let has_nodes = stats.nodes_v4 + stats.nodes_v6 > 0;
        // Torrents added before the node knew anyone go out as soon as it does.
        if now >= next_scan || (waiting_for_nodes && has_nodes) {
            next_scan = now + RESCAN;
            waiting_for_nodes = !schedule(&engine, &node, &mut due, now);
        }
        for transmit in node.transmits() {
            if let Err(error) = port.send_to(&transmit.datagram, transmit.to).await {
                tracing::trace!(to = %transmit.to, %error, "DHT datagram not sent");
            }
        }
        for (info_hash, peers) in node.found() {
            hand_over(&engine, info_hash, peers);
        }
        if now >= next_save {
            next_save = now + conf.save_interval;
            save(&engine).await;
        }
        // The torrent scan may have left announces for lack of room: retry soon.
        if due.values().any(|d| d.announce <= now) {
            next_scan = next_scan.min(now + Duration::from_millis(100));
        }
        wake = wake.min(next_scan).max(now);
        tokio::select! {
            () = tokio::time::sleep_until(wake.into()) => {}
            () = node.woken() => {}
        }
    }
}

/// Announces torrents when due (once the node knows other nodes), and searches again for
/// unfinished ones short of peers; `false` while the node knows nobody.
fn schedule(
    engine: &Engine,
    node: &DhtNode,
    due: &mut HashMap<InfoHash, Due>,
    now: Instant,
) -> bool {
    let conf = &engine.conf.dht;
    let torrents = engine.discoverable();
    let live: HashSet<InfoHash> = torrents.iter().map(|t| t.info_hash).collect();
    due.retain(|info_hash, _| live.contains(info_hash));
    let stats = node.stats();
    if stats.nodes_v4 + stats.nodes_v6 == 0 {
        return false;
    }
    for torrent in torrents {
        let (finished, peers) = torrent.discovery_state();
        let found = torrent.dht_peers();
        let when = due.entry(torrent.info_hash).or_insert(Due {
            announce: now,
            search: now,
            search_every: conf.search_interval,
            peers_then: found,
        });
        if now >= when.announce {
            // Refused when the node runs its most lookups: it stays due for the next scan.
            if node.announce(torrent.info_hash, engine.listen_port) {
                when.announce = now + conf.announce_interval;
                when.search = now + when.search_every;
            }
        } else if !finished
            && peers < conf.want_peers
            && now >= when.search
            && node.get_peers(torrent.info_hash)
        {
            // A torrent nobody seeds is searched less and less often.
            when.search_every = if found > when.peers_then {
                conf.search_interval
            } else {
                (when.search_every * 2).min(conf.announce_interval)
            };
            when.peers_then = found;
            when.search = now + when.search_every;
        }
    }
    true
}

fn hand_over(engine: &Engine, info_hash: InfoHash, peers: Vec<SocketAddr>) {
    if let Some(torrent) = engine.torrent_by_hash(info_hash) {
        tracing::debug!(id = %torrent.id, peers = peers.len(), "peers found in the DHT");
        torrent.add_dht_peers(peers);
    }
}

/// Resolves the routers' names together, each within `RESOLVE_TIMEOUT`, and gives the node
/// each address as it comes; a name that does not resolve is skipped (the node still has its
/// saved nodes).
async fn bootstrap(node: Rc<DhtNode>, routers: Vec<String>) {
    let lookups = routers.iter().map(|router| async move {
        let lookup = tokio::net::lookup_host(router.as_str());
        match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
            Ok(Ok(addrs)) => addrs.map(unmap).collect(),
            Ok(Err(error)) => {
                tracing::debug!(%router, %error, "DHT router not resolved");
                Vec::new()
            }
            Err(_) => {
                tracing::debug!(%router, "DHT router not resolved in time");
                Vec::new()
            }
        }
    });
    for addrs in futures::future::join_all(lookups).await {
        for addr in addrs {
            node.add_bootstrap(addr);
        }
    }
}

/// Writes the routing table (atomically, under the download directory).
pub(super) async fn save(engine: &Engine) {
    let Some(node) = engine.shared.dht.get() else {
        return;
    };
    let Some(bytes) = node.state_to_save() else {
        return;
    };
    let dir = engine.shared.download_dir.clone();
    match blocking(move || save_session_file(&dir, STATE_FILE, &bytes)).await {
        Some(Ok(())) => tracing::debug!("DHT state saved"),
        Some(Err(error)) => tracing::warn!(%error, "saving the DHT state failed"),
        None => {}
    }
    node.saved();
}
