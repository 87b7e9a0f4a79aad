//! Where the simulator's metric values come from. The sources and the driver all name the
//! trait, so it sits in a module that names none of them.

use jiff::Timestamp;

use rollgate_core::crd::Analysis;
use rollgate_core::observation::{GuardrailObservation, MetricObservation};

/// Where the simulator gets what each metric query would have returned.
pub trait MetricSource {
    /// One observation per metric of `analysis`, in spec order, as the provider would have
    /// seen them at `time`. Never fails as a whole: a failed query is an
    /// [`MetricOutcome::Error`](rollgate_core::observation::MetricOutcome::Error).
    fn observe(&mut self, analysis: &Analysis, time: Timestamp) -> Vec<MetricObservation>;

    /// One observation per guardrail of `analysis`, in spec order: each guardrail's counts
    /// per cohort from `ramp_started_at` to `time`, as the operator would have queried them
    /// at `time`. A failed query is a
    /// [`GuardrailOutcome::Error`](rollgate_core::observation::GuardrailOutcome::Error).
    fn observe_guardrails(
        &mut self,
        analysis: &Analysis,
        ramp_started_at: Timestamp,
        time: Timestamp,
    ) -> Vec<GuardrailObservation>;
}
