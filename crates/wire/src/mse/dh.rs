//! The Diffie-Hellman exchange of MSE: the 768-bit prime of the specification, generator 2,
//! 160-bit private keys (as libtorrent and Transmission use).

use num_bigint::BigUint;

use super::MseError;

/// Bytes of a public key and of the shared secret: the prime's size.
pub(super) const KEY_LEN: usize = 96;

/// The prime P, big-endian.
const PRIME: [u8; KEY_LEN] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xC9, 0x0F, 0xDA, 0xA2, 0x21, 0x68, 0xC2, 0x34,
    0xC4, 0xC6, 0x62, 0x8B, 0x80, 0xDC, 0x1C, 0xD1, 0x29, 0x02, 0x4E, 0x08, 0x8A, 0x67, 0xCC, 0x74,
    0x02, 0x0B, 0xBE, 0xA6, 0x3B, 0x13, 0x9B, 0x22, 0x51, 0x4A, 0x08, 0x79, 0x8E, 0x34, 0x04, 0xDD,
    0xEF, 0x95, 0x19, 0xB3, 0xCD, 0x3A, 0x43, 0x1B, 0x30, 0x2B, 0x0A, 0x6D, 0xF2, 0x5F, 0x14, 0x37,
    0x4F, 0xE1, 0x35, 0x6D, 0x6D, 0x51, 0xC2, 0x45, 0xE4, 0x85, 0xB5, 0x76, 0x62, 0x5E, 0x7E, 0xC6,
    0xF4, 0x4C, 0x42, 0xE9, 0xA6, 0x3A, 0x36, 0x21, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0x05, 0x63,
];

/// One side's key pair.
pub(super) struct KeyPair {
    private: BigUint,
    /// Our public key, padded to [`KEY_LEN`] bytes.
    pub(super) public: [u8; KEY_LEN],
}

impl KeyPair {
    /// A key pair from 20 random bytes.
    pub(super) fn new(random: &[u8; 20]) -> Self {
        let private = BigUint::from_bytes_be(random);
        let public = BigUint::from(2u32).modpow(&private, &prime());
        Self {
            private,
            public: padded(&public),
        }
    }

    /// The shared secret S from the peer's public key, padded to [`KEY_LEN`] bytes. Keys of
    /// 0, 1, P−1 or beyond P are refused: they would force a known secret.
    pub(super) fn shared_secret(&self, theirs: &[u8]) -> Result<[u8; KEY_LEN], MseError> {
        let prime = prime();
        let theirs = BigUint::from_bytes_be(theirs);
        let one = BigUint::from(1u32);
        if theirs <= one || theirs >= &prime - &one {
            return Err(MseError::InvalidKey);
        }
        Ok(padded(&theirs.modpow(&self.private, &prime)))
    }
}

fn prime() -> BigUint {
    BigUint::from_bytes_be(&PRIME)
}

/// `n` (< P) as exactly [`KEY_LEN`] big-endian bytes.
fn padded(n: &BigUint) -> [u8; KEY_LEN] {
    let bytes = n.to_bytes_be();
    let mut out = [0u8; KEY_LEN];
    let start = KEY_LEN.saturating_sub(bytes.len());
    out[start..].copy_from_slice(&bytes[bytes.len().saturating_sub(KEY_LEN)..]);
    out
}
