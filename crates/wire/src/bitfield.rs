//! Which pieces a peer has: one bit per piece, high bit first (BEP 3).

use crate::WireError;

/// A compact set of pieces.
///
/// The number of set bits is kept alongside, so [`Bitfield::count_ones`] and
/// [`Bitfield::is_full`] are O(1): a peer's `have` stream never costs a scan of the whole set.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Bitfield {
    bytes: Vec<u8>,
    len: u32,
    ones: u32,
}

impl Bitfield {
    /// `len` pieces, none set.
    pub fn new(len: u32) -> Self {
        Self {
            bytes: vec![0; byte_len(len)],
            len,
            ones: 0,
        }
    }

    /// `len` pieces, all set (a seed).
    pub fn full(len: u32) -> Self {
        let mut bitfield = Self {
            bytes: vec![0xff; byte_len(len)],
            len,
            ones: len,
        };
        bitfield.clear_spare_bits();
        bitfield
    }

    /// Reads a `bitfield` message payload for a torrent of `len` pieces, checking its length and
    /// that the spare bits after the last piece are zero.
    pub fn from_payload(payload: &[u8], len: u32) -> Result<Self, WireError> {
        let expected = byte_len(len);
        if payload.len() != expected {
            return Err(WireError::BitfieldLength {
                expected,
                actual: payload.len(),
            });
        }
        let spare = spare_bits(len);
        if spare > 0 && payload[expected - 1] & ((1u8 << spare) - 1) != 0 {
            return Err(WireError::BitfieldSpareBits);
        }
        Ok(Self {
            bytes: payload.to_vec(),
            len,
            ones: count_bits(payload),
        })
    }

    /// The number of pieces this bitfield covers.
    pub const fn len(&self) -> u32 {
        self.len
    }

    /// Whether it covers no pieces.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `piece` is set (false when out of range).
    pub fn get(&self, piece: u32) -> bool {
        piece < self.len && self.bytes[(piece / 8) as usize] & (0x80 >> (piece % 8)) != 0
    }

    /// Sets `piece`; returns true only if it was in range and not set before, so a caller
    /// counting announcements (a peer's repeated `have`) counts each piece once.
    pub fn set(&mut self, piece: u32) -> bool {
        if piece >= self.len {
            return false;
        }
        let (byte, mask) = ((piece / 8) as usize, 0x80 >> (piece % 8));
        if self.bytes[byte] & mask != 0 {
            return false;
        }
        self.bytes[byte] |= mask;
        self.ones += 1;
        true
    }

    /// Clears `piece`; returns true only if it was in range and set before.
    pub fn clear(&mut self, piece: u32) -> bool {
        if piece >= self.len {
            return false;
        }
        let (byte, mask) = ((piece / 8) as usize, 0x80 >> (piece % 8));
        if self.bytes[byte] & mask == 0 {
            return false;
        }
        self.bytes[byte] &= !mask;
        self.ones -= 1;
        true
    }

    /// The number of pieces set, O(1).
    pub const fn count_ones(&self) -> u32 {
        self.ones
    }

    /// Whether every piece is set, O(1).
    pub const fn is_full(&self) -> bool {
        self.ones == self.len
    }

    /// The pieces that are set, in order.
    pub fn iter_ones(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.len).filter(|&piece| self.get(piece))
    }

    /// The pieces that are not set, in order.
    pub fn iter_zeros(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.len).filter(|&piece| !self.get(piece))
    }

    /// The payload of a `bitfield` message.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn clear_spare_bits(&mut self) {
        let spare = spare_bits(self.len);
        if let (Some(last), true) = (self.bytes.last_mut(), spare > 0) {
            *last &= !((1u8 << spare) - 1);
        }
    }
}

/// The number of set bits in `bytes`, a word at a time.
fn count_bits(bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(8);
    let mut count: u32 = chunks
        .by_ref()
        .map(|chunk| u64::from_ne_bytes(chunk.try_into().unwrap_or_default()).count_ones())
        .sum();
    count += chunks
        .remainder()
        .iter()
        .map(|b| b.count_ones())
        .sum::<u32>();
    count
}

/// Bits after the last piece in the last byte.
fn spare_bits(len: u32) -> u32 {
    (8 - len % 8) % 8
}

fn byte_len(len: u32) -> usize {
    len.div_ceil(8) as usize
}

impl std::fmt::Debug for Bitfield {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bitfield({}/{})", self.count_ones(), self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_count_iterate() {
        let mut bits = Bitfield::new(13);
        assert_eq!(bits.as_bytes(), [0, 0]);
        assert!(bits.set(0) && bits.set(9) && bits.set(12));
        assert!(!bits.set(13));
        assert_eq!(bits.as_bytes(), [0x80, 0x48]);
        assert_eq!(bits.count_ones(), 3);
        assert_eq!(bits.iter_ones().collect::<Vec<_>>(), [0, 9, 12]);
        assert_eq!(bits.iter_zeros().count(), 10);
        assert!(!bits.set(9), "already set: not new");
        assert_eq!(bits.count_ones(), 3, "a repeated set counts once");
        assert!(bits.clear(9) && !bits.get(9) && !bits.get(100));
        assert!(!bits.clear(9), "already clear");
        assert_eq!(bits.count_ones(), 2);
        let full = Bitfield::full(13);
        assert_eq!(full.as_bytes(), [0xff, 0xf8]);
        assert!(full.is_full());
        assert_eq!(Bitfield::full(64 + 3).count_ones(), 67);
    }

    #[test]
    fn payload_validation() {
        assert_eq!(
            Bitfield::from_payload(&[0xff, 0xf8], 13).unwrap(),
            Bitfield::full(13)
        );
        assert_eq!(
            Bitfield::from_payload(&[0xff, 0xfc], 13),
            Err(WireError::BitfieldSpareBits)
        );
        assert_eq!(
            Bitfield::from_payload(&[0xff], 13),
            Err(WireError::BitfieldLength {
                expected: 2,
                actual: 1
            })
        );
        assert!(Bitfield::from_payload(&[0xff], 8).is_ok());
        let bits = Bitfield::from_payload(&[0xff; 9], 72).unwrap();
        assert_eq!((bits.count_ones(), bits.is_full()), (72, true));
    }
}
