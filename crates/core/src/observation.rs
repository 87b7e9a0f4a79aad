//! What the metric provider saw: the input the rollout engine judges.

use serde::{Deserialize, Serialize};

use crate::experiment::VariantCounts;
use crate::guardrail::GuardrailCounts;

/// The result of one metric query.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum MetricOutcome {
    /// A finite value.
    Value { value: f64 },
    /// An empty result, NaN or ±Inf; `reason` says which.
    NoData { reason: String },
    /// The query failed; `message` is the provider's error, naming the address.
    Error { message: String },
}

/// One metric's outcome, by the metric's `name` in the spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricObservation {
    pub name: String,
    pub outcome: MetricOutcome,
}

/// Whether an analysis ran for this call to the engine and, if so, what each metric gave.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Observation {
    /// No queries were run for this call.
    #[default]
    None,
    /// The analysis ran; one entry per metric in the spec.
    Analysis(Vec<MetricObservation>),
    /// The analysis of a ramp with guardrails ran: one entry per metric and per guardrail.
    Guarded {
        metrics: Vec<MetricObservation>,
        guardrails: Vec<GuardrailObservation>,
    },
    /// The analysis of an experiment ran: its guardrails (the `rollout.analysis` metrics,
    /// one entry each) and the experiment's counts.
    Experiment {
        metrics: Vec<MetricObservation>,
        experiment: ExperimentOutcome,
    },
}

/// What the experiment's queries gave.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum ExperimentOutcome {
    /// Cumulative counts since the experiment started, one entry per variant.
    Counts { variants: Vec<VariantCounts> },
    /// A query failed or gave no usable number; the look is skipped.
    Error { message: String },
}

/// What one guardrail's queries gave, by the guardrail's `name` in the spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GuardrailObservation {
    pub name: String,
    pub outcome: GuardrailOutcome,
}

/// A guardrail's cumulative counts per cohort since the ramp started, or why there are none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum GuardrailOutcome {
    Counts {
        counts: GuardrailCounts,
    },
    /// A query failed or gave no usable numbers; the look is skipped and the ramp holds.
    Error {
        message: String,
    },
}
