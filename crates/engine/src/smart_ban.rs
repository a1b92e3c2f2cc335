//! Smart bans, as libtorrent does them: when a piece that several peers sent fails its hash,
//! the hash of every block as it was received is kept with its sender; when the piece later
//! passes, the peers whose blocks differ from the good data are banned. Without it a peer that
//! sprays one bad block into pieces others are fetching makes them fail forever while the blame
//! is spread over everyone (and so lands on no one).
//!
//! The hashes come from the storage, which reads the piece back (`Action::HashBlocks`): once
//! right after the failure, before the piece is fetched again, and once after it passes.

use std::collections::HashMap;

use cratetorrent_metainfo::PieceIndex;

use crate::peer_addr::BanKey;

/// Blocks whose evidence is kept at once, over every recorded piece (about 2 MiB).
const MAX_RECORDED_BLOCKS: usize = 32 * 1024;

type Hash = [u8; 20];

#[derive(Debug)]
enum Record {
    /// The piece failed; the hashes of what was received are being read back.
    Failed { senders: Vec<Option<BanKey>> },
    /// The evidence: each block's sender and the hash of what it sent.
    Recorded { blocks: Vec<(Option<BanKey>, Hash)> },
    /// The piece passed; the good data's hashes are being read back.
    Verifying { blocks: Vec<(Option<BanKey>, Hash)> },
}

/// What a reply with block hashes leads to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The failed attempt is on record (or could not be read): the piece can be fetched again.
    Recorded,
    /// The good data is in: these senders sent something else.
    Culprits(Vec<BanKey>),
    /// Not a reply we were waiting for.
    Ignored,
}

#[derive(Debug, Default)]
pub(crate) struct SmartBans {
    pieces: HashMap<PieceIndex, Record>,
    blocks: usize,
}

impl SmartBans {
    /// A piece sent by several peers failed; returns whether to read its blocks' hashes back
    /// (false when it is already on record or the evidence budget is spent).
    pub(crate) fn on_failed(&mut self, piece: PieceIndex, senders: Vec<Option<BanKey>>) -> bool {
        if self.pieces.contains_key(&piece) || self.blocks + senders.len() > MAX_RECORDED_BLOCKS {
            return false;
        }
        self.blocks += senders.len();
        self.pieces.insert(piece, Record::Failed { senders });
        true
    }

    /// The piece passed; returns whether to read its blocks' hashes back to compare.
    pub(crate) fn on_verified(&mut self, piece: PieceIndex) -> bool {
        match self.pieces.remove(&piece) {
            Some(Record::Recorded { blocks }) => {
                self.pieces.insert(piece, Record::Verifying { blocks });
                true
            }
            Some(other) => {
                self.pieces.insert(piece, other);
                false
            }
            None => false,
        }
    }

    /// Block hashes read back for `piece` (`None` if the read failed).
    pub(crate) fn on_hashes(&mut self, piece: PieceIndex, hashes: Option<Vec<Hash>>) -> Outcome {
        let Some(record) = self.pieces.remove(&piece) else {
            return Outcome::Ignored;
        };
        match (record, hashes) {
            (Record::Failed { senders }, Some(hashes)) if hashes.len() == senders.len() => {
                let blocks = senders.into_iter().zip(hashes).collect();
                self.pieces.insert(piece, Record::Recorded { blocks });
                Outcome::Recorded
            }
            (Record::Failed { senders }, _) => {
                self.blocks -= senders.len();
                Outcome::Recorded
            }
            (Record::Verifying { blocks }, hashes) => {
                self.blocks -= blocks.len();
                let Some(good) = hashes.filter(|h| h.len() == blocks.len()) else {
                    return Outcome::Culprits(Vec::new());
                };
                let mut culprits = Vec::new();
                for ((sender, sent), good) in blocks.into_iter().zip(good) {
                    if let Some(sender) = sender
                        && sent != good
                        && !culprits.contains(&sender)
                    {
                        culprits.push(sender);
                    }
                }
                Outcome::Culprits(culprits)
            }
            (recorded @ Record::Recorded { .. }, _) => {
                self.pieces.insert(piece, recorded);
                Outcome::Ignored
            }
        }
    }

    /// Whether the piece's failed data is still being read back (it must not be fetched yet).
    #[cfg(test)]
    pub(crate) fn is_reading_back(&self, piece: PieceIndex) -> bool {
        matches!(self.pieces.get(&piece), Some(Record::Failed { .. }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cratetorrent_wire::PeerId;

    fn key(n: u8) -> BanKey {
        BanKey::Id(PeerId::new([n; 20]))
    }

    #[test]
    fn the_sender_of_the_differing_block_is_the_culprit() {
        let mut bans = SmartBans::default();
        let (honest, sprayer) = (Some(key(1)), Some(key(2)));
        assert!(bans.on_failed(7, vec![honest, honest, sprayer, None]));
        assert!(!bans.on_failed(7, vec![honest; 4]), "already on record");
        assert!(bans.is_reading_back(7));
        let failed = vec![[1; 20], [2; 20], [0xee; 20], [4; 20]];
        assert_eq!(bans.on_hashes(7, Some(failed)), Outcome::Recorded);
        assert!(!bans.is_reading_back(7));
        assert!(bans.on_verified(7));
        let good = vec![[1; 20], [2; 20], [3; 20], [5; 20]];
        assert_eq!(
            bans.on_hashes(7, Some(good)),
            Outcome::Culprits(vec![key(2)]),
            "a block nobody sent blames nobody"
        );
        assert_eq!(bans.blocks, 0);
        assert_eq!(bans.on_hashes(7, None), Outcome::Ignored);
    }

    #[test]
    fn evidence_is_bounded() {
        let mut bans = SmartBans::default();
        let senders = vec![Some(key(1)); MAX_RECORDED_BLOCKS / 2];
        assert!(bans.on_failed(1, senders.clone()));
        assert!(bans.on_failed(2, senders.clone()));
        assert!(!bans.on_failed(3, vec![Some(key(1))]));
        assert_eq!(bans.on_hashes(1, None), Outcome::Recorded, "unreadable");
        assert!(bans.on_failed(3, vec![Some(key(1))]));
    }
}
