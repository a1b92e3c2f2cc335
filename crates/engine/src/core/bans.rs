//! Who is banned from a torrent, and the strikes that lead there: a piece that fails its hash
//! with blocks from one peer alone is two strikes against it; `max_strikes` bans it.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use crate::peer_addr::BanKey;

/// Banned peers and strikes, by [`BanKey`] (a public IP, or an address and peer id where one
/// IP is many peers, as on loopback).
#[derive(Debug)]
pub(super) struct Bans {
    banned: HashSet<BanKey>,
    strikes: HashMap<BanKey, u32>,
    max_strikes: u32,
}

/// Strikes for a piece that failed with blocks from its culprit alone.
const STRIKES_PER_FAILURE: u32 = 2;

impl Bans {
    pub(super) fn new(max_strikes: u32) -> Self {
        Self {
            banned: HashSet::new(),
            strikes: HashMap::new(),
            max_strikes,
        }
    }

    pub(super) fn contains(&self, key: &BanKey) -> bool {
        self.banned.contains(key)
    }

    /// Whether connections from `ip` are refused outright (its key is the IP alone).
    pub(super) fn contains_ip(&self, ip: IpAddr) -> bool {
        BanKey::of_ip(ip).is_some_and(|key| self.banned.contains(&key))
    }

    /// Bans `key`; returns whether it was not banned before.
    pub(super) fn insert(&mut self, key: BanKey) -> bool {
        self.banned.insert(key)
    }

    /// Counts a failed piece against `culprit`; returns whether that earns a ban.
    pub(super) fn strike(&mut self, culprit: BanKey) -> bool {
        let strikes = self.strikes.entry(culprit).or_insert(0);
        *strikes += STRIKES_PER_FAILURE;
        *strikes >= self.max_strikes
    }

    pub(super) fn len(&self) -> usize {
        self.banned.len()
    }
}
