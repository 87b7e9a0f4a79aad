//! The constants of the rank rule: SHA-256's start state, the one-block length limit, and the
//! weights that reduce a digest mod 10000 word by word.

/// SHA-256's initial hash value (FIPS 180-4, section 5.3.3).
pub(super) const SHA256_INITIAL_STATE: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// The longest message that fits one padded 64-byte block: 64 bytes less the `0x80` marker
/// and the 8-byte bit length.
pub(super) const SINGLE_BLOCK_MAX_LEN: usize = 55;

/// `2^(32·k) mod 10000` for k = 7 … 0: the weights of the digest's eight 32-bit words.
pub(super) const WORD_WEIGHTS: [u64; 8] = word_weights();

const fn word_weights() -> [u64; 8] {
    let two_pow_32 = (1u64 << 32) % 10_000;
    let mut weights = [1u64; 8];
    let mut k = 6;
    loop {
        weights[k] = (weights[k + 1] * two_pow_32) % 10_000;
        if k == 0 {
            break weights;
        }
        k -= 1;
    }
}
