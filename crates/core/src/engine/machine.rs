//! The state transitions behind `decide`, applied in order to a working copy of status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::crd::{
    AnalysisRun, ExperimentStatus, FeatureFlagStatus, MAX_ANALYSIS_HISTORY, Phase, RequestOutcome,
    RequestRecord, RollbackRecord, Verdict,
};
use crate::observation::Observation;

use super::conditions::{GuardrailWait, Staleness};
use super::events::{EngineEvent, EventReason};
use super::experiment;
use super::guardrails;
use super::judge::{judge, summarize_run};
use super::plan::{AnalysisPlan, Plan, RampPlan, Shape};
use super::requests::{Request, Verb};
use super::timing::after;

/// `status.rollback.reason` when the analysis failed too often.
pub(crate) const ANALYSIS_FAILED: &str = "AnalysisFailed";
/// `status.rollback.reason` after an `abort` request.
pub(crate) const MANUAL_ABORT: &str = "ManualAbort";
/// `status.rollback.reason` when a guardrail found the treatment worse than the control.
pub(crate) const GUARDRAIL_REGRESSION: &str = "GuardrailRegression";

pub(crate) struct Machine<'p, 'a> {
    pub plan: &'p Plan<'a>,
    pub now: Timestamp,
    pub status: FeatureFlagStatus,
    pub events: Vec<EngineEvent>,
    /// The ramp entered a step in this call; it moves at most one step per call.
    pub(super) moved: bool,
    /// A request was left for the next call, which should come at once.
    pub deferred_request: bool,
}

impl<'p, 'a> Machine<'p, 'a> {
    pub fn new(plan: &'p Plan<'a>, status: FeatureFlagStatus, now: Timestamp) -> Self {
        Self {
            plan,
            now,
            status,
            events: Vec::new(),
            moved: false,
            deferred_request: false,
        }
    }

    pub(super) fn ramp(&self) -> Option<&'p RampPlan<'a>> {
        match &self.plan.shape {
            Shape::Ramp(ramp) => Some(ramp),
            Shape::Static { .. } => None,
        }
    }

    pub fn analysis(&self) -> Option<&'p AnalysisPlan<'a>> {
        self.ramp()?.analysis.as_ref()
    }

    pub(super) fn emit(&mut self, reason: EventReason, message: impl Into<String>) {
        self.events.push(EngineEvent::new(reason, message));
    }

    pub(super) fn is_ramping(&self) -> bool {
        matches!(self.status.phase, Phase::Progressing | Phase::Paused)
    }

    // ----- 1. a new generation -------------------------------------------------------

    /// A new generation restarts the ramp when the key or the steps changed, or when the
    /// flag was rolled back; any other edit continues at the current step.
    pub fn observe_generation(&mut self) {
        if self.status.observed_generation == Some(self.plan.generation) {
            return;
        }
        let active = matches!(
            self.status.phase,
            Phase::Progressing | Phase::Paused | Phase::Complete | Phase::RolledBack
        );
        let Some(ramp) = self.ramp() else { return };
        if !active || !self.plan.enabled {
            // `settle` turns these into Disabled, Static or a fresh start.
            return;
        }
        let why = if self.status.phase == Phase::RolledBack {
            Some("the spec changed after a rollback")
        } else if self.status.ramp_fingerprint.as_deref() != Some(&self.plan.fingerprint) {
            Some(if ramp.experiment.is_some() {
                "the key, salt, variants, metric or test of the experiment changed"
            } else {
                "the key or the steps changed"
            })
        } else {
            None
        };
        if let Some(why) = why {
            let restart = if ramp.experiment.is_some() {
                "restarting the experiment with fresh statistics"
            } else {
                "restarting at step 0"
            };
            let message = format!("generation {}: {why}; {restart}", self.plan.generation);
            self.start_ramp(ramp, EventReason::RolloutRestarted, message);
        }
    }

    // ----- 2. the spec's own state ---------------------------------------------------

