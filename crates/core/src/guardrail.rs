//! Guardrail statistics: is the treatment cohort (users with the flag on) worse than the
//! control cohort (users with it off), beyond a tolerance? Pure functions, no I/O, no clock.
//! See `docs/guardrails.md` for the method and its guarantee.
//!
//! Each look passes the cumulative counts of bad and total events per cohort since the ramp
//! started. The counts between two looks form one *stratum*: within it, the treatment is
//! compared with the control of the same minutes. Over the strata,
//!
//! ```text
//! O = Σ bad_T,k                       observed treatment bad events
//! N = Σ n_T,k                         treatment events
//! E = Σ n_T,k · p_C,k                 bad events the treatment would have had at the control's rate
//! W = Σ n_T,k² / n_C,k                weight of the control's noise in E
//!
//! relative tolerance r:  δ̂ = (O − (1+r)·E) / N
//! absolute tolerance a:  δ̂ = (O − E) / N − a
//! V = p̄_T(1−p̄_T)/N + k²·p̄_C(1−p̄_C)·W/N²      (k = 1+r, or 1 for the absolute form)
//! ```
//!
//! Standardising the control to the treatment's strata means a base rate that moves over the
//! day, while the treatment's share grows step by step, is not mistaken for a regression.
//! `δ̂` is tracked with the normal-mixture confidence sequence of [`crate::experiment::msprt`]
//! (`τ` = the control's rate, so the mixture is tuned to a doubling), and the running
//! intersection of the per-look intervals is kept. A regression is declared, and latched,
//! when that intersection lies entirely above 0.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::experiment::msprt::confidence_half_width;
use crate::experiment::stats::Interval;

/// Default `alpha` of a guardrail.
pub const DEFAULT_GUARDRAIL_ALPHA: f64 = 0.05;
/// Default `minSamplesPerCohort` of a guardrail.
pub const DEFAULT_MIN_SAMPLES_PER_COHORT: u64 = 1000;

/// Bad and total events of one cohort.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CohortCounts {
    pub bad: u64,
    pub total: u64,
}

impl CohortCounts {
    pub fn new(bad: u64, total: u64) -> Self {
        Self { bad, total }
    }

    /// `bad / total`, 0 without events.
    pub fn rate(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.bad as f64 / self.total as f64
        }
    }
}

/// Cumulative counts of both cohorts since the ramp started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuardrailCounts {
    pub treatment: CohortCounts,
    pub control: CohortCounts,
}

/// How much worse the treatment may be before it is a regression.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tolerance {
    /// `rate(treatment) ≤ rate(control) · (1 + r)`.
    Relative(f64),
    /// `rate(treatment) ≤ rate(control) + a`.
    Absolute(f64),
}

impl Tolerance {
    /// The factor on the control's rate and the constant added to it.
    fn factor_and_offset(self) -> (f64, f64) {
        match self {
            Self::Relative(r) => (1.0 + r.max(0.0), 0.0),
            Self::Absolute(a) => (1.0, a.max(0.0)),
        }
    }

    /// The bound the treatment's rate is held to, for a control rate `control`.
    pub fn bound(self, control: f64) -> f64 {
        let (factor, offset) = self.factor_and_offset();
        control * factor + offset
    }
}

impl std::fmt::Display for Tolerance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Relative(r) => write!(f, "maxRelativeIncrease {r}"),
            Self::Absolute(a) => write!(f, "maxAbsoluteIncrease {a}"),
        }
    }
}

/// One guardrail's test settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GuardrailConfig {
    pub tolerance: Tolerance,
    pub alpha: f64,
    pub min_samples_per_cohort: u64,
}

/// What a guardrail says at one look.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, Default)]
pub enum GuardrailVerdict {
    /// Fewer than `minSamplesPerCohort` events in a cohort since the ramp started: not judged.
    #[default]
    Collecting,
    /// Judged; no regression so far.
    Pass,
    /// The treatment is worse than the control beyond the tolerance (latched for the ramp).
    Regression,
    /// The counts could not be read or do not add up; the look is skipped and the ramp holds.
    Error,
}

impl GuardrailVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Collecting => "Collecting",
            Self::Pass => "Pass",
            Self::Regression => "Regression",
            Self::Error => "Error",
        }
    }
}

