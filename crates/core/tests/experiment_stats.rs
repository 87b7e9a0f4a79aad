//! Correctness checks for the experiment statistics (issue 7):
//!
//! 1. reference values from scipy on fixed tables (`tests/data/stats_reference.json`, made by
//!    `scripts/gen_stats_reference.py`), to 1e-9 relative;
//! 2. the decision rules, table by table, including degenerate counts;
//! 3. seeded Monte-Carlo simulations: A/A false-positive rate of the sequential test under 50
//!    looks against naive repeated z-tests, family-wise error with three arms and Holm, power on
//!    a known lift, and the false-alarm rate of the repeated SRM check.
//!
//! The simulations take a few seconds in debug builds, so they are `#[ignore]`d there and run
//! by `scripts/test-all` as `cargo test --release --test experiment_stats -- --include-ignored`
//! (well under a second each in release). Add `--nocapture` to see the measured rates.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Binomial, Distribution};
use rollgate_core::experiment::msprt::mixture_look;
use rollgate_core::experiment::srm::sample_ratio_test;
use rollgate_core::experiment::stats::{
    chi_square_sf, holm, normal_cdf, normal_quantile, normal_sf, two_proportion_z_test,
};
use rollgate_core::experiment::{
    Decision, ExperimentConfig, ExperimentError, ExperimentState, ExperimentVerdict, Interval,
    Method, VariantCounts, evaluate_experiment,
};
use serde_json::Value;
use std::time::Duration;

const REFERENCE: &str = include_str!("data/stats_reference.json");
const RELATIVE: f64 = 1e-9;

fn reference() -> Value {
    serde_json::from_str(REFERENCE).expect("stats_reference.json parses")
}

fn f(value: &Value, key: &str) -> f64 {
    value[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {value}"))
}

fn u(value: &Value, key: &str) -> u64 {
    value[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {value}"))
}

#[track_caller]
fn assert_close(actual: f64, expected: f64, what: &str) {
    let tolerance = RELATIVE * expected.abs() + 1e-300;
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: got {actual:e}, scipy says {expected:e} (relative error {:e})",
        ((actual - expected) / expected).abs()
    );
}

fn cases<'a>(document: &'a Value, key: &str) -> &'a Vec<Value> {
    document[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} missing"))
}

// ---------------------------------------------------------------------------------------
// 1. scipy reference values
// ---------------------------------------------------------------------------------------

#[test]
fn normal_distribution_matches_scipy() {
    let document = reference();
    for case in cases(&document, "normal") {
        let x = f(case, "x");
        assert_close(normal_cdf(x), f(case, "cdf"), &format!("cdf({x})"));
        assert_close(normal_sf(x), f(case, "sf"), &format!("sf({x})"));
    }
    for case in cases(&document, "normal_quantile") {
        let p = f(case, "p");
        assert_close(normal_quantile(p), f(case, "x"), &format!("ppf({p})"));
    }
}

#[test]
fn chi_square_tail_matches_scipy() {
    let document = reference();
    for case in cases(&document, "chi_square") {
        let (x, df) = (f(case, "x"), u(case, "df") as u32);
        assert_close(
            chi_square_sf(x, df),
            f(case, "sf"),
            &format!("chi2.sf({x}, {df})"),
        );
    }
}

#[test]
fn two_proportion_z_test_matches_scipy() {
    let document = reference();
    for case in cases(&document, "z_tests") {
        let test = two_proportion_z_test(
            u(case, "x_a"),
            u(case, "n_a"),
            u(case, "x_b"),
            u(case, "n_b"),
            f(case, "alpha"),
        );
        let what = format!("z-test {case}");
        assert_close(test.difference, f(case, "difference"), &what);
        assert_close(test.z, f(case, "z"), &what);
        assert_close(test.p_value, f(case, "p_value"), &what);
        assert_close(test.interval.lower, f(case, "lower"), &what);
        assert_close(test.interval.upper, f(case, "upper"), &what);
    }
}

#[test]
fn sample_ratio_test_matches_scipy_chisquare() {
    let document = reference();
    for case in cases(&document, "srm") {
        let exposures: Vec<u64> =
            serde_json::from_value(case["exposures"].clone()).expect("exposures");
        let weights: Vec<u32> = serde_json::from_value(case["weights"].clone()).expect("weights");
        let result = sample_ratio_test(&exposures, &weights);
        let what = format!("chisquare {case}");
        assert_close(result.statistic, f(case, "statistic"), &what);
        assert_close(result.p_value, f(case, "p_value"), &what);
        assert_eq!(result.degrees_of_freedom as usize, exposures.len() - 1);
        assert_eq!(result.mismatch, f(case, "p_value") < 0.001, "{what}");
    }
}

