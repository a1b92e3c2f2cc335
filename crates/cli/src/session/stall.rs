//! Why a torrent has no peers: said once after a few seconds without any, in terms of what
//! the user can change (no source of peers at all, a `--peer` that does not answer, trackers
//! that all fail).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cratetorrent::TorrentStats;

/// How long a torrent may have no peer before the note.
const STALL_AFTER: Duration = Duration::from_secs(5);

/// Given peers named in the note at most.
const MAX_NAMED: usize = 3;

pub(super) struct Stall {
    trackers: usize,
    given: Vec<SocketAddr>,
    dht: bool,
    /// Since when the torrent has had no peer.
    since: Option<Instant>,
    /// The note was given for this stretch without peers.
    told: bool,
    /// The last error of each tracker that has not answered since (bounded by the torrent's
    /// tracker list).
    failing: BTreeMap<String, String>,
    replied: bool,
}

impl Stall {
    pub(super) fn new(trackers: usize, given: &[SocketAddr], dht: bool) -> Self {
        Self {
            trackers,
            given: given.to_vec(),
            dht,
            since: None,
            told: false,
            failing: BTreeMap::new(),
            replied: false,
        }
    }

    pub(super) fn tracker_replied(&mut self, url: &str) {
        self.failing.remove(url);
        self.replied = true;
    }

    pub(super) fn tracker_failed(&mut self, url: &str, error: &str) {
        if self.failing.len() < self.trackers.max(1) || self.failing.contains_key(url) {
            self.failing.insert(url.to_owned(), error.to_owned());
        }
    }

    /// The note to give now, if any.
    pub(super) fn check(&mut self, stats: Option<&TorrentStats>, now: Instant) -> Option<String> {
        let connected = stats.map_or(0, |s| s.peers.len());
        if connected > 0 {
            self.since = None;
            self.told = false;
            return None;
        }
        let since = *self.since.get_or_insert(now);
        if self.told || now.duration_since(since) < STALL_AFTER {
            return None;
        }
        self.told = true;
        Some(self.reason(stats))
    }

    fn reason(&self, stats: Option<&TorrentStats>) -> String {
        let waited = STALL_AFTER.as_secs();
        if self.trackers == 0 && self.given.is_empty() && !self.dht {
            return format!(
                "no peers after {waited} s: the torrent names no tracker, no --peer was given \
                 and the DHT is off (--no-dht): pass --peer HOST:PORT"
            );
        }
        if !self.given.is_empty() {
            let named: Vec<String> = self
                .given
                .iter()
                .take(MAX_NAMED)
                .map(ToString::to_string)
                .collect();
            let more = self.given.len().saturating_sub(MAX_NAMED);
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            return format!(
                "no peers after {waited} s: --peer {}{more} did not accept a connection \
                 (refused, or no answer); retrying with growing pauses",
                named.join(", ")
            );
        }
        let known = stats.map_or(0, |s| s.peers_known);
        let nodes = stats.map_or(0, |s| s.dht_nodes);
        if self.trackers > 0 && !self.replied && self.failing.len() >= self.trackers {
            let (url, error) = self
                .failing
                .iter()
                .next_back()
                .map_or(("", ""), |(u, e)| (u, e));
            return format!(
                "no peers after {waited} s: all {} trackers failed (last: {url}: {error}); \
                 retrying",
                self.trackers
            );
        }
        let dht = if self.dht {
            format!(", the DHT reaches {nodes} nodes")
        } else {
            ", the DHT is off".to_owned()
        };
        format!(
            "no peers after {waited} s: {known} addresses known, none answered yet{dht}; \
             still looking"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn told_once_per_stretch_with_the_reason() {
        let start = Instant::now();
        let mut lonely = Stall::new(0, &[], false);
        assert_eq!(lonely.check(None, start), None);
        let note = lonely.check(None, start + STALL_AFTER).unwrap();
        assert!(note.contains("names no tracker") && note.contains("--peer HOST:PORT"));
        assert_eq!(lonely.check(None, start + 2 * STALL_AFTER), None);

        let peer: SocketAddr = "127.0.0.1:1"
            .parse()
            .unwrap_or(SocketAddr::from(([0; 4], 0)));
        let mut given = Stall::new(0, &[peer], false);
        given.check(None, start);
        let note = given.check(None, start + STALL_AFTER).unwrap();
        assert!(note.contains("--peer 127.0.0.1:1 did not accept"), "{note}");

        let mut tracked = Stall::new(2, &[], true);
        tracked.tracker_failed("http://a/announce", "connection refused");
        tracked.tracker_failed("http://b/announce", "timed out");
        tracked.check(None, start);
        let note = tracked.check(None, start + STALL_AFTER).unwrap();
        assert!(note.contains("all 2 trackers failed"), "{note}");
    }
}
