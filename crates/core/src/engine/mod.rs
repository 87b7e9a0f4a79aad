//! The rollout engine: the pure decision core.
//!
//! [`decide`] takes the flag (spec, `metadata.generation`, annotations), its status, what
//! the metric provider saw and the time, and returns a [`Decision`]: the new status, the
//! flag to publish, the events to emit, whether an analysis is due and when to call
//! again. It has no Kubernetes client, no HTTP, no clock and no randomness; every piece
//! of state it needs lives in `status`. The rules are the tables of `docs/rollout.md`.
//!
//! # Calling protocol
//!
//! ```text
//! let decision = decide(&flag, &status, Observation::None, now);
//! let decision = if decision.analysis_due {
//!     let observation = run_the_queries(&flag);          // Prometheus, in the controller
//!     decide(&flag, &status, observation, now)           // same flag, status and now
//! } else {
//!     decision
//! };
//! apply(decision.status); publish(decision.resolved); emit(decision.events);
//! requeue(decision.requeue_after);
//! ```
//!
//! - The first call is a dry run: when it says `analysis_due`, drop it (events too) and
//!   make the second call from the *same* status. Both calls agree, because a call with
//!   [`Observation::None`] never advances while an analysis is due.
//! - An analysis passed when none is due is ignored and not recorded. Repeating a call,
//!   or applying the first decision and then making the second call, therefore never
//!   counts one failure twice.
//! - The first analysis of a step is due one `interval` after the step started, so it
//!   measures the step's own exposure; later ones one `interval` after the previous.
//! - `requeue_after` is the earliest of the next analysis, the end of the current pause
//!   and the moment a completed flag turns stale; `Some(ZERO)` when an analysis is due,
//!   `None` when only a spec change or a request can move the flag (watch events wake
//!   the controller for those).
//! - The ramp moves at most one step per call. A `promote` that arrives in the call that
//!   starts or restarts the ramp is left for the next call, with `requeue_after` zero.
//! - `now` is rounded down to whole seconds, as status timestamps are stored, so a status
//!   read back from the API server yields exactly the same decision.

mod conditions;
mod events;
mod experiment;
mod guardrails;
pub mod judge;
mod machine;
mod numbering;
mod plan;
pub mod requests;
mod timing;

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use rollgate_sdk::{ExperimentAssignment, FlagEntry};

use crate::crd::{FeatureFlag, FeatureFlagStatus, Phase, TargetingRule};
use crate::observation::Observation;

pub use conditions::{
    ANALYSIS_OVERDUE, DEGRADED, EXPERIMENT_CONCLUDED, INVALID_SPEC, PROGRESSING, PUBLISH_FAILED,
    READY, SAMPLE_RATIO_MISMATCH, STALE, refused_spec_conditions, set_condition,
};
pub use events::{EngineEvent, EventReason, EventType};
pub use judge::Judgement;
pub use numbering::step_of;
pub use plan::EngineError;
pub use requests::{Request, Verb, parse_request};
pub use timing::{analysis_slot, on_grid, until};

use conditions::{
    EXPERIMENT_CONDITIONS, ExperimentFacts, Facts, GUARDRAIL_STARVED, Staleness, has_reason,
    is_true, merge, wanted_conditions,
};
use machine::Machine;
use plan::Plan;
use requests::request_from_annotations;
use timing::{after, whole_seconds};

/// What the controller must do after one call to [`decide`].
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The status to write (server-side apply; skip the write when it equals the old one).
    pub status: FeatureFlagStatus,
    /// The flag to publish for workloads.
    pub resolved: ResolvedFlag,
    /// Kubernetes events for the transitions of this call, in order.
    pub events: Vec<EngineEvent>,
    /// Run the metric queries and call again with the result before acting on this.
    pub analysis_due: bool,
    /// When the next analysis is (or was) due and its interval; `None` when none runs.
    /// The controller compares the time an analysis finished against it.
    pub analysis_schedule: Option<AnalysisSchedule>,
    /// When to call again; `None` when only a change to the object can move it.
    pub requeue_after: Option<Duration>,
}

/// When an analysis is due, and how often analyses run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AnalysisSchedule {
    pub due_at: Timestamp,
    pub interval: Duration,
}

/// The resolved flag, as workloads see it. Every phase that turns the flag off
/// (`Disabled`, `Killed`, `RolledBack`, `Invalid`) publishes `enabled: false` at 0%, so
/// allowed users are off too.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedFlag {
    pub key: String,
    pub enabled: bool,
    pub percent: f64,
    pub allowed_users: Vec<String>,
    pub variants: Vec<rollgate_sdk::Variant>,
    /// Experiments: who is in (`coverage`) and the salt of the arm hash.
    pub experiment: Option<ExperimentAssignment>,
    /// Experiments: the winner every user gets once it shipped.
    pub shipped_variant: Option<String>,
    /// `spec.targeting`, in order; it never changes the ramp, only who reaches it.
    pub targeting: Vec<rollgate_sdk::TargetingRule>,
    pub phase: Phase,
    pub generation: i64,
}