#[test]
fn holm_matches_reference_loop() {
    let document = reference();
    for case in cases(&document, "holm") {
        let p_values: Vec<f64> =
            serde_json::from_value(case["p_values"].clone()).expect("p_values");
        let expected: Vec<f64> =
            serde_json::from_value(case["adjusted"].clone()).expect("adjusted");
        let adjusted = holm(&p_values);
        assert_eq!(adjusted.len(), expected.len());
        for (a, e) in adjusted.iter().zip(&expected) {
            assert_close(*a, *e, &format!("holm {p_values:?}"));
        }
    }
}

/// The closed-form mSPRT statistic and confidence sequence against a numerical integration
/// of the mixture likelihood ratio and a root-finder on it.
#[test]
fn msprt_closed_form_matches_numerical_mixture() {
    let document = reference();
    for case in cases(&document, "msprt") {
        let look = mixture_look(
            u(case, "x_a"),
            u(case, "n_a"),
            u(case, "x_b"),
            u(case, "n_b"),
            f(case, "alpha"),
            f(case, "relative_lift"),
        );
        let what = format!("mSPRT {case}");
        assert_close(look.difference, f(case, "difference"), &what);
        assert_close(look.variance, f(case, "variance"), &what);
        assert_close(look.tau_squared, f(case, "tau_squared"), &what);
        assert_close(
            look.log_likelihood_ratio,
            f(case, "log_likelihood_ratio"),
            &what,
        );
        assert_close(look.p_value, f(case, "p_value"), &what);
        assert_close(look.interval.lower, f(case, "lower"), &what);
        assert_close(look.interval.upper, f(case, "upper"), &what);
    }
}

fn variant_counts(case: &Value) -> Vec<VariantCounts> {
    case["variants"]
        .as_array()
        .expect("variants")
        .iter()
        .map(|v| {
            VariantCounts::new(
                v["name"].as_str().expect("name"),
                u(v, "weight") as u32,
                u(v, "exposures"),
                u(v, "conversions"),
            )
        })
        .collect()
}

fn assert_treatments(verdict: &ExperimentVerdict, expected: &[Value], what: &str) {
    assert_eq!(verdict.variants.len(), expected.len() + 1, "{what}");
    for (variant, expected) in verdict.variants[1..].iter().zip(expected) {
        let what = format!("{what}, variant {}", variant.name);
        let interval = variant.interval.expect("interval");
        assert_close(variant.p_value.expect("p"), f(expected, "p_value"), &what);
        assert_close(
            variant.adjusted_p_value.expect("adjusted"),
            f(expected, "adjusted_p_value"),
            &what,
        );
        assert_close(interval.lower, f(expected, "lower"), &what);
        assert_close(interval.upper, f(expected, "upper"), &what);
    }
}

#[test]
fn fixed_experiments_match_scipy_end_to_end() {
    let document = reference();
    for case in cases(&document, "fixed_experiments") {
        let counts = variant_counts(case);
        let planned = counts.iter().map(|c| c.exposures).min().expect("variants");
        let config = ExperimentConfig {
            alpha: f(case, "alpha"),
            method: Method::Fixed,
            planned_samples_per_variant: Some(planned),
            ..ExperimentConfig::default()
        };
        let verdict = evaluate_experiment(
            &config,
            &counts,
            &ExperimentState::default(),
            Duration::ZERO,
        )
        .expect("valid");
        let what = format!("fixed experiment {case}");
        assert_treatments(
            &verdict,
            case["treatments"].as_array().expect("treatments"),
            &what,
        );
        assert_close(verdict.srm.statistic, f(case, "srm_statistic"), &what);
        assert_close(verdict.srm.p_value, f(case, "srm_p_value"), &what);
        assert!(
            verdict.decision.is_final(),
            "{what}: {:?}",
            verdict.decision
        );
    }
}

