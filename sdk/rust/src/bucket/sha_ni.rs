//! The rank hashes of messages of one or two blocks (up to 119 bytes) with the x86 SHA
//! extensions, the message assembled in registers.
//!
//! Why not hand the block to `sha2`: its compression function reads the block from memory, so
//! the block must first be written there piece by piece (key, `:`, user, padding). The CPU
//! cannot forward those small stores to the 16-byte loads of the compression; the loads wait
//! until the stores have retired, and a store retires only after every older instruction,
//! the previous evaluation's hash included. Back-to-back evaluations then run one after the
//! other. Here the key and user bytes are read straight into vector registers, shifted into
//! place with byte shuffles and compressed without touching memory, so consecutive
//! evaluations overlap.
//!
//! The digest is plain SHA-256 (FIPS 180-4); the tests compare it with `sha2` for every
//! message length that fits two blocks and for every split of it into parts.
//!
//! Built only with the `sha-ni` cargo feature. `unsafe` is needed once, in
//! `digest_mod_10000`: to call a function compiled for CPU features after checking at run
//! time that this CPU has them. Both entry points go through it, and every other function is
//! safe code.

use std::arch::x86_64::{
    __m128i, _mm_add_epi8, _mm_add_epi32, _mm_add_epi64, _mm_alignr_epi8, _mm_and_si128,
    _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_cvtsi128_si64, _mm_mul_epu32, _mm_or_si128, _mm_set_epi8,
    _mm_set_epi32, _mm_set_epi64x, _mm_set1_epi8, _mm_setzero_si128, _mm_sha256msg1_epu32,
    _mm_sha256msg2_epu32, _mm_sha256rnds2_epu32, _mm_shuffle_epi8, _mm_shuffle_epi32,
    _mm_srli_epi64, _mm_sub_epi8, _mm_unpackhi_epi64,
};

use super::rank_constants::{SHA256_INITIAL_STATE, SINGLE_BLOCK_MAX_LEN, WORD_WEIGHTS};

/// SHA-256's round constants (FIPS 180-4, section 4.2.2).
const ROUND_CONSTANTS: [u32; 64] = [
    0x428a_2f98,
    0x7137_4491,
    0xb5c0_fbcf,
    0xe9b5_dba5,
    0x3956_c25b,
    0x59f1_11f1,
    0x923f_82a4,
    0xab1c_5ed5,
    0xd807_aa98,
    0x1283_5b01,
    0x2431_85be,
    0x550c_7dc3,
    0x72be_5d74,
    0x80de_b1fe,
    0x9bdc_06a7,
    0xc19b_f174,
    0xe49b_69c1,
    0xefbe_4786,
    0x0fc1_9dc6,
    0x240c_a1cc,
    0x2de9_2c6f,
    0x4a74_84aa,
    0x5cb0_a9dc,
    0x76f9_88da,
    0x983e_5152,
    0xa831_c66d,
    0xb003_27c8,
    0xbf59_7fc7,
    0xc6e0_0bf3,
    0xd5a7_9147,
    0x06ca_6351,
    0x1429_2967,
    0x27b7_0a85,
    0x2e1b_2138,
    0x4d2c_6dfc,
    0x5338_0d13,
    0x650a_7354,
    0x766a_0abb,
    0x81c2_c92e,
    0x9272_2c85,
    0xa2bf_e8a1,
    0xa81a_664b,
    0xc24b_8b70,
    0xc76c_51a3,
    0xd192_e819,
    0xd699_0624,
    0xf40e_3585,
    0x106a_a070,
    0x19a4_c116,
    0x1e37_6c08,
    0x2748_774c,
    0x34b0_bcb5,
    0x391c_0cb3,
    0x4ed8_aa4a,
    0x5b9c_ca4f,
    0x682e_6ff3,
    0x748f_82ee,
    0x78a5_636f,
    0x84c8_7814,
    0x8cc7_0208,
    0x90be_fffa,
    0xa450_6ceb,
    0xbef9_a3f7,
    0xc671_78f2,
];

