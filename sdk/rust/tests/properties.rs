//! Properties of the bucketing rule: the documented formula, monotone ramps, uniform ranks,
//! independent flags; and of targeting rules: a rule's percent ramps as the flag's does.
use proptest::prelude::*;
use rollgate_sdk::{Context, FlagDocument, FlagSet, RANK_SCALE, percent_threshold, rollout_rank};
use serde_json::json;
use sha2::{Digest, Sha256};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A user who is in at p stays in at every q ≥ p.
    #[test]
    fn membership_is_monotone_in_percent(
        key in "[a-z0-9][a-z0-9._-]{0,20}[a-z0-9]",
        user in any::<String>(),
        p in 0u32..=10_000,
        q in 0u32..=10_000,
    ) {
        let (low, high) = (p.min(q), p.max(q));
        let rank = u32::from(rollout_rank(&key, &user));
        let in_at = |hundredths: u32| rank < percent_threshold(f64::from(hundredths) / 100.0);
        prop_assert!(!in_at(low) || in_at(high), "rank {rank}: in at {low} but out at {high}");
    }

    /// The rank is the formula of `docs/evaluation.md`, computed here from scratch: `H` by
    /// `sha2` over the joined message, `f = H mod 10000` by long division over its bytes, and
    /// the two digit pairs of `f` swapped. Keys and user ids of any length and content, so both
    /// one- and two-block messages and the longer streaming path are covered.
    #[test]
    fn rank_is_the_documented_formula(key in ".{0,60}", user in ".{0,150}") {
        let digest = Sha256::digest(format!("{key}:{user}").as_bytes());
        let f = digest
            .iter()
            .fold(0u32, |acc, &byte| (acc * 256 + u32::from(byte)) % RANK_SCALE);
        let expected = (f % 100) * 100 + f / 100;
        prop_assert_eq!(u32::from(rollout_rank(&key, &user)), expected);
    }

    /// The threshold of a percent given in hundredths is exactly those hundredths, and it never
    /// decreases as the percent grows, whatever the float in between.
    #[test]
    fn thresholds_are_exact_at_hundredths_and_monotone(
        hundredths in 0u32..=10_000,
        p in -50.0f64..150.0,
        q in -50.0f64..150.0,
    ) {
        prop_assert_eq!(percent_threshold(f64::from(hundredths) / 100.0), hundredths);
        let (low, high) = (p.min(q), p.max(q));
        prop_assert!(percent_threshold(low) <= percent_threshold(high), "{low} vs {high}");
    }
}

