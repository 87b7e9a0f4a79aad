//! The mixture sequential probability ratio test (mSPRT) for a difference of two conversion
//! rates, with a normal mixing distribution, and its always-valid p-value and confidence
//! sequence.
//!
//! Reference: R. Johari, P. Koomen, L. Pekelis, D. Walsh, "Always Valid Inference: Continuous
//! Monitoring of A/B Tests", Operations Research 70(3), 2022 (arXiv:1512.04922), sections 3–4;
//! the two-stream normal approximation is their section 5 (Optimizely's implementation).
//!
//! With `θ̂ = p̂_B − p̂_A`, its estimated variance `V` and a `N(θ₀, τ²)` mixing distribution
//! over the effect under test, the mixture likelihood ratio against `H₀: θ = θ₀` is
//!
//! ```text
//! Λ(θ₀) = ∫ φ(θ̂; θ, V) / φ(θ̂; θ₀, V) · φ(θ; θ₀, τ²) dθ
//!       = sqrt(V / (V + τ²)) · exp( (θ̂ − θ₀)² τ² / (2 V (V + τ²)) )
//! ```
//!
//! Under `H₀`, `Λ` is a nonnegative martingale with mean 1 (exactly for Gaussian increments
//! with known variance), so by Ville's inequality `P(∃n: Λₙ ≥ 1/α) ≤ α`. Hence:
//!
//! * the always-valid p-value is the running minimum `pₙ = min(pₙ₋₁, 1/Λₙ(0))`, capped at 1;
//! * the always-valid confidence sequence is the running intersection of
//!   `{θ₀ : Λₙ(θ₀) < 1/α}`, which solves to
//!   `θ̂ₙ ± sqrt( V(V+τ²)/τ² · (2·ln(1/α) + ln((V+τ²)/V)) )`.
//!
//! The two are dual: the running p-value is ≤ α exactly when the running intersection
//! excludes 0. `V` is the plug-in unpooled variance, so the guarantee is asymptotic (it needs
//! enough conversions per arm for the normal approximation), which is why the engine only
//! starts monitoring once every arm has its minimum samples.

use super::stats::{Interval, pooled_variance, rate, unpooled_variance};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What one look at cumulative counts says about `θ = p_B − p_A`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MixtureLook {
    /// `θ̂ = p̂_B − p̂_A`.
    pub difference: f64,
    /// The variance `V` of `θ̂` that was used (0 when the data carry no information).
    pub variance: f64,
    /// The mixing variance `τ²`.
    pub tau_squared: f64,
    /// `ln Λ(0)`; 0 when the data carry no information.
    pub log_likelihood_ratio: f64,
    /// `min(1, 1/Λ(0))` at this look alone (not yet the running minimum).
    pub p_value: f64,
    /// `{θ₀ : Λ(θ₀) < 1/α}` at this look alone, clipped to `[-1, 1]`.
    pub interval: Interval,
}

/// `ln Λ(θ₀)` for an observed difference `θ̂` at distance `deviation = θ̂ − θ₀` from the null.
/// Returns 0 (no evidence) unless `variance` and `tau_squared` are positive and finite.
pub fn log_likelihood_ratio(deviation: f64, variance: f64, tau_squared: f64) -> f64 {
    if !informative(variance, tau_squared) || !deviation.is_finite() {
        return 0.0;
    }
    let ratio = tau_squared / variance;
    -0.5 * ratio.ln_1p()
        + deviation * deviation * tau_squared / (2.0 * variance * (variance + tau_squared))
}

/// Half-width of the always-valid interval at one look:
/// `sqrt( V(V+τ²)/τ² · (2·ln(1/α) + ln((V+τ²)/V)) )`. Infinite without information.
pub fn confidence_half_width(variance: f64, tau_squared: f64, alpha: f64) -> f64 {
    if !(informative(variance, tau_squared) && alpha > 0.0 && alpha < 1.0) {
        return f64::INFINITY;
    }
    let ratio = tau_squared / variance;
    let scale = variance * (variance + tau_squared) / tau_squared;
    (scale * (-2.0 * alpha.ln() + ratio.ln_1p())).sqrt()
}