    /// Brings the phase in line with the spec: the kill switch, a static flag, or a ramp
    /// that has to start. A killed flag stays killed until `unkill`.
    pub fn settle(&mut self) {
        if self.status.phase == Phase::Killed {
            return;
        }
        if !self.plan.enabled {
            if self.status.phase != Phase::Disabled {
                self.clear_ramp();
                self.status.phase = Phase::Disabled;
                self.emit(
                    EventReason::Disabled,
                    "spec.enabled is false: the flag is off for everyone",
                );
            }
            return;
        }
        match &self.plan.shape {
            Shape::Static { .. } => {
                if self.status.phase != Phase::Static {
                    self.clear_ramp();
                    self.status.phase = Phase::Static;
                }
            }
            Shape::Ramp(ramp) => self.settle_ramp(ramp),
        }
    }

    fn settle_ramp(&mut self, ramp: &RampPlan<'_>) {
        match self.status.phase {
            Phase::RolledBack => {}
            Phase::Progressing | Phase::Paused | Phase::Complete => {
                let step_exists = self
                    .status
                    .current_step
                    .is_some_and(|i| ramp.step(i).is_some());
                if !step_exists {
                    // A status that does not fit the steps cannot be resumed safely.
                    self.start_ramp(
                        ramp,
                        EventReason::RolloutRestarted,
                        "the recorded step does not exist in the spec; restarting at step 0",
                    );
                } else if let Some(why) = experiment::status_unusable(&self.status, ramp) {
                    let message = format!("{why}; restarting the experiment");
                    self.start_ramp(ramp, EventReason::RolloutRestarted, message);
                } else if self.status.step_started_at.is_none() && self.is_ramping() {
                    self.status.step_started_at = Some(Time(self.now));
                }
                if self.status.ramp_started_at.is_none() && self.is_ramping() {
                    // A status from before guardrails: they count from now.
                    self.status.ramp_started_at = Some(Time(self.now));
                    self.status.guardrails.clear();
                }
            }
            Phase::Pending | Phase::Invalid | Phase::Disabled | Phase::Static | Phase::Killed => {
                let message = match &ramp.experiment {
                    Some(experiment) => experiment::started_message(experiment.spec),
                    None => format!("ramp started at {}", step_label(ramp, 0)),
                };
                self.start_ramp(ramp, EventReason::RolloutStarted, message);
            }
        }
    }

    // ----- 3. a manual request -------------------------------------------------------

    /// Handles a request whose id differs from the last one handled, and records it.
    pub fn handle_request(&mut self, request: Option<Request>) {
        let Some(request) = request else { return };
        if self
            .status
            .last_request
            .as_ref()
            .is_some_and(|last| last.id == request.id)
        {
            return;
        }
        if request.verb == Some(Verb::Promote) && self.moved {
            // The ramp just (re)started: promoting now would move two steps in one call.
            self.deferred_request = true;
            return;
        }
        let (outcome, message) = match request.verb {
            None => {
                let message = format!(
                    "unknown request {:?}: expected <verb>/<id> with verb one of {}",
                    format!("{}/{}", request.verb_text, request.id),
                    Verb::ALL.map(Verb::as_str).join(", ")
                );
                self.emit(EventReason::RequestIgnored, message.clone());
                (RequestOutcome::Ignored, message)
            }
            Some(verb) => match self.apply(verb, &request.id) {
                Ok(message) => (RequestOutcome::Applied, message),
                Err(why) => {
                    let reason = if verb == Verb::Promote {
                        EventReason::PromoteRefused
                    } else {
                        EventReason::RequestRefused
                    };
                    let message = format!("{verb} refused: {why}");
                    self.emit(reason, message.clone());
                    (RequestOutcome::Refused, message)
                }
            },
        };
        self.status.last_request = Some(RequestRecord {
            id: request.id,
            verb: request.verb_text,
            handled_at: Time(self.now),
            outcome,
            message,
        });
    }

