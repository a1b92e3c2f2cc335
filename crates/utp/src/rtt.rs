//! The retransmission timeout of RFC 6298 from round-trip samples (Karn: only packets sent
//! once give samples), with exponential back-off.

use std::time::Duration;

/// The shortest timeout (libtorrent's `utp_min_timeout`; RFC 6298 asks 1 s, but fast
/// retransmit covers most losses and uTP runs on paths TCP shares).
const MIN_RTO: Duration = Duration::from_millis(500);
/// The longest timeout.
const MAX_RTO: Duration = Duration::from_secs(60);
/// Before any sample (RFC 6298, 2.1).
const INITIAL_RTO: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub(crate) struct Rtt {
    smoothed: Option<Duration>,
    variance: Duration,
    /// Timeouts in a row since the last sample (each doubles the timeout).
    backoff: u32,
}

impl Rtt {
    pub(crate) fn new() -> Self {
        Self {
            smoothed: None,
            variance: Duration::ZERO,
            backoff: 0,
        }
    }

    pub(crate) fn sample(&mut self, rtt: Duration) {
        self.backoff = 0;
        match self.smoothed {
            None => {
                self.smoothed = Some(rtt);
                self.variance = rtt / 2;
            }
            Some(srtt) => {
                let error = srtt.abs_diff(rtt);
                self.variance = (self.variance * 3 + error) / 4;
                self.smoothed = Some((srtt * 7 + rtt) / 8);
            }
        }
    }

    /// Whether a round trip was measured.
    pub(crate) fn measured(&self) -> bool {
        self.smoothed.is_some()
    }

    /// The smoothed round trip (the initial timeout before any sample).
    pub(crate) fn smoothed(&self) -> Duration {
        self.smoothed.unwrap_or(INITIAL_RTO)
    }

    pub(crate) fn rto(&self) -> Duration {
        let base = match self.smoothed {
            None => INITIAL_RTO,
            Some(srtt) => (srtt + self.variance * 4).max(MIN_RTO),
        };
        base.saturating_mul(1 << self.backoff.min(7)).min(MAX_RTO)
    }

    /// A timeout fired: the next is twice as long.
    pub(crate) fn back_off(&mut self) {
        self.backoff = self.backoff.saturating_add(1);
    }

    /// Timeouts in a row.
    pub(crate) fn timeouts(&self) -> u32 {
        self.backoff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_follows_the_samples_within_its_bounds_and_backs_off() {
        let mut rtt = Rtt::new();
        assert_eq!(rtt.rto(), INITIAL_RTO);
        rtt.sample(Duration::from_millis(300));
        // 300 + 4 * 150.
        assert_eq!(rtt.rto(), Duration::from_millis(900));
        for _ in 0..50 {
            rtt.sample(Duration::from_millis(20));
        }
        assert_eq!(rtt.rto(), MIN_RTO);
        rtt.back_off();
        rtt.back_off();
        assert_eq!(rtt.rto(), MIN_RTO * 4);
        for _ in 0..20 {
            rtt.back_off();
        }
        assert_eq!(rtt.rto(), MAX_RTO);
        rtt.sample(Duration::from_millis(20));
        assert_eq!(rtt.timeouts(), 0);
    }
}
