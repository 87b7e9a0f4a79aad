//! The standard conditions (`Ready`, `Progressing`, `Degraded`, `Stale`), computed from
//! the new state and merged with the previous ones.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::crd::{
    AnalysisRun, ExperimentDecision, ExperimentStatus, Phase, RollbackRecord, Verdict,
};
use crate::duration::format_duration;

use super::judge::summarize_run;

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
pub const STALE: &str = "Stale";
/// Experiments only: whether the statistics reached a decision.
pub const EXPERIMENT_CONCLUDED: &str = "ExperimentConcluded";
/// Experiments only: the exposures do not match the weights; the experiment is halted.
pub const SAMPLE_RATIO_MISMATCH: &str = "SampleRatioMismatch";
/// The spec does not decode or fails validation; the operator refused it before deciding.
pub const INVALID_SPEC: &str = "InvalidSpec";
/// The flag's document did not fit into its ConfigMap.
pub const PUBLISH_FAILED: &str = "PublishFailed";
/// The latest analysis finished more than one interval after it was due: the operator's
/// query budget or Prometheus cannot keep up. Set by the controller, which sees the clock.
pub const ANALYSIS_OVERDUE: &str = "AnalysisOverdue";
/// `Progressing` reason of a step that waited past `maxStepDuration` for guardrail samples.
pub(crate) const GUARDRAIL_STARVED: &str = "GuardrailStarved";
/// The condition types that exist only on experiments.
pub(crate) const EXPERIMENT_CONDITIONS: [&str; 2] = [EXPERIMENT_CONCLUDED, SAMPLE_RATIO_MISMATCH];

/// The API server caps a condition message at 32768 bytes; long query errors are cut well
/// before that.
const MAX_MESSAGE_LEN: usize = 4096;

/// One condition as the engine wants it, before `lastTransitionTime` is settled.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Wanted {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

fn wanted(type_: &'static str, status: bool, reason: &str, message: impl Into<String>) -> Wanted {
    Wanted {
        type_,
        status,
        reason: reason.to_string(),
        message: message.into(),
    }
}

/// Where the flag stands with respect to `staleAfter`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Staleness {
    /// Not a completed ramp at 100%.
    NotApplicable,
    Fresh {
        since: Timestamp,
    },
    Stale {
        since: Timestamp,
    },
}

/// A step held for its guardrails' samples.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct GuardrailWait {
    pub message: String,
    /// Past `maxStepDuration`.
    pub starved: bool,
}

/// What the conditions are computed from.
#[derive(Debug)]
pub(crate) struct Facts<'a> {
    pub key: &'a str,
    pub phase: Phase,
    pub percent: f64,
    /// (index, number of steps) while ramping.
    pub step: Option<(u32, usize)>,
    /// The latest analysis of the current step.
    pub latest: Option<&'a AnalysisRun>,
    pub consecutive_failures: u32,
    pub failure_limit: u32,
    pub rollback: Option<&'a RollbackRecord>,
    /// A step held for its guardrails' samples.
    pub guardrail_wait: Option<GuardrailWait>,
    pub invalid: Option<&'a str>,
    pub staleness: Staleness,
    pub stale_after: std::time::Duration,
    /// Set for an experiment.
    pub experiment: Option<ExperimentFacts<'a>>,
}

/// What the conditions of an experiment are computed from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExperimentFacts<'a> {
    pub status: Option<&'a ExperimentStatus>,
    pub coverage: f64,
    pub auto_ship: bool,
}

impl ExperimentFacts<'_> {
    fn decision(&self) -> ExperimentDecision {
        self.status.map(|s| s.decision).unwrap_or_default()
    }

    fn message(&self) -> &str {
        self.status.map(|s| s.message.as_str()).unwrap_or_default()
    }
}

impl<'a> Facts<'a> {
    /// A spec that cannot be acted on: off, with `message` saying why.
    pub fn invalid(key: &'a str, message: &'a str) -> Self {
        Facts {
            key,
            phase: Phase::Invalid,
            percent: 0.0,
            step: None,
            latest: None,
            consecutive_failures: 0,
            failure_limit: 0,
            rollback: None,
            guardrail_wait: None,
            invalid: Some(message),
            staleness: Staleness::NotApplicable,
            stale_after: std::time::Duration::ZERO,
            experiment: None,
        }
    }

    fn step_text(&self) -> String {
        if let Some(experiment) = &self.experiment {
            return format!("experiment at {}% coverage", experiment.coverage);
        }
        match self.step {
            Some((index, count)) => {
                format!(
                    "step {} at {}%",
                    super::numbering::step_of(index, count),
                    self.percent
                )
            }
            None => format!("{}%", self.percent),
        }
    }
}

/// The four conditions the engine owns, in a fixed order; an experiment adds two.
pub(crate) fn wanted_conditions(facts: &Facts<'_>) -> Vec<Wanted> {
    let mut conditions = vec![
        ready(facts),
        progressing(facts),
        degraded(facts),
        stale(facts),
    ];
    if let Some(experiment) = &facts.experiment {
        conditions.push(concluded(experiment));
        conditions.push(sample_ratio(experiment));
    }
    conditions
}

