//! BEP 12 tiers without the I/O: tracker order, which event to send, and when to announce.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::{AnnounceResponse, Event};
use crate::conf::TrackerConf;

/// One tier of trackers and its announce schedule.
#[derive(Debug)]
pub(crate) struct Tier {
    /// Trackers in the order they are tried; the one that answered last is first.
    pub(crate) urls: Vec<String>,
    /// A `started` announce reached a tracker of this tier.
    started: bool,
    /// No `completed` is owed (sent, or the torrent was complete when it started).
    completed_done: bool,
    /// When the last round of this tier ended, and whether it failed.
    last: Option<Instant>,
    failures: u32,
    interval: Duration,
    min_interval: Duration,
    pub(crate) tracker_id: Option<Vec<u8>>,
}

impl Tier {
    /// Builds the tiers of a torrent, each shuffled once (BEP 12). A URL seen in an earlier
    /// tier is dropped, and so are tiers left empty. Only the first `max_tiers` tiers and
    /// `max_trackers` URLs are kept: every tier is a task with a socket, and a torrent is
    /// free to list thousands.
    pub(crate) fn from_lists(
        lists: Vec<Vec<String>>,
        complete: bool,
        conf: &TrackerConf,
        rng: &mut fastrand::Rng,
    ) -> Vec<Tier> {
        let mut seen = HashSet::new();
        let mut tiers = Vec::new();
        for list in lists {
            if tiers.len() >= conf.max_tiers || seen.len() >= conf.max_trackers {
                break;
            }
            let mut urls = Vec::new();
            for url in list {
                if seen.len() >= conf.max_trackers {
                    break;
                }
                if seen.insert(url.clone()) {
                    urls.push(url);
                }
            }
            if urls.is_empty() {
                continue;
            }
            rng.shuffle(&mut urls);
            tiers.push(Tier {
                urls,
                started: false,
                completed_done: complete,
                last: None,
                failures: 0,
                interval: super::DEFAULT_INTERVAL,
                min_interval: super::DEFAULT_INTERVAL,
                tracker_id: None,
            });
        }
        tiers
    }

    /// What the next announce reports, given whether the torrent has every wanted piece.
    pub(crate) fn event(&self, finished: bool) -> Event {
        if !self.started {
            Event::Started
        } else if finished && !self.completed_done {
            Event::Completed
        } else {
            Event::None
        }
    }

    /// When this tier should announce next.
    pub(crate) fn next_announce(
        &self,
        finished: bool,
        need_peers: bool,
        conf: &TrackerConf,
    ) -> Option<Instant> {
        let Some(last) = self.last else {
            return None; // never tried: now
        };
        if self.failures > 0 {
            let doubling = 1u32 << (self.failures - 1).min(16);
            let wait = conf
                .retry_interval
                .saturating_mul(doubling)
                .min(conf.max_retry_interval);
            return Some(last + wait);
        }
        if self.event(finished) == Event::Completed {
            return None;
        }
        Some(
            last + if need_peers {
                self.min_interval
            } else {
                self.interval
            },
        )
    }

    /// The tracker at `index` answered the announce that reported `event` (with `left`).
    pub(crate) fn on_success(
        &mut self,
        index: usize,
        event: Event,
        left: u64,
        reply: &AnnounceResponse,
        now: Instant,
        conf: &TrackerConf,
    ) {
        // BEP 12: the tracker that answered moves to the front of its tier.
        if index < self.urls.len() {
            let url = self.urls.remove(index);
            self.urls.insert(0, url);
        }
        match event {
            Event::Started => {
                self.started = true;
                self.completed_done |= left == 0;
            }
            Event::Completed => self.completed_done = true,
            Event::None | Event::Stopped => {}
        }
        self.failures = 0;
        self.last = Some(now);
        self.interval = reply.interval.max(conf.min_announce_interval);
        self.min_interval = reply
            .min_interval
            .unwrap_or(conf.min_announce_interval)
            .max(conf.min_announce_interval)
            .min(self.interval);
        if reply.tracker_id.is_some() {
            self.tracker_id.clone_from(&reply.tracker_id);
        }
    }

    /// Every tracker of the tier failed.
    pub(crate) fn on_failure(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        self.last = Some(now);
    }

