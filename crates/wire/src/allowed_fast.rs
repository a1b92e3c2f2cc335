//! BEP 6 allowed-fast set generation: which pieces a peer may request from us while choked.

use std::net::IpAddr;

use cratetorrent_metainfo::{InfoHash, PieceIndex};
use sha1::{Digest, Sha1};

/// SHA-1 rounds tried before giving up on filling the set (each yields five candidates): only a
/// torrent with barely more pieces than `k` needs more than a few.
const MAX_ROUNDS: usize = 1_000;

/// The first `k` distinct pieces (of `piece_count`) that BEP 6's generator gives a peer at
/// `ip` for this torrent: the same `ip` and `info_hash` always give the same set, so a peer
/// cannot widen its set by reconnecting. IPv4 addresses are taken as their /24, as the BEP
/// says; IPv6 addresses whole (as libtorrent does). A torrent with no more than `k` pieces
/// gets all of them.
///
/// ```
/// use cratetorrent_wire::{InfoHash, allowed_fast_set};
///
/// // The example from BEP 6.
/// let set = allowed_fast_set("80.4.4.200".parse()?, &InfoHash::new([0xaa; 20]), 1313, 7);
/// assert_eq!(set, [1059, 431, 808, 1217, 287, 376, 1188]);
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
pub fn allowed_fast_set(
    ip: IpAddr,
    info_hash: &InfoHash,
    piece_count: u32,
    k: usize,
) -> Vec<PieceIndex> {
    if piece_count as usize <= k {
        return (0..piece_count).collect();
    }
    let mut x = Vec::with_capacity(36);
    match ip.to_canonical() {
        IpAddr::V4(v4) => x.extend_from_slice(&(u32::from(v4) & 0xffff_ff00).to_be_bytes()),
        IpAddr::V6(v6) => x.extend_from_slice(&v6.octets()),
    }
    x.extend_from_slice(info_hash.as_bytes());
    let mut set = Vec::with_capacity(k);
    let mut hash: [u8; 20] = Sha1::digest(&x).into();
    for _ in 0..MAX_ROUNDS {
        for word in hash.chunks_exact(4) {
            if set.len() == k {
                return set;
            }
            let y = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
            let piece = y % piece_count;
            if !set.contains(&piece) {
                set.push(piece);
            }
        }
        hash = Sha1::digest(hash).into();
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bep_example(k: usize) -> Vec<PieceIndex> {
        let ip = "80.4.4.200".parse().expect("ip");
        allowed_fast_set(ip, &InfoHash::new([0xaa; 20]), 1313, k)
    }

    #[test]
    fn matches_the_bep_example() {
        assert_eq!(bep_example(7), [1059, 431, 808, 1217, 287, 376, 1188]);
        assert_eq!(
            bep_example(9),
            [1059, 431, 808, 1217, 287, 376, 1188, 353, 508]
        );
    }

    #[test]
    fn the_last_octet_does_not_change_the_set() {
        let hash = InfoHash::new([0xaa; 20]);
        let a = allowed_fast_set("80.4.4.1".parse().expect("ip"), &hash, 1313, 7);
        assert_eq!(a, bep_example(7));
        let mapped = allowed_fast_set("::ffff:80.4.4.9".parse().expect("ip"), &hash, 1313, 7);
        assert_eq!(mapped, a);
        let other = allowed_fast_set("80.4.5.200".parse().expect("ip"), &hash, 1313, 7);
        assert_ne!(other, a);
    }

    #[test]
    fn small_torrents_and_tight_sets_end() {
        let hash = InfoHash::new([1; 20]);
        let ip = "::1".parse().expect("ip");
        assert_eq!(allowed_fast_set(ip, &hash, 3, 5), [0, 1, 2]);
        assert!(allowed_fast_set(ip, &hash, 0, 5).is_empty());
        let tight = allowed_fast_set(ip, &hash, 6, 5);
        assert_eq!(tight.len(), 5);
        assert!(tight.iter().all(|&p| p < 6));
        let mut distinct = tight.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 5);
    }
}
