//! Distributions and fixed-horizon tests: the standard normal, the chi-square tail, the
//! two-proportion z-test and Holm's step-down adjustment.
//!
//! The distributions come from `statrs`; everything here is total: no input makes these
//! functions panic, and none of them returns NaN for finite inputs in their documented range.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};

/// A closed interval `[lower, upper]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Interval {
    /// The lower bound, inclusive, in the unit of the lift it bounds.
    pub lower: f64,
    /// The upper bound, inclusive, in the unit of the lift it bounds.
    pub upper: f64,
}

impl Interval {
    /// The widest interval a difference of two proportions can have.
    pub const FULL_DIFFERENCE: Interval = Interval {
        lower: -1.0,
        upper: 1.0,
    };

    /// `centre ± half_width`, clipped to `[-1, 1]`, the range of a difference of two rates.
    /// A non-finite half-width gives the full range.
    pub fn around_difference(centre: f64, half_width: f64) -> Interval {
        if !centre.is_finite() || !half_width.is_finite() {
            return Interval::FULL_DIFFERENCE;
        }
        Interval {
            lower: (centre - half_width).max(-1.0),
            upper: (centre + half_width).min(1.0),
        }
    }

    /// Whether `x` lies inside the closed interval.
    pub fn contains(&self, x: f64) -> bool {
        self.lower <= x && x <= self.upper
    }

    /// Every bound divided by `by`, which must be positive (used for relative lift).
    pub fn scaled(&self, by: f64) -> Option<Interval> {
        (by > 0.0 && by.is_finite()).then(|| Interval {
            lower: self.lower / by,
            upper: self.upper / by,
        })
    }
}

/// Φ(x), the standard normal CDF.
pub fn normal_cdf(x: f64) -> f64 {
    Normal::standard().cdf(x)
}

/// 1 − Φ(x), computed without cancellation (accurate far into the upper tail).
pub fn normal_sf(x: f64) -> f64 {
    Normal::standard().sf(x)
}

/// Φ⁻¹(p) for `p` in `[0, 1]`; `p` outside that range (or NaN) is clamped into it.
pub fn normal_quantile(p: f64) -> f64 {
    let p = if p.is_nan() { 0.5 } else { p.clamp(0.0, 1.0) };
    Normal::standard().inverse_cdf(p)
}

/// Two-sided p-value of a standard normal statistic: 2·(1 − Φ(|z|)), at most 1.
pub fn two_sided_p(z: f64) -> f64 {
    if z.is_nan() {
        return 1.0;
    }
    (2.0 * normal_sf(z.abs())).min(1.0)
}

/// P(χ²_df ≥ statistic), the upper tail of the chi-square distribution.
/// Returns 1 for a non-positive statistic and for `df == 0`.
pub fn chi_square_sf(statistic: f64, df: u32) -> f64 {
    if df == 0 || statistic.is_nan() || statistic <= 0.0 {
        return 1.0;
    }
    match ChiSquared::new(f64::from(df)) {
        Ok(distribution) => distribution.sf(statistic).clamp(0.0, 1.0),
        Err(_) => 1.0,
    }
}

/// Conversions over exposures, 0 when nobody was exposed.
pub fn rate(conversions: u64, exposures: u64) -> f64 {
    if exposures == 0 {
        0.0
    } else {
        conversions as f64 / exposures as f64
    }
}

/// The unpooled variance of `p_b − p_a`: `p_a(1−p_a)/n_a + p_b(1−p_b)/n_b`.
/// Returns 0 when an arm has no exposures; callers treat 0 as "no information".
pub fn unpooled_variance(p_a: f64, n_a: u64, p_b: f64, n_b: u64) -> f64 {
    if n_a == 0 || n_b == 0 {
        return 0.0;
    }
    p_a * (1.0 - p_a) / n_a as f64 + p_b * (1.0 - p_b) / n_b as f64
}

/// The pooled variance of `p_b − p_a` under `p_a = p_b`: `p̄(1−p̄)(1/n_a + 1/n_b)`.
pub fn pooled_variance(x_a: u64, n_a: u64, x_b: u64, n_b: u64) -> f64 {
    if n_a == 0 || n_b == 0 {
        return 0.0;
    }
    let pooled = rate(x_a + x_b, n_a + n_b);
    pooled * (1.0 - pooled) * (1.0 / n_a as f64 + 1.0 / n_b as f64)
}

