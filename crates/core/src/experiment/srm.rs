//! Sample-ratio mismatch: Pearson's chi-square goodness-of-fit test of the exposures per
//! variant against the split the weights ask for.
//!
//! A mismatch means the assignment or the exposure logging is broken (a bot filter that hits
//! one arm, a redirect that drops users, a cache that pins a variant), so the comparison of
//! conversion rates is not trustworthy in either direction.

use super::stats::chi_square_sf;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The p-value below which a sample-ratio mismatch is declared.
pub const SRM_THRESHOLD: f64 = 0.001;

/// The smallest expected count per variant for which the chi-square approximation is
/// trusted (Cochran's rule); below it the test is reported but never flags a mismatch.
pub const MIN_EXPECTED_PER_VARIANT: f64 = 5.0;

/// The outcome of the sample-ratio check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SrmResult {
    /// `Σ (observedᵢ − expectedᵢ)² / expectedᵢ`, with `expectedᵢ = total · weightᵢ / Σ weights`.
    pub statistic: f64,
    /// Number of variants − 1.
    pub degrees_of_freedom: u32,
    /// `P(χ²_df ≥ statistic)`.
    pub p_value: f64,
    /// Whether every variant expects at least 5 exposures, the least at which the test is
    /// trusted; an inapplicable test never declares a mismatch.
    pub applicable: bool,
    /// Whether a mismatch is declared: the test is applicable and `pValue` is below 0.001.
    pub mismatch: bool,
}

/// Chi-square test of `exposures` against `weights` (same length, weights positive).
///
/// With no exposures at all, or weights that sum to 0, the result is a statistic of 0 and
/// p = 1. A variant with weight 0 is skipped (it expects nobody); the engine rejects such
/// configurations before calling this.
pub fn sample_ratio_test(exposures: &[u64], weights: &[u32]) -> SrmResult {
    let total: f64 = exposures.iter().map(|&n| n as f64).sum();
    let weight_sum: f64 = weights.iter().map(|&w| f64::from(w)).sum();
    let k = exposures.len().min(weights.len());
    let degrees_of_freedom = u32::try_from(k.saturating_sub(1)).unwrap_or(u32::MAX);
    if total <= 0.0 || weight_sum <= 0.0 || k < 2 {
        return SrmResult {
            statistic: 0.0,
            degrees_of_freedom,
            p_value: 1.0,
            applicable: false,
            mismatch: false,
        };
    }
    let mut statistic = 0.0;
    let mut applicable = true;
    for (&observed, &weight) in exposures.iter().zip(weights) {
        let expected = total * f64::from(weight) / weight_sum;
        if expected <= 0.0 {
            continue;
        }
        applicable &= expected >= MIN_EXPECTED_PER_VARIANT;
        let deviation = observed as f64 - expected;
        statistic += deviation * deviation / expected;
    }
    let p_value = chi_square_sf(statistic, degrees_of_freedom);
    SrmResult {
        statistic,
        degrees_of_freedom,
        p_value,
        applicable,
        mismatch: applicable && p_value < SRM_THRESHOLD,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_split_is_fine() {
        let result = sample_ratio_test(&[5000, 5000], &[50, 50]);
        assert_eq!(result.statistic, 0.0);
        assert_eq!(result.p_value, 1.0);
        assert!(result.applicable && !result.mismatch);
    }

    #[test]
    fn skewed_split_is_a_mismatch() {
        let result = sample_ratio_test(&[5200, 4800], &[50, 50]);
        assert!((result.statistic - 16.0).abs() < 1e-12);
        assert!(result.p_value < 1e-4);
        assert!(result.mismatch);
    }

    #[test]
    fn tiny_samples_never_flag() {
        let result = sample_ratio_test(&[9, 0], &[50, 50]);
        assert!(!result.applicable);
        assert!(!result.mismatch);
        let empty = sample_ratio_test(&[0, 0, 0], &[34, 33, 33]);
        assert_eq!(
            (empty.p_value, empty.degrees_of_freedom, empty.mismatch),
            (1.0, 2, false)
        );
    }
}
