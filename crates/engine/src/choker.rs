//! Which interested peers get an upload slot.
//!
//! While downloading, tit-for-tat: the peers that give us the most get the regular slots. While
//! seeding, the peers we upload to fastest keep theirs (libtorrent's `fastest_upload`). In both
//! cases one more slot is optimistic: it rotates every [`OPTIMISTIC_ROTATION`] among the
//! interested peers that are choked, so newcomers get a chance to prove themselves.

use std::time::Duration;

/// How often the optimistic unchoke moves to another peer.
pub(crate) const OPTIMISTIC_ROTATION: Duration = Duration::from_secs(30);

/// What the choker needs to know about one peer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate {
    pub(crate) key: usize,
    pub(crate) interested: bool,
    /// Bytes per second received from the peer.
    pub(crate) download_rate: u64,
    /// Bytes per second sent to the peer.
    pub(crate) upload_rate: u64,
}

/// Picks the peers to unchoke: `slots` regular ones plus the optimistic one (kept if still
/// interested, else the next choked interested peer after it); with `slots == 0`, every
/// interested peer.
pub(crate) fn rechoke(
    candidates: &[Candidate],
    slots: usize,
    seeding: bool,
    optimistic: Option<usize>,
    rotate: bool,
    rng: &mut fastrand::Rng,
) -> (Vec<usize>, Option<usize>) {
    let mut interested: Vec<&Candidate> = candidates.iter().filter(|c| c.interested).collect();
    if slots == 0 {
        return (interested.iter().map(|c| c.key).collect(), None);
    }
    // Shuffle first so equal rates are ordered at random, then a stable sort by rate.
    rng.shuffle(&mut interested);
    if seeding {
        interested.sort_by_key(|c| std::cmp::Reverse(c.upload_rate));
    } else {
        interested.sort_by_key(|c| std::cmp::Reverse(c.download_rate));
    }
    let regular = slots.saturating_sub(1).max(1);
    let mut unchoked: Vec<usize> = interested.iter().take(regular).map(|c| c.key).collect();
    let rest: Vec<usize> = interested.iter().skip(regular).map(|c| c.key).collect();
    let keep = optimistic.filter(|k| !rotate && rest.contains(k));
    let optimistic = keep.or_else(|| {
        if rest.is_empty() {
            None
        } else {
            Some(rest[rng.usize(..rest.len())])
        }
    });
    unchoked.extend(optimistic);
    (unchoked, optimistic)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(key: usize, interested: bool, down: u64, up: u64) -> Candidate {
        Candidate {
            key,
            interested,
            download_rate: down,
            upload_rate: up,
        }
    }

    #[test]
    fn downloading_unchokes_the_best_uploaders_plus_one() {
        let peers: Vec<_> = (0..6)
            .map(|k| candidate(k, k != 5, k as u64 * 100, 0))
            .collect();
        let mut rng = fastrand::Rng::with_seed(1);
        let (unchoked, optimistic) = rechoke(&peers, 3, false, None, true, &mut rng);
        assert_eq!(&unchoked[..2], &[4, 3]);
        let optimistic = optimistic.expect("an optimistic slot");
        assert!([0, 1, 2].contains(&optimistic));
        assert_eq!(unchoked.len(), 3);
        assert!(!unchoked.contains(&5), "not interested");
    }

    #[test]
    fn seeding_ranks_by_upload_rate_and_keeps_the_optimistic_until_rotation() {
        let peers: Vec<_> = (0..4).map(|k| candidate(k, true, 0, k as u64)).collect();
        let mut rng = fastrand::Rng::with_seed(2);
        let (unchoked, optimistic) = rechoke(&peers, 2, true, Some(0), false, &mut rng);
        assert_eq!(unchoked, vec![3, 0]);
        assert_eq!(optimistic, Some(0));
    }

    #[test]
    fn zero_slots_unchoke_every_interested_peer() {
        let peers: Vec<_> = (0..20).map(|k| candidate(k, k % 5 != 0, 0, 0)).collect();
        let mut rng = fastrand::Rng::with_seed(4);
        let (unchoked, optimistic) = rechoke(&peers, 0, true, None, true, &mut rng);
        assert_eq!(unchoked.len(), 16);
        assert!(unchoked.iter().all(|k| k % 5 != 0));
        assert_eq!(optimistic, None);
    }

    #[test]
    fn few_peers_are_all_unchoked() {
        let peers = [candidate(0, true, 0, 0), candidate(1, true, 0, 0)];
        let mut rng = fastrand::Rng::with_seed(3);
        let (mut unchoked, _) = rechoke(&peers, 8, false, None, true, &mut rng);
        unchoked.sort_unstable();
        assert_eq!(unchoked, vec![0, 1]);
    }
}