/// A flag at 5% whose one rule serves `rule_percent` to users on the `pro` plan,
/// with two arms when `coverage` is given (an experiment covering that percent).
fn rule_flag(key: &str, rule_percent: f64, coverage: Option<f64>) -> FlagSet {
    let mut flag = json!({
        "key": key, "enabled": true, "percent": 5,
        "targeting": [{"name": "pro", "serve": {"percent": rule_percent},
                       "conditions": [{"attribute": "plan", "operator": "In", "values": ["pro"]}]}]
    });
    if let Some(coverage) = coverage {
        flag["variants"] = json!([{"name": "a", "weight": 40}, {"name": "b", "weight": 60}]);
        flag["experiment"] = json!({"coverage": coverage, "salt": "s"});
    }
    let document = json!({"schemaVersion": 2, "flags": {key: flag}});
    FlagSet::from_document(&FlagDocument::from_json(document.to_string().as_bytes()).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A user a rule turns on at p is on at every q ≥ p, with the same variant.
    #[test]
    fn raising_a_rule_percent_never_turns_a_user_off(
        key in "[a-z0-9][a-z0-9-]{0,20}[a-z0-9]",
        user in prop::option::weighted(0.9, ".{0,40}"),
        p in 0u32..=10_000,
        q in 0u32..=10_000,
        coverage in prop::option::of(0u32..=10_000),
    ) {
        let (low, high) = (p.min(q), p.max(q));
        let coverage = coverage.map(|hundredths| f64::from(hundredths) / 100.0);
        let context = Context::from(user.as_deref()).with("plan", "pro");
        let at_low = rule_flag(&key, f64::from(low) / 100.0, coverage);
        let at_high = rule_flag(&key, f64::from(high) / 100.0, coverage);
        let (before, after) = (
            at_low.evaluate_with(&key, &context),
            at_high.evaluate_with(&key, &context),
        );
        prop_assert_eq!(before.rule, Some("pro"));
        prop_assert_eq!(after.rule, Some("pro"));
        if before.enabled {
            prop_assert!(after.enabled, "on at {} but off at {}: {:?}", low, high, after);
            prop_assert_eq!(before.variant, after.variant);
        }
    }
}

/// Pearson chi-square over `bins` equal cells.
fn chi_square(counts: &[u64]) -> f64 {
    let total: u64 = counts.iter().sum();
    let expected = total as f64 / counts.len() as f64;
    counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum()
}

/// The chi-square critical value at p = 0.001 for 1 degree of freedom.
const CHI2_1DF_P001: f64 = 10.828;
/// The chi-square critical value at p = 0.001 for 99 degrees of freedom.
const CHI2_99DF_P001: f64 = 148.230;

#[test]
fn uniform_at_common_percents() {
    const USERS: u32 = 100_000;
    for percent in [1.0, 5.0, 25.0, 50.0] {
        let threshold = percent_threshold(percent);
        let inside = (0..USERS)
            .filter(|u| u32::from(rollout_rank("uniformity", &format!("user-{u}"))) < threshold)
            .count() as f64;
        // Two cells (in, out) against their expected shares: 1 degree of freedom.
        let expected_in = f64::from(USERS) * percent / 100.0;
        let expected_out = f64::from(USERS) - expected_in;
        let outside = f64::from(USERS) - inside;
        let statistic = (inside - expected_in).powi(2) / expected_in
            + (outside - expected_out).powi(2) / expected_out;
        assert!(
            statistic < CHI2_1DF_P001,
            "at {percent}%: {inside} of {USERS} in, chi-square {statistic:.2}"
        );
    }
}

#[test]
fn ranks_fill_all_hundred_buckets_evenly() {
    let mut counts = vec![0u64; 100];
    for u in 0..100_000 {
        counts[usize::from(rollout_rank("even", &u.to_string()) / 100)] += 1;
    }
    let statistic = chi_square(&counts);
    assert!(
        statistic < CHI2_99DF_P001,
        "chi-square {statistic:.2} over 100 buckets"
    );
}

#[test]
fn memberships_of_two_flags_are_independent() {
    // 2×2 contingency of membership at 50% in two flags over the same users.
    let threshold = percent_threshold(50.0);
    let mut table = [[0u64; 2]; 2];
    for u in 0..100_000 {
        let user = format!("u{u}");
        let a = u32::from(rollout_rank("flag-a", &user)) < threshold;
        let b = u32::from(rollout_rank("flag-b", &user)) < threshold;
        table[usize::from(a)][usize::from(b)] += 1;
    }
    let total: u64 = table.iter().flatten().sum();
    let row = |i: usize| (table[i][0] + table[i][1]) as f64;
    let column = |j: usize| (table[0][j] + table[1][j]) as f64;
    let mut statistic = 0.0;
    for (i, cells) in table.iter().enumerate() {
        for (j, &observed) in cells.iter().enumerate() {
            let expected = row(i) * column(j) / total as f64;
            statistic += (observed as f64 - expected).powi(2) / expected;
        }
    }
    assert!(
        statistic < CHI2_1DF_P001,
        "table {table:?}, chi-square {statistic:.2}"
    );
    // And the same user is not in the same place in both flags.
    let same_rank = (0..1_000)
        .filter(|u| {
            rollout_rank("flag-a", &u.to_string()) == rollout_rank("flag-b", &u.to_string())
        })
        .count();
    assert!(
        same_rank < 10,
        "{same_rank} users share a rank across flags"
    );
}
