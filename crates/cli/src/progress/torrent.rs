//! What a torrent's line and JSON stats say: bytes done of wanted, rates, peers connected of
//! known, and while seeding, total uploaded and the ratio.

use cratetorrent::{TorrentState, TorrentStats};
use serde_json::json;

use super::line::Detail;
use crate::units::{format_bytes, format_duration, format_progress, format_rate};

/// The fraction done (None while the metadata is fetched) and the details, most useful first.
pub(super) fn view(stats: &TorrentStats) -> (Option<f64>, Vec<Detail>) {
    let peers = Detail::new(
        2,
        format!("{}/{} peers", stats.peers.len(), stats.peers_known),
    );
    match stats.state {
        TorrentState::Metadata => {
            let mut details = vec![Detail::new(0, "fetching metadata"), peers];
            if stats.dht_nodes > 0 {
                details.push(Detail::new(3, format!("{} DHT nodes", stats.dht_nodes)));
            }
            (None, details)
        }
        TorrentState::Seeding => (
            Some(fraction(stats)),
            vec![
                Detail::new(0, format!("↑ {}", format_rate(stats.upload_rate as f64))),
                Detail::new(1, format!("{} up", format_bytes(stats.uploaded))),
                Detail::new(3, format!("ratio {:.2}", ratio(stats))),
                peers,
            ],
        ),
        _ => {
            let eta = match stats.bytes_left.checked_div(stats.download_rate) {
                _ if stats.bytes_left == 0 => "-".to_owned(),
                Some(seconds) => format_duration(seconds),
                None => "∞".to_owned(),
            };
            let done = stats.bytes_wanted.saturating_sub(stats.bytes_left);
            let mut details = vec![
                Detail::new(0, format_progress(done, stats.bytes_wanted)),
                Detail::new(1, format!("↓ {}", format_rate(stats.download_rate as f64))),
            ];
            if stats.upload_rate > 0 {
                details.push(Detail::new(
                    5,
                    format!("↑ {}", format_rate(stats.upload_rate as f64)),
                ));
            }
            details.push(peers);
            details.push(Detail::new(3, format!("ETA {eta}")));
            if stats.state == TorrentState::Paused {
                details.insert(0, Detail::new(0, "paused"));
            }
            (Some(fraction(stats)), details)
        }
    }
}

/// Bytes done of wanted (pieces before the first stats with a size).
fn fraction(stats: &TorrentStats) -> f64 {
    if stats.bytes_wanted > 0 {
        stats.bytes_wanted.saturating_sub(stats.bytes_left) as f64 / stats.bytes_wanted as f64
    } else {
        f64::from(stats.pieces_had) / f64::from(stats.piece_count.max(1))
    }
}

/// Uploaded over the wanted size (as aria2c's and Transmission's ratio: a seeder that
/// downloaded nothing still has one).
pub(crate) fn ratio(stats: &TorrentStats) -> f64 {
    stats.uploaded as f64 / stats.bytes_wanted.max(1) as f64
}

pub(super) fn json(name: &str, stats: &TorrentStats, elapsed: f64) -> serde_json::Value {
    json!({
        "event": "stats",
        "name": name,
        "info_hash": stats.info_hash.to_hex(),
        "state": state_name(stats.state),
        "progress": fraction(stats),
        "pieces_had": stats.pieces_had,
        "piece_count": stats.piece_count,
        "bytes_left": stats.bytes_left,
        "bytes_wanted": stats.bytes_wanted,
        "downloaded": stats.downloaded,
        "uploaded": stats.uploaded,
        "ratio": ratio(stats),
        "download_rate": stats.download_rate,
        "upload_rate": stats.upload_rate,
        "peers": stats.peers.len(),
        "peers_known": stats.peers_known,
        "hash_failures": stats.hash_failures,
        "dht_nodes": stats.dht_nodes,
        "dht_peers": stats.dht_peers,
        "dht_sent": stats.dht_datagrams.0,
        "dht_received": stats.dht_datagrams.1,
        "elapsed": elapsed,
    })
}

fn state_name(state: TorrentState) -> &'static str {
    match state {
        TorrentState::Metadata => "metadata",
        TorrentState::Checking => "checking",
        TorrentState::Downloading => "downloading",
        TorrentState::Seeding => "seeding",
        TorrentState::Paused => "paused",
        _ => "unknown",
    }
}
