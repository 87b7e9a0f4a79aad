//! The spec as the engine reads it: durations parsed, defaults applied, shape decided.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::crd::{
    Analysis, DEFAULT_INTERVAL, DEFAULT_STALE_AFTER, Experiment, FeatureFlag, Guardrail,
    MetricCheck, Step,
};
use crate::duration::{DurationError, parse_duration};
use crate::experiment::ExperimentConfig;
use crate::guardrail::GuardrailConfig;

/// Why the engine cannot act on a spec. `validate()` rejects all of these first; the
/// engine still never panics on them.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    #[error("{field}: {source}")]
    InvalidDuration {
        field: String,
        #[source]
        source: DurationError,
    },
    #[error(
        "spec.percent: percent and rollout.steps are mutually exclusive: use percent for a static flag or rollout.steps for a ramp"
    )]
    PercentWithSteps,
    #[error("spec.experiment: {0}")]
    ExperimentConflict(&'static str),
    #[error("spec.experiment: {0}")]
    InvalidExperiment(String),
    #[error("spec.rollout.analysis.guardrails[{index}]: {message}")]
    InvalidGuardrail { index: usize, message: String },
}

impl EngineError {
    /// A short, stable label for the kind of spec problem, for logs and callers that count
    /// them. The operator counts these under `invalid_spec`, not under this label.
    pub fn category(&self) -> &'static str {
        match self {
            Self::InvalidDuration { .. } => "invalid_duration",
            Self::PercentWithSteps => "percent_with_steps",
            Self::ExperimentConflict(_) | Self::InvalidExperiment(_) => "invalid_experiment",
            Self::InvalidGuardrail { .. } => "invalid_guardrail",
        }
    }
}

/// Everything `decide` needs from the flag, parsed once.
#[derive(Debug)]
pub(crate) struct Plan<'a> {
    pub key: &'a str,
    pub enabled: bool,
    pub generation: i64,
    pub shape: Shape<'a>,
    pub stale_after: Duration,
    /// Digest of the key and the steps; see `FeatureFlagStatus::ramp_fingerprint`.
    pub fingerprint: String,
}

#[derive(Debug)]
pub(crate) enum Shape<'a> {
    /// No steps: `spec.percent` (0 when absent) applies.
    Static {
        percent: f64,
    },
    Ramp(RampPlan<'a>),
}

#[derive(Debug)]
pub(crate) struct RampPlan<'a> {
    pub steps: Vec<StepPlan>,
    /// `None` for a time-only ramp: no analysis section, or one without metrics. Always
    /// present for an experiment, whose looks run at the analysis interval.
    pub analysis: Option<AnalysisPlan<'a>>,
    /// Set for an experiment, whose ramp has two steps: `coverage` while it runs, then 100%
    /// once the winner ships.
    pub experiment: Option<ExperimentPlan<'a>>,
}

/// An experiment as the engine runs it.
#[derive(Debug)]
pub(crate) struct ExperimentPlan<'a> {
    pub spec: &'a Experiment,
    pub config: ExperimentConfig,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct StepPlan {
    pub percent: f64,
    pub pause: Duration,
}

#[derive(Debug)]
pub(crate) struct AnalysisPlan<'a> {
    pub interval: Duration,
    pub failure_limit: u32,
    pub metrics: &'a [MetricCheck],
    pub guardrails: Vec<GuardrailPlan<'a>>,
    /// How long a step may wait for guardrail samples, from its start.
    pub max_step_duration: Option<Duration>,
}

#[derive(Debug)]
pub(crate) struct GuardrailPlan<'a> {
    pub spec: &'a Guardrail,
    pub config: GuardrailConfig,
    /// Digest of the queries and the test: a change starts the guardrail's statistics again.
    pub fingerprint: String,
}