    /// Applies one verb; `Err` says why it does not apply now.
    fn apply(&mut self, verb: Verb, id: &str) -> Result<String, String> {
        let phase = self.status.phase;
        match verb {
            Verb::Kill => self.kill(id),
            Verb::Unkill => self.unkill(id),
            Verb::Pause => match phase {
                Phase::Progressing => {
                    self.status.phase = Phase::Paused;
                    let message = format!("paused by request {id}; analysis keeps running");
                    self.emit(EventReason::Paused, message.clone());
                    Ok(message)
                }
                Phase::Paused => Err("the ramp is already paused".into()),
                _ => Err(not_ramping(phase)),
            },
            Verb::Resume => match phase {
                Phase::Paused => {
                    self.status.phase = Phase::Progressing;
                    let message = format!("resumed by request {id}");
                    self.emit(EventReason::Resumed, message.clone());
                    Ok(message)
                }
                _ => Err(format!("the flag is {phase}, not Paused")),
            },
            Verb::Promote => self.promote(id),
            Verb::PromoteFull => self.promote_full(id),
            Verb::Abort => match phase {
                Phase::Progressing | Phase::Paused | Phase::Complete => {
                    let message =
                        format!("aborted by request {id}: 0% until a retry or a spec change");
                    self.roll_back(MANUAL_ABORT, message.clone());
                    Ok(message)
                }
                _ => Err(format!("only a ramp can be aborted; the flag is {phase}")),
            },
            Verb::Retry => match (phase, self.ramp()) {
                (Phase::RolledBack, Some(ramp)) => {
                    let message = format!("retry requested by {id}: restarting at step 0");
                    self.start_ramp(ramp, EventReason::RetryStarted, message.clone());
                    Ok(message)
                }
                _ => Err(format!(
                    "only a rolled-back flag can be retried; the flag is {phase}"
                )),
            },
        }
    }

    fn kill(&mut self, id: &str) -> Result<String, String> {
        if self.status.phase == Phase::Killed {
            return Err("the flag is already killed".into());
        }
        self.clear_ramp();
        self.status.phase = Phase::Killed;
        let message = format!("killed by request {id}: off for everyone until unkill");
        self.emit(EventReason::Killed, message.clone());
        Ok(message)
    }

    /// Unkill restarts from scratch, exactly like `enabled` going from false to true:
    /// a ramp begins again at step 0.
    fn unkill(&mut self, id: &str) -> Result<String, String> {
        if self.status.phase != Phase::Killed {
            return Err(format!("the flag is {}, not Killed", self.status.phase));
        }
        self.status.phase = Phase::Pending;
        let message = format!("unkilled by request {id}");
        self.emit(EventReason::Unkilled, message.clone());
        self.settle();
        Ok(message)
    }

    fn promote(&mut self, id: &str) -> Result<String, String> {
        let (Some(ramp), Some(index)) = (self.ramp(), self.status.current_step) else {
            return Err(not_ramping(self.status.phase));
        };
        if !self.is_ramping() {
            return Err(not_ramping(self.status.phase));
        }
        if let Some(run) = self.latest_step_run() {
            let state = match run.verdict {
                Verdict::Pass => None,
                Verdict::Fail => Some("failed"),
                Verdict::Hold => Some("held"),
            };
            if let Some(state) = state {
                let hint = if ramp.experiment.is_some() {
                    "an experiment never ships while its guardrails fail or hold"
                } else {
                    "promote-full overrides it"
                };
                return Err(format!(
                    "the latest analysis {state} ({}); {hint}",
                    summarize_run(run)
                ));
            }
        }
        if ramp.experiment.is_some() {
            let (variant, message) =
                experiment::winner_on_request(self.status.experiment.as_ref(), id)?;
            self.ship(ramp, variant, message.clone());
            return Ok(message);
        }
        let paused = self.status.phase == Phase::Paused;
        let target = index.saturating_add(1);
        let message = format!("promoted by request {id} to {}", step_label(ramp, target));
        self.emit(EventReason::Promoted, message.clone());
        self.enter_step(ramp, target, paused);
        Ok(message)
    }

    fn promote_full(&mut self, id: &str) -> Result<String, String> {
        let Some(ramp) = self.ramp() else {
            return Err(not_ramping(self.status.phase));
        };
        if !self.is_ramping() {
            return Err(not_ramping(self.status.phase));
        }
        if ramp.experiment.is_some() {
            // An experiment ships its winner, never an arbitrary arm: as `promote`.
            return self.promote(id);
        }
        let target = ramp.last_index();
        let message = format!(
            "promoted fully by request {id} to {}",
            step_label(ramp, target)
        );
        self.emit(EventReason::Promoted, message.clone());
        self.enter_step(ramp, target, false);
        Ok(message)
    }

    // ----- 4. the analysis -----------------------------------------------------------