fn concluded(experiment: &ExperimentFacts<'_>) -> Wanted {
    let decision = experiment.decision();
    let message = match experiment.status {
        None => "the experiment has not started".to_string(),
        Some(status) if status.message.is_empty() => "no look yet".to_string(),
        Some(status) => status.message.clone(),
    };
    wanted(
        EXPERIMENT_CONCLUDED,
        decision.is_final(),
        decision.as_str(),
        message,
    )
}

fn sample_ratio(experiment: &ExperimentFacts<'_>) -> Wanted {
    if experiment.decision() == ExperimentDecision::SampleRatioMismatch {
        return wanted(
            SAMPLE_RATIO_MISMATCH,
            true,
            "SampleRatioMismatch",
            experiment.message(),
        );
    }
    let message = match experiment.status.and_then(|s| s.srm.as_ref()) {
        Some(srm) if srm.applicable => format!(
            "exposures match the weights (chi² = {:.2}, p = {})",
            srm.statistic,
            crate::experiment_status::p_value(srm.p_value)
        ),
        Some(_) => "too few exposures to check the split yet".to_string(),
        None => "not checked yet".to_string(),
    };
    wanted(SAMPLE_RATIO_MISMATCH, false, "SampleRatioMatches", message)
}

fn ready(facts: &Facts<'_>) -> Wanted {
    let on = |message: String| wanted(READY, true, facts.phase.as_str(), message);
    match facts.phase {
        Phase::Invalid => wanted(
            READY,
            false,
            "InvalidSpec",
            facts.invalid.unwrap_or_default(),
        ),
        Phase::Killed => wanted(
            READY,
            false,
            "Killed",
            "killed by a rollgate.dev/request: off for everyone until unkill",
        ),
        Phase::RolledBack => wanted(
            READY,
            false,
            "RolledBack",
            facts
                .rollback
                .map(|r| r.message.clone())
                .unwrap_or_default(),
        ),
        Phase::Pending => wanted(READY, false, "Pending", "not reconciled yet"),
        Phase::Disabled => on("spec.enabled is false: off for everyone".to_string()),
        Phase::Static => on(format!("static at {}%", facts.percent)),
        Phase::Progressing => on(format!("ramping: {}", facts.step_text())),
        Phase::Paused => on(format!("paused at {}", facts.step_text())),
        Phase::Complete => match facts.experiment.and_then(|e| e.status) {
            Some(ExperimentStatus {
                shipped_variant: Some(variant),
                ..
            }) => on(format!("winner {variant} shipped to every user")),
            _ => on(format!("ramp complete at {}%", facts.percent)),
        },
    }
}

fn progressing(facts: &Facts<'_>) -> Wanted {
    let off = |reason: &str, message: String| wanted(PROGRESSING, false, reason, message);
    match facts.phase {
        Phase::Progressing => match facts.latest.map(|run| run.verdict) {
            Some(Verdict::Hold) => off(
                "AnalysisHeld",
                format!(
                    "held at {}: {}",
                    facts.step_text(),
                    latest_summary(facts, Verdict::Hold)
                ),
            ),
            Some(Verdict::Fail) => off(
                "AnalysisFailing",
                format!(
                    "{} failed analyses of {} before rollback, at {}: {}",
                    facts.consecutive_failures,
                    facts.failure_limit,
                    facts.step_text(),
                    latest_summary(facts, Verdict::Fail)
                ),
            ),
            _ => match (&facts.experiment, &facts.guardrail_wait) {
                (Some(experiment), _) => experiment_progressing(facts, experiment),
                (None, Some(wait)) if wait.starved => off(
                    GUARDRAIL_STARVED,
                    format!("held at {}: {}", facts.step_text(), wait.message),
                ),
                (None, Some(wait)) => wanted(
                    PROGRESSING,
                    true,
                    "WaitingForSamples",
                    format!("{}: {}", facts.step_text(), wait.message),
                ),
                (None, None) => wanted(PROGRESSING, true, "RolloutProgressing", facts.step_text()),
            },
        },
        Phase::Paused => off(
            "Paused",
            format!("paused at {}: send resume to continue", facts.step_text()),
        ),
        Phase::Complete if facts.experiment.is_some() => off(
            "WinnerShipped",
            "the winner is shipped to every user".to_string(),
        ),
        Phase::Complete => off("RolloutComplete", format!("complete at {}%", facts.percent)),
        Phase::RolledBack => off(
            "RolledBack",
            "rolled back: a spec change or a retry request restarts at step 0".to_string(),
        ),
        Phase::Killed => off("Killed", "killed: send unkill to restore".to_string()),
        Phase::Disabled | Phase::Static | Phase::Pending => {
            off(facts.phase.as_str(), "no ramp in progress".to_string())
        }
        Phase::Invalid => off("InvalidSpec", facts.invalid.unwrap_or_default().to_string()),
    }
}