impl<'a> Plan<'a> {
    pub fn from_flag(flag: &'a FeatureFlag) -> Result<Self, EngineError> {
        let spec = &flag.spec;
        let rollout = spec.rollout.as_ref();
        let steps: &[Step] = rollout.map(|r| r.steps.as_slice()).unwrap_or_default();
        let stale_after = duration(
            "spec.staleAfter",
            spec.stale_after.as_deref().unwrap_or(DEFAULT_STALE_AFTER),
        )?;
        if let Some(experiment) = &spec.experiment {
            return Ok(Self {
                key: flag.key(),
                enabled: spec.enabled,
                generation: flag.metadata.generation.unwrap_or_default(),
                fingerprint: experiment_fingerprint(flag, experiment),
                shape: Shape::Ramp(experiment_ramp(flag, experiment)?),
                stale_after,
            });
        }
        let shape = if steps.is_empty() {
            Shape::Static {
                percent: spec.percent.unwrap_or(0.0),
            }
        } else if spec.percent.is_some() {
            return Err(EngineError::PercentWithSteps);
        } else {
            let analysis = rollout
                .and_then(|r| r.analysis.as_ref())
                .filter(|a| !a.metrics.is_empty() || !a.guardrails.is_empty())
                .map(|a| {
                    Ok::<_, EngineError>(AnalysisPlan {
                        interval: duration("spec.rollout.analysis.interval", &a.interval)?,
                        // The schema's minimum is 1; a 0 would mean "never roll back".
                        failure_limit: a.failure_limit.max(1),
                        metrics: &a.metrics,
                        guardrails: guardrail_plans(a, &spec.variants)?,
                        max_step_duration: a
                            .max_step_duration
                            .as_deref()
                            .map(|text| duration("spec.rollout.analysis.maxStepDuration", text))
                            .transpose()?,
                    })
                })
                .transpose()?;
            Shape::Ramp(RampPlan {
                steps: step_plans(steps)?,
                analysis,
                experiment: None,
            })
        };
        Ok(Self {
            key: flag.key(),
            enabled: spec.enabled,
            generation: flag.metadata.generation.unwrap_or_default(),
            fingerprint: fingerprint(flag.key(), steps),
            shape,
            stale_after,
        })
    }
}

impl RampPlan<'_> {
    pub fn last_index(&self) -> u32 {
        u32::try_from(self.steps.len().saturating_sub(1)).unwrap_or(u32::MAX)
    }

    pub fn step(&self, index: u32) -> Option<&StepPlan> {
        self.steps.get(usize::try_from(index).ok()?)
    }
}

/// The ramp of an experiment: `coverage` until the winner ships, then 100%. Analyses run
/// every `rollout.analysis.interval` (default 1m), with its metrics as guardrails.
fn experiment_ramp<'a>(
    flag: &'a FeatureFlag,
    experiment: &'a Experiment,
) -> Result<RampPlan<'a>, EngineError> {
    let spec = &flag.spec;
    if spec.percent.is_some() {
        return Err(EngineError::ExperimentConflict(
            "experiment and percent are mutually exclusive: an experiment's exposure is experiment.coverage",
        ));
    }
    if !spec.variants.is_empty() {
        return Err(EngineError::ExperimentConflict(
            "experiment and variants are mutually exclusive: an experiment's arms are experiment.variants",
        ));
    }
    let analysis = spec.rollout.as_ref().and_then(|r| r.analysis.as_ref());
    if spec.rollout.as_ref().is_some_and(|r| !r.steps.is_empty()) {
        return Err(EngineError::ExperimentConflict(
            "experiment and rollout.steps are mutually exclusive: raise experiment.coverage instead of ramping",
        ));
    }
    let max_duration = experiment
        .max_duration
        .as_deref()
        .map(|text| duration("spec.experiment.maxDuration", text))
        .transpose()?;
    let config = ExperimentConfig {
        alpha: experiment.alpha,
        min_samples_per_variant: experiment.min_samples_per_variant,
        method: experiment.method,
        planned_samples_per_variant: experiment.planned_samples_per_variant,
        max_duration,
        ..ExperimentConfig::default()
    };
    config
        .validate()
        .map_err(|error| EngineError::InvalidExperiment(error.to_string()))?;
    if experiment.variants.len() < 2 {
        return Err(EngineError::InvalidExperiment(format!(
            "an experiment needs a control and at least one treatment, got {} variants",
            experiment.variants.len()
        )));
    }
    if analysis.is_some_and(|a| !a.guardrails.is_empty()) {
        return Err(EngineError::ExperimentConflict(
            "experiment and rollout.analysis.guardrails are mutually exclusive: an experiment compares its arms through experiment.metric",
        ));
    }
    let interval = analysis.map_or(DEFAULT_INTERVAL, |a| a.interval.as_str());
    Ok(RampPlan {
        steps: vec![
            StepPlan {
                percent: experiment.coverage,
                pause: Duration::ZERO,
            },
            StepPlan {
                percent: 100.0,
                pause: Duration::ZERO,
            },
        ],
        analysis: Some(AnalysisPlan {
            interval: duration("spec.rollout.analysis.interval", interval)?,
            failure_limit: analysis.map_or(crate::crd::DEFAULT_FAILURE_LIMIT, |a| {
                a.failure_limit.max(1)
            }),
            metrics: analysis.map(|a| a.metrics.as_slice()).unwrap_or_default(),
            guardrails: Vec::new(),
            max_step_duration: None,
        }),
        experiment: Some(ExperimentPlan {
            spec: experiment,
            config,
        }),
    })
}

