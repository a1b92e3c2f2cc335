//! One direction of a link as a sans-IO model: a packet and the time go in, the time it comes
//! out (or a drop) comes back. Loss is decided first, then the packet waits for the link
//! (serialised at `rate` behind what is queued, tail-dropped past `queue` bytes), then travels
//! for `delay` ± `jitter`. Packets leave in the order they came, so jitter never reorders them
//! (TCP would read reordering as loss). Randomness comes from one seed, so a run replays.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How packets are lost on a link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    /// None.
    None,
    /// Each packet with this probability (0 to 1).
    Random(f64),
    /// Gilbert–Elliott bursts: from the good state a packet moves to the bad one with
    /// probability `enter`, and back with probability `leave`; packets are lost with
    /// probability `bad` in the bad state and never in the good one. The mean loss is
    /// `bad · enter / (enter + leave)`, in bursts of `1 / leave` packets on average.
    Burst {
        /// Good → bad, per packet.
        enter: f64,
        /// Bad → good, per packet.
        leave: f64,
        /// Loss probability in the bad state.
        bad: f64,
    },
}

/// One direction of a link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConf {
    /// One-way propagation delay.
    pub delay: Duration,
    /// Each packet's delay varies uniformly within ± this (never below zero, never reordering).
    pub jitter: Duration,
    /// Bytes per second of IP packets; 0 is unlimited (no queue either).
    pub rate: u64,
    /// Bytes waiting for the link at most; a packet that would pass it is dropped.
    pub queue: usize,
    /// Packet loss.
    pub loss: Loss,
}

impl Default for LinkConf {
    /// A perfect link: no delay, no limit, no loss.
    fn default() -> Self {
        Self {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            rate: 0,
            queue: 1 << 20,
            loss: Loss::None,
        }
    }
}

/// What a link did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It arrives at this instant.
    Deliver(Instant),
    /// Lost on the way.
    Lost,
    /// The queue was full.
    Dropped,
}

/// Counters of a link direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Packets delivered.
    pub delivered: u64,
    /// Bytes delivered.
    pub bytes: u64,
    /// Packets lost.
    pub lost: u64,
    /// Packets dropped at a full queue.
    pub dropped: u64,
}

/// The state of one direction of a link.
#[derive(Debug)]
pub struct Link {
    conf: LinkConf,
    rng: fastrand::Rng,
    /// When the link finishes sending what it has accepted.
    busy_until: Instant,
    /// When the last packet arrives (none may arrive before it).
    last_arrival: Instant,
    /// Accepted packets still waiting for or on the link: (when it leaves, its size).
    waiting: VecDeque<(Instant, usize)>,
    queued: usize,
    bad: bool,
    stats: LinkStats,
}

impl Link {
    /// An idle link at `now`, its randomness seeded with `seed`.
    pub fn new(conf: LinkConf, seed: u64, now: Instant) -> Self {
        Self {
            conf,
            rng: fastrand::Rng::with_seed(seed),
            busy_until: now,
            last_arrival: now,
            waiting: VecDeque::new(),
            queued: 0,
            bad: false,
            stats: LinkStats::default(),
        }
    }

    /// Its settings.
    pub fn conf(&self) -> &LinkConf {
        &self.conf
    }

    /// What it has done so far.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// A packet of `len` bytes enters the link at `now` (which must not go backwards).
    pub fn admit(&mut self, len: usize, now: Instant) -> Verdict {
        if self.lose() {
            self.stats.lost += 1;
            return Verdict::Lost;
        }
        let left = if self.conf.rate == 0 {
            now
        } else {
            while self.waiting.front().is_some_and(|&(at, _)| at <= now) {
                if let Some((_, size)) = self.waiting.pop_front() {
                    self.queued -= size;
                }
            }
            if self.queued + len > self.conf.queue {
                self.stats.dropped += 1;
                return Verdict::Dropped;
            }
            let start = self.busy_until.max(now);
            let sending = Duration::from_secs_f64(len as f64 / self.conf.rate as f64);
            self.busy_until = start + sending;
            self.waiting.push_back((self.busy_until, len));
            self.queued += len;
            self.busy_until
        };
        let arrival = (left + self.delay()).max(self.last_arrival);
        self.last_arrival = arrival;
        self.stats.delivered += 1;
        self.stats.bytes += len as u64;
        Verdict::Deliver(arrival)
    }