/// Tail of every variant-rank message before the user id.
const VARIANT_INFIX: &[u8] = b":variant:";

/// A padded message of `L / 4` blocks as `L` 16-byte lanes, bytes in message order (lane 0
/// holds bytes 0–15).
type Lanes<const L: usize> = [__m128i; L];

/// The longest message of two padded blocks: 128 bytes less the `0x80` marker and the
/// 8-byte bit length. A 36-character UUID or an e-mail address as the user id usually makes
/// `key:user` longer than one block, so these are common.
pub(super) const TWO_BLOCKS_MAX_LEN: usize = 2 * 64 - 9;

/// Whether this CPU has every feature the functions below are compiled for (std caches the
/// detection; each check is a load and a bit test).
#[inline(always)]
fn cpu_has_sha_extensions() -> bool {
    std::arch::is_x86_feature_detected!("sha")
        && std::arch::is_x86_feature_detected!("sse4.1")
        && std::arch::is_x86_feature_detected!("ssse3")
}

/// A message of one of the two shapes ranks hash.
#[derive(Clone, Copy)]
enum Message<'a> {
    /// `<key>:<user>`
    Rollout { key: &'a [u8], user: &'a [u8] },
    /// `<key>:<salt>:variant:<user>`
    Variant {
        key: &'a [u8],
        salt: &'a [u8],
        user: &'a [u8],
    },
}

impl Message<'_> {
    #[inline]
    fn len(self) -> usize {
        match self {
            Self::Rollout { key, user } => key.len() + 1 + user.len(),
            Self::Variant { key, salt, user } => {
                key.len() + 1 + salt.len() + VARIANT_INFIX.len() + user.len()
            }
        }
    }
}

/// `H mod 10000` of `sha256("<key>:<user>")`, or `None` when the message is longer than two
/// blocks or the CPU lacks the SHA extensions (the caller then uses the portable path).
#[inline(always)]
pub(super) fn rollout_digest_mod_10000(key: &[u8], user: &[u8]) -> Option<u32> {
    digest_mod_10000(Message::Rollout { key, user })
}

/// `H mod 10000` of `sha256("<key>:<salt>:variant:<user>")`, or `None` as for
/// [`rollout_digest_mod_10000`].
#[inline]
pub(super) fn variant_digest_mod_10000(key: &[u8], salt: &[u8], user: &[u8]) -> Option<u32> {
    digest_mod_10000(Message::Variant { key, salt, user })
}

/// The one call into code compiled for the SHA extensions.
#[inline(always)]
#[allow(unsafe_code)]
fn digest_mod_10000(message: Message<'_>) -> Option<u32> {
    if message.len() > TWO_BLOCKS_MAX_LEN || !cpu_has_sha_extensions() {
        return None;
    }
    // SAFETY: the CPU has every feature `digest_mod_10000_with_sha_extensions` is compiled
    // for (checked just above), so calling it executes only instructions this CPU supports.
    Some(unsafe { digest_mod_10000_with_sha_extensions(message) })
}

/// One function for both shapes, so that the block stays in registers from assembly to
/// compression (a call between them would pass it through memory).
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn digest_mod_10000_with_sha_extensions(message: Message<'_>) -> u32 {
    if message.len() > SINGLE_BLOCK_MAX_LEN {
        return two_block_digest_mod_10000(message);
    }
    let [abef, cdgh] = compress(initial_state(), message_words::<4>(message));
    words_mod_10000(abef, cdgh)
}

/// [`digest_mod_10000_with_sha_extensions`] of a message of two blocks: a function of its
/// own, so that the one-block path stays as small as it was.
#[inline(never)]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn two_block_digest_mod_10000(message: Message<'_>) -> u32 {
    let [w0, w1, w2, w3, w4, w5, w6, w7] = message_words::<8>(message);
    let first = compress(initial_state(), [w0, w1, w2, w3]);
    let [abef, cdgh] = compress(first, [w4, w5, w6, w7]);
    words_mod_10000(abef, cdgh)
}