#[test]
fn sequential_experiments_match_reference_across_looks() {
    let document = reference();
    for case in cases(&document, "sequential_experiments") {
        let weights: Vec<u32> = serde_json::from_value(case["weights"].clone()).expect("weights");
        let config = ExperimentConfig {
            alpha: f(case, "alpha"),
            mixture_relative_lift: f(case, "relative_lift"),
            ..ExperimentConfig::default()
        };
        let mut state = ExperimentState::default();
        let mut verdict = None;
        for look in case["looks"].as_array().expect("looks") {
            let counts: Vec<VariantCounts> = look
                .as_array()
                .expect("look")
                .iter()
                .zip(&weights)
                .enumerate()
                .map(|(i, (arm, &weight))| {
                    let name = if i == 0 {
                        "control".to_string()
                    } else {
                        format!("t{i}")
                    };
                    VariantCounts::new(
                        name,
                        weight,
                        arm[0].as_u64().expect("n"),
                        arm[1].as_u64().expect("x"),
                    )
                })
                .collect();
            // Keep looking past a conclusion would freeze the stats: compare the running
            // state itself, so evaluate from a state without a conclusion.
            state.conclusion = None;
            let next =
                evaluate_experiment(&config, &counts, &state, Duration::ZERO).expect("valid");
            state = next.state.clone();
            verdict = Some(next);
        }
        let verdict = verdict.expect("at least one look");
        assert_treatments(
            &verdict,
            case["treatments"].as_array().expect("treatments"),
            &format!("sequential experiment {case}"),
        );
    }
}

// ---------------------------------------------------------------------------------------
// 2. Decision rules
// ---------------------------------------------------------------------------------------

fn two_arms(control: (u64, u64), treatment: (u64, u64)) -> Vec<VariantCounts> {
    vec![
        VariantCounts::new("control", 50, control.0, control.1),
        VariantCounts::new("treatment", 50, treatment.0, treatment.1),
    ]
}

fn evaluate(config: &ExperimentConfig, counts: &[VariantCounts]) -> ExperimentVerdict {
    evaluate_experiment(
        config,
        counts,
        &ExperimentState::default(),
        Duration::from_secs(60),
    )
    .expect("valid")
}

#[test]
fn collecting_until_every_arm_has_the_minimum_samples() {
    let config = ExperimentConfig::default();
    let verdict = evaluate(&config, &two_arms((1000, 100), (999, 300)));
    assert_eq!(
        verdict.decision,
        Decision::Collecting {
            min_exposures: 999,
            required: 1000
        }
    );
    assert!(
        verdict
            .variants
            .iter()
            .all(|v| v.p_value.is_none() && v.interval.is_none())
    );
    assert_eq!(
        verdict.state,
        ExperimentState::default(),
        "no look is recorded while collecting"
    );
    assert!((verdict.variants[1].lift.expect("lift") - (0.3003003003 - 0.1)).abs() < 1e-9);
}

#[test]
fn sequential_names_the_winner_with_its_lift_and_interval() {
    let verdict = evaluate(
        &ExperimentConfig::default(),
        &two_arms((20_000, 2_000), (20_000, 2_300)),
    );
    let Decision::Winner(winner) = &verdict.decision else {
        panic!("expected a winner, got {:?}", verdict.decision);
    };
    assert_eq!(winner.variant, "treatment");
    assert!(!winner.control);
    assert_eq!(winner.compared_to, "control");
    assert!((winner.lift - 0.015).abs() < 1e-12);
    assert!(winner.interval.lower > 0.0 && winner.interval.contains(0.015));
    assert!((winner.relative_lift.expect("relative") - 0.15).abs() < 1e-12);
    let relative = winner.relative_interval.expect("relative interval");
    assert!((relative.lower - winner.interval.lower / 0.1).abs() < 1e-12);
    assert!(winner.p_value <= 0.05);
    assert_eq!(verdict.state.looks, 1);
    assert!(verdict.state.conclusion.is_some());
}

#[test]
fn sequential_is_running_without_significance_and_inconclusive_after_max_duration() {
    let counts = two_arms((10_000, 1_000), (10_000, 1_030));
    let config = ExperimentConfig {
        max_duration: Some(Duration::from_secs(7 * 86_400)),
        ..ExperimentConfig::default()
    };
    let state = ExperimentState::default();
    let running =
        evaluate_experiment(&config, &counts, &state, Duration::from_secs(86_400)).expect("valid");
    assert_eq!(running.decision, Decision::Running);
    assert!(!running.decision.is_final());
    assert!(running.state.conclusion.is_none());
    assert_eq!(running.state.arms.len(), 1);

    let timed_out = evaluate_experiment(
        &config,
        &counts,
        &running.state,
        Duration::from_secs(7 * 86_400),
    )
    .expect("valid");
    assert_eq!(timed_out.decision, Decision::Inconclusive);
    // Latched: even a later overwhelming result does not change it.
    let later = evaluate_experiment(
        &config,
        &two_arms((50_000, 5_000), (50_000, 7_000)),
        &timed_out.state,
        Duration::from_secs(8 * 86_400),
    )
    .expect("valid");
    assert_eq!(later.decision, Decision::Inconclusive);
    assert_eq!(
        later.variants, timed_out.variants,
        "statistics are frozen with the conclusion"
    );
}

