//! Deterministic bucketing: the one implementation of the rank rule in `docs/evaluation.md`.
//!
//! `H` is the SHA-256 digest of `"<key>:<user>"` read as a 256-bit big-endian integer,
//! `f = H mod 10000` and the rank is `r = (f mod 100)·100 + ⌊f/100⌋`. A user is in at
//! percent `p` iff `r < round(p·100)`. For whole `p` this is exactly the reference
//! `int(sha256(...).hexdigest(), 16) % 100 < p`.

use sha2::block_api::compress256;
use sha2::{Digest, Sha256};

mod rank_constants;
#[cfg(all(feature = "sha-ni", target_arch = "x86_64"))]
mod sha_ni;

use rank_constants::{SHA256_INITIAL_STATE, SINGLE_BLOCK_MAX_LEN, WORD_WEIGHTS};

/// Number of distinct ranks: percent is resolved to 0.01 steps.
pub const RANK_SCALE: u32 = 10_000;

/// Writes the concatenated `parts`, padded, into the zeroed `block` when they fit one block
/// (at most 55 bytes, as nearly every `key:user` does). Compressing that block directly skips
/// the streaming hasher's buffering and allocates nothing; both give the standard digest, and
/// the tests compare them at every length up to several blocks.
///
/// This is the portable path. With the `sha-ni` feature, on x86-64 CPUs with the SHA
/// extensions, `sha_ni` builds the block in registers instead.
#[inline]
fn pad_into_single_block(parts: &[&[u8]], bytes: &mut [u8; 64]) -> bool {
    let len: usize = parts.iter().map(|part| part.len()).sum();
    if len > SINGLE_BLOCK_MAX_LEN {
        return false;
    }
    let mut at = 0;
    for part in parts {
        bytes[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    bytes[len] = 0x80;
    bytes[56..].copy_from_slice(&((len as u64) * 8).to_be_bytes());
    true
}

/// The SHA-256 digest of the concatenated `parts`, as its eight big-endian words.
#[inline]
fn sha256_words(parts: &[&[u8]]) -> [u32; 8] {
    let mut block = [0; 64];
    if pad_into_single_block(parts, &mut block) {
        let mut state = SHA256_INITIAL_STATE;
        compress256(&mut state, std::slice::from_ref(&block));
        state
    } else {
        streaming_words(parts)
    }
}

fn streaming_words(parts: &[&[u8]]) -> [u32; 8] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    let digest: [u8; 32] = hasher.finalize().into();
    let mut words = [0u32; 8];
    for (word, bytes) in words.iter_mut().zip(digest.chunks_exact(4)) {
        *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    }
    words
}

/// `H mod 10000` of a digest given as eight big-endian words.
///
/// Each term is below 2^32 · 10^4, so the sum of eight fits a u64 with room to spare.
#[inline]
fn words_mod_10000(words: &[u32; 8]) -> u32 {
    let sum: u64 = words
        .iter()
        .zip(WORD_WEIGHTS)
        .map(|(word, weight)| u64::from(*word) * weight)
        .sum();
    (sum % 10_000) as u32
}

/// The rank (0..10000) of `user` in the rollout of flag `key`.
///
/// Hashes `key`, `:` and `user` without joining them, so it allocates nothing.
#[inline(always)]
pub fn rollout_rank(key: &str, user: &str) -> u16 {
    swap_digits(rollout_digest_mod_10000(key, user))
}

/// The rank (0..10000) used to pick a variant: `sha256("<key>:<salt>:variant:<user>")`,
/// reduced as [`rollout_rank`]. It is independent of the rollout rank.
#[inline]
pub fn variant_rank(key: &str, salt: &str, user: &str) -> u16 {
    #[cfg(all(feature = "sha-ni", target_arch = "x86_64"))]
    if let Some(f) =
        sha_ni::variant_digest_mod_10000(key.as_bytes(), salt.as_bytes(), user.as_bytes())
    {
        return swap_digits(f);
    }
    swap_digits(portable_digest_mod_10000(&[
        key.as_bytes(),
        b":",
        salt.as_bytes(),
        b":variant:",
        user.as_bytes(),
    ]))
}

/// The reference bucket `H mod 100` of the Django helper.
#[inline]
pub fn legacy_bucket(key: &str, user: &str) -> u8 {
    (rollout_digest_mod_10000(key, user) % 100) as u8
}

/// `H mod 10000` of `sha256("<key>:<user>")`.
///
/// Always inlined: it is a length and CPU check in front of one call, and inlining it keeps
/// that call the only one between an evaluation and the hash.
#[inline(always)]
fn rollout_digest_mod_10000(key: &str, user: &str) -> u32 {
    #[cfg(all(feature = "sha-ni", target_arch = "x86_64"))]
    if let Some(f) = sha_ni::rollout_digest_mod_10000(key.as_bytes(), user.as_bytes()) {
        return f;
    }
    portable_digest_mod_10000(&[key.as_bytes(), b":", user.as_bytes()])
}

/// The rank of a SHA-256 digest: `f = H mod 10000` of the digest read as a big-endian integer,
/// its digit pairs swapped. [`rollout_rank`] is this of `sha256("<key>:<user>")`; it is public
/// so that a caller (a bench, another implementation's test) can pair it with any SHA-256.
pub fn rank_of_digest(digest: &[u8; 32]) -> u16 {
    let mut words = [0u32; 8];
    for (word, bytes) in words.iter_mut().zip(digest.chunks_exact(4)) {
        *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    }
    swap_digits(words_mod_10000(&words))
}

/// The longest `key:user` the register path hashes (two blocks); longer ones take `sha2`.
#[doc(hidden)]
#[cfg(all(feature = "sha-ni", target_arch = "x86_64"))]
pub const SHA_NI_MAX_LEN: usize = sha_ni::TWO_BLOCKS_MAX_LEN;

/// The register path alone, for the tests that compare it with `sha2`: `H mod 10000` of
/// `sha256("<key>:<user>")`, or `None` when it refuses the message (too long, or a CPU
/// without the SHA extensions).
#[doc(hidden)]
#[cfg(all(feature = "sha-ni", target_arch = "x86_64"))]
pub fn sha_ni_rollout_digest_mod_10000(key: &str, user: &str) -> Option<u32> {
    sha_ni::rollout_digest_mod_10000(key.as_bytes(), user.as_bytes())
}

/// `H mod 10000` of the concatenated `parts`, by `sha2`: out of line, as the path for long
/// messages and for CPUs without the SHA extensions.
#[inline(never)]
fn portable_digest_mod_10000(parts: &[&[u8]]) -> u32 {
    words_mod_10000(&sha256_words(parts))
}

/// The rank of `f = H mod 10000`: its two decimal digit pairs swapped, so that the low pair,
/// `H mod 100`, decides whole percents exactly as the reference does.
#[inline]
fn swap_digits(f: u32) -> u16 {
    ((f % 100) * 100 + f / 100) as u16
}

/// `round(percent·100)` clamped to `0..=10000`: the rank threshold of a percent.
/// A NaN percent maps to 0, so a corrupt value can only turn a flag off.
#[inline]
pub fn percent_threshold(percent: f64) -> u32 {
    if percent.is_nan() || percent <= 0.0 {
        0
    } else if percent >= 100.0 {
        RANK_SCALE
    } else {
        (percent * 100.0).round() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_words(message: &[u8]) -> [u32; 8] {
        let digest: [u8; 32] = Sha256::digest(message).into();
        let mut words = [0u32; 8];
        for (word, bytes) in words.iter_mut().zip(digest.chunks_exact(4)) {
            *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        words
    }

    #[test]
    fn word_weights_match_big_integer_powers() {
        // 2^32 = 4294967296 → 7296; 2^64 = 18446744073709551616 → 1616.
        assert_eq!(WORD_WEIGHTS[7], 1);
        assert_eq!(WORD_WEIGHTS[6], 7296);
        assert_eq!(WORD_WEIGHTS[5], 1616);
    }

    #[test]
    fn single_block_path_equals_the_streaming_hasher_at_every_length() {
        // Every length across the one-block limit and into the third block, split at
        // varying points, so padding and part joins are both covered.
        for len in 0..=200usize {
            let message: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
            let split = len / 3;
            let (head, tail) = message.split_at(split);
            assert_eq!(
                sha256_words(&[head, tail]),
                digest_words(&message),
                "length {len}"
            );
        }
        assert_eq!(sha256_words(&[]), digest_words(b""));
    }

    #[test]
    fn ranks_equal_the_streaming_hasher_on_both_sides_of_one_block() {
        // `key:user` of 40 to 80 bytes: one block up to 55, the streaming hasher beyond.
        for user_len in 0..=40usize {
            let key = "a-flag-key-of-39-bytes-for-the-boundary";
            let user: String = (0..user_len)
                .map(|i| char::from(b'a' + (i % 26) as u8))
                .collect();
            let message = format!("{key}:{user}");
            let f = words_mod_10000(&digest_words(message.as_bytes()));
            assert_eq!(
                rollout_rank(key, &user),
                swap_digits(f),
                "message of {} bytes",
                message.len()
            );
            assert_eq!(legacy_bucket(key, &user), (f % 100) as u8);
            let variant_message = format!("{key}:s:variant:{user}");
            assert_eq!(
                variant_rank(key, "s", &user),
                swap_digits(words_mod_10000(&digest_words(variant_message.as_bytes()))),
                "variant message of {} bytes",
                variant_message.len()
            );
        }
    }

    #[test]
    fn digest_reduction_matches_bytewise_long_division() {
        for message in [&b"checkout:user-42"[..], b"", &[0xa5; 300]] {
            let digest: [u8; 32] = Sha256::digest(message).into();
            let bytewise = digest
                .iter()
                .fold(0u32, |acc, byte| (acc * 256 + u32::from(*byte)) % 10_000);
            assert_eq!(words_mod_10000(&digest_words(message)), bytewise);
        }
        let bytewise = [0xffu8; 32]
            .iter()
            .fold(0u32, |acc, byte| (acc * 256 + u32::from(*byte)) % 10_000);
        assert_eq!(words_mod_10000(&[u32::MAX; 8]), bytewise);
    }

    /// Bytes of every value, so that no byte is special to the shuffles.
    #[cfg(all(feature = "sha-ni", target_arch = "x86_64"))]
    fn filler(len: usize, seed: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i * 97 + seed * 31 + 0x7b) as u8)
            .collect()
    }

    #[cfg(all(feature = "sha-ni", target_arch = "x86_64"))]
    fn cpu_has_sha_extensions() -> bool {
        std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse4.1")
            && std::arch::is_x86_feature_detected!("ssse3")
    }

    #[cfg(all(feature = "sha-ni", target_arch = "x86_64"))]
    #[test]
    fn sha_extension_rollout_hash_equals_sha2_for_every_split_of_two_blocks() {
        // Every key length and user length whose message fits one or two blocks, and the
        // first lengths past two (which must be refused, for the portable path to take them).
        let longest = sha_ni::TWO_BLOCKS_MAX_LEN;
        for key_len in 0..=longest {
            for user_len in 0..=longest - key_len {
                let (key, user) = (filler(key_len, 1), filler(user_len, 2));
                let message = [&key[..], b":", &user[..]].concat();
                let expected = words_mod_10000(&digest_words(&message));
                let got = sha_ni::rollout_digest_mod_10000(&key, &user);
                if message.len() <= longest && cpu_has_sha_extensions() {
                    assert_eq!(got, Some(expected), "key {key_len} bytes, user {user_len}");
                } else {
                    assert_eq!(got, None, "key {key_len} bytes, user {user_len}");
                }
            }
        }
    }

    #[cfg(all(feature = "sha-ni", target_arch = "x86_64"))]
    #[test]
    fn sha_extension_variant_hash_equals_sha2_for_every_split_of_two_blocks() {
        // Every key and user length, with salts of each lane offset and one of several lanes;
        // the infix itself then lands at every offset too.
        let longest = sha_ni::TWO_BLOCKS_MAX_LEN;
        let infix = b":variant:".len();
        for salt_len in [0, 1, 2, 7, 15, 16, 17, 33] {
            for key_len in 0..=longest - 1 - salt_len - infix {
                for user_len in 0..=longest + 1 - key_len - 1 - salt_len - infix {
                    let key = filler(key_len, 3);
                    let salt = filler(salt_len, 4);
                    let user = filler(user_len, 5);
                    let message = [&key[..], b":", &salt, b":variant:", &user].concat();
                    let expected = words_mod_10000(&digest_words(&message));
                    let got = sha_ni::variant_digest_mod_10000(&key, &salt, &user);
                    if message.len() <= longest && cpu_has_sha_extensions() {
                        assert_eq!(got, Some(expected), "{key_len}+{salt_len}+{user_len}");
                    } else {
                        assert_eq!(got, None, "{key_len}+{salt_len}+{user_len}+{infix}");
                    }
                }
            }
        }
    }

    #[test]
    fn rank_of_digest_is_the_rollout_rank_of_its_message() {
        for (key, user) in [
            ("checkout", "user-42"),
            ("", ""),
            ("k", &"u".repeat(200)[..]),
        ] {
            let digest: [u8; 32] = Sha256::digest(format!("{key}:{user}")).into();
            assert_eq!(rank_of_digest(&digest), rollout_rank(key, user));
        }
    }

    #[test]
    fn whole_percent_rank_agrees_with_legacy_bucket() {
        for user in 0..2_000 {
            let user = user.to_string();
            let bucket = legacy_bucket("new-checkout", &user);
            let rank = rollout_rank("new-checkout", &user);
            for percent in [0u32, 1, 5, 25, 50, 99] {
                assert_eq!(
                    u32::from(rank) < percent * 100,
                    u32::from(bucket) < percent,
                    "user {user} at {percent}%"
                );
            }
        }
    }

    #[test]
    fn thresholds_clamp_and_round() {
        assert_eq!(percent_threshold(f64::NAN), 0);
        assert_eq!(percent_threshold(-3.0), 0);
        assert_eq!(percent_threshold(0.01), 1);
        assert_eq!(percent_threshold(12.34), 1234);
        assert_eq!(percent_threshold(100.0), 10_000);
        assert_eq!(percent_threshold(250.0), 10_000);
    }
}
