//! Which piece to start next: rarest first among the pieces a peer has, priorities first.
//!
//! Pickable pieces (wanted, not had, not being downloaded) sit in buckets keyed by
//! `(priority, availability)`, lowest key first. Every change is O(log buckets) and a pick
//! scans buckets in order from a random point inside each, so the cost does not grow with the
//! number of pieces as long as the peer has most of what we want. Peers that have every piece
//! are counted apart (`seeds`) instead of bumping every piece, which keeps a seed's arrival and
//! departure O(1).

use std::collections::BTreeMap;

use cratetorrent_metainfo::PieceIndex;
use cratetorrent_wire::Bitfield;

/// Highest piece priority; 0 means "do not download".
pub(crate) const MAX_PRIORITY: u8 = 7;
/// Priority of a piece nobody asked about.
pub(crate) const DEFAULT_PRIORITY: u8 = 4;

const NOT_PICKABLE: u32 = u32::MAX;
const AVAILABILITY_BITS: u32 = 24;
const AVAILABILITY_CAP: u32 = (1 << AVAILABILITY_BITS) - 1;

/// Rarest-first piece picker with priorities and a sequential mode.
#[derive(Debug)]
pub(crate) struct Picker {
    availability: Vec<u32>,
    priority: Vec<u8>,
    /// Piece is had or in progress: kept out of the buckets.
    taken: Bitfield,
    key: Vec<u32>,
    slot: Vec<u32>,
    buckets: BTreeMap<u32, Vec<PieceIndex>>,
    seeds: u32,
    /// Lowest piece that may still be pickable, for sequential mode.
    sequential_floor: PieceIndex,
}

impl Picker {
    /// A picker for `piece_count` pieces, of which `have` are already had.
    pub(crate) fn new(piece_count: u32, have: &Bitfield) -> Self {
        let n = piece_count as usize;
        let mut picker = Self {
            availability: vec![0; n],
            priority: vec![DEFAULT_PRIORITY; n],
            taken: have.clone(),
            key: vec![NOT_PICKABLE; n],
            slot: vec![0; n],
            buckets: BTreeMap::new(),
            seeds: 0,
            sequential_floor: 0,
        };
        for piece in 0..piece_count {
            picker.refresh(piece);
        }
        picker
    }

    /// Whether any piece can still be started.
    pub(crate) fn has_pickable(&self) -> bool {
        !self.buckets.is_empty()
    }

    /// Number of connected peers that have `piece`.
    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn availability(&self, piece: PieceIndex) -> u32 {
        self.availability
            .get(piece as usize)
            .map_or(0, |a| a + self.seeds)
    }

    /// Number of connected peers that have `piece`, seeds not counted.
    pub(crate) fn availability_without_seeds(&self, piece: PieceIndex) -> u32 {
        self.availability.get(piece as usize).copied().unwrap_or(0)
    }

    /// A peer announced `piece`.
    pub(crate) fn increment(&mut self, piece: PieceIndex) {
        if let Some(a) = self.availability.get_mut(piece as usize) {
            *a = a.saturating_add(1);
            self.refresh(piece);
        }
    }

    /// A peer that had `piece` left.
    pub(crate) fn decrement(&mut self, piece: PieceIndex) {
        if let Some(a) = self.availability.get_mut(piece as usize) {
            *a = a.saturating_sub(1);
            self.refresh(piece);
        }
    }

    /// Adds (or with `delta < 0` removes) every piece of `bitfield`.
    pub(crate) fn add_bitfield(&mut self, bitfield: &Bitfield, add: bool) {
        for piece in bitfield.iter_ones() {
            if add {
                self.increment(piece);
            } else {
                self.decrement(piece);
            }
        }
    }

    /// A peer with every piece joined (or left, `add == false`).
    pub(crate) fn seed(&mut self, add: bool) {
        if add {
            self.seeds += 1;
        } else {
            self.seeds = self.seeds.saturating_sub(1);
        }
    }

    /// Sets the priority of `piece` (0 = skip).
    pub(crate) fn set_priority(&mut self, piece: PieceIndex, priority: u8) {
        if let Some(p) = self.priority.get_mut(piece as usize) {
            *p = priority.min(MAX_PRIORITY);
            self.refresh(piece);
        }
    }