#[test]
fn collecting_past_max_duration_is_inconclusive() {
    let config = ExperimentConfig {
        max_duration: Some(Duration::from_secs(3600)),
        ..ExperimentConfig::default()
    };
    let verdict = evaluate_experiment(
        &config,
        &two_arms((10, 1), (12, 2)),
        &ExperimentState::default(),
        Duration::from_secs(3600),
    )
    .expect("valid");
    assert_eq!(verdict.decision, Decision::Inconclusive);
}

#[test]
fn control_wins_when_every_treatment_is_significantly_worse() {
    let counts = vec![
        VariantCounts::new("control", 34, 20_000, 2_400),
        VariantCounts::new("b", 33, 20_000, 1_900),
        VariantCounts::new("c", 33, 20_000, 2_000),
    ];
    let verdict = evaluate(&ExperimentConfig::default(), &counts);
    let Decision::Winner(winner) = &verdict.decision else {
        panic!("expected the control to win, got {:?}", verdict.decision);
    };
    assert!(winner.control);
    assert_eq!(winner.variant, "control");
    assert_eq!(winner.compared_to, "c", "compared with the best treatment");
    assert!((winner.lift - 0.02).abs() < 1e-12);
    assert!(winner.interval.lower > 0.0);
}

#[test]
fn one_worse_treatment_among_others_is_not_a_decision() {
    let counts = vec![
        VariantCounts::new("control", 34, 20_000, 2_400),
        VariantCounts::new("b", 33, 20_000, 1_900),
        VariantCounts::new("c", 33, 20_000, 2_410),
    ];
    let verdict = evaluate(&ExperimentConfig::default(), &counts);
    assert_eq!(verdict.decision, Decision::Running);
    assert!(verdict.variants[1].significant && !verdict.variants[2].significant);
}

#[test]
fn the_best_significant_treatment_wins() {
    let counts = vec![
        VariantCounts::new("control", 25, 30_000, 3_000),
        VariantCounts::new("b", 25, 30_000, 3_500),
        VariantCounts::new("c", 25, 30_000, 3_700),
        VariantCounts::new("d", 25, 30_000, 3_050),
    ];
    let verdict = evaluate(&ExperimentConfig::default(), &counts);
    let Decision::Winner(winner) = &verdict.decision else {
        panic!("expected a winner, got {:?}", verdict.decision);
    };
    assert_eq!(winner.variant, "c");
    // Holm: the adjusted p-values are at least the raw ones and at most three times them.
    for v in &verdict.variants[1..] {
        let (raw, adjusted) = (v.p_value.expect("p"), v.adjusted_p_value.expect("adjusted"));
        assert!(
            raw <= adjusted && adjusted <= (3.0 * raw).min(1.0) + 1e-15,
            "{v:?}"
        );
    }
}

#[test]
fn fixed_decides_only_at_the_planned_sample_size() {
    let config = ExperimentConfig {
        method: Method::Fixed,
        planned_samples_per_variant: Some(10_000),
        ..ExperimentConfig::default()
    };
    // Overwhelming before the planned size: still no decision and no p-value shown.
    let early = evaluate(&config, &two_arms((5_000, 500), (5_000, 800)));
    assert_eq!(early.decision, Decision::Running);
    assert!(early.variants[1].p_value.is_none());

    let at_plan = evaluate(&config, &two_arms((10_000, 1_000), (10_000, 1_090)));
    assert!(matches!(at_plan.decision, Decision::Winner(ref w) if w.variant == "treatment"));

    let no_difference = evaluate(&config, &two_arms((10_000, 1_000), (10_000, 1_020)));
    assert_eq!(no_difference.decision, Decision::NoDifference);
    // The analysis is not redone on more data.
    let later = evaluate_experiment(
        &config,
        &two_arms((20_000, 2_000), (20_000, 2_400)),
        &no_difference.state,
        Duration::from_secs(60),
    )
    .expect("valid");
    assert_eq!(later.decision, Decision::NoDifference);
}