/// The padded `message` (at most `16·L − 9` bytes) as its big-endian words, four to a lane.
#[inline]
#[target_feature(enable = "sse2,ssse3,sse4.1")]
fn message_words<const L: usize>(message: Message<'_>) -> Lanes<L> {
    let mut block = match message {
        Message::Rollout { key, user } => {
            let mut block = lanes_of::<L>(key);
            put_byte(&mut block, key.len(), b':');
            place(&mut block, lanes_of(user), key.len() + 1);
            block
        }
        Message::Variant { key, salt, user } => {
            let mut block = lanes_of::<L>(key);
            let mut at = key.len();
            put_byte(&mut block, at, b':');
            at += 1;
            place(&mut block, lanes_of(salt), at);
            at += salt.len();
            place(&mut block, lanes_of(VARIANT_INFIX), at);
            at += VARIANT_INFIX.len();
            place(&mut block, lanes_of(user), at);
            block
        }
    };
    let len = message.len();
    put_byte(&mut block, len, 0x80);
    let bit_length = (len as u64 * 8).swap_bytes();
    if let Some(last) = block.last_mut() {
        *last = _mm_or_si128(*last, _mm_set_epi64x(bit_length as i64, 0));
    }
    // The message words are big-endian.
    let big_endian = _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
    block.map(|lane| _mm_shuffle_epi8(lane, big_endian))
}

/// A lane of bytes `i` (byte `i` holds `i`): the index vector for shuffles and compares.
#[inline]
#[target_feature(enable = "sse2")]
fn byte_indices() -> __m128i {
    _mm_set_epi8(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)
}

#[inline]
#[target_feature(enable = "sse2")]
fn lane_of(value: u128) -> __m128i {
    _mm_set_epi64x((value >> 64) as i64, value as i64)
}

/// The `N` bytes of `bytes` from `at`.
#[inline]
fn chunk<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut word = [0; N];
    word.copy_from_slice(&bytes[at..at + N]);
    word
}

/// Up to 15 bytes as a zero-padded little-endian integer, read with at most two loads that
/// may overlap (an overlapped byte lands at the same place from both).
#[inline]
fn short_le(bytes: &[u8]) -> u128 {
    let n = bytes.len();
    debug_assert!(n < 16);
    if n >= 8 {
        let high = u64::from_le_bytes(chunk(bytes, n - 8))
            .checked_shr(8 * (16 - n as u32))
            .unwrap_or(0);
        u128::from(u64::from_le_bytes(chunk(bytes, 0))) | u128::from(high) << 64
    } else if n >= 4 {
        u128::from(
            u64::from(u32::from_le_bytes(chunk(bytes, 0)))
                | u64::from(u32::from_le_bytes(chunk(bytes, n - 4))) << (8 * (n - 4)),
        )
    } else if n > 0 {
        let middle = n / 2;
        u128::from(
            u32::from(bytes[0])
                | u32::from(bytes[middle]) << (8 * middle)
                | u32::from(bytes[n - 1]) << (8 * (n - 1)),
        )
    } else {
        0
    }
}

/// `bytes` (at most `16·L − 9`) at the start of `L` zero-padded lanes. Every load stays
/// inside `bytes`: a partial last lane is read as the final 16 bytes and shifted down.
#[inline]
#[target_feature(enable = "sse2,ssse3")]
fn lanes_of<const L: usize>(bytes: &[u8]) -> Lanes<L> {
    let zero = _mm_setzero_si128();
    let n = bytes.len();
    let mut lanes = [zero; L];
    if n < 16 {
        lanes[0] = lane_of(short_le(bytes));
        return lanes;
    }
    // Whole lanes first, then the partial one, if any.
    for (index, lane) in lanes.iter_mut().enumerate() {
        if n >= 16 * (index + 1) {
            *lane = lane_of(u128::from_le_bytes(chunk(bytes, 16 * index)));
        }
    }
    let rest = n % 16;
    if rest > 0 {
        // Byte i of the partial lane is byte i + (16 - rest) of the final 16; the rest are zero.
        let source = _mm_add_epi8(byte_indices(), _mm_set1_epi8((16 - rest) as i8));
        let past_end = _mm_cmpgt_epi8(source, _mm_set1_epi8(15));
        let tail = _mm_shuffle_epi8(
            lane_of(u128::from_le_bytes(chunk(bytes, n - 16))),
            _mm_or_si128(source, past_end),
        );
        if let Some(lane) = lanes.get_mut(n / 16) {
            *lane = tail;
        }
    }
    lanes
}

