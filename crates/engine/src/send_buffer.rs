//! Sizing a peer socket's send buffer to its path. The kernel's autotuning grows a send buffer
//! to what the congestion window needs, but only up to `net.ipv4.tcp_wmem`'s maximum (4 MiB,
//! under 3 MB in flight): short of a long, fast path's bandwidth-delay product (a 10 MB/s path
//! at 300 ms holds 3 MB). A connection that the kernel reports limited by its send buffer for
//! much of the time it was sending, on a path whose bandwidth-delay product nears what the
//! buffer holds and where no queue stands at the bottleneck (the smoothed round trip within a
//! quarter of the least), gets a fixed buffer: a quarter above autotuning's cap at first, then
//! sized to the bandwidth-delay product it measures, grown as its rate allows.
//! Not more, nor on every connection: a buffer-limited flow looks application-limited to BBR,
//! which then stays in its start-up and, with a buffer beyond what the path holds, overflows
//! the bottleneck's queue (measured: a fixed 5 MiB on every socket lost 7 % of the packets of
//! a 100 MB/s, 20 ms path that autotuning leaves unbound; 8 MiB at 300 ms and 10 MB/s reached
//! 0.81 of the link against 0.85 with autotuning).
//!
//! The same readings set how much written data the kernel may hold unsent
//! (`TCP_NOTSENT_LOWAT`): `Conf::unsent_limit` (256 KiB) while the path is clean or a queue
//! stands, four times that on a connection that lost packets with no queue standing. Random
//! loss empties the pipe at each recovery, and the kernel refills it faster from its own
//! buffer than from ours (20 ms, 100 MB/s, 1 % loss: 0.56 of the link with 256 KiB, 0.58 with
//! 512 KiB, 0.60 with 1 MiB); a queue's overflow, which also loses packets, shows a smoothed
//! round trip above the least, and there more unsent data would only deepen the queue (at no
//! loss 1 MiB reached 0.71 of the same link, 256 KiB 0.84).

use std::time::{Duration, Instant};

use crate::net::{Net, PeerStream, TcpInfo};

/// How often a busy connection's figures are read.
const EVERY: Duration = Duration::from_secs(1);
/// The first fixed size asked for (5 MiB as the kernel counts, a quarter above autotuning's
/// cap): the rate and round trip measured through the old limit under-estimate the path, and
/// BBR in its start-up keeps more in flight than the product. At 300 ms and 10 MB/s this is
/// the size that reached 0.90 of the link; 3 MiB reached 0.88, 4 MiB 0.81.
const FLOOR: usize = 5 << 19;

/// How many times `Conf::unsent_limit` a connection losing packets without a queue may hold.
const LOSSY_UNSENT: u32 = 4;

/// A connection's send-buffer sizing (one per peer, driven by its writer).
#[derive(Debug)]
pub(crate) struct SendBuffer {
    /// The most to ask for (`Conf::send_buffer`); 0 never sizes.
    max: usize,
    /// What was last asked for (0: autotuning).
    size: usize,
    /// `Conf::unsent_limit`, if set.
    unsent_base: Option<u32>,
    /// The unsent limit the socket has now.
    unsent: u32,
    next: Instant,
    last: Option<TcpInfo>,
}

impl SendBuffer {
    pub(crate) fn new(net: &Net, now: Instant) -> Self {
        Self {
            max: net.send_buffer.unwrap_or(0),
            size: 0,
            unsent_base: net.unsent_limit,
            unsent: net.unsent_limit.unwrap_or(0),
            next: now + EVERY,
            last: None,
        }
    }