    /// The priority of `piece`.
    pub(crate) fn priority(&self, piece: PieceIndex) -> u8 {
        self.priority.get(piece as usize).copied().unwrap_or(0)
    }

    /// Takes `piece` out of the pickable set (we have it, or started it).
    pub(crate) fn take(&mut self, piece: PieceIndex) {
        if piece < self.taken.len() {
            self.taken.set(piece);
            self.refresh(piece);
        }
    }

    /// Puts `piece` back (its download was abandoned or failed its hash).
    pub(crate) fn restore(&mut self, piece: PieceIndex) {
        if piece < self.taken.len() {
            self.taken.clear(piece);
            self.sequential_floor = self.sequential_floor.min(piece);
            self.refresh(piece);
        }
    }

    /// Whether `piece` is wanted, not had and not in progress.
    pub(crate) fn is_pickable(&self, piece: PieceIndex) -> bool {
        self.key
            .get(piece as usize)
            .is_some_and(|&key| key != NOT_PICKABLE)
    }

    /// Rarest wanted piece that `has` says the peer has; ties are broken at random.
    pub(crate) fn pick_rarest(
        &self,
        has: impl Fn(PieceIndex) -> bool,
        rng: &mut fastrand::Rng,
    ) -> Option<PieceIndex> {
        for bucket in self.buckets.values() {
            let start = rng.usize(..bucket.len());
            let (tail, head) = bucket.split_at(start);
            if let Some(&piece) = head.iter().chain(tail).find(|&&p| has(p)) {
                return Some(piece);
            }
        }
        None
    }

    /// Where `piece` would stand in the pick order if it were pickable (lower goes first):
    /// priority, then availability. `None` for a piece not wanted.
    pub(crate) fn rank(&self, piece: PieceIndex) -> Option<u32> {
        let i = piece as usize;
        let priority = *self.priority.get(i)?;
        (priority != 0).then(|| rank_of(priority, self.availability[i]))
    }

    /// The rank of the first piece `pick_rarest` would consider for a peer with `has`.
    pub(crate) fn best_rank(&self, has: impl Fn(PieceIndex) -> bool) -> Option<u32> {
        self.buckets
            .iter()
            .find(|(_, bucket)| bucket.iter().any(|&p| has(p)))
            .map(|(&key, _)| key)
    }

    /// Lowest-index wanted piece that the peer has (sequential mode).
    pub(crate) fn pick_sequential(
        &mut self,
        has: impl Fn(PieceIndex) -> bool,
    ) -> Option<PieceIndex> {
        let n = self.key.len() as u32;
        while self.sequential_floor < n && self.taken.get(self.sequential_floor) {
            self.sequential_floor += 1;
        }
        (self.sequential_floor..n).find(|&p| self.key[p as usize] != NOT_PICKABLE && has(p))
    }

    fn wanted_key(&self, piece: PieceIndex) -> u32 {
        let i = piece as usize;
        let priority = self.priority[i];
        if priority == 0 || self.taken.get(piece) {
            return NOT_PICKABLE;
        }
        rank_of(priority, self.availability[i])
    }

    fn refresh(&mut self, piece: PieceIndex) {
        let i = piece as usize;
        let new = self.wanted_key(piece);
        let old = self.key[i];
        if new == old {
            return;
        }
        if old != NOT_PICKABLE {
            self.remove_from_bucket(piece, old);
        }
        if new != NOT_PICKABLE {
            let bucket = self.buckets.entry(new).or_default();
            self.slot[i] = bucket.len() as u32;
            bucket.push(piece);
        }
        self.key[i] = new;
    }

    fn remove_from_bucket(&mut self, piece: PieceIndex, key: u32) {
        let Some(bucket) = self.buckets.get_mut(&key) else {
            return;
        };
        let slot = self.slot[piece as usize] as usize;
        bucket.swap_remove(slot);
        if let Some(&moved) = bucket.get(slot) {
            self.slot[moved as usize] = slot as u32;
        }
        if bucket.is_empty() {
            self.buckets.remove(&key);
        }
    }
}

