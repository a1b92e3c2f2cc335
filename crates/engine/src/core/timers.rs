//! The torrent's clock: the periodic work (the tick, rechokes, optimistic unchokes, stats), when
//! each is next due, and which are due when the shell's timer fires.
//!
//! The tick folds transfer meters into rates and looks at each peer's own deadlines (request
//! and idle timeouts, keep-alives, stalled sends) and at addresses due a redial, so those are
//! met within one `tick_interval`; the choker and the stats keep their own deadlines, so their
//! intervals need not be multiples of the tick.

use std::time::{Duration, Instant};

use crate::conf::TorrentConf;

/// The shortest interval any timer runs at, so a zero setting cannot spin the shell's timer.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// When each kind of periodic work last ran.
#[derive(Debug)]
pub(super) struct Timers {
    tick: Instant,
    rechoke: Instant,
    optimistic: Instant,
    stats: Instant,
}

/// What is due now, from [`Timers::fire`].
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Due {
    /// The tick, with the time since the previous one.
    pub(super) tick: Option<Duration>,
    /// A rechoke; `rotate` says whether the optimistic unchoke moves too.
    pub(super) rechoke: bool,
    pub(super) rotate: bool,
    pub(super) stats: bool,
}

impl Timers {
    pub(super) fn new(now: Instant) -> Self {
        Self {
            tick: now,
            rechoke: now,
            optimistic: now,
            stats: now,
        }
    }

    /// The earliest deadline.
    pub(super) fn next(&self, conf: &TorrentConf) -> Instant {
        [
            self.tick + interval(conf.tick_interval),
            self.rechoke + interval(conf.rechoke_interval),
            self.optimistic + interval(conf.optimistic_unchoke_interval),
            self.stats + interval(conf.stats_interval),
        ]
        .into_iter()
        .min()
        .unwrap_or(self.tick)
    }

    /// Takes what is due at `now` and restarts those timers from `now`.
    pub(super) fn fire(&mut self, now: Instant, conf: &TorrentConf) -> Due {
        let due = |last: Instant, every: Duration| now >= last + interval(every);
        let mut fired = Due::default();
        if due(self.tick, conf.tick_interval) {
            fired.tick = Some(now.saturating_duration_since(self.tick));
            self.tick = now;
        }
        fired.rotate = due(self.optimistic, conf.optimistic_unchoke_interval);
        if fired.rotate {
            self.optimistic = now;
        }
        // A rotation rechokes too: the slot it frees goes by the same ranking.
        fired.rechoke = fired.rotate || due(self.rechoke, conf.rechoke_interval);
        if fired.rechoke {
            self.rechoke = now;
        }
        fired.stats = due(self.stats, conf.stats_interval);
        if fired.stats {
            self.stats = now;
        }
        fired
    }
}

fn interval(every: Duration) -> Duration {
    every.max(MIN_INTERVAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf() -> TorrentConf {
        TorrentConf {
            tick_interval: Duration::from_secs(1),
            rechoke_interval: Duration::from_millis(2500),
            optimistic_unchoke_interval: Duration::from_secs(30),
            stats_interval: Duration::from_secs(5),
            ..TorrentConf::default()
        }
    }

    #[test]
    fn each_timer_fires_at_its_own_deadline() {
        let conf = conf();
        let start = Instant::now();
        let mut timers = Timers::new(start);
        assert_eq!(timers.next(&conf), start + Duration::from_secs(1));
        let mut now = start;
        let mut rechokes = Vec::new();
        for _ in 0..12 {
            now = timers.next(&conf);
            let due = timers.fire(now, &conf);
            assert!(
                due.tick.is_some() || due.rechoke || due.stats,
                "woken for nothing"
            );
            if due.rechoke {
                rechokes.push(now - start);
            }
        }
        // Rechokes at 2.5 s steps, not rounded up to the next whole tick.
        assert_eq!(rechokes[..3], [2500, 5000, 7500].map(Duration::from_millis));
        // Ticks at 1..=10 s and rechokes at 2.5 s and 7.5 s between them: 12 wakeups.
        assert_eq!(now - start, Duration::from_secs(10));
    }

    #[test]
    fn a_rotation_rechokes_and_zero_intervals_cannot_spin() {
        let conf = TorrentConf {
            tick_interval: Duration::ZERO,
            optimistic_unchoke_interval: Duration::from_secs(1),
            ..conf()
        };
        let start = Instant::now();
        let mut timers = Timers::new(start);
        assert_eq!(timers.next(&conf), start + MIN_INTERVAL);
        let due = timers.fire(start + Duration::from_secs(1), &conf);
        assert!(due.rotate && due.rechoke);
        assert_eq!(due.tick, Some(Duration::from_secs(1)));
        assert!(timers.next(&conf) > start + Duration::from_secs(1));
    }
}
