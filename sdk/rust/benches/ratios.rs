//! The SDK's speed as ratios to the hash alone, measured in one process (issue 20).
//!
//! Absolute nanoseconds move by 1.5× or more between VM types and between hours on a shared
//! host, so the claims are ratios against a baseline measured in the same run: every round
//! measures each case once, in turn, and a ratio is taken within each round before the median
//! over rounds. The cases, each in ns per evaluation:
//!
//! - `floor`: `rollout_rank(key, user)` alone, the hash and its reduction;
//! - `sha2`: `sha2::Sha256::digest` of the same `key:user` bytes, joined on the stack, then
//!   the same reduction (`rank_of_digest`): a plain implementation of the rank;
//! - `eval_1k`: `Flags::is_enabled` over 1,000 flags, each a 50% rollout;
//! - `eval_100k_hot`: the same with 100,000 flags loaded and 1,000 of them in use;
//! - `eval_uuid`: `eval_1k` with UUID-shaped user ids (two SHA-256 blocks);
//! - `eval_100k_uniform`: keys uniformly over 100,000 flags; memory-bound, so reported
//!   without a target;
//! - `eval_1k_ctx`: `eval_1k` through `Flags::is_enabled_with`, each user's id in a
//!   `Context` of five attributes (one per user, 10,000 of them, so reading one is a cache
//!   miss, as reading a packed user id is not);
//! - `eval_1k_rules`: `eval_1k_ctx` with three targeting rules of two conditions on every
//!   flag (`In` on strings, `Gte`, `SemverGte`) that the contexts never match: the rules'
//!   cost, against `eval_1k_ctx`, and with the contexts' misses, against `eval_1k`;
//! - `eval_1k_by_hand`: the same three rules written by hand in Rust over `Context::get`,
//!   then `eval_1k_ctx`'s flag: what reading and comparing the attributes costs without the
//!   rules engine: the rules' target is at most 1.25× this (docs/targeting.md).
//!
//! Every case draws the same (flag, user) picks from the same xorshift sequence, a new pair
//! each iteration, so no answer can be reused. Misses of a target are reported, not failed:
//! on a noisy host a single run is evidence, not a verdict.
//!
//! `cargo bench -p rollgate-sdk --bench ratios`; `ROLLGATE_RATIO_ROUNDS` (default 7) and
//! `ROLLGATE_RATIO_MILLIS` (per case and round, default 200) change the run's length
//! (`support::harness`).
use rollgate_sdk::{Context, Flags, rank_of_digest, rollout_rank};
use sha2::{Digest, Sha256};

mod support;
use support::harness::{Case, Ratio, measure_and_report, per_pair, per_user};
use support::{
    HOT_KEYS, Mix, SEED, document, pick_indices, targeted_by_hand, user_contexts, user_ids,
    uuid_user_ids,
};

/// [`targeted_by_hand`], falling through to `plain`, the flag without rules (whose 50% the
/// third rule serves as well).
#[inline(always)]
fn by_hand(plain: &Flags, key: &str, context: &Context) -> bool {
    match targeted_by_hand(context) {
        Some(0) => false,
        Some(1) => true,
        _ => plain.is_enabled_with(key, context),
    }
}

/// The rank by `sha2`'s one-shot digest of `key:user`, joined in a stack buffer.
#[inline(always)]
fn sha2_rank(key: &str, user: &str) -> u16 {
    let mut message = [0u8; 256];
    let len = key.len() + 1 + user.len();
    message[..key.len()].copy_from_slice(key.as_bytes());
    message[key.len()] = b':';
    message[key.len() + 1..len].copy_from_slice(user.as_bytes());
    rank_of_digest(&Sha256::digest(&message[..len]).into())
}

fn sha_extensions_detected() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse4.1")
            && std::arch::is_x86_feature_detected!("ssse3")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

fn main() {
    let packed_users = user_ids();
    let users = packed_users.slices();
    let packed_uuids = uuid_user_ids();
    let uuids = packed_uuids.slices();
    let (packed_small, small_bytes) = document(1_000, Mix::Rollout);
    let small_keys = packed_small.slices();
    let (packed_large, large_bytes) = document(100_000, Mix::Rollout);
    let large_keys = packed_large.slices();
    let hot_keys = &large_keys[..HOT_KEYS];
    let small = Flags::from_json(&small_bytes).unwrap();
    let contexts = user_contexts();
    let (_, targeted_bytes) = document(1_000, Mix::Targeted);
    let targeted = Flags::from_json(&targeted_bytes).unwrap();
    let large = Flags::from_json(&large_bytes).unwrap();

    let mut cases: Vec<Case<'_>> = [
        ("floor", per_pair(&small_keys, &users, rollout_rank)),
        ("sha2", per_pair(&small_keys, &users, sha2_rank)),
        (
            "eval_1k",
            per_pair(&small_keys, &users, |key, user| {
                small.is_enabled(key, Some(user))
            }),
        ),
        (
            "eval_100k_hot",
            per_pair(hot_keys, &users, |key, user| {
                large.is_enabled(key, Some(user))
            }),
        ),
        (
            "eval_uuid",
            per_pair(&small_keys, &uuids, |key, user| {
                small.is_enabled(key, Some(user))
            }),
        ),
        (
            "eval_100k_uniform",
            per_pair(&large_keys, &users, |key, user| {
                large.is_enabled(key, Some(user))
            }),
        ),
        (
            "eval_1k_ctx",
            per_user(&small_keys, &contexts, |key, context| {
                small.is_enabled_with(key, context)
            }),
        ),
        (
            "eval_1k_rules",
            per_user(&small_keys, &contexts, |key, context| {
                targeted.is_enabled_with(key, context)
            }),
        ),
        (
            "eval_1k_by_hand",
            per_user(&small_keys, &contexts, |key, context| {
                by_hand(&small, key, context)
            }),
        ),
    ]
    .into_iter()
    .map(|(name, run)| Case::new(name, run))
    .collect();

    // The hand-written baseline must answer as the rules do, or it measures something else.
    let mut state = SEED;
    for _ in 0..20_000 {
        let (key, user) = pick_indices(&mut state, small_keys.len(), contexts.len());
        let (key, context) = (small_keys[key], &contexts[user]);
        assert_eq!(
            by_hand(&small, key, context),
            targeted.is_enabled_with(key, context),
            "{key} for {context:?}"
        );
    }

    println!(
        "sha-ni path: compiled in: {}, CPU has the SHA extensions: {}",
        cfg!(all(feature = "sha-ni", target_arch = "x86_64")),
        sha_extensions_detected()
    );
    // Against `sha2` too: it does not change with the `sha-ni` feature, so these compare
    // builds with and without it.
    let ratios: [Ratio; 13] = [
        ("eval_1k", "floor", Some(1.25)),
        ("eval_1k_rules", "eval_1k_by_hand", Some(1.25)),
        ("eval_1k_by_hand", "eval_1k_ctx", None),
        ("eval_1k_rules", "eval_1k_ctx", None),
        ("eval_1k_rules", "eval_1k", None),
        ("eval_1k_ctx", "eval_1k", None),
        ("eval_100k_hot", "floor", Some(1.5)),
        ("eval_uuid", "floor", None),
        ("sha2", "floor", None),
        ("eval_100k_uniform", "floor", None),
        ("eval_1k", "sha2", None),
        ("eval_100k_hot", "sha2", None),
        ("eval_uuid", "sha2", None),
    ];
    measure_and_report(&mut cases, &ratios);
}
