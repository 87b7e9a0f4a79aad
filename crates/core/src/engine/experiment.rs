//! Experiments in the engine. An experiment is a two-step ramp: step 0 serves the arms to
//! `coverage` percent of users while every analysis also looks at the counts; step 1 (100%,
//! `Complete`) is reached only by shipping a declared winner, automatically with `autoShip`
//! or by a `promote` request, and never while the latest guardrail analysis failed or held.
//!
//! These functions take values and return values; the machine applies what they return, so
//! this module does not know the machine.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::crd::{Experiment, ExperimentDecision, ExperimentStatus, FeatureFlagStatus, Phase};
use crate::experiment::{Decision, VariantCounts, evaluate_experiment};
use crate::experiment_status::{decision_kind, decision_message};
use crate::observation::ExperimentOutcome;

use super::events::{EngineEvent, EventReason};
use super::plan::{ExperimentPlan, RampPlan};
use super::timing::until;

/// The message of `ExperimentStarted`.
pub(super) fn started_message(spec: &Experiment) -> String {
    let split = spec
        .variants
        .iter()
        .map(|v| format!("{} {}", v.name, v.weight))
        .collect::<Vec<_>>()
        .join(" / ");
    format!(
        "experiment started on {}% of users, split {split}; everyone else gets the flag off",
        spec.coverage
    )
}

/// The counts in the spec's order (control first) with the spec's weights.
fn counts_in_spec_order(
    spec: &Experiment,
    observed: &[VariantCounts],
) -> Result<Vec<VariantCounts>, String> {
    spec.variants
        .iter()
        .map(|variant| {
            let counts = observed
                .iter()
                .find(|c| c.name == variant.name)
                .ok_or_else(|| format!("no counts for variant {:?}", variant.name))?;
            Ok(VariantCounts {
                weight: variant.weight,
                ..counts.clone()
            })
        })
        .collect()
}

/// Why the stored experiment status cannot be resumed, if it cannot: a restart is the only
/// safe answer when it is gone, or when a completed experiment records no winner.
pub(super) fn status_unusable(
    status: &FeatureFlagStatus,
    ramp: &RampPlan<'_>,
) -> Option<&'static str> {
    ramp.experiment.as_ref()?;
    match &status.experiment {
        None => Some("the experiment's status is missing"),
        Some(experiment)
            if status.phase == Phase::Complete && experiment.shipped_variant.is_none() =>
        {
            Some("the experiment is complete but records no shipped variant")
        }
        Some(_) => None,
    }
}

/// One look at the counts, after the guardrails of the same analysis were judged: the
/// experiment's next status, and the event of a new conclusion or of a look that failed.
pub(super) fn look(
    previous: Option<&ExperimentStatus>,
    plan: &ExperimentPlan<'_>,
    outcome: Option<ExperimentOutcome>,
    now: Timestamp,
) -> (ExperimentStatus, Option<EngineEvent>) {
    let previous = previous
        .cloned()
        .unwrap_or_else(|| ExperimentStatus::started(Time(now)));
    let mut next = previous.clone();
    next.last_look_at = Some(Time(now));
    let counts = match outcome {
        None => Err("the analysis returned no experiment counts".to_string()),
        Some(ExperimentOutcome::Error { message }) => Err(message),
        Some(ExperimentOutcome::Counts { variants }) => counts_in_spec_order(plan.spec, &variants),
    };
    let elapsed = until(previous.started_at.0, now);
    let verdict = counts.and_then(|counts| {
        evaluate_experiment(&plan.config, &counts, &previous.state, elapsed)
            .map_err(|error| error.to_string())
    });
    let event = match verdict {
        Err(message) => {
            let event = previous.error.is_none().then(|| {
                EngineEvent::new(
                    EventReason::ExperimentLookFailed,
                    format!("experiment look skipped, the statistics are unchanged: {message}"),
                )
            });
            next.error = Some(message);
            event
        }
        Ok(verdict) => {
            let kind = decision_kind(&verdict.decision);
            next.error = None;
            next.message = decision_message(
                &verdict.decision,
                &verdict.variants,
                plan.config.alpha,
                plan.spec.max_duration.as_deref(),
            );
            next.winner = match &verdict.decision {
                Decision::Winner(winner) => Some(winner.clone()),
                _ => None,
            };
            next.decision = kind;
            next.variants = verdict.variants;
            next.srm = Some(verdict.srm);
            next.state = verdict.state;
            (kind.is_final() && kind != previous.decision)
                .then(|| announcement(kind, &next.message, plan.spec.auto_ship))
                .flatten()
        }
    };
    (next, event)
}

/// The event of a conclusion.
fn announcement(kind: ExperimentDecision, message: &str, auto_ship: bool) -> Option<EngineEvent> {
    match kind {
        ExperimentDecision::Winner => {
            let next = if auto_ship {
                "autoShip is on: it ships once the guardrails pass"
            } else {
                "autoShip is off: send a promote request to ship it to every user"
            };
            Some(EngineEvent::new(
                EventReason::WinnerDeclared,
                format!("{message}; {next}"),
            ))
        }
        ExperimentDecision::SampleRatioMismatch => {
            Some(EngineEvent::new(EventReason::SampleRatioMismatch, message))
        }
        ExperimentDecision::Inconclusive => {
            Some(EngineEvent::new(EventReason::Inconclusive, message))
        }
        ExperimentDecision::NoDifference => {
            Some(EngineEvent::new(EventReason::NoDifference, message))
        }
        ExperimentDecision::Collecting | ExperimentDecision::Running => None,
    }
}

/// `autoShip`: the declared winner to ship now and the message of `WinnerShipped`, at step 0
/// once the latest guardrail analysis of the step passed and no newer one is due. The
/// machine asks only while `Progressing`, so a paused experiment waits for `resume`.
pub(super) fn winner_to_auto_ship(
    experiment: Option<&ExperimentStatus>,
    plan: &ExperimentPlan<'_>,
    index: u32,
    guardrails_passed: bool,
) -> Option<(String, String)> {
    if index != 0 || !plan.spec.auto_ship || !guardrails_passed {
        return None;
    }
    let experiment = experiment?;
    let winner = experiment
        .winner
        .as_ref()
        .filter(|_| experiment.decision == ExperimentDecision::Winner)?;
    let message = format!(
        "shipped {} to every user (autoShip, guardrails passed): {}",
        winner.variant, experiment.message
    );
    Some((winner.variant.clone(), message))
}

/// `promote` or `promote-full` on an experiment: the declared winner and the message of
/// `WinnerShipped`, or why there is none. The caller already refused a failed or held
/// guardrail analysis.
pub(super) fn winner_on_request(
    experiment: Option<&ExperimentStatus>,
    id: &str,
) -> Result<(String, String), String> {
    let Some(experiment) = experiment else {
        return Err("the experiment has not started".into());
    };
    let winner = match (&experiment.winner, experiment.decision) {
        (Some(winner), ExperimentDecision::Winner) => winner,
        (_, decision) => {
            let detail = if experiment.message.is_empty() {
                String::new()
            } else {
                format!(": {}", experiment.message)
            };
            return Err(format!(
                "no winner to ship; the experiment is {decision}{detail}"
            ));
        }
    };
    let message = format!(
        "shipped {} to every user by request {id}: {}",
        winner.variant, experiment.message
    );
    Ok((winner.variant.clone(), message))
}