fn guardrail_plans<'a>(
    analysis: &'a Analysis,
    variants: &[crate::crd::Variant],
) -> Result<Vec<GuardrailPlan<'a>>, EngineError> {
    if !analysis.guardrails.is_empty() && variants.iter().any(|v| v.name == "off") {
        return Err(EngineError::InvalidGuardrail {
            index: 0,
            message: "a variant named off would count as the control of the guardrails: rename it"
                .to_string(),
        });
    }
    analysis
        .guardrails
        .iter()
        .enumerate()
        .map(|(index, spec)| {
            let config = spec
                .config()
                .map_err(|message| EngineError::InvalidGuardrail { index, message })?;
            let identity = serde_json::json!({
                "bad": spec.bad,
                "total": spec.total,
                "maxRelativeIncrease": spec.max_relative_increase,
                "maxAbsoluteIncrease": spec.max_absolute_increase,
                "alpha": spec.alpha,
            });
            let digest = Sha256::digest(identity.to_string().as_bytes());
            Ok(GuardrailPlan {
                spec,
                config,
                fingerprint: digest.iter().take(8).map(|b| format!("{b:02x}")).collect(),
            })
        })
        .collect()
}

fn step_plans(steps: &[Step]) -> Result<Vec<StepPlan>, EngineError> {
    steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let pause = match &step.pause {
                // Only the last step may omit its pause (CEL); elsewhere it means "no wait".
                None => Duration::ZERO,
                Some(text) => duration(&format!("spec.rollout.steps[{i}].pause"), text)?,
            };
            Ok(StepPlan {
                percent: step.percent,
                pause,
            })
        })
        .collect()
}

fn duration(field: &str, text: &str) -> Result<Duration, EngineError> {
    parse_duration(text).map_err(|source| EngineError::InvalidDuration {
        field: field.to_string(),
        source,
    })
}

/// A short digest of what defines an experiment: the key, the salt, the arms, the queries
/// and the test. Changing any of them restarts it with fresh statistics; `coverage`,
/// `autoShip`, `minSamplesPerVariant` and `maxDuration` can change while it runs.
fn experiment_fingerprint(flag: &FeatureFlag, experiment: &Experiment) -> String {
    let identity = serde_json::json!({
        "salt": flag.experiment_salt(),
        "variants": experiment.variants,
        "metric": experiment.metric,
        "alpha": experiment.alpha,
        "method": experiment.method,
        "plannedSamplesPerVariant": experiment.planned_samples_per_variant,
    });
    let digest = Sha256::new()
        .chain_update(flag.key().as_bytes())
        .chain_update(b"\nexperiment\n")
        .chain_update(identity.to_string().as_bytes())
        .finalize();
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// A short digest of what defines the ramp. Serializing the steps covers both percents
/// and pauses, so any edit to them is a new ramp.
fn fingerprint(key: &str, steps: &[Step]) -> String {
    let steps = serde_json::to_string(steps).unwrap_or_default();
    let digest = Sha256::new()
        .chain_update(key.as_bytes())
        .chain_update(b"\n")
        .chain_update(steps.as_bytes())
        .finalize();
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
