//! RC4, the cipher MSE's payload travels under.
//!
//! Written here rather than taken from the `rc4` crate because it is the hot path of every
//! encrypted connection and the crate's generic stream-cipher plumbing costs a quarter of the
//! speed: the state is kept as 32-bit words (no partial-register merges on the loads and
//! stores the swap chains through) and the keystream is XORed eight bytes at a time. On the
//! development machine that is ~600 MB/s against the crate's ~460 (`cargo bench -p
//! cratetorrent-wire -- rc4`). The crate stays a dev-dependency as the tests' oracle.

/// An RC4 keystream generator.
#[derive(Clone)]
pub(crate) struct Rc4 {
    state: [u32; 256],
    i: usize,
    j: usize,
}

impl Rc4 {
    /// The key schedule. `key` must be 1 to 256 bytes (MSE's are 20 or 32).
    pub(crate) fn new(key: &[u8]) -> Self {
        debug_assert!((1..=256).contains(&key.len()));
        let mut state = [0u32; 256];
        for (index, word) in (0u32..).zip(state.iter_mut()) {
            *word = index;
        }
        let mut j = 0usize;
        for (i, key_byte) in (0..256).zip(key.iter().cycle()) {
            j = (j + state[i] as usize + usize::from(*key_byte)) & 0xff;
            state.swap(i, j);
        }
        Self { state, i: 0, j: 0 }
    }

    /// XORs the keystream into `data`, advancing it.
    pub(crate) fn apply(&mut self, data: &mut [u8]) {
        let mut chunks = data.chunks_exact_mut(8);
        for chunk in &mut chunks {
            let mut keystream = [0u8; 8];
            for byte in &mut keystream {
                *byte = self.next_byte();
            }
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let sealed = u64::from_ne_bytes(word) ^ u64::from_ne_bytes(keystream);
            chunk.copy_from_slice(&sealed.to_ne_bytes());
        }
        for byte in chunks.into_remainder() {
            *byte ^= self.next_byte();
        }
    }

    #[inline(always)]
    #[expect(
        clippy::cast_possible_truncation,
        reason = "the state's words are the bytes 0 to 255"
    )]
    fn next_byte(&mut self) -> u8 {
        // Every index is masked to 0..256, so no bounds check can fail (and the optimiser
        // drops them).
        self.i = (self.i + 1) & 0xff;
        let si = self.state[self.i];
        self.j = (self.j + si as usize) & 0xff;
        let sj = self.state[self.j];
        self.state[self.i] = sj;
        self.state[self.j] = si;
        self.state[((si + sj) & 0xff) as usize] as u8
    }
}

#[cfg(test)]
mod tests {
    use super::Rc4;
    use ::rc4::{KeyInit, StreamCipher};
    use proptest::prelude::*;

    fn keystream(key: &[u8], len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        Rc4::new(key).apply(&mut out);
        out
    }

    #[test]
    fn known_answers() {
        // The classic vectors, and RFC 6229's first 40-bit key.
        let mut text = *b"Plaintext";
        Rc4::new(b"Key").apply(&mut text);
        assert_eq!(text, [0xbb, 0xf3, 0x16, 0xe8, 0xd9, 0x40, 0xaf, 0x0a, 0xd3]);
        let mut text = *b"Attack at dawn";
        Rc4::new(b"Secret").apply(&mut text);
        assert_eq!(
            text,
            [
                0x45, 0xa0, 0x1f, 0x64, 0x5f, 0xc3, 0x5b, 0x38, 0x35, 0x52, 0x54, 0x4b, 0x9b, 0xf5
            ]
        );
        let stream = keystream(&[1, 2, 3, 4, 5], 16);
        assert_eq!(
            stream[..16],
            [
                0xb2, 0x39, 0x63, 0x05, 0xf0, 0x3d, 0xc0, 0x27, 0xcc, 0xc3, 0x52, 0x4a, 0x0a, 0x11,
                0x18, 0xa8
            ]
        );
    }

    proptest! {
        #[test]
        fn matches_the_rc4_crate_however_the_stream_is_split(
            key in proptest::collection::vec(any::<u8>(), 1..=256),
            data in proptest::collection::vec(any::<u8>(), 0..4096),
            cuts in proptest::collection::vec(0usize..4096, 0..8),
        ) {
            let mut want = data.clone();
            let mut oracle = ::rc4::Rc4::new_from_slice(&key)
                .map_err(|_| TestCaseError::fail("a key of 1 to 256 bytes"))?;
            oracle.apply_keystream(&mut want);
            let mut got = data.clone();
            let mut ours = Rc4::new(&key);
            let mut cuts = cuts.into_iter().map(|c| c.min(got.len())).collect::<Vec<_>>();
            cuts.push(0);
            cuts.push(got.len());
            cuts.sort_unstable();
            for pair in cuts.windows(2) {
                ours.apply(&mut got[pair[0]..pair[1]]);
            }
            prop_assert_eq!(got, want);
        }
    }
}