    /// After a write: at most once per `EVERY`, reads the socket's figures, sets its unsent
    /// limit from the last interval's losses and queue, and grows its buffer when the interval
    /// shows it bound by it. A reading after a pause (no write for two intervals) only starts
    /// a new interval: retransmissions from before the pause say nothing of the path now.
    pub(crate) fn after_write(&mut self, stream: &PeerStream, now: Instant) {
        if (self.max == 0 && self.unsent_base.is_none()) || now < self.next {
            return;
        }
        let paused = now >= self.next + EVERY;
        self.next = now + EVERY;
        let Some(info) = stream.tcp_info() else {
            return;
        };
        let previous = self.last.replace(info).filter(|_| !paused);
        if let Some(unsent) = previous.and_then(|before| self.unsent_wanted(&before, &info)) {
            tracing::debug!(unsent, srtt_us = info.srtt_us, "unsent limit changed");
            self.unsent = unsent;
            stream.set_unsent_limit(unsent);
        }
        if self.max == 0 {
            return;
        }
        if let Some(size) = previous.and_then(|before| self.wanted(&before, &info)) {
            tracing::debug!(
                size,
                rate = info.delivery_rate,
                min_rtt_us = info.min_rtt_us,
                "send buffer sized to the path"
            );
            self.size = size;
            stream.set_send_buffer(size);
        }
    }

    /// The unsent limit to set, if the interval between `before` and `now` calls for another:
    /// the larger one after retransmissions with no queue standing, the base one with a queue.
    fn unsent_wanted(&self, before: &TcpInfo, now: &TcpInfo) -> Option<u32> {
        let base = self.unsent_base?;
        let queue = now.queue_stands();
        let lost = now.total_retrans > before.total_retrans;
        let wanted = if queue {
            base
        } else if lost {
            base.saturating_mul(LOSSY_UNSENT)
        } else {
            self.unsent
        };
        (wanted != self.unsent).then_some(wanted)
    }