impl ResolvedFlag {
    /// The entry for the published flag document.
    pub fn to_entry(&self, updated_at: &str) -> FlagEntry {
        FlagEntry {
            key: self.key.clone(),
            enabled: self.enabled,
            percent: self.percent,
            allowed_users: self.allowed_users.clone(),
            variants: self.variants.clone(),
            experiment: self.experiment.clone(),
            shipped_variant: self.shipped_variant.clone(),
            targeting: self.targeting.clone(),
            phase: self.phase.as_str().to_string(),
            generation: self.generation,
            updated_at: updated_at.to_string(),
        }
    }
}

/// What is left before the engine acts on its own, as `decide` reckons it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    /// Until the next analysis of the current step; zero when one is due. `None` when no
    /// analysis runs (no metrics, or not ramping).
    pub next_analysis_in: Option<Duration>,
    /// Until the current step's pause ends; zero when it has. `None` without a ramp position.
    pub pause_left: Option<Duration>,
}

/// The timers of a flag with this stored status, from the same rules `decide` uses, for
/// readers such as `kubectl rollgate status`. An invalid spec has none.
pub fn schedule(flag: &FeatureFlag, status: &FeatureFlagStatus, now: Timestamp) -> Schedule {
    let now = whole_seconds(now);
    let Ok(plan) = Plan::from_flag(flag) else {
        return Schedule::default();
    };
    let machine = Machine::new(&plan, status.clone(), now);
    Schedule {
        next_analysis_in: machine.next_analysis_at().map(|at| until(now, at)),
        pause_left: machine
            .ramp_plan()
            .and_then(|ramp| machine.pause_ends_at(ramp))
            .map(|end| until(now, end)),
    }
}

/// Decides what the flag should look like now. See the module docs for the protocol.
pub fn decide(
    flag: &FeatureFlag,
    status: &FeatureFlagStatus,
    observation: Observation,
    now: Timestamp,
) -> Decision {
    let now = whole_seconds(now);
    match Plan::from_flag(flag) {
        Ok(plan) => decide_valid(flag, &plan, status, observation, now),
        Err(error) => decide_invalid(flag, status, &error, now),
    }
}

/// The fixed order of one call: spec generation, spec state, request, analysis, advance.
fn decide_valid(
    flag: &FeatureFlag,
    plan: &Plan<'_>,
    status: &FeatureFlagStatus,
    observation: Observation,
    now: Timestamp,
) -> Decision {
    let mut machine = Machine::new(plan, status.clone(), now);
    machine.observe_generation();
    machine.settle();
    machine.handle_request(request_from_annotations(flag.metadata.annotations.as_ref()));
    machine.judge(observation);
    machine.advance();
    finish(flag, machine, status)
}

fn finish(flag: &FeatureFlag, machine: Machine<'_, '_>, previous: &FeatureFlagStatus) -> Decision {
    let plan = machine.plan;
    let now = machine.now;
    let analysis_due = machine.analysis_due();
    let analysis_schedule =
        machine
            .next_analysis_at()
            .zip(machine.analysis())
            .map(|(due_at, analysis)| AnalysisSchedule {
                due_at,
                interval: analysis.interval,
            });
    let requeue_after = requeue_after(&machine, analysis_due);
    let staleness = machine.staleness();
    let guardrail_wait = machine.guardrail_wait();
    let percent = machine.percent();
    let step_count = machine
        .ramp_plan()
        .map(|r| r.steps.len())
        .unwrap_or_default();
    let wanted = wanted_conditions(&Facts {
        key: plan.key,
        phase: machine.status.phase,
        percent,
        step: match machine.status.phase {
            Phase::Progressing | Phase::Paused => {
                machine.status.current_step.map(|i| (i, step_count))
            }
            _ => None,
        },
        latest: machine.latest_step_run(),
        consecutive_failures: machine.status.consecutive_failures,
        failure_limit: machine
            .analysis()
            .map(|a| a.failure_limit)
            .unwrap_or_default(),
        rollback: machine.status.rollback.as_ref(),
        guardrail_wait: guardrail_wait.clone(),
        invalid: None,
        staleness,
        stale_after: plan.stale_after,
        experiment: machine
            .ramp_plan()
            .and_then(|r| r.experiment.as_ref())
            .map(|e| ExperimentFacts {
                status: machine.status.experiment.as_ref(),
                coverage: e.spec.coverage,
                auto_ship: e.spec.auto_ship,
            }),
    });
    let is_experiment = machine.ramp_plan().is_some_and(|r| r.experiment.is_some());
    let Machine {
        mut status,
        mut events,
        ..
    } = machine;
    if let Some(wait) = &guardrail_wait
        && wait.starved
        && !has_reason(&previous.conditions, PROGRESSING, GUARDRAIL_STARVED)
    {
        events.push(EngineEvent::new(
            EventReason::GuardrailStarved,
            wait.message.clone(),
        ));
    }
    // The event fires once, when the condition flips.
    if let Staleness::Stale { .. } = staleness
        && !is_true(&previous.conditions, STALE)
    {
        events.push(EngineEvent::new(
            EventReason::Stale,
            format!(
                "flag {} has been at 100% longer than staleAfter: remove it from the code and delete it",
                plan.key
            ),
        ));
    }
    let mut previous_conditions = previous.conditions.clone();
    // A spec the engine can act on is no longer invalid, whoever refused it before.
    previous_conditions.retain(|c| c.type_ != INVALID_SPEC);
    if !is_experiment {
        // Experiment conditions and results go with the experiment.
        previous_conditions.retain(|c| !EXPERIMENT_CONDITIONS.contains(&c.type_.as_str()));
        status.experiment = None;
    }
    status.conditions = merge(&previous_conditions, wanted, now, plan.generation);
    status.percent = Some(percent);
    status.observed_generation = Some(plan.generation);
    status.ramp_fingerprint = Some(plan.fingerprint.clone());
    Decision {
        resolved: resolved(flag, &status, percent, plan.generation),
        status,
        events,
        analysis_due,
        analysis_schedule,
        requeue_after,
    }
}