    /// Judges an analysis that is due; an analysis that is not due is ignored, so a
    /// repeated call never counts the same failure twice.
    pub fn judge(&mut self, observation: Observation) {
        let (observed, guardrails_observed, experiment) = match observation {
            Observation::None => return,
            Observation::Analysis(observed) => (observed, Vec::new(), None),
            Observation::Guarded {
                metrics,
                guardrails,
            } => (metrics, guardrails, None),
            Observation::Experiment {
                metrics,
                experiment,
            } => (metrics, Vec::new(), Some(experiment)),
        };
        let (Some(analysis), Some(step)) = (self.analysis(), self.status.current_step) else {
            return;
        };
        if !self.analysis_due() {
            return;
        }
        let held_before = self.latest_step_run().map(|r| r.verdict) == Some(Verdict::Hold);
        let (statuses, results) = guardrails::look_all(
            &analysis.guardrails,
            &self.status.guardrails,
            guardrails_observed,
            self.now,
        );
        self.status.guardrails = statuses;
        let judgement = judge(analysis.metrics, &observed).with_guardrails(results);
        let summary = judgement.summary();
        let regression = judgement.regression();
        self.record(AnalysisRun {
            time: Time(self.now),
            step,
            verdict: judgement.verdict,
            metrics: judgement.metrics,
            guardrails: judgement.guardrails,
        });
        if regression && self.is_ramping() {
            let label = self
                .ramp()
                .map(|ramp| step_label(ramp, step))
                .unwrap_or_default();
            let message = format!(
                "rolled back at {label}: the treatment is worse than the control: {summary}"
            );
            self.roll_back(GUARDRAIL_REGRESSION, message);
            return;
        }
        match judgement.verdict {
            Verdict::Pass => self.status.consecutive_failures = 0,
            Verdict::Hold => {
                if !held_before {
                    let count = self.ramp().map_or(0, |ramp| ramp.steps.len());
                    self.emit(
                        EventReason::AnalysisHeld,
                        format!(
                            "analysis held at step {}: {summary}",
                            super::numbering::step_of(step, count)
                        ),
                    );
                }
            }
            Verdict::Fail => self.count_failure(analysis.failure_limit, &summary),
        }
        if let Some(plan) = self.ramp().and_then(|r| r.experiment.as_ref())
            && self.is_ramping()
            && step == 0
        {
            let (next, event) =
                experiment::look(self.status.experiment.as_ref(), plan, experiment, self.now);
            self.status.experiment = Some(next);
            self.events.extend(event);
        }
    }

    fn record(&mut self, run: AnalysisRun) {
        let status = &mut self.status;
        status.last_analysis_at = Some(run.time.clone());
        status.step_analyses = status.step_analyses.saturating_add(1);
        status.analyses.push(run);
        let excess = status.analyses.len().saturating_sub(MAX_ANALYSIS_HISTORY);
        status.analyses.drain(..excess);
    }

    /// The failure that reaches `failureLimit` rolls back in the same call.
    fn count_failure(&mut self, limit: u32, summary: &str) {
        let failures = self.status.consecutive_failures.saturating_add(1);
        self.status.consecutive_failures = failures;
        if failures >= limit {
            let message = format!(
                "rolled back after {failures} failed analyses in a row (failureLimit {limit}): {summary}"
            );
            self.roll_back(ANALYSIS_FAILED, message);
        } else {
            self.emit(
                EventReason::AnalysisFailed,
                format!("analysis failed ({failures} of {limit} before rollback): {summary}"),
            );
        }
    }

    // ----- 5. advancing --------------------------------------------------------------