#[test]
fn sample_ratio_mismatch_halts_and_stays_halted() {
    let config = ExperimentConfig::default();
    let winner = evaluate(&config, &two_arms((20_000, 2_000), (20_000, 2_300)));
    assert!(matches!(winner.decision, Decision::Winner(_)));
    // A mismatch after the winner was named (not yet shipped) replaces it: never ship.
    let skewed = two_arms((20_000, 2_000), (22_000, 2_530));
    let halted = evaluate_experiment(&config, &skewed, &winner.state, Duration::from_secs(60))
        .expect("valid");
    assert!(
        matches!(halted.decision, Decision::SampleRatioMismatch { p_value, .. } if p_value < 0.001)
    );
    assert!(halted.srm.mismatch);
    // Balanced counts later do not clear it.
    let later = evaluate_experiment(
        &config,
        &two_arms((30_000, 3_000), (30_000, 3_450)),
        &halted.state,
        Duration::from_secs(60),
    )
    .expect("valid");
    assert!(matches!(
        later.decision,
        Decision::SampleRatioMismatch { .. }
    ));
    assert!(!later.srm.mismatch, "the check itself is recomputed");

    // Before the minimum samples, too, and with no p-values reported.
    let early = evaluate(&config, &two_arms((800, 10), (600, 10)));
    assert!(matches!(
        early.decision,
        Decision::SampleRatioMismatch { .. }
    ));
    assert!(early.variants.iter().all(|v| v.p_value.is_none()));
}

#[test]
fn unequal_weights_are_not_a_mismatch() {
    let counts = vec![
        VariantCounts::new("control", 90, 90_000, 9_000),
        VariantCounts::new("treatment", 10, 10_050, 1_000),
    ];
    let verdict = evaluate(&ExperimentConfig::default(), &counts);
    assert!(!verdict.srm.mismatch, "{:?}", verdict.srm);
    assert_eq!(verdict.decision, Decision::Running);
}

#[test]
fn degenerate_counts_never_panic_or_leak_nan() {
    type Arm = (u64, u64);
    let tables: &[(Arm, Arm)] = &[
        ((0, 0), (0, 0)),
        ((1000, 0), (1000, 0)),
        ((1000, 1000), (1000, 1000)),
        ((1000, 0), (1000, 1000)),
        ((1000, 1000), (1000, 0)),
        ((1000, 0), (1000, 3)),
        ((5000, 0), (5000, 40)),
        ((1000, 1), (1000, 0)),
    ];
    for method in [Method::Sequential, Method::Fixed] {
        let config = ExperimentConfig {
            method,
            planned_samples_per_variant: Some(1000),
            ..ExperimentConfig::default()
        };
        for &(control, treatment) in tables {
            let mut state = ExperimentState::default();
            for _ in 0..3 {
                let verdict = evaluate_experiment(
                    &config,
                    &two_arms(control, treatment),
                    &state,
                    Duration::from_secs(1),
                )
                .expect("valid");
                let json = serde_json::to_string(&verdict).expect("serializes");
                assert!(
                    !json.contains("null"),
                    "{method:?} {control:?} {treatment:?}: NaN or ∞ leaked: {json}"
                );
                let round_trip: ExperimentState =
                    serde_json::from_value(serde_json::to_value(&verdict.state).expect("state"))
                        .expect("state deserializes");
                assert_eq!(round_trip, verdict.state);
                for v in &verdict.variants {
                    assert!(v.rate.is_finite());
                    assert!(v.p_value.is_none_or(|p| (0.0..=1.0).contains(&p)));
                    assert!(
                        v.interval.is_none_or(|i| i.lower <= i.upper
                            && i.lower >= -1.0
                            && i.upper <= 1.0)
                    );
                }
                state = verdict.state;
            }
        }
    }
    // All-or-nothing arms are still decided on in the obvious direction.
    let verdict = evaluate(
        &ExperimentConfig::default(),
        &two_arms((1000, 0), (1000, 1000)),
    );
    assert!(matches!(verdict.decision, Decision::Winner(ref w) if w.variant == "treatment"));
    let verdict = evaluate(
        &ExperimentConfig::default(),
        &two_arms((1000, 0), (1000, 0)),
    );
    assert_eq!(verdict.decision, Decision::Running);
    assert_eq!(
        verdict.variants[1].relative_lift, None,
        "no relative lift on a 0% control"
    );
}

