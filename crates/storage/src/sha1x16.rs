//! SHA-1 over sixteen independent messages at once, one per 32-bit lane of AVX-512 registers.
//!
//! A single SHA-1 stream is a serial chain, and on the x86 machines this project benchmarks on,
//! the SHA-NI instructions run it at about 1.1–1.3 GB/s per core: the largest share of a
//! leecher's CPU. Pieces are independent messages, so sixteen of them can advance in lockstep:
//! each round is a handful of AVX-512 instructions (`vpternlogd` computes each round function and
//! the three-way XOR of the message schedule in one instruction, `vprold` rotates) acting on all
//! sixteen lanes, about 2.5–3× the throughput of SHA-NI when every lane is busy (see the
//! storage criterion bench). [`crate::hasher`] decides when enough pieces are waiting to fill
//! the lanes and falls back to the scalar (SHA-NI) path otherwise.
//!
//! The module is `unsafe` only in the usual ways of SIMD code: calling a `target_feature`
//! function after checking the CPU supports it, and unaligned vector loads and stores from
//! slices whose lengths are checked first.

#![allow(unsafe_code)]

/// Messages hashed at once.
pub(crate) const LANES: usize = 16;

/// SHA-1 state words per message.
pub(crate) type State = [u32; 5];

/// The state before any input.
pub(crate) const INIT: State = [
    0x6745_2301,
    0xEFCD_AB89,
    0x98BA_DCFE,
    0x1032_5476,
    0xC3D2_E1F0,
];

/// The digest of a message whose whole 64-byte blocks are in `state` and whose last
/// `tail.len()` (< 64) bytes are `tail`, `total` bytes in all: pads, compresses (scalar, SHA-NI
/// where available) and writes the state out big-endian.
pub(crate) fn digest(mut state: State, tail: &[u8], total: u64) -> [u8; 20] {
    let mut last = [0u8; 128];
    let tail = &tail[..tail.len().min(63)];
    last[..tail.len()].copy_from_slice(tail);
    last[tail.len()] = 0x80;
    let blocks = if tail.len() < 56 { 1 } else { 2 };
    last[blocks * 64 - 8..blocks * 64].copy_from_slice(&total.wrapping_mul(8).to_be_bytes());
    sha1::block_api::compress(&mut state, last[..blocks * 64].as_chunks::<64>().0);
    let mut digest = [0u8; 20];
    for (bytes, word) in digest.chunks_exact_mut(4).zip(state) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
    digest
}