    fn delay(&mut self) -> Duration {
        let jitter = self.conf.jitter.as_secs_f64();
        if jitter == 0.0 {
            return self.conf.delay;
        }
        let shift = (self.rng.f64() * 2.0 - 1.0) * jitter;
        Duration::from_secs_f64((self.conf.delay.as_secs_f64() + shift).max(0.0))
    }

    fn lose(&mut self) -> bool {
        match self.conf.loss {
            Loss::None => false,
            Loss::Random(p) => self.rng.f64() < p,
            Loss::Burst { enter, leave, bad } => {
                let flip = if self.bad { leave } else { enter };
                if self.rng.f64() < flip {
                    self.bad = !self.bad;
                }
                self.bad && self.rng.f64() < bad
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn arrival(verdict: Verdict) -> Instant {
        match verdict {
            Verdict::Deliver(at) => at,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rate_delay_and_order() {
        let t0 = Instant::now();
        let conf = LinkConf {
            delay: Duration::from_millis(50),
            rate: 1_000_000,
            queue: 10_000,
            ..LinkConf::default()
        };
        let mut link = Link::new(conf, 1, t0);
        // 1,000 bytes at 1 MB/s take 1 ms on the wire, then 50 ms to arrive.
        assert_eq!(
            arrival(link.admit(1000, t0)),
            t0 + Duration::from_millis(51)
        );
        assert_eq!(
            arrival(link.admit(1000, t0)),
            t0 + Duration::from_millis(52)
        );
        // The queue holds 10,000 bytes: the next 8 fit, the 9th does not.
        for _ in 0..8 {
            arrival(link.admit(1000, t0));
        }
        assert_eq!(link.admit(1000, t0), Verdict::Dropped);
        // Once the link has sent them there is room again.
        let later = t0 + Duration::from_millis(20);
        assert_eq!(
            arrival(link.admit(1000, later)),
            later + Duration::from_millis(51)
        );
        assert_eq!(link.stats().dropped, 1);
    }

    #[test]
    fn a_second_of_traffic_at_the_link_rate() {
        let t0 = Instant::now();
        let conf = LinkConf {
            rate: 10_000_000,
            queue: 150_000,
            ..LinkConf::default()
        };
        let mut link = Link::new(conf, 1, t0);
        let mut now = t0;
        let mut last = t0;
        // Offered at twice the rate: half is dropped, the rest leaves at exactly the rate.
        for _ in 0..13_334 {
            if let Verdict::Deliver(at) = link.admit(1500, now) {
                last = at;
            }
            now += Duration::from_secs_f64(1500.0 / 20_000_000.0);
        }
        let stats = link.stats();
        let rate = stats.bytes as f64 / (last - t0).as_secs_f64();
        assert!((rate - 10e6).abs() < 0.01 * 10e6, "{rate}");
    }

    #[test]
    fn jitter_never_reorders_and_losses_match_their_rates() {
        let t0 = Instant::now();
        let conf = LinkConf {
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(10),
            loss: Loss::Random(0.01),
            ..LinkConf::default()
        };
        let mut link = Link::new(conf, 7, t0);
        let mut previous = t0;
        for i in 0..100_000u32 {
            let now = t0 + Duration::from_micros(u64::from(i) * 10);
            if let Verdict::Deliver(at) = link.admit(100, now) {
                assert!(at >= previous && at >= now + Duration::from_millis(10));
                assert!(at <= now + Duration::from_millis(30) || at == previous);
                previous = at;
            }
        }
        let lost = link.stats().lost as f64 / 100_000.0;
        assert!((lost - 0.01).abs() < 0.002, "{lost}");

        let burst = LinkConf {
            loss: Loss::Burst {
                enter: 0.002,
                leave: 0.2,
                bad: 1.0,
            },
            ..LinkConf::default()
        };
        let mut link = Link::new(burst, 7, t0);
        let (mut runs, mut in_run) = (0u32, false);
        for _ in 0..1_000_000 {
            let lost = link.admit(100, t0) == Verdict::Lost;
            if lost && !in_run {
                runs += 1;
            }
            in_run = lost;
        }
        let lost = link.stats().lost as f64;
        let mean = 0.002 / 0.202;
        assert!((lost / 1e6 - mean).abs() < 0.2 * mean, "{lost}");
        // Bursts of 1 / leave = 5 packets on average.
        let burst_len = lost / f64::from(runs);
        assert!((4.0..6.0).contains(&burst_len), "{burst_len}");
    }
}
