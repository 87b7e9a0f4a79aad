//! `rollgate-sdk`: the Rollgate flag document and deterministic flag evaluation.
//!
//! This crate has no Kubernetes, async runtime or network dependency in its core. The
//! operator uses it for every bucketing decision, so exactly one implementation exists.
#![forbid(unsafe_code)]

pub mod bucket;
pub mod document;
pub mod eval;

pub use bucket::{RANK_SCALE, legacy_bucket, percent_threshold, rollout_rank, variant_rank};
pub use document::{DocumentError, ExperimentAssignment, FlagDocument, FlagEntry, SCHEMA_VERSION, Variant};
pub use eval::{CompiledFlag, Evaluation, FlagSet, Reason};
