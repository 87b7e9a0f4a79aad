//! Experiments in the engine. An experiment is a two-step ramp: step 0 serves the arms to
//! `coverage` percent of users while every analysis also looks at the counts; step 1 (100%,
//! `Complete`) is reached only by shipping a declared winner, automatically with `autoShip`
//! or by a `promote` request, and never while the latest guardrail analysis failed or held.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::crd::{Experiment, ExperimentDecision, ExperimentStatus, Phase, Verdict};
use crate::experiment_status::{decision_kind, decision_message};
use crate::experiment::{Decision, VariantCounts, evaluate_experiment};
use crate::observation::ExperimentOutcome;

use super::EventType;
use super::machine::Machine;
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

impl Machine<'_, '_> {
    /// Why the stored experiment status cannot be resumed, if it cannot: a restart is the
    /// only safe answer when it is gone, or when a completed experiment records no winner.
    pub(super) fn experiment_status_unusable(&self, ramp: &RampPlan<'_>) -> Option<&'static str> {
        ramp.experiment.as_ref()?;
        match &self.status.experiment {
            None => Some("the experiment's status is missing"),
            Some(experiment)
                if self.status.phase == Phase::Complete && experiment.shipped_variant.is_none() =>
            {
                Some("the experiment is complete but records no shipped variant")
            }
            Some(_) => None,
        }
    }

    /// One look at the counts, after the guardrails of the same analysis were judged.
    pub(super) fn look(&mut self, plan: &ExperimentPlan<'_>, outcome: Option<ExperimentOutcome>) {
        let previous = self
            .status
            .experiment
            .clone()
            .unwrap_or_else(|| ExperimentStatus::started(Time(self.now)));
        let mut next = previous.clone();
        next.last_look_at = Some(Time(self.now));
        let counts = match outcome {
            None => Err("the analysis returned no experiment counts".to_string()),
            Some(ExperimentOutcome::Error { message }) => Err(message),
            Some(ExperimentOutcome::Counts { variants }) => {
                counts_in_spec_order(plan.spec, &variants)
            }
        };
        let elapsed = until(previous.started_at.0, self.now);
        let verdict = counts.and_then(|counts| {
            evaluate_experiment(&plan.config, &counts, &previous.state, elapsed)
                .map_err(|error| error.to_string())
        });
        match verdict {
            Err(message) => {
                if previous.error.is_none() {
                    self.emit(
                        EventType::Warning,
                        "ExperimentLookFailed",
                        format!("experiment look skipped, the statistics are unchanged: {message}"),
                    );
                }
                next.error = Some(message);
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
                if kind.is_final() && kind != previous.decision {
                    self.announce(kind, &next.message, plan.spec.auto_ship);
                }
            }
        }
        self.status.experiment = Some(next);
    }

    /// The event of a conclusion, once.
    fn announce(&mut self, kind: ExperimentDecision, message: &str, auto_ship: bool) {
        match kind {
            ExperimentDecision::Winner => {
                let next = if auto_ship {
                    "autoShip is on: it ships once the guardrails pass"
                } else {
                    "autoShip is off: send a promote request to ship it to every user"
                };
                self.emit(
                    EventType::Normal,
                    "WinnerDeclared",
                    format!("{message}; {next}"),
                );
            }
            ExperimentDecision::SampleRatioMismatch => {
                self.emit(EventType::Warning, "SampleRatioMismatch", message);
            }
            ExperimentDecision::Inconclusive => {
                self.emit(EventType::Normal, "Inconclusive", message);
            }
            ExperimentDecision::NoDifference => {
                self.emit(EventType::Normal, "NoDifference", message);
            }
            ExperimentDecision::Collecting | ExperimentDecision::Running => {}
        }
    }

    /// `autoShip`: ships a declared winner when the latest guardrail analysis of the step
    /// passed and no newer one is due. Called only while `Progressing`, so a paused
    /// experiment waits for `resume`.
    pub(super) fn auto_ship(&mut self, ramp: &RampPlan<'_>, plan: &ExperimentPlan<'_>, index: u32) {
        if index != 0 || !plan.spec.auto_ship {
            return;
        }
        let Some(experiment) = &self.status.experiment else {
            return;
        };
        let Some(winner) = experiment
            .winner
            .as_ref()
            .filter(|_| experiment.decision == ExperimentDecision::Winner)
        else {
            return;
        };
        let passed = self.latest_step_run().map(|r| r.verdict) == Some(Verdict::Pass);
        if !passed || self.analysis_due() {
            return;
        }
        let variant = winner.variant.clone();
        let message = format!(
            "shipped {variant} to every user (autoShip, guardrails passed): {}",
            experiment.message
        );
        self.ship(ramp, variant, message);
    }

    /// `promote` or `promote-full` on an experiment: ships the declared winner, if there is
    /// one. The caller already refused a failed or held guardrail analysis.
    pub(super) fn ship_on_request(
        &mut self,
        ramp: &RampPlan<'_>,
        id: &str,
    ) -> Result<String, String> {
        let Some(experiment) = &self.status.experiment else {
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
        let variant = winner.variant.clone();
        let message = format!(
            "shipped {variant} to every user by request {id}: {}",
            experiment.message
        );
        self.ship(ramp, variant, message.clone());
        Ok(message)
    }

    /// Every user gets `variant` from now on: `Complete` at 100%, and the stale clock starts.
    fn ship(&mut self, ramp: &RampPlan<'_>, variant: String, message: String) {
        if let Some(experiment) = self.status.experiment.as_mut() {
            experiment.shipped_variant = Some(variant);
            experiment.shipped_at = Some(Time(self.now));
        }
        self.emit(EventType::Normal, "WinnerShipped", message);
        self.enter_step(ramp, ramp.last_index(), false);
    }
}