fn informative(variance: f64, tau_squared: f64) -> bool {
    variance.is_finite() && variance > 0.0 && tau_squared.is_finite() && tau_squared > 0.0
}

/// One look of the mSPRT of arm B (`x_b` conversions of `n_b` exposures) against arm A.
///
/// * `V` is the unpooled `p̂_A(1−p̂_A)/n_A + p̂_B(1−p̂_B)/n_B`. When that is 0 but the rates
///   differ (one arm at 0%, the other at 100%) the pooled `p̄(1−p̄)(1/n_A + 1/n_B)` is used;
///   when both are 0 the look carries no information: p = 1, interval `[-1, 1]`.
/// * `τ = relative_lift × p̄`, with `p̄` the pooled rate of the two arms: the mixture puts
///   most of its mass on effects of about `relative_lift` of the current rate.
pub fn mixture_look(
    x_a: u64,
    n_a: u64,
    x_b: u64,
    n_b: u64,
    alpha: f64,
    relative_lift: f64,
) -> MixtureLook {
    let p_a = rate(x_a, n_a);
    let p_b = rate(x_b, n_b);
    let difference = p_b - p_a;
    let unpooled = unpooled_variance(p_a, n_a, p_b, n_b);
    let variance = if unpooled > 0.0 {
        unpooled
    } else {
        pooled_variance(x_a, n_a, x_b, n_b)
    };
    let tau = relative_lift * rate(x_a + x_b, n_a + n_b);
    let tau_squared = tau * tau;
    if n_a == 0 || n_b == 0 || !informative(variance, tau_squared) {
        return MixtureLook {
            difference,
            variance: 0.0,
            tau_squared,
            log_likelihood_ratio: 0.0,
            p_value: 1.0,
            interval: Interval::FULL_DIFFERENCE,
        };
    }
    let log_likelihood_ratio = log_likelihood_ratio(difference, variance, tau_squared);
    MixtureLook {
        difference,
        variance,
        tau_squared,
        log_likelihood_ratio,
        p_value: (-log_likelihood_ratio).exp().min(1.0),
        interval: Interval::around_difference(
            difference,
            confidence_half_width(variance, tau_squared, alpha),
        ),
    }
}

/// The running always-valid p-value and confidence sequence of one treatment-vs-control
/// comparison: the state the caller must keep between looks (in `status`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SequentialArmState {
    /// The treatment variant's name.
    pub name: String,
    /// Running minimum of `1/Λ(0)` over the looks so far (1 before the first look).
    pub p_value: f64,
    /// Running intersection of the per-look intervals for `p_treatment − p_control`.
    pub interval: Interval,
    /// Set when the running intersection came out empty and was restarted from the current
    /// look. That can only happen when the assumptions fail (for instance the effect drifts
    /// over time); it is kept so the status can say so.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interval_restarted: bool,
}

impl SequentialArmState {
    /// The state before any look.
    pub fn new(name: impl Into<String>) -> Self {
        SequentialArmState {
            name: name.into(),
            p_value: 1.0,
            interval: Interval::FULL_DIFFERENCE,
            interval_restarted: false,
        }
    }

