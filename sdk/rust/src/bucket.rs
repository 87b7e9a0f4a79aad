//! Deterministic bucketing: the one implementation of the rank rule in `docs/evaluation.md`.
//!
//! `H` is the SHA-256 digest of `"<key>:<user>"` read as a 256-bit big-endian integer,
//! `f = H mod 10000` and the rank is `r = (f mod 100)·100 + ⌊f/100⌋`. A user is in at
//! percent `p` iff `r < round(p·100)`. For whole `p` this is exactly the reference
//! `int(sha256(...).hexdigest(), 16) % 100 < p`.

use sha2::{Digest, Sha256};

/// Number of distinct ranks: percent is resolved to 0.01 steps.
pub const RANK_SCALE: u32 = 10_000;

/// `2^(64·k) mod 10000` for k = 3, 2, 1, 0: weights of the digest's four 64-bit limbs.
const LIMB_WEIGHTS: [u64; 4] = limb_weights();

const fn limb_weights() -> [u64; 4] {
    // 2^64 mod 10000, computed without overflow.
    // (2^64 − 1) mod 10000 is 1615, so adding one cannot wrap past 10000.
    let two_pow_64 = (u64::MAX % 10_000) + 1;
    let w1 = two_pow_64;
    let w2 = (w1 * w1) % 10_000;
    let w3 = (w2 * w1) % 10_000;
    [w3, w2, w1, 1]
}

/// The rank (0..10000) of `user` in the rollout of flag `key`.
///
/// Feeds `key`, `:` and `user` to the hasher in turn, so it allocates nothing.
#[inline]
pub fn rollout_rank(key: &str, user: &str) -> u16 {
    let mut hasher = Sha256::new();
    hasher.update(key.as_bytes());
    hasher.update(b":");
    hasher.update(user.as_bytes());
    rank_of_digest(&hasher.finalize().into())
}

/// The rank (0..10000) used to pick a variant: `sha256("<key>:<salt>:variant:<user>")`,
/// reduced as [`rollout_rank`]. It is independent of the rollout rank.
#[inline]
pub fn variant_rank(key: &str, salt: &str, user: &str) -> u16 {
    let mut hasher = Sha256::new();
    hasher.update(key.as_bytes());
    hasher.update(b":");
    hasher.update(salt.as_bytes());
    hasher.update(b":variant:");
    hasher.update(user.as_bytes());
    rank_of_digest(&hasher.finalize().into())
}

/// `H mod 10000` of a digest read as one big-endian integer.
#[inline]
pub fn digest_mod_10000(digest: &[u8; 32]) -> u32 {
    let mut acc = 0u64;
    for (limb, weight) in digest.chunks_exact(8).zip(LIMB_WEIGHTS) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(limb);
        acc += (u64::from_be_bytes(bytes) % 10_000) * weight;
    }
    (acc % 10_000) as u32
}

/// The reference bucket `H mod 100` of the Django helper.
#[inline]
pub fn legacy_bucket(key: &str, user: &str) -> u8 {
    let mut hasher = Sha256::new();
    hasher.update(key.as_bytes());
    hasher.update(b":");
    hasher.update(user.as_bytes());
    (digest_mod_10000(&hasher.finalize().into()) % 100) as u8
}

#[inline]
fn rank_of_digest(digest: &[u8; 32]) -> u16 {
    let f = digest_mod_10000(digest);
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

    #[test]
    fn limb_weights_match_big_integer_powers() {
        // 2^64 = 18446744073709551616 → mod 10000 = 1616.
        assert_eq!(LIMB_WEIGHTS[2], 1616);
        assert_eq!(LIMB_WEIGHTS[1], (1616 * 1616) % 10_000);
        assert_eq!(LIMB_WEIGHTS[3], 1);
    }

    #[test]
    fn digest_reduction_matches_bytewise_long_division() {
        let digest: [u8; 32] = Sha256::digest(b"checkout:user-42").into();
        let bytewise = digest
            .iter()
            .fold(0u32, |acc, byte| (acc * 256 + u32::from(*byte)) % 10_000);
        assert_eq!(digest_mod_10000(&digest), bytewise);
        let all_ones = [0xffu8; 32];
        let bytewise = all_ones
            .iter()
            .fold(0u32, |acc, byte| (acc * 256 + u32::from(*byte)) % 10_000);
        assert_eq!(digest_mod_10000(&all_ones), bytewise);
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
