//! Which interested peers get an upload slot.
//!
//! While downloading, tit-for-tat: the peers that give us the most get the regular slots. While
//! seeding, by default in turn (libtorrent's `round_robin`, its default): a peer keeps its slot
//! until it has had its quota of pieces since it was unchoked, then the peers unchoked longest
//! ago come first, so a seed spreads its upload over the whole swarm instead of feeding the
//! same few peers; or, as libtorrent's `fastest_upload`, the peers we upload to fastest keep
//! theirs. In every case one more slot is optimistic: it rotates every `optimistic_unchoke_interval` (30 s)
//! among the interested peers that are choked, so newcomers get a chance to prove themselves.

use std::time::Instant;

use crate::conf::SeedChoking;

/// What the choker needs to know about one peer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate {
    pub(crate) key: usize,
    pub(crate) interested: bool,
    /// Bytes received from the peer in the last round.
    pub(crate) download_rate: u64,
    /// Bytes sent to the peer in the last round.
    pub(crate) upload_rate: u64,
    /// Unchoked, and not yet sent its quota since.
    pub(crate) in_quota: bool,
    /// When we last unchoked it.
    pub(crate) last_unchoke: Option<Instant>,
}

/// Whom the regular slots go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ranking {
    /// Those who give us the most (tit-for-tat).
    Downloading,
    /// Seeding.
    Seeding(SeedChoking),
}

/// Picks the peers to unchoke: `slots` regular ones plus the optimistic one (kept until
/// `rotate` if it is still interested and not promoted, else the choked interested peer
/// unchoked longest ago); with `slots == 0`, every interested peer.
pub(crate) fn rechoke(
    candidates: &[Candidate],
    slots: usize,
    ranking: Ranking,
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
    match ranking {
        Ranking::Downloading => interested.sort_by_key(|c| std::cmp::Reverse(c.download_rate)),
        Ranking::Seeding(SeedChoking::FastestUpload) => {
            interested.sort_by_key(|c| std::cmp::Reverse(c.upload_rate));
        }
        Ranking::Seeding(SeedChoking::RoundRobin) => {
            interested.sort_by_key(|c| (!c.in_quota, c.last_unchoke));
        }
    }
    let regular = slots.saturating_sub(1).max(1);
    let mut unchoked: Vec<usize> = interested.iter().take(regular).map(|c| c.key).collect();
    let rest: Vec<&Candidate> = interested.iter().skip(regular).copied().collect();
    let keep = optimistic.filter(|k| !rotate && rest.iter().any(|c| c.key == *k));
    // The turn goes to the peer that has waited longest since we last unchoked it (never
    // first), so every choked peer gets its share in turn; one that never gives back (a
    // free-rider) is not drawn again and again while others are promoted out of the slot.
    let optimistic = keep.or_else(|| rest.iter().min_by_key(|c| c.last_unchoke).map(|c| c.key));
    unchoked.extend(optimistic);
    (unchoked, optimistic)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FASTEST: Ranking = Ranking::Seeding(SeedChoking::FastestUpload);

    fn candidate(key: usize, interested: bool, down: u64, up: u64) -> Candidate {
        Candidate {
            key,
            interested,
            download_rate: down,
            upload_rate: up,
            in_quota: false,
            last_unchoke: None,
        }
    }

    #[test]
    fn downloading_unchokes_the_best_uploaders_plus_one() {
        let peers: Vec<_> = (0..6)
            .map(|k| candidate(k, k != 5, k as u64 * 100, 0))
            .collect();
        let mut rng = fastrand::Rng::with_seed(1);
        let (unchoked, optimistic) = rechoke(&peers, 3, Ranking::Downloading, None, true, &mut rng);
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
        let (unchoked, optimistic) = rechoke(&peers, 2, FASTEST, Some(0), false, &mut rng);
        assert_eq!(unchoked, vec![3, 0]);
        assert_eq!(optimistic, Some(0));
    }

    #[test]
    fn seeding_in_turn_keeps_peers_within_their_quota_then_rotates_to_the_longest_waiting() {
        let start = Instant::now();
        let at = |s: u64| Some(start + std::time::Duration::from_secs(s));
        let mut peers: Vec<_> = (0..6).map(|k| candidate(k, true, 0, 1000)).collect();
        // 0 and 1 are unchoked: 0 within its quota, 1 past it; 2 and 3 were unchoked long
        // ago, 4 never, 5 recently.
        peers[0].in_quota = true;
        peers[0].last_unchoke = at(50);
        peers[1].last_unchoke = at(40);
        peers[2].last_unchoke = at(10);
        peers[3].last_unchoke = at(5);
        peers[5].last_unchoke = at(45);
        let ranking = Ranking::Seeding(SeedChoking::RoundRobin);
        let mut rng = fastrand::Rng::with_seed(5);
        let (unchoked, _) = rechoke(&peers, 4, ranking, None, true, &mut rng);
        assert_eq!(
            &unchoked[..3],
            &[0, 4, 3],
            "in quota, never unchoked, longest ago"
        );
        assert!(
            [2, 1, 5].contains(&unchoked[3]),
            "the optimistic slot is among the rest"
        );
    }

    #[test]
    fn zero_slots_unchoke_every_interested_peer() {
        let peers: Vec<_> = (0..20).map(|k| candidate(k, k % 5 != 0, 0, 0)).collect();
        let mut rng = fastrand::Rng::with_seed(4);
        let (unchoked, optimistic) = rechoke(&peers, 0, FASTEST, None, true, &mut rng);
        assert_eq!(unchoked.len(), 16);
        assert!(unchoked.iter().all(|k| k % 5 != 0));
        assert_eq!(optimistic, None);
    }

    #[test]
    fn few_peers_are_all_unchoked() {
        let peers = [candidate(0, true, 0, 0), candidate(1, true, 0, 0)];
        let mut rng = fastrand::Rng::with_seed(3);
        let (mut unchoked, _) = rechoke(&peers, 8, Ranking::Downloading, None, true, &mut rng);
        unchoked.sort_unstable();
        assert_eq!(unchoked, vec![0, 1]);
    }
}
