//! LEDBAT congestion control (RFC 6817): the window grows while the queueing delay this flow
//! sees stays under the target (100 ms) and shrinks as it rises above it, so a uTP flow
//! yields to TCP on a shared bottleneck. Slow start until the delay nears the target or the
//! first loss (as libtorrent); above the target the window shrinks in proportion to the excess
//! (LEDBAT++), below it grows by libutp's 3,000 bytes a round trip or a sixteenth of the window
//! if more; losses halve the window once per round trip; a timeout starts over from one
//! packet.
//!
//! Delays are one-way: the peer reports, in each packet, its clock minus the timestamp of our
//! last packet it received. That includes the clocks' offset, so the queueing delay is a
//! sample minus the least sample of the last ten minutes (the base delay).

use std::time::{Duration, Instant};

/// Minutes of base-delay history (a minimum per minute).
const HISTORY: usize = 10;
/// Samples in the current-delay filter (their minimum, as RFC 6817 suggests).
const CURRENT: usize = 4;
/// The window never falls below this many packets but after a timeout.
const MIN_PACKETS: usize = 2;
/// Below this fraction of the target the path counts as quiet (see `on_ack`).
const QUIET: u64 = 5;
/// The first window, in packets (TCP's since RFC 6928).
const INITIAL_PACKETS: usize = 10;

/// `a` is before `b` on the wrapping microsecond clock.
fn earlier(a: u32, b: u32) -> bool {
    let ahead = b.wrapping_sub(a);
    ahead != 0 && ahead < 0x8000_0000
}

#[derive(Debug, Clone)]
pub(crate) struct Ledbat {
    window: usize,
    slow_start_threshold: usize,
    slow_start: bool,
    packet: usize,
    max_window: usize,
    target_us: u32,
    gain: usize,
    /// The least sample of each of the last minutes, newest last.
    base: [Option<u32>; HISTORY],
    minute_started: Option<Instant>,
    recent: [Option<u32>; CURRENT],
    next_recent: usize,
    last_cut: Option<Instant>,
    /// The window was cut by a loss or a timeout since the last slow start.
    cut: bool,
}

impl Ledbat {
    pub(crate) fn new(packet: usize, max_window: usize, target: Duration, gain: usize) -> Self {
        Self {
            window: packet * INITIAL_PACKETS,
            slow_start_threshold: max_window,
            slow_start: true,
            packet,
            max_window: max_window.max(packet * MIN_PACKETS),
            target_us: u32::try_from(target.as_micros()).unwrap_or(u32::MAX).max(1),
            gain,
            base: [None; HISTORY],
            minute_started: None,
            recent: [None; CURRENT],
            next_recent: 0,
            last_cut: None,
            cut: false,
        }
    }

    /// The bytes that may be in flight.
    pub(crate) fn window(&self) -> usize {
        self.window
    }

    /// A delay sample from the peer's `timestamp_diff` (0 means none).
    pub(crate) fn delay_sample(&mut self, sample: u32, now: Instant) {
        if sample == 0 {
            return;
        }
        let started = *self.minute_started.get_or_insert(now);
        if now.duration_since(started) >= Duration::from_secs(60) {
            self.base.rotate_left(1);
            self.base[HISTORY - 1] = None;
            self.minute_started = Some(now);
        }
        let newest = &mut self.base[HISTORY - 1];
        if newest.is_none_or(|least| earlier(sample, least)) {
            *newest = Some(sample);
        }
        self.recent[self.next_recent] = Some(sample);
        self.next_recent = (self.next_recent + 1) % CURRENT;
    }

    /// The queueing delay now, in microseconds, once there are samples.
    pub(crate) fn queueing_delay_us(&self) -> Option<u32> {
        let least = |samples: &mut dyn Iterator<Item = u32>| {
            samples.reduce(|a, b| if earlier(b, a) { b } else { a })
        };
        let base = least(&mut self.base.iter().flatten().copied())?;
        let current = least(&mut self.recent.iter().flatten().copied())?;
        let queued = current.wrapping_sub(base);
        // A sample below the base (the clocks drifted) counts as no queue.
        Some(if queued >= 0x8000_0000 { 0 } else { queued })
    }