    /// Folds one look into the running p-value and interval.
    ///
    /// A stored state that is not finite or out of range (a hand-edited status) is treated
    /// as the initial state rather than trusted.
    pub fn update(&self, look: &MixtureLook) -> SequentialArmState {
        let previous_p = if (0.0..=1.0).contains(&self.p_value) {
            self.p_value
        } else {
            1.0
        };
        let previous = if self.interval.lower.is_finite()
            && self.interval.upper.is_finite()
            && self.interval.lower <= self.interval.upper
        {
            self.interval
        } else {
            Interval::FULL_DIFFERENCE
        };
        let intersection = Interval {
            lower: previous.lower.max(look.interval.lower),
            upper: previous.upper.min(look.interval.upper),
        };
        let (interval, restarted) = if intersection.lower <= intersection.upper {
            (intersection, false)
        } else {
            (look.interval, true)
        };
        SequentialArmState {
            name: self.name.clone(),
            p_value: previous_p.min(look.p_value),
            interval,
            interval_restarted: self.interval_restarted || restarted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_boundary_is_where_the_likelihood_ratio_reaches_one_over_alpha() {
        let (variance, tau_squared, alpha) = (2.3e-5, 1.1e-4, 0.05);
        let half = confidence_half_width(variance, tau_squared, alpha);
        let at_boundary = log_likelihood_ratio(half, variance, tau_squared);
        assert!(
            (at_boundary - (1.0 / alpha).ln()).abs() < 1e-12,
            "{at_boundary}"
        );
    }

    #[test]
    fn p_value_and_interval_are_dual() {
        for (x_a, x_b) in [(100, 100), (100, 125), (100, 140), (100, 60), (0, 9)] {
            let look = mixture_look(x_a, 1000, x_b, 1000, 0.05, 0.1);
            assert_eq!(
                look.p_value <= 0.05,
                !look.interval.contains(0.0),
                "{look:?}"
            );
        }
    }

    #[test]
    fn degenerate_counts_carry_no_evidence() {
        for (x_a, n_a, x_b, n_b) in [
            (0, 0, 0, 0),
            (0, 1000, 0, 1000),
            (1000, 1000, 1000, 1000),
            (0, 0, 3, 10),
        ] {
            let look = mixture_look(x_a, n_a, x_b, n_b, 0.05, 0.1);
            assert_eq!(look.p_value, 1.0, "{look:?}");
            assert_eq!(look.interval, Interval::FULL_DIFFERENCE);
            assert_eq!(look.log_likelihood_ratio, 0.0);
        }
    }

    #[test]
    fn opposite_extremes_use_the_pooled_variance() {
        let look = mixture_look(0, 1000, 1000, 1000, 0.05, 0.1);
        assert!(look.variance > 0.0);
        assert!(look.p_value < 1e-6);
        assert!(look.interval.lower > 0.0 && look.interval.upper == 1.0);
    }

    #[test]
    fn state_keeps_the_running_minimum_and_intersection() {
        let start = SequentialArmState::new("b");
        let strong = mixture_look(100, 1000, 150, 1000, 0.05, 0.1);
        let weak = mixture_look(100, 2000, 210, 2000, 0.05, 0.1);
        let after = start.update(&strong).update(&weak);
        assert_eq!(after.p_value, strong.p_value.min(weak.p_value));
        assert_eq!(
            after.interval.lower,
            strong.interval.lower.max(weak.interval.lower)
        );
        assert_eq!(
            after.interval.upper,
            strong.interval.upper.min(weak.interval.upper)
        );
        assert!(!after.interval_restarted);
    }

    #[test]
    fn empty_intersection_restarts_from_the_current_look() {
        let state = SequentialArmState {
            name: "b".into(),
            p_value: 0.01,
            interval: Interval {
                lower: 0.2,
                upper: 0.3,
            },
            interval_restarted: false,
        };
        let look = mixture_look(100, 1000, 100, 1000, 0.05, 0.1);
        let after = state.update(&look);
        assert_eq!(after.interval, look.interval);
        assert!(after.interval_restarted);
        assert_eq!(after.p_value, 0.01);
    }

    #[test]
    fn corrupt_state_is_not_trusted() {
        let state = SequentialArmState {
            name: "b".into(),
            p_value: f64::NAN,
            interval: Interval {
                lower: 0.5,
                upper: -0.5,
            },
            interval_restarted: false,
        };
        let look = mixture_look(100, 1000, 100, 1000, 0.05, 0.1);
        let after = state.update(&look);
        assert_eq!(after.p_value, look.p_value);
        assert_eq!(after.interval, look.interval);
    }
}