#[test]
fn invalid_input_is_an_error_not_a_panic() {
    let config = ExperimentConfig::default();
    let state = ExperimentState::default();
    let at = Duration::ZERO;
    let one = vec![VariantCounts::new("control", 100, 10, 1)];
    assert_eq!(
        evaluate_experiment(&config, &one, &state, at),
        Err(ExperimentError::TooFewVariants { count: 1 })
    );
    let duplicate = vec![
        VariantCounts::new("a", 50, 10, 1),
        VariantCounts::new("a", 50, 10, 1),
    ];
    assert!(matches!(
        evaluate_experiment(&config, &duplicate, &state, at),
        Err(ExperimentError::DuplicateVariant { .. })
    ));
    let zero_weight = vec![
        VariantCounts::new("a", 100, 10, 1),
        VariantCounts::new("b", 0, 10, 1),
    ];
    assert!(matches!(
        evaluate_experiment(&config, &zero_weight, &state, at),
        Err(ExperimentError::ZeroWeight { .. })
    ));
    let impossible = two_arms((10, 11), (10, 1));
    let error =
        evaluate_experiment(&config, &impossible, &state, at).expect_err("conversions > exposures");
    assert_eq!(error.category(), "experiment_data");
    for bad in [0.0, 1.0, f64::NAN, -0.1] {
        let config = ExperimentConfig {
            alpha: bad,
            ..ExperimentConfig::default()
        };
        assert!(matches!(
            evaluate_experiment(&config, &two_arms((10, 1), (10, 1)), &state, at),
            Err(ExperimentError::InvalidAlpha { .. })
        ));
    }
    let fixed_without_plan = ExperimentConfig {
        method: Method::Fixed,
        ..ExperimentConfig::default()
    };
    let error = evaluate_experiment(&fixed_without_plan, &two_arms((10, 1), (10, 1)), &state, at)
        .expect_err("no plan");
    assert_eq!(error, ExperimentError::MissingPlannedSamples);
    assert_eq!(error.category(), "experiment_config");
}

#[test]
fn state_survives_a_status_round_trip_and_a_restart() {
    let config = ExperimentConfig::default();
    let looks = [
        two_arms((4000, 400), (4000, 470)),
        two_arms((8000, 800), (8000, 890)),
        two_arms((12000, 1200), (12000, 1300)),
    ];
    let mut stored = serde_json::to_value(ExperimentState::default()).expect("state");
    let mut in_memory = ExperimentState::default();
    for counts in &looks {
        // A fresh operator reads the state back from status at every look.
        let from_status: ExperimentState = serde_json::from_value(stored).expect("state");
        let verdict = evaluate_experiment(&config, counts, &from_status, Duration::from_secs(60))
            .expect("valid");
        let kept = evaluate_experiment(&config, counts, &in_memory, Duration::from_secs(60))
            .expect("valid");
        assert_eq!(verdict, kept);
        stored = serde_json::to_value(&verdict.state).expect("state");
        in_memory = kept.state;
    }
    assert_eq!(in_memory.looks, 3);
    // The running p-value never goes up between looks.
    let arm = &in_memory.arms[0];
    let last = mixture_look(1200, 12000, 1300, 12000, 0.05, 0.1);
    assert!(arm.p_value <= last.p_value);
}

#[test]
fn interval_helpers() {
    let interval = Interval::around_difference(0.5, 0.7);
    assert!(
        (interval.lower + 0.2).abs() < 1e-15 && interval.upper == 1.0,
        "{interval:?}"
    );
    assert_eq!(
        Interval::around_difference(0.0, f64::INFINITY),
        Interval::FULL_DIFFERENCE
    );
    assert_eq!(interval.scaled(0.0), None);
}

// ---------------------------------------------------------------------------------------
// 3. Simulations (seeded; release mode in scripts/test-all)
// ---------------------------------------------------------------------------------------

const EXPERIMENTS: usize = 2_000;
const LOOKS: usize = 50;
const USERS_PER_ARM_PER_LOOK: u64 = 200;
const ALPHA: f64 = 0.05;

/// Monte-Carlo tolerance: three binomial standard errors around α.
fn tolerance(n: usize) -> f64 {
    3.0 * (ALPHA * (1.0 - ALPHA) / n as f64).sqrt()
}

fn draw(rng: &mut ChaCha8Rng, n: u64, p: f64) -> u64 {
    Binomial::new(n, p).expect("valid binomial").sample(rng)
}

/// Outcome of one simulated experiment.
struct Run {
    /// The look (1-based) of the first final decision, and that decision.
    sequential: Option<(usize, Decision)>,
    /// Whether any look's naive two-proportion z-test had p < α.
    naive_rejected: bool,
    /// The fixed-horizon z-test at the last look.
    final_z_rejected: bool,
    /// A single z-test at look `LOOKS / 2` (half the budget).
    half_z_rejected: bool,
}