    /// `acked` bytes were newly acknowledged; `in_flight` were outstanding before.
    pub(crate) fn on_ack(&mut self, acked: usize, in_flight: usize) {
        // Growth only when the window was used: an application-limited flow would otherwise
        // earn a window it never tested.
        let limited = in_flight + self.packet >= self.window;
        let Some(queued) = self.queueing_delay_us() else {
            if limited && self.slow_start {
                self.window = (self.window + acked).min(self.slow_start_threshold);
            }
            return;
        };
        // After a loss or a timeout (a competing flow filled the queue), a path with almost no
        // queue again has room: grow as in slow start (by the gain alone a window that fell to
        // two packets takes many round trips to refill the path). Not after LEDBAT's own
        // decrease, which would make it oscillate.
        if self.cut && !self.slow_start && u64::from(queued) * QUIET < u64::from(self.target_us) {
            self.cut = false;
            self.slow_start = true;
            self.slow_start_threshold = self.max_window;
        }
        if self.slow_start {
            if u64::from(queued) * 4 >= u64::from(self.target_us) * 3
                || self.window >= self.slow_start_threshold
            {
                self.slow_start = false;
            } else {
                if limited {
                    self.window = (self.window + acked).min(self.max_window);
                }
                return;
            }
        }
        let target = f64::from(self.target_us);
        let queued = f64::from(queued);
        let window = self.window as f64;
        let change = if queued <= target {
            if !limited {
                return;
            }
            // Up to the gain per round trip, or a sixteenth of the window on a path whose
            // product dwarfs the gain (3,000 bytes a round trip would take minutes to refill a
            // 100 ms, 10 MB/s path after a loss).
            let per_round_trip = (self.gain as f64).max(window / 16.0);
            per_round_trip * (target - queued) / target * acked as f64 / window
        } else {
            // Over the target: down by the fraction the queue exceeds it, at most half a window
            // a round trip (LEDBAT++'s multiplicative decrease; the additive one of RFC 6817
            // takes minutes to drain what slow start overshot).
            -(acked as f64) * ((queued - target) / target).min(0.5)
        };
        let floor = (self.packet * MIN_PACKETS) as f64;
        let window = (window + change).clamp(floor, self.max_window as f64);
        #[allow(
            clippy::cast_possible_truncation,
            reason = "clamped to the largest window"
        )]
        let window = window as usize;
        self.window = window;
    }

    /// A packet was lost (three later ones acknowledged): halve, once per round trip.
    pub(crate) fn on_loss(&mut self, now: Instant, rtt: Duration) {
        if self
            .last_cut
            .is_some_and(|cut| now.duration_since(cut) < rtt)
        {
            return;
        }
        self.last_cut = Some(now);
        self.cut = true;
        self.window = (self.window / 2).max(self.packet * MIN_PACKETS);
        self.slow_start_threshold = self.window;
        self.slow_start = false;
    }

    /// The retransmission timer fired: start over from one packet.
    pub(crate) fn on_timeout(&mut self) {
        self.slow_start_threshold = (self.window / 2).max(self.packet * MIN_PACKETS);
        self.window = self.packet;
        self.slow_start = true;
        self.cut = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACKET: usize = 1400;

    fn ledbat() -> Ledbat {
        Ledbat::new(PACKET, 4 << 20, Duration::from_millis(100), 3000)
    }

    #[test]
    fn slow_start_doubles_until_the_delay_nears_the_target() {
        let now = Instant::now();
        let mut cc = ledbat();
        // The clocks differ by a large offset; the first sample sets the base.
        cc.delay_sample(4_000_000_000, now);
        let start = cc.window();
        cc.on_ack(start, start);
        assert_eq!(cc.window(), start * 2);
        // An application-limited flow does not grow.
        cc.on_ack(PACKET, PACKET);
        assert_eq!(cc.window(), start * 2);
        // 80 ms of queue (past three quarters of the target): LEDBAT from now on.
        for _ in 0..CURRENT {
            cc.delay_sample(4_000_080_000, now);
        }
        assert_eq!(cc.queueing_delay_us(), Some(80_000));
        let before = cc.window();
        cc.on_ack(before, before);
        // A fifth of the target left: a fifth of the gain for a whole window acknowledged.
        assert_eq!(cc.window(), before + 600);
    }

    #[test]
    fn a_queue_over_the_target_shrinks_the_window_and_losses_halve_it_once_per_round_trip() {
        let now = Instant::now();
        let mut cc = ledbat();
        cc.delay_sample(1000, now);
        cc.on_ack(100_000, 100_000);
        let grown = cc.window();
        for _ in 0..CURRENT {
            cc.delay_sample(1000 + 200_000, now);
        }
        // Twice the target: half the window off for a window acknowledged, even when idle.
        cc.on_ack(grown / 2, 0);
        assert_eq!(cc.window(), grown - grown / 4);
        let grown = cc.window();
        let rtt = Duration::from_millis(50);
        cc.on_loss(now, rtt);
        assert_eq!(cc.window(), grown / 2);
        cc.on_loss(now + rtt / 2, rtt);
        assert_eq!(cc.window(), grown / 2);
        cc.on_timeout();
        assert_eq!(cc.window(), PACKET);
    }

    #[test]
    fn the_base_delay_forgets_minutes_past_its_history() {
        let mut now = Instant::now();
        let mut cc = ledbat();
        cc.delay_sample(5000, now);
        for _ in 0..HISTORY {
            now += Duration::from_secs(61);
            cc.delay_sample(9000, now);
        }
        assert_eq!(cc.queueing_delay_us(), Some(0));
        // Samples that wrap the clock still order.
        cc.delay_sample(u32::MAX - 10, now);
        cc.delay_sample(5, now);
        assert_eq!(cc.queueing_delay_us(), Some(0));
    }
}