/// ORs `part` into `block` starting at byte `at`. Bytes of `part` past its length are zero,
/// and the message fits the lanes, so nothing is shifted out.
#[inline]
#[target_feature(enable = "sse2,ssse3")]
fn place<const L: usize>(block: &mut Lanes<L>, part: Lanes<L>, at: usize) {
    let shift = (at % 16) as i8;
    // Within a lane, byte i takes byte i - shift of the same part lane (none when negative)
    // and byte i + 16 - shift of the previous one (none when that is past 15).
    let from_same = _mm_sub_epi8(byte_indices(), _mm_set1_epi8(shift));
    let from_previous = _mm_or_si128(
        _mm_add_epi8(from_same, _mm_set1_epi8(16)),
        _mm_cmpgt_epi8(from_same, _mm_set1_epi8(-1)),
    );
    let zero = _mm_setzero_si128();
    let shifted: Lanes<L> = std::array::from_fn(|lane| {
        let previous = if lane == 0 { zero } else { part[lane - 1] };
        _mm_or_si128(
            _mm_shuffle_epi8(part[lane], from_same),
            _mm_shuffle_epi8(previous, from_previous),
        )
    });
    // Then whole lanes, by 1, 2, 4 … lanes as the bits of `at / 16` say: every index is then
    // a constant, so the lanes stay in registers.
    let whole = at / 16;
    let mut moved = shifted;
    let mut step = 1;
    while step < L {
        if whole & step != 0 {
            moved = std::array::from_fn(|lane| {
                if lane >= step {
                    moved[lane - step]
                } else {
                    zero
                }
            });
        }
        step *= 2;
    }
    for (lane, value) in block.iter_mut().zip(moved) {
        *lane = _mm_or_si128(*lane, value);
    }
}

/// ORs `byte` into `block` at byte `at`.
#[inline]
#[target_feature(enable = "sse2")]
fn put_byte<const L: usize>(block: &mut Lanes<L>, at: usize, byte: u8) {
    let target = _mm_set1_epi8(at as i8);
    for (index, lane) in block.iter_mut().enumerate() {
        let indices = _mm_add_epi8(byte_indices(), _mm_set1_epi8((16 * index) as i8));
        let hit = _mm_cmpeq_epi8(indices, target);
        *lane = _mm_or_si128(*lane, _mm_and_si128(hit, _mm_set1_epi8(byte as i8)));
    }
}

/// The state as the SHA instructions hold it: lanes (f, e, b, a) and (h, g, d, c), low first.
#[inline]
#[target_feature(enable = "sse2")]
fn initial_state() -> [__m128i; 2] {
    const ABEF: [i32; 4] = lanes_of_words(SHA256_INITIAL_STATE, [0, 1, 4, 5]);
    const CDGH: [i32; 4] = lanes_of_words(SHA256_INITIAL_STATE, [2, 3, 6, 7]);
    [
        _mm_set_epi32(ABEF[0], ABEF[1], ABEF[2], ABEF[3]),
        _mm_set_epi32(CDGH[0], CDGH[1], CDGH[2], CDGH[3]),
    ]
}

/// `words[picks[i]]` as i32 (the bits unchanged), at compile time: constants built at run
/// time from an array can go through memory, and a store forwarded to a wider load stalls.
const fn lanes_of_words(words: [u32; 8], picks: [usize; 4]) -> [i32; 4] {
    [
        words[picks[0]] as i32,
        words[picks[1]] as i32,
        words[picks[2]] as i32,
        words[picks[3]] as i32,
    ]
}