impl std::fmt::Display for GuardrailVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The running sums a guardrail keeps between looks (in `status`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuardrailState {
    /// The cumulative counts at the last look that closed a stratum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<GuardrailCounts>,
    /// Counts of the closed strata, summed.
    #[serde(default)]
    pub treatment: CohortCounts,
    #[serde(default)]
    pub control: CohortCounts,
    /// `E`: bad events the treatment would have had at the control's rate of each stratum.
    #[serde(default)]
    pub expected_bad: f64,
    /// `W = Σ n_T² / n_C` over the strata.
    #[serde(default)]
    pub control_weight: f64,
    /// Events per cohort in strata closed during the current step.
    #[serde(default)]
    pub step: GuardrailCounts,
    /// Running intersection of the per-look intervals for `δ`, once judging started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
    /// The intersection came out empty once and restarted (the assumptions failed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interval_restarted: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub regression: bool,
}

impl GuardrailState {
    /// The same state at the start of a new step: the per-step counts start again.
    pub fn new_step(&self) -> Self {
        Self {
            step: GuardrailCounts::default(),
            ..self.clone()
        }
    }

    /// Whether both cohorts have `min` events in the current step.
    pub fn step_has_samples(&self, min: u64) -> bool {
        self.step.treatment.total >= min && self.step.control.total >= min
    }
}

/// The outcome of one look.
#[derive(Clone, Debug, PartialEq)]
pub struct GuardrailLook {
    pub state: GuardrailState,
    pub verdict: GuardrailVerdict,
    /// The treatment's rate over the closed strata.
    pub treatment_rate: f64,
    /// The control's rate, weighted to the treatment's strata.
    pub control_rate: f64,
    /// `δ̂` at this look.
    pub estimate: f64,
    /// The running interval for `δ`, once judging started.
    pub interval: Option<Interval>,
    /// One line on the look, naming both rates, the interval and the tolerance.
    pub message: String,
}

/// Why counts cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GuardrailCountsError {
    #[error(
        "{cohort} cohort has {bad} bad events out of {total}: the bad query counts more than the total query"
    )]
    BadExceedsTotal {
        cohort: &'static str,
        bad: u64,
        total: u64,
    },
}

/// Folds one look of cumulative counts into `state`.
///
/// A stratum closes only when both cohorts gained events since the last closed one, so a
/// look in which one cohort saw nothing is merged into the next. Counts that went down
/// (a counter reset that `increase()` missed, or its extrapolation) count as no events.
pub fn look(
    config: &GuardrailConfig,
    state: &GuardrailState,
    counts: GuardrailCounts,
) -> Result<GuardrailLook, GuardrailCountsError> {
    let counts = GuardrailCounts {
        treatment: consistent("treatment", counts.treatment)?,
        control: consistent("control", counts.control)?,
    };
    let mut next = state.clone();
    let last = state.last.unwrap_or_default();
    let treatment = increment(last.treatment, counts.treatment);
    let control = increment(last.control, counts.control);
    if treatment.total > 0 && control.total > 0 {
        let control_rate = control.rate();
        let n_t = treatment.total as f64;
        next.expected_bad += n_t * control_rate;
        next.control_weight += n_t * n_t / control.total as f64;
        add(&mut next.treatment, treatment);
        add(&mut next.control, control);
        add(&mut next.step.treatment, treatment);
        add(&mut next.step.control, control);
        next.last = Some(counts);
    }
    Ok(judge(config, next))
}

