//! Where the simulator's metric values come from. The sources and the driver all name the
//! trait, so it sits in a module that names none of them.

use jiff::Timestamp;

use rollgate_core::crd::Analysis;
use rollgate_core::observation::MetricObservation;

/// Where the simulator gets what each metric query would have returned.
pub trait MetricSource {
    /// One observation per metric of `analysis`, in spec order, as the provider would have
    /// seen them at `time`. Never fails as a whole: a failed query is an
    /// [`MetricOutcome::Error`](rollgate_core::observation::MetricOutcome::Error).
    fn observe(&mut self, analysis: &Analysis, time: Timestamp) -> Vec<MetricObservation>;
}
