//! A guard against query floods, as libtorrent's `dos_blocker`: an address that sends more than
//! `limit` messages in a 10-second window is ignored for five minutes. Only a few dozen
//! addresses are tracked at once, so the guard's memory and time per datagram stay constant.

use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The counting window.
const WINDOW: Duration = Duration::from_secs(10);
/// How long a flooding address is ignored.
pub(crate) const BLOCK_FOR: Duration = Duration::from_secs(5 * 60);
/// Addresses tracked at once.
const TRACKED: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Tracked {
    ip: IpAddr,
    count: u32,
    window_start: Instant,
    blocked_until: Option<Instant>,
}

pub(crate) struct DosGuard {
    tracked: Vec<Tracked>,
    limit: u32,
    blocked: u64,
}

impl DosGuard {
    /// `limit` messages per 10 s per address; 0 turns the guard off.
    pub(crate) fn new(limit: u32) -> Self {
        Self {
            tracked: Vec::with_capacity(TRACKED),
            limit,
            blocked: 0,
        }
    }

    /// Whether a message from `ip` may be handled.
    pub(crate) fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.limit == 0 {
            return true;
        }
        let index = match self.tracked.iter().position(|t| t.ip == ip) {
            Some(index) => index,
            None => {
                let fresh = Tracked {
                    ip,
                    count: 0,
                    window_start: now,
                    blocked_until: None,
                };
                if self.tracked.len() < TRACKED {
                    self.tracked.push(fresh);
                    self.tracked.len() - 1
                } else {
                    // The quietest unblocked address makes room; if every one is blocked, the
                    // one whose block ends first (the guard never stops counting).
                    let index = (0..self.tracked.len())
                        .filter(|&i| self.tracked[i].blocked_until.is_none_or(|t| t <= now))
                        .min_by_key(|&i| self.tracked[i].count)
                        .or_else(|| {
                            (0..self.tracked.len()).min_by_key(|&i| self.tracked[i].blocked_until)
                        })
                        .unwrap_or(0);
                    self.tracked[index] = fresh;
                    index
                }
            }
        };
        let entry = &mut self.tracked[index];
        if let Some(until) = entry.blocked_until {
            if now < until {
                self.blocked += 1;
                return false;
            }
            entry.blocked_until = None;
            entry.count = 0;
            entry.window_start = now;
        }
        if now.duration_since(entry.window_start) >= WINDOW {
            entry.count = 0;
            entry.window_start = now;
        }
        entry.count += 1;
        if entry.count > self.limit {
            entry.blocked_until = Some(now + BLOCK_FOR);
            self.blocked += 1;
            return false;
        }
        true
    }

    /// Messages dropped so far.
    pub(crate) fn blocked(&self) -> u64 {
        self.blocked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_blocked_for_five_minutes_and_others_pass() {
        let mut guard = DosGuard::new(50);
        let now = Instant::now();
        let flooder: IpAddr = [6, 6, 6, 6].into();
        let allowed = (0..1000).filter(|_| guard.allow(flooder, now)).count();
        assert_eq!(allowed, 50);
        assert!(guard.allow([1, 1, 1, 1].into(), now));
        assert!(!guard.allow(flooder, now + WINDOW));
        assert!(guard.allow(flooder, now + BLOCK_FOR));
        // Many addresses, each polite: none blocked, and the table stays small.
        for i in 0..10_000u32 {
            assert!(guard.allow(IpAddr::from(i.to_be_bytes()), now));
        }
        assert!(guard.tracked.len() <= TRACKED);
    }

    #[test]
    fn blocking_every_tracked_address_does_not_open_the_gate() {
        let mut guard = DosGuard::new(5);
        let now = Instant::now();
        for i in 0..64u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            while guard.allow(ip, now) {}
        }
        let newcomer: IpAddr = [9, 9, 9, 9].into();
        let allowed = (0..100).filter(|_| guard.allow(newcomer, now)).count();
        assert_eq!(allowed, 5);
    }
}
