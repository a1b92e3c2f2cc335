//! Transfer rates and rate limits.

use std::time::{Duration, Instant};

/// A byte counter with a smoothed rate, updated once per tick.
#[derive(Debug, Clone, Default)]
pub(crate) struct RateMeter {
    total: u64,
    since_tick: u64,
    rate: f64,
}

impl RateMeter {
    /// Counts `bytes` transferred.
    pub(crate) fn add(&mut self, bytes: u64) {
        self.total += bytes;
        self.since_tick += bytes;
    }

    /// Uncounts `bytes` counted but never transferred after all.
    pub(crate) fn take_back(&mut self, bytes: u64) {
        self.total = self.total.saturating_sub(bytes);
        self.since_tick = self.since_tick.saturating_sub(bytes);
    }

    /// Folds the bytes since the last tick into the rate; `elapsed` is the tick's length.
    pub(crate) fn tick(&mut self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64().max(1e-3);
        let sample = self.since_tick as f64 / secs;
        // Half-life of about two ticks: responsive enough for request pipelining, smooth
        // enough for choking decisions.
        self.rate = if self.rate == 0.0 {
            sample
        } else {
            self.rate * 0.6 + sample * 0.4
        };
        self.since_tick = 0;
    }

    /// Bytes per second.
    pub(crate) fn rate(&self) -> u64 {
        self.rate as u64
    }

    /// Bytes in all.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }
}

/// A token bucket: `rate` bytes per second with a burst of a tenth of a second (at least 64 KiB).
/// A rate of 0 means unlimited.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate: u64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(rate: u64, now: Instant) -> Self {
        Self {
            rate,
            tokens: 0.0,
            last: now,
        }
    }

    /// Changes the rate (0 = unlimited).
    pub(crate) fn set_rate(&mut self, rate: u64) {
        self.rate = rate;
        self.tokens = self.tokens.min(self.burst());
    }

    /// Most bytes worth sending in one go: the burst, or everything when unlimited.
    pub(crate) fn batch_bytes(&self) -> Option<u64> {
        (self.rate > 0).then(|| self.burst() as u64)
    }

    fn burst(&self) -> f64 {
        (self.rate as f64 / 10.0).max(64.0 * 1024.0)
    }

    /// Takes `bytes` (going into debt if needed) and says how long to wait before the next use.
    pub(crate) fn consume(&mut self, bytes: u64, now: Instant) -> Duration {
        if self.rate == 0 {
            return Duration::ZERO;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate as f64).min(self.burst());
        self.tokens -= bytes as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate as f64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_follows_the_samples() {
        let mut meter = RateMeter::default();
        meter.add(1000);
        meter.tick(Duration::from_secs(1));
        assert_eq!(meter.rate(), 1000);
        for _ in 0..20 {
            meter.add(5000);
            meter.tick(Duration::from_secs(1));
        }
        assert!((4990..=5000).contains(&meter.rate()), "{}", meter.rate());
        assert_eq!(meter.total(), 101_000);
    }

    #[test]
    fn bucket_delays_by_the_debt() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(1_000_000, start);
        let wait = bucket.consume(1_100_000, start);
        assert_eq!(wait, Duration::from_millis(1100));
        // One second later the debt is down to 0.1 s.
        let wait = bucket.consume(0, start + Duration::from_secs(1));
        assert!((Duration::from_millis(99)..=Duration::from_millis(101)).contains(&wait));
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let mut bucket = TokenBucket::new(0, Instant::now());
        assert_eq!(bucket.consume(u64::MAX / 2, Instant::now()), Duration::ZERO);
    }
}