    /// Whether a `stopped` is owed to this tier's tracker.
    pub(crate) fn is_started(&self) -> bool {
        self.started
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tiers(complete: bool) -> Vec<Tier> {
        let lists = vec![
            vec!["a".into(), "b".into(), "c".into()],
            vec![],
            vec!["d".into()],
        ];
        let conf = TrackerConf::default();
        Tier::from_lists(lists, complete, &conf, &mut fastrand::Rng::with_seed(1))
    }

    #[test]
    fn thousands_of_tiers_are_capped_and_duplicates_dropped() {
        let conf = TrackerConf::default();
        let mut rng = fastrand::Rng::with_seed(1);
        let lists: Vec<Vec<String>> = (0..5000)
            .map(|i| vec![format!("udp://t{i}.example:1/"), "udp://same:1".into()])
            .collect();
        let all = Tier::from_lists(lists, false, &conf, &mut rng);
        assert!(all.len() <= conf.max_tiers, "{} tiers", all.len());
        let urls: Vec<&String> = all.iter().flat_map(|t| &t.urls).collect();
        assert!(urls.len() <= conf.max_trackers, "{} urls", urls.len());
        let unique: std::collections::HashSet<_> = urls.iter().collect();
        assert_eq!(unique.len(), urls.len(), "duplicate URLs kept");
        // The torrent's first tiers are the ones kept, and no tier is left empty.
        assert!(all.iter().all(|t| !t.urls.is_empty()));
        assert!(all[0].urls.contains(&"udp://t0.example:1/".to_owned()));

        // A tier made only of URLs seen before disappears; the URL cap holds inside a tier.
        let conf = TrackerConf {
            max_trackers: 3,
            ..TrackerConf::default()
        };
        let lists = vec![
            vec!["a".into(), "a".into()],
            vec!["a".into()],
            vec!["b".into(), "c".into(), "d".into()],
            vec!["e".into()],
        ];
        let all = Tier::from_lists(lists, false, &conf, &mut rng);
        let mut kept: Vec<Vec<String>> = all.into_iter().map(|t| t.urls).collect();
        kept.iter_mut().for_each(|urls| urls.sort());
        assert_eq!(kept, [vec!["a"], vec!["b", "c"]]);
    }

    #[test]
    fn tiers_shuffle_within_and_promote_the_tracker_that_answered() {
        let mut all = tiers(false);
        assert_eq!(all.len(), 2);
        let mut sorted = all[0].urls.clone();
        sorted.sort();
        assert_eq!(sorted, ["a", "b", "c"]);
        let answered = all[0].urls[2].clone();
        let reply = AnnounceResponse::empty(Duration::from_secs(600));
        let conf = TrackerConf::default();
        all[0].on_success(2, Event::Started, 10, &reply, Instant::now(), &conf);
        assert_eq!(all[0].urls[0], answered);
        assert_eq!(all[0].urls.len(), 3);
    }

    #[test]
    fn events_started_completed_once_then_none() {
        let conf = TrackerConf::default();
        let reply = AnnounceResponse::empty(Duration::from_secs(600));
        let now = Instant::now();
        let mut tier = tiers(false).remove(0);
        assert_eq!(tier.event(false), Event::Started);
        assert_eq!(tier.next_announce(false, false, &conf), None);
        tier.on_success(0, Event::Started, 10, &reply, now, &conf);
        assert_eq!(tier.event(false), Event::None);
        assert_eq!(
            tier.next_announce(false, false, &conf),
            Some(now + Duration::from_secs(600))
        );
        // Completion is announced at once, then never again.
        assert_eq!(tier.event(true), Event::Completed);
        assert_eq!(tier.next_announce(true, false, &conf), None);
        tier.on_success(0, Event::Completed, 0, &reply, now, &conf);
        assert_eq!(tier.event(true), Event::None);

        // A seed never sends completed.
        let mut seed = tiers(true).remove(0);
        seed.on_success(0, Event::Started, 0, &reply, now, &conf);
        assert_eq!(seed.event(true), Event::None);
    }

    #[test]
    fn intervals_respect_the_tracker_and_our_floor() {
        let conf = TrackerConf::default();
        let now = Instant::now();
        let mut tier = tiers(false).remove(0);
        let mut reply = AnnounceResponse::empty(Duration::from_secs(1800));
        reply.min_interval = Some(Duration::from_secs(5));
        tier.on_success(0, Event::Started, 10, &reply, now, &conf);
        // Needing peers re-announces at the min interval, floored at ours (60 s).
        assert_eq!(
            tier.next_announce(false, true, &conf),
            Some(now + Duration::from_secs(60))
        );
        assert_eq!(
            tier.next_announce(false, false, &conf),
            Some(now + Duration::from_secs(1800))
        );
        reply.interval = Duration::from_secs(1);
        tier.on_success(0, Event::None, 10, &reply, now, &conf);
        assert_eq!(
            tier.next_announce(false, false, &conf),
            Some(now + Duration::from_secs(60))
        );
    }

    #[test]
    fn failing_tiers_back_off_exponentially_up_to_the_cap() {
        let conf = TrackerConf::default();
        let now = Instant::now();
        let mut tier = tiers(false).remove(0);
        let waits: Vec<u64> = (0..10)
            .map(|_| {
                tier.on_failure(now);
                (tier.next_announce(false, true, &conf).unwrap() - now).as_secs()
            })
            .collect();
        assert_eq!(waits, [15, 30, 60, 120, 240, 480, 960, 1800, 1800, 1800]);
        assert_eq!(tier.event(false), Event::Started);
    }
}