/// The result of a two-sided two-proportion z-test of arm B against arm A.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ZTest {
    /// `p_b − p_a`.
    pub difference: f64,
    /// The difference over its pooled standard error; 0 when that error is 0.
    pub z: f64,
    /// Two-sided p-value from the pooled z; 1 when the pooled standard error is 0.
    pub p_value: f64,
    /// Wald interval at level 1 − α with the unpooled standard error (the pooled one when the
    /// unpooled is 0, as when one arm converts 0% and the other 100%), clipped to `[-1, 1]`.
    pub interval: Interval,
}

/// Two-proportion z-test of B (`x_b` conversions of `n_b`) against A (`x_a` of `n_a`).
///
/// The p-value uses the pooled standard error (the null hypothesis says both rates are
/// equal); the interval uses the unpooled one, the usual textbook pairing. With no exposures
/// in an arm, or no variance at all, the result carries no evidence: p = 1, full interval.
pub fn two_proportion_z_test(x_a: u64, n_a: u64, x_b: u64, n_b: u64, alpha: f64) -> ZTest {
    let p_a = rate(x_a, n_a);
    let p_b = rate(x_b, n_b);
    let difference = p_b - p_a;
    let pooled = pooled_variance(x_a, n_a, x_b, n_b);
    if n_a == 0 || n_b == 0 || pooled <= 0.0 {
        return ZTest {
            difference,
            z: 0.0,
            p_value: 1.0,
            interval: Interval::FULL_DIFFERENCE,
        };
    }
    let z = difference / pooled.sqrt();
    let unpooled = unpooled_variance(p_a, n_a, p_b, n_b);
    let se = if unpooled > 0.0 { unpooled } else { pooled }.sqrt();
    let critical = normal_quantile(1.0 - alpha / 2.0);
    ZTest {
        difference,
        z,
        p_value: two_sided_p(z),
        interval: Interval::around_difference(difference, critical * se),
    }
}

/// Holm's step-down adjusted p-values, in the order given.
///
/// Sort ascending, multiply the i-th smallest (0-based) by `m − i`, take the running maximum
/// and cap at 1. Rejecting where the adjusted value is ≤ α controls the family-wise error
/// rate at α under any dependence between the tests. NaN inputs count as 1.
pub fn holm(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let clean: Vec<f64> = p_values
        .iter()
        .map(|p| if p.is_nan() { 1.0 } else { p.clamp(0.0, 1.0) })
        .collect();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| clean[a].total_cmp(&clean[b]).then(a.cmp(&b)));
    let mut adjusted = vec![1.0; m];
    let mut running = 0.0_f64;
    for (rank, &index) in order.iter().enumerate() {
        let scaled = ((m - rank) as f64 * clean[index]).min(1.0);
        running = running.max(scaled);
        adjusted[index] = running;
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn z_test_without_variance_carries_no_evidence() {
        for (x_a, n_a, x_b, n_b) in [(0, 0, 0, 0), (0, 10, 0, 10), (10, 10, 10, 10), (0, 0, 5, 9)] {
            let test = two_proportion_z_test(x_a, n_a, x_b, n_b, 0.05);
            assert_eq!(test.p_value, 1.0);
            assert_eq!(test.interval, Interval::FULL_DIFFERENCE);
            assert!(test.difference.is_finite());
        }
    }

    #[test]
    fn z_test_with_opposite_extremes_uses_the_pooled_error_for_the_interval() {
        let test = two_proportion_z_test(0, 50, 50, 50, 0.05);
        assert_eq!(test.difference, 1.0);
        assert!(test.p_value < 1e-10);
        assert!(test.interval.lower < 1.0 && test.interval.upper == 1.0);
    }

    #[test]
    fn holm_matches_a_hand_computation() {
        let adjusted = holm(&[0.01, 0.04, 0.03, 0.005]);
        let expected = [0.03, 0.06, 0.06, 0.02];
        for (a, e) in adjusted.iter().zip(expected) {
            assert!((a - e).abs() < 1e-15, "{adjusted:?}");
        }
        assert_eq!(holm(&[]), Vec::<f64>::new());
        assert_eq!(holm(&[f64::NAN, 0.5]), vec![1.0, 1.0]);
    }

    #[test]
    fn tails_are_total() {
        assert_eq!(chi_square_sf(0.0, 3), 1.0);
        assert_eq!(chi_square_sf(f64::NAN, 3), 1.0);
        assert_eq!(chi_square_sf(5.0, 0), 1.0);
        assert_eq!(chi_square_sf(f64::INFINITY, 2), 0.0);
        assert_eq!(two_sided_p(f64::NAN), 1.0);
        assert_eq!(two_sided_p(0.0), 1.0);
        assert!(normal_quantile(f64::NAN).abs() < 1e-12);
        assert_eq!(normal_quantile(2.0), f64::INFINITY);
    }
}