/// A running experiment progresses until it reaches a decision; after one that does not
/// ship by itself it waits for a person.
fn experiment_progressing(facts: &Facts<'_>, experiment: &ExperimentFacts<'_>) -> Wanted {
    let decision = experiment.decision();
    let message = format!("{}: {}", facts.step_text(), experiment.message());
    match decision {
        ExperimentDecision::Collecting | ExperimentDecision::Running => {
            wanted(PROGRESSING, true, "ExperimentRunning", message)
        }
        ExperimentDecision::Winner => {
            let next = if experiment.auto_ship {
                "ships at the next analysis whose guardrails pass"
            } else {
                "send a promote request to ship it"
            };
            wanted(
                PROGRESSING,
                false,
                "WinnerDeclared",
                format!("{message}; {next}"),
            )
        }
        ExperimentDecision::NoDifference
        | ExperimentDecision::Inconclusive
        | ExperimentDecision::SampleRatioMismatch => {
            wanted(PROGRESSING, false, decision.as_str(), message)
        }
    }
}

fn latest_summary(facts: &Facts<'_>, verdict: Verdict) -> String {
    facts
        .latest
        .filter(|run| run.verdict == verdict)
        .map(summarize_run)
        .unwrap_or_default()
}

fn degraded(facts: &Facts<'_>) -> Wanted {
    match (facts.phase, facts.rollback) {
        (Phase::RolledBack, Some(rollback)) => {
            wanted(DEGRADED, true, &rollback.reason, rollback.message.clone())
        }
        (Phase::RolledBack, None) => wanted(DEGRADED, true, "RolledBack", "rolled back"),
        (Phase::Invalid, _) => wanted(
            DEGRADED,
            true,
            "InvalidSpec",
            facts.invalid.unwrap_or_default(),
        ),
        _ => match &facts.experiment {
            Some(experiment)
                if matches!(facts.phase, Phase::Progressing | Phase::Paused)
                    && experiment.decision() == ExperimentDecision::SampleRatioMismatch =>
            {
                wanted(DEGRADED, true, "SampleRatioMismatch", experiment.message())
            }
            _ => wanted(DEGRADED, false, "AsExpected", "no rollback"),
        },
    }
}

fn stale(facts: &Facts<'_>) -> Wanted {
    let after = format_duration(facts.stale_after);
    match facts.staleness {
        Staleness::Stale { since } => wanted(
            STALE,
            true,
            "Stale",
            format!(
                "flag {} has been complete at 100% since {since}, longer than staleAfter {after}: \
                 remove it from the code, then delete this FeatureFlag",
                facts.key
            ),
        ),
        Staleness::Fresh { since } => wanted(
            STALE,
            false,
            "RecentlyCompleted",
            format!("complete at 100% since {since}; reported stale after {after}"),
        ),
        Staleness::NotApplicable => wanted(
            STALE,
            false,
            "NotComplete",
            "only a ramp complete at 100% can become stale",
        ),
    }
}

/// The conditions of a spec the operator refused before the engine could decide (it does
/// not decode, or fails validation): `InvalidSpec=True` with `reason` (what refused it), then
/// `Ready`, `Progressing`, `Degraded` and `Stale` as the engine sets them for an invalid spec.
pub fn refused_spec_conditions(
    previous: &[Condition],
    reason: &str,
    message: &str,
    now: Timestamp,
    generation: i64,
) -> Vec<Condition> {
    let mut conditions = vec![wanted(INVALID_SPEC, true, reason, message)];
    conditions.extend(wanted_conditions(&Facts::invalid("", message)));
    merge(previous, conditions, now, generation)
}

/// Sets one condition through the same merge as the engine's own: the transition time
/// stays while the status does not flip, and a long message is clipped.
pub fn set_condition(
    previous: &[Condition],
    type_: &'static str,
    status: bool,
    reason: &str,
    message: &str,
    now: Timestamp,
    generation: i64,
) -> Vec<Condition> {
    merge(
        previous,
        vec![wanted(type_, status, reason, message)],
        now,
        generation,
    )
}

/// Builds the new condition list: the wanted ones in order, then any other types from
/// `previous` untouched. A condition whose status did not flip keeps its
/// `lastTransitionTime`.
pub(crate) fn merge(
    previous: &[Condition],
    wanted: Vec<Wanted>,
    now: Timestamp,
    generation: i64,
) -> Vec<Condition> {
    let mut merged: Vec<Condition> = wanted
        .into_iter()
        .map(|w| {
            let status = if w.status { "True" } else { "False" };
            let last_transition_time = previous
                .iter()
                .find(|c| c.type_ == w.type_ && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_: w.type_.to_string(),
                status: status.to_string(),
                reason: w.reason,
                message: clip(w.message),
                last_transition_time,
                observed_generation: Some(generation),
            }
        })
        .collect();
    let others = previous
        .iter()
        .filter(|c| !merged.iter().any(|m| m.type_ == c.type_))
        .cloned()
        .collect::<Vec<_>>();
    merged.extend(others);
    merged
}

/// Whether `previous` had the condition `type_` at `True`.
pub(crate) fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// Whether the condition `type_` is present with `reason`.
pub(crate) fn has_reason(conditions: &[Condition], type_: &str, reason: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.reason == reason)
}

fn clip(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_LEN {
        let mut end = MAX_MESSAGE_LEN;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}
