//! Wake-ups on a shared grid: a deadline far enough off is rounded up to the next multiple of
//! [`GRID`] since the process's first use, so the once-a-second timers of a thousand torrents
//! wake the engine's thread together, twenty times a second at most, instead of a thousand
//! times one by one. Near deadlines (short intervals, tests) are kept exact.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The grid's step: the most a coalesced deadline is put off.
const GRID: Duration = Duration::from_millis(50);
/// Deadlines nearer than this are not moved.
const EXACT_WITHIN: Duration = Duration::from_millis(250);

/// `at`, put off to the next grid point if it is at least [`EXACT_WITHIN`] after `now`.
pub(crate) fn coalesced(at: Instant, now: Instant) -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    on_grid(at, now, *EPOCH.get_or_init(Instant::now))
}

fn on_grid(at: Instant, now: Instant, epoch: Instant) -> Instant {
    if at.saturating_duration_since(now) < EXACT_WITHIN {
        return at;
    }
    let step = GRID.as_nanos();
    let since = at.saturating_duration_since(epoch).as_nanos();
    let rounded = since.div_ceil(step).saturating_mul(step);
    match u64::try_from(rounded) {
        Ok(nanos) => epoch + Duration::from_nanos(nanos),
        Err(_) => at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn far_deadlines_meet_on_the_grid_and_near_ones_stay() {
        let epoch = Instant::now();
        let now = epoch + Duration::from_millis(3);
        // Two torrents' ticks a few milliseconds apart wake together, at most a step later.
        let a = on_grid(now + Duration::from_millis(1001), now, epoch);
        let b = on_grid(now + Duration::from_millis(1037), now, epoch);
        assert_eq!(a, b);
        assert_eq!(a, epoch + Duration::from_millis(1050));
        // On a grid point already: unchanged.
        let c = epoch + Duration::from_millis(1100);
        assert_eq!(on_grid(c, now, epoch), c);
        // Near: exact.
        let near = now + Duration::from_millis(100);
        assert_eq!(on_grid(near, now, epoch), near);
    }
}