    /// Moves at most one step: when the pause has elapsed and, with analysis, at least
    /// one analysis ran in the step, the latest passed, and no newer one is due.
    pub fn advance(&mut self) {
        if self.status.phase != Phase::Progressing || self.moved {
            return;
        }
        let (Some(ramp), Some(index)) = (self.ramp(), self.status.current_step) else {
            return;
        };
        if let Some(plan) = &ramp.experiment {
            let passed = self.latest_step_run().map(|r| r.verdict) == Some(Verdict::Pass);
            let shippable = experiment::winner_to_auto_ship(
                self.status.experiment.as_ref(),
                plan,
                index,
                passed && !self.analysis_due(),
            );
            if let Some((variant, message)) = shippable {
                self.ship(ramp, variant, message);
            }
            return;
        }
        if !self.pause_ended(ramp) {
            return;
        }
        if let Some(analysis) = &ramp.analysis {
            let passed = self.latest_step_run().map(|r| r.verdict) == Some(Verdict::Pass);
            if !passed || self.analysis_due() {
                return;
            }
            if !guardrails::waiting_for(&analysis.guardrails, &self.status.guardrails).is_empty() {
                return;
            }
        }
        let target = index.saturating_add(1);
        let why = if ramp
            .analysis
            .as_ref()
            .is_some_and(|a| !a.guardrails.is_empty())
        {
            "pause elapsed, the analysis passed and the guardrails saw enough samples with no regression"
        } else if ramp.analysis.is_some() {
            "pause elapsed and the analysis passed"
        } else {
            "pause elapsed (time-only ramp, no analysis)"
        };
        let message = format!("advanced to {}: {why}", step_label(ramp, target));
        self.emit(EventReason::StepAdvanced, message);
        self.enter_step(ramp, target, false);
    }

    // ----- state helpers -------------------------------------------------------------

    /// Starts the ramp at step 0; an experiment starts afresh, with `ExperimentStarted` or
    /// `ExperimentRestarted` in place of `RolloutStarted` or `RolloutRestarted`.
    fn start_ramp(&mut self, ramp: &RampPlan<'_>, reason: EventReason, message: impl Into<String>) {
        self.clear_ramp();
        let reason = match (&ramp.experiment, reason) {
            (Some(_), EventReason::RolloutStarted) => EventReason::ExperimentStarted,
            (Some(_), EventReason::RolloutRestarted) => EventReason::ExperimentRestarted,
            _ => reason,
        };
        self.emit(reason, message);
        if ramp.experiment.is_some() {
            self.status.experiment = Some(ExperimentStatus::started(Time(self.now)));
        }
        self.status.ramp_started_at = Some(Time(self.now));
        self.enter_step(ramp, 0, false);
    }

    /// Every user gets `variant` from now on: `Complete` at 100%, and the stale clock starts.
    fn ship(&mut self, ramp: &RampPlan<'_>, variant: String, message: String) {
        if let Some(experiment) = self.status.experiment.as_mut() {
            experiment.shipped_variant = Some(variant);
            experiment.shipped_at = Some(Time(self.now));
        }
        self.emit(EventReason::WinnerShipped, message);
        self.enter_step(ramp, ramp.last_index(), false);
    }

    /// Enters step `index`; the last step completes the ramp.
    pub(super) fn enter_step(&mut self, ramp: &RampPlan<'_>, index: u32, paused: bool) {
        let index = index.min(ramp.last_index());
        self.moved = true;
        let status = &mut self.status;
        status.current_step = Some(index);
        status.step_started_at = Some(Time(self.now));
        status.step_analyses = 0;
        status.rollback = None;
        guardrails::new_step(&mut status.guardrails);
        if index == ramp.last_index() {
            status.phase = Phase::Complete;
            status.completed_at = Some(Time(self.now));
            if ramp.experiment.is_some() {
                // Shipping emitted `WinnerShipped`.
                return;
            }
            let message = format!(
                "ramp complete at {}%",
                ramp.step(index).map(|s| s.percent).unwrap_or_default()
            );
            self.emit(EventReason::Completed, message);
        } else {
            status.phase = if paused {
                Phase::Paused
            } else {
                Phase::Progressing
            };
        }
    }

    fn roll_back(&mut self, reason: &str, message: String) {
        self.status.phase = Phase::RolledBack;
        self.status.completed_at = None;
        self.status.rollback = Some(RollbackRecord {
            reason: reason.to_string(),
            message: message.clone(),
            at: Time(self.now),
        });
        self.emit(EventReason::RolledBack, message);
    }

    /// Forgets the position in a ramp; the analysis history stays.
    fn clear_ramp(&mut self) {
        let status = &mut self.status;
        status.current_step = None;
        status.step_started_at = None;
        status.step_analyses = 0;
        status.consecutive_failures = 0;
        status.completed_at = None;
        status.rollback = None;
        status.ramp_started_at = None;
        status.guardrails.clear();
    }

    // ----- queries -------------------------------------------------------------------

