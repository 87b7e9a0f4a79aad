//! What one look at an experiment takes: the configuration, the counts per variant and the
//! state stored at the previous look, and the errors that refuse them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Default significance level.
pub const DEFAULT_ALPHA: f64 = 0.05;
/// Default minimum exposures per variant before any decision.
pub const DEFAULT_MIN_SAMPLES_PER_VARIANT: u64 = 1000;
/// Default relative lift that tunes the sequential test's mixture (τ = 0.10 × pooled rate).
pub const DEFAULT_MIXTURE_RELATIVE_LIFT: f64 = 0.10;

/// How the experiment is analysed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Method {
    /// mSPRT with a normal mixture: always-valid p-values and confidence sequences, safe to
    /// look at every analysis interval and to stop at the first significant look.
    #[default]
    Sequential,
    /// A two-proportion z-test, run once, when every variant reaches the planned sample size.
    Fixed,
}

/// The analysis settings, mapped by the caller from `spec.experiment`.
#[derive(Clone, Debug, PartialEq)]
pub struct ExperimentConfig {
    /// Significance level (family-wise with more than one treatment), in (0, 1).
    pub alpha: f64,
    /// No decision (and, for `sequential`, no look) until every variant has this many exposures.
    pub min_samples_per_variant: u64,
    pub method: Method,
    /// For `fixed`: exposures per variant at which the single analysis runs. Required then.
    pub planned_samples_per_variant: Option<u64>,
    /// Past this, an experiment without a winner ends `Inconclusive`.
    pub max_duration: Option<Duration>,
    /// For `sequential`: the mixing standard deviation is `τ = mixture_relative_lift × p̄`,
    /// with `p̄` the pooled conversion rate of the two arms compared. The test is valid for any
    /// positive value; it detects lifts of about this relative size fastest.
    pub mixture_relative_lift: f64,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        ExperimentConfig {
            alpha: DEFAULT_ALPHA,
            min_samples_per_variant: DEFAULT_MIN_SAMPLES_PER_VARIANT,
            method: Method::Sequential,
            planned_samples_per_variant: None,
            max_duration: None,
            mixture_relative_lift: DEFAULT_MIXTURE_RELATIVE_LIFT,
        }
    }
}

impl ExperimentConfig {
    /// Checks the settings the statistics rely on.
    pub fn validate(&self) -> Result<(), ExperimentError> {
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(ExperimentError::InvalidAlpha { alpha: self.alpha });
        }
        if !(self.mixture_relative_lift.is_finite() && self.mixture_relative_lift > 0.0) {
            return Err(ExperimentError::InvalidMixtureLift {
                value: self.mixture_relative_lift,
            });
        }
        if self.method == Method::Fixed && self.planned_samples_per_variant.is_none_or(|n| n == 0) {
            return Err(ExperimentError::MissingPlannedSamples);
        }
        Ok(())
    }
}

/// Cumulative counts for one variant since the experiment started. The first entry passed to
/// [`evaluate_experiment`] is the control.
///
/// Prometheus `increase()` returns extrapolated floats; the provider rounds them to the
/// nearest integer (and treats negative values as 0) before building this.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VariantCounts {
    pub name: String,
    /// Traffic weight from the spec (the weights sum to 100).
    pub weight: u32,
    pub exposures: u64,
    pub conversions: u64,
}

impl VariantCounts {
    pub fn new(name: impl Into<String>, weight: u32, exposures: u64, conversions: u64) -> Self {
        VariantCounts {
            name: name.into(),
            weight,
            exposures,
            conversions,
        }
    }
}

/// Why an experiment could not be evaluated.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ExperimentError {
    #[error("experiment needs at least two variants (a control and a treatment), got {count}")]
    TooFewVariants { count: usize },
    #[error("experiment variant {name:?} appears more than once")]
    DuplicateVariant { name: String },
    #[error("experiment variant {name:?} has weight 0; every variant needs a positive weight")]
    ZeroWeight { name: String },
    #[error("experiment alpha must be in (0, 1), got {alpha}")]
    InvalidAlpha { alpha: f64 },
    #[error("experiment mixture relative lift must be positive and finite, got {value}")]
    InvalidMixtureLift { value: f64 },
    #[error("experiment method fixed needs plannedSamplesPerVariant > 0")]
    MissingPlannedSamples,
    #[error("experiment variant {name:?} has {conversions} conversions for {exposures} exposures")]
    ConversionsExceedExposures {
        name: String,
        conversions: u64,
        exposures: u64,
    },
}

impl ExperimentError {
    /// A short label for callers that sort these errors (the status message carries the
    /// error itself):
    /// `experiment_config` waits for a spec change, `experiment_data` is worth a retry
    /// (counters scraped at slightly different times can briefly disagree).
    pub fn category(&self) -> &'static str {
        match self {
            ExperimentError::ConversionsExceedExposures { .. } => "experiment_data",
            _ => "experiment_config",
        }
    }
}

pub(super) fn validate_counts(counts: &[VariantCounts]) -> Result<(), ExperimentError> {
    if counts.len() < 2 {
        return Err(ExperimentError::TooFewVariants {
            count: counts.len(),
        });
    }
    for (i, variant) in counts.iter().enumerate() {
        if counts[..i].iter().any(|other| other.name == variant.name) {
            return Err(ExperimentError::DuplicateVariant {
                name: variant.name.clone(),
            });
        }
        if variant.weight == 0 {
            return Err(ExperimentError::ZeroWeight {
                name: variant.name.clone(),
            });
        }
        if variant.conversions > variant.exposures {
            return Err(ExperimentError::ConversionsExceedExposures {
                name: variant.name.clone(),
                conversions: variant.conversions,
                exposures: variant.exposures,
            });
        }
    }
    Ok(())
}