fn rank_of(priority: u8, availability: u32) -> u32 {
    (u32::from(MAX_PRIORITY - priority) << AVAILABILITY_BITS) | availability.min(AVAILABILITY_CAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng() -> fastrand::Rng {
        fastrand::Rng::with_seed(7)
    }

    #[test]
    fn picks_the_rarest_piece_the_peer_has() {
        let mut picker = Picker::new(4, &Bitfield::new(4));
        for piece in [0, 0, 1, 2, 2, 2, 3] {
            picker.increment(piece);
        }
        picker.decrement(0);
        picker.decrement(0);
        // Availability now 0:0, 1:1, 2:3, 3:1.
        assert_eq!(picker.pick_rarest(|_| true, &mut rng()), Some(0));
        assert_eq!(
            picker.pick_rarest(|p| p == 2 || p == 3, &mut rng()),
            Some(3)
        );
        assert_eq!(picker.pick_rarest(|p| p == 2, &mut rng()), Some(2));
    }

    #[test]
    fn taken_and_skipped_pieces_are_not_picked() {
        let mut have = Bitfield::new(3);
        have.set(0);
        let mut picker = Picker::new(3, &have);
        picker.set_priority(1, 0);
        assert_eq!(picker.pick_rarest(|_| true, &mut rng()), Some(2));
        picker.take(2);
        assert_eq!(picker.pick_rarest(|_| true, &mut rng()), None);
        assert!(!picker.has_pickable());
        picker.restore(2);
        assert_eq!(picker.pick_rarest(|_| true, &mut rng()), Some(2));
    }

    #[test]
    fn higher_priority_wins_over_rarity() {
        let mut picker = Picker::new(2, &Bitfield::new(2));
        picker.increment(1);
        picker.increment(1);
        picker.set_priority(1, MAX_PRIORITY);
        assert_eq!(picker.pick_rarest(|_| true, &mut rng()), Some(1));
    }

    #[test]
    fn ties_are_broken_at_random() {
        let picker = Picker::new(64, &Bitfield::new(64));
        let mut rng = rng();
        let picks: std::collections::HashSet<_> = (0..50)
            .filter_map(|_| picker.pick_rarest(|_| true, &mut rng))
            .collect();
        assert!(picks.len() > 10, "only {} distinct picks", picks.len());
    }

    #[test]
    fn ranks_compare_pieces_in_progress_with_the_rarest_pickable() {
        let mut picker = Picker::new(3, &Bitfield::new(3));
        picker.increment(1);
        picker.increment(2);
        picker.take(0);
        // Piece 0 is in progress and rarer than anything pickable; 1 and 2 tie.
        assert!(picker.rank(0) < picker.best_rank(|_| true));
        assert_eq!(picker.rank(1), picker.best_rank(|_| true));
        assert_eq!(picker.best_rank(|p| p == 0), None);
        picker.set_priority(2, 0);
        assert_eq!(picker.rank(2), None);
    }

    #[test]
    fn sequential_mode_picks_in_order() {
        let mut picker = Picker::new(5, &Bitfield::new(5));
        assert_eq!(picker.pick_sequential(|p| p != 0), Some(1));
        picker.take(0);
        picker.take(1);
        assert_eq!(picker.pick_sequential(|_| true), Some(2));
        picker.restore(0);
        assert_eq!(picker.pick_sequential(|_| true), Some(0));
    }

    #[test]
    fn seeds_count_for_every_piece() {
        let mut picker = Picker::new(3, &Bitfield::new(3));
        picker.seed(true);
        picker.increment(1);
        assert_eq!(picker.availability(0), 1);
        assert_eq!(picker.availability(1), 2);
        picker.seed(false);
        assert_eq!(picker.availability(0), 0);
    }

    #[test]
    fn a_million_pieces_pick_quickly() {
        let n = 1_000_000;
        let mut picker = Picker::new(n, &Bitfield::new(n));
        let mut rng = rng();
        let mut picked = 0;
        while picked < 10_000 {
            let piece = picker.pick_rarest(|_| true, &mut rng).expect("pickable");
            picker.take(piece);
            picked += 1;
        }
        assert!(picker.has_pickable());
    }
}
