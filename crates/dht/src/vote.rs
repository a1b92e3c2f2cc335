//! Our external address, elected from what others say they see (`ip` in DHT answers, `yourip`
//! in BEP 10 handshakes): each voter counts once per round, a round closes after 25 votes, and
//! an address is elected only by a majority of them (a few voters cannot move us).

use std::collections::HashSet;
use std::net::IpAddr;

/// Votes that close a round.
const VOTES_PER_ROUND: u32 = 25;
/// Distinct addresses counted in one round (more are ignored until the round closes).
const CANDIDATES: usize = 8;

#[derive(Debug, Default)]
pub(crate) struct IpVotes {
    votes: Vec<(IpAddr, u32)>,
    voters: HashSet<IpAddr>,
    total: u32,
    elected: Option<IpAddr>,
}

impl IpVotes {
    /// Counts `voter`'s word that we are at `ip`; returns the address when a round elects a new
    /// one.
    pub(crate) fn vote(&mut self, ip: IpAddr, voter: IpAddr) -> Option<IpAddr> {
        if ip.is_unspecified() || ip.is_multicast() || !self.voters.insert(voter) {
            return None;
        }
        match self
            .votes
            .iter()
            .position(|(candidate, _)| *candidate == ip)
        {
            Some(at) => self.votes[at].1 += 1,
            None if self.votes.len() < CANDIDATES => self.votes.push((ip, 1)),
            None => {}
        }
        self.total += 1;
        if self.total < VOTES_PER_ROUND {
            return None;
        }
        let total = self.total;
        let winner = self
            .votes
            .iter()
            .max_by_key(|(_, count)| *count)
            .filter(|(_, count)| count * 2 > total)
            .map(|(ip, _)| *ip);
        self.votes.clear();
        self.voters.clear();
        self.total = 0;
        if winner.is_some() && winner != self.elected {
            self.elected = winner;
            return winner;
        }
        None
    }

    pub(crate) fn elected(&self) -> Option<IpAddr> {
        self.elected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_of_distinct_voters_elects() {
        let mut votes = IpVotes::default();
        let ours: IpAddr = [1, 2, 3, 4].into();
        let lie: IpAddr = [6, 6, 6, 6].into();
        // One voter repeating itself counts once.
        for _ in 0..100 {
            assert_eq!(votes.vote(lie, [9, 9, 9, 9].into()), None);
        }
        let mut elected = None;
        for voter in 0..24u8 {
            elected = elected.or(votes.vote(ours, [10, 0, voter, 1].into()));
        }
        assert_eq!(elected, Some(ours));
        assert_eq!(votes.elected(), Some(ours));
        // The same result in the next round elects nothing new.
        for voter in 0..25u8 {
            assert_eq!(votes.vote(ours, [11, 0, voter, 1].into()), None);
        }
        // Without a majority, nobody is elected.
        for voter in 0..25u8 {
            let ip = [lie, [7, 7, 7, 7].into(), [8, 8, 8, 8].into()][usize::from(voter % 3)];
            assert_eq!(votes.vote(ip, [12, 0, voter, 1].into()), None);
        }
        assert_eq!(votes.elected(), Some(ours));
    }
}