/// Whether this CPU can run [`compress`].
pub(crate) fn supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Runs the SHA-1 compression function of each lane's state over that lane's blocks. Every lane
/// must hold the same number of bytes, a multiple of 64; returns false (and does nothing) if they
/// do not or the CPU lacks AVX-512 ([`supported`]).
pub(crate) fn compress(states: &mut [State; LANES], lanes: &[&[u8]; LANES]) -> bool {
    let len = lanes[0].len();
    if !len.is_multiple_of(64) || lanes.iter().any(|lane| lane.len() != len) || !supported() {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the CPU supports AVX-512F and AVX-512BW (checked above), and every lane holds
        // `len` bytes, a multiple of 64, so each 64-byte load in `kernel` is in bounds.
        unsafe { kernel::compress(states, lanes, len / 64) };
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// [`compress`] where it applies; otherwise each lane through the scalar compression (SHA-NI
/// where available), over its whole 64-byte blocks.
pub(crate) fn compress_lanes(states: &mut [State; LANES], lanes: &[&[u8]; LANES]) {
    if !compress(states, lanes) {
        for (state, lane) in states.iter_mut().zip(lanes) {
            sha1::block_api::compress(state, lane.as_chunks::<64>().0);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod kernel {
    use std::arch::x86_64::{
        __m512i, _mm512_add_epi32, _mm512_loadu_si512, _mm512_permutex2var_epi32, _mm512_rol_epi32,
        _mm512_set1_epi32, _mm512_set4_epi32, _mm512_setzero_si512, _mm512_shuffle_epi8,
        _mm512_storeu_si512, _mm512_ternarylogic_epi32, _mm512_xor_si512,
    };

    use super::{LANES, State};

    /// One step of a 16×16 transpose of 32-bit words: swaps bit `K` of the row index with bit
    /// `K` of the column index. Four steps (K = 0..4) turn sixteen rows of one lane's message
    /// words each into sixteen words of all lanes each.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn transpose_step<const K: u32>(rows: &mut [__m512i; 16]) {
        let bit = 1u32 << K;
        let mut low = [0i32; 16];
        let mut high = [0i32; 16];
        for column in 0..16u32 {
            // Indices 0..16 pick from the first register of a pair, 16..32 from the second.
            let (l, h) = if column & bit == 0 {
                (column, column ^ bit)
            } else {
                (16 + (column ^ bit), 16 + column)
            };
            low[column as usize] = l as i32;
            high[column as usize] = h as i32;
        }
        // SAFETY: loads of 64 bytes from 16-element i32 arrays.
        let (low, high) = unsafe {
            (
                _mm512_loadu_si512(low.as_ptr().cast()),
                _mm512_loadu_si512(high.as_ptr().cast()),
            )
        };
        for a in 0..16usize {
            if a as u32 & bit != 0 {
                continue;
            }
            let b = a | bit as usize;
            let (ra, rb) = (rows[a], rows[b]);
            rows[a] = _mm512_permutex2var_epi32(ra, low, rb);
            rows[b] = _mm512_permutex2var_epi32(ra, high, rb);
        }
    }

    /// # Safety
    /// The CPU must support AVX-512F and AVX-512BW, and every lane must hold at least
    /// `blocks * 64` bytes.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn compress(
        states: &mut [State; LANES],
        lanes: &[&[u8]; LANES],
        blocks: usize,
    ) {
        // Lane-major state: word i of every lane in one register.
        let mut words = [[0u32; LANES]; 5];
        for (lane, state) in states.iter().enumerate() {
            for (word, value) in state.iter().enumerate() {
                words[word][lane] = *value;
            }
        }
        // SAFETY: 64-byte loads from 16-element u32 arrays.
        let mut s = words.map(|w| unsafe { _mm512_loadu_si512(w.as_ptr().cast()) });
        // Big-endian message words: reverse the bytes of each 32-bit word.
        let bswap = _mm512_set4_epi32(0x0c0d_0e0f, 0x0809_0a0b, 0x0405_0607, 0x0001_0203);
        for block in 0..blocks {
            let mut w = [_mm512_setzero_si512(); 16];
            for (row, lane) in w.iter_mut().zip(lanes) {
                // SAFETY: the caller guarantees `blocks * 64` bytes in every lane.
                *row = unsafe { _mm512_loadu_si512(lane.as_ptr().add(64 * block).cast()) };
            }
            transpose_step::<0>(&mut w);
            transpose_step::<1>(&mut w);
            transpose_step::<2>(&mut w);
            transpose_step::<3>(&mut w);
            for word in &mut w {
                *word = _mm512_shuffle_epi8(*word, bswap);
            }
            let [mut a, mut b, mut c, mut d, mut e] = s;
            macro_rules! rounds {
                ($range:expr, $function:literal, $k:literal) => {
                    for t in $range {
                        if t >= 16 {
                            // w[t] = rol1(w[t-3] ^ w[t-8] ^ w[t-14] ^ w[t-16]), in a ring of 16.
                            let x = _mm512_ternarylogic_epi32::<0x96>(
                                w[(t + 13) % 16],
                                w[(t + 8) % 16],
                                w[(t + 2) % 16],
                            );
                            w[t % 16] = _mm512_rol_epi32::<1>(_mm512_xor_si512(x, w[t % 16]));
                        }
                        let f = _mm512_ternarylogic_epi32::<$function>(b, c, d);
                        let k = _mm512_set1_epi32($k as i32);
                        let sum = _mm512_add_epi32(
                            _mm512_add_epi32(_mm512_rol_epi32::<5>(a), f),
                            _mm512_add_epi32(_mm512_add_epi32(e, k), w[t % 16]),
                        );
                        e = d;
                        d = c;
                        c = _mm512_rol_epi32::<30>(b);
                        b = a;
                        a = sum;
                    }
                };
            }
            // Truth tables for vpternlogd: choose 0xCA, parity 0x96, majority 0xE8.
            rounds!(0..20, 0xCA, 0x5A82_7999u32);
            rounds!(20..40, 0x96, 0x6ED9_EBA1u32);
            rounds!(40..60, 0xE8, 0x8F1B_BCDCu32);
            rounds!(60..80, 0x96, 0xCA62_C1D6u32);
            for (word, value) in s.iter_mut().zip([a, b, c, d, e]) {
                *word = _mm512_add_epi32(*word, value);
            }
        }
        for (word, register) in words.iter_mut().zip(s) {
            // SAFETY: 64-byte stores into 16-element u32 arrays.
            unsafe { _mm512_storeu_si512(word.as_mut_ptr().cast(), register) };
        }
        for (lane, state) in states.iter_mut().enumerate() {
            for (word, value) in state.iter_mut().enumerate() {
                *value = words[word][lane];
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Deterministic pseudo-random bytes (xorshift).
    pub(crate) fn payload(len: usize, seed: u64) -> Vec<u8> {
        let mut seed = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    }

    const H0: State = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];

    fn scalar(state: &mut State, data: &[u8]) {
        let (blocks, rest) = data.as_chunks::<64>();
        assert!(rest.is_empty());
        sha1::block_api::compress(state, blocks);
    }

    #[test]
    fn every_lane_matches_the_scalar_compression() {
        if !supported() {
            eprintln!("skipped: no AVX-512 on this CPU");
            return;
        }
        for blocks in [1usize, 2, 7, 256] {
            let data: Vec<Vec<u8>> = (0..LANES)
                .map(|lane| payload(blocks * 64, lane as u64 + 1))
                .collect();
            // Different starting states per lane, as pieces part-way through.
            let mut states: [State; LANES] =
                std::array::from_fn(|lane| H0.map(|w| w.rotate_left(lane as u32)));
            let mut expected = states;
            let lanes: [&[u8]; LANES] = std::array::from_fn(|lane| data[lane].as_slice());
            assert!(compress(&mut states, &lanes));
            for (state, data) in expected.iter_mut().zip(&data) {
                scalar(state, data);
            }
            assert_eq!(states, expected, "{blocks} blocks");
        }
    }

    #[test]
    fn digest_pads_like_the_sha1_crate() {
        use sha1::Digest;
        for len in [0usize, 1, 55, 56, 63, 64, 65, 119, 120, 1000] {
            let data = payload(len, 9);
            let whole = len / 64 * 64;
            let mut state = INIT;
            scalar(&mut state, &data[..whole]);
            let expected: [u8; 20] = sha1::Sha1::digest(&data).into();
            assert_eq!(
                digest(state, &data[whole..], len as u64),
                expected,
                "{len} bytes"
            );
        }
    }

    #[test]
    fn uneven_lanes_are_refused() {
        let long = [0u8; 128];
        let mut lanes: [&[u8]; LANES] = [&long[..]; LANES];
        lanes[3] = &long[..64];
        let mut states = [H0; LANES];
        assert!(!compress(&mut states, &lanes));
        assert_eq!(states, [H0; LANES]);
        let odd: [&[u8]; LANES] = [&long[..65]; LANES];
        assert!(!compress(&mut states, &odd));
    }
}
