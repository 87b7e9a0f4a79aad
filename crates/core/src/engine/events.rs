//! The Kubernetes events a flag's transitions produce. Every reason is one variant of
//! [`EventReason`], so the operator, the simulator and the kubectl plugin spell it the same.

use serde::{Deserialize, Serialize};

/// `Normal` or `Warning`, as Kubernetes events have it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

/// Why an event was recorded: the `reason` field of the Kubernetes event, in CamelCase.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
pub enum EventReason {
    /// A ramp started at its first step.
    RolloutStarted,
    /// A spec change (key, steps, or an edit after a rollback) restarted the ramp.
    RolloutRestarted,
    /// A `retry` request restarted a rolled-back ramp.
    RetryStarted,
    /// An experiment started serving its arms.
    ExperimentStarted,
    /// A spec change restarted an experiment with fresh statistics.
    ExperimentRestarted,
    /// The ramp moved to its next step.
    StepAdvanced,
    /// The ramp reached its last step.
    Completed,
    /// An analysis failed, with failures left before `failureLimit`.
    AnalysisFailed,
    /// An analysis could not judge (no data or a query error) and holds the ramp.
    AnalysisHeld,
    /// The flag went to 0%: the analysis failed `failureLimit` times, or an `abort` request.
    RolledBack,
    /// `spec.enabled` is false: the flag is off for everyone.
    Disabled,
    /// A `kill` request turned the flag off for everyone.
    Killed,
    /// An `unkill` request restored the flag.
    Unkilled,
    Paused,
    Resumed,
    /// A `promote` or `promote-full` request moved the ramp.
    Promoted,
    /// A `promote` request that does not apply now.
    PromoteRefused,
    /// Any other request that does not apply now.
    RequestRefused,
    /// An annotation that is not a known `<verb>/<id>` request.
    RequestIgnored,
    /// The flag has been at 100% longer than `staleAfter`.
    Stale,
    /// A step ran past `maxStepDuration` without enough guardrail samples; the ramp holds.
    GuardrailStarved,
    /// The spec cannot be acted on.
    InvalidSpec,
    /// The flag's document did not fit into its ConfigMap.
    PublishFailed,
    /// An experiment found a winner.
    WinnerDeclared,
    /// The winner now serves every user.
    WinnerShipped,
    /// The exposures do not match the experiment's weights; it is halted.
    SampleRatioMismatch,
    /// No winner by `maxDuration`.
    Inconclusive,
    /// The planned (fixed-horizon) analysis found no difference.
    NoDifference,
    /// A look at the experiment's counts failed; its statistics are unchanged.
    ExperimentLookFailed,
    /// A rule names a segment that does not exist or is invalid; it matches no one.
    SegmentNotFound,
}

impl EventReason {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// `Warning` for what a person should look at, `Normal` for the expected transitions.
    /// Each reason has one type, so no caller can pair them wrongly.
    pub fn event_type(self) -> EventType {
        match self {
            Self::AnalysisFailed
            | Self::AnalysisHeld
            | Self::RolledBack
            | Self::Killed
            | Self::PromoteRefused
            | Self::RequestRefused
            | Self::RequestIgnored
            | Self::Stale
            | Self::GuardrailStarved
            | Self::InvalidSpec
            | Self::PublishFailed
            | Self::SampleRatioMismatch
            | Self::ExperimentLookFailed
            | Self::SegmentNotFound => EventType::Warning,
            Self::RolloutStarted
            | Self::RolloutRestarted
            | Self::RetryStarted
            | Self::ExperimentStarted
            | Self::ExperimentRestarted
            | Self::StepAdvanced
            | Self::Completed
            | Self::Disabled
            | Self::Unkilled
            | Self::Paused
            | Self::Resumed
            | Self::Promoted
            | Self::WinnerDeclared
            | Self::WinnerShipped
            | Self::Inconclusive
            | Self::NoDifference => EventType::Normal,
        }
    }

    /// The events that take a flag to 0% for everyone at once.
    pub fn turns_flag_off(self) -> bool {
        matches!(self, Self::RolledBack | Self::Killed)
    }

    /// A request the operator refused (the kubectl plugin reports its message).
    pub fn is_refusal(self) -> bool {
        matches!(self, Self::PromoteRefused | Self::RequestRefused)
    }
}

/// One Kubernetes event to emit on the flag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineEvent {
    pub reason: EventReason,
    pub message: String,
}

impl EngineEvent {
    pub fn new(reason: EventReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }

    /// The event's type, which its reason decides.
    pub fn type_(&self) -> EventType {
        self.reason.event_type()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::VariantArray as _;

    #[test]
    fn every_reason_reads_back_from_its_name() {
        for reason in EventReason::VARIANTS {
            assert_eq!(reason.as_str().parse::<EventReason>(), Ok(*reason));
            assert_eq!(reason.to_string(), reason.as_str());
            let json = serde_json::to_string(reason).unwrap();
            assert_eq!(json, format!("\"{}\"", reason.as_str()));
        }
    }
}
