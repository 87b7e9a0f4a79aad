//! What a simulation returns: every acted-on engine call and a summary. The driver builds
//! it; the renderer and the CLI read it.

use jiff::Timestamp;
use rollgate_core::engine::EventReason;
use serde::Serialize;

use rollgate_core::crd::{AnalysisRun, FeatureFlagStatus, Phase};
use rollgate_core::experiment::stats::Interval;
use rollgate_core::guardrail::{CohortCounts, GuardrailCounts, GuardrailVerdict};

/// How a simulation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// The ramp reached its last step.
    Completed,
    /// The analysis failed `failureLimit` times in a row, or an `abort` was replayed.
    RolledBack,
    /// A `kill` was replayed and no `unkill` followed.
    Killed,
    /// The data ended while the latest analysis of the step held (no data or errors).
    Held,
    /// The data ended while a `pause` request held the ramp.
    Paused,
    /// The data ended before the ramp did, with nothing holding it.
    Unfinished,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::RolledBack => "rolled back",
            Self::Killed => "killed",
            Self::Held => "held",
            Self::Paused => "paused",
            Self::Unfinished => "unfinished",
        }
    }
}

/// One event the engine emitted, as it would appear on the flag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TraceEvent {
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub reason: EventReason,
    pub message: String,
}

/// One acted-on call of the engine: the state after it and what happened in it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tick {
    pub time: Timestamp,
    /// Seconds since the start.
    pub elapsed_seconds: i64,
    /// The verb of a request put on the annotation for this call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    pub phase: Phase,
    pub percent: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
    /// The analysis recorded in this call: every metric's value and verdict, and every
    /// guardrail's verdict and message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisRun>,
    /// With the analysis, each guardrail's statistics after it, in spec order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guardrails: Vec<GuardrailReading>,
    /// When the step started waiting for guardrail samples in this call (its pause has
    /// elapsed): the `Progressing` condition's message, reason `WaitingForSamples`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<TraceEvent>,
    /// When the engine asked to be called again; `None` when only a change could move it.
    pub requeue_after_seconds: Option<f64>,
}

/// The numbers of a simulation.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub outcome: Outcome,
    /// When the outcome was reached: completion, rollback or kill; the end of the data
    /// for the other outcomes.
    pub at: Timestamp,
    /// Seconds from the start to `at`: the time to 100% or to the rollback.
    pub elapsed_seconds: i64,
    pub phase: Phase,
    pub percent: f64,
    /// The step at the end (0-based), when ramping or complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
    pub steps: u32,
    pub analyses: u32,
    pub passed: u32,
    pub held: u32,
    pub failed: u32,
    /// Calls to `decide`, counting both calls of an analysis.
    pub engine_calls: u64,
    /// For a rollback or a kill: the percent and step (0-based) just before it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_step: Option<u32>,
    /// The rollback message, or why the ramp was held at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The metric that broke its bound in the analysis that rolled the flag back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breach: Option<Breach>,
    /// The guardrail that found a regression and rolled the flag back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guardrail_breach: Option<GuardrailReading>,
}

/// One guardrail after an analysis: the treatment against the control since the ramp
/// started.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GuardrailReading {
    pub name: String,
    pub verdict: GuardrailVerdict,
    /// The treatment's rate of bad events.
    pub treatment_rate: f64,
    /// The control's rate, weighted to the treatment's traffic over time.
    pub control_rate: f64,
    /// The rate the treatment is held to: the control's, with the tolerance.
    pub bound: f64,
    /// `maxRelativeIncrease 0.1` or `maxAbsoluteIncrease 0.002`.
    pub tolerance: String,
    /// The always-valid interval for `rate(treatment) − bound`, once judging started; a
    /// regression once it lies above 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
    /// Bad and total events of each cohort since the ramp started, as the statistics
    /// counted them.
    pub treatment: CohortCounts,
    pub control: CohortCounts,
    /// Events per cohort in the current step.
    pub step_samples: GuardrailCounts,
    /// The engine's words: both rates, the bound, the tolerance and the interval.
    pub message: String,
}

/// A metric outside its bound.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Breach {
    pub metric: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The engine's words, e.g. `metric error-ratio = 0.04 above max 0.01`.
    pub message: String,
}

/// The full trace: every acted-on call, the summary and the status at the end.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Trace {
    pub flag: String,
    pub start: Timestamp,
    pub end: Timestamp,
    pub summary: Summary,
    pub ticks: Vec<Tick>,
    pub final_status: FeatureFlagStatus,
}
