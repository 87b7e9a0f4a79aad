//! The statistics of an A/B/n experiment on conversion counters: pure functions, no I/O and
//! no clock. See `docs/experiments.md` for the method, its guarantees and measured behaviour.
//!
//! The caller (the controller) queries exposures and conversions per variant, passes them
//! with the state it stored in `status` at the previous look and the time since the
//! experiment started, and gets back an [`ExperimentVerdict`]: per-variant statistics, the
//! sample-ratio check, a [`Decision`] and the new [`ExperimentState`] to store.
//!
//! ```
//! use rollgate_core::experiment::{ExperimentConfig, ExperimentState, VariantCounts, evaluate_experiment};
//! use std::time::Duration;
//!
//! let config = ExperimentConfig::default();
//! let counts = [
//!     VariantCounts::new("control", 50, 20_000, 2_000),
//!     VariantCounts::new("treatment", 50, 20_000, 2_300),
//! ];
//! let verdict = evaluate_experiment(&config, &counts, &ExperimentState::default(), Duration::from_secs(3600))?;
//! assert!(verdict.decision.is_final());
//! // Store `verdict.state` in status and pass it back at the next look.
//! # Ok::<(), rollgate_core::experiment::ExperimentError>(())
//! ```

mod inputs;
pub mod msprt;
pub mod srm;
pub mod stats;
mod verdict;

pub use inputs::{
    DEFAULT_ALPHA, DEFAULT_MIN_SAMPLES_PER_VARIANT, DEFAULT_MIXTURE_RELATIVE_LIFT,
    ExperimentConfig, ExperimentError, Method, VariantCounts,
};
pub use msprt::SequentialArmState;
pub use srm::SrmResult;
pub use stats::Interval;
pub use verdict::{
    Conclusion, Decision, ExperimentState, ExperimentVerdict, VariantStats, Winner,
    evaluate_experiment,
};