    /// The latest analysis run of the current step, if any ran in it. Without metrics in
    /// the spec nothing gates the ramp, so runs from an earlier spec no longer count.
    pub fn latest_step_run(&self) -> Option<&AnalysisRun> {
        if self.status.step_analyses == 0 || self.analysis().is_none() {
            return None;
        }
        self.status
            .analyses
            .last()
            .filter(|run| Some(run.step) == self.status.current_step)
    }

    /// When the next analysis is due: one interval after the later of the step's start
    /// and the last analysis, so the first analysis of a step measures that step.
    pub fn next_analysis_at(&self) -> Option<Timestamp> {
        let analysis = self.analysis()?;
        if !self.is_ramping() {
            return None;
        }
        let started = self.status.step_started_at.as_ref().map(|t| t.0);
        let analyzed = self.status.last_analysis_at.as_ref().map(|t| t.0);
        let base = started.max(analyzed).unwrap_or(self.now);
        Some(after(base, analysis.interval))
    }

    pub fn analysis_due(&self) -> bool {
        self.next_analysis_at().is_some_and(|at| at <= self.now)
    }

    pub fn pause_ends_at(&self, ramp: &RampPlan<'_>) -> Option<Timestamp> {
        let step = ramp.step(self.status.current_step?)?;
        let started = self.status.step_started_at.as_ref()?.0;
        Some(after(started, step.pause))
    }

    fn pause_ended(&self, ramp: &RampPlan<'_>) -> bool {
        self.pause_ends_at(ramp).is_some_and(|end| end <= self.now)
    }

    /// The percent the phase implies: the step's while ramping, `spec.percent` when
    /// static, 0 for every state that turns the flag off.
    pub fn percent(&self) -> f64 {
        match (&self.plan.shape, self.status.phase) {
            (Shape::Static { percent }, Phase::Static) => *percent,
            (Shape::Ramp(ramp), Phase::Progressing | Phase::Paused | Phase::Complete) => self
                .status
                .current_step
                .and_then(|i| ramp.step(i))
                .map(|s| s.percent)
                .unwrap_or_default(),
            _ => 0.0,
        }
    }

    pub fn staleness(&self) -> Staleness {
        let since = match (&self.status.completed_at, self.status.phase) {
            (Some(at), Phase::Complete) if self.percent() >= 100.0 => at.0,
            _ => return Staleness::NotApplicable,
        };
        if after(since, self.plan.stale_after) <= self.now {
            Staleness::Stale { since }
        } else {
            Staleness::Fresh { since }
        }
    }

    /// Why a step whose pause has elapsed and whose latest analysis passed still waits for
    /// its guardrails, and whether it has waited past `maxStepDuration`.
    pub fn guardrail_wait(&self) -> Option<GuardrailWait> {
        if self.status.phase != Phase::Progressing {
            return None;
        }
        let ramp = self.ramp()?;
        let analysis = ramp.analysis.as_ref()?;
        if analysis.guardrails.is_empty() || !self.pause_ended(ramp) {
            return None;
        }
        if self.latest_step_run().map(|r| r.verdict) != Some(Verdict::Pass) {
            return None;
        }
        let waiting = guardrails::waiting_for(&analysis.guardrails, &self.status.guardrails);
        if waiting.is_empty() {
            return None;
        }
        let started = self.status.step_started_at.as_ref()?.0;
        let starved = analysis
            .max_step_duration
            .is_some_and(|max| after(started, max) <= self.now);
        let message = match analysis.max_step_duration {
            Some(max) if starved => format!(
                "the step has run longer than maxStepDuration {} without enough guardrail samples: {}; promote to go on without them, or lower minSamplesPerCohort",
                crate::duration::format_duration(max),
                waiting.join("; ")
            ),
            _ => format!(
                "pause elapsed; the step is extended: {}",
                waiting.join("; ")
            ),
        };
        Some(GuardrailWait { message, starved })
    }

    pub fn ramp_plan(&self) -> Option<&'p RampPlan<'a>> {
        self.ramp()
    }
}

fn step_label(ramp: &RampPlan<'_>, index: u32) -> String {
    format!(
        "step {} ({}%)",
        super::numbering::step_of(index, ramp.steps.len()),
        ramp.step(index).map(|s| s.percent).unwrap_or_default()
    )
}

fn not_ramping(phase: Phase) -> String {
    format!("the flag is {phase}, not Progressing or Paused")
}