/// Runs one experiment with `rates` per arm (control first), equal traffic, `LOOKS` looks of
/// `USERS_PER_ARM_PER_LOOK` new users per arm, through the real engine with its state.
fn simulate(rng: &mut ChaCha8Rng, rates: &[f64]) -> Run {
    let config = ExperimentConfig {
        alpha: ALPHA,
        ..ExperimentConfig::default()
    };
    let weight = 100 / rates.len() as u32;
    let mut counts: Vec<VariantCounts> = (0..rates.len())
        .map(|i| VariantCounts::new(format!("arm{i}"), weight, 0, 0))
        .collect();
    let mut state = ExperimentState::default();
    let mut run = Run {
        sequential: None,
        naive_rejected: false,
        final_z_rejected: false,
        half_z_rejected: false,
    };
    for look in 1..=LOOKS {
        for (arm, &p) in counts.iter_mut().zip(rates) {
            arm.exposures += USERS_PER_ARM_PER_LOOK;
            arm.conversions += draw(rng, USERS_PER_ARM_PER_LOOK, p);
        }
        if run.sequential.is_none() {
            let verdict =
                evaluate_experiment(&config, &counts, &state, Duration::from_secs(look as u64))
                    .expect("valid");
            if verdict.decision.is_final() {
                run.sequential = Some((look, verdict.decision.clone()));
            }
            state = verdict.state;
        }
        // Naive: a plain z-test at every look where the engine would look, stop at p < α.
        if counts[0].exposures >= config.min_samples_per_variant {
            let (c, t) = (&counts[0], &counts[1]);
            let test = two_proportion_z_test(
                c.conversions,
                c.exposures,
                t.conversions,
                t.exposures,
                ALPHA,
            );
            run.naive_rejected |= test.p_value < ALPHA;
            if look == LOOKS {
                run.final_z_rejected = test.p_value < ALPHA;
            }
            if look == LOOKS / 2 {
                run.half_z_rejected = test.p_value < ALPHA;
            }
        }
    }
    run
}

#[test]
#[ignore = "Monte-Carlo: slow in debug builds; scripts/test-all runs it with --release --include-ignored"]
fn aa_sequential_controls_false_positives_under_50_looks_and_naive_peeking_does_not() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x0AA0_5EED);
    let (mut sequential, mut naive, mut fixed) = (0usize, 0usize, 0usize);
    for _ in 0..EXPERIMENTS {
        let run = simulate(&mut rng, &[0.10, 0.10]);
        if let Some((_, decision)) = &run.sequential {
            assert!(
                !matches!(
                    decision,
                    Decision::SampleRatioMismatch { .. } | Decision::NoDifference
                ),
                "{decision:?}"
            );
            sequential += usize::from(matches!(decision, Decision::Winner(_)));
        }
        naive += usize::from(run.naive_rejected);
        fixed += usize::from(run.final_z_rejected);
    }
    let rate = |k: usize| k as f64 / EXPERIMENTS as f64;
    let bound = ALPHA + tolerance(EXPERIMENTS);
    println!(
        "A/A, {EXPERIMENTS} experiments x {LOOKS} looks: sequential FPR {:.4} (bound {bound:.4}), \
         naive repeated z-test FPR {:.4}, single z-test at the last look {:.4}",
        rate(sequential),
        rate(naive),
        rate(fixed)
    );
    assert!(
        rate(sequential) <= bound,
        "sequential FPR {} > {bound}",
        rate(sequential)
    );
    assert!(
        rate(naive) > 2.0 * ALPHA,
        "naive peeking should inflate the FPR, got {}",
        rate(naive)
    );
    assert!(
        rate(fixed) <= bound,
        "one z-test at a fixed n is a valid test: {}",
        rate(fixed)
    );
}

#[test]
#[ignore = "Monte-Carlo: slow in debug builds; scripts/test-all runs it with --release --include-ignored"]
fn aaa_holm_controls_the_family_wise_error_rate() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x0AAA_5EED);
    let mut any_winner = 0usize;
    for _ in 0..EXPERIMENTS {
        let run = simulate(&mut rng, &[0.10, 0.10, 0.10]);
        any_winner += usize::from(matches!(run.sequential, Some((_, Decision::Winner(_)))));
    }
    let rate = any_winner as f64 / EXPERIMENTS as f64;
    let bound = ALPHA + tolerance(EXPERIMENTS);
    println!(
        "A/A/A with Holm, {EXPERIMENTS} x {LOOKS} looks: family-wise error {rate:.4} (bound {bound:.4})"
    );
    assert!(rate <= bound, "family-wise error {rate} > {bound}");
}