fn judge(config: &GuardrailConfig, mut state: GuardrailState) -> GuardrailLook {
    let n = state.treatment.total as f64;
    let treatment_rate = state.treatment.rate();
    let control_rate = if n > 0.0 { state.expected_bad / n } else { 0.0 };
    let (factor, offset) = config.tolerance.factor_and_offset();
    let estimate = treatment_rate - factor * control_rate - offset;
    let bound = config.tolerance.bound(control_rate);
    let min = config.min_samples_per_cohort.max(1);
    let enough =
        state.treatment.total >= min && state.control.total >= min || state.interval.is_some();
    if enough && !state.regression {
        let p_t = treatment_rate;
        let p_c = state.control.rate();
        let variance = p_t * (1.0 - p_t) / n
            + factor * factor * p_c * (1.0 - p_c) * state.control_weight / (n * n);
        let tau = if control_rate > 0.0 {
            control_rate
        } else {
            treatment_rate
        };
        let half_width = confidence_half_width(variance, tau * tau, config.alpha);
        let current = around(estimate, half_width);
        let previous = state.interval.unwrap_or(FULL);
        let intersection = Interval {
            lower: previous.lower.max(current.lower),
            upper: previous.upper.min(current.upper),
        };
        state.interval = Some(if intersection.lower <= intersection.upper {
            intersection
        } else {
            state.interval_restarted = true;
            current
        });
        state.regression = state.interval.is_some_and(|i| i.lower > 0.0);
    }
    let interval = state.interval;
    let rates = format!(
        "treatment {} ({} of {}) vs control {} ({} of {}), bound {} ({})",
        percent(treatment_rate),
        state.treatment.bad,
        state.treatment.total,
        percent(control_rate),
        state.control.bad,
        state.control.total,
        percent(bound),
        config.tolerance,
    );
    let (verdict, message) = match interval {
        _ if state.regression => (
            GuardrailVerdict::Regression,
            format!(
                "regression: {rates}; treatment − bound lies in {}, entirely above 0",
                interval_text(interval)
            ),
        ),
        Some(i) => (
            GuardrailVerdict::Pass,
            format!("{rates}; treatment − bound in {}", interval_text(Some(i))),
        ),
        None => (
            GuardrailVerdict::Collecting,
            format!("collecting: {rates}; judging starts at {min} events per cohort"),
        ),
    };
    GuardrailLook {
        state,
        verdict,
        treatment_rate,
        control_rate,
        estimate,
        interval,
        message,
    }
}

/// The widest interval `δ` can have: a difference of rates, less a tolerance.
const FULL: Interval = Interval {
    lower: f64::NEG_INFINITY,
    upper: f64::INFINITY,
};

fn around(centre: f64, half_width: f64) -> Interval {
    if !(centre.is_finite() && half_width.is_finite()) {
        return FULL;
    }
    Interval {
        lower: centre - half_width,
        upper: centre + half_width,
    }
}

fn consistent(
    cohort: &'static str,
    counts: CohortCounts,
) -> Result<CohortCounts, GuardrailCountsError> {
    // `increase()` extrapolates each series on its own, so bad may exceed total by a hair.
    let slack = (counts.total / 100).max(1);
    if counts.bad > counts.total.saturating_add(slack) {
        return Err(GuardrailCountsError::BadExceedsTotal {
            cohort,
            bad: counts.bad,
            total: counts.total,
        });
    }
    Ok(CohortCounts::new(
        counts.bad.min(counts.total),
        counts.total,
    ))
}

fn increment(last: CohortCounts, now: CohortCounts) -> CohortCounts {
    let total = now.total.saturating_sub(last.total);
    let bad = now.bad.saturating_sub(last.bad).min(total);
    CohortCounts { bad, total }
}

fn add(sum: &mut CohortCounts, more: CohortCounts) {
    sum.bad = sum.bad.saturating_add(more.bad);
    sum.total = sum.total.saturating_add(more.total);
}

fn percent(rate: f64) -> String {
    format!("{:.3}%", rate * 100.0)
}

