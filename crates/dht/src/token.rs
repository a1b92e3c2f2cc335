//! Announce tokens: a hash of the querier's IP and the info-hash under a secret that rotates
//! every five minutes; tokens under the current or the previous secret are accepted, so a token
//! lives 5 to 10 minutes (as libtorrent's).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};

use crate::id::NodeId;

/// How often the secret changes.
pub(crate) const ROTATE_EVERY: Duration = Duration::from_secs(5 * 60);
/// Bytes in a token we hand out.
const TOKEN_LEN: usize = 8;

pub(crate) struct Tokens {
    current: [u8; 16],
    previous: [u8; 16],
    rotated: Instant,
}

impl Tokens {
    pub(crate) fn new(rng: &mut fastrand::Rng, now: Instant) -> Self {
        let current = std::array::from_fn(|_| rng.u8(..));
        Self {
            current,
            previous: current,
            rotated: now,
        }
    }

    /// When the secret next changes.
    pub(crate) fn deadline(&self) -> Instant {
        self.rotated + ROTATE_EVERY
    }

    pub(crate) fn rotate_if_due(&mut self, now: Instant, rng: &mut fastrand::Rng) {
        if now >= self.deadline() {
            self.previous = self.current;
            self.current = std::array::from_fn(|_| rng.u8(..));
            self.rotated = now;
        }
    }

    pub(crate) fn token(&self, ip: IpAddr, info_hash: &NodeId) -> [u8; TOKEN_LEN] {
        Self::hash(&self.current, ip, info_hash)
    }

    pub(crate) fn is_valid(&self, token: &[u8], ip: IpAddr, info_hash: &NodeId) -> bool {
        token == Self::hash(&self.current, ip, info_hash)
            || token == Self::hash(&self.previous, ip, info_hash)
    }

    fn hash(secret: &[u8; 16], ip: IpAddr, info_hash: &NodeId) -> [u8; TOKEN_LEN] {
        let mut hasher = Sha1::new();
        hasher.update(secret);
        match ip {
            IpAddr::V4(ip) => hasher.update(ip.octets()),
            IpAddr::V6(ip) => hasher.update(ip.octets()),
        }
        hasher.update(info_hash.0);
        let digest = hasher.finalize();
        let mut out = [0; TOKEN_LEN];
        out.copy_from_slice(&digest[..TOKEN_LEN]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_live_for_one_rotation_and_are_bound_to_ip_and_torrent() {
        let mut rng = fastrand::Rng::with_seed(1);
        let start = Instant::now();
        let mut tokens = Tokens::new(&mut rng, start);
        let ip: IpAddr = [1, 2, 3, 4].into();
        let ih = NodeId([7; 20]);
        let token = tokens.token(ip, &ih);
        assert!(tokens.is_valid(&token, ip, &ih));
        assert!(!tokens.is_valid(&token, [1, 2, 3, 5].into(), &ih));
        assert!(!tokens.is_valid(&token, ip, &NodeId([8; 20])));
        assert!(!tokens.is_valid(&token[..4], ip, &ih));
        tokens.rotate_if_due(start + ROTATE_EVERY / 2, &mut rng);
        assert_eq!(tokens.token(ip, &ih), token, "not rotated before its time");
        tokens.rotate_if_due(start + ROTATE_EVERY, &mut rng);
        assert!(
            tokens.is_valid(&token, ip, &ih),
            "the previous secret still counts"
        );
        tokens.rotate_if_due(start + ROTATE_EVERY * 2, &mut rng);
        assert!(
            !tokens.is_valid(&token, ip, &ih),
            "two rotations later it is gone"
        );
    }
}