#[test]
#[ignore = "Monte-Carlo: slow in debug builds; scripts/test-all runs it with --release --include-ignored"]
fn sequential_detects_a_known_lift() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x0B_5EED);
    let (mut detected, mut wrong, mut fixed, mut half_fixed) = (0usize, 0usize, 0usize, 0usize);
    let mut stopping_looks = Vec::new();
    for _ in 0..EXPERIMENTS {
        let run = simulate(&mut rng, &[0.10, 0.12]);
        match &run.sequential {
            Some((look, Decision::Winner(winner))) if winner.variant == "arm1" => {
                detected += 1;
                stopping_looks.push(*look);
                assert!(winner.interval.lower > 0.0);
            }
            Some((_, Decision::Winner(_))) => wrong += 1,
            _ => {}
        }
        fixed += usize::from(run.final_z_rejected);
        half_fixed += usize::from(run.half_z_rejected);
    }
    stopping_looks.sort_unstable();
    let by_half = stopping_looks
        .iter()
        .filter(|&&look| look <= LOOKS / 2)
        .count();
    let power = detected as f64 / EXPERIMENTS as f64;
    let median_look = stopping_looks
        .get(stopping_looks.len() / 2)
        .copied()
        .unwrap_or(0);
    println!(
        "power, 0.10 -> 0.12, {EXPERIMENTS} x {LOOKS} looks of {USERS_PER_ARM_PER_LOOK}/arm: sequential {power:.4} \
         (median stop at look {median_look} = {} users/arm), wrong-direction winners {wrong}, \
         single z-test at {} users/arm {:.4}; by {} users/arm: sequential {:.4}, single z-test {:.4}",
        median_look as u64 * USERS_PER_ARM_PER_LOOK,
        LOOKS as u64 * USERS_PER_ARM_PER_LOOK,
        fixed as f64 / EXPERIMENTS as f64,
        (LOOKS / 2) as u64 * USERS_PER_ARM_PER_LOOK,
        by_half as f64 / EXPERIMENTS as f64,
        half_fixed as f64 / EXPERIMENTS as f64
    );
    assert!(power >= 0.80, "power {power} < 0.80");
    assert_eq!(wrong, 0);
}

#[test]
#[ignore = "Monte-Carlo: slow in debug builds; scripts/test-all runs it with --release --include-ignored"]
fn repeated_srm_check_rarely_false_alarms() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x05A4_5EED);
    let mut alarms = 0usize;
    for _ in 0..EXPERIMENTS {
        let mut exposures = [0u64; 2];
        for _ in 0..LOOKS {
            let to_control = draw(&mut rng, 2 * USERS_PER_ARM_PER_LOOK, 0.5);
            exposures[0] += to_control;
            exposures[1] += 2 * USERS_PER_ARM_PER_LOOK - to_control;
            if sample_ratio_test(&exposures, &[50, 50]).mismatch {
                alarms += 1;
                break;
            }
        }
    }
    let rate = alarms as f64 / EXPERIMENTS as f64;
    println!(
        "SRM false alarms over {LOOKS} looks at p < 0.001: {rate:.4} of {EXPERIMENTS} correct 50/50 splits"
    );
    // Union bound over 50 looks at 0.001 each.
    assert!(rate <= LOOKS as f64 * 0.001, "SRM false-alarm rate {rate}");
}

#[test]
#[ignore = "Monte-Carlo: slow in debug builds; scripts/test-all runs it with --release --include-ignored"]
fn aa_sequential_false_positive_rate_holds_across_base_rates() {
    let bound = ALPHA + tolerance(EXPERIMENTS);
    for (seed, p) in [(0x0A_01, 0.005), (0x0A_02, 0.02), (0x0A_03, 0.5)] {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut false_positives = 0usize;
        for _ in 0..EXPERIMENTS {
            let run = simulate(&mut rng, &[p, p]);
            false_positives +=
                usize::from(matches!(run.sequential, Some((_, Decision::Winner(_)))));
        }
        let rate = false_positives as f64 / EXPERIMENTS as f64;
        println!("A/A at base rate {p}: sequential FPR {rate:.4} (bound {bound:.4})");
        assert!(rate <= bound, "base rate {p}: FPR {rate} > {bound}");
    }
}

#[test]
fn state_and_verdict_have_json_schemas_for_the_crd() {
    let state = serde_json::to_value(schemars::schema_for!(ExperimentState)).expect("schema");
    assert!(state.to_string().contains("pValue"), "{state}");
    let verdict = serde_json::to_value(schemars::schema_for!(ExperimentVerdict)).expect("schema");
    assert!(
        verdict.to_string().contains("SampleRatioMismatch"),
        "{verdict}"
    );
}