fn interval_text(interval: Option<Interval>) -> String {
    match interval {
        Some(i) if i.lower.is_finite() && i.upper.is_finite() => {
            format!("[{:+.3}%, {:+.3}%]", i.lower * 100.0, i.upper * 100.0)
        }
        _ => "(-∞, +∞)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(tolerance: Tolerance) -> GuardrailConfig {
        GuardrailConfig {
            tolerance,
            alpha: 0.05,
            min_samples_per_cohort: 100,
        }
    }

    fn counts(bad_t: u64, total_t: u64, bad_c: u64, total_c: u64) -> GuardrailCounts {
        GuardrailCounts {
            treatment: CohortCounts::new(bad_t, total_t),
            control: CohortCounts::new(bad_c, total_c),
        }
    }

    #[test]
    fn a_tripled_error_rate_is_a_regression_and_an_equal_one_is_not() {
        let config = config(Tolerance::Relative(0.1));
        let bad = look(
            &config,
            &GuardrailState::default(),
            counts(150, 10_000, 500, 100_000),
        )
        .unwrap();
        assert_eq!(bad.verdict, GuardrailVerdict::Regression, "{}", bad.message);
        assert!(
            bad.message.contains("1.500%") && bad.message.contains("0.500%"),
            "{}",
            bad.message
        );
        let fine = look(
            &config,
            &GuardrailState::default(),
            counts(50, 10_000, 500, 100_000),
        )
        .unwrap();
        assert_eq!(fine.verdict, GuardrailVerdict::Pass, "{}", fine.message);
    }

    #[test]
    fn too_few_events_collect_without_judging() {
        let config = GuardrailConfig {
            min_samples_per_cohort: 1000,
            ..config(Tolerance::Relative(0.1))
        };
        let look = look(
            &config,
            &GuardrailState::default(),
            counts(90, 900, 5, 100_000),
        )
        .unwrap();
        assert_eq!(look.verdict, GuardrailVerdict::Collecting);
        assert_eq!(look.interval, None);
        assert!(
            look.message.contains("1000 events per cohort"),
            "{}",
            look.message
        );
    }

    #[test]
    fn a_regression_is_latched() {
        let config = config(Tolerance::Absolute(0.001));
        let first = look(
            &config,
            &GuardrailState::default(),
            counts(300, 10_000, 500, 100_000),
        )
        .unwrap();
        assert_eq!(first.verdict, GuardrailVerdict::Regression);
        // Afterwards the treatment behaves: the latch holds.
        let later = look(&config, &first.state, counts(310, 40_000, 650, 130_000)).unwrap();
        assert_eq!(later.verdict, GuardrailVerdict::Regression);
    }

    #[test]
    fn a_look_where_a_cohort_saw_nothing_merges_into_the_next() {
        let config = config(Tolerance::Relative(0.1));
        let first = look(
            &config,
            &GuardrailState::default(),
            counts(1, 200, 10, 2000),
        )
        .unwrap();
        let idle = look(&config, &first.state, counts(1, 200, 12, 2300)).unwrap();
        assert_eq!(idle.state, first.state);
        let next = look(&config, &idle.state, counts(2, 400, 14, 2600)).unwrap();
        assert_eq!(next.state.control, CohortCounts::new(14, 2600));
        assert_eq!(next.state.treatment, CohortCounts::new(2, 400));
    }

    #[test]
    fn counts_that_go_down_add_nothing_and_impossible_counts_are_refused() {
        let config = config(Tolerance::Relative(0.1));
        let first = look(
            &config,
            &GuardrailState::default(),
            counts(1, 200, 10, 2000),
        )
        .unwrap();
        let lower = look(&config, &first.state, counts(0, 150, 10, 2500)).unwrap();
        assert_eq!(lower.state.treatment, CohortCounts::new(1, 200));
        let error = look(&config, &first.state, counts(500, 400, 10, 2600)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "treatment cohort has 500 bad events out of 400: the bad query counts more than the total query"
        );
    }

    #[test]
    fn a_base_rate_that_moves_while_the_treatment_grows_is_not_a_regression() {
        // Control and treatment share every minute's rate, but the treatment is 1% of the
        // traffic while the rate is 0.2% and 50% once it is 2%: pooled, the treatment's rate
        // is several times the control's; standardised, it is equal.
        let config = config(Tolerance::Relative(0.1));
        let early = look(
            &config,
            &GuardrailState::default(),
            counts(20, 10_000, 1_980, 990_000),
        )
        .unwrap();
        let late = look(
            &config,
            &early.state,
            counts(20 + 10_000, 510_000, 1_980 + 10_000, 1_490_000),
        )
        .unwrap();
        let pooled_treatment = 10_020.0 / 510_000.0;
        let pooled_control = 11_980.0 / 1_490_000.0;
        assert!(pooled_treatment > 2.0 * pooled_control);
        assert_eq!(late.verdict, GuardrailVerdict::Pass, "{}", late.message);
        assert!((late.treatment_rate - late.control_rate).abs() < 1e-12);
    }

    #[test]
    fn the_step_counts_restart_at_each_step() {
        let config = config(Tolerance::Relative(0.1));
        let first = look(
            &config,
            &GuardrailState::default(),
            counts(1, 200, 10, 2000),
        )
        .unwrap();
        assert!(first.state.step_has_samples(200));
        let stepped = first.state.new_step();
        assert!(!stepped.step_has_samples(1));
        let next = look(&config, &stepped, counts(2, 500, 20, 4000)).unwrap();
        assert_eq!(next.state.step.treatment.total, 300);
        assert_eq!(next.state.step.control.total, 2000);
    }
}