/// The earliest of the next analysis, the end of the pause and the stale deadline.
fn requeue_after(machine: &Machine<'_, '_>, analysis_due: bool) -> Option<Duration> {
    if analysis_due || machine.deferred_request {
        return Some(Duration::ZERO);
    }
    let now = machine.now;
    let mut wake_ups = Vec::new();
    wake_ups.extend(machine.next_analysis_at());
    if machine.status.phase == Phase::Progressing
        && let Some(ramp) = machine.ramp_plan()
    {
        // With analysis, a pause that has ended waits for the next analysis instead.
        let pause_end = machine
            .pause_ends_at(ramp)
            .filter(|end| *end > now || ramp.analysis.is_none());
        wake_ups.extend(pause_end);
    }
    if let Staleness::Fresh { since } = machine.staleness() {
        wake_ups.push(after(since, machine.plan.stale_after));
    }
    wake_ups.into_iter().min().map(|at| until(now, at))
}

/// The published flag. An experiment publishes its arms, `experiment: {coverage, salt}`
/// (its `percent` is the coverage, so users outside it are off) and, once shipped, the winner.
/// The publisher renders documents through this too, so there is one resolution rule.
pub fn resolved(
    flag: &FeatureFlag,
    status: &FeatureFlagStatus,
    percent: f64,
    generation: i64,
) -> ResolvedFlag {
    let phase = status.phase;
    let enabled = matches!(
        phase,
        Phase::Static | Phase::Progressing | Phase::Paused | Phase::Complete
    );
    ResolvedFlag {
        key: flag.key().to_string(),
        enabled,
        percent: if enabled { percent } else { 0.0 },
        allowed_users: flag.spec.allowed_users.clone(),
        experiment: flag
            .spec
            .experiment
            .as_ref()
            .map(|experiment| ExperimentAssignment {
                coverage: experiment.coverage,
                salt: flag.experiment_salt().unwrap_or_default().to_string(),
            }),
        shipped_variant: status
            .experiment
            .as_ref()
            .and_then(|e| e.shipped_variant.clone())
            .filter(|_| phase == Phase::Complete && flag.spec.experiment.is_some())
            .filter(|shipped| flag.arms().iter().any(|arm| &arm.name == shipped)),
        targeting: flag
            .spec
            .targeting
            .iter()
            .filter_map(TargetingRule::to_document)
            .collect(),
        variants: flag
            .arms()
            .iter()
            .map(|v| rollgate_sdk::Variant {
                name: v.name.clone(),
                weight: f64::from(v.weight),
            })
            .collect(),
        phase,
        generation,
    }
}

/// A spec the engine cannot act on: off for everyone, `InvalidSpec=True` with reason
/// `PlanFailed` and `Ready=False` with reason `InvalidSpec`, as when the operator refuses a
/// spec, and nothing else touched until the spec changes. A killed flag stays killed.
fn decide_invalid(
    flag: &FeatureFlag,
    previous: &FeatureFlagStatus,
    error: &EngineError,
    now: Timestamp,
) -> Decision {
    let generation = flag.metadata.generation.unwrap_or_default();
    let message = error.to_string();
    let mut status = previous.clone();
    let mut events = Vec::new();
    if !matches!(status.phase, Phase::Invalid | Phase::Killed) {
        status.phase = Phase::Invalid;
        events.push(EngineEvent::new(EventReason::InvalidSpec, message.clone()));
    }
    status.conditions = refused_spec_conditions(
        &previous.conditions,
        "PlanFailed",
        &message,
        now,
        generation,
    );
    status.percent = Some(0.0);
    status.observed_generation = Some(generation);
    Decision {
        resolved: resolved(flag, &status, 0.0, generation),
        status,
        events,
        analysis_due: false,
        analysis_schedule: None,
        requeue_after: None,
    }
}