/// One compression of `words` from `start`, `start` added back: the state after the block.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn compress(start: [__m128i; 2], words: [__m128i; 4]) -> [__m128i; 2] {
    let mut state = start;
    let [mut w0, mut w1, mut w2, mut w3] = words;
    four_rounds(&mut state, w0, 0);
    four_rounds(&mut state, w1, 1);
    four_rounds(&mut state, w2, 2);
    four_rounds(&mut state, w3, 3);
    for group in 1..4 {
        w0 = next_words(w0, w1, w2, w3);
        four_rounds(&mut state, w0, 4 * group);
        w1 = next_words(w1, w2, w3, w0);
        four_rounds(&mut state, w1, 4 * group + 1);
        w2 = next_words(w2, w3, w0, w1);
        four_rounds(&mut state, w2, 4 * group + 2);
        w3 = next_words(w3, w0, w1, w2);
        four_rounds(&mut state, w3, 4 * group + 3);
    }
    [
        _mm_add_epi32(state[0], start[0]),
        _mm_add_epi32(state[1], start[1]),
    ]
}

/// Message words t..t+4 from the sixteen before them, given as four quads oldest first
/// (FIPS 180-4, 6.2.2 step 1).
#[inline]
#[target_feature(enable = "sha,sse2,ssse3")]
fn next_words(w0: __m128i, w1: __m128i, w2: __m128i, w3: __m128i) -> __m128i {
    let sigma0_terms = _mm_sha256msg1_epu32(w0, w1);
    let w_minus_7 = _mm_alignr_epi8(w3, w2, 4);
    _mm_sha256msg2_epu32(_mm_add_epi32(sigma0_terms, w_minus_7), w3)
}

/// Rounds 4·quad … 4·quad + 3 over the message words `words`.
#[inline]
#[target_feature(enable = "sha,sse2")]
fn four_rounds(state: &mut [__m128i; 2], words: __m128i, quad: usize) {
    let k = &ROUND_CONSTANTS[4 * quad..4 * quad + 4];
    let input = _mm_add_epi32(
        words,
        _mm_set_epi32(k[3] as i32, k[2] as i32, k[1] as i32, k[0] as i32),
    );
    let [abef, cdgh] = *state;
    let cdgh = _mm_sha256rnds2_epu32(cdgh, abef, input);
    let abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(input, 0x0e));
    *state = [abef, cdgh];
}

/// `Σ word·weight mod 10000` over the eight digest words, the products summed in 64-bit lanes.
#[inline]
#[target_feature(enable = "sse2")]
fn words_mod_10000(abef: __m128i, cdgh: __m128i) -> u32 {
    // Weights in the lane order of the state, as (high, low) 64-bit lanes. `_mm_mul_epu32`
    // multiplies 32-bit lanes 0 and 2; shifting by 32 brings lanes 1 and 3 there.
    const W: [u64; 8] = WORD_WEIGHTS;
    const F_B: (i64, i64) = (W[1] as i64, W[5] as i64);
    const E_A: (i64, i64) = (W[0] as i64, W[4] as i64);
    const H_D: (i64, i64) = (W[3] as i64, W[7] as i64);
    const G_C: (i64, i64) = (W[2] as i64, W[6] as i64);
    let abef_sum = _mm_add_epi64(
        _mm_mul_epu32(abef, _mm_set_epi64x(F_B.0, F_B.1)),
        _mm_mul_epu32(_mm_srli_epi64(abef, 32), _mm_set_epi64x(E_A.0, E_A.1)),
    );
    let cdgh_sum = _mm_add_epi64(
        _mm_mul_epu32(cdgh, _mm_set_epi64x(H_D.0, H_D.1)),
        _mm_mul_epu32(_mm_srli_epi64(cdgh, 32), _mm_set_epi64x(G_C.0, G_C.1)),
    );
    let pair = _mm_add_epi64(abef_sum, cdgh_sum);
    let sum = _mm_cvtsi128_si64(_mm_add_epi64(pair, _mm_unpackhi_epi64(pair, pair))) as u64;
    (sum % 10_000) as u32
}