    /// The buffer to ask for, if the interval between `before` and `now` calls for a larger one.
    fn wanted(&self, before: &TcpInfo, now: &TcpInfo) -> Option<usize> {
        let busy = now.busy_us.saturating_sub(before.busy_us);
        let limited = now
            .sndbuf_limited_us
            .saturating_sub(before.sndbuf_limited_us);
        // Bound by its buffer for at least a quarter of the time it had data to send.
        if busy == 0 || limited.saturating_mul(4) < busy {
            return None;
        }
        // A standing queue at the bottleneck (the smoothed round trip a quarter above the
        // least) means the path is already full: a larger buffer would only lengthen the queue
        // until it overflows. On a long path held back by its buffer there is none. Measured
        // at 20 ms and 100 MB/s: a buffer grown there lost 6 % of the packets (srtt 33 ms).
        if now.queue_stands() {
            return None;
        }
        // The rate and the round trip are both measured through the buffer's limit, so this
        // under-estimates the path's product until the larger buffer lets the rate grow.
        let product = now.delivery_rate.saturating_mul(u64::from(now.min_rtt_us)) / 1_000_000;
        // A path whose product the buffer already holds with room to spare is short: what
        // limits it is BBR's start-up keeping twice the product in flight, and a larger buffer
        // would only move that surplus into the bottleneck's queue (measured at 20 ms and
        // 100 MB/s). Grow only once the product reaches two thirds of what the buffer holds
        // in flight (itself about three quarters of the buffer, the rest bookkeeping).
        let in_flight = u64::try_from(now.send_buffer / 4 * 3).unwrap_or(u64::MAX);
        if product.saturating_mul(3) < in_flight.saturating_mul(2) {
            return None;
        }
        // The kernel doubles what is asked (its bookkeeping), so asking for the product lets
        // about twice that be in flight: the path's pipe and as much again queued at most;
        // a tenth less, as a queue of one product would just hold it.
        let product = usize::try_from(product / 10 * 9).unwrap_or(usize::MAX);
        let size = product.max(FLOOR).min(self.max);
        (size > self.size && size.saturating_mul(2) > now.send_buffer).then_some(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(busy_ms: u64, limited_ms: u64, rate: u64, rtt_ms: u32, buffer: usize) -> TcpInfo {
        TcpInfo {
            busy_us: busy_ms * 1000,
            sndbuf_limited_us: limited_ms * 1000,
            delivery_rate: rate,
            min_rtt_us: rtt_ms * 1000,
            srtt_us: rtt_ms * 1100,
            total_retrans: 0,
            send_buffer: buffer,
        }
    }

    fn sizing(max: usize, unsent: Option<u32>) -> SendBuffer {
        SendBuffer {
            max,
            size: 0,
            unsent_base: unsent,
            unsent: unsent.unwrap_or(0),
            next: Instant::now(),
            last: None,
        }
    }

    #[test]
    fn a_connection_losing_packets_with_no_queue_may_hold_more_unsent() {
        let mut sizer = sizing(0, Some(256 << 10));
        let start = info(0, 0, 0, 20, 4 << 20);
        // Clean: the base limit stays.
        let clean = info(1000, 0, 60_000_000, 20, 4 << 20);
        assert_eq!(sizer.unsent_wanted(&start, &clean), None);
        // Retransmissions, the round trip at its least: random loss, so four times as much.
        let lossy = TcpInfo {
            total_retrans: 400,
            ..clean
        };
        assert_eq!(sizer.unsent_wanted(&clean, &lossy), Some(1 << 20));
        sizer.unsent = 1 << 20;
        // A quiet second after that keeps it.
        assert_eq!(sizer.unsent_wanted(&lossy, &lossy), None);
        // Retransmissions behind a standing queue (33 ms against 20): an overflowing queue,
        // so back to the base.
        let overflow = TcpInfo {
            total_retrans: 800,
            srtt_us: 33_000,
            ..clean
        };
        assert_eq!(sizer.unsent_wanted(&lossy, &overflow), Some(256 << 10));
        // No limit configured: nothing to adapt.
        let none = sizing(0, None);
        assert_eq!(none.unsent_wanted(&clean, &lossy), None);
    }

    #[test]
    fn a_buffer_bound_long_path_gets_its_product_and_a_free_one_keeps_autotuning() {
        let sizer = sizing(4 << 20, None);
        let start = info(0, 0, 0, 0, 4 << 20);
        // 300 ms at 8.5 MB/s, limited 40 % of the time: the floor first (the product is
        // 2.55 MB, less a tenth); at 12 MB/s, 3.24 MB.
        let long = info(1000, 400, 8_500_000, 300, 4 << 20);
        assert_eq!(sizer.wanted(&start, &long), Some(FLOOR));
        let faster = info(1000, 400, 12_000_000, 300, 4 << 20);
        assert_eq!(sizer.wanted(&start, &faster), Some(3_240_000));
        // 20 ms at 85 MB/s, hardly limited: autotuning stays.
        let short = info(1000, 6, 85_000_000, 20, 4 << 20);
        assert_eq!(sizer.wanted(&start, &short), None);
        // Limited on a short path whose product (1.7 MB) the buffer holds: autotuning stays.
        let small = info(1000, 900, 85_000_000, 20, 4 << 20);
        assert_eq!(sizer.wanted(&start, &small), None);
        // Limited with a product near what the buffer holds (2.6 MB of 3.1 MB): the floor.
        let near = info(1000, 900, 130_000_000, 20, 4 << 20);
        assert_eq!(sizer.wanted(&start, &near), Some(FLOOR));
        // The same with a standing queue (33 ms against 20): the path is full.
        let queued = TcpInfo {
            srtt_us: 33_000,
            ..near
        };
        assert_eq!(sizer.wanted(&start, &queued), None);
        // Already at least that: nothing to do.
        let mut sized = sizing(4 << 20, None);
        sized.size = FLOOR;
        assert_eq!(sized.wanted(&start, &near), None);
        // 100 ms at 290 MB/s (29 MB in flight): capped at the most allowed.
        let fat = info(1000, 900, 290_000_000, 100, 4 << 20);
        assert_eq!(sizer.wanted(&start, &fat), Some(4 << 20));
    }
}
