//! The register path of the rank hash (`sha-ni` feature) against `sha2`, on random keys and
//! user ids of every message length it accepts.
//!
//! `ROLLGATE_SHA_NI_CASES` sets the number of cases (default 10,000). The full check:
//! `ROLLGATE_SHA_NI_CASES=1000000 cargo test --release -p rollgate-sdk --test sha_ni`.
#![cfg(all(feature = "sha-ni", target_arch = "x86_64"))]

use proptest::prelude::*;
use proptest::test_runner::Config;
use rollgate_sdk::bucket::{SHA_NI_MAX_LEN, sha_ni_rollout_digest_mod_10000};
use rollgate_sdk::{rank_of_digest, rollout_rank};
use sha2::{Digest, Sha256};

fn cases() -> u32 {
    match std::env::var("ROLLGATE_SHA_NI_CASES") {
        Err(_) => 10_000,
        Ok(cases) => cases.parse().unwrap_or_else(|error| {
            panic!("ROLLGATE_SHA_NI_CASES={cases:?} is not a number of cases: {error}")
        }),
    }
}

fn cpu_has_sha_extensions() -> bool {
    std::arch::is_x86_feature_detected!("sha")
        && std::arch::is_x86_feature_detected!("sse4.1")
        && std::arch::is_x86_feature_detected!("ssse3")
}

/// A string of exactly `len` bytes: the random `chars` while they fit, then ASCII `filler`.
/// Characters of one to four bytes put every byte value at every offset.
fn string_of_len(len: usize, chars: &[char], filler: &[u8]) -> String {
    let mut string = String::with_capacity(len);
    for &c in chars {
        if string.len() + c.len_utf8() > len {
            break;
        }
        string.push(c);
    }
    let missing = len - string.len();
    string.extend(
        filler[..missing]
            .iter()
            .map(|&byte| char::from(byte & 0x7f)),
    );
    string
}

/// `H mod 10000` by long division over the digest's bytes: no shared code with the crate.
fn digest_mod_10000(message: &[u8]) -> u32 {
    Sha256::digest(message)
        .iter()
        .fold(0, |acc, &byte| (acc * 256 + u32::from(byte)) % 10_000)
}

/// A message length up to the path's limit (it counts the `:`), and where it splits into key
/// and user.
fn lengths() -> impl Strategy<Value = (usize, usize)> {
    (1..=SHA_NI_MAX_LEN).prop_flat_map(|len| (Just(len - 1), 0..len))
}

proptest! {
    #![proptest_config(Config::with_cases(cases()))]

    #[test]
    fn register_path_equals_sha2(
        (key_and_user_len, key_len) in lengths(),
        key_chars in prop::collection::vec(any::<char>(), 0..SHA_NI_MAX_LEN),
        user_chars in prop::collection::vec(any::<char>(), 0..SHA_NI_MAX_LEN),
        filler in prop::collection::vec(any::<u8>(), SHA_NI_MAX_LEN),
    ) {
        let key = string_of_len(key_len, &key_chars, &filler);
        let user = string_of_len(key_and_user_len - key_len, &user_chars, &filler);
        let message = format!("{key}:{user}");
        prop_assert!(message.len() <= SHA_NI_MAX_LEN);
        let expected = digest_mod_10000(message.as_bytes());
        let got = sha_ni_rollout_digest_mod_10000(&key, &user);
        if cpu_has_sha_extensions() {
            prop_assert_eq!(got, Some(expected), "message of {} bytes", message.len());
        } else {
            prop_assert_eq!(got, None);
        }
        let digest: [u8; 32] = Sha256::digest(message.as_bytes()).into();
        prop_assert_eq!(rollout_rank(&key, &user), rank_of_digest(&digest));
    }
}

#[test]
fn messages_past_the_limit_are_left_to_sha2() {
    let key = "k".repeat(SHA_NI_MAX_LEN);
    assert_eq!(sha_ni_rollout_digest_mod_10000(&key, ""), None);
    let digest: [u8; 32] = Sha256::digest(format!("{key}:")).into();
    assert_eq!(rollout_rank(&key, ""), rank_of_digest(&digest));
}
