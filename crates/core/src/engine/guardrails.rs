//! Guardrail looks inside an analysis: each guardrail's counts folded into its statistics,
//! and what the ramp may do with the result.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::crd::{GuardrailResult, GuardrailStatus};
use crate::guardrail::{GuardrailState, GuardrailVerdict, look};
use crate::observation::{GuardrailObservation, GuardrailOutcome};

use super::plan::GuardrailPlan;

/// Every guardrail of the spec, looked at once: the new statuses (spec order) and the
/// results for the analysis run. A guardrail the observation does not mention is an error.
pub(crate) fn look_all(
    plans: &[GuardrailPlan<'_>],
    previous: &[GuardrailStatus],
    mut observed: Vec<GuardrailObservation>,
    now: Timestamp,
) -> (Vec<GuardrailStatus>, Vec<GuardrailResult>) {
    plans
        .iter()
        .map(|plan| {
            let name = &plan.spec.name;
            let before = previous
                .iter()
                .find(|s| &s.name == name && s.fingerprint == plan.fingerprint);
            let outcome = observed
                .iter()
                .position(|o| &o.name == name)
                .map(|i| observed.swap_remove(i).outcome);
            let status = look_one(plan, before, outcome, now);
            let result = GuardrailResult {
                name: name.clone(),
                verdict: status.verdict,
                message: status.message.clone(),
            };
            (status, result)
        })
        .unzip()
}

fn look_one(
    plan: &GuardrailPlan<'_>,
    before: Option<&GuardrailStatus>,
    outcome: Option<GuardrailOutcome>,
    now: Timestamp,
) -> GuardrailStatus {
    let name = &plan.spec.name;
    let state = before.map(|s| s.state.clone()).unwrap_or_default();
    let failed = |message: String| GuardrailStatus {
        verdict: if state.regression {
            GuardrailVerdict::Regression
        } else {
            GuardrailVerdict::Error
        },
        message: format!("guardrail {name}: {message}"),
        last_look_at: Some(Time(now)),
        ..before.cloned().unwrap_or_else(|| fresh(plan, &state))
    };
    match outcome {
        None => failed("the provider returned no counts for this guardrail".to_string()),
        Some(GuardrailOutcome::Error { message }) => failed(message),
        Some(GuardrailOutcome::Counts { counts }) => match look(&plan.config, &state, counts) {
            Err(error) => failed(error.to_string()),
            Ok(look) => GuardrailStatus {
                name: name.clone(),
                verdict: look.verdict,
                message: format!("guardrail {name}: {}", look.message),
                treatment_rate: look.treatment_rate,
                control_rate: look.control_rate,
                interval: look.interval,
                step_samples: look.state.step,
                last_look_at: Some(Time(now)),
                fingerprint: plan.fingerprint.clone(),
                state: look.state,
            },
        },
    }
}

fn fresh(plan: &GuardrailPlan<'_>, state: &GuardrailState) -> GuardrailStatus {
    GuardrailStatus {
        name: plan.spec.name.clone(),
        verdict: GuardrailVerdict::Collecting,
        message: String::new(),
        treatment_rate: 0.0,
        control_rate: 0.0,
        interval: state.interval,
        step_samples: state.step,
        last_look_at: None,
        fingerprint: plan.fingerprint.clone(),
        state: state.clone(),
    }
}

/// The guardrails that keep the current step from passing: not yet judged, in error, or
/// short of `minSamplesPerCohort` in the step. Empty when the step may pass.
pub(crate) fn waiting_for(
    plans: &[GuardrailPlan<'_>],
    statuses: &[GuardrailStatus],
) -> Vec<String> {
    plans
        .iter()
        .filter_map(|plan| {
            let name = &plan.spec.name;
            let min = plan.config.min_samples_per_cohort;
            let Some(status) = statuses
                .iter()
                .find(|s| &s.name == name && s.fingerprint == plan.fingerprint)
            else {
                return Some(format!("guardrail {name} has not looked yet"));
            };
            let step = status.state.step;
            match status.verdict {
                GuardrailVerdict::Pass if status.state.step_has_samples(min) => None,
                GuardrailVerdict::Error => Some(status.message.clone()),
                _ => Some(format!(
                    "guardrail {name} has {} treatment and {} control events in this step, {min} each needed",
                    step.treatment.total, step.control.total
                )),
            }
        })
        .collect()
}

/// Every guardrail at the start of a new step: the per-step counts start again.
pub(crate) fn new_step(statuses: &mut [GuardrailStatus]) {
    for status in statuses {
        status.state = status.state.new_step();
        status.step_samples = status.state.step;
    }
}
